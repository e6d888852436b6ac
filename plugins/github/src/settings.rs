//! The plugin's settings, parsed and checked without any I/O: where the
//! secrets go (a repository, one of its environments, or an organization),
//! how to reach the API, and what the two secrets are called. Everything here
//! is pure so it is unit-tested natively; `lib.rs` feeds it `wasi:config`.

use std::fmt;

/// Setting names, as the operator passes them with `--config NAME=VALUE`.
pub const REPO: &str = "repo";
pub const ORG: &str = "org";
pub const ENVIRONMENT: &str = "environment";
pub const TOKEN: &str = "token";
pub const API_URL: &str = "api-url";
pub const KEY_ID_SECRET_NAME: &str = "key-id-secret-name";
pub const SECRET_KEY_SECRET_NAME: &str = "secret-key-secret-name";
pub const VISIBILITY: &str = "visibility";

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_KEY_ID_SECRET_NAME: &str = "AWS_ACCESS_KEY_ID";
pub const DEFAULT_SECRET_KEY_SECRET_NAME: &str = "AWS_SECRET_ACCESS_KEY";

/// GitHub's limit on environment names.
const MAX_ENVIRONMENT_LEN: usize = 255;

/// Which repositories of an organization can read an organization secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    All,
    Private,
    /// Only the selected repositories; the plugin sends back the list the
    /// secret has.
    Selected,
}

impl Visibility {
    /// The value of the `visibility` field in GitHub's API.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::All => "all",
            Visibility::Private => "private",
            Visibility::Selected => "selected",
        }
    }

    /// Parses GitHub's `visibility` field.
    pub fn parse(value: &str) -> Option<Visibility> {
        match value {
            "all" => Some(Visibility::All),
            "private" => Some(Visibility::Private),
            "selected" => Some(Visibility::Selected),
            _ => None,
        }
    }
}

/// Where the secrets are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Repo {
        owner: String,
        repo: String,
    },
    Environment {
        owner: String,
        repo: String,
        environment: String,
    },
    Org {
        org: String,
        /// The operator's explicit choice; `None` keeps each secret's own
        /// (and a new secret is `private`).
        visibility: Option<Visibility>,
    },
}

impl Target {
    /// The API path under which this target's Actions secrets live.
    fn secrets_path(&self) -> String {
        match self {
            Target::Repo { owner, repo } => format!("/repos/{owner}/{repo}/actions/secrets"),
            Target::Environment {
                owner,
                repo,
                environment,
            } => format!(
                "/repos/{owner}/{repo}/environments/{}/secrets",
                percent_encode(environment)
            ),
            Target::Org { org, .. } => format!("/orgs/{org}/actions/secrets"),
        }
    }

    /// Path of the public key that secrets for this target are sealed with.
    pub fn public_key_path(&self) -> String {
        format!("{}/public-key", self.secrets_path())
    }

    /// Path to create or update the secret `name`.
    pub fn secret_path(&self, name: &str) -> String {
        // Secret names are validated to [A-Za-z0-9_], so they need no encoding.
        format!("{}/{name}", self.secrets_path())
    }

    /// The `visibility` the operator set explicitly; `None` when not set
    /// (and always for repositories and environments, whose API has no such
    /// field).
    pub fn visibility(&self) -> Option<Visibility> {
        match self {
            Target::Org { visibility, .. } => *visibility,
            _ => None,
        }
    }

    /// The organization, for organization secrets.
    pub fn org(&self) -> Option<&str> {
        match self {
            Target::Org { org, .. } => Some(org),
            _ => None,
        }
    }

    /// `/repos/{owner}/{repo}` for repository and environment secrets.
    pub fn repo_path(&self) -> Option<String> {
        match self {
            Target::Repo { owner, repo } | Target::Environment { owner, repo, .. } => {
                Some(format!("/repos/{owner}/{repo}"))
            }
            Target::Org { .. } => None,
        }
    }

    /// Path of the repositories selected for organization secret `name`,
    /// one page of 100.
    pub fn selected_repositories_path(&self, name: &str, page: u32) -> String {
        format!(
            "{}/{name}/repositories?per_page=100&page={page}",
            self.secrets_path()
        )
    }

