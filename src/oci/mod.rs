//! Handlers shared through OCI registries, in the CNCF Wasm OCI artifact
//! layout that `wkg oci`, wasmCloud and containerd use: an OCI image
//! manifest whose config is `application/vnd.wasm.config.v0+json`
//! (architecture `wasm`, os `wasip2`, the layer digests, the component's
//! imports and exports) and exactly one `application/wasm` layer.
//!
//! A registry is not trusted with anything it could abuse:
//!
//! - a plugin is pulled by manifest digest and every byte is checked
//!   against it; a tag is resolved by hashing the manifest bytes the
//!   registry sends, never by believing a digest it names, and `push`
//!   reports the digest of the manifest bytes it uploaded;
//! - every digest is checked ([`digest::Digest`]) before it names a file,
//!   a URL or a tag;
//! - every body has a size cap ([`MAX_MANIFEST_BYTES`],
//!   [`MAX_CONFIG_BYTES`], [`MAX_COMPONENT_BYTES`], a layer exactly its
//!   descriptor's size) and every operation a deadline
//!   ([`RegistryOptions::timeout`]);
//! - credentials are scoped to one registry ([`auth`]) and go only where
//!   [`registry`]'s rules allow;
//! - whatever a registry says is escaped before it reaches a terminal.
//!
//! Pulled artifacts are kept content-addressed in a private directory
//! under the cache (`oci/blobs/<algorithm>/<hex>`, through
//! [`crate::fsutil`]), so a second run with the same digest needs no
//! registry. Signatures live in [`sign`].

pub mod auth;
pub mod digest;
mod registry;
pub mod sign;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use oci_client::Reference;
use serde::{Deserialize, Serialize};

pub use self::digest::Digest;
use self::digest::{Algorithm, Hasher};
use self::registry::Client;

/// The config media type of a Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// An OCI image manifest's own media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The scheme that marks a plugin reference as an OCI one.
pub const SCHEME: &str = "oci://";

/// No manifest keyrot reads is near this (one of keyrot's is ~400 bytes).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// A Wasm artifact's config (imports and exports) is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The largest component keyrot pulls (a Python one is ~18 MB). The
/// layer is streamed to disk, so this bounds disk, not memory.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;
/// How long one registry operation (resolve, pull, push, fetch or push
/// signatures) may take unless `--registry-timeout` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a registry operation failed. Nothing has touched IAM yet.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference cannot be parsed.
    #[error(
        "'{reference}' is not a valid OCI reference ({reason}); expected oci://REGISTRY/REPO:TAG[@sha256:DIGEST]"
    )]
    BadReference {
        /// What was given, any password in it redacted.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry could not be reached or refused the request.
    #[error("registry {registry}: {action} failed: {cause}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What keyrot was doing.
        action: &'static str,
        /// What went wrong (escaped).
        cause: String,
    },
    /// The registry wants credentials keyrot does not have, or refused
    /// the ones it sent.
    #[error("registry {registry}: {action} was refused: {hint}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What keyrot was doing.
        action: &'static str,
        /// Why, and what to do.
        hint: String,
    },
    /// The registry named a token service keyrot will not send its
    /// credentials to.
    #[error(
        "registry {registry} asked keyrot to get a token from {realm}: refusing, since {reason}"
    )]
    TokenRealm {
        /// The registry host.
        registry: String,
        /// The token service's URL (escaped).
        realm: String,
        /// Why, and which flag would allow it.
        reason: String,
    },
    /// `KEYROT_REGISTRY_*` are set inconsistently.
    #[error("{0}")]
    Credentials(String),
    /// An operation ran out of time.
    #[error(
        "registry {registry}: {operation} did not finish within {after}: giving up; if the \
         registry is only slow, raise --registry-timeout (`registry-timeout` in a job file)",
        after = seconds(*after)
    )]
    Deadline {
        /// The registry host.
        registry: String,
        /// Which operation.
        operation: String,
        /// The deadline.
        after: Duration,
    },
    /// The registry does not have what was asked for.
    #[error("no {what} in {repository} on {registry}")]
    NotFound {
        /// `artifact with digest sha256:…`, `tag 1.0`.
        what: String,
        /// The repository.
        repository: String,
        /// The registry host.
        registry: String,
    },
    /// The registry sent more than keyrot reads.
    #[error("{what} from {reference} is larger than {limit}: refusing it")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The reference or registry.
        reference: String,
        /// The cap.
        limit: String,
    },
    /// What the registry returned does not match the pinned digest.
    #[error("{what} from {reference} has digest {actual}, not {expected}: refusing it")]
    DigestMismatch {
        /// Manifest or layer.
        what: &'static str,
        /// The reference.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came back.
        actual: String,
    },
    /// The artifact is not a Wasm component artifact keyrot can run.
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What is wrong with it (escaped).
        reason: String,
    },
    /// A cache file could not be written.
    #[error("plugin cache {}: {cause}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The cache directory is not private.
    #[error(
        "the plugin cache {} is not safe to use: {cause}; keyrot keeps pulled plugins only \
         where nobody else can write (set KEYROT_CACHE_DIR to a directory of yours, mode 0700)",
        path.display()
    )]
    UnsafeCache {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A signing key or signature problem (see [`sign`]).
    #[error("{0}")]
    Signature(String),
}

