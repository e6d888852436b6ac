//! Hard limits on a plugin call: memory, guest CPU time, wall-clock time.
//!
//! Guest CPU is bounded by Wasmtime's epoch interruption: one ticker thread
//! per process advances the engine's epoch, and every few ticks the store
//! checks the call's deadline (trapping past it) and yields. Time spent in
//! host calls is bounded by an outer tokio timeout around the whole call
//! ([`outer_timeout`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::Linker;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::HostState;
use super::capability::{CallSetup, Capability};

/// How often the epoch advances: the granularity of the CPU deadline.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Memory and time, for every call.
pub(super) struct Limits;

impl Capability for Limits {
    /// A plugin that declares the memory or time one call needs is not run
    /// with less: it would fail halfway, after the key exists.
    fn check_described(
        name: &str,
        info: &super::PluginInfo,
        sandbox: &super::Sandbox,
    ) -> Result<(), super::PluginError> {
        let Some(needs) = &info.needs else {
            return Ok(());
        };
        let limits = &sandbox.limits;
        let problems =
            crate::grants::limit_problems(name, needs, limits.memory_bytes, limits.timeout);
        match problems.into_iter().next() {
            Some(problem) => Err(super::PluginError::Grants(problem)),
            None => Ok(()),
        }
    }

    type State = MemoryLimiter;

    /// Nothing to link: limits are set on the store.
    fn add_to_linker(_linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn prepare(call: &CallSetup<'_>, _wasi: &mut WasiCtxBuilder) -> Result<MemoryLimiter, String> {
        Ok(MemoryLimiter::new(call.sandbox.limits.memory_bytes))
    }

    /// Caps the store's memory and gives its guest code a deadline.
    fn arm(store: &mut Store<HostState>, call: &CallSetup<'_>) {
        store.limiter(|state| &mut state.limits);
        let deadline = Instant::now() + call.sandbox.limits.timeout;
        store.set_epoch_deadline(CHECK_TICKS);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(CHECK_TICKS)
            })
        });
    }
}

/// The wall-clock bound on a whole call. The epoch deadline stops guest
/// code; this also stops a call stuck in the host (an HTTP request, say).
/// A little slack lets the epoch trap win when both fire.
pub(super) fn outer_timeout(limits: &PluginLimits) -> Duration {
    limits.timeout + EPOCH_TICK * 10
}

/// Limits for each plugin call.
#[derive(Clone, Copy, Debug)]
pub struct PluginLimits {
    /// Linear memory, all memories of the component together, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time for one call (`describe`, `preflight` or `handle`),
    /// instantiation included.
    pub timeout: Duration,
}

impl PluginLimits {
    /// Enough for a Python or JavaScript component.
    pub const DEFAULT_MEMORY_BYTES: usize = 512 * 1024 * 1024;
    /// Enough for a handler that makes a few HTTPS calls.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Caps the memory one store's guest can make the host allocate — linear
/// memories and tables together — and remembers whether the cap was hit, so
/// a failure can be reported as "out of memory", not a vague trap.
pub(super) struct MemoryLimiter {
    max: usize,
    used: usize,
    /// The most `used` ever was.
    peak: usize,
    exceeded: bool,
    /// The machine, not the limit, refused memory the plugin was allowed.
    host_failed: bool,
    /// The last growth allowed: (`used` before it, whether it stayed within
    /// the memory's own maximum), to undo it if it then fails.
    last_grow: Option<(usize, bool)>,
}

/// What the memory limiter saw during a call.
#[derive(Clone, Copy)]
pub(super) struct MemoryVerdict {
    /// The plugin asked for more than `--memory`.
    pub exceeded: bool,
    /// The machine failed to provide memory within the limit.
    pub host_failed: bool,
    /// The most memory the call held at once, in bytes.
    pub peak: usize,
}

impl MemoryLimiter {
    fn new(max: usize) -> Self {
        Self {
            max,
            used: 0,
            peak: 0,
            exceeded: false,
            host_failed: false,
            last_grow: None,
        }
    }

