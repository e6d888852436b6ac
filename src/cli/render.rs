//! Renders a report once, as text for people or JSON for machines.

use std::io::{self, Write};

use keyrot::host::PluginReport;
use keyrot::rotation::{NewKeyState, OldKeyAction, Outcome, RotationReport};
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

/// What a plugin is and wants, for people: columns aligned, the pin ready
/// to paste, and the raw imports only when `verbose`.
pub fn inspect_text(out: &mut impl Write, report: &PluginReport, verbose: bool) -> io::Result<()> {
    let info = &report.info;
    writeln!(out, "{} {}: {}", info.name, info.version, info.description)?;
    writeln!(out, "  file    {}", report.path.display())?;
    writeln!(out, "  sha256  {}", report.sha256)?;
    writeln!(out, "settings:")?;
    if info.settings.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<(&str, String, &str)> = info
        .settings
        .iter()
        .map(|s| {
            let mut flags = vec![if s.required { "required" } else { "optional" }];
            flags.push(if s.secret {
                "secret: --secret"
            } else {
                "--config"
            });
            (s.name.as_str(), flags.join(", "), s.description.as_str())
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

/// Any report as one JSON object.
pub fn json(out: &mut impl Write, report: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
