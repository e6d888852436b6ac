//! End-to-end tests of the `kubernetes-secret` handler through the binary,
//! against moto and a fake Kubernetes API server that follows the API
//! docs: a bearer token, RBAC per verb and resource (403 `Status`), merge
//! and strategic-merge patches only (415 otherwise), `resourceVersion`
//! optimistic concurrency (409 Conflict), server-side `dryRun=All`,
//! immutable Secrets, base64 data (422), and 429 with `Retry-After`; and
//! the same API over HTTPS with a certificate from the cluster's own CA,
//! reached with `--allow-host-ca` and refused without it.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::schedule::{kill, start_at};
use crate::test_ca::TestCa;
use crate::util::{Moto, Recorded, Reply, TestServer, plugin, show};

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.fake-service-account-token";
const TOKEN_ENV: (&str, &str) = ("KUBE_TOKEN", TOKEN);
const SECRET_PATH: &str = "/api/v1/namespaces/payments/secrets/app-aws";
const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/payments/deployments/api";

/// What the fake cluster holds and how it misbehaves.
#[derive(Default)]
struct Cluster {
    /// Objects by API path.
    objects: BTreeMap<String, Value>,
    /// The cluster-wide resourceVersion counter.
    version: u64,
    /// (verb, resource) pairs RBAC denies.
    denied: Vec<(&'static str, &'static str)>,
    /// Answer the next n requests with 429.
    rate_limited: u32,
    /// Someone else writes the Secret just before each of the next n
    /// (real) patches of it.
    races: u32,
    /// Real writes fail (500, etcd timing out); dry runs still pass.
    failing_writes: bool,
    /// Real patches of Deployments fail the same way.
    failing_restarts: bool,
}

struct FakeKube {
    server: TestServer,
    cluster: Arc<Mutex<Cluster>>,
}

impl FakeKube {
    /// A cluster with Secret payments/app-aws (holding `key_id` unless
    /// `None`, a label, an annotation, another key and its type) and
    /// Deployment payments/api, over plain HTTP.
    fn start(key_id: Option<&str>) -> FakeKube {
        Self::start_with(key_id, TestServer::start)
    }

    /// The same cluster over HTTPS, its certificate signed by `ca`.
    fn start_tls(key_id: Option<&str>, ca: &TestCa) -> FakeKube {
        let tls = ca.server.clone();
        Self::start_with(key_id, move |handler| TestServer::start_tls(tls, handler))
    }

    fn start_with<S>(key_id: Option<&str>, serve: S) -> FakeKube
    where
        S: FnOnce(Box<dyn Fn(&Recorded) -> Reply + Send + Sync>) -> TestServer,
    {
        let mut data = json!({ "DB_PASSWORD": BASE64.encode("hunter2") });
        if let Some(id) = key_id {
            data["AWS_ACCESS_KEY_ID"] = json!(BASE64.encode(id));
            data["AWS_SECRET_ACCESS_KEY"] = json!(BASE64.encode("old-secret"));
        }
        let mut cluster = Cluster {
            version: 100,
            ..Cluster::default()
        };
        cluster.objects.insert(
            SECRET_PATH.into(),
            json!({
                "kind": "Secret", "apiVersion": "v1",
                "metadata": {
                    "name": "app-aws", "namespace": "payments", "uid": "6b1c",
                    "resourceVersion": "100",
                    "labels": { "app": "payments" },
                    "annotations": { "owner": "platform-team" },
                },
                "type": "Opaque",
                "data": data,
            }),
        );
        cluster.objects.insert(
            DEPLOYMENT_PATH.into(),
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": { "name": "api", "namespace": "payments", "resourceVersion": "100" },
                "spec": {
                    "replicas": 2,
                    "template": {
                        "metadata": { "annotations": { "prometheus.io/scrape": "true" } },
                        "spec": { "containers": [{ "name": "api", "image": "api:1" }] },
                    },
                },
            }),
        );
        let cluster = Arc::new(Mutex::new(cluster));
        let state = cluster.clone();
        let server = serve(Box::new(move |r| answer(r, &mut state.lock().unwrap())));
        FakeKube { server, cluster }
    }

    fn secret(&self) -> Value {
        self.cluster.lock().unwrap().objects[SECRET_PATH].clone()
    }

    fn deployment(&self) -> Value {
        self.cluster.lock().unwrap().objects[DEPLOYMENT_PATH].clone()
    }

    fn with(&self, change: impl FnOnce(&mut Cluster)) {
        change(&mut self.cluster.lock().unwrap());
    }

    /// The requests that changed something: patches without dryRun.
    fn real_patches(&self) -> Vec<Recorded> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && !r.path.contains("dryRun"))
            .collect()
    }
}

