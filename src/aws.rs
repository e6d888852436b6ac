//! Everything that talks to AWS: the one place AWS options (profile,
//! region, endpoint, retries) become an SDK config, the aws-sdk-iam
//! implementation of the [`Iam`] seam, who the caller is
//! (`sts:GetCallerIdentity`), and the STS check that a new key works.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::os_shim_internal::{Env, Fs};
use serde::Deserialize;

use crate::iam::{
    AccessKeyInfo, Iam, IamError, IamErrorKind, KeyLastUsed, KeyStatus, NewAccessKey,
};
use crate::rotation::CallerIdentity;
use crate::secret::SecretAccessKey;
use crate::verify::{KeyVerifier, VerifyError};

/// IAM is global; the SDK still needs a region to sign requests.
const FALLBACK_REGION: &str = "us-east-1";

/// Where and as whom to talk to AWS: one struct for the flags (`clap`) and
/// the job file's `[aws]` table (`serde`). Unset fields fall back to the
/// SDK's usual sources (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AwsOptions {
    /// The AWS profile to use [default: AWS_PROFILE, then the usual chain]
    ///
    /// It takes precedence over AWS_ACCESS_KEY_ID and friends in the
    /// environment, as with the aws CLI; a profile that does not exist is
    /// exit 2.
    #[arg(long, value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,

    /// The signing region [default: AWS_REGION, the profile's, then us-east-1]
    #[arg(
        long,
        value_name = "REGION",
        hide_short_help = true,
        help_heading = "AWS"
    )]
    pub region: Option<String>,

    /// A custom endpoint for IAM and STS, e.g. a local emulator
    ///
    /// Used for every AWS service keyrot calls. [default: AWS_ENDPOINT_URL;
    /// AWS_ENDPOINT_URL_IAM and AWS_ENDPOINT_URL_STS also work]
    #[arg(long, value_name = "URL", help_heading = "AWS")]
    pub endpoint_url: Option<String>,

    /// Attempts per AWS call on throttling and transient errors [default: 10]
    ///
    /// Retried with jittered exponential backoff.
    #[arg(long, value_name = "N", hide_short_help = true, help_heading = "AWS")]
    pub max_attempts: Option<u32>,

    /// Assume this IAM role (in another account, say) through STS and act as it
    ///
    /// The session is refreshed as it nears expiry.
    #[arg(long, value_name = "ARN", hide_short_help = true, help_heading = "AWS")]
    pub role_arn: Option<String>,

    /// The external id the role's trust policy requires (with --role-arn)
    #[arg(
        long,
        value_name = "ID",
        requires = "role_arn",
        hide_short_help = true,
        help_heading = "AWS"
    )]
    pub external_id: Option<String>,

    /// The session name CloudTrail records for the role [default: keyrot]
    #[arg(
        long,
        value_name = "NAME",
        requires = "role_arn",
        hide_short_help = true,
        help_heading = "AWS"
    )]
    pub role_session_name: Option<String>,
}

impl AwsOptions {
    /// Default attempts per call.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    /// These options, with unset fields taken from `defaults` (flags over a
    /// job file).
    pub fn or(self, defaults: AwsOptions) -> AwsOptions {
        AwsOptions {
            profile: self.profile.or(defaults.profile),
            region: self.region.or(defaults.region),
            endpoint_url: self.endpoint_url.or(defaults.endpoint_url),
            max_attempts: self.max_attempts.or(defaults.max_attempts),
            role_arn: self.role_arn.or(defaults.role_arn),
            external_id: self.external_id.or(defaults.external_id),
            role_session_name: self.role_session_name.or(defaults.role_session_name),
        }
    }

