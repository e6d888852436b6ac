//! Calls to AWS services that speak the JSON protocol (Secrets Manager, SSM)
//! from a keyrot handler, over `wasi:http`. The plugin holds no AWS
//! credentials: keyrot's host signs each request to an `--aws-sign` host
//! (SigV4) after its allow-list check, so a request here is plain JSON.
//!
//! Also: where the service is (`endpoint-url` or the region's public
//! endpoint), retries of throttled and failed-on-the-server calls with
//! backoff, and AWS's error shape (`__type`, `message`) in words.

use std::time::Duration;

use serde_json::Value;
use waki::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use waki::{Client, ErrorCode, Method};

/// keyrot caps it at 10 s too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers here are small; anything bigger is not the service.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Attempts per call when AWS throttles or fails on its side.
const MAX_ATTEMPTS: u32 = 4;

/// One AWS service at one endpoint.
pub struct Service {
    /// `https://secretsmanager.eu-west-1.amazonaws.com`, or an override.
    pub endpoint: String,
    /// The `X-Amz-Target` prefix, e.g. `secretsmanager` or `AmazonSSM`.
    target: &'static str,
    user_agent: &'static str,
}

/// Why a call failed.
#[derive(Debug)]
pub enum AwsError {
    /// AWS answered with an error: its code (`ResourceNotFoundException`)
    /// and message.
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: refused, unreachable, denied by keyrot, unreadable.
    Transport(String),
}

impl AwsError {
    /// The error code, for a service error.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            AwsError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AwsError::Service {
                status,
                code,
                message,
            } => {
                write!(f, "{code} (HTTP {status})")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if matches!(code.as_str(), "MissingAuthenticationTokenException" | "MissingAuthenticationToken")
                    || message.contains("Missing Authentication Token")
                {
                    write!(
                        f,
                        " (the request was not signed: give keyrot --aws-sign for this host, \
                         with --aws-sign-role-arn)"
                    )?;
                }
                Ok(())
            }
            AwsError::Transport(why) => f.write_str(why),
        }
    }
}

