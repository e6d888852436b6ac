//! The `keyrot` command: checks its input, loads the plugin, rotates, and
//! prints the report. Bad input fails here, before the first IAM call.

pub mod args;
mod cache_cmd;
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
use tracing_subscriber::EnvFilter;

pub use self::args::{Cli, Command, Output, PluginCommand, RotateArgs};
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

        // Values from the job file are named by their key there, not by
        // the flag: that is where the operator has to look.
        let job_path = args.job.as_deref().map(|p| p.display().to_string());
        let in_job = |key: &str| format!("job file {}: {key}", job_path.as_deref().unwrap_or("?"));

        let mut config = job.config;
        config.extend(args.config.iter().cloned());
        // Job-file settings the flags did not override.
        let job_settings: Vec<String> = config
            .keys()
            .filter(|name| !args.config.iter().any(|(n, _)| n == *name))
            .cloned()
            .collect();
        let mut secret_sources = job
            .secrets
            .iter()
            .map(|(name, source)| {
                let source: SecretSource = source.parse().map_err(|e| {
                    anyhow::anyhow!("{}: {e}", in_job(&format!("[secrets] {name}")))
                })?;
                Ok((name.clone(), (source, true)))
            })
            .collect::<anyhow::Result<std::collections::BTreeMap<_, _>>>()?;
        for arg in &args.secret {
            let (name, source) = parse_secret_arg(arg).map_err(anyhow::Error::msg)?;
            secret_sources.insert(name, (source, false));
        }
        let secrets = secret_sources
            .into_iter()
            .map(|(name, (source, from_job))| {
                let value = source.resolve().map_err(|e| {
                    if from_job {
                        anyhow::anyhow!("{} ({source}): {e}", in_job(&format!("[secrets] {name}")))
                    } else {
                        anyhow::anyhow!("--secret {name} ({source}): {e}")
                    }
                })?;
                Ok((name, value))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let hosts = job
            .allow_hosts
            .iter()
            .map(|h| {
                h.parse::<HostRule>()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("allow-hosts")))
            })
            .chain(args.allow_host.iter().cloned().map(Ok))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let allowed = AllowList::new(hosts);
        let dirs = job
            .allow_dirs
            .iter()
            .map(|d| {
                let grant = d
                    .parse::<DirGrant>()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("allow-dirs")))?;
                if let Some(why) = grant.problem() {
                    bail!("{}: {why}", in_job("allow-dirs"));
                }
                Ok(grant)
            })
            .chain(args.allow_dir.iter().cloned().map(Ok))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let job_headers = job.inject_headers.iter().map(|spec| {
            let mut header = HeaderInjection::parse_as(spec, "inject-headers entry")
                .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("inject-headers")))?;
            header
                .bind(&allowed)
                .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("inject-headers")))?;
            Ok(header)
        });
        let flag_headers = args.inject_header.iter().map(|spec| {
            let mut header = HeaderInjection::parse(spec).map_err(anyhow::Error::msg)?;
            header
                .bind(&allowed)
                .map_err(|e| anyhow::anyhow!("--inject-header: {e}"))?;
            Ok(header)
        });
        let headers = job_headers
            .chain(flag_headers)
            .collect::<anyhow::Result<Vec<_>>>()?;

        let limits = PluginLimits {
            timeout: match (args.timeout, &job.timeout) {
                (Some(t), _) => t,
                (None, Some(t)) => args::parse_duration(t)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("timeout")))?,
                (None, None) => PluginLimits::DEFAULT_TIMEOUT,
            },
            memory_bytes: match (args.memory, &job.memory) {
                (Some(m), _) => m,
                (None, Some(m)) => {
                    args::parse_size(m).map_err(|e| anyhow::anyhow!("{}: {e}", in_job("memory")))?
                }
                (None, None) => PluginLimits::DEFAULT_MEMORY_BYTES,
            },
        };
        let sha256 = match (&args.plugin_sha256, job.plugin_sha256) {
            (Some(hex), _) => Some(check_sha256(hex, "--plugin-sha256")?),
            (None, Some(hex)) => Some(check_sha256(&hex, &in_job("plugin-sha256"))?),
            (None, None) => None,
        };
        Ok(Self {
            user,
            plugin,
            load: load_options(no_cache, sha256),
            sandbox: Sandbox {
                settings: Settings::new(config)
                    .with_secrets(secrets)
                    .from_job_file(job_settings),
                grants: Grants {
                    hosts: allowed,
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

/// A pinned digest is 64 hex digits; `what` names where it came from.
fn check_sha256(hex: &str, what: &str) -> anyhow::Result<String> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{what} must be 64 hex digits, got '{hex}'");
    }
    Ok(hex.to_string())
}

fn load_options(no_cache: bool, sha256: Option<String>) -> LoadOptions {
    LoadOptions {
        cache: if no_cache {
            CacheMode::Disabled
        } else {
            CacheMode::user_default()
        },
        expected_sha256: sha256,
    }
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
    match &cli.command {
        None => rotate(cli).await,
        Some(Command::Plugin(PluginCommand::Inspect { path })) => inspect(cli, path).await,
        Some(Command::Cache(command)) => cache_cmd::run(cli, command),
    }
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
        Output::Json => render::json(&mut stdout, &report),
    }
    .and_then(|()| stdout.flush());
    if let Err(err) = printed
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: could not print the report: {err}");
    }
    if let Some(error) = &report.error {
        let label = if code == 0 { "warning" } else { "error" };
        eprintln!("{label}: {error}");
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
                eprintln!(
                    "error: interrupted again: exiting now; a key created by this run may be \
                     left, check with `aws iam list-access-keys`"
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
    let plugin = Plugin::load(path, &load_options(cli.no_cache, None))?;
    let report = WasmHandler::inspect(plugin).await?;
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Text => render::inspect_text(&mut stdout, &report, cli.verbose > 0)?,
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
    eprintln!("error: {err:#}");
    if output == Output::Json {
        let json = serde_json::json!({ "outcome": "bad-input", "error": format!("{err:#}") });
        let _ = writeln!(std::io::stdout(), "{json}");
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

/// Logs go to stderr: keyrot's and plugins' at info (`-v` debug, `-vv`
/// trace, `-q` errors only); `KEYROT_LOG` overrides with a tracing filter.
pub fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // The SDK's credential chain warns about every source it tries;
        // keyrot reports the one error that matters itself.
        (false, 0) => "warn,aws_config=error,keyrot=info,plugin=info",
        (false, 1) => "warn,aws_config=error,keyrot=debug,plugin=debug",
        (false, _) => "info,keyrot=trace,plugin=trace",
    };
    let filter = EnvFilter::try_from_env("KEYROT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: never into files and pipes.
    let ansi = cli.color.enabled(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
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
