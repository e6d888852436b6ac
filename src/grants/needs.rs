//! What a handler declares it needs (`needs` in `describe`, contract 0.4.0
//! on), and the checks of the operator's grants against it: no grant wider
//! than the declaration, no declared need left ungranted.
//!
//! A need may name a setting instead of a fixed place: a self-hosted
//! server's URL, a credentials file's path. It is resolved against the
//! operator's settings first ([`Needs::resolve`]), then compared.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::dirs::DirGrant;
use super::hosts::{AllowList, HostRule, Scheme, normalize_host, split_host_port};

/// The capabilities a handler asks for (`wit/handler.wit`, `needs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// Where it sends requests.
    pub hosts: Vec<HostNeed>,
    /// Directories it reads or writes.
    pub directories: Vec<DirectoryNeed>,
    /// The most memory one call needs, in MiB, if more than the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// The most time one call needs, in seconds, if more than the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// One destination of outbound requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostNeed {
    /// As `--allow-host` takes it, perhaps starting `*.`; empty when only
    /// `setting` names it.
    pub host: String,
    /// A setting holding a URL whose host is the one needed, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// What the handler sends there.
    pub purpose: String,
}

/// One directory, as the handler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirectoryNeed {
    /// The path inside the sandbox; empty when only `setting` names it.
    pub path: String,
    /// A setting holding a file's path whose directory is the one needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// Whether the handler writes there.
    pub writable: bool,
    /// What the handler keeps there.
    pub purpose: String,
}

/// A host a handler needs, resolved: exact, or any name below a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// `None` when the need did not say: either scheme will do.
    scheme: Option<Scheme>,
    /// Lowercase, without brackets or the `*.`.
    host: String,
    /// `*.host`: any name below `host`, not `host` itself.
    below: bool,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

impl HostPattern {
    /// `HOST`, `*.DOMAIN`, either with `:PORT`, or a URL
    /// (`https://vault.example.com:8200/v1`): its scheme, host and port.
    pub fn parse(spec: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| format!("bad host '{spec}': {why}");
        let (scheme, rest) = match spec.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "https" => (Some(Scheme::Https), rest),
                "http" => (Some(Scheme::Http), rest),
                _ => return Err(bad("only http and https are supported")),
            },
            None => (None, spec),
        };
        // A URL's path, query and user are not part of where it goes.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = split_host_port(authority).map_err(|why| bad(&why))?;
        let (below, host) = match host.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad("give a host name, or *. and a domain"));
        }
        Ok(HostPattern {
            scheme,
            host: normalize_host(host),
            below,
            port,
        })
    }

    /// Whether an allowed host is one this pattern asks for.
    pub fn covers(&self, rule: &HostRule) -> bool {
        let host = if self.below {
            rule.host
                .strip_suffix(&self.host)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
        } else {
            rule.host == self.host
        };
        let scheme = self.scheme.is_none_or(|s| s == rule.scheme);
        let port = self.port.unwrap_or(rule.scheme.default_port()) == rule.port;
        host && scheme && port
    }

    /// A grant that would satisfy it, for messages: `--allow-host` takes
    /// it as is unless it is a pattern.
    fn example(&self) -> String {
        if self.below {
            return format!("a host under {self}");
        }
        let rule = HostRule {
            scheme: self.scheme.unwrap_or(Scheme::Https),
            host: self.host.clone(),
            port: self
                .port
                .unwrap_or(self.scheme.unwrap_or(Scheme::Https).default_port()),
        };
        rule.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.as_str())?;
        }
        if self.below {
            f.write_str("*.")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A need, made concrete by the operator's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved<T> {
    /// Where, or what.
    pub what: T,
    /// Whether the handler writes there (directories).
    pub writable: bool,
    /// What the handler does with it.
    pub purpose: String,
}

impl Needs {
    /// Refuses a need naming a setting the plugin does not describe: the
    /// operator could never set it, so the declaration is wrong.
    pub fn check_settings(&self, described: impl Fn(&str) -> bool) -> Result<(), String> {
        let named = self.hosts.iter().map(|h| &h.setting);
        let named = named.chain(self.directories.iter().map(|d| &d.setting));
        match named.flatten().find(|name| !described(name)) {
            Some(name) => Err(format!(
                "its needs name setting '{name}', which it does not describe"
            )),
            None => Ok(()),
        }
    }

