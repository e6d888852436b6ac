//! Plugins shared through an OCI registry: the real CNCF distribution
//! registry (Debian's `docker-registry`) on a free loopback port, the real
//! binary, moto. Push, pull by digest, rotate; tags; layouts keyrot must
//! refuse; the cache when the registry is down; cosign signatures.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;

use crate::hostile_registry::{Artifact, Body, Contents, Reply, Server, ca_file, digest};
use crate::util::{Moto, plugin, run_measuring_memory, show};

/// A distribution registry on 127.0.0.1, storing in a temp dir; killed
/// when dropped.
pub struct Registry {
    child: Option<Child>,
    /// HOST:PORT, as in a reference.
    pub host: String,
    dir: tempfile::TempDir,
}

const REGISTRY_HINT: &str = "the OCI tests need the CNCF distribution registry: \
     `apt-get install docker-registry` (scripts/setup.sh, run by the README's test command, does)";

/// Whether `addr` answers as a CNCF distribution registry does.
fn is_registry(addr: &SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = String::new();
    let _ = stream.read_to_string(&mut head);
    head.to_ascii_lowercase()
        .contains("docker-distribution-api-version: registry/2.0")
}

impl Registry {
    /// Starts the registry and waits until it answers. Panics (never skips)
    /// if it is not installed.
    pub fn start() -> Registry {
        Self::spawn(None)
    }

    /// Starts a registry that wants HTTP basic auth: `htpasswd` is one
    /// `user:bcrypt-hash` line.
    pub fn start_with_auth(htpasswd: &str) -> Registry {
        Self::spawn(Some(htpasswd))
    }

    fn spawn(htpasswd: Option<&str>) -> Registry {
        // The registry cannot pick its own port and say it: a port chosen
        // here may be taken by another test's server before the registry
        // binds it. Then the registry exits, or the port answers as no
        // registry does: try another port.
        for _ in 0..5 {
            if let Some(registry) = Self::try_spawn(htpasswd) {
                return registry;
            }
        }
        panic!("docker-registry could not get a free loopback port in 5 tries");
    }

    fn try_spawn(htpasswd: Option<&str>) -> Option<Registry> {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {host}\n",
            dir.path().join("storage").display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: keyrot-tests\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start docker-registry ({err}); {REGISTRY_HINT}"));
        let addr: SocketAddr = host.parse().unwrap();
        let start = Instant::now();
        while !is_registry(&addr) {
            if let Ok(Some(_)) = child.try_wait() {
                // Its port was taken: another one.
                return None;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Registry {
            child: Some(child),
            host,
            dir,
        })
    }

    /// `oci://HOST/REPO:TAG`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.host)
    }

    /// Stops the registry (a registry that is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where the registry keeps the blob with this digest.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes an arbitrary artifact with oci-client, for layouts keyrot
    /// itself would never push; returns the manifest digest.
    pub async fn push_raw(
        &self,
        repo_tag: &str,
        config_type: &str,
        layers: Vec<ImageLayer>,
    ) -> String {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        });
        let reference: oci_client::Reference = format!("{}/{repo_tag}", self.host).parse().unwrap();
        let config = Config::new(
            br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#.to_vec(),
            config_type.to_string(),
            None,
        );
        let mut manifest = OciImageManifest::build(&layers, &config, None);
        manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
        client
            .push(
                &reference,
                &layers,
                config,
                &RegistryAuth::Anonymous,
                Some(manifest),
            )
            .await
            .expect("push a raw artifact");
        client
            .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
            .await
            .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `keyrot plugin push` of a fixture plugin; returns the printed digest.
fn push(moto: &Moto, name: &str, reference: &str) -> String {
    let wasm = plugin(name).to_string_lossy().into_owned();
    let out = moto.keyrot(&["plugin", "push", &wasm, reference]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let digest = text(&out).0.trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{}",
        show(&out)
    );
    digest
}

/// Rotates `ci-bot` with an `oci://` plugin, and checks no secret leaked.
fn rotate(moto: &Moto, reference: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec![
        "--plugin",
        reference,
        "--user",
        "ci-bot",
        "--endpoint-url",
        moto.url.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = moto.keyrot_with_env(&args, env);
    let printed = show(&out);
    for secret in moto.all_secrets() {
        assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
    }
    out
}

/// A private cache directory, for tests that need a cold one.
fn fresh_cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A cosign key pair written to `dir`; returns (cosign.key, cosign.pub).
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let pair = keyrot::oci::sign::generate_key_pair(b"test-password").unwrap();
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, pair.private_pem.as_bytes()).unwrap();
    std::fs::write(&public, &pair.public_pem).unwrap();
    (
        private.to_string_lossy().into_owned(),
        public.to_string_lossy().into_owned(),
    )
}

const PASSWORD: (&str, &str) = ("COSIGN_PASSWORD", "test-password");

#[tokio::test]
async fn push_then_pull_by_digest_then_rotate() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);
    let cache = fresh_cache();
    let cache_env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let out = rotate(&moto, &format!("{tag}@{digest}"), &[], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains(": rotated"), "{}", show(&out));
    assert!(
        stderr.contains(&format!("pulled plugin {tag}@{digest}")),
        "{}",
        show(&out)
    );
    assert!(!stderr.contains("not pinned"), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);
    // The component is stored under its own digest, the manifest under its.
    let blobs = cache.path().join("oci/blobs/sha256");
    assert!(blobs.join(digest.trim_start_matches("sha256:")).exists());
    let component = std::fs::read(plugin("hello")).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&component));
    assert!(blobs.join(&sha).exists());

    // The artifact is in the standard layout other tools read.
    let inspect = moto.keyrot(&[
        "plugin",
        "inspect",
        &format!("{tag}@{digest}"),
        "--output",
        "json",
    ]);
    assert_eq!(inspect.status.code(), Some(0), "{}", show(&inspect));
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(report["oci"]["manifest_digest"], digest.as_str());
    assert_eq!(report["oci"]["signatures"], 0);
    assert_eq!(report["sha256"], sha.as_str());
    assert_eq!(report["name"], "hello");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_file(&digest)).unwrap()).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_file(config_digest)).unwrap()).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], format!("sha256:{sha}"));
    let exports = config["component"]["exports"].to_string();
    assert!(exports.contains("keyrot:handler/handler"), "{config}");
}

