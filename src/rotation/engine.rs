//! The steps of one run, in order, over the journaled [`JournalRecord`].
//!
//! Every step passes through [`Run::step`] (timed into the report, with a
//! test hook on each side) and every change of phase through
//! [`Run::advance`] (written to the journal before the side effect it
//! announces). Failure edges are explicit: each returns the
//! [`RotationFailure`] that says what state the keys are in.
//!
//! The journal outlives any run that does not know how IAM stands: it is
//! removed only when the run ends in a state it saw ([`Run::settle_journal`]
//! and [`RotationFailure::finished`]); every other ending keeps it, and the
//! report says so.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::failure::{GiveUp, RotationError, RotationFailure};
use super::report::{
    NewKeyReport, NewKeyState, OldKeyAction, OldKeyReport, Outcome, RotationReport, SkipReport,
    Step, StepRecord, human_duration, parse_rfc3339, rfc3339, unix_now,
};
use super::state::{CREATE_LANDS_WITHIN, JournalError, JournalRecord, Phase, RetireMode};
use super::{Interrupt, KeyRotator, resume};
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog, NewKeyHandler, Rotation};
use crate::iam::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::retry::RetryPolicy;
use crate::testhook;
use crate::verify::arn_is_user;

/// A create is retried on throttling for at most this long: IAM said no,
/// so trying again cannot make a second key.
const CREATE_THROTTLE_DEADLINE: Duration = Duration::from_secs(120);

/// How a resumed journal ended.
enum Resumed {
    /// The interrupted rotation is complete now.
    Finished,
    /// The interrupted run was undone; rotate afresh.
    Afresh,
}

/// What the journal holds for the user, as far as this run knows.
enum Held {
    /// Not known (reading it failed), or not this run's (another run holds
    /// the user): never touched.
    Unknown,
    /// Nothing a later run needs: no record, or only this run's claim.
    Nothing,
    /// A record a later run needs unless this run ends in a state it saw.
    Record(JournalRecord),
}

