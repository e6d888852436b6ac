//! The CNCF Wasm OCI artifact layout (`wkg oci`, wasmCloud, containerd):
//! an OCI image manifest whose config is [`WASM_CONFIG_MEDIA_TYPE`]
//! (architecture `wasm`, os `wasip2`) and whose one layer is
//! [`WASM_LAYER_MEDIA_TYPE`]; the caps on its parts; and the checks a
//! manifest and a config pass before anything more is read.

use serde::{Deserialize, Serialize};

use super::manifest::{
    DOCKER_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, Descriptor, ImageManifest,
    OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE,
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
    wasm_artifact(raw).map_err(|reason| not_wasm(reference, reason))
}

/// Checks a Wasm artifact's config: wasm/wasip2.
pub(super) fn check_config(reference: &str, config: &[u8]) -> Result<(), OciError> {
    let parsed: WasmConfig = serde_json::from_slice(config).map_err(|e| {
        not_wasm(
            reference,
            format!(
                "its config is not a Wasm config ({})",
                shown(&e.to_string())
            ),
        )
    })?;
    if parsed.architecture != "wasm" || parsed.os != "wasip2" {
        return Err(not_wasm(
            reference,
            format!(
                "its config says architecture '{}', os '{}'; keyrot runs wasm/wasip2 components",
                shown(&parsed.architecture),
                shown(&parsed.os)
            ),
        ));
    }
    Ok(())
}

/// The refusal of `reference`, saying why it is not a Wasm component
/// artifact.
fn not_wasm(reference: &str, reason: String) -> OciError {
    OciError::NotWasm {
        reference: reference.to_string(),
        reason,
    }
}

/// What a raw manifest names, checked step by step in the order a reader
/// would: its kind, its schema, its artifact type, its config, its layer.
/// The error is the reason it is not a Wasm component artifact.
fn wasm_artifact(raw: &[u8]) -> Result<WasmArtifact, String> {
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| "its manifest is not JSON".to_string())?;
    check_manifest_kind(&value)?;
    let manifest: ImageManifest = serde_json::from_value(value).map_err(|e| {
        format!(
            "its manifest is not an OCI image manifest ({})",
            shown(&e.to_string())
        )
    })?;
    if manifest.schema_version != 2 {
        return Err(format!(
            "its manifest has schema version {}, not 2",
            manifest.schema_version
        ));
    }
    check_artifact_type(manifest.artifact_type.as_deref())?;
    let (config, config_size) = check_config_descriptor(&manifest.config)?;
    let (layer, layer_size) = check_the_one_layer(&manifest.layers)?;
    Ok(WasmArtifact {
        config,
        config_size,
        layer,
        layer_size,
    })
}

/// The manifest says it is an OCI image manifest: not an image index (by
/// its media type, or by its `manifests` if it names none), not a Docker
/// manifest, not silent about what it is.
fn check_manifest_kind(value: &serde_json::Value) -> Result<(), String> {
    const AN_INDEX: &str = "it is an image index (a list of manifests), not an image manifest";
    match value.get("mediaType").and_then(|t| t.as_str()) {
        Some(OCI_MANIFEST_MEDIA_TYPE) => Ok(()),
        Some(OCI_INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE) => Err(AN_INDEX.into()),
        Some(DOCKER_MANIFEST_MEDIA_TYPE) => {
            Err("it is a Docker image manifest, not an OCI image manifest".into())
        }
        Some(other) => Err(format!(
            "its manifest's media type is '{}', not '{OCI_MANIFEST_MEDIA_TYPE}'",
            shown(other)
        )),
        None if value.get("manifests").is_some() => Err(AN_INDEX.into()),
        None => Err(format!(
            "its manifest does not say its media type; keyrot takes only \
             '{OCI_MANIFEST_MEDIA_TYPE}'"
        )),
    }
}

/// No `artifactType`, or a Wasm one.
fn check_artifact_type(kind: Option<&str>) -> Result<(), String> {
    match kind {
        Some(kind) if kind != WASM_CONFIG_MEDIA_TYPE && kind != WASM_LAYER_MEDIA_TYPE => {
            Err(format!(
                "its artifact type is '{}', not a Wasm component",
                shown(kind)
            ))
        }
        _ => Ok(()),
    }
}

/// The config's digest and size: a Wasm config, a well-formed digest, at
/// most [`MAX_CONFIG_BYTES`].
fn check_config_descriptor(config: &Descriptor) -> Result<(Digest, u64), String> {
    if config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(format!(
            "its config media type is '{}', not '{WASM_CONFIG_MEDIA_TYPE}'",
            shown(&config.media_type)
        ));
    }
    let digest = config
        .digest
        .parse::<Digest>()
        .map_err(|why| format!("its config digest is not valid: {why}"))?;
    if config.size > MAX_CONFIG_BYTES {
        return Err(format!(
            "its config is {} bytes; keyrot reads at most {MAX_CONFIG_BYTES}",
            config.size
        ));
    }
    Ok((digest, config.size))
}

