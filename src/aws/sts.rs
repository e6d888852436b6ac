//! Who keyrot acts as (`sts:GetCallerIdentity`), reaching an account with
//! it ([`connect`]), and the STS check that a new key works.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;

use super::error::iam_error;
use super::{AwsIam, AwsOptions};
use crate::fleet::Reached;
use crate::iam::{IamError, NewAccessKey};
use crate::rotation::CallerIdentity;
use crate::verify::{KeyVerifier, VerifyError};

/// An AWS account, reached: the IAM client keyrot works with there, who it
/// acts as, and the SDK config (for STS checks of new keys).
#[derive(Clone, Debug)]
pub struct Account {
    /// IAM in that account, with its own retry budget.
    pub iam: AwsIam,
    /// Who keyrot acts as, and in which account.
    pub caller: CallerIdentity,
    /// The SDK config the options describe.
    pub config: aws_config::SdkConfig,
}

impl Account {
    /// This account for a fleet's target, verifying new keys with STS or
    /// not.
    pub fn reached(&self, verify: bool) -> Reached {
        Reached {
            iam: Arc::new(self.iam.clone()),
            caller: self.caller.clone(),
            verifier: verify
                .then(|| Arc::new(StsVerifier::new(&self.config)) as Arc<dyn KeyVerifier>),
        }
    }
}

/// The account these options lead to could not be told.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "cannot tell which AWS account {whose} belong to (sts:GetCallerIdentity{endpoint}): {cause}"
)]
pub struct ConnectError {
    whose: String,
    endpoint: String,
    /// STS's answer, or why there was none.
    pub cause: IamError,
}

/// Reaches the account `options` lead to: loads the SDK config and asks STS
/// who keyrot is there. The one connection step of every command.
pub async fn connect(options: &AwsOptions) -> Result<Account, ConnectError> {
    let config = options.load().await;
    let caller = caller_identity(&config)
        .await
        .map_err(|cause| ConnectError {
            whose: match (&options.role_arn, &options.profile) {
                (Some(role), _) => format!("the credentials of role {role}"),
                (None, Some(profile)) => format!("the credentials of profile '{profile}'"),
                (None, None) => "these credentials".into(),
            },
            endpoint: super::endpoint_note(options),
            cause,
        })?;
    Ok(Account {
        iam: AwsIam::from_config(&config),
        caller,
        config,
    })
}

/// Who the credentials in `config` belong to (`sts:GetCallerIdentity`,
/// which needs no permission). A few quick attempts: an endpoint that does
/// not answer fails in seconds, not after the rotation's patient retries.
pub async fn caller_identity(config: &aws_config::SdkConfig) -> Result<CallerIdentity, IamError> {
    let quick = aws_sdk_sts::config::Builder::from(config)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(2)),
        )
        .build();
    let out = aws_sdk_sts::Client::from_conf(quick)
        .get_caller_identity()
        .send()
        .await
        .map_err(iam_error)?;
    Ok(CallerIdentity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    })
}

/// Checks a new key with `sts:GetCallerIdentity` signed with it.
#[derive(Clone, Debug)]
pub struct StsVerifier {
    config: aws_config::SdkConfig,
}

impl StsVerifier {
    /// A verifier that reaches STS as `config` says (region, endpoint).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }
}

#[async_trait]
impl KeyVerifier for StsVerifier {
    async fn caller_arn(&self, key: &NewAccessKey) -> Result<String, VerifyError> {
        let credentials = super::credentials_of(key);
        // One attempt per call: the rotation's own loop waits and retries.
        let config = aws_sdk_sts::config::Builder::from(&self.config)
            .credentials_provider(credentials)
            .retry_config(RetryConfig::disabled())
            .build();
        let out = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|err| {
                let rejected = matches!(
                    err.code(),
                    Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "AuthFailure")
                );
                let error = iam_error(err);
                VerifyError {
                    rejected,
                    transient: error.is_transient(),
                    message: error.message,
                }
            })?;
        Ok(out.arn().unwrap_or_default().to_string())
    }
}
