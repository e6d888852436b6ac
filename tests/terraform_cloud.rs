//! End-to-end tests of the `terraform-cloud` handler through the binary,
//! against moto and a fake HCP Terraform API that follows its docs:
//! JSON:API (`application/vnd.api+json`, 415 otherwise), workspace
//! variables and variable-set variables, sensitive values never returned,
//! a key unique per category (422), a workspace's `permissions`, bearer
//! tokens (401), and 429 with `X-RateLimit-Reset`.

use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::schedule::{kill, start_at};
use crate::util::{Moto, Recorded, Reply, TestServer, plugin, show};

const TOKEN: &str = "fakeTeamToken.atlasv1.0123456789abcdef";
const TOKEN_ENV: (&str, &str) = ("TFC_TOKEN", TOKEN);
const WORKSPACE: &str = "ws-CZcmD7eagjhyX0vN";
const VARSET: &str = "varset-47qC3LmA47piVan7";

/// What HCP Terraform holds and how it misbehaves.
struct State {
    /// Every variable, of the workspace and of the variable set: (owner id,
    /// its JSON:API resource with the value even when sensitive).
    vars: Vec<(String, Value)>,
    next_id: u32,
    can_update: bool,
    /// Answer the next n requests with 429.
    rate_limited: u32,
    /// Writes of this variable key fail with 500.
    failing_key: Option<&'static str>,
}

struct FakeTfc {
    server: TestServer,
    state: Arc<Mutex<State>>,
}

impl FakeTfc {
    fn start() -> FakeTfc {
        let state = Arc::new(Mutex::new(State {
            vars: Vec::new(),
            next_id: 1,
            can_update: true,
            rate_limited: 0,
            failing_key: None,
        }));
        let shared = state.clone();
        let server = TestServer::start(move |r| answer(r, &mut shared.lock().unwrap()));
        FakeTfc { server, state }
    }

    /// Adds a variable to `owner` (a workspace or variable set id).
    fn seed(
        &self,
        owner: &str,
        key: &str,
        value: &str,
        category: &str,
        sensitive: bool,
        hcl: bool,
    ) {
        let mut state = self.state.lock().unwrap();
        let id = format!("var-seed{}", state.next_id);
        state.next_id += 1;
        let var = json!({
            "id": id, "type": "vars",
            "attributes": {
                "key": key, "value": value, "sensitive": sensitive, "category": category,
                "hcl": hcl, "description": format!("{key}, set by the platform team"),
                "created-at": "2026-11-01T10:00:00.000Z", "version-id": "v1",
            },
        });
        state.vars.push((owner.to_string(), var));
    }

