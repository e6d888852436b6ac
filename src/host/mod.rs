//! The WebAssembly component host: runs a `keyrot:handler` plugin as a
//! [`NewKeyHandler`], sandboxed.
//!
//! All of WASI p2 is linked, so components from any toolchain instantiate,
//! but nothing is granted: no files, no environment, no arguments, no
//! network, no inherited stdio. Each call (`describe`, `preflight`, `handle`)
//! gets a fresh [`Store`] with a memory cap, an epoch deadline and an outer
//! wall-clock timeout. The capabilities a plugin does get live in one module
//! each: [`config`] (settings) and [`logging`] (log lines and stdio).

pub mod config;
mod limits;
mod logging;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use zeroize::{Zeroize, Zeroizing};

pub use self::config::Settings;
pub use self::limits::PluginLimits;
use self::limits::{EpochTicker, MemoryLimiter};
use self::logging::{CapturedOutput, MAX_OUTPUT_BYTES, PluginLog};
use crate::handler::{HandlerError, HandlerErrorKind, LogLine, NewKeyHandler, Rotation};
use crate::iam::NewAccessKey;

/// Rust bindings for the `keyrot:handler` WIT world in `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
    });
}

use bindings::keyrot::handler::types::{self as wit, PluginInfo};
use bindings::{NewKeyHandler as Bindings, NewKeyHandlerPre};

/// The WIT package a plugin must export, for error messages.
const WORLD: &str = "keyrot:handler/new-key-handler@0.1.0";

/// Why a plugin could not be loaded. Nothing has touched IAM yet.
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
    /// `describe` failed, or the settings do not match it.
    #[error("{0}")]
    Settings(String),
}

/// A `keyrot:handler` component, loaded, validated and ready to call.
pub struct WasmHandler {
    engine: Engine,
    pre: NewKeyHandlerPre<HostState>,
    name: String,
    info: PluginInfo,
    settings: Settings,
    secret_settings: Vec<String>,
    limits: PluginLimits,
    log: Mutex<Vec<LogLine>>,
    _ticker: EpochTicker,
}

/// Per-call state of one store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    config: wasmtime_wasi_config::WasiConfigVariables,
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
    /// Loads the component at `path`, checks it is a keyrot handler, asks it
    /// to `describe` itself and checks `settings` against that.
    pub async fn load(
        path: &Path,
        settings: Settings,
        limits: PluginLimits,
    ) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|cause| PluginError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        check_header(path, &bytes)?;
        let invalid = |reason: String| PluginError::Invalid {
            path: path.to_path_buf(),
            reason,
        };

        let engine = engine().map_err(|e| invalid(format!("cannot start the engine: {e:#}")))?;
        let component = Component::new(&engine, &bytes)
            .map_err(|e| invalid(format!("is not a valid WebAssembly component: {e:#}")))?;
        let linker = linker(&engine).map_err(|e| invalid(format!("cannot link WASI: {e:#}")))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "needs an import keyrot does not provide (is it built for {WORLD}?): {e:#}"
            ))
        })?;
        let pre = NewKeyHandlerPre::new(instance_pre).map_err(|e| {
            invalid(format!(
                "is not a keyrot handler: it must export the {WORLD} world's `handler` \
                 interface ({e:#})"
            ))
        })?;

        let file_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut handler = Self {
            _ticker: EpochTicker::start(&engine),
            engine,
            pre,
            name: file_name,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                settings: Vec::new(),
            },
            settings,
            secret_settings: Vec::new(),
            limits,
            log: Mutex::new(Vec::new()),
        };
        let info = match handler.call(Call::Describe).await {
            Ok(Returned::Info(info)) => info,
            Ok(Returned::Done(_)) => unreachable!("describe returns plugin info"),
            Err(e) => return Err(PluginError::Settings(format!("describe failed: {e}"))),
        };
        if !info.name.trim().is_empty() {
            handler.name = info.name.clone();
        }
        handler
            .settings
            .check(&handler.name, &info)
            .map_err(PluginError::Settings)?;
        handler.secret_settings = handler.settings.secret_values(&info);
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

    /// Runs one call in a fresh store, under the memory and time limits.
    async fn call(&self, call: Call<'_>) -> Result<Returned, HandlerError> {
        let mut secrets: Vec<Zeroizing<String>> = self
            .secret_settings
            .iter()
            .map(|s| Zeroizing::new(s.clone()))
            .collect();
        if let Call::Handle(_, key) = &call {
            secrets.push(Zeroizing::new(key.secret_access_key.expose().to_string()));
        }
        let stdout = CapturedOutput::new(MAX_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(MAX_OUTPUT_BYTES);
        // Deny by default: no env, args, preopens, network or inherited stdio.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                config: self.settings.variables(),
                limiter: MemoryLimiter::new(self.limits.memory_bytes),
                log: PluginLog::new(&self.name, secrets),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(limits::deadline_ticks(self.limits.timeout));
        store.epoch_deadline_trap();

        // The epoch deadline stops guest code; this also stops a call stuck
        // in the host. A little slack lets the epoch trap win when both fire.
        let outer = self.limits.timeout + limits::EPOCH_TICK * 10;
        let result = tokio::time::timeout(outer, invoke(&self.pre, &mut store, &call)).await;

        let state = store.data_mut();
        state.log.push_output("stdout", &stdout);
        state.log.push_output("stderr", &stderr);
        let exceeded_memory = state.limiter.exceeded;
        let log = std::mem::replace(&mut state.log, PluginLog::new(&self.name, Vec::new()));
        let failure = match result {
            Ok(Ok(Returned::Done(Err(message)))) => Err(HandlerError::new(
                HandlerErrorKind::Rejected,
                format!("plugin '{}': {}", self.name, log.redact(&message)),
            )),
            Ok(Ok(returned)) => Ok(returned),
            Ok(Err(trap)) => Err(self.trap_error(&trap, exceeded_memory, &log, &stderr)),
            Err(_elapsed) => Err(self.timeout_error()),
        };
        self.log.lock().unwrap().extend(log.finish());
        failure
    }

    fn timeout_error(&self) -> HandlerError {
        HandlerError::new(
            HandlerErrorKind::TimedOut,
            format!(
                "plugin '{}' did not finish within {:?} (raise the limit with --timeout)",
                self.name, self.limits.timeout
            ),
        )
    }

    fn trap_error(
        &self,
        err: &wasmtime::Error,
        exceeded_memory: bool,
        log: &PluginLog,
        stderr: &CapturedOutput,
    ) -> HandlerError {
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return self.timeout_error();
        }
        if exceeded_memory {
            return HandlerError::new(
                HandlerErrorKind::OutOfMemory,
                format!(
                    "plugin '{}' ran out of memory: it tried to use more than {} MiB (raise the \
                     limit with --memory)",
                    self.name,
                    self.limits.memory_bytes / (1024 * 1024)
                ),
            );
        }
        let cause = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{:#}", err.root_cause()),
        };
        let mut message = format!("plugin '{}' crashed: {}", self.name, log.redact(&cause));
        if let Some(last) = stderr.last_words() {
            message.push_str(&format!(" (it printed: {})", log.redact(&last)));
        }
        HandlerError::new(HandlerErrorKind::Trapped, message)
    }
}

