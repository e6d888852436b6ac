//! The `keyrot:handler` contract, in every version keyrot loads, called
//! through one trait.
//!
//! Each version is a frozen WIT package (`wit/` is the newest; older ones
//! live in `wit/VERSION/`) with bindings of its own. The host calls every
//! version the same way, through [`Handler`], and [`handler_contract!`]
//! writes that trait's impl for a version's bindings, so a version's module
//! holds only what really differs: its `bindgen!` and how keyrot's
//! [`Rotation`] maps onto its record. A plugin built for an older version
//! keeps working; it simply does not get what later versions added.
//!
//! Adding `keyrot:handler@0.5.0`: copy today's `wit/` (`handler.wit` and
//! `deps/`) word for word to `wit/0.4.0/` and point `v0_4` at it, write the
//! new `wit/handler.wit`, add a `v0_5` module shaped like the ones below,
//! and put `v0_5::VERSION` first in [`VERSIONS`].
//!
//! The second world, `keyrot:reporter` (`wit/reporter/`), has a trait of
//! its own, [`Reporter`], and its own list, [`REPORTER_VERSIONS`], written
//! the same way; the store, the capabilities, the limits and the failure
//! reports ([`super::call`]) are the handler's.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::InstancePre;
use zeroize::Zeroize;

use super::HostState;
use crate::grants::Needs;
use crate::handler::Rotation;
use crate::iam::NewAccessKey;
use crate::notify::RunNotice;

/// What a plugin says about itself (`describe()`), whatever version it
/// speaks. The fields are the WIT record's (`wit/handler.wit`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Short name, used to prefix the handler's log lines, e.g. `github`.
    pub name: String,
    /// The handler's own version, e.g. `1.2.0`.
    pub version: String,
    /// One sentence: where this handler puts the new key.
    pub description: String,
    /// Every setting the handler reads; keyrot rejects settings not listed.
    pub settings: Vec<Setting>,
    /// What it asks to be granted; `None` for a plugin of a contract before
    /// 0.4.0, which declares nothing (and is granted what the operator
    /// says, as before).
    pub needs: Option<Needs>,
}

/// One setting a handler reads through `wasi:config/store`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The key passed to `wasi:config/store.get`, e.g. `repo`.
    pub name: String,
    /// One line for the operator: what the value means, with an example.
    pub description: String,
    /// keyrot refuses to run, before touching IAM, if it is missing.
    pub required: bool,
    /// The value is a credential: given with `--secret`, redacted from
    /// logs and reports.
    pub secret: bool,
}

/// A handler plugin linked against one contract version. Each call
/// instantiates it in the call's fresh store and calls one export; what the
/// export returns as an error (`Err(message)`) is the plugin's refusal, a
/// trap is the outer `Err`.
pub(super) trait Handler: Send + Sync {
    /// `describe()`: what the plugin is and which settings it reads.
    fn describe<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> BoxFuture<'a, wasmtime::Result<PluginInfo>>;

    /// `preflight(rotation)`: whether the plugin can deliver a key now.
    fn preflight<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
        rotation: &'a Rotation,
    ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>>;

    /// `handle(rotation, key)`: deliver the new key.
    fn handle<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
        rotation: &'a Rotation,
        key: &'a NewAccessKey,
    ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>>;
}

/// One contract version keyrot loads.
pub(super) struct Version {
    /// The package, e.g. `keyrot:handler@0.3.0`.
    pub package: &'static str,
    /// The interface a plugin of this version exports, e.g.
    /// `keyrot:handler/handler@0.3.0`.
    pub export: &'static str,
    /// Checks a linked component's exports against this version's.
    pub link: fn(InstancePre<HostState>) -> wasmtime::Result<Arc<dyn Handler>>,
}

/// Every version keyrot loads, newest first: a plugin exporting several
/// speaks the newest.
pub(super) const VERSIONS: [Version; 4] =
    [v0_4::VERSION, v0_3::VERSION, v0_2::VERSION, v0_1::VERSION];

