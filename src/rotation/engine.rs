//! The steps of one run, in order, over the journaled [`JournalRecord`].
//!
//! Every step passes through [`Run::step`] (timed into the report, with a
//! test hook on each side) and every change of phase through
//! [`Run::advance`] (written to the journal before the side effect it
//! announces). Failure edges are explicit: each returns the
//! [`RotationFailure`] that says what state the keys are in.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::failure::{GiveUp, RotationError, RotationFailure};
use super::report::{
    NewKeyReport, NewKeyState, OldKeyAction, OldKeyReport, Outcome, RotationReport, SkipReport,
    Step, StepRecord, human_duration, parse_rfc3339, unix_now,
};
use super::state::{JournalError, JournalRecord, Phase, RetireMode};
use super::{Interrupt, KeyRotator};
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog, NewKeyHandler, Rotation};
use crate::iam::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::retry::RetryPolicy;
use crate::testhook;
use crate::verify::arn_is_user;

/// A create is retried on throttling for at most this long: IAM said no,
/// so trying again cannot make a second key.
const CREATE_THROTTLE_DEADLINE: Duration = Duration::from_secs(120);

/// Keys created this long before the interrupted run started cannot be its.
const CLOCK_SKEW: u64 = 300;

/// How a resumed journal ended.
enum Resumed {
    /// The interrupted rotation is complete now.
    Finished,
    /// The interrupted run was undone; rotate afresh.
    Afresh,
}

/// One run on one user.
pub(super) struct Run<'a, I, H> {
    rot: &'a KeyRotator<I, H>,
    user: &'a str,
    report: RotationReport,
    log: std::sync::Arc<HandlerLog>,
    /// The journal record, as last written.
    record: Option<JournalRecord>,
    /// Leave the journal for the next run to finish (a key may be left).
    keep_journal: bool,
}

impl<'a, I: Iam, H: NewKeyHandler> Run<'a, I, H> {
    pub(super) fn new(rot: &'a KeyRotator<I, H>, user: &'a str) -> Self {
        let mut report = RotationReport::new(user);
        report.dry_run = rot.options.dry_run;
        if let Some(caller) = &rot.caller {
            report.account = Some(caller.account.clone());
            report.caller_arn = Some(caller.arn.clone());
        }
        Self {
            rot,
            user,
            report,
            log: std::sync::Arc::new(HandlerLog::new()),
            record: None,
            keep_journal: false,
        }
    }

    pub(super) async fn execute(mut self) -> Result<RotationReport, RotationError> {
        let result = self.run().await;
        if !self.keep_journal
            && !self.rot.options.dry_run
            && let Err(err) = self.rot.journal.clear(self.user).await
        {
            // The run itself is over; a rerun finds the record and, since
            // IAM matches it, finishes the same way.
            tracing::warn!("could not remove the journal: {err}");
        }
        self.report.handler_log.extend(self.log.take());
        match result {
            Ok(()) => {
                if self.report.outcome == Outcome::Failed {
                    self.report.outcome = self.report.retire_outcome();
                    self.report.error = self.report.retire_problems();
                }
                Ok(self.report)
            }
            Err(failure) => {
                self.report.outcome = failure.outcome();
                self.report.error = Some(failure.to_string());
                Err(RotationError {
                    failure,
                    report: Box::new(self.report),
                })
            }
        }
    }

    async fn run(&mut self) -> Result<(), RotationFailure> {
        let pending = if self.rot.options.dry_run {
            self.rot.journal.peek(self.user).await
        } else {
            self.rot.journal.begin(self.user).await
        }
        .map_err(|cause| self.journal_failure(cause))?;
        if let Some(record) = pending.filter(|r| r.phase != Phase::Claimed) {
            if self.rot.options.dry_run {
                self.report.plan.push(format!(
                    "finish the interrupted run from {} (phase {}) first",
                    record.owner,
                    record.phase.as_str()
                ));
            } else if let Resumed::Finished = self.resume(record).await? {
                return Ok(());
            }
        }
        self.rotate().await
    }

