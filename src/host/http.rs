//! The outbound-HTTP capability (`wasi:http/outgoing-handler`), enforced in
//! the host's `send_request` hook.
//!
//! A request leaves only if its scheme, host and port are on the operator's
//! allow-list; otherwise the plugin gets the standard `HTTP-request-denied`
//! error and the log says which flag would allow it. Redirects are the
//! guest's business, so a redirect to an unlisted host is just another
//! denied request. The host adds operator-injected headers (credentials the
//! plugin never sees), signs requests to `--aws-sign` hosts (see
//! `aws_sign`), and caps timeouts, response size and request count. A
//! request to a host of `--allow-host-ca` is then sent through `host_ca`'s
//! connector, which trusts that host's CA bundle only; every other request
//! through wasmtime-wasi-http's `default_send_request` (the public web
//! roots).
//!
//! A request body with a declared `Content-Length` is read whole before the
//! request goes out. Hyper stops reading such a body at its last byte and
//! drops it, so a guest that flushes after writing (waki does) would find
//! the stream closed and fail a request the server got; guests then had to
//! send bodies chunked, which is not what API clients send.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, Result as HttpResult, WasiBody, WasiHttpCtx,
    WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::aws_sign::AwsSigner;
use super::capability::{CallSetup, Capability};
use super::host_ca::{self, HostTls};
use super::{HostState, Plugin, PluginError, Sandbox};
use crate::grants::{AllowList, AwsSigning, HeaderInjection, HostRule, Scheme};

/// Requests one call may make.
pub const MAX_REQUESTS_PER_CALL: u32 = 50;
/// Bytes of one response body the plugin may read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of one request body with a declared length (held in memory).
pub const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;
/// Upper bounds on the plugin's own timeouts (it may ask for less).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to the first byte of the response.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two chunks of the response body.
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The crypto provider of the plugins' TLS: ring, the one
/// wasmtime-wasi-http builds its client with.
pub(super) fn tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The wasi:http import a plugin needs a host grant for.
pub const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler";

/// Outbound HTTP (`wasi:http`), to the allowed hosts only.
pub(super) struct Http;

impl Capability for Http {
    type State = HttpState;

    const INSPECT: &'static [(&'static str, &'static str)] = &[(
        OUTGOING_HANDLER,
        "outbound HTTP (needs --allow-host; the host signs AWS requests with --aws-sign, and \
         trusts a host's private CA with --allow-host-ca)",
    )];

    /// Links `wasi:http` (types and outgoing-handler). Linking grants
    /// nothing: every request still has to pass [`HttpGuard`]. Before any
    /// plugin can send, makes [`tls_provider`] the process's default
    /// unless the embedder chose one: wasmtime-wasi-http's client asks
    /// rustls for the process default, and rustls cannot pick one when
    /// more than one provider is built in, as in keyrot (the AWS SDK brings
    /// aws-lc-rs, wasmtime-wasi-http ring): a plugin's first HTTPS request
    /// would panic the host.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // An embedder's own choice, made first, stays.
        let _ = tls_provider().install_default();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    /// A plugin that declares its hosts (contract 0.4.0 on) is granted
    /// those, and no others.
    fn check_described(
        name: &str,
        info: &super::PluginInfo,
        sandbox: &Sandbox,
    ) -> Result<(), PluginError> {
        let Some(needs) = &info.needs else {
            return Ok(());
        };
        let described = |s: &str| info.settings.iter().any(|d| d.name == s);
        let declared = needs
            .check_settings(described)
            .and_then(|()| needs.hosts(|s| sandbox.settings.value(s)));
        let hosts = declared.map_err(|e| {
            PluginError::Settings(
                super::escape_control(&format!("plugin '{name}': {e}")).into_owned(),
            )
        })?;
        crate::grants::check_hosts(name, &hosts, &sandbox.grants.hosts, "--allow-host")
            .map_err(|e| PluginError::Grants(super::escape_control(&e).into_owned()))
    }

    /// A plugin that makes requests has a host to send them to, and every
    /// injected header goes to an allowed host.
    fn check_grants(plugin: &Plugin, sandbox: &Sandbox) -> Result<(), PluginError> {
        let hosts = &sandbox.grants.hosts;
        if wants_http(plugin.imports()) && hosts.is_empty() {
            // A reporter's hosts are its own, granted in its own block.
            let grant = match plugin.kind() {
                super::PluginKind::Handler => "--allow-host HOST",
                super::PluginKind::Reporter => {
                    "allow-hosts to its [[notify]] block (or --notify-allow-host NAME:HOST)"
                }
            };
            return Err(PluginError::Grants(format!(
                "plugin '{}' wants outbound HTTP (it imports {OUTGOING_HANDLER}) but no host is \
                 allowed: add {grant} for each host it must reach",
                plugin.path().display(),
            )));
        }
        for injection in &sandbox.grants.headers {
            if !hosts.rules().contains(&injection.host) {
                return Err(PluginError::Grants(format!(
                    "--inject-header names {0}, which is not allowed: add --allow-host {0}",
                    injection.host
                )));
            }
        }
        check_signing(sandbox)?;
        check_host_cas(sandbox)
    }

    /// An injected header can come back in a response (a server echoing
    /// the request). Every copy of the value holds its secret part, so
    /// redacting that (cut copies included) covers the value; a secret that
    /// itself starts with `Bearer ` is redacted without it too.
    fn secrets(sandbox: &Sandbox) -> Vec<&str> {
        let headers = sandbox.grants.headers.iter();
        headers
            .flat_map(|h| [Some(h.secret.as_str()), h.secret.strip_prefix("Bearer ")])
            .flatten()
            .chain(sandbox.signer.iter().flat_map(|s| s.secrets()))
            .collect()
    }

    fn prepare(call: &CallSetup<'_>, _wasi: &mut WasiCtxBuilder) -> Result<HttpState, String> {
        let grants = &call.sandbox.grants;
        let tls = grants
            .host_cas
            .iter()
            .map(|grant| HostTls::new(grant).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(HttpState {
            ctx: WasiHttpCtx::new(),
            guard: HttpGuard {
                plugin: call.plugin.to_string(),
                allow: grants.hosts.clone(),
                headers: grants.headers.clone(),
                signing: grants.aws_sign.clone(),
                signer: call.sandbox.signer.clone(),
                tls,
                requests: 0,
                notes: Arc::default(),
                facts: Arc::default(),
            },
        })
    }
}

