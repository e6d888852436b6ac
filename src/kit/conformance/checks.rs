//! One function per contract rule that is judged from what the runs
//! recorded (`describe`'s answers, the calls, every line the plugin said):
//! each turns the evidence into a passed, failed or skipped [`Check`].

use std::collections::BTreeSet;

use super::harness::{Calls, Log};
use super::report::check;
use super::{Check, Status, scan};
use crate::host::{PluginInfo, PluginLimits, Sandbox, Settings};

/// `describe-stable`: three answers, one value.
pub(super) fn describe_stable(
    first: &PluginInfo,
    second: Option<&PluginInfo>,
    third: Option<&PluginInfo>,
) -> Check {
    let differ = |other: &PluginInfo| {
        let mut fields = Vec::new();
        if other.name != first.name {
            fields.push("name");
        }
        if other.version != first.version {
            fields.push("version");
        }
        if other.description != first.description {
            fields.push("description");
        }
        if other.settings != first.settings {
            fields.push("settings");
        }
        if other.needs != first.needs {
            fields.push("needs");
        }
        fields
    };
    for other in [second, third].into_iter().flatten() {
        let fields = differ(other);
        if !fields.is_empty() {
            return check(
                "describe-stable",
                Status::Fail,
                format!(
                    "describe answered differently when called again ({} changed): it must not \
                     depend on time, randomness or settings",
                    fields.join(", ")
                ),
            );
        }
    }
    let needs = match &first.needs {
        Some(_) => "and needs",
        None => "(its contract declares no needs)",
    };
    check(
        "describe-stable",
        Status::Pass,
        format!(
            "3 calls, one answer: {} {}, {} setting(s) {needs}",
            first.name,
            first.version,
            first.settings.len()
        ),
    )
}

/// `describe-secrets`: every setting given with `--secret` is marked so.
pub(super) fn describe_secrets(info: &PluginInfo, settings: &Settings) -> Check {
    let unmarked: Vec<String> = settings
        .secret_pairs()
        .filter(|(name, _)| info.settings.iter().any(|s| s.name == *name && !s.secret))
        .map(|(name, _)| format!("'{name}'"))
        .collect();
    if !unmarked.is_empty() {
        return check(
            "describe-secrets",
            Status::Fail,
            format!(
                "setting(s) {} given with --secret are not marked secret: keyrot would take them \
                 as plain --config and show them in reports",
                unmarked.join(", ")
            ),
        );
    }
    let marked: Vec<&str> = info
        .settings
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.name.as_str())
        .collect();
    let detail = if marked.is_empty() {
        "no setting is marked secret, and none was given with --secret".to_string()
    } else {
        format!("marks {} secret", marked.join(", "))
    };
    check("describe-secrets", Status::Pass, detail)
}

/// `needs-granted`: keyrot loaded the plugin, so its check passed.
pub(super) fn needs_granted(info: &PluginInfo, sandbox: &Sandbox) -> Check {
    let Some(needs) = &info.needs else {
        return check(
            "needs-granted",
            Status::Skip,
            "its contract (before 0.4.0) declares no needs: keyrot grants what the flags say",
        );
    };
    let mut asked: Vec<String> = Vec::new();
    let value = |s: &str| sandbox.settings.value(s);
    if let Ok(hosts) = needs.hosts(value) {
        asked.extend(hosts.iter().map(|h| format!("host {}", h.what)));
    }
    for dir in needs.directories(value) {
        let access = if dir.writable {
            "read-write"
        } else {
            "read-only"
        };
        asked.push(format!("directory {} ({access})", dir.what.display()));
    }
    if let Some(mib) = needs.memory_mib {
        asked.push(format!("{mib} MiB"));
    }
    if let Some(seconds) = needs.timeout_seconds {
        asked.push(format!("{seconds} s"));
    }
    let asked = if asked.is_empty() {
        "nothing".to_string()
    } else {
        asked.join(", ")
    };
    check(
        "needs-granted",
        Status::Pass,
        format!("asks for {asked}; granted exactly that"),
    )
}

/// `handle-once`: no rotation called `handle` twice; the first one once.
pub(super) fn handle_once(rotations: &[(&str, Calls)]) -> Check {
    if let Some((probe, calls)) = rotations.iter().find(|(_, c)| c.handles.len() > 1) {
        return check(
            "handle-once",
            Status::Fail,
            format!(
                "one rotation ({probe}) called handle {} times",
                calls.handles.len()
            ),
        );
    }
    let called = rotations
        .iter()
        .filter(|(_, c)| c.handles.len() == 1)
        .count();
    if called == 0 {
        return check(
            "handle-once",
            Status::Skip,
            "handle was never called: preflight refused every time (see rotation)",
        );
    }
    check(
        "handle-once",
        Status::Pass,
        format!("{called} rotation(s) reached handle, each called it once"),
    )
}

