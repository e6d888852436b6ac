//! What is linked but never granted: raw sockets, name lookup, the
//! environment and the arguments. WASI p2 links them all, so components
//! from any toolchain instantiate; every call's WASI context refuses the
//! sockets and starts with no environment variables and no arguments.

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use super::HostState;
use super::capability::{CallSetup, Capability};

/// Sockets, name lookup, environment and arguments: always denied.
pub(super) struct AlwaysDenied;

impl Capability for AlwaysDenied {
    type State = ();

    const INSPECT: &'static [(&'static str, &'static str)] = &[
        ("wasi:sockets/", "raw sockets (always denied)"),
        (
            "wasi:cli/environment",
            "environment and arguments (always empty)",
        ),
    ];

    /// Nothing of its own: the engine links all of WASI p2 first.
    fn add_to_linker(_linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn prepare(_call: &CallSetup<'_>, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        // A new context has no environment and no arguments already.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Ok(())
    }
}
