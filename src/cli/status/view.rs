//! One user as `keyrot status` shows it: its keys with age and last use,
//! any journal, what a rotation would do now, and where it stands in one
//! word (`due`, `warn`, `ok`, `exempt`, `draining`, `resume`, `refuse`,
//! `no-keys`, `error`).

use std::time::Duration;

use keyrot::rotation::{
    ExemptReport, drain, human_duration, parse_rfc3339, resume, rfc3339, unix_now,
};
use keyrot::{AccessKeyInfo, Iam, IamErrorKind, Journal, JournalRecord, KeyLastUsed, KeyStatus};
use serde::Serialize;

/// One key as `status` shows it.
#[derive(Debug, Serialize)]
pub(super) struct KeyView {
    pub access_key_id: String,
    pub status: KeyStatus,
    pub create_date: Option<String>,
    pub age: Option<String>,
    pub last_used: Option<KeyLastUsed>,
}

/// One user as `status` shows it.
#[derive(Debug, Default, Serialize)]
pub(super) struct UserView {
    pub user: String,
    /// Where it stands, in one word.
    pub state: &'static str,
    /// Its owner (`--owner-tag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The target whose rule covers it (organization runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// That rule, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why it is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<ExemptReport>,
    /// When its active key reaches the max age, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    pub keys: Vec<KeyView>,
    pub journal: Option<JournalRecord>,
    /// What a rotation would do now.
    pub next: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

/// The policy a user is looked at with: its target's, or the flags'.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Policy {
    pub older_than: Option<Duration>,
    pub warn_within: Option<Duration>,
}

/// Looks at `user`: its keys and their last use, its journal, and what a
/// rotation with `policy` would do now. Changes nothing.
pub(super) async fn user_view(
    iam: &dyn Iam,
    journal: &dyn Journal,
    user: &str,
    policy: Policy,
) -> UserView {
    let mut view = UserView {
        user: user.to_string(),
        ..UserView::default()
    };
    let keys = match iam.list_access_keys(user).await {
        Ok(keys) => keys,
        Err(err) => {
            view.error = Some(if err.kind == IamErrorKind::NoSuchEntity {
                format!("iam user '{user}' does not exist")
            } else {
                format!("could not list the access keys: {err}")
            });
            view.next = "cannot tell".into();
            view.state = "error";
            return view;
        }
    };
    match journal.peek(user).await {
        Ok(record) => view.journal = record,
        Err(err) => view.error = Some(err.to_string()),
    }
    for key in &keys {
        let last_used = match iam.access_key_last_used(&key.access_key_id).await {
            Ok(used) => Some(used),
            Err(err) => {
                tracing::warn!("no last use for {}: {err}", key.access_key_id);
                None
            }
        };
        view.keys.push(KeyView {
            access_key_id: key.access_key_id.clone(),
            status: key.status.clone(),
            create_date: key.create_date.clone(),
            age: age(key).map(human_duration),
            last_used,
        });
    }
    view.next = match view
        .journal
        .as_ref()
        .filter(|r| r.phase == keyrot::Phase::Draining)
    {
        Some(record) => drain_next(record, &keys, &view.keys),
        None => next(&keys, view.journal.as_ref(), policy.older_than),
    };
    view.state = state(&mut view, &keys, policy);
    view
}

