//! cosign-compatible, key-based signatures for plugin artifacts.
//!
//! A signature is cosign's: a simple-signing payload naming the manifest
//! digest, signed with an ECDSA P-256 key, stored as a layer of the
//! `sha256-<digest>.sig` tag beside the artifact, so `cosign verify --key`
//! accepts what `keyrot plugin sign` writes and the other way round.
//! Verification is offline: a public key, no transparency log, no
//! certificates (keyless signing is out of scope). Signatures verified once
//! are kept in the cache and checked again, cryptographically, when the
//! registry cannot be reached.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use sigstore::registry::{Auth, OciReference};
use zeroize::Zeroizing;

use super::{OciError, OciRef, RegistryOptions, credentials};

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
        let pem = std::fs::read(path).map_err(|e| {
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

/// The signatures at an artifact's `.sig` tag (empty when unsigned).
async fn fetch(
    reference: &OciRef,
    digest: &str,
    options: &RegistryOptions,
) -> Result<Vec<StoredSignature>, OciError> {
    let layers = fetch_layers(reference, digest, options).await?;
    Ok(layers
        .iter()
        .filter_map(|l| {
            Some(StoredSignature {
                payload: base64::engine::general_purpose::STANDARD.encode(&l.raw_data),
                signature: l.signature.clone()?,
            })
        })
        .collect())
}

async fn fetch_layers(
    reference: &OciRef,
    digest: &str,
    options: &RegistryOptions,
) -> Result<Vec<SignatureLayer>, OciError> {
    let mut client = client(reference, options)?;
    let image = OciReference::with_digest(
        reference.registry.clone(),
        reference.repository.clone(),
        digest.to_string(),
    );
    client
        .trusted_signature_layers(&auth(reference), &image)
        .await
        .map_err(|e| OciError::Registry {
            registry: reference.registry.clone(),
            action: "fetching signatures",
            cause: e.to_string(),
        })
}

fn client(
    reference: &OciRef,
    options: &RegistryOptions,
) -> Result<sigstore::cosign::Client, OciError> {
    ClientBuilder::default()
        .with_oci_client_config(options.sigstore_config(reference))
        .build()
        .map_err(|e| OciError::Signature(format!("cannot set up the signature client: {e}")))
}

fn auth(reference: &OciRef) -> Auth {
    match credentials(&reference.registry) {
        oci_client::secrets::RegistryAuth::Basic(u, p) => Auth::Basic(u, p),
        oci_client::secrets::RegistryAuth::Bearer(t) => Auth::Bearer(t),
        oci_client::secrets::RegistryAuth::Anonymous => Auth::Anonymous,
    }
}

/// Signs the manifest `digest` of `reference` with a cosign private key
/// (PEM, encrypted with `password`) and pushes the signature to the
/// `sha256-<digest>.sig` tag, keeping any signatures already there.
pub async fn sign(
    reference: &OciRef,
    digest: &str,
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
    let mut layer = SignatureLayer::new_unsigned(&image, digest)
        .map_err(|e| OciError::Signature(format!("cannot build the payload: {e}")))?;
    // cosign names the repository, without tag, as the signed identity.
    layer.simple_signing.critical.identity.docker_reference = repository;
    layer.raw_data = serde_json::to_vec(&layer.simple_signing).expect("the payload serializes");
    layer.oci_digest = super::sha256_digest(&layer.raw_data);
    let signature = signer
        .sign(&layer.raw_data)
        .map_err(|e| OciError::Signature(format!("cannot sign: {e}")))?;
    layer.signature = Some(base64::engine::general_purpose::STANDARD.encode(signature));

    let mut layers = fetch_layers(reference, digest, options).await?;
    layers.push(layer);
    let target = OciReference::with_tag(
        reference.registry.clone(),
        reference.repository.clone(),
        format!("{}.sig", digest.replace(':', "-")),
    );
    client(reference, options)?
        .push_signature(None, &auth(reference), &target, layers)
        .await
        .map_err(|e| OciError::Registry {
            registry: reference.registry.clone(),
            action: "pushing the signature",
            cause: e.to_string(),
        })?;
    Ok(())
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
    digest: &str,
    keys: &[PublicKey],
    options: &RegistryOptions,
    cache_dir: &Path,
) -> Result<Verified, OciError> {
    let cache = cache_dir
        .join("oci/signatures")
        .join(digest.replace(':', "-") + ".json");
    let (signatures, from_cache) = match fetch(reference, digest, options).await {
        Ok(signatures) => (signatures, false),
        Err(err) => match std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<StoredSignature>>(&b).ok())
        {
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
    for key in keys {
        let valid: Vec<_> = signatures
            .iter()
            .filter(|s| s.signed_by(&key.key, digest))
            .cloned()
            .collect();
        if !valid.is_empty() {
            if !from_cache {
                store(&cache, &valid);
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

/// Keeps verified signatures for offline runs; failing to is only slower.
fn store(path: &Path, signatures: &[StoredSignature]) {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent() else { return };
    let written = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::write(path, serde_json::to_vec(signatures).expect("serializes")));
    if let Err(err) = written {
        tracing::debug!(%err, "cannot cache the signatures");
    }
}

/// How many signatures an artifact carries, and which of `keys` (if any)
/// made one; for `plugin inspect`.
pub async fn status(
    reference: &OciRef,
    digest: &str,
    keys: &[PublicKey],
    options: &RegistryOptions,
) -> Result<(usize, Vec<PathBuf>), OciError> {
    let signatures = fetch(reference, digest, options).await?;
    let by = keys
        .iter()
        .filter(|k| signatures.iter().any(|s| s.signed_by(&k.key, digest)))
        .map(|k| k.path.clone())
        .collect();
    Ok((signatures.len(), by))
}

#[cfg(test)]
mod tests {
    use super::*;

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
