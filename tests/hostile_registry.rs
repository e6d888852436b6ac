//! A registry of the tests' own on a loopback port, plain HTTP or HTTPS
//! with a throwaway CA (`test_ca`, made with the `openssl` CLI at test
//! time; keyrot trusts it through `SSL_CERT_FILE`). It records every
//! request, the `Authorization` header included, and answers what each
//! test tells it: honestly (an in-memory registry), or hostile (lies, huge
//! or dripping bodies, odd challenges, escape sequences).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::Digest as _;

use crate::test_ca::TestCa;

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// How a reply's body is sent.
pub enum Body {
    /// All at once, with its length.
    Full(Vec<u8>),
    /// Zeros without a length, until the client hangs up (512 MiB at most).
    Endless,
    /// These bytes, with their length, one every so often.
    Drip(Vec<u8>, Duration),
}

/// What the server answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Full(body.into()),
        }
    }

    pub fn with(status: u16, body: Body) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The server; its threads end with the test process.
pub struct Server {
    /// HOST:PORT as a reference names it: `127.0.0.1:PORT` for plain HTTP;
    /// `127.1:PORT` for HTTPS, which keyrot does not take for loopback (so
    /// it must speak HTTPS, as to a remote registry) and which still
    /// reaches 127.0.0.1, the address in the certificate.
    pub host: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Starts a server; `tls` makes it HTTPS with the test CA ([`ca_file`]).
    pub fn start(tls: bool, handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let config = tls.then(|| test_ca().server.clone());
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, log, config) = (handler.clone(), log.clone(), config.clone());
                std::thread::spawn(move || match config {
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        serve(&mut tls, &*handler, &log);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                    None => {
                        let mut stream = stream;
                        serve(&mut stream, &*handler, &log);
                    }
                });
            }
        });
        let host = if tls {
            format!("127.1:{port}")
        } else {
            format!("127.0.0.1:{port}")
        };
        Server { host, port, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every `Authorization` header it received.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| s.authorization)
            .collect()
    }
}

fn serve(stream: &mut (impl Read + Write), handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    drop(reader);
    let seen = Seen {
        method: method.clone(),
        path,
        authorization,
        body,
    };
    log.lock().unwrap().push(seen.clone());
    let reply = handler(&seen);
    let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &reply.body {
        Body::Full(bytes) => head.push_str(&format!("content-length: {}\r\n", bytes.len())),
        Body::Drip(bytes, _) => head.push_str(&format!("content-length: {}\r\n", bytes.len())),
        Body::Endless => {}
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() || method == "HEAD" {
        let _ = stream.flush();
        return;
    }
    match reply.body {
        Body::Full(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Body::Endless => {
            let zeros = vec![0u8; 64 * 1024];
            for _ in 0..(512 << 20) / zeros.len() {
                if stream.write_all(&zeros).is_err() {
                    break;
                }
            }
        }
        Body::Drip(bytes, every) => {
            for byte in bytes {
                if stream
                    .write_all(&[byte])
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    break;
                }
                std::thread::sleep(every);
            }
        }
    }
    let _ = stream.flush();
}

/// The CA certificate (PEM) to trust through `SSL_CERT_FILE`.
pub fn ca_file() -> PathBuf {
    test_ca().ca_file()
}

/// The throwaway CA and the server's certificate for 127.0.0.1, made once.
fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("registry"))
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A Wasm component artifact as keyrot pushes it: config, layer, manifest.
#[derive(Clone)]
pub struct Artifact {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Artifact {
    pub fn of(wasm: &[u8]) -> Artifact {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "wasm", "os": "wasip2", "layerDigests": [digest(wasm)],
        }))
        .unwrap();
        let manifest = Self::manifest_with(&config, wasm, |_| {});
        Artifact {
            config,
            layer: wasm.to_vec(),
            manifest,
        }
    }

    /// A manifest of this config and layer, edited by `edit`.
    pub fn manifest_with(
        config: &[u8],
        layer: &[u8],
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Vec<u8> {
        let mut value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                       "digest": digest(config), "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": digest(layer), "size": layer.len()}],
        });
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    pub fn digest(&self) -> String {
        digest(&self.manifest)
    }
}

/// An in-memory registry's contents: `manifests/REF` and `blobs/DIGEST`
/// under one repository, filled by pushes or by the test.
#[derive(Clone, Default)]
pub struct Contents(pub Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl Contents {
    /// Holds `artifact` under its digest and `tag`.
    pub fn with(artifact: &Artifact, tag: &str) -> Contents {
        let contents = Contents::default();
        contents.put_artifact(artifact, tag);
        contents
    }

    pub fn put_artifact(&self, artifact: &Artifact, tag: &str) {
        let mut map = self.0.lock().unwrap();
        map.insert(
            format!("blobs/{}", digest(&artifact.config)),
            artifact.config.clone(),
        );
        map.insert(
            format!("blobs/{}", digest(&artifact.layer)),
            artifact.layer.clone(),
        );
        map.insert(
            format!("manifests/{}", artifact.digest()),
            artifact.manifest.clone(),
        );
        map.insert(format!("manifests/{tag}"), artifact.manifest.clone());
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }

    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.0.lock().unwrap().insert(key.to_string(), bytes);
    }

    /// Answers the distribution API for `repo` honestly: GET/HEAD of
    /// manifests and blobs, blob uploads (POST, then PUT ?digest=),
    /// manifest PUTs (stored under the tag and the digest of the body).
    pub fn answer(&self, repo: &str, seen: &Seen) -> Reply {
        let prefix = format!("/v2/{repo}/");
        let path = seen.path.split('?').next().unwrap_or_default();
        if seen.method == "POST" && path == format!("{prefix}blobs/uploads/") {
            return Reply::new(202, "").header("location", "/upload/1?state=x");
        }
        if seen.method == "PUT" && path.starts_with("/upload/") {
            let digest = seen.path.split("digest=").nth(1).unwrap_or_default();
            let digest = digest.replace("%3A", ":");
            self.insert(&format!("blobs/{digest}"), seen.body.clone());
            return Reply::new(201, "");
        }
        let Some(key) = path.strip_prefix(&prefix) else {
            return Reply::new(404, "");
        };
        if seen.method == "PUT" && key.starts_with("manifests/") {
            let d = digest(&seen.body);
            self.insert(key, seen.body.clone());
            self.insert(&format!("manifests/{d}"), seen.body.clone());
            return Reply::new(201, "").header("docker-content-digest", &d);
        }
        match self.get(key) {
            Some(bytes) if key.starts_with("manifests/") => Reply::new(200, bytes)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json"),
            Some(bytes) => Reply::new(200, bytes),
            None => Reply::new(
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        }
    }
}
