//! The test harness: a moto IAM emulator per test on a free loopback port,
//! the fixture plugins built once, and a way to run the real binary.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iam::types::StatusType;

/// A moto server on 127.0.0.1, killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
    /// The access key keyrot and the test client sign with.
    credentials: (String, String),
    pub client: aws_sdk_iam::Client,
}

impl Moto {
    /// Starts moto and waits until it answers. Panics (never skips) if moto
    /// is not installed.
    pub fn start() -> Moto {
        Self::spawn(None)
    }

    /// Starts moto enforcing IAM policies: an `operator` user allowed
    /// everything but `denied_action` signs every call, keyrot's included.
    /// Returns the emulator and user `ci-bot`'s one active key.
    pub async fn start_denying(denied_action: &str) -> (Moto, String) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Allow", "Action": "*", "Resource": "*" },
                { "Effect": "Deny", "Action": denied_action, "Resource": "*" },
            ],
        });
        Self::start_with_policy("operator", &policy).await
    }

    /// Starts moto enforcing IAM policies: user `signer`, holding only the
    /// inline `policy`, signs every call, keyrot's included. User `ci-bot`
    /// has one active key, which is returned; when `signer` is `ci-bot`
    /// (rotating its own key) that is also the key everything signs with.
    pub async fn start_with_policy(signer: &str, policy: &serde_json::Value) -> (Moto, String) {
        Self::start_with_policy_at(signer, policy, "/").await
    }

    /// [`Moto::start_with_policy`], with user `ci-bot` (the signer too, when
    /// it is `ci-bot`) at IAM path `path`, e.g. `/keyrot-managed/`.
    pub async fn start_with_policy_at(
        signer: &str,
        policy: &serde_json::Value,
        path: &str,
    ) -> (Moto, String) {
        // The setup below is exactly this many unauthenticated calls:
        // user, policy, key, and for another signer ci-bot and its key.
        let calls = if signer == "ci-bot" { 3 } else { 5 };
        let mut moto = Self::spawn(Some(calls));
        let signer_path = if signer == "ci-bot" { path } else { "/" };
        moto.create_user_at(signer, signer_path).await;
        moto.client
            .put_user_policy()
            .user_name(signer)
            .policy_name("keyrot")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put policy");
        let key = moto
            .client
            .create_access_key()
            .user_name(signer)
            .send()
            .await
            .expect("create the signer's key");
        let key = key.access_key().unwrap();
        let old = if signer == "ci-bot" {
            key.access_key_id().to_string()
        } else {
            moto.create_user_at("ci-bot", path).await;
            moto.create_key("ci-bot", "Active").await
        };
        moto.credentials = (
            key.access_key_id().to_string(),
            key.secret_access_key().to_string(),
        );
        moto.client = client(&moto.url, &moto.credentials);
        (moto, old)
    }

    fn spawn(no_auth_actions: Option<u32>) -> Moto {
        // moto picks its own free port and says which: a port chosen here
        // and bound later could be taken meanwhile by another test's server,
        // which would then answer for moto.
        let mut child = spawn_moto(no_auth_actions);
        let stderr = child.stderr.take().expect("moto's stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            // Keep reading (moto logs every request) so it never blocks.
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line
                    .split("Running on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| rest.trim().parse::<u16>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                panic!(
                    "moto did not say which port it listens on within 30s ({status:?}); {MOTO_HINT}"
                );
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto exited ({status}) before listening on {addr}; {MOTO_HINT}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not start listening on {addr} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!("http://{addr}");
        let credentials = ("test".to_string(), "test".to_string());
        Moto {
            child,
            client: client(&url, &credentials),
            url,
            credentials,
        }
    }

    /// Turns IAM authorization on from now on (moto's `reset-auth`): every
    /// call after this is checked against the signer's policies.
    pub fn enforce_auth(&self) {
        self.reset_auth("0");
    }

    /// Turns IAM authorization off again, for more setup.
    pub fn relax_auth(&self) {
        self.reset_auth("inf");
    }

    fn reset_auth(&self, count: &str) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect to moto");
        write!(
            stream,
            "POST /moto-api/reset-auth HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{count}",
            count.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.contains(" 200 "), "moto reset-auth: {response}");
    }

    /// The access key id and secret keyrot signs with.
    pub fn credentials(&self) -> (String, String) {
        self.credentials.clone()
    }

    /// Starts moto with user `user` holding one active key; returns the key.
    pub async fn start_with_user(user: &str) -> (Moto, String) {
        let moto = Moto::start();
        moto.create_user(user).await;
        let key = moto.create_key(user, "Active").await;
        (moto, key)
    }

    /// Asserts `user` holds exactly `key`, still active: what every failed
    /// rotation must leave behind.
    pub async fn assert_only_key(&self, user: &str, key: &str) {
        assert_eq!(
            self.keys(user).await,
            vec![(key.to_string(), "Active".to_string())],
            "the old key, still active, and nothing else"
        );
    }

    /// Creates a user.
    pub async fn create_user(&self, user: &str) {
        self.create_user_at(user, "/").await;
    }

    /// Creates a user at IAM path `path`.
    pub async fn create_user_at(&self, user: &str, path: &str) {
        self.client
            .create_user()
            .user_name(user)
            .path(path)
            .send()
            .await
            .expect("create user");
    }

    /// Creates a key for `user` with the given status; returns its id.
    pub async fn create_key(&self, user: &str, status: &str) -> String {
        let out = self
            .client
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("create key");
        let id = out.access_key().unwrap().access_key_id().to_string();
        if status != "Active" {
            self.client
                .update_access_key()
                .user_name(user)
                .access_key_id(&id)
                .status(StatusType::from(status))
                .send()
                .await
                .expect("update key status");
        }
        id
    }

    /// The user's keys as (id, status), sorted by id.
    pub async fn keys(&self, user: &str) -> Vec<(String, String)> {
        self.keys_as(&self.client, user).await
    }

    /// The user's keys as (id, status), sorted by id, listed with the
    /// credentials of `signer` (see [`Moto::client_for`]).
    pub async fn keys_as(&self, signer: &aws_sdk_iam::Client, user: &str) -> Vec<(String, String)> {
        let out = signer
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("list keys");
        let mut keys: Vec<_> = out
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap().to_string(),
                    k.status().unwrap().as_str().to_string(),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    /// A client of this emulator signing with another key.
    pub fn client_for(&self, access_key_id: &str, secret: &str) -> aws_sdk_iam::Client {
        client(&self.url, &(access_key_id.to_string(), secret.to_string()))
    }

    /// Every secret access key moto ever issued, deleted keys included (from
    /// moto's state dump), to prove none of them leaks.
    pub fn all_secrets(&self) -> Vec<String> {
        self.keys_with_secrets()
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    /// Every (key id, secret) moto ever issued, deleted keys included.
    pub fn keys_with_secrets(&self) -> Vec<(String, String)> {
        let addr = self.url.trim_start_matches("http://");
        let body = http_get(addr, "/moto-api/data.json");
        let data: serde_json::Value = serde_json::from_str(&body).expect("moto state is JSON");
        data["iam"]["AccessKey"]
            .as_array()
            .expect("moto state lists access keys")
            .iter()
            .filter_map(|k| {
                let id = k["access_key_id"].as_str()?;
                let secret = k["secret_access_key"].as_str()?;
                Some((id.to_string(), secret.to_string()))
            })
            .collect()
    }

    /// Rotates user `ci-bot` with the plugin called `name` (see [`plugin`])
    /// and `extra` flags, and checks that no secret moto ever issued appears
    /// in the output, whatever happened.
    pub fn rotate(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let wasm = plugin(name).to_string_lossy().into_owned();
        let mut args = vec![
            "--plugin",
            wasm.as_str(),
            "--user",
            "ci-bot",
            "--endpoint-url",
            self.url.as_str(),
        ];
        args.extend_from_slice(extra);
        let out = self.keyrot_with_env(&args, env);
        let printed = show(&out);
        for secret in self.all_secrets() {
            assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
        }
        out
    }

    /// Runs the keyrot binary against this emulator with `args`.
    pub fn keyrot(&self, args: &[&str]) -> Output {
        self.keyrot_with_env(args, &[])
    }

    /// Runs the binary with extra environment variables. The environment is
    /// otherwise cleared, so no real AWS config or credentials can leak in.
    pub fn keyrot_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let (mut cmd, _home) = self.command(args, env);
        cmd.output().expect("run keyrot")
    }

    /// The keyrot command, not yet run, with its private HOME (which must
    /// outlive the run).
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> (Command, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        // One compiled-code cache for the whole test run, as a user has one:
        // each plugin is compiled once, not once per test.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyrot-cache");
        // Empty AWS config files: nothing from the real ones leaks in.
        std::fs::write(home.path().join("no-config"), "").unwrap();
        std::fs::write(home.path().join("no-credentials"), "").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyrot"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("AWS_ACCESS_KEY_ID", &self.credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.credentials.1)
            .env("AWS_CONFIG_FILE", home.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.path().join("no-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .env("KEYROT_CACHE_DIR", &cache)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        (cmd, home)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MOTO_HINT: &str = "the tests need the moto IAM emulator in the project virtualenv: \
     run scripts/setup.sh (it makes .venv/ and installs moto there; the README's test command \
     runs it)";

/// The project virtualenv's `moto_server` (scripts/setup.sh installs it),
/// else one on PATH. Panics with [`MOTO_HINT`] when there is neither:
/// the end-to-end tests fail, never skip, without their emulator.
fn spawn_moto(no_auth_actions: Option<u32>) -> Child {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    let program = if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    };
    let mut cmd = Command::new(&program);
    if let Some(n) = no_auth_actions {
        // moto checks signatures and IAM policies after the first n calls.
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    cmd.args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {} ({err}); {MOTO_HINT}", program.display()))
}

fn client(url: &str, (id, secret): &(String, String)) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(id, secret, None, None, "tests"))
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// A minimal HTTP/1.0 GET over loopback; enough for moto's state dump.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("connect to moto");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response with a body");
    body.to_string()
}

/// A plugin component from `plugins/`. Rust plugins are built on first
/// use; plugins in other languages are built by `scripts/build-plugins.sh`
/// (which the README's test command runs) into `plugins/target/components`.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_plugins);
    let path = dir.join(format!("{name}.wasm"));
    if path.exists() {
        return path;
    }
    let other = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/target/components")
        .join(format!("{name}.wasm"));
    assert!(
        other.exists(),
        "no plugin {name} in {} or {}: build the non-Rust plugins with scripts/build-plugins.sh",
        dir.display(),
        other.display()
    );
    other
}

fn build_plugins() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("plugins/Cargo.toml");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .expect("run cargo to build the fixture plugins");
    assert!(
        status.success(),
        "building the fixture plugins failed; is the target installed? \
         (`rustup target add wasm32-wasip2`)"
    );
    root.join("plugins/target/wasm32-wasip2/release")
}

/// stdout and stderr of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A request as a [`TestServer`] received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request target: path and query, as sent.
    pub path: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body (read by its Content-Length).
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`TestServer`] answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A small HTTP/1.1 server on a free loopback port, standing in for an API
/// a plugin talks to. Each connection gets one response, then is closed.
pub struct TestServer {
    pub url: String,
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl TestServer {
    /// A plain-HTTP server: `http://127.0.0.1:PORT`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
        Self::start_with(None, handler)
    }