/// Where a user stands, in one word, with when its key comes due and a
/// warning when that is within the policy's window.
fn state(view: &mut UserView, keys: &[AccessKeyInfo], policy: Policy) -> &'static str {
    if view.error.is_some() {
        return "error";
    }
    match view.journal.as_ref().map(|r| r.phase) {
        Some(keyrot::Phase::Draining) => return "draining",
        Some(keyrot::Phase::Claimed) | None => {}
        // An interrupted or failed run left it: the next run finishes it.
        Some(_) => return "resume",
    }
    let active: Vec<&AccessKeyInfo> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .collect();
    let key = match active.as_slice() {
        [] if keys.is_empty() => return "no-keys",
        [] => return "due",
        [key] => key,
        _ => return "refuse",
    };
    let (Some(max), Some(age)) = (policy.older_than, age(key)) else {
        return "due";
    };
    if let Some(created) = key.create_date.as_deref().and_then(parse_rfc3339) {
        view.due = Some(rfc3339(created + max.as_secs()));
    }
    if age >= max {
        return "due";
    }
    let due_in = max - age;
    if policy.warn_within.is_some_and(|window| due_in <= window) {
        view.warnings.push(format!(
            "key {} comes due in {} (max age {})",
            key.access_key_id,
            human_duration(due_in),
            human_duration(max)
        ));
        return "warn";
    }
    "ok"
}

/// What a rotation would do now.
/// What the next run does with a draining old key (by the default drain
/// windows), from its last use.
fn drain_next(record: &JournalRecord, keys: &[AccessKeyInfo], views: &[KeyView]) -> String {
    let steps: Vec<String> = record
        .keys_before
        .iter()
        .map(|id| {
            let key = keys.iter().find(|k| &k.access_key_id == id);
            let used = views
                .iter()
                .find(|v| &v.access_key_id == id)
                .and_then(|v| v.last_used.clone())
                .unwrap_or_default();
            let policy = keyrot::rotation::DrainPolicy::default();
            match drain::decide(record, key, &used, unix_now(), &policy) {
                Some(step) => drain::describe(&step, id, &record.user, &used),
                None => format!("old key {id} is gone: the drain ends"),
            }
        })
        .collect();
    format!(
        "drain (since {}): {}",
        keyrot::rotation::rfc3339(record.handed_over.unwrap_or(record.started)),
        steps.join("; ")
    )
}

fn next(
    keys: &[AccessKeyInfo],
    journal: Option<&JournalRecord>,
    older: Option<Duration>,
) -> String {
    if let Some(record) = journal.filter(|r| r.phase != keyrot::Phase::Claimed) {
        let then = match resume::plan(record, keys, unix_now()) {
            Err(why) => format!("stop with exit 2: {why}"),
            Ok(plan) => {
                let mut steps = Vec::new();
                if !plan.delete.is_empty() {
                    steps.push(format!("delete {}", plan.delete.join(", ")));
                }
                if !plan.retire.is_empty() {
                    let ids: Vec<&str> = plan
                        .retire
                        .iter()
                        .map(|k| k.access_key_id.as_str())
                        .collect();
                    steps.push(format!("{} {}", record.retire.as_str(), ids.join(", ")));
                }
                steps.push(if plan.afresh { "rotate afresh" } else { "done" }.into());
                steps.join(", then ")
            }
        };
        return format!(
            "resume: finish the interrupted run of {} (phase {}): {then}",
            record.owner,
            record.phase.as_str()
        );
    }
    let active: Vec<&AccessKeyInfo> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .collect();
    if active.len() >= 2 {
        return "refuse: two active keys".into();
    }
    if let (Some(threshold), Some(key)) = (older, active.first())
        && let Some(age) = age(key)
        && age < threshold
    {
        return format!(
            "skip: younger than {} (age {})",
            human_duration(threshold),
            human_duration(age)
        );
    }
    let not_active: Vec<&str> = keys
        .iter()
        .filter(|k| k.status != KeyStatus::Active)
        .map(|k| k.access_key_id.as_str())
        .collect();
    if keys.len() >= 2 && !not_active.is_empty() {
        return format!(
            "rotate, making room: delete inactive {}",
            not_active.join(", ")
        );
    }
    "rotate".into()
}

fn age(key: &AccessKeyInfo) -> Option<Duration> {
    let created = parse_rfc3339(key.create_date.as_deref()?)?;
    Some(Duration::from_secs(unix_now().saturating_sub(created)))
}