impl Service {
    /// The service `name` (`secretsmanager`, `ssm`) at `endpoint`, or at
    /// its public endpoint in `region`.
    pub fn new(
        name: &str,
        target: &'static str,
        endpoint: Option<&str>,
        region: Option<&str>,
        user_agent: &'static str,
    ) -> Result<Service, String> {
        let endpoint = match (endpoint, region) {
            (Some(url), _) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("endpoint-url '{url}' must start with https:// or http://"));
                }
                url.trim_end_matches('/').to_string()
            }
            (None, Some(region)) => format!("https://{name}.{region}.amazonaws.com"),
            (None, None) => {
                return Err("no region: set region (or endpoint-url), or name the secret by its ARN".into());
            }
        };
        Ok(Service {
            endpoint,
            target,
            user_agent,
        })
    }

    /// The `--allow-host` (and `--aws-sign`) value for this endpoint.
    pub fn host_flag(&self) -> String {
        let authority = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        match self.endpoint.strip_prefix("https://") {
            Some(_) if !authority.contains(':') => authority.to_string(),
            _ => {
                let scheme = self.endpoint.split_once("://").map_or("https", |(s, _)| s);
                format!("{scheme}://{authority}")
            }
        }
    }

    /// Calls `operation` with `input`; retries throttling and server
    /// errors (the same input: every write here is idempotent, by a client
    /// token or by writing the same value).
    pub fn call(&self, operation: &str, input: &Value) -> Result<Value, AwsError> {
        let body = serde_json::to_vec(input).expect("JSON serializes");
        let mut attempt = 1;
        loop {
            match self.call_once(operation, &body) {
                Err(AwsError::Service { status, code, .. })
                    if attempt < MAX_ATTEMPTS && retryable(status, &code) =>
                {
                    // 0.5 s, 1 s, 2 s: within keyrot's default 60 s per call.
                    std::thread::sleep(Duration::from_millis(500 << (attempt - 1)));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn call_once(&self, operation: &str, body: &[u8]) -> Result<Value, AwsError> {
        let response = Client::new()
            .request(Method::Post, &format!("{}/", self.endpoint))
            .connect_timeout(CONNECT_TIMEOUT)
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("{}.{operation}", self.target))
            .header(USER_AGENT, self.user_agent)
            // With its length: keyrot signs a body it can read whole.
            .header(CONTENT_LENGTH, body.len().to_string())
            .body(body.to_vec())
            .send()
            .map_err(|e| {
                AwsError::Transport(transport_cause(e.downcast_ref::<ErrorCode>(), self, || {
                    format!("{e:#}")
                }))
            })?;
        let status = response.status_code();
        let error_type = response
            .header("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk(64 * 1024)
            .map_err(|e| AwsError::Transport(format!("reading the answer failed: {e:#}")))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_BODY_BYTES {
                return Err(AwsError::Transport(format!(
                    "the answer is larger than {MAX_BODY_BYTES} bytes: is {} an AWS endpoint?",
                    self.endpoint
                )));
            }
        }
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                AwsError::Transport(format!(
                    "the answer (HTTP {status}) is not JSON: is {} an AWS endpoint?",
                    self.endpoint
                ))
            })?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let code = value
            .get("__type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(error_type)
            .unwrap_or_else(|| format!("HTTP{status}"));
        // `com.amazonaws.secretsmanager#ResourceNotFoundException` and
        // `ResourceNotFoundException:http://...` both name the code.
        let code = code.rsplit('#').next().unwrap_or(&code);
        let code = code.split(':').next().unwrap_or(code).to_string();
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        Err(AwsError::Service {
            status,
            code,
            message,
        })
    }
}

/// Throttling and AWS's own failures are worth another try.
fn retryable(status: u16, code: &str) -> bool {
    status >= 500
        || status == 429
        || matches!(
            code,
            "ThrottlingException" | "Throttling" | "TooManyUpdates" | "RequestLimitExceeded"
        )
}

/// Words for a transport failure; the common ones say what to do.
fn transport_cause(code: Option<&ErrorCode>, service: &Service, other: impl FnOnce() -> String) -> String {
    let at = &service.endpoint;
    match code {
        Some(ErrorCode::HttpRequestDenied) => format!(
            "keyrot denied the request to {at}: grant the host with --allow-host {0} \
             --aws-sign {0}",
            service.host_flag()
        ),
        Some(ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound) => {
            format!("cannot resolve {at}")
        }
        Some(ErrorCode::ConnectionRefused) => format!("{at}: connection refused"),
        Some(ErrorCode::ConnectionTimeout) => format!("{at}: connection timed out"),
        Some(ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout) => {
            format!("{at} did not answer in time")
        }
        Some(ErrorCode::TlsCertificateError) => format!("{at}: the TLS certificate is not valid"),
        Some(code) => format!("{at}: {code:?}"),
        None => format!("{at}: {}", other()),
    }
}

/// `AKIA...` or `ASIA...`: looks like an access key id.
pub fn is_key_id(text: &str) -> bool {
    text.len() >= 16
        && (text.starts_with("AKIA") || text.starts_with("ASIA"))
        && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A store may hold the user's current key, any key an interrupted run
/// left (contract 0.4.0's abandoned keys), or no key id at all; any other
/// key id belongs to another user or another process. `place` names the
/// store for the error.
pub fn check_holder(
    held: Option<&str>,
    current: Option<&str>,
    abandoned: &[String],
    user: &str,
    place: &str,
) -> Result<(), String> {
    let Some(held) = held.filter(|h| is_key_id(h)) else {
        return Ok(());
    };
    if current == Some(held) || abandoned.iter().any(|id| id == held) {
        return Ok(());
    }
    Err(format!(
        "{place} holds key {held}, which is not {user}'s current key ({}): it belongs to \
         another user or is managed by someone else; nothing was changed",
        current.unwrap_or("none")
    ))
}

/// The region of an ARN (`arn:aws:secretsmanager:eu-west-1:...`).
pub fn region_of_arn(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, _, region, _, _] if !region.is_empty() => Some(region),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_their_flags() {
        let s = Service::new("secretsmanager", "secretsmanager", None, Some("eu-west-1"), "t").unwrap();
        assert_eq!(s.endpoint, "https://secretsmanager.eu-west-1.amazonaws.com");
        assert_eq!(s.host_flag(), "secretsmanager.eu-west-1.amazonaws.com");
        let s = Service::new("ssm", "AmazonSSM", Some("http://127.0.0.1:5000/"), None, "t").unwrap();
        assert_eq!(s.host_flag(), "http://127.0.0.1:5000");
        assert!(Service::new("ssm", "AmazonSSM", None, None, "t").is_err());
        assert!(Service::new("ssm", "AmazonSSM", Some("ftp://x"), None, "t").is_err());
    }

    #[test]
    fn regions_come_from_arns() {
        assert_eq!(
            region_of_arn("arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci-abc"),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("ci/deploy"), None);
    }

    #[test]
    fn a_store_holding_another_key_is_someone_elses() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let left = [key.to_string()];
        assert!(check_holder(None, Some(key), &[], "ci", "s").is_ok());
        assert!(check_holder(Some("placeholder"), Some(key), &[], "ci", "s").is_ok());
        assert!(check_holder(Some(key), Some(key), &[], "ci", "s").is_ok());
        assert!(check_holder(Some(key), None, &left, "ci", "s").is_ok());
        let other = check_holder(Some("AKIAOTHERUSERSKEY123"), Some(key), &[], "ci", "s");
        assert!(other.unwrap_err().contains("AKIAOTHERUSERSKEY123"));
    }

    #[test]
    fn a_store_may_hold_any_key_interrupted_runs_left() {
        let current = Some("AKIACURRENTKEY005678");
        // Newest first; the store holds the older one.
        let left = [
            "AKIANEWERLEFTKEY2222".to_string(),
            "AKIAOLDERLEFTKEY1111".to_string(),
        ];
        assert!(check_holder(Some("AKIAOLDERLEFTKEY1111"), current, &left, "ci", "s").is_ok());
        assert!(check_holder(Some("AKIANEWERLEFTKEY2222"), current, &left, "ci", "s").is_ok());
        assert!(check_holder(Some("AKIAOLDERLEFTKEY1111"), None, &left, "ci", "s").is_ok());
        let other = check_holder(Some("AKIAOTHERUSERSKEY123"), current, &left, "ci", "s");
        assert!(other.unwrap_err().contains("AKIAOTHERUSERSKEY123"));
    }

    #[test]
    fn throttling_is_retried_and_refusals_are_not() {
        assert!(retryable(400, "ThrottlingException"));
        assert!(retryable(503, "ServiceUnavailable"));
        assert!(!retryable(400, "ResourceNotFoundException"));
        assert!(!retryable(403, "AccessDeniedException"));
    }
}
