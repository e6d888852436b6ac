//! The plugin's calls to the Kubernetes API server over `wasi:http`
//! (waki's blocking client): JSON in and out, a bounded body, the
//! `Retry-After` header, and transport failures in words. The bearer token
//! is not here: the host injects it (`--inject-header`), so the plugin
//! never sees it.

use std::time::Duration;

use waki::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use waki::{Client, ErrorCode, Method};

/// keyrot caps it at 10 s too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A Secret is at most 1 MiB; a Deployment is far smaller.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A response: status, `Retry-After` and the whole (bounded) body.
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Sends one request. `Err` is a transport failure, in words.
pub fn send(method: Method, url: &str, body: Option<(&str, &[u8])>) -> Result<Response, String> {
    let mut request = Client::new()
        .request(method, url)
        .connect_timeout(CONNECT_TIMEOUT)
        .header(ACCEPT, "application/json")
        .header(
            USER_AGENT,
            concat!("keyrot-kubernetes-secret/", env!("CARGO_PKG_VERSION")),
        );
    if let Some((content_type, body)) = body {
        request = request
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, body.len().to_string())
            .body(body.to_vec());
    }
    let response = request
        .send()
        .map_err(|e| transport_cause(e.downcast_ref::<ErrorCode>(), url, || format!("{e:#}")))?;
    let status = response.status_code();
    let retry_after = response
        .header("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk(64 * 1024)
        .map_err(|e| format!("reading the response failed: {e:#}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the response is larger than {MAX_BODY_BYTES} bytes: is api-url a Kubernetes API server?"
            ));
        }
    }
    Ok(Response {
        status,
        retry_after,
        body,
    })
}

/// Words for a transport failure; the common ones say what to do.
fn transport_cause(code: Option<&ErrorCode>, url: &str, other: impl FnOnce() -> String) -> String {
    match code {
        Some(ErrorCode::HttpRequestDenied) => format!(
            "keyrot denied the request: grant the API server with --allow-host {}",
            allow_host_flag(url)
        ),
        Some(ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound) => {
            "cannot resolve the host name".into()
        }
        Some(ErrorCode::ConnectionRefused) => "connection refused".into(),
        Some(ErrorCode::ConnectionTimeout) => "connection timed out".into(),
        Some(ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout) => {
            "the API server did not answer in time".into()
        }
        Some(ErrorCode::TlsCertificateError) => "the API server's TLS certificate is not trusted \
             (a cluster's own CA is granted with keyrot's --allow-host-ca; see the plugin's README)"
            .into(),
        Some(code) => format!("{code:?}"),
        None => other(),
    }
}

/// The `--allow-host` value that admits `url`: the bare host for HTTPS on
/// 443, otherwise scheme, host and port spelled out.
fn allow_host_flag(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or("");
    if scheme == "https" && !authority.contains(':') {
        authority.to_string()
    } else {
        format!("{scheme}://{authority}")
    }
}
