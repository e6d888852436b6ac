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

/// Who may read an organization secret: what a PUT must send, since GitHub
/// overwrites the stored visibility (and repository list) with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgScope {
    pub visibility: Visibility,
    /// The selected repositories' ids; empty unless `Selected`.
    pub repository_ids: Vec<u64>,
}

impl std::fmt::Display for OrgScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.visibility {
            Visibility::Selected => write!(
                f,
                "visibility selected ({} repositories)",
                self.repository_ids.len()
            ),
            v => write!(f, "visibility {}", v.as_str()),
        }
    }
}

/// The body of `PUT .../secrets/{name}`: the sealed value, the key that
/// sealed it and, for organization secrets, who may read it.
pub fn put_body(sealed: &[u8], key_id: &str, scope: Option<&OrgScope>) -> Vec<u8> {
    let mut body = serde_json::json!({
        "encrypted_value": BASE64.encode(sealed),
        "key_id": key_id,
    });
    if let Some(scope) = scope {
        body["visibility"] = scope.visibility.as_str().into();
        if scope.visibility == Visibility::Selected && !scope.repository_ids.is_empty() {
            body["selected_repository_ids"] = scope.repository_ids.clone().into();
        }
    }
    body.to_string().into_bytes()
}

/// The `visibility` of `GET /orgs/{org}/actions/secrets/{name}`.
pub fn parse_org_secret(body: &[u8]) -> Result<Visibility, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("GitHub returned a malformed secret ({e})"))?;
    let visibility = value.get("visibility").and_then(|v| v.as_str());
    visibility.and_then(Visibility::parse).ok_or_else(|| {
        format!(
            "GitHub returned a secret with an unknown visibility ({})",
            visibility.unwrap_or("none")
        )
    })
}

/// One page of `GET .../secrets/{name}/repositories`: `total_count` and the
/// ids on this page.
pub fn parse_repositories_page(body: &[u8]) -> Result<(u64, Vec<u64>), String> {
    #[derive(Deserialize)]
    struct Repository {
        id: u64,
    }
    #[derive(Deserialize)]
    struct Page {
        total_count: u64,
        repositories: Vec<Repository>,
    }
    let page: Page = serde_json::from_slice(body)
        .map_err(|e| format!("GitHub returned a malformed repository list ({e})"))?;
    Ok((
        page.total_count,
        page.repositories.into_iter().map(|r| r.id).collect(),
    ))
}

/// What an organization secret is written with: the operator's explicit
/// `visibility` wins; otherwise the secret keeps what it has (`existing`),
/// and a new secret is `private`. Also returns a warning for the log when
/// the operator's choice changes or empties the secret's reach.
pub fn decide_scope(
    explicit: Option<Visibility>,
    existing: Option<OrgScope>,
) -> (OrgScope, Option<String>) {
    match (explicit, existing) {
        (None, Some(existing)) => (existing, None),
        (None, None) => (
            OrgScope {
                visibility: Visibility::Private,
                repository_ids: Vec::new(),
            },
            None,
        ),
        (Some(Visibility::Selected), Some(existing))
            if existing.visibility == Visibility::Selected =>
        {
            (existing, None)
        }
        (Some(wanted), existing) => {
            let scope = OrgScope {
                visibility: wanted,
                repository_ids: Vec::new(),
            };
            let warning = match (&existing, wanted) {
                (_, Visibility::Selected) => Some(format!(
                    "setting 'visibility' is selected but the secret {}: it will reach no \
                     repository until you select some in GitHub",
                    existing
                        .as_ref()
                        .map_or("is new".to_string(), |e| format!("has {e}"))
                )),
                (Some(existing), _) if existing.visibility != wanted => Some(format!(
                    "setting 'visibility' changes the secret from {existing} to {scope}"
                )),
                _ => None,
            };
            (scope, warning)
        }
    }
}

/// The token user's `permissions` on a repository (`GET /repos/{o}/{r}`):
/// `Some(true)` if it may push (write), `Some(false)` if not, `None` when
/// the answer does not say (e.g. a GitHub App token).
pub fn can_push(body: &[u8]) -> Option<bool> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let permissions = value.get("permissions")?;
    let flag = |name: &str| permissions.get(name).and_then(|v| v.as_bool());
    Some(flag("push")? || flag("maintain").unwrap_or(false) || flag("admin").unwrap_or(false))
}

/// The `role` of `GET /user/memberships/orgs/{org}` (`admin`, `member`).
pub fn membership_role(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("state").and_then(|v| v.as_str()) != Some("active") {
        return Some("pending".into());
    }
    Some(value.get("role")?.as_str()?.to_string())
}

/// A classic token's scopes (`X-OAuth-Scopes`, absent for fine-grained
/// tokens and apps) checked against what writing secrets on `target` needs,
/// as GitHub documents it: `repo` for repositories and environments,
/// `admin:org` for organizations.
pub fn check_scopes(scopes: Option<&str>, target: &Target) -> Result<(), String> {
    let Some(scopes) = scopes else {
        return Ok(());
    };
    let needed = if target.org().is_some() {
        "admin:org"
    } else {
        "repo"
    };
    if scopes.split(',').any(|s| s.trim() == needed) {
        return Ok(());
    }
    let scopes = scopes.trim();
    Err(format!(
        "the token (a classic token with scopes: {}) lacks the {needed} scope that writing \
         secrets of {target} needs: add it to the token",
        if scopes.is_empty() { "none" } else { scopes }
    ))
}

