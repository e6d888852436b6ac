//! The plugin's calls to GitHub over `wasi:http` (through waki's blocking
//! client): GitHub's standard headers, the optional token, a bounded
//! response body, and transport failures (including a host the operator did
//! not allow) explained in words.

use std::time::Duration;

use waki::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use waki::{Client, ErrorCode, Method};

use crate::settings::Settings;

/// keyrot caps it at 10 s too; asking for it keeps the plugin honest on
/// hosts without that cap.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// GitHub's answers here are tiny; anything bigger is not GitHub.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The API version whose request and response shapes this plugin follows.
const API_VERSION: &str = "2022-11-28";

/// Response headers the plugin acts on; the others are dropped.
const KEPT_HEADERS: [&str; 6] = [
    "location",
    "retry-after",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-oauth-scopes",
    "x-accepted-oauth-scopes",
];

/// A response: status, the headers in [`KEPT_HEADERS`] and the whole
/// (bounded) body.
pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A kept header's value (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `url`. `Err` is a transport failure, worded to
/// follow "cannot reach GitHub at URL: ".
pub fn send(
    settings: &Settings,
    method: Method,
    url: &str,
    json_body: Option<&[u8]>,
) -> Result<Response, String> {
    let mut request = Client::new()
        .request(method, url)
        .connect_timeout(CONNECT_TIMEOUT)
        .header(ACCEPT, "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .header(
            USER_AGENT,
            concat!("keyrot-github/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(token) = &settings.token {
        request = request.header(AUTHORIZATION, token.bearer());
    }
    if let Some(body) = json_body {
        // With its length, as every GitHub client sends it (not chunked).
        // keyrot's host holds a body with a declared length until the
        // plugin has finished writing it, so waki's flush after the last
        // byte cannot find the stream closed.
        request = request
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len().to_string())
            .body(body.to_vec());
    }
    let response = request.send().map_err(|e| {
        transport_cause(e.downcast_ref::<ErrorCode>(), &settings.api_url, || {
            format!("{e:#}")
        })
    })?;
    let status = response.status_code();
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.header(*name)?.to_str().ok()?;
            Some((*name, value.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk(64 * 1024)
        .map_err(|e| format!("reading the response failed: {e:#}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the response is larger than {MAX_BODY_BYTES} bytes: is api-url a GitHub API?"
            ));
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Words for a transport failure; the common ones say what to do.
fn transport_cause(
    code: Option<&ErrorCode>,
    api_url: &str,
    other: impl FnOnce() -> String,
) -> String {
    match code {
        Some(ErrorCode::HttpRequestDenied) => format!(
            "keyrot denied the request: grant the host with --allow-host {}",
            allow_host_flag(api_url)
        ),
        Some(ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound) => {
            "cannot resolve the host name".into()
        }
        Some(ErrorCode::ConnectionRefused) => "connection refused".into(),
        Some(ErrorCode::ConnectionTimeout) => "connection timed out".into(),
        Some(ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout) => {
            "GitHub did not answer in time".into()
        }
        Some(ErrorCode::TlsCertificateError) => "the server's TLS certificate is not valid".into(),
        Some(code) => format!("{code:?}"),
        None => other(),
    }
}

/// The `--allow-host` value that admits `api_url`: the bare host for HTTPS
/// on 443, otherwise scheme, host and port spelled out.
fn allow_host_flag(api_url: &str) -> String {
    let authority = api_url
        .split_once("://")
        .map_or(api_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    match api_url.strip_prefix("https://") {
        Some(_) if !authority.contains(':') => authority.to_string(),
        _ => {
            let scheme = api_url.split_once("://").map_or("https", |(s, _)| s);
            format!("{scheme}://{authority}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_host_flag_matches_keyrot_syntax() {
        assert_eq!(allow_host_flag("https://api.github.com"), "api.github.com");
        assert_eq!(
            allow_host_flag("https://ghe.example.com/api/v3"),
            "ghe.example.com"
        );
        assert_eq!(
            allow_host_flag("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            allow_host_flag("https://ghe.example.com:8443/api"),
            "https://ghe.example.com:8443"
        );
    }

    #[test]
    fn transport_causes_are_worded() {
        let denied = transport_cause(
            Some(&ErrorCode::HttpRequestDenied),
            "https://api.github.com",
            String::new,
        );
        assert_eq!(
            denied,
            "keyrot denied the request: grant the host with --allow-host api.github.com"
        );
        assert_eq!(
            transport_cause(Some(&ErrorCode::ConnectionRefused), "", String::new),
            "connection refused"
        );
        assert_eq!(transport_cause(None, "", || "boom".into()), "boom");
    }
}
