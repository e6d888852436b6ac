//! `keyrot status --output prometheus`: the same look as text, JSON or CSV,
//! as metrics for node_exporter's textfile collector or a Pushgateway.
//! Times are exported as Unix timestamps, so an alert computes ages with
//! `time()` however old the file is; ages at the time of the look are there
//! too, for dashboards. docs/metrics.md has the metrics and alert rules.

use keyrot::rotation::{ExemptReport, parse_rfc3339, unix_now};

use super::view::UserView;
use crate::cli::metrics::{Metrics, target_name};

/// Adds one user's series.
pub(super) fn user(metrics: &mut Metrics, account: &str, account_name: &str, user: &UserView) {
    let name = user.user.as_str();
    metrics.gauge(
        "keyrot_user_state",
        "Where an IAM user stands, one series with value 1 whose state label is one of due, \
         warn, ok, exempt, draining, resume, refuse, no-keys, error.",
        &[
            ("account", account),
            ("account_name", account_name),
            ("user", name),
            ("state", user.state),
            ("owner", user.owner.as_deref().unwrap_or_default()),
            ("target", target_name(user.target.as_deref())),
        ],
        1.0,
    );
    if let Some(due) = user.due.as_deref().and_then(parse_rfc3339) {
        metrics.gauge(
            "keyrot_user_due_timestamp_seconds",
            "When the user's active key reaches its max age (older-than, max-age).",
            &[("account", account), ("user", name)],
            due as f64,
        );
    }
    if let Some(record) = &user.journal {
        metrics.gauge(
            "keyrot_user_rotation_pending",
            "1 while a rotation of the user is unfinished: interrupted or failed (the next \
             run finishes it), or draining its old key; phase says which.",
            &[
                ("account", account),
                ("user", name),
                ("phase", record.phase.as_str()),
            ],
            1.0,
        );
    }
    if let Some(exempt) = &user.exempt {
        exemption(metrics, account, name, exempt);
    }
    let now = unix_now();
    for key in &user.keys {
        let labels = [
            ("account", account),
            ("user", name),
            ("access_key_id", key.access_key_id.as_str()),
            ("status", key.status.as_str()),
        ];
        if let Some(created) = key.create_date.as_deref().and_then(parse_rfc3339) {
            metrics.gauge(
                "keyrot_access_key_created_timestamp_seconds",
                "When the access key was created; its age is time() minus this.",
                &labels,
                created as f64,
            );
            metrics.gauge(
                "keyrot_access_key_age_seconds",
                "The access key's age when keyrot looked.",
                &labels,
                now.saturating_sub(created) as f64,
            );
        }
        let used = key.last_used.as_ref();
        if let Some(date) = used.and_then(|u| u.date.as_deref()).and_then(parse_rfc3339) {
            let used = used.expect("a date comes with a last use");
            metrics.gauge(
                "keyrot_access_key_last_used_timestamp_seconds",
                "When the access key last signed a request, as IAM records it (hours late); \
                 absent for a key never used.",
                &[
                    ("account", account),
                    ("user", name),
                    ("access_key_id", key.access_key_id.as_str()),
                    ("service", used.service.as_deref().unwrap_or_default()),
                    ("region", used.region.as_deref().unwrap_or_default()),
                ],
                date as f64,
            );
        }
    }
}

/// An exemption's end, when it has one.
fn exemption(metrics: &mut Metrics, account: &str, user: &str, exempt: &ExemptReport) {
    // `until` is the last day it holds: it ends when that day does.
    let until = exempt.until.as_deref();
    if let Some(end) = until.and_then(|day| parse_rfc3339(&format!("{day}T23:59:59Z"))) {
        metrics.gauge(
            "keyrot_exemption_expiry_timestamp_seconds",
            "When an exemption ends (user `*` is a whole account).",
            &[("account", account), ("user", user), ("by", &exempt.by)],
            (end + 1) as f64,
        );
    }
}

/// Adds a whole account's series (organization status): entered, exempt,
/// or could not be looked at.
pub(super) fn account(
    metrics: &mut Metrics,
    account: &str,
    name: &str,
    state: &str,
    exempt: Option<&ExemptReport>,
) {
    metrics.gauge(
        "keyrot_account_state",
        "Where an account of the organization stands, one series with value 1 whose state \
         label is entered, exempt or error (keyrot could not look into it).",
        &[
            ("account", account),
            ("account_name", name),
            ("state", state),
        ],
        1.0,
    );
    if let Some(exempt) = exempt {
        exemption(metrics, account, "*", exempt);
    }
}

/// The series every look ends with: when it was made.
pub(super) fn finish(metrics: &mut Metrics, errors: usize) {
    metrics.gauge(
        "keyrot_status_errors",
        "Users and accounts keyrot could not look at in this look.",
        &[],
        errors as f64,
    );
    metrics.gauge(
        "keyrot_status_timestamp_seconds",
        "When keyrot looked.",
        &[],
        unix_now() as f64,
    );
}
