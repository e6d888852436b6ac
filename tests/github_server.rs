//! A fake GitHub Actions-secrets API for end-to-end tests of the `github`
//! plugin: plain HTTP/1.1 on a free loopback port, served from a background
//! thread that stops when the `FakeGitHub` is dropped.
//!
//! It knows one repository ([`FakeGitHub::REPO`]) with two environments and
//! one organization, accepts only [`FakeGitHub::TOKEN`], and serves each
//! target's public key from a fresh X25519 key pair. A PUT is stored only if
//! its `encrypted_value` opens with the matching secret key, so a stored
//! plaintext proves the plugin's sealed box is libsodium-compatible. Faults
//! ([`Fault`]) make it fail or hang on demand.
//!
//! It behaves as GitHub's REST documentation says, not as the plugin
//! assumes: organization secrets carry a visibility and, for `selected`, a
//! list of repository ids that a PUT overwrites (a PUT without
//! `selected_repository_ids` leaves none selected); the list is paginated
//! (`per_page` at most 100); `GET /repos/{owner}/{repo}` reports the token
//! user's `permissions`; classic tokens get an `X-OAuth-Scopes` header on
//! every answer; every answer carries `x-ratelimit-*` headers, and a rate
//! limit is a 403 or 429 with `retry-after` and/or `x-ratelimit-remaining: 0`;
//! a renamed repository ([`FakeGitHub::OLD_REPO`]) answers 301 (GET) or 307
//! (other methods) pointing at `/repositories/{id}/...`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_box::SecretKey;
use crypto_box::aead::OsRng;

/// Upper bound on a request head; anything larger is a broken client.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Upper bound on a request body; a sealed AWS secret is under 200 bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A client that stops sending mid-request is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accept loop and hanging connections look at the stop flag.
const POLL: Duration = Duration::from_millis(10);

/// A failure the fake injects into its answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer like GitHub.
    #[default]
    None,
    /// Answer every request with this status (and a GitHub-style message).
    Status(u16),
    /// Answer every PUT with this status; public keys are still served.
    StatusOnPut(u16),
    /// Answer PUTs of the secret with this name with the status; others
    /// succeed (to fail the second of the plugin's two writes).
    StatusOnPutOf(String, u16),
    /// Read the request, never answer, and hold the connection open until
    /// the fault changes or the server is dropped (for timeouts).
    Hang,
    /// Answer the next `times` requests whose method is `method` (any if
    /// `None`) with a rate limit, then answer normally.
    RateLimit {
        method: Option<String>,
        limit: RateLimit,
        times: u32,
    },
    /// Redirect every request to the same path on another origin.
    RedirectTo(String),
}

/// A rate-limit answer, as GitHub documents them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// 403 or 429.
    pub status: u16,
    /// `retry-after` in seconds, if sent.
    pub retry_after: Option<u64>,
    /// A primary limit (`x-ratelimit-remaining: 0`, reset in
    /// `reset_in` seconds) or a secondary one (remaining stays above 0).
    pub primary: bool,
    /// Seconds until `x-ratelimit-reset`.
    pub reset_in: u64,
}

/// An organization secret's settings besides its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgSecret {
    /// `all`, `private` or `selected`.
    pub visibility: String,
    /// The selected repository ids (empty unless `selected`).
    pub repository_ids: Vec<u64>,
}

/// The token user's role on [`FakeGitHub::REPO`] and in the organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `permissions.push` of the repository.
    pub push: bool,
    /// `permissions.admin` of the repository.
    pub admin: bool,
    /// `role` of the organization membership: `admin` or `member`.
    pub org_role: String,
    /// `X-OAuth-Scopes` to send (a classic token), or `None` (fine-grained).
    pub oauth_scopes: Option<String>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            push: true,
            admin: true,
            org_role: "admin".into(),
            oauth_scopes: None,
        }
    }
}

/// One request the fake received, in arrival order.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// Whether `Authorization` was exactly `Bearer` + [`FakeGitHub::TOKEN`].
    pub authorized: bool,
    /// Every header, names lowercased (a repeated header keeps its last value).
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, if it was JSON.
    pub body: Option<serde_json::Value>,
    /// Whether the body came `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

