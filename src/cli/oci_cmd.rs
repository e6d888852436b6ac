//! `oci://` plugins on the command line: resolving a reference to a cached
//! component file before the plan loads it, and `keyrot plugin
//! push/sign/verify/inspect` for registries. The work is in [`keyrot::oci`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use keyrot::host::{CacheMode, LoadOptions, Plugin, PluginReport, WasmHandler};
use keyrot::oci::sign::{self, PublicKey};
use keyrot::oci::{OciRef, Pulled, RegistryOptions, Store};
use serde::Serialize;

use super::args::{InspectGrants, Output, RegistryArgs};
use super::render;

/// Where a plan's plugin comes from, and what it must carry.
#[derive(Debug, Default)]
pub(super) struct PluginSource {
    /// A file, or `oci://…`.
    pub spec: PathBuf,
    /// The reference came from a job file, where a tag alone is refused
    /// unless `allow_unpinned`.
    pub from_job: bool,
    pub allow_unpinned: bool,
    /// Public keys, one of which must have signed the artifact.
    pub keys: Vec<PathBuf>,
    /// The job file's `registry-timeout`; `--registry-timeout` wins over it.
    pub registry_timeout: Option<Duration>,
}

/// The registry options of the flags, with a job file's deadline under
/// the flag's.
fn options(args: &RegistryArgs, job_timeout: Option<Duration>) -> RegistryOptions {
    RegistryOptions {
        insecure: args.insecure_registry.clone(),
        token_hosts: args.registry_token_host.clone(),
        timeout: args
            .registry_timeout
            .or(job_timeout)
            .unwrap_or(keyrot::oci::DEFAULT_TIMEOUT),
    }
}

fn oci_spec(spec: &Path) -> Option<&str> {
    spec.to_str().filter(|s| OciRef::is_oci(s))
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    match CacheMode::user_default() {
        CacheMode::Dir(dir) => Ok(dir),
        CacheMode::Disabled => {
            bail!("no cache directory for oci:// plugins: set KEYROT_CACHE_DIR (or HOME)")
        }
    }
}

fn read_keys(keys: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    Ok(keys
        .iter()
        .map(|k| PublicKey::read(k))
        .collect::<Result<_, _>>()?)
}

/// The manifest digest of `reference`: its own, or the tag resolved (with
/// a warning to pin it).
async fn pin(reference: &OciRef, registry: &RegistryOptions) -> anyhow::Result<OciRef> {
    if reference.digest.is_some() {
        return Ok(reference.clone());
    }
    let digest = keyrot::oci::resolve(reference, registry).await?;
    let pinned = reference.with_digest(&digest);
    tracing::warn!(
        "{reference} is not pinned: it resolved to {digest}; pin it as {pinned} so a re-pushed tag \
         cannot change what runs"
    );
    Ok(pinned)
}

