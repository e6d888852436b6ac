//! The `keyrot` command: checks its input, loads the plugin, rotates, and
//! prints the report. Bad input fails here, before the first IAM call.

pub mod args;
mod console;
mod job;
mod render;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use keyrot::grants::{
    AllowList, DirGrant, Grants, HeaderInjection, HostRule, SecretSource, parse_secret_arg,
};
use keyrot::host::{LoadOptions, Plugin, Sandbox, WasmHandler};
use keyrot::{AwsIam, AwsOptions, CacheMode, Interrupt, KeyRotator, PluginLimits, Settings};

pub use self::args::{Cli, Command, Output, PluginCommand, PluginLogMode, RotateArgs};
use self::console::stdout_line;
pub use self::console::{init_logging, stderr_line};
use self::job::Job;

/// Exit code for bad usage, plugin, settings or grants: nothing was touched.
pub const EXIT_BAD_INPUT: u8 = 2;

/// What to do, checked: everything that can be known wrong before touching
/// AWS is rejected here. Flags override the job file; settings and secrets
/// override per name; grants from both are combined.
struct Plan {
    user: String,
    plugin: PathBuf,
    load: LoadOptions,
    sandbox: Sandbox,
    aws: AwsOptions,
}

impl Plan {
    fn new(args: &RotateArgs, no_cache: bool) -> anyhow::Result<Self> {
        let job = match &args.job {
            Some(path) => Job::load(path)?,
            None => Job::default(),
        };
        let plugin =
            args.plugin.clone().or(job.plugin).context(
                "no plugin given: pass --plugin PATH (or set `plugin` in the --job file)",
            )?;
        let user = args
            .user
            .clone()
            .or(job.user)
            .context("no user given: pass --user NAME (or set `user` in the --job file)")?;
        check_user_name(&user)?;

        let mut config = job.config;
        config.extend(args.config.iter().cloned());
        let mut secret_sources = job
            .secrets
            .iter()
            .map(|(name, source)| {
                let source: SecretSource = source
                    .parse()
                    .map_err(|e| anyhow::anyhow!("job file secret '{name}': {e}"))?;
                Ok((name.clone(), source))
            })
            .collect::<anyhow::Result<std::collections::BTreeMap<_, _>>>()?;
        for arg in &args.secret {
            let (name, source) = parse_secret_arg(arg).map_err(anyhow::Error::msg)?;
            secret_sources.insert(name, source);
        }
        let secrets = secret_sources
            .into_iter()
            .map(|(name, source)| {
                let value = source
                    .resolve()
                    .map_err(|e| anyhow::anyhow!("secret '{name}' ({source}): {e}"))?;
                Ok((name, value))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let hosts = job
            .allow_hosts
            .iter()
            .map(|h| h.parse::<HostRule>().map_err(anyhow::Error::msg))
            .chain(args.allow_host.iter().cloned().map(Ok))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dirs = job
            .allow_dirs
            .iter()
            .map(|d| d.parse::<DirGrant>().map_err(anyhow::Error::msg))
            .chain(args.allow_dir.iter().cloned().map(Ok))
            .collect::<anyhow::Result<Vec<_>>>()?;
        keyrot::grants::check_private_dirs(
            &dirs,
            keyrot::dirs::cache_dir().as_deref(),
            keyrot::dirs::state_dir().as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let headers = job
            .inject_headers
            .iter()
            .chain(&args.inject_header)
            .map(|spec| HeaderInjection::parse(spec).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let limits = PluginLimits {
            timeout: match (args.timeout, &job.timeout) {
                (Some(t), _) => t,
                (None, Some(t)) => args::parse_duration(t).map_err(anyhow::Error::msg)?,
                (None, None) => PluginLimits::DEFAULT_TIMEOUT,
            },
            memory_bytes: match (args.memory, &job.memory) {
                (Some(m), _) => m,
                (None, Some(m)) => args::parse_size(m).map_err(anyhow::Error::msg)?,
                (None, None) => PluginLimits::DEFAULT_MEMORY_BYTES,
            },
        };
        Ok(Self {
            user,
            plugin,
            load: load_options(no_cache, args.plugin_sha256.clone().or(job.plugin_sha256))?,
            sandbox: Sandbox {
                settings: Settings::new(config).with_secrets(secrets),
                grants: Grants {
                    hosts: AllowList::new(hosts),
                    dirs,
                    headers,
                },
                limits,
            },
            aws: AwsOptions {
                profile: args.aws.profile.clone().or(job.aws.profile),
                region: args.aws.region.clone().or(job.aws.region),
                endpoint_url: args.aws.endpoint_url.clone().or(job.aws.endpoint_url),
            },
        })
    }
}

fn load_options(no_cache: bool, sha256: Option<String>) -> anyhow::Result<LoadOptions> {
    if let Some(hex) = &sha256
        && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("--plugin-sha256 must be 64 hex digits, got '{hex}'");
    }
    Ok(LoadOptions {
        cache: if no_cache {
            CacheMode::Disabled
        } else {
            CacheMode::user_default()
        },
        expected_sha256: sha256,
    })
}

/// IAM user names are 1-64 characters of letters, digits and `+=,.@_-`.
fn check_user_name(user: &str) -> anyhow::Result<()> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if user.is_empty() || user.len() > 64 || !user.chars().all(valid_char) {
        bail!(
            "'{user}' is not a valid IAM user name (1-64 letters, digits and +=,.@_- characters)"
        );
    }
    Ok(())
}

/// Runs what the command line asks for. `Err` means bad input (nothing
/// touched); a failed rotation is `Ok` with its exit code.
pub async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let result = match &cli.command {
        None => rotate(cli).await,
        Some(Command::Plugin(PluginCommand::Inspect { path })) => inspect(cli, path).await,
    };
    console::note_hidden_plugin_lines(cli);
    result
}

/// Rotates one user's key and prints the report.
async fn rotate(cli: &Cli) -> anyhow::Result<u8> {
    let plan = Plan::new(&cli.rotate, cli.no_cache)?;
    let plugin = Plugin::load(&plan.plugin, &plan.load)?;
    let handler = WasmHandler::new(plugin, plan.sandbox).await?;
    tracing::debug!(plugin = handler.name(), version = %handler.info().version, "plugin ready");
    let iam = AwsIam::from_options(&plan.aws).await;
    let interrupt = Interrupt::default();
    stop_safely_on_signals(interrupt.clone());
    let rotator = KeyRotator::new(iam, handler).with_interrupt(interrupt);
    let (report, code) = match rotator.rotate_keys(&plan.user).await {
        Ok(report) => {
            let code = report.outcome.exit_code();
            (report, code)
        }
        Err(err) => {
            let code = err.exit_code();
            (*err.report, code)
        }
    };
    // The keys have changed by now: failing to print must not hide the
    // outcome's exit code.
    let mut stdout = std::io::stdout().lock();
    let printed = match cli.output {
        Output::Text => render::text(&mut stdout, &report),
        // The plugin's log can hold whatever it chose to write (redaction
        // catches only literal secrets): in the report only when asked for.
        Output::Json => {
            render::rotation_json(&mut stdout, &report, cli.plugin_log == PluginLogMode::Show)
        }
    }
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(err) = printed
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        stderr_line(format_args!("warning: could not print the report: {err}"));
    }
    if let Some(error) = &report.error {
        let label = if code == 0 { "warning" } else { "error" };
        stderr_line(format_args!("{label}: {error}"));
    }
    Ok(code)
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

/// `keyrot plugin inspect`: what a plugin is and what it wants.
async fn inspect(cli: &Cli, path: &std::path::Path) -> anyhow::Result<u8> {
    let plugin = Plugin::load(path, &load_options(cli.no_cache, None)?)?;
    let report = WasmHandler::inspect(plugin).await?;
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Text => render::inspect_text(&mut stdout, &report)?,
        Output::Json => render::json(&mut stdout, &report)?,
    }
    stdout.flush()?;
    Ok(0)
}

/// Prints an error that stopped keyrot before any rotation: to stderr, and
/// as a JSON object on stdout when JSON output was asked for.
pub fn report_bad_input(output: Output, err: &anyhow::Error) {
    if is_broken_pipe(err) {
        return;
    }
    stderr_line(format_args!("error: {err:#}"));
    if output == Output::Json {
        let json = serde_json::json!({ "outcome": "bad-input", "error": format!("{err:#}") });
        stdout_line(json);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_iam_rules() {
        assert!(check_user_name("ci-bot").is_ok());
        assert!(check_user_name("svc+deploy@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("has space").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
    }
}