/// The contract version plugins built from `wit/` speak.
pub const CURRENT_CONTRACT: &str = VERSIONS[0].package;

/// The world a plugin must target, in every version keyrot loads, for
/// error messages: `keyrot:handler/new-key-handler@0.3.0 (or the older
/// @0.2.0, @0.1.0)`.
pub(super) fn world_names() -> String {
    let [newest, older @ ..] = &VERSIONS;
    let version = |v: &Version| {
        v.package
            .rsplit_once('@')
            .map_or("", |(_, v)| v)
            .to_string()
    };
    let older: Vec<String> = older.iter().map(|v| format!("@{}", version(v))).collect();
    format!(
        "keyrot:handler/new-key-handler@{} (or the older {})",
        version(newest),
        older.join(", ")
    )
}

/// The world a reporter must target, for error messages:
/// `keyrot:reporter/run-reporter@0.1.0`.
pub(super) fn reporter_world_names() -> String {
    let versions: Vec<&str> = REPORTER_VERSIONS
        .iter()
        .map(|v| v.package.rsplit_once('@').map_or("", |(_, v)| v))
        .collect();
    format!("keyrot:reporter/run-reporter@{}", versions.join(", @"))
}

/// A WIT copy of the new key whose secret is zeroized when it is dropped,
/// however the call ends (returned, trapped, timed out, cancelled,
/// panicked).
struct WipeOnDrop<K> {
    key: K,
    secret: fn(&mut K) -> &mut String,
}

impl<K> Drop for WipeOnDrop<K> {
    fn drop(&mut self) {
        (self.secret)(&mut self.key).zeroize();
    }
}

/// Implements [`Handler`] for the bindings generated in the module it is
/// invoked in, and declares that module's `VERSION`. The calls are the same
/// in every version: instantiate, call the export, convert the records
/// (a record that changed between versions gets a conversion of its own in
/// its module). The module provides `From<&Rotation> for wit::Rotation`
/// and `fn needs(&wit::PluginInfo) -> Option<Needs>`.
macro_rules! handler_contract {
    ($version:literal) => {
        use self::keyrot::handler::types as wit;
        use futures_util::future::BoxFuture;
        use wasmtime::Store;
        use $crate::host::HostState;
        use $crate::host::contract::{Handler, PluginInfo, Setting, Version, WipeOnDrop};

        /// This version, for [`super::VERSIONS`].
        pub(super) const VERSION: Version = Version {
            package: concat!("keyrot:handler@", $version),
            export: concat!("keyrot:handler/handler@", $version),
            link: |pre| Ok(std::sync::Arc::new(NewKeyHandlerPre::new(pre)?)),
        };

        impl Handler for NewKeyHandlerPre<HostState> {
            fn describe<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
            ) -> BoxFuture<'a, wasmtime::Result<PluginInfo>> {
                Box::pin(async move {
                    let instance = self.instantiate_async(&mut *store).await?;
                    let info = instance
                        .keyrot_handler_handler()
                        .call_describe(&mut *store)
                        .await?;
                    Ok(PluginInfo {
                        needs: needs(&info),
                        name: info.name,
                        version: info.version,
                        description: info.description,
                        settings: info
                            .settings
                            .into_iter()
                            .map(|s| Setting {
                                name: s.name,
                                description: s.description,
                                required: s.required,
                                secret: s.secret,
                            })
                            .collect(),
                    })
                })
            }

            fn preflight<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
                rotation: &'a $crate::handler::Rotation,
            ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>> {
                Box::pin(async move {
                    let instance = self.instantiate_async(&mut *store).await?;
                    instance
                        .keyrot_handler_handler()
                        .call_preflight(&mut *store, &wit::Rotation::from(rotation))
                        .await
                })
            }

            fn handle<'a>(
                &'a self,
                store: &'a mut Store<HostState>,
                rotation: &'a $crate::handler::Rotation,
                key: &'a $crate::iam::NewAccessKey,
            ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>> {
                Box::pin(async move {
                    let instance = self.instantiate_async(&mut *store).await?;
                    $crate::testhook::hit("host-handle");
                    // The guest gets its own copy; the host's is wiped.
                    let copy = WipeOnDrop {
                        key: wit::AccessKey {
                            user_name: key.user_name.clone(),
                            access_key_id: key.access_key_id.clone(),
                            secret_access_key: key.secret_access_key.expose().to_string(),
                            create_date: key.create_date.clone(),
                        },
                        secret: |k| &mut k.secret_access_key,
                    };
                    instance
                        .keyrot_handler_handler()
                        .call_handle(&mut *store, &wit::Rotation::from(rotation), &copy.key)
                        .await
                })
            }
        }
    };
}