/// `30s`, `2.5s`, `3m`.
fn seconds(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{}s", ms as f64 / 1000.0),
    }
}

/// Registry-supplied text made safe to show: control characters escaped
/// (see [`crate::text`]), cut to 512 bytes.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    let cut = crate::text::truncate(text, 512);
    let escaped = crate::text::escape_control(cut);
    if cut.len() < text.len() {
        Cow::Owned(format!("{escaped}…"))
    } else {
        escaped
    }
}

/// `oci://REGISTRY/REPO[:TAG][@sha256:DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRef {
    /// Registry host, with its port if any.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The manifest digest, if pinned.
    pub digest: Option<Digest>,
}

impl OciRef {
    /// Whether a plugin argument names an OCI artifact rather than a file.
    pub fn is_oci(plugin: &str) -> bool {
        plugin.starts_with(SCHEME)
    }

    /// This reference pinned to `digest`.
    pub fn with_digest(&self, digest: &Digest) -> OciRef {
        OciRef {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The tag, `latest` if none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The registry host without its port.
    fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map_or(r, |(host, _)| host)
    }

    /// Loopback registries may speak plain HTTP: `localhost` or a loopback
    /// address written out (`127.0.0.1`, not `127.1`).
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `s` with any `USER:PASSWORD@` before the registry host replaced, so a
/// reference is never echoed with a password in it.
pub fn redact(s: &str) -> String {
    let (scheme, rest) = match s.strip_prefix(SCHEME) {
        Some(rest) => (SCHEME, rest),
        None => ("", s),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
        None => s.to_string(),
    }
}

impl FromStr for OciRef {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            reference: shown(&redact(s)).into_owned(),
            reason: reason.to_string(),
        };
        let rest = s.strip_prefix(SCHEME).unwrap_or(s);
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(&format!(
                "it carries credentials before the host: keyrot never takes them from a \
                 reference; set {} and {} with {}, or use `docker login`",
                auth::USER_VAR,
                auth::PASSWORD_VAR,
                auth::HOST_VAR
            )));
        }
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no registry host"))?;
        if !registry.contains(['.', ':']) && registry != "localhost" {
            return Err(bad("the first part must be a registry host, e.g. ghcr.io"));
        }
        if path.is_empty() {
            return Err(bad("no repository"));
        }
        let parsed: Reference = rest.parse().map_err(|e| bad(&shown(&format!("{e}"))))?;
        let digest = match parsed.digest() {
            Some(d) => Some(
                d.parse::<Digest>()
                    .map_err(|why| bad(&format!("bad digest: {why}")))?,
            ),
            None => None,
        };
        let tag_given = path
            .split('@')
            .next()
            .is_some_and(|p| p.rsplit('/').next().is_some_and(|last| last.contains(':')));
        Ok(OciRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: tag_given.then(|| parsed.tag().unwrap_or_default().to_string()),
            digest,
        })
    }
}

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Hosts (HOST[:PORT], as in the reference) that may be reached over
    /// plain HTTP, credentials included; loopback registries always may.
    pub insecure: Vec<String>,
    /// Token services (HOST[:PORT]) on another host than their registry
    /// that may receive the registry's credentials (`--registry-token-host`).
    pub token_hosts: Vec<String>,
    /// The deadline of each registry operation.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            token_hosts: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RegistryOptions {
    /// Whether `reference`'s registry is reached over plain HTTP.
    fn plain_http(&self, reference: &OciRef) -> bool {
        reference.is_loopback()
            || self
                .insecure
                .iter()
                .any(|h| auth::same_registry(h, &reference.registry))
    }
}

