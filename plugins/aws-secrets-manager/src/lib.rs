//! keyrot handler that stores the new access key in an AWS Secrets Manager
//! secret holding JSON: the key id and secret under two field names
//! (default `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, the names the
//! AWS SDKs read from the environment), every other field kept.
//!
//! `preflight` describes the secret (it must exist and not be scheduled for
//! deletion) and reads its current value: a JSON object whose key id is the
//! user's current key, a key an interrupted run left (contract 0.4.0 names
//! each), or none yet. `handle` writes a new version with `PutSecretValue`,
//! which makes it `AWSCURRENT` and the previous one `AWSPREVIOUS`, and
//! leaves the KMS key, tags, resource policy and replication as they are;
//! its client token is derived from the new key id, so a retry after a lost
//! answer cannot make a second version. Then it reads the value back.
//!
//! The plugin holds no AWS credentials: keyrot signs its requests
//! (`--aws-sign` with `--aws-sign-role-arn`).

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    generate_all,
});

use aws_json::{AwsError, Service, region_of_arn};
use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting};
use serde_json::{Map, Value, json};
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

const SECRET_ID: &str = "secret-id";
const REGION: &str = "region";
const ENDPOINT_URL: &str = "endpoint-url";
const ID_FIELD: &str = "id-field";
const SECRET_FIELD: &str = "secret-field";
const USER_AGENT: &str = concat!("keyrot-aws-secrets-manager/", env!("CARGO_PKG_VERSION"));

struct SecretsManager;

/// The settings, read and checked.
struct Settings {
    secret_id: String,
    id_field: String,
    secret_field: String,
    service: Service,
}

impl Settings {
    fn read() -> Result<Settings, String> {
        let get = |name: &str| {
            config::get(name)
                .map_err(|e| format!("cannot read setting {name}: {e:?}"))
                .map(|v| v.filter(|v| !v.trim().is_empty()))
        };
        let secret_id = get(SECRET_ID)?
            .ok_or_else(|| format!("setting {SECRET_ID} is required: the secret's name or ARN"))?;
        let region = get(REGION)?.or_else(|| region_of_arn(&secret_id).map(str::to_string));
        let endpoint = get(ENDPOINT_URL)?;
        let service = Service::new(
            "secretsmanager",
            "secretsmanager",
            endpoint.as_deref(),
            region.as_deref(),
            USER_AGENT,
        )?;
        let id_field = get(ID_FIELD)?.unwrap_or_else(|| "AWS_ACCESS_KEY_ID".into());
        let secret_field = get(SECRET_FIELD)?.unwrap_or_else(|| "AWS_SECRET_ACCESS_KEY".into());
        if id_field == secret_field {
            return Err(format!("{ID_FIELD} and {SECRET_FIELD} must differ"));
        }
        Ok(Settings {
            secret_id,
            id_field,
            secret_field,
            service,
        })
    }

    /// "secret NAME at ENDPOINT", for messages.
    fn name(&self) -> String {
        format!("secret {} at {}", self.secret_id, self.service.endpoint)
    }

    /// The secret's current value as a JSON object; empty when it has no
    /// value yet.
    fn current(&self) -> Result<Map<String, Value>, String> {
        let got = self
            .service
            .call("GetSecretValue", &json!({ "SecretId": self.secret_id }));
        let value = match got {
            Ok(value) => value,
            // A secret created without a value has no AWSCURRENT version.
            Err(AwsError::Service { code, .. }) if code == "ResourceNotFoundException" => {
                return Ok(Map::new());
            }
            Err(err) => return Err(format!("cannot read {}: {err}", self.name())),
        };
        if value.get("SecretBinary").is_some() {
            return Err(format!(
                "{} holds binary data, not a JSON object: keyrot will not overwrite it",
                self.name()
            ));
        }
        let text = value
            .get("SecretString")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            // Never echo the value: it may be a secret of another shape.
            _ => Err(format!(
                "{} holds text that is not a JSON object: keyrot stores the key as JSON \
                 fields and will not overwrite it",
                self.name()
            )),
        }
    }
}

