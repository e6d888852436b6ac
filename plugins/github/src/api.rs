//! GitHub's Actions-secrets API as pure data: parsing the public key,
//! building the PUT body, and turning an unsuccessful response into a message
//! that says what failed and what to do. No I/O, so it is unit-tested natively.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::settings::{Target, Visibility};

/// Longest excerpt of GitHub's `message` quoted in an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// The key GitHub seals secrets for one target with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Sent back with each secret so GitHub knows which key sealed it.
    pub key_id: String,
    /// X25519 public key.
    pub key: [u8; 32],
}

/// Parses `{"key_id": "...", "key": "<base64>"}`.
pub fn parse_public_key(body: &[u8]) -> Result<PublicKey, String> {
    #[derive(Deserialize)]
    struct Raw {
        key_id: serde_json::Value,
        key: String,
    }
    let raw: Raw = serde_json::from_slice(body)
        .map_err(|e| format!("GitHub returned a malformed public key ({e})"))?;
    // GitHub documents key_id as a string; accept a number too rather than
    // fail on a representation detail.
    let key_id = match raw.key_id {
        serde_json::Value::String(s) if !s.is_empty() => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err("GitHub returned a public key without a key_id".into()),
    };
    let key = BASE64
        .decode(raw.key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or("GitHub returned a public key that is not 32 base64-encoded bytes")?;
    Ok(PublicKey { key_id, key })
}

/// The body of `PUT .../secrets/{name}`: the sealed value, the key that
/// sealed it and, for organization secrets, who may read it.
pub fn put_body(sealed: &[u8], key_id: &str, visibility: Option<Visibility>) -> Vec<u8> {
    let mut body = serde_json::json!({
        "encrypted_value": BASE64.encode(sealed),
        "key_id": key_id,
    });
    if let Some(visibility) = visibility {
        body["visibility"] = visibility.as_str().into();
    }
    body.to_string().into_bytes()
}

/// The API call that failed, for error messages.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    ReadPublicKey,
    SetSecret(&'a str),
}

impl Call<'_> {
    /// "reading the public key of repository o/r" and the like.
    pub fn describe(&self, target: &Target) -> String {
        match self {
            Call::ReadPublicKey => format!("reading the secrets public key of {target}"),
            Call::SetSecret(name) => format!("setting secret {name} in {target}"),
        }
    }
}

/// Explains a non-2xx answer: the status, GitHub's own `message` when the
/// body has one, which call on which target, and what to check next.
/// `token_setting` says whether the plugin sent the token itself (if not,
/// the header was to be injected by the host).
pub fn status_error(
    call: Call<'_>,
    target: &Target,
    status: u16,
    body: &[u8],
    token_setting: bool,
) -> String {
    // "(401: Bad credentials)" after a status, " (Bad credentials)" after words.
    let message = github_message(body);
    let after_status = message.as_ref().map_or(String::new(), |m| format!(": {m}"));
    let after_words = message
        .as_ref()
        .map_or(String::new(), |m| format!(" ({m})"));
    let action = call.describe(target);
    match status {
        401 | 403 => {
            let source = if token_setting {
                ""
            } else {
                " (no 'token' setting: is the Authorization header injected with \
                 --inject-header?)"
            };
            format!(
                "GitHub rejected the token ({status}{after_status}) while {action}: check the \
                 token's permissions and expiry; {}{source}",
                target.permissions_hint()
            )
        }
        404 => format!(
            "{target} not found, or the token lacks access to it (404) while {action}: \
             check the name and the token's repository or organization access"
        ),
        422 => format!("GitHub refused the request (422{after_status}) while {action}"),
        500..=599 => {
            format!("GitHub error {status}{after_words} while {action}: try again later")
        }
        _ => format!("unexpected GitHub response {status}{after_words} while {action}"),
    }
}

