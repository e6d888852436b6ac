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
/// An OAuth 2.0 access token: GitLab takes it as `Authorization: Bearer`
/// only, never as `PRIVATE-TOKEN`.
const OAUTH_TOKEN: &str = "0af2c7e4b9d1a8f3e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060";
/// The one project the fake knows, as it appears in a URL path.
const PROJECT_ID: &str = "group%2Fapp";
/// The one group the fake knows (group-level variables).
const GROUP_ID: &str = "group";

/// Variables by (key, environment scope), as GitLab returns them.
type Variables = BTreeMap<(String, String), Value>;

/// A fake GitLab REST API v4 for project `group/app` and group `group`, as
/// GitLab documents it: it takes a personal access token as `PRIVATE-TOKEN`
/// or `Authorization: Bearer` and an OAuth token as the latter only, keeps
/// CI/CD variables per environment scope with every attribute GitLab has
/// (a create leaves out what is not sent at GitLab's defaults; an update
/// changes only what is sent), answers `(method, key)` pairs listed in
/// `faults` with that status instead, and the first `rate_limited`
/// requests with GitLab's 429 (`Retry-After`, `RateLimit-*`). Project and
/// group share one set of variables (a test uses one or the other).
struct FakeGitLab {
    server: TestServer,
    variables: Arc<Mutex<Variables>>,
    rate_limited: Arc<Mutex<u32>>,
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
        let rate_limited = Arc::new(Mutex::new(0));
        let limited = rate_limited.clone();
        let server = TestServer::start(move |r| {
            let mut limited = limited.lock().unwrap();
            if *limited > 0 {
                *limited -= 1;
                return rate_limit_reply();
            }
            answer(r, &state, &faults)
        });
        FakeGitLab {
            server,
            variables,
            rate_limited,
        }
    }

    /// Stores a variable with all its attributes, as set up in GitLab.
    fn seed(&self, variable: Value) {
        let key = variable["key"].as_str().unwrap().to_string();
        let scope = variable["environment_scope"].as_str().unwrap().to_string();
        self.variables
            .lock()
            .unwrap()
            .insert((key, scope), variable);
    }

    /// Answers the next `n` requests with a 429.
    fn rate_limit(&self, n: u32) {
        *self.rate_limited.lock().unwrap() = n;
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

/// GitLab's answer when rate-limited (plain text, with its headers).
fn rate_limit_reply() -> Reply {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    Reply::new(429, "Retry later\n")
        .header("content-type", "text/plain")
        .header("retry-after", "1")
        .header("ratelimit-name", "throttle_authenticated_api")
        .header("ratelimit-limit", "2000")
        .header("ratelimit-observed", "2001")
        .header("ratelimit-remaining", "0")
        .header("ratelimit-reset", &reset.to_string())
}

fn reply(status: u16, body: Value) -> Reply {
    Reply::new(status, body.to_string()).header("content-type", "application/json")
}

/// GitLab's answers, for the endpoints the plugin uses.
fn answer(r: &Recorded, variables: &Mutex<Variables>, faults: &[(String, String, u16)]) -> Reply {
    let bearer = r
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = match r.header("private-token") {
        Some(token) => token == TOKEN,
        None => bearer == Some(TOKEN) || bearer == Some(OAUTH_TOKEN),
    };
    if !authorized {
        return reply(401, json!({ "message": "401 Unauthorized" }));
    }
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let project = path.strip_prefix(&format!("/api/v4/projects/{PROJECT_ID}"));
    let group = path.strip_prefix(&format!("/api/v4/groups/{GROUP_ID}"));
    let rest = match (project, group) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if rest.is_empty() || rest.starts_with('/') => {
            if rest.is_empty() && r.method == "GET" {
                return reply(200, json!({ "id": 7, "full_path": "group" }));
            }
            rest
        }
        _ if path.starts_with("/api/v4/groups/") => {
            return reply(404, json!({ "message": "404 Group Not Found" }));
        }
        _ => return reply(404, json!({ "message": "404 Project Not Found" })),
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

/// Copies the request's fields onto the stored variable; what the request
/// leaves out stays as it was.
fn merge(variable: &mut Value, request: &Value) {
    for field in [
        "value",
        "masked",
        "protected",
        "variable_type",
        "raw",
        "description",
    ] {
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
    run_for(moto, gitlab, "project=group/app", extra, env)
}

/// [`run`] for a `project=...` or `group=...` setting.
fn run_for(
    moto: &Moto,
    gitlab: &FakeGitLab,
    target: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    inspect_gitlab(moto);
    let api = format!("api-url={}", gitlab.server.url);
    let mut args = vec![
        "--allow-host",
        &gitlab.server.url,
        "--config",
        target,
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
        !show(&out).contains(TOKEN) && !show(&out).contains(OAUTH_TOKEN),
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
            "group",
            "token",
            "token-type",
            "api-url",
            "key-id-variable",
            "secret-key-variable",
            "masked",
            "protected",
            "environment-scope"
        ]
    );
    // One of project and group: preflight checks that.
    assert_eq!(report["settings"][0]["required"], false);
    assert_eq!(report["settings"][2]["secret"], true);
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
    // preflight: project and both variables; handle: both variables, then
    // create both.
    assert_eq!(
        gitlab.methods(),
        ["GET", "GET", "GET", "GET", "GET", "POST", "POST"]
    );
    // A create sends what GitLab needs and masked; the rest is GitLab's
    // documented defaults (not protected, type env_var).
    for post in requests_of(&gitlab, "POST") {
        let mut fields: Vec<_> = post.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, ["environment_scope", "key", "masked", "value"]);
    }
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
    assert_eq!(
        gitlab.methods(),
        ["GET", "GET", "GET", "GET", "GET", "PUT", "PUT"]
    );
    assert!(
        stderr(&out).contains(&format!("(scope production) holds key {old}")),
        "preflight checked the current key: {}",
        show(&out)
    );
}

/// The JSON bodies of the requests with `method`, in order.
fn requests_of(gitlab: &FakeGitLab, method: &str) -> Vec<Value> {
    gitlab
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == method)
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect()
}

