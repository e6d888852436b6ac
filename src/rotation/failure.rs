//! Why a rotation failed. Each message says what state the keys are in and
//! what to do next.

use std::fmt;

use super::state::JournalError;
use crate::handler::HandlerError;
use crate::iam::IamError;

use super::report::RotationReport;

/// Why keyrot gave up a key it had just created.
#[derive(Clone, Debug)]
pub enum GiveUp {
    /// The handler failed (or was interrupted).
    Handler(HandlerError),
    /// The key never became usable within `--verify-timeout`, or STS said
    /// it belongs to someone else.
    Verify(String),
    /// Another actor changed the user's keys during the run.
    Concurrent(String),
    /// The journal could not record the key, so a crash could not be
    /// recovered from.
    Journal(JournalError),
    /// This run stopped holding the user (its lease ran out, or another run
    /// took the user over), so it must not go on.
    Lost(JournalError),
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::Handler(cause) => write!(f, "handler failed: {cause}"),
            GiveUp::Verify(why) => write!(f, "the new key never became usable: {why}"),
            GiveUp::Concurrent(what) => write!(
                f,
                "another process changed the user's keys during this run ({what}), so this \
                 run backs off"
            ),
            GiveUp::Journal(cause) => {
                write!(f, "could not record the new key in the journal: {cause}")
            }
            GiveUp::Lost(cause) => write!(f, "{cause}, so this run stopped"),
        }
    }
}