/// The digest and size of the one [`WASM_LAYER_MEDIA_TYPE`] layer: a
/// well-formed digest, 1 to [`MAX_COMPONENT_BYTES`] bytes.
fn check_the_one_layer(layers: &[Descriptor]) -> Result<(Digest, u64), String> {
    let layer = match layers {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => layer,
        [layer] => {
            return Err(format!(
                "its layer has media type '{}', not '{WASM_LAYER_MEDIA_TYPE}'",
                shown(&layer.media_type)
            ));
        }
        layers => {
            return Err(format!(
                "it has {} layers; a component artifact has exactly one \
                 '{WASM_LAYER_MEDIA_TYPE}' layer",
                layers.len()
            ));
        }
    };
    let digest = layer
        .digest
        .parse::<Digest>()
        .map_err(|why| format!("its layer digest is not valid: {why}"))?;
    if layer.size == 0 || layer.size > MAX_COMPONENT_BYTES {
        return Err(format!(
            "its component is {} bytes; keyrot takes 1 to {MAX_COMPONENT_BYTES}",
            layer.size
        ));
    }
    Ok((digest, layer.size))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn layer(media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": format!("sha256:{}", "b".repeat(64)), "size": 1})
    }

    fn wasm_manifest(config: &str, layers: Vec<Value>) -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": config, "digest": format!("sha256:{}", "c".repeat(64)), "size": 1},
            "layers": layers,
        })
    }

    /// The manifest of a well-formed Wasm component artifact.
    fn good() -> Value {
        wasm_manifest(WASM_CONFIG_MEDIA_TYPE, vec![layer(WASM_LAYER_MEDIA_TYPE)])
    }

    /// [`good`] with one thing changed.
    fn good_but(change: impl FnOnce(&mut Value)) -> Value {
        let mut value = good();
        change(&mut value);
        value
    }

    /// `check_manifest` refuses `value` saying `expected`, and no escape
    /// character reaches the message.
    fn assert_refused(value: Value, expected: &str) {
        let raw = serde_json::to_vec(&value).unwrap();
        let message = check_manifest("r", &raw).unwrap_err().to_string();
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(!message.contains('\u{1b}'), "{message:?}");
    }

    #[test]
    fn accepts_the_wasm_layout() {
        assert!(check_manifest("r", &serde_json::to_vec(&good()).unwrap()).is_ok());
    }

    #[test]
    fn refuses_indexes_docker_manifests_and_manifests_that_do_not_say() {
        assert_refused(
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": []}),
            "image index",
        );
        assert_refused(json!({"schemaVersion": 2, "manifests": []}), "image index");
        assert_refused(
            good_but(|v| v["mediaType"] = DOCKER_MANIFEST_MEDIA_TYPE.into()),
            "Docker image manifest",
        );
        assert_refused(
            good_but(|v| {
                v.as_object_mut().unwrap().remove("mediaType");
            }),
            "does not say its media type",
        );
    }

    #[test]
    fn refuses_other_artifact_types_configs_and_layers() {
        assert_refused(
            wasm_manifest(
                "application/vnd.oci.image.config.v1+json",
                vec![layer(WASM_LAYER_MEDIA_TYPE)],
            ),
            "config media type",
        );
        assert_refused(
            wasm_manifest(
                WASM_CONFIG_MEDIA_TYPE,
                vec![layer(WASM_LAYER_MEDIA_TYPE), layer(WASM_LAYER_MEDIA_TYPE)],
            ),
            "2 layers",
        );
        assert_refused(
            wasm_manifest(
                WASM_CONFIG_MEDIA_TYPE,
                vec![layer("application/octet-stream")],
            ),
            "media type",
        );
        assert_refused(
            good_but(|v| v["artifactType"] = "application/vnd.cncf.helm.config.v1+json".into()),
            "artifact type",
        );
    }

    #[test]
    fn refuses_a_malformed_digest_and_a_size_out_of_bounds() {
        assert_refused(
            good_but(|v| v["layers"][0]["digest"] = "sha256:../../../../dev/zero".into()),
            "layer digest is not valid",
        );
        assert_refused(
            good_but(|v| v["layers"][0]["size"] = (MAX_COMPONENT_BYTES + 1).into()),
            "keyrot takes 1 to",
        );
    }

    #[test]
    fn escapes_what_the_registry_wrote() {
        assert_refused(
            good_but(|v| v["config"]["mediaType"] = "\u{1b}[2J".into()),
            "\\u{1b}[2J",
        );
    }
}
