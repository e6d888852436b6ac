//! What a run did, for people (text) and machines (JSON): the outcome, what
//! became of each key, each step with its duration. Never the secret.

use serde::Serialize;

use super::state::{JournalRecord, Phase};
use crate::handler::LogLine;
use crate::iam::KeyStatus;
use crate::time::{now_rfc3339, rfc3339};

/// The version of the JSON report's shape; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How a run ended. Each outcome has its own process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new key is propagated and every old key is retired.
    Rotated,
    /// Nothing to do: the active key is younger than `--older-than`.
    Skipped,
    /// Left alone on purpose: an exemption (a user tag, a group, the
    /// account or its OU) says so, with its reason.
    Exempt,
    /// A dry run found that a rotation would go ahead.
    WouldRotate,
    /// The new key is in place; the old key drains (`--retire drain`):
    /// a later run retires it once nothing uses it.
    Draining,
    /// Nothing was rotated; the active key is unchanged.
    Failed,
    /// The new key is propagated, but an old key could not be deleted (it was
    /// deactivated, or was already inactive).
    Partial,
    /// An operator must act: a key nobody holds exists, or an old key could
    /// be neither deleted nor deactivated.
    NeedsManualAction,
    /// The input was wrong (an unknown user, a journal IAM no longer
    /// matches); nothing was touched.
    BadInput,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Rotated
            | Outcome::Skipped
            | Outcome::Exempt
            | Outcome::WouldRotate
            | Outcome::Draining => 0,
            Outcome::Failed => 1,
            Outcome::BadInput => 2,
            Outcome::Partial => 3,
            Outcome::NeedsManualAction => 4,
        }
    }

    /// The kebab-case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Rotated => "rotated",
            Outcome::Skipped => "skipped",
            Outcome::Exempt => "exempt",
            Outcome::WouldRotate => "would-rotate",
            Outcome::Draining => "draining",
            Outcome::Failed => "failed",
            Outcome::Partial => "partial",
            Outcome::NeedsManualAction => "needs-manual-action",
            Outcome::BadInput => "bad-input",
        }
    }
}

/// A step of the rotation, as timed in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// List the user's keys.
    ListKeys,
    /// Ask the handler whether it can succeed.
    Preflight,
    /// Create the new key.
    CreateKey,
    /// Delete a non-active key to get under the two-key limit.
    MakeRoom,
    /// List the keys again after the create, to see that no other actor
    /// changed them meanwhile.
    CheckKeys,
    /// Prove the new key works (`sts:GetCallerIdentity` signed with it).
    VerifyKey,
    /// Before retiring the old keys: the new key must still be there.
    ConfirmNewKey,
    /// Give the new key to the handler.
    Handle,
    /// Delete the new key after a later step failed.
    DeleteNewKey,
    /// Delete an old key.
    DeleteOldKey,
    /// Deactivate an old key (grace mode, or one that could not be deleted).
    DeactivateOldKey,
}

impl Step {
    /// The kebab-case name, as in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Step::ListKeys => "list-keys",
            Step::Preflight => "preflight",
            Step::CreateKey => "create-key",
            Step::MakeRoom => "make-room",
            Step::CheckKeys => "check-keys",
            Step::VerifyKey => "verify-key",
            Step::ConfirmNewKey => "confirm-new-key",
            Step::Handle => "handle",
            Step::DeleteNewKey => "delete-new-key",
            Step::DeleteOldKey => "delete-old-key",
            Step::DeactivateOldKey => "deactivate-old-key",
        }
    }
}

/// One step as it ran.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// The key it acted on, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Wall-clock time, in milliseconds.
    pub duration_ms: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// How many calls it took, when it retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// A note, e.g. why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of the new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewKeyState {
    /// The handler stored it; it is the user's active key.
    Propagated,
    /// A later step failed and the key was deleted.
    Deleted,
    /// A later step failed and the key could not be deleted: nobody holds it.
    Orphaned,
    /// The handler stored it, and someone else deleted or deactivated it
    /// before the old keys were retired.
    Gone,
}

/// The new key, by id (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct NewKeyReport {
    /// The new access key id.
    pub access_key_id: String,
    /// What became of it.
    pub state: NewKeyState,
}