    /// What the token needs on this target, for error messages.
    pub fn permissions_hint(&self) -> &'static str {
        match self {
            Target::Repo { .. } => {
                "a fine-grained token needs \"Secrets: read and write\" on the repository \
                 (a classic token: the repo scope)"
            }
            Target::Environment { .. } => {
                "a fine-grained token needs \"Secrets: read and write\" and \
                 \"Environments: read and write\" on the repository (a classic token: the repo scope)"
            }
            Target::Org { .. } => {
                "a fine-grained token needs the organization permission \"Secrets: read and write\" \
                 (a classic token: the admin:org scope)"
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Repo { owner, repo } => write!(f, "repository {owner}/{repo}"),
            Target::Environment {
                owner,
                repo,
                environment,
            } => write!(
                f,
                "environment '{environment}' of repository {owner}/{repo}"
            ),
            Target::Org { org, .. } => write!(f, "organization {org}"),
        }
    }
}

/// A GitHub token. Its `Debug` is redacted so it cannot leak through a
/// `{:?}` of the settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything the plugin needs to talk to GitHub, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub target: Target,
    /// `None`: send no `Authorization` header; the host injects one.
    pub token: Option<Token>,
    /// Base URL without a trailing slash, e.g. `https://api.github.com`.
    pub api_url: String,
    /// Name of the secret that receives the access key id.
    pub key_id_secret: String,
    /// Name of the secret that receives the secret access key.
    pub secret_key_secret: String,
}

impl Settings {
    /// Reads and checks every setting through `get`, which returns a
    /// setting's value or `None` when the operator did not set it. Errors
    /// name the setting and never echo the token.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Self, String> {
        let repo = get(REPO)?;
        let org = get(ORG)?;
        let environment = get(ENVIRONMENT)?;
        let visibility = get(VISIBILITY)?;

        let target = match (repo, org) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "settings '{REPO}' and '{ORG}' are both set: set exactly one"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "set '{REPO}' (e.g. {REPO}=octo/app) or '{ORG}' (e.g. {ORG}=octo-org)"
                ));
            }
            (Some(repo), None) => {
                if visibility.is_some() {
                    return Err(format!(
                        "setting '{VISIBILITY}' applies to organization secrets only: \
                         remove it or use '{ORG}'"
                    ));
                }
                let (owner, repo) = parse_repo(&repo)?;
                match environment {
                    None => Target::Repo { owner, repo },
                    Some(environment) => Target::Environment {
                        owner,
                        repo,
                        environment: parse_environment(&environment)?,
                    },
                }
            }
            (None, Some(org)) => {
                if environment.is_some() {
                    return Err(format!(
                        "setting '{ENVIRONMENT}' needs '{REPO}': environments belong to a repository"
                    ));
                }
                if !is_login(&org) {
                    return Err(format!(
                        "setting '{ORG}' must be an organization name, e.g. octo-org (got '{org}')"
                    ));
                }
                Target::Org {
                    org,
                    visibility: parse_visibility(visibility.as_deref())?,
                }
            }
        };

        let token = match get(TOKEN)? {
            None => None,
            Some(token) => Some(parse_token(token)?),
        };
        let api_url = parse_api_url(get(API_URL)?.as_deref().unwrap_or(DEFAULT_API_URL))?;
        let key_id_secret = parse_secret_name(
            KEY_ID_SECRET_NAME,
            get(KEY_ID_SECRET_NAME)?.unwrap_or_else(|| DEFAULT_KEY_ID_SECRET_NAME.into()),
        )?;
        let secret_key_secret = parse_secret_name(
            SECRET_KEY_SECRET_NAME,
            get(SECRET_KEY_SECRET_NAME)?.unwrap_or_else(|| DEFAULT_SECRET_KEY_SECRET_NAME.into()),
        )?;
        // GitHub secret names are case-insensitive: equal names would make the
        // second write overwrite the first.
        if key_id_secret.eq_ignore_ascii_case(&secret_key_secret) {
            return Err(format!(
                "settings '{KEY_ID_SECRET_NAME}' and '{SECRET_KEY_SECRET_NAME}' name the same \
                 secret '{key_id_secret}': they must differ"
            ));
        }

        Ok(Settings {
            target,
            token,
            api_url,
            key_id_secret,
            secret_key_secret,
        })
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }
}

/// A user or organization login. Restricting the characters also keeps the
/// value from changing the shape of the API path.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_repo_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_repo(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((owner, repo)) if is_login(owner) && is_repo_name(repo) => {
            Ok((owner.to_string(), repo.to_string()))
        }
        _ => Err(format!(
            "setting '{REPO}' must be OWNER/NAME, e.g. octo/app (got '{value}')"
        )),
    }
}

