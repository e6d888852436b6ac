//! Proving a new key works before anyone gets it.
//!
//! IAM is eventually consistent: for a few seconds after `CreateAccessKey`
//! a new key can be rejected. A [`KeyVerifier`] makes one call signed with
//! the new key (`sts:GetCallerIdentity`, which needs no permission) and says
//! as whom it was accepted; the rotation retries rejections with backoff
//! until `--verify-timeout`, and checks the identity is the user's own.

use async_trait::async_trait;

use crate::iam::NewAccessKey;
use crate::retry::Retryable;

/// Makes a call signed with a new key.
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    /// The ARN the key signs as, if AWS accepts it.
    async fn caller_arn(&self, key: &NewAccessKey) -> Result<String, VerifyError>;
}

/// The verifying call failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct VerifyError {
    /// AWS rejected the key (`InvalidClientTokenId`, `SignatureDoesNotMatch`):
    /// normal for a few seconds after the create.
    pub rejected: bool,
    /// Throttling, a timeout or a dropped connection.
    pub transient: bool,
    /// What AWS said.
    pub message: String,
}

impl Retryable for VerifyError {
    fn is_transient(&self) -> bool {
        self.rejected || self.transient
    }
}

/// Whether `arn` names IAM user `user` (at any path), in `account` when it
/// is known.
pub fn arn_is_user(arn: &str, account: Option<&str>, user: &str) -> bool {
    // arn:PARTITION:iam::ACCOUNT:user/PATH/NAME
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, _partition, service, _region, arn_account, resource] = parts.as_slice() else {
        return false;
    };
    *prefix == "arn"
        && *service == "iam"
        && account.is_none_or(|a| a == *arn_account)
        && resource.starts_with("user/")
        && resource.rsplit('/').next() == Some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_user_at_any_path_in_the_account() {
        let arn = "arn:aws:iam::123456789012:user/ci/ci-bot";
        assert!(arn_is_user(arn, Some("123456789012"), "ci-bot"));
        assert!(arn_is_user(arn, None, "ci-bot"));
        assert!(arn_is_user("arn:aws:iam::123456789012:user/ci-bot", None, "ci-bot"));
        assert!(!arn_is_user(arn, Some("210987654321"), "ci-bot"));
        assert!(!arn_is_user(arn, None, "bot"));
        assert!(!arn_is_user("arn:aws:sts::123456789012:assumed-role/r/ci-bot", None, "ci-bot"));
        assert!(!arn_is_user("garbage", None, "ci-bot"));
    }
}
