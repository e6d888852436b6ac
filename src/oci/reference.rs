//! [`OciRef`]: `oci://REGISTRY/REPO[:TAG][@sha256:DIGEST]`, parsed so that
//! credentials in it are refused and never echoed ([`redact`]) and its
//! digest is checked before it names anything.

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

use super::{Digest, OciError, auth, shown};

/// The scheme that marks a plugin reference as an OCI one.
pub const SCHEME: &str = "oci://";

/// `oci://REGISTRY/REPO[:TAG][@sha256:DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRef {
    /// Registry host, with its port if any.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The manifest digest, if pinned.
    pub digest: Option<Digest>,
}

impl OciRef {
    /// Whether a plugin argument names an OCI artifact rather than a file.
    pub fn is_oci(plugin: &str) -> bool {
        plugin.starts_with(SCHEME)
    }

    /// This reference pinned to `digest`.
    pub fn with_digest(&self, digest: &Digest) -> OciRef {
        OciRef {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The tag, `latest` if none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The registry host without its port.
    fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map_or(r, |(host, _)| host)
    }

    /// Loopback registries may speak plain HTTP: `localhost` or a loopback
    /// address written out (`127.0.0.1`, not `127.1`).
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `s` with any `USER:PASSWORD@` before the registry host replaced, so a
/// reference is never echoed with a password in it.
pub fn redact(s: &str) -> String {
    let (scheme, rest) = match s.strip_prefix(SCHEME) {
        Some(rest) => (SCHEME, rest),
        None => ("", s),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
        None => s.to_string(),
    }
}

impl FromStr for OciRef {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            reference: shown(&redact(s)).into_owned(),
            reason: reason.to_string(),
        };
        let rest = s.strip_prefix(SCHEME).unwrap_or(s);
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(&format!(
                "it carries credentials before the host: keyrot never takes them from a \
                 reference; set {} and {} with {}, or use `docker login`",
                auth::USER_VAR,
                auth::PASSWORD_VAR,
                auth::HOST_VAR
            )));
        }
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no registry host"))?;
        if !registry.contains(['.', ':']) && registry != "localhost" {
            return Err(bad("the first part must be a registry host, e.g. ghcr.io"));
        }
        if path.is_empty() {
            return Err(bad("no repository"));
        }
        let parsed: Reference = rest.parse().map_err(|e| bad(&shown(&format!("{e}"))))?;
        let digest = match parsed.digest() {
            Some(d) => Some(
                d.parse::<Digest>()
                    .map_err(|why| bad(&format!("bad digest: {why}")))?,
            ),
            None => None,
        };
        let tag_given = path
            .split('@')
            .next()
            .is_some_and(|p| p.rsplit('/').next().is_some_and(|last| last.contains(':')));
        Ok(OciRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: tag_given.then(|| parsed.tag().unwrap_or_default().to_string()),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r: OciRef = format!("oci://127.0.0.1:5000/team/hello:1.0@{d}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/hello");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_ref().map(ToString::to_string), Some(d.clone()));
        assert!(r.is_loopback());
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/team/hello:1.0@{d}")
        );

        let r: OciRef = "oci://ghcr.io/octo/github".parse().unwrap();
        assert_eq!((r.tag, r.digest), (None, None));
        let r: OciRef = format!("oci://ghcr.io/octo/github@{d}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert!(!r.is_loopback());

        // oci-client parses no IPv6 literals, so [::1] cannot be named.
        for host in ["localhost:5000", "127.0.0.2"] {
            let r: OciRef = format!("oci://{host}/a/b:1").parse().unwrap();
            assert!(r.is_loopback(), "{host}");
        }
        let r: OciRef = "oci://registry.example:5000/a/b:1".parse().unwrap();
        assert!(!r.is_loopback());
        assert!("oci://hello:1.0".parse::<OciRef>().is_err());
        assert!("oci://ghcr.io/x@sha256:abc".parse::<OciRef>().is_err());
        let upper = format!("oci://ghcr.io/x@sha256:{}", "A".repeat(64));
        assert!(upper.parse::<OciRef>().is_err());
        let sha512 = format!("oci://ghcr.io/x@sha512:{}", "b".repeat(128));
        let r: OciRef = sha512.parse().unwrap();
        assert_eq!(r.to_string(), sha512);
    }

    #[test]
    fn a_password_in_a_reference_is_refused_and_never_echoed() {
        for given in [
            "oci://bob:hunter2@ghcr.io/octo/app:1",
            "oci://bob:hunter2@ghcr.io",
            "bob:hunter2@127.0.0.1:5000/a/b",
        ] {
            let err = given.parse::<OciRef>().unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("<redacted>@"), "{err}");
            assert!(err.contains("credentials"), "{err}");
        }
    }
}
