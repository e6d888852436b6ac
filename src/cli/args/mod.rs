//! Command-line flags, kept dumb: parsing only. [`super::Plan`] turns them
//! into checked values before anything touches AWS.
//!
//! - `help`: what `-h`, `--help` and a bare `keyrot` show, and where each
//!   global flag is shown;
//! - `values`: the parsers of flag values (durations, sizes, ages, ...),
//!   which job files use too;
//! - `org`: the flags of organization runs, for rotations and `status`.

mod help;
mod notify;
mod org;
mod plugin;
mod values;

pub use self::help::command_tree;
use self::help::{AFTER_LONG_HELP, AFTER_SHORT_HELP, USAGE, bare_usage};
pub use self::notify::{NotifyArgs, split_name};
pub use self::org::OrgArgs;
pub use self::plugin::{InspectGrants, LangArg, PluginCommand, PluginTestArgs};

pub(super) use self::values::{
    parse_age, parse_concurrency, parse_duration, parse_key_value, parse_sha256, parse_size,
};

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use keyrot::grants::{DirGrant, HostRule};
use keyrot::{AwsOptions, RetireMode};

/// Rotate an IAM user's access keys through a sandboxed WebAssembly handler
///
/// keyrot lists the user's keys, asks the handler to preflight, creates a new
/// key, hands it to the handler, and deletes the old keys. If anything fails,
/// it cleans up so the user keeps exactly one working key. The handler gets
/// nothing but its settings unless granted: --allow-host, --allow-dir,
/// --secret, --inject-header.
#[derive(Debug, Parser)]
#[command(
    name = "keyrot",
    version,
    override_usage = USAGE,
    after_help = AFTER_SHORT_HELP,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub rotate: RotateArgs,

    /// How to print the report on stdout: text, or one JSON object
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Output::Text, global = true, help_heading = "Output")]
    pub output: Output,

    /// Colour in logs on stderr
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true, hide_short_help = true, help_heading = "Output")]
    pub color: ColorChoice,

    /// Compile the plugin afresh instead of using the compiled-code cache
    #[arg(long, global = true, hide_short_help = true, help_heading = "Plugin")]
    pub no_cache: bool,

    /// More logging on stderr (-v debug, -vv trace)
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet", global = true, help_heading = "Output")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, help_heading = "Output")]
    pub quiet: bool,

    /// The plugin's own log lines on stderr
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = PluginLogMode::Auto, global = true, hide_short_help = true, help_heading = "Output")]
    pub plugin_log: PluginLogMode,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How keyrot talks to OCI registries, for oci:// plugins and `keyrot