    fn journal_failure(&mut self, cause: JournalError) -> RotationFailure {
        if cause.is_bad_input() {
            self.keep_journal = true;
            RotationFailure::JournalMismatch {
                user: self.user.to_string(),
                what: cause.to_string(),
            }
        } else {
            if matches!(cause, JournalError::Busy { .. }) {
                // Not ours to clear.
                self.keep_journal = true;
            }
            RotationFailure::Journal { cause }
        }
    }

    // ---- a fresh rotation ---------------------------------------------------

    async fn rotate(&mut self) -> Result<(), RotationFailure> {
        let user = self.user;
        // List. An unknown user is an input error, not an IAM outage.
        let keys = self
            .step(Step::ListKeys, None, self.rot.iam.list_access_keys(user))
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
        self.report.old_keys = keys
            .iter()
            .map(|k| OldKeyReport {
                access_key_id: k.access_key_id.clone(),
                status: k.status.clone(),
                create_date: k.create_date.clone(),
                action: OldKeyAction::Unchanged,
            })
            .collect();

        // Two active keys: either may be in use, so refuse rather than guess.
        let active: Vec<&AccessKeyInfo> = keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .collect();
        if let [first, second, ..] = active.as_slice() {
            let keys = [self.describe(first).await, self.describe(second).await];
            return Err(RotationFailure::TwoActiveKeys {
                user: user.to_string(),
                keys,
            });
        }
        let current = active.first().copied();

        // Young enough: nothing to do.
        if let (Some(threshold), Some(key)) = (self.rot.options.older_than, current)
            && let Some(age) = key_age(key)
            && age < threshold
        {
            self.report.outcome = Outcome::Skipped;
            self.report.skipped = Some(SkipReport {
                age: human_duration(age),
                threshold: human_duration(threshold),
            });
            return Ok(());
        }

        let rotation = Rotation {
            user_name: user.to_string(),
            current_key_id: current.map(|k| k.access_key_id.clone()),
            // IAM users live in the caller's account.
            account_id: self.rot.caller.as_ref().map(|c| c.account.clone()),
        };

        // Preflight: the last point where failing changes nothing.
        let log = self.log.clone();
        let preflight = self.rot.handler.preflight(&rotation, &log);
        let preflight = self
            .step(Step::Preflight, None, self.rot.guarded(preflight))
            .await;
        preflight.map_err(|cause| RotationFailure::Preflight { cause })?;
        if self.rot.interrupt.is_triggered() {
            return Err(RotationFailure::Preflight {
                cause: Interrupt::error(),
            });
        }

        if self.rot.options.dry_run {
            self.plan(&keys, current);
            self.report.outcome = Outcome::WouldRotate;
            return Ok(());
        }

        // Create, journaled first so a kill from here on can be repaired.
        let keys_before: Vec<String> = keys.iter().map(|k| k.access_key_id.clone()).collect();
        self.advance(JournalRecord {
            version: JournalRecord::VERSION,
            account: self.rot.caller.as_ref().map(|c| c.account.clone()),
            user: user.to_string(),
            phase: Phase::CreateSent,
            keys_before,
            active_before: current.map(|k| k.access_key_id.clone()),
            new_key: None,
            retire: self.rot.options.retire,
            started: unix_now(),
            owner: super::owner_id(),
            lease_until: 0,
        })
        .await
        .map_err(|cause| RotationFailure::Journal { cause })?;
        let new_key = self.create_key(&keys).await?;
        let new_key_id = new_key.access_key_id.clone();
        // Said now, so that even a killed keyrot leaves the id behind.
        tracing::info!("created key {new_key_id} for user {user}");
        testhook::hit("created-key");

        if let Err(cause) = self.advance_to(Phase::Created, Some(&new_key_id)).await {
            return Err(self.give_up(&new_key_id, GiveUp::Journal(cause)).await);
        }
        if let Err(why) = self.check_keys(&keys, &new_key_id, current).await {
            return Err(self.give_up(&new_key_id, why).await);
        }
        if let Err(why) = self.verify(&new_key).await {
            return Err(self.give_up(&new_key_id, why).await);
        }

        // Handle, exactly once.
        let handle = self.rot.handler.handle(&rotation, &new_key, &log);
        let handled = self
            .step(Step::Handle, Some(&new_key_id), self.rot.guarded(handle))
            .await;
        drop(new_key);
        if let Err(cause) = handled {
            return Err(self.give_up(&new_key_id, GiveUp::Handler(cause)).await);
        }
        self.report.new_key = Some(NewKeyReport {
            access_key_id: new_key_id.clone(),
            state: NewKeyState::Propagated,
        });
        if let Err(err) = self.advance_to(Phase::Propagated, Some(&new_key_id)).await {
            // Retiring now still ends the run in a good state; only a crash
            // in the next few calls would need an operator.
            tracing::warn!("could not record that the new key is propagated: {err}");
        }

        // Retire every old key not already deleted to make room.
        for key in &keys {
            let made_room = self.report.old_keys.iter().any(|k| {
                k.access_key_id == key.access_key_id && k.action == OldKeyAction::DeletedToMakeRoom
            });
            if !made_room {
                let action = self
                    .retire(&key.access_key_id, &key.status, self.rot.options.retire)
                    .await;
                self.report.set_old_key(&key.access_key_id, action);
            }
        }
        Ok(())
    }

