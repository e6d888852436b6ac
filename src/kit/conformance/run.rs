//! One run of the suite: the plugin loaded as a real run loads it, its
//! rotations over [`MemoryIam`], and the probes each check judges.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::destination;
use super::harness::{self, Calls, Log, Recorder, USER, active_key, rotation_now};
use super::report::check;
use super::{Check, OLD_KEY_AGE, Status, UNKNOWN_SETTING, failed_word};
use crate::handler::{HandlerErrorKind, HandlerLog, NewKeyHandler};
use crate::host::witness::Witness;
use crate::host::{Plugin, PluginInfo, Sandbox, Settings, WasmHandler};
use crate::iam::{KeyStatus, MemoryIam};
use crate::rotation::Outcome;
use crate::secret::mask_key_id;
/// The state of one run of the suite.
pub(super) struct Run {
    pub(super) plugin: Plugin,
    pub(super) info: PluginInfo,
    pub(super) base: Sandbox,
    pub(super) witness: Arc<Witness>,
    pub(super) log: Arc<Mutex<Log>>,
    /// The IAM every rotation on the author's destination shares, so the
    /// destination always holds a key this IAM knows.
    pub(super) iam: Arc<MemoryIam>,
    pub(super) state: PathBuf,
    pub(super) handler: Arc<WasmHandler>,
}

impl Run {
    pub(super) fn recorder(
        &self,
        probe: &'static str,
        preflight: &Arc<WasmHandler>,
        handle: &Arc<WasmHandler>,
    ) -> Arc<Recorder> {
        Arc::new(self.recorder_unshared(probe, preflight, handle))
    }

    pub(super) fn recorder_unshared(
        &self,
        probe: &'static str,
        preflight: &Arc<WasmHandler>,
        handle: &Arc<WasmHandler>,
    ) -> Recorder {
        let watched = self.base.grants.dirs.iter().map(|g| g.host.clone());
        Recorder::new(
            probe,
            preflight.clone(),
            handle.clone(),
            self.witness.clone(),
            self.log.clone(),
            watched.collect(),
        )
    }

    /// `rotation`: the first rotation completed.
    pub(super) fn rotation_check(
        &self,
        report: &crate::rotation::RotationReport,
        calls: &Calls,
        before: Option<String>,
        provided: &[String],
    ) -> Check {
        if report.outcome == Outcome::Rotated {
            let new = report.new_key.as_ref().map(|k| k.access_key_id.as_str());
            return check(
                "rotation",
                Status::Pass,
                format!(
                    "preflight accepted, handle stored {}, keyrot deleted {}",
                    new.map(mask_key_id).unwrap_or_default(),
                    before.as_deref().map(mask_key_id).unwrap_or_default()
                ),
            );
        }
        let why = match (calls.preflights.first(), calls.handles.first()) {
            (Some((_, Err(e))), _) => {
                let hint = if provided.is_empty() {
                    " (plugin test starts with a user whose key the destination has never \
                     seen: point it at an empty destination)"
                } else {
                    ""
                };
                format!("preflight {}: {}{hint}", failed_word(e.kind), e.message)
            }
            (_, Some((_, _, Err(e)))) => {
                format!("handle {}: {}", failed_word(e.kind), e.message)
            }
            _ => report
                .error
                .clone()
                .unwrap_or_else(|| format!("the rotation ended {}", report.outcome.as_str())),
        };
        check("rotation", Status::Fail, why)
    }

