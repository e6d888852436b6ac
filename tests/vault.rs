//! End-to-end tests of the `vault` handler (Python, built by
//! `scripts/build-plugins.sh python`) through the binary, against moto and a
//! fake Vault that follows its HTTP API docs: KV version 2 reads and writes
//! with check-and-set (400 "check-and-set parameter did not match the
//! current version"), versions and `custom_metadata`, token auth
//! (`X-Vault-Token`, 403 "permission denied"), AppRole login and
//! `revoke-self`, `sys/capabilities-self`, namespaces
//! (`X-Vault-Namespace`), and 429 rate-limit quotas with `Retry-After`.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::schedule::{kill, start_at};
use crate::util::{Moto, Recorded, Reply, TestServer, plugin, show};

const TOKEN: &str = "hvs.CAESIfakeStaticTokenForTests";
const TOKEN_ENV: (&str, &str) = ("VAULT_TOKEN", TOKEN);
const ROLE_ID: &str = "db02de05-fa39-4855-059b-67221c5c2f63";
const SECRET_ID: &str = "6a174c20-f6de-a53c-74d2-6018fcceff64";
const DATA_PATH: &str = "/v1/secret/data/ci/deploy-bot";

/// The fake Vault's state.
struct State {
    /// The secret's versions' data, oldest first (`None`: deleted).
    versions: Vec<Option<Value>>,
    custom_metadata: Value,
    /// Valid tokens and their capabilities on the secret's data path.
    tokens: BTreeMap<String, Vec<&'static str>>,
    /// Tokens the AppRole login issued so far.
    issued: u32,
    /// Required `X-Vault-Namespace`, if any.
    namespace: Option<&'static str>,
    /// Answer the next n requests with 429.
    rate_limited: u32,
    /// Someone else writes a version just before each of the next n writes.
    races: u32,
}

struct FakeVault {
    server: TestServer,
    state: Arc<Mutex<State>>,
}

impl FakeVault {
    /// Vault with secret `secret/ci/deploy-bot` at version 4 holding
    /// `fields` (none: no secret), and the static token allowed to
    /// create, read and update it.
    fn start(fields: Option<Value>) -> FakeVault {
        let versions = match fields {
            Some(fields) => {
                let mut v = vec![Some(json!({ "old": true })); 3];
                v.push(Some(fields));
                v
            }
            None => Vec::new(),
        };
        let state = Arc::new(Mutex::new(State {
            versions,
            custom_metadata: json!({ "owner": "platform", "rotation": "keyrot" }),
            tokens: BTreeMap::from([(TOKEN.to_string(), vec!["create", "read", "update"])]),
            issued: 0,
            namespace: None,
            rate_limited: 0,
            races: 0,
        }));
        let shared = state.clone();
        let server = TestServer::start(move |r| answer(r, &mut shared.lock().unwrap()));
        FakeVault { server, state }
    }

    fn with(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    /// (version, data) of the current version.
    fn current(&self) -> (usize, Value) {
        let state = self.state.lock().unwrap();
        let data = state
            .versions
            .last()
            .cloned()
            .flatten()
            .unwrap_or(Value::Null);
        (state.versions.len(), data)
    }

    fn writes(&self) -> Vec<Value> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == DATA_PATH)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn errors(status: u16, errors: &[&str]) -> Reply {
    Reply::new(status, json!({ "errors": errors }).to_string())
        .header("content-type", "application/json")
}

fn ok(body: Value) -> Reply {
    Reply::new(200, body.to_string()).header("content-type", "application/json")
}

fn answer(r: &Recorded, state: &mut State) -> Reply {
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        return errors(
            429,
            &[&format!(
                "request path \"{}\": rate limit quota exceeded",
                &r.path[4..]
            )],
        )
        .header("retry-after", "1");
    }
    if let Some(namespace) = state.namespace
        && r.header("x-vault-namespace") != Some(namespace)
    {
        return errors(
            404,
            &[&format!(
                "no handler for route \"{}\". route entry not found.",
                &r.path[4..]
            )],
        );
    }
    if r.method == "POST" && r.path == "/v1/auth/approle/login" {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if body["role_id"] != ROLE_ID || body["secret_id"] != SECRET_ID {
            return errors(400, &["invalid role or secret ID"]);
        }
        state.issued += 1;
        let token = format!("hvs.approle-issued-{}", state.issued);
        state
            .tokens
            .insert(token.clone(), vec!["create", "read", "update"]);
        return ok(json!({
            "auth": { "client_token": token, "policies": ["default", "keyrot"],
                      "lease_duration": 1200, "renewable": true }
        }));
    }
    let token = r.header("x-vault-token").unwrap_or("");
    let Some(capabilities) = state.tokens.get(token).cloned() else {
        return errors(403, &["permission denied"]);
    };
    let denied = || errors(403, &["1 error occurred:\n\t* permission denied\n\n"]);
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/v1/auth/token/revoke-self") => {
            state.tokens.remove(token);
            Reply::new(204, "")
        }
        ("POST", "/v1/sys/capabilities-self") => {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let path = body["paths"][0].as_str().unwrap_or("").to_string();
            let caps = if path == "secret/data/ci/deploy-bot" {
                capabilities
            } else {
                vec!["deny"]
            };
            ok(json!({ "capabilities": caps, path.clone(): caps, "data": { path: caps } }))
        }
        ("GET", "/v1/sys/internal/ui/mounts/secret") => ok(json!({
            "data": { "type": "kv", "path": "secret/", "options": { "version": "2" } }
        })),
        ("GET", DATA_PATH) => {
            if !capabilities.contains(&"read") {
                return denied();
            }
            let version = state.versions.len();
            let metadata = json!({
                "created_time": "2026-12-01T10:00:00.000000Z",
                "custom_metadata": state.custom_metadata,
                "deletion_time": "", "destroyed": false, "version": version,
            });
            match state.versions.last() {
                None => errors(404, &[]),
                Some(None) => Reply::new(
                    404,
                    json!({ "data": { "data": null, "metadata": metadata } }).to_string(),
                ),
                Some(Some(data)) => ok(json!({ "data": { "data": data, "metadata": metadata } })),
            }
        }
        ("POST" | "PUT", DATA_PATH) => {
            let wanted = if state.versions.is_empty() {
                "create"
            } else {
                "update"
            };
            if !capabilities.contains(&wanted) {
                return denied();
            }
            if state.races > 0 {
                state.races -= 1;
                let mut data = state
                    .versions
                    .last()
                    .cloned()
                    .flatten()
                    .unwrap_or(json!({}));
                data["other_writer"] = json!("was here");
                state.versions.push(Some(data));
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let Some(data) = body.get("data").filter(|d| d.is_object()) else {
                return errors(400, &["no data provided"]);
            };
            if let Some(cas) = body["options"]["cas"].as_u64()
                && cas as usize != state.versions.len()
            {
                return errors(
                    400,
                    &["check-and-set parameter did not match the current version"],
                );
            }
            state.versions.push(Some(data.clone()));
            ok(json!({ "data": {
                "created_time": "2026-12-07T08:00:00.000000Z",
                "custom_metadata": state.custom_metadata,
                "deletion_time": "", "destroyed": false, "version": state.versions.len(),
            } }))
        }
        _ => errors(404, &[]),
    }
}

