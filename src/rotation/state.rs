//! The rotation's state as data: how far a run has got, written to a
//! [`Journal`] durably *before* each side effect it announces, so that a run
//! killed at any instant can be finished by the next one.
//!
//! | phase         | written                        | a rerun that finds it                          |
//! | ------------- | ------------------------------ | ---------------------------------------------- |
//! | `claimed`     | when the run starts (IAM tags) | nothing to repair                              |
//! | `create-sent` | before `CreateAccessKey`       | deletes a key made after it, rotates afresh    |
//! | `created`     | right after the create answer  | deletes the new key, rotates afresh            |
//! | `propagated`  | once the handler stored it     | retires the old keys as planned                |
//!
//! The record is removed only when the run knows IAM is in a finished
//! state: it saw the keys in a listing, or IAM definitely refused the create.
//! Every other ending keeps it for the next run. Storage lives elsewhere
//! ([`crate::journal`]: a file per user, or a tag on the IAM user).
//!
//! A record is evidence, not an order: anyone who can write the file or the
//! tag can write one. [`JournalRecord::check`] refuses records that are
//! incomplete or contradict themselves, and [`super::resume`] attributes a
//! key to the run only when IAM's own creation time puts it inside the
//! window in which that run's `CreateAccessKey` could have been applied.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::iam::{IamError, is_key_id};

/// How far this machine's clock and IAM's may disagree, in seconds.
pub const CLOCK_SKEW: u64 = 300;

/// How long after a run starts its `CreateAccessKey` can still be applied by
/// IAM, in seconds: throttled creates are retried for two minutes, and AWS
/// refuses a SigV4 request more than five minutes after it was signed. The
/// rest is margin.
pub const CREATE_LANDS_WITHIN: u64 = 15 * 60;

/// What to do with the old keys once the new one is propagated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetireMode {
    /// Delete them (the default).
    #[default]
    Delete,
    /// Set them `Inactive`, so an operator can re-enable one if an unknown
    /// consumer breaks; a later run deletes them when it needs room.
    Deactivate,
    /// Leave the old active key active until IAM's record of its last use
    /// says nobody uses it, then deactivate it, then delete it, across
    /// later runs ([`super::drain`]).
    Drain,
}

impl RetireMode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireMode::Delete => "delete",
            RetireMode::Deactivate => "deactivate",
            RetireMode::Drain => "drain",
        }
    }
}

/// How far a run had got when the record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The run has started; nothing is changed yet (IAM-tag leases only).
    Claimed,
    /// `CreateAccessKey` is about to be sent: the keys before it are known.
    CreateSent,
    /// The new key exists; the handler may or may not have stored it.
    Created,
    /// The handler stored the new key; the old keys are to be retired.
    Propagated,
    /// Drain mode: the handler stored the new key, and the old active key
    /// stays until nothing uses it; later runs retire it.
    Draining,
}

impl Phase {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "claimed",
            Phase::CreateSent => "create-sent",
            Phase::Created => "created",
            Phase::Propagated => "propagated",
            Phase::Draining => "draining",
        }
    }
}

/// The journal's record of one run on one user. Holds key ids, never a
/// secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The record's format.
    pub version: u32,
    /// The AWS account, if known.
    pub account: Option<String>,
    /// The IAM user.
    pub user: String,
    /// How far the run got.
    pub phase: Phase,
    /// Every key the user had before the create.
    pub keys_before: Vec<String>,
    /// The key that was active before the create, if any.
    pub active_before: Option<String>,
    /// The new key, once created.
    pub new_key: Option<String>,
    /// What the run was to do with the old keys.
    pub retire: RetireMode,
    /// When the run started, Unix seconds: the start of the window in
    /// which its `CreateAccessKey` may be applied. A run that finishes an
    /// interrupted one whose create may still land keeps that run's start.
    pub started: u64,
    /// Which run: `host:pid:RANDOM`, unique per run.
    pub owner: String,
    /// For a lease (IAM tags): after this Unix time another run may take
    /// over. 0 when a local lock guards the record instead.
    pub lease_until: u64,
    /// Drain mode: when the handler stored the new key, Unix seconds; the
    /// old keys drain from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over: Option<u64>,
    /// Drain mode: when the draining keys were deactivated, Unix seconds;
    /// they are deleted once the grace after it has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<u64>,
    /// Keys earlier interrupted runs created and may have handed over
    /// before this run started afresh, newest first (at most
    /// [`JournalRecord::MAX_ABANDONED`]): gone from IAM, perhaps still at
    /// the destination. Carried forward so that a run interrupted while
    /// finishing another still tells the handler about both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned: Vec<String>,
}

