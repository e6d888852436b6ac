//! [`OciError`]: why a registry operation failed, each variant naming the
//! registry, what keyrot was doing and, where it can, what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Why a registry operation failed. Nothing has touched IAM yet.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference cannot be parsed.
    #[error(
        "'{reference}' is not a valid OCI reference ({reason}); expected oci://REGISTRY/REPO:TAG[@sha256:DIGEST]"
    )]
    BadReference {
        /// What was given, any password in it redacted.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry could not be reached or refused the request.
    #[error("registry {registry}: {action} failed: {cause}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What keyrot was doing.
        action: &'static str,
        /// What went wrong (escaped).
        cause: String,
    },
    /// The registry wants credentials keyrot does not have, or refused
    /// the ones it sent.
    #[error("registry {registry}: {action} was refused: {hint}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What keyrot was doing.
        action: &'static str,
        /// Why, and what to do.
        hint: String,
    },
    /// The registry named a token service keyrot will not send its
    /// credentials to.
    #[error(
        "registry {registry} asked keyrot to get a token from {realm}: refusing, since {reason}"
    )]
    TokenRealm {
        /// The registry host.
        registry: String,
        /// The token service's URL (escaped).
        realm: String,
        /// Why, and which flag would allow it.
        reason: String,
    },
    /// `KEYROT_REGISTRY_*` are set inconsistently.
    #[error("{0}")]
    Credentials(String),
    /// An operation ran out of time.
    #[error(
        "registry {registry}: {operation} did not finish within {after}: giving up; if the \
         registry is only slow, raise --registry-timeout (`registry-timeout` in a job file)",
        after = seconds(*after)
    )]
    Deadline {
        /// The registry host.
        registry: String,
        /// Which operation.
        operation: String,
        /// The deadline.
        after: Duration,
    },
    /// The registry does not have what was asked for.
    #[error("no {what} in {repository} on {registry}")]
    NotFound {
        /// `artifact with digest sha256:…`, `tag 1.0`.
        what: String,
        /// The repository.
        repository: String,
        /// The registry host.
        registry: String,
    },
    /// The registry sent more than keyrot reads.
    #[error("{what} from {reference} is larger than {limit}: refusing it")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The reference or registry.
        reference: String,
        /// The cap.
        limit: String,
    },
    /// What the registry returned does not match the pinned digest.
    #[error("{what} from {reference} has digest {actual}, not {expected}: refusing it")]
    DigestMismatch {
        /// Manifest or layer.
        what: &'static str,
        /// The reference.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came back.
        actual: String,
    },
    /// The artifact is not a Wasm component artifact keyrot can run.
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What is wrong with it (escaped).
        reason: String,
    },
    /// A cache file could not be written.
    #[error("plugin cache {}: {cause}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The cache directory is not private.
    #[error(
        "the plugin cache {} is not safe to use: {cause}; keyrot keeps pulled plugins only \
         where nobody else can write (set KEYROT_CACHE_DIR to a directory of yours, mode 0700)",
        path.display()
    )]
    UnsafeCache {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A signing key or signature problem (see [`super::sign`]).
    #[error("{0}")]
    Signature(String),
}

/// `30s`, `2.5s`, `3m`.
fn seconds(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{}s", ms as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(180)), "3m");
        assert_eq!(seconds(Duration::from_secs(2)), "2s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5s");
    }
}