/// One run on one user.
pub(super) struct Run<'a, I, H> {
    rot: &'a KeyRotator<I, H>,
    user: &'a str,
    report: RotationReport,
    log: std::sync::Arc<HandlerLog>,
    /// The journal record, as this run last wrote it.
    record: Option<JournalRecord>,
    /// What the journal holds now.
    held: Held,
    /// The start of an interrupted run whose create may still be applied:
    /// this run's record keeps it, so that a key it makes is recognised.
    window: Option<u64>,
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
            held: Held::Unknown,
            window: None,
        }
    }

    pub(super) async fn execute(mut self) -> Result<RotationReport, RotationError> {
        let result = self.run().await;
        if !self.rot.options.dry_run {
            self.settle_journal(&result).await;
        }
        self.report.handler_log.extend(self.log.take());
        match result {
            Ok(()) => {
                if self.report.outcome == Outcome::Failed {
                    self.report.outcome = self.report.retire_outcome();
                    self.report.error = self.report.retire_problems();
                }
                if let (Some(error), Some(journal)) = (&mut self.report.error, &self.report.journal)
                {
                    error.push_str(&format!("; {journal}"));
                }
                Ok(self.report)
            }
            Err(failure) => {
                self.report.outcome = failure.outcome();
                let mut error = failure.to_string();
                if let Some(journal) = &self.report.journal {
                    error.push_str(&format!("; {journal}"));
                }
                self.report.error = Some(error);
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
            // Beginning may wait for another run's lock (`--wait-lock`):
            // the operator can stop that wait.
            tokio::select! {
                begun = self.rot.journal.begin(self.user) => begun,
                () = self.rot.interrupt.stopped() => return Err(RotationFailure::NotStarted {
                    why: "interrupted while waiting for another run on this user".into(),
                }),
            }
        }
        .map_err(|cause| self.journal_failure(cause))?;
        let Some(record) = pending.filter(|r| r.phase != Phase::Claimed) else {
            self.held = Held::Nothing;
            return self.rotate(None).await;
        };
        self.held = Held::Record(record.clone());
        if self.rot.options.dry_run {
            return self.plan_resume(record).await;
        }
        match self.resume(record).await? {
            Resumed::Finished => Ok(()),
            Resumed::Afresh => self.rotate(None).await,
        }
    }

    fn journal_failure(&mut self, cause: JournalError) -> RotationFailure {
        // Whatever the journal holds is not known, or not ours: untouched.
        self.held = Held::Unknown;
        if cause.is_bad_input() {
            RotationFailure::JournalMismatch {
                user: self.user.to_string(),
                what: cause.to_string(),
            }
        } else {
            RotationFailure::Journal { cause }
        }
    }

    /// Removes the journal only when the run ended in a state it saw; keeps
    /// it (and lets go of any lease) otherwise, and says so in the report.
    async fn settle_journal(&mut self, result: &Result<(), RotationFailure>) {
        let user = self.user;
        let finished = match result {
            Ok(()) => self.report.retire_outcome() != Outcome::NeedsManualAction,
            Err(failure) => failure.finished(),
        };
        let lost = matches!(result, Err(failure) if failure.is_lost());
        let mismatch = matches!(result, Err(RotationFailure::JournalMismatch { .. }));
        match std::mem::replace(&mut self.held, Held::Unknown) {
            Held::Unknown => {}
            // Another run took the record over: it is that run's now.
            _ if lost => self.rot.journal.release(user).await,
            Held::Nothing => self.clear_journal().await,
            Held::Record(record) if finished => {
                let since = self
                    .window
                    .filter(|&since| unix_now() < since + CREATE_LANDS_WITHIN);
                match since {
                    Some(since) => self.watch(since, record).await,
                    None => self.clear_journal().await,
                }
            }
            Held::Record(record) => {
                self.rot.journal.release(user).await;
                let phase = record.phase.as_str();
                self.report.journal = Some(if mismatch {
                    format!("the journal is kept (phase {phase}) until it is cleared")
                } else {
                    format!(
                        "the journal is kept (phase {phase}): the next keyrot run on user \
                         '{user}' finishes this"
                    )
                });
            }
        }
    }

    async fn clear_journal(&mut self) {
        if let Err(err) = self.rot.journal.clear(self.user).await {
            // The run itself is over; a rerun finds the record and, since
            // IAM matches it, finishes the same way.
            tracing::warn!("could not remove the journal: {err}");
        }
    }

    /// The run is over, but a create of an interrupted run may still be
    /// applied: keep a record of the keys as they are now and of that run's
    /// window, so that the next run recognises the key and deletes it.
    async fn watch(&mut self, since: u64, current: JournalRecord) {
        let user = self.user;
        let retry = self.rot.retry;
        let keys = match retry.run(|| self.rot.iam.list_access_keys(user)).await {
            Ok(keys) => keys,
            Err(err) => {
                // The record as it stands is still true: keep it.
                tracing::warn!("could not list the keys to keep watching: {err}");
                self.rot.journal.release(user).await;
                return;
            }
        };
        let record = JournalRecord {
            phase: Phase::CreateSent,
            keys_before: keys.iter().map(|k| k.access_key_id.clone()).collect(),
            active_before: keys
                .iter()
                .find(|k| k.status == KeyStatus::Active)
                .map(|k| k.access_key_id.clone()),
            new_key: None,
            started: since,
            owner: super::owner_id().to_string(),
            lease_until: 0,
            ..current
        };
        if let Err(err) = self.rot.journal.save(&record).await {
            tracing::warn!("could not write the journal to keep watching: {err}");
        }
        self.rot.journal.release(user).await;
        let until = rfc3339(since + CREATE_LANDS_WITHIN);
        self.report.journal = Some(format!(
            "the journal is kept until {until}: an interrupted run's CreateAccessKey may still be \
             applied by IAM, and the next keyrot run deletes the key it makes"
        ));
    }

    // ---- a fresh rotation ---------------------------------------------------

    /// Rotates afresh. `listed`: keys already known (a dry run's picture of
    /// the keys after a resume), instead of listing them.
    async fn rotate(&mut self, listed: Option<Vec<AccessKeyInfo>>) -> Result<(), RotationFailure> {
        let user = self.user;
        // List. An unknown user is an input error, not an IAM outage.
        let keys = match listed {
            Some(keys) => keys,
            None => self
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
                })?,
        };
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
            .step(Step::Preflight, None, self.rot.guarded(user, preflight))
            .await;
        preflight.map_err(|stop| match stop {
            Stop::Handler(cause) => RotationFailure::Preflight { cause },
            Stop::Lost(cause) => RotationFailure::Lost {
                cause,
                stored: None,
            },
        })?;
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
        let started = self.window.unwrap_or_else(unix_now);
        self.advance(JournalRecord {
            version: JournalRecord::VERSION,
            account: self.rot.caller.as_ref().map(|c| c.account.clone()),
            user: user.to_string(),
            phase: Phase::CreateSent,
            keys_before,
            active_before: current.map(|k| k.access_key_id.clone()),
            new_key: None,
            retire: self.rot.options.retire,
            started,
            owner: super::owner_id().to_string(),
            lease_until: 0,
        })
        .await
        .map_err(|cause| match cause {
            JournalError::Lost { .. } => RotationFailure::Lost {
                cause,
                stored: None,
            },
            cause => RotationFailure::Journal { cause },
        })?;
        let new_key = self.create_key(&keys).await?;
        let new_key_id = new_key.access_key_id.clone();
        // Said now, so that even a killed keyrot leaves the id behind.
        tracing::info!("created key {new_key_id} for user {user}");
        testhook::hit("created-key");

        if let Err(cause) = self.advance_to(Phase::Created, Some(&new_key_id)).await {
            let why = match cause {
                JournalError::Lost { .. } => GiveUp::Lost(cause),
                cause => GiveUp::Journal(cause),
            };
            return Err(self.give_up(&new_key_id, why).await);
        }
        if let Err(why) = self.check_keys(&keys, &new_key_id, current).await {
            return Err(self.give_up(&new_key_id, why).await);
        }
        if let Err(why) = self.verify(&new_key).await {
            return Err(self.give_up(&new_key_id, why).await);
        }
        // A user rotating its own key goes on with the new one once it is
        // handed over and known to work: the old one is about to go.
        // Unverified, only once the old one went.
        let switch_to = self.rotating_self().then(|| new_key.clone());

        // Handle, exactly once.
        let handle = self.rot.handler.handle(&rotation, &new_key, &log);
        let handled = self
            .step(
                Step::Handle,
                Some(&new_key_id),
                self.rot.guarded(user, handle),
            )
            .await;
        drop(new_key);
        let switch_later = match switch_to {
            Some(key) if handled.is_ok() && self.rot.verifier.is_some() => {
                self.rot.iam.sign_with(&key).await;
                None
            }
            other => other,
        };
        match handled {
            Ok(()) => {}
            Err(Stop::Handler(cause)) => {
                return Err(self.give_up(&new_key_id, GiveUp::Handler(cause)).await);
            }
            Err(Stop::Lost(cause)) => {
                return Err(self.give_up(&new_key_id, GiveUp::Lost(cause)).await);
            }
        }
        self.report.new_key = Some(NewKeyReport {
            access_key_id: new_key_id.clone(),
            state: NewKeyState::Propagated,
        });
        match self.advance_to(Phase::Propagated, Some(&new_key_id)).await {
            Ok(()) => {}
            // Another run holds the user now: its keys are its to retire.
            Err(cause @ JournalError::Lost { .. }) => {
                return Err(RotationFailure::Lost {
                    cause,
                    stored: Some(new_key_id),
                });
            }
            Err(err) => {
                // Retiring now still ends the run in a good state; only a
                // crash in the next few calls would need an operator.
                tracing::warn!("could not record that the new key is propagated: {err}");
            }
        }
        if let Some(cause) = self.lost_now() {
            return Err(RotationFailure::Lost {
                cause,
                stored: Some(new_key_id),
            });
        }
        self.confirm_new_key(&new_key_id, &keys).await?;

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
        if let Some(key) = switch_later {
            self.rot.iam.sign_with(&key).await;
        }
        Ok(())
    }

    /// Whether keyrot acts as the user whose key it rotates.
    fn rotating_self(&self) -> bool {
        self.rot
            .caller
            .as_ref()
            .is_some_and(|c| arn_is_user(&c.arn, Some(&c.account), self.user))
    }

    /// Before retiring anything: this run's new key must still exist and be
    /// active. If someone deleted it meanwhile, the destination holds a key
    /// that does not work, and retiring the old keys would leave none.
    async fn confirm_new_key(
        &mut self,
        new_key: &str,
        before: &[AccessKeyInfo],
    ) -> Result<(), RotationFailure> {
        let (rot, user) = (self.rot, self.user);
        let retry = rot.retry;
        let listed = self
            .step(
                Step::ConfirmNewKey,
                Some(new_key),
                retry.run(|| rot.iam.list_access_keys(user)),
            )
            .await;
        let old: Vec<String> = before.iter().map(|k| k.access_key_id.clone()).collect();
        let now = listed.map_err(|cause| RotationFailure::Unconfirmed {
            user: user.to_string(),
            key: new_key.to_string(),
            cause,
        })?;
        let active = now
            .iter()
            .any(|k| k.access_key_id == new_key && k.status == KeyStatus::Active);
        if active {
            return Ok(());
        }
        if let Some(report) = &mut self.report.new_key {
            report.state = NewKeyState::Gone;
        }
        Err(RotationFailure::NewKeyGone {
            user: user.to_string(),
            key: new_key.to_string(),
            old,
        })
    }

    /// Whether this run has stopped holding the user (never, without a
    /// lease).
    fn lost_now(&self) -> Option<JournalError> {
        use futures_util::FutureExt;
        self.rot
            .journal
            .lost(self.user)
            .now_or_never()
            .map(|()| lost_error(self.user))
    }

    /// A dry run's answer for an interrupted run: what the real run would do
    /// about it, then what it would do next.
    async fn plan_resume(&mut self, record: JournalRecord) -> Result<(), RotationFailure> {
        let keys = self.list_for_resume().await?;
        let plan = resume::plan(&record, &keys, unix_now()).map_err(|what| self.mismatch(what))?;
        let mut lines = vec![format!(
            "finish the interrupted run of {} (phase {}, started {})",
            record.owner,
            record.phase.as_str(),
            rfc3339(record.started)
        )];
        for id in &plan.delete {
            lines.push(format!(
                "delete key {id}, which it created and never confirmed handed over"
            ));
        }
        for key in &plan.retire {
            lines.push(format!(
                "{} its old key {}",
                record.retire.as_str(),
                key.access_key_id
            ));
        }
        if let Some(new) = &plan.keep {
            lines.push(format!(
                "keep its new key {new}, which the destination holds"
            ));
        }
        if !plan.afresh {
            lines.push("then stop: that rotation is complete".into());
            self.report.plan = lines;
            self.report.outcome = Outcome::WouldRotate;
            return Ok(());
        }
        self.window = plan.carry_window;
        let after: Vec<AccessKeyInfo> = keys
            .into_iter()
            .filter(|k| !plan.delete.contains(&k.access_key_id))
            .collect();
        let result = self.rotate(Some(after)).await;
        lines.append(&mut self.report.plan);
        self.report.plan = lines;
        result
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
    /// have made the key all the same, or may still make it, and nobody would
    /// hold it. So look: delete the key the call made if it is there, and
    /// otherwise keep the journal (`create-sent`) so that the next run
    /// deletes it once it appears.
    async fn create_failed(
        &mut self,
        keys: &[AccessKeyInfo],
        cause: IamError,
        made_room: Vec<String>,
    ) -> RotationFailure {
        let user = self.user;
        if !cause.may_have_happened() {
            return RotationFailure::CreateKey {
                user: user.to_string(),
                cause,
                made_room,
                removed: Vec::new(),
            };
        }
        let retry = self.rot.retry;
        let listed = self
            .step(
                Step::ListKeys,
                None,
                retry.run(|| self.rot.iam.list_access_keys(user)),
            )
            .await;
        let now = match listed {
            Ok(now) => now,
            // The journal still says `create-sent`: a rerun lists and
            // deletes what this call made.
            Err(list) => {
                return RotationFailure::CreateUncertain {
                    user: user.to_string(),
                    cause,
                    list,
                };
            }
        };
        let known = |id: &str| keys.iter().any(|k| k.access_key_id == id);
        let strays: Vec<&AccessKeyInfo> = now.iter().filter(|k| !known(&k.access_key_id)).collect();
        let stray = match strays.as_slice() {
            [] => {
                let started = self.record.as_ref().map_or_else(unix_now, |r| r.started);
                return RotationFailure::CreateUnanswered {
                    user: user.to_string(),
                    cause,
                    until: rfc3339(started + CREATE_LANDS_WITHIN),
                };
            }
            [one] => one.access_key_id.clone(),
            // Another process made keys too: which one is this call's?
            several => {
                let list = IamError::new(
                    IamErrorKind::Other,
                    format!(
                        "keys {} appeared, and keyrot cannot tell which one the call made",
                        several
                            .iter()
                            .map(|k| k.access_key_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return RotationFailure::CreateUncertain {
                    user: user.to_string(),
                    cause,
                    list,
                };
            }
        };
        let deleted = self.delete_key(Step::DeleteNewKey, &stray).await;
        self.report.new_key = Some(NewKeyReport {
            access_key_id: stray.clone(),
            state: if deleted.is_ok() {
                NewKeyState::Deleted
            } else {
                NewKeyState::Orphaned
            },
        });
        match deleted {
            Ok(()) => RotationFailure::CreateKey {
                user: user.to_string(),
                cause,
                made_room,
                removed: vec![stray],
            },
            Err(delete) => RotationFailure::StrayKey {
                user: user.to_string(),
                key: stray,
                cause,
                delete,
            },
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
            () = self.rot.journal.lost(self.user) => {
                return Err(GiveUp::Lost(lost_error(self.user)));
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
    /// holds now ([`resume::plan`]). If IAM does not match the journal,
    /// stops (exit 2) and keeps the journal.
    async fn resume(&mut self, record: JournalRecord) -> Result<Resumed, RotationFailure> {
        let user = self.user;
        tracing::info!(
            "resuming the interrupted run of {} on user {user} (phase {})",
            record.owner,
            record.phase.as_str()
        );
        let keys = self.list_for_resume().await?;
        let plan = resume::plan(&record, &keys, unix_now()).map_err(|what| self.mismatch(what))?;
        for id in &plan.delete {
            if let Err(delete) = self.delete_key(Step::DeleteNewKey, id).await {
                self.report.new_key = Some(NewKeyReport {
                    access_key_id: id.clone(),
                    state: NewKeyState::Orphaned,
                });
                return Err(RotationFailure::Orphaned {
                    user: user.to_string(),
                    why: GiveUp::Concurrent(format!(
                        "an interrupted run had created key {id} and not handed it over"
                    )),
                    key: id.clone(),
                    delete,
                    made_room: Vec::new(),
                });
            }
        }
        self.report.resumed_from(&record, plan.summary.clone());
        if plan.afresh {
            self.window = plan.carry_window;
            return Ok(Resumed::Afresh);
        }
        let find = |id: &str| keys.iter().find(|k| k.access_key_id == id);
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
        for key in &plan.retire {
            let action = self
                .retire(&key.access_key_id, &key.status, record.retire)
                .await;
            self.report.set_old_key(&key.access_key_id, action);
        }
        self.report.new_key = plan.keep.map(|new| NewKeyReport {
            access_key_id: new,
            state: NewKeyState::Propagated,
        });
        Ok(Resumed::Finished)
    }

    /// Lists the keys to resume against. An unknown user no longer matches
    /// the journal; any other failure keeps it for the next run.
    async fn list_for_resume(&mut self) -> Result<Vec<AccessKeyInfo>, RotationFailure> {
        let user = self.user;
        let retry = self.rot.retry;
        let listed = self
            .step(
                Step::ListKeys,
                None,
                retry.run(|| self.rot.iam.list_access_keys(user)),
            )
            .await;
        listed.map_err(|cause| match cause.kind {
            IamErrorKind::NoSuchEntity => self.mismatch(format!(
                "the journal of an interrupted run names user '{user}', which no longer exists"
            )),
            _ => RotationFailure::ListKeys {
                user: user.to_string(),
                cause,
            },
        })
    }

    fn mismatch(&self, what: String) -> RotationFailure {
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

    /// Writes the journal before the side effect it announces. If the write
    /// fails, the journal holds what it held before, which announced less.
    async fn advance(&mut self, record: JournalRecord) -> Result<(), JournalError> {
        self.rot.journal.save(&record).await?;
        testhook::hit(&format!("saved-{}", record.phase.as_str()));
        self.held = Held::Record(record.clone());
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

/// Why a guarded handler call did not succeed.
enum Stop {
    /// The handler failed, crashed, or the operator interrupted it.
    Handler(HandlerError),
    /// This run stopped holding the user while the call ran.
    Lost(JournalError),
}

impl Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Handler(err) => err.fmt(f),
            Stop::Lost(err) => err.fmt(f),
        }
    }
}

impl<I: Iam, H: NewKeyHandler> KeyRotator<I, H> {
    /// Runs a handler call unless the operator interrupts first, or this
    /// run stops holding the user (then the call is dropped, the sandbox
    /// stops with it, and it counts as failed), and turns a panic inside it
    /// into a handler failure so the run still ends safely.
    async fn guarded(
        &self,
        user: &str,
        call: impl Future<Output = Result<(), HandlerError>>,
    ) -> Result<(), Stop> {
        let call = AssertUnwindSafe(call).catch_unwind();
        tokio::select! {
            result = call => result.unwrap_or_else(|panic| Err(HandlerError::new(
                HandlerErrorKind::Trapped,
                format!("the handler call crashed keyrot's host side: {}", panic_message(&panic)),
            ))).map_err(Stop::Handler),
            () = self.interrupt.stopped() => Err(Stop::Handler(Interrupt::error())),
            () = self.journal.lost(user) => Err(Stop::Lost(lost_error(user))),
        }
    }
}

/// The error for a run whose lease on `user` ran out or was taken over.
fn lost_error(user: &str) -> JournalError {
    JournalError::Lost {
        user: user.to_string(),
        why: "its lease could not be renewed before it ran out, or another run took the user \
              over"
            .into(),
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
