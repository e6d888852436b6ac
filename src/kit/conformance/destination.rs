//! The destinations `keyrot plugin test` gives a handler: the one the
//! author names (or a fresh temporary directory it grants itself, for a
//! directory the handler's `needs` name and the author did not), and a
//! copy of it that cannot be used, for the checks of `preflight` and of a
//! failing `handle`.
//!
//! An unusable destination is made from what names it: a setting holding
//! a URL (named by a host need, or any `http(s)://` setting whose host is
//! granted) is pointed at a closed loopback port, granted instead of the
//! original host; a file a directory need's setting names becomes a
//! directory, in a fresh directory granted at the same place. A handler
//! whose destination no setting names cannot be pointed elsewhere: the
//! checks that need it are skipped, and say so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::grants::{AllowList, DirGrant, HostPattern, HostRule, Needs};
use crate::host::{PluginInfo, Sandbox};

/// Where `keyrot plugin test` puts a directory the handler needs and the
/// author did not grant, as the handler sees it.
pub const TEST_DIR: &str = "/keyrot-test";

/// Temporary directories the suite made; removed when dropped.
#[derive(Default)]
pub struct Made {
    dirs: Vec<TempDir>,
}

impl Made {
    pub(super) fn dir(&mut self) -> Result<PathBuf, String> {
        let dir = tempfile::Builder::new()
            .prefix("keyrot-plugin-test-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let path = dir.path().to_path_buf();
        self.dirs.push(dir);
        Ok(path)
    }
}

/// Grants a fresh temporary directory for each directory `needs` asks for
/// that the author did not grant, and names a file in [`TEST_DIR`] for each
/// such need's setting the author did not set. Returns what it did, as
/// flags.
pub fn provide(
    info: &PluginInfo,
    sandbox: &mut Sandbox,
    made: &mut Made,
) -> Result<Vec<String>, String> {
    let Some(needs) = &info.needs else {
        return Ok(Vec::new());
    };
    let described = |name: &str| info.settings.iter().any(|s| s.name == name);
    let mut provided = Vec::new();
    for need in &needs.directories {
        let setting = need.setting.as_deref().filter(|s| described(s));
        if let Some(name) = setting
            && need.path.is_empty()
            && !sandbox.settings.names().any(|n| n == name)
        {
            let file = format!("{TEST_DIR}/{name}");
            sandbox.settings = sandbox.settings.with_value(name, &file);
            provided.push(format!("--config {name}={file}"));
        }
    }
    let resolved = needs.directories(|s| sandbox.settings.value(s));
    for need in resolved {
        let guest = need.what.display().to_string();
        let granted = sandbox
            .grants
            .dirs
            .iter()
            .any(|g| Path::new(&g.guest) == need.what);
        if granted {
            continue;
        }
        let host = made.dir()?;
        provided.push(format!(
            "--allow-dir {}:{guest}{}",
            host.display(),
            if need.writable { "" } else { ":ro" }
        ));
        sandbox.grants.dirs.push(DirGrant {
            host,
            guest,
            read_only: !need.writable,
        });
    }
    Ok(provided)
}

/// `sandbox` as an operator who never heard of setting `name` would give
/// it: without the setting, nor the grants its needs asked for.
pub fn without_setting(info: &PluginInfo, sandbox: &Sandbox, name: &str) -> Sandbox {
    let mut without = sandbox.clone();
    without.settings = sandbox.settings.without(name);
    let Some(needs) = &info.needs else {
        return without;
    };
    let dirs_before = needs.directories(|s| sandbox.settings.value(s));
    let dirs_after = needs.directories(|s| without.settings.value(s));
    let within = |grant: &DirGrant, dirs: &[crate::grants::Resolved<PathBuf>]| {
        dirs.iter()
            .any(|d| Path::new(&grant.guest).starts_with(&d.what))
    };
    without
        .grants
        .dirs
        .retain(|g| within(g, &dirs_after) || !within(g, &dirs_before));
    let hosts_before = needs
        .hosts(|s| sandbox.settings.value(s))
        .unwrap_or_default();
    let hosts_after = needs
        .hosts(|s| without.settings.value(s))
        .unwrap_or_default();
    let covered = |rule: &HostRule, hosts: &[crate::grants::Resolved<HostPattern>]| {
        hosts.iter().any(|h| h.what.covers(rule))
    };
    let kept: Vec<HostRule> = sandbox
        .grants
        .hosts
        .rules()
        .iter()
        .filter(|r| covered(r, &hosts_after) || !covered(r, &hosts_before))
        .cloned()
        .collect();
    without.grants.hosts = AllowList::new(kept);
    without
}

/// A copy of `sandbox` whose destination cannot be used, and what was
/// changed, in words; or why none can be made.
pub fn unusable(
    info: &PluginInfo,
    sandbox: &Sandbox,
    made: &mut Made,
) -> Result<(Sandbox, String), String> {
    let mut changed = sandbox.clone();
    let mut what = Vec::new();
    for name in url_settings(info.needs.as_ref(), sandbox) {
        let Some(url) = sandbox.settings.value(&name) else {
            continue;
        };
        let Ok(original) = HostPattern::parse(url.trim()) else {
            continue;
        };
        let Some((closed_url, rule)) = closed(url)? else {
            continue;
        };
        let kept: Vec<HostRule> = changed
            .grants
            .hosts
            .rules()
            .iter()
            .filter(|r| !original.covers(r))
            .cloned()
            .chain([rule.clone()])
            .collect();
        changed.grants.hosts = AllowList::new(kept);
        changed.settings = changed.settings.with_value(&name, &closed_url);
        what.push(format!(
            "setting '{name}' pointed at {closed_url}, a closed port (--allow-host {rule})"
        ));
    }
    for (name, writable) in file_settings(info.needs.as_ref(), sandbox) {
        {
            let Some(file) = sandbox.settings.value(&name) else {
                continue;
            };
            let file = Path::new("/").join(file);
            let (Some(dir), Some(base)) = (file.parent(), file.file_name()) else {
                continue;
            };
            let host = made.dir()?;
            std::fs::create_dir(host.join(base))
                .map_err(|e| format!("cannot make a test directory: {e}"))?;
            let guest = dir.display().to_string();
            changed.grants.dirs.retain(|g| Path::new(&g.guest) != dir);
            changed.grants.dirs.push(DirGrant {
                host,
                guest,
                read_only: !writable,
            });
            what.push(format!(
                "setting '{name}' naming {}, a directory there",
                file.display()
            ));
        }
    }
    if what.is_empty() {
        return Err(
            "no setting names the destination (no URL setting, no directory need named by a \
             setting), so it cannot be pointed somewhere unreachable"
                .into(),
        );
    }
    Ok((changed, what.join("; ")))
}

/// The plain settings holding the path of a file the handler writes or
/// reads, and whether it writes there: those its directory needs name, and
/// any other whose value is a path inside a granted directory (for plugins
/// that declare no needs).
fn file_settings(needs: Option<&Needs>, sandbox: &Sandbox) -> Vec<(String, bool)> {
    let mut names: Vec<(String, bool)> = needs
        .map(|n| {
            let named = n.directories.iter();
            named
                .filter_map(|d| Some((d.setting.clone()?, d.writable)))
                .collect()
        })
        .unwrap_or_default();
    if needs.is_some() {
        return names;
    }
    for name in sandbox.settings.names() {
        let Some(value) = sandbox.settings.value(name) else {
            continue;
        };
        let path = Path::new(value);
        let grant = sandbox
            .grants
            .dirs
            .iter()
            .find(|g| path.parent() == Some(Path::new(&g.guest)) && path.file_name().is_some());
        if let Some(grant) = grant
            && !names.iter().any(|(n, _)| n == name)
        {
            names.push((name.to_string(), !grant.read_only));
        }
    }
    names
}

/// The plain settings holding a URL the handler sends requests to: those
/// its host needs name, and any other whose value is an `http(s)://` URL
/// to a granted host (for plugins that declare no needs).
fn url_settings(needs: Option<&Needs>, sandbox: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = needs
        .map(|n| n.hosts.iter().filter_map(|h| h.setting.clone()).collect())
        .unwrap_or_default();
    for name in sandbox.settings.names() {
        let Some(value) = sandbox.settings.value(name) else {
            continue;
        };
        let is_url = value.starts_with("http://") || value.starts_with("https://");
        let granted = HostPattern::parse(value.trim())
            .is_ok_and(|p| sandbox.grants.hosts.rules().iter().any(|r| p.covers(r)));
        if is_url && granted && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// `url` with its host and port replaced by a loopback port nothing
/// listens on, and the grant for it; `None` if it is not a URL.
fn closed(url: &str) -> Result<Option<(String, HostRule)>, String> {
    let Ok(mut parsed) = url::Url::parse(url.trim()) else {
        return Ok(None);
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Ok(None);
    }
    let port = closed_port()?;
    if parsed.set_host(Some("127.0.0.1")).is_err() || parsed.set_port(Some(port)).is_err() {
        return Ok(None);
    }
    let rule: HostRule = format!("{}://127.0.0.1:{port}", parsed.scheme()).parse()?;
    Ok(Some((parsed.to_string(), rule)))
}

/// A loopback port that was free a moment ago: bound, then let go.
fn closed_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{DirectoryNeed, HostNeed};
    use crate::host::{Setting, Settings};

    fn info(needs: Needs) -> PluginInfo {
        let setting = |name: &str| Setting {
            name: name.into(),
            description: "d".into(),
            required: true,
            secret: false,
        };
        PluginInfo {
            name: "t".into(),
            version: "1".into(),
            description: "d".into(),
            settings: vec![setting("path"), setting("url")],
            needs: Some(needs),
        }
    }

    fn file_needs() -> Needs {
        Needs {
            directories: vec![DirectoryNeed {
                path: String::new(),
                setting: Some("path".into()),
                writable: true,
                purpose: "p".into(),
            }],
            ..Needs::default()
        }
    }

    #[test]
    fn provides_a_directory_for_an_unset_path_setting() {
        let mut sandbox = Sandbox::default();
        let mut made = Made::default();
        let provided = provide(&info(file_needs()), &mut sandbox, &mut made).unwrap();
        assert_eq!(sandbox.settings.value("path"), Some("/keyrot-test/path"));
        assert_eq!(sandbox.grants.dirs.len(), 1);
        assert_eq!(sandbox.grants.dirs[0].guest, "/keyrot-test");
        assert!(!sandbox.grants.dirs[0].read_only && sandbox.grants.dirs[0].host.is_dir());
        assert_eq!(provided[0], "--config path=/keyrot-test/path");
        assert!(provided[1].starts_with("--allow-dir ") && provided[1].ends_with(":/keyrot-test"));
        // The author's own choice stays.
        let mut theirs = Sandbox {
            settings: Settings::new([("path".into(), "/data/x.env".into())]),
            grants: crate::Grants {
                dirs: vec!["/tmp:/data".parse().unwrap()],
                ..crate::Grants::default()
            },
            ..Sandbox::default()
        };
        assert!(
            provide(&info(file_needs()), &mut theirs, &mut made)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unusable_file_is_a_directory_in_a_fresh_grant() {
        let mut sandbox = Sandbox::default();
        let mut made = Made::default();
        provide(&info(file_needs()), &mut sandbox, &mut made).unwrap();
        let (bad, what) = unusable(&info(file_needs()), &sandbox, &mut made).unwrap();
        assert!(
            what.contains("/keyrot-test/path, a directory there"),
            "{what}"
        );
        assert_eq!(bad.grants.dirs.len(), 1);
        assert_ne!(bad.grants.dirs[0].host, sandbox.grants.dirs[0].host);
        assert!(bad.grants.dirs[0].host.join("path").is_dir());
    }

    #[test]
    fn an_unusable_url_is_a_closed_port_granted_instead() {
        let needs = Needs {
            hosts: vec![HostNeed {
                host: String::new(),
                setting: Some("url".into()),
                purpose: "p".into(),
            }],
            ..Needs::default()
        };
        let sandbox = Sandbox {
            settings: Settings::new([("url".into(), "http://127.0.0.1:8080/v1/kv".into())]),
            grants: crate::Grants {
                hosts: AllowList::new(["http://127.0.0.1:8080".parse().unwrap()]),
                ..crate::Grants::default()
            },
            ..Sandbox::default()
        };
        let mut made = Made::default();
        let (bad, what) = unusable(&info(needs), &sandbox, &mut made).unwrap();
        let url = bad.settings.value("url").unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/v1/kv"),
            "{url}"
        );
        assert_ne!(url, "http://127.0.0.1:8080/v1/kv");
        let rules = bad.grants.hosts.rules();
        assert_eq!(rules.len(), 1);
        assert!(url.contains(&format!(":{}/", rules[0].port)), "{what}");
        // Without needs, a URL setting to a granted host is found too.
        let old = PluginInfo {
            needs: None,
            ..info(Needs::default())
        };
        assert!(unusable(&old, &sandbox, &mut made).is_ok());
        let nothing = unusable(&old, &Sandbox::default(), &mut made).unwrap_err();
        assert!(
            nothing.contains("no setting names the destination"),
            "{nothing}"
        );
    }
}