    /// `settings-refused`.
    pub(super) async fn settings_refused(&self) -> Check {
        let mut seen = Vec::new();
        let mut problems = Vec::new();
        let given: BTreeSet<&str> = self.base.settings.names().collect();
        for setting in self.info.settings.iter().filter(|s| s.required) {
            let without = destination::without_setting(&self.info, &self.base, &setting.name);
            match WasmHandler::new(self.plugin.clone(), without).await {
                Ok(_) => problems.push(format!(
                    "keyrot accepted a run without required setting '{}'",
                    setting.name
                )),
                Err(e) if e.to_string().contains(&setting.name) => {
                    seen.push(format!("without '{}': {e}", setting.name));
                }
                Err(e) => problems.push(format!(
                    "without required setting '{}', keyrot refused for another reason: {e}",
                    setting.name
                )),
            }
        }
        let unknown = self.with_settings(self.base.settings.with_value(UNKNOWN_SETTING, "1"));
        match WasmHandler::new(self.plugin.clone(), unknown).await {
            Ok(_) => problems.push(format!(
                "keyrot accepted unknown setting '{UNKNOWN_SETTING}'"
            )),
            Err(e) => seen.push(format!("unknown '{UNKNOWN_SETTING}': {e}")),
        }
        let optional = self.info.settings.iter().filter(|s| !s.required);
        for setting in optional.filter(|s| given.contains(s.name.as_str())) {
            let name = &setting.name;
            let without = destination::without_setting(&self.info, &self.base, name);
            let handler = match WasmHandler::new(self.plugin.clone(), without).await {
                Ok(handler) => Arc::new(handler),
                Err(e) => {
                    seen.push(format!("without optional '{name}': {e}"));
                    continue;
                }
            };
            let recorder = self.recorder_unshared("settings-refused", &handler, &handler);
            let rotation = rotation_now(&self.iam).await;
            match recorder.preflight(&rotation, &HandlerLog::new()).await {
                Ok(()) => seen.push(format!("without optional '{name}': preflight accepts")),
                Err(e) if e.kind == HandlerErrorKind::Rejected => {
                    seen.push(format!(
                        "without optional '{name}': preflight says {}",
                        e.message
                    ));
                }
                Err(e) => problems.push(format!(
                    "without optional setting '{name}', preflight {}: {}",
                    failed_word(e.kind),
                    e.message
                )),
            }
        }
        if problems.is_empty() {
            check("settings-refused", Status::Pass, seen.join("; "))
        } else {
            check("settings-refused", Status::Fail, problems.join("; "))
        }
    }

    pub(super) fn with_settings(&self, settings: Settings) -> Sandbox {
        Sandbox {
            settings,
            ..self.base.clone()
        }
    }

    /// `handle-failure`: preflight on the author's destination, handle on
    /// an unusable one.
    pub(super) async fn handle_failure(
        &self,
        bad: &Arc<WasmHandler>,
        what: &str,
    ) -> (Check, Calls) {
        let recorder = self.recorder("handle-failure", &self.handler, bad);
        let before = active_key(&self.iam).await;
        let report = harness::rotate(self.iam.clone(), recorder.clone(), &self.state).await;
        let calls = recorder.calls();
        let check = match calls.handles.first() {
            None => check(
                "handle-failure",
                Status::Skip,
                format!(
                    "handle was never called: {}",
                    report
                        .error
                        .as_deref()
                        .unwrap_or("the rotation stopped before it")
                ),
            ),
            Some((_, _, Ok(()))) => check(
                "handle-failure",
                Status::Fail,
                format!(
                    "handle returned success with {what}: keyrot would have retired the old key \
                     with the new one stored nowhere"
                ),
            ),
            Some((_, new, Err(e))) => {
                let keys = self.iam.keys(USER);
                let deleted = !keys.iter().any(|k| &k.access_key_id == new);
                let kept = keys.iter().any(|k| {
                    Some(&k.access_key_id) == before.as_ref() && k.status == KeyStatus::Active
                });
                if deleted && kept {
                    check(
                        "handle-failure",
                        Status::Pass,
                        format!(
                            "with {what}, handle {}: {}; keyrot deleted the new key {}, and {} \
                             stays active",
                            failed_word(e.kind),
                            e.message,
                            mask_key_id(new),
                            before.as_deref().map(mask_key_id).unwrap_or_default()
                        ),
                    )
                } else {
                    check(
                        "handle-failure",
                        Status::Fail,
                        format!(
                            "handle failed ({}), but the keys are not as they were: {}",
                            e.message,
                            report.error.as_deref().unwrap_or("")
                        ),
                    )
                }
            }
        };
        (check, calls)
    }

