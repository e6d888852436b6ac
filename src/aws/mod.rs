//! Everything that talks to AWS: the one place AWS options (profile,
//! region, endpoint, retries) become an SDK config ([`AwsOptions::load`]),
//! the one way to reach an account with them ([`connect`]: who keyrot acts
//! as), the aws-sdk-iam implementation of the [`crate::Iam`] seam
//! ([`AwsIam`]), and the STS check that a new key works ([`StsVerifier`]).
//!
//! - `iam`: [`AwsIam`].
//! - `sts`: [`connect`], [`caller_identity`], [`StsVerifier`].
//! - `org`: [`AwsOrganizations`] and [`RoleReach`], for whole
//!   organizations.
//! - `error`: what an SDK error means (did the call happen?).

mod error;
mod iam;
mod org;
mod sts;

use std::path::PathBuf;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::os_shim_internal::{Env, Fs};
use serde::Deserialize;

pub use self::iam::AwsIam;
pub use self::org::{AwsOrganizations, RoleReach};
pub use self::sts::{Account, ConnectError, StsVerifier, caller_identity, connect};

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

    /// The external id the role's trust policy requires (with --role-arn or --org-role-name)
    #[arg(long, value_name = "ID", hide_short_help = true, help_heading = "AWS")]
    pub external_id: Option<String>,

    /// The session name CloudTrail records for the role [default: keyrot]
    #[arg(
        long,
        value_name = "NAME",
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
            return Err(
                "--external-id and --role-session-name (external-id, role-session-name) need \
                 --role-arn, or --org-role-name in an organization run"
                    .into(),
            );
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

/// A new key as SDK credentials, to sign with it.
fn credentials_of(key: &crate::iam::NewAccessKey) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        &key.access_key_id,
        key.secret_access_key.expose(),
        None,
        None,
        "keyrot-new-key",
    )
}

/// How the endpoint these options name is reached, for messages: `at URL`
/// when one is set.
fn endpoint_note(options: &AwsOptions) -> String {
    options
        .endpoint_url
        .as_deref()
        .map(|url| format!(" at {url}"))
        .unwrap_or_default()
}

/// The session name an assumed role gets unless `--role-session-name` says.
pub(crate) const DEFAULT_SESSION_NAME: &str = "keyrot";

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
pub fn is_role_arn(arn: &str) -> bool {
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
