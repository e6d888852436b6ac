//! Where a request and credentials may go, as the operator's flags say:
//! plain HTTP only to loopback or a host named with `--insecure-registry`,
//! credentials only to the registry's own host and port or a token service
//! named with `--registry-token-host`, and the `Authorization` header only
//! back to the registry's origin.

use reqwest::Url;

use super::Client;

impl Client<'_> {
    /// Whether plain HTTP to `url`'s host is allowed: loopback, or named
    /// with `--insecure-registry`.
    pub(super) fn plain_ok(&self, url: &Url) -> bool {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        loopback
            || self.options.insecure.iter().any(|allowed| {
                Url::parse(&format!("http://{allowed}/")).is_ok_and(|allowed| {
                    allowed.host_str() == url.host_str()
                        && allowed.port_or_known_default() == url.port_or_known_default()
                })
            })
    }

    /// Whether `url` may receive this registry's credentials: the
    /// registry's own host and port, or one the operator named.
    pub(super) fn may_receive_credentials(&self, url: &Url) -> bool {
        let same = |a: &Url, b: &Url| {
            a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
        };
        same(url, &self.origin)
            || self.options.token_hosts.iter().any(|allowed| {
                Url::parse(&format!("{}://{allowed}/", url.scheme()))
                    .is_ok_and(|allowed| same(url, &allowed))
            })
    }
}

pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `host[:port]` of a URL, as an operator would name it in a flag.
pub(super) fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    }
}
