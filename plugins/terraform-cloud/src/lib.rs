//! keyrot handler that stores the new access key as two sensitive
//! environment variables (category `env`) of an HCP Terraform (Terraform
//! Cloud) or Terraform Enterprise workspace, or of a variable set.
//!
//! `preflight` lists the variables (proving the token can read them), checks
//! that the key id variable holds the current key id, an abandoned one or
//! nothing (when it is readable: a sensitive value is write-only), and, for
//! a workspace, that the token's permissions include updating variables.
//! `handle` lists them again and updates each variable in place, sending
//! only its value (and `sensitive`), so its description and HCL flag stay;
//! a variable that does not exist is created, sensitive. The key id goes
//! first; if the secret key then fails, the key id is put back.
//!
//! The token never reaches the plugin: the operator's `--inject-header`
//! grant adds `Authorization: Bearer` on the way out. 429 answers are waited
//! out as HCP Terraform asks (`Retry-After`, else `X-RateLimit-Reset`).

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    generate_all,
});

mod http;
mod settings;

use std::time::Duration;

use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting};
use serde_json::{Value, json};
use waki::Method;
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

use settings::{Settings, Target};

/// The longest one call waits in total for rate limits to lift (keyrot's
/// default limit per call is 60 s).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Retries after 429 per request.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// JSON:API's media type, which HCP Terraform requires on writes.
const JSON_API: &str = "application/vnd.api+json";

struct TerraformCloud;

/// One environment variable as HCP Terraform lists it.
struct Variable {
    id: String,
    /// `None` when sensitive: HCP Terraform never returns those values.
    value: Option<String>,
    sensitive: bool,
}