/// `describe-settings`: every setting read is described.
pub(super) fn describe_settings(info: &PluginInfo, log: &Log) -> Check {
    let described: BTreeSet<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
    let read: BTreeSet<&str> = log
        .seen
        .iter()
        .flat_map(|s| s.observed.settings_read.iter().map(String::as_str))
        .collect();
    if log.seen.is_empty() {
        return check(
            "describe-settings",
            Status::Skip,
            "preflight and handle never ran",
        );
    }
    let quoted = |names: Vec<&str>| {
        names
            .iter()
            .map(|n| format!("'{}'", crate::text::escape_control(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let undescribed: Vec<&str> = read.difference(&described).copied().collect();
    if !undescribed.is_empty() {
        return check(
            "describe-settings",
            Status::Fail,
            format!(
                "reads setting(s) {} that describe does not list: keyrot refuses settings \
                 describe does not list, so no operator can set them; add them to describe",
                quoted(undescribed)
            ),
        );
    }
    let read_all = log.seen.iter().any(|s| s.observed.read_all);
    let detail = match (read.is_empty(), read_all) {
        (_, true) => "reads every setting at once (get-all); all are described".to_string(),
        (true, false) => "reads no setting".to_string(),
        (false, false) => format!(
            "reads {}, all described",
            quoted(read.into_iter().collect())
        ),
    };
    check("describe-settings", Status::Pass, detail)
}

/// `secret-hidden`: no secret, in any form, in anything the plugin said.
pub(super) fn secret_hidden(settings: &Settings, log: &Log) -> Check {
    let mut secrets: Vec<(String, &str)> = log
        .secrets
        .iter()
        .map(|s| ("the new key's secret access key".to_string(), s.as_str()))
        .collect();
    secrets.extend(
        settings
            .secret_pairs()
            .map(|(name, value)| (format!("secret setting '{name}'"), value)),
    );
    if secrets.is_empty() {
        return check(
            "secret-hidden",
            Status::Skip,
            "handle never got a key and no --secret was given: there was no secret to look for",
        );
    }
    // Each finding once, with the probes it was seen in.
    let mut found: Vec<(String, Vec<&str>)> = Vec::new();
    let mut texts = 0;
    for seen in &log.seen {
        for said in &seen.observed.said {
            texts += 1;
            for (what, secret) in &secrets {
                if let Some(form) = scan::find(&said.text, secret) {
                    let finding = format!(
                        "{what} appears {} in {}'s {}",
                        form.words(),
                        seen.call,
                        said.source.words()
                    );
                    match found.iter_mut().find(|(f, _)| *f == finding) {
                        Some((_, probes)) if !probes.contains(&seen.probe) => {
                            probes.push(seen.probe)
                        }
                        Some(_) => {}
                        None => found.push((finding, vec![seen.probe])),
                    }
                }
            }
        }
    }
    let found: Vec<String> = found
        .into_iter()
        .map(|(finding, probes)| format!("{finding} ({})", probes.join(", ")))
        .collect();
    if found.is_empty() {
        check(
            "secret-hidden",
            Status::Pass,
            format!(
                "{texts} text(s) from {} call(s) checked for {} secret(s): raw, JSON-escaped, \
                 URL-encoded, base64, base64url, hex",
                log.seen.len(),
                secrets.len()
            ),
        )
    } else {
        check("secret-hidden", Status::Fail, found.join("; "))
    }
}

/// `preflight-changes-nothing`: the granted directories, around each
/// `preflight`.
pub(super) fn preflight_changes_nothing(sandbox: &Sandbox, log: &Log) -> Check {
    if sandbox.grants.dirs.is_empty() {
        return check(
            "preflight-changes-nothing",
            Status::Skip,
            "no directory is granted, and what preflight does at a remote destination cannot be \
             watched from here",
        );
    }
    if let Some((probe, change)) = log.preflight_changes.first() {
        return check(
            "preflight-changes-nothing",
            Status::Fail,
            format!("preflight ({probe}) {change} in a granted directory: it must only look"),
        );
    }
    let calls = log.records.iter().filter(|r| r.call == "preflight").count();
    check(
        "preflight-changes-nothing",
        Status::Pass,
        format!("{calls} preflight call(s); the granted directories were the same after each"),
    )
}

/// `limits`: no call hit a limit; each within what `needs` declares.
pub(super) fn limits(info: &PluginInfo, limits: &PluginLimits, log: &Log) -> Check {
    const MIB: u64 = 1024 * 1024;
    let records = &log.records;
    if records.is_empty() {
        return check("limits", Status::Skip, "preflight and handle never ran");
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.outcome == "timed-out" || r.outcome == "out-of-memory")
    {
        return check(
            "limits",
            Status::Fail,
            format!(
                "{} ({}) {}: {}",
                r.call,
                r.probe,
                kind_phrase(r.outcome),
                r.error.as_deref().unwrap_or("")
            ),
        );
    }
    let slowest = records.iter().max_by_key(|r| r.ms).expect("not empty");
    let biggest = records
        .iter()
        .max_by_key(|r| r.memory_bytes)
        .expect("not empty");
    let needs = info.needs.as_ref();
    if let Some(mib) = needs.and_then(|n| n.memory_mib)
        && biggest.memory_bytes > u64::from(mib) * MIB
    {
        return check(
            "limits",
            Status::Fail,
            format!(
                "{} held {:.1} MiB, more than the {mib} MiB its needs declare",
                biggest.call,
                biggest.memory_bytes as f64 / MIB as f64
            ),
        );
    }
    if let Some(seconds) = needs.and_then(|n| n.timeout_seconds)
        && slowest.ms > u64::from(seconds) * 1000
    {
        return check(
            "limits",
            Status::Fail,
            format!(
                "{} took {} ms, more than the {seconds} s its needs declare",
                slowest.call, slowest.ms
            ),
        );
    }
    check(
        "limits",
        Status::Pass,
        format!(
            "slowest call: {} {} ms (limit {} s); most memory: {} {:.1} MiB (limit {} MiB)",
            slowest.call,
            slowest.ms,
            limits.timeout.as_secs_f64(),
            biggest.call,
            biggest.memory_bytes as f64 / MIB as f64,
            limits.memory_bytes as u64 / MIB
        ),
    )
}

fn kind_phrase(outcome: &str) -> &'static str {
    match outcome {
        "timed-out" => "ran out of time",
        "out-of-memory" => "ran out of memory",
        _ => "failed",
    }
}