fn fields(key_id: &str) -> Value {
    json!({
        "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": "old-secret",
        "region": "eu-west-1", "db_password": "hunter2",
    })
}

/// Settings and grants every run uses with the static token, plus `extra`.
fn args(vault: &FakeVault, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--allow-host".into(),
        vault.server.url.clone(),
        "--config".into(),
        format!("addr={}", vault.server.url),
        "--config".into(),
        "path=ci/deploy-bot".into(),
        "--plugin-log".into(),
        "show".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn token_args(vault: &FakeVault) -> Vec<String> {
    vec![
        "--inject-header".into(),
        format!("{}=X-Vault-Token:{{env:VAULT_TOKEN}}", vault.server.url),
    ]
}

/// Rotates ci-bot into `vault` (static token unless `extra` says
/// otherwise); checks that no secret shows in keyrot's output nor in any
/// request but the write that stores it.
fn run(moto: &Moto, vault: &FakeVault, extra: &[&str]) -> Output {
    let mut all = token_args(vault);
    all.extend(extra.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_with(moto, vault, &all, &[TOKEN_ENV])
}

fn run_with(moto: &Moto, vault: &FakeVault, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let args = args(vault, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = moto.rotate("vault", &args, env);
    assert!(
        !show(&out).contains(TOKEN) && !show(&out).contains(SECRET_ID),
        "{}",
        show(&out)
    );
    assert_secrets_only_stored(moto, vault);
    out
}

fn assert_secrets_only_stored(moto: &Moto, vault: &FakeVault) {
    for (_, secret) in moto.keys_with_secrets() {
        for r in vault.server.requests() {
            let stores = r.method == "POST" && r.path == DATA_PATH;
            let seen = format!(
                "{} {} {:?} {}",
                r.method,
                r.path,
                r.headers,
                String::from_utf8_lossy(&r.body)
            );
            assert!(
                stores || !seen.contains(&secret),
                "a secret in a request: {seen}"
            );
        }
    }
}

fn secret_of(moto: &Moto, key_id: &str) -> String {
    moto.keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, secret)| secret)
        .expect("moto issued the key")
}

/// The current version holds the new key and the other fields as they
/// were; returns the new key id.
async fn assert_rotated(moto: &Moto, vault: &FakeVault, old: &str) -> String {
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let new = keys[0].0.clone();
    assert_ne!(new, old);
    let (_, data) = vault.current();
    assert_eq!(data["AWS_ACCESS_KEY_ID"], new.as_str());
    assert_eq!(
        data["AWS_SECRET_ACCESS_KEY"],
        secret_of(moto, &new).as_str()
    );
    assert_eq!(data["region"], "eu-west-1");
    assert_eq!(data["db_password"], "hunter2");
    assert_eq!(
        vault.state.lock().unwrap().custom_metadata,
        json!({ "owner": "platform", "rotation": "keyrot" })
    );
    new
}

#[tokio::test]
async fn a_new_version_holds_the_key_and_keeps_the_other_fields() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &vault, &old).await;
    assert_eq!(vault.current().0, 5);
    // One write, check-and-set on the version handle read.
    let writes = vault.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0]["options"], json!({ "cas": 4 }));
    // The token went in the header keyrot injected, on every request.
    assert!(
        vault
            .server
            .requests()
            .iter()
            .all(|r| r.header("x-vault-token") == Some(TOKEN))
    );
}