/// A Kubernetes `Status` answer.
fn status(code: u16, reason: &str, message: &str) -> Reply {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    Reply::new(code, body.to_string()).header("content-type", "application/json")
}

fn answer(r: &Recorded, cluster: &mut Cluster) -> Reply {
    if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if cluster.rate_limited > 0 {
        cluster.rate_limited -= 1;
        return status(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .header("retry-after", "1");
    }
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let resource = if path.contains("/secrets/") {
        "secrets"
    } else {
        "deployments"
    };
    let name = path.rsplit('/').next().unwrap_or("");
    let verb = match r.method.as_str() {
        "GET" => "get",
        "PATCH" => "patch",
        _ => {
            return status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method",
            );
        }
    };
    if cluster.denied.contains(&(verb, resource)) {
        let message = format!(
            "{resource} \"{name}\" is forbidden: User \"system:serviceaccount:ci:keyrot\" cannot \
             {verb} resource \"{resource}\" in API group \"\" in the namespace \"payments\""
        );
        return status(403, "Forbidden", &message);
    }
    let Some(object) = cluster.objects.get(path).cloned() else {
        return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    };
    if verb == "get" {
        return Reply::new(200, object.to_string());
    }
    let patch_types = [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    ];
    let content_type = r.header("content-type").unwrap_or("");
    if !patch_types.contains(&content_type) {
        return status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                patch_types.join(", ")
            ),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&r.body) else {
        return status(400, "BadRequest", "error decoding patch: invalid JSON");
    };
    let dry_run = query.split('&').any(|q| q == "dryRun=All");
    let mut object = object;
    if !dry_run && resource == "secrets" && cluster.races > 0 {
        // Another client's write lands first: a new resourceVersion.
        cluster.races -= 1;
        cluster.version += 1;
        object["metadata"]["annotations"]["touched-by"] = json!("other-writer");
        object["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
        cluster.objects.insert(path.to_string(), object.clone());
    }
    if let Some(wanted) = patch["metadata"]["resourceVersion"].as_str()
        && wanted != object["metadata"]["resourceVersion"]
    {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    if !dry_run
        && (cluster.failing_writes || (resource == "deployments" && cluster.failing_restarts))
    {
        return status(500, "InternalError", "etcdserver: request timed out");
    }
    let before = object["data"].clone();
    merge(&mut object, &patch);
    if resource == "secrets" {
        let bad = object["data"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, v)| v.as_str().is_none_or(|s| BASE64.decode(s).is_err()));
        if bad {
            return status(
                422,
                "Invalid",
                &format!("Secret \"{name}\" is invalid: data: illegal base64 data"),
            );
        }
        if object["immutable"] == true && object["data"] != before {
            return status(
                422,
                "Invalid",
                &format!(
                    "Secret \"{name}\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
                ),
            );
        }
    }
    if !dry_run {
        cluster.version += 1;
        object["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
        cluster.objects.insert(path.to_string(), object.clone());
    }
    Reply::new(200, object.to_string())
}

/// RFC 7386 JSON merge patch (for these maps, also what a strategic merge
/// patch does).
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        if value.is_null() {
            target.as_object_mut().unwrap().remove(key);
        } else {
            merge(&mut target[key], value);
        }
    }
}

