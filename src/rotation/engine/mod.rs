//! One attempt at rotating one user's key ([`Attempt`]), step by step over
//! the journaled [`JournalRecord`]. [`Attempt::rotate_afresh`] reads as the
//! module docs of [`super`] list the steps; the steps live beside it:
//!
//! - `create`: the create, a create with no answer, the check, the proof;
//! - `finish`: confirming the new key, retiring old keys, giving up;
//! - `resuming`: an interrupted run's record acted on (or, dry, said);
//! - `journal`: writing each phase first, and settling the journal at the end.
//!
//! Every step passes through [`Attempt::step`] (timed into the report, with
//! a test hook on each side) and every change of phase through
//! [`Attempt::advance`] (written to the journal before the side effect it
//! announces). Failure edges are explicit: each returns the
//! [`RotationFailure`] that says what state the keys are in.
//!
//! The journal outlives any run that does not know how IAM stands: it is
//! removed only when the run ends in a state it saw ([`Attempt::settle_journal`]
//! and [`RotationFailure::finished`]); every other ending keeps it, and the
//! report says so.

mod create;
mod draining;
mod finish;
mod journal;
mod resuming;

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::failure::{GiveUp, RotationError, RotationFailure};
use super::report::{
    NewKeyReport, NewKeyState, OldKeyAction, OldKeyReport, Outcome, RotationReport, SkipReport,
    Step, StepRecord,
};
use super::state::{CREATE_LANDS_WITHIN, JournalError, JournalRecord, Phase, RetireMode};
use super::{Interrupt, KeyRotator, resume};
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog, NewKeyHandler, Rotation};
use crate::iam::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::retry::RetryPolicy;
use crate::testhook;
use crate::time::{human_duration, parse_rfc3339, rfc3339, unix_now};
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
    Record(Box<JournalRecord>),
}

/// One attempt at rotating one user's key: the run, the report, and what
/// the journal holds.
pub(super) struct Attempt<'a, I, H> {
    rotator: &'a KeyRotator<I, H>,
    user: &'a str,
    report: RotationReport,
    log: std::sync::Arc<HandlerLog>,
    /// The journal record, as this run last wrote it.
    written: Option<JournalRecord>,
    /// What the journal holds now.
    held: Held,
    /// The start of an interrupted run whose create may still be applied:
    /// this run's record keeps it, so that a key it makes is recognised.
    window: Option<u64>,
    /// Keys interrupted attempts had created and may have handed over,
    /// gone now (this run deleted them, or found them deleted), newest
    /// first: the destination may still hold one.
    abandoned: Vec<String>,
}

