//! The shape every sandbox capability has, and the list that puts them
//! together.
//!
//! A capability is one thing a plugin may be given: settings
//! ([`config`](super::config)), a log ([`logging`](super::logging)),
//! outbound HTTP ([`http`](super::http)), directories
//! ([`filesystem`](super::filesystem)), memory and time
//! ([`limits`](super::limits)), and what is linked but never given
//! ([`denied`](super::denied)). Each lives in one module and implements
//! [`Capability`]: it links its interfaces into the process's one linker
//! (linking grants nothing), checks the operator's grants against what the
//! plugin imports or declares, says in words what a plugin importing it
//! asks for (`plugin inspect`), names the secrets its grants hold (redacted
//! from everything the plugin says), and builds its part of each call's
//! fresh store. `config.rs` is the smallest complete example. The shape is
//! `wasmtime_wasi_config::add_to_linker` plus Spin's factors (`init` links,
//! `configure_app` checks, `prepare` builds per-instance state).
//!
//! To add one (request signing, say): put its grant, as plain data with its
//! own parser and tests, in [`crate::grants`]; write `src/host/NAME.rs`;
//! add a line to the `capabilities!` list in `host/mod.rs`. The list
//! generates the store's state, [`HostState`], with one field per
//! capability, and [`Capabilities`], which links, checks, describes and
//! prepares them all in the list's order. The new file looks like this:
//!
//! ```ignore
//! //! The `keyrot:aws/signing` capability: signs requests with a key the
//! //! plugin never sees.
//! pub(super) struct Signing;
//!
//! impl Capability for Signing {
//!     type State = Signer; // what one call keeps: `state.signing`
//!     const INSPECT: &'static [(&'static str, &'static str)] =
//!         &[("keyrot:aws/signing", "AWS request signing (needs --sign-with)")];
//!
//!     fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
//!         signing::add_to_linker::<HostState, HasSelf<Signer>>(linker, |s| &mut s.signing)
//!     }
//!     fn check_grants(plugin: &Plugin, sandbox: &Sandbox) -> Result<(), PluginError> {
//!         // imports it, but nothing granted: PluginError::Grants("... add --sign-with")
//!     }
//!     fn secrets(sandbox: &Sandbox) -> Vec<&str> {
//!         // the signing key's secret, so it is redacted from the plugin's output
//!     }
//!     fn prepare(call: &CallSetup<'_>, _wasi: &mut WasiCtxBuilder) -> Result<Signer, String> {
//!         Ok(Signer::new(&call.sandbox.grants.signing))
//!     }
//! }
//! ```

use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtxBuilder, WasiCtxView, WasiView};
use zeroize::Zeroizing;

use super::{HostState, Plugin, PluginError, PluginInfo, Sandbox};

/// One capability of the sandbox. Every method but [`Capability::prepare`]
/// and [`Capability::add_to_linker`] has a default that does nothing.
pub(super) trait Capability {
    /// What one call's store keeps for this capability.
    type State: Send + 'static;

    /// For `plugin inspect`: import-name prefixes this capability serves,
    /// each with what a plugin importing it is given, in words.
    const INSPECT: &'static [(&'static str, &'static str)] = &[];

    /// Links this capability's interfaces. Linking grants nothing: what a
    /// call may do is decided by that call's state.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Before the plugin first runs, and before any key exists: whether
    /// the operator's grants fit what the plugin imports.
    fn check_grants(plugin: &Plugin, sandbox: &Sandbox) -> Result<(), PluginError> {
        let _ = (plugin, sandbox);
        Ok(())
    }

    /// Once the plugin has described itself: whether the sandbox fits what
    /// it says it needs.
    fn check_described(
        name: &str,
        info: &PluginInfo,
        sandbox: &Sandbox,
    ) -> Result<(), PluginError> {
        let _ = (name, info, sandbox);
        Ok(())
    }

    /// Values of the operator's grants that the plugin's output (its log,
    /// its errors) must never show: redacted from every call.
    fn secrets(sandbox: &Sandbox) -> Vec<&str> {
        let _ = sandbox;
        Vec::new()
    }

