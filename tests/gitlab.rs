//! End-to-end tests of the Python plugins through the binary: `gitlab.wasm`
//! against moto and a fake GitLab API (the variables GitLab ends up holding
//! must be exactly the new key), and `python-hello.wasm`. Both are built by
//! `scripts/build-plugins.sh python`; a missing one fails the test.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::util::{Moto, Recorded, Reply, TestServer, plugin, show};

const TOKEN: &str = "glpat-fake-0123456789abcdef";
const TOKEN_ENV: (&str, &str) = ("GITLAB_TOKEN", TOKEN);
/// The one project the fake knows, as it appears in a URL path.
const PROJECT_ID: &str = "group%2Fapp";

/// Variables by (key, environment scope), as GitLab returns them.
type Variables = BTreeMap<(String, String), Value>;

/// A fake GitLab REST API v4 for project `group/app`: it checks the
/// `PRIVATE-TOKEN` header, keeps CI/CD variables per environment scope, and
/// answers `(method, key)` pairs listed in `faults` with that status instead.
struct FakeGitLab {
    server: TestServer,
    variables: Arc<Mutex<Variables>>,
}

impl FakeGitLab {
    fn start(existing: &[(&str, &str, &str)], faults: &[(&str, &str, u16)]) -> FakeGitLab {
        let variables: Variables = existing
            .iter()
            .map(|(key, scope, value)| {
                (
                    (key.to_string(), scope.to_string()),
                    variable(key, scope, value),
                )
            })
            .collect();
        let variables = Arc::new(Mutex::new(variables));
        let faults: Vec<(String, String, u16)> = faults
            .iter()
            .map(|(m, k, s)| (m.to_string(), k.to_string(), *s))
            .collect();
        let state = variables.clone();
        let server = TestServer::start(move |r| answer(r, &state, &faults));
        FakeGitLab { server, variables }
    }

    /// The variable `key` in `scope`, if it exists.
    fn get(&self, key: &str, scope: &str) -> Option<Value> {
        let variables = self.variables.lock().unwrap();
        variables
            .get(&(key.to_string(), scope.to_string()))
            .cloned()
    }

    /// The methods of the requests so far, in order.
    fn methods(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .map(|r| r.method)
            .collect()
    }
}

fn variable(key: &str, scope: &str, value: &str) -> Value {
    json!({
        "variable_type": "env_var", "key": key, "value": value, "protected": false,
        "masked": false, "hidden": false, "raw": false, "environment_scope": scope,
        "description": null,
    })
}

fn reply(status: u16, body: Value) -> Reply {
    Reply::new(status, body.to_string()).header("content-type", "application/json")
}

