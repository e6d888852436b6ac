//! The Kubernetes CronJob example (`examples/kubernetes/cronjob.yaml`) runs
//! as a cluster would run it. Its container's settings are read from the
//! YAML (args, environment, user, volumes and their mounts, the read-only
//! root) and from `examples/Dockerfile` (the entrypoint, `ENV`, the user's
//! home), and keyrot runs under them: in a mount namespace whose root is a
//! real read-only filesystem (the host's `/usr` and `/etc`, read-only, and
//! nothing else writable), with the volumes mounted where the YAML says
//! (`emptyDir`s world-writable as the kubelet makes them, the ConfigMap with
//! its `..data` symlinks), as the pod's user and group.
//!
//! What stands in for the cluster: moto for IAM (static keys instead of
//! IRSA), the fake GitHub API for api.github.com (the job file's host and
//! pin are the two placeholders replaced), the test's files for the
//! ConfigMap and the Secret.
//!
//! Needs root (for the mount namespace) and `unshare`, `mount`, `chroot`;
//! the tests fail, never skip, without them (`scripts/setup.sh` installs
//! util-linux).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::github_server::FakeGitHub;
use crate::util::{Moto, plugin, show};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file's documents as JSON, through PyYAML in the project
/// virtualenv (moto's server extra depends on it; scripts/setup.sh
/// installs both).
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/setup.sh, which makes .venv/ with PyYAML",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "PyYAML could not read {}: {}",
        path.display(),
        show(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One volume of the pod, and where its container mounts it.
#[derive(Clone, Debug)]
pub struct Mount {
    pub path: String,
    pub read_only: bool,
    /// `emptyDir`, `configMap` (with the map's name), ...
    pub kind: String,
}

/// What the example's container runs, and how.
#[derive(Clone, Debug)]
pub struct Pod {
    pub entrypoint: String,
    pub args: Vec<String>,
    /// Plain values, from the Dockerfile's `ENV` and the YAML's `env`.
    pub env: BTreeMap<String, String>,
    /// Variables whose value comes from a Secret: (variable, secret name).
    pub secret_env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub read_only_root: bool,
    pub mounts: Vec<Mount>,
}

/// The CronJob's container, as `examples/kubernetes/cronjob.yaml` and the
/// image of `examples/Dockerfile` define it.
pub fn example_pod() -> Pod {
    let docs = yaml_documents(&root().join("examples/kubernetes/cronjob.yaml"));
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob in the example");
    let spec = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let container = &containers[0];
    let security = &container["securityContext"];
    let pod_security = &spec["securityContext"];
    let id = |key: &str| {
        security[key]
            .as_u64()
            .or(pod_security[key].as_u64())
            .unwrap_or_else(|| panic!("the example sets {key}")) as u32
    };
    let dockerfile = std::fs::read_to_string(root().join("examples/Dockerfile")).unwrap();
    let mut env = BTreeMap::new();
    for line in dockerfile.lines() {
        if let Some(rest) = line.strip_prefix("ENV ")
            && let Some((k, v)) = rest.split_once('=')
        {
            env.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .map(|l| serde_json::from_str::<Vec<String>>(l).unwrap()[0].clone())
        .expect("an ENTRYPOINT in the Dockerfile");
    // The runtime sets HOME from the image's passwd entry for the user.
    let home = dockerfile
        .split("--home-dir ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("useradd --home-dir in the Dockerfile")
        .to_string();
    let mut secret_env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        if let Some(value) = var["value"].as_str() {
            env.insert(name, value.to_string());
        } else {
            let secret = var["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: a value or a secretKeyRef"));
            secret_env.push((name, secret.to_string()));
        }
    }
    let volumes = spec["volumes"].as_array().expect("volumes");
    let mounts = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_string();
            let volume = volumes
                .iter()
                .find(|v| v["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no volume {name}"));
            let kind = if volume.get("emptyDir").is_some() {
                "emptyDir".to_string()
            } else if let Some(map) = volume["configMap"]["name"].as_str() {
                format!("configMap {map}")
            } else {
                panic!("volume {name}: a kind this test does not know: {volume}")
            };
            Mount {
                path: m["mountPath"].as_str().unwrap().to_string(),
                read_only: m["readOnly"].as_bool().unwrap_or(false),
                kind,
            }
        })
        .collect();
    Pod {
        entrypoint,
        args: container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
        env,
        secret_env,
        uid: id("runAsUser"),
        gid: id("runAsGroup"),
        home,
        read_only_root: security["readOnlyRootFilesystem"] == true,
        mounts,
    }
}

