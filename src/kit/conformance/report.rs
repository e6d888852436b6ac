//! What `keyrot plugin test` found: one check per rule of the contract,
//! passed, failed or skipped (with why), and every call it made. The CLI
//! renders it as a list or as JSON (`--output json`, schema below).

use serde::Serialize;

/// The JSON report's shape; bumped when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 1;

/// The rules `keyrot plugin test` checks, in the order it reports them:
/// (id, what a handler must do).
pub const RULES: &[(&str, &str)] = &[
    (
        "describe-stable",
        "describe answers the same every time, needs included",
    ),
    (
        "describe-settings",
        "describe names every setting the handler reads",
    ),
    (
        "describe-secrets",
        "describe marks the settings given as secrets secret",
    ),
    (
        "needs-granted",
        "keyrot's check of the grants against describe's needs passes",
    ),
    (
        "settings-refused",
        "missing or unknown settings are refused before any key, with a message",
    ),
    (
        "rotation",
        "a rotation completes: preflight, handle, the old key retired",
    ),
    ("handle-once", "handle gets each new key once"),
    (
        "preflight-unreachable",
        "preflight refuses an unreachable destination, before any key exists",
    ),
    (
        "preflight-changes-nothing",
        "preflight changes nothing in the granted directories",
    ),
    (
        "handle-failure",
        "a failing handle says so, and keyrot deletes the new key",
    ),
    (
        "secret-hidden",
        "no secret appears in log lines, output or errors, raw or encoded",
    ),
    (
        "resume",
        "the rerun after an interrupted run is accepted (abandoned-key-ids)",
    ),
    (
        "limits",
        "every call stays within the time and memory limits",
    ),
];

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The handler keeps the rule.
    Pass,
    /// It breaks it: `detail` says how.
    Fail,
    /// The check could not apply to this handler: `detail` says why.
    Skip,
}

/// One rule, checked.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The rule's id, e.g. `secret-hidden`.
    pub rule: &'static str,
    /// What the rule asks of a handler.
    pub title: &'static str,
    /// How it went.
    pub status: Status,
    /// What was seen: the evidence for a pass, the problem for a failure,
    /// the reason for a skip.
    pub detail: String,
}

/// The plugin tested.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tested {
    /// The file.
    pub path: String,
    /// Its sha256, hex.
    pub sha256: String,
    /// The contract it speaks, e.g. `keyrot:handler@0.4.0`.
    pub contract: String,
    /// What `describe` says its name is.
    pub name: String,
    /// And its version.
    pub version: String,
}

/// One `preflight` or `handle` call the suite made.
#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    /// Which check's rotation it belonged to, e.g. `rotation`.
    pub probe: &'static str,
    /// `preflight` or `handle`.
    pub call: &'static str,
    /// How long it took, in milliseconds.
    pub ms: u64,
    /// The most memory it held, in bytes.
    pub memory_bytes: u64,
    /// `ok`, or how it failed: `rejected`, `trapped`, `timed-out`,
    /// `out-of-memory`, `interrupted`.
    pub outcome: &'static str,
    /// The error keyrot showed, redacted, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `keyrot plugin test` found.
#[derive(Clone, Debug, Serialize)]
pub struct ConformanceReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The plugin.
    pub plugin: Tested,
    /// Whether no check failed (skipped ones do not count).
    pub passed: bool,
    /// How many checks passed, failed and were skipped.
    pub summary: Summary,
    /// Every check, in [`RULES`] order.
    pub checks: Vec<Check>,
    /// What the suite set up itself for the test, as the flags a run would
    /// take (`--allow-dir ...`, `--config ...`).
    pub provided: Vec<String>,
    /// Every call made, in order.
    pub calls: Vec<CallRecord>,
}

/// Counts of each status.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    /// Checks passed.
    pub passed: usize,
    /// Checks failed.
    pub failed: usize,
    /// Checks skipped.
    pub skipped: usize,
}

impl ConformanceReport {
    /// A report of `checks`, in the order of [`RULES`], with the counts.
    pub fn new(
        plugin: Tested,
        mut checks: Vec<Check>,
        provided: Vec<String>,
        calls: Vec<CallRecord>,
    ) -> Self {
        let order = |rule: &str| RULES.iter().position(|(id, _)| *id == rule);
        checks.sort_by_key(|c| order(c.rule));
        let count = |status| checks.iter().filter(|c| c.status == status).count();
        let summary = Summary {
            passed: count(Status::Pass),
            failed: count(Status::Fail),
            skipped: count(Status::Skip),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            plugin,
            passed: summary.failed == 0,
            summary,
            checks,
            provided,
            calls,
        }
    }

    /// The process exit code: 0 when no check failed, else 1.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.passed)
    }
}

/// The title of rule `id`.
pub(super) fn title(id: &'static str) -> &'static str {
    RULES
        .iter()
        .find(|(rule, _)| *rule == id)
        .map_or("", |(_, title)| title)
}

/// A check of rule `id`.
pub(super) fn check(rule: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        rule,
        title: title(rule),
        status,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_in_rule_order_and_failures_decide() {
        let checks = vec![
            check("limits", Status::Pass, "fast"),
            check("rotation", Status::Skip, "why"),
            check("describe-stable", Status::Fail, "changed"),
        ];
        let report = ConformanceReport::new(Tested::default(), checks, vec![], vec![]);
        let rules: Vec<&str> = report.checks.iter().map(|c| c.rule).collect();
        assert_eq!(rules, ["describe-stable", "rotation", "limits"]);
        assert!(!report.passed);
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            (
                report.summary.passed,
                report.summary.failed,
                report.summary.skipped
            ),
            (1, 1, 1)
        );
        assert!(
            RULES
                .iter()
                .all(|(id, title)| !id.is_empty() && !title.is_empty())
        );
    }
}
