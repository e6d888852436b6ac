//! The `wasi:config/store` capability: operator settings, checked against
//! what the plugin's `describe()` says it reads. The smallest complete
//! `Capability`: the grant ([`Settings`]), its check, its per-call state
//! and its linking.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use zeroize::Zeroizing;

use self::bindings::wasi::config::store;
use super::capability::{CallSetup, Capability};
use super::witness::Witness;
use super::{HostState, PluginError, PluginInfo, Sandbox};
use crate::text::escape_control;

/// Bindings for `wasi:config` (`wit/deps/config`).
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/deps/config",
        world: "wasi:config/imports",
    });
}

/// Settings, through `wasi:config/store`.
pub(super) struct Config;

impl Capability for Config {
    /// The call's settings, plain and secret alike (none for `describe`).
    type State = ConfigState;

    const INSPECT: &'static [(&'static str, &'static str)] =
        &[("wasi:config/", "settings (--config, --secret)")];

    /// Links `wasi:config/store`, answering from the call's settings.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        store::add_to_linker::<HostState, HasSelf<ConfigState>>(linker, |state| &mut state.config)
    }

    /// The settings fit what the plugin says it reads.
    fn check_described(
        name: &str,
        info: &PluginInfo,
        sandbox: &Sandbox,
    ) -> Result<(), PluginError> {
        sandbox
            .settings
            .check(name, info)
            // The message quotes setting names and descriptions the plugin
            // chose: printed inert.
            .map_err(|e| PluginError::Settings(escape_control(&e).into_owned()))
    }

    /// The secret settings (`--secret`).
    fn secrets(sandbox: &Sandbox) -> Vec<&str> {
        sandbox.settings.secret_values().collect()
    }

    fn prepare(call: &CallSetup<'_>, _wasi: &mut WasiCtxBuilder) -> Result<Self::State, String> {
        Ok(ConfigState {
            variables: call.sandbox.settings.variables(),
            witness: call.sandbox.witness.clone(),
        })
    }
}

/// One call's settings, and who notes which ones the plugin reads.
pub(super) struct ConfigState {
    variables: BTreeMap<String, Zeroizing<String>>,
    witness: Option<Arc<Witness>>,
}

impl store::Host for ConfigState {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        if let Some(witness) = &self.witness {
            witness.read_setting(&key);
        }
        Ok(self.variables.get(&key).map(|v| v.to_string()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        if let Some(witness) = &self.witness {
            witness.read_all();
        }
        let all = self.variables.iter();
        Ok(all.map(|(k, v)| (k.clone(), v.to_string())).collect())
    }
}

/// The settings an operator gave a plugin: plain ones (`--config`) and
/// secret ones (`--secret`, redacted everywhere).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    secrets: BTreeMap<String, Zeroizing<String>>,
    /// Names whose value came from a job file, so errors name its tables.
    from_job: std::collections::BTreeSet<String>,
    /// A reporter's name: errors name its `--notify-*` flags.
    reporter: Option<String>,
}

