//! keyrot handler that stores the new access key as two GitHub Actions
//! secrets (the key id and the secret access key) of a repository, a
//! repository environment or an organization.
//!
//! `preflight` checks the settings and reads the target's public key, which
//! proves the API is reachable and the token has access. `handle` seals both
//! values to that key (libsodium sealed boxes, as GitHub requires) and writes
//! them. GitHub secrets are write-only, so the plugin cannot check which key
//! the destination currently holds.
//!
//! Modules: `settings` (parse and check), `api` (GitHub's shapes and error
//! wording), `seal` (encryption) are pure and unit-tested natively; `http`
//! and this file do the I/O.

wit_bindgen::generate!({
    path: "../../wit",
    world: "keyrot:handler/new-key-handler",
    generate_all,
});

mod api;
mod http;
mod seal;
mod settings;

use exports::keyrot::handler::handler::Guest;
use keyrot::handler::types::{AccessKey, PluginInfo, Rotation, Setting};
use rand_core::{CryptoRng, RngCore};
use waki::Method;
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

use api::{Call, PublicKey};
use settings::Settings;

struct GitHub;

impl Guest for GitHub {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, secret: bool| Setting {
            name: name.into(),
            description: description.into(),
            // Nothing is required on its own: exactly one of repo and org is,
            // which preflight checks.
            required: false,
            secret,
        };
        PluginInfo {
            name: "github".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stores the new key as GitHub Actions secrets of a repository, \
                          environment or organization."
                .into(),
            settings: vec![
                setting(
                    settings::REPO,
                    "Repository OWNER/NAME whose secrets to set, e.g. octo/app (set repo or org)",
                    false,
                ),
                setting(
                    settings::ORG,
                    "Organization whose secrets to set, e.g. octo-org (set repo or org)",
                    false,
                ),
                setting(
                    settings::ENVIRONMENT,
                    "Environment of the repository to set the secrets in, e.g. production",
                    false,
                ),
                setting(
                    settings::TOKEN,
                    "GitHub token allowed to write the secrets; omit when the host injects \
                     the Authorization header (--inject-header)",
                    true,
                ),
                setting(
                    settings::API_URL,
                    "GitHub API base URL (default https://api.github.com), e.g. \
                     https://ghe.example.com/api/v3",
                    false,
                ),
                setting(
                    settings::KEY_ID_SECRET_NAME,
                    "Secret that receives the access key id (default AWS_ACCESS_KEY_ID)",
                    false,
                ),
                setting(
                    settings::SECRET_KEY_SECRET_NAME,
                    "Secret that receives the secret access key (default AWS_SECRET_ACCESS_KEY)",
                    false,
                ),
                setting(
                    settings::VISIBILITY,
                    "Which repositories see organization secrets: all, private or selected \
                     (default private; org only)",
                    false,
                ),
            ],
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let settings = load_settings()?;
        let key = fetch_public_key(&settings)?;
        log(
            Level::Info,
            "preflight",
            &format!(
                "can read the secrets public key of {} (key id {}); will set {} and {} for user {}",
                settings.target,
                key.key_id,
                settings.key_id_secret,
                settings.secret_key_secret,
                rotation.user_name
            ),
        );
        if rotation.current_key_id.is_some() {
            log(
                Level::Debug,
                "preflight",
                "GitHub secrets are write-only: cannot check that they hold the current key",
            );
        }
        Ok(())
    }

