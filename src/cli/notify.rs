//! Reporters in the plan: the job file's `[[notify]]` blocks and the
//! `--notify` flags turned into checked reporter specs, then loaded and
//! described before any IAM call (bad input touches nothing), and called
//! once the run has ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use keyrot::grants::{
    AllowList, Grants, HeaderInjection, HostRule, SecretSource, parse_secret_arg,
};
use keyrot::host::{LoadOptions, Plugin, Sandbox, WasmReporter};
use keyrot::notify::{EventSet, Reporter};
use keyrot::{PluginLimits, Settings};

use super::args::{self, NotifyArgs, RotateArgs, split_name};
use super::job::{Job, NotifyJob};

/// One reporter, checked: its plugin, sandbox and events.
pub(super) struct ReporterSpec {
    name: String,
    plugin: PathBuf,
    load: LoadOptions,
    sandbox: Sandbox,
    on: EventSet,
}

/// The reporters of a run: the job's `[[notify]]` blocks, then `--notify`
/// flags, each `--notify-*` flag applied to the one it names.
pub(super) fn reporter_specs(
    args: &RotateArgs,
    job: &Job,
    job_path: Option<&str>,
    no_cache: bool,
) -> anyhow::Result<Vec<ReporterSpec>> {
    let flags = &args.notify;
    let mut blocks: Vec<(NotifyJob, bool)> =
        job.notify.iter().cloned().map(|b| (b, true)).collect();
    blocks.extend(flags.notify.iter().map(|plugin| {
        (
            NotifyJob {
                plugin: plugin.clone(),
                ..NotifyJob::default()
            },
            false,
        )
    }));
    let mut specs: Vec<ReporterSpec> = Vec::with_capacity(blocks.len());
    for (i, (block, from_job)) in blocks.into_iter().enumerate() {
        let name = match &block.name {
            Some(name) => name.trim().to_string(),
            None => block
                .plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let where_ = |key: &str| match (from_job, job_path) {
            (true, Some(path)) => format!("job file {path}: [[notify]] #{}: {key}", i + 1),
            _ => format!("--notify {}: {key}", block.plugin.display()),
        };
        if name.is_empty() || name.contains(':') {
            bail!(
                "{}: a reporter needs a name without ':' (set `name`)",
                where_("name")
            );
        }
        if specs.iter().any(|s| s.name == name) {
            bail!(
                "two reporters are named '{name}': give each [[notify]] block its own `name` \
                 (the --notify-* flags name reporters by it)"
            );
        }
        specs.push(spec(&block, name, flags, args, job, &where_, no_cache)?);
    }
    // Every --notify-* flag names a reporter of this run.
    let named: Vec<(&str, &String)> = [
        ("notify-on", &flags.notify_on),
        ("notify-config", &flags.notify_config),
        ("notify-secret", &flags.notify_secret),
        ("notify-allow-host", &flags.notify_allow_host),
    ]
    .into_iter()
    .flat_map(|(flag, values)| values.iter().map(move |v| (flag, v)))
    .collect();
    for (flag, value) in named {
        let (name, _) = split_name(flag, value).map_err(anyhow::Error::msg)?;
        if !specs.iter().any(|s| s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "--{flag} names reporter '{}', which this run does not have ({})",
                keyrot::text::escape_control(name),
                if known.is_empty() {
                    "add it with --notify PLUGIN or a [[notify]] block".to_string()
                } else {
                    format!("its reporters: {}", known.join(", "))
                }
            );
        }
    }
    if flags.notify_required && specs.is_empty() {
        bail!("--notify-required needs a reporter: add --notify PLUGIN or a [[notify]] block");
    }
    Ok(specs)
}

/// The values of `--notify-FLAG NAME:VALUE` flags for reporter `name`.
fn for_reporter<'a>(values: &'a [String], name: &str) -> impl Iterator<Item = &'a str> {
    values.iter().filter_map(move |v| {
        let (n, rest) = v.split_once(':')?;
        (n.trim() == name).then_some(rest)
    })
}

