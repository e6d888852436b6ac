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

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

/// Everything granted to one plugin run.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Hosts outbound HTTP may reach.
    pub hosts: AllowList,
    /// Directories the plugin sees.
    pub dirs: Vec<DirGrant>,
    /// Headers the host adds to requests, by host.
    pub headers: Vec<HeaderInjection>,
}

/// A URL scheme outbound HTTP may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: only when written out, e.g. `http://127.0.0.1:8080`.
    Http,
    /// HTTPS, the default.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
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
fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
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

fn normalize_host(host: &str) -> String {
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

/// Largest secret file read: secrets are tokens and keys, not documents.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Where a secret value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of keyrot's process.
    Env(String),
    /// A file (its content, without a trailing newline).
    File(PathBuf),
}

impl FromStr for SecretSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(SecretSource::Env(var.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource::File(expand_home(path))),
            // Never echo `s`: the likeliest mistake is the secret itself.
            _ => Err(
                "a secret source must be env:VARIABLE or file:PATH, never the value itself"
                    .to_string(),
            ),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "env:{var}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl SecretSource {
    /// Reads the value now, so a missing variable or file fails before any
    /// key is created.
    pub fn resolve(&self) -> Result<Zeroizing<String>, String> {
        let value = match self {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            SecretSource::File(path) => crate::input::read_regular_text(path, MAX_SECRET_BYTES)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        };
        let value = Zeroizing::new(value);
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Err(format!("secret from {self} is empty"));
        }
        Ok(Zeroizing::new(trimmed.to_string()))
    }
}

/// `NAME=SOURCE`, as given to `--secret`.
pub fn parse_secret_arg(s: &str) -> Result<(String, SecretSource), String> {
    let (name, source) = s
        .split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .ok_or("expected NAME=env:VARIABLE or NAME=file:PATH")?;
    let name = name.trim();
    let source = source
        .parse()
        .map_err(|e| format!("--secret {name}: {e}"))?;
    Ok((name.to_string(), source))
}

/// One directory the plugin may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it.
    pub guest: String,
    /// Whether the plugin may only read.
    pub read_only: bool,
}

impl FromStr for DirGrant {
    type Err = String;

    /// `HOST_PATH[:GUEST_PATH][:ro|:rw]`; the guest path defaults to the
    /// host path.
    fn from_str(spec: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = spec.split(':').collect();
        let read_only = match parts.last() {
            Some(&"ro") if parts.len() > 1 => {
                parts.pop();
                true
            }
            Some(&"rw") if parts.len() > 1 => {
                parts.pop();
                false
            }
            _ => false,
        };
        let (host, guest) = match parts.as_slice() {
            [host] => (*host, None),
            [host, guest] => (*host, Some(*guest)),
            _ => {
                return Err(format!(
                    "bad directory grant '{spec}': expected HOST_PATH[:GUEST_PATH][:ro]"
                ));
            }
        };
        if host.is_empty() || guest.is_some_and(str::is_empty) {
            return Err(format!("bad directory grant '{spec}': empty path"));
        }
        let host_path = expand_home(host);
        let guest = guest
            .map(str::to_string)
            .unwrap_or_else(|| host_path.display().to_string());
        if !guest.starts_with('/') {
            return Err(format!(
                "bad directory grant '{spec}': the guest path must be absolute, e.g. /data"
            ));
        }
        Ok(DirGrant {
            host: host_path,
            guest,
            read_only,
        })
    }
}

impl DirGrant {
    /// Checks the host directory exists, so a typo fails before any key is
    /// created.
    pub fn check(&self) -> Result<(), String> {
        self.problem()
            .map_or(Ok(()), |why| Err(format!("--allow-dir {why}")))
    }

    /// What is wrong with the host directory, e.g. `/srv/x: not a
    /// directory`, for callers that name the grant their own way.
    pub fn problem(&self) -> Option<String> {
        match std::fs::metadata(&self.host) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(format!("{}: not a directory", self.host.display())),
            Err(e) => Some(format!("{}: {e}", self.host.display())),
        }
    }
}