/// Fails (never skips) without root or the tools.
fn require_the_tools() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test builds a read-only root in a mount namespace and needs root: run the \
         suite as root, as CI does (see CONTRIBUTING.md)"
    );
    for tool in ["unshare", "mount", "chroot"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: install util-linux (scripts/setup.sh does), and coreutils"
        );
    }
}

/// A volume's contents on the host: a directory, laid out and moded as
/// the kubelet would.
pub struct Volumes {
    _dirs: Vec<tempfile::TempDir>,
    /// (mount, host directory).
    pub mounted: Vec<(Mount, PathBuf)>,
}

/// Makes the pod's volumes: each `emptyDir` empty and world-writable (as
/// the kubelet makes them), each ConfigMap with `files` behind its `..data`
/// symlinks, 0644.
pub fn volumes(pod: &Pod, files: &[(&str, Vec<u8>)]) -> Volumes {
    let mut dirs = Vec::new();
    let mut mounted = Vec::new();
    for mount in &pod.mounts {
        let dir = tempfile::tempdir().unwrap();
        if mount.kind == "emptyDir" {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        } else {
            let data = dir.path().join("..2025_01_01_00_00_00.1");
            std::fs::create_dir(&data).unwrap();
            for (name, bytes) in files {
                std::fs::write(data.join(name), bytes).unwrap();
                std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644))
                    .unwrap();
                std::os::unix::fs::symlink(format!("..data/{name}"), dir.path().join(name))
                    .unwrap();
            }
            std::os::unix::fs::symlink("..2025_01_01_00_00_00.1", dir.path().join("..data"))
                .unwrap();
            for d in [dir.path(), data.as_path()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        mounted.push((mount.clone(), dir.path().to_path_buf()));
        dirs.push(dir);
    }
    Volumes {
        _dirs: dirs,
        mounted,
    }
}

