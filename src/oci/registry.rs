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

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use zeroize::Zeroizing;

use super::auth::{self, Challenge, Credential};
use super::digest::{Digest, Hasher};
use super::{OciError, OciRef, RegistryOptions, shown};

/// The manifest types keyrot asks for; anything else it is sent is refused
/// by [`super::layout::check_manifest`] with the reason.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A token service's answer is a small JSON document.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;
/// How much of an error body is read, for its message.
const MAX_ERROR_BYTES: u64 = 16 * 1024;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

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

    /// Sends a request: credentials (once a registry asked for them) only
    /// to the registry's origin, one retry after a 401 with what it asked
    /// for, and redirects of GET and HEAD followed by hand.
    async fn send(
        &mut self,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        action: &'static str,
    ) -> Result<Response, OciError> {
        let mut redirects = 0;
        let mut authenticated = false;
        loop {
            let ours = same_origin(&url, &self.origin);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if ours && let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.as_str());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(action, e))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && ours && !authenticated {
                authenticated = true;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                match challenge {
                    Some(challenge) => {
                        self.authenticate(challenge, action).await?;
                        continue;
                    }
                    None => return Err(self.status_error(action, response).await),
                }
            }
            if status.is_redirection() && (method == Method::GET || method == Method::HEAD) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(self.protocol_error(action, "too many redirects"));
                }
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| self.protocol_error(action, "a redirect without a location"))?;
                if next.scheme() == "http" && !self.plain_ok(&next) {
                    return Err(self.protocol_error(
                        action,
                        &format!(
                            "it redirected to plain HTTP on a host that is neither loopback nor \
                             named with --insecure-registry ({}); refusing",
                            shown(next.origin().ascii_serialization().as_str())
                        ),
                    ));
                }
                if next.scheme() != "https" && next.scheme() != "http" {
                    return Err(self.protocol_error(action, "a redirect to a non-HTTP URL"));
                }
                url = next;
                continue;
            }
            return Ok(response);
        }
    }

    /// Answers a challenge: Basic credentials to the registry, or a token
    /// from its token service, each only where [`Client::send`]'s rules
    /// allow. An error says why nothing could be sent and what would allow
    /// it.
    async fn authenticate(
        &mut self,
        challenge: Challenge,
        action: &'static str,
    ) -> Result<(), OciError> {
        if self.credential.is_none() {
            self.credential = Some(auth::lookup(&self.registry)?);
        }
        let no_credentials = || OciError::Unauthorized {
            registry: self.registry.clone(),
            action,
            hint: format!(
                "it asks for credentials (HTTP 401) and keyrot has none for it: set {} and {} \
                 with {}={}, or `docker login {}`",
                auth::USER_VAR,
                auth::PASSWORD_VAR,
                auth::HOST_VAR,
                self.registry,
                self.registry
            ),
        };
        match challenge {
            Challenge::Basic => match self.credential.as_ref().and_then(Option::as_ref) {
                Some(Credential::Basic { user, password }) => {
                    use base64::Engine as _;
                    let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                    let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                    self.authorization = Some(Zeroizing::new(format!("Basic {encoded}")));
                    Ok(())
                }
                _ => Err(no_credentials()),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let token = self
                    .token(&realm, service.as_deref(), scope.as_deref())
                    .await?;
                self.authorization = Some(Zeroizing::new(format!("Bearer {}", token.as_str())));
                Ok(())
            }
        }
    }

    /// Gets a token from the token service `realm` names, sending
    /// credentials only if it is on the registry's host (or a host the
    /// operator allowed) and reached over HTTPS (or plain HTTP to loopback
    /// or an insecure-named host).
    async fn token(
        &mut self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Zeroizing<String>, OciError> {
        let refuse = |reason: String| OciError::TokenRealm {
            registry: self.registry.clone(),
            realm: shown(realm).into_owned(),
            reason,
        };
        let mut url = Url::parse(realm).map_err(|e| refuse(format!("it is not a URL ({e})")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(refuse("it is not an HTTP URL".into()));
        }
        let host = authority(&url);
        let mut why_not = Vec::new();
        if url.scheme() == "http" && !self.plain_ok(&url) {
            why_not.push(format!(
                "it is plain HTTP to a host that is neither loopback nor named with \
                 --insecure-registry {host}"
            ));
        }
        let credential = self.credential.as_ref().and_then(Option::as_ref);
        if credential.is_some() && !self.may_receive_credentials(&url) {
            why_not.push(format!(
                "it is on another host than the registry, and the credentials for {} are \
                 never sent elsewhere unless you name that host with --registry-token-host {host}",
                self.registry
            ));
        }
        if !why_not.is_empty() {
            return Err(refuse(why_not.join("; and ")));
        }
        let default_scope = format!(
            "repository:{}:{}",
            self.repository,
            if self.push { "pull,push" } else { "pull" }
        );
        let scope = scope.unwrap_or(&default_scope);
        let request = match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "keyrot")
                    .append_pair("scope", scope);
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                let body = Zeroizing::new(form.finish());
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.as_bytes().to_vec())
            }
            other => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                let request = self.http.get(url.clone());
                match other {
                    Some(Credential::Basic { user, password }) => {
                        request.basic_auth(user, Some(password.as_str()))
                    }
                    _ => request,
                }
            }
        };
        let action = "getting a token";
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(action, e))?;
        if !response.status().is_success() {
            return Err(self.status_error(action, response).await);
        }
        let body = Zeroizing::new(
            self.read_capped(response, MAX_TOKEN_BYTES, "the token")
                .await?,
        );
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| self.protocol_error(action, "its answer is not a token (JSON)"))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| self.protocol_error(action, "its answer holds no usable token"))?;
        Ok(Zeroizing::new(token))
    }

    /// Whether `url` may receive this registry's credentials: the
    /// registry's own host and port, or one the operator named.
    fn may_receive_credentials(&self, url: &Url) -> bool {
        let same = |a: &Url, b: &Url| {
            a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
        };
        same(url, &self.origin)
            || self.options.token_hosts.iter().any(|allowed| {
                Url::parse(&format!("{}://{allowed}/", url.scheme()))
                    .is_ok_and(|allowed| same(url, &allowed))
            })
    }

    /// Whether plain HTTP to `url`'s host is allowed: loopback, or named
    /// with `--insecure-registry`.
    fn plain_ok(&self, url: &Url) -> bool {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        loopback
            || self.options.insecure.iter().any(|allowed| {
                Url::parse(&format!("http://{allowed}/")).is_ok_and(|allowed| {
                    allowed.host_str() == url.host_str()
                        && allowed.port_or_known_default() == url.port_or_known_default()
                })
            })
    }

    /// Reads a body of at most `max` bytes, stopping at the first byte over.
    async fn read_capped(
        &self,
        mut response: Response,
        max: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = || OciError::TooLarge {
            what,
            reference: format!("registry {}", self.registry),
            limit: format!("{max} bytes"),
        };
        if response.content_length().is_some_and(|len| len > max) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error("reading an answer", e))?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// An error for an unexpected status, with the registry's own words
    /// (escaped, cut short).
    async fn status_error(&self, action: &'static str, mut response: Response) -> OciError {
        let status = response.status();
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() as u64 >= MAX_ERROR_BYTES {
                break;
            }
        }
        let said = registry_words(&body);
        let cause = match (status, said.is_empty()) {
            (_, true) => format!("HTTP {status}"),
            (_, false) => format!("HTTP {status}: {said}"),
        };
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return OciError::Unauthorized {
                registry: self.registry.clone(),
                action,
                hint: format!(
                    "{cause}; check the credentials for {} ({}/{} with {}, or the Docker config)",
                    self.registry,
                    auth::USER_VAR,
                    auth::PASSWORD_VAR,
                    auth::HOST_VAR
                ),
            };
        }
        OciError::Registry {
            registry: self.registry.clone(),
            action,
            cause,
        }
    }

    fn transport_error(&self, action: &'static str, err: reqwest::Error) -> OciError {
        let cause = if err.is_connect() {
            format!("cannot connect ({})", chain(&err))
        } else if err.is_timeout() {
            format!("timed out ({})", chain(&err))
        } else {
            chain(&err)
        };
        OciError::Registry {
            registry: self.registry.clone(),
            action,
            cause,
        }
    }

    fn protocol_error(&self, action: &'static str, what: &str) -> OciError {
        OciError::Registry {
            registry: self.registry.clone(),
            action,
            cause: what.to_string(),
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `host[:port]` of a URL, as an operator would name it in a flag.
fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    }
}

/// An error and its sources, escaped.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let said = s.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = s.source();
    }
    shown(&text).into_owned()
}

/// What a registry's error body says: the `errors` of the distribution
/// spec (`CODE: message`), else its text; escaped and cut short, since a
/// registry chooses every byte of it.
fn registry_words(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(errors) => errors
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    shown(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_words_are_escaped_and_short() {
        let body =
            br#"{"errors":[{"code":"DENIED","message":"\u001b[2J\u001b]0;pwned\u0007gone"}]}"#;
        let words = registry_words(body);
        assert!(!words.chars().any(|c| c.is_control()), "{words:?}");
        assert!(words.starts_with("DENIED: "), "{words}");
        let long = "x".repeat(100_000);
        assert!(registry_words(long.as_bytes()).len() < 1000);
    }
}
