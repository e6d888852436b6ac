//! keyrot handler that stores the new access key in two data keys of an
//! existing Kubernetes Secret, on any cluster, and can then restart named
//! Deployments the way `kubectl rollout restart` does.
//!
//! `preflight` reads the Secret (it must exist and be mutable), checks that
//! its key id entry holds the current key id, an abandoned one or nothing,
//! and proves the token may patch the Secret (and each Deployment) with
//! server-side dry-run patches, which Kubernetes authorizes and admits like
//! real ones but never stores. `handle` reads the Secret again and sends one
//! JSON merge patch that carries the `resourceVersion` it read and only the
//! two data keys we own: labels, annotations, type and every other key stay
//! as they are, and a write by someone else in between is a 409 Conflict,
//! which is re-read and re-checked once.
//!
//! The bearer token never reaches the plugin: the operator's
//! `--inject-header` grant adds `Authorization` on the way out. `http` does
//! the I/O; `settings` parses and checks.

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    generate_all,
});

mod http;
mod settings;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting};
use serde_json::{Value, json};
use waki::Method;
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

use settings::Settings;

/// The longest one call waits in total for the API server's 429s to lift
/// (keyrot's default limit per call is 60 s).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Retries after 429 per request.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// The content type of a JSON merge patch (RFC 7386), which replaces the
/// keys it names and leaves every other one alone.
const MERGE_PATCH: &str = "application/merge-patch+json";
/// What `kubectl rollout restart` sends.
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
/// The pod-template annotation `kubectl rollout restart` sets.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

struct KubernetesSecret;

