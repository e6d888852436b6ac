//! The Prometheus text exposition format (version 0.0.4), for
//! `status --output prometheus` and `--metrics-file`: what node_exporter's
//! textfile collector and a Pushgateway read.
//!
//! Names and labels follow Prometheus' conventions: a `keyrot_` prefix,
//! base units (`_seconds`, `_timestamp_seconds`), one `# HELP` and `# TYPE`
//! per family with all its samples together, label values escaped.

use std::io::{self, Write};
use std::path::Path;

use keyrot::fsutil::AtomicFile;
use keyrot::rotation::{Outcome, unix_now};
use keyrot::{FleetSummary, RotationReport};

/// One family: its name, help, type and samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

/// Samples gathered by family, written in the order families were first
/// named.
#[derive(Default)]
pub(super) struct Metrics {
    families: Vec<Family>,
}

impl Metrics {
    /// Adds a gauge sample. `labels` with an empty value are left out (an
    /// empty label is no label to Prometheus).
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    kind: "gauge",
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        self.families[index]
            .samples
            .push((label_set(labels), value));
    }

    /// Writes the exposition.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        for family in &self.families {
            writeln!(out, "# HELP {} {}", family.name, escape_help(family.help))?;
            writeln!(out, "# TYPE {} {}", family.name, family.kind)?;
            for (labels, value) in &family.samples {
                writeln!(out, "{}{labels} {}", family.name, number(*value))?;
            }
        }
        Ok(())
    }

    /// Writes the exposition to `path` atomically, readable by all (the
    /// collector usually runs as another user; nothing here is secret), so
    /// a collector never reads half a file.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut file = AtomicFile::create(parent(path), path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        self.write(&mut file)?;
        file.commit()
    }
}

/// Refuses a metrics file keyrot could not write, before any key changes:
/// a temp file is made beside it and removed.
pub(super) fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = parent(path);
    if path.is_dir() {
        anyhow::bail!(
            "--metrics-file {}: is a directory; name a file",
            path.display()
        );
    }
    AtomicFile::create(dir, path).map(drop).map_err(|err| {
        anyhow::anyhow!(
            "--metrics-file {}: cannot write in {}: {err}",
            path.display(),
            dir.display()
        )
    })
}

/// A run's outcomes: per user, and counted per outcome.
pub(super) fn run(reports: &[RotationReport], summary: &FleetSummary) -> Metrics {
    let mut metrics = Metrics::default();
    for report in reports {
        metrics.gauge(
            "keyrot_rotation_outcome",
            "How the last run ended for a user, one series with value 1 whose outcome label \
             is rotated, skipped, exempt, would-rotate, draining, failed, partial, \
             needs-manual-action or bad-input.",
            &[
                ("account", report.account.as_deref().unwrap_or_default()),
                (
                    "account_name",
                    report.account_name.as_deref().unwrap_or_default(),
                ),
                ("user", &report.user),
                ("outcome", report.outcome.as_str()),
                ("owner", report.owner.as_deref().unwrap_or_default()),
                ("target", target_name(report.target.as_deref())),
            ],
            1.0,
        );
    }
    for (outcome, count) in [
        (Outcome::Rotated, summary.rotated),
        (Outcome::Skipped, summary.skipped),
        (Outcome::Exempt, summary.exempt),
        (Outcome::WouldRotate, summary.would_rotate),
        (Outcome::Draining, summary.draining),
        (Outcome::Failed, summary.failed),
        (Outcome::Partial, summary.partial),
        (Outcome::NeedsManualAction, summary.needs_manual_action),
        (Outcome::BadInput, summary.bad_input),
    ] {
        metrics.gauge(
            "keyrot_run_users",
            "Users of the last run per outcome (0 included, so an alert on failures has a \
             series to watch).",
            &[("outcome", outcome.as_str())],
            count as f64,
        );
    }
    metrics.gauge(
        "keyrot_run_warned_users",
        "Users of the last run with a warning (a key due soon, an exemption ending).",
        &[],
        summary.warned as f64,
    );
    metrics.gauge(
        "keyrot_run_exit_code",
        "The last run's exit code (0 fine, 1 failed, 3 partial, 4 needs attention, ...).",
        &[],
        f64::from(summary.exit_code),
    );
    metrics.gauge(
        "keyrot_run_duration_seconds",
        "How long the last run took.",
        &[],
        summary.duration_ms as f64 / 1000.0,
    );
    metrics.gauge(
        "keyrot_run_timestamp_seconds",
        "When the last run ended; a stale value means runs stopped.",
        &[],
        unix_now() as f64,
    );
    metrics
}

/// A job target's name as a label: `prod` for `target prod`, `#2` for an
/// unnamed second one.
pub(super) fn target_name(label: Option<&str>) -> &str {
    let label = label.unwrap_or_default();
    label.strip_prefix("target ").unwrap_or(label)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `{a="x",b="y"}`, or nothing without labels.
fn label_set(labels: &[(&str, &str)]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A label value: backslash, double quote and line feed escaped, as the
/// format requires (tag values are anyone's to write).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Whole numbers without a fraction, as people read them.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_their_samples_and_escape_labels() {
        let mut m = Metrics::default();
        m.gauge("keyrot_a", "First.", &[("user", "ci")], 1.0);
        m.gauge("keyrot_b", "Second.", &[], 2.5);
        m.gauge(
            "keyrot_a",
            "First.",
            &[("user", "x\"y\\z\nw"), ("owner", "")],
            1_700_000_000.0,
        );
        let mut out = Vec::new();
        m.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP keyrot_a First.\n# TYPE keyrot_a gauge\nkeyrot_a{user=\"ci\"} 1\n\
             keyrot_a{user=\"x\\\"y\\\\z\\nw\"} 1700000000\n\
             # HELP keyrot_b Second.\n# TYPE keyrot_b gauge\nkeyrot_b 2.5\n"
        );
    }
}
