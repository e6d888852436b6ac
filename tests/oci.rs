//! Plugins shared through an OCI registry: the real CNCF distribution
//! registry (Debian's `docker-registry`) on a free loopback port, the real
//! binary, moto. Push, pull by digest, rotate; tags; layouts keyrot must
//! refuse; the cache when the registry is down; cosign signatures.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;

use crate::util::{Moto, plugin, show};

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
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited ({status}) before listening on {addr}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not listen on {addr} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child: Some(child),
            host,
            dir,
        }
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
        text(&out).1.contains("pulling the manifest failed"),
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

    let out = moto.keyrot_with_env(&["plugin", "sign", &tag, "--key", &private], &[PASSWORD]);
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

    let env = [
        ("KEYROT_REGISTRY_USER", "keyrot"),
        ("KEYROT_REGISTRY_PASSWORD", "s3cret-test"),
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