impl Guest for KubernetesSecret {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, required: bool| Setting {
            name: name.into(),
            description: description.into(),
            required,
            secret: false,
        };
        PluginInfo {
            name: "kubernetes-secret".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stores the new key in two data keys of a Kubernetes Secret, and can \
                          restart Deployments that read it."
                .into(),
            settings: vec![
                setting(
                    settings::API_URL,
                    "Kubernetes API server URL, e.g. https://k8s.example.com:6443",
                    true,
                ),
                setting(
                    settings::NAMESPACE,
                    "Namespace of the Secret, e.g. payments",
                    true,
                ),
                setting(
                    settings::SECRET_NAME,
                    "Name of the existing Secret, e.g. payments-aws",
                    true,
                ),
                setting(
                    settings::KEY_ID_KEY,
                    "Data key that receives the access key id (default AWS_ACCESS_KEY_ID)",
                    false,
                ),
                setting(
                    settings::SECRET_KEY_KEY,
                    "Data key that receives the secret access key (default \
                     AWS_SECRET_ACCESS_KEY)",
                    false,
                ),
                setting(
                    settings::RESTART_DEPLOYMENTS,
                    "Deployments in the namespace to restart once the Secret holds the new \
                     key, comma-separated, e.g. api,worker",
                    false,
                ),
            ],
            needs: Needs {
                // No default: api-url is required.
                hosts: vec![HostNeed {
                    host: String::new(),
                    setting: Some(settings::API_URL.into()),
                    purpose: "The Kubernetes API server: reads and patches the Secret, \
                              restarts the Deployments named"
                        .into(),
                }],
                directories: vec![],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let settings = load_settings()?;
        let secret = read_secret(&settings)?;
        check_held_key(&settings, &rotation, &secret)?;
        // A dry-run patch is authorized and admitted like a real one, so a
        // missing `patch` permission (or an admission webhook that refuses)
        // shows now, before a key exists. `{}` changes nothing anyway.
        let dry_run = format!("{}?dryRun=All", settings.secret_path());
        expect_ok(
            call(
                Method::Patch,
                &settings,
                &dry_run,
                Some((MERGE_PATCH, b"{}")),
            )?,
            &format!("patching Secret {} (dry run)", settings.secret_ref()),
            "patch on secrets",
        )?;
        for deployment in &settings.restart_deployments {
            let path = format!("{}?dryRun=All", settings.deployment_path(deployment));
            expect_ok(
                call(
                    Method::Patch,
                    &settings,
                    &path,
                    Some((STRATEGIC_MERGE_PATCH, b"{}")),
                )?,
                &format!(
                    "patching Deployment {}/{deployment} (dry run)",
                    settings.namespace
                ),
                "patch on deployments.apps",
            )?;
        }
        let restarts = if settings.restart_deployments.is_empty() {
            String::new()
        } else {
            format!(
                "; then restart Deployment(s) {}",
                settings.restart_deployments.join(", ")
            )
        };
        log(
            Level::Info,
            "preflight",
            &format!(
                "can read and patch Secret {}; will set {} and {} for user {}{restarts}",
                settings.secret_ref(),
                settings.key_id_key,
                settings.secret_key_key,
                rotation.user_name
            ),
        );
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = load_settings()?;
        // Preflight ran in another instance: read again, and write against
        // what was read now. One conflict is someone else's write between
        // our read and our patch: read and check again, then give up.
        let mut attempt = 0;
        loop {
            let secret = read_secret(&settings)?;
            check_held_key(&settings, &rotation, &secret)?;
            let version = secret["metadata"]["resourceVersion"].as_str().ok_or(
                "the Secret has no metadata.resourceVersion: is api-url a Kubernetes API server?",
            )?;
            let patch = json!({
                "metadata": { "resourceVersion": version },
                "data": {
                    settings.key_id_key.as_str(): BASE64.encode(&key.access_key_id),
                    settings.secret_key_key.as_str(): BASE64.encode(&key.secret_access_key),
                },
            });
            let body = patch.to_string();
            let response = call(
                Method::Patch,
                &settings,
                &settings.secret_path(),
                Some((MERGE_PATCH, body.as_bytes())),
            )?;
            if response.status == 409 && attempt == 0 {
                log(
                    Level::Warn,
                    "handle",
                    &format!(
                        "Secret {} changed since it was read (409 Conflict): reading it again",
                        settings.secret_ref()
                    ),
                );
                attempt += 1;
                continue;
            }
            if response.status == 409 {
                return Err(format!(
                    "Secret {} changed twice while keyrot wrote it (409 Conflict): something \
                     else is writing it; run keyrot again when it is quiet",
                    settings.secret_ref()
                ));
            }
            expect_ok(
                response,
                &format!("patching Secret {}", settings.secret_ref()),
                "patch on secrets",
            )?;
            break;
        }
        log(
            Level::Info,
            "handle",
            &format!(
                "Secret {} now holds key {} in {} and {}",
                settings.secret_ref(),
                key.access_key_id,
                settings.key_id_key,
                settings.secret_key_key
            ),
        );
        restart_deployments(&settings);
        Ok(())
    }
}

export!(KubernetesSecret);

/// Reads every setting from `wasi:config` and checks them together.
fn load_settings() -> Result<Settings, String> {
    Settings::load(|name| {
        config::get(name).map_err(|e| format!("cannot read setting '{name}': {e:?}"))
    })
}

/// `GET` the Secret, as JSON. It must exist and be mutable.
fn read_secret(settings: &Settings) -> Result<Value, String> {
    let what = format!("reading Secret {}", settings.secret_ref());
    let response = call(Method::Get, settings, &settings.secret_path(), None)?;
    if response.status == 404 {
        return Err(format!(
            "Secret {} does not exist: this handler only updates a Secret; create it first \
             (kubectl -n {} create secret generic {})",
            settings.secret_ref(),
            settings.namespace,
            settings.secret_name
        ));
    }
    let response = expect_ok(response, &what, "get on secrets")?;
    let secret: Value = serde_json::from_slice(&response.body).map_err(|_| {
        format!("{what}: the answer is not JSON: is api-url a Kubernetes API server?")
    })?;
    if secret["kind"] != "Secret" {
        return Err(format!(
            "{what}: the answer is not a Secret: is api-url a Kubernetes API server?"
        ));
    }
    if secret["immutable"] == true {
        return Err(format!(
            "Secret {} is immutable: Kubernetes refuses any change to its data; make it \
             mutable (recreate it without immutable: true) or point the handler at another",
            settings.secret_ref()
        ));
    }
    Ok(secret)
}

/// The Secret's key id entry must hold the current key id, a key an
/// interrupted run left there, or nothing: anything else is another key,
/// which this rotation must not overwrite.
fn check_held_key(settings: &Settings, rotation: &Rotation, secret: &Value) -> Result<(), String> {
    let Some(encoded) = secret["data"][settings.key_id_key.as_str()].as_str() else {
        return Ok(());
    };
    let held = BASE64
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            format!(
                "data key {} of Secret {} is not base64 text",
                settings.key_id_key,
                settings.secret_ref()
            )
        })?;
    let held = held.trim();
    if held.is_empty() || replaceable(held, rotation) {
        return Ok(());
    }
    Err(format!(
        "Secret {} holds key {held} in {}, not the current key ({}) of user {}{}: it belongs \
         to another key, so keyrot leaves it alone; fix the Secret or the settings",
        settings.secret_ref(),
        settings.key_id_key,
        rotation.current_key_id.as_deref().unwrap_or("none"),
        rotation.user_name,
        nor_abandoned(rotation)
    ))
}