    /// What the limiter saw, once the call is over.
    pub(super) fn verdict(&self) -> MemoryVerdict {
        MemoryVerdict {
            exceeded: self.exceeded,
            host_failed: self.host_failed,
            peak: self.peak,
        }
    }

    /// Accounts for one memory or table growing from `current` to
    /// `desired` bytes, if the budget allows it.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let after = (self.used - current.min(self.used)).saturating_add(desired);
        if after > self.max {
            self.exceeded = true;
            return false;
        }
        self.used = after;
        self.peak = self.peak.max(after);
        true
    }
}

/// Bytes the host spends per table element (a reference).
const TABLE_ELEMENT_BYTES: usize = 8;
/// Tables hold function references; no honest handler needs more per table.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Counts per store, far above what any toolchain's components use (a Python
/// component has a few dozen core instances), far below what could hurt.
const MAX_INSTANCES: usize = 1_000;
const MAX_TABLES: usize = 1_000;
const MAX_MEMORIES: usize = 100;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let before = self.used;
        let allowed = self.grow(current, desired);
        self.last_grow =
            allowed.then_some((before, maximum.is_none_or(|maximum| desired <= maximum)));
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Growth past a memory's own declared maximum is the plugin's
        // business (memory.grow returns -1); anything else means the host
        // could not provide memory within the limit.
        if let Some((before, within_maximum)) = self.last_grow.take() {
            self.used = before;
            if within_maximum {
                self.host_failed = true;
                tracing::debug!("the host could not grow a plugin memory: {error:#}");
            }
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS
            && self.grow(current * TABLE_ELEMENT_BYTES, desired * TABLE_ELEMENT_BYTES))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// The process's one ticker, for the process's one engine: started by
    /// the first handler that needs it, shared by every handler alive at
    /// the same time, and stopped when the last of them is dropped (so an
    /// idle process, a scheduler between runs, does not tick).
    pub(super) fn shared(engine: &Engine) -> Arc<Self> {
        static SHARED: Mutex<Weak<EpochTicker>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ticker) = shared.upgrade() {
            return ticker;
        }
        let ticker = Arc::new(Self::start(engine));
        *shared = Arc::downgrade(&ticker);
        ticker
    }

    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        thread::Builder::new()
            .name("keyrot-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How many ticks guest code runs between checks of its deadline. At each
/// check it also yields to the async executor, so a call can be cancelled
/// (an operator's interrupt) even while the guest spins.
const CHECK_TICKS: u64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_counts_all_memories_together() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(!limiter.memory_growing(0, 50, None).unwrap());
        assert!(limiter.exceeded);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
    }

    #[test]
    fn tables_count_against_the_same_budget() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!limiter.table_growing(0, 1 << 17, None).unwrap());
        assert!(limiter.exceeded);
        assert!(limiter.table_growing(0, 1 << 10, None).unwrap());
        assert!(
            !limiter
                .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
                .unwrap()
        );
    }

    #[test]
    fn growing_one_memory_counts_only_the_difference() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 50, None).unwrap());
        assert!(limiter.memory_growing(50, 90, None).unwrap());
        assert!(!limiter.memory_growing(90, 110, None).unwrap());
    }

    #[test]
    fn a_failed_growth_within_the_limit_is_the_hosts_failure() {
        let mut limiter = MemoryLimiter::new(100);
        // Past the memory's own maximum: the plugin's business.
        assert!(limiter.memory_growing(0, 60, Some(50)).unwrap());
        limiter
            .memory_grow_failed(wasmtime::format_err!("maximum"))
            .unwrap();
        assert!(!limiter.host_failed);
        // Within every limit, yet refused: the machine ran out.
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::format_err!("mmap failed"))
            .unwrap();
        assert!(limiter.host_failed && !limiter.exceeded);
        // The failed growth is not counted against the budget.
        assert!(limiter.memory_growing(0, 100, None).unwrap());
    }
}
