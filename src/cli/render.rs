//! Renders a report once, as text for people or JSON for machines.

use std::io::{self, Write};

use keyrot::host::PluginReport;
use keyrot::rotation::{NewKeyState, OldKeyAction, Outcome, RotationReport};
use keyrot::text::escape_control;
use serde::Serialize;

/// A short summary: outcome, keys, steps, and why it failed.
pub fn text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    let headline = match report.outcome {
        Outcome::Rotated => "rotated",
        Outcome::Skipped => "skipped",
        Outcome::WouldRotate => "would rotate (dry run: nothing was changed)",
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
    if let Some(new_key) = &report.new_key {
        let state = match new_key.state {
            NewKeyState::Propagated => "created and handed over (active)",
            NewKeyState::Deleted => "created, then deleted (the run failed)",
            NewKeyState::Orphaned => "created, NOT deleted: nobody holds it",
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
    if let Some(error) = &report.error {
        let label = if report.outcome.exit_code() == 0 {
            "warning"
        } else {
            "error"
        };
        writeln!(out, "{label}: {error}")?;
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
    let contract_note = if report.contract == keyrot::host::CURRENT_CONTRACT {
        "current"
    } else {
        "older, still loaded"
    };
    writeln!(out, "  contract  {} ({contract_note})", report.contract)?;
    writeln!(out, "settings:")?;
    if info.settings.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<(String, String, String)> = info
        .settings
        .iter()
        .map(|s| {
            let mut flags = vec![if s.required { "required" } else { "optional" }];
            flags.push(if s.secret {
                "secret: --secret"
            } else {
                "--config"
            });
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

/// The rotation report as one JSON object; without the handler's log
/// unless `with_log` (then only how many lines it had).
pub fn rotation_json(
    out: &mut impl Write,
    report: &RotationReport,
    with_log: bool,
) -> io::Result<()> {
    if with_log {
        return json(out, report);
    }
    let mut value = serde_json::to_value(report)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("handler_log");
        object.insert("handler_log_hidden".into(), report.handler_log.len().into());
    }
    json(out, &value)
}

/// Any report as one JSON object.
pub fn json(out: &mut impl Write, report: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