/// Instantiates the component and makes one call.
async fn invoke(
    pre: &NewKeyHandlerPre<HostState>,
    store: &mut Store<HostState>,
    call: &Call<'_>,
) -> wasmtime::Result<Returned> {
    let instance: Bindings = pre.instantiate_async(&mut *store).await?;
    let handler = instance.keyrot_handler_handler();
    Ok(match call {
        Call::Describe => Returned::Info(handler.call_describe(&mut *store).await?),
        Call::Preflight(rotation) => Returned::Done(
            handler
                .call_preflight(&mut *store, &wit_rotation(rotation))
                .await?,
        ),
        Call::Handle(rotation, key) => {
            let mut key = wit::AccessKey {
                user_name: key.user_name.clone(),
                access_key_id: key.access_key_id.clone(),
                secret_access_key: key.secret_access_key.expose().to_string(),
                create_date: key.create_date.clone(),
            };
            let result = handler
                .call_handle(&mut *store, &wit_rotation(rotation), &key)
                .await;
            // The guest has its own copy now; wipe the host's.
            key.secret_access_key.zeroize();
            Returned::Done(result?)
        }
    })
}

fn wit_rotation(rotation: &Rotation) -> wit::Rotation {
    wit::Rotation {
        user_name: rotation.user_name.clone(),
        current_key_id: rotation.current_key_id.clone(),
    }
}

#[async_trait]
impl NewKeyHandler for WasmHandler {
    async fn preflight(&self, rotation: &Rotation) -> Result<(), HandlerError> {
        self.call(Call::Preflight(rotation)).await.map(|_| ())
    }

    async fn handle(&self, rotation: &Rotation, key: &NewAccessKey) -> Result<(), HandlerError> {
        self.call(Call::Handle(rotation, key)).await.map(|_| ())
    }

    fn take_log(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// The engine: epoch interruption on, everything else Wasmtime's defaults.
fn engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config)
}

/// All of WASI p2 (granting nothing by itself) plus the world's imports.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    config::add_to_linker(&mut linker)?;
    logging::add_to_linker(&mut linker)?;
    Ok(linker)
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