/// A variable as a team sets up deploy credentials: protected, masked and
/// hidden from raw expansion, with a description; the key id as a file.
fn deploy_variable(key: &str, value: &str, variable_type: &str) -> Value {
    json!({
        "variable_type": variable_type, "key": key, "value": value, "protected": true,
        "masked": true, "hidden": false, "raw": true, "environment_scope": "*",
        "description": "deploy credentials, rotated by keyrot",
    })
}

#[tokio::test]
async fn a_protected_variable_keeps_every_setting_but_its_value() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    gitlab.seed(deploy_variable("AWS_ACCESS_KEY_ID", &old, "file"));
    gitlab.seed(deploy_variable(
        "AWS_SECRET_ACCESS_KEY",
        "old-secret",
        "env_var",
    ));
    let out = run(&moto, &gitlab, &WITH_TOKEN, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let new = new_key_id(&out);
    let mut expected = deploy_variable("AWS_ACCESS_KEY_ID", &new, "file");
    assert_eq!(gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap(), expected);
    expected = deploy_variable("AWS_SECRET_ACCESS_KEY", &secret_of(&moto, &new), "env_var");
    assert_eq!(gitlab.get("AWS_SECRET_ACCESS_KEY", "*").unwrap(), expected);
    // Only the value went out.
    let puts = requests_of(&gitlab, "PUT");
    assert_eq!(puts.len(), 2);
    for put in puts {
        assert_eq!(
            put.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["value"]
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains("variable AWS_ACCESS_KEY_ID (scope *) is of type file"),
        "preflight warns about a file variable: {err}"
    );
    assert!(
        err.contains("exists (protected, masked, type env_var): only the value changes"),
        "{err}"
    );
}

#[tokio::test]
async fn group_variables_with_an_oauth_token() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    gitlab.seed(deploy_variable("AWS_ACCESS_KEY_ID", "AKIAOLD", "env_var"));
    let out = run_for(
        &moto,
        &gitlab,
        "group=group",
        &[
            "--secret",
            "token=env:GITLAB_TOKEN",
            "--config",
            "token-type=oauth",
        ],
        &[("GITLAB_TOKEN", OAUTH_TOKEN)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = new_key_id(&out);
    assert_eq!(
        gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap(),
        deploy_variable("AWS_ACCESS_KEY_ID", &new, "env_var")
    );
    let requests = gitlab.server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with("/api/v4/groups/group"))
    );
    let bearer = format!("Bearer {OAUTH_TOKEN}");
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str())
                && r.header("private-token").is_none())
    );
    assert!(
        stderr(&out).contains("group group (id 7) is reachable"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_gitlab_asks() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let gitlab = FakeGitLab::start(&[], &[]);
    gitlab.rate_limit(1);
    let out = run(&moto, &gitlab, &WITH_TOKEN, &[TOKEN_ENV]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains(
            "GitLab is rate-limiting requests (429) while reading project group/app: waiting 1 s"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(
        gitlab.get("AWS_ACCESS_KEY_ID", "*").unwrap()["value"],
        new_key_id(&out).as_str()
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
    // It declares the host of `api-url`: the other host is wider than
    // that, and GitLab's is not granted. Refused when loaded (exit 2).
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert!(
        gitlab.server.requests().is_empty(),
        "the request never left"
    );
    assert!(other.requests().is_empty());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "--allow-host {} is wider than plugin 'gitlab'",
            other.url
        )),
        "{err}"
    );
    let out = moto.rotate(
        "gitlab",
        &[
            "--config",
            "project=group/app",
            "--config",
            &api,
            "--secret",
            "token=env:GITLAB_TOKEN",
        ],
        &[TOKEN_ENV],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!(
            "add --allow-host http://127.0.0.1:{}",
            gitlab.server.port
        )),
        "the error names the flag that would allow it: {}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
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