#[tokio::test]
async fn approle_logs_in_in_a_namespace_and_revokes_its_tokens() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    vault.with(|s| s.namespace = Some("admin/team"));
    let out = run_with(
        &moto,
        &vault,
        &[
            "--config",
            &format!("role-id={ROLE_ID}"),
            "--secret",
            "secret-id=env:VAULT_SECRET_ID",
            "--config",
            "namespace=admin/team",
        ],
        &[("VAULT_SECRET_ID", SECRET_ID)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &vault, &old).await;
    let state = vault.state.lock().unwrap();
    // One login per step, each token revoked when its step ended.
    assert_eq!(state.issued, 2);
    assert_eq!(state.tokens.keys().collect::<Vec<_>>(), [TOKEN]);
}

#[tokio::test]
async fn a_missing_secret_is_created_with_cas_zero() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(None);
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    assert_ne!(new, old);
    let (version, data) = vault.current();
    assert_eq!(version, 1);
    assert_eq!(data["AWS_ACCESS_KEY_ID"], new.as_str());
    assert_eq!(vault.writes()[0]["options"], json!({ "cas": 0 }));
}

#[tokio::test]
async fn a_cas_mismatch_is_read_again_once_and_the_other_write_kept() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    vault.with(|s| s.races = 1);
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &vault, &old).await;
    let (version, data) = vault.current();
    assert_eq!(version, 6);
    assert_eq!(data["other_writer"], "was here");
    let cas: Vec<Value> = vault
        .writes()
        .iter()
        .map(|w| w["options"]["cas"].clone())
        .collect();
    assert_eq!(cas, [json!(4), json!(5)]);
}

#[tokio::test]
async fn cas_mismatches_that_keep_coming_fail_and_the_new_key_is_deleted() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    vault.with(|s| s.races = 5);
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("check-and-set parameter did not match"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(vault.current().1["AWS_ACCESS_KEY_ID"], old.as_str());
}

#[tokio::test]
async fn a_secret_holding_another_key_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields("AKIAOTHERKEY00000000")));
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("holds key AKIAOTHERKEY00000000"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(vault.writes().is_empty());
}

#[tokio::test]
async fn a_read_only_policy_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    vault.with(|s| {
        s.tokens.insert(TOKEN.into(), vec!["read"]);
    });
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("may not write secret/data/ci/deploy-bot"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(vault.writes().is_empty());
}

#[tokio::test]
async fn a_rejected_token_or_secret_id_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    let mut all = token_args(&vault);
    all.extend(args(&vault, &[]));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = moto.rotate("vault", &all, &[("VAULT_TOKEN", "hvs.revoked")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("permission denied"), "{}", show(&out));

    let out = run_with(
        &moto,
        &vault,
        &[
            "--config",
            &format!("role-id={ROLE_ID}"),
            "--secret",
            "secret-id=env:VAULT_SECRET_ID",
        ],
        &[("VAULT_SECRET_ID", "wrong-secret-id")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("invalid role or secret ID"),
        "{}",
        show(&out)
    );
    assert!(!show(&out).contains("wrong-secret-id"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_rate_limit_quota_is_waited_out() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    vault.with(|s| s.rate_limited = 2);
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_rotated(&moto, &vault, &old).await;
    assert!(show(&out).contains("wait 1s (429)"), "{}", show(&out));
}

#[tokio::test]
async fn a_run_killed_after_handle_is_finished_by_the_same_command() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    let state = tempfile::tempdir().unwrap();
    let wasm = plugin("vault");
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
    all.extend(token_args(&vault));
    all.extend(args(&vault, &[]));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let (child, _home) = start_at(&moto, &all, "after-handle:pause", &[TOKEN_ENV]);
    kill(child);
    let abandoned = vault.current().1["AWS_ACCESS_KEY_ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(abandoned, old);
    let out = moto.keyrot_with_env(&all, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = assert_rotated(&moto, &vault, &old).await;
    assert_ne!(new, abandoned);
    assert_secrets_only_stored(&moto, &vault);
    for secret in moto.all_secrets() {
        assert!(!show(&out).contains(&secret));
    }
}

#[tokio::test]
async fn a_deleted_latest_version_is_written_over_with_cas_on_it() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let vault = FakeVault::start(Some(fields(&old)));
    // `vault kv delete`: version 5 is deleted; reading it is a 404 that
    // still carries its metadata.
    vault.with(|s| s.versions.push(None));
    let out = run(&moto, &vault, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    let (version, data) = vault.current();
    assert_eq!(version, 6);
    assert_eq!(data["AWS_ACCESS_KEY_ID"], new.as_str());
    assert_eq!(vault.writes()[0]["options"], json!({ "cas": 5 }));
}
