//! The process's one Wasmtime engine and one linker, shared by every plugin
//! it loads (one per fleet target).

use std::sync::OnceLock;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use super::{Capabilities, HostState};

/// The process's one engine, built on first use: one set of compiled-code
/// settings, one epoch ticker. Epoch interruption on, everything else
/// Wasmtime's defaults (which the compiled-code cache is keyed on).
///
/// Instances use Wasmtime's default on-demand allocator. With entries
/// mapped from the cache, instantiation is already cheap (memory images
/// are mapped copy-on-write from the file): the pooling allocator, tried
/// with copy-on-write images, changed a warm start by under 0.5 ms (Python
/// 4.3 ms either way; `cargo bench --bench startup`), while it would
/// reserve about 1 TiB of address space up front (4 GiB per memory slot),
/// fix per-component counts of memories, tables and instances, and fail
/// instantiations past its slot count instead of growing.
pub(super) fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// All of WASI p2 (granting nothing by itself), then every capability's
/// interfaces: one linker for the process's engine, shared by every plugin.
pub(super) fn linker() -> Result<&'static Linker<HostState>, String> {
    static LINKER: OnceLock<Result<Linker<HostState>, String>> = OnceLock::new();
    let engine = engine()?;
    LINKER
        .get_or_init(|| new_linker(engine).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // First: capabilities may replace parts of it (the filesystem refuses
    // symlinks).
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}
