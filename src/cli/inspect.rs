//! `keyrot plugin inspect`: what a plugin is, what it declares it needs,
//! and, given a run's grants, whether they fit that declaration (exit 2
//! when they do not, as the run would).

use std::io::Write;

use keyrot::grants::{AllowList, directory_problems, host_problems, limit_problems};
use keyrot::host::{Plugin, PluginLimits, PluginReport, WasmHandler};

use super::args::{Cli, InspectGrants, Output};
use super::{load_options, render};

/// A local file: described in the sandbox, with no grants.
pub(super) async fn local(
    cli: &Cli,
    path: &std::path::Path,
    grants: &InspectGrants,
) -> anyhow::Result<u8> {
    let plugin = Plugin::load(path, &load_options(cli.no_cache, None))?;
    let mut report = WasmHandler::inspect(plugin).await?;
    check_fit(&mut report, grants);
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Text | Output::Csv | Output::Prometheus => {
            render::inspect_text(&mut stdout, &report, cli.verbose > 0)?
        }
        Output::Json => render::json(&mut stdout, &report)?,
    }
    stdout.flush()?;
    Ok(exit_code(&report))
}

/// 2 (bad input) when the grants given do not fit: what a run with them
/// would exit with, before any key.
pub(super) fn exit_code(report: &PluginReport) -> u8 {
    match &report.fit {
        Some(problems) if !problems.is_empty() => 2,
        _ => 0,
    }
}

/// Checks the grants given against the plugin's declared needs, the way a
/// run checks them before any key, and keeps every problem (a run stops at
/// the first). A plugin that declares nothing (a contract before 0.4.0) is
/// granted what the operator says: nothing to check.
pub(super) fn check_fit(report: &mut PluginReport, grants: &InspectGrants) {
    let (Some(needs), true) = (&report.info.needs, grants.given()) else {
        return;
    };
    let name = &report.info.name;
    let setting = |s: &str| {
        grants
            .config
            .iter()
            .rev()
            .find(|(k, _)| k == s)
            .map(|(_, v)| v.as_str())
    };
    let mut problems = Vec::new();
    match needs.hosts(setting) {
        Ok(hosts) => {
            let allowed = AllowList::new(grants.allow_host.iter().cloned());
            problems.extend(host_problems(name, &hosts, &allowed, "--allow-host"));
        }
        Err(e) => problems.push(e),
    }
    let dirs = needs.directories(setting);
    problems.extend(directory_problems(
        name,
        &dirs,
        &grants.allow_dir,
        "--allow-dir",
    ));
    problems.extend(limit_problems(
        name,
        needs,
        grants.memory.unwrap_or(PluginLimits::DEFAULT_MEMORY_BYTES),
        grants.timeout.unwrap_or(PluginLimits::DEFAULT_TIMEOUT),
    ));
    report.fit = Some(problems);
}
