//! The rotation, step by step, with every failure edge in one place.
//!
//! 1. **List** the user's keys. Failure: nothing changed.
//! 2. **Refuse two active keys**: keyrot cannot know which one is in use.
//! 3. **Preflight** the handler. Failure: nothing changed.
//! 4. **Create** the new key. Only on `LimitExceeded`, and only if the user
//!    has keys that are not active, delete those and create once more. A
//!    create whose answer was lost may have made a key anyway: list again and
//!    delete any key that was not there at step 1.
//! 5. **Handle**: give the handler the new key, once. Failure: delete the new
//!    key (retrying transient errors); if that fails too, name the orphan.
//! 6. **Retire** every old key. A key that cannot be deleted is deactivated,
//!    so the user never keeps two active keys, and the run is partial.
//!
//! Whatever happens, the [`RotationReport`] says what was done to each key.

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

use serde::Serialize;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::handler::{HandlerError, HandlerErrorKind, LogLine, NewKeyHandler, Rotation};
use crate::iam::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::retry::RetryPolicy;
use crate::secret::mask_key_id;

/// Rotates IAM access keys through a [`NewKeyHandler`].
pub struct KeyRotator<I, H> {
    iam: I,
    handler: H,
    retry: RetryPolicy,
    interrupt: Interrupt,
}

/// Stops a rotation safely from outside (Ctrl-C): before the new key
/// exists the run stops with nothing changed; during the handler the call
/// is cancelled and the new key deleted, as for any handler failure. The
/// IAM calls themselves are short and always run to completion.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    triggered: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// Asks the rotation to stop.
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once triggered.
    async fn wait(&self) {
        loop {
            // Registered before the check, so a trigger in between is seen.
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    fn error() -> HandlerError {
        HandlerError::new(
            HandlerErrorKind::Interrupted,
            "interrupted by the operator (SIGINT or SIGTERM)",
        )
    }
}

/// How a run ended. Each outcome has its own process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new key is propagated and every old key is deleted.
    Rotated,
    /// Nothing was rotated; the active key is unchanged.
    Failed,
    /// The new key is propagated, but an old key could not be deleted (it was
    /// deactivated, or was already inactive).
    Partial,
    /// An operator must act: a key nobody holds exists, or an old key could
    /// be neither deleted nor deactivated.
    NeedsManualAction,
    /// The input was wrong (an unknown user); nothing was touched.
    BadInput,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Rotated => 0,
            Outcome::Failed => 1,
            Outcome::Partial => 3,
            Outcome::NeedsManualAction => 4,
            Outcome::BadInput => 2,
        }
    }
}

/// A step of the rotation, as timed in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// List the user's keys.
    ListKeys,
    /// Ask the handler whether it can succeed.
    Preflight,
    /// Create the new key.
    CreateKey,
    /// Delete a non-active key to get under the two-key limit.
    MakeRoom,
    /// Give the new key to the handler.
    Handle,
    /// Delete the new key after the handler failed.
    DeleteNewKey,
    /// Delete an old key.
    DeleteOldKey,
    /// Deactivate an old key that could not be deleted.
    DeactivateOldKey,
}

/// One step as it ran.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// The key it acted on, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Wall-clock time, in milliseconds.
    pub duration_ms: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of the new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewKeyState {
    /// The handler stored it; it is the user's active key.
    Propagated,
    /// The handler failed and the key was deleted.
    Deleted,
    /// The handler failed and the key could not be deleted: nobody holds it.
    Orphaned,
}

/// The new key, by id (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct NewKeyReport {
    /// The new access key id.
    pub access_key_id: String,
    /// What became of it.
    pub state: NewKeyState,
}

