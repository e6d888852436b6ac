//! keyrot handler that writes the new key into one profile of an AWS shared
//! credentials file, in a directory the operator grants
//! (`--allow-dir ~/.aws:/aws`).
//!
//! The work is split so most of it is tested natively: [`ini`] parses and
//! edits the file's text, [`guard`] decides whether a profile may be
//! overwritten, [`settings`] checks the settings and [`file`] does the
//! (atomic) I/O with `std::fs`. This module only wires them to the WIT
//! exports, settings and log.

pub mod file;
pub mod guard;
pub mod ini;
pub mod settings;

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    // Also generate the WASI interfaces the world imports (config, logging).
    generate_all,
});

use exports::keyrot::handler::handler::Guest;
use guard::Verdict;
use ini::CredentialsFile;
use keyrot::handler::types::{AccessKey, DirectoryNeed, Needs, PluginInfo, Rotation, Setting};
use settings::Settings;
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

struct CredentialsFileHandler;

impl Guest for CredentialsFileHandler {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "aws-credentials-file".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Writes the new key into one profile of an AWS shared credentials file."
                .into(),
            settings: settings::DECLARED
                .iter()
                .map(|(name, description, required)| Setting {
                    name: (*name).into(),
                    description: (*description).into(),
                    required: *required,
                    secret: false,
                })
                .collect(),
            needs: Needs {
                hosts: vec![],
                // The directory of the file `path` names: the file is
                // rewritten in place (or created) with a backup or temporary
                // file and a probe file beside it.
                directories: vec![DirectoryNeed {
                    path: String::new(),
                    setting: Some(settings::PATH.into()),
                    writable: true,
                    purpose: "Rewrites the credentials file in place, with a backup (or a \
                              temporary file, for a new file) beside it"
                        .into(),
                }],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let settings = load_settings()?;
        let path = settings.path.display();
        file::probe_dir(&settings.path)?;
        file::probe_writable(&settings.path)?;
        let Some(text) = read(&settings)? else {
            log_info(
                "preflight",
                &format!(
                    "{path} does not exist yet: it will be created with profile '{}'",
                    settings.profile
                ),
            );
            return Ok(());
        };
        let parsed = parse(&settings, &text)?;
        let verdict = allowed(&settings, &parsed, &rotation, "preflight")?;
        let profile = &settings.profile;
        let state = if !parsed.has_profile(profile) {
            format!("profile '{profile}' is not in {path} yet: it will be added")
        } else {
            match verdict {
                Verdict::Current => format!(
                    "profile '{profile}' in {path} holds the key being rotated; it will be replaced"
                ),
                Verdict::Abandoned(left) => format!(
                    "profile '{profile}' in {path} holds key {left}, which an interrupted \
                     rotation left there and keyrot has deleted since; it will be replaced"
                ),
                Verdict::Empty => {
                    format!("profile '{profile}' in {path} holds no key yet; one will be added")
                }
                Verdict::Forced(_) => format!("profile '{profile}' in {path} will be replaced"),
            }
        };
        log_info("preflight", &state);
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = load_settings()?;
        // Never name the secret: say which value is wrong, not what it is.
        for (name, value) in [
            (ini::ACCESS_KEY_ID, &key.access_key_id),
            (ini::SECRET_ACCESS_KEY, &key.secret_access_key),
        ] {
            if !ini::storable(value) {
                return Err(format!(
                    "the new {name} is empty or contains whitespace or a comment character; \
                     it cannot be written to a credentials file"
                ));
            }
        }

        // Checked again: the file may have changed since preflight.
        let existing = read(&settings)?;
        let parsed = parse(&settings, existing.as_deref().unwrap_or_default())?;
        allowed(&settings, &parsed, &rotation, "handle")?;
        let edit = parsed.set_key(
            &settings.profile,
            &key.access_key_id,
            &key.secret_access_key,
        );
        file::replace(&settings.path, existing.as_deref(), &edit.text)?;

        let (profile, path) = (&settings.profile, settings.path.display());
        for removed in &edit.removed {
            log_info(
                "handle",
                &format!(
                    "removed {removed} from profile '{profile}': it belonged to other credentials"
                ),
            );
        }
        let action = if existing.is_none() {
            "created"
        } else if edit.appended_profile {
            "added profile to"
        } else {
            "updated"
        };
        log_info(
            "handle",
            &format!(
                "{action} {path}: profile '{profile}' now holds key {}",
                key.access_key_id
            ),
        );
        Ok(())
    }
}

fn load_settings() -> Result<Settings, String> {
    Settings::load(|name| {
        config::get(name).map_err(|e| format!("cannot read setting '{name}': {e:?}"))
    })
}

/// The file's text (`None` if it does not exist), after checking it is a
/// regular file the rename can replace.
fn read(settings: &Settings) -> Result<Option<String>, String> {
    file::check_target(&settings.path)?;
    file::read(&settings.path)
}

fn parse<'a>(settings: &Settings, text: &'a str) -> Result<CredentialsFile<'a>, String> {
    CredentialsFile::parse_as(text, settings.kind).map_err(|e| {
        let what = match settings.kind {
            ini::FileKind::Credentials => "credentials",
            ini::FileKind::Config => "config",
        };
        format!(
            "{} is not a valid {what} file ({e}): fix it or point path elsewhere",
            settings.path.display()
        )
    })
}

/// Whether the profile may be overwritten; warns when `force` overrides.
fn allowed(
    settings: &Settings,
    parsed: &CredentialsFile,
    rotation: &Rotation,
    context: &str,
) -> Result<Verdict, String> {
    let held = parsed.access_key_ids(&settings.profile);
    let expected = guard::Expected {
        current: rotation.current_key_id.as_deref(),
        abandoned: &rotation.abandoned_key_ids,
    };
    let verdict = guard::check(&settings.profile, &held, expected, settings.force)?;
    if let Verdict::Forced(holds) = &verdict {
        log(
            Level::Warn,
            context,
            &format!(
                "profile '{}' holds {holds}, not the key being rotated; replacing it (force=true)",
                settings.profile
            ),
        );
    }
    Ok(verdict)
}

fn log_info(context: &str, message: &str) {
    log(Level::Info, context, message);
}

export!(CredentialsFileHandler);
