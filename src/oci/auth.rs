//! Registry credentials, each scoped to the one registry it belongs to,
//! and the `WWW-Authenticate` challenges that ask for them.
//!
//! Credentials come from `KEYROT_REGISTRY_USER` / `KEYROT_REGISTRY_PASSWORD`,
//! which are used only for the registry `KEYROT_REGISTRY_HOST` names, else
//! from the Docker config's entry for that registry (`auths`,
//! `credHelpers`, `credsStore`), else none. They are looked up only when a
//! registry asks (a 401), and where they may be sent is decided in
//! `super::registry`.

use std::fmt;

use zeroize::Zeroizing;

use super::OciError;

/// What keyrot may present to one registry.
pub enum Credential {
    /// A user name and password (HTTP Basic, or to a token service).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Zeroizing<String>,
    },
    /// A `docker login` identity token: a refresh token for the
    /// registry's OAuth2 token service.
    IdentityToken(Zeroizing<String>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The environment variables of [`lookup`].
pub const USER_VAR: &str = "KEYROT_REGISTRY_USER";
/// The password's variable.
pub const PASSWORD_VAR: &str = "KEYROT_REGISTRY_PASSWORD";
/// The variable naming the registry they belong to.
pub const HOST_VAR: &str = "KEYROT_REGISTRY_HOST";

/// The credentials for `registry` (`HOST[:PORT]` as in a reference), if any.
/// Environment credentials count only for the registry
/// `KEYROT_REGISTRY_HOST` names; set without it, they are an error rather
/// than sent to whichever registry asks.
pub fn lookup(registry: &str) -> Result<Option<Credential>, OciError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var(USER_VAR), var(PASSWORD_VAR), var(HOST_VAR)) {
        (None, None, _) => {}
        (Some(_), Some(_), None) => {
            return Err(OciError::Credentials(format!(
                "{USER_VAR} and {PASSWORD_VAR} are set but {HOST_VAR} is not: set it to the \
                 registry they belong to (HOST[:PORT], as in the reference); keyrot never sends \
                 them to every registry that asks"
            )));
        }
        (Some(user), Some(password), Some(host)) => {
            if same_registry(&host, registry) {
                return Ok(Some(Credential::Basic {
                    user,
                    password: Zeroizing::new(password),
                }));
            }
            tracing::debug!(
                registry,
                "{USER_VAR} belongs to {host}, not this registry; trying the Docker config"
            );
        }
        _ => {
            return Err(OciError::Credentials(format!(
                "set both {USER_VAR} and {PASSWORD_VAR} (with {HOST_VAR}), or neither"
            )));
        }
    }
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            Ok(Some(Credential::Basic {
                user,
                password: Zeroizing::new(password),
            }))
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            Ok(Some(Credential::IdentityToken(Zeroizing::new(token))))
        }
        Err(err) => {
            // A helper's failure text may carry its output: never shown.
            let why = match err {
                docker_credential::CredentialRetrievalError::HelperFailure { helper, .. } => {
                    format!("the credential helper {helper} failed")
                }
                other => other.to_string(),
            };
            tracing::debug!(
                registry,
                "no Docker credentials ({why}); going on anonymously"
            );
            Ok(None)
        }
    }
}

/// Whether two registry names (`HOST[:PORT]`) are the same registry: case
/// does not matter in a host name, and `:443` is the default port.
pub fn same_registry(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_suffix(":443").map(str::to_string).unwrap_or(s)
    };
    norm(a) == norm(b)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`: send the credentials to the registry itself.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: get a token from `realm`.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The `service` parameter, if any.
        service: Option<String>,
        /// The `scope` parameter, if any.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses the header's value; `None` for a scheme keyrot does not
    /// speak or a Bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = auth_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `key="value", key=token, …` (RFC 7235 auth-params, quoted strings with
/// backslash escapes).
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        params.push((key, value));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"bearer realm=https://x/t, service = "s\"q""#),
            Some(Challenge::Bearer {
                realm: "https://x/t".into(),
                service: Some("s\"q".into()),
                scope: None,
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="keyrot""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn registries_compare_by_host_and_port() {
        assert!(same_registry("GHCR.io", "ghcr.io"));
        assert!(same_registry("ghcr.io:443", "ghcr.io"));
        assert!(!same_registry("127.0.0.1:5000", "127.0.0.1:5001"));
        assert!(!same_registry("evil.ghcr.io", "ghcr.io"));
    }

    #[test]
    fn a_credential_never_debug_prints_its_secret() {
        let c = Credential::Basic {
            user: "u".into(),
            password: Zeroizing::new("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
