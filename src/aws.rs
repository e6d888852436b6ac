//! The aws-sdk-iam implementation of the [`Iam`] seam, and the one place AWS
//! options (profile, region, endpoint) become an SDK config.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::iam::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::secret::SecretAccessKey;

/// IAM is global; the SDK still needs a region to sign requests.
const FALLBACK_REGION: &str = "us-east-1";

/// Where and as whom to talk to AWS. Unset fields fall back to the SDK's
/// usual sources (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// A named profile from the shared config files.
    pub profile: Option<String>,
    /// The signing region.
    pub region: Option<String>,
    /// A custom endpoint, e.g. a local IAM emulator.
    pub endpoint_url: Option<String>,
}

impl AwsOptions {
    /// Loads the SDK config these options describe.
    pub async fn load(&self) -> aws_config::SdkConfig {
        // Flag, then environment, then profile; never the instance metadata
        // service, which only slows a laptop down to say "no region".
        let mut profile_region = ProfileFileRegionProvider::builder();
        if let Some(profile) = &self.profile {
            profile_region = profile_region.profile_name(profile);
        }
        let region = RegionProviderChain::first_try(self.region.clone().map(Region::new))
            .or_else(EnvironmentVariableRegionProvider::new())
            .or_else(profile_region.build())
            .or_else(Region::new(FALLBACK_REGION));
        // Bounded so an unreachable endpoint fails instead of hanging; the SDK
        // retries transient errors itself within these limits.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts);
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }
}

/// [`Iam`] backed by aws-sdk-iam.
#[derive(Clone, Debug)]
pub struct AwsIam {
    client: aws_sdk_iam::Client,
}

impl AwsIam {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self { client }
    }

    /// Builds a client from [`AwsOptions`].
    pub async fn from_options(options: &AwsOptions) -> Self {
        Self::new(aws_sdk_iam::Client::new(&options.load().await))
    }
}

#[async_trait]
impl Iam for AwsIam {
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        let keys: Vec<_> = self
            .client
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        Ok(keys
            .into_iter()
            .map(|key| AccessKeyInfo {
                access_key_id: key.access_key_id().unwrap_or_default().to_string(),
                status: key_status(key.status()),
                create_date: key.create_date().and_then(|d| d.fmt(Format::DateTime).ok()),
            })
            .collect())
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        // Not idempotent: a retry after a lost answer would make a second
        // key. Fail instead; the rotation then checks what IAM holds.
        let once = aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled());
        let output = self
            .client
            .create_access_key()
            .user_name(user)
            .customize()
            .config_override(once)
            .send()
            .await
            .map_err(iam_error)?;
        let key = output
            .access_key()
            .ok_or_else(|| IamError::new(IamErrorKind::Other, "CreateAccessKey returned no key"))?;
        Ok(NewAccessKey {
            user_name: key.user_name().to_string(),
            access_key_id: key.access_key_id().to_string(),
            secret_access_key: SecretAccessKey::new(key.secret_access_key()),
            create_date: key
                .create_date()
                .and_then(|d| d.fmt(Format::DateTime).ok())
                .unwrap_or_default(),
        })
    }

    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        self.client
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(StatusType::from(status.as_str()))
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        self.client
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }
}

fn key_status(status: Option<&StatusType>) -> KeyStatus {
    match status {
        Some(StatusType::Active) => KeyStatus::Active,
        Some(StatusType::Inactive) => KeyStatus::Inactive,
        // `Expired` and statuses this SDK does not know yet cannot sign
        // requests as far as keyrot can tell: treat them as not active.
        _ => KeyStatus::Expired,
    }
}

/// Classifies an SDK error by IAM's error code, so the rotation can tell the
/// key limit and a missing entity from everything else.
fn iam_error<E, R>(err: SdkError<E, R>) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => IamErrorKind::Transient,
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            IamErrorKind::Transient
        }
        SdkError::ServiceError(_) => match err.code() {
            Some("NoSuchEntity") => IamErrorKind::NoSuchEntity,
            Some("LimitExceeded") => IamErrorKind::LimitExceeded,
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "UnrecognizedClientException",
            ) => IamErrorKind::AccessDenied,
            Some("Throttling" | "ThrottlingException" | "ServiceFailure" | "RequestExpired") => {
                IamErrorKind::Transient
            }
            _ => IamErrorKind::Other,
        },
        _ => IamErrorKind::Other,
    };
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => error_chain(&err),
    };
    if kind == IamErrorKind::Other && message.contains("loading credentials") {
        return IamError::new(
            IamErrorKind::AccessDenied,
            format!(
                "no usable AWS credentials (use --profile or AWS_PROFILE, or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): {message}"
            ),
        );
    }
    IamError::new(kind, message)
}

/// Each distinct message in an error's source chain, joined: readable where
/// the SDK's own `Display` is just "dispatch failure".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
