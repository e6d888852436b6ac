//! Handlers shared through OCI registries, in the CNCF Wasm OCI artifact
//! layout that `wkg oci`, wasmCloud and containerd use: an image manifest
//! whose config is `application/vnd.wasm.config.v0+json` (architecture
//! `wasm`, os `wasip2`, the layer digests, the component's imports and
//! exports) and exactly one `application/wasm` layer.
//!
//! A plugin is pulled by manifest digest, every byte checked against it, and
//! kept content-addressed under the cache directory (`oci/`), so a second
//! run with the same digest needs no registry. Signatures live in
//! [`sign`].

pub mod sign;

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The config media type of a Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The scheme that marks a plugin reference as an OCI one.
pub const SCHEME: &str = "oci://";

/// Why a registry operation failed. Nothing has touched IAM yet.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference cannot be parsed.
    #[error(
        "'{reference}' is not a valid OCI reference ({reason}); expected oci://REGISTRY/REPO:TAG[@sha256:DIGEST]"
    )]
    BadReference {
        /// What was given.
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
        /// The client's error.
        cause: String,
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
        /// What is wrong with it.
        reason: String,
    },
    /// A cache file could not be read or written.
    #[error("plugin cache {}: {cause}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A signing key or signature problem (see [`sign`]).
    #[error("{0}")]
    Signature(String),
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
    /// The manifest digest (`sha256:…`), if pinned.
    pub digest: Option<String>,
}

impl OciRef {
    /// Whether a plugin argument names an OCI artifact rather than a file.
    pub fn is_oci(plugin: &str) -> bool {
        plugin.starts_with(SCHEME)
    }

    /// This reference pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> OciRef {
        OciRef {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    fn client_ref(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => {
                Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone())
            }
            (None, tag) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }

    /// The tag's reference, for pushing.
    fn tag_ref(&self) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            self.tag.clone().unwrap_or_else(|| "latest".into()),
        )
    }

    /// The registry host without its port.
    fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map_or(r, |(host, _)| host)
    }

    /// Loopback registries may speak plain HTTP.
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

impl FromStr for OciRef {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s.strip_prefix(SCHEME).unwrap_or(s);
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no registry host"))?;
        if !registry.contains(['.', ':']) && registry != "localhost" {
            return Err(bad("the first part must be a registry host, e.g. ghcr.io"));
        }
        let parsed: Reference = rest.parse().map_err(|e| bad(&format!("{e}")))?;
        if let Some(digest) = parsed.digest()
            && !is_sha256_digest(digest)
        {
            return Err(bad("the digest must be sha256: followed by 64 hex digits"));
        }
        if path.is_empty() {
            return Err(bad("no repository"));
        }
        let tag_given = path
            .split('@')
            .next()
            .is_some_and(|p| p.rsplit('/').next().is_some_and(|last| last.contains(':')));
        Ok(OciRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: tag_given.then(|| parsed.tag().unwrap_or_default().to_string()),
            digest: parsed.digest().map(str::to_string),
        })
    }
}

fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Hosts (with port, as in the reference) that may be reached over
    /// plain HTTP; loopback registries always may.
    pub insecure: Vec<String>,
}

impl RegistryOptions {
    fn client(&self, reference: &OciRef) -> Client {
        let mut plain = self.insecure.clone();
        if reference.is_loopback() {
            plain.push(reference.registry.clone());
        }
        Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        })
    }

    fn sigstore_config(&self, reference: &OciRef) -> sigstore::registry::ClientConfig {
        let mut plain = self.insecure.clone();
        if reference.is_loopback() {
            plain.push(reference.registry.clone());
        }
        sigstore::registry::ClientConfig {
            protocol: sigstore::registry::ClientProtocol::HttpsExcept(plain),
            ..Default::default()
        }
    }
}

/// Credentials for `registry`: `KEYROT_REGISTRY_USER`/`_PASSWORD`, else the
/// Docker config (`auths` and `docker-credential-*` helpers), else none.
pub fn credentials(registry: &str) -> RegistryAuth {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(user), Some(password)) =
        (var("KEYROT_REGISTRY_USER"), var("KEYROT_REGISTRY_PASSWORD"))
    {
        return RegistryAuth::Basic(user, password);
    }
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        // `docker login` stores an identity token for registries that use
        // OAuth; oci-client cannot exchange it, so it is sent as a bearer
        // token, which registries that issue such tokens for direct use accept.
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(err) => {
            tracing::debug!(registry, %err, "no Docker credentials; pulling anonymously");
            RegistryAuth::Anonymous
        }
    }
}

