//! The handler's settings, read through `wasi:config` and checked together
//! before anything is sent: names as Kubernetes accepts them, two distinct
//! data keys, an `http(s)` API server URL.

pub const API_URL: &str = "api-url";
pub const NAMESPACE: &str = "namespace";
pub const SECRET_NAME: &str = "secret-name";
pub const KEY_ID_KEY: &str = "key-id-data-key";
pub const SECRET_KEY_KEY: &str = "secret-key-data-key";
pub const RESTART_DEPLOYMENTS: &str = "restart-deployments";

/// The checked settings.
pub struct Settings {
    /// Without a trailing slash.
    pub api_url: String,
    pub namespace: String,
    pub secret_name: String,
    pub key_id_key: String,
    pub secret_key_key: String,
    pub restart_deployments: Vec<String>,
}

impl Settings {
    /// Reads each setting with `get` and checks them.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Settings, String> {
        let required = |name: &str| -> Result<String, String> {
            get(name)?
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
                .ok_or_else(|| format!("setting '{name}' is missing"))
        };
        let api_url = required(API_URL)?.trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "setting '{API_URL}' must be an http(s) URL, e.g. https://k8s.example.com:6443"
            ));
        }
        let namespace = required(NAMESPACE)?;
        check_name(NAMESPACE, &namespace, 63)?;
        let secret_name = required(SECRET_NAME)?;
        check_name(SECRET_NAME, &secret_name, 253)?;
        let key = |name: &str, default: &str| -> Result<String, String> {
            let value = get(name)?.unwrap_or_else(|| default.to_string());
            let ok = !value.is_empty()
                && value.len() <= 253
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if ok {
                Ok(value)
            } else {
                Err(format!(
                    "setting '{name}' must be a Secret data key: letters, digits, '-', '_' and \
                     '.' (got '{value}')"
                ))
            }
        };
        let key_id_key = key(KEY_ID_KEY, "AWS_ACCESS_KEY_ID")?;
        let secret_key_key = key(SECRET_KEY_KEY, "AWS_SECRET_ACCESS_KEY")?;
        if key_id_key == secret_key_key {
            return Err(format!(
                "settings '{KEY_ID_KEY}' and '{SECRET_KEY_KEY}' name the same data key \
                 '{key_id_key}'"
            ));
        }
        let mut restart_deployments = Vec::new();
        for name in get(RESTART_DEPLOYMENTS)?.unwrap_or_default().split(',') {
            let name = name.trim();
            if !name.is_empty() {
                check_name(RESTART_DEPLOYMENTS, name, 253)?;
                restart_deployments.push(name.to_string());
            }
        }
        Ok(Settings {
            api_url,
            namespace,
            secret_name,
            key_id_key,
            secret_key_key,
            restart_deployments,
        })
    }

    pub fn secret_path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/secrets/{}",
            self.namespace, self.secret_name
        )
    }

    pub fn deployment_path(&self, name: &str) -> String {
        format!(
            "/apis/apps/v1/namespaces/{}/deployments/{name}",
            self.namespace
        )
    }

    /// `namespace/name`, for messages.
    pub fn secret_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.secret_name)
    }
}

/// A DNS-1123 name (lowercase letters, digits, '-' and '.', alphanumeric at
/// both ends), which also keeps the URL path free of anything to escape.
fn check_name(setting: &str, value: &str, max: usize) -> Result<(), String> {
    let edges_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if edges_ok && chars_ok && value.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "setting '{setting}' must be a Kubernetes name: lowercase letters, digits, '-' and \
             '.', at most {max} characters (got '{value}')"
        ))
    }
}
