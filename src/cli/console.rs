//! keyrot's own output channels, made unable to abort a rotation.
//!
//! Once a key exists, nothing keyrot prints may stop it from finishing: a
//! closed pipe (`keyrot ... 2>&1 | head -1`) or a full disk behind `2>log`
//! must not panic mid-rotation (`eprintln!` and tracing's default writer
//! both panic or complain on a failed write). Everything here ignores write
//! errors; the exit code still tells the outcome.
//!
//! It also decides whether the plugin's own log lines reach stderr
//! (`--plugin-log`), and counts the ones it hides.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::ProgressBar;

use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::args::{Cli, PluginLogMode};

/// The fleet's progress bar while one is drawn: stderr output goes above
/// it instead of through it.
static PROGRESS_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sets (or, with `None`, removes) the progress bar stderr writes go around.
pub fn set_progress_bar(bar: Option<ProgressBar>) {
    *PROGRESS_BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Runs `write` with the progress bar, if any, out of the way.
fn around_bar(write: impl FnOnce()) {
    let bar = PROGRESS_BAR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Writes one line to stderr; a failed write is ignored (there is nowhere
/// left to report it).
pub fn stderr_line(line: impl std::fmt::Display) {
    around_bar(|| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
        let _ = stderr.flush();
    });
}

/// Stderr for the log: every write "succeeds", whatever became of it.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        around_bar(|| drop(std::io::stderr().write_all(buf)));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Plugin log lines not shown because of `--plugin-log`.
static HIDDEN_PLUGIN_LINES: AtomicUsize = AtomicUsize::new(0);

/// Counts the plugin's log lines that the fmt layer does not show.
struct CountHidden;

impl<S: Subscriber> Layer<S> for CountHidden {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        HIDDEN_PLUGIN_LINES.fetch_add(1, Ordering::Relaxed);
    }
}

impl PluginLogMode {
    /// Whether the plugin's lines go to stderr: `auto` shows them only to a
    /// person at a terminal, not to a log file or a CI job's output.
    pub fn shows(self) -> bool {
        match self {
            PluginLogMode::Show => true,
            PluginLogMode::Hide => false,
            PluginLogMode::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// Logs go to stderr: keyrot's and plugins' at info (`-v` debug, `-vv`
/// trace, `-q` errors only); `KEYROT_LOG` overrides with a tracing filter.
/// With the plugin's log hidden, its lines are counted instead.
pub fn init_logging(cli: &Cli) {
    // `plugin test` makes keys in memory and fails calls on purpose: its
    // report says what matters, keyrot's own lines would be noise.
    let testing = matches!(
        cli.command,
        Some(super::Command::Plugin(super::PluginCommand::Test(_)))
    );
    let (default, plugin_level) = match (cli.quiet, cli.verbose) {
        (true, _) => ("error", LevelFilter::ERROR),
        (false, 0) if testing => ("error,plugin=info", LevelFilter::INFO),
        // The SDK's credential chain warns about every source it tries;
        // keyrot reports the one error that matters itself.
        (false, 0) => (
            "warn,aws_config=error,sigstore=error,keyrot=info,plugin=info",
            LevelFilter::INFO,
        ),
        (false, 1) => (
            "warn,aws_config=error,sigstore=error,keyrot=debug,plugin=debug",
            LevelFilter::DEBUG,
        ),
        (false, _) => ("info,keyrot=trace,plugin=trace", LevelFilter::TRACE),
    };
    let mut filter =
        EnvFilter::try_from_env("KEYROT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let hide = !cli.plugin_log.shows();
    if hide && let Ok(off) = "plugin=off".parse() {
        filter = filter.add_directive(off);
    }
    // Colour only for a person at a terminal: never into files and pipes.
    let ansi = cli.color.enabled(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(|| LossyStderr)
        // Its default reports a failed write with eprintln!, which panics.
        .log_internal_errors(false)
        .with_target(false)
        .without_time()
        .with_filter(filter);
    let count =
        hide.then(|| CountHidden.with_filter(Targets::new().with_target("plugin", plugin_level)));
    tracing_subscriber::registry().with(fmt).with(count).init();
}

/// Says how many plugin log lines were hidden, if any, and how to see them.
pub fn note_hidden_plugin_lines(cli: &Cli) {
    let hidden = HIDDEN_PLUGIN_LINES.load(Ordering::Relaxed);
    if hidden > 0 && !cli.quiet {
        let lines = if hidden == 1 { "line" } else { "lines" };
        stderr_line(format_args!(
            "note: {hidden} plugin log {lines} not shown (stderr is not a terminal, or \
             --plugin-log hide); to see them: --plugin-log show"
        ));
    }
}
