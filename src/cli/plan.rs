//! The plan: flags, the job file and defaults turned into one checked
//! plan before anything touches AWS (ripgrep's low-level arguments made
//! high-level). Flags override the job file (every target of it); settings
//! and secrets override per name; grants from both are combined. Bad input
//! fails here, naming the flag or the job file's key at fault.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use keyrot::fleet::{self, Fleet, JournalChoice, Target, Unreached, Users};
use keyrot::grants::{
    AllowList, AwsSigning, DirGrant, Grants, HeaderInjection, HostCa, HostRule, SecretSource,
    SigningIdentity, parse_secret_arg,
};
use keyrot::host::{AwsSigner, LoadOptions, Plugin, Sandbox, WasmHandler};
use keyrot::rotation::DrainPolicy;
use keyrot::{
    AwsOptions, IamTagJournal, Interrupt, PluginLimits, RotateOptions, Settings, StateDir,
};

use super::args::{self, JournalKind, RotateArgs, StateArgs};
use super::job::Job;
use super::oci_cmd;
use super::org::OrgPlan;
use keyrot::org::{Place, Rule};

/// What to do, checked: everything that can be known wrong before touching
/// AWS is rejected here. Flags override the job file (every target of it);
/// settings and secrets override per name; grants from both are combined.
pub(super) struct Plan {
    pub targets: Vec<TargetSpec>,
    /// With a job file's `[[target]]` blocks, `--user`/`--users-file` pick
    /// which of their users to rotate.
    only: Option<Vec<String>>,
    journal: JournalKind,
    state_dir: PathBuf,
    wait_lock: Option<Duration>,
    concurrency: usize,
    /// One user named once (`--user` or the job's `user`): today's report
    /// shape, not the fleet's.
    pub single: bool,
    /// An organization run: its scope, role and exemptions.
    pub org: Option<OrgPlan>,
    /// The reporters told about the run, checked but not loaded yet.
    pub reporters: Vec<super::notify::ReporterSpec>,
    /// A failed reporter fails the run's exit code (`--notify-required`).
    pub notify_required: bool,
    /// Where the run's outcomes go as metrics (`--metrics-file`).
    pub metrics_file: Option<PathBuf>,
}

/// One set of users and everything their rotations share: plugin,
/// sandbox, AWS options and rotation options.
pub(super) struct TargetSpec {
    /// How messages name it: empty for a job without `[[target]]` blocks.
    label: String,
    users: Users,
    plugin: oci_cmd::PluginSource,
    load: LoadOptions,
    sandbox: Sandbox,
    pub aws: AwsOptions,
    options: RotateOptions,
    verify: bool,
    /// Which accounts of an organization it covers (`Anywhere` outside
    /// organization runs).
    place: Place,
}

