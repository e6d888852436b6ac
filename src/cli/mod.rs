//! The `keyrot` command: checks its input, loads the plugin(s), rotates
//! one user or a fleet ([`fleet`]), and prints the report. Bad input fails
//! here, before the first IAM call of any user.

pub mod args;
mod cache_cmd;
mod console;
mod fleet;
mod job;
mod oci_cmd;
mod render;
mod status;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use keyrot::grants::{
    AllowList, DirGrant, Grants, HeaderInjection, HostRule, SecretSource, parse_secret_arg,
};
use keyrot::host::{LoadOptions, Plugin, Sandbox, WasmHandler};
use keyrot::{
    AwsIam, AwsOptions, CacheMode, FleetSummary, IamTagJournal, Interrupt, Journal, KeyRotator,
    Outcome, PluginLimits, RotateOptions, RotationReport, Settings, StateDir, StsVerifier,
    caller_identity,
};

pub use self::args::{Cli, Command, Output, PluginCommand, PluginLogMode, RotateArgs};
use self::args::{JournalKind, StateArgs};
pub use self::console::{init_logging, stderr_line};
use self::job::Job;

/// Exit code for bad usage, plugin, settings or grants: nothing was touched.
pub const EXIT_BAD_INPUT: u8 = 2;

/// What to do, checked: everything that can be known wrong before touching
/// AWS is rejected here. Flags override the job file (every target of it);
/// settings and secrets override per name; grants from both are combined.
struct Plan {
    targets: Vec<Target>,
    /// With a job file's `[[target]]` blocks, `--user`/`--users-file` pick
    /// which of their users to rotate.
    only: Option<Vec<String>>,
    journal: JournalKind,
    state_dir: PathBuf,
    wait_lock: Option<Duration>,
    concurrency: usize,
    /// One user named once (`--user` or the job's `user`): today's report
    /// shape, not the fleet's.
    single: bool,
}

/// Who a target rotates.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Users {
    /// These users, in order, each once.
    Named(Vec<String>),
    /// Every user whose IAM path starts with this (`/` for all).
    All { path_prefix: String },
}

/// One set of users and everything their rotations share: plugin,
/// sandbox, AWS options and rotation options.
struct Target {
    /// How messages name it: empty for a job without `[[target]]` blocks.
    label: String,
    users: Users,
    plugin: oci_cmd::PluginSource,
    load: LoadOptions,
    sandbox: Sandbox,
    aws: AwsOptions,
    options: RotateOptions,
    verify: bool,
}

/// Users rotated at a time unless `--concurrency` says.
const DEFAULT_CONCURRENCY: usize = 4;