fn parse_environment(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().count() > MAX_ENVIRONMENT_LEN {
        return Err(format!(
            "setting '{ENVIRONMENT}' must be an environment name of 1 to \
             {MAX_ENVIRONMENT_LEN} characters, e.g. production"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "setting '{ENVIRONMENT}' must not contain control characters"
        ));
    }
    Ok(value.to_string())
}

fn parse_visibility(value: Option<&str>) -> Result<Option<Visibility>, String> {
    match value {
        None => Ok(None),
        Some(value) if Visibility::parse(value).is_some() => Ok(Visibility::parse(value)),
        Some(other) => Err(format!(
            "setting '{VISIBILITY}' must be all, private or selected (got '{other}')"
        )),
    }
}

fn parse_token(token: String) -> Result<Token, String> {
    if token.is_empty() {
        return Err(format!(
            "setting '{TOKEN}' is empty: pass a token, or leave it out when the host injects \
             the Authorization header (--inject-header)"
        ));
    }
    // The value becomes a header; say what is wrong without showing it.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "setting '{TOKEN}' contains whitespace or non-ASCII characters: \
             is it a GitHub token?"
        ));
    }
    Ok(Token(token))
}

fn parse_api_url(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "setting '{API_URL}' {why}, e.g. https://api.github.com or \
             https://ghe.example.com/api/v3 (got '{value}')"
        ))
    };
    let rest = match value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    {
        Some(rest) => rest,
        None => return bad("must start with https:// or http://"),
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return bad("must name a host");
    }
    if value.contains(['?', '#']) || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must be a plain base URL");
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// GitHub's rules for secret names: letters, digits and underscores, not
/// starting with a digit, and not with the reserved `GITHUB_` prefix.
fn parse_secret_name(setting: &str, name: String) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.to_ascii_uppercase().starts_with("GITHUB_");
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "setting '{setting}' must be a GitHub secret name (letters, digits and underscores, \
             not starting with a digit or GITHUB_), e.g. AWS_ACCESS_KEY_ID (got '{name}')"
        ))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as GitHub