/// GitLab's answers, for the endpoints the plugin uses.
fn answer(r: &Recorded, variables: &Mutex<Variables>, faults: &[(String, String, u16)]) -> Reply {
    if r.header("private-token") != Some(TOKEN) {
        return reply(401, json!({ "message": "401 Unauthorized" }));
    }
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let Some(rest) = path.strip_prefix(&format!("/api/v4/projects/{PROJECT_ID}")) else {
        return reply(404, json!({ "message": "404 Project Not Found" }));
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let key = match rest.strip_prefix("/variables/") {
        Some(key) => key.to_string(),
        None => body["key"].as_str().unwrap_or_default().to_string(),
    };
    if let Some((_, _, status)) = faults.iter().find(|(m, k, _)| *m == r.method && *k == key) {
        return reply(*status, json!({ "message": "injected fault" }));
    }
    let mut variables = variables.lock().unwrap();
    match (r.method.as_str(), rest) {
        ("GET", "") => reply(200, json!({ "id": 42, "path_with_namespace": "group/app" })),
        ("POST", "/variables") => {
            let scope = body["environment_scope"]
                .as_str()
                .unwrap_or("*")
                .to_string();
            if variables.contains_key(&(key.clone(), scope.clone())) {
                let taken = format!("({key}) has already been taken");
                return reply(400, json!({ "message": { "key": [taken] } }));
            }
            let mut created = variable(&key, &scope, "");
            merge(&mut created, &body);
            variables.insert((key, scope), created.clone());
            reply(201, created)
        }
        (method, _) if rest.starts_with("/variables/") => {
            // Without the filter GitLab may pick another scope's variable;
            // the plugin must always send it.
            let Some(scope) = query.strip_prefix("filter%5Benvironment_scope%5D=") else {
                return reply(409, json!({ "message": "no environment_scope filter" }));
            };
            let id = (key, percent_decode(scope));
            match (method, variables.get_mut(&id)) {
                (_, None) => reply(404, json!({ "message": "404 Variable Not Found" })),
                ("GET", Some(found)) => reply(200, found.clone()),
                ("PUT", Some(found)) => {
                    merge(found, &body);
                    reply(200, found.clone())
                }
                ("DELETE", Some(_)) => {
                    variables.remove(&id);
                    Reply::new(204, "")
                }
                _ => reply(405, json!({ "error": "405 Method Not Allowed" })),
            }
        }
        _ => reply(404, json!({ "error": "404 Not Found" })),
    }
}

/// Copies the request's fields onto the stored variable.
fn merge(variable: &mut Value, request: &Value) {
    for field in ["value", "masked", "protected", "variable_type"] {
        if let Some(v) = request.get(field) {
            variable[field] = v.clone();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// `keyrot plugin inspect gitlab.wasm`, once per test run: it checks what the
/// plugin declares and compiles it into the shared cache, so parallel tests
/// do not all compile the 18 MB component at once.
fn inspect_gitlab(moto: &Moto) -> &'static Value {
    static REPORT: OnceLock<Value> = OnceLock::new();
    REPORT.get_or_init(|| {
        let wasm = plugin("gitlab").to_string_lossy().into_owned();
        let out = moto.keyrot(&["plugin", "inspect", &wasm, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
    })
}

/// Rotates ci-bot's key with gitlab.wasm against `gitlab`, the token in
/// GITLAB_TOKEN, with `extra` flags; checks that neither a secret moto
/// issued nor the token appears in the output.
fn run(moto: &Moto, gitlab: &FakeGitLab, extra: &[&str], env: &[(&str, &str)]) -> Output {
    inspect_gitlab(moto);
    let api = format!("api-url={}", gitlab.server.url);
    let mut args = vec![
        "--allow-host",
        &gitlab.server.url,
        "--config",
        "project=group/app",
        "--config",
        &api,
        "--output",
        "json",
        "--plugin-log",
        "show",
    ];
    args.extend_from_slice(extra);
    let out = moto.rotate("gitlab", &args, env);
    assert!(
        !show(&out).contains(TOKEN),
        "the token leaked:\n{}",
        show(&out)
    );
    out
}

const WITH_TOKEN: [&str; 2] = ["--secret", "token=env:GITLAB_TOKEN"];

/// The secret moto issued for `key_id`.
fn secret_of(moto: &Moto, key_id: &str) -> String {
    moto.keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, secret)| secret)
        .expect("moto issued the key")
}

fn new_key_id(out: &Output) -> String {
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    report["new_key"]["access_key_id"]
        .as_str()
        .expect("the report names the new key")
        .to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn inspect_shows_the_settings_and_the_http_import() {
    let moto = Moto::start();
    let report = inspect_gitlab(&moto);
    assert_eq!(report["name"], "gitlab");
    let settings: Vec<&str> = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        settings,
        [
            "project",
            "token",
            "api-url",
            "key-id-variable",
            "secret-key-variable",
            "masked",
            "protected",
            "environment-scope"
        ]
    );
    assert_eq!(report["settings"][0]["required"], true);
    assert_eq!(report["settings"][1]["secret"], true);
    assert!(
        report["wants"].to_string().contains("outbound HTTP"),
        "{report}"
    );
}

#[tokio::test]
async fn new_variables_are_created_with_the_new_key_and_the_flags() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    let out = run(&moto, &gitlab, &WITH_TOKEN, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let new = new_key_id(&out);
    assert_ne!(new, old);
    assert_eq!(
        moto.keys("ci-bot").await,
        vec![(new.clone(), "Active".into())]
    );
    let key_id = gitlab
        .get("AWS_ACCESS_KEY_ID", "*")
        .expect("key id variable");
    let secret = gitlab
        .get("AWS_SECRET_ACCESS_KEY", "*")
        .expect("secret variable");
    assert_eq!(key_id["value"], new.as_str());
    assert_eq!(secret["value"], secret_of(&moto, &new).as_str());
    for variable in [&key_id, &secret] {
        assert_eq!(variable["masked"], true, "{variable}");
        assert_eq!(variable["protected"], false, "{variable}");
        assert_eq!(variable["environment_scope"], "*", "{variable}");
    }
    // preflight: project and key id variable; handle: both variables, then
    // create both.
    assert_eq!(
        gitlab.methods(),
        ["GET", "GET", "GET", "GET", "POST", "POST"]
    );
    let requests = gitlab.server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("private-token") == Some(TOKEN))
    );
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with("/api/v4/projects/group%2Fapp"))
    );
    assert!(
        stderr(&out).contains(&format!("created variable AWS_ACCESS_KEY_ID = {new}")),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn existing_variables_are_updated_in_their_scope_only() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(
        &[
            ("AWS_ACCESS_KEY_ID", "production", old.as_str()),
            ("AWS_SECRET_ACCESS_KEY", "production", "old-secret"),
            ("AWS_ACCESS_KEY_ID", "*", "AKIAOTHERSCOPE000000"),
        ],
        &[],
    );
    let mut args = WITH_TOKEN.to_vec();
    args.extend([
        "--config",
        "environment-scope=production",
        "--config",
        "masked=false",
        "--config",
        "protected=true",
    ]);
    let out = run(&moto, &gitlab, &args, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let new = new_key_id(&out);
    let key_id = gitlab.get("AWS_ACCESS_KEY_ID", "production").unwrap();
    let secret = gitlab.get("AWS_SECRET_ACCESS_KEY", "production").unwrap();
    assert_eq!(key_id["value"], new.as_str());
    assert_eq!(secret["value"], secret_of(&moto, &new).as_str());
    for variable in [&key_id, &secret] {
        assert_eq!(variable["masked"], false, "{variable}");
        assert_eq!(variable["protected"], true, "{variable}");
    }
    assert_eq!(
        gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap()["value"],
        "AKIAOTHERSCOPE000000",
        "another scope's variable is untouched"
    );
    assert_eq!(gitlab.methods(), ["GET", "GET", "GET", "GET", "PUT", "PUT"]);
    assert!(
        stderr(&out).contains(&format!("(scope production) holds key {old}")),
        "preflight checked the current key: {}",
        show(&out)
    );
}

#[tokio::test]
async fn an_injected_token_works_without_the_plugin_seeing_it() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    let inject = format!(
        "http://127.0.0.1:{}=PRIVATE-TOKEN:{{env:GITLAB_TOKEN}}",
        gitlab.server.port
    );
    let out = run(&moto, &gitlab, &["--inject-header", &inject], &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = new_key_id(&out);
    assert_eq!(
        gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap()["value"],
        new.as_str()
    );
}

#[tokio::test]
async fn a_rejected_token_fails_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    let out = run(
        &moto,
        &gitlab,
        &WITH_TOKEN,
        &[("GITLAB_TOKEN", "glpat-revoked-token")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(
        moto.all_secrets().len(),
        1,
        "preflight stopped it: no key was created"
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "GitLab rejected the token (401 Unauthorized) while reading project group/app"
        ),
        "{err}"
    );
    assert!(
        !err.contains("glpat-revoked-token"),
        "the token is redacted: {err}"
    );
    assert_eq!(gitlab.methods(), ["GET"]);
    assert!(gitlab.variables.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_secret_write_deletes_the_new_key_and_restores_the_key_id() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(
        &[("AWS_ACCESS_KEY_ID", "*", old.as_str())],
        &[("POST", "AWS_SECRET_ACCESS_KEY", 500)],
    );
    let out = run(&moto, &gitlab, &WITH_TOKEN, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(
        moto.all_secrets().len(),
        2,
        "a new key was created, then deleted"
    );
    assert_eq!(
        gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap()["value"],
        old.as_str(),
        "the key id variable holds the old key again"
    );
    assert!(gitlab.get("AWS_SECRET_ACCESS_KEY", "*").is_none());
    let err = stderr(&out);
    assert!(
        err.contains("GitLab failed (HTTP 500) while creating variable AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "AWS_ACCESS_KEY_ID was restored to the previous key id {old}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_not_allowed_is_denied_and_nothing_changes() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    let other = TestServer::start(|_| Reply::new(200, "{}"));
    let api = format!("api-url={}", gitlab.server.url);
    inspect_gitlab(&moto);
    let out = moto.rotate(
        "gitlab",
        &[
            "--allow-host",
            &other.url,
            "--config",
            "project=group/app",
            "--config",
            &api,
            "--secret",
            "token=env:GITLAB_TOKEN",
        ],
        &[TOKEN_ENV],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert!(
        gitlab.server.requests().is_empty(),
        "the request never left"
    );
    assert!(other.requests().is_empty());
    let err = stderr(&out);
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert!(
        err.contains(&format!(
            "--allow-host http://127.0.0.1:{}",
            gitlab.server.port
        )),
        "the error names the flag that would allow it: {err}"
    );
}

#[tokio::test]
async fn a_malformed_setting_fails_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    let mut args = WITH_TOKEN.to_vec();
    args.extend(["--config", "masked=yes"]);
    let out = run(&moto, &gitlab, &args, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert!(
        stderr(&out).contains("setting 'masked' must be true or false (got 'yes')"),
        "{}",
        show(&out)
    );
    assert!(gitlab.server.requests().is_empty());
}

#[tokio::test]
async fn python_hello_rotates_a_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate(
        "python-hello",
        &["--config", "greeting=hi", "--plugin-log", "show"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("ready to replace key {old} of ci-bot")),
        "{err}"
    );
    assert!(err.contains(&format!("hi, new key {}", keys[0].0)), "{err}");
}