/// A running fake GitHub API. See the module docs.
pub struct FakeGitHub {
    /// Base URL to pass as the plugin's `api-url`, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    secret_key: SecretKey,
    fault: Mutex<Fault>,
    secrets: Mutex<BTreeMap<String, String>>,
    /// Visibility of organization secrets, by name.
    org_secrets: Mutex<BTreeMap<String, OrgSecret>>,
    access: Mutex<Access>,
    requests: Mutex<Vec<Recorded>>,
    /// Requests answered so far, for `x-ratelimit-used`.
    used: Mutex<u64>,
}

impl FakeGitHub {
    /// The only token accepted.
    pub const TOKEN: &str = "ghp_test";
    /// The repository that exists (`repo` setting).
    pub const REPO: &str = "octo/app";
    /// Environments of [`Self::REPO`]; the second needs percent-encoding.
    pub const ENVIRONMENTS: [&str; 2] = ["production", "staging/eu"];
    /// The organization that exists (`org` setting).
    pub const ORG: &str = "octo-org";
    /// The `key_id` of the public key, expected back on every PUT.
    pub const KEY_ID: &str = "568250167242549743";
    /// The former name of [`Self::REPO`]: GitHub redirects it.
    pub const OLD_REPO: &str = "octo/old-app";
    /// The id of [`Self::REPO`] (`/repositories/{id}/...`).
    pub const REPO_ID: u64 = 1296269;
    /// Repositories of the organization: ids 1000 to 1000 + this - 1.
    pub const ORG_REPOS: u64 = 150;