/// Refuses directory grants that would let a plugin reach keyrot's own
/// files: a writable grant that contains or is inside the compiled-code
/// `cache` (a plugin could plant native code keyrot later runs), and any
/// grant, read-only included, that contains or is inside the `state`
/// directory. Paths are compared canonicalized; a directory that does not
/// exist yet is placed under its nearest existing ancestor.
pub fn check_private_dirs(
    dirs: &[DirGrant],
    cache: Option<&Path>,
    state: Option<&Path>,
) -> Result<(), String> {
    for grant in dirs {
        let granted = canonical(&grant.host);
        let overlaps = |own: &Path| {
            let own = canonical(own);
            granted.starts_with(&own) || own.starts_with(&granted)
        };
        let flag = format!(
            "--allow-dir {}{}",
            grant.host.display(),
            if grant.read_only { ":ro" } else { "" }
        );
        if let Some(cache) = cache
            && !grant.read_only
            && overlaps(cache)
        {
            return Err(format!(
                "{flag} overlaps keyrot's compiled-code cache {}: a plugin that can write \
                 there could plant code keyrot would run; grant a narrower directory, or \
                 add :ro",
                cache.display()
            ));
        }
        if let Some(state) = state
            && overlaps(state)
        {
            return Err(format!(
                "{flag} overlaps keyrot's state directory {}: plugins may not see or change \
                 it; grant a narrower directory",
                state.display()
            ));
        }
    }
    Ok(())
}

/// `path` canonicalized; for a path that does not exist (yet), its nearest
/// existing ancestor canonicalized, with the rest appended.
fn canonical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut current = absolute.as_path();
    loop {
        if let Ok(real) = current.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (current.parent(), current.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                current = parent;
            }
            _ => return absolute,
        }
    }
}

/// A header the host adds to every request to one host.
#[derive(Clone, Debug)]
pub struct HeaderInjection {
    /// The host it applies to (and only it).
    pub host: HostRule,
    /// The host as the operator wrote it, e.g. `127.0.0.1:8080` (see
    /// [`HeaderInjection::bind`]).
    pub written: String,
    /// The header name.
    pub name: String,
    /// The value, with the secret placeholder resolved. Never logged.
    pub value: Zeroizing<String>,
    /// The resolved secret alone, for redaction.
    pub secret: Zeroizing<String>,
}

impl HeaderInjection {
    /// Parses `HOST=HEADER:TEMPLATE`, where the template holds exactly one
    /// `{env:VAR}` or `{file:PATH}` placeholder (so the secret itself never
    /// appears on a command line), and resolves the placeholder.
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_as(spec, "--inject-header")
    }

    /// [`HeaderInjection::parse`], naming the value `what` in errors (a
    /// flag, or a job file's key).
    pub fn parse_as(spec: &str, what: &str) -> Result<Self, String> {
        // Name the host at most, never the value: it may hold a secret
        // someone typed in by mistake.
        let host_part = spec.split_once('=').map_or("", |(h, _)| h.trim());
        let bad = |why: &str| {
            format!(
                "bad {what} for '{host_part}': {why} (expected e.g. \
                 'api.github.com=Authorization:Bearer {{env:GITHUB_TOKEN}}')"
            )
        };
        let (host, header) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (name, template) = header.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let host: HostRule = host.trim().parse()?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(bad("bad header name"));
        }
        let start = template
            .find('{')
            .ok_or_else(|| bad("the value needs an {env:VAR} or {file:PATH} placeholder"))?;
        let end = start
            + template[start..]
                .find('}')
                .ok_or_else(|| bad("unclosed '{'"))?;
        let source: SecretSource = template[start + 1..end].parse()?;
        if template[end + 1..].contains('{') {
            return Err(bad("only one placeholder is allowed"));
        }
        let secret = source
            .resolve()
            .map_err(|why| format!("{what} for '{host_part}': {why}"))?;
        let value = Zeroizing::new(format!(
            "{}{}{}",
            template[..start].trim_start(),
            secret.as_str(),
            &template[end + 1..]
        ));
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(bad("the value has characters a header cannot carry"));
        }
        Ok(HeaderInjection {
            host,
            written: host_part.to_string(),
            name: name.to_string(),
            value,
            secret,
        })
    }
}

