//! A small HTTP fault proxy in front of moto, for the faults moto cannot
//! produce, seen by the real binary and the real SDK on the wire: an answer
//! lost after IAM acted, throttling, STS rejecting a new key for a while.
//!
//! One request per connection (answers carry `connection: close`), so a
//! fault hits exactly one call. Everything else is forwarded to moto as is.
//! Faults can be armed while keyrot runs ([`FaultProxy::set`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the calls it sees.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Forward the next this many `CreateAccessKey` calls, then close the
    /// connection without answering: IAM made the key, keyrot never hears.
    pub drop_create_answers: u32,
    /// Answer every `n`th IAM call `Throttling` without forwarding it.
    pub throttle_every: Option<u32>,
    /// Answer `sts:GetCallerIdentity` signed with any key but these
    /// `InvalidClientTokenId`, this many times (`u32::MAX`: always).
    pub reject_sts: u32,
    /// Keys STS accepts whatever `reject_sts` says (the operator's).
    pub sts_accepts: Vec<String>,
    /// Answer these IAM actions `AccessDenied` without forwarding them,
    /// each the given number of times (`u32::MAX`: always).
    pub deny: Vec<(String, u32)>,
    /// Close the next this many `CreateAccessKey` calls unanswered and
    /// unforwarded; [`FaultProxy::release_deferred`] forwards them later, as
    /// an IAM that applies a call after its caller gave up would.
    pub defer_creates: u32,
    /// Hold the next this many `TagUser` calls until
    /// [`FaultProxy::release_held`]: a write slowed down on the wire.
    pub hold_tag_user: u32,
}

/// What the proxy saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `(action, access key id that signed it)`, in order.
    pub calls: Vec<(String, String)>,
    /// Calls answered `Throttling`.
    pub throttled: u32,
    /// Create answers dropped.
    pub dropped: u32,
    /// STS calls answered `InvalidClientTokenId`.
    pub rejected: u32,
    /// The tag keys `TagUser` and `UntagUser` calls named, in order.
    pub tag_keys: Vec<String>,
}

#[derive(Default)]
struct State {
    faults: Faults,
    seen: Seen,
    iam_calls: u32,
    /// Requests to forward later: (head, body).
    deferred: Vec<(Vec<String>, Vec<u8>)>,
    /// Held calls, each waiting for its go.
    held: Vec<mpsc::Sender<()>>,
}