    /// What a rotation would do now, for a dry run.
    fn plan(&mut self, keys: &[AccessKeyInfo], current: Option<&AccessKeyInfo>) {
        let not_active: Vec<&str> = keys
            .iter()
            .filter(|k| k.status != KeyStatus::Active)
            .map(|k| k.access_key_id.as_str())
            .collect();
        let mut plan = Vec::new();
        if keys.len() >= 2 && !not_active.is_empty() {
            plan.push(format!(
                "make room: delete non-active key(s) {}",
                not_active.join(", ")
            ));
        }
        plan.push("create a new access key".to_string());
        if self.rot.verifier.is_some() {
            plan.push("verify it with sts:GetCallerIdentity".to_string());
        }
        plan.push("hand it to the handler".to_string());
        if let Some(key) = current {
            plan.push(format!(
                "{} the old key {}",
                match self.rot.options.retire {
                    RetireMode::Delete => "delete",
                    RetireMode::Deactivate => "deactivate",
                },
                key.access_key_id
            ));
        }
        self.report.plan = plan;
    }

    /// Creates the new key, making room only when IAM says the user is at
    /// its limit.
    async fn create_key(
        &mut self,
        keys: &[AccessKeyInfo],
    ) -> Result<NewAccessKey, RotationFailure> {
        let user = self.user;
        let cause = match self.create_once().await {
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
            return Err(self.create_failed(keys, cause, Vec::new()).await);
        }
        let mut made_room = Vec::new();
        for key in not_active {
            let id = &key.access_key_id;
            self.delete_key(Step::MakeRoom, id).await.map_err(|cause| {
                RotationFailure::MakeRoom {
                    user: user.to_string(),
                    key: id.clone(),
                    cause,
                }
            })?;
            self.report.set_old_key(id, OldKeyAction::DeletedToMakeRoom);
            made_room.push(id.clone());
        }
        match self.create_once().await {
            Ok(key) => Ok(key),
            Err(cause) => Err(self.create_failed(keys, cause, made_room).await),
        }
    }

