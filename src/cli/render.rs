//! Renders a report once, as text for people or JSON for machines.

use std::io::{self, Write};

use keyrot::FleetSummary;
use keyrot::host::PluginReport;
use keyrot::notify::{Delivery, NotificationReport};
use keyrot::rotation::{NewKeyState, OldKeyAction, Outcome, RotationReport};
use keyrot::text::escape_control;
use serde::Serialize;

/// A short summary: outcome, keys, steps, and why it failed.
pub fn text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    let headline = match report.outcome {
        Outcome::Rotated => "rotated",
        Outcome::Skipped => "skipped",
        Outcome::Exempt => "exempt (left alone)",
        Outcome::WouldRotate => "would rotate (dry run: nothing was changed)",
        Outcome::Draining => "rotated; the old key drains",
        Outcome::Failed => "not rotated",
        Outcome::Partial => "rotated, but an old key remains",
        Outcome::NeedsManualAction => "NEEDS MANUAL ACTION",
        Outcome::BadInput => "not rotated (bad input)",
    };
    let account = report
        .account
        .as_deref()
        .map(|a| format!(" (account {a})"))
        .unwrap_or_default();
    writeln!(out, "user {}{account}: {headline}", report.user)?;
    if let Some(arn) = &report.caller_arn {
        writeln!(out, "  acting as {arn}")?;
    }
    selection_text(out, report)?;
    if let Some(resumed) = &report.resumed {
        writeln!(
            out,
            "  resumed an interrupted run ({}, phase {}, started {}): {}",
            resumed.owner,
            resumed.phase.as_str(),
            resumed.started,
            resumed.action
        )?;
    }
    if let Some(skipped) = &report.skipped {
        writeln!(
            out,
            "  the active key is {} old, younger than --older-than {}",
            skipped.age, skipped.threshold
        )?;
    }
    for warning in &report.warnings {
        writeln!(out, "  warning: {}", escape_control(warning))?;
    }
    keys_text(out, report)?;
    if let Some(drain) = &report.drain {
        writeln!(out, "  drain: {}", drain.note)?;
    }
    plan_and_steps_text(out, report)?;
    if let Some(error) = &report.error {
        let label = if report.outcome.exit_code() == 0 {
            "warning"
        } else {
            "error"
        };
        writeln!(out, "{label}: {error}")?;
    } else if let Some(journal) = &report.journal {
        writeln!(out, "note: {journal}")?;
    }
    Ok(())
}

/// Which target chose the user, by which rule; its owner; its exemption.
fn selection_text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    if let Some(target) = &report.target {
        let rule = report
            .rule
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        writeln!(out, "  {target}{rule}")?;
    }
    if let Some(owner) = &report.owner {
        writeln!(out, "  owner {}", escape_control(owner))?;
    }
    if let Some(exempt) = &report.exempt {
        writeln!(out, "  {}", exempt_text(exempt))?;
    }
    Ok(())
}

/// An exemption in words: `exempt by tag keyrot:exempt until 2027-03-01: reason`.
pub fn exempt_text(exempt: &keyrot::rotation::ExemptReport) -> String {
    let until = exempt
        .until
        .as_deref()
        .map(|u| format!(" until {u}"))
        .unwrap_or_default();
    format!(
        "exempt by {}{until}: {}",
        exempt.by,
        escape_control(&exempt.reason)
    )
}

/// What became of the new key and of each old one.
fn keys_text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    if let Some(new_key) = &report.new_key {
        let state = match new_key.state {
            NewKeyState::Propagated => "created and handed over (active)",
            NewKeyState::Deleted => "created, then deleted (the run failed)",
            NewKeyState::Orphaned => "created, NOT deleted: nobody holds it",
            NewKeyState::Gone => "handed over, then deleted by someone else",
        };
        writeln!(out, "  new key {}  {state}", new_key.access_key_id)?;
    }
    for key in &report.old_keys {
        let action = match &key.action {
            OldKeyAction::Unchanged => "unchanged",
            OldKeyAction::DeletedToMakeRoom => "deleted to make room",
            OldKeyAction::Deleted => "deleted",
            OldKeyAction::KeptInactive => "deactivated (--retire deactivate)",
            OldKeyAction::AlreadyGone => "already gone",
            OldKeyAction::Draining => "kept active while it drains (--retire drain)",
            OldKeyAction::Deactivated { .. } => "could not be deleted, deactivated",
            OldKeyAction::DeleteFailed { .. } => "could not be deleted",
            OldKeyAction::StillActive { .. } => "could not be deleted or deactivated: STILL ACTIVE",
        };
        writeln!(
            out,
            "  old key {}  was {}, {action}",
            key.access_key_id,
            key.status.as_str().to_lowercase()
        )?;
    }
    Ok(())
}

