//! keyrot handler that stores the new access key as two GitHub Actions
//! secrets (the key id and the secret access key) of a repository, a
//! repository environment or an organization.
//!
//! `preflight` checks the settings and reads the target's public key, which
//! proves the API is reachable and the token has read access; then it checks
//! write access where GitHub can tell (a classic token's scopes, the user's
//! repository permissions, the organization role) and reads each
//! organization secret's visibility. `handle` seals both values to that key
//! (libsodium sealed boxes, as GitHub requires) and writes them, sending
//! each organization secret's visibility (and selected repositories) back
//! unchanged unless the operator set one. GitHub secrets are write-only, so
//! the plugin cannot check which key the destination currently holds.
//!
//! Every call follows redirects on the API's own origin (renamed
//! repositories) and waits out a rate limit when GitHub says how long and
//! that fits in [`MAX_RATE_LIMIT_WAIT`].
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
use keyrot::handler::types::{AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting};
use rand_core::{CryptoRng, RngCore};
use waki::Method;
use wasi::config::store as config;
use wasi::logging::logging::{Level, log};

use std::time::Duration;

use api::{Call, OrgScope, PublicKey};
use settings::Settings;

/// The longest one call waits in total for GitHub's rate limits to lift
/// (keyrot's default time limit per call is 60 s; a longer wait fails with
/// the time GitHub gave, so the operator can run keyrot again then).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Retries after rate limits per request.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// Redirects followed per request.
const MAX_REDIRECTS: u32 = 5;

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
            needs: Needs {
                // Redirects are followed on the API's own origin only.
                hosts: vec![HostNeed {
                    host: "api.github.com".into(),
                    setting: Some(settings::API_URL.into()),
                    purpose: "GitHub's REST API: reads the secrets' public key and the token's \
                              access, writes the two Actions secrets"
                        .into(),
                }],
                directories: vec![],
                memory_mib: None,
                timeout_seconds: None,
            },
        }
    }

    fn preflight(rotation: Rotation) -> Result<(), String> {
        let settings = load_settings()?;
        let (key, scopes) = fetch_public_key(&settings)?;
        api::check_scopes(scopes.as_deref(), &settings.target)
            .map_err(|e| format!("{e} (found while reading the secrets public key)"))?;
        check_write_access(&settings)?;
        // Read now so a failure stops the run before a key exists; handle
        // reads again, in case someone changed them meanwhile.
        org_scopes(&settings, "preflight")?;
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
        let (public_key, _) = fetch_public_key(&settings)?;
        let (key_id_scope, secret_key_scope) = org_scopes(&settings, "handle")?;
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
            key_id_scope.as_ref(),
            &sealed_key_id,
        )?;
        log_set(&settings, &settings.key_id_secret, key_id_scope.as_ref());
        if let Err(error) = put_secret(
            &settings,
            &public_key,
            &settings.secret_key_secret,
            secret_key_scope.as_ref(),
            &sealed_secret,
        ) {
            return Err(format!(
                "{error}; {}",
                restore_key_id(
                    &settings,
                    &public_key,
                    key_id_scope.as_ref(),
                    rotation.current_key_id.as_deref()
                )
            ));
        }
        log_set(
            &settings,
            &settings.secret_key_secret,
            secret_key_scope.as_ref(),
        );
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

/// `GET .../secrets/public-key`, with failures explained; also returns the
/// token's `X-OAuth-Scopes` (classic tokens only).
fn fetch_public_key(settings: &Settings) -> Result<(PublicKey, Option<String>), String> {
    let response = call(
        settings,
        Call::ReadPublicKey,
        Method::Get,
        &settings.target.public_key_path(),
        None,
    )?;
    let key = api::parse_public_key(&response.body).map_err(|e| {
        format!(
            "{e} while {}",
            Call::ReadPublicKey.describe(&settings.target)
        )
    })?;
    Ok((key, response.header("x-oauth-scopes").map(str::to_string)))
}