/// Signing needs its identity resolved, and signs only for allowed hosts
/// that carry no injected `Authorization` of their own.
fn check_signing(sandbox: &Sandbox) -> Result<(), PluginError> {
    let grants = &sandbox.grants;
    if grants.aws_sign.is_empty() {
        return Ok(());
    }
    if sandbox.signer.is_none() {
        return Err(PluginError::Grants(
            "--aws-sign needs an identity to sign as: add --aws-sign-role-arn ARN (or \
             --aws-sign-profile NAME)"
                .into(),
        ));
    }
    for rule in &grants.aws_sign {
        if !grants.hosts.rules().contains(&rule.host) {
            return Err(PluginError::Grants(format!(
                "--aws-sign names {0}, which is not allowed: add --allow-host {0}",
                rule.host
            )));
        }
        if grants
            .headers
            .iter()
            .any(|h| h.host == rule.host && h.name.eq_ignore_ascii_case("authorization"))
        {
            return Err(PluginError::Grants(format!(
                "{} has both --aws-sign and an injected Authorization header: a request \
                 carries one or the other",
                rule.host
            )));
        }
    }
    Ok(())
}

/// A CA bundle is for one allowed HTTPS host, and a host has one bundle.
fn check_host_cas(sandbox: &Sandbox) -> Result<(), PluginError> {
    let grants = &sandbox.grants;
    for (i, grant) in grants.host_cas.iter().enumerate() {
        if !grants.hosts.rules().contains(&grant.host) {
            return Err(PluginError::Grants(format!(
                "--allow-host-ca names {0}, which is not allowed: add --allow-host {0}",
                grant.host
            )));
        }
        if grant.host.scheme != Scheme::Https {
            return Err(PluginError::Grants(format!(
                "--allow-host-ca names {}, which is plain HTTP: a CA bundle is for HTTPS",
                grant.host
            )));
        }
        if let Some(other) = grants.host_cas[..i].iter().find(|g| g.host == grant.host) {
            return Err(PluginError::Grants(format!(
                "{} has two CA bundles (--allow-host-ca), {} and {}: put all its CA \
                 certificates in one file",
                grant.host,
                other.file.display(),
                grant.file.display()
            )));
        }
    }
    Ok(())
}

/// Whether a component with these imports can make outbound requests.
pub(super) fn wants_http(imports: &[String]) -> bool {
    imports.iter().any(|i| i.starts_with(OUTGOING_HANDLER))
}

/// One call's HTTP state: wasi:http's context and keyrot's guard.
pub(super) struct HttpState {
    ctx: WasiHttpCtx,
    guard: HttpGuard,
}

