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

/// What `POST .../envvar` does to a variable that exists: CircleCI does not
/// document it, so the plugin must work either way.
#[derive(Clone, Copy, PartialEq)]
enum PostOnExisting {
    Replaces,
    /// Answers 201 but keeps the old value.
    KeepsOld,
}

/// The context the fake knows, by id and by name in organization gh/octo.
const CONTEXT_ID: &str = "5f8c1f4e-0a1b-4c2d-9e3f-1234567890ab";
const CONTEXT_NAME: &str = "aws-prod";
const ORG_SLUG: &str = "gh/octo";

type Variables = Arc<Mutex<Vec<(String, String)>>>;

/// A fake CircleCI API v2 as documented: project gh/octo/app and its
/// variables (`GET` shows them masked, `POST` creates, `DELETE` removes),
/// the organization gh/octo's contexts (listed a page at a time) and their
/// variables (`PUT` adds or updates, never shown), a 401 for any request
/// without the right `Circle-Token`, and the first `rate_limited` requests
/// answered 429 with `Retry-After`.
struct FakeCircleCi {
    server: TestServer,
    variables: Variables,
    context_variables: Variables,
    rate_limited: Arc<Mutex<u32>>,
}

impl FakeCircleCi {
    fn start(fault: Fault) -> FakeCircleCi {
        Self::start_with(fault, PostOnExisting::Replaces)
    }