    /// Checks what can be checked without a network call: a named profile
    /// must exist, so a typo cannot fall back to other credentials.
    pub async fn check(&self) -> Result<(), String> {
        if self.max_attempts == Some(0) {
            return Err("--max-attempts must be at least 1".into());
        }
        if let Some(arn) = &self.role_arn
            && !is_role_arn(arn)
        {
            return Err(format!(
                "role ARN '{arn}' (--role-arn, role-arn) is not an IAM role ARN \
                 (arn:aws:iam::ACCOUNT:role/NAME)"
            ));
        }
        if self.role_arn.is_none()
            && (self.external_id.is_some() || self.role_session_name.is_some())
        {
            return Err("external-id and role-session-name need a role-arn".into());
        }
        if let Some(name) = &self.role_session_name
            && !is_session_name(name)
        {
            return Err(format!(
                "role session name '{name}' must be 2-64 letters, digits and =,.@- characters"
            ));
        }
        let Some(profile) = &self.profile else {
            return Ok(());
        };
        let profiles =
            aws_config::profile::load(&Fs::real(), &Env::real(), &EnvConfigFiles::default(), None)
                .await
                .map_err(|e| format!("cannot read the AWS config files: {e}"))?;
        if profiles.get_profile(profile).is_none() {
            return Err(format!(
                "profile '{profile}' not found in {} or {}",
                config_file("AWS_CONFIG_FILE", ".aws/config"),
                config_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            ));
        }
        Ok(())
    }

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
        // Bounded so an unreachable endpoint fails instead of hanging.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(120))
            .build();
        // Throttling and transient errors are retried with jittered
        // exponential backoff, enough times that a burst never fails a run.
        let retry = RetryConfig::standard()
            .with_max_attempts(self.max_attempts.unwrap_or(Self::DEFAULT_MAX_ATTEMPTS))
            .with_initial_backoff(Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(10));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts)
            .retry_config(retry);
        if let Some(profile) = &self.profile {
            // An explicit profile selects that profile's credential chain
            // (keys, credential_process, SSO, role), not the environment's
            // keys, as the aws CLI does.
            let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .build();
            loader = loader
                .profile_name(profile)
                .credentials_provider(credentials);
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let base = loader.load().await;
        let Some(role) = &self.role_arn else {
            return base;
        };
        // The SDK's own provider: it assumes the role with the base
        // credentials and refreshes the session before it expires, so a
        // long fleet run never signs with stale credentials.
        let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(
                self.role_session_name
                    .as_deref()
                    .unwrap_or(DEFAULT_SESSION_NAME),
            )
            .configure(&base);
        if let Some(id) = &self.external_id {
            assume = assume.external_id(id);
        }
        let provider = assume.build().await;
        base.into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build()
    }
}

/// Retry tokens per IAM client (a retry costs 5) and how many come back a
/// second: 400 retries in a burst, then one every half second or so.
const RETRY_BUDGET: usize = 2000;
const RETRY_REFILL_PER_SECOND: f32 = 10.0;

/// The session name an assumed role gets unless `--role-session-name` says.
const DEFAULT_SESSION_NAME: &str = "keyrot";

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if !partition.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

/// STS role session names: 2-64 of `[\w+=,.@-]`.
fn is_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

fn config_file(var: &str, default: &str) -> String {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(default)))
        .map_or_else(|| format!("~/{default}"), |p| p.display().to_string())
}

