//! Command-line flags, kept dumb: parsing only. [`super::Plan`] turns them
//! into checked values before anything touches AWS.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use keyrot::grants::{DirGrant, HostRule};
use keyrot::{AwsOptions, RetireMode};

/// What `keyrot -h` adds below the main flags.
const AFTER_SHORT_HELP: &str = "\
Try a job first: `keyrot status --user NAME` and `keyrot ... --dry-run` change nothing.
`keyrot --help` shows every flag, examples, the environment and the exit codes.";

/// What `keyrot --help` adds below every flag.
const AFTER_LONG_HELP: &str = "\
Examples:
  # Rotate ci-bot's key into a repository's GitHub Actions secrets
  keyrot --plugin github.wasm --user ci-bot --allow-host api.github.com \\
         --config repo=octo/app --secret token=env:GITHUB_TOKEN

  # The same, from a reviewed job file (flags override it)
  keyrot --job rotate-ci.toml

  # Write the new key into a profile of ~/.aws/credentials
  keyrot --plugin aws_credentials_file.wasm --user ci-bot --allow-dir ~/.aws:/aws \\
         --config path=/aws/credentials --config profile=ci

  # On a schedule: rotate only keys older than 90 days, keep the old key
  # inactive for a while, keep the journal on the IAM user (for runners
  # that lose their files), finish any run a crash interrupted
  keyrot rotate --job rotate-ci.toml --older-than 90d --retire deactivate --journal iam

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
  KEYROT_STATE_DIR          journals and locks, as --state-dir (default: $XDG_STATE_HOME/keyrot,
                            then $HOME/.local/state/keyrot); must be writable, even with --journal iam
  KEYROT_CACHE_DIR          compiled-plugin cache (default: $XDG_CACHE_HOME/keyrot, then
                            $HOME/.cache/keyrot)
  KEYROT_LOG                log filter; overrides -v/-q (e.g. keyrot=debug,plugin=trace)
  KEYROT_REGISTRY_HOST,     credentials for the one registry KEYROT_REGISTRY_HOST (HOST[:PORT])
  KEYROT_REGISTRY_USER,     names; other registries get theirs from the Docker config
  KEYROT_REGISTRY_PASSWORD  ($DOCKER_CONFIG/config.json or ~/.docker/config.json), else anonymous
  SSL_CERT_FILE             a PEM bundle of the CAs registries are checked against (replaces the
                            system's)
  COSIGN_PASSWORD           the password of the cosign key `keyrot plugin sign --key` reads
  NO_COLOR                  if set and not empty: no colour (as --color never), unless --color always
  AWS_*                     the AWS SDK's usual settings: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL
                            (and AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL_STS), AWS_ACCESS_KEY_ID /
                            AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_CONFIG_FILE,
                            AWS_SHARED_CREDENTIALS_FILE, AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE

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

/// The usage lines `keyrot -h`, `--help` and a bare `keyrot` show.
const USAGE: &str = "\
keyrot --plugin <PATH> --user <NAME> [OPTIONS]
       keyrot --job <FILE> [OPTIONS]
       keyrot <COMMAND>";

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

/// What `keyrot` with no arguments prints: what it is and how to start.
fn bare_usage() -> String {
    format!(
        "Rotate an IAM user's access keys through a sandboxed WebAssembly handler\n\n\
         Usage: {USAGE}\n\n{AFTER_SHORT_HELP}"
    )
}

/// The command line as parsed and shown: [`Cli`], with each global flag
/// shown in the help of the commands where it means something and hidden
/// elsewhere (where it is still accepted, as it always was).
pub fn command_tree() -> clap::Command {
    fn place(
        command: clap::Command,
        path: &mut Vec<String>,
        globals: &[clap::Arg],
    ) -> clap::Command {
        command.mut_subcommands(|mut sub| {
            path.push(sub.get_name().to_string());
            for arg in globals {
                let shown = global_means_something(arg.get_id().as_str(), path);
                // An argument a subcommand already has is not propagated
                // again, so this copy is the one its help shows (or hides).
                sub = sub.arg(arg.clone().hide(!shown));
            }
            // `journal show` shares `clear`'s arguments; --force is clear's.
            if path.as_slice() == ["journal", "show"] {
                sub = sub.mut_arg("force", |arg| arg.hide(true));
            }
            let sub = place(sub, path, globals);
            path.pop();
            sub
        })
    }
    let command = Cli::command();
    let globals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .cloned()
        .collect();
    place(command, &mut Vec::new(), &globals)
}

/// Whether global flag `id` does anything for the command at `path`
/// (`["plugin", "inspect"]`, ...).
fn global_means_something(id: &str, path: &[String]) -> bool {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match id {
        "output" => matches!(
            path.as_slice(),
            ["rotate" | "status"]
                | ["journal", "show"]
                | ["plugin", "inspect" | "push"]
                | ["cache", "list" | "clean"]
        ),
        "no_cache" => matches!(path.as_slice(), ["rotate"] | ["plugin", "inspect" | "push"]),
        "plugin_log" => matches!(path.as_slice(), ["rotate"] | ["plugin", "inspect"]),
        "insecure_registry" | "registry_token_host" | "registry_timeout" => matches!(
            path.as_slice(),
            ["rotate"] | ["plugin", "inspect" | "push" | "sign" | "verify"]
        ),
        // Logging: every command logs.
        _ => true,
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
    /// Inspect, publish, sign or verify a plugin
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
    #[arg(long, value_name = "NAME", required_unless_present_any = ["users_file", "all_users"], help_heading = "Users")]
    pub user: Vec<String>,

    /// Show the users named in FILE (one a line, as for a rotation)
    #[arg(long, value_name = "FILE", help_heading = "Users")]
    pub users_file: Option<PathBuf>,

    /// Show every IAM user of the account (paginated ListUsers)
    #[arg(long, conflicts_with_all = ["user", "users_file"], help_heading = "Users")]
    pub all_users: bool,

    /// With --all-users: only users whose IAM path starts with this
    #[arg(
        long,
        value_name = "PATH",
        requires = "all_users",
        help_heading = "Users"
    )]
    pub path_prefix: Option<String>,

    /// Say "skip" for keys younger than this, as `rotate --older-than` would
    #[arg(long, value_name = "DURATION", value_parser = parse_age, help_heading = "Rotation")]
    pub older_than: Option<Duration>,

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

/// `keyrot plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, version, settings, imports and sha256
    Inspect {
        /// The plugin component (.wasm), or oci://REGISTRY/REPO:TAG[@sha256:DIGEST]
        path: PathBuf,
        /// For oci:// plugins: say whether this cosign public key signed it (repeatable)
        #[arg(long, value_name = "FILE", help_heading = "Plugin")]
        key: Vec<PathBuf>,
    },
    /// Publish a plugin to an OCI registry; prints the digest of the manifest it uploaded (sign that)
    Push {
        /// The plugin component (.wasm)
        file: PathBuf,
        /// Where to: REGISTRY/REPO:TAG (oci:// optional)
        reference: String,
    },
    /// Sign a published plugin with a cosign key (password in COSIGN_PASSWORD)
    Sign {
        /// oci://REGISTRY/REPO[:TAG]@sha256:DIGEST: a digest, never a tag alone (the registry chooses what a tag names)
        reference: String,
        /// The cosign private key (cosign.key)
        #[arg(long, value_name = "FILE", help_heading = "Plugin")]
        key: PathBuf,
    },
    /// Check that a published plugin is signed by one of these cosign keys
    Verify {
        /// oci://REGISTRY/REPO:TAG[@sha256:DIGEST]
        reference: String,
        /// A cosign public key (cosign.pub); repeatable, one must match
        #[arg(long, value_name = "FILE", required = true, help_heading = "Plugin")]
        key: Vec<PathBuf>,
    },
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

    /// With --all-users: only users whose IAM path starts with this, e.g. /ci/
    #[arg(
        long,
        value_name = "PATH",
        requires = "all_users",
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

    /// What to do with the old keys: delete, or deactivate [default: delete]
    ///
    /// deactivate is a grace period: an operator can re-enable the old key
    /// if a consumer breaks; the next run deletes it when it needs room.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        hide_short_help = true,
        help_heading = "Rotation"
    )]
    pub retire: Option<RetireArg>,

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
        command_tree().debug_assert();
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
