//! Command-line flags, kept dumb: parsing only. [`super::Plan`] turns them
//! into checked values before anything touches AWS.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use keyrot::grants::{DirGrant, HostRule};

const AFTER_HELP: &str = "\
Examples:
  # Rotate ci-bot's key into a repository's GitHub Actions secrets
  keyrot --plugin github.wasm --user ci-bot --allow-host api.github.com \\
         --config repo=octo/app --secret token=env:GITHUB_TOKEN

  # The same, from a reviewed job file (flags override it)
  keyrot --job rotate-ci.toml

  # Write the new key into a profile of ~/.aws/credentials
  keyrot --plugin aws_credentials_file.wasm --user ci-bot --allow-dir ~/.aws:/aws \\
         --config path=/aws/credentials --config profile=ci

  # What is this plugin, what does it want, and what is its sha256?
  keyrot plugin inspect github.wasm

  # How much space do compiled plugins take; drop those compiled over 30 days ago
  keyrot cache list
  keyrot cache clean --older-than 30d

Environment:
  KEYROT_LOG        log filter; overrides -v/-q (e.g. keyrot=debug,plugin=trace)
  KEYROT_CACHE_DIR  compiled-plugin cache (default: $XDG_CACHE_HOME/keyrot, ~/.cache/keyrot)
  NO_COLOR          if set and not empty: no colour (as --color never), unless --color always
  AWS_*             the AWS SDK's usual settings: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL,
                    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
                    AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE

Exit codes:
  0  rotated: the new key is in place and the old keys are deleted
  1  failed: the keys are as they were (the message says why)
  2  bad usage, plugin, settings or grants, or an unknown user: nothing was touched
  3  partial: the new key is in place, but an old key could not be deleted
     (it was deactivated)
  4  needs manual action: a key nobody holds exists, or an old key could be
     neither deleted nor deactivated; the message names the key and the command";

/// Rotate an IAM user's access keys through a sandboxed WebAssembly handler.
///
/// keyrot lists the user's keys, asks the handler to preflight, creates a new
/// key, hands it to the handler, and deletes the old keys. If anything fails,
/// it cleans up so the user keeps exactly one working key. The handler gets
/// nothing but its settings unless granted: --allow-host, --allow-dir,
/// --secret, --inject-header.
#[derive(Debug, Parser)]
#[command(name = "keyrot", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub rotate: RotateArgs,

    /// How to print the report on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true, help_heading = "Output")]
    pub output: Output,

    /// Colour in logs on stderr: auto (only when stderr is a terminal and
    /// NO_COLOR is unset), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true, help_heading = "Output")]
    pub color: ColorChoice,

    /// Compile the plugin afresh instead of using the compiled-code cache.
    #[arg(long, global = true, help_heading = "Plugin")]
    pub no_cache: bool,

    /// More logging on stderr (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet", global = true, help_heading = "Output")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, help_heading = "Output")]
    pub quiet: bool,
}

impl Cli {
    /// Parses the command line, exiting with a usage error (exit 2) as clap
    /// does. Rotation flags make no sense with a subcommand and are refused
    /// there; global flags (`-v`, `--color`, `--output`, ...) go anywhere,
    /// before or after it.
    pub fn parse_args() -> Cli {
        let mut command = Cli::command();
        let matches = command.clone().get_matches();
        if let Some((name, _)) = matches.subcommand() {
            let rotation_only = RotateArgs::augment_args(clap::Command::new("keyrot"));
            for arg in rotation_only.get_arguments() {
                if matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
                {
                    let flag = arg
                        .get_long()
                        .map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
                    command
                        .error(
                            clap::error::ErrorKind::ArgumentConflict,
                            format!(
                                "{flag} is for a rotation; it cannot be used with `keyrot {name}`"
                            ),
                        )
                        .exit();
                }
            }
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

/// When to colour log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only when stderr is a terminal and NO_COLOR is unset or empty.
    Auto,
    /// Always, even into a file or pipe.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether the stream is a terminal and the
    /// value of NO_COLOR (set and not empty turns `auto` off).
    pub fn enabled(self, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// Subcommands; without one, keyrot rotates.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List or clean the compiled-plugin cache (KEYROT_CACHE_DIR,
    /// $XDG_CACHE_HOME/keyrot or ~/.cache/keyrot).
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `keyrot cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List compiled plugins: plugin sha256, size, age.
    List,
    /// Remove compiled plugins (each is rebuilt on its next use).
    Clean {
        /// Remove only entries older than this, e.g. 30d, 12h, 90m.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
    },
}

/// `keyrot plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, version, settings, imports and sha256.
    Inspect {
        /// The plugin component (.wasm).
        path: PathBuf,
    },
}

/// What to rotate and what the handler gets.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A job file (TOML) with the plugin, user, settings, grants and limits;
    /// flags given as well override it.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,

    /// The handler: a WebAssembly component built for keyrot's WIT world.
    #[arg(long, value_name = "PATH", help_heading = "Plugin")]
    pub plugin: Option<PathBuf>,

    /// Refuse to run a plugin file whose sha256 is not this (see `keyrot
    /// plugin inspect`).
    #[arg(long, value_name = "SHA256_HEX", help_heading = "Plugin")]
    pub plugin_sha256: Option<String>,

    /// The IAM user whose access key to rotate.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// A setting for the plugin, read through wasi:config (repeatable).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, help_heading = "Plugin")]
    pub config: Vec<(String, String)>,

    /// A secret setting, redacted everywhere: NAME=env:VAR or NAME=file:PATH.
    // Parsed by the plan, not clap: clap would echo a mistyped secret.
    #[arg(
        long,
        value_name = "NAME=env:VAR|NAME=file:PATH",
        help_heading = "Plugin"
    )]
    pub secret: Vec<String>,