impl Settings {
    /// Plain settings from name/value pairs; a later value for a name wins.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
            secrets: BTreeMap::new(),
            from_job: Default::default(),
            reporter: None,
        }
    }

    /// Marks these as the settings of reporter `name`: errors name the
    /// `--notify-config NAME:` and `--notify-secret NAME:` flags.
    pub fn for_reporter(mut self, name: &str) -> Self {
        self.reporter = Some(name.to_string());
        self
    }

    /// The flags that give a plain and a secret setting, as errors name
    /// them, with the reporter's `NAME:` prefix where there is one.
    fn flags(&self) -> (String, String) {
        match &self.reporter {
            Some(name) => (
                format!("--notify-config {name}:"),
                format!("--notify-secret {name}:"),
            ),
            None => ("--config ".into(), "--secret ".into()),
        }
    }

    /// Marks settings whose value came from a job file's `[config]` or
    /// `[secrets]`: errors about them name the table, not the flag.
    pub fn from_job_file(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.from_job.extend(names);
        self
    }

    /// Adds secret settings, already resolved from their sources.
    pub fn with_secrets(
        mut self,
        pairs: impl IntoIterator<Item = (String, Zeroizing<String>)>,
    ) -> Self {
        self.secrets.extend(pairs);
        self
    }

    /// Checks the settings against the plugin's declared ones: every
    /// required setting present, none the plugin does not read, and secret
    /// ones given as secrets.
    pub fn check(&self, plugin: &str, info: &PluginInfo) -> Result<(), String> {
        if let Some(name) = self.values.keys().find(|n| self.secrets.contains_key(*n)) {
            return Err(format!(
                "setting '{name}' is given both as a plain setting (--config, or [config] in a \
                 job file) and as a secret (--secret, or [secrets]); keep one"
            ));
        }
        let known = |name: &str| info.settings.iter().any(|s| s.name == name);
        let unknown: Vec<&str> = self.names().filter(|name| !known(name)).collect();
        if !unknown.is_empty() {
            let accepted: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
            let suggestions: Vec<(&str, &str)> = unknown
                .iter()
                .filter_map(|name| Some((*name, closest(name, &accepted)?)))
                .collect();
            let accepted = if accepted.is_empty() {
                "it takes no settings".to_string()
            } else {
                format!("it reads: {}", accepted.join(", "))
            };
            let hint = match suggestions.as_slice() {
                [] => String::new(),
                [(_, near)] if unknown.len() == 1 => format!(" (did you mean '{near}'?)"),
                many => {
                    let pairs: Vec<String> = many
                        .iter()
                        .map(|(name, near)| format!("'{near}' for '{name}'"))
                        .collect();
                    format!(" (did you mean {}?)", pairs.join(", "))
                }
            };
            return Err(format!(
                "plugin '{plugin}' does not read setting(s) {}{hint}; {accepted}",
                quoted(&unknown)
            ));
        }
        if let Some(setting) = info
            .settings
            .iter()
            .find(|s| s.secret && self.values.contains_key(&s.name))
        {
            if self.from_job.contains(&setting.name) {
                return Err(format!(
                    "setting '{0}' of plugin '{plugin}' is secret: move it from [config] to \
                     [secrets] in the job file, as {0} = \"env:VARIABLE\" or {0} = \"file:PATH\"",
                    setting.name
                ));
            }
            let (plain, secret) = self.flags();
            return Err(format!(
                "setting '{0}' of plugin '{plugin}' is secret: pass it with {secret}{0}=env:VARIABLE \
                 or {secret}{0}=file:PATH, not {1}",
                setting.name,
                plain.trim_end()
            ));
        }
        let missing: Vec<String> = info
            .settings
            .iter()
            .filter(|s| s.required && !self.contains(&s.name))
            .map(|s| {
                let (plain, secret) = self.flags();
                let flag = if s.secret { secret } else { plain };
                let value = if s.secret { "env:VARIABLE" } else { "VALUE" };
                format!("{flag}{}={value} ({})", s.name, s.description)
            })
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "plugin '{plugin}' needs required setting(s): {}",
                missing.join(", ")
            ));
        }
        Ok(())
    }

    /// A plain setting's value (`--config`), for needs that name a
    /// setting: a URL or a path is never given as a secret.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every setting's name, plain then secret.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values
            .keys()
            .chain(self.secrets.keys())
            .map(String::as_str)
    }

    fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.secrets.contains_key(name)
    }

    /// Every secret value, for redaction.
    fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.secrets.values().map(|s| s.as_str())
    }

    /// The secret settings (`--secret`): name and value.
    pub(crate) fn secret_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// These settings without `name` (plain or secret).
    pub fn without(&self, name: &str) -> Settings {
        let mut settings = self.clone();
        settings.values.remove(name);
        settings.secrets.remove(name);
        settings
    }

    /// These settings with plain setting `name` set to `value`.
    pub fn with_value(&self, name: &str, value: &str) -> Settings {
        let mut settings = self.without(name);
        settings.values.insert(name.to_string(), value.to_string());
        settings
    }

    /// The per-call `wasi:config` state: plain and secret settings alike.
    fn variables(&self) -> BTreeMap<String, Zeroizing<String>> {
        let values = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())));
        values
            .chain(self.secrets.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }
}

/// The accepted name closest to a mistyped one, if it is close enough to
/// be the likely intent (a few edits, fewer than half its letters).
fn closest<'a>(typo: &str, accepted: &[&'a str]) -> Option<&'a str> {
    let typo = typo.to_ascii_lowercase();
    accepted
        .iter()
        .map(|name| (edit_distance(&typo, &name.to_ascii_lowercase()), *name))
        .filter(|(d, name)| *d <= 3 && *d * 2 <= name.chars().count().max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Setting;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "github".into(),
            version: "1.0.0".into(),
            description: "d".into(),
            needs: None,
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
            err.contains("'rpo' (did you mean 'repo'?)") && err.contains("repo, token"),
            "{err}"
        );
        let far = settings(&[("repo", "o/r"), ("colour", "x")])
            .check("github", &info())
            .unwrap_err();
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(closest("tokn", &["repo", "token"]), Some("token"));
        assert_eq!(closest("Repo", &["repo", "token"]), Some("repo"));
        assert_eq!(closest("environment", &["env", "repo"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_secret_setting_must_come_as_a_secret() {
        let err = settings(&[("repo", "o/r"), ("token", "t")])
            .check("github", &info())
            .unwrap_err();
        assert!(err.contains("--secret token=env:VARIABLE"), "{err}");
        let ok = settings(&[("repo", "o/r")])
            .with_secrets([("token".to_string(), Zeroizing::new("t0k".to_string()))]);
        assert!(ok.check("github", &info()).is_ok());
        assert_eq!(ok.secret_values().collect::<Vec<_>>(), ["t0k"]);
    }

    #[test]
    fn a_secret_in_a_job_files_config_is_named_by_its_table() {
        let err = settings(&[("repo", "o/r"), ("token", "t")])
            .from_job_file(["token".to_string()])
            .check("github", &info())
            .unwrap_err();
        assert!(err.contains("move it from [config] to [secrets]"), "{err}");
        assert!(!err.contains("--config"), "{err}");
    }

    #[test]
    fn a_reporters_settings_are_named_by_its_flags() {
        let err = settings(&[])
            .for_reporter("slack")
            .check("slack", &info())
            .unwrap_err();
        assert!(err.contains("--notify-config slack:repo=VALUE"), "{err}");
        let err = settings(&[("repo", "o/r"), ("token", "t")])
            .for_reporter("slack")
            .check("slack", &info())
            .unwrap_err();
        assert!(
            err.contains("--notify-secret slack:token=env:VARIABLE"),
            "{err}"
        );
    }

    #[test]
    fn a_name_given_twice_is_refused() {
        let both = settings(&[("repo", "o/r")])
            .with_secrets([("repo".to_string(), Zeroizing::new("x".to_string()))]);
        assert!(both.check("github", &info()).unwrap_err().contains("both"));
    }
}
