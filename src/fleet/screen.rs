//! A look at each user just before its rotation: a [`Screen`] may leave the
//! user alone (an exemption, with its reason) or add to its report (an
//! owner, a warning). Organization runs screen by tags and groups
//! (`TagScreen`, in `org/`); a plain fleet screens nobody.

use async_trait::async_trait;

use crate::iam::Iam;
use crate::rotation::RotationReport;

/// What a screen decided for one user.
#[derive(Debug)]
pub enum Screened {
    /// Rotate it, adding these to its report.
    Rotate(Notes),
    /// Do not rotate it: this is its report (exempt, or why it could not
    /// be told).
    Decided(Box<RotationReport>),
}

/// What a fleet adds to a user's report beyond the rotation's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// The rule that selected the user (`OU ou-prod, path /ci/; max age
    /// 90d`).
    pub rule: Option<String>,
    /// The account's name in its organization.
    pub account_name: Option<String>,
    /// Who owns the user (its owner tag).
    pub owner: Option<String>,
    /// What a person should know.
    pub warnings: Vec<String>,
}

impl Notes {
    /// Writes these into `report`, after what is already there.
    pub fn apply(&self, report: &mut RotationReport) {
        if self.rule.is_some() {
            report.rule.clone_from(&self.rule);
        }
        if self.account_name.is_some() {
            report.account_name.clone_from(&self.account_name);
        }
        if self.owner.is_some() {
            report.owner.clone_from(&self.owner);
        }
        report.warnings.extend(self.warnings.iter().cloned());
    }

    /// These notes, with `more` added (a screen's over a target's).
    pub fn and(&self, more: Notes) -> Notes {
        let mut warnings = self.warnings.clone();
        warnings.extend(more.warnings);
        Notes {
            rule: more.rule.or_else(|| self.rule.clone()),
            account_name: more.account_name.or_else(|| self.account_name.clone()),
            owner: more.owner.or_else(|| self.owner.clone()),
            warnings,
        }
    }
}

/// Looks at a user in `account` through `iam`, before any key changes.
#[async_trait]
pub trait Screen: Send + Sync {
    /// Rotate `user`, with notes, or leave it alone with a report.
    async fn screen(&self, iam: &dyn Iam, account: &str, user: &str) -> Screened;
}