impl HttpState {
    /// What the host refused the plugin during the call, for its log and
    /// its error.
    pub(super) fn take_notes(&self) -> Vec<String> {
        let mut notes = self.guard.notes.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *notes)
    }

    /// What the host did for the plugin during the call (requests it
    /// signed, private CAs it checked servers against), for its log.
    pub(super) fn take_facts(&self) -> Vec<String> {
        let mut facts = self.guard.facts.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *facts)
    }
}

/// The call's HTTP policy and what the call has done so far.
struct HttpGuard {
    plugin: String,
    allow: AllowList,
    headers: Vec<HeaderInjection>,
    signing: Vec<AwsSigning>,
    signer: Option<Arc<AwsSigner>>,
    /// The `--allow-host-ca` hosts' TLS clients.
    tls: Vec<Arc<HostTls>>,
    requests: u32,
    /// Messages for the plugin's log (denials), drained after the call.
    notes: Arc<Mutex<Vec<String>>>,
    /// What the host did for the plugin (signed a request, checked a
    /// server against a private CA), for its log.
    facts: Arc<Mutex<Vec<String>>>,
}

/// Where an admitted request goes, and what the host does to it on the way.
struct Route {
    /// Where it goes, for messages.
    target: HostRule,
    /// How to sign it, for a `--aws-sign` host.
    signing: Option<(AwsSigning, Arc<AwsSigner>)>,
    /// The host's own TLS client, for an `--allow-host-ca` host.
    tls: Option<Arc<HostTls>>,
}

impl HttpGuard {
    /// Refuses a request; the reason reaches the log (and the report) with
    /// the plugin's other lines once the call ends.
    fn deny(&self, why: String) -> HttpError {
        self.notes.lock().unwrap().push(why);
        HttpError::HttpRequestDenied
    }

    /// Decides whether the request may go out, and prepares it if so;
    /// returns its route: how to sign it and which TLS client sends it.
    fn admit(&mut self, request: &mut http::Request<WasiBody>) -> Result<Route, HttpError> {
        let uri = request.uri();
        let Some(target) = HostRule::of_uri(uri) else {
            return Err(self.deny(format!(
                "request with unsupported scheme {:?} denied (HttpRequestDenied)",
                uri.scheme_str()
            )));
        };
        if !self.allow.allows(&target) {
            return Err(self.deny(format!(
                "request to {} denied (HttpRequestDenied): that host is not allowed (to allow \
                 it: --allow-host {target})",
                uri_without_query(uri)
            )));
        }
        if self.requests >= MAX_REQUESTS_PER_CALL {
            return Err(self.deny(format!(
                "request to {} denied: more than {MAX_REQUESTS_PER_CALL} requests in one call",
                uri_without_query(uri)
            )));
        }
        self.requests += 1;
        // Host and port only: paths and userinfo may carry tokens, and this
        // line does not pass through the plugin log's redaction.
        tracing::debug!("plugin '{}': {} {target}", self.plugin, request.method());
        for injection in self.headers.iter() {
            if injection.host == target {
                let name = http::HeaderName::from_bytes(injection.name.as_bytes())
                    .map_err(|_| HttpError::InternalError(Some("bad injected header".into())))?;
                let mut value = http::HeaderValue::from_str(&injection.value)
                    .map_err(|_| HttpError::InternalError(Some("bad injected header".into())))?;
                value.set_sensitive(true);
                request.headers_mut().insert(name, value);
            }
        }
        let rule = self.signing.iter().find(|rule| rule.host == target);
        Ok(Route {
            signing: rule.cloned().zip(self.signer.clone()),
            tls: self.tls.iter().find(|tls| tls.host == target).cloned(),
            target,
        })
    }
}

/// `scheme://authority/path`: enough to say where, without query strings
/// that may carry tokens.
fn uri_without_query(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map(|a| a.as_str()).unwrap_or(""),
        uri.path()
    )
}

fn cap(asked: Option<Duration>, max: Duration) -> Option<Duration> {
    Some(asked.map_or(max, |d| d.min(max)))
}

