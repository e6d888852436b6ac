//! The WebAssembly component host: runs a `keyrot:handler` plugin as a
//! [`NewKeyHandler`], sandboxed.
//!
//! All of WASI p2 and `wasi:http` are linked, so components from any
//! toolchain instantiate, but nothing is granted unless the operator names
//! it (see [`crate::grants`]): no files, no environment, no arguments, no
//! network, no inherited stdio. Each call (`describe`, `preflight`,
//! `handle`) gets a fresh [`Store`] with a memory cap, a resource-table cap,
//! an epoch deadline and an outer wall-clock timeout. Each capability lives
//! in its own module: [`config`] (settings), `logging` (log lines and
//! stdio), `http` (outbound requests) and `filesystem` (granted dirs).
//!
//! Loading is split in two: a [`Plugin`] is a compiled, linked component
//! (from the [`cache`] when possible); a [`WasmHandler`] is a plugin checked
//! against the operator's [`Sandbox`] and ready to call. The process has one
//! Wasmtime engine, one linker and one epoch ticker, shared by every plugin
//! it loads (one per fleet target); what belongs to one call (settings,
//! grants, limits, logs) lives in that call's store.

pub mod cache;
pub mod config;
mod filesystem;
pub mod http;
mod limits;
mod logging;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use zeroize::{Zeroize, Zeroizing};

pub use self::cache::{CacheMode, CacheOutcome};
pub use self::config::Settings;
pub use self::limits::PluginLimits;
use self::limits::{EpochTicker, MemoryLimiter};
use self::logging::{CapturedOutput, MAX_OUTPUT_BYTES, PluginLog};
use crate::grants::{AllowList, Grants, HeaderInjection};
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog, NewKeyHandler, Rotation};
use crate::iam::NewAccessKey;
use crate::text::{cap_error, escape_control};

/// Rust bindings for the current `keyrot:handler` world, in `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        additional_derives: [serde::Serialize],
    });
}

/// Rust bindings for the 0.1.0 world, frozen in `wit/0.1.0/`, so plugins
/// built against it keep working. It imports the same WASI interfaces as the
/// current world, which are linked once.
mod bindings_v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/0.1.0",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        with: {
            "wasi:config/store": super::bindings::wasi::config::store,
            "wasi:logging/logging": super::bindings::wasi::logging::logging,
        },
    });
}

use bindings::keyrot::handler::types as wit;
pub use bindings::keyrot::handler::types::{PluginInfo, Setting};
use bindings_v0_1::keyrot::handler::types as wit_v0_1;

/// The contract version plugins built from `wit/` speak.
pub const CURRENT_CONTRACT: &str = "keyrot:handler@0.2.0";

/// A version of the `keyrot:handler` contract that keyrot loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contract {
    /// The current one, in `wit/`.
    V0_2,
    /// The first one, frozen in `wit/0.1.0/`: no account id.
    V0_1,
}

impl Contract {
    /// Newest first: a plugin exporting several speaks the newest.
    const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The package, e.g. `keyrot:handler@0.2.0`.
    fn name(self) -> &'static str {
        match self {
            Contract::V0_2 => CURRENT_CONTRACT,
            Contract::V0_1 => "keyrot:handler@0.1.0",
        }
    }

    /// The interface a plugin of this version exports.
    fn export(self) -> &'static str {
        match self {
            Contract::V0_2 => "keyrot:handler/handler@0.2.0",
            Contract::V0_1 => "keyrot:handler/handler@0.1.0",
        }
    }
}

/// The world a plugin must target, in both accepted versions, for error
/// messages.
const WORLD: &str = "keyrot:handler/new-key-handler@0.2.0 (or the older @0.1.0)";

/// A linked plugin, by the contract version it speaks.
#[derive(Clone)]
enum HandlerPre {
    /// `keyrot:handler@0.2.0`, the current contract.
    V0_2(bindings::NewKeyHandlerPre<HostState>),
    /// `keyrot:handler@0.1.0`: no account id.
    V0_1(bindings_v0_1::NewKeyHandlerPre<HostState>),
}

