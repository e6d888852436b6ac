//! A private certificate authority for one host: `--allow-host-ca
//! HOST=FILE` makes the PEM CA certificates in FILE the roots the host
//! trusts for the plugin's HTTPS to HOST — and the only ones: for that host
//! the public web roots no longer count, as kubectl trusts nothing but a
//! kubeconfig's `certificate-authority` for its cluster. A bundle that
//! added to the public roots would let any public CA vouch for a host the
//! operator pinned to their own; other hosts keep the public roots.
//!
//! The file is read and checked when the grant is parsed, before any IAM
//! call: a missing or unreadable file, one without certificates, bad PEM,
//! a certificate that cannot be a trust anchor, or a private key in it is
//! bad input. The certificates are not secret, but messages name the file,
//! never its contents.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, ServerName};

use super::{AllowList, HostRule, Scheme, expand_home};

/// Largest CA bundle read (Mozilla's whole bundle is a quarter of this).
pub const MAX_CA_BUNDLE_BYTES: u64 = 1024 * 1024;

/// The roots one host is checked against.
#[derive(Clone)]
pub struct HostCa {
    /// The host it applies to (and only it).
    pub host: HostRule,
    /// The host as the operator wrote it (see [`HostRule::bind`]).
    pub written: String,
    /// The bundle's file.
    pub file: PathBuf,
    /// How many CA certificates it holds.
    pub certificates: usize,
    /// Those certificates, as trust anchors.
    pub roots: Arc<RootCertStore>,
}

impl fmt::Debug for HostCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCa")
            .field("host", &self.host)
            .field("file", &self.file)
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl HostCa {
    /// Parses `HOST=FILE` and reads FILE's CA certificates.
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_as(spec, "--allow-host-ca")
    }

    /// [`HostCa::parse`], naming the value `what` in errors (a flag, or a
    /// job file's key).
    pub fn parse_as(spec: &str, what: &str) -> Result<Self, String> {
        let (written, file) = spec.split_once('=').ok_or_else(|| {
            format!(
                "bad {what} '{spec}': no '=' (expected HOST=FILE, e.g. \
                 k8s.example.com:6443=cluster-ca.pem)"
            )
        })?;
        let (written, file) = (written.trim(), file.trim());
        let host: HostRule = written.parse()?;
        if host.host.parse::<std::net::IpAddr>().is_err()
            && ServerName::try_from(host.host.as_str()).is_err()
        {
            return Err(format!(
                "bad {what} for '{written}': '{}' is not a name a TLS certificate can be \
                 checked against",
                host.host
            ));
        }
        if file.is_empty() {
            return Err(format!("bad {what} for '{written}': no FILE after '='"));
        }
        let file = expand_home(file);
        let (certificates, roots) =
            read_bundle(&file).map_err(|why| format!("{what} for '{written}': {why}"))?;
        Ok(HostCa {
            host,
            written: written.to_string(),
            file,
            certificates,
            roots: Arc::new(roots),
        })
    }

    /// Ties the bundle to the allowed host it means (see
    /// [`HostRule::bind`]); that host must be HTTPS.
    pub fn bind(&mut self, allowed: &AllowList) -> Result<(), String> {
        self.host = self.host.bind(
            &self.written,
            allowed,
            "a CA bundle applies only to requests to allowed hosts",
        )?;
        if self.host.scheme != Scheme::Https {
            let https = HostRule {
                scheme: Scheme::Https,
                ..self.host.clone()
            };
            return Err(format!(
                "'{}' is allowed as plain HTTP ({}): a CA bundle is for HTTPS; allow it with \
                 --allow-host {https} instead",
                self.written, self.host
            ));
        }
        Ok(())
    }

    /// In words, for the plugin's log: `2 CA certificates from /etc/ca.pem`.
    pub fn describe(&self) -> String {
        let plural = if self.certificates == 1 { "" } else { "s" };
        format!(
            "{} CA certificate{plural} from {}",
            self.certificates,
            self.file.display()
        )
    }
}