/// asks for environment names in paths (`a/b` → `a%2Fb`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(|name| Ok(map.get(name).cloned()))
    }

    #[test]
    fn repo_with_defaults() {
        let s = load(&[("repo", "octo/app")]).unwrap();
        assert_eq!(
            s.target,
            Target::Repo {
                owner: "octo".into(),
                repo: "app".into()
            }
        );
        assert_eq!(s.token, None);
        assert_eq!(s.key_id_secret, "AWS_ACCESS_KEY_ID");
        assert_eq!(s.secret_key_secret, "AWS_SECRET_ACCESS_KEY");
        assert_eq!(
            s.url(&s.target.public_key_path()),
            "https://api.github.com/repos/octo/app/actions/secrets/public-key"
        );
        assert_eq!(
            s.url(&s.target.secret_path(&s.key_id_secret)),
            "https://api.github.com/repos/octo/app/actions/secrets/AWS_ACCESS_KEY_ID"
        );
        assert_eq!(s.target.visibility(), None);
        assert_eq!(s.target.to_string(), "repository octo/app");
    }

    #[test]
    fn environment_name_is_percent_encoded() {
        let s = load(&[
            ("repo", "octo/app.js"),
            ("environment", "prod/eu west"),
            ("api-url", "http://127.0.0.1:8080/"),
        ])
        .unwrap();
        assert_eq!(
            s.url(&s.target.public_key_path()),
            "http://127.0.0.1:8080/repos/octo/app.js/environments/prod%2Feu%20west/secrets/public-key"
        );
        assert_eq!(
            s.target.secret_path("X"),
            "/repos/octo/app.js/environments/prod%2Feu%20west/secrets/X"
        );
        assert_eq!(
            s.target.to_string(),
            "environment 'prod/eu west' of repository octo/app.js"
        );
    }

    #[test]
    fn org_with_visibility_and_custom_names() {
        let s = load(&[
            ("org", "octo-org"),
            ("visibility", "selected"),
            ("key-id-secret-name", "CI_KEY_ID"),
            ("secret-key-secret-name", "CI_SECRET"),
            ("token", "ghp_abc"),
            ("api-url", "https://ghe.example.com/api/v3"),
        ])
        .unwrap();
        assert_eq!(s.target.visibility(), Some(Visibility::Selected));
        assert_eq!(
            s.url(&s.target.secret_path(&s.secret_key_secret)),
            "https://ghe.example.com/api/v3/orgs/octo-org/actions/secrets/CI_SECRET"
        );
        assert_eq!(s.token.unwrap().bearer(), "Bearer ghp_abc");
        let s = load(&[("org", "o")]).unwrap();
        assert_eq!(
            s.target.visibility(),
            None,
            "not set: each secret keeps its own"
        );
        assert_eq!(s.target.org(), Some("o"));
        assert_eq!(
            s.target.selected_repositories_path("A", 2),
            "/orgs/o/actions/secrets/A/repositories?per_page=100&page=2"
        );
        assert_eq!(
            s.target.public_key_path(),
            "/orgs/o/actions/secrets/public-key"
        );
    }

    #[test]
    fn exactly_one_of_repo_and_org() {
        let e = load(&[]).unwrap_err();
        assert!(e.contains("'repo'") && e.contains("'org'"), "{e}");
        let e = load(&[("repo", "o/r"), ("org", "o")]).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn misplaced_settings_are_named() {
        let e = load(&[("org", "o"), ("environment", "prod")]).unwrap_err();
        assert!(e.contains("'environment'"), "{e}");
        let e = load(&[("repo", "o/r"), ("visibility", "all")]).unwrap_err();
        assert!(e.contains("'visibility'"), "{e}");
        let e = load(&[("org", "o"), ("visibility", "public")]).unwrap_err();
        assert!(e.contains("'visibility'") && e.contains("public"), "{e}");
    }

    #[test]
    fn malformed_repo_and_org_are_rejected() {
        for bad in [
            "octo", "octo/", "/app", "o/r/x", "o/..", "o/r?x", "o w/r", "",
        ] {
            let e = load(&[("repo", bad)]).unwrap_err();
            assert!(e.contains("'repo'"), "{bad}: {e}");
        }
        for bad in ["", "a/b", "a b", "a%2F"] {
            let e = load(&[("org", bad)]).unwrap_err();
            assert!(e.contains("'org'"), "{bad}: {e}");
        }
        let e = load(&[("repo", "o/r"), ("environment", "")]).unwrap_err();
        assert!(e.contains("'environment'"), "{e}");
        let e = load(&[("repo", "o/r"), ("environment", "a\nb")]).unwrap_err();
        assert!(e.contains("'environment'"), "{e}");
    }

    #[test]
    fn secret_names_follow_github_rules() {
        for bad in ["", "1ABC", "GITHUB_TOKEN", "github_x", "A-B", "A B"] {
            let e = load(&[("repo", "o/r"), ("key-id-secret-name", bad)]).unwrap_err();
            assert!(e.contains("'key-id-secret-name'"), "{bad}: {e}");
        }
        let e = load(&[
            ("repo", "o/r"),
            ("key-id-secret-name", "SAME"),
            ("secret-key-secret-name", "same"),
        ])
        .unwrap_err();
        assert!(e.contains("must differ"), "{e}");
    }

    #[test]
    fn api_url_must_be_a_base_url() {
        for bad in [
            "api.github.com",
            "ftp://x",
            "https://",
            "https://x/?a=b",
            "https://x y",
        ] {
            let e = load(&[("repo", "o/r"), ("api-url", bad)]).unwrap_err();
            assert!(e.contains("'api-url'"), "{bad}: {e}");
        }
    }

    #[test]
    fn token_errors_never_echo_it() {
        let e = load(&[("repo", "o/r"), ("token", "")]).unwrap_err();
        assert!(e.contains("'token'"), "{e}");
        let e = load(&[("repo", "o/r"), ("token", "ghp_sec ret")]).unwrap_err();
        assert!(e.contains("'token'") && !e.contains("ghp_sec"), "{e}");
        let s = load(&[("repo", "o/r"), ("token", "ghp_secret")]).unwrap();
        assert!(!format!("{s:?}").contains("ghp_secret"));
    }

    #[test]
    fn lookup_errors_propagate() {
        let e = Settings::load(|_| Err("store unavailable".into())).unwrap_err();
        assert_eq!(e, "store unavailable");
    }
}
