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
        // The setup below is exactly this many unauthenticated calls.
        let mut moto = Self::spawn(Some(5));
        moto.create_user("operator").await;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Allow", "Action": "*", "Resource": "*" },
                { "Effect": "Deny", "Action": denied_action, "Resource": "*" },
            ],
        });
        moto.client
            .put_user_policy()
            .user_name("operator")
            .policy_name("all-but-one")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put policy");
        let key = moto
            .client
            .create_access_key()
            .user_name("operator")
            .send()
            .await
            .expect("create operator key");
        let key = key.access_key().unwrap();
        moto.create_user("ci-bot").await;
        let old = moto.create_key("ci-bot", "Active").await;
        moto.credentials = (
            key.access_key_id().to_string(),
            key.secret_access_key().to_string(),
        );
        moto.client = client(&moto.url, &moto.credentials);
        (moto, old)
    }

    fn spawn(no_auth_actions: Option<u32>) -> Moto {
        let port = free_port();
        let mut child = spawn_moto(port, no_auth_actions);
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

    /// Creates a user.
    pub async fn create_user(&self, user: &str) {
        self.client
            .create_user()
            .user_name(user)
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
        let out = self
            .client
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

    /// Every secret access key moto ever issued, deleted keys included (from
    /// moto's state dump), to prove none of them leaks.
    pub fn all_secrets(&self) -> Vec<String> {
        let addr = self.url.trim_start_matches("http://");
        let body = http_get(addr, "/moto-api/data.json");
        let data: serde_json::Value = serde_json::from_str(&body).expect("moto state is JSON");
        data["iam"]["AccessKey"]
            .as_array()
            .expect("moto state lists access keys")
            .iter()
            .filter_map(|k| k["secret_access_key"].as_str().map(str::to_string))
            .collect()
    }

    /// Runs the keyrot binary against this emulator with `args`.
    pub fn keyrot(&self, args: &[&str]) -> Output {
        self.keyrot_with_env(args, &[])
    }

    /// Runs the binary with extra environment variables. The environment is
    /// otherwise cleared, so no real AWS config or credentials can leak in.
    pub fn keyrot_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = tempfile::tempdir().unwrap();
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
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run keyrot")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MOTO_HINT: &str = "the tests need the moto IAM emulator: install it with \
     `pip install 'moto[server]'` (scripts/setup.sh, run by the README's test command, does)";

/// `moto_server` if it is on PATH, else the same server as a Python module
/// (pip may install the script somewhere PATH does not reach).
fn spawn_moto(port: u16, no_auth_actions: Option<u32>) -> Child {
    let port = port.to_string();
    let args = ["-H", "127.0.0.1", "-p", port.as_str()];
    let spawn = |program: &str, prefix: &[&str]| {
        let mut cmd = Command::new(program);
        if let Some(n) = no_auth_actions {
            // moto checks signatures and IAM policies after the first n calls.
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        cmd.args(prefix)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    match spawn("moto_server", &[]) {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            spawn("python3", &["-m", "moto.server"])
                .unwrap_or_else(|err| panic!("cannot start moto ({err}); {MOTO_HINT}"))
        }
        Err(err) => panic!("cannot start moto_server ({err}); {MOTO_HINT}"),
    }
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// A fixture plugin component from `plugins/`, built on first use.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_plugins);
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "no plugin {name} in {}", dir.display());
    path
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