    /// The hosts needed with these settings: each need's setting, when
    /// set, else its fixed host; needs naming neither are dropped.
    pub fn hosts<'a>(
        &self,
        setting: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Vec<Resolved<HostPattern>>, String> {
        let mut hosts = Vec::new();
        for need in &self.hosts {
            let (spec, source) = match need.setting.as_deref().and_then(&setting) {
                Some(url) => (
                    url,
                    format!("setting '{}'", need.setting.as_deref().unwrap_or("")),
                ),
                None if need.host.is_empty() => continue,
                None => (need.host.as_str(), "its declaration".to_string()),
            };
            let pattern =
                HostPattern::parse(spec.trim()).map_err(|e| format!("{e}, from {source}"))?;
            hosts.push(Resolved {
                what: pattern,
                writable: false,
                purpose: need.purpose.clone(),
            });
        }
        Ok(hosts)
    }

    /// The directories needed with these settings, as the plugin sees
    /// them: a setting's file's directory, when set, else the fixed path.
    pub fn directories<'a>(
        &self,
        setting: impl Fn(&str) -> Option<&'a str>,
    ) -> Vec<Resolved<PathBuf>> {
        self.directories
            .iter()
            .filter_map(|need| {
                let path = match need.setting.as_deref().and_then(&setting) {
                    Some(file) => Path::new("/").join(file).parent()?.to_path_buf(),
                    None if need.path.is_empty() => return None,
                    None => Path::new("/").join(&need.path),
                };
                Some(Resolved {
                    what: lexical(&path),
                    writable: need.writable,
                    purpose: need.purpose.clone(),
                })
            })
            .collect()
    }
}

/// What is wrong with the allowed hosts, given the hosts needed: an
/// allowed host the plugin did not ask for, a host it asked for that is
/// not allowed. `via` is how the operator grants a host (`--allow-host`).
pub fn host_problems(
    plugin: &str,
    needed: &[Resolved<HostPattern>],
    allowed: &AllowList,
    via: &str,
) -> Vec<String> {
    let asked = if needed.is_empty() {
        "it declares no hosts".to_string()
    } else {
        let list: Vec<String> = needed.iter().map(|n| n.what.to_string()).collect();
        format!("it asks for {}", list.join(", "))
    };
    let wider = allowed
        .rules()
        .iter()
        .filter(|rule| !needed.iter().any(|n| n.what.covers(rule)))
        .map(|rule| {
            format!(
                "{via} {rule} is wider than plugin '{plugin}' asks for ({asked}): remove it, \
                 or use a plugin that declares that host (keyrot plugin inspect shows what it \
                 asks for)"
            )
        });
    let missing = needed
        .iter()
        .filter(|n| !allowed.rules().iter().any(|rule| n.what.covers(rule)))
        .map(|need| {
            format!(
                "plugin '{plugin}' needs {} ({}), which is not granted: add {via} {}",
                need.what,
                need.purpose,
                need.what.example()
            )
        });
    wider.chain(missing).collect()
}

/// [`host_problems`], the first as an error.
pub fn check_hosts(
    plugin: &str,
    needed: &[Resolved<HostPattern>],
    allowed: &AllowList,
    via: &str,
) -> Result<(), String> {
    first(host_problems(plugin, needed, allowed, via))
}

/// What is wrong with the granted directories, given the ones needed: a
/// grant that is not a directory the plugin asked for (or one inside it),
/// or is writable where it asked to read; a directory it asked for that is
/// not granted (writable, if it writes there). `via` is how the operator
/// grants one (`--allow-dir`).
pub fn directory_problems(
    plugin: &str,
    needed: &[Resolved<PathBuf>],
    granted: &[DirGrant],
    via: &str,
) -> Vec<String> {
    let within = |grant: &DirGrant, need: &Resolved<PathBuf>| {
        lexical(Path::new(&grant.guest)).starts_with(&need.what)
    };
    let mut problems = Vec::new();
    for grant in granted {
        let guest = &grant.guest;
        let matching: Vec<&Resolved<PathBuf>> =
            needed.iter().filter(|n| within(grant, n)).collect();
        if matching.is_empty() {
            let asked: Vec<String> = needed
                .iter()
                .map(|n| n.what.display().to_string())
                .collect();
            let asked = if asked.is_empty() {
                "it declares no directories".to_string()
            } else {
                format!("it asks for {}", asked.join(", "))
            };
            problems.push(format!(
                "{via} {} (seen as {guest}) is wider than plugin '{plugin}' asks for ({asked}): \
                 grant the directory it names, and nothing above it",
                grant.host.display()
            ));
        } else if !grant.read_only && !matching.iter().any(|n| n.writable) {
            problems.push(format!(
                "{via} {} gives plugin '{plugin}' write access to {guest}, which it asks to \
                 read only: add :ro",
                grant.host.display()
            ));
        }
    }
    for need in needed {
        let fits = |g: &DirGrant| {
            lexical(Path::new(&g.guest)) == need.what && (!need.writable || !g.read_only)
        };
        if !granted.iter().any(fits) {
            let dir = need.what.display();
            let (access, ro) = if need.writable {
                ("read and write", "")
            } else {
                ("read", ":ro")
            };
            problems.push(format!(
                "plugin '{plugin}' needs directory {dir} ({access}: {}), which is not granted: \
                 add {via} HOST_DIR:{dir}{ro}",
                need.purpose
            ));
        }
    }
    problems
}