/// Whether `held` may be overwritten: the user's current key, or any key an
/// interrupted run left there (contract 0.4.0's `abandoned-key-ids`).
fn replaceable(held: &str, rotation: &Rotation) -> bool {
    rotation.current_key_id.as_deref() == Some(held)
        || rotation.abandoned_key_ids.iter().any(|id| id == held)
}

/// ", nor a key an interrupted run left (A, B)" when there are any, for the
/// refusal.
fn nor_abandoned(rotation: &Rotation) -> String {
    match rotation.abandoned_key_ids.as_slice() {
        [] => String::new(),
        ids => format!(", nor a key an interrupted run left ({})", ids.join(", ")),
    }
}

/// Restarts each configured Deployment as `kubectl rollout restart` does:
/// a new `restartedAt` annotation on the pod template rolls the pods, and
/// new pods read the new key. The key is stored by then, so a failure here
/// is a warning with the command to run, not a failed rotation.
fn restart_deployments(settings: &Settings) {
    if settings.restart_deployments.is_empty() {
        return;
    }
    let now = rfc3339(SystemTime::now());
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } }
    })
    .to_string();
    for deployment in &settings.restart_deployments {
        let result = call(
            Method::Patch,
            settings,
            &settings.deployment_path(deployment),
            Some((STRATEGIC_MERGE_PATCH, patch.as_bytes())),
        )
        .and_then(|response| {
            expect_ok(
                response,
                &format!("restarting Deployment {}/{deployment}", settings.namespace),
                "patch on deployments.apps",
            )
        });
        match result {
            Ok(_) => log(
                Level::Info,
                "handle",
                &format!("restarted Deployment {}/{deployment}", settings.namespace),
            ),
            Err(error) => log(
                Level::Warn,
                "handle",
                &format!(
                    "{error}; the Secret holds the new key: restart it yourself with \
                     kubectl -n {} rollout restart deployment/{deployment}",
                    settings.namespace
                ),
            ),
        }
    }
}

