//! What `keyrot -h`, `keyrot --help` and a bare `keyrot` show beyond the
//! flags' own lines, and where each global flag is shown.

use clap::CommandFactory;

use super::Cli;

/// What `keyrot -h` adds below the main flags.
pub(super) const AFTER_SHORT_HELP: &str = "\
Try a job first: `keyrot status --user NAME` and `keyrot ... --dry-run` change nothing.
`keyrot --help` shows every flag, examples, the environment and the exit codes.";

/// What `keyrot --help` adds below every flag.
pub(super) const AFTER_LONG_HELP: &str = "\
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

  # Write your own handler: a project to build, then check it keeps the contract
  keyrot plugin new my-store --lang rust
  keyrot plugin test my-store/target/wasm32-wasip2/release/my_store.wasm

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
  0  rotated: the new key is in place and the old keys are retired (or
     draining, --retire drain); or skipped (--older-than), or a dry run
  1  failed: the keys are as they were (the message says why), or another
     run holds the user
  2  bad usage, plugin, settings or grants, an unknown user, or a journal
     that IAM no longer matches: nothing was touched
  3  partial: the new key is in place, but an old key could not be deleted
     (it was deactivated)
  4  needs manual action: a key nobody holds exists, an old key could be
     neither deleted nor deactivated, or a draining key is still in use past
     its --drain-timeout; the message names the key and what to do
  5  with --notify-required: every rotation went well, but a reporter
     failed (the report says which and why)
  A fleet exits with the first of 4, 3, 1, 2, 0 that any of its users has.";

/// The usage lines `keyrot -h`, `--help` and a bare `keyrot` show.
pub(super) const USAGE: &str = "\
keyrot --plugin <PATH> --user <NAME> [OPTIONS]
       keyrot --job <FILE> [OPTIONS]
       keyrot <COMMAND>";

/// What `keyrot` with no arguments prints: what it is and how to start.
pub(super) fn bare_usage() -> String {
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
                | ["plugin", "new" | "test" | "inspect" | "push"]
                | ["cache", "list" | "clean"]
        ),
        "no_cache" => matches!(
            path.as_slice(),
            ["rotate"] | ["plugin", "test" | "inspect" | "push"]
        ),
        "plugin_log" => matches!(path.as_slice(), ["rotate"] | ["plugin", "test" | "inspect"]),
        "insecure_registry" | "registry_token_host" | "registry_timeout" => matches!(
            path.as_slice(),
            ["rotate"] | ["plugin", "inspect" | "push" | "sign" | "verify"]
        ),
        // Logging: every command logs.
        _ => true,
    }
}
