//! What a reporter is given about a run ([`RunNotice`]): built from the
//! run's reports, copying ids, outcomes, times and words. The reports hold
//! no secret, and nothing here reads one.

use serde::Serialize;

use super::event::{Event, EventSet};
use crate::fleet::FleetSummary;
use crate::rotation::{NewKeyState, OldKeyAction, Outcome, RotationReport};
use crate::rotation::{now_rfc3339, parse_rfc3339, unix_now};

/// The run, as a reporter gets it: the whole run's counts, and the users
/// its filter selects.
#[derive(Clone, Debug, Serialize)]
pub struct RunNotice {
    /// The keyrot that ran.
    pub keyrot_version: &'static str,
    /// When this notice was made, RFC 3339.
    pub time: String,
    /// Whether the run was a dry run.
    pub dry_run: bool,
    /// Counts over every user of the run.
    pub summary: FleetSummary,
    /// The users the filter selects.
    pub users: Vec<UserNotice>,
}

/// One user, as a reporter gets it.
#[derive(Clone, Debug, Serialize)]
pub struct UserNotice {
    /// The AWS account, when known.
    pub account: Option<String>,
    /// The account's name in the organization, when known.
    pub account_name: Option<String>,
    /// The IAM user.
    pub user: String,
    /// Its owner (owner tag), when known.
    pub owner: Option<String>,
    /// The job's target that selected it.
    pub target: Option<String>,
    /// How its rotation ended.
    pub outcome: Outcome,
    /// The events it raised that the filter selects.
    pub events: Vec<Event>,
    /// The key the run created.
    pub new_key: Option<NoticeNewKey>,
    /// The keys it had before the run.
    pub old_keys: Vec<NoticeKey>,
    /// When a skipped key comes due.
    pub due: Option<String>,
    /// Why an exempt user is left alone.
    pub exemption: Option<String>,
    /// Warnings, one line each.
    pub warnings: Vec<String>,
    /// Why it failed or needs a person.
    pub reason: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
}

/// The key a run created: its id and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct NoticeNewKey {
    /// The access key id.
    pub access_key_id: String,
    /// `propagated`, `deleted`, `orphaned` or `gone`.
    pub state: &'static str,
}

/// A key from before the run.
#[derive(Clone, Debug, Serialize)]
pub struct NoticeKey {
    /// The access key id.
    pub access_key_id: String,
    /// `Active` or `Inactive` when the run began.
    pub status: String,
    /// When IAM created it.
    pub created: Option<String>,
    /// Its age in whole days.
    pub age_days: Option<u32>,
    /// Its last use, when keyrot read it.
    pub last_used: Option<String>,
    /// The service of that last use.
    pub last_used_service: Option<String>,
    /// What the run did to it (`deleted`, `draining`, ...).
    pub action: &'static str,
}

impl RunNotice {
    /// The notice for a reporter that asked for `on`.
    pub fn of(reports: &[RotationReport], on: &EventSet) -> Self {
        let now = unix_now();
        let users = reports
            .iter()
            .filter_map(|report| {
                let events = on.select(&Event::of(report));
                (!events.is_empty()).then(|| UserNotice::of(report, events, now))
            })
            .collect();
        RunNotice {
            keyrot_version: env!("CARGO_PKG_VERSION"),
            time: now_rfc3339(),
            dry_run: reports.iter().any(|r| r.dry_run),
            summary: FleetSummary::of(reports, 0),
            users,
        }
    }
}

