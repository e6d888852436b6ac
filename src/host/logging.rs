//! The `wasi:logging` capability and captured stdout/stderr.
//!
//! Everything a plugin says ends up in one bounded, redacted [`PluginLog`]:
//! each line is shown through `tracing` prefixed with the plugin's name and
//! kept for the report. A plugin cannot flood the host: lines, line length
//! and captured output are all capped, and the overflow is counted.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use zeroize::Zeroizing;

use self::wasi_logging::Level;
use super::HostState;
use super::capability::{CallSetup, Capability};
use super::witness::{Source, Witness};
use crate::handler::{LogLevel, LogLine};
use crate::secret::redact;
use crate::text::{escape_control, truncate};

/// Bindings for `wasi:logging` (`wit/deps/logging`), shared by every
/// contract version's bindings (their `with`).
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/deps/logging",
        world: "wasi:logging/imports",
    });
}
pub use bindings::wasi::logging::logging as wasi_logging;

/// Lines kept per call; later ones are counted, not kept.
const MAX_LINES: usize = 1000;
/// Bytes kept per line.
const MAX_LINE_BYTES: usize = 4096;
/// Bytes of stdout (and, separately, stderr) kept per call.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// `wasi:logging`, and the plugin's stdout and stderr.
pub(super) struct Logging;

impl Capability for Logging {
    type State = LogState;

    const INSPECT: &'static [(&'static str, &'static str)] = &[("wasi:logging/", "logging")];

    /// Links `wasi:logging/logging`.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasi_logging::add_to_linker::<HostState, HasSelf<LogState>>(linker, |state| {
            &mut state.logging
        })
    }

    /// A fresh log, and stdout/stderr captured into it (never inherited).
    fn prepare(call: &CallSetup<'_>, wasi: &mut WasiCtxBuilder) -> Result<LogState, String> {
        let stdout = CapturedOutput::new(MAX_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(MAX_OUTPUT_BYTES);
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        Ok(LogState {
            log: PluginLog::new(call.plugin, call.secrets.to_vec()),
            stdout,
            stderr,
            witness: call.sandbox.witness.clone(),
        })
    }
}

/// One call's log: what the plugin logged, and what it printed.
pub(super) struct LogState {
    log: PluginLog,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    /// Sees everything before redaction (`keyrot plugin test`).
    witness: Option<Arc<Witness>>,
}

impl LogState {
    /// Ends the call's log: keyrot's `notes` about the call, then what the
    /// plugin printed. Also returns the last lines of its stderr (not yet
    /// redacted), for a crash's message.
    pub(super) fn close(self, notes: &[String], facts: &[String]) -> (PluginLog, Option<String>) {
        if let Some(witness) = &self.witness {
            for (source, output) in [
                (Source::Stdout, &self.stdout),
                (Source::Stderr, &self.stderr),
            ] {
                witness.said(source, &String::from_utf8_lossy(&output.contents().0));
            }
        }
        let mut log = self.log;
        for fact in facts {
            log.fact(fact);
        }
        for note in notes {
            log.note(note);
        }
        log.push_output("stdout", &self.stdout);
        log.push_output("stderr", &self.stderr);
        (log, self.stderr.last_words())
    }
}

/// What one plugin call logged, redacted and bounded.
pub(super) struct PluginLog {
    plugin: String,
    secrets: Vec<Zeroizing<String>>,
    lines: Vec<LogLine>,
    dropped: usize,
}

impl PluginLog {
    fn new(plugin: &str, secrets: Vec<Zeroizing<String>>) -> Self {
        Self {
            plugin: plugin.to_string(),
            secrets,
            lines: Vec::new(),
            dropped: 0,
        }
    }