    /// Starts the server on a free loopback port.
    pub fn start() -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Non-blocking accept, so the loop notices `stop` without a wake-up connection.
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(State {
            secret_key: SecretKey::generate(&mut OsRng),
            fault: Mutex::new(Fault::None),
            secrets: Mutex::new(BTreeMap::new()),
            org_secrets: Mutex::new(BTreeMap::new()),
            access: Mutex::new(Access::default()),
            requests: Mutex::new(Vec::new()),
            used: Mutex::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || accept_loop(listener, state, stop))
        };
        FakeGitHub {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes how the following requests are answered.
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Sets what the token's user may do.
    pub fn set_access(&self, access: Access) {
        *self.state.access.lock().unwrap() = access;
    }

    /// Creates (or replaces) an organization secret with `value` and the
    /// given visibility, as an administrator would have set it up.
    pub fn seed_org_secret(&self, name: &str, value: &str, secret: OrgSecret) {
        let key = format!("orgs/{}/{name}", FakeGitHub::ORG);
        self.state.secrets.lock().unwrap().insert(key, value.into());
        self.state
            .org_secrets
            .lock()
            .unwrap()
            .insert(name.to_ascii_uppercase(), secret);
    }

    /// The visibility of the organization secret `name`, if it exists.
    pub fn org_secret(&self, name: &str) -> Option<OrgSecret> {
        self.state
            .org_secrets
            .lock()
            .unwrap()
            .get(&name.to_ascii_uppercase())
            .cloned()
    }

    /// Every secret stored so far, decrypted, keyed by where it lives:
    /// `repos/octo/app/NAME`, `repos/octo/app/environments/ENV/NAME` (ENV
    /// decoded, e.g. `staging/eu`) or `orgs/octo-org/NAME`.
    pub fn secrets(&self) -> BTreeMap<String, String> {
        self.state.secrets.lock().unwrap().clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The public key as served (base64), for tests that seal by hand.
    pub fn public_key(&self) -> String {
        BASE64.encode(self.state.secret_key.public_key().as_bytes())
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stop`, one thread each; on stop, closes the
/// connections still open (unblocking their reads) and joins their threads.
fn accept_loop(listener: TcpListener, state: Arc<State>, stop: Arc<AtomicBool>) {
    let mut connections: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let (state, stop) = (state.clone(), stop.clone());
                let thread = thread::spawn(move || serve(stream, &state, &stop));
                connections.push((handle, thread));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => thread::sleep(POLL),
        }
        connections.retain(|(_, thread)| !thread.is_finished());
    }
    for (stream, thread) in connections {
        let _ = stream.shutdown(Shutdown::Both);
        let _ = thread.join();
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    /// The query string, without `?`.
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    chunked: bool,
}

/// An answer: status, JSON body, extra headers.
struct Reply {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn new(status: u16, body: String) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Serves one connection: one request, one answer, then close (so clients
/// that keep connections alive reconnect, and nothing is pipelined).
fn serve(stream: TcpStream, state: &State, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let request = match read_request(&mut reader, &mut writer) {
        Ok(request) => request,
        Err(ReadError::Closed) => return,
        Err(ReadError::Bad(why)) => {
            let _ = respond(&mut writer, Reply::new(400, message_body(&why)), state);
            return;
        }
    };
    let expected = format!("Bearer {}", FakeGitHub::TOKEN);
    state.requests.lock().unwrap().push(Recorded {
        method: request.method.clone(),
        path: request.path.clone(),
        authorized: request.headers.get("authorization") == Some(&expected),
        headers: request.headers.clone(),
        body: serde_json::from_slice(&request.body).ok(),
        chunked: request.chunked,
    });

    let fault = state.fault.lock().unwrap().clone();
    if fault == Fault::Hang {
        while !stop.load(Ordering::SeqCst) && *state.fault.lock().unwrap() == Fault::Hang {
            thread::sleep(POLL);
        }
        return;
    }
    let reply = answer(&request, &fault, state);
    let _ = respond(&mut writer, reply, state);
}

enum ReadError {
    /// The client went away or timed out: nobody to answer.
    Closed,
    /// Malformed HTTP: answer 400.
    Bad(String),
}

/// Any I/O error while reading means there is no one left to answer.
fn closed(_: std::io::Error) -> ReadError {
    ReadError::Closed
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> Result<Request, ReadError> {
    let mut head_bytes = 0;
    let mut line = String::new();
    let mut next_line = |reader: &mut BufReader<TcpStream>| -> Result<String, ReadError> {
        line.clear();
        let n = reader.read_line(&mut line).map_err(closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        head_bytes += n;
        if head_bytes > MAX_HEAD_BYTES {
            return Err(ReadError::Bad("request head too large".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };

    let request_line = next_line(reader)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(format!("bad request line '{request_line}'")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(format!("unsupported version {version}")));
    }
    // Clients may send an absolute URI; keep the path, drop the query.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = path.split('#').next().unwrap_or("");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let method = method.to_string();

    let mut headers = BTreeMap::new();
    loop {
        let line = next_line(reader)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(format!("bad header line '{line}'")));
        };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }

    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(closed)?;
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else if let Some(length) = headers.get("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| ReadError::Bad(format!("bad content-length '{length}'")))?;
        if length > MAX_BODY_BYTES {
            return Err(ReadError::Bad("body too large".into()));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(closed)?;
        body
    } else {
        Vec::new()
    };
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
        chunked,
    })
}

/// Decodes a `Transfer-Encoding: chunked` body (extensions and trailers ignored).
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line).map_err(closed)? == 0 {
            return Err(ReadError::Closed);
        }
        let size = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| ReadError::Bad(format!("bad chunk size '{}'", size_line.trim())))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut trailer = String::new();
                let n = reader.read_line(&mut trailer).map_err(closed)?;
                if n == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ReadError::Bad("body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(closed)?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf).map_err(closed)?;
    }
}

/// Where a request points, once the path is understood.
enum Route {
    PublicKey,
    /// `location` is the `secrets()` key prefix, `org` whether the body
    /// must carry a visibility.
    Secret {
        location: String,
        name: String,
        org: bool,
    },
    /// `GET /orgs/{org}/actions/secrets/{name}/repositories`.
    SelectedRepositories(String),
    /// `GET /repos/{owner}/{repo}` (or `/repositories/{id}`).
    Repository,
    /// `GET /user/memberships/orgs/{org}`.
    Membership,
    /// The old name of the repository: redirect to `/repositories/{id}` + rest.
    Moved(String),
}

/// Maps a path to a route on a known target; `None` is GitHub's 404.
fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let repo_id = FakeGitHub::REPO_ID.to_string();
    // The repository by name or by id: the same place.
    let (repo_segments, repo_rest): (Option<()>, &[&str]) = match segments.as_slice() {
        ["repos", owner, repo, rest @ ..] if format!("{owner}/{repo}") == FakeGitHub::REPO => {
            (Some(()), rest)
        }
        ["repositories", id, rest @ ..] if *id == repo_id => (Some(()), rest),
        ["repos", owner, repo, rest @ ..]
            if format!("{owner}/{repo}").eq_ignore_ascii_case(FakeGitHub::OLD_REPO) =>
        {
            let rest = rest.iter().fold(String::new(), |acc, s| acc + "/" + s);
            return Some(Route::Moved(format!("/repositories/{repo_id}{rest}")));
        }
        _ => (None, &[]),
    };
    let location_of_repo = format!("repos/{}", FakeGitHub::REPO);
    let (location, rest, org) = match (repo_segments, repo_rest, segments.as_slice()) {
        (Some(()), [], _) => return Some(Route::Repository),
        (Some(()), ["actions", "secrets", rest], _) => (location_of_repo, *rest, false),
        (Some(()), ["environments", environment, "secrets", rest], _) => {
            let environment = percent_decode(environment)?;
            if !FakeGitHub::ENVIRONMENTS.contains(&environment.as_str()) {
                return None;
            }
            (
                format!("{location_of_repo}/environments/{environment}"),
                *rest,
                false,
            )
        }
        (None, _, ["orgs", org, "actions", "secrets", name, "repositories"])
            if *org == FakeGitHub::ORG =>
        {
            return Some(Route::SelectedRepositories(name.to_string()));
        }
        (None, _, ["orgs", org, "actions", "secrets", rest]) if *org == FakeGitHub::ORG => {
            (format!("orgs/{org}"), *rest, true)
        }
        (None, _, ["user", "memberships", "orgs", org]) if *org == FakeGitHub::ORG => {
            return Some(Route::Membership);
        }
        _ => return None,
    };
    match rest {
        "public-key" => Some(Route::PublicKey),
        "" => None,
        name => Some(Route::Secret {
            location,
            name: name.to_string(),
            org,
        }),
    }
}

/// The status, JSON body and headers for a request, after the fault.
fn answer(request: &Request, fault: &Fault, state: &State) -> Reply {
    let is_put = request.method == "PUT";
    match fault {
        Fault::Status(status) => return Reply::new(*status, status_body(*status)),
        Fault::StatusOnPut(status) if is_put => return Reply::new(*status, status_body(*status)),
        Fault::StatusOnPutOf(name, status)
            if is_put && request.path.rsplit('/').next() == Some(name.as_str()) =>
        {
            return Reply::new(*status, status_body(*status));
        }
        Fault::RateLimit {
            method,
            limit,
            times,
        } if *times > 0 && method.as_ref().is_none_or(|m| *m == request.method) => {
            let mut current = state.fault.lock().unwrap();
            *current = match times - 1 {
                0 => Fault::None,
                times => Fault::RateLimit {
                    method: method.clone(),
                    limit: limit.clone(),
                    times,
                },
            };
            return rate_limited(limit);
        }
        Fault::RedirectTo(origin) => {
            let location = format!("{origin}{}", request.path);
            return Reply::new(301, message_body("Moved Permanently")).header("Location", location);
        }
        _ => {}
    }
    let expected = format!("Bearer {}", FakeGitHub::TOKEN);
    if request.headers.get("authorization") != Some(&expected) {
        return Reply::new(401, message_body("Bad credentials"));
    }
    let access = state.access.lock().unwrap().clone();
    match (request.method.as_str(), route(&request.path)) {
        (method, Some(Route::Moved(to))) => {
            // GitHub: 301 for GET, 307 for other methods, so the client
            // repeats the request (method and body) at the new place.
            let status = if method == "GET" { 301 } else { 307 };
            let host = request.headers.get("host").map_or("", String::as_str);
            let location = format!("http://{host}{to}");
            Reply::new(status, message_body("Moved Permanently")).header("Location", location)
        }
        ("GET", Some(Route::PublicKey)) => Reply::new(
            200,
            serde_json::json!({
                "key_id": FakeGitHub::KEY_ID,
                "key": BASE64.encode(state.secret_key.public_key().as_bytes()),
            })
            .to_string(),
        ),
        ("GET", Some(Route::Repository)) => Reply::new(
            200,
            serde_json::json!({
                "id": FakeGitHub::REPO_ID,
                "full_name": FakeGitHub::REPO,
                "private": true,
                "permissions": {
                    "admin": access.admin,
                    "maintain": access.admin,
                    "push": access.push || access.admin,
                    "triage": true,
                    "pull": true,
                },
            })
            .to_string(),
        ),
        ("GET", Some(Route::Membership)) => Reply::new(
            200,
            serde_json::json!({
                "state": "active",
                "role": access.org_role,
                "organization": { "login": FakeGitHub::ORG },
            })
            .to_string(),
        ),
        (
            "GET",
            Some(Route::Secret {
                name, org: true, ..
            }),
        ) => {
            let secrets = state.org_secrets.lock().unwrap();
            match secrets.get(&name.to_ascii_uppercase()) {
                None => Reply::new(404, message_body("Not Found")),
                Some(secret) => Reply::new(
                    200,
                    serde_json::json!({
                        "name": name.to_ascii_uppercase(),
                        "created_at": "2019-08-10T14:59:22Z",
                        "updated_at": "2020-01-10T14:59:22Z",
                        "visibility": secret.visibility,
                        "selected_repositories_url": format!(
                            "https://api.github.com/orgs/{}/actions/secrets/{name}/repositories",
                            FakeGitHub::ORG
                        ),
                    })
                    .to_string(),
                ),
            }
        }
        ("GET", Some(Route::SelectedRepositories(name))) => {
            selected_repositories(state, &name, &request.query)
        }
        (
            "PUT",
            Some(Route::Secret {
                location,
                name,
                org,
            }),
        ) => match open_secret(&request.body, org, state) {
            Ok((plaintext, scope)) => {
                let key = format!("{location}/{name}");
                let created = state
                    .secrets
                    .lock()
                    .unwrap()
                    .insert(key, plaintext)
                    .is_none();
                if let Some(scope) = scope {
                    state
                        .org_secrets
                        .lock()
                        .unwrap()
                        .insert(name.to_ascii_uppercase(), scope);
                }
                // GitHub: 201 when created, 204 when updated.
                Reply::new(if created { 201 } else { 204 }, String::new())
            }
            Err(why) => Reply::new(422, message_body(&why)),
        },
        _ => Reply::new(404, message_body("Not Found")),
    }
}

/// A rate-limit answer with GitHub's headers and message.
fn rate_limited(limit: &RateLimit) -> Reply {
    let message = if limit.primary {
        "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, \
         please include the request ID."
    } else {
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try \
         again. If you reach out to GitHub Support for help, please include the request ID."
    };
    let reset = now_secs() + limit.reset_in;
    let mut reply = Reply::new(limit.status, message_body(message))
        .header("x-ratelimit-limit", "5000")
        .header(
            "x-ratelimit-remaining",
            if limit.primary { "0" } else { "4990" },
        )
        .header(
            "x-ratelimit-used",
            if limit.primary { "5000" } else { "10" },
        )
        .header("x-ratelimit-reset", reset.to_string())
        .header("x-ratelimit-resource", "core");
    if let Some(seconds) = limit.retry_after {
        reply = reply.header("retry-after", seconds.to_string());
    }
    reply
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One page of the repositories selected for an organization secret, as
/// GitHub pages them (`per_page` default 30, at most 100; `page` from 1).
fn selected_repositories(state: &State, name: &str, query: &str) -> Reply {
    let secrets = state.org_secrets.lock().unwrap();
    let Some(secret) = secrets.get(&name.to_ascii_uppercase()) else {
        return Reply::new(404, message_body("Not Found"));
    };
    if secret.visibility != "selected" {
        return Reply::new(
            409,
            message_body("Conflict: the secret's visibility is not 'selected'"),
        );
    }
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = param("per_page").unwrap_or(30).clamp(1, 100);
    let page = param("page").unwrap_or(1).max(1);
    let repositories: Vec<_> = secret
        .repository_ids
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|id| {
            serde_json::json!({
                "id": id,
                "name": format!("repo-{id}"),
                "full_name": format!("{}/repo-{id}", FakeGitHub::ORG),
            })
        })
        .collect();
    Reply::new(
        200,
        serde_json::json!({
            "total_count": secret.repository_ids.len(),
            "repositories": repositories,
        })
        .to_string(),
    )
}

/// Checks a PUT body the way GitHub does and opens the sealed value; for an
/// organization secret also returns the visibility it now has (a PUT sets
/// it: `selected` without `selected_repository_ids` selects none).
fn open_secret(
    body: &[u8],
    org: bool,
    state: &State,
) -> Result<(String, Option<OrgSecret>), String> {
    let body: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "Problems parsing JSON".to_string())?;
    let field = |name: &str| body.get(name).and_then(|v| v.as_str());
    if field("key_id") != Some(FakeGitHub::KEY_ID) {
        return Err("Invalid request: key_id does not match the public key".into());
    }
    let scope = if org {
        let visibility = match field("visibility") {
            Some(v @ ("all" | "private" | "selected")) => v.to_string(),
            _ => return Err("Invalid request: visibility must be all, private or selected".into()),
        };
        let ids = match body.get("selected_repository_ids") {
            None => Vec::new(),
            Some(_) if visibility != "selected" => {
                return Err("Invalid request: selected_repository_ids needs visibility \
                            'selected'"
                    .into());
            }
            Some(ids) => ids
                .as_array()
                .and_then(|ids| ids.iter().map(|id| id.as_u64()).collect::<Option<Vec<_>>>())
                .ok_or("Invalid request: selected_repository_ids must be integers")?,
        };
        Some(OrgSecret {
            visibility,
            repository_ids: ids,
        })
    } else {
        if body.get("visibility").is_some() {
            return Err("Invalid request: visibility is not a permitted key".into());
        }
        None
    };
    let sealed = field("encrypted_value")
        .and_then(|v| BASE64.decode(v).ok())
        .ok_or("Invalid request: encrypted_value is not base64")?;
    let plaintext = state
        .secret_key
        .unseal(&sealed)
        .map_err(|_| "Invalid request: encrypted_value could not be decrypted")?;
    let plaintext =
        String::from_utf8(plaintext).map_err(|_| "Invalid request: secret is not UTF-8")?;
    Ok((plaintext, scope))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn message_body(message: &str) -> String {
    serde_json::json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
    })
    .to_string()
}

/// GitHub's `message` for a status, as sent with an injected fault.
fn status_body(status: u16) -> String {
    message_body(match status {
        401 => "Bad credentials",
        status => reason(status),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a complete response, with GitHub's rate-limit headers (unless
/// the reply has its own), and closes the connection.
fn respond(stream: &mut TcpStream, reply: Reply, state: &State) -> std::io::Result<()> {
    let Reply {
        status,
        body,
        mut headers,
    } = reply;
    let used = {
        let mut used = state.used.lock().unwrap();
        *used += 1;
        *used
    };
    if !headers.iter().any(|(n, _)| n.starts_with("x-ratelimit")) {
        headers.extend([
            ("x-ratelimit-limit".into(), "5000".into()),
            ("x-ratelimit-remaining".into(), (5000 - used).to_string()),
            ("x-ratelimit-used".into(), used.to_string()),
            ("x-ratelimit-reset".into(), (now_secs() + 3600).to_string()),
            ("x-ratelimit-resource".into(), "core".into()),
        ]);
    }
    if let Some(scopes) = &state.access.lock().unwrap().oauth_scopes {
        headers.push(("X-OAuth-Scopes".into(), scopes.clone()));
    }
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // A 204 has no body and must not announce one.
    if status != 204 {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    if status != 204 {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A minimal client: one request per connection.
    fn send(
        server: &FakeGitHub,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let addr = server.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .to_string();
        (status, body)
    }

    fn public_key(server: &FakeGitHub, path: &str) -> crypto_box::PublicKey {
        let (status, body) = send(server, "GET", path, Some(FakeGitHub::TOKEN), None);
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["key_id"], FakeGitHub::KEY_ID);
        assert_eq!(json["key"], server.public_key());
        let bytes = BASE64.decode(json["key"].as_str().unwrap()).unwrap();
        crypto_box::PublicKey::from_slice(&bytes).unwrap()
    }

    fn sealed_body(key: &crypto_box::PublicKey, value: &str, visibility: Option<&str>) -> String {
        let sealed = key.seal(&mut OsRng, value.as_bytes()).unwrap();
        let mut body = serde_json::json!({
            "encrypted_value": BASE64.encode(sealed),
            "key_id": FakeGitHub::KEY_ID,
        });
        if let Some(visibility) = visibility {
            body["visibility"] = visibility.into();
        }
        body.to_string()
    }

    #[test]
    fn fake_github_stores_sealed_secrets_for_every_target() {
        let server = FakeGitHub::start();
        let token = Some(FakeGitHub::TOKEN);

        let key = public_key(&server, "/repos/octo/app/actions/secrets/public-key");
        let path = "/repos/octo/app/actions/secrets/AWS_ACCESS_KEY_ID";
        let body = sealed_body(&key, "AKIAEXAMPLE", None);
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 201);
        let body = sealed_body(&key, "AKIAEXAMPLE2", None);
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 204);

        let key = public_key(
            &server,
            "/repos/octo/app/environments/staging%2Feu/secrets/public-key",
        );
        let body = sealed_body(&key, "env-secret", None);
        let path = "/repos/octo/app/environments/staging%2Feu/secrets/AWS_SECRET_ACCESS_KEY";
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 201);

        let key = public_key(&server, "/orgs/octo-org/actions/secrets/public-key");
        let path = "/orgs/octo-org/actions/secrets/AWS_ACCESS_KEY_ID";
        let body = sealed_body(&key, "org-secret", None);
        let (status, message) = send(&server, "PUT", path, token, Some(&body));
        assert_eq!(status, 422, "an org secret needs a visibility: {message}");
        let body = sealed_body(&key, "org-secret", Some("private"));
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 201);

        let expected: BTreeMap<String, String> = [
            ("orgs/octo-org/AWS_ACCESS_KEY_ID", "org-secret"),
            ("repos/octo/app/AWS_ACCESS_KEY_ID", "AKIAEXAMPLE2"),
            (
                "repos/octo/app/environments/staging/eu/AWS_SECRET_ACCESS_KEY",
                "env-secret",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(server.secrets(), expected);

        let requests = server.requests();
        assert_eq!(requests.len(), 8);
        assert!(requests.iter().all(|r| r.authorized));
        let last = requests.last().unwrap();
        assert_eq!((last.method.as_str(), last.path.as_str()), ("PUT", path));
        assert_eq!(last.body.as_ref().unwrap()["visibility"], "private");
        assert!(last.headers.contains_key("content-length"));
    }

    #[test]
    fn fake_github_rejects_what_github_rejects() {
        let server = FakeGitHub::start();
        let token = Some(FakeGitHub::TOKEN);
        let key_path = "/repos/octo/app/actions/secrets/public-key";

        let (status, body) = send(&server, "GET", key_path, None, None);
        assert_eq!((status, body.contains("Bad credentials")), (401, true));
        assert_eq!(
            send(&server, "GET", key_path, Some("ghp_wrong"), None).0,
            401
        );
        assert!(!server.requests()[1].authorized);
        for path in [
            "/repos/octo/other/actions/secrets/public-key",
            "/repos/octo/app/environments/staging/eu/secrets/public-key",
            "/repos/octo/app/environments/nope/secrets/public-key",
            "/orgs/other/actions/secrets/public-key",
            "/nothing",
        ] {
            assert_eq!(send(&server, "GET", path, token, None).0, 404, "{path}");
        }

        let key = public_key(&server, key_path);
        let path = "/repos/octo/app/actions/secrets/X";
        // Sealed to another key: does not open.
        let other = SecretKey::generate(&mut OsRng).public_key();
        let body = sealed_body(&other, "v", None);
        let (status, message) = send(&server, "PUT", path, token, Some(&body));
        assert_eq!(status, 422);
        assert!(message.contains("could not be decrypted"), "{message}");
        let body = sealed_body(&key, "v", None).replace(FakeGitHub::KEY_ID, "1");
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 422);
        assert_eq!(send(&server, "PUT", path, token, Some("{")).0, 422);
        assert!(server.secrets().is_empty());
    }

    #[test]
    fn fake_github_faults() {
        let server = FakeGitHub::start();
        let token = Some(FakeGitHub::TOKEN);
        let key_path = "/orgs/octo-org/actions/secrets/public-key";

        server.set_fault(Fault::Status(503));
        let (status, body) = send(&server, "GET", key_path, token, None);
        assert_eq!((status, body.contains("Service Unavailable")), (503, true));

        server.set_fault(Fault::StatusOnPut(500));
        let key = public_key(&server, key_path);
        let body = sealed_body(&key, "v", Some("all"));
        let path = |name: &str| format!("/orgs/octo-org/actions/secrets/{name}");
        assert_eq!(send(&server, "PUT", &path("A"), token, Some(&body)).0, 500);

        server.set_fault(Fault::StatusOnPutOf("B".into(), 502));
        assert_eq!(send(&server, "PUT", &path("A"), token, Some(&body)).0, 201);
        assert_eq!(send(&server, "PUT", &path("B"), token, Some(&body)).0, 502);
        assert_eq!(
            server.secrets().keys().collect::<Vec<_>>(),
            ["orgs/octo-org/A"]
        );

        server.set_fault(Fault::Hang);
        let addr = server.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        stream
            .write_all(b"GET /orgs/octo-org/actions/secrets/public-key HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut buf = [0; 16];
        let err = stream.read(&mut buf).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err}"
        );

        server.set_fault(Fault::None);
        assert_eq!(send(&server, "GET", key_path, token, None).0, 200);

        // Dropping with a connection held open by a hang returns promptly.
        server.set_fault(Fault::Hang);
        let mut held = TcpStream::connect(addr).unwrap();
        held.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn fake_github_keeps_org_secret_visibility_as_documented() {
        let server = FakeGitHub::start();
        let token = Some(FakeGitHub::TOKEN);
        let ids: Vec<u64> = (1..=150).collect();
        server.seed_org_secret(
            "S",
            "old",
            OrgSecret {
                visibility: "selected".into(),
                repository_ids: ids.clone(),
            },
        );
        let (status, body) = send(
            &server,
            "GET",
            "/orgs/octo-org/actions/secrets/S",
            token,
            None,
        );
        assert_eq!(status, 200);
        assert!(body.contains(r#""visibility":"selected""#), "{body}");
        assert_eq!(
            send(
                &server,
                "GET",
                "/orgs/octo-org/actions/secrets/T",
                token,
                None
            )
            .0,
            404
        );
        // Pages of at most 100; the default page size is 30.
        let page = |query: &str| -> serde_json::Value {
            let path = format!("/orgs/octo-org/actions/secrets/S/repositories{query}");
            serde_json::from_str(&send(&server, "GET", &path, token, None).1).unwrap()
        };
        assert_eq!(page("")["repositories"].as_array().unwrap().len(), 30);
        assert_eq!(
            page("?per_page=500")["repositories"]
                .as_array()
                .unwrap()
                .len(),
            100
        );
        let second = page("?per_page=100&page=2");
        assert_eq!(second["total_count"], 150);
        assert_eq!(second["repositories"][0]["id"], 101);

        // A PUT overwrites the visibility; selected without ids selects none.
        let key = public_key(&server, "/orgs/octo-org/actions/secrets/public-key");
        let path = "/orgs/octo-org/actions/secrets/S";
        let body = sealed_body(&key, "new", Some("selected"));
        assert_eq!(send(&server, "PUT", path, token, Some(&body)).0, 204);
        assert_eq!(
            server.org_secret("S").unwrap().repository_ids,
            Vec::<u64>::new()
        );
        let mut body: serde_json::Value =
            serde_json::from_str(&sealed_body(&key, "new", Some("selected"))).unwrap();
        body["selected_repository_ids"] = serde_json::json!([7, 9]);
        assert_eq!(
            send(&server, "PUT", path, token, Some(&body.to_string())).0,
            204
        );
        assert_eq!(server.org_secret("S").unwrap().repository_ids, [7, 9]);
        body["visibility"] = "all".into();
        assert_eq!(
            send(&server, "PUT", path, token, Some(&body.to_string())).0,
            422
        );
    }

    #[test]
    fn fake_github_redirects_a_renamed_repository_and_limits_rates() {
        let server = FakeGitHub::start();
        let token = Some(FakeGitHub::TOKEN);
        let (status, _) = send(
            &server,
            "GET",
            "/repos/octo/old-app/actions/secrets/public-key",
            token,
            None,
        );
        assert_eq!(status, 301);
        let (status, _) = send(
            &server,
            "PUT",
            "/repos/octo/old-app/actions/secrets/X",
            token,
            Some("{}"),
        );
        assert_eq!(status, 307);
        let (status, body) = send(&server, "GET", "/repositories/1296269", token, None);
        assert_eq!(status, 200);
        assert!(body.contains(r#""push":true"#), "{body}");

        server.set_fault(Fault::RateLimit {
            method: None,
            limit: RateLimit {
                status: 429,
                retry_after: Some(5),
                primary: false,
                reset_in: 60,
            },
            times: 1,
        });
        let (status, body) = send(&server, "GET", "/repositories/1296269", token, None);
        assert_eq!(status, 429);
        assert!(body.contains("secondary rate limit"), "{body}");
        assert_eq!(
            send(&server, "GET", "/repositories/1296269", token, None).0,
            200
        );
    }

    #[test]
    fn fake_github_reads_chunked_bodies() {
        let server = FakeGitHub::start();
        let key = public_key(&server, "/repos/octo/app/actions/secrets/public-key");
        let body = sealed_body(&key, "chunked", None);
        let (first, second) = body.split_at(10);
        let addr = server.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "PUT /repos/octo/app/actions/secrets/C HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
            FakeGitHub::TOKEN,
            first.len(),
            second.len(),
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
        assert_eq!(server.secrets()["repos/octo/app/C"], "chunked");
    }
}