impl Plan {
    pub fn new(args: &RotateArgs, no_cache: bool) -> anyhow::Result<Self> {
        let job = match &args.job {
            Some(path) => Job::load(path)?,
            None => Job::default(),
        };
        let job_path = args.job.as_deref().map(|p| p.display().to_string());
        let (journal, state_dir) = state_options(&args.state, job.journal)?;
        let concurrency = args
            .concurrency
            .or(job.parsed.concurrency)
            .unwrap_or(Fleet::DEFAULT_CONCURRENCY);
        let org = OrgPlan::new(&args.org, &args.aws, &job, job_path.as_deref(), concurrency)?;
        let flag_users = flag_users(args, org.is_some())?;
        let fleet_job = !job.target.is_empty();
        let only = match (&flag_users, fleet_job || org.is_some()) {
            (Some(Users::All { .. }), true) if org.is_some() => bail!(
                "--all-users is implied in an organization run: every user of each account \
                 is taken (narrow with --path-prefix, or pick some with --user)"
            ),
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
                let label = target_label(&target, i, fleet_job);
                let users = match &org {
                    Some(_) => Some(org_users(args, &target, &label, &job_path)?),
                    None if fleet_job => None,
                    None => flag_users.clone(),
                };
                let mut spec =
                    TargetSpec::new(args, target, label, &job_path, users, &state_dir, no_cache)?;
                match &org {
                    // Members are entered through the org role; the flags'
                    // external id and session name are that role's.
                    Some(org) => spec.aws = org.home_aws(std::mem::take(&mut spec.aws)),
                    None if spec.place != Place::Anywhere => bail!(
                        "job file {}: {}: `ous` and `accounts` choose accounts of an \
                         organization: add an [org] table (or pass --org)",
                        job_path.as_deref().unwrap_or("?"),
                        spec.label
                    ),
                    None => {}
                }
                Ok(spec)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let reporters = super::notify::reporter_specs(args, &job, job_path.as_deref(), no_cache)?;
        let mut targets = targets;
        for target in &mut targets {
            // Reporters are told each old key's last use: one more IAM call
            // per key, only when someone is told.
            target.options.read_last_use = !reporters.is_empty();
        }
        let single = org.is_none() && is_single(args, &job);
        let metrics_file = args.metrics_file.clone().or(job.metrics_file.clone());
        if let Some(path) = &metrics_file {
            super::metrics::check_writable(path)?;
        }
        let mut org = org;
        if let Some(org) = &mut org {
            // Exemptions ending soon are warned about within the widest
            // window any target gives.
            org.run.screen.warn_within = targets
                .iter()
                .filter_map(|t: &TargetSpec| t.options.warn_within)
                .max();
        }
        Ok(Self {
            targets,
            only,
            journal,
            state_dir,
            wait_lock: args.wait_lock,
            concurrency,
            single,
            org,
            reporters,
            notify_required: args.notify.notify_required,
            metrics_file,
        })
    }

    /// The organization run's rules: each target's place, path and policy.
    pub fn rules(&self) -> Vec<Rule> {
        self.targets
            .iter()
            .map(|t| Rule {
                label: t.label.clone(),
                place: t.place.clone(),
                path_prefix: match &t.users {
                    Users::All { path_prefix } => path_prefix.clone(),
                    _ => "/".into(),
                },
                options: t.options.clone(),
                verify: t.verify,
            })
            .collect()
    }
}

/// How messages name a job's target `i`: `target NAME`, `target #2`, or
/// nothing in a job without `[[target]]` blocks.
pub(super) fn target_label(target: &Job, i: usize, fleet_job: bool) -> String {
    match (&target.name, fleet_job) {
        (_, false) => String::new(),
        (Some(name), true) => format!("target {name}"),
        (None, true) => format!("target #{}", i + 1),
    }
}

/// A target's users in an organization run: every user under its path
/// (`--path-prefix` over the target's), never names: names pick among them
/// with `--user`.
fn org_users(
    args: &RotateArgs,
    target: &Job,
    label: &str,
    job_path: &Option<String>,
) -> anyhow::Result<Users> {
    let in_job = |key: &str| {
        JobKey {
            path: job_path.as_deref(),
            label,
        }
        .name(key)
    };
    if target.user.is_some() || !target.users.is_empty() || target.users_file.is_some() {
        bail!(
            "{}: an organization run takes every user of each account under a path \
             (path-prefix); pick some by name with --user",
            in_job("user, users, users-file")
        );
    }
    let path_prefix = args
        .path_prefix
        .clone()
        .or_else(|| target.path_prefix.clone())
        .unwrap_or_else(|| "/".into());
    fleet::check_path_prefix(&path_prefix).map_err(|e| anyhow::anyhow!("--path-prefix: {e}"))?;
    Ok(Users::All { path_prefix })
}

impl TargetSpec {
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
            registry_timeout: job.parsed.registry_timeout,
        };
        let job_key = JobKey {
            path: job_path.as_deref(),
            label: &label,
        };
        let in_job = |key: &str| job_key.name(key);
        let users = match flag_users {
            Some(users) => users,
            // Without a job file, the flags are all there is to name.
            None if job_path.is_none() => job_users(&job).map_err(|_| {
                anyhow::anyhow!(
                    "no user given: pass --user NAME (repeatable), --users-file FILE or \
                     --all-users"
                )
            })?,
            None => job_users(&job).map_err(|e| anyhow::anyhow!("{}", in_job(&e)))?,
        };