/// Resource handles (streams, requests, ...) one call may hold at once.
const MAX_TABLE_ENTRIES: usize = 10_000;

/// Why a plugin could not be loaded or set up. Nothing has touched IAM yet.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is missing or unreadable.
    #[error("cannot read plugin '{}': {cause}", path.display())]
    Read {
        /// The plugin path.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not the one the operator pinned.
    #[error(
        "plugin '{}' has sha256 {actual}, not the pinned {expected}: refusing to run it",
        path.display()
    )]
    Digest {
        /// The plugin path.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The file is not a WebAssembly component.
    #[error("plugin '{}' {what}", path.display())]
    NotAComponent {
        /// The plugin path.
        path: PathBuf,
        /// What it is instead, and how to fix it.
        what: &'static str,
    },
    /// The component is malformed or does not fit the keyrot world.
    #[error("plugin '{}' {reason}", path.display())]
    Invalid {
        /// The plugin path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin needs a capability the operator did not grant.
    #[error("{0}")]
    Grants(String),
    /// `describe` failed, or the settings do not match it.
    #[error("{0}")]
    Settings(String),
}

/// How to load a plugin.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Where compiled plugins are cached.
    pub cache: CacheMode,
    /// Refuse any file whose sha256 (hex) is not this.
    pub expected_sha256: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            cache: CacheMode::user_default(),
            expected_sha256: None,
        }
    }
}

/// A compiled, linked component, not yet configured or called. Clones are
/// cheap and share the compiled code and the linked `InstancePre`.
#[derive(Clone)]
pub struct Plugin {
    path: PathBuf,
    sha256: String,
    engine: Engine,
    pre: HandlerPre,
    imports: Vec<String>,
    exports: Vec<String>,
    cache: CacheOutcome,
}

impl Plugin {
    /// Reads, verifies, compiles (or loads from the cache) and links the
    /// component at `path`. A pinned plugin (`expected_sha256`) is always
    /// hashed; an unpinned one whose file has not changed since the cache
    /// last hashed it is not read at all (see [`cache`]).
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self, PluginError> {
        let read_error = |cause| PluginError::Read {
            path: path.to_path_buf(),
            cause,
        };
        let hashing_began = std::time::SystemTime::now();
        let mut file = crate::input::open_regular(path).map_err(read_error)?;
        let stamp = cache::FileStamp::of(&file.metadata().map_err(read_error)?);
        let cache = cache::Cache::open(&options.cache);
        let known = cache.known_sha256(&stamp);
        // A pin is always checked against the bytes read now, never against
        // a record of an earlier read. Unpinned, an unchanged file (same
        // stamp) need not be read at all when its compiled form is cached.
        let (sha256, head, hashed) = match &known {
            Some(sha256) if options.expected_sha256.is_none() => {
                (sha256.clone(), read_head(&file).map_err(read_error)?, false)
            }
            _ => {
                // Hashed as it streams by: a cached plugin's bytes are
                // needed for nothing else.
                let (sha256, head) = hash_file(&mut file).map_err(read_error)?;
                (sha256, head, true)
            }
        };
        if let Some(expected) = &options.expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(PluginError::Digest {
                path: path.to_path_buf(),
                expected: expected.to_ascii_lowercase(),
                actual: sha256,
            });
        }
        check_header(path, &head)?;
        let invalid = |reason: String| PluginError::Invalid {
            path: path.to_path_buf(),
            reason,
        };