impl Plan {
    fn new(args: &RotateArgs, no_cache: bool) -> anyhow::Result<Self> {
        let job = match &args.job {
            Some(path) => Job::load(path)?,
            None => Job::default(),
        };
        let job_path = args.job.as_deref().map(|p| p.display().to_string());
        let (journal, state_dir) = state_options(&args.state, job.journal)?;
        let flag_users = fleet::flag_users(args)?;
        let fleet_job = !job.target.is_empty();
        let only = match (&flag_users, fleet_job) {
            (Some(Users::All { .. }), true) => bail!(
                "--all-users cannot pick users from the job file's [[target]] blocks: each \
                 target selects its own (all-users = true in a target)"
            ),
            (Some(Users::Named(names)), true) => Some(names.clone()),
            _ => None,
        };
        let targets = job
            .targets()
            .into_iter()
            .enumerate()
            .map(|(i, target)| {
                let label = match (&target.name, fleet_job) {
                    (_, false) => String::new(),
                    (Some(name), true) => format!("target {name}"),
                    (None, true) => format!("target #{}", i + 1),
                };
                let users = if fleet_job { None } else { flag_users.clone() };
                Target::new(args, target, label, &job_path, users, &state_dir, no_cache)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let concurrency = match (args.concurrency, job.concurrency) {
            (Some(n), _) => n,
            (None, Some(n)) => args::parse_concurrency(&n.to_string()).map_err(|e| {
                anyhow::anyhow!(
                    "job file {}: concurrency: {e}",
                    job_path.as_deref().unwrap_or("?")
                )
            })?,
            (None, None) => DEFAULT_CONCURRENCY,
        };
        let single = is_single(args, &job);
        Ok(Self {
            targets,
            only,
            journal,
            state_dir,
            wait_lock: args.wait_lock,
            concurrency,
            single,
        })
    }
}

impl Target {
    fn new(
        args: &RotateArgs,
        job: Job,
        label: String,
        job_path: &Option<String>,
        flag_users: Option<Users>,
        state_dir: &std::path::Path,
        no_cache: bool,
    ) -> anyhow::Result<Self> {
        let plugin = oci_cmd::PluginSource {
            from_job: args.plugin.is_none(),
            spec: args.plugin.clone().or(job.plugin.clone()).context(
                "no plugin given: pass --plugin PATH (or set `plugin` in the --job file)",
            )?,
            allow_unpinned: job.allow_unpinned,
            keys: job
                .plugin_keys
                .iter()
                .cloned()
                .chain(args.plugin_key.clone())
                .collect(),
            registry_timeout: job.registry_timeout.clone(),
        };
        // Values from the job file are named by their key there, not by
        // the flag: that is where the operator has to look.
        let where_ = if label.is_empty() {
            String::new()
        } else {
            format!("{label}: ")
        };
        let in_job = |key: &str| {
            format!(
                "job file {}: {where_}{key}",
                job_path.as_deref().unwrap_or("?")
            )
        };
        let users = match flag_users {
            Some(users) => users,
            None => fleet::job_users(&job).map_err(|e| anyhow::anyhow!("{}", in_job(&e)))?,
        };

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
        keyrot::grants::check_private_dirs(
            &dirs,
            keyrot::dirs::cache_dir().as_deref(),
            Some(state_dir),
        )
        .map_err(anyhow::Error::msg)?;
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
        let older_than = match (args.older_than, &job.older_than) {
            (Some(d), _) => Some(d),
            (None, Some(d)) => Some(
                args::parse_age(d).map_err(|e| anyhow::anyhow!("{}: {e}", in_job("older-than")))?,
            ),
            (None, None) => None,
        };
        let verify_timeout = match (args.verify_timeout, &job.verify_timeout) {
            (Some(d), _) => d,
            (None, Some(d)) => args::parse_duration(d)
                .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("verify-timeout")))?,
            (None, None) => RotateOptions::DEFAULT_VERIFY_TIMEOUT,
        };
        let options = RotateOptions {
            retire: args
                .retire
                .map(Into::into)
                .or(job.retire)
                .unwrap_or_default(),
            older_than,
            verify_timeout,
            dry_run: args.dry_run,
        };
        let sha256 = match (&args.plugin_sha256, job.plugin_sha256) {
            (Some(hex), _) => Some(check_sha256(hex, "--plugin-sha256")?),
            (None, Some(hex)) => Some(check_sha256(&hex, &in_job("plugin-sha256"))?),
            (None, None) => None,
        };
        Ok(Self {
            label,
            users,
            plugin,
            options,
            verify: !args.no_verify && job.verify.unwrap_or(true),
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
            aws: args.aws.clone().or(job.aws),
        })
    }

    /// `"target prod: "`, or nothing for a job without targets.
    fn prefix(&self) -> String {
        if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        }
    }
}

/// Whether a run is about one user named once (`--user`, or the job's
/// `user`, and no fleet selection): it keeps the single report's shape.
fn is_single(args: &RotateArgs, job: &Job) -> bool {
    job.target.is_empty()
        && args.users_file.is_none()
        && !args.all_users
        && match args.user.len() {
            0 => {
                job.user.is_some()
                    && job.users.is_empty()
                    && job.users_file.is_none()
                    && job.all_users.is_none()
            }
            n => n == 1,
        }
}