/// Checks write access where GitHub can tell: the token user's
/// `permissions` on the repository (`push` is what writing secrets needs),
/// or their role in the organization. What GitHub does not report (a
/// fine-grained token's own "Secrets" permission) shows only when writing.
fn check_write_access(settings: &Settings) -> Result<(), String> {
    let target = &settings.target;
    if let Some(path) = target.repo_path() {
        let response = call(settings, Call::ReadRepository, Method::Get, &path, None)?;
        match api::can_push(&response.body) {
            Some(true) => log(
                Level::Info,
                "preflight",
                &format!("the token's user has write access to {target}"),
            ),
            Some(false) => {
                return Err(format!(
                    "the token's user has read-only access to {target} (GitHub reports no push \
                     permission): writing Actions secrets needs write access; {}",
                    target.permissions_hint()
                ));
            }
            None => log(
                Level::Info,
                "preflight",
                &format!(
                    "GitHub does not report the token's permissions on {target} (an app \
                     token?): write access shows only when the secrets are written"
                ),
            ),
        }
    } else if let Some(org) = target.org() {
        let path = format!("/user/memberships/orgs/{org}");
        let response = send_call(settings, Call::ReadMembership, Method::Get, &path, None)?;
        let role = response
            .is_success()
            .then(|| api::membership_role(&response.body))
            .flatten();
        match role.as_deref() {
            Some("admin") => log(
                Level::Info,
                "preflight",
                &format!("the token's user is an owner of {target}"),
            ),
            Some(role) => log(
                Level::Warn,
                "preflight",
                &format!(
                    "the token's user is not an owner of {target} (membership: {role}): \
                     writing organization secrets needs an owner or a role that allows it; \
                     without it, writing fails and keyrot deletes the new key"
                ),
            ),
            None => log(
                Level::Info,
                "preflight",
                &format!(
                    "cannot read the token's membership of {target} ({}): write access \
                     shows only when the secrets are written",
                    response.status
                ),
            ),
        }
    }
    Ok(())
}

/// For organization secrets, what each of the two secrets is written with:
/// (key id secret, secret key secret). `None` for other targets.
fn org_scopes(
    settings: &Settings,
    context: &str,
) -> Result<(Option<OrgScope>, Option<OrgScope>), String> {
    if settings.target.org().is_none() {
        return Ok((None, None));
    }
    let scope_of = |name: &str| -> Result<Option<OrgScope>, String> {
        let existing = read_org_scope(settings, name)?;
        let new = existing.is_none();
        let (scope, warning) = api::decide_scope(settings.target.visibility(), existing);
        if let Some(warning) = warning {
            log(Level::Warn, context, &format!("{name}: {warning}"));
        }
        let what = if new { "new secret" } else { "secret" };
        log(
            Level::Info,
            context,
            &format!("{what} {name} in {} gets {scope}", settings.target),
        );
        Ok(Some(scope))
    };
    Ok((
        scope_of(&settings.key_id_secret)?,
        scope_of(&settings.secret_key_secret)?,
    ))
}

/// The visibility (and selected repositories) an organization secret has
/// now; `None` if it does not exist yet.
fn read_org_scope(settings: &Settings, name: &str) -> Result<Option<OrgScope>, String> {
    let target = &settings.target;
    let path = target.secret_path(name);
    let response = send_call(settings, Call::ReadSecret(name), Method::Get, &path, None)?;
    if response.status == 404 {
        return Ok(None);
    }
    let response = check_status(settings, Call::ReadSecret(name), response)?;
    let what = |e: String| format!("{e} while {}", Call::ReadSecret(name).describe(target));
    let visibility = api::parse_org_secret(&response.body).map_err(what)?;
    let mut repository_ids = Vec::new();
    if visibility == settings::Visibility::Selected {
        // Every page: GitHub returns at most 100 repositories a page.
        for page in 1.. {
            let path = target.selected_repositories_path(name, page);
            let response = call(
                settings,
                Call::ListRepositories(name),
                Method::Get,
                &path,
                None,
            )?;
            let (total, ids) = api::parse_repositories_page(&response.body).map_err(|e| {
                format!(
                    "{e} while {}",
                    Call::ListRepositories(name).describe(target)
                )
            })?;
            let empty = ids.is_empty();
            repository_ids.extend(ids);
            if empty || repository_ids.len() as u64 >= total {
                break;
            }
        }
    }
    Ok(Some(OrgScope {
        visibility,
        repository_ids,
    }))
}