        let engine = engine()
            .map_err(|e| invalid(format!("cannot start the engine: {e}")))?
            .clone();
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let (component, outcome, sha256) = match cache.lookup(&engine, &sha256) {
            Some(component) => (component, CacheOutcome::Hit, sha256),
            None => {
                // Compile exactly the bytes whose hash was (or is now)
                // checked: read them again and hash them again.
                let bytes = read_all(&mut file).map_err(read_error)?;
                let actual = hex::encode(Sha256::digest(&bytes));
                if actual != sha256 {
                    if hashed {
                        return Err(read_error(std::io::Error::other(
                            "the file changed while keyrot was reading it",
                        )));
                    }
                    // The record was stale; nothing pins this plugin, and
                    // these bytes are the ones hashed and compiled.
                    check_header(path, &bytes)?;
                }
                let (component, outcome) = cache
                    .compile(&engine, &bytes, &actual, &label)
                    .map_err(|e| invalid(format!("is not a valid WebAssembly component: {e:#}")))?;
                (component, outcome, actual)
            }
        };
        if known.as_deref() != Some(sha256.as_str())
            && file
                .metadata()
                .is_ok_and(|m| cache::FileStamp::of(&m) == stamp)
        {
            cache.remember_sha256(&stamp, &sha256, hashing_began);
        }
        let cache = outcome;
        tracing::debug!(?cache, plugin = %path.display(), "plugin compiled");
        let imports = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = component
            .component_type()
            .exports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        // Which contract it speaks, by the `handler` interface it exports:
        // the newest when it exports several.
        let Some(contract) = Contract::ALL
            .into_iter()
            .find(|c| exports.iter().any(|e| e == c.export()))
        else {
            let speaks = exports
                .iter()
                .find(|e| e.starts_with("keyrot:handler/handler@"));
            // Export names are the plugin's choice: printed inert.
            return Err(invalid(match speaks {
                // A plugin built for a newer keyrot.
                Some(export) => format!(
                    "exports {}, a contract version this keyrot does not know: it loads \
                     {WORLD}; upgrade keyrot, or build the plugin against one of those",
                    escape_control(export)
                ),
                None => format!(
                    "is not a keyrot handler: it must export the `handler` interface of the \
                     world {WORLD}, and it exports {}",
                    if exports.is_empty() {
                        "nothing".to_string()
                    } else {
                        escape_control(&exports.join(", ")).into_owned()
                    }
                ),
            }));
        };
        let linker = linker().map_err(|e| invalid(format!("cannot link WASI: {e}")))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "needs an import keyrot does not provide (is it built for {WORLD}?): {e:#}"
            ))
        })?;
        let not_a_handler = |e: wasmtime::Error| {
            invalid(format!(
                "is not a keyrot handler: its {} `handler` interface does not match the \
                 contract ({e:#})",
                contract.export()
            ))
        };
        let pre = match contract {
            Contract::V0_2 => HandlerPre::V0_2(
                bindings::NewKeyHandlerPre::new(instance_pre).map_err(not_a_handler)?,
            ),
            Contract::V0_1 => HandlerPre::V0_1(
                bindings_v0_1::NewKeyHandlerPre::new(instance_pre).map_err(not_a_handler)?,
            ),
        };
        Ok(Self {
            path: path.to_path_buf(),
            sha256,
            engine,
            pre,
            imports,
            exports,
            cache,
        })
    }

    /// The file's sha256, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Every interface the component exports, e.g. `keyrot:handler/handler@0.2.0`.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// The contract version the plugin speaks, e.g. `keyrot:handler@0.2.0`.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            HandlerPre::V0_2(_) => Contract::V0_2,
            HandlerPre::V0_1(_) => Contract::V0_1,
        }
        .name()
    }

    /// Every interface the component imports, e.g. `wasi:http/types@0.2.4`.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// Whether the component can make outbound HTTP requests.
    pub fn wants_http(&self) -> bool {
        self.imports
            .iter()
            .any(|i| i.starts_with(http::OUTGOING_HANDLER))
    }

    /// The capabilities the imports ask for, in words, for `inspect`.
    pub fn capabilities(&self) -> Vec<&'static str> {
        let has = |prefix: &str| self.imports.iter().any(|i| i.starts_with(prefix));
        let mut wants = Vec::new();
        if self.wants_http() {
            wants.push("outbound HTTP (needs --allow-host)");
        }
        if has("wasi:filesystem/") {
            wants.push("filesystem (sees only --allow-dir directories)");
        }
        if has("wasi:sockets/") {
            wants.push("raw sockets (always denied)");
        }
        if has("wasi:cli/environment") {
            wants.push("environment and arguments (always empty)");
        }
        if has("wasi:config/") {
            wants.push("settings (--config, --secret)");
        }
        if has("wasi:logging/") {
            wants.push("logging");
        }
        wants
    }
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
}