/// A rate limit, as GitHub signals it: a 403 or 429 with `retry-after`, or
/// with `x-ratelimit-remaining: 0`, or a message that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Seconds to wait before retrying, when GitHub says (`retry-after`,
    /// else `x-ratelimit-reset` for a primary limit).
    pub retry_in: Option<u64>,
    /// GitHub's message.
    pub message: Option<String>,
}

/// Recognizes a rate-limit answer. `header` looks up a response header,
/// `now` is the current Unix time in seconds.
pub fn rate_limit<'a>(
    status: u16,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: u64,
) -> Option<RateLimit> {
    if status != 403 && status != 429 {
        return None;
    }
    let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let retry_after = number("retry-after");
    let exhausted = number("x-ratelimit-remaining") == Some(0);
    let message = github_message(body);
    let says_so = message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("rate limit"));
    if retry_after.is_none() && !exhausted && !says_so && status == 403 {
        // A plain 403 is a permissions problem.
        return None;
    }
    let retry_in = retry_after.or_else(|| {
        exhausted
            .then(|| number("x-ratelimit-reset"))
            .flatten()
            .map(|reset| reset.saturating_sub(now) + 1)
    });
    Some(RateLimit { retry_in, message })
}

/// The error for a rate limit GitHub would not lift in time.
pub fn rate_limit_error(call: Call<'_>, target: &Target, status: u16, limit: &RateLimit) -> String {
    let message = limit
        .message
        .as_ref()
        .map_or(String::new(), |m| format!(": {m}"));
    let when = match limit.retry_in {
        Some(seconds) => format!("GitHub asks to retry in {seconds} s"),
        None => "GitHub did not say when to retry; wait a few minutes".into(),
    };
    format!(
        "GitHub rate limit reached ({status}{message}) while {}: {when}, then run keyrot again",
        call.describe(target)
    )
}

/// Where a redirect leads: `location` resolved against `current`, if it
/// stays on the API's origin (scheme, host and port of `api_url`); an
/// error naming the other origin otherwise.
pub fn redirect_target(api_url: &str, current: &str, location: &str) -> Result<String, String> {
    let origin = |url: &str| -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        Some(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase()
        ))
    };
    let target = if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') && !location.starts_with("//") {
        format!("{}{location}", origin(current).unwrap_or_default())
    } else {
        return Err(format!(
            "GitHub answered with a redirect to '{location}', which this plugin does not follow"
        ));
    };
    if target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("GitHub answered with a malformed redirect".into());
    }
    match (origin(&target), origin(api_url)) {
        (Some(to), Some(api)) if to == api => Ok(target),
        (to, _) => Err(format!(
            "GitHub redirected to another host ({}); the plugin follows redirects on {api_url} only",
            to.unwrap_or_else(|| "an invalid URL".into())
        )),
    }
}