/// What became of a key the user had before the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum OldKeyAction {
    /// Left as it was.
    Unchanged,
    /// A non-active key deleted to get under the two-key limit.
    DeletedToMakeRoom,
    /// Deleted after the new key was propagated.
    Deleted,
    /// Already gone when keyrot tried to delete it (`NoSuchEntity`).
    AlreadyGone,
    /// Could not be deleted, so it was set `Inactive`.
    Deactivated {
        /// Why the delete failed.
        delete_error: String,
    },
    /// A non-active key that could not be deleted; it stays non-active.
    DeleteFailed {
        /// Why the delete failed.
        delete_error: String,
    },
    /// Could be neither deleted nor deactivated: it is still active.
    StillActive {
        /// Why the delete failed.
        delete_error: String,
        /// Why deactivating failed.
        deactivate_error: String,
    },
}

/// One of the user's keys from before the run.
#[derive(Clone, Debug, Serialize)]
pub struct OldKeyReport {
    /// The access key id.
    pub access_key_id: String,
    /// Its status when the run began.
    pub status: KeyStatus,
    /// What keyrot did to it.
    #[serde(flatten)]
    pub action: OldKeyAction,
}

/// Everything a run did, for people (text) and machines (JSON). Never holds
/// the secret access key.
#[derive(Clone, Debug, Serialize)]
pub struct RotationReport {
    /// The IAM user.
    pub user: String,
    /// How the run ended.
    pub outcome: Outcome,
    /// The new key, if one was created.
    pub new_key: Option<NewKeyReport>,
    /// The user's keys from before the run.
    pub old_keys: Vec<OldKeyReport>,
    /// Each step as it ran.
    pub steps: Vec<StepRecord>,
    /// What the handler logged.
    pub handler_log: Vec<LogLine>,
    /// Why the run failed or is partial, with what to do next.
    pub error: Option<String>,
}

impl RotationReport {
    fn new(user: &str) -> Self {
        Self {
            user: user.to_string(),
            outcome: Outcome::Failed,
            new_key: None,
            old_keys: Vec::new(),
            steps: Vec::new(),
            handler_log: Vec::new(),
            error: None,
        }
    }

    fn set_old_key(&mut self, key_id: &str, action: OldKeyAction) {
        if let Some(key) = self.old_keys.iter_mut().find(|k| k.access_key_id == key_id) {
            key.action = action;
        }
    }

    /// The outcome of a run that got through step 6, from what became of
    /// each old key.
    fn retire_outcome(&self) -> Outcome {
        let actions = self.old_keys.iter().map(|k| &k.action);
        if actions
            .clone()
            .any(|a| matches!(a, OldKeyAction::StillActive { .. }))
        {
            Outcome::NeedsManualAction
        } else if actions.clone().any(|a| {
            matches!(
                a,
                OldKeyAction::Deactivated { .. } | OldKeyAction::DeleteFailed { .. }
            )
        }) {
            Outcome::Partial
        } else {
            Outcome::Rotated
        }
    }

    /// A summary of old keys that could not be deleted, with what to do.
    fn retire_problems(&self) -> Option<String> {
        let problems: Vec<String> = self
            .old_keys
            .iter()
            .filter_map(|k| match &k.action {
                OldKeyAction::Deactivated { delete_error } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) and was deactivated",
                    k.access_key_id
                )),
                OldKeyAction::DeleteFailed { delete_error } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) and stays {}",
                    k.access_key_id,
                    k.status.as_str().to_lowercase()
                )),
                OldKeyAction::StillActive {
                    delete_error,
                    deactivate_error,
                } => Some(format!(
                    "old key {} could not be deleted ({delete_error}) nor deactivated \
                     ({deactivate_error}): it is STILL ACTIVE next to the new key",
                    k.access_key_id
                )),
                _ => None,
            })
            .collect();
        if problems.is_empty() {
            return None;
        }
        Some(format!(
            "the new key is in place, but {}; delete it with `aws iam delete-access-key \
             --user-name {} --access-key-id ID`",
            problems.join("; "),
            self.user
        ))
    }
}

