//! Where keyrot keeps its own files: the compiled-code cache and the state
//! directory. Plugins must never be able to write the first or see the
//! second (see [`crate::grants::check_private_dirs`]).

use std::path::{Path, PathBuf};

/// `KEYROT_CACHE_DIR`, else `$XDG_CACHE_HOME/keyrot`, else
/// `~/.cache/keyrot`; `None` if none can be found.
pub fn cache_dir() -> Option<PathBuf> {
    user_dir("KEYROT_CACHE_DIR", "XDG_CACHE_HOME", ".cache")
}

/// `KEYROT_STATE_DIR`, else `$XDG_STATE_HOME/keyrot`, else
/// `~/.local/state/keyrot`; `None` if none can be found.
pub fn state_dir() -> Option<PathBuf> {
    user_dir("KEYROT_STATE_DIR", "XDG_STATE_HOME", ".local/state")
}

fn user_dir(own: &str, xdg: &str, under_home: &str) -> Option<PathBuf> {
    let env_dir = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(dir) = env_dir(own) {
        return Some(dir.into());
    }
    if let Some(dir) = env_dir(xdg) {
        return Some(Path::new(&dir).join("keyrot"));
    }
    env_dir("HOME").map(|home| Path::new(&home).join(under_home).join("keyrot"))
}
