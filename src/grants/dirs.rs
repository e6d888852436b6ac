//! Directories a plugin may see, and the refusal of any that would reach
//! keyrot's own cache or state.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::expand_home;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