    fn with(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    /// `owner`'s variable `key` of `category`, value included.
    fn var(&self, owner: &str, key: &str, category: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .vars
            .iter()
            .find(|(o, v)| {
                o == owner
                    && v["attributes"]["key"] == key
                    && v["attributes"]["category"] == category
            })
            .map(|(_, v)| v["attributes"].clone())
    }

    fn writes(&self) -> Vec<Recorded> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

fn errors(status: u16, title: &str, detail: &str) -> Reply {
    let body =
        json!({ "errors": [{ "status": status.to_string(), "title": title, "detail": detail }] });
    Reply::new(status, body.to_string()).header("content-type", "application/vnd.api+json")
}

fn document(status: u16, data: Value) -> Reply {
    Reply::new(status, json!({ "data": data }).to_string())
        .header("content-type", "application/vnd.api+json")
}

/// A variable as the API shows it: a sensitive value is `null`.
fn shown(owner: &str, var: &Value) -> Value {
    let mut var = var.clone();
    if var["attributes"]["sensitive"] == true {
        var["attributes"]["value"] = Value::Null;
    }
    let kind = if owner.starts_with("ws-") {
        "workspaces"
    } else {
        "varsets"
    };
    var["relationships"] = json!({ "configurable": { "data": { "id": owner, "type": kind } } });
    var
}

fn answer(r: &Recorded, state: &mut State) -> Reply {
    if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return errors(401, "unauthorized", "");
    }
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        return errors(429, "Too many requests", "")
            .header("x-ratelimit-limit", "30")
            .header("x-ratelimit-reset", "1.0");
    }
    if r.method != "GET"
        && r.method != "DELETE"
        && r.header("content-type") != Some("application/vnd.api+json")
    {
        return errors(
            415,
            "unsupported media type",
            "use application/vnd.api+json",
        );
    }
    let segments: Vec<&str> = r.path.trim_start_matches("/api/v2/").split('/').collect();
    let (owner, var_id) = match segments.as_slice() {
        ["workspaces", ws] if *ws == WORKSPACE && r.method == "GET" => {
            return document(
                200,
                json!({
                    "id": WORKSPACE, "type": "workspaces",
                    "attributes": { "name": "app-prod", "permissions": {
                        "can-update": state.can_update, "can-update-variable": state.can_update,
                        "can-queue-run": true,
                    } },
                }),
            );
        }
        ["workspaces", ws, "vars"] if *ws == WORKSPACE => (ws.to_string(), None),
        ["workspaces", ws, "vars", id] if *ws == WORKSPACE => {
            (ws.to_string(), Some(id.to_string()))
        }
        ["varsets", vs, "relationships", "vars"] if *vs == VARSET => (vs.to_string(), None),
        ["varsets", vs, "relationships", "vars", id] if *vs == VARSET => {
            (vs.to_string(), Some(id.to_string()))
        }
        _ => return errors(404, "not found", ""),
    };
    if r.method != "GET" && !state.can_update {
        return errors(
            403,
            "forbidden",
            "You are not authorized to perform this action.",
        );
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let attributes = &body["data"]["attributes"];
    match (r.method.as_str(), var_id) {
        ("GET", None) => {
            let list: Vec<Value> = state
                .vars
                .iter()
                .filter(|(o, _)| *o == owner)
                .map(|(o, v)| shown(o, v))
                .collect();
            document(200, json!(list))
        }
        ("POST", None) => {
            let key = attributes["key"].as_str().unwrap_or("");
            let category = attributes["category"].as_str().unwrap_or("");
            if state.failing_key == Some(key) {
                return errors(500, "internal server error", "");
            }
            if !["env", "terraform"].contains(&category) {
                return errors(
                    422,
                    "invalid attribute",
                    "Category is not included in the list",
                );
            }
            let taken = state.vars.iter().any(|(o, v)| {
                *o == owner
                    && v["attributes"]["key"] == key
                    && v["attributes"]["category"] == category
            });
            if taken {
                return errors(422, "invalid attribute", "Key has already been taken");
            }
            let id = format!("var-new{}", state.next_id);
            state.next_id += 1;
            let mut var = json!({ "id": id, "type": "vars", "attributes": {
                "key": key, "value": "", "sensitive": false, "category": category, "hcl": false,
                "description": null, "created-at": "2026-12-07T08:00:00.000Z", "version-id": "v1",
            } });
            for (name, value) in attributes.as_object().into_iter().flatten() {
                var["attributes"][name] = value.clone();
            }
            state.vars.push((owner.clone(), var.clone()));
            document(201, shown(&owner, &var))
        }
        (method, Some(id)) => {
            let Some(at) = state
                .vars
                .iter()
                .position(|(o, v)| *o == owner && v["id"] == id.as_str())
            else {
                return errors(404, "not found", "");
            };
            let key = state.vars[at].1["attributes"]["key"]
                .as_str()
                .unwrap_or("")
                .to_string();
            match method {
                "PATCH" => {
                    if state.failing_key == Some(key.as_str()) {
                        return errors(500, "internal server error", "");
                    }
                    if state.vars[at].1["attributes"]["sensitive"] == true
                        && attributes["sensitive"] == false
                    {
                        return errors(
                            422,
                            "invalid attribute",
                            "Sensitive cannot be changed from true to false",
                        );
                    }
                    for (name, value) in attributes.as_object().into_iter().flatten() {
                        state.vars[at].1["attributes"][name] = value.clone();
                    }
                    state.vars[at].1["attributes"]["version-id"] = json!("v2");
                    document(200, shown(&owner, &state.vars[at].1))
                }
                "DELETE" => {
                    state.vars.remove(at);
                    Reply::new(204, "")
                }
                _ => errors(405, "method not allowed", ""),
            }
        }
        _ => errors(405, "method not allowed", ""),
    }
}

fn args(tfc: &FakeTfc, target: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--allow-host".into(),
        tfc.server.url.clone(),
        "--inject-header".into(),
        format!("{}=Authorization:Bearer {{env:TFC_TOKEN}}", tfc.server.url),
        "--config".into(),
        format!("base-url={}", tfc.server.url),
        "--config".into(),
        target.into(),
        "--plugin-log".into(),
        "show".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Rotates ci-bot into the workspace; checks that no secret shows in
/// keyrot's output nor in any request but the write that stores it.
fn run(moto: &Moto, tfc: &FakeTfc, target: &str, env: &[(&str, &str)]) -> Output {
    let args = args(tfc, target, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = moto.rotate("terraform_cloud", &args, env);
    assert!(!show(&out).contains(TOKEN), "{}", show(&out));
    assert_secrets_only_stored(moto, tfc);
    out
}

fn assert_secrets_only_stored(moto: &Moto, tfc: &FakeTfc) {
    for (_, secret) in moto.keys_with_secrets() {
        for r in tfc.server.requests() {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let stores = r.method != "GET" && body.contains("\"value\"");
            let seen = format!("{} {} {:?} {body}", r.method, r.path, r.headers);
            assert!(
                stores || !seen.contains(&secret),
                "a secret in a request: {seen}"
            );
            // Answers never carry it either: it is sensitive.
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

fn workspace() -> String {
    format!("workspace-id={WORKSPACE}")
}

#[tokio::test]
async fn workspace_variables_get_the_key_and_keep_description_and_hcl() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(WORKSPACE, "AWS_ACCESS_KEY_ID", &old, "env", false, false);
    tfc.seed(
        WORKSPACE,
        "AWS_SECRET_ACCESS_KEY",
        "old-secret",
        "env",
        true,
        true,
    );
    // Not ours: a Terraform variable of the same name, and another env one.
    tfc.seed(
        WORKSPACE,
        "AWS_ACCESS_KEY_ID",
        "tf-input",
        "terraform",
        false,
        false,
    );
    tfc.seed(WORKSPACE, "TF_LOG", "info", "env", false, false);
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    let new = &keys[0].0;
    assert_ne!(new, &old);
    let id = tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "env").unwrap();
    let secret = tfc.var(WORKSPACE, "AWS_SECRET_ACCESS_KEY", "env").unwrap();
    assert_eq!(id["value"], new.as_str());
    assert_eq!(secret["value"], secret_of(&moto, new).as_str());
    assert_eq!(id["sensitive"], false, "a readable key id stays readable");
    assert_eq!(secret["sensitive"], true);
    assert_eq!(secret["hcl"], true, "the HCL flag is kept");
    assert_eq!(
        id["description"],
        "AWS_ACCESS_KEY_ID, set by the platform team"
    );
    assert_eq!(
        secret["description"],
        "AWS_SECRET_ACCESS_KEY, set by the platform team"
    );
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "terraform")
            .unwrap()["value"],
        "tf-input"
    );
    assert_eq!(
        tfc.var(WORKSPACE, "TF_LOG", "env").unwrap()["value"],
        "info"
    );
    // Two updates in place, each sending only the value.
    let writes = tfc.writes();
    assert_eq!(
        writes.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["PATCH", "PATCH"]
    );
    for write in writes {
        let body: Value = serde_json::from_slice(&write.body).unwrap();
        assert_eq!(
            body["data"]["attributes"].as_object().unwrap().len(),
            1,
            "{body}"
        );
        assert_eq!(
            write.header("content-type"),
            Some("application/vnd.api+json")
        );
    }
}

#[tokio::test]
async fn missing_variables_are_created_sensitive_env_variables() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    assert_ne!(new, old);
    for (key, value) in [
        ("AWS_ACCESS_KEY_ID", new.clone()),
        ("AWS_SECRET_ACCESS_KEY", secret_of(&moto, &new)),
    ] {
        let var = tfc.var(WORKSPACE, key, "env").expect(key);
        assert_eq!(var["value"], value.as_str());
        assert_eq!(var["sensitive"], true, "{var}");
        assert_eq!(var["hcl"], false, "{var}");
    }
}

#[tokio::test]
async fn variable_set_variables_get_the_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(VARSET, "AWS_ACCESS_KEY_ID", &old, "env", true, false);
    let out = run(&moto, &tfc, &format!("varset-id={VARSET}"), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    let id = tfc.var(VARSET, "AWS_ACCESS_KEY_ID", "env").unwrap();
    assert_eq!(id["value"], new.as_str());
    assert_eq!(
        id["description"],
        "AWS_ACCESS_KEY_ID, set by the platform team"
    );
    assert_eq!(
        tfc.var(VARSET, "AWS_SECRET_ACCESS_KEY", "env").unwrap()["value"],
        secret_of(&moto, &new).as_str()
    );
    assert!(tfc.server.requests().iter().all(|r| {
        r.path
            .starts_with(&format!("/api/v2/varsets/{VARSET}/relationships/vars"))
    }));
}

#[tokio::test]
async fn a_variable_holding_another_key_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(
        WORKSPACE,
        "AWS_ACCESS_KEY_ID",
        "AKIAOTHERKEY00000000",
        "env",
        false,
        false,
    );
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("holds key AKIAOTHERKEY00000000"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(tfc.writes().is_empty());
}

#[tokio::test]
async fn a_read_only_team_fails_preflight_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.with(|s| s.can_update = false);
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("may not update the variables"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(tfc.writes().is_empty());
}

#[tokio::test]
async fn a_failed_secret_write_puts_the_key_id_back_and_deletes_the_new_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(WORKSPACE, "AWS_ACCESS_KEY_ID", &old, "env", false, false);
    tfc.seed(
        WORKSPACE,
        "AWS_SECRET_ACCESS_KEY",
        "old-secret",
        "env",
        true,
        false,
    );
    tfc.with(|s| s.failing_key = Some("AWS_SECRET_ACCESS_KEY"));
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("put AWS_ACCESS_KEY_ID back"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "env").unwrap()["value"],
        old.as_str()
    );
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_SECRET_ACCESS_KEY", "env").unwrap()["value"],
        "old-secret"
    );
}

