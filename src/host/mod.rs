//! The WebAssembly component host: runs a `keyrot:handler` plugin as a
//! [`NewKeyHandler`], and a `keyrot:reporter` plugin as a
//! [`Notifier`](crate::notify::Notifier), sandboxed alike.
//!
//! All of WASI p2 and `wasi:http` are linked, so components from any
//! toolchain instantiate, but nothing is granted unless the operator names
//! it (see [`crate::grants`]): no files, no environment, no arguments, no
//! network, no inherited stdio. Each call (`describe`, `preflight`,
//! `handle`) gets a fresh store with a memory cap, a resource-table cap,
//! an epoch deadline and an outer wall-clock timeout.
//!
//! This module loads and calls; the rest is one module per concern:
//!
//! - `plugin`: reading, verifying, compiling (via the [`cache`]) and
//!   linking a component: a [`Plugin`].
//! - `contract`: the `keyrot:handler` versions keyrot loads, called
//!   through one trait, and the `keyrot:reporter` versions, through another.
//! - `reporter`: a reporter plugin checked against its sandbox: a
//!   [`WasmReporter`].
//! - `call`: one call in a fresh store, and what its failures say.
//! - `capability`: the shape of a sandbox capability, and the list below
//!   that puts them together. One module each: [`http`], `filesystem`,
//!   `denied` (what is linked but never granted), [`config`], `logging`,
//!   `limits`.
//! - `aws_sign`: the identity that signs requests to `--aws-sign` hosts
//!   (part of [`http`]).
//! - `host_ca`: the TLS client of `--allow-host-ca` hosts, which trusts
//!   their private CA only (part of [`http`]).
//! - [`witness`]: what a plugin read and said, unredacted, when a
//!   [`Sandbox`] is given a witness (`keyrot plugin test` does).
//! - `engine`: the process's one engine and one linker.
//!
//! A [`WasmHandler`] is a plugin checked against the operator's [`Sandbox`]
//! and ready to call. The process has one Wasmtime engine, one linker and
//! one epoch ticker, shared by every plugin it loads (one per fleet
//! target); what belongs to one call (settings, grants, limits, logs) lives
//! in that call's store.

mod aws_sign;
pub mod cache;
mod call;
mod capability;
pub mod config;
mod contract;
mod denied;
mod engine;
mod filesystem;
mod host_ca;
pub mod http;
mod limits;
mod logging;
mod plugin;
mod reporter;
pub mod witness;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use zeroize::Zeroizing;

pub use self::aws_sign::AwsSigner;
pub use self::cache::{CacheMode, CacheOutcome};
use self::call::{PluginCall, guarded};
use self::capability::{CallSetup, capabilities};
pub use self::config::Settings;
pub use self::contract::{CURRENT_CONTRACT, CURRENT_REPORTER_CONTRACT, PluginInfo, Setting};
use self::limits::EpochTicker;
pub use self::limits::PluginLimits;
use self::plugin::Linked;
pub use self::plugin::{LoadOptions, Plugin, PluginError, PluginKind};
pub use self::reporter::WasmReporter;
use crate::grants::Grants;
use crate::handler::{HandlerError, HandlerLog, NewKeyHandler, Rotation};
use crate::iam::NewAccessKey;
use crate::text::escape_control;

// Settings come first: a grant that names a setting's place (a URL, a
// file) is checked once the settings are known to be complete.
capabilities! {
    /// Settings through `wasi:config`.
    config: config::Config,
    /// Outbound HTTP: allowed hosts only, injected headers, capped.
    http: http::Http,
    /// The granted directories, preopened; symlinks refused.
    filesystem: filesystem::Filesystem,
    /// Sockets, the environment and arguments: linked, never granted.
    denied: denied::AlwaysDenied,
    /// `wasi:logging` and captured stdout/stderr.
    logging: logging::Logging,
    /// Memory and time.
    limits: limits::Limits,
}

