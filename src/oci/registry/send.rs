//! One request under keyrot's rules: credentials (once the registry asked)
//! only to the registry's own origin, one retry after a 401 with what it
//! asked for, redirects followed by hand, and plain HTTP only to loopback
//! or a host named with `--insecure-registry`.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use super::super::auth::Challenge;
use super::super::{OciError, shown};
use super::Client;
use super::hosts::same_origin;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

impl Client<'_> {
    /// Sends a request: credentials (once a registry asked for them) only
    /// to the registry's origin, one retry after a 401 with what it asked
    /// for, and redirects of GET and HEAD followed by hand.
    pub(super) async fn send(
        &mut self,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        action: &'static str,
    ) -> Result<Response, OciError> {
        let mut redirects = 0;
        let mut authenticated = false;
        loop {
            let ours = same_origin(&url, &self.origin);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if ours && let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.as_str());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(action, e))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && ours && !authenticated {
                authenticated = true;
                match challenge(&response) {
                    Some(challenge) => {
                        self.authenticate(challenge, action).await?;
                        continue;
                    }
                    None => return Err(self.status_error(action, response).await),
                }
            }
            if status.is_redirection() && (method == Method::GET || method == Method::HEAD) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(self.protocol_error(action, "too many redirects"));
                }
                url = self.redirect_target(&response, &url, action)?;
                continue;
            }
            return Ok(response);
        }
    }

    /// Where a redirect from `url` leads, if keyrot follows it there: an
    /// HTTP URL, plain HTTP only to loopback or an insecure-named host.
    fn redirect_target(
        &self,
        response: &Response,
        url: &Url,
        action: &'static str,
    ) -> Result<Url, OciError> {
        let next = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| self.protocol_error(action, "a redirect without a location"))?;
        if next.scheme() == "http" && !self.may_use_plain_http(&next) {
            return Err(self.protocol_error(
                action,
                &format!(
                    "it redirected to plain HTTP on a host that is neither loopback nor \
                     named with --insecure-registry ({}); refusing",
                    shown(next.origin().ascii_serialization().as_str())
                ),
            ));
        }
        if next.scheme() != "https" && next.scheme() != "http" {
            return Err(self.protocol_error(action, "a redirect to a non-HTTP URL"));
        }
        Ok(next)
    }
}

/// The challenge of a 401, if it has one keyrot speaks.
fn challenge(response: &Response) -> Option<Challenge> {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse)
}