    fn handle(rotation: Rotation, key: AccessKey) -> Result<(), String> {
        let settings = load_settings()?;
        let public_key = fetch_public_key(&settings)?;
        // Seal both before writing either, so an encryption failure changes nothing.
        let sealed_key_id =
            seal::seal(&public_key.key, key.access_key_id.as_bytes(), &mut WasiRng)?;
        let sealed_secret = seal::seal(
            &public_key.key,
            key.secret_access_key.as_bytes(),
            &mut WasiRng,
        )?;

        // The key id goes first: if the secret key then fails, the key id
        // secret can be put back to the previous key's id (known from
        // `rotation`), whereas a previous secret key could never be restored.
        put_secret(
            &settings,
            &public_key,
            &settings.key_id_secret,
            &sealed_key_id,
        )?;
        log_set(&settings, &settings.key_id_secret);
        if let Err(error) = put_secret(
            &settings,
            &public_key,
            &settings.secret_key_secret,
            &sealed_secret,
        ) {
            return Err(format!(
                "{error}; {}",
                restore_key_id(&settings, &public_key, rotation.current_key_id.as_deref())
            ));
        }
        log_set(&settings, &settings.secret_key_secret);
        Ok(())
    }
}

export!(GitHub);

/// Reads every setting from `wasi:config` and checks them together.
fn load_settings() -> Result<Settings, String> {
    Settings::load(|name| {
        config::get(name).map_err(|e| format!("cannot read setting '{name}': {e:?}"))
    })
}

/// `GET .../secrets/public-key`, with failures explained.
fn fetch_public_key(settings: &Settings) -> Result<PublicKey, String> {
    let response = call(
        settings,
        Call::ReadPublicKey,
        Method::Get,
        &settings.target.public_key_path(),
        None,
    )?;
    api::parse_public_key(&response.body).map_err(|e| {
        format!(
            "{e} while {}",
            Call::ReadPublicKey.describe(&settings.target)
        )
    })
}

/// `PUT .../secrets/{name}` with an already sealed value.
fn put_secret(
    settings: &Settings,
    public_key: &PublicKey,
    name: &str,
    sealed: &[u8],
) -> Result<(), String> {
    let body = api::put_body(sealed, &public_key.key_id, settings.target.visibility());
    call(
        settings,
        Call::SetSecret(name),
        Method::Put,
        &settings.target.secret_path(name),
        Some(body),
    )
    .map(drop)
}

/// One API call: a transport failure or a non-2xx status becomes a message
/// naming the call and the target.
fn call(
    settings: &Settings,
    what: Call<'_>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<http::Response, String> {
    let response = http::send(settings, method, path, body).map_err(|cause| {
        format!(
            "cannot reach GitHub at {} while {}: {cause}",
            settings.api_url,
            what.describe(&settings.target)
        )
    })?;
    if response.is_success() {
        Ok(response)
    } else {
        Err(api::status_error(
            what,
            &settings.target,
            response.status,
            &response.body,
            settings.token.is_some(),
        ))
    }
}

/// After the secret key failed to be written: put the key id secret back to
/// the key that stays active, so the pair in GitHub matches again. Returns
/// what became of the key id secret, for the error message.
fn restore_key_id(settings: &Settings, public_key: &PublicKey, previous: Option<&str>) -> String {
    let name = &settings.key_id_secret;
    let Some(previous) = previous else {
        return format!("{name} already holds the new key id (there was no previous key)");
    };
    let restored = seal::seal(&public_key.key, previous.as_bytes(), &mut WasiRng)
        .and_then(|sealed| put_secret(settings, public_key, name, &sealed));
    match restored {
        Ok(()) => {
            log(
                Level::Warn,
                "handle",
                &format!(
                    "restored {name} in {} to the previous key id",
                    settings.target
                ),
            );
            format!("{name} was restored to the previous key id")
        }
        Err(e) => format!(
            "{name} still holds the new key id and could not be restored to the previous \
             one ({previous}): {e}"
        ),
    }
}

fn log_set(settings: &Settings, name: &str) {
    log(
        Level::Info,
        "handle",
        &format!("set secret {name} in {}", settings.target),
    );
}

/// Randomness for sealing, from the host's `wasi:random` (a CSPRNG by the
/// WASI spec). waki's bindings already import that interface, so no getrandom
/// or second set of WASI bindings is needed.
struct WasiRng;

impl RngCore for WasiRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let bytes = waki::bindings::wasi::random::random::get_random_bytes(dest.len() as u64);
        dest.copy_from_slice(&bytes);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for WasiRng {}
