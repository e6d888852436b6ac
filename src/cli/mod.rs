//! The `keyrot` command: checks its input, loads the plugin, rotates, and
//! prints the report. Bad input fails here, before the first IAM call.

pub mod args;
mod render;

use std::io::Write;

use anyhow::bail;
use keyrot::{AwsIam, AwsOptions, KeyRotator, PluginLimits, Settings, WasmHandler};
use tracing_subscriber::EnvFilter;

pub use self::args::{Cli, Output};

/// Exit code for bad usage, plugin or settings: nothing was touched.
pub const EXIT_BAD_INPUT: u8 = 2;

/// What to do, checked: everything that can be known wrong before touching
/// AWS is rejected here.
struct Plan {
    user: String,
    settings: Settings,
    limits: PluginLimits,
    aws: AwsOptions,
}

impl Plan {
    fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        check_user_name(&cli.user)?;
        Ok(Self {
            user: cli.user.clone(),
            settings: Settings::new(cli.config.iter().cloned()),
            limits: PluginLimits {
                memory_bytes: cli.memory,
                timeout: cli.timeout,
            },
            aws: AwsOptions {
                profile: cli.aws.profile.clone(),
                region: cli.aws.region.clone(),
                endpoint_url: cli.aws.endpoint_url.clone(),
            },
        })
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

/// Runs one rotation and prints its report. `Err` means bad input (nothing
/// touched); a failed rotation is `Ok` with its exit code.
pub async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let plan = Plan::from_cli(cli)?;
    let handler = WasmHandler::load(&cli.plugin, plan.settings, plan.limits).await?;
    tracing::debug!(plugin = handler.name(), version = %handler.info().version, "plugin loaded");
    let iam = AwsIam::from_options(&plan.aws).await;
    let rotator = KeyRotator::new(iam, handler);
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
    let mut stdout = std::io::stdout().lock();
    match cli.output {
        Output::Text => render::text(&mut stdout, &report)?,
        Output::Json => render::json(&mut stdout, &report)?,
    }
    stdout.flush()?;
    if let Some(error) = &report.error {
        let label = if code == 0 { "warning" } else { "error" };
        eprintln!("{label}: {error}");
    }
    Ok(code)
}

/// Prints an error that stopped keyrot before any rotation: to stderr, and
/// as a JSON object on stdout when JSON output was asked for.
pub fn report_bad_input(output: Output, err: &anyhow::Error) {
    eprintln!("error: {err:#}");
    if output == Output::Json {
        let json = serde_json::json!({ "outcome": "bad-input", "error": format!("{err:#}") });
        println!("{json}");
    }
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