/// Turns the plan's plugin into a file to load: itself, or for `oci://`
/// the component pulled by digest into the cache (signature checked when
/// keys are given). Runs before any IAM call; every error is bad input.
pub(super) async fn resolve_plugin(
    source: &PluginSource,
    registry: &RegistryArgs,
    load: &mut LoadOptions,
) -> anyhow::Result<PathBuf> {
    let registry = options(registry, source.registry_timeout);
    let Some(spec) = oci_spec(&source.spec) else {
        if !source.keys.is_empty() {
            bail!(
                "--plugin-key checks registry signatures: the plugin must be an oci:// reference, \
                 not the file {} (pin a file with --plugin-sha256)",
                source.spec.display()
            );
        }
        return Ok(source.spec.clone());
    };
    let reference: OciRef = spec.parse()?;
    if reference.digest.is_none() && source.from_job && !source.allow_unpinned {
        let hint = match keyrot::oci::resolve(&reference, &registry).await {
            Ok(digest) => format!(
                "pin it as `plugin = \"{}\"`",
                reference.with_digest(&digest)
            ),
            Err(_) => "pin it with @sha256:DIGEST (`keyrot plugin inspect` prints it)".into(),
        };
        bail!(
            "the job file's plugin {reference} names a tag, not a digest: refusing it, since a \
             re-pushed tag would change what runs; {hint}, or set `allow-unpinned = true`"
        );
    }
    let keys = read_keys(&source.keys)?;
    let pinned = pin(&reference, &registry).await?;
    let cache = cache_dir()?;
    let pulled = keyrot::oci::pull(&pinned, &registry, &Store::new(&cache)).await?;
    if pulled.from_cache {
        tracing::info!("plugin {} from the cache", pulled.reference);
    } else {
        tracing::info!("pulled plugin {}", pulled.reference);
    }
    if !keys.is_empty() {
        let digest = pinned.digest.as_ref().expect("pinned");
        let verified = sign::verify(&pinned, digest, &keys, &registry, &cache).await?;
        tracing::info!(
            "plugin {} is signed by {}{}",
            pulled.reference,
            verified.key.display(),
            if verified.from_cache {
                " (signature from the cache: the registry is unreachable)"
            } else {
                ""
            }
        );
    }
    // Plugin::load checks the file against this digest as it reads it, so
    // nothing can swap the cached file in between; --plugin-sha256, if
    // given, must agree with it.
    match &load.expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&pulled.component_sha256) => bail!(
            "plugin {} has component sha256 {}, not the pinned --plugin-sha256 {expected}: \
             refusing to run it",
            pulled.reference,
            pulled.component_sha256
        ),
        _ => load.expected_sha256 = Some(pulled.component_sha256.clone()),
    }
    Ok(pulled.path)
}

/// `keyrot plugin push FILE REF`: prints the digest of the manifest it
/// uploaded (computed from those bytes, never taken from the registry).
pub(super) async fn push(
    file: &Path,
    reference: &str,
    registry: &RegistryArgs,
    load: &LoadOptions,
    output: Output,
) -> anyhow::Result<u8> {
    let reference: OciRef = reference.parse()?;
    if reference.digest.is_some() {
        bail!("push to a tag ({reference} names a digest): the digest is that of what is pushed");
    }
    let registry = options(registry, None);
    // Only a component keyrot can run is worth publishing.
    let plugin = Plugin::load(file, load)?;
    let wasm =
        std::fs::read(file).with_context(|| format!("cannot read plugin '{}'", file.display()))?;
    let digest = keyrot::oci::push(
        wasm,
        plugin.imports().to_vec(),
        plugin.exports().to_vec(),
        &reference,
        &registry,
    )
    .await?;
    let pinned = reference.with_digest(&digest);
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Text | Output::Csv | Output::Prometheus => writeln!(stdout, "{digest}")?,
        Output::Json => render::json(
            &mut stdout,
            &serde_json::json!({
                "reference": pinned.to_string(),
                "manifest_digest": digest.to_string(),
            }),
        )?,
    }
    tracing::info!(
        "pushed {pinned}; sign exactly this with `keyrot plugin sign {pinned} --key cosign.key`"
    );
    Ok(0)
}

/// `keyrot plugin sign REF@DIGEST --key cosign.key` (password in
/// COSIGN_PASSWORD). Only a digest is signed: a tag names whatever the
/// registry says it names, and a signature must cover what the publisher
/// pushed, not what a registry chose.
pub(super) async fn sign(
    reference: &str,
    key: &Path,
    registry: &RegistryArgs,
) -> anyhow::Result<u8> {
    let reference: OciRef = reference.parse()?;
    let registry = options(registry, None);
    let Some(digest) = reference.digest.clone() else {
        let now = match keyrot::oci::resolve(&reference, &registry).await {
            Ok(digest) => format!(
                " (the tag names {digest} now: sign {} only if that is what you pushed)",
                reference.with_digest(&digest)
            ),
            Err(_) => String::new(),
        };
        bail!(
            "keyrot plugin sign signs a digest, never a tag, since whoever controls the registry \
             chooses what a tag names: sign the digest `keyrot plugin push` printed, \
             {reference}@sha256:…{now}"
        );
    };
    let private = zeroize::Zeroizing::new(
        std::fs::read(key).with_context(|| format!("cannot read key {}", key.display()))?,
    );
    let password = zeroize::Zeroizing::new(std::env::var("COSIGN_PASSWORD").unwrap_or_default());
    sign::sign(
        &reference,
        &digest,
        &private,
        password.as_bytes(),
        &registry,
    )
    .await?;
    println!("signed {reference}");
    Ok(0)
}

