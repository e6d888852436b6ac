//! Command-line flags, kept dumb: parsing only. [`super::Plan`] turns them
//! into checked values before anything touches AWS.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use keyrot::grants::{DirGrant, HostRule};
use keyrot::{AwsOptions, RetireMode};

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

  # Nightly from cron: rotate only keys older than 90 days, keep the old
  # key inactive for a while, resume any run a crash interrupted
  keyrot rotate --job rotate-ci.toml --older-than 90d --retire deactivate

  # A fleet: every user under /ci/, 8 at a time, only keys due
  keyrot --job rotate-ci.toml --all-users --path-prefix /ci/ --concurrency 8 --older-than 90d

  # Users of another account, through a role there
  keyrot --job rotate-ci.toml --users-file users.txt \\
         --role-arn arn:aws:iam::210987654321:role/keyrot

  # What would happen, without changing anything
  keyrot --job rotate-ci.toml --dry-run
  keyrot status --user ci-bot

  # What is this plugin, what does it want, and what is its sha256?
  keyrot plugin inspect github.wasm

  # How much space do compiled plugins take; drop those compiled over 30 days ago
  keyrot cache list
  keyrot cache clean --older-than 30d

Environment:
  KEYROT_LOG        log filter; overrides -v/-q (e.g. keyrot=debug,plugin=trace)
  KEYROT_CACHE_DIR  compiled-plugin cache (default: $XDG_CACHE_HOME/keyrot, ~/.cache/keyrot)
  KEYROT_REGISTRY_USER / KEYROT_REGISTRY_PASSWORD
                    credentials for the one registry KEYROT_REGISTRY_HOST (HOST[:PORT]) names;
                    other registries get theirs from the Docker config ($DOCKER_CONFIG)
  SSL_CERT_FILE     a PEM bundle of the CAs registries are checked against (replaces the system's)
  NO_COLOR          if set and not empty: no colour (as --color never), unless --color always
  AWS_*             the AWS SDK's usual settings: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL,
                    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
                    AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE

Exit codes:
  0  rotated: the new key is in place and the old keys are retired; or
     skipped (--older-than), or a dry run that would rotate
  1  failed: the keys are as they were (the message says why), or another
     run holds the user
  2  bad usage, plugin, settings or grants, an unknown user, or a journal
     that IAM no longer matches: nothing was touched
  3  partial: the new key is in place, but an old key could not be deleted
     (it was deactivated)
  4  needs manual action: a key nobody holds exists, or an old key could be
     neither deleted nor deactivated; the message names the key and the command
  A fleet exits with the first of 4, 3, 1, 2, 0 that any of its users has.";

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

    /// The plugin's own log lines on stderr: auto shows them when stderr is
    /// a terminal; hide prints only how many there were. The JSON report
    /// includes them only with an explicit show.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = PluginLogMode::Auto, global = true)]
    pub plugin_log: PluginLogMode,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How keyrot talks to OCI registries, for oci:// plugins and `keyrot
/// plugin push/sign/verify/inspect`.
#[derive(Clone, Debug, Default, Args)]
pub struct RegistryArgs {
    /// Reach this registry (HOST[:PORT]) over plain HTTP, credentials
    /// included (repeatable); loopback registries always may.
    #[arg(long, value_name = "HOST", global = true, help_heading = "Registry")]
    pub insecure_registry: Vec<String>,

    /// Let the token service on this host (HOST[:PORT]) receive a
    /// registry's credentials although it is not the registry's own host,
    /// e.g. auth.docker.io (repeatable).
    #[arg(long, value_name = "HOST", global = true, help_heading = "Registry")]
    pub registry_token_host: Vec<String>,

    /// Give up on a registry operation (resolving a tag, a pull, a push,
    /// reading or pushing signatures) that takes longer than this
    /// [default: 3m; job file: registry-timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true, help_heading = "Registry")]
    pub registry_timeout: Option<Duration>,
}

/// When the plugin's log reaches stderr (`--plugin-log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PluginLogMode {
    /// Show it when stderr is a terminal.
    Auto,
    /// Always show it (and include it in the JSON report).
    Show,
    /// Never show it; say how many lines there were.
    Hide,
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
    /// Rotate a user's key (the same as no subcommand).
    Rotate(Box<RotateArgs>),
    /// Show a user's keys, their age and last use, any pending journal, and
    /// what a rotation would do now. Needs no plugin and changes nothing.
    Status(StatusArgs),
    /// Show or clear the journal an interrupted run left.
    #[command(subcommand)]
    Journal(JournalCommand),
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

/// `keyrot status ...`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An IAM user to show (repeatable).
    #[arg(long, value_name = "NAME", required_unless_present_any = ["users_file", "all_users"])]
    pub user: Vec<String>,

    /// Show the users named in FILE (one a line, as for a rotation).
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,

    /// Show every IAM user of the account (paginated ListUsers).
    #[arg(long, conflicts_with_all = ["user", "users_file"])]
    pub all_users: bool,

    /// With --all-users: only users whose IAM path starts with this.
    #[arg(long, value_name = "PATH", requires = "all_users")]
    pub path_prefix: Option<String>,

    /// Say "skip" for keys younger than this, as `rotate --older-than` would.
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<Duration>,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,
}