/// `keyrot:handler@0.4.0`, the current contract (`wit/`).
mod v0_4 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        with: { "wasi:logging/logging": crate::host::logging::wasi_logging },
    });

    handler_contract!("0.4.0");

    impl From<&crate::handler::Rotation> for wit::Rotation {
        fn from(rotation: &crate::handler::Rotation) -> Self {
            wit::Rotation {
                user_name: rotation.user_name.clone(),
                current_key_id: rotation.current_key_id.clone(),
                account_id: rotation.account_id.clone(),
                abandoned_key_ids: rotation.abandoned_key_ids.clone(),
            }
        }
    }

    fn needs(info: &wit::PluginInfo) -> Option<crate::grants::Needs> {
        let needs = &info.needs;
        Some(crate::grants::Needs {
            hosts: needs
                .hosts
                .iter()
                .map(|h| crate::grants::HostNeed {
                    host: h.host.clone(),
                    setting: h.setting.clone(),
                    purpose: h.purpose.clone(),
                })
                .collect(),
            directories: needs
                .directories
                .iter()
                .map(|d| crate::grants::DirectoryNeed {
                    path: d.path.clone(),
                    setting: d.setting.clone(),
                    writable: d.writable,
                    purpose: d.purpose.clone(),
                })
                .collect(),
            memory_mib: needs.memory_mib,
            timeout_seconds: needs.timeout_seconds,
        })
    }
}

/// `keyrot:handler@0.3.0` (`wit/0.3.0/`).
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "wit/0.3.0",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        with: { "wasi:logging/logging": crate::host::logging::wasi_logging },
    });

    handler_contract!("0.3.0");

    /// 0.3.0 names one abandoned key: the newest, the one the interrupted
    /// run before this one made.
    impl From<&crate::handler::Rotation> for wit::Rotation {
        fn from(rotation: &crate::handler::Rotation) -> Self {
            wit::Rotation {
                user_name: rotation.user_name.clone(),
                current_key_id: rotation.current_key_id.clone(),
                account_id: rotation.account_id.clone(),
                abandoned_key_id: rotation.abandoned_key_ids.first().cloned(),
            }
        }
    }

    /// Declarations came with 0.4.0.
    fn needs(_: &wit::PluginInfo) -> Option<crate::grants::Needs> {
        None
    }
}

/// `keyrot:handler@0.2.0` (`wit/0.2.0/`).
mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/0.2.0",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        with: { "wasi:logging/logging": crate::host::logging::wasi_logging },
    });

    handler_contract!("0.2.0");

    /// 0.2.0 has no abandoned key: the plugin simply does not get it.
    impl From<&crate::handler::Rotation> for wit::Rotation {
        fn from(rotation: &crate::handler::Rotation) -> Self {
            wit::Rotation {
                user_name: rotation.user_name.clone(),
                current_key_id: rotation.current_key_id.clone(),
                account_id: rotation.account_id.clone(),
            }
        }
    }

    /// Declarations came with 0.4.0.
    fn needs(_: &wit::PluginInfo) -> Option<crate::grants::Needs> {
        None
    }
}

