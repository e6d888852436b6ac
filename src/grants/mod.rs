//! What an operator grants a plugin, as pure data: which hosts it may reach,
//! which directories it sees, which secrets it gets and which headers the
//! host adds for it. Everything here parses and answers questions without
//! Wasmtime, so the policy is testable on its own; `crate::host` enforces it.
//!
//! Every grant is off unless named:
//!
//! - `--allow-host api.github.com` (https, port 443) or
//!   `--allow-host http://127.0.0.1:8080`: exact hosts only, no wildcards.
//! - `--allow-dir HOST_PATH[:GUEST_PATH][:ro]`: one preopened directory.
//! - `--secret NAME=env:VAR` or `NAME=file:PATH`: a redacted setting.
//! - `--inject-header 'api.github.com=Authorization:Bearer {env:TOKEN}'`:
//!   a header the host adds to requests to that host only, so the plugin
//!   never sees the token.
//! - `--aws-sign HOST` with `--aws-sign-role-arn ARN` (or a profile): AWS
//!   requests to that host signed by the host (SigV4) as that identity.
//! - `--allow-host-ca 'k8s.example.com:6443=cluster-ca.pem'`: HTTPS to that
//!   host is checked against the CA certificates in that file instead of
//!   the public web roots (a cluster's private CA).

mod aws_sign;
mod dirs;
mod headers;
mod host_ca;
mod hosts;
mod needs;
mod secrets;

pub use self::aws_sign::{AwsSigning, SigningIdentity};
pub use self::dirs::{DirGrant, check_private_dirs};
pub use self::headers::HeaderInjection;
pub use self::host_ca::{HostCa, MAX_CA_BUNDLE_BYTES};
pub use self::hosts::{AllowList, HostRule, Scheme};
pub use self::needs::{
    DirectoryNeed, HostNeed, HostPattern, Needs, Resolved, check_directories, check_hosts,
    directory_problems, host_problems, limit_problems,
};
pub use self::secrets::{MAX_SECRET_BYTES, SecretSource, parse_secret_arg};

use std::path::{Path, PathBuf};

/// Everything granted to one plugin run.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Hosts outbound HTTP may reach.
    pub hosts: AllowList,
    /// Directories the plugin sees.
    pub dirs: Vec<DirGrant>,
    /// Headers the host adds to requests, by host.
    pub headers: Vec<HeaderInjection>,
    /// Hosts whose requests the host signs (SigV4).
    pub aws_sign: Vec<AwsSigning>,
    /// Who signs them.
    pub aws_signer: SigningIdentity,
    /// Hosts whose HTTPS is checked against a private CA's certificates.
    pub host_cas: Vec<HostCa>,
}

/// Expands a leading `~/` to `$HOME/`, for paths in job files.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}
