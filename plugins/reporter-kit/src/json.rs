//! The run's report as JSON, in the field names of keyrot's own JSON
//! report (snake_case), for reporters that forward it as it is.

use serde_json::{Value, json};

use crate::{OldKey, RunReport, UserReport, event_name, outcome_name};

/// The whole report: `keyrot_version`, `time`, `dry_run`, `accounts`,
/// `summary` and `users`.
pub fn run(run: &RunReport) -> Value {
    let s = &run.summary;
    json!({
        "keyrot_version": run.keyrot_version,
        "time": run.time,
        "dry_run": run.dry_run,
        "accounts": run.accounts,
        "summary": {
            "users": s.users,
            "rotated": s.rotated,
            "skipped": s.skipped,
            "exempt": s.exempt,
            "would_rotate": s.would_rotate,
            "draining": s.draining,
            "failed": s.failed,
            "partial": s.partial,
            "needs_manual_action": s.needs_manual_action,
            "bad_input": s.bad_input,
            "warned": s.warned,
            "exit_code": s.exit_code,
        },
        "users": run.users.iter().map(user).collect::<Vec<_>>(),
    })
}

/// One user.
pub fn user(user: &UserReport) -> Value {
    json!({
        "account": user.account,
        "account_name": user.account_name,
        "user": user.user,
        "owner": user.owner,
        "target": user.target,
        "outcome": outcome_name(user.outcome),
        "events": user.events.iter().map(|e| event_name(*e)).collect::<Vec<_>>(),
        "new_key": user.new_key.as_ref().map(|k| json!({
            "access_key_id": k.access_key_id,
            "state": k.state,
        })),
        "old_keys": user.old_keys.iter().map(old_key).collect::<Vec<_>>(),
        "due": user.due,
        "exemption": user.exemption,
        "warnings": user.warnings,
        "reason": user.reason,
        "advice": user.advice,
    })
}

fn old_key(key: &OldKey) -> Value {
    json!({
        "access_key_id": key.access_key_id,
        "status": key.status,
        "created": key.created,
        "age_days": key.age_days,
        "last_used": key.last_used,
        "last_used_service": key.last_used_service,
        "action": key.action,
    })
}