/// Who the credentials in `config` belong to (`sts:GetCallerIdentity`,
/// which needs no permission).
pub async fn caller_identity(config: &aws_config::SdkConfig) -> Result<CallerIdentity, IamError> {
    let out = aws_sdk_sts::Client::new(config)
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
        let credentials = Credentials::new(
            &key.access_key_id,
            key.secret_access_key.expose(),
            None,
            None,
            "keyrot-new-key",
        );
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

    /// Builds a client from an SDK config, with its own retry budget.
    ///
    /// The SDK gates retries with a token bucket shared, by default, by
    /// every IAM client in the process: a fleet run's throttling across
    /// accounts would drain it and turn later throttles into failures. Each
    /// client (one per account or target) gets its own, larger bucket that
    /// refills over time, so a burst is waited out and a storm still ends.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        use aws_sdk_iam::config::retry::{RetryPartition, TokenBucket};
        let budget = TokenBucket::builder()
            .capacity(RETRY_BUDGET)
            .refill_rate(RETRY_REFILL_PER_SECOND)
            .build();
        let conf = aws_sdk_iam::config::Builder::from(config)
            .retry_partition(
                RetryPartition::custom("keyrot-iam")
                    .token_bucket(budget)
                    .build(),
            )
            .build();
        Self::new(aws_sdk_iam::Client::from_conf(conf))
    }

    /// Every IAM user whose path starts with `path_prefix` (`/` for all),
    /// across all pages of `ListUsers`, sorted by name.
    pub async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        let users: Vec<_> = self
            .client
            .list_users()
            .path_prefix(path_prefix)
            .max_items(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        let mut names: Vec<String> = users.iter().map(|u| u.user_name().to_string()).collect();
        names.sort();
        Ok(names)
    }

    /// Builds a client from [`AwsOptions`].
    pub async fn from_options(options: &AwsOptions) -> Self {
        Self::from_config(&options.load().await)
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
        // key. Fail instead; the rotation retries only what IAM definitely
        // refused (throttling) and looks at what IAM holds otherwise.
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
        let key = output.access_key().ok_or_else(|| {
            IamError::new(IamErrorKind::NoAnswer, "CreateAccessKey returned no key")
        })?;
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

    async fn access_key_last_used(&self, key_id: &str) -> Result<KeyLastUsed, IamError> {
        let out = self
            .client
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(iam_error)?;
        let used = out.access_key_last_used();
        let known = |s: Option<&str>| s.filter(|s| *s != "N/A").map(str::to_string);
        Ok(KeyLastUsed {
            date: used
                .and_then(|u| u.last_used_date())
                .and_then(|d| d.fmt(Format::DateTime).ok()),
            service: known(used.map(|u| u.service_name())),
            region: known(used.map(|u| u.region())),
        })
    }

    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, IamError> {
        let tags: Vec<_> = self
            .client
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(iam_error)?;
        Ok(tags
            .into_iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), IamError> {
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| IamError::new(IamErrorKind::Other, e.to_string()))?;
        self.client
            .tag_user()
            .user_name(user)
            .tags(tag)
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    async fn untag_user(&self, user: &str, key: &str) -> Result<(), IamError> {
        self.client
            .untag_user()
            .user_name(user)
            .tag_keys(key)
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

/// Classifies an SDK error. Only a definite error answer from AWS, or a
/// request that was never sent, counts as "did not happen": a timeout, a
/// dropped connection, an unreadable answer or a 5xx may hide a call that
/// was applied.
fn iam_error<E, R>(err: SdkError<E, R>) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let kind = match &err {
        SdkError::ConstructionFailure(_) => IamErrorKind::Other,
        SdkError::ServiceError(service) => match err.code() {
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
            Some(
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled",
            ) => IamErrorKind::Throttled,
            Some(
                "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" | "RequestExpired",
            ) => IamErrorKind::NoAnswer,
            _ => match http_status(service.raw()) {
                Some(429) => IamErrorKind::Throttled,
                Some(500..=599) => IamErrorKind::NoAnswer,
                _ => IamErrorKind::Other,
            },
        },
        // Timeouts, dispatch failures (a reset, a closed connection),
        // answers that could not be read, and anything new.
        _ => IamErrorKind::NoAnswer,
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

/// The HTTP status of a raw response, where the SDK's type has one.
fn http_status<R: std::fmt::Debug + 'static>(raw: &R) -> Option<u16> {
    let any = raw as &dyn std::any::Any;
    any.downcast_ref::<aws_smithy_runtime_api::http::Response>()
        .map(|r| r.status().as_u16())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_and_session_names_are_checked() {
        assert!(is_role_arn("arn:aws:iam::210987654321:role/keyrot"));
        assert!(is_role_arn("arn:aws-cn:iam::210987654321:role/ci/keyrot"));
        assert!(!is_role_arn("arn:aws:iam::210987654321:user/keyrot"));
        assert!(!is_role_arn("arn:aws:iam::2109:role/keyrot"));
        assert!(!is_role_arn("arn:aws:iam::210987654321:role/"));
        assert!(!is_role_arn("keyrot"));
        assert!(is_session_name("keyrot-nightly@ci"));
        assert!(!is_session_name("k"));
        assert!(!is_session_name("has space"));
    }

    #[tokio::test]
    async fn role_options_need_a_role() {
        let options = AwsOptions {
            external_id: Some("x".into()),
            ..AwsOptions::default()
        };
        assert!(options.check().await.unwrap_err().contains("role-arn"));
        let options = AwsOptions {
            role_arn: Some("arn:aws:iam::1:role/x".into()),
            ..AwsOptions::default()
        };
        assert!(
            options
                .check()
                .await
                .unwrap_err()
                .contains("not an IAM role ARN")
        );
    }
}