/// `keyrot:handler@0.1.0`, the first contract (`wit/0.1.0/`).
mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/0.1.0",
        world: "keyrot:handler/new-key-handler",
        exports: { default: async },
        with: { "wasi:logging/logging": crate::host::logging::wasi_logging },
    });

    handler_contract!("0.1.0");

    /// 0.1.0 has no account id (nor abandoned key): the plugin simply does
    /// not get them.
    impl From<&crate::handler::Rotation> for wit::Rotation {
        fn from(rotation: &crate::handler::Rotation) -> Self {
            wit::Rotation {
                user_name: rotation.user_name.clone(),
                current_key_id: rotation.current_key_id.clone(),
            }
        }
    }

    /// Declarations came with 0.4.0.
    fn needs(_: &wit::PluginInfo) -> Option<crate::grants::Needs> {
        None
    }
}

/// A reporter plugin linked against one version of `keyrot:reporter`.
pub(super) trait Reporter: Send + Sync {
    /// `describe()`: what the plugin is and which settings it reads.
    fn describe<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> BoxFuture<'a, wasmtime::Result<PluginInfo>>;

    /// `report(run)`: deliver the run's report.
    fn report<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
        run: &'a RunNotice,
    ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>>;
}

/// One version of `keyrot:reporter` keyrot loads.
pub(super) struct ReporterVersion {
    /// The package, e.g. `keyrot:reporter@0.1.0`.
    pub package: &'static str,
    /// The interface a plugin of this version exports.
    pub export: &'static str,
    /// Checks a linked component's exports against this version's.
    pub link: fn(InstancePre<HostState>) -> wasmtime::Result<Arc<dyn Reporter>>,
}

/// Every reporter version keyrot loads, newest first.
pub(super) const REPORTER_VERSIONS: [ReporterVersion; 1] = [reporter_v0_1::VERSION];

/// The reporter contract plugins built from `wit/reporter/` speak.
pub const CURRENT_REPORTER_CONTRACT: &str = REPORTER_VERSIONS[0].package;

