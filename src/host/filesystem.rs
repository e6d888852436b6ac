//! The filesystem capability: exactly the directories the operator granted
//! (`--allow-dir`), preopened per call; nothing else of the host's files
//! exists for the plugin.
//!
//! One operation is refused even inside a writable grant: creating a
//! symlink. The plugin cannot follow a symlink out of its grant, but other
//! programs reading the directory later would, so a plugin could leave a
//! link to `~/.ssh` behind for them.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::capability::{CallSetup, Capability};
use super::{HostState, Plugin, PluginError, Sandbox};
use crate::grants::DirGrant;

/// The granted directories (`--allow-dir`), and nothing else.
pub(super) struct Filesystem;

impl Capability for Filesystem {
    type State = ();

    const INSPECT: &'static [(&'static str, &'static str)] = &[(
        "wasi:filesystem/",
        "filesystem (sees only --allow-dir directories)",
    )];

    /// WASI p2 (linked first, by the engine) brings the filesystem; this
    /// only takes symlink creation away.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        refuse_symlinks(linker)
    }

    /// A plugin that declares its directories (contract 0.4.0 on) is
    /// granted those, with the access it asked for, and no others.
    fn check_described(
        name: &str,
        info: &super::PluginInfo,
        sandbox: &Sandbox,
    ) -> Result<(), PluginError> {
        let Some(needs) = &info.needs else {
            return Ok(());
        };
        let dirs = needs.directories(|s| sandbox.settings.value(s));
        crate::grants::check_directories(name, &dirs, &sandbox.grants.dirs, "--allow-dir")
            .map_err(|e| PluginError::Grants(super::escape_control(&e).into_owned()))
    }

    /// Every granted directory exists, so a typo fails before any key is
    /// created.
    fn check_grants(_plugin: &Plugin, sandbox: &Sandbox) -> Result<(), PluginError> {
        for dir in &sandbox.grants.dirs {
            dir.check().map_err(PluginError::Grants)?;
        }
        Ok(())
    }

    fn prepare(call: &CallSetup<'_>, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        preopen(wasi, &call.sandbox.grants.dirs)
    }
}

/// The filesystem interface wasmtime-wasi links; components importing any
/// semver-compatible 0.2.x version resolve to it.
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Preopens each granted directory at its guest path.
fn preopen(builder: &mut WasiCtxBuilder, dirs: &[DirGrant]) -> Result<(), String> {
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

/// Replaces `descriptor.symlink-at` (linked by wasmtime-wasi) with one that
/// always fails with `not-permitted`.
fn refuse_symlinks(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = linker.instance(TYPES)?.func_wrap(
        "[method]descriptor.symlink-at",
        |_store,
         (_dir, _target, _link): (
            Resource<wasmtime_wasi::filesystem::Descriptor>,
            String,
            String,
        )| Ok((Err::<(), ErrorCode>(ErrorCode::NotPermitted),)),
    );
    linker.allow_shadowing(false);
    result
}