/// The settings and grants every run uses, plus `extra`.
fn args(kube: &FakeKube, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--allow-host".into(),
        kube.server.url.clone(),
        "--inject-header".into(),
        format!(
            "{}=Authorization:Bearer {{env:KUBE_TOKEN}}",
            kube.server.url
        ),
        "--config".into(),
        format!("api-url={}", kube.server.url),
        "--config".into(),
        "namespace=payments".into(),
        "--config".into(),
        "secret-name=app-aws".into(),
        "--plugin-log".into(),
        "show".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Rotates ci-bot into `kube`; no secret may show in keyrot's output
/// ([`Moto::rotate`] checks), nor in any request but the patch that stores
/// it.
fn run(moto: &Moto, kube: &FakeKube, extra: &[&str]) -> Output {
    let args = args(kube, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = moto.rotate("kubernetes_secret", &args, &[TOKEN_ENV]);
    assert_secrets_only_stored(moto, kube);
    out
}

fn assert_secrets_only_stored(moto: &Moto, kube: &FakeKube) {
    for (_, secret) in moto.keys_with_secrets() {
        let encoded = BASE64.encode(&secret);
        for r in kube.server.requests() {
            let stores = r.method == "PATCH"
                && r.path == SECRET_PATH
                && r.header("content-type") == Some("application/merge-patch+json");
            let seen = format!(
                "{} {} {:?} {}",
                r.method,
                r.path,
                r.headers,
                String::from_utf8_lossy(&r.body)
            );
            assert!(!seen.contains(&secret), "a secret in a request: {seen}");
            assert!(
                stores || !seen.contains(&encoded),
                "a secret in a request: {seen}"
            );
        }
    }
}

fn decoded(secret: &Value, key: &str) -> String {
    String::from_utf8(
        BASE64
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn secret_of(moto: &Moto, key_id: &str) -> String {
    moto.keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, secret)| secret)
        .expect("moto issued the key")
}

/// The Secret holds the new key; its labels, annotations, type and other
/// keys are as they were.
async fn assert_rotated(moto: &Moto, kube: &FakeKube, old: &str) -> String {
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let new = keys[0].0.clone();
    assert_ne!(new, old);
    let secret = kube.secret();
    assert_eq!(decoded(&secret, "AWS_ACCESS_KEY_ID"), new);
    assert_eq!(
        decoded(&secret, "AWS_SECRET_ACCESS_KEY"),
        secret_of(moto, &new)
    );
    assert_eq!(decoded(&secret, "DB_PASSWORD"), "hunter2");
    assert_eq!(secret["metadata"]["labels"], json!({ "app": "payments" }));
    assert_eq!(secret["metadata"]["annotations"]["owner"], "platform-team");
    assert_eq!(secret["type"], "Opaque");
    new
}

#[tokio::test]
async fn the_secret_gets_the_new_key_and_keeps_everything_else() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    // One real patch: a JSON merge patch naming the version it read and
    // only the two keys we own.
    let patches = kube.real_patches();
    assert_eq!(patches.len(), 1);
    let patch: Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(patch["metadata"], json!({ "resourceVersion": "100" }));
    let mut keys: Vec<_> = patch["data"].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    assert_eq!(patch.as_object().unwrap().len(), 2, "{patch}");
    // The Deployment was not asked to restart.
    assert!(
        kube.deployment()["spec"]["template"]["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/restartedAt")
            .is_none()
    );
}

#[tokio::test]
async fn an_empty_secret_gets_the_key_in_configured_data_keys() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(None);
    let out = run(
        &moto,
        &kube,
        &[
            "--config",
            "key-id-data-key=aws_id",
            "--config",
            "secret-key-data-key=aws_secret",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    assert_ne!(new, old);
    let secret = kube.secret();
    assert_eq!(decoded(&secret, "aws_id"), new);
    assert_eq!(decoded(&secret, "aws_secret"), secret_of(&moto, &new));
    assert_eq!(decoded(&secret, "DB_PASSWORD"), "hunter2");
    assert!(secret["data"].get("AWS_ACCESS_KEY_ID").is_none());
}

#[tokio::test]
async fn deployments_are_restarted_as_kubectl_rollout_restart_does() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    let out = run(&moto, &kube, &["--config", "restart-deployments=api"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    let deployment = kube.deployment();
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    let at = annotations["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .expect("restartedAt");
    // RFC 3339 in UTC, as kubectl writes it: 2026-12-07T08:00:00Z.
    let shape: String = at
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:ddZ", "{at}");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let restart = kube
        .real_patches()
        .into_iter()
        .find(|r| r.path == DEPLOYMENT_PATH)
        .expect("the restart");
    assert_eq!(
        restart.header("content-type"),
        Some("application/strategic-merge-patch+json")
    );
    // Preflight proved both patches with dry runs first.
    let dry: Vec<String> = kube
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("?dryRun=All"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        dry,
        [
            format!("{SECRET_PATH}?dryRun=All"),
            format!("{DEPLOYMENT_PATH}?dryRun=All")
        ]
    );
}

#[tokio::test]
async fn a_write_between_read_and_patch_is_read_again_and_kept() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.races = 1);
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    // The other writer's change survived, and the second patch named the
    // version after it.
    assert_eq!(
        kube.secret()["metadata"]["annotations"]["touched-by"],
        "other-writer"
    );
    let patches = kube.real_patches();
    assert_eq!(patches.len(), 2);
    let second: Value = serde_json::from_slice(&patches[1].body).unwrap();
    assert_eq!(second["metadata"]["resourceVersion"], "101");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409 Conflict"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn conflicts_that_keep_coming_fail_and_the_new_key_is_deleted() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.races = 5);
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("changed twice"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(decoded(&kube.secret(), "AWS_ACCESS_KEY_ID"), old);
}

#[tokio::test]
async fn a_secret_holding_another_key_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some("AKIAOTHERKEY00000000"));
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("holds key AKIAOTHERKEY00000000"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(kube.real_patches().is_empty());
}

#[tokio::test]
async fn no_patch_permission_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.denied.push(("patch", "secrets")));
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let printed = show(&out);
    assert!(
        printed.contains("403 Forbidden") && printed.contains("patch on secrets"),
        "{printed}"
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_missing_secret_or_deployment_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    let out = run(
        &moto,
        &kube,
        &["--config", "restart-deployments=api,worker"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("payments/worker (dry run) failed (404"),
        "{}",
        show(&out)
    );
    kube.with(|c| {
        c.objects.remove(SECRET_PATH);
    });
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("does not exist"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn an_immutable_secret_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| {
        c.objects.get_mut(SECRET_PATH).unwrap()["immutable"] = json!(true);
    });
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("is immutable"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_rejected_token_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    let args = args(&kube, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = moto.rotate("kubernetes_secret", &args, &[("KUBE_TOKEN", "expired")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("401 Unauthorized"), "{}", show(&out));
    assert!(!show(&out).contains("expired"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.rate_limited = 2);
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    assert!(show(&out).contains("wait 1s (429)"), "{}", show(&out));
}

#[tokio::test]
async fn a_failure_after_preflight_deletes_the_new_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.failing_writes = true);
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("etcdserver: request timed out"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(decoded(&kube.secret(), "AWS_ACCESS_KEY_ID"), old);
}

#[tokio::test]
async fn a_run_killed_after_handle_is_finished_by_the_same_command() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    let state = tempfile::tempdir().unwrap();
    let wasm = plugin("kubernetes_secret");
    let mut all = vec![
        "--plugin".to_string(),
        wasm.to_string_lossy().into_owned(),
        "--user".into(),
        "ci-bot".into(),
        "--endpoint-url".into(),
        moto.url.clone(),
        "--state-dir".into(),
        state.path().to_string_lossy().into_owned(),
    ];
    all.extend(args(&kube, &[]));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    // Killed once the Secret holds the new key, before keyrot recorded it.
    let (child, _home) = start_at(&moto, &all, "after-handle:pause", &[TOKEN_ENV]);
    kill(child);
    let abandoned = decoded(&kube.secret(), "AWS_ACCESS_KEY_ID");
    assert_ne!(abandoned, old);
    // The same command again: keyrot deletes that key, rotates afresh, and
    // tells the handler the Secret may hold it.
    let out = moto.keyrot_with_env(&all, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = assert_rotated(&moto, &kube, &old).await;
    assert_ne!(new, abandoned);
    assert_secrets_only_stored(&moto, &kube);
    for secret in moto.all_secrets() {
        assert!(!show(&out).contains(&secret));
    }
}

#[tokio::test]
async fn a_failed_restart_is_a_warning_once_the_secret_holds_the_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start(Some(&old));
    kube.with(|c| c.failing_restarts = true);
    let out = run(&moto, &kube, &["--config", "restart-deployments=api"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    assert!(
        show(&out).contains(
            "restart it yourself with kubectl -n payments rollout restart deployment/api"
        ),
        "{}",
        show(&out)
    );
}

/// The cluster's own CA, and another that never signed anything for it,
/// made once per test run.
fn cluster_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("cluster"))
}

fn other_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("other"))
}

/// `--allow-host-ca` for the fake cluster's host, spelled as an operator
/// would: `127.0.0.1:PORT`, without the scheme --allow-host gave.
fn ca_grant(kube: &FakeKube, file: &std::path::Path) -> String {
    format!("127.0.0.1:{}={}", kube.server.port, file.display())
}

/// Nothing happened: the old key is the only one, and the cluster saw no
/// request at all (the TLS handshake, or keyrot's checks, stopped it).
async fn assert_untouched(moto: &Moto, kube: &FakeKube, old: &str) {
    moto.assert_only_key("ci-bot", old).await;
    assert!(
        kube.server.requests().is_empty(),
        "{:?}",
        kube.server.requests()
    );
    assert_eq!(decoded(&kube.secret(), "AWS_ACCESS_KEY_ID"), old);
}

#[tokio::test]
async fn a_cluster_with_a_private_ca_is_reached_through_its_ca_bundle() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    assert!(kube.server.url.starts_with("https://"));
    let grant = ca_grant(&kube, &cluster_ca().ca_file());
    let out = run(&moto, &kube, &["--allow-host-ca", &grant]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &kube, &old).await;
    assert_eq!(kube.real_patches().len(), 1);
    // The plugin's log (and so the report) says which roots vouched for
    // the server.
    let said = format!(
        "HTTPS to 127.0.0.1:{} checked against 1 CA certificate from {} (--allow-host-ca), \
         not the public roots",
        kube.server.port,
        cluster_ca().ca_file().display()
    );
    assert!(show(&out).contains(&said), "{}", show(&out));
}

#[tokio::test]
async fn a_private_ca_cluster_without_its_ca_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    let out = run(&moto, &kube, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let printed = show(&out);
    // The plugin got TLS-certificate-error; keyrot says what to add.
    assert!(
        printed.contains("TLS certificate is not trusted")
            && printed.contains(&format!(
                "add --allow-host-ca 127.0.0.1:{}=CA_FILE",
                kube.server.port
            )),
        "{printed}"
    );
    assert!(printed.contains("preflight"), "{printed}");
    assert_untouched(&moto, &kube, &old).await;
}

#[tokio::test]
async fn a_ca_bundle_from_another_ca_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    let grant = ca_grant(&kube, &other_ca().ca_file());
    let out = run(&moto, &kube, &["--allow-host-ca", &grant]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let printed = show(&out);
    assert!(
        printed.contains("TLS certificate is not trusted")
            && printed.contains(&format!(
                "the server's certificate is not vouched for by 1 CA certificate from {} \
                 (--allow-host-ca)",
                other_ca().ca_file().display()
            )),
        "{printed}"
    );
    assert_untouched(&moto, &kube, &old).await;
}

#[tokio::test]
async fn a_ca_bundle_for_a_host_not_allowed_is_refused_before_any_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    let ca = cluster_ca().ca_file();
    let elsewhere = format!("k8s.example.com:6443={}", ca.display());
    let out = run(&moto, &kube, &["--allow-host-ca", &elsewhere]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains(
            "--allow-host-ca: a CA bundle applies only to requests to allowed hosts, and \
             'k8s.example.com:6443' is not allowed: add --allow-host k8s.example.com:6443"
        ),
        "{}",
        show(&out)
    );
    assert_untouched(&moto, &kube, &old).await;

    // A host allowed as plain HTTP has no TLS to check.
    let plain = FakeKube::start(Some(&old));
    let grant = ca_grant(&plain, &ca);
    let out = run(&moto, &plain, &["--allow-host-ca", &grant]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("a CA bundle is for HTTPS"),
        "{}",
        show(&out)
    );
    assert_untouched(&moto, &plain, &old).await;
}