/// [`directory_problems`], the first as an error.
pub fn check_directories(
    plugin: &str,
    needed: &[Resolved<PathBuf>],
    granted: &[DirGrant],
    via: &str,
) -> Result<(), String> {
    first(directory_problems(plugin, needed, granted, via))
}

/// What is wrong with the memory and time limits, given what one call
/// needs: a limit below the need would stop the plugin halfway, after the
/// key exists.
pub fn limit_problems(
    plugin: &str,
    needs: &Needs,
    memory_bytes: usize,
    timeout: Duration,
) -> Vec<String> {
    const MIB: usize = 1024 * 1024;
    let mut problems = Vec::new();
    if let Some(mib) = needs.memory_mib
        && (mib as usize).saturating_mul(MIB) > memory_bytes
    {
        problems.push(format!(
            "plugin '{plugin}' needs {mib} MiB of memory per call, more than the limit of {} \
             MiB: raise it with --memory {mib}MiB",
            memory_bytes / MIB
        ));
    }
    if let Some(seconds) = needs.timeout_seconds
        && Duration::from_secs(seconds.into()) > timeout
    {
        problems.push(format!(
            "plugin '{plugin}' needs up to {seconds}s per call, more than the limit of {}s: \
             raise it with --timeout {seconds}s",
            timeout.as_secs_f64()
        ));
    }
    problems
}

fn first(problems: Vec<String>) -> Result<(), String> {
    problems.into_iter().next().map_or(Ok(()), Err)
}

