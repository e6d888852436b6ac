//! The IAM seam: the calls a rotation needs, behind one narrow trait.
//!
//! Four calls rotate a key (list, create, update, delete); the others are
//! optional extras with defaults (the users of a fleet's `--all-users`,
//! last use for `keyrot status`, user tags for the IAM-kept journal and
//! exemptions, group members for exemptions). [`crate::aws::AwsIam`]
//! implements it with aws-sdk-iam; tests implement it with a
//! fault-injecting fake for failures a real emulator cannot produce, and
//! [`MemoryIam`] keeps keys in memory for `keyrot plugin test`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::secret::SecretAccessKey;

mod memory;
pub use self::memory::MemoryIam;

/// The status of an access key, as IAM reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    /// The key can sign requests.
    Active,
    /// The key exists but cannot sign requests.
    Inactive,
    /// The key has expired (IAM reports this for some key types).
    Expired,
}

impl KeyStatus {
    /// IAM's spelling of the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
            KeyStatus::Expired => "Expired",
        }
    }
}

/// An existing access key, without its secret (IAM never returns it again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessKeyInfo {
    /// The access key id.
    pub access_key_id: String,
    /// Whether the key is active.
    pub status: KeyStatus,
    /// When the key was created, RFC 3339, if IAM said.
    pub create_date: Option<String>,
}

/// A key IAM has just created: the only time its secret is known.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    /// The user that owns the key.
    pub user_name: String,
    /// The new access key id.
    pub access_key_id: String,
    /// The new secret access key.
    pub secret_access_key: SecretAccessKey,
    /// When IAM created the key, RFC 3339.
    pub create_date: String,
}

/// What kind of IAM failure happened: the rotation reacts differently to each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IamErrorKind {
    /// The user or key does not exist (`NoSuchEntity`).
    NoSuchEntity,
    /// The user already has the maximum number of keys (`LimitExceeded`).
    LimitExceeded,
    /// The caller is not allowed to make the call.
    AccessDenied,
    /// IAM answered that it is throttling the caller: the call was not
    /// applied, and retrying later will work.
    Throttled,
    /// No definite answer: a timeout, a dropped connection, an answer that
    /// could not be read, or a 5xx. Worth retrying, and a call that is not
    /// idempotent may have been applied all the same.
    NoAnswer,
    /// Anything else: a definite error answer, or a request never sent.
    Other,
}

/// An IAM call failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct IamError {
    /// The kind of failure.
    pub kind: IamErrorKind,
    /// IAM's error code and message, e.g. `LimitExceeded: Cannot exceed quota ...`.
    pub message: String,
}

impl IamError {
    /// Builds an error of the given kind.
    pub fn new(kind: IamErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, IamErrorKind::Throttled | IamErrorKind::NoAnswer)
    }

    /// Whether the call may have been applied although it failed: anything
    /// but a definite error answer from IAM. A call that is not idempotent
    /// (`CreateAccessKey`) must then look at what IAM holds.
    pub fn may_have_happened(&self) -> bool {
        self.kind == IamErrorKind::NoAnswer
    }
}

impl crate::retry::Retryable for IamError {
    fn is_transient(&self) -> bool {
        IamError::is_transient(self)
    }
}

/// When and where an access key was last used, as IAM reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyLastUsed {
    /// RFC 3339; `None` if the key was never used.
    pub date: Option<String>,
    /// The AWS service, e.g. `s3`.
    pub service: Option<String>,
    /// The region, e.g. `eu-west-1`.
    pub region: Option<String>,
}

fn unsupported(call: &str) -> IamError {
    IamError::new(
        IamErrorKind::Other,
        format!("{call} is not supported by this IAM implementation"),
    )
}

/// The IAM calls a rotation makes.
#[async_trait]
pub trait Iam: Send + Sync {
    /// Every access key of `user`, following pagination.
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError>;

    /// Creates a new active access key for `user`.
    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError>;

    /// Sets a key's status (used to deactivate a key that cannot be deleted).
    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError>;

    /// Deletes a key.
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError>;

    /// Every IAM user whose path starts with `path_prefix` (`/` for all),
    /// across all pages, sorted by name (a fleet's `--all-users`).
    async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        let _ = path_prefix;
        Err(unsupported("ListUsers"))
    }

    /// When a key was last used (`keyrot status`).
    async fn access_key_last_used(&self, key_id: &str) -> Result<KeyLastUsed, IamError> {
        let _ = key_id;
        Err(unsupported("GetAccessKeyLastUsed"))
    }

    /// The names of the users in IAM group `group`, across all pages
    /// (exemptions by group); `NoSuchEntity` if there is no such group.
    async fn group_members(&self, group: &str) -> Result<Vec<String>, IamError> {
        let _ = group;
        Err(unsupported("GetGroup"))
    }

    /// From now on, signs every call with `key`: a user rotating its own
    /// key, whose old key is about to be retired, goes on with the new one.
    /// `false` if this implementation cannot.
    async fn sign_with(&self, key: &NewAccessKey) -> bool {
        let _ = key;
        false
    }

    /// The user's tags (the IAM-kept journal).
    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, IamError> {
        let _ = user;
        Err(unsupported("ListUserTags"))
    }

    /// Sets one tag on the user, replacing its value.
    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), IamError> {
        let _ = (user, key, value);
        Err(unsupported("TagUser"))
    }

    /// Removes one tag from the user.
    async fn untag_user(&self, user: &str, key: &str) -> Result<(), IamError> {
        let _ = (user, key);
        Err(unsupported("UntagUser"))
    }
}

#[async_trait]
impl<T: Iam + ?Sized> Iam for Arc<T> {
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        (**self).list_access_keys(user).await
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        (**self).create_access_key(user).await
    }

    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        (**self)
            .update_access_key_status(user, key_id, status)
            .await
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        (**self).delete_access_key(user, key_id).await
    }

    async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        (**self).list_users(path_prefix).await
    }

    async fn access_key_last_used(&self, key_id: &str) -> Result<KeyLastUsed, IamError> {
        (**self).access_key_last_used(key_id).await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>, IamError> {
        (**self).group_members(group).await
    }

    async fn sign_with(&self, key: &NewAccessKey) -> bool {
        (**self).sign_with(key).await
    }

    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, IamError> {
        (**self).list_user_tags(user).await
    }

    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), IamError> {
        (**self).tag_user(user, key, value).await
    }

    async fn untag_user(&self, user: &str, key: &str) -> Result<(), IamError> {
        (**self).untag_user(user, key).await
    }
}

/// An access key id as IAM makes them: 16 to 128 upper-case letters and
/// digits.
pub fn is_key_id(id: &str) -> bool {
    (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}