#[tokio::test]
async fn a_missing_or_garbage_ca_bundle_is_refused_before_any_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let broken = dir.path().join("broken-ca.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, why) in [
        (&missing, "cannot read CA bundle"),
        (&garbage, "no PEM certificates in CA bundle"),
        (&broken, "certificate 1 in CA bundle"),
    ] {
        let out = run(&moto, &kube, &["--allow-host-ca", &ca_grant(&kube, file)]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let printed = show(&out);
        let expected = format!(
            "--allow-host-ca for '127.0.0.1:{}': {why} {}",
            kube.server.port,
            file.display()
        );
        assert!(printed.contains(&expected), "{expected}\n{printed}");
        assert!(
            !printed.contains("bm90"),
            "never the bundle's contents: {printed}"
        );
        assert_untouched(&moto, &kube, &old).await;
    }
}

#[tokio::test]
async fn a_job_file_grants_its_ca_bundle_and_a_dry_run_and_inspect_show_it() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let kube = FakeKube::start_tls(Some(&old), cluster_ca());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(cluster_ca().ca_file(), dir.path().join("cluster-ca.pem")).unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "allow-hosts = [\"{url}\"]\n\
             allow-host-cas = [\"127.0.0.1:{port}=cluster-ca.pem\"]\n\
             inject-headers = [\"{url}=Authorization:Bearer {{env:KUBE_TOKEN}}\"]\n\
             [config]\napi-url = \"{url}\"\nnamespace = \"payments\"\n\
             secret-name = \"app-aws\"\n",
            url = kube.server.url,
            port = kube.server.port,
        ),
    )
    .unwrap();
    let args = [
        "--job",
        job.to_str().unwrap(),
        "--dry-run",
        "--output",
        "json",
        "--plugin-log",
        "show",
    ];
    let out = moto.rotate("kubernetes_secret", &args, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "would-rotate", "{report}");
    // The bundle was found beside the job file, and the report says the
    // server was checked against it.
    let said = format!(
        "checked against 1 CA certificate from {} (--allow-host-ca)",
        dir.path().join("cluster-ca.pem").display()
    );
    assert!(
        report["handler_log"].to_string().contains(&said),
        "{said}\n{report}"
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(kube.real_patches().is_empty());

    let wasm = plugin("kubernetes_secret");
    let out = moto.keyrot(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--allow-host-ca"),
        "{}",
        show(&out)
    );
}
