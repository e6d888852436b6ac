//! keyrot-template: a keyrot new-key handler. It writes the new key to the
//! file the `path` setting names, as `AWS_ACCESS_KEY_ID=...` and
//! `AWS_SECRET_ACCESS_KEY=...` lines (a `.env` file a shell can source), and
//! refuses to overwrite a file that holds a key it was not told about.
//! Replace `store` and `held_key_id` with your own destination.

wit_bindgen::generate!({ path: "wit", world: "keyrot:handler/new-key-handler", generate_all });

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, DirectoryNeed, Needs, PluginInfo, Rotation, Setting};
use wasi::logging::logging::{Level, log};

struct Handler;

impl Guest for Handler {
    /// What keyrot shows and checks before anything runs: no I/O here.
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "keyrot-template".into(),
            version: "0.1.0".into(),
            description: "Writes the new key to a file (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY lines)".into(),
            settings: vec![Setting {
                name: "path".into(),
                description: "The file to write, in a directory granted with --allow-dir, e.g. /data/aws.env".into(),
                required: true,
                secret: false,
            }],
            needs: Needs {
                hosts: vec![],
                directories: vec![DirectoryNeed {
                    path: String::new(),
                    setting: Some("path".into()),
                    writable: true,
                    purpose: "holds the file the key is written to".into(),
                }],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    /// Before any key exists: the directory is there and the file holds a
    /// key keyrot expects (or nothing). Changes nothing.
    fn preflight(rotation: Rotation) -> Result<(), String> {
        let path = path()?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "directory {} not found: grant it with --allow-dir HOST_DIR:{}",
                dir.display(),
                dir.display()
            ));
        }
        check_held(&path, &rotation)?;
        log(Level::Info, "preflight", &format!("{} is ready for the new key", path.display()));
        Ok(())
    }

    /// Stores the new key, then returns `Ok`: keyrot retires the old key
    /// only after that. An `Err` makes keyrot delete the new key.
    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let path = path()?;
        // The file may have changed since preflight.
        check_held(&path, &rotation)?;
        let content = format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            key.access_key_id, key.secret_access_key
        );
        store(&path, &content)?;
        // The key id is not secret; the secret access key is never logged.
        log(Level::Info, "handle", &format!("wrote key {} to {}", key.access_key_id, path.display()));
        Ok(())
    }
}

/// The `path` setting.
fn path() -> Result<PathBuf, String> {
    let path = wasi::config::store::get("path")
        .map_err(|e| format!("cannot read setting 'path': {e:?}"))?
        .ok_or("setting 'path' is missing: pass --config path=/data/aws.env")?;
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(format!("setting 'path' must be an absolute file path, e.g. /data/aws.env, not '{path}'"));
    }
    Ok(PathBuf::from(path))
}

/// Refuses a file that holds a key other than the current one or one an
/// interrupted keyrot run left there.
fn check_held(path: &Path, rotation: &Rotation) -> Result<(), String> {
    let Some(held) = held_key_id(path)? else {
        return Ok(());
    };
    let expected = rotation.current_key_id.iter().chain(&rotation.abandoned_key_ids);
    if expected.clone().any(|id| *id == held) {
        return Ok(());
    }
    let expected: Vec<&str> = expected.map(String::as_str).collect();
    Err(format!(
        "{} holds key {held}, not {}: refusing to overwrite a key keyrot did not rotate \
         (point 'path' at another file, or remove this one)",
        path.display(),
        if expected.is_empty() { "nothing".to_string() } else { expected.join(" or ") }
    ))
}

/// The key id the file holds, if the file exists.
fn held_key_id(path: &Path) -> Result<Option<String>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix("AWS_ACCESS_KEY_ID="))
        .map(|id| id.trim().to_string()))
}

/// Replaces the file atomically: a temporary file beside it, synced, then
/// renamed over it. Readers see the old file or the new one, never half.
fn store(path: &Path, content: &str) -> Result<(), String> {
    let temp = PathBuf::from(format!("{}.keyrot-tmp", path.display()));
    let _ = fs::remove_file(&temp); // left by an interrupted run
    let written = fs::File::create_new(&temp)
        .and_then(|mut file| file.write_all(content.as_bytes()).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("cannot write {}: {e}", path.display())
    })
}

export!(Handler);
