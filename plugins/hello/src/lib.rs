//! The smallest useful keyrot handler: it checks its settings, logs the new
//! key's id, and succeeds. Copy it to start your own.

wit_bindgen::generate!({
    // The only thing a handler needs from keyrot: the `wit/` folder.
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    // Also generate the WASI interfaces the world imports (config, logging).
    generate_all,
});

use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, Needs, PluginInfo, Rotation, Setting};
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

struct Hello;

impl Guest for Hello {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hello".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Logs the new key's id; stores it nowhere (a demo).".into(),
            settings: vec![Setting {
                name: "greeting".into(),
                description: "Word to log before the key id, e.g. hello".into(),
                required: false,
                secret: false,
            }],
            // No files, no network: nothing to ask the operator for.
            needs: Needs {
                hosts: vec![],
                directories: vec![],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let current = rotation.current_key_id.as_deref().unwrap_or("none");
        log(
            Level::Info,
            "preflight",
            &format!("ready to replace key {current} of {}", rotation.user_name),
        );
        Ok(())
    }

    fn handle(_rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let greeting = config::get("greeting")
            .map_err(|e| format!("cannot read settings: {e:?}"))?
            .unwrap_or_else(|| "hello".into());
        log(
            Level::Info,
            "handle",
            &format!(
                "{greeting}, new key {} (created {})",
                key.access_key_id, key.create_date
            ),
        );
        Ok(())
    }
}

export!(Hello);
