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
    pub(super) fn may_use_plain_http(&self, url: &Url) -> bool {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        loopback || named_in(&self.options.insecure, "http", url)
    }

    /// Whether `url` may receive this registry's credentials: the
    /// registry's own host and port, or one the operator named.
    pub(super) fn may_receive_credentials(&self, url: &Url) -> bool {
        same_host_and_port(url, &self.origin)
            || named_in(&self.options.token_hosts, url.scheme(), url)
    }
}

/// Whether two URLs have the same scheme, host and port.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && same_host_and_port(a, b)
}

/// Whether two URLs have the same host and port, a port left out being
/// its scheme's default.
fn same_host_and_port(a: &Url, b: &Url) -> bool {
    a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether `url`'s host and port are among `hosts`, as an operator names
/// them in a flag (HOST[:PORT], a port left out being `scheme`'s default).
fn named_in(hosts: &[String], scheme: &str, url: &Url) -> bool {
    hosts.iter().any(|host| {
        Url::parse(&format!("{scheme}://{host}/"))
            .is_ok_and(|named| same_host_and_port(&named, url))
    })
}

/// `host[:port]` of a URL, as an operator would name it in a flag.
pub(super) fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    }
}