        let settings = settings(args, &job, &in_job)?;
        let grants = grants(args, &job, &in_job, state_dir)?;
        let values = &job.parsed;
        let limits = PluginLimits {
            timeout: args
                .timeout
                .or(values.timeout)
                .unwrap_or(PluginLimits::DEFAULT_TIMEOUT),
            memory_bytes: args
                .memory
                .or(values.memory)
                .unwrap_or(PluginLimits::DEFAULT_MEMORY_BYTES),
        };
        let older_than = args.older_than.or(values.older_than);
        let warn_within = args.warn_within.or(values.warn_within);
        if warn_within.is_some() && older_than.is_none() {
            bail!(
                "--warn-within (warn-within, warn-age) warns before a key reaches \
                 --older-than (older-than, max-age): give that too"
            );
        }
        let place = super::org::place_of(&job)
            .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("ous, accounts")))?;
        let options = RotateOptions {
            retire: args
                .retire
                .map(Into::into)
                .or(job.retire)
                .unwrap_or_default(),
            older_than,
            warn_within,
            verify_timeout: args
                .verify_timeout
                .or(values.verify_timeout)
                .unwrap_or(RotateOptions::DEFAULT_VERIFY_TIMEOUT),
            dry_run: args.dry_run,
            drain: DrainPolicy {
                quiet: args
                    .drain_quiet
                    .or(values.drain_quiet)
                    .unwrap_or(DrainPolicy::DEFAULT_QUIET),
                grace: args
                    .drain_grace
                    .or(values.drain_grace)
                    .unwrap_or(DrainPolicy::DEFAULT_GRACE),
                timeout: args
                    .drain_timeout
                    .or(values.drain_timeout)
                    .unwrap_or(DrainPolicy::DEFAULT_TIMEOUT),
                force: args.force,
            },
            // Set by the plan once it knows whether reporters are told.
            read_last_use: false,
        };
        let sha256 = match &args.plugin_sha256 {
            Some(hex) => Some(check_sha256(hex, "--plugin-sha256")?),
            None => values.plugin_sha256.clone(),
        };
        Ok(Self {
            label,
            users,
            plugin,
            options,
            verify: !args.no_verify && job.verify.unwrap_or(true),
            load: LoadOptions::new(no_cache, sha256),
            sandbox: Sandbox {
                settings,
                grants,
                limits,
                signer: None,
                witness: None,
            },
            aws: args.aws.clone().or(job.aws),
            place,
        })
    }

    /// The identity that signs the plugin's AWS requests, resolved with the
    /// target's own AWS options (its profile's or role's credentials assume
    /// the signing role; its endpoint and region apply), before any key.
    async fn signer(&self, prefix: &str) -> anyhow::Result<Arc<AwsSigner>> {
        let identity = &self.sandbox.grants.aws_signer;
        if let Some(profile) = &identity.profile {
            let named = AwsOptions {
                profile: Some(profile.clone()),
                ..AwsOptions::default()
            };
            named
                .check()
                .await
                .map_err(|e| anyhow::anyhow!("{prefix}--aws-sign-profile: {e}"))?;
        }
        let base = self.aws.load().await;
        AwsSigner::resolve(identity, &base)
            .await
            .map_err(|e| anyhow::anyhow!("{prefix}{e}"))
    }

    /// `"target prod: "`, or nothing for a job without targets.
    pub fn prefix(&self) -> String {
        if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        }
    }
}

