//! OCI image manifests and their descriptors, as keyrot writes and reads
//! them (a Wasm artifact's, a cosign signature's), and the manifest media
//! types it tells apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

/// An OCI image manifest's own media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: a list of manifests.
pub(super) const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker image manifest (cosign writes its signature manifests so).
pub(super) const DOCKER_MANIFEST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub(super) const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The `Accept` of a manifest request: the four kinds above, so that a
/// registry sends what it has and anything but an OCI image manifest is
/// refused with the reason (by [`super::layout::check_manifest`]).
pub(super) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// No manifest keyrot reads is near this (one of keyrot's is ~400 bytes).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_request_accepts_every_kind_keyrot_tells_apart() {
        let accepted: Vec<&str> = MANIFEST_ACCEPT.split(", ").collect();
        assert_eq!(
            accepted,
            [
                OCI_MANIFEST_MEDIA_TYPE,
                OCI_INDEX_MEDIA_TYPE,
                DOCKER_MANIFEST_MEDIA_TYPE,
                DOCKER_LIST_MEDIA_TYPE
            ]
        );
    }
}
