//! The few calls of the OCI distribution API keyrot makes (manifests and
//! blobs by GET/HEAD, blob upload by POST + PUT, manifest PUT) and the
//! Docker token protocol, over reqwest.
//!
//! They are written here, not left to a client library, so that keyrot
//! alone decides:
//!
//! - **where credentials go**: only after a registry asks (401), only to
//!   the registry's own origin or to a token service on the registry's
//!   host (another host only if the operator named it with
//!   `--registry-token-host`), and never over plain HTTP except to
//!   loopback or a host named with `--insecure-registry`;
//! - **how much it reads**: every body has a cap, and a blob is read as it
//!   streams, hashed, and cut off at the first byte past its descriptor's
//!   size;
//! - **where redirects lead**: followed by hand, at most five, never to
//!   plain HTTP but on loopback or an insecure-named host, credentials only
//!   back to the registry.
//!
//! Each call has connect and read timeouts; the overall deadline of a
//! whole operation is the caller's ([`super::options::within`]).
//!
//! The calls are here. How one request is sent (credentials, 401s,
//! redirects) is in `send`; where requests and credentials may go, in
//! `hosts`; how a challenge is answered (Basic, or a token from a token
//! service), in `token`; how answers are read (capped) and turned into
//! errors, in `answers`.

mod answers;
mod hosts;
mod send;
mod token;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use zeroize::Zeroizing;

use self::answers::chain;
use self::hosts::same_origin;
use super::auth::Credential;
use super::digest::{Digest, Hasher};
use super::manifest::MANIFEST_ACCEPT;
use super::{OciError, OciRef, RegistryOptions, shown};

/// One registry and repository, as one operation talks to it.
pub(super) struct Client<'a> {
    http: reqwest::Client,
    options: &'a RegistryOptions,
    registry: String,
    repository: String,
    /// `https://REGISTRY/` (or `http://` for loopback or an insecure one).
    origin: Url,
    /// Whether the operation writes (token scope `pull,push`).
    push: bool,
    /// Looked up on the first 401, then kept for the operation.
    credential: Option<Option<Credential>>,
    /// The `Authorization` value the registry accepted or issued.
    authorization: Option<Zeroizing<String>>,
}