    /// An HTTPS server with `tls`'s certificate (see [`crate::test_ca`]):
    /// `https://127.0.0.1:PORT`. A client that does not trust it hangs up
    /// in the handshake, and no request is recorded.
    pub fn start_tls(
        tls: std::sync::Arc<rustls::ServerConfig>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::start_with(Some(tls), handler)
    }

    fn start_with(
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        // The thread ends with the test process; tests are short-lived.
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let seen = seen.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        use std::io::Write;
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        serve(&mut tls, &*handler, &seen);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                    None => serve(&mut stream, &*handler, &seen),
                });
            }
        });
        TestServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            requests,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: &mut (impl std::io::Read + std::io::Write),
    handler: &Handler,
    seen: &std::sync::Mutex<Vec<Recorded>>,
) {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Recorded {
        method,
        path,
        headers,
        body,
    };
    seen.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

/// Runs a command and reports its peak resident memory (VmHWM), sampled
/// from /proc while it runs, in bytes.
pub fn run_measuring_memory(cmd: &mut Command) -> (Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Ok(status) = std::fs::read_to_string(&status_path) {
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                match hwm {
                    Some(kb) => peak.fetch_max(kb * 1024, std::sync::atomic::Ordering::Relaxed),
                    None => break, // a zombie has no memory lines left
                };
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let output = child.wait_with_output().expect("wait");
    sampler.join().unwrap();
    (output, peak.load(std::sync::atomic::Ordering::Relaxed))
}
