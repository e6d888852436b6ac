//! Outbound HTTP for reporters, through waki's blocking `wasi:http`
//! client: a bounded response, transport failures in words, and POSTs
//! retried with backoff on 429 and 5xx (honouring `Retry-After`), within a
//! fixed number of attempts and a total wait, so a reporter always ends
//! before keyrot's time limit for it.

use std::time::Duration;

use waki::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use waki::{Client, ErrorCode, Method};

/// keyrot caps it at 10 s too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers of chat and incident APIs are small.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest single wait between attempts, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A response: status, `Retry-After` and the (bounded) body.
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in whole seconds, when the server sent one.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, for messages (capped).
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// How a POST is retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// The first backoff; doubled after each attempt.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Sends one POST of a JSON body, with `headers`.
pub fn post_json(
    url: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> Result<Response, String> {
    let mut request = Client::new()
        .request(Method::Post, url)
        .connect_timeout(CONNECT_TIMEOUT)
        .header(USER_AGENT, "keyrot-reporter")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        // With its length, not chunked: what the services' own clients send.
        .header(CONTENT_LENGTH, body.len().to_string());
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    let response = request
        .body(body.to_vec())
        .send()
        .map_err(|e| transport(e.downcast_ref::<ErrorCode>(), url, || format!("{e:#}")))?;
    let status = response.status_code();
    let retry_after = response
        .header("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk(64 * 1024)
        .map_err(|e| format!("reading the answer of {url} failed: {e:#}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the answer of {url} is larger than {MAX_BODY_BYTES} bytes"
            ));
        }
    }
    Ok(Response {
        status,
        retry_after,
        body,
    })
}

/// Whether an answer is worth another attempt: rate limited or a server
/// error.
pub fn retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// POSTs `body` until an answer that is not [`retryable`], or the attempts
/// run out (then the last answer). Transport failures are retried too.
/// `Retry-After` (seconds) is honoured, capped at [`MAX_WAIT`].
pub fn post_json_retrying(
    url: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
    retry: Retry,
) -> Result<Response, String> {
    let mut backoff = retry.backoff;
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        let last = attempt == attempts;
        let wait = match post_json(url, headers, body) {
            Ok(response) if last || !retryable(response.status) => return Ok(response),
            Ok(response) => {
                crate::warn(
                    "http",
                    &format!(
                        "{url} answered {} (attempt {attempt} of {attempts}); retrying",
                        response.status
                    ),
                );
                response.retry_after.map(Duration::from_secs)
            }
            Err(why) if last => return Err(why),
            Err(why) => {
                crate::warn(
                    "http",
                    &format!("{why} (attempt {attempt} of {attempts}); retrying"),
                );
                None
            }
        };
        sleep(wait.unwrap_or(backoff).min(MAX_WAIT));
        backoff = backoff.saturating_mul(2);
    }
    unreachable!("the last attempt returns")
}

/// Waits, through `wasi:clocks`.
fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    waki::bindings::wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
}

/// Words for a transport failure; the common ones say what to do.
fn transport(code: Option<&ErrorCode>, url: &str, other: impl FnOnce() -> String) -> String {
    let why = match code {
        Some(ErrorCode::HttpRequestDenied) => {
            "keyrot denied the request: grant the host (allow-hosts in the [[notify]] block, or \
             --notify-allow-host NAME:HOST)"
                .to_string()
        }
        Some(ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound) => {
            "cannot resolve the host name".into()
        }
        Some(ErrorCode::ConnectionRefused) => "connection refused".into(),
        Some(ErrorCode::ConnectionTimeout) => "connection timed out".into(),
        Some(ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout) => {
            "no answer in time".into()
        }
        Some(code) => format!("{code:?}"),
        None => other(),
    };
    format!("cannot reach {url}: {why}")
}
