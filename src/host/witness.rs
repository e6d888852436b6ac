//! What a plugin did during its calls, seen from inside the host, for
//! `keyrot plugin test` (see [`crate::kit`]): the settings it read, every
//! text it produced before redaction (log lines, stdout and stderr, error
//! messages, a crash's last words), and the most memory it held.
//!
//! Nothing records this in a real run: a [`Sandbox`](super::Sandbox) has
//! no witness unless one is given. The texts may hold secrets (that is
//! what the conformance suite looks for), so they are wiped when dropped
//! and never printed by `Debug`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use zeroize::Zeroizing;

/// Where a plugin's text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A `wasi:logging` line (context and message).
    Log,
    /// What it wrote to stdout.
    Stdout,
    /// What it wrote to stderr.
    Stderr,
    /// The error message it returned.
    Error,
    /// What a crash (a trap) said.
    Crash,
}

impl Source {
    /// In words, for a message: "log lines".
    pub fn words(self) -> &'static str {
        match self {
            Source::Log => "log lines",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
            Source::Error => "error message",
            Source::Crash => "crash message",
        }
    }
}

/// One text a plugin produced, not redacted.
pub struct Said {
    /// Where it came from.
    pub source: Source,
    /// The text, wiped when dropped.
    pub text: Zeroizing<String>,
}

/// What the plugin did since the last [`Witness::take`].
#[derive(Default)]
pub struct Observed {
    /// The settings it asked `wasi:config/store.get` for.
    pub settings_read: BTreeSet<String>,
    /// Whether it called `get-all` (which hands it every setting).
    pub read_all: bool,
    /// What it said, in order.
    pub said: Vec<Said>,
    /// The most linear memory and tables one call held, in bytes.
    pub memory_peak: usize,
}

/// Records what a plugin does in every call of the sandbox it is given to.
#[derive(Default)]
pub struct Witness {
    observed: Mutex<Observed>,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Witness { .. }")
    }
}

impl Witness {
    /// A witness to give to a [`Sandbox`](super::Sandbox).
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// What was recorded since the last call, emptying the record.
    pub fn take(&self) -> Observed {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn read_setting(&self, name: &str) {
        self.lock().settings_read.insert(name.to_string());
    }

    pub(super) fn read_all(&self) {
        self.lock().read_all = true;
    }

    pub(super) fn said(&self, source: Source, text: &str) {
        if !text.is_empty() {
            self.lock().said.push(Said {
                source,
                text: Zeroizing::new(text.to_string()),
            });
        }
    }

    pub(super) fn memory(&self, bytes: usize) {
        let mut observed = self.lock();
        observed.memory_peak = observed.memory_peak.max(bytes);
    }
}