/// `keyrot:reporter@0.1.0`, the first reporter contract (`wit/reporter/`).
mod reporter_v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/reporter",
        world: "keyrot:reporter/run-reporter",
        exports: { default: async },
        with: { "wasi:logging/logging": crate::host::logging::wasi_logging },
    });

    use self::keyrot::reporter::types as wit;
    use super::{PluginInfo, Reporter, ReporterVersion, Setting};
    use crate::host::HostState;
    use crate::notify::{Event, NoticeKey, RunNotice, UserNotice};
    use crate::rotation::Outcome;
    use futures_util::future::BoxFuture;
    use wasmtime::Store;

    /// This version, for [`super::REPORTER_VERSIONS`].
    pub(super) const VERSION: ReporterVersion = ReporterVersion {
        package: "keyrot:reporter@0.1.0",
        export: "keyrot:reporter/reporter@0.1.0",
        link: |pre| Ok(std::sync::Arc::new(RunReporterPre::new(pre)?)),
    };

    impl Reporter for RunReporterPre<HostState> {
        fn describe<'a>(
            &'a self,
            store: &'a mut Store<HostState>,
        ) -> BoxFuture<'a, wasmtime::Result<PluginInfo>> {
            Box::pin(async move {
                let instance = self.instantiate_async(&mut *store).await?;
                let info = instance
                    .keyrot_reporter_reporter()
                    .call_describe(&mut *store)
                    .await?;
                Ok(PluginInfo {
                    needs: None,
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    settings: info
                        .settings
                        .into_iter()
                        .map(|s| Setting {
                            name: s.name,
                            description: s.description,
                            required: s.required,
                            secret: s.secret,
                        })
                        .collect(),
                })
            })
        }

        fn report<'a>(
            &'a self,
            store: &'a mut Store<HostState>,
            run: &'a RunNotice,
        ) -> BoxFuture<'a, wasmtime::Result<Result<(), String>>> {
            Box::pin(async move {
                let instance = self.instantiate_async(&mut *store).await?;
                instance
                    .keyrot_reporter_reporter()
                    .call_report(&mut *store, &run_report(run))
                    .await
            })
        }
    }

    fn run_report(run: &RunNotice) -> wit::RunReport {
        let s = &run.summary;
        let n = |count: usize| u32::try_from(count).unwrap_or(u32::MAX);
        wit::RunReport {
            keyrot_version: run.keyrot_version.to_string(),
            time: run.time.clone(),
            dry_run: run.dry_run,
            accounts: s.accounts.clone(),
            summary: wit::Summary {
                users: n(s.users),
                rotated: n(s.rotated),
                skipped: n(s.skipped),
                exempt: n(s.exempt),
                would_rotate: n(s.would_rotate),
                draining: n(s.draining),
                failed: n(s.failed),
                partial: n(s.partial),
                needs_manual_action: n(s.needs_manual_action),
                bad_input: n(s.bad_input),
                warned: n(s.warned),
                exit_code: s.exit_code,
            },
            users: run.users.iter().map(user_report).collect(),
        }
    }

    fn user_report(user: &UserNotice) -> wit::UserReport {
        wit::UserReport {
            account: user.account.clone(),
            account_name: user.account_name.clone(),
            user: user.user.clone(),
            owner: user.owner.clone(),
            target: user.target.clone(),
            outcome: match user.outcome {
                Outcome::Rotated => wit::Outcome::Rotated,
                Outcome::Skipped => wit::Outcome::Skipped,
                Outcome::Exempt => wit::Outcome::Exempt,
                Outcome::WouldRotate => wit::Outcome::WouldRotate,
                Outcome::Draining => wit::Outcome::Draining,
                Outcome::Failed => wit::Outcome::Failed,
                Outcome::Partial => wit::Outcome::Partial,
                Outcome::NeedsManualAction => wit::Outcome::NeedsManualAction,
                Outcome::BadInput => wit::Outcome::BadInput,
            },
            events: user
                .events
                .iter()
                .map(|e| match e {
                    Event::Rotated => wit::Event::Rotated,
                    Event::Failed => wit::Event::Failed,
                    Event::NeedsAttention => wit::Event::NeedsAttention,
                    Event::Warning => wit::Event::Warning,
                    Event::Skipped => wit::Event::Skipped,
                    Event::Exempt => wit::Event::Exempt,
                    Event::WouldRotate => wit::Event::WouldRotate,
                })
                .collect(),
            new_key: user.new_key.as_ref().map(|k| wit::NewKey {
                access_key_id: k.access_key_id.clone(),
                state: k.state.to_string(),
            }),
            old_keys: user.old_keys.iter().map(old_key).collect(),
            due: user.due.clone(),
            exemption: user.exemption.clone(),
            warnings: user.warnings.clone(),
            reason: user.reason.clone(),
            advice: user.advice.clone(),
        }
    }

    fn old_key(key: &NoticeKey) -> wit::OldKey {
        wit::OldKey {
            access_key_id: key.access_key_id.clone(),
            status: key.status.clone(),
            created: key.created.clone(),
            age_days: key.age_days,
            last_used: key.last_used.clone(),
            last_used_service: key.last_used_service.clone(),
            action: key.action.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_version_newest_first() {
        assert_eq!(CURRENT_CONTRACT, "keyrot:handler@0.4.0");
        assert_eq!(
            world_names(),
            "keyrot:handler/new-key-handler@0.4.0 (or the older @0.3.0, @0.2.0, @0.1.0)"
        );
        assert_eq!(VERSIONS[1].export, "keyrot:handler/handler@0.3.0");
        assert_eq!(VERSIONS[2].export, "keyrot:handler/handler@0.2.0");
        assert_eq!(VERSIONS[3].export, "keyrot:handler/handler@0.1.0");
        assert_eq!(CURRENT_REPORTER_CONTRACT, "keyrot:reporter@0.1.0");
        assert_eq!(reporter_world_names(), "keyrot:reporter/run-reporter@0.1.0");
    }
}
