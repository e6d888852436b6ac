//! The `keyrot` command: checks its input, loads the plugin(s), rotates
//! one user or a fleet ([`fleet`]), and prints the report. Bad input fails
//! here, before the first IAM call of any user.

pub mod args;
mod cache_cmd;
mod console;
mod inspect;
mod job;
mod kit;
mod metrics;
mod notify;
mod oci_cmd;
mod org;
mod plan;
mod progress;
mod render;
mod status;

use std::io::Write;

use keyrot::host::LoadOptions;
use keyrot::notify::NotificationReport;
use keyrot::{FleetSummary, Interrupt, RotationReport};

pub use self::args::{Cli, Command, Output, PluginCommand, PluginLogMode, RotateArgs};
pub use self::console::{init_logging, stderr_line};
use self::job::Job;
use self::plan::{Plan, check_user_name, is_single, state_options};
use self::progress::Progress;

/// Exit code for bad usage, plugin, settings or grants: nothing was touched.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Runs what the command line asks for. `Err` means bad input (nothing
/// touched); a failed rotation is `Ok` with its exit code.
pub async fn run(cli: &Cli) -> anyhow::Result<u8> {
    if matches!(cli.output, Output::Csv | Output::Prometheus)
        && !matches!(cli.command, Some(Command::Status(_)))
    {
        anyhow::bail!(
            "--output {} is for `keyrot status`; use text or json here{}",
            if cli.output == Output::Csv {
                "csv"
            } else {
                "prometheus"
            },
            if cli.output == Output::Prometheus {
                " (a rotation writes its outcomes as metrics with --metrics-file)"
            } else {
                ""
            }
        );
    }
    let result = match &cli.command {
        Some(Command::Cache(command)) => cache_cmd::run(cli, command),
        None => rotate(cli, &cli.rotate).await,
        Some(Command::Rotate(args)) => rotate(cli, args).await,
        Some(Command::Status(args)) => status::status(cli, args).await,
        Some(Command::Journal(command)) => status::journal(cli, command).await,
        Some(Command::Drain(args::DrainCommand::Undo(args))) => status::drain_undo(args).await,
        Some(Command::Plugin(PluginCommand::Inspect { path, key, grants }))
            if oci_cmd::is_oci(path) =>
        {
            let load = LoadOptions::new(cli.no_cache, None);
            let reference = path.to_string_lossy();
            oci_cmd::inspect(
                &reference,
                key,
                &cli.registry,
                &load,
                grants,
                cli.output,
                cli.verbose > 0,
            )
            .await
        }
        Some(Command::Plugin(PluginCommand::Inspect { path, grants, .. })) => {
            inspect::local(cli, path, grants).await
        }
        Some(Command::Plugin(PluginCommand::New { name, lang })) => kit::new(cli, name, *lang),
        Some(Command::Plugin(PluginCommand::Test(args))) => kit::test(cli, args).await,
        Some(Command::Plugin(PluginCommand::Push { file, reference })) => {
            let load = LoadOptions::new(cli.no_cache, None);
            oci_cmd::push(file, reference, &cli.registry, &load, cli.output).await
        }
        Some(Command::Plugin(PluginCommand::Sign { reference, key })) => {
            oci_cmd::sign(reference, key, &cli.registry).await
        }
        Some(Command::Plugin(PluginCommand::Verify { reference, key })) => {
            oci_cmd::verify(reference, key, &cli.registry).await
        }
    };
    console::note_hidden_plugin_lines(cli);
    result
}

/// Rotates every selected user's key and prints the report(s): a plan
/// checked before AWS, every plugin loaded, each target's account reached,
/// then the library's fleet.
async fn rotate(cli: &Cli, args: &RotateArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let mut plan = Plan::new(args, cli.no_cache)?;
    let handlers = plan.load_handlers(&cli.registry).await?;
    let reporters = notify::load_reporters(std::mem::take(&mut plan.reporters)).await?;
    let journal = plan.journal()?;
    let interrupt = Interrupt::default();
    stop_safely_on_signals(interrupt.clone());
    let fleet = plan.fleet(journal, interrupt);
    let (targets, decided) = match &plan.org {
        Some(org) => {
            let rules = plan.rules();
            match org.census(&plan.targets[0].aws, &rules).await? {
                Ok((census, _home)) => census.into_targets(&rules, &handlers),
                Err(code) => {
                    // The organization could not be listed: no user's
                    // outcome, but the run's exit code for the metrics.
                    let mut summary = FleetSummary::of(&[], started.elapsed().as_millis() as u64);
                    summary.exit_code = code;
                    write_metrics(plan.metrics_file.as_deref(), &[], &summary);
                    return Ok(code);
                }
            }
        }
        None => {
            let mut targets = Vec::with_capacity(handlers.len());
            for (spec, handler) in std::mem::take(&mut plan.targets).into_iter().zip(handlers) {
                targets.push(spec.reach(handler).await);
            }
            (targets, Vec::new())
        }
    };
    let mut rotations = fleet.prepare(targets).await?;
    rotations.include(decided);
    let progress = Progress::new(cli, rotations.len(), !plan.single);
    let reports = rotations.run(&progress).await;
    progress.finish();
    let summary = FleetSummary::of(&reports, started.elapsed().as_millis() as u64);
    write_metrics(plan.metrics_file.as_deref(), &reports, &summary);
    // Every rotation has ended: reporters cannot change any of them.
    let notifications = keyrot::notify::notify(&reporters, &reports).await;
    let code = if plan.single && reports.len() == 1 {
        print_report(cli, &reports[0], &notifications)
    } else {
        print_fleet(cli, &reports, &summary, &notifications)
    };
    Ok(keyrot::notify::exit_code(
        code,
        &notifications,
        plan.notify_required,
    ))
}