impl<'a, I: Iam, H: NewKeyHandler> Attempt<'a, I, H> {
    pub(super) fn new(rotator: &'a KeyRotator<I, H>, user: &'a str) -> Self {
        let mut report = RotationReport::new(user);
        report.dry_run = rotator.options.dry_run;
        if let Some(caller) = &rotator.caller {
            report.account = Some(caller.account.clone());
            report.caller_arn = Some(caller.arn.clone());
        }
        Self {
            rotator,
            user,
            report,
            log: std::sync::Arc::new(HandlerLog::new()),
            written: None,
            held: Held::Unknown,
            window: None,
            abandoned: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) -> Result<RotationReport, RotationError> {
        let result = self.resume_then_rotate().await;
        if !self.rotator.options.dry_run {
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

    async fn resume_then_rotate(&mut self) -> Result<(), RotationFailure> {
        let pending = if self.rotator.options.dry_run {
            self.rotator.journal.peek(self.user).await
        } else {
            // Beginning may wait for another run's lock (`--wait-lock`):
            // the operator can stop that wait.
            tokio::select! {
                begun = self.rotator.journal.begin(self.user) => begun,
                () = self.rotator.interrupt.stopped() => return Err(RotationFailure::NotStarted {
                    why: "interrupted while waiting for another run on this user".into(),
                }),
            }
        }
        .map_err(|cause| self.journal_failure(cause))?;
        let Some(record) = pending.filter(|r| r.phase != Phase::Claimed) else {
            self.held = Held::Nothing;
            return self.rotate_afresh(None).await;
        };
        self.held = Held::Record(Box::new(record.clone()));
        if self.rotator.options.dry_run {
            return self.plan_resume(record).await;
        }
        match self.resume(record).await? {
            Resumed::Finished => Ok(()),
            Resumed::Afresh => self.rotate_afresh(None).await,
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

    // ---- a fresh rotation ---------------------------------------------------

    /// Rotates afresh, as the module docs list the steps. `listed`: keys
    /// already known (a dry run's picture of the keys after a resume),
    /// instead of listing them.
    async fn rotate_afresh(
        &mut self,
        listed: Option<Vec<AccessKeyInfo>>,
    ) -> Result<(), RotationFailure> {
        // List, refuse two active keys, skip a young key, preflight: until
        // here nothing changed, and a dry run stops.
        let Some((keys, rotation)) = self.ready(listed).await? else {
            return Ok(());
        };
        let current = keys
            .iter()
            .find(|k| Some(&k.access_key_id) == rotation.current_key_id.as_ref());
        // Create, journaled first so a kill from here on can be repaired.
        let new_key = self.create_journaled(&keys, current).await?;
        let new_key_id = new_key.access_key_id.clone();
        // From here on, any failure gives the new key up.
        if let Err(why) = self.check_keys(&keys, &new_key_id, current).await {
            return Err(self.give_up(&new_key_id, why).await);
        }
        if let Err(why) = self.verify(&new_key).await {
            return Err(self.give_up(&new_key_id, why).await);
        }
        // A user rotating its own key goes on with the new one once it is
        // handed over and known to work: the old one is about to go.
        // Unverified, only once the old one went.
        let switch_later = self.hand_over(&rotation, new_key).await?;
        self.confirm_new_key(&new_key_id, &keys).await?;
        if self.rotator.options.retire == RetireMode::Drain
            && let Some(base) = self.written.clone()
        {
            self.start_drain(base, &keys, &new_key_id).await?;
        } else {
            self.retire_old_keys(&keys).await;
        }
        if let Some(key) = switch_later {
            self.rotator.iam.sign_with(&key).await;
        }
        Ok(())
    }

    /// The steps that change nothing: list the keys (unless `listed`),
    /// refuse two active keys, skip a key younger than `--older-than`,
    /// preflight. `None` when the run ends here (skipped, or a dry run).
    async fn ready(
        &mut self,
        listed: Option<Vec<AccessKeyInfo>>,
    ) -> Result<Option<(Vec<AccessKeyInfo>, Rotation)>, RotationFailure> {
        let user = self.user;
        // An unknown user is an input error, not an IAM outage.
        let keys = match listed {
            Some(keys) => keys,
            None => {
                let iam = &self.rotator.iam;
                self.step(Step::ListKeys, None, iam.list_access_keys(user))
                    .await
                    .map_err(|cause| match cause.kind {
                        IamErrorKind::NoSuchEntity => RotationFailure::UnknownUser {
                            user: user.to_string(),
                        },
                        _ => RotationFailure::ListKeys {
                            user: user.to_string(),
                            cause,
                        },
                    })?
            }
        };
        self.report.old_keys = keys.iter().map(OldKeyReport::unchanged).collect();
        if self.rotator.options.read_last_use {
            self.read_last_use().await;
        }

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
        if let (Some(threshold), Some(key)) = (self.rotator.options.older_than, current)
            && let Some(age) = key_age(key)
            && age < threshold
        {
            let due_in = threshold - age;
            self.report.outcome = Outcome::Skipped;
            self.report.skipped = Some(SkipReport {
                age: human_duration(age),
                threshold: human_duration(threshold),
                due: Some(rfc3339(unix_now() + due_in.as_secs())),
            });
            if self
                .rotator
                .options
                .warn_within
                .is_some_and(|window| due_in <= window)
            {
                self.report.warnings.push(format!(
                    "key {} comes due in {} (max age {}): the next run after that rotates it",
                    key.access_key_id,
                    human_duration(due_in),
                    human_duration(threshold)
                ));
            }
            return Ok(None);
        }

        let rotation = Rotation {
            user_name: user.to_string(),
            current_key_id: current.map(|k| k.access_key_id.clone()),
            // IAM users live in the caller's account.
            account_id: self.rotator.caller.as_ref().map(|c| c.account.clone()),
            abandoned_key_ids: self.abandoned.clone(),
        };
        self.preflight(&rotation).await?;
        if self.rotator.options.dry_run {
            self.plan(&keys, current);
            self.report.outcome = Outcome::WouldRotate;
            return Ok(None);
        }
        Ok(Some((keys, rotation)))
    }

    /// The handler's preflight: the last point where failing changes
    /// nothing.
    async fn preflight(&mut self, rotation: &Rotation) -> Result<(), RotationFailure> {
        let log = self.log.clone();
        let call = self.rotator.handler.preflight(rotation, &log);
        let guarded = self.rotator.guarded(self.user, call);
        let preflight = self.step(Step::Preflight, None, guarded).await;
        preflight.map_err(|stop| match stop {
            Stop::Handler(cause) => RotationFailure::Preflight { cause },
            Stop::Lost(cause) => RotationFailure::Lost {
                cause,
                stored: None,
            },
        })?;
        if self.rotator.interrupt.is_triggered() {
            return Err(RotationFailure::Preflight {
                cause: Interrupt::error(),
            });
        }
        Ok(())
    }

    /// Journals `create-sent`, creates the key, journals `created`: the
    /// new key, or why there is none (a key the create may have made is
    /// dealt with, or left to the journal).
    async fn create_journaled(
        &mut self,
        keys: &[AccessKeyInfo],
        current: Option<&AccessKeyInfo>,
    ) -> Result<NewAccessKey, RotationFailure> {
        let user = self.user;
        let record = JournalRecord {
            version: JournalRecord::VERSION,
            account: self.rotator.caller.as_ref().map(|c| c.account.clone()),
            user: user.to_string(),
            phase: Phase::CreateSent,
            keys_before: keys.iter().map(|k| k.access_key_id.clone()).collect(),
            active_before: current.map(|k| k.access_key_id.clone()),
            new_key: None,
            retire: self.rotator.options.retire,
            started: self.window.unwrap_or_else(unix_now),
            owner: crate::rotation::owner_id().to_string(),
            lease_until: 0,
            handed_over: None,
            deactivated: None,
            // Told to the handler of this run: a rerun tells its own.
            abandoned: self.abandoned.clone(),
        };
        self.advance(record).await.map_err(|cause| match cause {
            JournalError::Lost { .. } => RotationFailure::Lost {
                cause,
                stored: None,
            },
            cause => RotationFailure::Journal { cause },
        })?;
        let new_key = self.create_key(keys).await?;
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
        Ok(new_key)
    }

    /// Hands the new key to the handler, exactly once, and journals it
    /// `propagated`. Returns the key to switch to after retiring, for a
    /// user rotating its own key without verification.
    async fn hand_over(
        &mut self,
        rotation: &Rotation,
        new_key: NewAccessKey,
    ) -> Result<Option<NewAccessKey>, RotationFailure> {
        let new_key_id = new_key.access_key_id.clone();
        let switch_to = self.rotating_self().then(|| new_key.clone());
        let log = self.log.clone();
        let call = self.rotator.handler.handle(rotation, &new_key, &log);
        let guarded = self.rotator.guarded(self.user, call);
        let handled = self.step(Step::Handle, Some(&new_key_id), guarded).await;
        drop(new_key);
        let switch_later = match switch_to {
            Some(key) if handled.is_ok() && self.rotator.verifier.is_some() => {
                self.rotator.iam.sign_with(&key).await;
                None
            }
            other => other,
        };
        let why = match handled {
            Ok(()) => None,
            Err(Stop::Handler(cause)) => Some(GiveUp::Handler(cause)),
            Err(Stop::Lost(cause)) => Some(GiveUp::Lost(cause)),
        };
        if let Some(why) = why {
            return Err(self.give_up(&new_key_id, why).await);
        }
        self.report.new_key = Some(NewKeyReport {
            access_key_id: new_key_id.clone(),
            state: NewKeyState::Propagated,
        });
        let lost = |cause| RotationFailure::Lost {
            cause,
            stored: Some(new_key_id.clone()),
        };
        match self.advance_to(Phase::Propagated, Some(&new_key_id)).await {
            Ok(()) => {}
            // Another run holds the user now: its keys are its to retire.
            Err(cause @ JournalError::Lost { .. }) => return Err(lost(cause)),
            // Retiring now still ends the run in a good state; only a crash
            // in the next few calls would need an operator.
            Err(err) => tracing::warn!("could not record that the new key is propagated: {err}"),
        }
        match self.lost_now() {
            Some(cause) => Err(lost(cause)),
            None => Ok(switch_later),
        }
    }

    /// Retires every old key not already deleted to make room.
    async fn retire_old_keys(&mut self, keys: &[AccessKeyInfo]) {
        for key in keys {
            let made_room = self.report.old_keys.iter().any(|k| {
                k.access_key_id == key.access_key_id && k.action == OldKeyAction::DeletedToMakeRoom
            });
            if !made_room {
                let action = self
                    .retire(&key.access_key_id, &key.status, self.rotator.options.retire)
                    .await;
                self.report.set_old_key(&key.access_key_id, action);
            }
        }
    }

    /// Whether keyrot acts as the user whose key it rotates.
    fn rotating_self(&self) -> bool {
        self.rotator
            .caller
            .as_ref()
            .is_some_and(|c| arn_is_user(&c.arn, Some(&c.account), self.user))
    }

    /// Whether this run has stopped holding the user (never, without a
    /// lease).
    fn lost_now(&self) -> Option<JournalError> {
        use futures_util::FutureExt;
        self.rotator
            .journal
            .lost(self.user)
            .now_or_never()
            .map(|()| lost_error(self.user))
    }

    // ---- resuming an interrupted run ----------------------------------------

    // ---- the seams every step passes ----------------------------------------

    /// Lists the user's keys as `step` (retrying transient errors).
    async fn list_keys(
        &mut self,
        step: Step,
        key_id: Option<&str>,
    ) -> Result<Vec<AccessKeyInfo>, IamError> {
        let (rotator, user) = (self.rotator, self.user);
        let retry = rotator.retry;
        let listed = retry.run(|| rotator.iam.list_access_keys(user));
        self.step(step, key_id, listed).await
    }

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
        self.note_step(step, key_id, start, &result, None);
        testhook::hit(&format!("after-{}", step.name()));
        result
    }

    fn note_step<T, E: Display>(
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

    /// Each old key's last use, for the report; a key IAM will not say
    /// of (no permission, say) is left without.
    async fn read_last_use(&mut self) {
        for key in &mut self.report.old_keys {
            match self
                .rotator
                .iam
                .access_key_last_used(&key.access_key_id)
                .await
            {
                Ok(used) => key.last_used = Some(used),
                Err(err) => tracing::debug!("no last use for {}: {err}", key.access_key_id),
            }
        }
    }

    /// A key for a message: id, creation date and last use.
    async fn describe(&self, key: &AccessKeyInfo) -> String {
        let mut text = key.access_key_id.clone();
        if let Some(date) = &key.create_date {
            text.push_str(&format!(", created {date}"));
        }
        match self
            .rotator
            .iam
            .access_key_last_used(&key.access_key_id)
            .await
        {
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
                format!("the handler call crashed keyrot's host side: {}", crate::text::panic_message(&*panic)),
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