/// plugin push/sign/verify/inspect`.
#[derive(Clone, Debug, Default, Args)]
pub struct RegistryArgs {
    /// Reach this OCI registry (HOST[:PORT]) over plain HTTP
    ///
    /// Credentials included. Loopback registries always may; any other host
    /// only when named here (repeatable).
    #[arg(
        long,
        value_name = "HOST",
        global = true,
        hide_short_help = true,
        help_heading = "Registry"
    )]
    pub insecure_registry: Vec<String>,

    /// Let this host's token service receive a registry's credentials
    ///
    /// A token service on another host (HOST[:PORT]) than the registry's own,
    /// e.g. auth.docker.io (repeatable).
    #[arg(
        long,
        value_name = "HOST",
        global = true,
        hide_short_help = true,
        help_heading = "Registry"
    )]
    pub registry_token_host: Vec<String>,

    /// Give up on a registry operation that takes longer than this
    ///
    /// Resolving a tag, a pull, a push, reading or pushing signatures
    /// [default: 3m; job file: registry-timeout].
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        global = true,
        hide_short_help = true,
        help_heading = "Registry"
    )]
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
    /// before or after it, and each command's help shows those that mean
    /// something to it. `keyrot` alone prints a short usage (exit 2).
    pub fn parse_args() -> Cli {
        if std::env::args_os().len() <= 1 {
            eprintln!("{}", bare_usage());
            std::process::exit(2);
        }
        let mut command = command_tree();
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
    /// Rotate a user's key (the same as no subcommand)
    Rotate(Box<RotateArgs>),
    /// Show users' keys, their age and last use, and what a rotation would do
    ///
    /// Per key: its id, status, creation date, age and last use; any journal
    /// an interrupted run left; and what a rotation would do now. Needs no
    /// plugin and changes nothing.
    Status(StatusArgs),
    /// Show or clear the journal an interrupted run left
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Drain mode: put a deactivated old key back while it drains
    #[command(subcommand)]
    Drain(DrainCommand),
    /// Start, test, inspect, publish, sign or verify a plugin
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List or clean the compiled-plugin cache
    ///
    /// The cache is KEYROT_CACHE_DIR, else $XDG_CACHE_HOME/keyrot, else
    /// ~/.cache/keyrot. Entries are rebuilt on their next use.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `keyrot cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List compiled plugins: plugin sha256, size, age
    List,
    /// Remove compiled plugins (each is rebuilt on its next use)
    Clean {
        /// Remove only entries older than this, e.g. 30d, 12h, 90m
        #[arg(long, value_name = "AGE", value_parser = parse_age, help_heading = "Cache")]
        older_than: Option<Duration>,
    },
}

/// `keyrot status ...`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An IAM user to show (repeatable)
    #[arg(long, value_name = "NAME", required_unless_present_any = ["users_file", "all_users", "org", "ou", "job"], help_heading = "Users")]
    pub user: Vec<String>,

    /// Show the users named in FILE (one a line, as for a rotation)
    #[arg(long, value_name = "FILE", help_heading = "Users")]
    pub users_file: Option<PathBuf>,

    /// Show every IAM user of the account (paginated ListUsers)
    #[arg(long, conflicts_with_all = ["user", "users_file"], help_heading = "Users")]
    pub all_users: bool,

    /// With --all-users or --org: only users whose IAM path starts with this
    #[arg(long, value_name = "PATH", help_heading = "Users")]
    pub path_prefix: Option<String>,

    /// Say "skip" for keys younger than this, as `rotate --older-than` would
    #[arg(long, value_name = "DURATION", value_parser = parse_age, help_heading = "Rotation")]
    pub older_than: Option<Duration>,

    /// Say "warn" for keys due within this long, as `rotate --warn-within` would
    #[arg(long, value_name = "DURATION", value_parser = parse_age, help_heading = "Rotation")]
    pub warn_within: Option<Duration>,

    /// Show what this job file's targets would do (plugins are not loaded)
    ///
    /// Its users, or its organization and targets (each with its own
    /// max-age and warn-age); flags given as well override it.
    #[arg(long, value_name = "FILE", help_heading = "Rotation")]
    pub job: Option<PathBuf>,

    #[command(flatten)]
    pub org: OrgArgs,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,
}

/// `keyrot journal ...`
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Print the journal an interrupted run left for a user
    Show(JournalArgs),
    /// Remove it, once the user's keys are as they should be
    ///
    /// Refused while a run holds the user (its lock, or a live lease) unless
    /// --force.
    Clear(JournalArgs),
}

/// `keyrot drain ...`
#[derive(Debug, Subcommand)]
pub enum DrainCommand {
    /// Make a draining old key active again and restart its drain
    ///
    /// For a consumer missed by a rotation with --retire drain: once the
    /// old key was deactivated, this puts it back to active, and the next
    /// runs wait for it to go quiet again.
    Undo(DrainArgs),
}

/// Whose drain.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The IAM user
    #[arg(long, value_name = "NAME", help_heading = "Users")]
    pub user: String,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,
}

