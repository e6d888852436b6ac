//! Reading what a registry answers: a body within its cap, and the errors
//! keyrot makes of a status, a transport failure or a protocol breach, in
//! the registry's own words, escaped and cut short.

use reqwest::{Response, StatusCode};

use super::super::{OciError, auth, shown};
use super::Client;

/// How much of an error body is read, for its message.
const MAX_ERROR_BYTES: u64 = 16 * 1024;

impl Client<'_> {
    /// Reads a body of at most `max` bytes, stopping at the first byte over.
    pub(super) async fn read_capped(
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
    pub(super) async fn status_error(
        &self,
        action: &'static str,
        mut response: Response,
    ) -> OciError {
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

    pub(super) fn transport_error(&self, action: &'static str, err: reqwest::Error) -> OciError {
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

    pub(super) fn protocol_error(&self, action: &'static str, what: &str) -> OciError {
        OciError::Registry {
            registry: self.registry.clone(),
            action,
            cause: what.to_string(),
        }
    }
}

/// An error and its sources, escaped.
pub(super) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
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