/// `PUT .../secrets/{name}` with an already sealed value and, for an
/// organization secret, who may read it.
fn put_secret(
    settings: &Settings,
    public_key: &PublicKey,
    name: &str,
    scope: Option<&OrgScope>,
    sealed: &[u8],
) -> Result<(), String> {
    let body = api::put_body(sealed, &public_key.key_id, scope);
    call(
        settings,
        Call::SetSecret(name),
        Method::Put,
        &settings.target.secret_path(name),
        Some(&body),
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
    body: Option<&[u8]>,
) -> Result<http::Response, String> {
    let response = send_call(settings, what, method, path, body)?;
    check_status(settings, what, response)
}

/// A non-2xx answer becomes a message naming the call and the target.
fn check_status(
    settings: &Settings,
    what: Call<'_>,
    response: http::Response,
) -> Result<http::Response, String> {
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

/// Sends one API request and returns GitHub's final answer, whatever its
/// status: follows redirects on the API's origin (a renamed repository),
/// and waits out a rate limit when GitHub says how long and the wait fits
/// in [`MAX_RATE_LIMIT_WAIT`]; a longer one is an error that says so.
fn send_call(
    settings: &Settings,
    what: Call<'_>,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
) -> Result<http::Response, String> {
    let target = &settings.target;
    let mut url = settings.url(path);
    let (mut redirects, mut retries, mut waited) = (0, 0, Duration::ZERO);
    loop {
        let response = http::send(settings, method.clone(), &url, body).map_err(|cause| {
            format!(
                "cannot reach GitHub at {} while {}: {cause}",
                settings.api_url,
                what.describe(target)
            )
        })?;
        let status = response.status;
        if matches!(status, 301 | 302 | 307 | 308)
            && let Some(location) = response.header("location")
        {
            let next = api::redirect_target(&settings.api_url, &url, location)
                .map_err(|e| format!("{e} while {}", what.describe(target)))?;
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(format!(
                    "GitHub redirected more than {MAX_REDIRECTS} times while {}",
                    what.describe(target)
                ));
            }
            if matches!(status, 301 | 308) {
                log(
                    Level::Warn,
                    "http",
                    &format!(
                        "GitHub says {target} moved permanently ({status}); following it \
                         (update the settings to its new name)"
                    ),
                );
            }
            url = next;
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Some(limit) =
            api::rate_limit(status, |name| response.header(name), &response.body, now)
        else {
            return Ok(response);
        };
        let wait = limit.retry_in.map(Duration::from_secs);
        match wait {
            Some(wait)
                if retries < MAX_RATE_LIMIT_RETRIES && waited + wait <= MAX_RATE_LIMIT_WAIT =>
            {
                log(
                    Level::Warn,
                    "http",
                    &format!(
                        "GitHub rate limit ({status}) while {}: waiting {} s as GitHub asks, \
                         then retrying",
                        what.describe(target),
                        wait.as_secs()
                    ),
                );
                std::thread::sleep(wait);
                waited += wait;
                retries += 1;
            }
            _ => return Err(api::rate_limit_error(what, target, status, &limit)),
        }
    }
}

/// After the secret key failed to be written: put the key id secret back to
/// the key that stays active, so the pair in GitHub matches again. Returns
/// what became of the key id secret, for the error message.
fn restore_key_id(
    settings: &Settings,
    public_key: &PublicKey,
    scope: Option<&OrgScope>,
    previous: Option<&str>,
) -> String {
    let name = &settings.key_id_secret;
    let Some(previous) = previous else {
        return format!("{name} already holds the new key id (there was no previous key)");
    };
    let restored = seal::seal(&public_key.key, previous.as_bytes(), &mut WasiRng)
        .and_then(|sealed| put_secret(settings, public_key, name, scope, &sealed));
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

fn log_set(settings: &Settings, name: &str, scope: Option<&OrgScope>) {
    let scope = scope.map_or(String::new(), |s| format!(" ({s})"));
    log(
        Level::Info,
        "handle",
        &format!("set secret {name} in {}{scope}", settings.target),
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
