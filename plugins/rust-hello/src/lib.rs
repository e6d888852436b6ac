wit_bindgen::generate!({ path: "wit", world: "keyrot:handler/new-key-handler", generate_all });

use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, Needs, PluginInfo, Rotation, Setting};
use wasi::logging::logging::{Level, log};

struct Handler;

impl Guest for Handler {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "my-handler".into(),
            version: "0.1.0".into(),
            description: "Logs where it would store the key (the guide's example)".into(),
            settings: vec![Setting {
                name: "target".into(),
                description: "Where to store the key".into(),
                required: true,
                secret: false,
            }],
            needs: Needs {
                hosts: vec![],
                directories: vec![],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(_rotation: Rotation) -> Result<(), String> {
        Ok(())
    }

    fn handle(_rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let target = wasi::config::store::get("target")
            .map_err(|e| format!("cannot read settings: {e:?}"))?
            .ok_or("setting 'target' is missing")?;
        log(Level::Info, "handle", &format!("storing {} in {target}", key.access_key_id));
        Ok(())
    }
}

export!(Handler);
