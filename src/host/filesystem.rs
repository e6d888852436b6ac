//! The filesystem capability: exactly the directories the operator granted
//! (`--allow-dir`), preopened per call; nothing else of the host's files
//! exists for the plugin.

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::grants::DirGrant;

/// Preopens each granted directory at its guest path.
pub(super) fn preopen(builder: &mut WasiCtxBuilder, dirs: &[DirGrant]) -> Result<(), String> {
    for dir in dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| format!("cannot open granted directory {}: {e}", dir.host.display()))?;
    }
    Ok(())
}