/// What `keyrot plugin inspect` shows.
#[derive(Clone, Debug, Serialize)]
pub struct PluginReport {
    /// The file.
    pub path: PathBuf,
    /// Its sha256, for `--plugin-sha256`.
    pub sha256: String,
    /// The contract version it speaks, e.g. `keyrot:handler@0.2.0`.
    pub contract: &'static str,
    /// What `describe()` said.
    #[serde(flatten)]
    pub info: PluginInfo,
    /// The capabilities its imports ask for.
    pub wants: Vec<&'static str>,
    /// Every interface it imports.
    pub imports: Vec<String>,
}

/// A plugin checked against its sandbox, ready to preflight and handle.
pub struct WasmHandler {
    plugin: Plugin,
    name: String,
    info: PluginInfo,
    sandbox: Sandbox,
    allow: Arc<AllowList>,
    headers: Arc<Vec<HeaderInjection>>,
    _ticker: Arc<EpochTicker>,
}

/// Per-call state of one store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    config: wasmtime_wasi_config::WasiConfigVariables,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_guard: http::HttpGuard,
    limiter: MemoryLimiter,
    log: PluginLog,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One call into the plugin.
enum Call<'a> {
    Describe,
    Preflight(&'a Rotation),
    Handle(&'a Rotation, &'a NewAccessKey),
}

/// What a call returned when the guest did not trap.
enum Returned {
    Info(PluginInfo),
    Done(Result<(), String>),
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

    /// Checks the plugin against its sandbox (its imports against the
    /// grants, its settings against `describe()`), before any key exists.
    pub async fn new(plugin: Plugin, sandbox: Sandbox) -> Result<Self, PluginError> {
        if plugin.wants_http() && sandbox.grants.hosts.is_empty() {
            return Err(PluginError::Grants(format!(
                "plugin '{}' wants outbound HTTP (it imports {}) but no host is allowed: \
                 add --allow-host HOST for each host it must reach",
                plugin.path.display(),
                http::OUTGOING_HANDLER
            )));
        }
        for dir in &sandbox.grants.dirs {
            dir.check().map_err(PluginError::Grants)?;
        }
        for injection in &sandbox.grants.headers {
            if !sandbox.grants.hosts.rules().contains(&injection.host) {
                return Err(PluginError::Grants(format!(
                    "--inject-header names {0}, which is not allowed: add --allow-host {0}",
                    injection.host
                )));
            }
        }
        let handler = Self::unchecked(plugin, sandbox).await?;
        handler
            .sandbox
            .settings
            .check(&handler.name, &handler.info)
            // The message quotes setting names and descriptions the plugin
            // chose: printed inert.
            .map_err(|e| PluginError::Settings(escape_control(&e).into_owned()))?;
        Ok(handler)
    }

    /// What a plugin says about itself and what it imports, without
    /// settings or grants.
    pub async fn inspect(plugin: Plugin) -> Result<PluginReport, PluginError> {
        let path = plugin.path.clone();
        let sha256 = plugin.sha256.clone();
        let contract = plugin.contract();
        let wants = plugin.capabilities();
        let imports = plugin.imports.clone();
        let handler = Self::unchecked(plugin, Sandbox::default()).await?;
        Ok(PluginReport {
            path,
            sha256,
            contract,
            info: handler.info,
            wants,
            imports,
        })
    }

