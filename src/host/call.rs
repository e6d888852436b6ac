//! One call into a plugin: a fresh store holding every capability's state,
//! the limits armed, keyrot's own panics caught, and every way the call can
//! fail turned into a [`HandlerError`] that says what happened and what to
//! do. Nothing here knows which world or contract version is called: the
//! caller passes the future of the export call (see [`super::contract`]).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use wasmtime::{Engine, Store, Trap};

use super::capability::CallSetup;
use super::limits::{self, MemoryVerdict, PluginLimits};
use super::logging::PluginLog;
use super::witness::{Source, Witness};
use super::{Capabilities, HostState};
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog};
use crate::text::{cap_error, escape_control};

/// One call in progress: its store, and what its failures are reported with.
pub(super) struct PluginCall<'a> {
    store: Store<HostState>,
    plugin: &'a str,
    limits: PluginLimits,
    witness: Option<Arc<Witness>>,
}

/// How a call's future ended.
pub(super) enum Ran<R> {
    /// The export returned (`Ok`) or the guest trapped (`Err`).
    Finished(wasmtime::Result<R>),
    /// keyrot's own host code panicked while the plugin ran.
    HostPanicked(Box<dyn Any + Send>),
    /// The wall-clock limit passed with the call stuck in the host.
    TimedOut,
}

impl<'a> PluginCall<'a> {
    /// A fresh store for one call, with every capability's state for
    /// `setup`'s sandbox and the limits armed.
    pub(super) fn new(engine: &Engine, setup: &CallSetup<'a>) -> Result<Self, HandlerError> {
        let store = Capabilities::new_store(engine, setup)
            .map_err(|e| HandlerError::rejected(format!("plugin '{}': {e}", setup.plugin)))?;
        Ok(Self {
            store,
            plugin: setup.plugin,
            limits: setup.sandbox.limits,
            witness: setup.sandbox.witness.clone(),
        })
    }

    /// The store, for the future of the export call.
    pub(super) fn store(&mut self) -> &mut Store<HostState> {
        &mut self.store
    }

    /// The call's outcome, with what the plugin logged (and what the host
    /// refused it) added to `sink`. A plugin's `Err(message)` is its
    /// refusal; traps, timeouts and host panics say what happened.
    pub(super) fn finish<T>(
        self,
        ran: Ran<Result<T, String>>,
        sink: &HandlerLog,
    ) -> Result<T, HandlerError> {
        let HostState {
            http,
            logging,
            limits,
            ..
        } = self.store.into_data();
        let notes = http.take_notes();
        let facts = http.take_facts();
        let memory = limits.verdict();
        if let Some(witness) = &self.witness {
            witness.memory(memory.peak);
            match &ran {
                Ran::Finished(Ok(Err(message))) => witness.said(Source::Error, message),
                Ran::Finished(Err(trap)) => witness.said(Source::Crash, &format!("{trap:#}")),
                _ => {}
            }
        }
        let (log, last_words) = logging.close(&notes, &facts);
        let failure = Failure {
            plugin: self.plugin,
            limits: &self.limits,
            log: &log,
        };
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
        let outcome = match ran {
            Ran::Finished(Ok(Ok(value))) => Ok(value),
            Ran::Finished(Ok(Err(message))) => Err(HandlerError::new(
                HandlerErrorKind::Rejected,
                format!(
                    "plugin '{}': {}{refused}",
                    self.plugin,
                    failure.text(&message)
                ),
            )),
            Ran::Finished(Err(trap)) => {
                let mut error = failure.trapped(&trap, memory, last_words);
                error.message.push_str(&refused);
                Err(error)
            }
            Ran::HostPanicked(panic) => Err(failure.host_panicked(&*panic)),
            Ran::TimedOut => Err(failure.timed_out()),
        };
        sink.extend(log.finish());
        outcome
    }
}

/// Runs the future of one export call under the call's wall-clock limit,
/// catching a panic in keyrot's own host code: that must not take the
/// process down mid-rotation, so it becomes a handler failure and the
/// rotation cleans up as for any other.
pub(super) async fn guarded<R>(
    limits: &PluginLimits,
    call: impl Future<Output = wasmtime::Result<R>>,
) -> Ran<R> {
    // The store and everything the future touched are dropped after a
    // panic, never reused: unwind safety is not needed.
    let call = AssertUnwindSafe(call).catch_unwind();
    match tokio::time::timeout(limits::outer_timeout(limits), call).await {
        Ok(Ok(result)) => Ran::Finished(result),
        Ok(Err(panic)) => Ran::HostPanicked(panic),
        Err(_elapsed) => Ran::TimedOut,
    }
}

/// What a failed call's message is made of.
struct Failure<'a> {
    plugin: &'a str,
    limits: &'a PluginLimits,
    log: &'a PluginLog,
}

impl Failure<'_> {
    /// Text the plugin chose, made fit for a message: secrets redacted,
    /// control characters escaped, length capped.
    fn text(&self, text: &str) -> String {
        cap_error(&escape_control(&self.log.redact(text))).into_owned()
    }

    /// keyrot's host code panicked while the plugin ran: a bug in keyrot,
    /// reported as a handler failure so the rotation still ends safely.
    fn host_panicked(&self, panic: &(dyn Any + Send)) -> HandlerError {
        let what = crate::text::panic_message(panic);
        HandlerError::new(
            HandlerErrorKind::Trapped,
            format!(
                "keyrot's host failed while plugin '{}' ran (a bug in keyrot, please report \
                 it: {}); the plugin did not finish",
                self.plugin,
                self.text(&what)
            ),
        )
    }

    fn timed_out(&self) -> HandlerError {
        HandlerError::new(
            HandlerErrorKind::TimedOut,
            format!(
                "plugin '{}' did not finish within {:?} (raise the limit with --timeout)",
                self.plugin, self.limits.timeout
            ),
        )
    }

    /// The guest trapped: out of time, out of memory, or crashed (quoting
    /// the last lines it printed to stderr, if any).
    fn trapped(
        &self,
        err: &wasmtime::Error,
        memory: MemoryVerdict,
        last_words: Option<String>,
    ) -> HandlerError {
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return self.timed_out();
        }
        let limit_mib = self.limits.memory_bytes / (1024 * 1024);
        if memory.host_failed && !memory.exceeded {
            return HandlerError::new(
                HandlerErrorKind::OutOfMemory,
                format!(
                    "keyrot ran out of memory: the machine could not give plugin '{}' memory \
                     within its {limit_mib} MiB limit (free memory on this machine, or lower \
                     --memory)",
                    self.plugin
                ),
            );
        }
        if memory.exceeded {
            return HandlerError::new(
                HandlerErrorKind::OutOfMemory,
                format!(
                    "plugin '{}' ran out of memory: it tried to use more than {limit_mib} MiB \
                     (raise the limit with --memory)",
                    self.plugin
                ),
            );
        }
        let cause = match err.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "stack overflow (runaway recursion?)".to_string(),
            Some(trap) => trap.to_string(),
            None => format!("{:#}", err.root_cause()),
        };
        let mut message = format!("plugin '{}' crashed: {}", self.plugin, self.text(&cause));
        if let Some(last) = last_words {
            let last = self.text(&last);
            message.push_str(&format!(
                " (it printed: {})",
                crate::text::truncate(&last, 512)
            ));
        }
        HandlerError::new(HandlerErrorKind::Trapped, message)
    }
}
