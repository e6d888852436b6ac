//! Renders a report once, as text for people or JSON for machines.

use std::io::{self, Write};

use keyrot::host::PluginReport;
use keyrot::rotation::{NewKeyState, OldKeyAction, Outcome, RotationReport};
use keyrot::text::escape_control;
use serde::Serialize;

/// A short summary: outcome, keys, steps.
pub fn text(out: &mut impl Write, report: &RotationReport) -> io::Result<()> {
    let headline = match report.outcome {
        Outcome::Rotated => "rotated",
        Outcome::Failed => "not rotated",
        Outcome::Partial => "rotated, but an old key remains",
        Outcome::NeedsManualAction => "NEEDS MANUAL ACTION",
        Outcome::BadInput => "not rotated (bad input)",
    };
    writeln!(out, "user {}: {headline}", report.user)?;
    if let Some(new_key) = &report.new_key {
        let state = match new_key.state {
            NewKeyState::Propagated => "created and handed over (active)",
            NewKeyState::Deleted => "created, handler failed, deleted",
            NewKeyState::Orphaned => "created, handler failed, NOT deleted",
        };
        writeln!(out, "  new key {}  {state}", new_key.access_key_id)?;
    }
    for key in &report.old_keys {
        let action = match &key.action {
            OldKeyAction::Unchanged => "unchanged",
            OldKeyAction::DeletedToMakeRoom => "deleted to make room",
            OldKeyAction::Deleted => "deleted",
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
    writeln!(out, "steps:")?;
    for step in &report.steps {
        let name = serde_json::to_value(step.step)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let key = step.key_id.as_deref().unwrap_or("");
        let status = if step.ok { "ok" } else { "failed" };
        writeln!(
            out,
            "  {name:<18} {key:<22} {:>10.1} ms  {status}",
            step.duration_ms
        )?;
    }
    Ok(())
}

/// What a plugin is and wants, for people.
pub fn inspect_text(out: &mut impl Write, report: &PluginReport) -> io::Result<()> {
    // Every string here is the plugin's choice: printed inert.
    let info = &report.info;
    writeln!(
        out,
        "{} {}: {}",
        escape_control(&info.name),
        escape_control(&info.version),
        escape_control(&info.description)
    )?;
    writeln!(out, "  file    {}", report.path.display())?;
    writeln!(out, "  sha256  {}", report.sha256)?;
    writeln!(out, "settings:")?;
    if info.settings.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for setting in &info.settings {
        let mut flags = vec![if setting.required {
            "required"
        } else {
            "optional"
        }];
        if setting.secret {
            flags.push("secret: use --secret");
        }
        writeln!(
            out,
            "  {:<24} {:<30} {}",
            escape_control(&setting.name),
            flags.join(", "),
            escape_control(&setting.description)
        )?;
    }
    writeln!(out, "wants:")?;
    for want in &report.wants {
        writeln!(out, "  {want}")?;
    }
    writeln!(out, "imports:")?;
    for import in &report.imports {
        writeln!(out, "  {import}")?;
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