/// A dry run's plan, and each step as it ran.
fn plan_and_steps_text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    if !report.plan.is_empty() {
        writeln!(out, "plan:")?;
        for (i, step) in report.plan.iter().enumerate() {
            writeln!(out, "  {}. {step}", i + 1)?;
        }
    }
    if !report.steps.is_empty() {
        writeln!(out, "steps:")?;
    }
    for step in &report.steps {
        let key = step.key_id.as_deref().unwrap_or("");
        let status = if step.ok { "ok" } else { "failed" };
        let mut extra = String::new();
        if let Some(n) = step.attempts {
            extra.push_str(&format!("  ({n} attempts)"));
        }
        if let Some(note) = &step.note {
            extra.push_str(&format!("  {note}"));
        }
        writeln!(
            out,
            "  {:<18} {key:<22} {:>10.1} ms  {status}{extra}",
            step.step.name(),
            step.duration_ms
        )?;
    }
    Ok(())
}

/// What a handler declares it needs, as it declared it (settings that
/// name a place shown by name), then whether the grants given fit.
fn needs_text(out: &mut impl Write, report: &PluginReport) -> io::Result<()> {
    if report.kind == keyrot::host::PluginKind::Reporter {
        return Ok(());
    }
    let Some(needs) = &report.info.needs else {
        writeln!(
            out,
            "needs:\n  not declared ({} predates declarations): it gets the grants you give",
            report.contract
        )?;
        return Ok(());
    };
    writeln!(
        out,
        "needs (declared in the component, covered by its sha256):"
    )?;
    let or_setting = |fixed: &str, setting: &Option<String>| match (fixed, setting) {
        ("", Some(s)) => format!("the one in setting '{}'", escape_control(s)),
        (fixed, Some(s)) => format!(
            "{} (or the one in setting '{}')",
            escape_control(fixed),
            escape_control(s)
        ),
        (fixed, None) => escape_control(fixed).into_owned(),
    };
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for host in &needs.hosts {
        rows.push((
            "host".into(),
            or_setting(&host.host, &host.setting),
            escape_control(&host.purpose).into_owned(),
        ));
    }
    for dir in &needs.directories {
        let place = match (dir.path.as_str(), &dir.setting) {
            ("", Some(s)) => format!("the directory of setting '{}'", escape_control(s)),
            (path, Some(s)) => format!(
                "{} (or the directory of setting '{}')",
                escape_control(path),
                escape_control(s)
            ),
            (path, None) => escape_control(path).into_owned(),
        };
        let access = if dir.writable {
            "read-write"
        } else {
            "read-only"
        };
        rows.push((
            format!("dir ({access})"),
            place,
            escape_control(&dir.purpose).into_owned(),
        ));
    }
    if let Some(mib) = needs.memory_mib {
        rows.push((
            "memory".into(),
            format!("{mib} MiB per call"),
            String::new(),
        ));
    }
    if let Some(seconds) = needs.timeout_seconds {
        rows.push(("time".into(), format!("{seconds}s per call"), String::new()));
    }
    if rows.is_empty() {
        writeln!(out, "  nothing: no hosts, no directories")?;
    }
    let kind_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let place_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (kind, place, purpose) in &rows {
        writeln!(
            out,
            "  {kind:<kind_width$}  {place:<place_width$}  {purpose}"
        )?;
    }
    match &report.fit {
        None => {}
        Some(problems) if problems.is_empty() => {
            writeln!(out, "the grants given fit what it declares")?;
        }
        Some(problems) => {
            writeln!(
                out,
                "the grants given do not fit (a run would stop before any key):"
            )?;
            for problem in problems {
                writeln!(out, "  - {}", escape_control(problem))?;
            }
        }
    }
    Ok(())
}

