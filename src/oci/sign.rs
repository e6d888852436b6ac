//! cosign-compatible, key-based signatures for plugin artifacts.
//!
//! A signature is cosign's: a simple-signing payload naming the manifest
//! digest, signed with an ECDSA P-256 key, stored as a layer of the
//! `sha256-<digest>.sig` tag beside the artifact, so `cosign verify --key`
//! accepts what `keyrot plugin sign` writes and the other way round.
//! Verification is offline: a public key, no transparency log, no
//! certificates (keyless signing is out of scope). Signatures verified once
//! are kept in the cache ([`crate::fsutil`], private) and checked again,
//! cryptographically, when the registry cannot be reached.
//!
//! The registry calls are `super::registry`'s, within the operation
//! deadline: at most `MAX_SIGNATURES` signatures are read, each payload
//! at most `MAX_PAYLOAD_BYTES` and checked against its digest. Signing
//! keeps the signatures already at the tag byte for byte (their layers are
//! reused, never re-serialized), and signs only a digest, after checking
//! the registry holds a Wasm component artifact under it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use sigstore::registry::OciReference;
use zeroize::Zeroizing;

use super::manifest::{DOCKER_MANIFEST_MEDIA_TYPE, Descriptor, ImageManifest};
use super::options::within;
use super::registry::Client;
use super::{
    Digest, MAX_MANIFEST_BYTES, OCI_MANIFEST_MEDIA_TYPE, OciError, OciRef, RegistryOptions,
};

/// A cosign signature layer's media type.
const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that carries a layer's signature.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Signatures read per artifact; more are ignored, with a warning.
const MAX_SIGNATURES: usize = 64;
/// A simple-signing payload is a few hundred bytes.
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// The cached signatures of one artifact.
const MAX_CACHE_BYTES: u64 = 1 << 20;

/// cosign's default (and only key-pair) scheme.
const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

/// A cosign key pair, PEM: the private key encrypted with a password, as
/// `cosign generate-key-pair` writes it.
pub struct KeyPair {
    /// `cosign.key`: encrypted, secret.
    pub private_pem: Zeroizing<String>,
    /// `cosign.pub`.
    pub public_pem: String,
}

/// Generates a cosign key pair (ECDSA P-256), the private key encrypted
/// with `password`.
pub fn generate_key_pair(password: &[u8]) -> Result<KeyPair, OciError> {
    let err = |e: sigstore::errors::SigstoreError| {
        OciError::Signature(format!("cannot generate a key pair: {e}"))
    };
    let signer = SCHEME.create_signer().map_err(err)?;
    let pair = signer.to_sigstore_keypair().map_err(err)?;
    Ok(KeyPair {
        private_pem: pair.private_key_to_encrypted_pem(password).map_err(err)?,
        public_pem: pair.public_key_to_pem().map_err(err)?,
    })
}

/// A public key to verify with, and where it came from (for messages).
pub struct PublicKey {
    /// The file it was read from.
    pub path: PathBuf,
    key: CosignVerificationKey,
}

impl PublicKey {
    /// Reads a PEM public key (`cosign.pub`).
    pub fn read(path: &Path) -> Result<PublicKey, OciError> {
        let pem = crate::input::read_regular(path, Some(64 * 1024)).map_err(|e| {
            OciError::Signature(format!("cannot read public key {}: {e}", path.display()))
        })?;
        let key = CosignVerificationKey::try_from_pem(&pem).map_err(|e| {
            OciError::Signature(format!(
                "{} is not a cosign public key (PEM): {e}",
                path.display()
            ))
        })?;
        Ok(PublicKey {
            path: path.to_path_buf(),
            key,
        })
    }
}

/// One signature: the simple-signing payload and its base64 signature.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSignature {
    payload: String,
    signature: String,
}

impl StoredSignature {
    /// Whether `key` signed this payload, and the payload names `digest`.
    fn signed_by(&self, key: &CosignVerificationKey, digest: &str) -> bool {
        let Ok(payload) = base64::engine::general_purpose::STANDARD.decode(&self.payload) else {
            return false;
        };
        if key
            .verify_signature(
                Signature::Base64Encoded(self.signature.as_bytes()),
                &payload,
            )
            .is_err()
        {
            return false;
        }
        serde_json::from_slice::<sigstore::cosign::payload::SimpleSigning>(&payload)
            .is_ok_and(|p| p.satisfies_manifest_digest(digest))
    }
}

/// The `.sig` tag of an artifact: cosign's convention.
fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.tag_form())
}

/// The layers of the signature manifest at `digest`'s `.sig` tag (empty
/// when unsigned).
async fn signature_layers(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
) -> Result<Vec<Descriptor>, OciError> {
    let Some(raw) = client
        .manifest(&signature_tag(digest), MAX_MANIFEST_BYTES)
        .await?
    else {
        return Ok(Vec::new());
    };
    let not_signatures = |why: String| {
        OciError::Signature(format!(
            "the signature tag of {} holds no signature manifest: {why}",
            reference.with_digest(digest)
        ))
    };
    let manifest: ImageManifest = serde_json::from_slice(&raw)
        .map_err(|e| not_signatures(super::shown(&e.to_string()).into_owned()))?;
    match manifest.media_type.as_deref() {
        None | Some(OCI_MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE) => {}
        Some(other) => {
            return Err(not_signatures(format!(
                "its media type is '{}'",
                super::shown(other)
            )));
        }
    }
    Ok(manifest.layers)
}