/// Why a rotation failed. Each message says what state the keys are in.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RotationFailure {
    /// The user does not exist.
    #[error(
        "iam user '{user}' does not exist: check --user and which AWS account the \
         credentials belong to; nothing was changed"
    )]
    UnknownUser {
        /// The user name given.
        user: String,
    },
    /// Listing the user's keys failed.
    #[error("could not list the access keys of user '{user}': {cause}; nothing was changed")]
    ListKeys {
        /// The user.
        user: String,
        /// IAM's error.
        cause: IamError,
    },
    /// The user has two active keys; keyrot will not guess which is in use.
    #[error(
        "user '{user}' has two active access keys ({}, {}) and keyrot cannot tell which one \
         is in use: deactivate or delete the unused one (`aws iam update-access-key \
         --user-name {user} --access-key-id ID --status Inactive`) and run again; nothing \
         was changed",
        mask_key_id(&keys[0]),
        mask_key_id(&keys[1])
    )]
    TwoActiveKeys {
        /// The user.
        user: String,
        /// The two active key ids.
        keys: [String; 2],
    },
    /// The handler's preflight failed.
    #[error("handler preflight failed: {cause}; nothing was changed")]
    Preflight {
        /// The handler's error.
        cause: HandlerError,
    },
    /// A non-active key could not be deleted to get under the key limit.
    #[error(
        "user '{user}' is at the two-key limit and deleting its non-active key {key} to make \
         room failed: {cause}; no key was created and the active key is unchanged"
    )]
    MakeRoom {
        /// The user.
        user: String,
        /// The key that could not be deleted.
        key: String,
        /// IAM's error.
        cause: IamError,
    },
    /// Creating the new key failed.
    #[error(
        "could not create a new access key for user '{user}': {cause}; {}{}the active key is \
         unchanged",
        made_room_note(made_room),
        removed_note(removed)
    )]
    CreateKey {
        /// The user.
        user: String,
        /// IAM's error.
        cause: IamError,
        /// Non-active keys deleted to make room before the failed retry.
        made_room: Vec<String>,
        /// Keys the failed call made anyway (its answer was lost), deleted.
        removed: Vec<String>,
    },
    /// Creating the new key failed in a way that may have created it, and
    /// the key found afterwards could not be deleted.
    #[error(
        "could not create a new access key for user '{user}': {cause}; the call created key \
         {key} anyway, and deleting it failed: {delete}. Nobody holds that key: delete it with \
         `aws iam delete-access-key --user-name {user} --access-key-id {key}`; the active key \
         is unchanged"
    )]
    StrayKey {
        /// The user.
        user: String,
        /// The key nobody holds.
        key: String,
        /// Why the create failed.
        cause: IamError,
        /// Why the delete failed.
        delete: IamError,
    },
    /// Creating the new key failed in a way that may have created it, and
    /// keyrot could not list the keys to find out.
    #[error(
        "could not create a new access key for user '{user}': {cause}; the call may have \
         created a key anyway, and listing the keys to check failed: {list}. Check with `aws \
         iam list-access-keys --user-name {user}` and delete any key you do not recognise; \
         the active key is unchanged"
    )]
    CreateUncertain {
        /// The user.
        user: String,
        /// Why the create failed.
        cause: IamError,
        /// Why the list failed.
        list: IamError,
    },
    /// The handler failed; the new key was deleted.
    #[error(
        "handler failed: {cause}; the new key {key} was deleted; {}the other keys are \
         unchanged",
        made_room_note(made_room)
    )]
    Handler {
        /// The deleted new key.
        key: String,
        /// The handler's error.
        cause: HandlerError,
        /// Non-active keys deleted to make room for the new key.
        made_room: Vec<String>,
    },
    /// The handler failed and the new key could not be deleted.
    #[error(
        "handler failed: {cause}; deleting the new key {key} then failed too: {delete}. \
         Nobody holds that key: delete it with `aws iam delete-access-key --user-name {user} \
         --access-key-id {key}`; {}the other keys are unchanged",
        made_room_note(made_room)
    )]
    Orphaned {
        /// The user.
        user: String,
        /// The orphaned key.
        key: String,
        /// The handler's error.
        cause: HandlerError,
        /// Why the delete failed.
        delete: IamError,
        /// Non-active keys deleted to make room for the new key.
        made_room: Vec<String>,
    },
}

fn removed_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            "the failed call had created {} anyway, which was deleted; ",
            keys.join(", ")
        )
    }
}