/// `keyrot journal ...`
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Print the journal an interrupted run left for a user.
    Show(JournalArgs),
    /// Remove it, once the user's keys are as they should be. Refused while
    /// a run holds the user (its lock, or a live lease) unless --force.
    Clear(JournalArgs),
}

/// Which user's journal.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The IAM user.
    #[arg(long, value_name = "NAME")]
    pub user: String,

    /// The AWS account of the user (file journal): needs no AWS call
    /// [default: the account whose journal in the state directory has a
    /// record for the user].
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,

    /// `clear`: remove the record even while a run holds the user (its
    /// lock, or a live lease): only when that run is known to be gone.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,
}

/// Where runs keep their journal and locks.
#[derive(Clone, Debug, Default, Args)]
pub struct StateArgs {
    /// Where journals and locks live [default: KEYROT_STATE_DIR,
    /// $XDG_STATE_HOME/keyrot, ~/.local/state/keyrot].
    #[arg(long, value_name = "DIR", help_heading = "Journal")]
    pub state_dir: Option<PathBuf>,

    /// Keep the journal in the state directory (`file`) or as a tag on the
    /// IAM user (`iam`: any machine's rerun finds it; needs iam:TagUser,
    /// iam:UntagUser, iam:ListUserTags) [default: file].
    #[arg(long, value_enum, value_name = "WHERE", help_heading = "Journal")]
    pub journal: Option<JournalKind>,
}

/// Where the journal lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalKind {
    /// A file per user in the state directory.
    File,
    /// A tag on the IAM user, which doubles as a lease across machines.
    Iam,
}

/// `keyrot plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, version, settings, imports and sha256.
    Inspect {
        /// The plugin component (.wasm), or oci://REGISTRY/REPO:TAG[@sha256:DIGEST].
        path: PathBuf,
        /// For oci:// plugins: say whether this cosign public key signed it (repeatable).
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,
    },
    /// Publish a plugin to an OCI registry; prints the digest of the
    /// manifest it uploaded (sign that).
    Push {
        /// The plugin component (.wasm).
        file: PathBuf,
        /// Where to: REGISTRY/REPO:TAG (oci:// optional).
        reference: String,
    },
    /// Sign a published plugin with a cosign key (password in COSIGN_PASSWORD).
    Sign {
        /// oci://REGISTRY/REPO[:TAG]@sha256:DIGEST: a digest, never a tag
        /// alone (the registry chooses what a tag names).
        reference: String,
        /// The cosign private key (cosign.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Check that a published plugin is signed by one of these cosign keys.
    Verify {
        /// oci://REGISTRY/REPO:TAG[@sha256:DIGEST].
        reference: String,
        /// A cosign public key (cosign.pub); repeatable, one must match.
        #[arg(long, value_name = "FILE", required = true)]
        key: Vec<PathBuf>,
    },
}