/// What a plugin is and wants, for people: columns aligned, the pin ready
/// to paste, and the raw imports only when `verbose`.
pub fn inspect_text(out: &mut impl Write, report: &PluginReport, verbose: bool) -> io::Result<()> {
    // Every string here is the plugin's choice: printed inert.
    let info = &report.info;
    writeln!(
        out,
        "{} {}: {}",
        escape_control(&info.name),
        escape_control(&info.version),
        escape_control(&info.description)
    )?;
    writeln!(out, "  file      {}", report.path.display())?;
    writeln!(out, "  sha256    {}", report.sha256)?;
    // The WIT contract version it was built against: an older one still
    // loads, but its plugin gets nothing added since (wit/handler.wit says
    // what).
    let current = [
        keyrot::host::CURRENT_CONTRACT,
        keyrot::host::CURRENT_REPORTER_CONTRACT,
    ];
    let contract_note = if current.contains(&report.contract) {
        "current"
    } else {
        "older, still loaded"
    };
    writeln!(out, "  contract  {} ({contract_note})", report.contract)?;
    if report.kind == keyrot::host::PluginKind::Reporter {
        writeln!(
            out,
            "  kind      reporter: give it to --notify or a [[notify]] block"
        )?;
    }
    let (plain, secret) = match report.kind {
        keyrot::host::PluginKind::Handler => ("--config", "secret: --secret"),
        keyrot::host::PluginKind::Reporter => ("--notify-config", "secret: --notify-secret"),
    };
    writeln!(out, "settings:")?;
    if info.settings.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<(String, String, String)> = info
        .settings
        .iter()
        .map(|s| {
            let mut flags = vec![if s.required { "required" } else { "optional" }];
            flags.push(if s.secret { secret } else { plain });
            (
                escape_control(&s.name).into_owned(),
                flags.join(", "),
                escape_control(&s.description).into_owned(),
            )
        })
        .collect();
    let name_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let flags_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (name, flags, description) in &rows {
        writeln!(
            out,
            "  {name:<name_width$}  {flags:<flags_width$}  {description}"
        )?;
    }
    needs_text(out, report)?;
    writeln!(out, "wants:")?;
    if report.wants.is_empty() {
        writeln!(out, "  nothing beyond its settings")?;
    }
    for want in &report.wants {
        writeln!(out, "  {want}")?;
    }
    writeln!(out, "pin it (refuse any other file):")?;
    writeln!(out, "  --plugin-sha256 {}", report.sha256)?;
    writeln!(
        out,
        "  plugin-sha256 = \"{}\"   # in a job file",
        report.sha256
    )?;
    if verbose {
        writeln!(out, "imports:")?;
        for import in &report.imports {
            writeln!(out, "  {import}")?;
        }
    } else {
        writeln!(
            out,
            "imports: {} interfaces (-v lists them)",
            report.imports.len()
        )?;
    }
    Ok(())
}

/// A fleet outcome in a word or two.
fn fleet_outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Rotated => "rotated",
        Outcome::Skipped => "skipped",
        Outcome::Exempt => "exempt",
        Outcome::WouldRotate => "would-rotate",
        Outcome::Draining => "draining",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
        Outcome::NeedsManualAction => "NEEDS-ACTION",
        Outcome::BadInput => "bad-input",
    }
}

/// One user of a fleet on one line: account, user, outcome, new key,
/// duration.
pub fn fleet_line(report: &RotationReport) -> String {
    let new_key = match &report.new_key {
        Some(key) if key.state == NewKeyState::Propagated => key.access_key_id.as_str(),
        Some(key) => match key.state {
            NewKeyState::Orphaned => "orphaned",
            _ => "-",
        },
        None => "-",
    };
    let took = report
        .duration_ms
        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    format!(
        "{:<12}  {:<24}  {:<12}  {:<20}  {took}",
        report.account.as_deref().unwrap_or("?"),
        report.user,
        fleet_outcome(report.outcome),
        new_key
    )
}

