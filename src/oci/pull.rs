//! Getting a plugin from a registry: [`resolve`] a tag to the digest of
//! the manifest bytes sent for it, and [`pull`] a pinned artifact into the
//! [`Store`], every byte checked against its digest and the layout first.

use std::path::PathBuf;

use serde::Serialize;

use super::layout::{WasmArtifact, check_config, check_manifest};
use super::options::within;
use super::registry::Client;
use super::{
    Digest, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OciError, OciRef, RegistryOptions, Store,
};

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
            .ok_or_else(|| not_found(reference, format!("tag {tag}")))?;
        Ok(Digest::sha256(&raw))
    })
    .await
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
    if let Some((path, sha256)) = stored_component(store, &digest, &shown_ref) {
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
        download(&mut client, reference, &digest, store).await
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

/// The component of the manifest `digest`, if the store holds both intact
/// and the manifest still passes the layout checks: its path and sha256.
fn stored_component(store: &Store, digest: &Digest, shown_ref: &str) -> Option<(PathBuf, String)> {
    let manifest = store.get(digest, MAX_MANIFEST_BYTES)?;
    let artifact = check_manifest(shown_ref, &manifest).ok()?;
    store.component(&artifact.layer)
}

/// Fetches and checks the manifest `digest` names, its config and its
/// layer (streamed into the store), then stores the manifest: last, so
/// the store never holds a manifest whose component did not arrive whole.
/// Returns the layer's digest.
async fn download(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
    store: &Store,
) -> Result<Digest, OciError> {
    let (raw, artifact) = fetch_manifest(client, reference, digest).await?;
    fetch_config(client, reference, &artifact).await?;
    fetch_layer_into(store, client, reference, &artifact).await?;
    store.put(&raw)?;
    Ok(artifact.layer)
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
        .ok_or_else(|| not_found(reference, format!("artifact with digest {digest}")))?;
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
pub(super) async fn check_remote(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
) -> Result<(), OciError> {
    fetch_manifest(client, reference, digest).await.map(|_| ())
}

/// Fetches the artifact's config (at most [`MAX_CONFIG_BYTES`], checked
/// against its digest) and checks it is a wasm/wasip2 one.
async fn fetch_config(
    client: &mut Client<'_>,
    reference: &OciRef,
    artifact: &WasmArtifact,
) -> Result<(), OciError> {
    let shown_ref = reference.to_string();
    let config = client
        .blob(
            &artifact.config,
            artifact.config_size,
            MAX_CONFIG_BYTES,
            "the config",
            &shown_ref,
        )
        .await?
        .ok_or_else(|| not_found(reference, format!("config with digest {}", artifact.config)))?;
    check_config(&shown_ref, &config)
}

/// Streams the artifact's layer into the store under its digest: written
/// to a temporary file, checked as it arrives, and put in place only whole
/// and intact.
async fn fetch_layer_into(
    store: &Store,
    client: &mut Client<'_>,
    reference: &OciRef,
    artifact: &WasmArtifact,
) -> Result<(), OciError> {
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
            &reference.to_string(),
        )
        .await?
        .ok_or_else(|| {
            not_found(
                reference,
                format!("component layer with digest {}", artifact.layer),
            )
        })?;
    file.commit().map_err(cache_err)
}

/// The registry does not have `what` in `reference`'s repository.
fn not_found(reference: &OciRef, what: String) -> OciError {
    OciError::NotFound {
        what,
        repository: reference.repository.clone(),
        registry: reference.registry.clone(),
    }
}