/// Runs one registry operation within the deadline, naming it if it runs
/// out of time. Whatever it was writing is dropped (a temp file removed).
pub(crate) async fn within<T>(
    options: &RegistryOptions,
    reference: &OciRef,
    operation: String,
    work: impl Future<Output = Result<T, OciError>>,
) -> Result<T, OciError> {
    tokio::time::timeout(options.timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(OciError::Deadline {
                registry: reference.registry.clone(),
                operation,
                after: options.timeout,
            })
        })
}

/// The config of a Wasm OCI artifact (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for components.
    pub os: String,
    /// The layer digests, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// What the component imports and exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// The component part of [`WasmConfig`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Imported interfaces.
    pub imports: Vec<String>,
    /// Exported interfaces.
    pub exports: Vec<String>,
}

/// A content descriptor in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest, as keyrot writes and reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// An OCI image manifest of `config` and `layers`, serialized: the
    /// exact bytes to push, whose digest is the one to pin.
    pub(crate) fn serialize(config: Descriptor, layers: Vec<Descriptor>) -> Vec<u8> {
        serde_json::to_vec(&ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config,
            layers,
        })
        .expect("a manifest serializes")
    }
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub(crate) fn of(media_type: &str, bytes: &[u8]) -> (Descriptor, Digest) {
        let digest = Digest::sha256(bytes);
        (
            Descriptor {
                media_type: media_type.into(),
                digest: digest.to_string(),
                size: bytes.len() as u64,
                annotations: None,
            },
            digest,
        )
    }
}

/// Pushes a component to `reference`'s tag; returns the digest of the
/// manifest bytes it uploaded (whatever the registry says about it).
/// `imports`/`exports` describe it in the config, for other tools.
pub async fn push(
    wasm: Vec<u8>,
    imports: Vec<String>,
    exports: Vec<String>,
    reference: &OciRef,
    options: &RegistryOptions,
) -> Result<Digest, OciError> {
    let (layer, layer_digest) = Descriptor::of(WASM_LAYER_MEDIA_TYPE, &wasm);
    let config = serde_json::to_vec(&WasmConfig {
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer_digest.to_string()],
        component: Some(ComponentInfo { imports, exports }),
    })
    .expect("the config serializes");
    let (config_descriptor, config_digest) = Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config);
    let manifest = ImageManifest::serialize(config_descriptor, vec![layer]);
    let digest = Digest::sha256(&manifest);
    let tag = reference.tag_or_latest();
    within(
        options,
        reference,
        format!("pushing to {reference}"),
        async {
            let mut client = Client::new(reference, options, true)?;
            client.upload(&config_digest, config.into()).await?;
            client.upload(&layer_digest, wasm.into()).await?;
            let said = client
                .put_manifest(tag, manifest, OCI_MANIFEST_MEDIA_TYPE)
                .await?;
            if let Some(said) = said
                && said != digest.to_string()
            {
                tracing::warn!(
                    "registry {} says the manifest keyrot pushed has digest {}; keyrot pins the \
                 digest of the bytes it sent, {digest}",
                    reference.registry,
                    shown(&said)
                );
            }
            Ok(())
        },
    )
    .await?;
    Ok(digest)
}

/// A component pulled (or found in the cache), checked against its digest.
#[derive(Clone, Debug, Serialize)]
pub struct Pulled {
    /// The reference, pinned to the manifest digest.
    pub reference: String,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The component's sha256 (hex), for `--plugin-sha256`.
    pub component_sha256: String,
    /// The component file in the cache.
    pub path: PathBuf,
    /// Served from the cache without asking the registry.
    pub from_cache: bool,
}

/// The content-addressed store: `<cache>/oci/blobs/<algorithm>/<hex>`, every
/// level a private directory, every file read and written through
/// [`crate::fsutil`].
#[derive(Clone, Debug)]
pub struct Store {
    cache: PathBuf,
}