/// What became of a key the user had before the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum OldKeyAction {
    /// Left as it was.
    Unchanged,
    /// A non-active key deleted to get under the two-key limit.
    DeletedToMakeRoom,
    /// Deleted after the new key was propagated.
    Deleted,
    /// Set `Inactive` after the new key was propagated, as asked
    /// (`--retire deactivate`): it can be re-enabled if a consumer breaks.
    KeptInactive,
    /// Already gone when keyrot tried to delete it (`NoSuchEntity`).
    AlreadyGone,
    /// Kept active while it drains (`--retire drain`).
    Draining,
    /// Could not be deleted, so it was set `Inactive`.
    Deactivated {
        /// Why the delete failed.
        delete_error: String,
    },
    /// A non-active key that could not be deleted; it stays non-active.
    DeleteFailed {
        /// Why the delete failed.
        delete_error: String,
    },
    /// Could be neither deleted nor deactivated: it is still active.
    StillActive {
        /// Why the delete failed.
        delete_error: String,
        /// Why deactivating failed.
        deactivate_error: String,
    },
}

/// One of the user's keys from before the run.
#[derive(Clone, Debug, Serialize)]
pub struct OldKeyReport {
    /// The access key id.
    pub access_key_id: String,
    /// Its status when the run began.
    pub status: KeyStatus,
    /// When it was created, RFC 3339, if IAM said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// What keyrot did to it.
    #[serde(flatten)]
    pub action: OldKeyAction,
    /// Its last use before the run, when read (`RotateOptions::read_last_use`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<crate::iam::KeyLastUsed>,
}

impl OldKeyReport {
    /// A key as listed, before anything was done to it.
    pub fn unchanged(key: &crate::iam::AccessKeyInfo) -> Self {
        Self {
            access_key_id: key.access_key_id.clone(),
            status: key.status.clone(),
            create_date: key.create_date.clone(),
            action: OldKeyAction::Unchanged,
            last_used: None,
        }
    }
}

/// A journal left by an earlier run that this run finished first.
#[derive(Clone, Debug, Serialize)]
pub struct ResumeReport {
    /// How far the earlier run had got.
    pub phase: Phase,
    /// When it started, RFC 3339.
    pub started: String,
    /// Which process it was (`host:pid`).
    pub owner: String,
    /// What this run did about it.
    pub action: String,
}

/// A draining old key, and what this run did about it.
#[derive(Clone, Debug, Serialize)]
pub struct DrainReport {
    /// The old key.
    pub access_key_id: String,
    /// When the new key was handed over, RFC 3339: the drain's start.
    pub since: String,
    /// When the old key was deactivated, RFC 3339, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<String>,
    /// Its last use, as IAM reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<crate::iam::KeyLastUsed>,
    /// What this run did: the step.
    #[serde(flatten)]
    pub step: Option<super::drain::DrainStep>,
    /// The step in words.
    pub note: String,
}

/// Why nothing was rotated (`--older-than`).
#[derive(Clone, Debug, Serialize)]
pub struct SkipReport {
    /// The active key's age, e.g. `12d 3h`.
    pub age: String,
    /// The threshold it is under, e.g. `90d`.
    pub threshold: String,
    /// When it comes due, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

/// Why a user was left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExemptReport {
    /// What exempts it: `tag keyrot:exempt`, `group NAME`, `account`,
    /// `OU ou-...`.
    pub by: String,
    /// The reason given.
    pub reason: String,
    /// The last day the exemption holds (`YYYY-MM-DD`), if it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// Everything a run did, for people (text) and machines (JSON). Never holds
/// the secret access key.
#[derive(Clone, Debug, Serialize)]
pub struct RotationReport {
    /// The shape of this document ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The keyrot that wrote it.
    pub keyrot_version: &'static str,
    /// When the run started, RFC 3339.
    pub timestamp: String,
    /// The AWS account the user belongs to, when known.
    pub account: Option<String>,
    /// The account's name in the organization, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// Who keyrot acted as (`sts:GetCallerIdentity`), when known.
    pub caller_arn: Option<String>,
    /// The IAM user.
    pub user: String,
    /// How the run ended.
    pub outcome: Outcome,
    /// The fleet target that selected the user (`target prod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The rule that decided for it: what the target matched and its
    /// policy (`OU ou-prod, path /ci/; max-age 90d, retire drain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who owns the user, from its owner tag (`--owner-tag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why the user was left alone, for `exempt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<ExemptReport>,
    /// What a person should know though nothing failed: a key due soon
    /// (`--warn-within`), an exemption that expired or is about to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whether this was a dry run (no write call was sent).
    pub dry_run: bool,
    /// A journal from an interrupted run, finished first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<ResumeReport>,
    /// Why nothing was rotated, for `skipped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReport>,
    /// What a rotation would do now (dry runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    /// The new key, if one was created.
    pub new_key: Option<NewKeyReport>,
    /// The user's keys from before the run.
    pub old_keys: Vec<OldKeyReport>,
    /// Each step as it ran.
    pub steps: Vec<StepRecord>,
    /// Drain mode: the old key that drains, and what this run did about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// What the handler logged.
    pub handler_log: Vec<LogLine>,
    /// Why the run failed or is partial, with what to do next.
    pub error: Option<String>,
    /// Whether the journal was kept for the next run, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// How long the run took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl RotationReport {
    /// An empty report for `user`, as a run starts.
    pub fn new(user: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            keyrot_version: env!("CARGO_PKG_VERSION"),
            timestamp: now_rfc3339(),
            account: None,
            account_name: None,
            caller_arn: None,
            user: user.to_string(),
            outcome: Outcome::Failed,
            target: None,
            rule: None,
            owner: None,
            exempt: None,
            warnings: Vec::new(),
            dry_run: false,
            resumed: None,
            skipped: None,
            plan: Vec::new(),
            new_key: None,
            old_keys: Vec::new(),
            steps: Vec::new(),
            drain: None,
            handler_log: Vec::new(),
            error: None,
            journal: None,
            duration_ms: None,
        }
    }