/// Whether a run is about one user named once (`--user`, or the job's
/// `user`, and no fleet selection): it keeps the single report's shape.
pub(super) fn is_single(args: &RotateArgs, job: &Job) -> bool {
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
pub(super) fn state_options(
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
    args::parse_sha256(hex).map_err(|why| anyhow::anyhow!("{what} {why}"))?;
    Ok(hex.to_string())
}

/// IAM user names are 1-64 characters of letters, digits and `+=,.@_-`.
pub(super) fn check_user_name(user: &str) -> anyhow::Result<()> {
    fleet::check_user_name(user).map_err(anyhow::Error::msg)
}

/// The users the flags select, if any: `--user` (repeatable) and
/// `--users-file` together, or `--all-users`.
fn flag_users(args: &RotateArgs, org: bool) -> anyhow::Result<Option<Users>> {
    if args.path_prefix.is_some() && !args.all_users && !org {
        bail!("--path-prefix selects among all users: it needs --all-users (or --org)");
    }
    if args.all_users {
        let path_prefix = args.path_prefix.clone().unwrap_or_else(|| "/".into());
        fleet::check_path_prefix(&path_prefix)
            .map_err(|e| anyhow::anyhow!("--path-prefix: {e}"))?;
        return Ok(Some(Users::All { path_prefix }));
    }
    let mut names = Vec::new();
    for user in &args.user {
        check_user_name(user)?;
        names.push(user.clone());
    }
    if let Some(file) = &args.users_file {
        names.extend(fleet::read_users_file(file).map_err(anyhow::Error::msg)?);
    }
    Ok((!names.is_empty()).then(|| Users::Named(fleet::dedup(names))))
}

/// The users a job file (or one of its targets) selects. The error names
/// the key at fault, for the caller to place in the file.
fn job_users(job: &Job) -> Result<Users, String> {
    let mut names: Vec<String> = job.user.iter().chain(&job.users).cloned().collect();
    for name in &names {
        fleet::check_user_name(name).map_err(|e| format!("users: {e}"))?;
    }
    if let Some(file) = &job.users_file {
        names.extend(fleet::read_users_file(file).map_err(|e| format!("users-file: {e}"))?);
    }
    match job.all_users {
        Some(true) if !names.is_empty() => {
            Err("all-users = true cannot be combined with user, users or users-file".into())
        }
        Some(true) => {
            let path_prefix = job.path_prefix.clone().unwrap_or_else(|| "/".into());
            fleet::check_path_prefix(&path_prefix).map_err(|e| format!("path-prefix: {e}"))?;
            Ok(Users::All { path_prefix })
        }
        _ if job.path_prefix.is_some() => Err("path-prefix needs all-users = true".into()),
        _ if names.is_empty() => Err(
            "no user given: pass --user NAME, --users-file FILE or --all-users (or set user, \
             users, users-file or all-users in the job file)"
                .into(),
        ),
        _ => Ok(Users::Named(fleet::dedup(names))),
    }
}

impl Plan {
    /// Loads and checks every target's plugin, and its AWS options, before
    /// the first IAM call: bad input anywhere touches nothing anywhere.
    /// Targets that share a plugin share its compiled, linked form.
    pub async fn load_handlers(
        &mut self,
        registry: &super::args::RegistryArgs,
    ) -> anyhow::Result<Vec<Arc<WasmHandler>>> {
        let mut handlers = Vec::with_capacity(self.targets.len());
        let mut loaded = std::collections::HashMap::new();
        for target in &mut self.targets {
            let prefix = target.prefix();
            target
                .aws
                .check()
                .await
                .map_err(|e| anyhow::anyhow!("{prefix}{e}"))?;
            let path = oci_cmd::resolve_plugin(&target.plugin, registry, &mut target.load).await?;
            let key = (path.clone(), target.load.expected_sha256.clone());
            let plugin = match loaded.get(&key) {
                Some(plugin) => Plugin::clone(plugin),
                None => {
                    let plugin = Plugin::load(&path, &target.load)?;
                    loaded.insert(key, plugin.clone());
                    plugin
                }
            };
            if target.sandbox.grants.aws_signer.is_named() {
                target.sandbox.signer = Some(target.signer(&prefix).await?);
            }
            let sandbox = std::mem::take(&mut target.sandbox);
            let handler = WasmHandler::new(plugin, sandbox).await?;
            tracing::debug!(plugin = handler.name(), version = %handler.info().version, "plugin ready");
            handlers.push(Arc::new(handler));
        }
        Ok(handlers)
    }

    /// Where journals go. A state directory that is not ours is bad input,
    /// found before AWS; a dry run with the IAM journal needs none.
    pub fn journal(&self) -> anyhow::Result<JournalChoice> {
        let dry_run = self.targets.iter().all(|t| t.options.dry_run);
        Ok(match self.journal {
            JournalKind::File => JournalChoice::File(StateDir::open(&self.state_dir)?),
            JournalKind::Iam if !dry_run => {
                // Opened for its checks: an unusable one is reported now.
                StateDir::open(&self.state_dir)?;
                JournalChoice::IamTag {
                    lease: IamTagJournal::DEFAULT_LEASE,
                }
            }
            JournalKind::Iam => JournalChoice::IamTag {
                lease: IamTagJournal::DEFAULT_LEASE,
            },
        })
    }

    /// The fleet this plan runs, stopped by `interrupt`.
    pub fn fleet(&self, journal: JournalChoice, interrupt: Interrupt) -> Fleet {
        Fleet {
            journal,
            wait_lock: self.wait_lock,
            concurrency: self.concurrency,
            only: self.only.clone(),
            // A single user's rotation reports an unknown user itself.
            check_users: !self.single,
            name_users_in_logs: !self.single,
            interrupt,
        }
    }
}

impl TargetSpec {
    /// Reaches this target's account. One that cannot be reached fails its
    /// own users (the others go on), named by the role's account if known.
    pub async fn reach(self, handler: Arc<WasmHandler>) -> Target<Arc<WasmHandler>> {
        let account = match keyrot::aws::connect(&self.aws).await {
            Ok(account) => Ok(account.reached(self.verify)),
            Err(err) => Err(Unreached {
                account: self.aws.role_arn.as_deref().and_then(account_of_role),
                why: format!("{err}; nothing was changed"),
            }),
        };
        Target {
            label: self.label,
            users: self.users,
            handler,
            options: self.options,
            account,
            notes: Default::default(),
            screen: None,
        }
    }
}

/// How a job file's key is named in errors: `job file PATH: [target T: ]KEY`.
/// Values from the job file are named by their key there, not by the flag:
/// that is where the operator has to look.
struct JobKey<'a> {
    path: Option<&'a str>,
    label: &'a str,
}