/// `keyrot plugin verify REF --key cosign.pub`.
pub(super) async fn verify(
    reference: &str,
    keys: &[PathBuf],
    registry: &RegistryArgs,
) -> anyhow::Result<u8> {
    let reference: OciRef = reference.parse()?;
    let registry = options(registry, None);
    let keys = read_keys(keys)?;
    let pinned = pin(&reference, &registry).await?;
    let digest = pinned.digest.clone().expect("pinned");
    let verified = sign::verify(&pinned, &digest, &keys, &registry, &cache_dir()?).await?;
    println!("verified {pinned}: signed by {}", verified.key.display());
    Ok(0)
}

/// What `inspect` adds for an `oci://` plugin.
#[derive(Serialize)]
struct OciInspect {
    #[serde(flatten)]
    plugin: PluginReport,
    oci: OciDetails,
}

#[derive(Serialize)]
struct OciDetails {
    reference: String,
    manifest_digest: String,
    /// Signatures at the `.sig` tag; `None` if the registry is unreachable.
    signatures: Option<usize>,
    /// Which of the `--key`s signed it.
    signed_by: Vec<PathBuf>,
}

/// `keyrot plugin inspect oci://…`: the plugin, plus where it came from
/// and its signature status.
pub(super) async fn inspect(
    reference: &str,
    keys: &[PathBuf],
    registry: &RegistryArgs,
    load: &LoadOptions,
    grants: &InspectGrants,
    output: Output,
    verbose: bool,
) -> anyhow::Result<u8> {
    let reference: OciRef = reference.parse()?;
    let registry = options(registry, None);
    let keys = read_keys(keys)?;
    let pinned = pin(&reference, &registry).await?;
    let pulled: Pulled = keyrot::oci::pull(&pinned, &registry, &Store::new(&cache_dir()?)).await?;
    let digest = pinned.digest.as_ref().expect("pinned");
    let (signatures, signed_by) = match sign::status(&pinned, digest, &keys, &registry).await {
        Ok((n, by)) => (Some(n), by),
        Err(err) => {
            tracing::warn!("cannot read the signatures: {err}");
            (None, Vec::new())
        }
    };
    let plugin = Plugin::load(&pulled.path, load)?;
    let mut plugin = WasmHandler::inspect(plugin).await?;
    super::inspect::check_fit(&mut plugin, grants);
    let report = OciInspect {
        plugin,
        oci: OciDetails {
            reference: pulled.reference,
            manifest_digest: pulled.manifest_digest,
            signatures,
            signed_by,
        },
    };
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Text | Output::Csv | Output::Prometheus => {
            render::inspect_text(&mut stdout, &report.plugin, verbose)?;
            let oci = &report.oci;
            writeln!(stdout, "registry:")?;
            writeln!(stdout, "  reference        {}", oci.reference)?;
            writeln!(stdout, "  manifest digest  {}", oci.manifest_digest)?;
            let status = match (oci.signatures, oci.signed_by.as_slice()) {
                (None, _) => "unknown (the registry did not answer)".to_string(),
                (Some(0), _) => "unsigned".to_string(),
                (Some(n), []) if keys.is_empty() => {
                    format!("{n} signature(s), not checked (pass --key cosign.pub)")
                }
                (Some(n), []) => format!("{n} signature(s), none by the keys given"),
                (Some(n), by) => format!(
                    "{n} signature(s); verified with {}",
                    by.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            writeln!(stdout, "  signatures       {status}")?;
        }
        Output::Json => render::json(&mut stdout, &report)?,
    }
    stdout.flush()?;
    Ok(super::inspect::exit_code(&report.plugin))
}

/// Whether `inspect`'s argument is an OCI reference.
pub(super) fn is_oci(path: &Path) -> bool {
    oci_spec(path).is_some()
}
