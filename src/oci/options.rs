//! [`RegistryOptions`]: how keyrot reaches registries (which hosts may be
//! reached over plain HTTP, which token services may receive credentials)
//! and the deadline every registry operation runs [`within`].

use std::time::Duration;

use super::{OciError, OciRef, auth};

/// How long one registry operation (resolve, pull, push, fetch or push
/// signatures) may take unless `--registry-timeout` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Hosts (`HOST[:PORT]`, as in the reference) that may be reached over
    /// plain HTTP, credentials included; loopback registries always may.
    pub insecure: Vec<String>,
    /// Token services (`HOST[:PORT]`) on another host than their registry
    /// that may receive the registry's credentials (`--registry-token-host`).
    pub token_hosts: Vec<String>,
    /// The deadline of each registry operation.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            token_hosts: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RegistryOptions {
    /// Whether `reference`'s registry is reached over plain HTTP.
    pub(super) fn plain_http(&self, reference: &OciRef) -> bool {
        reference.is_loopback()
            || self
                .insecure
                .iter()
                .any(|h| auth::same_registry(h, &reference.registry))
    }
}

/// Runs one registry operation within the deadline, naming it if it runs
/// out of time. Whatever it was writing is dropped (a temp file removed).
pub(crate) async fn within<T>(
    options: &RegistryOptions,
    reference: &OciRef,
    operation: String,
    work: impl Future<Output = Result<T, OciError>>,
) -> Result<T, OciError> {
    tokio::time::timeout(options.timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(OciError::Deadline {
                registry: reference.registry.clone(),
                operation,
                after: options.timeout,
            })
        })
}