/// Which user's journal.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The IAM user
    #[arg(long, value_name = "NAME", help_heading = "Users")]
    pub user: String,

    /// The AWS account of the user (file journal)
    ///
    /// Needs no AWS call [default: the account whose journal in the state
    /// directory has a record for the user].
    #[arg(long, value_name = "ID", help_heading = "Journal")]
    pub account: Option<String>,

    /// Remove the record even while a run holds the user
    ///
    /// Even while a run holds it (its lock, or a live lease): only when that
    /// run is known to be gone.
    #[arg(long, help_heading = "Journal")]
    pub force: bool,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,
}

/// Where runs keep their journal and locks.
#[derive(Clone, Debug, Default, Args)]
pub struct StateArgs {
    /// Where journals and locks live (must be writable)
    ///
    /// A directory keyrot creates 0700 if missing, and refuses if it is not
    /// yours or others can write it. Needed by --journal iam too, for the
    /// per-user locks. [default: KEYROT_STATE_DIR, $XDG_STATE_HOME/keyrot,
    /// ~/.local/state/keyrot]
    #[arg(
        long,
        value_name = "DIR",
        hide_short_help = true,
        help_heading = "Journal"
    )]
    pub state_dir: Option<PathBuf>,

    /// Keep the journal in the state directory (file) or on the IAM user (iam)
    ///
    /// file: a file per user in the state directory. iam: a tag on the IAM
    /// user, which any machine's rerun finds (use it on runners that lose
    /// their files); needs iam:TagUser, iam:UntagUser, iam:ListUserTags.
    /// [default: file]
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