    /// Builds the handler and asks the plugin to describe itself.
    async fn unchecked(plugin: Plugin, sandbox: Sandbox) -> Result<Self, PluginError> {
        let name = plugin
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut handler = Self {
            _ticker: EpochTicker::shared(&plugin.engine),
            allow: Arc::new(sandbox.grants.hosts.clone()),
            headers: Arc::new(sandbox.grants.headers.clone()),
            plugin,
            name,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                settings: Vec::new(),
            },
            sandbox,
        };
        let info = match handler.call(Call::Describe, &HandlerLog::new()).await {
            Ok(Returned::Info(info)) => info,
            Ok(Returned::Done(_)) => unreachable!("describe returns plugin info"),
            Err(e) => return Err(PluginError::Settings(format!("describe failed: {e}"))),
        };
        if !info.name.trim().is_empty() {
            // The name prefixes every message about the plugin: inert text.
            handler.name = escape_control(&info.name).into_owned();
        }
        handler.info = info;
        Ok(handler)
    }

    /// The plugin's name (from `describe`, else the file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Values to scrub from everything the plugin says during `call`.
    fn secrets(&self, call: &Call<'_>) -> Vec<Zeroizing<String>> {
        // An injected header can come back in a response (a server echoing
        // the request). Every copy of the value holds its secret part, so
        // redacting that (cut copies included) covers the value; a secret
        // that itself starts with `Bearer ` is redacted without it too.
        let header_values = self.headers.iter().flat_map(|h| {
            [Some(h.secret.as_str()), h.secret.strip_prefix("Bearer ")]
                .into_iter()
                .flatten()
        });
        let mut secrets: Vec<Zeroizing<String>> = self
            .sandbox
            .settings
            .secret_values()
            .chain(header_values)
            .map(|s| Zeroizing::new(s.to_string()))
            .collect();
        if let Call::Handle(_, key) = call {
            secrets.push(Zeroizing::new(key.secret_access_key.expose().to_string()));
        }
        secrets
    }

    /// Runs one call in a fresh store, under the memory and time limits;
    /// what the plugin logged goes to `sink`.
    async fn call(&self, call: Call<'_>, sink: &HandlerLog) -> Result<Returned, HandlerError> {
        let stdout = CapturedOutput::new(MAX_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(MAX_OUTPUT_BYTES);
        let limits = &self.sandbox.limits;
        // Deny by default: no env, args, network or inherited stdio; only
        // the granted directories. `describe` gets no grants and no settings
        // at all: it must not depend on them, and its answer is printed.
        let describing = matches!(call, Call::Describe);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if !describing {
            filesystem::preopen(&mut wasi, &self.sandbox.grants.dirs)
                .map_err(|e| HandlerError::rejected(format!("plugin '{}': {e}", self.name)))?;
        }
        let (allow, headers) = if describing {
            (Arc::default(), Arc::default())
        } else {
            (self.allow.clone(), self.headers.clone())
        };
        let notes = Arc::new(Mutex::new(Vec::new()));
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        let mut store = Store::new(
            &self.plugin.engine,
            HostState {
                wasi: wasi.build(),
                table,
                config: if describing {
                    wasmtime_wasi_config::WasiConfigVariables::new()
                } else {
                    self.sandbox.settings.variables()
                },
                http: http::context(),
                http_guard: http::HttpGuard::new(&self.name, allow, headers, notes.clone()),
                limiter: MemoryLimiter::new(limits.memory_bytes),
                log: PluginLog::new(&self.name, self.secrets(&call)),
            },
        );
        store.limiter(|state| &mut state.limiter);
        let deadline = std::time::Instant::now() + limits.timeout;
        store.set_epoch_deadline(limits::CHECK_TICKS);
        store.epoch_deadline_callback(move |_| {
            Ok(if std::time::Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(limits::CHECK_TICKS)
            })
        });

        // The epoch deadline stops guest code; this also stops a call stuck
        // in the host (an HTTP request, say). A little slack lets the epoch
        // trap win when both fire.
        let outer = limits.timeout + limits::EPOCH_TICK * 10;
        // A panic in keyrot's own host code while the plugin runs must not
        // take the process down mid-rotation: it becomes a handler failure,
        // and the rotation cleans up as for any other.
        let result = tokio::time::timeout(
            outer,
            CatchUnwind::new(invoke(&self.plugin.pre, &mut store, &call)),
        )
        .await;

        let state = store.data_mut();
        let notes: Vec<String> = notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for note in &notes {
            state.log.note(note);
        }
        state.log.push_output("stdout", &stdout);
        state.log.push_output("stderr", &stderr);
        let memory = MemoryVerdict {
            exceeded: state.limiter.exceeded,
            host_failed: state.limiter.host_failed,
        };
        let log = std::mem::replace(&mut state.log, PluginLog::new(&self.name, Vec::new()));
        // What the host refused (a denied host and the flag that allows
        // it) belongs in the error itself, not only in a log line -q hides.
        let refused = match notes.as_slice() {
            [] => String::new(),
            [one] => format!(" [keyrot: {}]", log.redact(one)),
            [first, rest @ ..] => format!(
                " [keyrot: {}; and {} more, see the log]",
                log.redact(first),
                rest.len()
            ),
        };
        let outcome = match result {
            Ok(Ok(Ok(Returned::Done(Err(message))))) => Err(HandlerError::new(
                HandlerErrorKind::Rejected,
                format!(
                    "plugin '{}': {}{refused}",
                    self.name,
                    plugin_text(&log, &message)
                ),
            )),
            Ok(Ok(Ok(returned))) => Ok(returned),
            Ok(Ok(Err(trap))) => {
                let mut error = self.trap_error(&trap, memory, &log, &stderr);
                error.message.push_str(&refused);
                Err(error)
            }
            Ok(Err(panic)) => Err(self.host_panic_error(&*panic, &log)),
            Err(_elapsed) => Err(self.timeout_error()),
        };
        sink.extend(log.finish());
        outcome
    }

    /// keyrot's host code panicked while the plugin ran: a bug in keyrot,
    /// reported as a handler failure so the rotation still ends safely.
    fn host_panic_error(&self, panic: &(dyn Any + Send), log: &PluginLog) -> HandlerError {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        HandlerError::new(
            HandlerErrorKind::Trapped,
            format!(
                "keyrot's host failed while plugin '{}' ran (a bug in keyrot, please report \
                 it: {}); the plugin did not finish",
                self.name,
                plugin_text(log, &what)
            ),
        )
    }

    fn timeout_error(&self) -> HandlerError {
        HandlerError::new(
            HandlerErrorKind::TimedOut,
            format!(
                "plugin '{}' did not finish within {:?} (raise the limit with --timeout)",
                self.name, self.sandbox.limits.timeout
            ),
        )
    }

    fn trap_error(
        &self,
        err: &wasmtime::Error,
        memory: MemoryVerdict,
        log: &PluginLog,
        stderr: &CapturedOutput,
    ) -> HandlerError {
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return self.timeout_error();
        }
        if memory.host_failed && !memory.exceeded {
            return HandlerError::new(
                HandlerErrorKind::OutOfMemory,
                format!(
                    "keyrot ran out of memory: the machine could not give plugin '{}' memory \
                     within its {} MiB limit (free memory on this machine, or lower --memory)",
                    self.name,
                    self.sandbox.limits.memory_bytes / (1024 * 1024)
                ),
            );
        }
        if memory.exceeded {
            return HandlerError::new(
                HandlerErrorKind::OutOfMemory,
                format!(
                    "plugin '{}' ran out of memory: it tried to use more than {} MiB (raise the \
                     limit with --memory)",
                    self.name,
                    self.sandbox.limits.memory_bytes / (1024 * 1024)
                ),
            );
        }
        let cause = match err.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "stack overflow (runaway recursion?)".to_string(),
            Some(trap) => trap.to_string(),
            None => format!("{:#}", err.root_cause()),
        };
        let mut message = format!(
            "plugin '{}' crashed: {}",
            self.name,
            plugin_text(log, &cause)
        );
        if let Some(last) = stderr.last_words() {
            let last = plugin_text(log, &last);
            message.push_str(&format!(
                " (it printed: {})",
                crate::text::truncate(&last, 512)
            ));
        }
        HandlerError::new(HandlerErrorKind::Trapped, message)
    }
}