fn registry_error(reference: &OciRef, action: &'static str, err: OciDistributionError) -> OciError {
    let cause = match &err {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            format!("cannot connect ({e})")
        }
        _ => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    };
    OciError::Registry {
        registry: reference.registry.clone(),
        action,
        cause,
    }
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

/// Pushes a component to `reference`'s tag; returns the manifest digest.
/// `imports`/`exports` describe it in the config, for other tools.
pub async fn push(
    wasm: Vec<u8>,
    imports: Vec<String>,
    exports: Vec<String>,
    reference: &OciRef,
    options: &RegistryOptions,
) -> Result<String, OciError> {
    let layer = ImageLayer::new(wasm, WASM_LAYER_MEDIA_TYPE.to_string(), None);
    let config = WasmConfig {
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.sha256_digest()],
        component: Some(ComponentInfo { imports, exports }),
    };
    let config = Config::new(
        serde_json::to_vec(&config).expect("the config serializes"),
        WASM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    let client = options.client(reference);
    let auth = credentials(&reference.registry);
    client
        .push(
            &reference.tag_ref(),
            &[layer],
            config,
            &auth,
            Some(manifest),
        )
        .await
        .map_err(|e| registry_error(reference, "push", e))?;
    let digest = client
        .fetch_manifest_digest(&reference.tag_ref(), &auth)
        .await
        .map_err(|e| registry_error(reference, "reading back the pushed manifest", e))?;
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

/// The content-addressed store: `<cache>/oci/blobs/sha256/<hex>`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store under a cache directory.
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            dir: cache_dir.join("oci/blobs/sha256"),
        }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    /// The blob with this digest, if stored and intact (a corrupted one is
    /// treated as absent).
    pub fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(digest)).ok()?;
        (sha256_digest(&bytes) == digest).then_some(bytes)
    }

    /// Stores a blob under its digest (atomically, 0600 in a 0700 dir).
    pub fn put(&self, bytes: &[u8]) -> Result<PathBuf, OciError> {
        let cache_err = |path: &Path| {
            let path = path.to_path_buf();
            move |cause| OciError::Cache { path, cause }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(cache_err(&self.dir))?;
        let path = self.path(&sha256_digest(bytes));
        let tmp = self.dir.join(format!(".tmp-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(cache_err(&tmp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(cache_err(&path))?;
        Ok(path)
    }
}

/// Resolves a tag to its manifest digest (asks the registry).
pub async fn resolve(reference: &OciRef, options: &RegistryOptions) -> Result<String, OciError> {
    let client = options.client(reference);
    let auth = credentials(&reference.registry);
    client
        .fetch_manifest_digest(&reference.client_ref(), &auth)
        .await
        .map_err(|e| registry_error(reference, "resolving the tag", e))
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
    let shown = reference.to_string();
    if let Some(manifest) = store.get(&digest)
        && let Ok((layer_digest, _)) = check_manifest(&shown, &manifest)
        && let Some(wasm) = store.get(&layer_digest)
    {
        tracing::debug!(reference = %shown, "plugin found in the cache");
        return Ok(Pulled {
            reference: shown,
            manifest_digest: digest,
            component_sha256: hex::encode(Sha256::digest(&wasm)),
            path: store.path(&layer_digest),
            from_cache: true,
        });
    }

    let client = options.client(reference);
    let auth = credentials(&reference.registry);
    let image = reference.client_ref();
    let (raw, _) = client
        .pull_manifest_raw(&image, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .map_err(|e| match e {
            OciDistributionError::DigestError(err) => OciError::DigestMismatch {
                what: "the manifest",
                reference: shown.clone(),
                expected: digest.clone(),
                actual: err.to_string(),
            },
            e => registry_error(reference, "pulling the manifest", e),
        })?;
    let actual = sha256_digest(&raw);
    if actual != digest {
        return Err(OciError::DigestMismatch {
            what: "the manifest",
            reference: shown,
            expected: digest,
            actual,
        });
    }
    let (layer_digest, manifest) = check_manifest(&shown, &raw)?;

    let mut config = Vec::new();
    client
        .pull_blob(&image, &manifest.config, &mut config)
        .await
        .map_err(|e| registry_error(reference, "pulling the config", e))?;
    check_blob(&shown, "the config", &manifest.config.digest, &config)?;
    let parsed: WasmConfig = serde_json::from_slice(&config).map_err(|e| OciError::NotWasm {
        reference: shown.clone(),
        reason: format!("its config is not a Wasm config ({e})"),
    })?;
    if parsed.architecture != "wasm" || parsed.os != "wasip2" {
        return Err(OciError::NotWasm {
            reference: shown,
            reason: format!(
                "its config says architecture '{}', os '{}'; keyrot runs wasm/wasip2 components",
                parsed.architecture, parsed.os
            ),
        });
    }

    let mut wasm = Vec::new();
    client
        .pull_blob(&image, &manifest.layers[0], &mut wasm)
        .await
        .map_err(|e| registry_error(reference, "pulling the component", e))?;
    check_blob(&shown, "the component layer", &layer_digest, &wasm)?;
    store.put(&raw)?;
    let path = store.put(&wasm)?;
    Ok(Pulled {
        reference: shown,
        manifest_digest: digest,
        component_sha256: hex::encode(Sha256::digest(&wasm)),
        path,
        from_cache: false,
    })
}

fn check_blob(
    reference: &str,
    what: &'static str,
    expected: &str,
    bytes: &[u8],
) -> Result<(), OciError> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(OciError::DigestMismatch {
            what,
            reference: reference.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Checks a raw manifest is a Wasm component artifact; returns its one
/// layer's digest.
fn check_manifest(reference: &str, raw: &[u8]) -> Result<(String, OciImageManifest), OciError> {
    let not_wasm = |reason: String| OciError::NotWasm {
        reference: reference.to_string(),
        reason,
    };
    let manifest: OciImageManifest = serde_json::from_slice(raw)
        .map_err(|e| not_wasm(format!("its manifest is not an OCI image manifest ({e})")))?;
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(not_wasm(format!(
            "its config media type is '{}', not '{WASM_CONFIG_MEDIA_TYPE}'",
            manifest.config.media_type
        )));
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => {
            if !is_sha256_digest(&layer.digest) {
                return Err(not_wasm(format!(
                    "its layer digest '{}' is not sha256",
                    layer.digest
                )));
            }
            Ok((layer.digest.clone(), manifest.clone()))
        }
        [layer] => Err(not_wasm(format!(
            "its layer has media type '{}', not '{WASM_LAYER_MEDIA_TYPE}'",
            layer.media_type
        ))),
        layers => Err(not_wasm(format!(
            "it has {} layers; a component artifact has exactly one '{WASM_LAYER_MEDIA_TYPE}' layer",
            layers.len()
        ))),
    }
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
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
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
    }

    #[test]
    fn refuses_other_layouts() {
        let layer = |t: &str| serde_json::json!({"mediaType": t, "digest": format!("sha256:{}", "b".repeat(64)), "size": 1});
        let manifest = |config: &str, layers: Vec<serde_json::Value>| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "config": {"mediaType": config, "digest": format!("sha256:{}", "c".repeat(64)), "size": 1},
                "layers": layers,
            }))
            .unwrap()
        };
        let ok = manifest(WASM_CONFIG_MEDIA_TYPE, vec![layer(WASM_LAYER_MEDIA_TYPE)]);
        assert!(check_manifest("r", &ok).is_ok());
        let err = |raw: Vec<u8>| check_manifest("r", &raw).unwrap_err().to_string();
        assert!(
            err(manifest(
                "application/vnd.oci.image.config.v1+json",
                vec![layer(WASM_LAYER_MEDIA_TYPE)]
            ))
            .contains("config media type")
        );
        assert!(
            err(manifest(
                WASM_CONFIG_MEDIA_TYPE,
                vec![layer(WASM_LAYER_MEDIA_TYPE), layer(WASM_LAYER_MEDIA_TYPE)]
            ))
            .contains("2 layers")
        );
        assert!(
            err(manifest(
                WASM_CONFIG_MEDIA_TYPE,
                vec![layer("application/octet-stream")]
            ))
            .contains("media type")
        );
    }
}