impl Guest for TerraformCloud {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str| Setting {
            name: name.into(),
            description: description.into(),
            // Exactly one of workspace-id and varset-id is, which load checks.
            required: false,
            secret: false,
        };
        PluginInfo {
            name: "terraform-cloud".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stores the new key as sensitive environment variables of an HCP \
                          Terraform workspace or variable set."
                .into(),
            settings: vec![
                setting(
                    settings::WORKSPACE_ID,
                    "Workspace whose variables to set, e.g. ws-CZcmD7eagjhyX0vN (set \
                     workspace-id or varset-id)",
                ),
                setting(
                    settings::VARSET_ID,
                    "Variable set whose variables to set, e.g. varset-47qC3LmA47piVan7",
                ),
                setting(
                    settings::BASE_URL,
                    "HCP Terraform or Terraform Enterprise URL (default \
                     https://app.terraform.io), e.g. https://tfe.example.com",
                ),
                setting(
                    settings::KEY_ID_VARIABLE,
                    "Variable that receives the access key id (default AWS_ACCESS_KEY_ID)",
                ),
                setting(
                    settings::SECRET_KEY_VARIABLE,
                    "Variable that receives the secret access key (default \
                     AWS_SECRET_ACCESS_KEY)",
                ),
            ],
            needs: Needs {
                hosts: vec![HostNeed {
                    host: "app.terraform.io".into(),
                    setting: Some(settings::BASE_URL.into()),
                    purpose: "HCP Terraform's (or Terraform Enterprise's) API: lists, updates \
                              and creates the variables"
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
        let variables = list_variables(&settings)?;
        check_held_key(&settings, &rotation, &variables)?;
        check_write_permission(&settings)?;
        let plan = |name: &str| match find(&variables, name) {
            Some(_) => format!("update {name}"),
            None => format!("create {name}"),
        };
        log(
            Level::Info,
            "preflight",
            &format!(
                "can read the variables of {}; will {} and {} for user {}",
                settings.target,
                plan(&settings.key_id_variable),
                plan(&settings.secret_key_variable),
                rotation.user_name
            ),
        );
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = load_settings()?;
        // Preflight ran in another instance: list again.
        let variables = list_variables(&settings)?;
        check_held_key(&settings, &rotation, &variables)?;
        let key_id_var = find(&variables, &settings.key_id_variable);
        let created = write(
            &settings,
            &settings.key_id_variable,
            key_id_var,
            &key.access_key_id,
            &rotation,
        )?;
        let secret_var = find(&variables, &settings.secret_key_variable);
        if let Err(error) = write(
            &settings,
            &settings.secret_key_variable,
            secret_var,
            &key.secret_access_key,
            &rotation,
        ) {
            let undo = undo_key_id(&settings, key_id_var, created, &rotation);
            return Err(format!("{error}; {undo}"));
        }
        log(
            Level::Info,
            "handle",
            &format!(
                "{} holds key {} in {} and {}",
                settings.target,
                key.access_key_id,
                settings.key_id_variable,
                settings.secret_key_variable
            ),
        );
        Ok(())
    }
}

export!(TerraformCloud);

/// Reads every setting from `wasi:config` and checks them together.
fn load_settings() -> Result<Settings, String> {
    Settings::load(|name| {
        config::get(name).map_err(|e| format!("cannot read setting '{name}': {e:?}"))
    })
}

/// The target's environment variables by key. A `terraform` variable of
/// the same name is another variable, and not ours.
fn list_variables(settings: &Settings) -> Result<Vec<(String, Variable)>, String> {
    let what = format!("listing the variables of {}", settings.target);
    let response = expect_ok(
        call(Method::Get, settings, &settings.target.vars_path(), None)?,
        &what,
    )?;
    let document: Value = serde_json::from_slice(&response.body)
        .map_err(|_| format!("{what}: the answer is not JSON: is base-url HCP Terraform?"))?;
    let data = document["data"].as_array().ok_or_else(|| {
        format!("{what}: the answer has no data list: is base-url HCP Terraform?")
    })?;
    Ok(data
        .iter()
        .filter(|v| v["attributes"]["category"] == "env")
        .filter_map(|v| {
            let attributes = &v["attributes"];
            let variable = Variable {
                id: v["id"].as_str()?.to_string(),
                value: attributes["value"].as_str().map(str::to_string),
                sensitive: attributes["sensitive"] == true,
            };
            Some((attributes["key"].as_str()?.to_string(), variable))
        })
        .collect())
}

fn find<'a>(variables: &'a [(String, Variable)], name: &str) -> Option<&'a Variable> {
    variables.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A readable key id variable must hold the current key id, a key an
/// interrupted run left there, or nothing; a sensitive one cannot be read.
fn check_held_key(
    settings: &Settings,
    rotation: &Rotation,
    variables: &[(String, Variable)],
) -> Result<(), String> {
    let Some(variable) = find(variables, &settings.key_id_variable) else {
        return Ok(());
    };
    let Some(held) = variable.value.as_deref().map(str::trim) else {
        log(
            Level::Debug,
            "preflight",
            &format!(
                "{} is sensitive: cannot check that it holds the current key",
                settings.key_id_variable
            ),
        );
        return Ok(());
    };
    if held.is_empty() || replaceable(held, rotation) {
        return Ok(());
    }
    Err(format!(
        "{} of {} holds key {held}, not the current key ({}) of user {}{}: it belongs to \
         another key, so keyrot leaves it alone; fix the variable or the settings",
        settings.key_id_variable,
        settings.target,
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

/// For a workspace, HCP Terraform reports the token's permissions on it;
/// without `can-update-variable` every write would fail. A variable set
/// reports none, so there writing shows it.
fn check_write_permission(settings: &Settings) -> Result<(), String> {
    let Target::Workspace(id) = &settings.target else {
        return Ok(());
    };
    let what = format!("reading {}", settings.target);
    let response = expect_ok(
        call(
            Method::Get,
            settings,
            &format!("/api/v2/workspaces/{id}"),
            None,
        )?,
        &what,
    )?;
    let document: Value = serde_json::from_slice(&response.body)
        .map_err(|_| format!("{what}: the answer is not JSON: is base-url HCP Terraform?"))?;
    if document["data"]["attributes"]["permissions"]["can-update-variable"] == false {
        return Err(format!(
            "the token may not update the variables of {}: give its team \"Read and write \
             variables\" (or higher) on the workspace",
            settings.target
        ));
    }
    Ok(())
}

/// Sets `name` to `value`: an update of the existing variable that sends
/// only what we own, or a new sensitive `env` variable. Returns whether it
/// created one.
fn write(
    settings: &Settings,
    name: &str,
    existing: Option<&Variable>,
    value: &str,
    rotation: &Rotation,
) -> Result<bool, String> {
    let (method, path, body, created) = match existing {
        Some(variable) => {
            let mut attributes = json!({ "value": value });
            // The secret key is always sensitive. A key id variable keeps
            // what it is: HCP Terraform cannot make a sensitive one readable.
            if name == settings.secret_key_variable && !variable.sensitive {
                attributes["sensitive"] = json!(true);
            }
            let body = json!({
                "data": { "id": variable.id, "type": "vars", "attributes": attributes }
            });
            (
                Method::Patch,
                settings.target.var_path(&variable.id),
                body,
                false,
            )
        }
        None => {
            let body = json!({
                "data": {
                    "type": "vars",
                    "attributes": {
                        "key": name,
                        "value": value,
                        "description": format!(
                            "AWS access key of IAM user {}, rotated by keyrot",
                            rotation.user_name
                        ),
                        "category": "env",
                        "hcl": false,
                        "sensitive": true,
                    }
                }
            });
            (Method::Post, settings.target.vars_path(), body, true)
        }
    };
    let verb = if created { "creating" } else { "updating" };
    let what = format!("{verb} variable {name} of {}", settings.target);
    let body = body.to_string();
    expect_ok(
        call(method, settings, &path, Some((JSON_API, body.as_bytes())))?,
        &what,
    )?;
    Ok(created)
}

/// After the secret key failed: puts the key id variable back (to the
/// current key id), or deletes it if this run created it, so the target
/// never pairs the new id with the old secret. Returns what happened.
fn undo_key_id(
    settings: &Settings,
    previous: Option<&Variable>,
    created: bool,
    rotation: &Rotation,
) -> String {
    let name = &settings.key_id_variable;
    let result = if created {
        // Found again by listing: the create's answer was not kept.
        list_variables(settings).and_then(|variables| match find(&variables, name) {
            Some(variable) => call(
                Method::Delete,
                settings,
                &settings.target.var_path(&variable.id),
                None,
            )
            .and_then(|r| expect_ok(r, &format!("deleting variable {name}"))),
            None => Err(format!("variable {name} is gone")),
        })
    } else {
        match (previous, rotation.current_key_id.as_deref()) {
            (Some(variable), Some(old)) => {
                let body = json!({
                    "data": { "id": variable.id, "type": "vars", "attributes": { "value": old } }
                })
                .to_string();
                call(
                    Method::Patch,
                    settings,
                    &settings.target.var_path(&variable.id),
                    Some((JSON_API, body.as_bytes())),
                )
                .and_then(|r| expect_ok(r, &format!("restoring variable {name}")))
            }
            _ => Err("there was no current key id to put back".to_string()),
        }
    };
    match result {
        Ok(_) if created => format!("deleted the new variable {name} again"),
        Ok(_) => format!("put {name} back to the current key id"),
        Err(error) => format!(
            "{name} now names the new key, which keyrot deletes: set it back by hand ({error})"
        ),
    }
}

/// One API call, waiting out 429 Too Many Requests for as long as HCP
/// Terraform says (seconds, possibly fractional), within
/// [`MAX_RATE_LIMIT_WAIT`].
fn call(
    method: Method,
    settings: &Settings,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Result<http::Response, String> {
    let url = format!("{}{path}", settings.base_url);
    let mut waited = Duration::ZERO;
    let mut retries = 0;
    loop {
        let response = http::send(method.clone(), &url, body)
            .map_err(|e| format!("cannot reach HCP Terraform at {url}: {e}"))?;
        if response.status != 429 {
            return Ok(response);
        }
        let seconds = response
            .retry_after
            .as_deref()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(1.0);
        let wait = Duration::from_secs_f64(seconds.min(3600.0));
        if retries >= MAX_RATE_LIMIT_RETRIES || waited + wait > MAX_RATE_LIMIT_WAIT {
            return Err(format!(
                "HCP Terraform is rate-limiting keyrot (429 Too Many Requests, retry after \
                 {seconds}s): run keyrot again later"
            ));
        }
        log(
            Level::Info,
            "http",
            &format!("HCP Terraform asks to wait {seconds}s (429)"),
        );
        std::thread::sleep(wait);
        waited += wait;
        retries += 1;
    }
}

/// `response` if it is a success; otherwise an error saying what failed,
/// with the JSON:API errors' details.
fn expect_ok(response: http::Response, what: &str) -> Result<http::Response, String> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let details: Vec<String> = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|doc| doc["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            e["detail"]
                .as_str()
                .or(e["title"].as_str())
                .map(str::to_string)
        })
        .collect();
    let hint = match response.status {
        401 => " (401 Unauthorized): HCP Terraform does not accept the token; check the \
                --inject-header 'HOST=Authorization:Bearer {env:VAR}' grant"
            .to_string(),
        403 => " (403 Forbidden): the token's team lacks the permission; see the plugin's README"
            .to_string(),
        404 => " (404 Not Found): it does not exist, or the token may not see it (HCP \
                Terraform answers 404 for both)"
            .to_string(),
        code => format!(" ({code})"),
    };
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(": {}", details.join("; "))
    };
    Err(format!("{what} failed{hint}{details}"))
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
            base_url: "https://app.terraform.io".into(),
            target: Target::Workspace("ws-CZcmD7eagjhyX0vN".into()),
            key_id_variable: "AWS_ACCESS_KEY_ID".into(),
            secret_key_variable: "AWS_SECRET_ACCESS_KEY".into(),
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

    /// A readable (not sensitive) key id variable holding `id`.
    fn holding(id: &str) -> Vec<(String, Variable)> {
        let variable = Variable {
            id: "var-1".into(),
            value: Some(id.into()),
            sensitive: false,
        };
        vec![("AWS_ACCESS_KEY_ID".into(), variable)]
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
        assert!(check_held_key(&settings(), &two, &[]).is_ok());
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