/// The CA certificates of a PEM file, as trust anchors.
fn read_bundle(file: &std::path::Path) -> Result<(usize, RootCertStore), String> {
    let shown = file.display();
    let bytes = crate::input::read_regular(file, Some(MAX_CA_BUNDLE_BYTES))
        .map_err(|e| format!("cannot read CA bundle {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let mut count = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = section
            .map_err(|e| format!("CA bundle {shown} is not valid PEM: {}", pem_problem(&e)))?;
        match kind {
            SectionKind::Certificate => {
                count += 1;
                roots.add(CertificateDer::from(der)).map_err(|_| {
                    format!(
                        "certificate {count} in CA bundle {shown} is not a valid X.509 certificate"
                    )
                })?;
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(format!(
                    "CA bundle {shown} holds a private key: give a file with the CA's \
                     certificates only"
                ));
            }
            // CRLs, public keys, requests: nothing to trust.
            _ => {}
        }
    }
    if count == 0 {
        return Err(format!(
            "no PEM certificates in CA bundle {shown} (expected -----BEGIN CERTIFICATE----- \
             blocks; a kubeconfig's certificate-authority-data is their base64: decode it \
             first)"
        ));
    }
    Ok((count, roots))
}

/// What is wrong with the PEM, without quoting it.
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a BEGIN line has no END line",
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line",
        pem::Error::Base64Decode(_) => "a block is not valid base64",
        pem::Error::SectionTooLarge => "a block is too large",
        _ => "cannot parse it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse_err(spec: &str) -> String {
        HostCa::parse(spec).unwrap_err()
    }

    #[test]
    fn bad_files_are_refused_naming_the_flag_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = parse_err(&format!("k8s.example.com={}", missing.display()));
        assert!(
            err.starts_with("--allow-host-ca for 'k8s.example.com': cannot read CA bundle")
                && err.contains("missing.pem"),
            "{err}"
        );
        let empty = write(&dir, "empty.pem", "");
        let err = parse_err(&format!("k8s.example.com={}", empty.display()));
        assert!(err.contains("no PEM certificates in CA bundle"), "{err}");
        let text = write(
            &dir,
            "base64.txt",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJm\n",
        );
        let err = parse_err(&format!("k8s.example.com={}", text.display()));
        assert!(err.contains("decode it first"), "{err}");
        let torn = write(&dir, "torn.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let err = parse_err(&format!("k8s.example.com={}", torn.display()));
        assert!(
            err.contains("is not valid PEM: a BEGIN line has no END line"),
            "{err}"
        );
        let garbage = write(
            &dir,
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let err = parse_err(&format!("k8s.example.com={}", garbage.display()));
        assert!(err.contains("certificate 1 in CA bundle"), "{err}");
        assert!(!err.contains("bm90"), "never the contents: {err}");
        let key = write(
            &dir,
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        );
        let err = parse_err(&format!("k8s.example.com={}", key.display()));
        assert!(err.contains("holds a private key"), "{err}");
        let err = parse_err(&format!("{}", dir.path().display()));
        assert!(err.contains("no '='"), "{err}");
        assert!(parse_err("k8s.example.com=").contains("no FILE"));
        assert!(parse_err("*.example.com=ca.pem").contains("wildcards"));
        assert!(parse_err("k8s..example.com=ca.pem").contains("not a name a TLS"));
    }

    #[test]
    fn a_bundle_binds_to_an_allowed_https_host_only() {
        let roots = Arc::new(RootCertStore::empty());
        let ca = |written: &str| HostCa {
            host: written.parse().unwrap(),
            written: written.into(),
            file: "ca.pem".into(),
            certificates: 1,
            roots: roots.clone(),
        };
        let rule = |s: &str| s.parse::<HostRule>().unwrap();
        let allowed = AllowList::new([rule("127.0.0.1:6443"), rule("http://127.0.0.1:8001")]);
        let mut bound = ca("127.0.0.1:6443");
        bound.bind(&allowed).unwrap();
        assert_eq!(bound.host, rule("127.0.0.1:6443"));
        let err = ca("127.0.0.1:8001").bind(&allowed).unwrap_err();
        assert!(err.contains("a CA bundle is for HTTPS"), "{err}");
        let err = ca("k8s.example.com").bind(&allowed).unwrap_err();
        assert!(
            err.contains("a CA bundle applies only to requests to allowed hosts")
                && err.contains("--allow-host k8s.example.com"),
            "{err}"
        );
        assert_eq!(bound.describe(), "1 CA certificate from ca.pem");
    }
}