/// GitHub's error bodies are `{"message": "...", ...}`; quote the message,
/// cut short and with control characters removed so a hostile or broken
/// server cannot forge log lines.
pub fn github_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("message")?.as_str()?;
    let mut clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if message.chars().count() > MAX_MESSAGE_CHARS {
        clean.push('…');
    }
    let clean = clean.trim().to_string();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Target {
        Target::Repo {
            owner: "octo".into(),
            repo: "app".into(),
        }
    }

    #[test]
    fn parses_public_key() {
        let key = BASE64.encode([7u8; 32]);
        let body = format!(r#"{{"key_id":"568250167242549743","key":"{key}"}}"#);
        assert_eq!(
            parse_public_key(body.as_bytes()).unwrap(),
            PublicKey {
                key_id: "568250167242549743".into(),
                key: [7; 32]
            }
        );
        let body = format!(r#"{{"key_id":12,"key":"{key}"}}"#);
        assert_eq!(parse_public_key(body.as_bytes()).unwrap().key_id, "12");
    }

    #[test]
    fn rejects_malformed_public_keys() {
        for body in [
            "not json",
            r#"{"key_id":"1"}"#,
            r#"{"key_id":"","key":"AAAA"}"#,
            r#"{"key_id":"1","key":"not base64!"}"#,
            r#"{"key_id":"1","key":"AAAA"}"#,
        ] {
            assert!(parse_public_key(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn put_body_has_visibility_only_for_orgs() {
        let body: serde_json::Value =
            serde_json::from_slice(&put_body(&[1, 2, 3], "k1", None)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"encrypted_value": "AQID", "key_id": "k1"})
        );
        let body: serde_json::Value =
            serde_json::from_slice(&put_body(&[1], "k1", Some(Visibility::All))).unwrap();
        assert_eq!(body["visibility"], "all");
    }

    #[test]
    fn rejected_token_names_the_permission() {
        let e = status_error(
            Call::ReadPublicKey,
            &repo(),
            401,
            br#"{"message":"Bad credentials"}"#,
            true,
        );
        assert!(
            e.starts_with(
                "GitHub rejected the token (401: Bad credentials) while reading the secrets \
                 public key of repository octo/app:"
            ),
            "{e}"
        );
        assert!(e.contains("Secrets: read and write"), "{e}");
        assert!(!e.contains("--inject-header"), "{e}");
        let e = status_error(Call::SetSecret("X"), &repo(), 403, b"", false);
        assert!(e.contains("(403) while setting secret X"), "{e}");
        assert!(e.contains("--inject-header"), "{e}");
    }

    #[test]
    fn not_found_names_the_target() {
        let env = Target::Environment {
            owner: "o".into(),
            repo: "r".into(),
            environment: "prod".into(),
        };
        let e = status_error(Call::ReadPublicKey, &env, 404, b"{}", true);
        assert!(
            e.starts_with(
                "environment 'prod' of repository o/r not found, or the token lacks access \
                 to it (404) while reading"
            ),
            "{e}"
        );
    }

    #[test]
    fn server_and_other_errors() {
        let e = status_error(Call::SetSecret("A"), &repo(), 503, b"<html>", true);
        assert!(
            e.starts_with("GitHub error 503 while setting secret A in repository octo/app: try"),
            "{e}"
        );
        let e = status_error(
            Call::SetSecret("A"),
            &repo(),
            422,
            br#"{"message":"Bad key"}"#,
            true,
        );
        assert!(
            e.starts_with("GitHub refused the request (422: Bad key) while setting"),
            "{e}"
        );
        let e = status_error(
            Call::ReadPublicKey,
            &repo(),
            502,
            br#"{"message":"Bad gateway"}"#,
            true,
        );
        assert!(e.starts_with("GitHub error 502 (Bad gateway) while"), "{e}");
        let e = status_error(Call::ReadPublicKey, &repo(), 301, b"", true);
        assert!(e.starts_with("unexpected GitHub response 301 while"), "{e}");
    }

    #[test]
    fn github_message_is_sanitized() {
        assert_eq!(github_message(br#"{"message":"a\nb"}"#).unwrap(), "a b");
        assert_eq!(github_message(br#"{"message":"  "}"#), None);
        assert_eq!(github_message(br#"{"message":1}"#), None);
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(500));
        let m = github_message(long.as_bytes()).unwrap();
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