/// The signatures at an artifact's `.sig` tag, each payload fetched (at
/// most [`MAX_PAYLOAD_BYTES`]) and checked against its digest.
async fn fetch_signatures_with(
    client: &mut Client<'_>,
    reference: &OciRef,
    digest: &Digest,
) -> Result<Vec<StoredSignature>, OciError> {
    let shown_ref = format!("the signatures of {}", reference.with_digest(digest));
    let mut signatures = Vec::new();
    for layer in signature_layers(client, reference, digest).await? {
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let Some(signature) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        let Ok(payload_digest) = layer.digest.parse::<Digest>() else {
            tracing::warn!("ignoring a signature of {shown_ref}: its payload digest is not valid");
            continue;
        };
        if signatures.len() == MAX_SIGNATURES {
            tracing::warn!("reading only the first {MAX_SIGNATURES} signatures of {shown_ref}");
            break;
        }
        // One oversized signature must not hide the others.
        if layer.size > MAX_PAYLOAD_BYTES {
            tracing::warn!(
                "ignoring a signature of {shown_ref}: its payload is {} bytes, more than the \
                 {MAX_PAYLOAD_BYTES} a signature takes",
                layer.size
            );
            continue;
        }
        let payload = client
            .blob(
                &payload_digest,
                layer.size,
                MAX_PAYLOAD_BYTES,
                "a signature payload",
                &shown_ref,
            )
            .await?;
        if let Some(payload) = payload {
            signatures.push(StoredSignature {
                payload: base64::engine::general_purpose::STANDARD.encode(payload),
                signature: signature.clone(),
            });
        }
    }
    Ok(signatures)
}

/// [`fetch_signatures_with`] as one operation, within the deadline.
async fn fetch_signatures(
    reference: &OciRef,
    digest: &Digest,
    options: &RegistryOptions,
) -> Result<Vec<StoredSignature>, OciError> {
    let operation = format!(
        "fetching the signatures of {}",
        reference.with_digest(digest)
    );
    within(options, reference, operation, async {
        let mut client = Client::new(reference, options, false)?;
        fetch_signatures_with(&mut client, reference, digest).await
    })
    .await
}

/// Signs the manifest `digest` of `reference` with a cosign private key
/// (PEM, encrypted with `password`) and pushes the signature to the
/// `sha256-<digest>.sig` tag, keeping any signatures already there. Only a
/// digest is ever signed, never a tag, and only after checking that the
/// registry holds a Wasm component artifact under it.
pub async fn sign(
    reference: &OciRef,
    digest: &Digest,
    private_pem: &[u8],
    password: &[u8],
    options: &RegistryOptions,
) -> Result<(), OciError> {
    let pair = SigStoreKeyPair::from_encrypted_pem(private_pem, password).map_err(|e| {
        OciError::Signature(format!(
            "cannot decrypt the cosign private key (wrong COSIGN_PASSWORD?): {e}"
        ))
    })?;
    let signer = pair.to_sigstore_signer(&SCHEME).map_err(|e| {
        OciError::Signature(format!("the key is not an ECDSA P-256 cosign key: {e}"))
    })?;
    let repository = format!("{}/{}", reference.registry, reference.repository);
    let image: OciReference = repository
        .parse()
        .map_err(|e| OciError::Signature(format!("{e}")))?;
    let mut payload = sigstore::cosign::payload::SimpleSigning::new(&image, &digest.to_string());
    // cosign names the repository, without tag, as the signed identity.
    payload.critical.identity.docker_reference = repository;
    let payload = serde_json::to_vec(&payload).expect("the payload serializes");
    let signature = signer
        .sign(&payload)
        .map_err(|e| OciError::Signature(format!("cannot sign: {e}")))?;
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);

    let pinned = reference.with_digest(digest);
    within(options, reference, format!("signing {pinned}"), async {
        let mut client = Client::new(reference, options, true)?;
        super::pull::check_remote(&mut client, reference, digest).await?;
        let mut layers = signature_layers(&mut client, reference, digest).await?;
        let (mut layer, payload_digest) = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
        layer.annotations = Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            signature,
        )]));
        client.upload(&payload_digest, payload.into()).await?;
        // cosign's signature images have an empty OCI config.
        let config = b"{}".to_vec();
        let (config_layer, config_digest) =
            Descriptor::of("application/vnd.oci.image.config.v1+json", &config);
        client.upload(&config_digest, config.into()).await?;
        layers.push(layer);
        let manifest = ImageManifest::serialize(config_layer, layers);
        client
            .put_manifest(&signature_tag(digest), manifest, OCI_MANIFEST_MEDIA_TYPE)
            .await?;
        Ok(())
    })
    .await
}

/// What a verification found.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The key that signed it.
    pub key: PathBuf,
    /// Checked against signatures kept in the cache: the registry was down.
    pub from_cache: bool,
}

