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
//!   `registry`'s rules allow;
//! - whatever a registry says is escaped before it reaches a terminal.
//!
//! Pulled artifacts are kept content-addressed in a private directory
//! under the cache (`oci/blobs/<algorithm>/<hex>`, through
//! [`crate::fsutil`]), so a second run with the same digest needs no
//! registry. Signatures live in [`sign`].
//!
//! One concern a file:
//!
//! - `reference`: [`OciRef`] and its parsing;
//! - `manifest`: OCI image manifests, descriptors and media types;
//! - `layout`: the Wasm artifact layout, its caps and its checks;
//! - `pull`: [`resolve`] and [`pull`]; `push`: [`push`];
//! - `store`: the content-addressed [`Store`] on disk;
//! - `options`: [`RegistryOptions`] and the deadline of each operation;
//! - `registry`: the registry's HTTP API, under keyrot's rules;
//! - [`auth`]: credentials and challenges; [`sign`]: cosign signatures;
//! - [`digest`]: checked digests; `error`: [`OciError`].

pub mod auth;
pub mod digest;
mod error;
mod layout;
mod manifest;
mod options;
mod pull;
mod push;
mod reference;
mod registry;
pub mod sign;
mod store;

use std::borrow::Cow;

pub use self::digest::Digest;
pub use self::error::OciError;
pub use self::layout::{
    ComponentInfo, MAX_COMPONENT_BYTES, MAX_CONFIG_BYTES, WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE, WasmConfig,
};
pub use self::manifest::{MAX_MANIFEST_BYTES, OCI_MANIFEST_MEDIA_TYPE};
pub use self::options::{DEFAULT_TIMEOUT, RegistryOptions};
pub use self::pull::{Pulled, pull, resolve};
pub use self::push::push;
pub use self::reference::{OciRef, SCHEME, redact};
pub use self::store::Store;

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