/// What a plugin is given: settings, grants, limits.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    /// Settings delivered through `wasi:config`.
    pub settings: Settings,
    /// Hosts, directories and injected headers.
    pub grants: Grants,
    /// Memory and time limits.
    pub limits: PluginLimits,
    /// Who signs requests to the `--aws-sign` hosts, resolved.
    pub signer: Option<Arc<AwsSigner>>,
    /// Records what the plugin reads and says in each call (`keyrot plugin
    /// test`); `None` in a real run.
    pub witness: Option<Arc<witness::Witness>>,
}

/// What `keyrot plugin inspect` shows.
#[derive(Clone, Debug, Serialize)]
pub struct PluginReport {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its sha256, for `--plugin-sha256`.
    pub sha256: String,
    /// The contract version it speaks, e.g. `keyrot:handler@0.3.0`.
    pub contract: &'static str,
    /// `handler` or `reporter`.
    pub kind: PluginKind,
    /// What `describe()` said.
    #[serde(flatten)]
    pub info: PluginInfo,
    /// The capabilities its imports ask for.
    pub wants: Vec<&'static str>,
    /// Set by a caller that checked grants against the declared needs
    /// (`plugin inspect --allow-host ...`): what does not fit, empty when
    /// all does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<Vec<String>>,
    /// Every interface it imports.
    pub imports: Vec<String>,
}

/// A plugin checked against its sandbox, ready to preflight and handle.
pub struct WasmHandler {
    inner: Loaded,
}

impl WasmHandler {
    /// Loads the plugin at `path` (cached) with settings and limits and no
    /// other grants: the simplest way to run a handler from Rust.
    pub async fn load(
        path: &Path,
        settings: Settings,
        limits: PluginLimits,
    ) -> Result<Self, PluginError> {
        let plugin = Plugin::load(path, &LoadOptions::default())?;
        let sandbox = Sandbox {
            settings,
            limits,
            ..Sandbox::default()
        };
        Self::new(plugin, sandbox).await
    }

    /// Checks the plugin against its sandbox (what `describe()` says
    /// against the settings and grants, then its imports against the
    /// grants), before any key exists. A reporter given as a handler is
    /// refused.
    pub async fn new(plugin: Plugin, sandbox: Sandbox) -> Result<Self, PluginError> {
        Ok(Self {
            inner: Loaded::new(plugin, sandbox, PluginKind::Handler).await?,
        })
    }

    /// What a plugin (handler or reporter) says about itself and what it
    /// imports, without settings or grants.
    pub async fn inspect(plugin: Plugin) -> Result<PluginReport, PluginError> {
        let path = plugin.path().to_path_buf();
        let sha256 = plugin.sha256().to_string();
        let contract = plugin.contract();
        let kind = plugin.kind();
        let wants = plugin.capabilities();
        let imports = plugin.imports().to_vec();
        let loaded = Loaded::described(plugin, Sandbox::default()).await?;
        Ok(PluginReport {
            path,
            sha256,
            contract,
            kind,
            info: loaded.info,
            wants,
            imports,
            fit: None,
        })
    }

    /// The plugin's name (from `describe`, else the file name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.inner.plugin
    }

    fn handler(&self) -> &dyn contract::Handler {
        match &self.inner.plugin.linked {
            Linked::Handler(handler) => &**handler,
            Linked::Reporter(_) => unreachable!("Loaded::new checked the kind"),
        }
    }
}

/// A plugin of either kind checked against its sandbox and described:
/// what [`WasmHandler`] and [`WasmReporter`] are made of.
struct Loaded {
    plugin: Plugin,
    name: String,
    info: PluginInfo,
    sandbox: Sandbox,
    /// Keeps the process's epoch ticker running while this plugin lives.
    _ticker: Arc<EpochTicker>,
}