impl<'a> Client<'a> {
    /// A client for `reference`'s registry and repository.
    pub(super) fn new(
        reference: &OciRef,
        options: &'a RegistryOptions,
        push: bool,
    ) -> Result<Client<'a>, OciError> {
        let scheme = if options.plain_http(reference) {
            "http"
        } else {
            "https"
        };
        let origin = Url::parse(&format!("{scheme}://{}/", reference.registry)).map_err(|e| {
            OciError::BadReference {
                reference: reference.to_string(),
                reason: format!("the registry is not a host name ({e})"),
            }
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .read_timeout(options.timeout.min(Duration::from_secs(60)))
            .user_agent(concat!("keyrot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OciError::Registry {
                registry: reference.registry.clone(),
                action: "setting up HTTPS",
                cause: format!("{} (is SSL_CERT_FILE a readable PEM bundle?)", chain(&e)),
            })?;
        Ok(Client {
            http,
            options,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            origin,
            push,
            credential: None,
            authorization: None,
        })
    }

    fn url(&self, path: &str) -> Url {
        // The repository and tag were checked by the reference parser and
        // digests by `Digest`: nothing here can change the URL's shape.
        self.origin
            .join(&format!("v2/{}/{path}", self.repository))
            .expect("a checked repository makes a valid URL")
    }

    /// The manifest `reference` (a tag or a digest, both checked) names, at
    /// most `max` bytes; `None` if the registry does not have it.
    pub(super) async fn manifest(
        &mut self,
        reference: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let url = self.url(&format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let response = self
            .send(Method::GET, url, headers, None, "fetching a manifest")
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(self.read_capped(response, max, "the manifest").await?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error("fetching a manifest", response).await),
        }
    }

    /// Streams the blob `digest` into `out`: exactly `size` bytes (the
    /// first byte past them stops the read) whose digest is `digest`.
    /// `None` if the registry does not have it.
    pub(super) async fn blob_to(
        &mut self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        what: &'static str,
        shown_ref: &str,
    ) -> Result<Option<()>, OciError> {
        let url = self.url(&format!("blobs/{digest}"));
        let mut response = self
            .send(Method::GET, url, HeaderMap::new(), None, "fetching a blob")
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error("fetching a blob", response).await),
        }
        let too_large = || OciError::TooLarge {
            what,
            reference: shown_ref.to_string(),
            limit: format!("the {size} bytes its descriptor says"),
        };
        if response.content_length().is_some_and(|len| len > size) {
            return Err(too_large());
        }
        let mut hasher = Hasher::new(digest.algorithm());
        let mut read: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error("reading a blob", e))?
        {
            read += chunk.len() as u64;
            if read > size {
                return Err(too_large());
            }
            hasher.update(&chunk);
            out.write_all(&chunk).map_err(|cause| OciError::Cache {
                path: "(a blob being stored)".into(),
                cause,
            })?;
        }
        if read < size {
            return Err(OciError::Registry {
                registry: self.registry.clone(),
                action: "fetching a blob",
                cause: format!("{what} of {shown_ref} ended after {read} of its {size} bytes"),
            });
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(OciError::DigestMismatch {
                what,
                reference: shown_ref.to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(Some(()))
    }

    /// A small blob whole: [`Client::blob_to`] into memory, `size` at most
    /// `max`.
    pub(super) async fn blob(
        &mut self,
        digest: &Digest,
        size: u64,
        max: u64,
        what: &'static str,
        shown_ref: &str,
    ) -> Result<Option<Vec<u8>>, OciError> {
        if size > max {
            return Err(OciError::TooLarge {
                what,
                reference: shown_ref.to_string(),
                limit: format!("{max} bytes"),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        Ok(self
            .blob_to(digest, size, &mut bytes, what, shown_ref)
            .await?
            .map(|()| bytes))
    }

    /// Uploads a blob unless the repository has it already.
    pub(super) async fn upload(&mut self, digest: &Digest, bytes: Bytes) -> Result<(), OciError> {
        let action = "uploading a blob";
        let head = self
            .send(
                Method::HEAD,
                self.url(&format!("blobs/{digest}")),
                HeaderMap::new(),
                None,
                action,
            )
            .await?;
        if head.status() == StatusCode::OK {
            return Ok(());
        }
        let start = self
            .send(
                Method::POST,
                self.url("blobs/uploads/"),
                HeaderMap::new(),
                Some(Bytes::new()),
                action,
            )
            .await?;
        if start.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(action, start).await);
        }
        let location = start
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| self.origin.join(l).ok())
            .ok_or_else(|| self.protocol_error(action, "no upload location in its answer"))?;
        if !same_origin(&location, &self.origin) {
            return Err(self.protocol_error(
                action,
                &format!(
                    "it sent the upload to another host ({}); keyrot uploads only to the registry",
                    shown(location.origin().ascii_serialization().as_str())
                ),
            ));
        }
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let done = self
            .send(Method::PUT, url, headers, Some(bytes), action)
            .await?;
        if !done.status().is_success() {
            return Err(self.status_error(action, done).await);
        }
        Ok(())
    }

    /// Puts a manifest under `tag`. Returns the digest the registry says
    /// it has, if it says one (for a warning only: keyrot's digest is the
    /// one of the bytes it sent).
    pub(super) async fn put_manifest(
        &mut self,
        tag: &str,
        bytes: Vec<u8>,
        media_type: &'static str,
    ) -> Result<Option<String>, OciError> {
        let action = "pushing the manifest";
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
        let response = self
            .send(
                Method::PUT,
                self.url(&format!("manifests/{tag}")),
                headers,
                Some(Bytes::from(bytes)),
                action,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(action, response).await);
        }
        Ok(response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }
}
