//! Where outbound HTTP may go: exact scheme, host and port, no wildcards.

use std::fmt;
use std::str::FromStr;

/// A URL scheme outbound HTTP may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: only when written out, e.g. `http://127.0.0.1:8080`.
    Http,
    /// HTTPS, the default.
    Https,
}

impl Scheme {
    pub(super) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One allowed destination: scheme, exact host, port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRule {
    /// The scheme.
    pub scheme: Scheme,
    /// The host name or IP literal, lowercase, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostRule {
    /// Where a request goes: its scheme, normalized host and port (the
    /// scheme's default if none is given). `None` for other schemes.
    pub fn of_uri(uri: &http::Uri) -> Option<HostRule> {
        let scheme = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return None,
        };
        Some(HostRule {
            scheme,
            host: normalize_host(uri.host()?),
            port: uri.port_u16().unwrap_or(scheme.default_port()),
        })
    }
}

impl fmt::Display for HostRule {
    /// The shortest `--allow-host` spelling of this rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.scheme, self.port) {
            (Scheme::Https, 443) => write!(f, "{host}"),
            (Scheme::Https, port) => write!(f, "{host}:{port}"),
            (scheme, port) => write!(f, "{}://{host}:{port}", scheme.as_str()),
        }
    }
}

impl HostRule {
    /// Ties a grant for a host (an injected header, request signing) to
    /// the allowed host it means, so one spelling works in both places. A
    /// host written with its scheme must be allowed exactly as written. One
    /// written without (`127.0.0.1:8080`, `api.example.com`) means the one
    /// allowed rule for that host (and port, if given) whatever its scheme —
    /// so `--allow-host http://127.0.0.1:8080` and `--inject-header
    /// '127.0.0.1:8080=…'` go together — and is refused if none or several
    /// are allowed, since a grant bound to the wrong scheme would silently
    /// never apply. `lead` says what the grant does, for errors.
    pub fn bind(&self, written: &str, allowed: &AllowList, lead: &str) -> Result<HostRule, String> {
        let schemeless = !written.contains("://");
        let port_given = schemeless
            && split_host_port(written.strip_suffix('/').unwrap_or(written))
                .is_ok_and(|(_, port)| port.is_some());
        let same_host: Vec<&HostRule> = allowed
            .rules()
            .iter()
            .filter(|r| r.host == self.host && (!port_given || r.port == self.port))
            .collect();
        if !schemeless {
            if allowed.allows(self) {
                return Ok(self.clone());
            }
            let others = if same_host.is_empty() {
                String::new()
            } else {
                format!(
                    " (allowed for that host: {}; write the host the same way in both)",
                    spelled(&same_host)
                )
            };
            return Err(format!(
                "{lead}, and {self} is not allowed: add --allow-host {self}{others}"
            ));
        }
        match same_host.as_slice() {
            [rule] => Ok((*rule).clone()),
            [] => {
                let plain = HostRule {
                    scheme: Scheme::Http,
                    host: self.host.clone(),
                    port: if port_given { self.port } else { 80 },
                };
                Err(format!(
                    "{lead}, and '{written}' is not allowed: add --allow-host {self} (https), \
                     or --allow-host {plain} for plain HTTP"
                ))
            }
            several => Err(format!(
                "'{written}' could mean any of the allowed {}: write the host exactly as one \
                 of them",
                spelled(several)
            )),
        }
    }
}

fn spelled(rules: &[&HostRule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for HostRule {
    type Err = String;

    /// `HOST`, `HOST:PORT` (https), or `http(s)://HOST[:PORT]`.
    fn from_str(spec: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "bad host '{spec}': {why} (expected e.g. api.github.com or http://127.0.0.1:8080)"
            )
        };
        let (scheme, rest) = match spec.split_once("://") {
            Some(("https", rest)) => (Scheme::Https, rest),
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(_) => return Err(bad("only http and https are supported")),
            None => (Scheme::Https, spec),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("give a host, not a URL with a path or user"));
        }
        if rest.contains('*') {
            return Err(bad("wildcards are not allowed; list each host"));
        }
        let (host, port) = split_host_port(rest).map_err(|why| bad(&why))?;
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        Ok(HostRule {
            scheme,
            host: normalize_host(host),
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
pub(super) fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '['")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ']'")?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err("put IPv6 addresses in brackets".into()),
            None => (s, None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("bad port '{p}'")))
        .transpose()?;
    if port == Some(0) {
        return Err("port 0".into());
    }
    Ok((host, port))
}

pub(super) fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The hosts outbound HTTP may reach. Empty denies everything.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    rules: Vec<HostRule>,
}

impl AllowList {
    /// An allow-list of exactly these rules.
    pub fn new(rules: impl IntoIterator<Item = HostRule>) -> Self {
        let mut list = AllowList::default();
        for rule in rules {
            if !list.rules.contains(&rule) {
                list.rules.push(rule);
            }
        }
        list
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules.
    pub fn rules(&self) -> &[HostRule] {
        &self.rules
    }

    /// Whether requests to this destination are allowed.
    pub fn allows(&self, target: &HostRule) -> bool {
        self.rules.contains(target)
    }

    /// Whether a request to `uri` is allowed.
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        HostRule::of_uri(uri).is_some_and(|target| self.allows(&target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HostRule {
        s.parse().unwrap()
    }

    #[test]
    fn a_bare_host_means_https_on_443() {
        let r = rule("API.GitHub.com");
        assert_eq!(
            (r.scheme, r.host.as_str(), r.port),
            (Scheme::Https, "api.github.com", 443)
        );
        assert_eq!(r.to_string(), "api.github.com");
    }

    #[test]
    fn explicit_schemes_and_ports() {
        let r = rule("http://127.0.0.1:8080");
        assert_eq!((r.scheme, r.port), (Scheme::Http, 8080));
        assert_eq!(r.to_string(), "http://127.0.0.1:8080");
        assert_eq!(rule("http://example.com").port, 80);
        assert_eq!(rule("example.com:8443").port, 8443);
        assert_eq!(rule("http://[::1]:9000").host, "::1");
        assert_eq!(rule("http://[::1]:9000").to_string(), "http://[::1]:9000");
    }

    #[test]
    fn rejects_wildcards_paths_and_other_schemes() {
        for bad in [
            "*.github.com",
            "https://api.github.com/repos",
            "ftp://x",
            "user@host",
            "host:0",
            "host:99999",
            "",
            "::1",
        ] {
            assert!(bad.parse::<HostRule>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn allows_exact_matches_only() {
        let list = AllowList::new([rule("api.github.com"), rule("http://127.0.0.1:8080")]);
        let allows_url = |url: &str| list.allows_uri(&url.parse().unwrap());
        assert!(allows_url("https://api.github.com/repos/o/r"));
        assert!(allows_url("https://API.GITHUB.COM./x"));
        assert!(allows_url("http://127.0.0.1:8080/x?y"));
        assert!(!allows_url("http://api.github.com/"), "scheme matters");
        assert!(!allows_url("https://api.github.com:8443/"), "port matters");
        assert!(!allows_url("https://evil.api.github.com/"), "no subdomains");
        assert!(!allows_url("https://api.github.com.evil.com/"));
        assert!(!allows_url("http://127.0.0.1:8081/"));
        assert!(!allows_url("https://api.github.com@evil.com/"));
        let nothing = AllowList::default();
        assert!(!nothing.allows_uri(&"https://api.github.com/".parse().unwrap()));
    }
}