impl Store {
    /// The store under a cache directory.
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            cache: cache_dir.to_path_buf(),
        }
    }

    /// The directory for `algorithm`, made or checked private from the
    /// cache directory down; an unsafe one is refused.
    fn dir(&self, algorithm: Algorithm) -> Result<PathBuf, OciError> {
        let rel = Path::new("oci/blobs").join(algorithm.name());
        crate::fsutil::ensure_private_tree(&self.cache, &rel).map_err(|cause| {
            OciError::UnsafeCache {
                path: self.cache.clone(),
                cause,
            }
        })
    }

    /// Where the blob with this digest is kept.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.cache
            .join("oci/blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// The blob with this digest, if stored, private and intact, at most
    /// `max` bytes; anything else is treated as absent (and replaced by
    /// the next pull).
    fn get(&self, digest: &Digest, max: u64) -> Option<Vec<u8>> {
        let path = self.path(digest);
        match crate::fsutil::read_private(&path, max) {
            Ok(bytes) if &Digest::of(digest.algorithm(), &bytes) == digest => Some(bytes),
            Ok(_) => {
                tracing::warn!(
                    "ignoring {}: its bytes do not match its name",
                    path.display()
                );
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", path.display());
                None
            }
        }
    }

    /// The stored component with this digest, checked as it is read;
    /// returns its path and sha256 (hex).
    fn component(&self, digest: &Digest) -> Option<(PathBuf, String)> {
        if let Err(e) = self.dir(digest.algorithm()) {
            tracing::warn!("{e}");
            return None;
        }
        let path = self.path(digest);
        let checked = (|| {
            let (mut file, _) = crate::fsutil::open_private(&path, MAX_COMPONENT_BYTES)?;
            let mut hasher = Hasher::new(digest.algorithm());
            let mut sha256 = Hasher::new(Algorithm::Sha256);
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                sha256.update(&buf[..n]);
            }
            Ok::<_, std::io::Error>((hasher.finish(), sha256.finish()))
        })();
        match checked {
            Ok((actual, sha256)) if &actual == digest => Some((path, sha256.hex().to_string())),
            Ok(_) => {
                tracing::warn!(
                    "ignoring {}: its bytes do not match its name",
                    path.display()
                );
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", path.display());
                None
            }
        }
    }

    /// Stores bytes under their sha256 (atomically, 0600 in a 0700 dir).
    fn put(&self, bytes: &[u8]) -> Result<PathBuf, OciError> {
        let digest = Digest::sha256(bytes);
        let dir = self.dir(digest.algorithm())?;
        let path = self.path(&digest);
        crate::fsutil::write_atomic(&dir, &path, bytes).map_err(|cause| OciError::Cache {
            path: path.clone(),
            cause,
        })?;
        Ok(path)
    }
}

/// Resolves a tag to the digest of the manifest bytes the registry sends
/// for it (never a digest the registry names).
pub async fn resolve(reference: &OciRef, options: &RegistryOptions) -> Result<Digest, OciError> {
    let tag = reference.tag_or_latest();
    let operation = format!("resolving the tag {tag} of {reference}");
    within(options, reference, operation, async {
        let mut client = Client::new(reference, options, false)?;
        let raw = client
            .manifest(tag, MAX_MANIFEST_BYTES)
            .await?
            .ok_or_else(|| OciError::NotFound {
                what: format!("tag {tag}"),
                repository: reference.repository.clone(),
                registry: reference.registry.clone(),
            })?;
        Ok(Digest::sha256(&raw))
    })
    .await
}