/// A pulled handler's declared needs are its component's: inspect shows
/// them and checks a run's grants against them, as for a local file.
#[tokio::test]
async fn inspect_of_a_pulled_plugin_shows_its_declared_needs() {
    let registry = Registry::start();
    let moto = Moto::start();
    let tag = registry.reference("team/github:1.0");
    let digest = push(&moto, "github", &tag);
    let pinned = format!("{tag}@{digest}");
    let out = moto.keyrot(&["plugin", "inspect", &pinned, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["needs"]["hosts"][0]["host"], "api.github.com",
        "{report}"
    );
    assert_eq!(report["oci"]["manifest_digest"], digest.as_str());

    let out = moto.keyrot(&["plugin", "inspect", &pinned, "--allow-host", "evil.example"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("the grants given do not fit")
            && stdout.contains("--allow-host evil.example is wider than plugin 'github'"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_tag_alone_warns_on_the_command_line_and_is_refused_in_a_job_file() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:latest");
    let digest = push(&moto, "hello", &tag);

    let job_dir = tempfile::tempdir().unwrap();
    let job = job_dir.path().join("job.toml");
    std::fs::write(&job, format!("plugin = \"{tag}\"\nuser = \"ci-bot\"\n")).unwrap();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("names a tag, not a digest"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains(&format!("{tag}@{digest}")),
        "the message gives the pin: {}",
        show(&out)
    );
    assert!(stderr.contains("allow-unpinned = true"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;

    let out = rotate(&moto, &tag, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(stderr.contains("is not pinned"), "{}", show(&out));
    assert!(
        stderr.contains(&digest),
        "the warning prints the digest: {}",
        show(&out)
    );

    std::fs::write(
        &job,
        format!("plugin = \"{tag}\"\nuser = \"ci-bot\"\nallow-unpinned = true\n"),
    )
    .unwrap();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out).1.contains("is not pinned"), "{}", show(&out));
}

#[tokio::test]
async fn a_digest_the_registry_does_not_have_or_another_component_is_refused() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);
    let cache = fresh_cache();
    let cache_env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];

    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = rotate(&moto, &format!("{tag}@{wrong}"), &[], &cache_env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains(&format!(
            "no artifact with digest {wrong} in team/hello on {}",
            registry.host
        )),
        "{}",
        show(&out)
    );

    // --plugin-sha256 still pins the component bytes.
    let out = rotate(
        &moto,
        &format!("{tag}@{digest}"),
        &["--plugin-sha256", &"1".repeat(64)],
        &cache_env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("not the pinned --plugin-sha256"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn artifacts_of_another_layout_are_refused() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let wasm = std::fs::read(plugin("hello")).unwrap();
    let layer = |t: &str| ImageLayer::new(wasm.clone(), t.to_string(), None);
    let cases = [
        (
            "image",
            registry
                .push_raw(
                    "team/image:1",
                    "application/vnd.oci.image.config.v1+json",
                    vec![layer("application/wasm")],
                )
                .await,
            "config media type is 'application/vnd.oci.image.config.v1+json'",
        ),
        (
            "two",
            registry
                .push_raw(
                    "team/two:1",
                    "application/vnd.wasm.config.v0+json",
                    vec![
                        layer("application/wasm"),
                        ImageLayer::new(b"x".to_vec(), "application/wasm".into(), None),
                    ],
                )
                .await,
            "it has 2 layers",
        ),
        (
            "tar",
            registry
                .push_raw(
                    "team/tar:1",
                    "application/vnd.wasm.config.v0+json",
                    vec![layer("application/vnd.oci.image.layer.v1.tar")],
                )
                .await,
            "its layer has media type 'application/vnd.oci.image.layer.v1.tar'",
        ),
    ];
    for (repo, digest, expected) in cases {
        let reference = format!("{}@{digest}", registry.reference(&format!("team/{repo}:1")));
        let out = rotate(&moto, &reference, &[], &[]);
        assert_eq!(out.status.code(), Some(2), "{repo}: {}", show(&out));
        let stderr = text(&out).1;
        assert!(
            stderr.contains("is not a Wasm component artifact"),
            "{repo}: {}",
            show(&out)
        );
        assert!(stderr.contains(expected), "{repo}: {}", show(&out));
    }
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_tampered_manifest_is_refused() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);
    // Someone with write access to the registry's storage edits the
    // manifest in place: still valid JSON, different bytes.
    let file = registry.blob_file(&digest);
    let manifest = std::fs::read_to_string(&file).unwrap();
    let tampered = manifest.replacen("\"schemaVersion\":2", "\"schemaVersion\": 2", 1);
    assert_ne!(manifest, tampered);
    std::fs::write(&file, tampered).unwrap();

    let cache = fresh_cache();
    let out = rotate(
        &moto,
        &format!("{tag}@{digest}"),
        &[],
        &[("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(stderr.contains("the manifest from"), "{}", show(&out));
    assert!(stderr.contains("refusing it"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_cached_digest_runs_offline_and_an_uncached_one_fails_clearly() {
    let mut registry = Registry::start();
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);
    let pinned = format!("{tag}@{digest}");
    let cache = fresh_cache();
    let cache_env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let out = rotate(&moto, &pinned, &[], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    registry.stop();
    let out = rotate(&moto, &pinned, &[], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out).1.contains("from the cache"), "{}", show(&out));

    // The same digest with a cold cache needs the registry, which is down.
    let before = moto.keys("ci-bot").await;
    let cold = fresh_cache();
    let out = rotate(
        &moto,
        &pinned,
        &[],
        &[("KEYROT_CACHE_DIR", cold.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains(&format!("registry {}", registry.host)),
        "{}",
        show(&out)
    );
    assert!(stderr.contains("cannot connect"), "{}", show(&out));
    assert_eq!(moto.keys("ci-bot").await, before, "nothing changed");
}

#[tokio::test]
async fn a_signed_plugin_verifies_and_runs_with_its_key_even_offline() {
    let mut registry = Registry::start();
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "team");
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);

    // A tag names whatever the registry says: only a digest is signed.
    let out = moto.keyrot_with_env(&["plugin", "sign", &tag, "--key", &private], &[PASSWORD]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("signs a digest, never a tag"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains(&digest),
        "says what the tag names: {}",
        show(&out)
    );
    let out = moto.keyrot_with_env(
        &[
            "plugin",
            "sign",
            &format!("{tag}@{digest}"),
            "--key",
            &private,
        ],
        &[PASSWORD],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).0.contains(&format!("signed {tag}@{digest}")),
        "{}",
        show(&out)
    );
    // cosign's convention: the signature sits at the sha256-<hex>.sig tag.
    let sig_tag = registry
        .dir
        .path()
        .join("storage/docker/registry/v2/repositories/team/hello/_manifests/tags")
        .join(format!("{}.sig", digest.replace(':', "-")));
    assert!(sig_tag.is_dir(), "no tag {}", sig_tag.display());

    let out = moto.keyrot(&["plugin", "verify", &tag, "--key", &public]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out).0.contains("signed by"), "{}", show(&out));

    let pinned = format!("{tag}@{digest}");
    let out = moto.keyrot(&["plugin", "inspect", &pinned, "--key", &public]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).0.contains("1 signature(s); verified with"),
        "{}",
        show(&out)
    );

    let cache = fresh_cache();
    let cache_env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let out = rotate(&moto, &pinned, &["--plugin-key", &public], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).1.contains(&format!("is signed by {public}")),
        "{}",
        show(&out)
    );

    registry.stop();
    let out = rotate(&moto, &pinned, &["--plugin-key", &public], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).1.contains("signature from the cache"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn plugin_keys_refuse_an_unsigned_plugin_or_another_keys_signature() {
    let registry = Registry::start();
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let keys = tempfile::tempdir().unwrap();
    let (_, ours) = key_pair(keys.path(), "ours");
    let (theirs_private, _) = key_pair(keys.path(), "theirs");
    let tag = registry.reference("team/hello:1.0");
    let digest = push(&moto, "hello", &tag);
    let pinned = format!("{tag}@{digest}");

    let out = rotate(&moto, &pinned, &["--plugin-key", &ours], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("is not signed by any key given"),
        "{}",
        show(&out)
    );
    assert!(stderr.contains(&ours), "names the key: {}", show(&out));
    assert!(stderr.contains("it has no signature"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;

    let out = moto.keyrot_with_env(
        &["plugin", "sign", &pinned, "--key", &theirs_private],
        &[PASSWORD],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = rotate(&moto, &pinned, &["--plugin-key", &ours], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out)
            .1
            .contains("its one signature is not by any of them"),
        "{}",
        show(&out)
    );
    let out = moto.keyrot(&["plugin", "verify", &pinned, "--key", &ours]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // A job file's plugin-keys do the same, relative to the file.
    let job_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&ours, job_dir.path().join("ours.pub")).unwrap();
    let job = job_dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("plugin = \"{pinned}\"\nuser = \"ci-bot\"\nplugin-keys = [\"ours.pub\"]\n"),
    )
    .unwrap();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("is not signed by any key given"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;

    // Keys check registry signatures: a local file cannot carry one.
    let file = plugin("hello").to_string_lossy().into_owned();
    let out = moto.keyrot(&[
        "--plugin",
        &file,
        "--plugin-key",
        &ours,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("must be an oci:// reference"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;

    // The wrong password is a clear error, not a bad signature.
    let out = moto.keyrot_with_env(
        &["plugin", "sign", &pinned, "--key", &theirs_private],
        &[("COSIGN_PASSWORD", "nope")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out).1.contains("COSIGN_PASSWORD"), "{}", show(&out));
}

/// User `keyrot`, password `s3cret-test`, bcrypt as the registry wants.
const HTPASSWD: &str = "keyrot:$2b$12$G80wfzG.qRPxUwuCqWkIFemWlzZt1hncGSma00jKzoWNPeSYmAT8i";

#[tokio::test]
async fn credentials_come_from_the_environment_the_docker_config_or_a_helper() {
    let registry = Registry::start_with_auth(HTPASSWD);
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let tag = registry.reference("team/hello:1.0");
    let wasm = plugin("hello").to_string_lossy().into_owned();

    let out = moto.keyrot(&["plugin", "push", &wasm, &tag]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "anonymous is refused: {}",
        show(&out)
    );
    assert!(text(&out).1.contains("401"), "{}", show(&out));

    // Credentials in the environment belong to the registry they name.
    let unscoped = [
        ("KEYROT_REGISTRY_USER", "keyrot"),
        ("KEYROT_REGISTRY_PASSWORD", "s3cret-test"),
    ];
    let out = moto.keyrot_with_env(&["plugin", "push", &wasm, &tag], &unscoped);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("KEYROT_REGISTRY_HOST is not"),
        "{}",
        show(&out)
    );
    let env = [
        ("KEYROT_REGISTRY_USER", "keyrot"),
        ("KEYROT_REGISTRY_PASSWORD", "s3cret-test"),
        ("KEYROT_REGISTRY_HOST", registry.host.as_str()),
    ];
    let out = moto.keyrot_with_env(&["plugin", "push", &wasm, &tag], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let digest = text(&out).0.trim().to_string();
    let pinned = format!("{tag}@{digest}");

    // ~/.docker/config.json `auths`, as `docker login` writes it.
    let docker = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "keyrot:s3cret-test",
    );
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host),
    )
    .unwrap();
    let cache = fresh_cache();
    let cache_dir = cache.path().to_str().unwrap();
    let docker_dir = docker.path().to_str().unwrap();
    let out = rotate(
        &moto,
        &pinned,
        &[],
        &[
            ("DOCKER_CONFIG", docker_dir),
            ("KEYROT_CACHE_DIR", cache_dir),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!show(&out).contains("s3cret-test"), "{}", show(&out));

    // A docker-credential-* helper named in credHelpers.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-keyrot-test");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"keyrot\",\"Secret\":\"s3cret-test\"}' \"$server\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"keyrot-test"}}}}"#, registry.host),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cold = fresh_cache();
    let out = rotate(
        &moto,
        &pinned,
        &[],
        &[
            ("DOCKER_CONFIG", docker_dir),
            ("PATH", &path),
            ("KEYROT_CACHE_DIR", cold.path().to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out).1.contains("pulled plugin"), "{}", show(&out));
}

#[tokio::test]
async fn plain_http_only_to_loopback_or_a_registry_named_insecure() {
    let registry = Registry::start();
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let wasm = plugin("hello").to_string_lossy().into_owned();
    // 127.1 reaches the same loopback registry, but keyrot does not know it
    // for loopback by its name: it must speak HTTPS unless told otherwise.
    let port = registry.host.rsplit_once(':').unwrap().1;
    let host = format!("127.1:{port}");
    let tag = format!("oci://{host}/team/hello:1.0");
    let out = moto.keyrot(&["plugin", "push", &wasm, &tag]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out).1.contains("(https://"), "{}", show(&out));

    let out = moto.keyrot(&["plugin", "push", &wasm, &tag, "--insecure-registry", &host]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

// ---------------------------------------------------------------------------
// A hostile registry: the tests' own server (tests/hostile_registry.rs) in
// place of a real one, lying, flooding, dripping, asking for credentials
// on behalf of other hosts.

/// The registry password the hostile tests hand keyrot; it must reach only
/// the registry it belongs to, and never the output.
const REGISTRY_SECRET: &str = "s3cret-registry-pw";

/// `Basic` credentials as a registry receives them.
fn basic(user: &str, password: &str) -> String {
    let pair = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{password}"),
    );
    format!("Basic {pair}")
}

/// Runs the binary with only `env` (and a private HOME and cache unless
/// `env` names one), as an operator with no AWS and no registry login
/// would; returns its output and how long it took.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let (mut cmd, _home, _cache) = command(args, env);
    let started = Instant::now();
    let out = cmd.output().expect("run keyrot");
    let took = started.elapsed();
    assert!(
        !show(&out).contains(REGISTRY_SECRET),
        "the registry password leaked:\n{}",
        show(&out)
    );
    (out, took)
}

fn command(args: &[&str], env: &[(&str, &str)]) -> (Command, tempfile::TempDir, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyrot"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env("KEYROT_CACHE_DIR", cache.path())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd, home, cache)
}

/// The hello component as an artifact.
fn hello_artifact() -> Artifact {
    Artifact::of(&std::fs::read(plugin("hello")).unwrap())
}

/// A registry that answers `401 Bearer realm=REALM` until it sees the
/// token `t0ken`, then serves `contents` honestly.
fn bearer_registry(realm: String, contents: Contents) -> Server {
    Server::start(true, move |seen| {
        if seen.authorization.as_deref() != Some("Bearer t0ken") {
            return Reply::new(401, "").header(
                "www-authenticate",
                &format!(
                    r#"Bearer realm="{realm}",service="hostile",scope="repository:team/hello:pull""#
                ),
            );
        }
        contents.answer("team/hello", seen)
    })
}

#[test]
fn a_token_service_on_another_host_gets_no_credentials_unless_named() {
    let artifact = hello_artifact();
    let tokens = Server::start(true, |seen| match &seen.authorization {
        Some(_) => Reply::new(200, r#"{"token":"t0ken"}"#),
        None => Reply::new(401, ""),
    });
    let registry = bearer_registry(
        format!("https://{}/token", tokens.host),
        Contents::with(&artifact, "1.0"),
    );
    let pinned = format!("oci://{}/team/hello@{}", registry.host, artifact.digest());
    let ca = ca_file();
    let ca = ca.to_str().unwrap();
    let creds = [
        ("KEYROT_REGISTRY_USER", "keyrot"),
        ("KEYROT_REGISTRY_PASSWORD", REGISTRY_SECRET),
        ("KEYROT_REGISTRY_HOST", registry.host.as_str()),
    ];

    // The registry is HTTPS with a CA keyrot knows only from SSL_CERT_FILE.
    let (out, _) = run(&["plugin", "inspect", &pinned], &creds);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("cannot connect") || stderr.contains("setting up HTTPS"),
        "{}",
        show(&out)
    );
    assert!(registry.seen().is_empty(), "no request got through TLS");

    let env = [creds.as_slice(), &[("SSL_CERT_FILE", ca)]].concat();
    let (out, _) = run(&["plugin", "inspect", &pinned], &env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("another host than the registry"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains(&format!("--registry-token-host 127.0.0.1:{}", tokens.port)),
        "names the flag that allows it: {}",
        show(&out)
    );
    assert!(tokens.seen().is_empty(), "the token service heard nothing");
    assert!(registry.authorizations().is_empty());

    // Named by the operator: the credentials go there, over HTTPS, and the
    // registry itself only ever sees the token.
    let (out, _) = run(
        &[
            "plugin",
            "inspect",
            &pinned,
            "--registry-token-host",
            &tokens.host,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sent = tokens.authorizations();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|a| *a == basic("keyrot", REGISTRY_SECRET)),
        "{sent:?}"
    );
    let presented = registry.authorizations();
    assert!(!presented.is_empty());
    assert!(
        presented.iter().all(|a| a == "Bearer t0ken"),
        "{presented:?}"
    );
}

#[test]
fn credentials_never_travel_in_cleartext_to_a_token_service() {
    let artifact = hello_artifact();
    // A plain-HTTP token service on a host that is not loopback (never
    // reached: keyrot refuses before connecting) and one on loopback.
    let tokens = Server::start(false, |_| Reply::new(200, r#"{"token":"t0ken"}"#));
    let ca = ca_file();
    let ca = ca.to_str().unwrap();
    for (realm, flags, expected) in [
        (
            "http://keyrot-test.invalid:8080/token".to_string(),
            vec!["--registry-token-host", "keyrot-test.invalid:8080"],
            "--insecure-registry keyrot-test.invalid:8080",
        ),
        (
            format!("http://127.0.0.1:{}/token", tokens.port),
            vec![],
            "--registry-token-host 127.0.0.1:",
        ),
    ] {
        let registry = bearer_registry(realm.clone(), Contents::with(&artifact, "1.0"));
        let pinned = format!("oci://{}/team/hello@{}", registry.host, artifact.digest());
        let env = [
            ("KEYROT_REGISTRY_USER", "keyrot"),
            ("KEYROT_REGISTRY_PASSWORD", REGISTRY_SECRET),
            ("KEYROT_REGISTRY_HOST", registry.host.as_str()),
            ("SSL_CERT_FILE", ca),
        ];
        let args = [&["plugin", "inspect", pinned.as_str()][..], &flags].concat();
        let (out, _) = run(&args, &env);
        assert_eq!(out.status.code(), Some(2), "{realm}: {}", show(&out));
        let stderr = text(&out).1;
        assert!(stderr.contains("refusing"), "{realm}: {}", show(&out));
        assert!(stderr.contains(expected), "{realm}: {}", show(&out));
        assert!(registry.authorizations().is_empty(), "{realm}");
    }
    assert!(tokens.seen().is_empty(), "no credentials, no request");
}

#[test]
fn push_pins_and_sign_signs_the_bytes_pushed_whatever_the_registry_says() {
    let evil = Artifact::of(b"\0asm\x0d\0\x01\0 the registry's choice");
    let contents = Contents::default();
    contents.put_artifact(&evil, "evil");
    let (lying, evil_digest) = (contents.clone(), evil.digest());
    // Honest storage, lying answers: the tag always names the evil
    // artifact, and every manifest PUT is "acknowledged" with its digest.
    let registry = Server::start(false, move |seen| {
        let path = seen.path.as_str();
        if path.ends_with("/manifests/1.0") && seen.method != "PUT" {
            return Reply::new(200, lying.get(&format!("manifests/{evil_digest}")).unwrap())
                .header("docker-content-digest", &evil_digest);
        }
        let reply = lying.answer("team/hello", seen);
        if seen.method == "PUT" && path.contains("/manifests/") {
            return Reply::new(reply.status, "").header("docker-content-digest", &evil_digest);
        }
        reply
    });
    let tag = format!("oci://{}/team/hello:1.0", registry.host);
    let wasm = plugin("hello").to_string_lossy().into_owned();
    let (out, _) = run(&["plugin", "push", &wasm, &tag], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let printed = text(&out).0.trim().to_string();
    let uploaded = registry
        .seen()
        .into_iter()
        .find(|s| s.method == "PUT" && s.path.ends_with("/manifests/1.0"))
        .expect("the manifest was pushed")
        .body;
    assert_eq!(printed, digest(&uploaded), "the digest of the bytes pushed");
    assert_ne!(printed, evil.digest());
    assert!(
        text(&out)
            .1
            .contains("keyrot pins the digest of the bytes it sent"),
        "{}",
        show(&out)
    );

    // Signing by tag would sign the registry's choice: refused.
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "team");
    let (out, _) = run(&["plugin", "sign", &tag, "--key", &private], &[PASSWORD]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("signs a digest, never a tag"),
        "{}",
        show(&out)
    );
    // By the pushed digest: the signature names exactly it.
    let pinned = format!("{tag}@{printed}");
    let (out, _) = run(&["plugin", "sign", &pinned, "--key", &private], &[PASSWORD]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sig_tag = format!("{}.sig", printed.replace(':', "-"));
    let signature = contents
        .get(&format!("manifests/{sig_tag}"))
        .expect("the signature manifest");
    let signature: serde_json::Value = serde_json::from_slice(&signature).unwrap();
    let payload = contents
        .get(&format!(
            "blobs/{}",
            signature["layers"][0]["digest"].as_str().unwrap()
        ))
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        printed.as_str()
    );
    let (out, _) = run(&["plugin", "verify", &pinned, "--key", &public], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A signature whose payload claims 10 MiB is skipped, not read, and
    // does not hide the good one after it.
    let mut manifest = signature;
    let bogus = serde_json::json!({
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "digest": digest(b"x"),
        "size": 10 << 20,
        "annotations": {"dev.cosignproject.cosign/signature": "AAAA"},
    });
    manifest["layers"].as_array_mut().unwrap().insert(0, bogus);
    contents.insert(
        &format!("manifests/{sig_tag}"),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let (out, _) = run(&["plugin", "verify", &pinned, "--key", &public], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out)
            .1
            .contains("more than the 65536 a signature takes"),
        "{}",
        show(&out)
    );
    assert!(
        registry
            .seen()
            .iter()
            .all(|s| !s.path.ends_with(&digest(b"x"))),
        "the oversized payload was never fetched"
    );
}

#[test]
fn a_digest_from_the_registry_never_names_a_file() {
    let artifact = hello_artifact();
    let dev_zero = "sha256:../../../../../../../../dev/zero";
    let manifest = Artifact::manifest_with(&artifact.config, &artifact.layer, |m| {
        m["layers"][0]["digest"] = dev_zero.into();
    });
    let contents = Contents::with(&artifact, "ok");
    contents.insert("manifests/1.0", manifest.clone());
    contents.insert(
        &format!("manifests/{}", digest(&manifest)),
        manifest.clone(),
    );
    let registry = Server::start(false, move |seen| {
        // The tag's answer names a digest that is a path.
        contents
            .answer("team/hello", seen)
            .header("docker-content-digest", dev_zero)
    });
    let tag = format!("oci://{}/team/hello:1.0", registry.host);
    let (mut cmd, _home, _cache) = command(&["plugin", "inspect", &tag], &[]);
    let (out, peak) = run_measuring_memory(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    // The tag resolves to the digest of the bytes, not the header's.
    assert!(stderr.contains(&digest(&manifest)), "{}", show(&out));
    assert!(
        stderr.contains("layer digest is not valid"),
        "{}",
        show(&out)
    );
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(
        registry.seen().iter().all(|s| !s.path.contains("..")),
        "the bad digest never named a URL"
    );
}

#[test]
fn manifests_of_other_kinds_are_refused_with_the_reason() {
    let artifact = hello_artifact();
    let contents = Contents::with(&artifact, "1.0");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": artifact.digest(), "size": artifact.manifest.len()}],
    }))
    .unwrap();
    let helm = Artifact::manifest_with(&artifact.config, &artifact.layer, |m| {
        m["artifactType"] = "application/vnd.cncf.helm.config.v1+json".into();
    });
    let docker = Artifact::manifest_with(&artifact.config, &artifact.layer, |m| {
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
    });
    let cases = [
        (index, "it is an image index"),
        (
            helm,
            "its artifact type is 'application/vnd.cncf.helm.config.v1+json'",
        ),
        (docker, "it is a Docker image manifest"),
    ];
    for (manifest, _) in &cases {
        contents.insert(&format!("manifests/{}", digest(manifest)), manifest.clone());
    }
    let registry = Server::start(false, move |seen| contents.answer("team/hello", seen));
    for (manifest, expected) in &cases {
        let pinned = format!("oci://{}/team/hello@{}", registry.host, digest(manifest));
        let (out, _) = run(&["plugin", "inspect", &pinned], &[]);
        assert_eq!(out.status.code(), Some(2), "{expected}: {}", show(&out));
        assert!(text(&out).1.contains(expected), "{}", show(&out));
    }
}

#[test]
fn bodies_past_their_bounds_are_cut_off_and_memory_stays_bounded() {
    let artifact = hello_artifact();
    let layer = digest(&artifact.layer);
    let manifest_digest = artifact.digest();
    let big_config = Artifact::manifest_with(&artifact.config, &artifact.layer, |m| {
        m["config"]["size"] = (2 << 20).into();
    });
    let contents = Contents::with(&artifact, "1.0");
    contents.insert(
        &format!("manifests/{}", digest(&big_config)),
        big_config.clone(),
    );
    let flood = Server::start(false, move |seen| {
        // 512 MiB, with no length, for a 58 KB layer and a small manifest.
        if seen.path.ends_with(&layer) || seen.path.ends_with(&manifest_digest) {
            return Reply::with(200, Body::Endless);
        }
        contents.answer("team/hello", seen)
    });
    let pinned = |d: &str| format!("oci://{}/team/hello@{d}", flood.host);
    for (reference, expected) in [
        (
            pinned(&artifact.digest()),
            "the manifest from registry".to_string(),
        ),
        (
            pinned(&digest(&big_config)),
            format!("its config is {} bytes; keyrot reads at most", 2 << 20),
        ),
    ] {
        let (mut cmd, _home, _cache) = command(&["plugin", "inspect", &reference], &[]);
        let (out, peak) = run_measuring_memory(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            text(&out).1.contains(&expected),
            "{expected}: {}",
            show(&out)
        );
        assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    }

    // The manifest is honest, the layer floods: cut off at its
    // descriptor's size.
    let layer = digest(&artifact.layer);
    let contents = Contents::with(&artifact, "1.0");
    let flood = Server::start(false, move |seen| {
        if seen.path.ends_with(&layer) {
            return Reply::with(200, Body::Endless);
        }
        contents.answer("team/hello", seen)
    });
    let reference = format!("oci://{}/team/hello@{}", flood.host, artifact.digest());
    let (mut cmd, _home, cache) = command(&["plugin", "inspect", &reference], &[]);
    let (out, peak) = run_measuring_memory(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains(&format!(
            "the component layer from {reference} is larger than the {} bytes its descriptor says",
            artifact.layer.len()
        )),
        "{}",
        show(&out)
    );
    assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    let stored = std::fs::read_dir(cache.path().join("oci/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "nothing half-read is kept");
}

#[tokio::test]
async fn a_drip_feeding_registry_runs_into_the_deadline() {
    let artifact = hello_artifact();
    let layer = digest(&artifact.layer);
    let sig_tag = format!("{}.sig", artifact.digest().replace(':', "-"));
    let contents = Contents::with(&artifact, "1.0");
    let bytes = artifact.layer.clone();
    let drip = Server::start(false, move |seen| {
        // A byte every 100 ms: each read is quick, the whole takes hours.
        let every = Duration::from_millis(100);
        if seen.path.ends_with(&layer) {
            return Reply::with(200, Body::Drip(bytes.clone(), every));
        }
        if seen.path.ends_with(&sig_tag) {
            return Reply::with(200, Body::Drip(vec![b' '; 10_000], every));
        }
        contents.answer("team/hello", seen)
    });
    let pinned = format!("oci://{}/team/hello@{}", drip.host, artifact.digest());
    let deadline = Duration::from_secs(2);
    let (out, took) = run(
        &["plugin", "inspect", &pinned, "--registry-timeout", "2s"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out)
            .1
            .contains(&format!("pulling {pinned} did not finish within 2s")),
        "{}",
        show(&out)
    );
    assert!(took < deadline * 3, "took {took:?}");

    // The signature lookup has the same deadline.
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = key_pair(keys.path(), "team");
    let (out, took) = run(
        &[
            "plugin",
            "verify",
            &pinned,
            "--key",
            &public,
            "--registry-timeout",
            "2s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains(&format!(
            "fetching the signatures of {pinned} did not finish within 2s"
        )),
        "{}",
        show(&out)
    );
    assert!(took < deadline * 3, "took {took:?}");

    // A job file sets it too; nothing touches IAM.
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let job_dir = tempfile::tempdir().unwrap();
    let job = job_dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("plugin = \"{pinned}\"\nuser = \"ci-bot\"\nregistry-timeout = \"2s\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("did not finish within 2s"),
        "{}",
        show(&out)
    );
    assert!(
        started.elapsed() < deadline * 3,
        "took {:?}",
        started.elapsed()
    );
    moto.assert_only_key("ci-bot", &old).await;
    std::fs::write(
        &job,
        format!("plugin = \"{pinned}\"\nregistry-timeout = \"soon\"\n"),
    )
    .unwrap();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out).1.contains("registry-timeout"), "{}", show(&out));
}

#[test]
fn registry_error_text_is_escaped_and_passwords_in_references_never_echoed() {
    let registry = Server::start(false, |_| {
        Reply::new(
            500,
            r#"{"errors":[{"code":"DENIED","message":"\u001b[2J\u001b]0;pwned\u0007 all clear"}]}"#,
        )
    });
    let pinned = format!("oci://{}/team/hello@{}", registry.host, digest(b"x"));
    let (out, _) = run(&["plugin", "inspect", &pinned], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    assert!(stderr.contains("DENIED: \\u{1b}[2J"), "{}", show(&out));

    let with_password = format!(
        "oci://bob:{REGISTRY_SECRET}@{}/team/hello@{}",
        registry.host,
        digest(b"x")
    );
    let wasm = plugin("hello").to_string_lossy().into_owned();
    let job_dir = tempfile::tempdir().unwrap();
    let job = job_dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("plugin = \"{with_password}\"\nuser = \"ci-bot\"\n"),
    )
    .unwrap();
    for args in [
        vec!["plugin", "push", wasm.as_str(), with_password.as_str()],
        vec!["plugin", "inspect", with_password.as_str()],
        vec!["--plugin", with_password.as_str(), "--user", "ci-bot"],
        vec!["--job", job.to_str().unwrap()],
    ] {
        // `run` fails the test if the password shows anywhere.
        let (out, _) = run(
            &args,
            &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            text(&out).1.contains("<redacted>@"),
            "{args:?}: {}",
            show(&out)
        );
    }
    assert!(registry.seen().len() == 1, "only the first run reached it");
}

#[test]
fn the_oci_store_and_signature_cache_never_follow_block_on_or_trust_others_files() {
    let registry = Registry::start();
    let artifact = hello_artifact();
    let wasm = plugin("hello").to_string_lossy().into_owned();
    let tag = registry.reference("team/hello:1.0");
    let (out, _) = run(&["plugin", "push", &wasm, &tag], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let manifest_digest = text(&out).0.trim().to_string();
    let pinned = format!("{tag}@{manifest_digest}");
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path(), "team");
    let (out, _) = run(&["plugin", "sign", &pinned, "--key", &private], &[PASSWORD]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A cache where someone planted a symlink to a file of value under the
    // manifest's name, a FIFO under the component's, and a symlink under
    // the signatures' name.
    let cache = tempfile::tempdir().unwrap();
    let blobs = cache.path().join("oci/blobs/sha256");
    let signatures = cache.path().join("oci/signatures");
    for dir in [&blobs, &signatures] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for dir in [
        cache.path().join("oci"),
        cache.path().join("oci/blobs"),
        blobs.clone(),
        signatures.clone(),
    ] {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
    }
    let victim = keys.path().join("precious");
    std::fs::write(&victim, "precious").unwrap();
    let hex = |d: &str| d.strip_prefix("sha256:").unwrap().to_string();
    std::os::unix::fs::symlink(&victim, blobs.join(hex(&manifest_digest))).unwrap();
    let fifo = std::ffi::CString::new(
        blobs
            .join(hex(&digest(&artifact.layer)))
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink(
        &victim,
        signatures.join(format!("{}.json", manifest_digest.replace(':', "-"))),
    )
    .unwrap();
    let cache_env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let (out, took) = run(&["plugin", "verify", &pinned, "--key", &public], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (out, took2) = run(&["plugin", "inspect", &pinned], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(took + took2 < Duration::from_secs(120), "nothing blocked");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for planted in [
        blobs.join(hex(&manifest_digest)),
        blobs.join(hex(&digest(&artifact.layer))),
        signatures.join(format!("{}.json", manifest_digest.replace(':', "-"))),
    ] {
        let meta = std::fs::symlink_metadata(&planted).unwrap();
        assert!(
            meta.is_file(),
            "{} was replaced by a file of ours",
            planted.display()
        );
    }
    // A FIFO in place of a cached component whose manifest is intact: read
    // without blocking, refused, pulled again.
    let component = blobs.join(hex(&digest(&artifact.layer)));
    std::fs::remove_file(&component).unwrap();
    let fifo =
        std::ffi::CString::new(component.clone().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (out, took) = run(&["plugin", "inspect", &pinned], &cache_env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).1.contains("not a regular file"),
        "{}",
        show(&out)
    );
    assert!(took < Duration::from_secs(60), "nothing blocked");
    assert!(std::fs::symlink_metadata(&component).unwrap().is_file());

    // A cache directory others can write, or of another user, is refused.
    std::fs::set_permissions(
        cache.path().join("oci"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let (out, _) = run(&["plugin", "inspect", &pinned], &cache_env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out).1;
    assert!(stderr.contains("is not safe to use"), "{}", show(&out));
    assert!(
        stderr.contains(&format!(
            "{}/oci: the directory is writable by other users",
            cache.path().display()
        )),
        "{}",
        show(&out)
    );
    let theirs = if unsafe { libc::geteuid() } == 0 {
        let theirs = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(theirs.path(), Some(65534), Some(65534)).unwrap();
        theirs.keep()
    } else {
        // Root's, and the check fails before anything is created in it.
        PathBuf::from("/")
    };
    let (out, _) = run(
        &["plugin", "inspect", &pinned],
        &[("KEYROT_CACHE_DIR", theirs.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("belongs to another user"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn each_registry_gets_only_its_own_credentials_in_a_fleet() {
    let hello = std::fs::read(plugin("hello")).unwrap();
    let a_artifact = Artifact::of(&hello);
    // Another artifact of the same component (its config differs), so the
    // second target cannot be served from the first one's cache.
    let b_config = br#"{"architecture":"wasm","os":"wasip2","created":"2026-01-01T00:00:00Z"}"#;
    let b_artifact = Artifact {
        config: b_config.to_vec(),
        layer: hello.clone(),
        manifest: Artifact::manifest_with(b_config, &hello, |_| {}),
    };
    let basic_registry = |artifact: &Artifact, expected: String| {
        let contents = Contents::with(artifact, "1.0");
        Server::start(false, move |seen| {
            if seen.authorization.as_deref() != Some(expected.as_str()) {
                return Reply::new(401, "").header("www-authenticate", r#"Basic realm="hostile""#);
            }
            contents.answer("team/hello", seen)
        })
    };
    let (a_pw, b_pw) = (REGISTRY_SECRET, "other-registry-pw");
    let a = basic_registry(&a_artifact, basic("alice", a_pw));
    let b = basic_registry(&b_artifact, basic("bert", b_pw));

    let (moto, _) = Moto::start_with_user("ci-a").await;
    moto.create_user("ci-b").await;
    moto.create_key("ci-b", "Active").await;
    let dir = tempfile::tempdir().unwrap();
    let docker_auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("bert:{b_pw}"),
    );
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{docker_auth}"}}}}}}"#, b.host),
    )
    .unwrap();
    let job = dir.path().join("fleet.toml");
    std::fs::write(
        &job,
        format!(
            "[[target]]\nname = \"a\"\nuser = \"ci-a\"\nplugin = \"oci://{}/team/hello@{}\"\n\n\
             [[target]]\nname = \"b\"\nuser = \"ci-b\"\nplugin = \"oci://{}/team/hello@{}\"\n",
            a.host,
            a_artifact.digest(),
            b.host,
            b_artifact.digest()
        ),
    )
    .unwrap();
    let cache = fresh_cache();
    let out = moto.keyrot_with_env(
        &["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url],
        &[
            ("KEYROT_REGISTRY_USER", "alice"),
            ("KEYROT_REGISTRY_PASSWORD", a_pw),
            ("KEYROT_REGISTRY_HOST", a.host.as_str()),
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
            ("KEYROT_CACHE_DIR", cache.path().to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let printed = show(&out);
    assert!(
        !printed.contains(a_pw) && !printed.contains(b_pw),
        "{printed}"
    );
    for (server, own, other) in [
        (&a, basic("alice", a_pw), basic("bert", b_pw)),
        (&b, basic("bert", b_pw), basic("alice", a_pw)),
    ] {
        let sent = server.authorizations();
        assert!(sent.contains(&own), "{}: {sent:?}", server.host);
        assert!(
            !sent.contains(&other),
            "{} got the other registry's password",
            server.host
        );
    }
}

#[test]
fn help_documents_the_registry_flags_and_where_credentials_come_from() {
    let (out, _) = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let help = text(&out).0;
    for flag in [
        "Registry:",
        "--insecure-registry <HOST>",
        "--registry-token-host <HOST>",
        "--registry-timeout <DURATION>",
        "KEYROT_REGISTRY_HOST",
        "SSL_CERT_FILE",
    ] {
        assert!(help.contains(flag), "--help lacks {flag:?}:\n{help}");
    }
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let artifact = hello_artifact();
    let layer = digest(&artifact.layer);
    // Where the registry sends its blobs: another host (port), no auth.
    let contents = Contents::with(&artifact, "1.0");
    let cdn_contents = contents.clone();
    let cdn = Server::start(false, move |seen| cdn_contents.answer("team/hello", seen));
    let target = Arc::new(Mutex::new(String::new()));
    let to = target.clone();
    let expected = basic("keyrot", REGISTRY_SECRET);
    let registry = Server::start(false, move |seen| {
        if seen.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::new(401, "").header("www-authenticate", r#"Basic realm="hostile""#);
        }
        if seen.path.ends_with(&layer) {
            return Reply::new(307, "").header("location", &to.lock().unwrap());
        }
        contents.answer("team/hello", seen)
    });
    let pinned = format!("oci://{}/team/hello@{}", registry.host, artifact.digest());
    let env = [
        ("KEYROT_REGISTRY_USER", "keyrot"),
        ("KEYROT_REGISTRY_PASSWORD", REGISTRY_SECRET),
        ("KEYROT_REGISTRY_HOST", registry.host.as_str()),
    ];
    *target.lock().unwrap() = format!(
        "http://{}/v2/team/hello/blobs/{}",
        cdn.host,
        digest(&artifact.layer)
    );
    let (out, _) = run(&["plugin", "inspect", &pinned], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!cdn.seen().is_empty(), "the blob came from the other host");
    assert!(
        cdn.authorizations().is_empty(),
        "{:?}",
        cdn.authorizations()
    );

    // Plain HTTP to a host that is neither loopback nor named: refused.
    *target.lock().unwrap() = "http://keyrot-test.invalid:9/blob".into();
    let (out, _) = run(&["plugin", "inspect", &pinned], &env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out).1.contains("redirected to plain HTTP"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_docker_identity_token_is_exchanged_only_at_the_registrys_own_token_service() {
    let artifact = hello_artifact();
    let contents = Contents::with(&artifact, "1.0");
    let realm = Arc::new(Mutex::new(String::new()));
    let at = realm.clone();
    let registry = Server::start(true, move |seen| {
        if seen.path.starts_with("/token") {
            // OAuth2 refresh-token grant, as `docker login` identity
            // tokens are used.
            let form = String::from_utf8_lossy(&seen.body);
            return if seen.method == "POST" && form.contains("refresh_token=id-t0ken") {
                Reply::new(200, r#"{"access_token":"t0ken"}"#)
            } else {
                Reply::new(401, "")
            };
        }
        if seen.authorization.as_deref() != Some("Bearer t0ken") {
            return Reply::new(401, "").header(
                "www-authenticate",
                &format!(r#"Bearer realm="{}",service="hostile""#, at.lock().unwrap()),
            );
        }
        contents.answer("team/hello", seen)
    });
    *realm.lock().unwrap() = format!("https://{}/token", registry.host);
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"id-t0ken"}}}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let ca = ca_file();
    let pinned = format!("oci://{}/team/hello@{}", registry.host, artifact.digest());
    let (out, _) = run(
        &["plugin", "inspect", &pinned],
        &[
            ("DOCKER_CONFIG", docker.path().to_str().unwrap()),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!show(&out).contains("id-t0ken"), "{}", show(&out));
    let exchanged = registry
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/token"))
        .count();
    assert!(exchanged >= 1);
}