/// What the memory limiter saw during a call.
#[derive(Clone, Copy)]
struct MemoryVerdict {
    /// The plugin asked for more than `--memory`.
    exceeded: bool,
    /// The machine failed to provide memory within the limit.
    host_failed: bool,
}

/// Text the plugin chose, made fit for a message: secrets redacted,
/// control characters escaped, length capped.
fn plugin_text(log: &PluginLog, text: &str) -> String {
    cap_error(&escape_control(&log.redact(text))).into_owned()
}

/// A future whose panics become an `Err` carrying the panic payload.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The store and everything the future touched are dropped after a
        // panic, never reused: unwind safety is not needed.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Instantiates the component and makes one call, in the contract version
/// the plugin speaks.
async fn invoke(
    pre: &HandlerPre,
    store: &mut Store<HostState>,
    call: &Call<'_>,
) -> wasmtime::Result<Returned> {
    match pre {
        HandlerPre::V0_2(pre) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let handler = instance.keyrot_handler_handler();
            Ok(match call {
                Call::Describe => Returned::Info(handler.call_describe(&mut *store).await?),
                Call::Preflight(rotation) => Returned::Done(
                    handler
                        .call_preflight(&mut *store, &wit_rotation(rotation))
                        .await?,
                ),
                Call::Handle(rotation, key) => {
                    crate::testhook::hit("host-handle");
                    // The guest gets its own copy; the host's is wiped however
                    // the call ends (returned, trapped, timed out, cancelled,
                    // panicked).
                    let key = WipeOnDrop(wit::AccessKey {
                        user_name: key.user_name.clone(),
                        access_key_id: key.access_key_id.clone(),
                        secret_access_key: key.secret_access_key.expose().to_string(),
                        create_date: key.create_date.clone(),
                    });
                    Returned::Done(
                        handler
                            .call_handle(&mut *store, &wit_rotation(rotation), &key.0)
                            .await?,
                    )
                }
            })
        }
        HandlerPre::V0_1(pre) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let handler = instance.keyrot_handler_handler();
            Ok(match call {
                Call::Describe => Returned::Info(handler.call_describe(&mut *store).await?.into()),
                Call::Preflight(rotation) => Returned::Done(
                    handler
                        .call_preflight(&mut *store, &wit_v0_1_rotation(rotation))
                        .await?,
                ),
                Call::Handle(rotation, key) => {
                    crate::testhook::hit("host-handle");
                    // As above: a copy for the guest, the host's wiped.
                    let key = WipeOnDrop(wit_v0_1::AccessKey {
                        user_name: key.user_name.clone(),
                        access_key_id: key.access_key_id.clone(),
                        secret_access_key: key.secret_access_key.expose().to_string(),
                        create_date: key.create_date.clone(),
                    });
                    Returned::Done(
                        handler
                            .call_handle(&mut *store, &wit_v0_1_rotation(rotation), &key.0)
                            .await?,
                    )
                }
            })
        }
    }
}