impl HeaderInjection {
    /// Ties the header to the allowed host it means, so one spelling works
    /// in both places. A host written with its scheme must be allowed
    /// exactly as written. One written without (`127.0.0.1:8080`,
    /// `api.example.com`) means the one allowed rule for that host (and
    /// port, if given) whatever its scheme — so `--allow-host
    /// http://127.0.0.1:8080` and `--inject-header '127.0.0.1:8080=…'`
    /// go together — and is refused if none or several are allowed, since
    /// a header bound to the wrong scheme would silently never be sent.
    pub fn bind(&mut self, allowed: &AllowList) -> Result<(), String> {
        let written = self.written.as_str();
        let schemeless = !written.contains("://");
        let port_given = schemeless
            && split_host_port(written.strip_suffix('/').unwrap_or(written))
                .is_ok_and(|(_, port)| port.is_some());
        let same_host: Vec<&HostRule> = allowed
            .rules()
            .iter()
            .filter(|r| r.host == self.host.host && (!port_given || r.port == self.host.port))
            .collect();
        if !schemeless {
            if allowed.allows(&self.host) {
                return Ok(());
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
                "headers are injected only into requests to allowed hosts, and {} is not \
                 allowed: add --allow-host {}{others}",
                self.host, self.host
            ));
        }
        match same_host.as_slice() {
            [rule] => {
                self.host = (*rule).clone();
                Ok(())
            }
            [] => {
                let plain = HostRule {
                    scheme: Scheme::Http,
                    host: self.host.host.clone(),
                    port: if port_given { self.host.port } else { 80 },
                };
                Err(format!(
                    "headers are injected only into requests to allowed hosts, and \
                     '{written}' is not allowed: add --allow-host {} (https), or \
                     --allow-host {plain} for plain HTTP",
                    self.host
                ))
            }
            several => Err(format!(
                "'{written}' could mean any of the allowed {}: write the host for the \
                 header exactly as one of them",
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

/// Expands a leading `~/` to `$HOME/`, for paths in job files.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
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
    fn grants_over_keyrots_own_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        std::fs::create_dir_all(home.join("data")).unwrap();
        // Neither exists yet.
        let cache = home.join(".cache/keyrot");
        let state = home.join(".local/state/keyrot");
        let grant = |spec: &str| spec.parse::<DirGrant>().unwrap();
        let check = |spec: &str| {
            check_private_dirs(&[grant(spec)], Some(cache.as_path()), Some(state.as_path()))
        };
        let home_str = home.display().to_string();
        let err = check(&home_str).unwrap_err();
        assert!(
            err.contains("--allow-dir") && err.contains("cache"),
            "{err}"
        );
        // Read-only is fine for the cache, never for the state directory.
        let err = check(&format!("{home_str}:ro")).unwrap_err();
        assert!(err.contains("state directory"), "{err}");
        assert!(check(&format!("{home_str}/data")).is_ok());
        std::fs::create_dir_all(&cache).unwrap();
        assert!(check(&format!("{}/sub", cache.display())).is_err());
        // A symlink to the cache is the cache.
        std::os::unix::fs::symlink(&cache, home.join("link")).unwrap();
        assert!(check(&format!("{home_str}/data/../link")).is_err());
        assert!(check(&format!("{home_str}/link:ro")).is_ok());
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

    #[test]
    fn dir_grants() {
        let g: DirGrant = "/srv/aws:/aws:ro".parse().unwrap();
        assert_eq!(
            (g.host.as_path(), g.guest.as_str(), g.read_only),
            (Path::new("/srv/aws"), "/aws", true)
        );
        let g: DirGrant = "/srv/data".parse().unwrap();
        assert_eq!((g.guest.as_str(), g.read_only), ("/srv/data", false));
        let g: DirGrant = "/srv/data:rw".parse().unwrap();
        assert_eq!(g.guest, "/srv/data");
        assert!("/a:relative".parse::<DirGrant>().is_err());
        assert!("/a:/b:/c".parse::<DirGrant>().is_err());
        assert!(":/b".parse::<DirGrant>().is_err());
    }

    #[test]
    fn secret_sources() {
        assert_eq!(
            parse_secret_arg("token=env:GITHUB_TOKEN").unwrap(),
            ("token".into(), SecretSource::Env("GITHUB_TOKEN".into()))
        );
        assert!(parse_secret_arg("token=ghp_literal").is_err());
        assert!(parse_secret_arg("token").is_err());

        let dir = std::env::temp_dir().join(format!("keyrot-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let source = SecretSource::File(dir.clone());
        assert_eq!(source.resolve().unwrap().as_str(), "s3cret");
        std::fs::remove_file(&dir).unwrap();
        assert!(source.resolve().is_err());
        assert!(
            SecretSource::Env("KEYROT_TEST_UNSET_VARIABLE".into())
                .resolve()
                .is_err()
        );
    }

    #[test]
    fn header_injection_resolves_its_placeholder() {
        let path = std::env::temp_dir().join(format!("keyrot-header-{}", std::process::id()));
        std::fs::write(&path, "tok\n").unwrap();
        let spec = format!(
            "api.github.com=Authorization:Bearer {{file:{}}}",
            path.display()
        );
        let h = HeaderInjection::parse(&spec).unwrap();
        assert_eq!(h.host, rule("api.github.com"));
        assert_eq!(
            (h.name.as_str(), h.value.as_str()),
            ("Authorization", "Bearer tok")
        );
        std::fs::remove_file(&path).unwrap();

        assert!(HeaderInjection::parse("api.github.com=Authorization:Bearer literal").is_err());
        assert!(HeaderInjection::parse("api.github.com=Bad Header:{env:X}").is_err());
        assert!(HeaderInjection::parse("*.github.com=Authorization:{env:X}").is_err());
    }

    fn injection(host: &str) -> HeaderInjection {
        // PATH is set wherever tests run; its value stands in for a secret.
        HeaderInjection::parse(&format!("{host}=X-Test:{{env:PATH}}")).unwrap()
    }

    #[test]
    fn a_header_host_without_scheme_binds_to_the_allowed_rule() {
        let plain = AllowList::new([rule("http://127.0.0.1:8080")]);
        let mut h = injection("127.0.0.1:8080");
        h.bind(&plain).unwrap();
        assert_eq!(h.host, rule("http://127.0.0.1:8080"));
        let mut h = injection("127.0.0.1");
        h.bind(&plain).unwrap();
        assert_eq!(h.host, rule("http://127.0.0.1:8080"));
        let mut h = injection("http://127.0.0.1:8080");
        h.bind(&plain).unwrap();

        let https = AllowList::new([rule("api.github.com")]);
        let mut h = injection("api.github.com");
        h.bind(&https).unwrap();
        assert_eq!(h.host, rule("api.github.com"));
    }

    #[test]
    fn a_header_for_a_host_not_allowed_gets_advice_that_works() {
        let err = injection("127.0.0.1:8080")
            .bind(&AllowList::default())
            .unwrap_err();
        assert!(
            err.contains("--allow-host 127.0.0.1:8080 (https)")
                && err.contains("--allow-host http://127.0.0.1:8080 for plain HTTP"),
            "{err}"
        );
        let plain = AllowList::new([rule("http://127.0.0.1:8080")]);
        let err = injection("https://127.0.0.1:8080")
            .bind(&plain)
            .unwrap_err();
        assert!(
            err.contains("add --allow-host 127.0.0.1:8080")
                && err.contains("allowed for that host: http://127.0.0.1:8080"),
            "{err}"
        );
        let both = AllowList::new([rule("http://127.0.0.1:8080"), rule("127.0.0.1:8080")]);
        let err = injection("127.0.0.1:8080").bind(&both).unwrap_err();
        assert!(err.contains("could mean any of"), "{err}");
        let mut h = injection("http://127.0.0.1:8080");
        h.bind(&both).unwrap();
    }
}