#[tokio::test]
async fn a_rejected_token_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    let out = run(&moto, &tfc, &workspace(), &[("TFC_TOKEN", "revoked")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("401 Unauthorized"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(WORKSPACE, "AWS_ACCESS_KEY_ID", &old, "env", false, false);
    tfc.with(|s| s.rate_limited = 2);
    let out = run(&moto, &tfc, &workspace(), &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "env").unwrap()["value"],
        new.as_str()
    );
    assert!(show(&out).contains("wait 1s (429)"), "{}", show(&out));
}

#[tokio::test]
async fn a_run_killed_after_handle_is_finished_by_the_same_command() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let tfc = FakeTfc::start();
    tfc.seed(WORKSPACE, "AWS_ACCESS_KEY_ID", &old, "env", false, false);
    let state = tempfile::tempdir().unwrap();
    let wasm = plugin("terraform_cloud");
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
    all.extend(args(&tfc, &workspace(), &[]));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let (child, _home) = start_at(&moto, &all, "after-handle:pause", &[TOKEN_ENV]);
    kill(child);
    let abandoned = tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "env").unwrap()["value"].clone();
    assert_ne!(abandoned, old.as_str());
    let out = moto.keyrot_with_env(&all, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let new = &keys[0].0;
    assert_ne!(abandoned, new.as_str());
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_ACCESS_KEY_ID", "env").unwrap()["value"],
        new.as_str()
    );
    assert_eq!(
        tfc.var(WORKSPACE, "AWS_SECRET_ACCESS_KEY", "env").unwrap()["value"],
        secret_of(&moto, new).as_str()
    );
    assert_secrets_only_stored(&moto, &tfc);
}