    /// Let the plugin make HTTP requests to this exact host (https, port 443),
    /// or to http://HOST:PORT (repeatable).
    #[arg(
        long,
        value_name = "HOST[:PORT]|http://HOST:PORT",
        help_heading = "Grants"
    )]
    pub allow_host: Vec<HostRule>,

    /// Let the plugin see a directory, read-write unless :ro (repeatable).
    #[arg(
        long,
        value_name = "HOST_PATH[:GUEST_PATH][:ro]",
        help_heading = "Grants"
    )]
    pub allow_dir: Vec<DirGrant>,

    /// Add a header to requests to one host, from a secret the plugin never
    /// sees: one {env:VAR} or {file:PATH} in VALUE; HOST spelled as in
    /// --allow-host (repeatable).
    #[arg(long, value_name = "HOST=HEADER:VALUE", help_heading = "Grants")]
    pub inject_header: Vec<String>,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Time limit for each plugin call, e.g. 30s, 2m, 500ms [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub timeout: Option<Duration>,

    /// Memory limit for the plugin, e.g. 256MiB, 1GiB [default: 512MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Limits")]
    pub memory: Option<usize>,
}

/// Where and as whom to talk to AWS.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// The AWS profile to use (default: AWS_PROFILE, then `default`).
    #[arg(long, value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,

    /// The signing region (default: AWS_REGION, the profile's, then us-east-1).
    #[arg(long, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,

    /// A custom IAM endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = "AWS")]
    pub endpoint_url: Option<String>,
}

/// Report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A summary for people.
    Text,
    /// The full report as one JSON object.
    Json,
}

pub(super) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// No plugin call needs longer; larger values would overflow deadlines.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 2m or 500ms, got '{s}'"))?;
    let duration = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        other => return Err(format!("unknown duration unit '{other}' (use ms, s or m)")),
    };
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    if duration > MAX_DURATION {
        return Err("the duration must be at most 24h".into());
    }
    Ok(duration)
}

/// An age like 30d, 12h, 90m or 45s.
pub(super) fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let bad = || format!("expected an age like 30d, 12h or 90m, got '{s}'");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.checked_mul(scale).ok_or_else(bad)?))
}

pub(super) fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("expected a size like 256MiB or 1GiB, got '{s}'"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB or GiB)")),
    };
    let bytes = n.checked_mul(scale).ok_or("size too large")?;
    if bytes < 1 << 20 {
        return Err("the memory limit must be at least 1MiB".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1441m").is_err());
        assert!(parse_duration("18446744073709551615m").is_err());
    }

    #[test]
    fn colour_follows_the_terminal_and_no_color() {
        use std::ffi::OsStr;
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, Some(OsStr::new(""))));
        assert!(!ColorChoice::Auto.enabled(true, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn parses_ages() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert!(parse_age("30").is_err());
        assert!(parse_age("1w").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn parses_settings() {
        assert_eq!(
            parse_key_value("repo=o/r=x"),
            Ok(("repo".into(), "o/r=x".into()))
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}