/// Single-quotes `s` for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the pod's command with `env` (the pod's plus the test's stand-ins
/// for IRSA and Secrets): in a new mount namespace, chrooted into a root
/// that is read-only but for the volumes, as the pod's user.
pub fn run_pod(pod: &Pod, volumes: &Volumes, env: &BTreeMap<String, String>) -> Output {
    require_the_tools();
    assert!(
        pod.read_only_root,
        "the example's root filesystem is read-only"
    );
    let new_root = tempfile::tempdir().unwrap();
    let r = quote(new_root.path().to_str().unwrap());
    let mut script = vec![
        "set -eu".to_string(),
        format!("R={r}"),
        "mount -t tmpfs -o mode=0755 tmpfs \"$R\"".into(),
        "mkdir -p \"$R/usr\" \"$R/etc\" \"$R/dev\" \"$R/proc\" \"$R/tmp\"".into(),
    ];
    // The system, read-only: the binary's libraries, /etc, nothing else.
    for dir in ["usr", "etc"] {
        script.push(format!("mount --rbind /{dir} \"$R/{dir}\""));
        script.push(format!("mount -o remount,bind,ro \"$R/{dir}\""));
    }
    for link in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(link);
        if let Ok(target) = std::fs::read_link(&host) {
            script.push(format!(
                "ln -s {} \"$R/{link}\"",
                quote(target.to_str().unwrap())
            ));
        } else if host.is_dir() {
            script.push(format!("mkdir \"$R/{link}\""));
            script.push(format!("mount --rbind /{link} \"$R/{link}\""));
            script.push(format!("mount -o remount,bind,ro \"$R/{link}\""));
        }
    }
    script.push("mount --rbind /dev \"$R/dev\"".into());
    script.push("mount --rbind /proc \"$R/proc\"".into());
    // The image: keyrot at its entrypoint, the user's home (useradd made it,
    // owned by the user).
    let entry = Path::new(&pod.entrypoint);
    let bin_dir = entry.parent().unwrap().to_str().unwrap();
    script.push(format!("mount -t tmpfs -o mode=0755 tmpfs \"$R{bin_dir}\""));
    script.push(format!("touch \"$R{}\"", pod.entrypoint));
    script.push(format!(
        "mount --bind {} \"$R{}\"",
        quote(env!("CARGO_BIN_EXE_keyrot")),
        pod.entrypoint
    ));
    script.push(format!("mount -o remount,bind,ro \"$R{}\"", pod.entrypoint));
    script.push(format!("mount -o remount,ro \"$R{bin_dir}\""));
    script.push(format!("mkdir -p \"$R{}\"", pod.home));
    script.push(format!("chown {}:{} \"$R{}\"", pod.uid, pod.gid, pod.home));
    // The volumes, where the pod mounts them.
    for (mount, dir) in &volumes.mounted {
        script.push(format!("mkdir -p \"$R{}\"", mount.path));
        script.push(format!(
            "mount --bind {} \"$R{}\"",
            quote(dir.to_str().unwrap()),
            mount.path
        ));
        if mount.read_only {
            script.push(format!("mount -o remount,bind,ro \"$R{}\"", mount.path));
        }
    }
    // The root itself read-only: every path not on a volume.
    script.push("mount -o remount,ro \"$R\"".into());
    let mut exec = format!(
        "exec chroot --userspec={uid}:{gid} --groups={gid} \"$R\" {}",
        quote(&pod.entrypoint),
        uid = pod.uid,
        gid = pod.gid
    );
    for arg in &pod.args {
        exec.push(' ');
        exec.push_str(&quote(arg));
    }
    script.push(exec);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(script.join("\n"))
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", &pod.home)
        .envs(&pod.env)
        .envs(env);
    cmd.output().expect("run unshare")
}

/// The example's job file with its placeholders filled in for the test:
/// the plugin's real sha256, and the fake GitHub API for api.github.com.
fn job_file(github: &FakeGitHub, sha256: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples/rotate-ci.toml")).unwrap();
    let host = github.url.trim_start_matches("http://");
    let mut job = text.clone();
    for (from, to) in [
        (
            format!("plugin-sha256 = \"{}\"", "0".repeat(64)),
            format!("plugin-sha256 = \"{sha256}\""),
        ),
        (
            "allow-hosts = [\"api.github.com\"]".to_string(),
            format!("allow-hosts = [\"{}\"]", github.url),
        ),
        (
            "\"api.github.com=Authorization:".to_string(),
            format!("\"{host}=Authorization:"),
        ),
        (
            "[config]\n".to_string(),
            format!("[config]\napi-url = \"{}\"\n", github.url),
        ),
    ] {
        assert_eq!(
            job.matches(&from).count(),
            1,
            "the example job file has {from}"
        );
        job = job.replace(&from, &to);
    }
    job
}

/// Everything a run of the example needs: moto with user ci-bot, the fake
/// GitHub API, the ConfigMap's files (job file and plugin), and the
/// environment standing in for IRSA and the Secret.
pub struct Cluster {
    pub moto: Moto,
    pub old_key: String,
    pub github: FakeGitHub,
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub env: BTreeMap<String, String>,
}

impl Cluster {
    pub async fn start(pod: &Pod) -> Cluster {
        let (moto, old_key) = Moto::start_with_user("ci-bot").await;
        let github = FakeGitHub::start();
        let wasm = std::fs::read(plugin("github")).unwrap();
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&wasm))
        };
        let files = vec![
            ("rotate-ci.toml", job_file(&github, &sha256).into_bytes()),
            ("github.wasm", wasm),
        ];
        let (id, secret) = moto.credentials();
        let mut env = BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_string(), id),
            ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
            ("AWS_ENDPOINT_URL".to_string(), moto.url.clone()),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ]);
        for (var, secret) in &pod.secret_env {
            assert_eq!(
                secret, "keyrot-github",
                "the Secret this test stands in for"
            );
            env.insert(var.clone(), FakeGitHub::TOKEN.to_string());
        }
        Cluster {
            moto,
            old_key,
            github,
            files,
            env,
        }
    }
}