/// The API call that failed, for error messages.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    ReadPublicKey,
    SetSecret(&'a str),
    ReadSecret(&'a str),
    ListRepositories(&'a str),
    ReadRepository,
    ReadMembership,
}

impl Call<'_> {
    /// "reading the public key of repository o/r" and the like.
    pub fn describe(&self, target: &Target) -> String {
        match self {
            Call::ReadPublicKey => format!("reading the secrets public key of {target}"),
            Call::SetSecret(name) => format!("setting secret {name} in {target}"),
            Call::ReadSecret(name) => {
                format!("reading the visibility of secret {name} in {target}")
            }
            Call::ListRepositories(name) => {
                format!("listing the repositories selected for secret {name} in {target}")
            }
            Call::ReadRepository => format!("reading the token's permissions on {target}"),
            Call::ReadMembership => format!("reading the token's membership of {target}"),
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
            serde_json::from_slice(&put_body(&[1], "k1", Some(&scope(Visibility::All, &[]))))
                .unwrap();
        assert_eq!(body["visibility"], "all");
        assert!(body.get("selected_repository_ids").is_none());
        let body: serde_json::Value = serde_json::from_slice(&put_body(
            &[1],
            "k1",
            Some(&scope(Visibility::Selected, &[3, 1])),
        ))
        .unwrap();
        assert_eq!(body["visibility"], "selected");
        assert_eq!(body["selected_repository_ids"], serde_json::json!([3, 1]));
    }

    fn scope(visibility: Visibility, ids: &[u64]) -> OrgScope {
        OrgScope {
            visibility,
            repository_ids: ids.to_vec(),
        }
    }

    #[test]
    fn a_secret_keeps_its_scope_unless_told_otherwise() {
        let selected = scope(Visibility::Selected, &[7, 8]);
        assert_eq!(
            decide_scope(None, Some(selected.clone())),
            (selected.clone(), None)
        );
        assert_eq!(
            decide_scope(None, None),
            (scope(Visibility::Private, &[]), None),
            "a new secret is private"
        );
        assert_eq!(
            decide_scope(Some(Visibility::Selected), Some(selected.clone())),
            (selected.clone(), None),
            "selected keeps the same repositories"
        );
        let (all, warning) = decide_scope(Some(Visibility::All), Some(selected));
        assert_eq!(all, scope(Visibility::All, &[]));
        assert!(
            warning
                .unwrap()
                .contains("from visibility selected (2 repositories)")
        );
        let (_, warning) = decide_scope(Some(Visibility::Selected), None);
        assert!(warning.unwrap().contains("reach no repository"));
        let all = scope(Visibility::All, &[]);
        assert_eq!(
            decide_scope(Some(Visibility::All), Some(all.clone())),
            (all, None)
        );
    }

    #[test]
    fn parses_org_secrets_and_repository_pages() {
        assert_eq!(
            parse_org_secret(br#"{"name":"A","visibility":"selected"}"#),
            Ok(Visibility::Selected)
        );
        assert!(parse_org_secret(br#"{"name":"A","visibility":"public"}"#).is_err());
        assert_eq!(
            parse_repositories_page(
                br#"{"total_count":3,"repositories":[{"id":1,"name":"a"},{"id":2}]}"#
            ),
            Ok((3, vec![1, 2]))
        );
        assert!(parse_repositories_page(b"{}").is_err());
    }

    #[test]
    fn write_access_from_permissions_membership_and_scopes() {
        assert_eq!(
            can_push(br#"{"permissions":{"push":true,"pull":true}}"#),
            Some(true)
        );
        assert_eq!(
            can_push(br#"{"permissions":{"admin":false,"push":false,"pull":true}}"#),
            Some(false)
        );
        assert_eq!(can_push(br#"{"id":1}"#), None);
        assert_eq!(
            membership_role(br#"{"state":"active","role":"admin"}"#).as_deref(),
            Some("admin")
        );
        assert_eq!(
            membership_role(br#"{"state":"pending","role":"admin"}"#).as_deref(),
            Some("pending")
        );
        let org = Target::Org {
            org: "o".into(),
            visibility: None,
        };
        assert_eq!(check_scopes(None, &repo()), Ok(()));
        assert_eq!(check_scopes(Some("repo, workflow"), &repo()), Ok(()));
        assert_eq!(check_scopes(Some("admin:org, repo"), &org), Ok(()));
        let e = check_scopes(Some("public_repo"), &repo()).unwrap_err();
        assert!(e.contains("lacks the repo scope"), "{e}");
        let e = check_scopes(Some(""), &org).unwrap_err();
        assert!(e.contains("scopes: none") && e.contains("admin:org"), "{e}");
    }

    #[test]
    fn recognizes_rate_limits() {
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        };
        let secondary = br#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(
            rate_limit(403, headers(&[("retry-after", "7")]), secondary, 0),
            Some(RateLimit {
                retry_in: Some(7),
                message: Some("You have exceeded a secondary rate limit.".into())
            })
        );
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1100"),
        ]);
        assert_eq!(
            rate_limit(429, primary, b"", 1000).unwrap().retry_in,
            Some(101)
        );
        assert_eq!(
            rate_limit(403, headers(&[]), secondary, 0)
                .unwrap()
                .retry_in,
            None
        );
        let forbidden = br#"{"message":"Resource not accessible by personal access token"}"#;
        assert_eq!(
            rate_limit(
                403,
                headers(&[("x-ratelimit-remaining", "4999")]),
                forbidden,
                0
            ),
            None
        );
        assert_eq!(
            rate_limit(500, headers(&[("retry-after", "1")]), b"", 0),
            None
        );
        let e = rate_limit_error(
            Call::SetSecret("A"),
            &repo(),
            429,
            &RateLimit {
                retry_in: Some(3600),
                message: None,
            },
        );
        assert!(
            e.starts_with("GitHub rate limit reached (429) while setting secret A"),
            "{e}"
        );
        assert!(e.contains("retry in 3600 s") && !e.contains("token"), "{e}");
    }

    #[test]
    fn follows_redirects_on_the_api_origin_only() {
        let api = "http://127.0.0.1:8080";
        assert_eq!(
            redirect_target(api, "http://127.0.0.1:8080/repos/o/r", "/repositories/1/x"),
            Ok("http://127.0.0.1:8080/repositories/1/x".into())
        );
        assert_eq!(
            redirect_target(api, "http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"),
            Ok("http://127.0.0.1:8080/b".into())
        );
        let e =
            redirect_target(api, "http://127.0.0.1:8080/a", "http://127.0.0.1:9/b").unwrap_err();
        assert!(e.contains("another host (http://127.0.0.1:9)"), "{e}");
        assert!(redirect_target(api, "http://127.0.0.1:8080/a", "//evil/b").is_err());
        assert!(redirect_target(api, "http://127.0.0.1:8080/a", "b").is_err());
        let ghe = "https://ghe.example.com/api/v3";
        assert!(redirect_target(ghe, "https://ghe.example.com/api/v3/x", "/api/v3/y").is_ok());
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
