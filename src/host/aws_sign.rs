//! AWS request signing for plugins (SigV4), part of the outbound-HTTP
//! capability: a request to a host of `--aws-sign` gets the signature of
//! the operator's signing identity (`--aws-sign-role-arn`, a profile) after
//! it passed the allow-list, and nothing else ever does. The plugin sends
//! plain HTTPS and never sees the credentials; the guest's own
//! `Authorization` and `X-Amz-*` signing headers are dropped first, so it
//! cannot choose what is signed in our name beyond the request itself.
//!
//! The identity is resolved once before any key exists (a role that cannot
//! be assumed is bad input), and its credentials are refreshed before they
//! expire during a long fleet run.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::grants::{AwsSigning, SigningIdentity};

/// Session name of the signing role's sessions, in CloudTrail.
const SESSION_NAME: &str = "keyrot-plugin-signing";
/// Credentials this close to expiring are refreshed first.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Headers the guest may not set on a signed request: the signature's own.
const SIGNATURE_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The operator's signing identity, resolved.
pub struct AwsSigner {
    identity: String,
    provider: SharedCredentialsProvider,
    current: Mutex<Credentials>,
    /// The first credentials' secrets, redacted from the plugin's output.
    secrets: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for AwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSigner")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl AwsSigner {
    /// Resolves `identity` with `base` (keyrot's own AWS configuration:
    /// credentials to assume the role with, endpoint, region) and fetches
    /// its credentials once, so a signer that cannot sign fails now.
    pub async fn resolve(
        identity: &SigningIdentity,
        base: &aws_config::SdkConfig,
    ) -> Result<Arc<AwsSigner>, String> {
        identity.check()?;
        let provider = match (&identity.role_arn, &identity.profile) {
            (Some(arn), _) => {
                let mut assume = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name(SESSION_NAME)
                    .configure(base);
                if let Some(id) = &identity.external_id {
                    assume = assume.external_id(id);
                }
                SharedCredentialsProvider::new(assume.build().await)
            }
            (None, Some(profile)) => SharedCredentialsProvider::new(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(profile)
                    .build(),
            ),
            (None, None) => return Err("no signing identity named".into()),
        };
        let described = identity.describe();
        let credentials = provider.provide_credentials().await.map_err(|err| {
            format!(
                "cannot get credentials for the signing identity ({described}): {}",
                crate::text::error_chain(&err)
            )
        })?;
        let secrets = [
            Some(credentials.secret_access_key()),
            credentials.session_token(),
        ]
        .into_iter()
        .flatten()
        .map(|s| Zeroizing::new(s.to_string()))
        .collect();
        Ok(Arc::new(AwsSigner {
            identity: described,
            provider,
            current: Mutex::new(credentials),
            secrets,
        }))
    }

    /// Who signs, in words.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The secrets to redact.
    pub(super) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|s| s.as_str())
    }

    /// Credentials good for a while yet.
    async fn credentials(&self) -> Result<Credentials, String> {
        let mut current = self.current.lock().await;
        let fresh = current
            .expiry()
            .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE);
        if !fresh {
            *current = self.provider.provide_credentials().await.map_err(|err| {
                format!(
                    "cannot refresh the signing identity's credentials ({}): {}",
                    self.identity,
                    crate::text::error_chain(&err)
                )
            })?;
        }
        Ok(current.clone())
    }

    /// Signs `request` (whose body is `body`) for `rule`'s service and
    /// region, replacing any signature headers the guest set.
    pub(super) async fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        body: &[u8],
        rule: &AwsSigning,
    ) -> Result<(), String> {
        for name in SIGNATURE_HEADERS {
            request.headers_mut().remove(name);
        }
        let credentials = self.credentials().await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&rule.region)
            .name(&rule.service)
            // AWS compares with its own clock: the real time, never a
            // test's shifted one.
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str(), value.to_str()?)))
            .collect::<Result<Vec<_>, http::header::ToStrError>>()
            .map_err(|_| "cannot sign a request whose headers are not text".to_string())?;
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("cannot sign: {e}"))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        for name in ["authorization", "x-amz-security-token"] {
            if let Some(value) = request.headers_mut().get_mut(name) {
                value.set_sensitive(true);
            }
        }
        Ok(())
    }
}