impl Loaded {
    /// Checks the plugin's kind, what `describe()` says against the
    /// settings and grants, then its imports against the grants.
    async fn new(plugin: Plugin, sandbox: Sandbox, kind: PluginKind) -> Result<Self, PluginError> {
        if plugin.kind() != kind {
            let flag = match kind {
                PluginKind::Handler => "--notify (a [[notify]] block in a job file)",
                PluginKind::Reporter => "--plugin (`plugin` in a job file)",
            };
            return Err(PluginError::Invalid {
                path: plugin.path().to_path_buf(),
                reason: format!(
                    "is a keyrot {} ({}), not a {}: it belongs to {flag}",
                    plugin.kind().word(),
                    plugin.contract(),
                    kind.word()
                ),
            });
        }
        // What it declares first (describe runs with nothing granted): a
        // plugin that names its needs gets errors that name them.
        let loaded = Self::described(plugin, sandbox).await?;
        Capabilities::check_described(&loaded.name, &loaded.info, &loaded.sandbox)?;
        Capabilities::check_grants(&loaded.plugin, &loaded.sandbox)?;
        Ok(loaded)
    }

    /// Builds it and asks the plugin to describe itself.
    async fn described(plugin: Plugin, sandbox: Sandbox) -> Result<Self, PluginError> {
        let name = plugin
            .path()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut loaded = Self {
            _ticker: EpochTicker::shared(&plugin.engine),
            plugin,
            name,
            info: PluginInfo::default(),
            sandbox,
        };
        let info = loaded
            .describe()
            .await
            .map_err(|e| PluginError::Settings(format!("describe failed: {e}")))?;
        if !info.name.trim().is_empty() {
            // The name prefixes every message about the plugin: inert text.
            loaded.name = escape_control(&info.name).into_owned();
        }
        loaded.info = info;
        Ok(loaded)
    }

    /// `describe()`, in a sandbox with the limits and nothing else: it must
    /// not depend on grants or settings, and its answer is printed.
    async fn describe(&self) -> Result<PluginInfo, HandlerError> {
        let bare = Sandbox {
            limits: self.sandbox.limits,
            ..Sandbox::default()
        };
        let secrets = self.secrets(None);
        let mut call = self.start(&bare, &secrets)?;
        let describe = match &self.plugin.linked {
            Linked::Handler(handler) => handler.describe(call.store()),
            Linked::Reporter(reporter) => reporter.describe(call.store()),
        };
        let ran = guarded(&bare.limits, async { describe.await.map(Ok) }).await;
        call.finish(ran, &HandlerLog::new())
    }

    /// A call in a fresh store for `sandbox`.
    fn start<'a>(
        &'a self,
        sandbox: &'a Sandbox,
        secrets: &'a [Zeroizing<String>],
    ) -> Result<PluginCall<'a>, HandlerError> {
        let setup = CallSetup {
            plugin: &self.name,
            sandbox,
            secrets,
        };
        PluginCall::new(&self.plugin.engine, &setup)
    }

    /// Values to scrub from everything the plugin says during a call: every
    /// capability's secrets and, when handling, the new key's secret.
    fn secrets(&self, key: Option<&NewAccessKey>) -> Vec<Zeroizing<String>> {
        let key = key.map(|k| k.secret_access_key.expose());
        Capabilities::secrets(&self.sandbox)
            .into_iter()
            .chain(key)
            .map(|s| Zeroizing::new(s.to_string()))
            .collect()
    }
}

#[async_trait]
impl NewKeyHandler for WasmHandler {
    async fn preflight(&self, rotation: &Rotation, log: &HandlerLog) -> Result<(), HandlerError> {
        let inner = &self.inner;
        let secrets = inner.secrets(None);
        let mut call = inner.start(&inner.sandbox, &secrets)?;
        let limits = &inner.sandbox.limits;
        let ran = guarded(limits, self.handler().preflight(call.store(), rotation)).await;
        call.finish(ran, log)
    }

    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError> {
        let inner = &self.inner;
        let secrets = inner.secrets(Some(key));
        let mut call = inner.start(&inner.sandbox, &secrets)?;
        let limits = &inner.sandbox.limits;
        let ran = guarded(limits, self.handler().handle(call.store(), rotation, key)).await;
        call.finish(ran, log)
    }
}