/// What to rotate and what the handler gets.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A job file (TOML) with the plugin, user, settings, grants and limits;
    /// flags given as well override it.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,

    /// The handler: a WebAssembly component built for keyrot's WIT world,
    /// a file or oci://REGISTRY/REPO:TAG@sha256:DIGEST.
    #[arg(long, value_name = "PATH", help_heading = "Plugin")]
    pub plugin: Option<PathBuf>,

    /// Refuse an oci:// plugin not signed by this cosign public key
    /// (repeatable: any one of them).
    #[arg(long, value_name = "FILE", help_heading = "Plugin")]
    pub plugin_key: Vec<PathBuf>,

    /// Refuse to run a plugin file whose sha256 is not this (see `keyrot
    /// plugin inspect`).
    #[arg(long, value_name = "SHA256_HEX", help_heading = "Plugin")]
    pub plugin_sha256: Option<String>,

    /// An IAM user whose access key to rotate (repeatable).
    #[arg(long, value_name = "NAME", help_heading = "Users")]
    pub user: Vec<String>,

    /// Rotate the users named in FILE: one a line; `#` comments and blank
    /// lines are ignored.
    #[arg(long, value_name = "FILE", help_heading = "Users")]
    pub users_file: Option<PathBuf>,

    /// Rotate every IAM user of the account (paginated ListUsers).
    #[arg(long, conflicts_with_all = ["user", "users_file"], help_heading = "Users")]
    pub all_users: bool,

    /// With --all-users: only users whose IAM path starts with this, e.g. /ci/.
    #[arg(
        long,
        value_name = "PATH",
        requires = "all_users",
        help_heading = "Users"
    )]
    pub path_prefix: Option<String>,

    /// Rotate this many users at a time [default: 4].
    #[arg(long, value_name = "N", value_parser = parse_concurrency, help_heading = "Users")]
    pub concurrency: Option<usize>,

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

    /// List, describe and preflight, print what a rotation would do, and
    /// send no write call to IAM.
    #[arg(long)]
    pub dry_run: bool,

    /// Rotate only if the active key is at least this old, e.g. 90d;
    /// otherwise do nothing (exit 0).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<Duration>,

    /// What to do with the old keys: `delete`, or `deactivate` (grace: an
    /// operator can re-enable one if a consumer breaks) [default: delete].
    #[arg(long, value_enum, value_name = "MODE")]
    pub retire: Option<RetireArg>,

    /// Do not prove the new key works (sts:GetCallerIdentity signed with it)
    /// before the handler gets it.
    #[arg(long)]
    pub no_verify: bool,

    /// How long to wait for a new key to start working [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub verify_timeout: Option<Duration>,

    /// Wait this long for another run on the same user to finish, instead
    /// of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_lock: Option<Duration>,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,

    /// Time limit for each plugin call, e.g. 30s, 2m, 500ms [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub timeout: Option<Duration>,

    /// Memory limit for the plugin, e.g. 256MiB, 1GiB [default: 512MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Limits")]
    pub memory: Option<usize>,
}

/// Most users rotated at a time: beyond this, IAM throttles more than it
/// serves.
pub const MAX_CONCURRENCY: usize = 64;

/// `--concurrency`: 1 to [`MAX_CONCURRENCY`].
pub(super) fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a concurrency: give a number of users from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

/// `--retire`, as clap parses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RetireArg {
    /// Delete the old keys.
    Delete,
    /// Set them Inactive.
    Deactivate,
}

impl From<RetireArg> for RetireMode {
    fn from(arg: RetireArg) -> Self {
        match arg {
            RetireArg::Delete => RetireMode::Delete,
            RetireArg::Deactivate => RetireMode::Deactivate,
        }
    }
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

/// No wait keyrot does needs longer; larger values would overflow deadlines.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// No key age threshold needs more than ten years.
const MAX_AGE: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// A time limit: `500ms`, `30s`, `2m`, `1h` (at most 24h).
/// A pinned sha256: 64 hex digits.
pub(super) fn parse_sha256(hex: &str) -> Result<(), String> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("must be 64 hex digits, got '{hex}'"));
    }
    Ok(())
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_any_duration(s)?;
    if duration > MAX_DURATION {
        return Err(format!("'{}' is too large: at most 24h", s.trim()));
    }
    Ok(duration)
}

/// A key age: `90d`, `12h`, ... (at most 3650d).
pub(super) fn parse_age(s: &str) -> Result<Duration, String> {
    let duration = parse_any_duration(s)?;
    if duration > MAX_AGE {
        return Err(format!("'{}' is too large: at most 3650d", s.trim()));
    }
    Ok(duration)
}

/// A number and a unit: `ms`, `s`, `m`, `h` or `d` (seconds if none).
fn parse_any_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 500ms, 30s, 2m, 1h or 90d, got '{s}'"))?;
    let scale = match unit.trim() {
        "ms" => return nonzero(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m, h or d)"
            ));
        }
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    nonzero(Duration::from_secs(secs))
}

fn nonzero(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

/// No handler needs more; a typo (`512GiB`) should not pass silently.
const MAX_MEMORY: usize = 16 << 30;

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
    let too_large = || format!("'{s}' is too large: the memory limit is at most 16GiB");
    let bytes = n.checked_mul(scale).ok_or_else(too_large)?;
    if bytes < 1 << 20 {
        return Err("the memory limit must be at least 1MiB".into());
    }
    if bytes > MAX_MEMORY {
        return Err(too_large());
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
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("1441m").unwrap_err().contains("too large"));
        assert!(parse_duration("18446744073709551615m").is_err());
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_age("3651d").unwrap_err().contains("too large"));
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
        assert!(
            parse_age("0s").is_err(),
            "no age is zero: clean without --older-than"
        );
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
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert!(parse_size("17GiB").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999G").is_err());
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