/// A WIT copy of the new key, its secret zeroized when dropped.
struct WipeOnDrop<K: Secret>(K);

/// A WIT record holding the secret access key.
trait Secret {
    fn secret(&mut self) -> &mut String;
}

impl Secret for wit::AccessKey {
    fn secret(&mut self) -> &mut String {
        &mut self.secret_access_key
    }
}

impl Secret for wit_v0_1::AccessKey {
    fn secret(&mut self) -> &mut String {
        &mut self.secret_access_key
    }
}

impl<K: Secret> Drop for WipeOnDrop<K> {
    fn drop(&mut self) {
        self.0.secret().zeroize();
    }
}

fn wit_rotation(rotation: &Rotation) -> wit::Rotation {
    wit::Rotation {
        user_name: rotation.user_name.clone(),
        current_key_id: rotation.current_key_id.clone(),
        account_id: rotation.account_id.clone(),
    }
}

/// 0.1.0 has no account id: the plugin simply does not get it.
fn wit_v0_1_rotation(rotation: &Rotation) -> wit_v0_1::Rotation {
    wit_v0_1::Rotation {
        user_name: rotation.user_name.clone(),
        current_key_id: rotation.current_key_id.clone(),
    }
}

impl From<wit_v0_1::PluginInfo> for PluginInfo {
    fn from(info: wit_v0_1::PluginInfo) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            settings: info
                .settings
                .into_iter()
                .map(|s| Setting {
                    name: s.name,
                    description: s.description,
                    required: s.required,
                    secret: s.secret,
                })
                .collect(),
        }
    }
}

