//! Answering a registry's 401: Basic credentials to the registry itself,
//! or a token from the token service its challenge names (the Docker token
//! protocol), credentials sent only where the operator's flags allow.

use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, Url};
use zeroize::Zeroizing;

use super::super::auth::{self, Challenge, Credential};
use super::super::{OciError, shown};
use super::Client;
use super::hosts::authority;

/// A token service's answer is a small JSON document.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

impl Client<'_> {
    /// Answers a challenge: Basic credentials to the registry, or a token
    /// from its token service, each only where [`Client::send`]'s rules
    /// allow. An error says why nothing could be sent and what would allow
    /// it.
    pub(super) async fn authenticate(
        &mut self,
        challenge: Challenge,
        action: &'static str,
    ) -> Result<(), OciError> {
        if self.credential.is_none() {
            self.credential = Some(auth::lookup(&self.registry)?);
        }
        let no_credentials = || OciError::Unauthorized {
            registry: self.registry.clone(),
            action,
            hint: format!(
                "it asks for credentials (HTTP 401) and keyrot has none for it: set {} and {} \
                 with {}={}, or `docker login {}`",
                auth::USER_VAR,
                auth::PASSWORD_VAR,
                auth::HOST_VAR,
                self.registry,
                self.registry
            ),
        };
        match challenge {
            Challenge::Basic => match self.found_credential() {
                Some(Credential::Basic { user, password }) => {
                    use base64::Engine as _;
                    let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                    let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                    self.authorization = Some(Zeroizing::new(format!("Basic {encoded}")));
                    Ok(())
                }
                _ => Err(no_credentials()),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let token = self
                    .token(&realm, service.as_deref(), scope.as_deref())
                    .await?;
                self.authorization = Some(Zeroizing::new(format!("Bearer {}", token.as_str())));
                Ok(())
            }
        }
    }

    /// The credential looked up for this registry, if it has one.
    fn found_credential(&self) -> Option<&Credential> {
        self.credential.as_ref().and_then(Option::as_ref)
    }

    /// Gets a token from the token service `realm` names, sending
    /// credentials only if it is on the registry's host (or a host the
    /// operator allowed) and reached over HTTPS (or plain HTTP to loopback
    /// or an insecure-named host).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Zeroizing<String>, OciError> {
        let url = self.token_service(realm)?;
        let default_scope = format!(
            "repository:{}:{}",
            self.repository,
            if self.push { "pull,push" } else { "pull" }
        );
        let scope = scope.unwrap_or(&default_scope);
        let action = "getting a token";
        let response = self
            .token_request(url, service, scope)
            .send()
            .await
            .map_err(|e| self.transport_error(action, e))?;
        if !response.status().is_success() {
            return Err(self.status_error(action, response).await);
        }
        self.read_token(response, action).await
    }

    /// The token service's URL, if keyrot may ask it: an HTTP URL, plain
    /// HTTP only to loopback or an insecure-named host, and, when there
    /// are credentials to send, on the registry's host or one the operator
    /// named. A refusal gives every reason, each with the flag that would
    /// allow it.
    fn token_service(&self, realm: &str) -> Result<Url, OciError> {
        let refuse = |reason: String| OciError::TokenRealm {
            registry: self.registry.clone(),
            realm: shown(realm).into_owned(),
            reason,
        };
        let url = Url::parse(realm).map_err(|e| refuse(format!("it is not a URL ({e})")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(refuse("it is not an HTTP URL".into()));
        }
        let host = authority(&url);
        let mut why_not = Vec::new();
        if url.scheme() == "http" && !self.may_use_plain_http(&url) {
            why_not.push(format!(
                "it is plain HTTP to a host that is neither loopback nor named with \
                 --insecure-registry {host}"
            ));
        }
        if self.found_credential().is_some() && !self.may_receive_credentials(&url) {
            why_not.push(format!(
                "it is on another host than the registry, and the credentials for {} are \
                 never sent elsewhere unless you name that host with --registry-token-host {host}",
                self.registry
            ));
        }
        if !why_not.is_empty() {
            return Err(refuse(why_not.join("; and ")));
        }
        Ok(url)
    }

    /// The request for a token of `scope`: a `docker login` identity token
    /// is sent as an OAuth2 refresh token in a POSTed form; otherwise a GET
    /// with `service` and `scope` in the query, with the user and password
    /// if there are any.
    fn token_request(&self, mut url: Url, service: Option<&str>, scope: &str) -> RequestBuilder {
        match self.found_credential() {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "keyrot")
                    .append_pair("scope", scope);
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                let body = Zeroizing::new(form.finish());
                self.http
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.as_bytes().to_vec())
            }
            other => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                let request = self.http.get(url);
                match other {
                    Some(Credential::Basic { user, password }) => {
                        request.basic_auth(user, Some(password.as_str()))
                    }
                    _ => request,
                }
            }
        }
    }

    /// The token in a token service's answer: a JSON document of at most
    /// [`MAX_TOKEN_BYTES`] whose `token` (or `access_token`) is printable
    /// ASCII.
    async fn read_token(
        &self,
        response: Response,
        action: &'static str,
    ) -> Result<Zeroizing<String>, OciError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = Zeroizing::new(
            self.read_capped(response, MAX_TOKEN_BYTES, "the token")
                .await?,
        );
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| self.protocol_error(action, "its answer is not a token (JSON)"))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| self.protocol_error(action, "its answer holds no usable token"))?;
        Ok(Zeroizing::new(token))
    }
}