impl WasiHttpHooks for HttpGuard {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = HttpResult<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        let Route {
            target,
            signing,
            tls,
        } = match self.admit(&mut request) {
            Ok(route) => route,
            Err(denied) => return Box::new(async move { Err(denied) }),
        };
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(options.connect_timeout, CONNECT_TIMEOUT),
            first_byte_timeout: cap(options.first_byte_timeout, FIRST_BYTE_TIMEOUT),
            between_bytes_timeout: cap(options.between_bytes_timeout, BETWEEN_BYTES_TIMEOUT),
        };
        let notes = self.notes.clone();
        let facts = self.facts.clone();
        let url = uri_without_query(request.uri());
        let declared = declared_length(&request);
        if declared.is_some_and(|n| n > MAX_REQUEST_BYTES) {
            self.notes.lock().unwrap().push(format!(
                "request to {url} denied: its body is larger than {} MiB",
                MAX_REQUEST_BYTES >> 20
            ));
            return Box::new(async move { Err(HttpError::HttpRequestBodySize(declared)) });
        }
        Box::new(async move {
            let (mut request, body) = match declared {
                Some(length) if length > 0 => read_whole_body(request).await?,
                // A body without a declared length streams, unsigned: the
                // signature covers no payload then, and AWS refuses it.
                _ => (request, bytes::Bytes::new()),
            };
            if let Some((rule, signer)) = signing {
                // The plugin's log (and so the report) says who signed what.
                let note = match signer.sign(&mut request, &body, &rule).await {
                    Ok(()) => format!(
                        "{} {url} signed by the host as {} ({}/{})",
                        request.method(),
                        signer.identity(),
                        rule.service,
                        rule.region
                    ),
                    Err(why) => {
                        notes
                            .lock()
                            .unwrap()
                            .push(format!("request to {url} not sent: {why}"));
                        return Err(HttpError::InternalError(Some(why)));
                    }
                };
                facts.lock().unwrap().push(note);
            }
            let sent = match &tls {
                Some(tls) => tls.send(request, options).await,
                None => wasmtime_wasi_http::default_send_request(request, Some(options))
                    .await
                    .map(|(response, io)| {
                        let io: host_ca::Io = Box::new(io);
                        (response.map(BodyExt::boxed_unsync), io)
                    }),
            };
            let (response, io) = match sent {
                Ok(sent) => sent,
                Err(err) => {
                    let (err, cause) = host_ca::tls_failure(err);
                    if let Some(cause) = cause {
                        let why = tls_note(&url, &target, tls.as_deref(), &err, &cause);
                        notes.lock().unwrap().push(why);
                    }
                    return Err(err);
                }
            };
            if let Some(tls) = &tls {
                let fact = format!(
                    "HTTPS to {target} checked against {} (--allow-host-ca), not the public \
                     roots",
                    tls.described
                );
                let mut facts = facts.lock().unwrap();
                if !facts.contains(&fact) {
                    facts.push(fact);
                }
            }
            let response = response.map(|body| {
                Limited::new(body, MAX_RESPONSE_BYTES)
                    .map_err(move |err| match err.downcast::<HttpError>() {
                        Ok(err) => *err,
                        Err(_) => {
                            // Guest HTTP libraries often reduce this to a
                            // bare stream error: say what happened here.
                            notes.lock().unwrap().push(format!(
                                "response from {url} cut off: larger than {} MiB",
                                MAX_RESPONSE_BYTES >> 20
                            ));
                            HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64))
                        }
                    })
                    .boxed_unsync()
            });
            Ok((response, io))
        })
    }
}

/// Why a TLS handshake failed, and what to do about it, for the plugin's
/// log and error.
fn tls_note(
    url: &str,
    target: &HostRule,
    tls: Option<&HostTls>,
    err: &HttpError,
    cause: &str,
) -> String {
    let untrusted = matches!(err, HttpError::TlsCertificateError);
    match tls {
        Some(tls) if untrusted => format!(
            "HTTPS to {url} failed: the server's certificate is not vouched for by {} \
             (--allow-host-ca): {cause}",
            tls.described
        ),
        None if untrusted => format!(
            "HTTPS to {url} failed: the server's certificate is not trusted ({cause}); if it \
             comes from a private CA (a cluster's own, say), add --allow-host-ca \
             {target}=CA_FILE"
        ),
        _ => format!("HTTPS to {url} failed: {cause}"),
    }
}

/// The request's `Content-Length`, if it declares one.
fn declared_length(request: &http::Request<WasiBody>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the guest's whole body (wasmtime checks it matches the declared
/// length when the guest finishes it) and puts it back as one piece, so
/// the guest's stream stays open until the guest is done with it.
async fn read_whole_body(
    request: http::Request<WasiBody>,
) -> Result<(http::Request<WasiBody>, bytes::Bytes), HttpError> {
    let (parts, body) = request.into_parts();
    let bytes = Limited::new(body, MAX_REQUEST_BYTES as usize)
        .collect()
        .await
        .map_err(|err| match err.downcast::<HttpError>() {
            Ok(err) => *err,
            Err(_) => HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BYTES)),
        })?
        .to_bytes();
    let body = Full::new(bytes.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((http::Request::from_parts(parts, body), bytes))
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.guard,
        }
    }
}