#[async_trait]
impl NewKeyHandler for WasmHandler {
    async fn preflight(&self, rotation: &Rotation, log: &HandlerLog) -> Result<(), HandlerError> {
        self.call(Call::Preflight(rotation), log).await.map(|_| ())
    }

    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError> {
        self.call(Call::Handle(rotation, key), log)
            .await
            .map(|_| ())
    }
}

/// The process's one engine, built on first use and shared by every plugin
/// loaded (one per fleet target): one set of compiled-code settings, one
/// epoch ticker. Epoch interruption on, everything else Wasmtime's defaults
/// (which the compiled-code cache is keyed on).
///
/// Instances use Wasmtime's default on-demand allocator. With entries
/// mapped from the cache, instantiation is already cheap (memory images
/// are mapped copy-on-write from the file): the pooling allocator, tried
/// with copy-on-write images, changed a warm start by under 0.5 ms (Python
/// 4.3 ms either way; `cargo bench --bench startup`), while it would
/// reserve about 1 TiB of address space up front (4 GiB per memory slot),
/// fix per-component counts of memories, tables and instances, and fail
/// instantiations past its slot count instead of growing.
fn engine() -> Result<&'static Engine, String> {
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

/// All of WASI p2 and wasi:http (granting nothing by themselves) plus the
/// world's own imports: one linker for the process's engine, shared by
/// every plugin.
fn linker() -> Result<&'static Linker<HostState>, String> {
    static LINKER: OnceLock<Result<Linker<HostState>, String>> = OnceLock::new();
    let engine = engine()?;
    LINKER
        .get_or_init(|| new_linker(engine).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    filesystem::refuse_symlinks(&mut linker)?;
    http::add_to_linker(&mut linker)?;
    config::add_to_linker(&mut linker)?;
    logging::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The file's sha256 (hex) and its first bytes, read in small chunks.
fn hash_file(file: &mut std::fs::File) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read;
    // Small enough to stay in the CPU cache while it is hashed.
    let mut buf = vec![0; 256 * 1024];
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < 8 {
            let take = (8 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), head))
}

/// The file's first bytes, enough for [`check_header`].
fn read_head(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = [0; 8];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head[..filled].to_vec())
}

/// The whole file, from its start.
fn read_all(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Tells a component from a core module or a file that is not WebAssembly,
/// so the error says how to fix it.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let what = match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => return Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            "is a core WebAssembly module, not a component: build it for the wasm32-wasip2 \
             target, or wrap it with `wasm-tools component new`"
        }
        _ => "is not a WebAssembly component (it does not start with the \\0asm header)",
    };
    Err(PluginError::NotAComponent {
        path: path.to_path_buf(),
        what,
    })
}