fn made_room_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            "non-active keys {} were deleted to make room; ",
            keys.join(", ")
        )
    }
}

/// A failed rotation: the cause and the report of what was done.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{failure}")]
pub struct RotationError {
    /// What went wrong.
    pub failure: RotationFailure,
    /// What was done before and after it went wrong.
    pub report: Box<RotationReport>,
}

impl RotationError {
    /// The process exit code: the outcome's.
    pub fn exit_code(&self) -> u8 {
        self.report.outcome.exit_code()
    }
}

impl<I: Iam, H: NewKeyHandler> KeyRotator<I, H> {
    /// A rotator over `iam` that hands new keys to `handler`.
    pub fn new(iam: I, handler: H) -> Self {
        Self {
            iam,
            handler,
            retry: RetryPolicy::default(),
            interrupt: Interrupt::default(),
        }
    }

    /// Lets `interrupt` stop the rotation safely.
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// Replaces how transient IAM errors are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Rotates `user`'s access keys. See the module docs for the steps.
    pub async fn rotate_keys(&self, user: &str) -> Result<RotationReport, RotationError> {
        let mut report = RotationReport::new(user);
        let result = self.rotate(user, &mut report).await;
        report.handler_log.extend(self.handler.take_log());
        match result {
            Ok(()) => {
                report.outcome = report.retire_outcome();
                report.error = report.retire_problems();
                Ok(report)
            }
            Err(failure) => {
                report.outcome = match failure {
                    RotationFailure::Orphaned { .. }
                    | RotationFailure::StrayKey { .. }
                    | RotationFailure::CreateUncertain { .. } => Outcome::NeedsManualAction,
                    RotationFailure::UnknownUser { .. } => Outcome::BadInput,
                    _ => Outcome::Failed,
                };
                report.error = Some(failure.to_string());
                Err(RotationError {
                    failure,
                    report: Box::new(report),
                })
            }
        }
    }

    async fn rotate(&self, user: &str, report: &mut RotationReport) -> Result<(), RotationFailure> {
        // 1. List. An unknown user is an input error, not an IAM outage.
        let keys = timed(
            report,
            Step::ListKeys,
            None,
            self.iam.list_access_keys(user),
        )
        .await
        .map_err(|cause| match cause.kind {
            IamErrorKind::NoSuchEntity => RotationFailure::UnknownUser {
                user: user.to_string(),
            },
            _ => RotationFailure::ListKeys {
                user: user.to_string(),
                cause,
            },
        })?;
        report.old_keys = keys
            .iter()
            .map(|k| OldKeyReport {
                access_key_id: k.access_key_id.clone(),
                status: k.status.clone(),
                action: OldKeyAction::Unchanged,
            })
            .collect();

        // 2. Two active keys: either may be in use, so refuse rather than guess.
        let active: Vec<&AccessKeyInfo> = keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .collect();
        if let [first, second, ..] = active.as_slice() {
            return Err(RotationFailure::TwoActiveKeys {
                user: user.to_string(),
                keys: [first.access_key_id.clone(), second.access_key_id.clone()],
            });
        }
        let rotation = Rotation {
            user_name: user.to_string(),
            current_key_id: active.first().map(|k| k.access_key_id.clone()),
        };

        // 3. Preflight: the last point where failing changes nothing.
        let preflight = timed(
            report,
            Step::Preflight,
            None,
            self.interruptible(self.handler.preflight(&rotation)),
        )
        .await;
        report.handler_log.extend(self.handler.take_log());
        preflight.map_err(|cause| RotationFailure::Preflight { cause })?;
        if self.interrupt.is_triggered() {
            return Err(RotationFailure::Preflight {
                cause: Interrupt::error(),
            });
        }

        // 4. Create, making room only when IAM says the user is at its limit.
        let new_key = self.create_key(user, &keys, report).await?;
        let new_key_id = new_key.access_key_id.clone();
        // Said now, so that even a killed keyrot leaves the id behind.
        tracing::info!("created key {new_key_id} for user {user}; handing it to the handler");

        // 5. Handle, exactly once. On failure (or an interrupt) the new key
        // must not outlive it.
        let handled = timed(
            report,
            Step::Handle,
            Some(&new_key_id),
            self.interruptible(self.handler.handle(&rotation, &new_key)),
        )
        .await;
        drop(new_key);
        report.handler_log.extend(self.handler.take_log());
        if let Err(cause) = handled {
            let made_room: Vec<String> = report
                .old_keys
                .iter()
                .filter(|k| k.action == OldKeyAction::DeletedToMakeRoom)
                .map(|k| k.access_key_id.clone())
                .collect();
            let deleted = timed(
                report,
                Step::DeleteNewKey,
                Some(&new_key_id),
                self.retry
                    .run(|| self.delete_tolerating_missing(user, &new_key_id)),
            )
            .await;
            return Err(match deleted {
                Ok(()) => {
                    report.new_key = Some(NewKeyReport {
                        access_key_id: new_key_id.clone(),
                        state: NewKeyState::Deleted,
                    });
                    RotationFailure::Handler {
                        key: new_key_id,
                        cause,
                        made_room,
                    }
                }
                Err(delete) => {
                    report.new_key = Some(NewKeyReport {
                        access_key_id: new_key_id.clone(),
                        state: NewKeyState::Orphaned,
                    });
                    RotationFailure::Orphaned {
                        user: user.to_string(),
                        key: new_key_id,
                        cause,
                        delete,
                        made_room,
                    }
                }
            });
        }
        report.new_key = Some(NewKeyReport {
            access_key_id: new_key_id,
            state: NewKeyState::Propagated,
        });

        // 6. Retire every old key step 4 did not already delete.
        for key in &keys {
            let already_deleted = report.old_keys.iter().any(|k| {
                k.access_key_id == key.access_key_id && k.action == OldKeyAction::DeletedToMakeRoom
            });
            if !already_deleted {
                let action = self.retire(user, key, report).await;
                report.set_old_key(&key.access_key_id, action);
            }
        }
        Ok(())
    }

