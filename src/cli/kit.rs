//! `keyrot plugin new` and `keyrot plugin test`: the flags turned into the
//! library's [`keyrot::kit`] calls, and their results rendered as text or
//! JSON.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use keyrot::grants::{AllowList, Grants, HeaderInjection, HostCa, SecretSource, parse_secret_arg};
use keyrot::kit::conformance::{self, ConformanceReport, Status, Suite};
use keyrot::kit::template::Project;
use keyrot::text::escape_control;
use keyrot::{PluginLimits, Settings};
use zeroize::Zeroizing;

use super::args::{LangArg, PluginTestArgs};
use super::{Cli, Output, render};

/// `keyrot plugin new NAME --lang LANG`: writes the project into `./NAME`.
pub fn new(cli: &Cli, name: &str, lang: LangArg) -> anyhow::Result<u8> {
    let project = Project::new(name, lang.into()).map_err(anyhow::Error::msg)?;
    let dir = Path::new(name);
    let written = project.write(dir).map_err(anyhow::Error::msg)?;
    let test = format!("keyrot plugin test {}", project.component);
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Json => {
            let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            let report = serde_json::json!({
                "dir": dir,
                "project": project,
                "test": test,
                "files": files,
            });
            render::json(&mut stdout, &report)?;
        }
        _ => {
            let lang = match lang {
                LangArg::Rust => "Rust",
                LangArg::Python => "Python",
                LangArg::Javascript => "JavaScript",
                LangArg::C => "C",
            };
            writeln!(
                stdout,
                "Created {name}/, a {lang} handler for {}: it writes each new key to the file \
                 its `path` setting names; make it yours.",
                project.contract
            )?;
            for file in &written {
                writeln!(stdout, "  {}", file.display())?;
            }
            writeln!(stdout, "Next (its README.md says what the build needs):")?;
            writeln!(stdout, "  cd {name}")?;
            writeln!(stdout, "  {}", project.build)?;
            writeln!(stdout, "  {test}")?;
        }
    }
    stdout.flush()?;
    Ok(0)
}

/// `keyrot plugin test PLUGIN`: runs the conformance suite, prints its
/// report, and exits 1 if a check failed.
pub async fn test(cli: &Cli, args: &PluginTestArgs) -> anyhow::Result<u8> {
    let suite = Suite {
        plugin: args.plugin.clone(),
        load: keyrot::host::LoadOptions::new(cli.no_cache, None),
        settings: settings(args)?,
        grants: grants(args)?,
        limits: PluginLimits {
            timeout: args.timeout.unwrap_or(PluginLimits::DEFAULT_TIMEOUT),
            memory_bytes: args.memory.unwrap_or(PluginLimits::DEFAULT_MEMORY_BYTES),
        },
    };
    let report = conformance::run(suite).await?;
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Json => render::json(&mut stdout, &report)?,
        _ => report_text(&mut stdout, &report)?,
    }
    stdout.flush()?;
    Ok(report.exit_code())
}

/// `--config` and `--secret`, each secret read from its source now.
fn settings(args: &PluginTestArgs) -> anyhow::Result<Settings> {
    let mut secrets: Vec<(String, Zeroizing<String>)> = Vec::new();
    for arg in &args.secret {
        let (name, source): (String, SecretSource) =
            parse_secret_arg(arg).map_err(anyhow::Error::msg)?;
        let value = source
            .resolve()
            .map_err(|e| anyhow::anyhow!("--secret {name} ({source}): {e}"))?;
        secrets.push((name, value));
    }
    Ok(Settings::new(args.config.iter().cloned()).with_secrets(secrets))
}

/// `--allow-host`, `--allow-dir`, `--inject-header` and
/// `--allow-host-ca`, checked as for a run.
fn grants(args: &PluginTestArgs) -> anyhow::Result<Grants> {
    for grant in &args.allow_dir {
        if let Some(why) = grant.problem() {
            anyhow::bail!("--allow-dir: {why}");
        }
    }
    keyrot::grants::check_private_dirs(
        &args.allow_dir,
        keyrot::dirs::cache_dir().as_deref(),
        keyrot::dirs::state_dir().as_deref(),
    )
    .map_err(anyhow::Error::msg)
    .context("plugin test")?;
    let hosts = AllowList::new(args.allow_host.iter().cloned());
    let mut headers = Vec::new();
    for spec in &args.inject_header {
        let mut header = HeaderInjection::parse(spec).map_err(anyhow::Error::msg)?;
        header
            .bind(&hosts)
            .map_err(|e| anyhow::anyhow!("--inject-header: {e}"))?;
        headers.push(header);
    }
    let mut host_cas = Vec::new();
    for spec in &args.allow_host_ca {
        let mut ca = HostCa::parse(spec).map_err(anyhow::Error::msg)?;
        ca.bind(&hosts)
            .map_err(|e| anyhow::anyhow!("--allow-host-ca: {e}"))?;
        host_cas.push(ca);
    }
    Ok(Grants {
        hosts,
        dirs: args.allow_dir.clone(),
        headers,
        host_cas,
        ..Grants::default()
    })
}

/// The report for people: a line per check, `✓` passed, `✗` failed with
/// why, `-` skipped with why; then the counts.
fn report_text(out: &mut impl Write, report: &ConformanceReport) -> std::io::Result<()> {
    let plugin = &report.plugin;
    writeln!(
        out,
        "keyrot plugin test: {} {} ({}), {}",
        escape_control(&plugin.name),
        escape_control(&plugin.version),
        plugin.contract,
        plugin.path
    )?;
    for provided in &report.provided {
        writeln!(out, "  (provided {provided})")?;
    }
    let width = report
        .checks
        .iter()
        .map(|c| c.rule.len())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        let mark = match check.status {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Skip => "-",
        };
        writeln!(out, "{mark} {:<width$}  {}", check.rule, check.title)?;
        // What the plugin said is quoted in details: printed inert.
        let detail = escape_control(&check.detail);
        match check.status {
            Status::Fail => writeln!(out, "    {detail}")?,
            Status::Skip => writeln!(out, "    skipped: {detail}")?,
            Status::Pass if !detail.is_empty() => writeln!(out, "    {detail}")?,
            Status::Pass => {}
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "{} passed, {} failed, {} skipped: {}",
        s.passed,
        s.failed,
        s.skipped,
        if report.passed {
            "it keeps the contract"
        } else {
            "fix the failed checks"
        }
    )
}