/// Checks that one of `keys` signed `digest`. Asks the registry for the
/// signatures; if it cannot be reached, uses the ones kept in
/// `cache_dir` from an earlier run (checked again with the keys).
pub async fn verify(
    reference: &OciRef,
    digest: &Digest,
    keys: &[PublicKey],
    options: &RegistryOptions,
    cache_dir: &Path,
) -> Result<Verified, OciError> {
    let (signatures, from_cache) = match fetch_signatures(reference, digest, options).await {
        Ok(signatures) => (signatures, false),
        Err(err) => match cached_signatures(cache_dir, digest) {
            Some(cached) => {
                tracing::warn!("{err}; checking the signatures cached from an earlier run");
                (cached, true)
            }
            None => return Err(err),
        },
    };
    let names = keys
        .iter()
        .map(|k| k.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let expected = digest.to_string();
    for key in keys {
        let valid: Vec<_> = signatures
            .iter()
            .filter(|s| s.signed_by(&key.key, &expected))
            .cloned()
            .collect();
        if !valid.is_empty() {
            if !from_cache {
                cache_signatures(cache_dir, digest, &valid);
            }
            return Ok(Verified {
                key: key.path.clone(),
                from_cache,
            });
        }
    }
    let found = match signatures.len() {
        0 => "it has no signature".to_string(),
        1 => "its one signature is not by any of them".to_string(),
        n => format!("none of its {n} signatures is by any of them"),
    };
    Err(OciError::Signature(format!(
        "{} is not signed by any key given ({names}): {found}; refusing to run it",
        reference.with_digest(digest)
    )))
}

/// Where verified signatures of `digest` are kept: a private directory
/// under the cache, made or checked on the way.
fn signature_cache_file(cache_dir: &Path, digest: &Digest) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = crate::fsutil::ensure_private_tree(cache_dir, Path::new("oci/signatures"))?;
    let file = dir.join(format!("{}.json", digest.tag_form()));
    Ok((dir, file))
}

/// Signatures verified by an earlier run, if kept safely.
fn cached_signatures(cache_dir: &Path, digest: &Digest) -> Option<Vec<StoredSignature>> {
    let read = signature_cache_file(cache_dir, digest)
        .and_then(|(_, file)| crate::fsutil::read_private(&file, MAX_CACHE_BYTES));
    match read {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("not using the cached signatures of {digest}: {e}");
            None
        }
    }
}

/// Keeps verified signatures for offline runs; failing to is only slower.
fn cache_signatures(cache_dir: &Path, digest: &Digest, signatures: &[StoredSignature]) {
    let bytes = serde_json::to_vec(signatures).expect("serializes");
    let written = signature_cache_file(cache_dir, digest)
        .and_then(|(dir, file)| crate::fsutil::write_atomic(&dir, &file, &bytes));
    if let Err(err) = written {
        tracing::warn!("cannot cache the signatures of {digest}: {err}");
    }
}

/// How many signatures an artifact carries, and which of `keys` (if any)
/// made one; for `plugin inspect`.
pub async fn status(
    reference: &OciRef,
    digest: &Digest,
    keys: &[PublicKey],
    options: &RegistryOptions,
) -> Result<(usize, Vec<PathBuf>), OciError> {
    let signatures = fetch_signatures(reference, digest, options).await?;
    let expected = digest.to_string();
    let by = keys
        .iter()
        .filter(|k| signatures.iter().any(|s| s.signed_by(&k.key, &expected)))
        .map(|k| k.path.clone())
        .collect();
    Ok((signatures.len(), by))
}

#[cfg(test)]
mod tests {
    use super::*;

    use sigstore::cosign::SignatureLayer;

    #[test]
    fn a_signature_verifies_only_with_its_key_and_digest() {
        let pair = generate_key_pair(b"pw").unwrap();
        let other = generate_key_pair(b"pw").unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let keypair =
            SigStoreKeyPair::from_encrypted_pem(pair.private_pem.as_bytes(), b"pw").unwrap();
        let signer = keypair.to_sigstore_signer(&SCHEME).unwrap();
        let image: OciReference = "127.0.0.1:5000/team/hello".parse().unwrap();
        let layer = SignatureLayer::new_unsigned(&image, &digest).unwrap();
        let sig = StoredSignature {
            payload: base64::engine::general_purpose::STANDARD.encode(&layer.raw_data),
            signature: base64::engine::general_purpose::STANDARD
                .encode(signer.sign(&layer.raw_data).unwrap()),
        };
        let key = |pem: &str| CosignVerificationKey::try_from_pem(pem.as_bytes()).unwrap();
        assert!(sig.signed_by(&key(&pair.public_pem), &digest));
        assert!(!sig.signed_by(&key(&other.public_pem), &digest));
        assert!(!sig.signed_by(
            &key(&pair.public_pem),
            &format!("sha256:{}", "b".repeat(64))
        ));
        assert!(
            SigStoreKeyPair::from_encrypted_pem(pair.private_pem.as_bytes(), b"wrong").is_err()
        );
    }
}