    /// Step 4. Returns the new key.
    async fn create_key(
        &self,
        user: &str,
        keys: &[AccessKeyInfo],
        report: &mut RotationReport,
    ) -> Result<NewAccessKey, RotationFailure> {
        let cause = match timed(
            report,
            Step::CreateKey,
            None,
            self.iam.create_access_key(user),
        )
        .await
        {
            Ok(key) => return Ok(key),
            Err(cause) => cause,
        };
        let not_active: Vec<&AccessKeyInfo> = keys
            .iter()
            .filter(|k| k.status != KeyStatus::Active)
            .collect();
        // Any other error, or nothing to make room with: fail, deleting
        // nothing the user had.
        if cause.kind != IamErrorKind::LimitExceeded || not_active.is_empty() {
            return Err(self
                .create_failed(user, keys, cause, Vec::new(), report)
                .await);
        }
        let mut made_room = Vec::new();
        for key in not_active {
            let id = &key.access_key_id;
            timed(
                report,
                Step::MakeRoom,
                Some(id),
                self.retry.run(|| self.delete_tolerating_missing(user, id)),
            )
            .await
            .map_err(|cause| RotationFailure::MakeRoom {
                user: user.to_string(),
                key: id.clone(),
                cause,
            })?;
            report.set_old_key(id, OldKeyAction::DeletedToMakeRoom);
            made_room.push(id.clone());
        }
        match timed(
            report,
            Step::CreateKey,
            None,
            self.iam.create_access_key(user),
        )
        .await
        {
            Ok(key) => Ok(key),
            Err(cause) => Err(self
                .create_failed(user, keys, cause, made_room, report)
                .await),
        }
    }