    fn start_with(fault: Fault, post: PostOnExisting) -> FakeCircleCi {
        let variables: Variables = Arc::default();
        let context_variables: Variables = Arc::default();
        let rate_limited = Arc::new(Mutex::new(0));
        let (vars, ctx_vars, limited) = (
            variables.clone(),
            context_variables.clone(),
            rate_limited.clone(),
        );
        let server = TestServer::start(move |r| {
            {
                let mut limited = limited.lock().unwrap();
                if *limited > 0 {
                    *limited -= 1;
                    return Reply::new(429, r#"{"message":"Rate limit exceeded"}"#)
                        .header("retry-after", "1");
                }
            }
            if fault == Fault::RejectToken || r.header("circle-token") != Some(TOKEN) {
                return Reply::new(401, r#"{"message":"Invalid token provided."}"#);
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
            if let Some(rest) = path.strip_prefix("/api/v2/context") {
                return context_answer(r, rest, query, &body, &ctx_vars, fault);
            }
            let project = format!("/api/v2/project/{SLUG}");
            let rest = path.strip_prefix(&project);
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
                ("DELETE", Some(name)) if name.starts_with("/envvar/") => {
                    let name = &name["/envvar/".len()..];
                    vars.lock().unwrap().retain(|(n, _)| n != name);
                    Reply::new(200, r#"{"message":"Environment variable deleted."}"#)
                }
                ("POST", Some("/envvar")) => {
                    let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str())
                    else {
                        return Reply::new(400, r#"{"message":"name and value are required"}"#);
                    };
                    if fault == Fault::SecretWriteFails && name == "AWS_SECRET_ACCESS_KEY" {
                        return Reply::new(500, r#"{"message":"Internal server error"}"#);
                    }
                    let mut vars = vars.lock().unwrap();
                    if let Some((_, old)) = vars.iter().find(|(n, _)| n == name)
                        && post == PostOnExisting::KeepsOld
                    {
                        return Reply::new(201, masked(name, old));
                    }
                    vars.retain(|(n, _)| n != name);
                    vars.push((name.to_string(), value.to_string()));
                    Reply::new(201, masked(name, value))
                }
                _ => Reply::new(404, r#"{"message":"Project not found"}"#),
            }
        });
        FakeCircleCi {
            server,
            variables,
            context_variables,
            rate_limited,
        }
    }

    /// The variables as the project holds them now, by name.
    fn variable(&self, name: &str) -> Option<String> {
        let vars = self.variables.lock().unwrap();
        vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// A variable of the context, by name.
    fn context_variable(&self, name: &str) -> Option<String> {
        let vars = self.context_variables.lock().unwrap();
        vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set(&self, name: &str, value: &str) {
        self.variables
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
    }

    fn set_in_context(&self, name: &str, value: &str) {
        self.context_variables
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
    }

    /// Answers the next `n` requests with a 429.
    fn rate_limit(&self, n: u32) {
        *self.rate_limited.lock().unwrap() = n;
    }

    fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// The `--allow-host` value for this server.
    fn url(&self) -> &str {
        &self.server.url
    }
}

/// The context endpoints; `rest` follows `/api/v2/context`.
fn context_answer(
    r: &Recorded,
    rest: &str,
    query: &str,
    body: &Value,
    vars: &Variables,
    fault: Fault,
) -> Reply {
    let not_found = || Reply::new(404, r#"{"message":"Context not found"}"#);
    let mut segments = rest.trim_start_matches('/').split('/');
    match (
        r.method.as_str(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        // One page of the organization's contexts; the one we want is on
        // the second page.
        ("GET", Some(""), None, None) => {
            let params: Vec<(String, String)> = query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect();
            let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            if param("owner-slug") != Some(ORG_SLUG) {
                return Reply::new(
                    200,
                    json!({"items": [], "next_page_token": null}).to_string(),
                );
            }
            let page = match param("page-token") {
                None => json!({
                    "items": [{"id": "0c0c0c0c-0000-4000-8000-000000000000", "name": "other",
                               "created_at": "2024-01-01T00:00:00Z"}],
                    "next_page_token": "page-2",
                }),
                Some("page-2") => json!({
                    "items": [{"id": CONTEXT_ID, "name": CONTEXT_NAME,
                               "created_at": "2024-01-01T00:00:00Z"}],
                    "next_page_token": null,
                }),
                Some(_) => return Reply::new(400, r#"{"message":"Invalid page token"}"#),
            };
            Reply::new(200, page.to_string())
        }
        (_, Some(id), _, _) if id != CONTEXT_ID => not_found(),
        ("GET", Some(_), None, None) => Reply::new(
            200,
            json!({"id": CONTEXT_ID, "name": CONTEXT_NAME, "created_at": "2024-01-01T00:00:00Z"})
                .to_string(),
        ),
        ("GET", Some(_), Some("environment-variable"), None) => {
            let items: Vec<Value> = vars
                .lock()
                .unwrap()
                .iter()
                .map(|(name, _)| {
                    json!({"variable": name, "context_id": CONTEXT_ID,
                           "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"})
                })
                .collect();
            Reply::new(
                200,
                json!({"items": items, "next_page_token": null}).to_string(),
            )
        }
        ("PUT", Some(_), Some("environment-variable"), Some(name)) => {
            let Some(value) = body["value"].as_str() else {
                return Reply::new(400, r#"{"message":"value is required"}"#);
            };
            if fault == Fault::SecretWriteFails && name == "AWS_SECRET_ACCESS_KEY" {
                return Reply::new(500, r#"{"message":"Internal server error"}"#);
            }
            let mut vars = vars.lock().unwrap();
            vars.retain(|(n, _)| n != name);
            vars.push((name.to_string(), value.to_string()));
            Reply::new(
                200,
                json!({"variable": name, "context_id": CONTEXT_ID,
                       "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-06-01T00:00:00Z"})
                .to_string(),
            )
        }
        _ => not_found(),
    }
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            s.get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
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
    let slug = format!("project-slug={SLUG}");
    run_for(moto, api, &["--config", &slug], extra)
}

/// [`run`] for a target given as flags (`project-slug`, or `context`/`org`).
fn run_for(moto: &Moto, api: &FakeCircleCi, target: &[&str], extra: &[&str]) -> Output {
    warm("circleci");
    let api_url = format!("api-url={}", api.url());
    let mut args = vec![
        "--allow-host",
        api.url(),
        "--config",
        &api_url,
        "--plugin-log",
        "show",
    ];
    args.extend_from_slice(target);
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
async fn circleci_replaces_a_variable_even_when_post_keeps_the_old_value() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start_with(Fault::None, PostOnExisting::KeepsOld);
    api.set("AWS_ACCESS_KEY_ID", &old);
    api.set("AWS_SECRET_ACCESS_KEY", "old-secret-value");
    let out = run(&moto, &api, &["--secret", "token=env:CIRCLE_TOKEN"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(
        api.variable("AWS_ACCESS_KEY_ID").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        api.variable("AWS_SECRET_ACCESS_KEY"),
        Some(secret_of(&moto, new))
    );
    let deleted: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        deleted,
        [
            format!("/api/v2/project/{SLUG}/envvar/AWS_ACCESS_KEY_ID"),
            format!("/api/v2/project/{SLUG}/envvar/AWS_SECRET_ACCESS_KEY"),
        ]
    );
    assert!(
        stderr(&out).contains("does not show AWS_ACCESS_KEY_ID of project gh/octo/app as replaced: deleting and creating it again"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn circleci_context_found_by_name_holds_the_new_key() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::None);
    api.set_in_context("AWS_ACCESS_KEY_ID", "AKIAOLD");
    api.set_in_context("OTHER", "kept");
    let context = format!("context={CONTEXT_NAME}");
    let org = format!("org={ORG_SLUG}");
    let out = run_for(
        &moto,
        &api,
        &["--config", &context, "--config", &org],
        &["--secret", "token=env:CIRCLE_TOKEN"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(
        api.context_variable("AWS_ACCESS_KEY_ID").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        api.context_variable("AWS_SECRET_ACCESS_KEY"),
        Some(secret_of(&moto, new))
    );
    assert_eq!(api.context_variable("OTHER").as_deref(), Some("kept"));
    let puts: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        puts,
        [
            format!("/api/v2/context/{CONTEXT_ID}/environment-variable/AWS_ACCESS_KEY_ID"),
            format!("/api/v2/context/{CONTEXT_ID}/environment-variable/AWS_SECRET_ACCESS_KEY"),
        ]
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "AWS_ACCESS_KEY_ID of context 'aws-prod' of gh/octo exists: its value will be replaced"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn circleci_context_by_id_restores_the_key_id_when_the_secret_fails() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::SecretWriteFails);
    api.set_in_context("AWS_ACCESS_KEY_ID", &old);
    let context = format!("context={CONTEXT_ID}");
    let out = run_for(
        &moto,
        &api,
        &["--config", &context],
        &["--secret", "token=env:CIRCLE_TOKEN"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(api.context_variable("AWS_ACCESS_KEY_ID"), Some(old.clone()));
    assert!(
        stderr(&out).contains(&format!(
            "restored AWS_ACCESS_KEY_ID to the current key {old}"
        )),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn circleci_rate_limit_is_waited_out() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let api = FakeCircleCi::start(Fault::None);
    api.rate_limit(1);
    let out = run(&moto, &api, &["--secret", "token=env:CIRCLE_TOKEN"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!(
            "CircleCI is rate-limiting requests (429) while reading project {SLUG}: waiting 1 s"
        )),
        "{}",
        show(&out)
    );
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(
        api.variable("AWS_ACCESS_KEY_ID").as_deref(),
        Some(new.as_str())
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