/// A fleet's text report: a line per user, the reasons for every user not
/// rotated cleanly, and a summary.
pub fn fleet_text(
    out: &mut impl Write,
    reports: &[RotationReport],
    summary: &FleetSummary,
) -> io::Result<()> {
    writeln!(
        out,
        "{:<12}  {:<24}  {:<12}  {:<20}  TIME",
        "ACCOUNT", "USER", "OUTCOME", "NEW KEY"
    )?;
    for report in reports {
        writeln!(out, "{}", fleet_line(report))?;
    }
    let noted: Vec<&RotationReport> = reports
        .iter()
        .filter(|r| r.error.is_some() || r.exempt.is_some() || !r.warnings.is_empty())
        .collect();
    if !noted.is_empty() {
        writeln!(out)?;
    }
    for report in noted {
        let who = match &report.owner {
            Some(owner) => format!(
                "{} (account {}, owner {})",
                report.user,
                report.account.as_deref().unwrap_or("?"),
                escape_control(owner)
            ),
            None => format!(
                "{} (account {})",
                report.user,
                report.account.as_deref().unwrap_or("?")
            ),
        };
        let outcome = fleet_outcome(report.outcome);
        if let Some(error) = &report.error {
            writeln!(out, "{who}: {outcome}: {}", escape_control(error))?;
        }
        if let Some(exempt) = &report.exempt {
            writeln!(out, "{who}: {}", exempt_text(exempt))?;
        }
        for warning in &report.warnings {
            writeln!(out, "{who}: warning: {}", escape_control(warning))?;
        }
    }
    let mut counts = Vec::new();
    for (n, what) in [
        (summary.rotated, "rotated"),
        (summary.skipped, "skipped"),
        (summary.exempt, "exempt"),
        (summary.warned, "with warnings"),
        (summary.would_rotate, "would rotate"),
        (summary.partial, "partial"),
        (summary.failed, "failed"),
        (summary.bad_input, "bad input"),
        (summary.needs_manual_action, "NEED MANUAL ACTION"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let accounts = match summary.accounts.len() {
        0 => String::new(),
        1 => " in 1 account".to_string(),
        n => format!(" in {n} accounts"),
    };
    writeln!(
        out,
        "\n{} user{}{accounts} in {:.1}s: {}",
        summary.users,
        if summary.users == 1 { "" } else { "s" },
        summary.duration_ms as f64 / 1000.0,
        counts.join(", ")
    )
}

/// A fleet's JSON report: `{ "summary": {...}, "runs": [report, ...] }`,
/// each run as [`rotation_json`] shows it.
pub fn fleet_json(
    out: &mut impl Write,
    reports: &[RotationReport],
    summary: &FleetSummary,
    notifications: &[NotificationReport],
    with_log: bool,
) -> io::Result<()> {
    let runs = reports
        .iter()
        .map(|report| run_value(report, with_log))
        .collect::<io::Result<Vec<_>>>()?;
    let mut value = serde_json::json!({ "summary": summary, "runs": runs });
    add_notifications(&mut value, notifications, with_log)?;
    json(out, &value)
}

/// Adds `notifications` (when there were reporters), each reporter's log
/// only if `with_log`, as for a handler's.
fn add_notifications(
    value: &mut serde_json::Value,
    notifications: &[NotificationReport],
    with_log: bool,
) -> io::Result<()> {
    if notifications.is_empty() {
        return Ok(());
    }
    let mut list = Vec::with_capacity(notifications.len());
    for notification in notifications {
        let mut item = serde_json::to_value(notification)?;
        if !with_log && let Some(object) = item.as_object_mut() {
            object.remove("log");
            object.insert("log_hidden".into(), notification.log.len().into());
        }
        list.push(item);
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("notifications".into(), list.into());
    }
    Ok(())
}

/// What became of each reporter, for people: one line each, after the
/// report; nothing when there were none.
pub fn notifications_text(
    out: &mut impl Write,
    notifications: &[NotificationReport],
) -> io::Result<()> {
    for n in notifications {
        let users = if n.users == 1 { "user" } else { "users" };
        match (n.delivery, &n.error) {
            (Delivery::Sent, _) => writeln!(
                out,
                "notify {}: sent ({} {users})",
                escape_control(&n.reporter),
                n.users
            )?,
            (Delivery::NothingToSend, _) => writeln!(
                out,
                "notify {}: nothing to send (no user raised {})",
                escape_control(&n.reporter),
                n.on.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
            )?,
            (Delivery::Failed, error) => writeln!(
                out,
                "warning: {}",
                escape_control(error.as_deref().unwrap_or("a reporter failed"))
            )?,
        }
    }
    Ok(())
}

/// One report as a JSON value, the handler's log only if `with_log`.
fn run_value(report: &RotationReport, with_log: bool) -> io::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report)?;
    if !with_log && let Some(object) = value.as_object_mut() {
        object.remove("handler_log");
        object.insert("handler_log_hidden".into(), report.handler_log.len().into());
    }
    Ok(value)
}

/// The rotation report as one JSON object; without the handler's log
/// unless `with_log` (then only how many lines it had).
pub fn rotation_json(
    out: &mut impl Write,
    report: &RotationReport,
    notifications: &[NotificationReport],
    with_log: bool,
) -> io::Result<()> {
    let mut value = run_value(report, with_log)?;
    add_notifications(&mut value, notifications, with_log)?;
    json(out, &value)
}

/// Any report as one JSON object.
pub fn json(out: &mut impl Write, report: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