    /// A report for a rotation that failed before its first IAM call (its
    /// account could not be reached, its turn never came): nothing changed.
    pub fn failed(user: &str, account: Option<&str>, error: String) -> Self {
        let mut report = Self::new(user);
        report.account = account.map(str::to_string);
        report.outcome = Outcome::Failed;
        report.error = Some(error);
        report
    }

    /// A report for a user (or `*`, a whole account) left alone on purpose.
    pub fn exempt(user: &str, account: Option<&str>, exempt: ExemptReport) -> Self {
        let mut report = Self::new(user);
        report.account = account.map(str::to_string);
        report.outcome = Outcome::Exempt;
        report.exempt = Some(exempt);
        report
    }

    /// A report for input that was refused before any rotation started.
    pub fn bad_input(user: &str, error: String) -> Self {
        let mut report = Self::new(user);
        report.outcome = Outcome::BadInput;
        report.error = Some(error);
        report
    }

    pub(super) fn set_old_key(&mut self, key_id: &str, action: OldKeyAction) {
        if let Some(key) = self.old_keys.iter_mut().find(|k| k.access_key_id == key_id) {
            key.action = action;
        }
    }

    pub(super) fn resumed_from(&mut self, record: &JournalRecord, action: String) {
        self.resumed = Some(ResumeReport {
            phase: record.phase,
            started: rfc3339(record.started),
            owner: record.owner.clone(),
            action,
        });
    }

    /// The outcome of a run that got through retirement, from what became
    /// of each old key.
    pub(super) fn retire_outcome(&self) -> Outcome {
        let actions = self.old_keys.iter().map(|k| &k.action);
        if actions
            .clone()
            .any(|a| matches!(a, OldKeyAction::StillActive { .. }))
        {
            Outcome::NeedsManualAction
        } else if actions.clone().any(|a| {
            matches!(
                a,
                OldKeyAction::Deactivated { .. } | OldKeyAction::DeleteFailed { .. }
            )
        }) {
            Outcome::Partial
        } else {
            Outcome::Rotated
        }
    }

    /// A summary of old keys that could not be retired, with what to do.
    pub(super) fn retire_problems(&self) -> Option<String> {
        let problems: Vec<String> = self
            .old_keys
            .iter()
            .filter_map(|k| match &k.action {
                OldKeyAction::Deactivated { delete_error } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) and was deactivated",
                    k.access_key_id
                )),
                OldKeyAction::DeleteFailed { delete_error } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) and stays {}",
                    k.access_key_id,
                    k.status.as_str().to_lowercase()
                )),
                OldKeyAction::StillActive {
                    delete_error,
                    deactivate_error,
                } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) nor deactivated \
                     ({deactivate_error}): it is STILL ACTIVE next to the new key",
                    k.access_key_id
                )),
                _ => None,
            })
            .collect();
        if problems.is_empty() {
            return None;
        }
        Some(format!(
            "the new key is in place, but {}; delete it with `aws iam delete-access-key \
             --user-name {} --access-key-id ID`",
            problems.join("; "),
            self.user
        ))
    }
}
