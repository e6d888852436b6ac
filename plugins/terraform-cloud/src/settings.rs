//! The handler's settings, read through `wasi:config` and checked together
//! before anything is sent: exactly one target, ids as HCP Terraform spells
//! them, two distinct variable names.

use std::fmt;

pub const WORKSPACE_ID: &str = "workspace-id";
pub const VARSET_ID: &str = "varset-id";
pub const BASE_URL: &str = "base-url";
pub const KEY_ID_VARIABLE: &str = "key-id-variable";
pub const SECRET_KEY_VARIABLE: &str = "secret-key-variable";

/// Whose variables.
pub enum Target {
    Workspace(String),
    VariableSet(String),
}

impl Target {
    /// The variables' collection.
    pub fn vars_path(&self) -> String {
        match self {
            Target::Workspace(id) => format!("/api/v2/workspaces/{id}/vars"),
            Target::VariableSet(id) => format!("/api/v2/varsets/{id}/relationships/vars"),
        }
    }

    /// One variable.
    pub fn var_path(&self, var_id: &str) -> String {
        format!("{}/{var_id}", self.vars_path())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Workspace(id) => write!(f, "workspace {id}"),
            Target::VariableSet(id) => write!(f, "variable set {id}"),
        }
    }
}

/// The checked settings.
pub struct Settings {
    /// Without a trailing slash.
    pub base_url: String,
    pub target: Target,
    pub key_id_variable: String,
    pub secret_key_variable: String,
}

impl Settings {
    /// Reads each setting with `get` and checks them.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Settings, String> {
        let optional = |name: &str| -> Result<Option<String>, String> {
            Ok(get(name)?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()))
        };
        let base_url = optional(BASE_URL)?
            .unwrap_or_else(|| "https://app.terraform.io".into())
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(format!(
                "setting '{BASE_URL}' must be an http(s) URL, e.g. https://tfe.example.com"
            ));
        }
        let target = match (optional(WORKSPACE_ID)?, optional(VARSET_ID)?) {
            (Some(id), None) => Target::Workspace(checked_id(WORKSPACE_ID, "ws-", id)?),
            (None, Some(id)) => Target::VariableSet(checked_id(VARSET_ID, "varset-", id)?),
            _ => {
                return Err(format!(
                    "set exactly one of '{WORKSPACE_ID}' (e.g. ws-CZcmD7eagjhyX0vN) and \
                     '{VARSET_ID}' (e.g. varset-47qC3LmA47piVan7)"
                ));
            }
        };
        let variable = |name: &str, default: &str| -> Result<String, String> {
            let value = optional(name)?.unwrap_or_else(|| default.to_string());
            let ok = value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(value)
            } else {
                Err(format!(
                    "setting '{name}' must be an environment variable name: letters, digits \
                     and '_', not starting with a digit (got '{value}')"
                ))
            }
        };
        let key_id_variable = variable(KEY_ID_VARIABLE, "AWS_ACCESS_KEY_ID")?;
        let secret_key_variable = variable(SECRET_KEY_VARIABLE, "AWS_SECRET_ACCESS_KEY")?;
        if key_id_variable == secret_key_variable {
            return Err(format!(
                "settings '{KEY_ID_VARIABLE}' and '{SECRET_KEY_VARIABLE}' name the same \
                 variable '{key_id_variable}'"
            ));
        }
        Ok(Settings {
            base_url,
            target,
            key_id_variable,
            secret_key_variable,
        })
    }
}

/// `prefix` then letters and digits, which also keeps the URL path clean.
fn checked_id(setting: &str, prefix: &str, id: String) -> Result<String, String> {
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(id)
    } else {
        Err(format!(
            "setting '{setting}' must be an id starting with {prefix}, e.g. {prefix}CZcmD7eagjhyX0vN \
             (got '{id}')"
        ))
    }
}
