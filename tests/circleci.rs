//! End-to-end tests of the JavaScript plugins through the binary, against
//! moto: `circleci.wasm` with a fake CircleCI API v2 (the variables it ends
//! up holding must be exactly the new key), and `js-hello.wasm`, the
//! README's JavaScript example. Both are built by
//! `scripts/build-plugins.sh js`.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::util::{Moto, Recorded, Reply, TestServer, plugin, show};

const SLUG: &str = "gh/octo/app";
const TOKEN: &str = "circle-t0ken-for-tests";
const TOKEN_ENV: (&str, &str) = ("CIRCLE_TOKEN", TOKEN);

/// How the fake CircleCI misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every request is answered 401, as CircleCI does for a bad token.
    RejectToken,
    /// Setting AWS_SECRET_ACCESS_KEY fails with a 500.
    SecretWriteFails,
}

/// A fake CircleCI API v2 for project gh/octo/app: the project, its
/// variables (`GET` shows them masked, `POST` creates or replaces), and a
/// 401 for any request without the right `Circle-Token`.
struct FakeCircleCi {
    server: TestServer,
    variables: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeCircleCi {
    fn start(fault: Fault) -> FakeCircleCi {
        let variables = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let vars = variables.clone();
        let server = TestServer::start(move |r| {
            if fault == Fault::RejectToken || r.header("circle-token") != Some(TOKEN) {
                return Reply::new(401, r#"{"message":"Invalid token provided."}"#);
            }
            let project = format!("/api/v2/project/{SLUG}");
            let rest = r.path.strip_prefix(&project);
            match (r.method.as_str(), rest) {
                ("GET", Some("")) => {
                    Reply::new(200, json!({"slug": SLUG, "name": "app"}).to_string())
                }
                ("GET", Some(name)) if name.starts_with("/envvar/") => {
                    let name = &name["/envvar/".len()..];
                    match vars.lock().unwrap().iter().find(|(n, _)| n == name) {
                        Some((_, value)) => Reply::new(200, masked(name, value)),
                        None => Reply::new(404, r#"{"message":"Environment variable not found."}"#),
                    }
                }
                ("POST", Some("/envvar")) => {
                    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str())
                    else {
                        return Reply::new(400, r#"{"message":"name and value are required"}"#);
                    };
                    if fault == Fault::SecretWriteFails && name == "AWS_SECRET_ACCESS_KEY" {
                        return Reply::new(500, r#"{"message":"Internal server error"}"#);
                    }
                    let mut vars = vars.lock().unwrap();
                    vars.retain(|(n, _)| n != name);
                    vars.push((name.to_string(), value.to_string()));
                    Reply::new(201, masked(name, value))
                }
                _ => Reply::new(404, r#"{"message":"Project not found"}"#),
            }
        });
        FakeCircleCi { server, variables }
    }

    /// The variables as the project holds them now, by name.
    fn variable(&self, name: &str) -> Option<String> {
        let vars = self.variables.lock().unwrap();
        vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set(&self, name: &str, value: &str) {
        self.variables
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
    }

    fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// The `--allow-host` value for this server.
    fn url(&self) -> &str {
        &self.server.url
    }
}

/// CircleCI's masked form of a value: `xxxx` and its last four characters.
fn masked(name: &str, value: &str) -> String {
    let tail: String = value
        .chars()
        .skip(value.chars().count().saturating_sub(4))
        .collect();
    json!({"name": name, "value": format!("xxxx{tail}")}).to_string()
}

/// Compiles `name` into the test run's compiled-code cache once, before any
/// test runs it: a 12 MiB JavaScript component takes minutes to compile in
/// a debug build, and tests running in parallel would each compile it.
fn warm(name: &str) {
    static WARMED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let wasm = plugin(name);
    let mut warmed = WARMED.lock().unwrap_or_else(|e| e.into_inner());
    if warmed.iter().any(|w| w == name) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .env_clear()
        .env("HOME", home.path())
        // The cache `Moto::command` gives every run.
        .env(
            "KEYROT_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyrot-cache"),
        )
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .expect("run keyrot plugin inspect");
    assert!(out.status.success(), "{}", show(&out));
    warmed.push(name.to_string());
}

/// Runs circleci.wasm for user ci-bot against `api`, with `extra` flags;
/// checks that neither a secret moto issued nor the token is printed.
fn run(moto: &Moto, api: &FakeCircleCi, extra: &[&str]) -> Output {
    warm("circleci");
    let api_url = format!("api-url={}", api.url());
    let slug = format!("project-slug={SLUG}");
    let mut args = vec![
        "--allow-host",
        api.url(),
        "--config",
        &slug,
        "--config",
        &api_url,
        "--plugin-log",
        "show",
    ];
    args.extend_from_slice(extra);
    let out = moto.rotate("circleci", &args, &[TOKEN_ENV]);
    assert!(
        !show(&out).contains(TOKEN),
        "the token leaked:\n{}",
        show(&out)
    );
    out
}

/// The secret moto issued for `key_id`.
fn secret_of(moto: &Moto, key_id: &str) -> String {
    moto.keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, secret)| secret)
        .expect("moto issued the key")
}

/// The `(name, value)` of every `POST .../envvar`, in order.
fn writes(api: &FakeCircleCi) -> Vec<(String, String)> {
    api.requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("a JSON body");
            (
                body["name"].as_str().unwrap().to_string(),
                body["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn circleci_variables_hold_the_new_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::None);
    // The project holds the key being replaced, as after a previous rotation.
    api.set("AWS_ACCESS_KEY_ID", &old);
    let out = run(&moto, &api, &["--secret", "token=env:CIRCLE_TOKEN"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "only the new key is left: {keys:?}");
    let new = &keys[0].0;
    assert_ne!(new, &old);
    assert_eq!(
        api.variable("AWS_ACCESS_KEY_ID").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        api.variable("AWS_SECRET_ACCESS_KEY"),
        Some(secret_of(&moto, new))
    );
    // Key id first, then the secret, each written once.
    let names: Vec<_> = writes(&api).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("circle-token") == Some(TOKEN)),
        "every request carries the token: {requests:?}"
    );
    assert_eq!(
        requests[0].path,
        format!("/api/v2/project/{SLUG}"),
        "preflight reads the project first"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("AWS_ACCESS_KEY_ID holds the current key {old}")),
        "{err}"
    );
}

#[tokio::test]
async fn circleci_custom_variable_names_with_an_injected_token() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::None);
    // No `token` setting: keyrot adds the header, the plugin never sees it.
    let inject = format!("{}=Circle-Token:{{env:CIRCLE_TOKEN}}", api.url());
    let out = run(
        &moto,
        &api,
        &[
            "--inject-header",
            &inject,
            "--config",
            "key-id-variable=DEPLOY_KEY_ID",
            "--config",
            "secret-key-variable=DEPLOY_SECRET",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    let new = &keys[0].0;
    assert_eq!(api.variable("DEPLOY_KEY_ID").as_deref(), Some(new.as_str()));
    assert_eq!(api.variable("DEPLOY_SECRET"), Some(secret_of(&moto, new)));
    assert_eq!(api.variable("AWS_ACCESS_KEY_ID"), None);
    assert!(
        stderr(&out).contains("DEPLOY_KEY_ID is not set yet"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn circleci_rejecting_the_token_changes_nothing() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::RejectToken);
    let out = run(&moto, &api, &["--secret", "token=env:CIRCLE_TOKEN"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    assert!(writes(&api).is_empty(), "nothing was written");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "CircleCI rejected the token (401: Invalid token provided.) while reading project {SLUG}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn circleci_failing_secret_write_restores_the_key_id() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::SecretWriteFails);
    api.set("AWS_ACCESS_KEY_ID", &old);
    let out = run(&moto, &api, &["--secret", "token=env:CIRCLE_TOKEN"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // keyrot deleted the new key; the project points at the old one again.
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(api.variable("AWS_ACCESS_KEY_ID"), Some(old.clone()));
    assert_eq!(api.variable("AWS_SECRET_ACCESS_KEY"), None);
    let names: Vec<_> = writes(&api).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID"
        ]
    );
    let err = stderr(&out);
    assert!(
        err.contains("CircleCI error 500 (Internal server error) while setting variable AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "restored AWS_ACCESS_KEY_ID to the current key {old}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn circleci_api_on_a_host_not_allowed_is_denied() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let allowed = FakeCircleCi::start(Fault::None);
    let elsewhere = FakeCircleCi::start(Fault::None);
    warm("circleci");
    // api-url names a host that --allow-host does not.
    let api_url = format!("api-url={}", elsewhere.url());
    let slug = format!("project-slug={SLUG}");
    let out = moto.rotate(
        "circleci",
        &[
            "--allow-host",
            allowed.url(),
            "--config",
            &slug,
            "--config",
            &api_url,
            "--secret",
            "token=env:CIRCLE_TOKEN",
        ],
        &[TOKEN_ENV],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert!(elsewhere.requests().is_empty(), "no request left");
    assert!(allowed.requests().is_empty());
    let err = stderr(&out);
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert!(
        err.contains(&format!("--allow-host {}", elsewhere.url())),
        "the error names the flag that would allow it: {err}"
    );
}

#[tokio::test]
async fn js_hello_rotates_a_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    warm("js-hello");
    // No --allow-host: js-hello is built without the http feature, so it
    // imports no wasi:http and needs no grant.
    let out = moto.rotate(
        "js-hello",
        &["--config", "greeting=hi", "--plugin-log", "show"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_ne!(keys[0].0, old);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[js-hello] hi, new key {}", keys[0].0)),
        "{err}"
    );
    assert!(
        err.contains(&format!("ready to replace key {old} of ci-bot")),
        "{err}"
    );
}