fn spec(
    block: &NotifyJob,
    name: String,
    flags: &NotifyArgs,
    args: &RotateArgs,
    job: &Job,
    where_: &dyn Fn(&str) -> String,
    no_cache: bool,
) -> anyhow::Result<ReporterSpec> {
    // Events: the flag over the block; an unknown one is bad input.
    let on_flag: Vec<&str> = for_reporter(&flags.notify_on, &name)
        .flat_map(|v| v.split(','))
        .collect();
    let on = if !on_flag.is_empty() {
        EventSet::parse(on_flag).map_err(|e| anyhow::anyhow!("--notify-on {name}: {e}"))?
    } else if let Some(on) = &block.on {
        EventSet::parse(on.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("{}: {e}", where_("on")))?
    } else {
        EventSet::default()
    };

    // Settings and secrets: the flags' over the block's, per name.
    let mut config = block.config.clone();
    for value in for_reporter(&flags.notify_config, &name) {
        let (key, value) = args::parse_key_value(value)
            .map_err(|e| anyhow::anyhow!("--notify-config {name}: {e}"))?;
        config.insert(key, value);
    }
    let job_settings: Vec<String> = block
        .config
        .keys()
        .filter(|k| config.get(*k) == block.config.get(*k))
        .cloned()
        .collect();
    let mut sources: BTreeMap<String, (SecretSource, bool)> = BTreeMap::new();
    for (key, source) in &block.secrets {
        let source: SecretSource = source
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", where_(&format!("[secrets] {key}"))))?;
        sources.insert(key.clone(), (source, true));
    }
    for value in for_reporter(&flags.notify_secret, &name) {
        let (key, source) =
            parse_secret_arg(value).map_err(|e| anyhow::anyhow!("--notify-secret {name}: {e}"))?;
        sources.insert(key, (source, false));
    }
    let mut secrets = Vec::with_capacity(sources.len());
    for (key, (source, from_job)) in sources {
        let value = source.resolve().map_err(|e| {
            if from_job {
                anyhow::anyhow!("{} ({source}): {e}", where_(&format!("[secrets] {key}")))
            } else {
                anyhow::anyhow!("--notify-secret {name}:{key} ({source}): {e}")
            }
        })?;
        secrets.push((key, value));
    }
    let settings = Settings::new(config)
        .with_secrets(secrets)
        .from_job_file(job_settings)
        .for_reporter(&name);

    // Grants: the block's hosts and headers, and the flags' hosts.
    let mut hosts = Vec::new();
    for host in &block.allow_hosts {
        hosts.push(
            host.parse::<HostRule>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", where_("allow-hosts")))?,
        );
    }
    for host in for_reporter(&flags.notify_allow_host, &name) {
        hosts.push(
            host.parse::<HostRule>()
                .map_err(|e| anyhow::anyhow!("--notify-allow-host {name}: {e}"))?,
        );
    }
    let allowed = AllowList::new(hosts);
    let mut headers = Vec::new();
    for spec in &block.inject_headers {
        let mut header = HeaderInjection::parse_as(spec, "inject-headers entry")
            .map_err(|e| anyhow::anyhow!("{}: {e}", where_("inject-headers")))?;
        header
            .bind(&allowed)
            .map_err(|e| anyhow::anyhow!("{}: {e}", where_("inject-headers")))?;
        headers.push(header);
    }

    // Limits: the block's, else the run's.
    let parse = |key: &str, text: &Option<String>, f: fn(&str) -> Result<_, String>| {
        text.as_deref()
            .map(|t| f(t).map_err(|e| anyhow::anyhow!("{}: {e}", where_(key))))
            .transpose()
    };
    let timeout = parse("timeout", &block.timeout, args::parse_duration)?;
    let memory = match &block.memory {
        Some(text) => {
            Some(args::parse_size(text).map_err(|e| anyhow::anyhow!("{}: {e}", where_("memory")))?)
        }
        None => None,
    };
    let limits = PluginLimits {
        timeout: timeout
            .or(args.timeout)
            .or(job.parsed.timeout)
            .unwrap_or(PluginLimits::DEFAULT_TIMEOUT),
        memory_bytes: memory
            .or(args.memory)
            .or(job.parsed.memory)
            .unwrap_or(PluginLimits::DEFAULT_MEMORY_BYTES),
    };
    let sha256 = match &block.plugin_sha256 {
        Some(hex) => {
            args::parse_sha256(hex)
                .map_err(|e| anyhow::anyhow!("{}: {e}", where_("plugin-sha256")))?;
            Some(hex.clone())
        }
        None => None,
    };
    Ok(ReporterSpec {
        name,
        plugin: block.plugin.clone(),
        load: LoadOptions::new(no_cache, sha256),
        sandbox: Sandbox {
            settings,
            // No directories and no AWS signing: a reporter sends messages.
            grants: Grants {
                hosts: allowed,
                headers,
                ..Grants::default()
            },
            limits,
            signer: None,
            witness: None,
        },
        on,
    })
}

/// Loads, checks and describes every reporter, before any IAM call.
pub(super) async fn load_reporters(specs: Vec<ReporterSpec>) -> anyhow::Result<Vec<Reporter>> {
    let mut reporters = Vec::with_capacity(specs.len());
    for spec in specs {
        let plugin = Plugin::load(&spec.plugin, &spec.load)
            .with_context(|| format!("reporter '{}'", spec.name))?;
        let reporter = WasmReporter::new(plugin, spec.sandbox)
            .await
            .with_context(|| format!("reporter '{}'", spec.name))?;
        tracing::debug!(reporter = %spec.name, plugin = reporter.name(), "reporter ready");
        reporters.push(Reporter {
            name: spec.name,
            on: spec.on,
            notifier: Arc::new(reporter),
        });
    }
    Ok(reporters)
}