/// The path with `.` and `..` worked out, without touching the disk (the
/// path is the plugin's view, not the host's).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(spec: &str) -> HostRule {
        spec.parse().unwrap()
    }

    fn pattern(spec: &str) -> HostPattern {
        HostPattern::parse(spec).unwrap()
    }

    #[test]
    fn exact_hosts_match_scheme_host_and_port() {
        assert!(pattern("api.github.com").covers(&rule("api.github.com")));
        assert!(pattern("API.GitHub.com").covers(&rule("api.github.com")));
        assert!(!pattern("api.github.com").covers(&rule("api.github.com:8443")));
        assert!(!pattern("api.github.com").covers(&rule("uploads.github.com")));
        assert!(pattern("vault.example.com:8200").covers(&rule("vault.example.com:8200")));
        assert!(pattern("http://127.0.0.1:8080/v1/x?y").covers(&rule("http://127.0.0.1:8080")));
        assert!(!pattern("http://127.0.0.1:8080").covers(&rule("127.0.0.1:8080")));
        // No scheme said: either, at that scheme's default port.
        assert!(pattern("127.0.0.1:8080").covers(&rule("http://127.0.0.1:8080")));
        assert!(pattern("[::1]:9").covers(&rule("http://[::1]:9")));
    }

    #[test]
    fn a_star_covers_names_below_the_domain_only() {
        let aws = pattern("*.amazonaws.com");
        assert!(aws.covers(&rule("secretsmanager.eu-west-1.amazonaws.com")));
        assert!(aws.covers(&rule("ssm.us-east-1.amazonaws.com")));
        assert!(!aws.covers(&rule("amazonaws.com")));
        assert!(!aws.covers(&rule("evilamazonaws.com")));
        assert!(!aws.covers(&rule("amazonaws.com.evil.example")));
        assert!(HostPattern::parse("api.*.com").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("ftp://x").is_err());
    }

    fn needs() -> Needs {
        Needs {
            hosts: vec![
                HostNeed {
                    host: "api.github.com".into(),
                    setting: Some("api-url".into()),
                    purpose: "secrets".into(),
                },
                HostNeed {
                    host: String::new(),
                    setting: Some("webhook".into()),
                    purpose: "a ping".into(),
                },
            ],
            directories: vec![DirectoryNeed {
                path: "/aws".into(),
                setting: Some("path".into()),
                writable: true,
                purpose: "the credentials file".into(),
            }],
            ..Needs::default()
        }
    }

    #[test]
    fn settings_replace_the_fixed_place_and_unset_ones_drop_out() {
        let none = |_: &str| None;
        let hosts = needs().hosts(none).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].what, pattern("api.github.com"));
        let set = |name: &str| match name {
            "api-url" => Some("https://ghe.example.com/api/v3"),
            "path" => Some("/home/ci/.aws/credentials"),
            _ => None,
        };
        let hosts = needs().hosts(set).unwrap();
        assert_eq!(hosts[0].what, pattern("https://ghe.example.com"));
        let dirs = needs().directories(set);
        assert_eq!(dirs[0].what, PathBuf::from("/home/ci/.aws"));
        assert_eq!(needs().directories(none)[0].what, PathBuf::from("/aws"));
        let bad = |_: &str| Some("ftp://x");
        assert!(
            needs()
                .hosts(bad)
                .unwrap_err()
                .contains("setting 'api-url'")
        );
    }

    #[test]
    fn hosts_neither_wider_nor_missing() {
        let needed = needs().hosts(|_| None).unwrap();
        let allowed = AllowList::new([rule("api.github.com")]);
        check_hosts("github", &needed, &allowed, "--allow-host").unwrap();
        let wider = AllowList::new([rule("api.github.com"), rule("evil.example")]);
        let err = check_hosts("github", &needed, &wider, "--allow-host").unwrap_err();
        assert!(err.contains("--allow-host evil.example is wider"), "{err}");
        assert!(err.contains("it asks for api.github.com"), "{err}");
        let err = check_hosts("github", &needed, &AllowList::default(), "--allow-host");
        let err = err.unwrap_err();
        assert!(
            err.contains("needs api.github.com (secrets), which is not granted: add --allow-host api.github.com"),
            "{err}"
        );
    }

    #[test]
    fn limits_below_a_declared_need_are_named_with_their_flag() {
        let needs = Needs {
            memory_mib: Some(600),
            timeout_seconds: Some(90),
            ..Needs::default()
        };
        let problems = limit_problems("p", &needs, 512 << 20, Duration::from_secs(60));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("needs 600 MiB") && problems[0].contains("--memory 600MiB"));
        assert!(problems[1].contains("needs up to 90s") && problems[1].contains("--timeout 90s"));
        assert!(limit_problems("p", &needs, 600 << 20, Duration::from_secs(90)).is_empty());
        assert!(limit_problems("p", &Needs::default(), 1, Duration::ZERO).is_empty());
    }

    fn grant(spec: &str) -> DirGrant {
        spec.parse().unwrap()
    }

    #[test]
    fn directories_neither_wider_nor_missing_nor_writable_beyond_the_ask() {
        let needed = needs().directories(|_| None);
        check_directories("f", &needed, &[grant("/tmp/a:/aws")], "--allow-dir").unwrap();
        let err = check_directories("f", &needed, &[grant("/tmp/a:/")], "--allow-dir");
        assert!(
            err.unwrap_err()
                .contains("is wider than plugin 'f' asks for")
        );
        let err = check_directories("f", &needed, &[], "--allow-dir").unwrap_err();
        assert!(
            err.contains("needs directory /aws (read and write: the credentials file)"),
            "{err}"
        );
        let err = check_directories("f", &needed, &[grant("/tmp/a:/aws:ro")], "--allow-dir");
        assert!(err.unwrap_err().contains("needs directory /aws"));
        // Asked to read only: a writable grant is wider.
        let read = vec![Resolved {
            what: PathBuf::from("/app"),
            writable: false,
            purpose: "config".into(),
        }];
        let err = check_directories("f", &read, &[grant("/tmp/a:/app")], "--allow-dir");
        assert!(err.unwrap_err().contains("add :ro"));
        check_directories("f", &read, &[grant("/tmp/a:/app:ro")], "--allow-dir").unwrap();
        // `..` cannot climb out of the ask.
        let err = check_directories("f", &needed, &[grant("/tmp/a:/aws/../etc")], "--allow-dir");
        assert!(err.is_err());
    }
}