/// What to rotate and what the handler gets.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A job file (TOML) with the plugin, users, settings, grants and limits
    ///
    /// Flags given as well override its values (settings and secrets per
    /// name; grants from both are combined).
    #[arg(long, value_name = "FILE", help_heading = "Rotation")]
    pub job: Option<PathBuf>,

    /// The handler: a component file (.wasm), or oci://REGISTRY/REPO:TAG@sha256:DIGEST
    ///
    /// A WebAssembly component of keyrot's WIT world (keyrot:handler).
    #[arg(long, value_name = "PATH", help_heading = "Plugin")]
    pub plugin: Option<PathBuf>,

    /// Refuse an oci:// plugin not signed by this cosign public key
    ///
    /// Repeatable: any one of the keys must have signed it.
    #[arg(
        long,
        value_name = "FILE",
        hide_short_help = true,
        help_heading = "Plugin"
    )]
    pub plugin_key: Vec<PathBuf>,

    /// Refuse to run a plugin whose sha256 is not this
    ///
    /// `keyrot plugin inspect PLUGIN` prints it, ready to paste.
    #[arg(
        long,
        value_name = "SHA256_HEX",
        hide_short_help = true,
        help_heading = "Plugin"
    )]
    pub plugin_sha256: Option<String>,

    /// An IAM user whose access key to rotate (repeatable)
    #[arg(long, value_name = "NAME", help_heading = "Users")]
    pub user: Vec<String>,

    /// Rotate the users named in FILE, one a line
    ///
    /// `#` comments and blank lines are ignored; every name is checked
    /// before anything runs.
    #[arg(
        long,
        value_name = "FILE",
        hide_short_help = true,
        help_heading = "Users"
    )]
    pub users_file: Option<PathBuf>,

    /// Rotate every IAM user of the account (paginated ListUsers)
    #[arg(long, conflicts_with_all = ["user", "users_file"], hide_short_help = true, help_heading = "Users")]
    pub all_users: bool,

    /// With --all-users or --org: only users whose IAM path starts with this, e.g. /ci/
    #[arg(
        long,
        value_name = "PATH",
        hide_short_help = true,
        help_heading = "Users"
    )]
    pub path_prefix: Option<String>,

    /// Rotate this many users at a time, 1 to 64 [default: 4]
    #[arg(long, value_name = "N", value_parser = parse_concurrency, hide_short_help = true, help_heading = "Users")]
    pub concurrency: Option<usize>,

    /// A setting for the plugin, read through wasi:config (repeatable)
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, help_heading = "Plugin")]
    pub config: Vec<(String, String)>,

    /// A secret setting, redacted everywhere: NAME=env:VAR or NAME=file:PATH
    ///
    /// Read before any IAM call (a missing variable or file is exit 2);
    /// repeatable.
    // Parsed by the plan, not clap: clap would echo a mistyped secret.
    #[arg(
        long,
        value_name = "NAME=env:VAR|NAME=file:PATH",
        help_heading = "Plugin"
    )]
    pub secret: Vec<String>,

    /// Let the plugin make HTTP requests to this exact host (repeatable)
    ///
    /// HOST or HOST:PORT is https (port 443 unless given); http://HOST:PORT
    /// is plain HTTP. Exact hosts only, no wildcards; redirects are checked
    /// too.
    #[arg(
        long,
        value_name = "HOST[:PORT]|http://HOST:PORT",
        help_heading = "Grants"
    )]
    pub allow_host: Vec<HostRule>,

    /// Let the plugin see a directory, read-write unless :ro (repeatable)
    ///
    /// GUEST_PATH is where the plugin sees it (default: HOST_PATH). Never
    /// keyrot's cache or state directory.
    #[arg(
        long,
        value_name = "HOST_PATH[:GUEST_PATH][:ro]",
        help_heading = "Grants"
    )]
    pub allow_dir: Vec<DirGrant>,

    /// Add a header to requests to one host, from a secret the plugin never sees
    ///
    /// One {env:VAR} or {file:PATH} in VALUE; HOST spelled as in
    /// --allow-host (repeatable).
    #[arg(
        long,
        value_name = "HOST=HEADER:VALUE",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub inject_header: Vec<String>,

    /// Trust only the PEM CA certificates in FILE for HTTPS to HOST (a private CA)
    ///
    /// For that host the public web roots no longer count, as kubectl
    /// trusts a kubeconfig's certificate-authority; other hosts keep them.
    /// HOST spelled as in --allow-host, which must allow it as https; FILE
    /// read before any IAM call (repeatable).
    #[arg(
        long,
        value_name = "HOST=FILE",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub allow_host_ca: Vec<String>,

    /// Sign the plugin's requests to this AWS host (SigV4), as --aws-sign-role-arn
    ///
    /// HOST is an AWS endpoint (secretsmanager.eu-west-1.amazonaws.com: its
    /// service and region are read from the name), or HOST=SERVICE/REGION
    /// for any other; spelled as in --allow-host, which must allow it. The
    /// plugin never sees the credentials (repeatable).
    #[arg(
        long,
        value_name = "HOST[=SERVICE/REGION]",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub aws_sign: Vec<String>,

    /// The role whose credentials sign --aws-sign requests (assumed with keyrot's own)
    #[arg(
        long,
        value_name = "ARN",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub aws_sign_role_arn: Option<String>,

    /// The external id the signing role's trust policy asks for
    #[arg(
        long,
        value_name = "ID",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub aws_sign_external_id: Option<String>,

    /// The AWS profile whose credentials sign --aws-sign requests, instead of a role
    #[arg(
        long,
        value_name = "NAME",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub aws_sign_profile: Option<String>,

    /// Check everything and print the plan; send no write call to IAM
    ///
    /// Lists the keys, asks the plugin to describe and preflight, and prints
    /// what a rotation would do. Exit 0 when it would go ahead.
    #[arg(long, help_heading = "Rotation")]
    pub dry_run: bool,

    /// Rotate only if the active key is at least this old, e.g. 90d
    ///
    /// Otherwise do nothing (exit 0).
    #[arg(long, value_name = "DURATION", value_parser = parse_age, help_heading = "Rotation")]
    pub older_than: Option<Duration>,

    /// With --older-than: warn about keys that come due within this long, e.g. 14d
    ///
    /// They are skipped with a warning in the report, so their owners can
    /// prepare; nothing changes.
    #[arg(long, value_name = "DURATION", value_parser = parse_age, hide_short_help = true, help_heading = "Rotation")]
    pub warn_within: Option<Duration>,

    /// What to do with the old keys: delete, deactivate or drain [default: delete]
    ///
    /// deactivate is a grace period: an operator can re-enable the old key
    /// if a consumer breaks; the next run deletes it when it needs room.
    /// drain keeps the old key active until IAM has seen it unused for
    /// --drain-quiet, then a later run deactivates it, and deletes it after
    /// --drain-grace more.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        hide_short_help = true,
        help_heading = "Rotation"
    )]
    pub retire: Option<RetireArg>,

    /// Drain: an old key unused this long is no longer in use [default: 1d]
    #[arg(long, value_name = "DURATION", value_parser = parse_age, hide_short_help = true, help_heading = "Drain")]
    pub drain_quiet: Option<Duration>,

    /// Drain: how long a deactivated old key waits before it is deleted [default: 3d]
    #[arg(long, value_name = "DURATION", value_parser = parse_age, hide_short_help = true, help_heading = "Drain")]
    pub drain_grace: Option<Duration>,

    /// Drain: an old key still used this long after the handover needs a person [default: 14d]
    ///
    /// The run then exits 4, naming the last use (time, service, region),
    /// and deletes nothing.
    #[arg(long, value_name = "DURATION", value_parser = parse_age, hide_short_help = true, help_heading = "Drain")]
    pub drain_timeout: Option<Duration>,

    /// Drain: delete an old key still in use after --drain-timeout anyway
    #[arg(long, hide_short_help = true, help_heading = "Drain")]
    pub force: bool,

    /// Do not prove the new key works before the handler gets it
    ///
    /// By default keyrot calls sts:GetCallerIdentity signed with the new key
    /// until it works or --verify-timeout passes.
    #[arg(long, hide_short_help = true, help_heading = "Rotation")]
    pub no_verify: bool,

    /// How long to wait for a new key to start working [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, hide_short_help = true, help_heading = "Rotation")]
    pub verify_timeout: Option<Duration>,

    /// Wait this long for another run on the same user, instead of failing at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, hide_short_help = true, help_heading = "Rotation")]
    pub wait_lock: Option<Duration>,

    /// Also write the run's outcomes as Prometheus metrics to FILE
    ///
    /// Replaced atomically at the end of each run, for node_exporter's
    /// textfile collector (a FILE ending in .prom in its directory).
    #[arg(
        long,
        value_name = "FILE",
        hide_short_help = true,
        help_heading = "Output"
    )]
    pub metrics_file: Option<PathBuf>,

    #[command(flatten)]
    pub org: OrgArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub aws: AwsOptions,

    /// Time limit for each plugin call, e.g. 30s, 2m, 500ms [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, hide_short_help = true, help_heading = "Limits")]
    pub timeout: Option<Duration>,

    /// Memory limit for the plugin, e.g. 256MiB, 1GiB [default: 512MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, hide_short_help = true, help_heading = "Limits")]
    pub memory: Option<usize>,
}

/// `--retire`, as clap parses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RetireArg {
    /// Delete the old keys.
    Delete,
    /// Set them Inactive.
    Deactivate,
    /// Keep the old active key until nothing uses it, then retire it.
    Drain,
}

impl From<RetireArg> for RetireMode {
    fn from(arg: RetireArg) -> Self {
        match arg {
            RetireArg::Delete => RetireMode::Delete,
            RetireArg::Deactivate => RetireMode::Deactivate,
            RetireArg::Drain => RetireMode::Drain,
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
    /// `keyrot status` only: a row per key, for a spreadsheet.
    Csv,
    /// `keyrot status` only: metrics in the Prometheus text format, for
    /// node_exporter's textfile collector or a Pushgateway.
    Prometheus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command_tree().debug_assert();
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
}
