//! The `keyrot` command: checks its input, loads the plugin, rotates, and
//! prints the report. Bad input fails here, before the first IAM call.

pub mod args;
mod job;
mod oci_cmd;
mod render;

use std::io::Write;

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
    plugin: oci_cmd::PluginSource,
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
        let plugin = oci_cmd::PluginSource {
            from_job: args.plugin.is_none(),
            spec: args.plugin.clone().or(job.plugin).context(
                "no plugin given: pass --plugin PATH (or set `plugin` in the --job file)",
            )?,
            allow_unpinned: job.allow_unpinned,
            keys: job
                .plugin_keys
                .into_iter()
                .chain(args.plugin_key.clone())
                .collect(),
        };
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
    match &cli.command {
        None => rotate(cli).await,
        Some(Command::Plugin(PluginCommand::Inspect { path, key })) if oci_cmd::is_oci(path) => {
            let load = load_options(cli.no_cache, None)?;
            let reference = path.to_string_lossy();
            oci_cmd::inspect(&reference, key, &cli.insecure_registry, &load, cli.output).await
        }
        Some(Command::Plugin(PluginCommand::Inspect { path, .. })) => inspect(cli, path).await,
        Some(Command::Plugin(PluginCommand::Push { file, reference })) => {
            let load = load_options(cli.no_cache, None)?;
            oci_cmd::push(file, reference, &cli.insecure_registry, &load, cli.output).await
        }
        Some(Command::Plugin(PluginCommand::Sign { reference, key })) => {
            oci_cmd::sign(reference, key, &cli.insecure_registry).await
        }
        Some(Command::Plugin(PluginCommand::Verify { reference, key })) => {
            oci_cmd::verify(reference, key, &cli.insecure_registry).await
        }
    }
}

/// Rotates one user's key and prints the report.
async fn rotate(cli: &Cli) -> anyhow::Result<u8> {
    let mut plan = Plan::new(&cli.rotate, cli.no_cache)?;
    let path =
        oci_cmd::resolve_plugin(&plan.plugin, &cli.insecure_registry, &mut plan.load).await?;
    let plugin = Plugin::load(&path, &plan.load)?;
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
        // sigstore warns about each signature source it cannot read (the
        // OCI referrers API most registries lack); keyrot says what matters.
        (false, 0) => "warn,aws_config=error,sigstore=error,keyrot=info,plugin=info",
        (false, 1) => "warn,aws_config=error,sigstore=error,keyrot=debug,plugin=debug",
        (false, _) => "info,keyrot=trace,plugin=trace",
    };
    let filter = EnvFilter::try_from_env("KEYROT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
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
