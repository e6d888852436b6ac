//! What the operator sees while a fleet rotates: a progress bar (done,
//! rotated, skipped, failed, ETA) when stderr is a terminal, one line per
//! finished user when it is not, nothing with `-q`. It is the library
//! fleet's [`Observer`].

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyrot::fleet::Observer;
use keyrot::{Outcome, RotationReport};

use super::args::Cli;

/// What the operator sees while a fleet rotates: a progress bar when stderr
/// is a terminal, a line per finished user when it is not, nothing with -q.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    total: usize,
    counts: std::sync::Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    done: usize,
    rotated: usize,
    skipped: usize,
    failed: usize,
}

impl Progress {
    pub(super) fn new(cli: &Cli, total: usize, fleet: bool) -> Self {
        let show = fleet && !cli.quiet;
        let bar = (show && std::io::stderr().is_terminal())
            .then(|| {
                ProgressBar::with_draw_target(
                    Some(total as u64),
                    ProgressDrawTarget::stderr_with_hz(4),
                )
            })
            // A terminal indicatif cannot draw on (TERM=dumb): plain lines.
            .filter(|bar| !bar.is_hidden());
        if let Some(bar) = &bar {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} users  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            super::console::set_progress_bar(Some(bar.clone()));
        }
        Self {
            lines: show && bar.is_none(),
            bar,
            total,
            counts: Default::default(),
        }
    }

    /// Draws the bar one last time, with the final counts, and lets go of
    /// stderr before the report is printed.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            super::console::set_progress_bar(None);
        }
    }
}

impl Observer for Progress {
    fn started(&self, _account: &str, user: &str) {
        tracing::debug!("starting {user}");
    }

    fn finished(&self, report: &RotationReport) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.done += 1;
        match report.outcome {
            Outcome::Rotated | Outcome::Partial | Outcome::Draining => counts.rotated += 1,
            Outcome::Skipped | Outcome::Exempt | Outcome::WouldRotate => counts.skipped += 1,
            Outcome::Failed | Outcome::NeedsManualAction | Outcome::BadInput => counts.failed += 1,
        }
        if let Some(bar) = &self.bar {
            bar.set_position(counts.done as u64);
            bar.set_message(format!(
                "rotated {}  skipped {}  failed {}",
                counts.rotated, counts.skipped, counts.failed
            ));
        } else if self.lines {
            super::stderr_line(format_args!(
                "[{}/{}] {}",
                counts.done,
                self.total,
                super::render::fleet_line(report)
            ));
        }
    }
}