/// The proxy, on a free loopback port; its thread ends with the tests.
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to the moto at `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &upstream, &state);
                });
            }
        });
        FaultProxy { url, state }
    }

    /// What the proxy saw so far.
    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }

    /// Changes the faults from now on.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.lock().unwrap().faults);
    }

    /// Forwards the deferred calls to moto now; returns how many.
    pub fn release_deferred(&self, upstream: &str) -> usize {
        let deferred = std::mem::take(&mut self.state.lock().unwrap().deferred);
        let upstream = upstream.trim_start_matches("http://");
        for (head, body) in &deferred {
            let mut moto = TcpStream::connect(upstream).unwrap();
            moto.write_all(&close_connection(head)).unwrap();
            moto.write_all(body).unwrap();
            let mut answer = Vec::new();
            moto.read_to_end(&mut answer).unwrap();
            assert!(
                answer.starts_with(b"HTTP/1.1 200"),
                "moto refused a deferred call"
            );
        }
        deferred.len()
    }

    /// How many calls are held now.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().held.len()
    }

    /// Waits until `n` calls are held (panics after a minute).
    pub fn wait_held(&self, n: usize) {
        let start = std::time::Instant::now();
        while self.held() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no call was held"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets the held calls through to moto.
    pub fn release_held(&self) {
        for go in std::mem::take(&mut self.state.lock().unwrap().held) {
            let _ = go.send(());
        }
    }
}

/// What to do with one call.
enum Verdict {
    Forward,
    ForwardAndDrop,
    Defer,
    Hold(mpsc::Receiver<()>),
    Answer(u16, String),
}

fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let (head, body) = read_request(&client)?;
    let action = form_value(&body, "Action").unwrap_or_default();
    let key = signing_key(&head).unwrap_or_default();
    let service = signing_service(&head).unwrap_or_default();
    let verdict = {
        let mut state = state.lock().unwrap();
        state.seen.calls.push((action.clone(), key.clone()));
        state.seen.tag_keys.extend(tag_keys(&action, &body));
        decide(&mut state, &service, &action, &key)
    };
    let verdict = match verdict {
        Verdict::Defer => {
            state.lock().unwrap().deferred.push((head, body));
            return client.shutdown(std::net::Shutdown::Both);
        }
        Verdict::Hold(go) => {
            // A minute at most: a test that never releases still ends.
            let _ = go.recv_timeout(Duration::from_secs(60));
            Verdict::Forward
        }
        other => other,
    };
    match verdict {
        Verdict::Answer(status, xml) => {
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(reply.as_bytes())
        }
        Verdict::Defer | Verdict::Hold(_) => unreachable!("handled above"),
        Verdict::Forward | Verdict::ForwardAndDrop => {
            let mut moto = TcpStream::connect(upstream)?;
            moto.write_all(&close_connection(&head))?;
            moto.write_all(&body)?;
            let mut answer = Vec::new();
            moto.read_to_end(&mut answer)?;
            if matches!(verdict, Verdict::ForwardAndDrop) {
                // IAM acted; the caller gets a closed connection instead.
                return client.shutdown(std::net::Shutdown::Both);
            }
            client.write_all(&answer)
        }
    }
}

fn decide(state: &mut State, service: &str, action: &str, key: &str) -> Verdict {
    if service == "iam" {
        state.iam_calls += 1;
        if let Some(every) = state.faults.throttle_every
            && state.iam_calls.is_multiple_of(every)
        {
            state.seen.throttled += 1;
            return Verdict::Answer(400, error_xml("iam", "Throttling", "Rate exceeded"));
        }
        if let Some((_, times)) = state.faults.deny.iter_mut().find(|(a, _)| a == action)
            && *times > 0
        {
            if *times != u32::MAX {
                *times -= 1;
            }
            return Verdict::Answer(
                403,
                error_xml("iam", "AccessDenied", "denied by the fault proxy"),
            );
        }
        if action == "CreateAccessKey" && state.faults.drop_create_answers > 0 {
            state.faults.drop_create_answers -= 1;
            state.seen.dropped += 1;
            return Verdict::ForwardAndDrop;
        }
        if action == "CreateAccessKey" && state.faults.defer_creates > 0 {
            state.faults.defer_creates -= 1;
            state.seen.dropped += 1;
            return Verdict::Defer;
        }
        if action == "TagUser" && state.faults.hold_tag_user > 0 {
            state.faults.hold_tag_user -= 1;
            let (go, wait) = mpsc::channel();
            state.held.push(go);
            return Verdict::Hold(wait);
        }
    }
    if service == "sts"
        && action == "GetCallerIdentity"
        && state.faults.reject_sts > 0
        && !state.faults.sts_accepts.iter().any(|k| k == key)
    {
        // u32::MAX means always.
        if state.faults.reject_sts != u32::MAX {
            state.faults.reject_sts -= 1;
        }
        state.seen.rejected += 1;
        return Verdict::Answer(
            403,
            error_xml(
                "sts",
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
        );
    }
    Verdict::Forward
}

fn error_xml(service: &str, code: &str, message: &str) -> String {
    let ns = match service {
        "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
        _ => "https://iam.amazonaws.com/doc/2010-05-08/",
    };
    format!(
        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}

/// The request head (lines, without the blank line) and its body.
fn read_request(stream: &TcpStream) -> std::io::Result<(Vec<String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((head, body))
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head again, asking moto to close the connection after answering
/// (so the answer can be read to its end).
fn close_connection(head: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in head.iter().enumerate() {
        let name = line.split(':').next().unwrap_or("").trim();
        if i > 0 && name.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}

/// `Credential=AKIA.../date/region/SERVICE/aws4_request` in SigV4.
fn credential(head: &[String]) -> Option<Vec<String>> {
    let auth = header(head, "authorization")?;
    let start = auth.find("Credential=")? + "Credential=".len();
    let scope = auth[start..].split([',', ' ']).next()?;
    Some(scope.split('/').map(str::to_string).collect())
}

fn signing_key(head: &[String]) -> Option<String> {
    credential(head)?.first().cloned()
}

fn signing_service(head: &[String]) -> Option<String> {
    credential(head)?.get(3).cloned()
}

/// The tag keys a `TagUser` (`Tags.member.N.Key`) or `UntagUser`
/// (`TagKeys.member.N`) call names.
fn tag_keys(action: &str, body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| match action {
            "TagUser" => k.starts_with("Tags.member.") && k.ends_with(".Key"),
            "UntagUser" => k.starts_with("TagKeys.member."),
            _ => false,
        })
        .map(|(_, v)| v.to_string())
        .collect()
}

fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}