/// Where the journal lives: flag, then job file, then the default.
fn state_options(
    state: &StateArgs,
    job: Option<JournalKind>,
) -> anyhow::Result<(JournalKind, PathBuf)> {
    let dir = state
        .state_dir
        .clone()
        .or_else(keyrot::dirs::state_dir)
        .context("no state directory: set --state-dir (or HOME or XDG_STATE_HOME)")?;
    Ok((state.journal.or(job).unwrap_or(JournalKind::File), dir))
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
    let result = match &cli.command {
        Some(Command::Cache(command)) => cache_cmd::run(cli, command),
        None => rotate(cli, &cli.rotate).await,
        Some(Command::Rotate(args)) => rotate(cli, args).await,
        Some(Command::Status(args)) => status::status(cli, args).await,
        Some(Command::Journal(command)) => status::journal(cli, command).await,
        Some(Command::Plugin(PluginCommand::Inspect { path, key })) if oci_cmd::is_oci(path) => {
            let load = load_options(cli.no_cache, None);
            let reference = path.to_string_lossy();
            oci_cmd::inspect(
                &reference,
                key,
                &cli.registry,
                &load,
                cli.output,
                cli.verbose > 0,
            )
            .await
        }
        Some(Command::Plugin(PluginCommand::Inspect { path, .. })) => inspect(cli, path).await,
        Some(Command::Plugin(PluginCommand::Push { file, reference })) => {
            let load = load_options(cli.no_cache, None);
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

/// Rotates every selected user's key and prints the report(s).
async fn rotate(cli: &Cli, args: &RotateArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let mut plan = Plan::new(args, cli.no_cache)?;
    // Every plugin is loaded and checked, and every AWS option, before the
    // first IAM call: bad input anywhere touches nothing anywhere.
    let mut handlers = Vec::with_capacity(plan.targets.len());
    let mut loaded = std::collections::HashMap::new();
    for target in &mut plan.targets {
        let prefix = target.prefix();
        target
            .aws
            .check()
            .await
            .map_err(|e| anyhow::anyhow!("{prefix}{e}"))?;
        let path = oci_cmd::resolve_plugin(&target.plugin, &cli.registry, &mut target.load).await?;
        // Targets that share a plugin share its compiled, linked form.
        let key = (path.clone(), target.load.expected_sha256.clone());
        let plugin = match loaded.get(&key) {
            Some(plugin) => Plugin::clone(plugin),
            None => {
                let plugin = Plugin::load(&path, &target.load)?;
                loaded.insert(key, plugin.clone());
                plugin
            }
        };
        let handler = WasmHandler::new(plugin, std::mem::take(&mut target.sandbox)).await?;
        tracing::debug!(plugin = handler.name(), version = %handler.info().version, "plugin ready");
        handlers.push(Arc::new(handler));
    }
    let any_dry_run = plan.targets.iter().any(|t| t.options.dry_run);
    // A state directory that is not ours is bad input, found before AWS.
    let state = if plan.journal == JournalKind::File || !any_dry_run {
        Some(Arc::new(
            StateDir::open(&plan.state_dir).map_err(anyhow::Error::new)?,
        ))
    } else {
        None
    };
    let interrupt = Interrupt::default();
    stop_safely_on_signals(interrupt.clone());

    // Each target's account, and its users. Nothing runs yet (a turn is a
    // future not yet polled): an error here still leaves every key as it is.
    let mut turns = Vec::new();
    // (account, user) in lower case: IAM user names ignore case.
    let mut seen = std::collections::HashSet::new();
    let mut matched = std::collections::HashSet::new();
    let mut unlisted = false;
    let wanted = |user: &str| {
        plan.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o.eq_ignore_ascii_case(user)))
    };
    for (target, handler) in plan.targets.into_iter().zip(handlers) {
        let prefix = target.prefix();
        let named: Option<Vec<String>> = match &target.users {
            Users::Named(users) => Some(users.iter().filter(|u| wanted(u)).cloned().collect()),
            Users::All { .. } => None,
        };
        for user in named.iter().flatten() {
            matched.insert(user.to_ascii_lowercase());
        }
        // A target that cannot be reached fails its own users, not the run.
        let known_account = target.aws.role_arn.as_deref().and_then(account_of_role);
        let failed_users = named.clone();
        let failed = |why: String| -> Vec<fleet::Turn> {
            let users = match (&failed_users, &target.users) {
                (Some(users), _) => users.clone(),
                (None, Users::All { path_prefix }) => vec![format!("{path_prefix}*")],
                (None, Users::Named(_)) => Vec::new(),
            };
            users
                .iter()
                .map(|user| {
                    fleet::Turn::Done(Box::new(failed_before(
                        user,
                        known_account.as_deref(),
                        why.clone(),
                    )))
                })
                .collect()
        };
        let config = target.aws.load().await;
        let iam = AwsIam::from_config(&config);
        let caller = match caller_identity(&config).await {
            Ok(caller) => caller,
            Err(err) => {
                unlisted |= named.is_none();
                turns.extend(failed(format!(
                    "{prefix}cannot tell which AWS account these credentials belong to \
                     (sts:GetCallerIdentity): {err}; nothing was changed"
                )));
                continue;
            }
        };
        tracing::info!(
            "{prefix}acting as {} in account {}",
            caller.arn,
            caller.account
        );
        let users = match (named, &target.users) {
            (Some(users), _) => users,
            (None, Users::All { path_prefix }) => match iam.list_users(path_prefix).await {
                Ok(users) => {
                    if users.is_empty() {
                        tracing::warn!(
                            "{prefix}account {} has no IAM user under path {path_prefix}",
                            caller.account
                        );
                    }
                    let users: Vec<String> = users.into_iter().filter(|u| wanted(u)).collect();
                    for user in &users {
                        matched.insert(user.to_ascii_lowercase());
                    }
                    users
                }
                Err(err) => {
                    unlisted = true;
                    turns.extend(failed(format!(
                        "{prefix}cannot list the users under {path_prefix} in account {} \
                         (iam:ListUsers): {err}; nothing was changed",
                        caller.account
                    )));
                    continue;
                }
            },
            (None, Users::Named(_)) => Vec::new(),
        };
        for user in &users {
            // Two rotations of one user would fight over its keys.
            if !seen.insert((caller.account.clone(), user.to_ascii_lowercase())) {
                bail!(
                    "user {user} of account {} is selected twice (by two targets, or in two \
                     spellings: IAM user names ignore case); each user may be rotated once per \
                     run (nothing was rotated)",
                    caller.account
                );
            }
        }
        // In a fleet, a user that does not exist is bad input, found before
        // any user's key changes.
        if !plan.single {
            let unknown = fleet::unknown_users(&iam, &users, plan.concurrency).await;
            if !unknown.is_empty() {
                bail!(
                    "{prefix}no such IAM user in account {}: {} (nothing was rotated)",
                    caller.account,
                    unknown.join(", ")
                );
            }
        }

        let journal: Arc<dyn Journal> = match (plan.journal, &state) {
            (JournalKind::File, Some(state)) => Arc::new(state.journal(Some(&caller.account))),
            _ => Arc::new(IamTagJournal::new(
                Arc::new(iam.clone()),
                IamTagJournal::DEFAULT_LEASE,
            )),
        };
        let dry_run = target.options.dry_run;
        let account = caller.account.clone();
        let mut rotator = KeyRotator::new(iam, handler)
            .with_options(target.options)
            .with_interrupt(interrupt.clone())
            .with_journal(journal)
            .with_caller(caller);
        if target.verify {
            rotator = rotator.with_verifier(Arc::new(StsVerifier::new(&config)));
        }
        let rotator = Arc::new(rotator);
        for user in users {
            let lock_in = (!dry_run).then(|| state.clone()).flatten();
            turns.push(fleet::Turn::Run {
                account: account.clone(),
                user: user.clone(),
                rotate: Box::pin(rotate_user(
                    rotator.clone(),
                    lock_in,
                    plan.wait_lock,
                    account.clone(),
                    user,
                )),
            });
        }
    }
    // A name `--user` picked that no target has (unless a target could not
    // be listed: it may be there).
    if let Some(only) = &plan.only
        && !unlisted
    {
        let missing: Vec<&str> = only
            .iter()
            .filter(|name| !matched.contains(&name.to_ascii_lowercase()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "not in any of the job file's targets: {} (nothing was rotated)",
                missing.join(", ")
            );
        }
    }

    let progress = fleet::Progress::new(cli, turns.len(), !plan.single);
    let reports = fleet::run(turns, plan.concurrency, &interrupt, &progress).await;
    progress.finish();
    if plan.single && reports.len() == 1 {
        return Ok(print_report(cli, &reports[0]));
    }
    let summary = FleetSummary::of(&reports, started.elapsed().as_millis() as u64);
    Ok(print_fleet(cli, &reports, &summary))
}

/// One user's rotation: under the (account, user) lock on this machine
/// (the IAM-tag journal adds a lease across machines).
async fn rotate_user(
    rotator: Arc<KeyRotator<AwsIam, Arc<WasmHandler>>>,
    state: Option<Arc<StateDir>>,
    wait_lock: Option<Duration>,
    account: String,
    user: String,
) -> RotationReport {
    let _lock = match state {
        Some(state) => {
            let (a, u) = (account.clone(), user.clone());
            // Waiting for a lock blocks: not on the runtime's threads.
            let locked =
                tokio::task::spawn_blocking(move || state.lock(Some(&a), &u, wait_lock)).await;
            match locked {
                Ok(Ok(lock)) => Some(lock),
                Ok(Err(err)) => return failed_before(&user, Some(&account), err.to_string()),
                Err(err) => {
                    return failed_before(&user, Some(&account), format!("lock failed: {err}"));
                }
            }
        }
        None => None,
    };
    match rotator.rotate_keys(&user).await {
        Ok(report) => report,
        Err(err) => *err.report,
    }
}

/// Prints a fleet's report and returns its exit code.
fn print_fleet(cli: &Cli, reports: &[RotationReport], summary: &FleetSummary) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let printed = match cli.output {
        Output::Text => render::fleet_text(&mut stdout, reports, summary),
        Output::Json => render::fleet_json(
            &mut stdout,
            reports,
            summary,
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

/// The account id in a role ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
fn account_of_role(arn: &str) -> Option<String> {
    arn.split(':').nth(4).map(str::to_string)
}

/// A report for a run that stopped before its first IAM call.
fn failed_before(user: &str, account: Option<&str>, error: String) -> RotationReport {
    let mut report = RotationReport::new(user);
    report.account = account.map(str::to_string);
    report.outcome = Outcome::Failed;
    report.error = Some(error);
    report
}

/// Prints the report and returns its exit code. The keys may have changed
/// by now: failing to print must not hide the outcome's exit code.
fn print_report(cli: &Cli, report: &RotationReport) -> u8 {
    let code = report.outcome.exit_code();
    let mut stdout = std::io::stdout().lock();
    let printed = match cli.output {
        Output::Text => render::text(&mut stdout, report),
        // The plugin's log can hold whatever it chose to write (redaction
        // catches only literal secrets): in the report only when asked for.
        Output::Json => {
            render::rotation_json(&mut stdout, report, cli.plugin_log == PluginLogMode::Show)
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