/// Writes the run's metrics file, if asked for. Failing to is a warning:
/// the keys are as the report says either way, and a stale file shows in
/// `keyrot_run_timestamp_seconds`.
fn write_metrics(
    path: Option<&std::path::Path>,
    reports: &[RotationReport],
    summary: &FleetSummary,
) {
    if let Some(path) = path
        && let Err(err) = metrics::run(reports, summary).write_file(path)
    {
        stderr_line(format_args!(
            "warning: could not write the metrics to {}: {err}",
            path.display()
        ));
    }
}

/// Prints a fleet's report and returns its exit code.
fn print_fleet(
    cli: &Cli,
    reports: &[RotationReport],
    summary: &FleetSummary,
    notifications: &[NotificationReport],
) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let printed = match cli.output {
        Output::Text | Output::Csv | Output::Prometheus => {
            render::fleet_text(&mut stdout, reports, summary)
                .and_then(|()| render::notifications_text(&mut stdout, notifications))
        }
        Output::Json => render::fleet_json(
            &mut stdout,
            reports,
            summary,
            notifications,
            cli.plugin_log == PluginLogMode::Show,
        ),
    }
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(err) = printed
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        stderr_line(format_args!("warning: could not print the report: {err}"));
    }
    summary.exit_code
}

/// Prints the report and returns its exit code. The keys may have changed
/// by now: failing to print must not hide the outcome's exit code.
fn print_report(cli: &Cli, report: &RotationReport, notifications: &[NotificationReport]) -> u8 {
    let code = report.outcome.exit_code();
    let mut stdout = std::io::stdout().lock();
    let printed = match cli.output {
        Output::Text | Output::Csv | Output::Prometheus => render::text(&mut stdout, report)
            .and_then(|()| render::notifications_text(&mut stdout, notifications)),
        // The plugin's log can hold whatever it chose to write (redaction
        // catches only literal secrets): in the report only when asked for.
        Output::Json => render::rotation_json(
            &mut stdout,
            report,
            notifications,
            cli.plugin_log == PluginLogMode::Show,
        ),
    }
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(err) = printed
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        stderr_line(format_args!("warning: could not print the report: {err}"));
    }
    // The text report ends with the error: on a terminal that already
    // showed it, once is enough; a log or a pipe gets it on stderr too.
    use std::io::IsTerminal;
    let shown = cli.output == Output::Text
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    if let Some(error) = report.error.as_ref().filter(|_| !shown) {
        let label = if code == 0 { "warning" } else { "error" };
        stderr_line(format_args!("{label}: {error}"));
    }
    code
}

/// The first SIGINT or SIGTERM stops the rotation safely (see
/// [`Interrupt`]); a second one exits at once.
fn stop_safely_on_signals(interrupt: Interrupt) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let mut terminate = signal(SignalKind::terminate()).ok();
        loop {
            let sigterm = async {
                match terminate.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = sigterm => {}
            }
            if interrupt.is_triggered() {
                stderr_line(
                    "error: interrupted again: exiting now; a key created by this run may be \
                     left, check with `aws iam list-access-keys`",
                );
                std::process::exit(130);
            }
            tracing::warn!("interrupted: stopping safely (interrupt again to exit at once)");
            interrupt.trigger();
        }
    });
}

/// Prints an error that stopped keyrot before any rotation: to stderr, and
/// as a report of the usual shape on stdout when JSON output was asked for.
pub fn report_bad_input(cli: &Cli, err: &anyhow::Error) {
    if is_broken_pipe(err) {
        return;
    }
    stderr_line(format_args!("error: {err:#}"));
    if cli.output == Output::Json {
        let args = match &cli.command {
            Some(Command::Rotate(args)) => args,
            _ => &cli.rotate,
        };
        let error = format!("{err:#}");
        // The shape the run would have printed. A job file that cannot be
        // read cannot say: then only the flags decide.
        let job = args
            .job
            .as_deref()
            .and_then(|path| Job::load(path).ok())
            .unwrap_or_default();
        let fleet = !is_single(args, &job)
            && (args.user.len() > 1
                || args.users_file.is_some()
                || args.all_users
                || !job.target.is_empty()
                || !job.users.is_empty()
                || job.users_file.is_some()
                || job.all_users.is_some());
        if !fleet {
            let user = args.user.first().or(job.user.as_ref());
            let report = RotationReport::bad_input(user.map_or("", |u| u.as_str()), error);
            let _ = render::json(&mut std::io::stdout(), &report);
            return;
        }
        // A fleet's shape: a summary that says exit 2, no runs, the error.
        let summary = FleetSummary {
            exit_code: EXIT_BAD_INPUT,
            ..FleetSummary::default()
        };
        let report = serde_json::json!({ "summary": summary, "runs": [], "error": error });
        let _ = render::json(&mut std::io::stdout(), &report);
    }
}

/// Whether stdout went away (`keyrot ... | head`): not worth an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