impl JobKey<'_> {
    fn name(&self, key: &str) -> String {
        let target = if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        };
        format!("job file {}: {target}{key}", self.path.unwrap_or("?"))
    }
}

/// Settings from `--config` over the job's `[config]`, and secrets from
/// `--secret` over its `[secrets]`, each read from its source now.
fn settings(
    args: &RotateArgs,
    job: &Job,
    in_job: &dyn Fn(&str) -> String,
) -> anyhow::Result<Settings> {
    let mut config = job.config.clone();
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
            let source: SecretSource = source
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: {e}", in_job(&format!("[secrets] {name}"))))?;
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

    Ok(Settings::new(config)
        .with_secrets(secrets)
        .from_job_file(job_settings))
}

/// Hosts, directories, injected headers, signing and private CAs from the
/// job and the flags, combined and checked.
fn grants(
    args: &RotateArgs,
    job: &Job,
    in_job: &dyn Fn(&str) -> String,
    state_dir: &std::path::Path,
) -> anyhow::Result<Grants> {
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
    let (aws_sign, aws_signer) = aws_signing(args, job, in_job, &allowed)?;
    let job_cas = job.allow_host_cas.iter().map(|spec| {
        let mut ca = HostCa::parse_as(spec, "allow-host-cas entry")
            .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("allow-host-cas")))?;
        ca.bind(&allowed)
            .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("allow-host-cas")))?;
        Ok(ca)
    });
    let flag_cas = args.allow_host_ca.iter().map(|spec| {
        let mut ca = HostCa::parse(spec).map_err(anyhow::Error::msg)?;
        ca.bind(&allowed)
            .map_err(|e| anyhow::anyhow!("--allow-host-ca: {e}"))?;
        Ok(ca)
    });
    let host_cas = job_cas
        .chain(flag_cas)
        .collect::<anyhow::Result<Vec<_>>>()?;

    Ok(Grants {
        hosts: allowed,
        dirs,
        headers,
        aws_sign,
        aws_signer,
        host_cas,
    })
}

/// The hosts whose requests the host signs, and who signs: flags over the
/// job file, each host allowed.
fn aws_signing(
    args: &RotateArgs,
    job: &Job,
    in_job: &dyn Fn(&str) -> String,
    allowed: &AllowList,
) -> anyhow::Result<(Vec<AwsSigning>, SigningIdentity)> {
    let parse = |spec: &String, key: Option<&str>| {
        let mut rule = AwsSigning::parse(spec);
        if let Ok(rule) = &mut rule {
            rule.bind(allowed).map_err(|e| format!("--aws-sign: {e}"))?;
        }
        rule.map_err(|e| match key {
            Some(key) => format!("{}: {e}", in_job(key)),
            None => e,
        })
    };
    let rules = job
        .aws_sign
        .iter()
        .map(|spec| parse(spec, Some("aws-sign")))
        .chain(args.aws_sign.iter().map(|spec| parse(spec, None)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    // A role or a profile on the command line replaces the job's identity.
    let flags = args.aws_sign_role_arn.is_some() || args.aws_sign_profile.is_some();
    let identity = if flags {
        SigningIdentity {
            role_arn: args.aws_sign_role_arn.clone(),
            external_id: args.aws_sign_external_id.clone(),
            profile: args.aws_sign_profile.clone(),
        }
    } else {
        SigningIdentity {
            role_arn: job.aws_sign_role_arn.clone(),
            external_id: args
                .aws_sign_external_id
                .clone()
                .or_else(|| job.aws_sign_external_id.clone()),
            profile: job.aws_sign_profile.clone(),
        }
    };
    identity.check().map_err(anyhow::Error::msg)?;
    if let Some(arn) = &identity.role_arn
        && !keyrot::aws::is_role_arn(arn)
    {
        bail!(
            "--aws-sign-role-arn '{arn}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        );
    }
    match (rules.is_empty(), identity.is_named()) {
        (true, true) => bail!(
            "--aws-sign-role-arn and --aws-sign-profile name who signs for --aws-sign hosts: \
             add --aws-sign HOST for each AWS host the plugin writes to"
        ),
        (false, false) => bail!(
            "--aws-sign needs an identity to sign as: add --aws-sign-role-arn ARN (a role \
             keyrot assumes; never the user whose key is rotated) or --aws-sign-profile NAME"
        ),
        _ => {}
    }
    Ok((rules, identity))
}

/// The account id in a role ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
fn account_of_role(arn: &str) -> Option<String> {
    arn.split(':').nth(4).map(str::to_string)
}