impl Guest for SecretsManager {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, required: bool| Setting {
            name: name.into(),
            description: description.into(),
            required,
            secret: false,
        };
        PluginInfo {
            name: "aws-secrets-manager".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stores the new key in an AWS Secrets Manager secret (JSON fields), as \
                          its new AWSCURRENT version; requests signed by keyrot (--aws-sign)."
                .into(),
            settings: vec![
                setting(SECRET_ID, "The secret's name or ARN; it must exist", true),
                setting(
                    REGION,
                    "The secret's region (default: from an ARN secret-id)",
                    false,
                ),
                setting(
                    ENDPOINT_URL,
                    "Secrets Manager's URL, for a VPC endpoint or a test (default: the region's)",
                    false,
                ),
                setting(
                    ID_FIELD,
                    "JSON field for the key id (default AWS_ACCESS_KEY_ID)",
                    false,
                ),
                setting(
                    SECRET_FIELD,
                    "JSON field for the secret access key (default AWS_SECRET_ACCESS_KEY)",
                    false,
                ),
            ],
            needs: Needs {
                // The region's endpoint, SERVICE.REGION.amazonaws.com, is
                // known only once the settings are read: any name below
                // amazonaws.com, unless endpoint-url names the host.
                hosts: vec![HostNeed {
                    host: "*.amazonaws.com".into(),
                    setting: Some(ENDPOINT_URL.into()),
                    purpose: "Reads and writes the secret: secretsmanager.REGION.amazonaws.com, \
                              or endpoint-url's host; keyrot signs the requests (--aws-sign)"
                        .into(),
                }],
                directories: vec![],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let settings = Settings::read()?;
        let described = settings
            .service
            .call("DescribeSecret", &json!({ "SecretId": settings.secret_id }))
            .map_err(|err| match err.code() {
                Some("ResourceNotFoundException") => format!(
                    "{} does not exist: create it first (keyrot keeps its KMS key, tags and \
                     policy, so it does not create one)",
                    settings.name()
                ),
                _ => format!("cannot describe {}: {err}", settings.name()),
            })?;
        if described.get("DeletedDate").is_some_and(|d| !d.is_null()) {
            return Err(format!(
                "{} is scheduled for deletion: restore it (RestoreSecret) or name another",
                settings.name()
            ));
        }
        let current = settings.current()?;
        let held = current.get(&settings.id_field).and_then(Value::as_str);
        check_holder(held, &rotation, &settings)?;
        log(
            Level::Info,
            "preflight",
            &format!(
                "{} holds {} in field {}",
                settings.name(),
                held.unwrap_or("no key yet"),
                settings.id_field
            ),
        );
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = Settings::read()?;
        // Read again: another field may have changed since preflight.
        let mut value = settings.current()?;
        let held = value
            .get(&settings.id_field)
            .and_then(Value::as_str)
            .map(str::to_string);
        if held.as_deref() != Some(key.access_key_id.as_str()) {
            check_holder(held.as_deref(), &rotation, &settings)?;
        }
        value.insert(settings.id_field.clone(), json!(key.access_key_id));
        value.insert(settings.secret_field.clone(), json!(key.secret_access_key));
        let text = Value::Object(value).to_string();
        let put = settings
            .service
            .call(
                "PutSecretValue",
                &json!({
                    "SecretId": settings.secret_id,
                    "SecretString": text,
                    // 32 to 64 characters; one per key, so a retry is a no-op.
                    "ClientRequestToken": format!("keyrot-rotation-{}", key.access_key_id),
                }),
            )
            .map_err(|err| format!("cannot write {}: {err}", settings.name()))?;
        let version = put
            .get("VersionId")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        // What a consumer reading AWSCURRENT now gets.
        let stored = settings.current()?;
        let now = stored.get(&settings.id_field).and_then(Value::as_str);
        if now != Some(key.access_key_id.as_str()) {
            return Err(format!(
                "{} was written (version {version}) but its AWSCURRENT value holds {}, not \
                 the new key {}: another writer raced keyrot",
                settings.name(),
                now.unwrap_or("no key"),
                key.access_key_id
            ));
        }
        log(
            Level::Info,
            "handle",
            &format!(
                "stored key {} in {} (version {version}, now AWSCURRENT; the previous is \
                 AWSPREVIOUS)",
                key.access_key_id,
                settings.name()
            ),
        );
        Ok(())
    }
}

fn check_holder(held: Option<&str>, rotation: &Rotation, settings: &Settings) -> Result<(), String> {
    aws_json::check_holder(
        held,
        rotation.current_key_id.as_deref(),
        &rotation.abandoned_key_ids,
        &rotation.user_name,
        &format!("{} (field {})", settings.name(), settings.id_field),
    )
}

export!(SecretsManager);
