//! The `wasi:config/store` capability: operator settings, checked against
//! what the plugin's `describe()` says it reads.

use std::collections::BTreeMap;

use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::HostState;
use super::bindings::keyrot::handler::types::PluginInfo;

/// The settings an operator gave a plugin (`--config KEY=VALUE`).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// Settings from name/value pairs; a later value for a name wins.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
        }
    }

    /// Checks the settings against the plugin's declared ones: every
    /// required setting present, no setting the plugin does not read.
    pub fn check(&self, plugin: &str, info: &PluginInfo) -> Result<(), String> {
        let known = |name: &str| info.settings.iter().any(|s| s.name == name);
        let unknown: Vec<&str> = self
            .values
            .keys()
            .map(String::as_str)
            .filter(|name| !known(name))
            .collect();
        if !unknown.is_empty() {
            let accepted: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
            let accepted = if accepted.is_empty() {
                "it takes no settings".to_string()
            } else {
                format!("it reads: {}", accepted.join(", "))
            };
            return Err(format!(
                "plugin '{plugin}' does not read setting(s) {}; {accepted}",
                quoted(&unknown)
            ));
        }
        let missing: Vec<String> = info
            .settings
            .iter()
            .filter(|s| s.required && !self.values.contains_key(&s.name))
            .map(|s| format!("--config {}=VALUE ({})", s.name, s.description))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "plugin '{plugin}' needs required setting(s): {}",
                missing.join(", ")
            ));
        }
        Ok(())
    }

    /// Values of the settings the plugin marks secret, for redaction.
    pub fn secret_values(&self, info: &PluginInfo) -> Vec<String> {
        info.settings
            .iter()
            .filter(|s| s.secret)
            .filter_map(|s| self.values.get(&s.name).cloned())
            .collect()
    }

    /// The per-call `wasi:config` state.
    pub(super) fn variables(&self) -> WasiConfigVariables {
        WasiConfigVariables::from_iter(self.values.clone())
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Links `wasi:config/store`, answering from the store's variables.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, |state: &mut HostState| {
        WasiConfig::from(&state.config)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::bindings::keyrot::handler::types::Setting;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "github".into(),
            version: "1.0.0".into(),
            description: "d".into(),
            settings: vec![
                Setting {
                    name: "repo".into(),
                    description: "owner/name".into(),
                    required: true,
                    secret: false,
                },
                Setting {
                    name: "token".into(),
                    description: "a token".into(),
                    required: false,
                    secret: true,
                },
            ],
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn accepts_required_and_optional_settings() {
        assert!(
            settings(&[("repo", "o/r")])
                .check("github", &info())
                .is_ok()
        );
        assert!(
            settings(&[("repo", "o/r"), ("token", "t")])
                .check("github", &info())
                .is_ok()
        );
    }

    #[test]
    fn names_a_missing_required_setting() {
        let err = settings(&[]).check("github", &info()).unwrap_err();
        assert!(err.contains("--config repo=VALUE (owner/name)"), "{err}");
    }

    #[test]
    fn rejects_a_setting_the_plugin_does_not_read() {
        let err = settings(&[("repo", "o/r"), ("rpo", "x")])
            .check("github", &info())
            .unwrap_err();
        assert!(
            err.contains("'rpo'") && err.contains("repo, token"),
            "{err}"
        );
    }

    #[test]
    fn secret_values_are_only_the_secret_settings() {
        let s = settings(&[("repo", "o/r"), ("token", "t0k")]);
        assert_eq!(s.secret_values(&info()), vec!["t0k".to_string()]);
    }
}