impl JournalRecord {
    /// The current format.
    pub const VERSION: u32 = 1;

    /// Abandoned keys a record carries: two interruptions in a row give
    /// two, and a destination holds one key at a time.
    pub const MAX_ABANDONED: usize = 3;

    /// Refuses a record that is incomplete or contradicts itself: a rerun
    /// acts on it, so it must say exactly one consistent thing.
    pub fn check(&self, now: u64) -> Result<(), String> {
        if self.version != Self::VERSION {
            return Err(format!("unknown version {}", self.version));
        }
        if self.owner.is_empty() {
            return Err("it names no owner".into());
        }
        if self.started == 0 {
            return Err("it has no start time".into());
        }
        if self.started > now + CLOCK_SKEW {
            return Err(format!(
                "it started at {}, in the future (a clock moved, or the record was edited)",
                super::rfc3339(self.started)
            ));
        }
        if self.lease_until != 0 && self.lease_until < self.started {
            return Err("its lease ends before the run started".into());
        }
        if let Some(account) = &self.account
            && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("'{account}' is not an AWS account id"));
        }
        if self.keys_before.len() > 2 {
            return Err("it lists more keys than IAM allows a user".into());
        }
        for (i, key) in self.keys_before.iter().enumerate() {
            if !is_key_id(key) {
                return Err(format!("'{key}' is not an access key id"));
            }
            if self.keys_before[..i].contains(key) {
                return Err(format!("it lists key {key} twice"));
            }
        }
        if self.abandoned.len() > Self::MAX_ABANDONED {
            return Err("it lists more abandoned keys than a record carries".into());
        }
        for (i, key) in self.abandoned.iter().enumerate() {
            if !is_key_id(key) {
                return Err(format!("'{key}' is not an access key id"));
            }
            if self.abandoned[..i].contains(key)
                || self.keys_before.contains(key)
                || self.new_key.as_ref() == Some(key)
            {
                return Err(format!(
                    "it lists key {key} as abandoned and as another key"
                ));
            }
        }
        if let Some(active) = &self.active_before
            && !self.keys_before.contains(active)
        {
            return Err(format!(
                "its active key {active} is not among the keys it lists"
            ));
        }
        self.check_drain(now)?;
        match (self.phase, &self.new_key) {
            (Phase::Claimed, _) if !self.keys_before.is_empty() || self.new_key.is_some() => {
                Err("a claim with keys in it".into())
            }
            (Phase::Claimed | Phase::CreateSent, Some(new)) => Err(format!(
                "phase {} with a new key {new}",
                self.phase.as_str()
            )),
            (Phase::Created | Phase::Propagated | Phase::Draining, None) => {
                Err(format!("phase {} without a new key", self.phase.as_str()))
            }
            (_, Some(new)) if !is_key_id(new) => Err(format!("'{new}' is not an access key id")),
            (_, Some(new)) if self.keys_before.contains(new) => Err(format!(
                "its new key {new} is also one of the keys from before the run"
            )),
            _ => Ok(()),
        }
    }

    /// A draining record has its handover time (after the run started, not
    /// in the future) and no other record has drain times.
    fn check_drain(&self, now: u64) -> Result<(), String> {
        match (self.phase, self.handed_over, self.deactivated) {
            (Phase::Draining, None, _) => Err("a drain without its handover time".into()),
            (Phase::Draining, Some(handed), _)
                if handed + CLOCK_SKEW < self.started || handed > now + CLOCK_SKEW =>
            {
                Err(format!(
                    "its handover time {} is before the run started or in the future",
                    super::rfc3339(handed)
                ))
            }
            (Phase::Draining, Some(handed), Some(deactivated)) if deactivated < handed => {
                Err("its keys were deactivated before they were handed over".into())
            }
            (Phase::Draining, ..) | (_, None, None) => Ok(()),
            (phase, ..) => Err(format!("phase {} with drain times", phase.as_str())),
        }
    }

    /// The window, by IAM's clock, in which a key this run created was
    /// created: from its start to the last moment its create could have been
    /// applied, widened by the clock skew.
    pub fn create_window(&self) -> (u64, u64) {
        (
            self.started.saturating_sub(CLOCK_SKEW),
            self.started + CREATE_LANDS_WITHIN + CLOCK_SKEW,
        )
    }

    /// Whether a create of this run could still be applied at `now`.
    pub fn create_may_still_land(&self, now: u64) -> bool {
        now < self.started + CREATE_LANDS_WITHIN
    }
}