    /// Redacts `text` of every secret this call knows about.
    pub(super) fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(|s| s.as_str()).collect();
        redact(text, &secrets)
    }

    fn push(&mut self, level: LogLevel, context: &str, message: &str) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        // Redact before cutting: a secret straddling the cut would no
        // longer match, and its first half would be kept.
        let message = truncate(&self.redact(message), MAX_LINE_BYTES).to_string();
        let context = truncate(&self.redact(context), 256).to_string();
        // The report keeps the text (JSON escapes it); the terminal gets
        // control characters escaped, so a line cannot redraw the screen.
        let plugin = escape_control(&self.plugin);
        let shown = escape_control(&message);
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", "[{plugin}] {shown}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", "[{plugin}] {shown}"),
            LogLevel::Info => tracing::info!(target: "plugin", "[{plugin}] {shown}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", "[{plugin}] {shown}"),
            LogLevel::Error | LogLevel::Critical => {
                tracing::error!(target: "plugin", "[{plugin}] {shown}")
            }
        }
        self.lines.push(LogLine {
            level,
            context,
            message,
        });
    }

    /// Adds keyrot's own note about the call (a denied request, say): kept in
    /// the report with the plugin's lines, but logged as keyrot's, so hiding
    /// the plugin's log (`--plugin-log hide`) never hides it.
    /// What the host did for the plugin (a request it signed, a server it
    /// checked against a private CA), at info.
    fn fact(&mut self, message: &str) {
        let message = truncate(&self.redact(message), MAX_LINE_BYTES).to_string();
        tracing::info!(
            "plugin '{}': {}",
            escape_control(&self.plugin),
            escape_control(&message)
        );
        self.lines.push(LogLine {
            level: LogLevel::Info,
            context: "keyrot".into(),
            message,
        });
    }

    fn note(&mut self, message: &str) {
        let message = truncate(&self.redact(message), MAX_LINE_BYTES).to_string();
        tracing::warn!(
            "plugin '{}': {}",
            escape_control(&self.plugin),
            escape_control(&message)
        );
        self.lines.push(LogLine {
            level: LogLevel::Warn,
            context: "keyrot".into(),
            message,
        });
    }

    /// Adds what the plugin wrote to stdout or stderr, a line at a time.
    fn push_output(&mut self, stream: &str, output: &CapturedOutput) {
        let (bytes, dropped) = output.contents();
        let level = if stream == "stderr" {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if dropped > 0 {
            // The last line was cut by the cap, maybe inside a secret that
            // redaction can no longer recognise: drop it.
            lines.pop();
        }
        for line in lines {
            if !line.trim().is_empty() {
                self.push(level, stream, line);
            }
        }
        if dropped > 0 {
            self.push(
                LogLevel::Warn,
                stream,
                &format!("[{dropped} more bytes of {stream} dropped]"),
            );
        }
    }

    /// The kept lines, plus a note if some were dropped.
    pub(super) fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            let note = format!("[{} more log lines dropped]", self.dropped);
            tracing::warn!("plugin '{}': {note}", escape_control(&self.plugin));
            self.lines.push(LogLine {
                level: LogLevel::Warn,
                context: "keyrot".into(),
                message: note,
            });
        }
        self.lines
    }
}

impl wasi_logging::Host for LogState {
    fn log(&mut self, level: Level, context: String, message: String) {
        // A failpoint inside a host call, with the plugin's frames on the
        // stack: a panic here must unwind out through them.
        crate::testhook::hit("host-log");
        if let Some(witness) = &self.witness {
            witness.said(Source::Log, &format!("{context}: {message}"));
        }
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        self.log.push(level, &context, &message);
    }
}

/// A stdout/stderr sink that keeps the first `capacity` bytes and silently
/// counts the rest, so a chatty plugin neither fails nor grows the host.
#[derive(Clone)]
struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    fn write(&self, data: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        let room = inner.capacity - inner.bytes.len();
        let kept = data.len().min(room);
        inner.bytes.extend_from_slice(&data[..kept]);
        inner.dropped += data.len() - kept;
    }

    /// The last lines worth quoting in an error (a panic message, say).
    /// Not yet redacted, nor shortened (redact first).
    fn last_words(&self) -> Option<String> {
        let (bytes, _) = self.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note:"))
            .collect();
        let last = lines[lines.len().saturating_sub(2)..].join(" ");
        (!last.is_empty()).then_some(last)
    }

    fn contents(&self) -> (Vec<u8>, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.bytes.clone(), inner.dropped)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        CapturedOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        CapturedOutput::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_keeps_the_first_bytes_and_counts_the_rest() {
        let out = CapturedOutput::new(4);
        out.write(b"abc");
        out.write(b"def");
        assert_eq!(out.contents(), (b"abcd".to_vec(), 2));
    }

    #[test]
    fn log_lines_are_redacted_truncated_and_bounded() {
        let mut log = PluginLog::new("p", vec![Zeroizing::new("s3cret".to_string())]);
        log.push(LogLevel::Info, "ctx", "key is s3cret");
        log.push(LogLevel::Info, "ctx", &"x".repeat(MAX_LINE_BYTES + 10));
        for _ in 0..MAX_LINES {
            log.push(LogLevel::Debug, "ctx", "flood");
        }
        let lines = log.finish();
        assert_eq!(lines[0].message, "key is [redacted]");
        assert_eq!(lines[1].message.len(), MAX_LINE_BYTES);
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(
            lines
                .last()
                .unwrap()
                .message
                .contains("2 more log lines dropped")
        );
    }
}