    /// The failure for a create that did not return a key. `CreateAccessKey`
    /// is not idempotent: after a timeout or a dropped connection, IAM may
    /// have made the key all the same, and nobody would hold it. So look,
    /// and delete any key that was not there at step 1.
    async fn create_failed(
        &self,
        user: &str,
        keys: &[AccessKeyInfo],
        cause: IamError,
        made_room: Vec<String>,
        report: &mut RotationReport,
    ) -> RotationFailure {
        let mut removed = Vec::new();
        if cause.is_transient() {
            let now = match timed(
                report,
                Step::ListKeys,
                None,
                self.retry.run(|| self.iam.list_access_keys(user)),
            )
            .await
            {
                Ok(now) => now,
                Err(list) => {
                    return RotationFailure::CreateUncertain {
                        user: user.to_string(),
                        cause,
                        list,
                    };
                }
            };
            let known = |id: &str| keys.iter().any(|k| k.access_key_id == id);
            for stray in now.iter().filter(|k| !known(&k.access_key_id)) {
                let id = &stray.access_key_id;
                let deleted = timed(
                    report,
                    Step::DeleteNewKey,
                    Some(id),
                    self.retry.run(|| self.delete_tolerating_missing(user, id)),
                )
                .await;
                let state = if deleted.is_ok() {
                    NewKeyState::Deleted
                } else {
                    NewKeyState::Orphaned
                };
                report.new_key = Some(NewKeyReport {
                    access_key_id: id.clone(),
                    state,
                });
                if let Err(delete) = deleted {
                    return RotationFailure::StrayKey {
                        user: user.to_string(),
                        key: id.clone(),
                        cause,
                        delete,
                    };
                }
                removed.push(id.clone());
            }
        }
        RotationFailure::CreateKey {
            user: user.to_string(),
            cause,
            made_room,
            removed,
        }
    }

    /// Step 6 for one key: delete it, or at least make sure it is not active.
    async fn retire(
        &self,
        user: &str,
        key: &AccessKeyInfo,
        report: &mut RotationReport,
    ) -> OldKeyAction {
        let id = &key.access_key_id;
        let deleted = timed(
            report,
            Step::DeleteOldKey,
            Some(id),
            self.retry.run(|| self.iam.delete_access_key(user, id)),
        )
        .await;
        let delete_error = match deleted {
            Ok(()) => return OldKeyAction::Deleted,
            // Deleted behind our back (or by an eventually consistent retry):
            // the goal is reached, so this is not a failure.
            Err(err) if err.kind == IamErrorKind::NoSuchEntity => return OldKeyAction::AlreadyGone,
            Err(err) => err.to_string(),
        };
        if key.status != KeyStatus::Active {
            return OldKeyAction::DeleteFailed { delete_error };
        }
        let deactivated = timed(
            report,
            Step::DeactivateOldKey,
            Some(id),
            self.retry.run(|| {
                self.iam
                    .update_access_key_status(user, id, KeyStatus::Inactive)
            }),
        )
        .await;
        match deactivated {
            Ok(()) => OldKeyAction::Deactivated { delete_error },
            // The delete went through after all (its answer was lost).
            Err(err) if err.kind == IamErrorKind::NoSuchEntity => OldKeyAction::AlreadyGone,
            Err(err) => OldKeyAction::StillActive {
                delete_error,
                deactivate_error: err.to_string(),
            },
        }
    }

    /// Runs a handler call unless the operator interrupts first: then the
    /// call is dropped (the sandbox stops with it) and counts as failed.
    async fn interruptible(
        &self,
        call: impl Future<Output = Result<(), HandlerError>>,
    ) -> Result<(), HandlerError> {
        tokio::select! {
            result = call => result,
            () = self.interrupt.wait() => Err(Interrupt::error()),
        }
    }

    /// Deletes a key, counting `NoSuchEntity` as success: the key is gone
    /// either way.
    async fn delete_tolerating_missing(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        match self.iam.delete_access_key(user, key_id).await {
            Err(err) if err.kind == IamErrorKind::NoSuchEntity => Ok(()),
            other => other,
        }
    }
}

/// Runs one step, recording its duration and result in the report.
async fn timed<T, E: Display>(
    report: &mut RotationReport,
    step: Step,
    key_id: Option<&str>,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let result = fut.await;
    report.steps.push(StepRecord {
        step,
        key_id: key_id.map(str::to_string),
        duration_ms: (start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| e.to_string()),
    });
    result
}