/// One API call, waiting out 429 Too Many Requests as the API server asks
/// (`Retry-After`, in seconds), within [`MAX_RATE_LIMIT_WAIT`].
fn call(
    method: Method,
    settings: &Settings,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Result<http::Response, String> {
    let url = format!("{}{path}", settings.api_url);
    let mut waited = Duration::ZERO;
    let mut retries = 0;
    loop {
        let response = http::send(method.clone(), &url, body)
            .map_err(|e| format!("cannot reach the Kubernetes API at {url}: {e}"))?;
        if response.status != 429 {
            return Ok(response);
        }
        let wait = Duration::from_secs(
            response
                .retry_after
                .as_deref()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1),
        );
        if retries >= MAX_RATE_LIMIT_RETRIES || waited + wait > MAX_RATE_LIMIT_WAIT {
            return Err(format!(
                "the Kubernetes API is rate-limiting keyrot (429 Too Many Requests, retry after \
                 {}s): run keyrot again later",
                wait.as_secs()
            ));
        }
        log(
            Level::Info,
            "http",
            &format!("the API server asks to wait {}s (429)", wait.as_secs()),
        );
        std::thread::sleep(wait);
        waited += wait;
        retries += 1;
    }
}

/// `response` if it is a success; otherwise an error saying what failed,
/// with the API server's own message (a `Status` object) and, for 401/403,
/// what the token needs (`needs`: the verb and resource).
fn expect_ok(response: http::Response, what: &str, needs: &str) -> Result<http::Response, String> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let message = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|status| status["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect()
        });
    let hint = match response.status {
        401 => " (401 Unauthorized): the API server does not accept the token; check the \
                --inject-header 'HOST=Authorization:Bearer {env:VAR}' grant"
            .to_string(),
        403 => format!(" (403 Forbidden): the token's account needs {needs} for this name"),
        404 => " (404 Not Found)".to_string(),
        code => format!(" ({code})"),
    };
    Err(format!("{what} failed{hint}: {message}"))
}

/// `time` as RFC 3339 in UTC, seconds precision, e.g. `2026-12-07T08:00:00Z`
/// (what kubectl writes, and what a guest without a date crate can build).
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURRENT: &str = "AKIACURRENTKEY005678";
    /// Left by the latest interrupted run, and by the one before it.
    const NEWER: &str = "AKIANEWERLEFTKEY2222";
    const OLDER: &str = "AKIAOLDERLEFTKEY1111";
    const OTHER: &str = "AKIAOTHERKEY00000000";

    fn settings() -> Settings {
        Settings {
            api_url: "https://k8s.example.com:6443".into(),
            namespace: "payments".into(),
            secret_name: "payments-aws".into(),
            key_id_key: "AWS_ACCESS_KEY_ID".into(),
            secret_key_key: "AWS_SECRET_ACCESS_KEY".into(),
            restart_deployments: vec![],
        }
    }

    fn rotation(abandoned: &[&str]) -> Rotation {
        Rotation {
            user_name: "ci-bot".into(),
            current_key_id: Some(CURRENT.into()),
            account_id: None,
            abandoned_key_ids: abandoned.iter().map(|id| id.to_string()).collect(),
        }
    }

    fn holding(id: &str) -> Value {
        json!({ "data": { "AWS_ACCESS_KEY_ID": BASE64.encode(id) } })
    }

    #[test]
    fn the_current_key_any_abandoned_one_or_nothing_may_be_replaced() {
        let two = rotation(&[NEWER, OLDER]);
        for held in [CURRENT, NEWER, OLDER, ""] {
            assert!(
                check_held_key(&settings(), &two, &holding(held)).is_ok(),
                "{held}"
            );
        }
        assert!(check_held_key(&settings(), &two, &json!({ "data": {} })).is_ok());
    }

    #[test]
    fn another_key_is_refused_naming_the_abandoned_ones() {
        let error =
            check_held_key(&settings(), &rotation(&[NEWER, OLDER]), &holding(OTHER)).unwrap_err();
        assert!(error.contains(&format!("holds key {OTHER}")), "{error}");
        assert!(
            error.contains(&format!(
                "not the current key ({CURRENT}) of user ci-bot, nor a key an interrupted run \
                 left ({NEWER}, {OLDER}):"
            )),
            "{error}"
        );
        // Not named as abandoned, it is another key.
        let error = check_held_key(&settings(), &rotation(&[]), &holding(OLDER)).unwrap_err();
        assert!(error.contains("of user ci-bot: it belongs"), "{error}");
    }
}
