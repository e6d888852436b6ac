//! The new-key handler seam: what receives the new key and propagates it.
//!
//! [`crate::host::WasmHandler`] is the sandboxed WebAssembly implementation;
//! a Rust user of the library can supply their own.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use crate::iam::NewAccessKey;

/// What is known before any key is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The IAM user whose key is rotated.
    pub user_name: String,
    /// The user's active key being replaced, if there is one.
    pub current_key_id: Option<String>,
    /// The AWS account the user belongs to (12 digits), when known: the
    /// caller identity's account. Plugins of contract 0.1.0 never see it.
    pub account_id: Option<String>,
    /// Keys interrupted attempts may have stored at the destination before
    /// keyrot deleted them, newest first: the destination may hold one of
    /// them instead of the current key, and a strict handler may replace
    /// it. Plugins of contract 0.3.0 are told the newest; older ones none.
    pub abandoned_key_ids: Vec<String>,
}

/// How a handler failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerErrorKind {
    /// The handler returned an error.
    Rejected,
    /// The handler crashed (a WebAssembly trap or panic).
    Trapped,
    /// The handler ran past its time limit.
    TimedOut,
    /// The handler hit its memory limit.
    OutOfMemory,
    /// The operator stopped keyrot while the handler ran.
    Interrupted,
}

/// A handler call failed. The message is shown to the operator as is.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// How it failed.
    pub kind: HandlerErrorKind,
    /// What the handler (or the host, for traps and limits) said.
    pub message: String,
}

impl HandlerError {
    /// Builds an error of the given kind.
    pub fn new(kind: HandlerErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The handler declined: the common case for a handler written in Rust.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(HandlerErrorKind::Rejected, message)
    }
}

/// Severity of a handler log line (the levels of `wasi:logging`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    /// Detailed flow.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
    /// Something failed badly.
    Critical,
}

/// One line a handler logged, already redacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The handler's own grouping (`wasi:logging` context), or `stdout` / `stderr`.
    pub context: String,
    /// The text.
    pub message: String,
}

/// Where one rotation's handler log lines go. Each rotation has its own, so
/// rotations sharing a handler never mix their lines.
#[derive(Debug, Default)]
pub struct HandlerLog {
    lines: Mutex<Vec<LogLine>>,
}

impl HandlerLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds lines.
    pub fn extend(&self, lines: impl IntoIterator<Item = LogLine>) {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(lines);
    }

    /// Everything logged so far, emptying the log.
    pub fn take(&self) -> Vec<LogLine> {
        std::mem::take(
            &mut *self
                .lines
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// Receives the new key and propagates it.
#[async_trait]
pub trait NewKeyHandler: Send + Sync {
    /// Checks, before any key is created, that [`NewKeyHandler::handle`] can
    /// succeed. An error aborts the rotation with nothing changed. Lines for
    /// the report go to `log`.
    async fn preflight(&self, rotation: &Rotation, log: &HandlerLog) -> Result<(), HandlerError> {
        let _ = (rotation, log);
        Ok(())
    }

    /// Propagates the new key. Return `Ok` only once the key is stored where
    /// it is needed; an error makes the rotation delete the new key.
    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError>;
}

#[async_trait]
impl<T: NewKeyHandler + ?Sized> NewKeyHandler for Arc<T> {
    async fn preflight(&self, rotation: &Rotation, log: &HandlerLog) -> Result<(), HandlerError> {
        (**self).preflight(rotation, log).await
    }

    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError> {
        (**self).handle(rotation, key, log).await
    }
}
