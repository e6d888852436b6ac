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
//! The record is removed when the run ends. Storage lives elsewhere
//! ([`crate::journal`]: a file per user, or a tag on the IAM user).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::iam::IamError;

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
}

impl RetireMode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireMode::Delete => "delete",
            RetireMode::Deactivate => "deactivate",
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
}

impl Phase {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "claimed",
            Phase::CreateSent => "create-sent",
            Phase::Created => "created",
            Phase::Propagated => "propagated",
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
    /// When the run started, Unix seconds.
    pub started: u64,
    /// Which process: `host:pid`.
    pub owner: String,
    /// For a lease (IAM tags): after this Unix time another run may take
    /// over. 0 when a local lock guards the record instead.
    pub lease_until: u64,
}

impl JournalRecord {
    /// The current format.
    pub const VERSION: u32 = 1;
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
    #[error("another keyrot run ({owner}) is rotating user '{user}'{until}; nothing was changed")]
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

    /// Removes the record: the run has ended.
    async fn clear(&self, user: &str) -> Result<(), JournalError>;
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
