//! The journal around an attempt: each phase written before the side
//! effect it announces, and at the end removed only if the attempt saw how
//! IAM stands, kept (and its lease let go) otherwise, or kept to watch for
//! a create an interrupted run may still land.

use super::*;

impl<I: Iam, H: NewKeyHandler> Attempt<'_, I, H> {
    /// Removes the journal only when the run ended in a state it saw; keeps
    /// it (and lets go of any lease) otherwise, and says so in the report.
    pub(super) async fn settle_journal(&mut self, result: &Result<(), RotationFailure>) {
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
            _ if lost => self.rotator.journal.release(user).await,
            Held::Nothing => self.clear_journal().await,
            // A drain goes on across runs: its record stays, unleased.
            Held::Record(record) if record.phase == Phase::Draining => {
                self.rotator.journal.release(user).await;
                self.report.journal = Some(format!(
                    "the journal keeps the drain of old key(s) {} for the next run",
                    record.keys_before.join(", ")
                ));
            }
            Held::Record(record) if finished => {
                let since = self
                    .window
                    .filter(|&since| unix_now() < since + CREATE_LANDS_WITHIN);
                match since {
                    Some(since) => self.watch(since, *record).await,
                    None => self.clear_journal().await,
                }
            }
            Held::Record(record) => {
                self.rotator.journal.release(user).await;
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

    pub(super) async fn clear_journal(&mut self) {
        if let Err(err) = self.rotator.journal.clear(self.user).await {
            // The run itself is over; a rerun finds the record and, since
            // IAM matches it, finishes the same way.
            tracing::warn!("could not remove the journal: {err}");
        }
    }

    /// The run is over, but a create of an interrupted run may still be
    /// applied: keep a record of the keys as they are now and of that run's
    /// window, so that the next run recognises the key and deletes it.
    pub(super) async fn watch(&mut self, since: u64, current: JournalRecord) {
        let user = self.user;
        let retry = self.rotator.retry;
        let keys = match retry.run(|| self.rotator.iam.list_access_keys(user)).await {
            Ok(keys) => keys,
            Err(err) => {
                // The record as it stands is still true: keep it.
                tracing::warn!("could not list the keys to keep watching: {err}");
                self.rotator.journal.release(user).await;
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
            owner: crate::rotation::owner_id().to_string(),
            lease_until: 0,
            // This run's handler stored its key: nothing earlier is left.
            abandoned: Vec::new(),
            ..current
        };
        if let Err(err) = self.rotator.journal.save(&record).await {
            tracing::warn!("could not write the journal to keep watching: {err}");
        }
        self.rotator.journal.release(user).await;
        let until = rfc3339(since + CREATE_LANDS_WITHIN);
        self.report.journal = Some(format!(
            "the journal is kept until {until}: an interrupted run's CreateAccessKey may still be \
             applied by IAM, and the next keyrot run deletes the key it makes"
        ));
    }

    /// Writes the journal before the side effect it announces. If the write
    /// fails, the journal holds what it held before, which announced less.
    pub(super) async fn advance(&mut self, record: JournalRecord) -> Result<(), JournalError> {
        self.rotator.journal.save(&record).await?;
        testhook::hit(&format!("saved-{}", record.phase.as_str()));
        self.held = Held::Record(Box::new(record.clone()));
        self.written = Some(record);
        Ok(())
    }

    pub(super) async fn advance_to(
        &mut self,
        phase: Phase,
        new_key: Option<&str>,
    ) -> Result<(), JournalError> {
        let Some(mut record) = self.written.clone() else {
            return Ok(());
        };
        record.phase = phase;
        record.new_key = new_key.map(str::to_string);
        self.advance(record).await
    }
}