/// Why a rotation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RotationFailure {
    /// The user does not exist.
    #[error(
        "iam user '{user}' does not exist: check --user and which AWS account the \
         credentials belong to; nothing was changed"
    )]
    UnknownUser {
        /// The user name given.
        user: String,
    },
    /// Listing the user's keys failed.
    #[error("could not list the access keys of user '{user}': {cause}; nothing was changed")]
    ListKeys {
        /// The user.
        user: String,
        /// IAM's error.
        cause: IamError,
    },
    /// The user has two active keys; keyrot will not guess which is in use.
    #[error(
        "user '{user}' has two active access keys ({}; {}) and keyrot cannot tell which one \
         is in use: deactivate or delete the unused one (`aws iam update-access-key \
         --user-name {user} --access-key-id ID --status Inactive`) and run again; nothing \
         was changed",
        keys[0],
        keys[1]
    )]
    TwoActiveKeys {
        /// The user.
        user: String,
        /// The two active keys: id, creation date, last use.
        keys: [String; 2],
    },
    /// The handler's preflight failed.
    #[error("handler preflight failed: {cause}; nothing was changed")]
    Preflight {
        /// The handler's error.
        cause: HandlerError,
    },
    /// The run stopped before it started: nothing was done.
    #[error("{why}; nothing was changed")]
    NotStarted {
        /// Why.
        why: String,
    },
    /// The journal could not be written before the create: nothing was done.
    #[error("{cause}; nothing was changed")]
    Journal {
        /// Why.
        cause: JournalError,
    },
    /// A journal from an earlier run does not match what IAM holds now.
    #[error(
        "{what}. Someone may have changed the keys by hand: check with `keyrot status --user \
         {user}`, then remove the journal with `keyrot journal clear --user {user}` and run \
         again; nothing was changed"
    )]
    JournalMismatch {
        /// The user.
        user: String,
        /// What was found.
        what: String,
    },
    /// A non-active key could not be deleted to get under the key limit.
    #[error(
        "user '{user}' is at the two-key limit and deleting its non-active key {key} to make \
         room failed: {cause}; no key was created and the active key is unchanged"
    )]
    MakeRoom {
        /// The user.
        user: String,
        /// The key that could not be deleted.
        key: String,
        /// IAM's error.
        cause: IamError,
    },
    /// Creating the new key failed.
    #[error(
        "could not create a new access key for user '{user}': {cause}; {}{}the active key is \
         unchanged",
        made_room_note(made_room),
        removed_note(removed)
    )]
    CreateKey {
        /// The user.
        user: String,
        /// IAM's error.
        cause: IamError,
        /// Non-active keys deleted to make room before the failed retry.
        made_room: Vec<String>,
        /// Keys the failed call made anyway (its answer was lost), deleted.
        removed: Vec<String>,
    },
    /// Creating the new key got no answer and no key is there yet: IAM may
    /// still apply the call. The journal is kept so the next run deletes it.
    #[error(
        "could not create a new access key for user '{user}': {cause}; no new key is there yet, \
         but IAM may still apply the call until {until}: the journal is kept, and the next \
         keyrot run deletes that key if it appears; the active key is unchanged"
    )]
    CreateUnanswered {
        /// The user.
        user: String,
        /// Why the create failed.
        cause: IamError,
        /// Until when the call may be applied, RFC 3339.
        until: String,
    },
    /// Creating the new key failed in a way that may have created it, and
    /// the key found afterwards could not be deleted.
    #[error(
        "could not create a new access key for user '{user}': {cause}; the call created key \
         {key} anyway, and deleting it failed: {delete}. Nobody holds that key: delete it with \
         `aws iam delete-access-key --user-name {user} --access-key-id {key}`; the active key \
         is unchanged"
    )]
    StrayKey {
        /// The user.
        user: String,
        /// The key nobody holds.
        key: String,
        /// Why the create failed.
        cause: IamError,
        /// Why the delete failed.
        delete: IamError,
    },
    /// Creating the new key failed in a way that may have created it, and
    /// keyrot could not list the keys to find out.
    #[error(
        "could not create a new access key for user '{user}': {cause}; the call may have \
         created a key anyway, and listing the keys to check failed: {list}. Check with `aws \
         iam list-access-keys --user-name {user}` and delete any key you do not recognise \
         (a rerun of keyrot does this from its journal); the active key is unchanged"
    )]
    CreateUncertain {
        /// The user.
        user: String,
        /// Why the create failed.
        cause: IamError,
        /// Why the list failed.
        list: IamError,
    },
    /// A step after the create failed; the new key was deleted.
    #[error(
        "{why}; the new key {key} was deleted; {}the other keys are unchanged",
        made_room_note(made_room)
    )]
    NewKeyDeleted {
        /// The deleted new key.
        key: String,
        /// Why it was given up.
        why: GiveUp,
        /// Non-active keys deleted to make room for the new key.
        made_room: Vec<String>,
    },
    /// A step after the create failed and the new key could not be deleted.
    #[error(
        "{why}; deleting the new key {key} then failed too: {delete}. Nobody holds that key: \
         delete it with `aws iam delete-access-key --user-name {user} --access-key-id {key}`; \
         {}the other keys are unchanged",
        made_room_note(made_room)
    )]
    Orphaned {
        /// The user.
        user: String,
        /// The orphaned key.
        key: String,
        /// Why it was given up.
        why: GiveUp,
        /// Why the delete failed.
        delete: IamError,
        /// Non-active keys deleted to make room for the new key.
        made_room: Vec<String>,
    },
    /// This run stopped holding the user: another run took it over, someone
    /// removed the record, or the lease could not be renewed in time.
    #[error("{}", lost_message(cause, stored))]
    Lost {
        /// Why.
        cause: JournalError,
        /// The new key, if the handler had already stored it.
        stored: Option<String>,
    },
    /// The handler stored the new key, and then it was gone (or inactive)
    /// before the old keys were retired: someone else deleted it.
    #[error(
        "the handler stored the new key {key}, but it no longer exists or is not active \
         (someone else deleted or deactivated it): the destination holds a key that does not \
         work. The old key(s) {} were not retired and still work; run keyrot again to give the \
         destination a working key",
        if old.is_empty() { "(none)".to_string() } else { old.join(", ") }
    )]
    NewKeyGone {
        /// The user.
        user: String,
        /// The new key.
        key: String,
        /// The old keys, left as they were.
        old: Vec<String>,
    },
    /// Drain mode: the old key's last use could not be read, so nothing was
    /// decided about it.
    #[error(
        "could not read when old key {key} of user '{user}' was last used \
         (iam:GetAccessKeyLastUsed): {cause}; it stays active and draining"
    )]
    DrainUnknown {
        /// The user.
        user: String,
        /// The draining key.
        key: String,
        /// IAM's error.
        cause: IamError,
    },
    /// Drain mode: the old key is still used after `--drain-timeout`.
    #[error("{what}")]
    DrainTimedOut {
        /// The user.
        user: String,
        /// What was found, and what to do.
        what: String,
    },
    /// The handler stored the new key, and listing the keys to confirm it
    /// is still there failed: the old keys were not retired.
    #[error(
        "the handler stored the new key {key}, but listing the keys of user '{user}' to confirm \
         it still exists failed: {cause}; the old keys were not retired, so two keys work: \
         the journal is kept, and the next keyrot run retires them (or, once the new key is \
         known to work, `aws iam delete-access-key --user-name {user} --access-key-id OLD`)"
    )]
    Unconfirmed {
        /// The user.
        user: String,
        /// The new key.
        key: String,
        /// IAM's error.
        cause: IamError,
    },
}

