//! keyrot handler that stores the new access key in AWS Systems Manager
//! Parameter Store: one SecureString parameter holding JSON (`parameter`,
//! fields as `id-field` and `secret-field` say, other fields kept), or two
//! parameters (`id-parameter`, `secret-parameter`; the secret one a
//! SecureString). One JSON parameter is the safer shape: a consumer never
//! reads a new id beside an old secret.
//!
//! `preflight` reads each parameter (decrypted): it must exist, a secret
//! must be a SecureString, and the id it holds must be the user's current
//! key, a key an interrupted run left (contract 0.4.0 names each), or not a
//! key id at all (a placeholder: SSM has no empty values). `handle` overwrites
//! each with `PutParameter`, passing the parameter's own type, KMS key and
//! tier back (left out, SSM would encrypt with the account's default key),
//! so only the value changes; tags and policies stay. The secret is written
//! before the id. Then it reads the id back.
//!
//! The plugin holds no AWS credentials: keyrot signs its requests
//! (`--aws-sign` with `--aws-sign-role-arn`).

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    generate_all,
});

use aws_json::{Service, is_key_id, region_of_arn};
use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting};
use serde_json::{Map, Value, json};
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

const PARAMETER: &str = "parameter";
const ID_PARAMETER: &str = "id-parameter";
const SECRET_PARAMETER: &str = "secret-parameter";
const REGION: &str = "region";
const ENDPOINT_URL: &str = "endpoint-url";
const ID_FIELD: &str = "id-field";
const SECRET_FIELD: &str = "secret-field";
const USER_AGENT: &str = concat!("keyrot-aws-ssm-parameter/", env!("CARGO_PKG_VERSION"));

struct Ssm;

/// Where the key goes.
enum Layout {
    /// One SecureString holding JSON.
    Json {
        name: String,
        id_field: String,
        secret_field: String,
    },
    /// One parameter per value.
    Two { id: String, secret: String },
}

struct Settings {
    layout: Layout,
    service: Service,
}

/// A parameter as read: its decrypted value and type.
struct Parameter {
    value: String,
    kind: String,
}

impl Settings {
    fn read() -> Result<Settings, String> {
        let get = |name: &str| {
            config::get(name)
                .map_err(|e| format!("cannot read setting {name}: {e:?}"))
                .map(|v| v.filter(|v| !v.trim().is_empty()))
        };
        let layout = match (get(PARAMETER)?, get(ID_PARAMETER)?, get(SECRET_PARAMETER)?) {
            (Some(name), None, None) => {
                let id_field = get(ID_FIELD)?.unwrap_or_else(|| "AWS_ACCESS_KEY_ID".into());
                let secret_field =
                    get(SECRET_FIELD)?.unwrap_or_else(|| "AWS_SECRET_ACCESS_KEY".into());
                if id_field == secret_field {
                    return Err(format!("{ID_FIELD} and {SECRET_FIELD} must differ"));
                }
                Layout::Json {
                    name,
                    id_field,
                    secret_field,
                }
            }
            (None, Some(id), Some(secret)) if id != secret => Layout::Two { id, secret },
            (None, Some(_), Some(_)) => {
                return Err(format!("{ID_PARAMETER} and {SECRET_PARAMETER} must differ"));
            }
            _ => {
                return Err(format!(
                    "set {PARAMETER} (one SecureString holding JSON), or both {ID_PARAMETER} \
                     and {SECRET_PARAMETER}"
                ));
            }
        };
        let arn_region = match &layout {
            Layout::Json { name, .. } | Layout::Two { secret: name, .. } => {
                region_of_arn(name).map(str::to_string)
            }
        };
        let region = get(REGION)?.or(arn_region);
        let service = Service::new(
            "ssm",
            "AmazonSSM",
            get(ENDPOINT_URL)?.as_deref(),
            region.as_deref(),
            USER_AGENT,
        )?;
        Ok(Settings { layout, service })
    }