#[tokio::test]
async fn the_cronjob_example_rotates_with_its_read_only_root() {
    let pod = example_pod();
    assert!(
        pod.args.windows(2).any(|w| w == ["--journal", "iam"]),
        "the CronJob keeps the journal on the IAM user: {:?}",
        pod.args
    );
    let cluster = Cluster::start(&pod).await;
    let volumes = volumes(&pod, &cluster.files);
    let out = run_pod(&pod, &volumes, &cluster.env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "rotated", "{report}");
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    assert_ne!(new, cluster.old_key);
    assert_eq!(
        cluster.moto.keys("ci-bot").await,
        [(new.to_string(), "Active".to_string())]
    );
    assert_eq!(
        cluster.github.secrets()["repos/octo/app/AWS_ACCESS_KEY_ID"],
        new,
        "the fake GitHub holds the new key"
    );
    // The state directory keyrot made on the volume: the pod user's, 0700.
    let state = &pod.env["KEYROT_STATE_DIR"];
    let (mount, dir) = volumes
        .mounted
        .iter()
        .find(|(m, _)| state.starts_with(&format!("{}/", m.path)))
        .expect("KEYROT_STATE_DIR is below a volume");
    assert_eq!(mount.kind, "emptyDir");
    let made = dir.join(state.strip_prefix(&format!("{}/", mount.path)).unwrap());
    let meta = std::fs::metadata(&made).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (pod.uid, 0o700));
    // The IAM journal is gone with the run's end.
    let tags = cluster
        .moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty(), "{:?}", tags.tags());
}

/// The example as it was, without a state volume: the read-only root is
/// really read-only (exit 2, nothing changed), and the error says how to
/// give keyrot a state directory.
#[tokio::test]
async fn without_its_state_volume_the_cronjob_fails_naming_the_fix() {
    let mut pod = example_pod();
    let state = pod
        .env
        .remove("KEYROT_STATE_DIR")
        .expect("the example sets KEYROT_STATE_DIR");
    pod.mounts
        .retain(|m| !state.starts_with(&format!("{}/", m.path)));
    let cluster = Cluster::start(&pod).await;
    let volumes = volumes(&pod, &cluster.files);
    let out = run_pod(&pod, &volumes, &cluster.env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}/.local/state/keyrot", pod.home))
            && err.contains("Read-only file system")
            && err.contains("--state-dir")
            && err.contains("KEYROT_STATE_DIR"),
        "{}",
        show(&out)
    );
    cluster
        .moto
        .assert_only_key("ci-bot", &cluster.old_key)
        .await;
}

/// Why the example points KEYROT_STATE_DIR below its volume: an emptyDir's
/// root is world-writable, and keyrot refuses a state directory others can
/// write (a journal there could be forged).
#[tokio::test]
async fn the_state_directory_is_below_the_volume_because_its_root_is_shared() {
    let mut pod = example_pod();
    let state = pod.env["KEYROT_STATE_DIR"].clone();
    let volume = pod
        .mounts
        .iter()
        .find(|m| state.starts_with(&format!("{}/", m.path)))
        .expect("KEYROT_STATE_DIR is below a volume")
        .path
        .clone();
    pod.env.insert("KEYROT_STATE_DIR".into(), volume);
    let cluster = Cluster::start(&pod).await;
    let volumes = volumes(&pod, &cluster.files);
    let out = run_pod(&pod, &volumes, &cluster.env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("state directory"),
        "{}",
        show(&out)
    );
    cluster
        .moto
        .assert_only_key("ci-bot", &cluster.old_key)
        .await;
}
