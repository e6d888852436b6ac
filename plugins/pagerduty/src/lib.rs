//! A PagerDuty reporter (Events API v2, `POST /v2/enqueue`): an alert
//! (`trigger`) for each user whose rotation failed or needs a person, and
//! a `resolve` for each user that rotated, so the incident closes itself
//! once a later run succeeds.
//!
//! Each user's alert has a stable `dedup_key`,
//! `keyrot/ACCOUNT/USER`, so a rerun that fails again updates the open
//! alert instead of opening another, and the resolve finds it. The
//! integration's routing key is a secret setting. PagerDuty answers 202 to
//! an accepted event, 400 to an invalid one (not retried: the message
//! says why), 429 when throttled and 5xx when unwell (both retried with
//! backoff). Users that were only warned, skipped or exempt are not sent.

use reporter_kit::http::{self, Retry};
use reporter_kit::{Event, Guest, PluginInfo, RunReport, Setting, UserReport};
use serde_json::{Value, json};

/// PagerDuty caps a summary at 1024 characters.
const MAX_SUMMARY_CHARS: usize = 1024;

struct PagerDuty;

impl Guest for PagerDuty {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, required, secret| Setting {
            name: name.into(),
            description: description.into(),
            required,
            secret,
        };
        PluginInfo {
            name: "pagerduty".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Triggers a PagerDuty alert per user needing a person; resolves it once \
                          the user rotates."
                .into(),
            settings: vec![
                setting(
                    "routing-key",
                    "The Events API v2 integration key of the service",
                    true,
                    true,
                ),
                setting(
                    "severity",
                    "critical, error (default), warning or info",
                    false,
                    false,
                ),
                setting(
                    "source",
                    "Where the alert comes from, e.g. keyrot-prod (default keyrot)",
                    false,
                    false,
                ),
                setting(
                    "api-url",
                    "The Events API base URL (default https://events.pagerduty.com)",
                    false,
                    false,
                ),
            ],
        }
    }

    fn report(run: RunReport) -> Result<(), String> {
        let routing_key = reporter_kit::required("routing-key")?;
        let severity = reporter_kit::setting("severity")?.unwrap_or_else(|| "error".into());
        if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
            return Err(format!(
                "severity '{severity}' is not one of critical, error, warning, info"
            ));
        }
        let source = reporter_kit::setting("source")?.unwrap_or_else(|| "keyrot".into());
        let base = reporter_kit::setting("api-url")?
            .unwrap_or_else(|| "https://events.pagerduty.com".into());
        let endpoint = format!("{}/v2/enqueue", base.trim_end_matches('/'));
        let (mut triggered, mut resolved) = (0, 0);
        for user in &run.users {
            let event = if reporter_kit::needs_attention(user) {
                triggered += 1;
                trigger(&routing_key, user, &severity, &source, run.dry_run)
            } else if user.events.contains(&Event::Rotated) {
                resolved += 1;
                json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key(user),
                })
            } else {
                continue;
            };
            send(&endpoint, &event, user)?;
        }
        reporter_kit::info(
            "report",
            &format!("{triggered} alert(s) triggered, {resolved} resolved"),
        );
        Ok(())
    }
}

/// The alert's stable key: one per user of an account.
fn dedup_key(user: &UserReport) -> String {
    format!(
        "keyrot/{}/{}",
        user.account.as_deref().unwrap_or("unknown-account"),
        user.user
    )
}

fn trigger(routing_key: &str, user: &UserReport, severity: &str, source: &str, dry: bool) -> Value {
    let outcome = reporter_kit::outcome_name(user.outcome);
    let mut summary = format!(
        "keyrot{}: {} {outcome}",
        if dry { " (dry run)" } else { "" },
        reporter_kit::who(user)
    );
    if let Some(reason) = &user.reason {
        summary.push_str(": ");
        summary.push_str(reason);
    }
    let summary: String = summary.chars().take(MAX_SUMMARY_CHARS).collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(user),
        "payload": {
            "summary": summary,
            "source": source,
            "severity": severity,
            "component": user.user,
            "group": user.account,
            "class": outcome,
            "custom_details": reporter_kit::json::user(user),
        },
    })
}

fn send(endpoint: &str, event: &Value, user: &UserReport) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let response = http::post_json_retrying(endpoint, &[], &body, Retry::default())?;
    if response.status == 202 || response.is_success() {
        return Ok(());
    }
    // 400: the event is invalid; PagerDuty says why in `errors`.
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let why = match answer["errors"].as_array() {
        Some(errors) => errors
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        None => response.text(),
    };
    Err(format!(
        "PagerDuty refused the event for {} ({}): {why}",
        reporter_kit::who(user),
        response.status
    ))
}

reporter_kit::export!(PagerDuty);
