//! The CNCF Wasm OCI artifact layout (`wkg oci`, wasmCloud, containerd):
//! an OCI image manifest whose config is [`WASM_CONFIG_MEDIA_TYPE`]
//! (architecture `wasm`, os `wasip2`) and whose one layer is
//! [`WASM_LAYER_MEDIA_TYPE`]; the caps on its parts; and the checks a
//! manifest and a config pass before anything more is read.

use serde::{Deserialize, Serialize};

use super::manifest::{
    DOCKER_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, ImageManifest, OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
};
use super::{Digest, OciError, shown};

/// The config media type of a Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// A Wasm artifact's config (imports and exports) is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The largest component keyrot pulls (a Python one is ~18 MB). The
/// layer is streamed to disk, so this bounds disk, not memory.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

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

/// What a checked manifest names.
#[derive(Debug)]
pub(super) struct WasmArtifact {
    pub config: Digest,
    pub config_size: u64,
    pub layer: Digest,
    pub layer_size: u64,
}

/// Checks a raw manifest is an OCI image manifest of the Wasm component
/// layout, with well-formed digests and sizes within the caps.
pub(super) fn check_manifest(reference: &str, raw: &[u8]) -> Result<WasmArtifact, OciError> {
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
pub(super) fn check_config(reference: &str, config: &[u8]) -> Result<(), OciError> {
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
}