    /// `resume`: a rotation stopped right after `handle`, then the rerun.
    pub(super) async fn resume(&self, rotated: bool) -> (Check, Vec<Calls>) {
        if !rotated {
            let why = "needs a rotation that completes first (see rotation)";
            return (check("resume", Status::Skip, why), Vec::new());
        }
        let stop = Arc::new(Notify::new());
        let first = Arc::new(
            self.recorder_unshared("resume", &self.handler, &self.handler)
                .stopping_after_handle(stop.clone()),
        );
        let ended = harness::rotate_then_stop(self.iam.clone(), first.clone(), stop, &self.state);
        if let Some(report) = ended.await {
            let why = format!(
                "the rotation to interrupt ended by itself: {}",
                report.error.as_deref().unwrap_or(report.outcome.as_str())
            );
            return (check("resume", Status::Fail, why), vec![first.calls()]);
        }
        let abandoned = first
            .calls()
            .handles
            .last()
            .map(|(_, key, _)| key.clone())
            .unwrap_or_default();
        let rerun = self.recorder("resume", &self.handler, &self.handler);
        let report = harness::rotate(self.iam.clone(), rerun.clone(), &self.state).await;
        let calls = rerun.calls();
        let told = calls
            .preflights
            .first()
            .is_some_and(|(r, _)| r.abandoned_key_ids.contains(&abandoned));
        let shown = mask_key_id(&abandoned);
        let check = if report.outcome == Outcome::Rotated && told {
            check(
                "resume",
                Status::Pass,
                format!(
                    "a run stopped right after handle stored {shown}; the rerun told preflight \
                     and handle abandoned-key-ids [{shown}], deleted it and rotated"
                ),
            )
        } else {
            let why = match (calls.preflights.first(), calls.handles.first()) {
                (Some((_, Err(e))), _) => format!(
                    "the destination holds {shown}, left by a run stopped right after handle; \
                     the rerun, told abandoned-key-ids [{shown}], failed in preflight: {}",
                    e.message
                ),
                (_, Some((_, _, Err(e)))) => format!(
                    "after a run stopped right after handle stored {shown}, the rerun's handle \
                     failed: {}",
                    e.message
                ),
                _ => report
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("the rerun ended {}", report.outcome.as_str())),
            };
            check("resume", Status::Fail, why)
        };
        (check, vec![first.calls(), calls])
    }

    /// `preflight-unreachable`: a rotation in a fresh IAM whose
    /// destination cannot be used.
    pub(super) async fn unreachable(&self, bad: &Arc<WasmHandler>, what: &str) -> (Check, Calls) {
        let iam = Arc::new(MemoryIam::new());
        iam.add_key(USER, KeyStatus::Active, OLD_KEY_AGE.as_secs());
        let state = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                let why = format!("cannot make a state directory: {e}");
                return (
                    check("preflight-unreachable", Status::Skip, why),
                    Calls::default(),
                );
            }
        };
        let recorder = self.recorder("preflight-unreachable", bad, bad);
        harness::rotate(iam.clone(), recorder.clone(), state.path()).await;
        let calls = recorder.calls();
        let nothing_made = iam.created().is_empty() && calls.handles.is_empty();
        let check = match calls.preflights.first() {
            Some((_, Err(e))) if e.kind == HandlerErrorKind::Rejected && nothing_made => check(
                "preflight-unreachable",
                Status::Pass,
                format!("with {what}, preflight refused: {}", e.message),
            ),
            Some((_, Err(e))) if e.kind == HandlerErrorKind::Rejected => check(
                "preflight-unreachable",
                Status::Fail,
                format!("preflight refused ({}), yet a key was created", e.message),
            ),
            Some((_, Err(e))) => check(
                "preflight-unreachable",
                Status::Fail,
                format!(
                    "with {what}, preflight {} instead of refusing with a message: {}",
                    failed_word(e.kind),
                    e.message
                ),
            ),
            Some((_, Ok(()))) => check(
                "preflight-unreachable",
                Status::Fail,
                format!(
                    "preflight accepted {what}: keyrot then created a key that handle could not \
                     store{}",
                    match calls.handles.first() {
                        Some((_, _, Err(e))) => format!(" (handle: {})", e.message),
                        _ => String::new(),
                    }
                ),
            ),
            None => check(
                "preflight-unreachable",
                Status::Skip,
                "the rotation stopped before preflight",
            ),
        };
        (check, calls)
    }
}