impl RotationFailure {
    /// The outcome a run that failed this way has.
    pub(super) fn outcome(&self) -> super::Outcome {
        use super::Outcome;
        match self {
            RotationFailure::Orphaned { .. }
            | RotationFailure::StrayKey { .. }
            | RotationFailure::CreateUncertain { .. }
            | RotationFailure::NewKeyGone { .. }
            | RotationFailure::Unconfirmed { .. }
            | RotationFailure::DrainTimedOut { .. }
            | RotationFailure::Lost {
                stored: Some(_), ..
            } => Outcome::NeedsManualAction,
            RotationFailure::UnknownUser { .. } | RotationFailure::JournalMismatch { .. } => {
                Outcome::BadInput
            }
            _ => Outcome::Failed,
        }
    }

    /// Whether a run that failed this way saw how IAM stands, with nothing
    /// of its own left to finish: only then may its journal go. Any failure
    /// that may have left a key nobody holds, or did not see the keys,
    /// keeps the journal for the next run.
    pub(super) fn finished(&self) -> bool {
        match self {
            // Seen, and nothing of the run's is outstanding.
            RotationFailure::UnknownUser { .. }
            | RotationFailure::TwoActiveKeys { .. }
            | RotationFailure::Preflight { .. }
            | RotationFailure::MakeRoom { .. }
            | RotationFailure::CreateKey { .. }
            | RotationFailure::NewKeyDeleted { .. }
            | RotationFailure::NewKeyGone { .. } => true,
            // Not seen, or a key may be (or still appear) that nobody holds.
            RotationFailure::ListKeys { .. }
            | RotationFailure::Journal { .. }
            | RotationFailure::JournalMismatch { .. }
            | RotationFailure::CreateUnanswered { .. }
            | RotationFailure::StrayKey { .. }
            | RotationFailure::CreateUncertain { .. }
            | RotationFailure::Orphaned { .. }
            | RotationFailure::Unconfirmed { .. }
            | RotationFailure::NotStarted { .. }
            | RotationFailure::DrainUnknown { .. }
            | RotationFailure::DrainTimedOut { .. }
            | RotationFailure::Lost { .. } => false,
        }
    }

    /// Whether another run holds the user now: its journal is not this
    /// run's to touch.
    pub(super) fn is_lost(&self) -> bool {
        matches!(self, RotationFailure::Lost { .. })
    }
}

fn lost_message(cause: &JournalError, stored: &Option<String>) -> String {
    match stored {
        None => format!("{cause}; this run stopped before creating a key: nothing was changed"),
        Some(key) => format!(
            "{cause}; the handler had already stored the new key {key}, so this run did not \
             retire the old keys: the run that holds the user now finishes the rotation (check \
             with `keyrot status`)"
        ),
    }
}

fn removed_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            "the failed call had created {} anyway, which was deleted; ",
            keys.join(", ")
        )
    }
}

fn made_room_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            "non-active keys {} were deleted to make room; ",
            keys.join(", ")
        )
    }
}

/// A failed rotation: the cause and the report of what was done.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{failure}")]
pub struct RotationError {
    /// What went wrong.
    pub failure: RotationFailure,
    /// What was done before and after it went wrong.
    pub report: Box<RotationReport>,
}

impl RotationError {
    /// The process exit code: the outcome's.
    pub fn exit_code(&self) -> u8 {
        self.report.outcome.exit_code()
    }
}