    /// This capability's state for one call, and its part of the call's
    /// WASI context (which starts out granting nothing).
    fn prepare(call: &CallSetup<'_>, wasi: &mut WasiCtxBuilder) -> Result<Self::State, String>;

    /// Sets up the call's store once it exists (the limits use this).
    fn arm(store: &mut Store<HostState>, call: &CallSetup<'_>) {
        let _ = (store, call);
    }
}

/// What a capability is told about the call it prepares for.
pub(super) struct CallSetup<'a> {
    /// The plugin's name, for its log and messages.
    pub plugin: &'a str,
    /// What the call is given. `describe` gets the limits and nothing else.
    pub sandbox: &'a Sandbox,
    /// Values to scrub from everything the plugin says during the call.
    pub secrets: &'a [Zeroizing<String>],
}

/// Resource handles (streams, requests, ...) one call may hold at once.
const MAX_TABLE_ENTRIES: usize = 10_000;

/// Declares the capabilities, in order (the order `plugin inspect` lists
/// them in, links them in and checks grants in): generates [`HostState`]
/// and [`Capabilities`]. Each line is `field: Type,`, the field naming the
/// capability's state in [`HostState`] (`wasi` and `table` are taken).
macro_rules! capabilities {
    ($($(#[$doc:meta])* $field:ident: $capability:ty,)*) => {
        /// Everything one call's store holds: WASI's context and the
        /// resource table its interfaces and `wasi:http` share, and each
        /// capability's state. Fresh for every call, dropped after it.
        pub(crate) struct HostState {
            wasi: wasmtime_wasi::WasiCtx,
            table: wasmtime::component::ResourceTable,
            $(
                $(#[$doc])*
                #[allow(dead_code, reason = "a capability may keep nothing per call: `()`")]
                $field: <$capability as $crate::host::capability::Capability>::State,
            )*
        }

        /// Every capability at once, in the list's order.
        pub(super) struct Capabilities;

        impl Capabilities {
            /// Links every capability's interfaces.
            fn add_to_linker(
                linker: &mut wasmtime::component::Linker<HostState>,
            ) -> wasmtime::Result<()> {
                use $crate::host::capability::Capability;
                $(<$capability>::add_to_linker(linker)?;)*
                Ok(())
            }

            /// What a plugin with these imports asks for, in words.
            fn inspect(imports: &[String]) -> Vec<&'static str> {
                use $crate::host::capability::Capability;
                let mut wants = Vec::new();
                $($crate::host::capability::wanted(<$capability>::INSPECT, imports, &mut wants);)*
                wants
            }

            /// Every capability's check of the grants against the imports.
            fn check_grants(
                plugin: &$crate::host::Plugin,
                sandbox: &$crate::host::Sandbox,
            ) -> Result<(), $crate::host::PluginError> {
                use $crate::host::capability::Capability;
                $(<$capability>::check_grants(plugin, sandbox)?;)*
                Ok(())
            }

            /// Every capability's check against what the plugin described.
            fn check_described(
                name: &str,
                info: &$crate::host::PluginInfo,
                sandbox: &$crate::host::Sandbox,
            ) -> Result<(), $crate::host::PluginError> {
                use $crate::host::capability::Capability;
                $(<$capability>::check_described(name, info, sandbox)?;)*
                Ok(())
            }

            /// Every capability's secrets, for redaction.
            fn secrets(sandbox: &$crate::host::Sandbox) -> Vec<&str> {
                use $crate::host::capability::Capability;
                let mut secrets = Vec::new();
                $(secrets.extend(<$capability>::secrets(sandbox));)*
                secrets
            }

            /// A fresh store for one call, holding every capability's state.
            fn new_store(
                engine: &wasmtime::Engine,
                call: &$crate::host::capability::CallSetup<'_>,
            ) -> Result<wasmtime::Store<HostState>, String> {
                use $crate::host::capability::Capability;
                let mut wasi = wasmtime_wasi::WasiCtx::builder();
                $(let $field = <$capability>::prepare(call, &mut wasi)?;)*
                let state = HostState {
                    wasi: wasi.build(),
                    table: $crate::host::capability::bounded_table(),
                    $($field,)*
                };
                let mut store = wasmtime::Store::new(engine, state);
                $(<$capability>::arm(&mut store, call);)*
                Ok(store)
            }
        }
    };
}
pub(super) use capabilities;

/// Adds the words for each of `inspect`'s prefixes that some import has.
pub(super) fn wanted(
    inspect: &[(&str, &'static str)],
    imports: &[String],
    wants: &mut Vec<&'static str>,
) {
    for (prefix, words) in inspect {
        if imports.iter().any(|i| i.starts_with(prefix)) {
            wants.push(words);
        }
    }
}

/// An empty resource table, capped.
pub(super) fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_TABLE_ENTRIES);
    table
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