    /// One `CreateAccessKey`, retried only while IAM answers that it is
    /// throttling: then it did not act, and trying again cannot make a
    /// second key. Any answer that is not definite is returned for
    /// [`Run::create_failed`] to look into.
    async fn create_once(&mut self) -> Result<NewAccessKey, IamError> {
        let policy = RetryPolicy {
            attempts: u32::MAX,
            deadline: CREATE_THROTTLE_DEADLINE,
            ..self.rot.retry
        };
        let iam = &self.rot.iam;
        let user = self.user;
        let start = Instant::now();
        let attempts = policy
            .run_counted(|| async {
                match iam.create_access_key(user).await {
                    Err(err) if err.kind != IamErrorKind::Throttled => Err(Definite(err)),
                    other => other.map_err(Definite),
                }
            })
            .await;
        let result = attempts.result.map_err(|Definite(err)| err);
        self.record(Step::CreateKey, None, start, &result, Some(attempts.count));
        testhook::hit("after-create-key");
        result
    }

    /// The failure for a create that did not return a key. `CreateAccessKey`
    /// is not idempotent: after a timeout or a dropped connection IAM may
    /// have made the key all the same, and nobody would hold it. So look,
    /// and delete any key that was not there before.
    async fn create_failed(
        &mut self,
        keys: &[AccessKeyInfo],
        cause: IamError,
        made_room: Vec<String>,
    ) -> RotationFailure {
        let user = self.user;
        let mut removed = Vec::new();
        if cause.may_have_happened() {
            let retry = self.rot.retry;
            let now = match self
                .step(
                    Step::ListKeys,
                    None,
                    retry.run(|| self.rot.iam.list_access_keys(user)),
                )
                .await
            {
                Ok(now) => now,
                Err(list) => {
                    // The journal still says `create-sent`: a rerun lists
                    // and deletes what this call made.
                    self.keep_journal = true;
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
                let deleted = self.delete_key(Step::DeleteNewKey, id).await;
                let state = if deleted.is_ok() {
                    NewKeyState::Deleted
                } else {
                    NewKeyState::Orphaned
                };
                self.report.new_key = Some(NewKeyReport {
                    access_key_id: id.clone(),
                    state,
                });
                if let Err(delete) = deleted {
                    self.keep_journal = true;
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

    /// Lists the keys again after the create. A key that is neither ours nor
    /// known from before means another process is rotating this user: ours
    /// must go (it was never handed out), theirs stays.
    async fn check_keys(
        &mut self,
        before: &[AccessKeyInfo],
        new_key: &str,
        current: Option<&AccessKeyInfo>,
    ) -> Result<(), GiveUp> {
        let retry = self.rot.retry;
        let user = self.user;
        let now = match self
            .step(
                Step::CheckKeys,
                None,
                retry.run(|| self.rot.iam.list_access_keys(user)),
            )
            .await
        {
            Ok(now) => now,
            // Cannot tell: go on. The two-key limit still keeps a second
            // run from creating alongside this one.
            Err(err) => {
                tracing::warn!("could not list the keys again after the create: {err}");
                return Ok(());
            }
        };
        let known = |id: &str| id == new_key || before.iter().any(|k| k.access_key_id == id);
        let appeared: Vec<&str> = now
            .iter()
            .filter(|k| !known(&k.access_key_id))
            .map(|k| k.access_key_id.as_str())
            .collect();
        let active_went = current.filter(|current| {
            !now.iter()
                .any(|k| k.access_key_id == current.access_key_id && k.status == KeyStatus::Active)
        });
        if appeared.is_empty() {
            // Someone retired the active key by hand, and nobody else made
            // one: the new key is now the user's only way in, so go on.
            if let Some(gone) = active_went {
                tracing::warn!(
                    "the active key {} was deleted or deactivated during the run",
                    gone.access_key_id
                );
            }
            return Ok(());
        }
        let mut what = format!("key {} appeared", appeared.join(", "));
        if let Some(gone) = active_went {
            what.push_str(&format!(
                " and the active key {} was deleted or deactivated",
                gone.access_key_id
            ));
        }
        Err(GiveUp::Concurrent(what))
    }

    /// Proves the new key works before anyone gets it: a call signed with
    /// it, retried while IAM catches up, whose identity must be the user.
    async fn verify(&mut self, key: &NewAccessKey) -> Result<(), GiveUp> {
        let Some(verifier) = &self.rot.verifier else {
            self.report.steps.push(StepRecord {
                step: Step::VerifyKey,
                key_id: Some(key.access_key_id.clone()),
                duration_ms: 0.0,
                ok: true,
                attempts: None,
                note: Some("skipped (--no-verify)".into()),
                error: None,
            });
            return Ok(());
        };
        let policy = RetryPolicy {
            attempts: u32::MAX,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            deadline: self.rot.options.verify_timeout,
        };
        let start = Instant::now();
        let attempts = tokio::select! {
            attempts = policy.run_counted(|| verifier.caller_arn(key)) => attempts,
            () = self.rot.interrupt.stopped() => {
                return Err(GiveUp::Handler(Interrupt::error()));
            }
        };
        let account = self.rot.caller.as_ref().map(|c| c.account.as_str());
        let result = match attempts.result {
            Ok(arn) if arn_is_user(&arn, account, self.user) => Ok(()),
            Ok(arn) => Err(format!(
                "AWS accepted it as {arn}, not as user '{}'{}",
                self.user,
                account
                    .map(|a| format!(" of account {a}"))
                    .unwrap_or_default()
            )),
            Err(err) => Err(format!(
                "AWS still rejected it after {} attempts over {} (--verify-timeout {}): {err}",
                attempts.count,
                human_duration(start.elapsed()),
                human_duration(self.rot.options.verify_timeout)
            )),
        };
        self.record(
            Step::VerifyKey,
            Some(&key.access_key_id),
            start,
            &result,
            Some(attempts.count),
        );
        testhook::hit("after-verify-key");
        result.map_err(GiveUp::Verify)
    }

    /// Deletes a new key after a later step failed, and says so.
    async fn give_up(&mut self, key: &str, why: GiveUp) -> RotationFailure {
        let user = self.user;
        let made_room: Vec<String> = self
            .report
            .old_keys
            .iter()
            .filter(|k| k.action == OldKeyAction::DeletedToMakeRoom)
            .map(|k| k.access_key_id.clone())
            .collect();
        let deleted = self.delete_key(Step::DeleteNewKey, key).await;
        match deleted {
            Ok(()) => {
                self.report.new_key = Some(NewKeyReport {
                    access_key_id: key.to_string(),
                    state: NewKeyState::Deleted,
                });
                RotationFailure::NewKeyDeleted {
                    key: key.to_string(),
                    why,
                    made_room,
                }
            }
            Err(delete) => {
                self.report.new_key = Some(NewKeyReport {
                    access_key_id: key.to_string(),
                    state: NewKeyState::Orphaned,
                });
                // The journal says `created`: a rerun deletes the key.
                self.keep_journal = true;
                RotationFailure::Orphaned {
                    user: user.to_string(),
                    key: key.to_string(),
                    why,
                    delete,
                    made_room,
                }
            }
        }
    }

    /// Retires one old key: delete it (or deactivate it, as asked), or at
    /// least make sure it is not active.
    async fn retire(&mut self, id: &str, status: &KeyStatus, mode: RetireMode) -> OldKeyAction {
        let user = self.user;
        let retry = self.rot.retry;
        let iam = &self.rot.iam;
        if mode == RetireMode::Deactivate {
            if *status != KeyStatus::Active {
                return OldKeyAction::KeptInactive;
            }
            let deactivated = self.deactivate(id).await;
            match deactivated {
                Ok(()) => return OldKeyAction::KeptInactive,
                Err(err) if err.kind == IamErrorKind::NoSuchEntity => {
                    return OldKeyAction::AlreadyGone;
                }
                // Still active next to the new key: delete it instead.
                Err(err) => tracing::warn!("could not deactivate old key {id}: {err}; deleting it"),
            }
        }
        let deleted = self
            .step(
                Step::DeleteOldKey,
                Some(id),
                retry.run(|| iam.delete_access_key(user, id)),
            )
            .await;
        let delete_error = match deleted {
            Ok(()) => return OldKeyAction::Deleted,
            // Deleted behind our back (or by an eventually consistent retry):
            // the goal is reached, so this is not a failure.
            Err(err) if err.kind == IamErrorKind::NoSuchEntity => return OldKeyAction::AlreadyGone,
            Err(err) => err.to_string(),
        };
        if *status != KeyStatus::Active {
            return OldKeyAction::DeleteFailed { delete_error };
        }
        let deactivated = self.deactivate(id).await;
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

    /// Deletes a key this run (or the run it resumes) made or must remove,
    /// retrying transient errors; `NoSuchEntity` counts as deleted.
    async fn delete_key(&mut self, step: Step, id: &str) -> Result<(), IamError> {
        let (rot, user) = (self.rot, self.user);
        let retry = rot.retry;
        self.step(
            step,
            Some(id),
            retry.run(|| delete_tolerating_missing(&rot.iam, user, id)),
        )
        .await
    }

    /// Sets an old key `Inactive`, retrying transient errors.
    async fn deactivate(&mut self, id: &str) -> Result<(), IamError> {
        let (rot, user) = (self.rot, self.user);
        let retry = rot.retry;
        self.step(
            Step::DeactivateOldKey,
            Some(id),
            retry.run(|| {
                rot.iam
                    .update_access_key_status(user, id, KeyStatus::Inactive)
            }),
        )
        .await
    }

    // ---- resuming an interrupted run ----------------------------------------

    /// Finishes what an interrupted run left, from its journal and what IAM
    /// holds now. Never deletes a key the journal did not create, never the
    /// only active key; if IAM does not match the journal, stops (exit 2).
    async fn resume(&mut self, record: JournalRecord) -> Result<Resumed, RotationFailure> {
        let user = self.user;
        tracing::info!(
            "resuming the interrupted run of {} on user {user} (phase {})",
            record.owner,
            record.phase.as_str()
        );
        let retry = self.rot.retry;
        let keys = self
            .step(
                Step::ListKeys,
                None,
                retry.run(|| self.rot.iam.list_access_keys(user)),
            )
            .await
            .map_err(|cause| match cause.kind {
                IamErrorKind::NoSuchEntity => self.mismatch(format!(
                    "the journal of an interrupted run names user '{user}', which no longer exists"
                )),
                _ => RotationFailure::ListKeys {
                    user: user.to_string(),
                    cause,
                },
            })?;
        let find = |id: &str| keys.iter().find(|k| k.access_key_id == id);
        let is_active = |id: &str| find(id).is_some_and(|k| k.status == KeyStatus::Active);
        let new_key = record.new_key.clone();
        let ours =
            |id: &str| record.keys_before.iter().any(|k| k == id) || new_key.as_deref() == Some(id);

        match record.phase {
            Phase::Claimed => Ok(Resumed::Afresh),
            Phase::CreateSent | Phase::Created => {
                if let Some(active) = &record.active_before
                    && !is_active(active)
                {
                    return Err(self.mismatch(format!(
                        "an interrupted run on user '{user}' (phase {}) found key {active} \
                         active, and it no longer is",
                        record.phase.as_str()
                    )));
                }
                let strays: Vec<&AccessKeyInfo> = match &new_key {
                    Some(id) => find(id).into_iter().collect(),
                    None => keys.iter().filter(|k| !ours(&k.access_key_id)).collect(),
                };
                let foreign: Vec<&AccessKeyInfo> =
                    keys.iter().filter(|k| !ours(&k.access_key_id)).collect();
                if new_key.is_some() && !foreign.is_empty() {
                    return Err(self.mismatch(format!(
                        "user '{user}' has key(s) {} that the interrupted run did not know",
                        ids(&foreign)
                    )));
                }
                if new_key.is_none() {
                    // The create's answer never reached the journal: a key
                    // made after the run started is its; more than one, or
                    // an older one, is someone else's doing.
                    let older = strays.iter().any(|k| {
                        k.create_date
                            .as_deref()
                            .and_then(parse_rfc3339)
                            .is_some_and(|t| t + CLOCK_SKEW < record.started)
                    });
                    if strays.len() > 1 || older {
                        return Err(self.mismatch(format!(
                            "user '{user}' has key(s) {} that the interrupted run did not know, \
                             and cannot tell which one it created",
                            ids(&strays)
                        )));
                    }
                }
                let mut deleted = Vec::new();
                for stray in strays {
                    let id = stray.access_key_id.clone();
                    let result = self.delete_key(Step::DeleteNewKey, &id).await;
                    if let Err(delete) = result {
                        self.keep_journal = true;
                        self.report.new_key = Some(NewKeyReport {
                            access_key_id: id.clone(),
                            state: NewKeyState::Orphaned,
                        });
                        return Err(RotationFailure::Orphaned {
                            user: user.to_string(),
                            why: GiveUp::Concurrent(format!(
                                "an interrupted run had created key {id} and not handed it over"
                            )),
                            key: id,
                            delete,
                            made_room: Vec::new(),
                        });
                    }
                    deleted.push(id);
                }
                let action = if deleted.is_empty() {
                    "nothing to undo; rotating afresh".to_string()
                } else {
                    format!(
                        "deleted key {} that it had created but not confirmed propagated; \
                         rotating afresh",
                        deleted.join(", ")
                    )
                };
                self.report.resumed_from(&record, action);
                self.rot
                    .journal
                    .clear(user)
                    .await
                    .map_err(|cause| RotationFailure::Journal { cause })?;
                Ok(Resumed::Afresh)
            }
            Phase::Propagated => {
                let Some(new) = new_key.filter(|id| is_active(id)) else {
                    return Err(self.mismatch(format!(
                        "an interrupted run on user '{user}' propagated key {}, which is no \
                         longer active: retiring the old keys would leave none",
                        record.new_key.as_deref().unwrap_or("?")
                    )));
                };
                self.report.old_keys = record
                    .keys_before
                    .iter()
                    .map(|id| OldKeyReport {
                        access_key_id: id.clone(),
                        status: find(id).map_or(KeyStatus::Inactive, |k| k.status.clone()),
                        create_date: find(id).and_then(|k| k.create_date.clone()),
                        action: OldKeyAction::AlreadyGone,
                    })
                    .collect();
                for id in &record.keys_before {
                    if let Some(key) = find(id) {
                        let action = self.retire(id, &key.status, record.retire).await;
                        self.report.set_old_key(id, action);
                    }
                }
                self.report.new_key = Some(NewKeyReport {
                    access_key_id: new.clone(),
                    state: NewKeyState::Propagated,
                });
                self.report.resumed_from(
                    &record,
                    format!(
                        "its new key {new} was propagated: retired the old keys ({})",
                        record.retire.as_str()
                    ),
                );
                Ok(Resumed::Finished)
            }
        }
    }

    fn mismatch(&mut self, what: String) -> RotationFailure {
        self.keep_journal = true;
        RotationFailure::JournalMismatch {
            user: self.user.to_string(),
            what,
        }
    }

    // ---- the seams every step passes ----------------------------------------

    /// Runs one step, recording its duration and result in the report,
    /// with a test hook on each side.
    async fn step<T, E: Display>(
        &mut self,
        step: Step,
        key_id: Option<&str>,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        testhook::hit(&format!("before-{}", step.name()));
        let start = Instant::now();
        let result = fut.await;
        self.record(step, key_id, start, &result, None);
        testhook::hit(&format!("after-{}", step.name()));
        result
    }

    fn record<T, E: Display>(
        &mut self,
        step: Step,
        key_id: Option<&str>,
        start: Instant,
        result: &Result<T, E>,
        attempts: Option<u32>,
    ) {
        self.report.steps.push(StepRecord {
            step,
            key_id: key_id.map(str::to_string),
            duration_ms: (start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            ok: result.is_ok(),
            attempts: attempts.filter(|&n| n > 1),
            note: None,
            error: result.as_ref().err().map(|e| e.to_string()),
        });
    }

    /// Writes the journal before the side effect it announces.
    async fn advance(&mut self, record: JournalRecord) -> Result<(), JournalError> {
        self.rot.journal.save(&record).await?;
        testhook::hit(&format!("saved-{}", record.phase.as_str()));
        self.record = Some(record);
        Ok(())
    }

    async fn advance_to(
        &mut self,
        phase: Phase,
        new_key: Option<&str>,
    ) -> Result<(), JournalError> {
        let Some(mut record) = self.record.clone() else {
            return Ok(());
        };
        record.phase = phase;
        record.new_key = new_key.map(str::to_string);
        self.advance(record).await
    }

    /// A key for a message: id, creation date and last use.
    async fn describe(&self, key: &AccessKeyInfo) -> String {
        let mut text = key.access_key_id.clone();
        if let Some(date) = &key.create_date {
            text.push_str(&format!(", created {date}"));
        }
        match self.rot.iam.access_key_last_used(&key.access_key_id).await {
            Ok(used) => match (used.date, used.service) {
                (Some(date), Some(service)) => {
                    text.push_str(&format!(", last used {date} ({service})"))
                }
                (Some(date), None) => text.push_str(&format!(", last used {date}")),
                _ => text.push_str(", never used"),
            },
            Err(err) => tracing::debug!("no last-used date for {}: {err}", key.access_key_id),
        }
        text
    }
}

impl<I: Iam, H: NewKeyHandler> KeyRotator<I, H> {
    /// Runs a handler call unless the operator interrupts first (then the
    /// call is dropped, the sandbox stops with it, and it counts as
    /// failed), and turns a panic inside it into a handler failure so the
    /// run still ends safely.
    async fn guarded(
        &self,
        call: impl Future<Output = Result<(), HandlerError>>,
    ) -> Result<(), HandlerError> {
        let call = AssertUnwindSafe(call).catch_unwind();
        tokio::select! {
            result = call => result.unwrap_or_else(|panic| Err(HandlerError::new(
                HandlerErrorKind::Trapped,
                format!("the handler call crashed keyrot's host side: {}", panic_message(&panic)),
            ))),
            () = self.interrupt.stopped() => Err(Interrupt::error()),
        }
    }
}

/// The text of a panic payload.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// An IAM error that ends the create's throttling retries.
struct Definite(IamError);

impl Display for Definite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl crate::retry::Retryable for Definite {
    fn is_transient(&self) -> bool {
        self.0.kind == IamErrorKind::Throttled
    }
}

/// Deletes a key, counting `NoSuchEntity` as success: the key is gone either
/// way.
async fn delete_tolerating_missing(
    iam: &impl Iam,
    user: &str,
    key_id: &str,
) -> Result<(), IamError> {
    match iam.delete_access_key(user, key_id).await {
        Err(err) if err.kind == IamErrorKind::NoSuchEntity => Ok(()),
        other => other,
    }
}

/// How old a key is, if IAM said when it was created.
fn key_age(key: &AccessKeyInfo) -> Option<Duration> {
    let created = parse_rfc3339(key.create_date.as_deref()?)?;
    Some(Duration::from_secs(unix_now().saturating_sub(created)))
}

fn ids(keys: &[&AccessKeyInfo]) -> String {
    keys.iter()
        .map(|k| k.access_key_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