/// Fetches the manifest `digest` names, checks its bytes against it and
/// the Wasm artifact layout.
async fn fetch_manifest(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
) -> Result<(Vec<u8>, WasmArtifact), OciError> {
    let shown_ref = reference.with_digest(digest).to_string();
    let raw = client
        .manifest(&digest.to_string(), MAX_MANIFEST_BYTES)
        .await?
        .ok_or_else(|| OciError::NotFound {
            what: format!("artifact with digest {digest}"),
            repository: reference.repository.clone(),
            registry: reference.registry.clone(),
        })?;
    let actual = Digest::of(digest.algorithm(), &raw);
    if &actual != digest {
        return Err(OciError::DigestMismatch {
            what: "the manifest",
            reference: shown_ref,
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let artifact = check_manifest(&shown_ref, &raw)?;
    Ok((raw, artifact))
}

/// Checks that `digest` names a Wasm component artifact in the registry;
/// what `sign` does before it signs.
async fn check_remote(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
) -> Result<(), OciError> {
    fetch_manifest(client, reference, digest).await.map(|_| ())
}

/// Pulls the component pinned by `reference`'s digest, checks every byte
/// against it and the Wasm artifact layout, and stores it; a digest already
/// in the store is used without asking the registry.
pub async fn pull(
    reference: &OciRef,
    options: &RegistryOptions,
    store: &Store,
) -> Result<Pulled, OciError> {
    let digest = reference
        .digest
        .clone()
        .expect("pull needs a digest: resolve the tag first");
    let shown_ref = reference.to_string();
    // An unsafe cache is refused before anything is read from it.
    store.dir(digest.algorithm())?;
    if let Some(manifest) = store.get(&digest, MAX_MANIFEST_BYTES)
        && let Ok(artifact) = check_manifest(&shown_ref, &manifest)
        && let Some((path, sha256)) = store.component(&artifact.layer)
    {
        tracing::debug!(reference = %shown_ref, "plugin found in the cache");
        return Ok(Pulled {
            reference: shown_ref,
            manifest_digest: digest.to_string(),
            component_sha256: sha256,
            path,
            from_cache: true,
        });
    }

    let operation = format!("pulling {shown_ref}");
    let layer = within(options, reference, operation, async {
        let mut client = Client::new(reference, options, false)?;
        let (raw, artifact) = fetch_manifest(&mut client, reference, &digest).await?;
        let missing = |what: &str, d: &Digest| OciError::NotFound {
            what: format!("{what} with digest {d}"),
            repository: reference.repository.clone(),
            registry: reference.registry.clone(),
        };
        let config = client
            .blob(
                &artifact.config,
                artifact.config_size,
                MAX_CONFIG_BYTES,
                "the config",
                &shown_ref,
            )
            .await?
            .ok_or_else(|| missing("config", &artifact.config))?;
        check_config(&shown_ref, &config)?;

        let dir = store.dir(artifact.layer.algorithm())?;
        let path = store.path(&artifact.layer);
        let cache_err = |cause| OciError::Cache {
            path: path.clone(),
            cause,
        };
        let mut file = crate::fsutil::AtomicFile::create(&dir, &path).map_err(cache_err)?;
        client
            .blob_to(
                &artifact.layer,
                artifact.layer_size,
                &mut file,
                "the component layer",
                &shown_ref,
            )
            .await?
            .ok_or_else(|| missing("component layer", &artifact.layer))?;
        file.commit().map_err(cache_err)?;
        store.put(&raw)?;
        Ok(artifact.layer)
    })
    .await?;
    let (path, sha256) = store.component(&layer).ok_or_else(|| OciError::Cache {
        path: store.path(&layer),
        cause: std::io::Error::other("the component just stored cannot be read back"),
    })?;
    Ok(Pulled {
        reference: shown_ref,
        manifest_digest: digest.to_string(),
        component_sha256: sha256,
        path,
        from_cache: false,
    })
}

/// What a checked manifest names.
#[derive(Debug)]
struct WasmArtifact {
    config: Digest,
    config_size: u64,
    layer: Digest,
    layer_size: u64,
}

/// Checks a raw manifest is an OCI image manifest of the Wasm component
/// layout, with well-formed digests and sizes within the caps.
fn check_manifest(reference: &str, raw: &[u8]) -> Result<WasmArtifact, OciError> {
    let not_wasm = |reason: String| OciError::NotWasm {
        reference: reference.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| not_wasm("its manifest is not JSON".into()))?;
    match value.get("mediaType").and_then(|t| t.as_str()) {
        Some(OCI_MANIFEST_MEDIA_TYPE) => {}
        Some(OCI_INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE) => {
            return Err(not_wasm(
                "it is an image index (a list of manifests), not an image manifest".into(),
            ));
        }
        Some(DOCKER_MANIFEST_MEDIA_TYPE) => {
            return Err(not_wasm(
                "it is a Docker image manifest, not an OCI image manifest".into(),
            ));
        }
        Some(other) => {
            return Err(not_wasm(format!(
                "its manifest's media type is '{}', not '{OCI_MANIFEST_MEDIA_TYPE}'",
                shown(other)
            )));
        }
        None if value.get("manifests").is_some() => {
            return Err(not_wasm(
                "it is an image index (a list of manifests), not an image manifest".into(),
            ));
        }
        None => {
            return Err(not_wasm(format!(
                "its manifest does not say its media type; keyrot takes only \
                 '{OCI_MANIFEST_MEDIA_TYPE}'"
            )));
        }
    }
    let manifest: ImageManifest = serde_json::from_value(value).map_err(|e| {
        not_wasm(format!(
            "its manifest is not an OCI image manifest ({})",
            shown(&e.to_string())
        ))
    })?;
    if manifest.schema_version != 2 {
        return Err(not_wasm(format!(
            "its manifest has schema version {}, not 2",
            manifest.schema_version
        )));
    }
    if let Some(kind) = &manifest.artifact_type
        && kind != WASM_CONFIG_MEDIA_TYPE
        && kind != WASM_LAYER_MEDIA_TYPE
    {
        return Err(not_wasm(format!(
            "its artifact type is '{}', not a Wasm component",
            shown(kind)
        )));
    }
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(not_wasm(format!(
            "its config media type is '{}', not '{WASM_CONFIG_MEDIA_TYPE}'",
            shown(&manifest.config.media_type)
        )));
    }
    let config = manifest
        .config
        .digest
        .parse::<Digest>()
        .map_err(|why| not_wasm(format!("its config digest is not valid: {why}")))?;
    if manifest.config.size > MAX_CONFIG_BYTES {
        return Err(not_wasm(format!(
            "its config is {} bytes; keyrot reads at most {MAX_CONFIG_BYTES}",
            manifest.config.size
        )));
    }
    let layer = match manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => layer,
        [layer] => {
            return Err(not_wasm(format!(
                "its layer has media type '{}', not '{WASM_LAYER_MEDIA_TYPE}'",
                shown(&layer.media_type)
            )));
        }
        layers => {
            return Err(not_wasm(format!(
                "it has {} layers; a component artifact has exactly one \
                 '{WASM_LAYER_MEDIA_TYPE}' layer",
                layers.len()
            )));
        }
    };
    let layer_digest = layer
        .digest
        .parse::<Digest>()
        .map_err(|why| not_wasm(format!("its layer digest is not valid: {why}")))?;
    if layer.size == 0 || layer.size > MAX_COMPONENT_BYTES {
        return Err(not_wasm(format!(
            "its component is {} bytes; keyrot takes 1 to {MAX_COMPONENT_BYTES}",
            layer.size
        )));
    }
    Ok(WasmArtifact {
        config,
        config_size: manifest.config.size,
        layer: layer_digest,
        layer_size: layer.size,
    })
}

/// Checks a Wasm artifact's config: wasm/wasip2.
fn check_config(reference: &str, config: &[u8]) -> Result<(), OciError> {
    let parsed: WasmConfig = serde_json::from_slice(config).map_err(|e| OciError::NotWasm {
        reference: reference.to_string(),
        reason: format!(
            "its config is not a Wasm config ({})",
            shown(&e.to_string())
        ),
    })?;
    if parsed.architecture != "wasm" || parsed.os != "wasip2" {
        return Err(OciError::NotWasm {
            reference: reference.to_string(),
            reason: format!(
                "its config says architecture '{}', os '{}'; keyrot runs wasm/wasip2 components",
                shown(&parsed.architecture),
                shown(&parsed.os)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r: OciRef = format!("oci://127.0.0.1:5000/team/hello:1.0@{d}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/hello");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_ref().map(ToString::to_string), Some(d.clone()));
        assert!(r.is_loopback());
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/team/hello:1.0@{d}")
        );

        let r: OciRef = "oci://ghcr.io/octo/github".parse().unwrap();
        assert_eq!((r.tag, r.digest), (None, None));
        let r: OciRef = format!("oci://ghcr.io/octo/github@{d}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert!(!r.is_loopback());

        // oci-client parses no IPv6 literals, so [::1] cannot be named.
        for host in ["localhost:5000", "127.0.0.2"] {
            let r: OciRef = format!("oci://{host}/a/b:1").parse().unwrap();
            assert!(r.is_loopback(), "{host}");
        }
        let r: OciRef = "oci://registry.example:5000/a/b:1".parse().unwrap();
        assert!(!r.is_loopback());
        assert!("oci://hello:1.0".parse::<OciRef>().is_err());
        assert!("oci://ghcr.io/x@sha256:abc".parse::<OciRef>().is_err());
        let upper = format!("oci://ghcr.io/x@sha256:{}", "A".repeat(64));
        assert!(upper.parse::<OciRef>().is_err());
        let sha512 = format!("oci://ghcr.io/x@sha512:{}", "b".repeat(128));
        let r: OciRef = sha512.parse().unwrap();
        assert_eq!(r.to_string(), sha512);
    }

    #[test]
    fn a_password_in_a_reference_is_refused_and_never_echoed() {
        for given in [
            "oci://bob:hunter2@ghcr.io/octo/app:1",
            "oci://bob:hunter2@ghcr.io",
            "bob:hunter2@127.0.0.1:5000/a/b",
        ] {
            let err = given.parse::<OciRef>().unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("<redacted>@"), "{err}");
            assert!(err.contains("credentials"), "{err}");
        }
    }

    fn manifest(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn layer(t: &str) -> serde_json::Value {
        serde_json::json!({"mediaType": t, "digest": format!("sha256:{}", "b".repeat(64)), "size": 1})
    }

    fn wasm_manifest(config: &str, layers: Vec<serde_json::Value>) -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": config, "digest": format!("sha256:{}", "c".repeat(64)), "size": 1},
            "layers": layers,
        })
    }

    #[test]
    fn refuses_other_layouts() {
        let ok = wasm_manifest(WASM_CONFIG_MEDIA_TYPE, vec![layer(WASM_LAYER_MEDIA_TYPE)]);
        assert!(check_manifest("r", &manifest(ok.clone())).is_ok());
        let err = |v: serde_json::Value| check_manifest("r", &manifest(v)).unwrap_err().to_string();
        let cases = [
            (
                wasm_manifest(
                    "application/vnd.oci.image.config.v1+json",
                    vec![layer(WASM_LAYER_MEDIA_TYPE)],
                ),
                "config media type",
            ),
            (
                wasm_manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    vec![layer(WASM_LAYER_MEDIA_TYPE), layer(WASM_LAYER_MEDIA_TYPE)],
                ),
                "2 layers",
            ),
            (
                wasm_manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    vec![layer("application/octet-stream")],
                ),
                "media type",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": []}),
                "image index",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "manifests": []}),
                "image index",
            ),
            (
                {
                    let mut v = ok.clone();
                    v["mediaType"] = DOCKER_MANIFEST_MEDIA_TYPE.into();
                    v
                },
                "Docker image manifest",
            ),
            (
                {
                    let mut v = ok.clone();
                    v.as_object_mut().unwrap().remove("mediaType");
                    v
                },
                "does not say its media type",
            ),
            (
                {
                    let mut v = ok.clone();
                    v["artifactType"] = "application/vnd.cncf.helm.config.v1+json".into();
                    v
                },
                "artifact type",
            ),
            (
                {
                    let mut v = ok.clone();
                    v["layers"][0]["digest"] = "sha256:../../../../dev/zero".into();
                    v
                },
                "layer digest is not valid",
            ),
            (
                {
                    let mut v = ok.clone();
                    v["layers"][0]["size"] = (MAX_COMPONENT_BYTES + 1).into();
                    v
                },
                "keyrot takes 1 to",
            ),
            (
                {
                    let mut v = ok.clone();
                    v["config"]["mediaType"] = "\u{1b}[2J".into();
                    v
                },
                "\\u{1b}[2J",
            ),
        ];
        for (value, expected) in cases {
            let message = err(value);
            assert!(message.contains(expected), "{expected}: {message}");
            assert!(!message.contains('\u{1b}'), "{message:?}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(180)), "3m");
        assert_eq!(seconds(Duration::from_secs(2)), "2s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5s");
    }
}
