//! [`push`]: a component uploaded as a Wasm artifact (config, layer,
//! manifest), pinned by the digest of the manifest bytes keyrot sent.

use super::layout::{ComponentInfo, WasmConfig};
use super::manifest::{Descriptor, ImageManifest};
use super::options::within;
use super::registry::Client;
use super::{
    Digest, OCI_MANIFEST_MEDIA_TYPE, OciError, OciRef, RegistryOptions, WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE, shown,
};

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