/// Why the journal could not be read or written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing failed.
    #[error("journal {location}: {cause}")]
    Io {
        /// Which file or tag.
        location: String,
        /// The error.
        cause: String,
    },
    /// A record exists but cannot be understood.
    #[error(
        "the journal {location} cannot be read ({why}): look at it with `keyrot journal show \
         --user {user}` and remove it with `keyrot journal clear --user {user}` once the \
         user's keys are as they should be"
    )]
    Corrupt {
        /// Which file or tag.
        location: String,
        /// The user.
        user: String,
        /// What is wrong.
        why: String,
    },
    /// Another run holds the user.
    #[error("another keyrot run ({owner}) is rotating user '{user}'{until}")]
    Busy {
        /// The user.
        user: String,
        /// Which process, e.g. `pid 1234` or `host:pid`.
        owner: String,
        /// When its lease ends, if it is a lease.
        until: String,
    },
    /// The IAM call that keeps the journal failed.
    #[error("journal on IAM user '{user}': {cause}")]
    Iam {
        /// The user.
        user: String,
        /// IAM's error.
        cause: IamError,
    },
    /// This run no longer holds the user: another run took its record over,
    /// someone removed it, or its lease could not be renewed in time.
    #[error("this run no longer holds user '{user}': {why}")]
    Lost {
        /// The user.
        user: String,
        /// What happened.
        why: String,
    },
}

impl JournalError {
    /// Whether this is bad input or state an operator must look at (exit
    /// 2), rather than a failure worth retrying later (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, JournalError::Corrupt { .. })
    }
}

/// Where a run's [`JournalRecord`] is kept: the seam every transition
/// passes through.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Starts a run on `user`: returns the record an interrupted run left,
    /// if any. Fails with [`JournalError::Busy`] if another live run holds
    /// the user.
    async fn begin(&self, user: &str) -> Result<Option<JournalRecord>, JournalError>;

    /// The record for `user`, if any, without claiming anything.
    async fn peek(&self, user: &str) -> Result<Option<JournalRecord>, JournalError>;

    /// Writes the record durably, replacing the previous one.
    async fn save(&self, record: &JournalRecord) -> Result<(), JournalError>;

    /// Removes the record: the run has ended and IAM is in a finished
    /// state. A record another run owns is left alone.
    async fn clear(&self, user: &str) -> Result<(), JournalError>;

    /// The run ends and keeps its record for the next run: lets go of any
    /// lease, so that run need not wait for it to expire.
    async fn release(&self, user: &str) {
        let _ = user;
    }

    /// Resolves if this run stops holding `user` (its lease could not be
    /// renewed in time, or another run took the record over): the run must
    /// stop acting on the user's keys. Never, for a journal without a lease.
    async fn lost(&self, user: &str) {
        let _ = user;
        std::future::pending::<()>().await
    }
}

/// No journal: a run killed midway is not resumed (the library default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    async fn begin(&self, _user: &str) -> Result<Option<JournalRecord>, JournalError> {
        Ok(None)
    }

    async fn peek(&self, _user: &str) -> Result<Option<JournalRecord>, JournalError> {
        Ok(None)
    }

    async fn save(&self, _record: &JournalRecord) -> Result<(), JournalError> {
        Ok(())
    }

    async fn clear(&self, _user: &str) -> Result<(), JournalError> {
        Ok(())
    }
}
