//! The IAM seam: the four calls a rotation needs, behind one narrow trait.
//!
//! [`crate::aws::AwsIam`] implements it with aws-sdk-iam; tests implement it
//! with a fault-injecting fake for failures a real emulator cannot produce.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::secret::SecretAccessKey;

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
    /// Throttling, a 5xx, a timeout or a dropped connection: worth retrying.
    Transient,
    /// Anything else.
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
        self.kind == IamErrorKind::Transient
    }
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
}