    fn get(&self, name: &str) -> Result<Parameter, String> {
        let got = self
            .service
            .call("GetParameter", &json!({ "Name": name, "WithDecryption": true }))
            .map_err(|err| match err.code() {
                Some("ParameterNotFound") => format!(
                    "parameter {name} at {} does not exist: create it first (a SecureString \
                     with your KMS key; keyrot keeps its key, tier and tags)",
                    self.service.endpoint
                ),
                _ => format!("cannot read parameter {name}: {err}"),
            })?;
        let parameter = &got["Parameter"];
        Ok(Parameter {
            value: parameter["Value"].as_str().unwrap_or_default().to_string(),
            kind: parameter["Type"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Overwrites `name` with `value`, keeping its type, KMS key and tier.
    fn put(&self, name: &str, value: &str) -> Result<u64, String> {
        let described = self
            .service
            .call(
                "DescribeParameters",
                &json!({ "ParameterFilters": [
                    { "Key": "Name", "Option": "Equals", "Values": [name] }
                ] }),
            )
            .map_err(|err| format!("cannot describe parameter {name}: {err}"))?;
        let meta = described["Parameters"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["Name"] == name))
            .ok_or_else(|| format!("parameter {name} is gone since preflight"))?;
        let mut input = json!({
            "Name": name,
            "Value": value,
            "Type": meta["Type"],
            "Overwrite": true,
        });
        for field in ["KeyId", "Tier", "DataType"] {
            if let Some(v) = meta.get(field).filter(|v| v.is_string()) {
                input[field] = v.clone();
            }
        }
        let put = self
            .service
            .call("PutParameter", &input)
            .map_err(|err| format!("cannot write parameter {name}: {err}"))?;
        Ok(put["Version"].as_u64().unwrap_or_default())
    }

    /// The key id stored now, and the secret parameter's type.
    fn held(&self) -> Result<(Option<String>, String), String> {
        match &self.layout {
            Layout::Json { name, id_field, .. } => {
                let parameter = self.get(name)?;
                let held = json_object(name, &parameter.value)?
                    .get(id_field)
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Ok((held, parameter.kind))
            }
            Layout::Two { id, secret } => {
                let held = self.get(id)?.value;
                Ok((Some(held), self.get(secret)?.kind))
            }
        }
    }
}

/// A JSON parameter's fields; a placeholder value is no fields yet.
fn json_object(name: &str, text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ if !text.trim_start().starts_with('{') => Ok(Map::new()),
        // Never echo the value.
        _ => Err(format!(
            "parameter {name} holds text that is not a JSON object: keyrot will not overwrite it"
        )),
    }
}

impl Guest for Ssm {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str| Setting {
            name: name.into(),
            description: description.into(),
            required: false,
            secret: false,
        };
        PluginInfo {
            name: "aws-ssm-parameter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stores the new key in SSM Parameter Store SecureString parameters, \
                          keeping their KMS key and tier; requests signed by keyrot (--aws-sign)."
                .into(),
            settings: vec![
                setting(PARAMETER, "One SecureString parameter holding the key as JSON"),
                setting(ID_PARAMETER, "Or two: the parameter for the key id"),
                setting(
                    SECRET_PARAMETER,
                    "... and the SecureString parameter for the secret access key",
                ),
                setting(REGION, "The parameters' region (default: from an ARN name)"),
                setting(
                    ENDPOINT_URL,
                    "SSM's URL, for a VPC endpoint or a test (default: the region's)",
                ),
                setting(
                    ID_FIELD,
                    "With parameter: JSON field for the key id (default AWS_ACCESS_KEY_ID)",
                ),
                setting(
                    SECRET_FIELD,
                    "With parameter: JSON field for the secret (default AWS_SECRET_ACCESS_KEY)",
                ),
            ],
            needs: Needs {
                // The region's endpoint, SERVICE.REGION.amazonaws.com, is
                // known only once the settings are read: any name below
                // amazonaws.com, unless endpoint-url names the host.
                hosts: vec![HostNeed {
                    host: "*.amazonaws.com".into(),
                    setting: Some(ENDPOINT_URL.into()),
                    purpose: "Reads and writes the parameters: ssm.REGION.amazonaws.com, or \
                              endpoint-url's host; keyrot signs the requests (--aws-sign)"
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
        let (held, kind) = settings.held()?;
        if kind != "SecureString" {
            return Err(format!(
                "the parameter for the secret is a {kind}: the secret would be stored \
                 unencrypted; make it a SecureString"
            ));
        }
        check_holder(held.as_deref(), &rotation)?;
        log(
            Level::Info,
            "preflight",
            &format!(
                "parameters at {} hold {}",
                settings.service.endpoint,
                held.as_deref().filter(|h| is_key_id(h)).unwrap_or("no key yet")
            ),
        );
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = Settings::read()?;
        let (held, _) = settings.held()?;
        if held.as_deref() != Some(key.access_key_id.as_str()) {
            check_holder(held.as_deref(), &rotation)?;
        }
        let written = match &settings.layout {
            Layout::Json {
                name,
                id_field,
                secret_field,
            } => {
                let mut fields = json_object(name, &settings.get(name)?.value)?;
                fields.insert(id_field.clone(), json!(key.access_key_id));
                fields.insert(secret_field.clone(), json!(key.secret_access_key));
                let version = settings.put(name, &Value::Object(fields).to_string())?;
                format!("{name} (version {version})")
            }
            Layout::Two { id, secret } => {
                let secret_version = settings.put(secret, &key.secret_access_key)?;
                let id_version = settings.put(id, &key.access_key_id)?;
                format!("{secret} (version {secret_version}) and {id} (version {id_version})")
            }
        };
        let (now, _) = settings.held()?;
        if now.as_deref() != Some(key.access_key_id.as_str()) {
            return Err(format!(
                "wrote {written}, but it reads back {}, not the new key {}: another writer \
                 raced keyrot",
                now.as_deref().unwrap_or("no key"),
                key.access_key_id
            ));
        }
        log(
            Level::Info,
            "handle",
            &format!("stored key {} in {written}", key.access_key_id),
        );
        Ok(())
    }
}

fn check_holder(held: Option<&str>, rotation: &Rotation) -> Result<(), String> {
    aws_json::check_holder(
        held,
        rotation.current_key_id.as_deref(),
        &rotation.abandoned_key_ids,
        &rotation.user_name,
        "the parameters",
    )
}

export!(Ssm);