impl UserNotice {
    fn of(report: &RotationReport, events: Vec<Event>, now: u64) -> Self {
        let drain = report.drain.as_ref();
        let old_keys = report
            .old_keys
            .iter()
            .map(|key| {
                let created = key.create_date.clone();
                let age_days = created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map(|t| (now.saturating_sub(t) / 86_400) as u32);
                // Read before the run with reporters; drain mode reads it too.
                let used = key.last_used.as_ref().or_else(|| {
                    drain
                        .filter(|d| d.access_key_id == key.access_key_id)
                        .and_then(|d| d.last_used.as_ref())
                });
                NoticeKey {
                    access_key_id: key.access_key_id.clone(),
                    status: key.status.as_str().to_string(),
                    created,
                    age_days,
                    last_used: used.and_then(|u| u.date.clone()),
                    last_used_service: used.and_then(|u| u.service.clone()),
                    action: action_name(&key.action),
                }
            })
            .collect();
        let failed = report.outcome.exit_code() != 0;
        UserNotice {
            account: report.account.clone(),
            account_name: report.account_name.clone(),
            user: report.user.clone(),
            owner: report.owner.clone(),
            target: report.target.clone(),
            outcome: report.outcome,
            events,
            new_key: report.new_key.as_ref().map(|k| NoticeNewKey {
                access_key_id: k.access_key_id.clone(),
                state: match k.state {
                    NewKeyState::Propagated => "propagated",
                    NewKeyState::Deleted => "deleted",
                    NewKeyState::Orphaned => "orphaned",
                    NewKeyState::Gone => "gone",
                },
            }),
            old_keys,
            due: report.skipped.as_ref().and_then(|s| s.due.clone()),
            exemption: report.exempt.as_ref().map(|e| {
                let until = e
                    .until
                    .as_deref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default();
                format!("exempt by {}{until}: {}", e.by, e.reason)
            }),
            warnings: report.warnings.clone(),
            reason: report.error.clone().filter(|_| failed),
            advice: advice(report.outcome).map(str::to_string),
        }
    }
}

/// What to do about an outcome, in one sentence; `None` when nothing is.
fn advice(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Failed => Some(
            "nothing was changed: fix what the reason names and run keyrot again (a rerun \
             finishes any interrupted rotation first)",
        ),
        Outcome::BadInput => Some("nothing was touched: correct the input and run keyrot again"),
        Outcome::Partial => Some(
            "the new key is in place: delete the old key the reason names (aws iam \
             delete-access-key), or let the next run retire it",
        ),
        Outcome::NeedsManualAction => {
            Some("a person must act: do what the reason says, then run keyrot again")
        }
        _ => None,
    }
}

/// The JSON report's name of an old key's action.
fn action_name(action: &OldKeyAction) -> &'static str {
    match action {
        OldKeyAction::Unchanged => "unchanged",
        OldKeyAction::DeletedToMakeRoom => "deleted-to-make-room",
        OldKeyAction::Deleted => "deleted",
        OldKeyAction::KeptInactive => "kept-inactive",
        OldKeyAction::AlreadyGone => "already-gone",
        OldKeyAction::Draining => "draining",
        OldKeyAction::Deactivated { .. } => "deactivated",
        OldKeyAction::DeleteFailed { .. } => "delete-failed",
        OldKeyAction::StillActive { .. } => "still-active",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::KeyStatus;
    use crate::rotation::{NewKeyReport, OldKeyReport};

    #[test]
    fn a_failed_user_carries_reason_and_advice_and_its_keys() {
        let mut report = RotationReport::new("ci-bot");
        report.outcome = Outcome::NeedsManualAction;
        report.owner = Some("team-a".into());
        report.error = Some("old key AKIAOLD is STILL ACTIVE".into());
        report.new_key = Some(NewKeyReport {
            access_key_id: "AKIANEW".into(),
            state: NewKeyState::Propagated,
        });
        report.old_keys.push(OldKeyReport {
            access_key_id: "AKIAOLD".into(),
            status: KeyStatus::Active,
            create_date: Some("2026-01-01T00:00:00Z".into()),
            action: OldKeyAction::StillActive {
                delete_error: "denied".into(),
                deactivate_error: "denied".into(),
            },
            last_used: None,
        });
        let notice = RunNotice::of(&[report], &EventSet::default());
        let user = &notice.users[0];
        assert_eq!(user.events, [Event::NeedsAttention]);
        assert_eq!(user.owner.as_deref(), Some("team-a"));
        assert!(user.reason.as_deref().unwrap().contains("STILL ACTIVE"));
        assert!(user.advice.is_some());
        assert_eq!(user.old_keys[0].action, "still-active");
        assert!(user.old_keys[0].age_days.is_some());
        assert_eq!(user.new_key.as_ref().unwrap().state, "propagated");
        assert_eq!(notice.summary.needs_manual_action, 1);
    }
}
