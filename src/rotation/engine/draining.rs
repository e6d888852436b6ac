//! Drain mode in an attempt: starting a drain when the handler stored the
//! new key (the old active key stays active, the record says since when),
//! and moving a drain on in a later run from IAM's record of the old key's
//! last use ([`drain::decide`]).

use super::*;
use crate::rotation::drain::{self, DrainStep};
use crate::rotation::report::DrainReport;

impl<I: Iam, H: NewKeyHandler> Attempt<'_, I, H> {
    /// The handler stored the new key: keys that are not active go now
    /// (nothing can use them); the active one drains, recorded as such
    /// over `base`, the record as it stands.
    pub(super) async fn start_drain(
        &mut self,
        base: JournalRecord,
        keys: &[AccessKeyInfo],
        new_key: &str,
    ) -> Result<(), RotationFailure> {
        let made_room = |id: &str| {
            self.report
                .old_keys
                .iter()
                .any(|k| k.access_key_id == id && k.action == OldKeyAction::DeletedToMakeRoom)
        };
        let (active, others): (Vec<&AccessKeyInfo>, Vec<&AccessKeyInfo>) = keys
            .iter()
            .filter(|k| !made_room(&k.access_key_id) && k.access_key_id != new_key)
            .partition(|k| k.status == KeyStatus::Active);
        for key in others {
            let action = self
                .retire(&key.access_key_id, &key.status, RetireMode::Delete)
                .await;
            self.report.set_old_key(&key.access_key_id, action);
        }
        if active.is_empty() {
            return Ok(());
        }
        let now = unix_now();
        let record = JournalRecord {
            phase: Phase::Draining,
            new_key: Some(new_key.to_string()),
            keys_before: active.iter().map(|k| k.access_key_id.clone()).collect(),
            active_before: active.first().map(|k| k.access_key_id.clone()),
            handed_over: Some(now),
            deactivated: None,
            abandoned: Vec::new(),
            ..base
        };
        match self.advance(record).await {
            Ok(()) => {}
            Err(cause @ JournalError::Lost { .. }) => {
                return Err(RotationFailure::Lost {
                    cause,
                    stored: Some(new_key.to_string()),
                });
            }
            // The record still says `propagated`, retire mode drain: the
            // next run starts the drain from there.
            Err(err) => tracing::warn!("could not record the drain: {err}; the next run starts it"),
        }
        for key in &active {
            self.report
                .set_old_key(&key.access_key_id, OldKeyAction::Draining);
        }
        let old = active[0].access_key_id.clone();
        self.report.outcome = Outcome::Draining;
        self.report.drain = Some(DrainReport {
            access_key_id: old.clone(),
            since: rfc3339(now),
            deactivated: None,
            last_used: None,
            step: None,
            note: format!(
                "old key {old} draining since {}: a later run (a nightly schedule) deactivates \
                 it once IAM has seen it unused for --drain-quiet, and deletes it after \
                 --drain-grace more",
                rfc3339(now)
            ),
        });
        Ok(())
    }

    /// Moves a drain on: for its old key, keep it, deactivate it, delete
    /// it, or say a person must look, from its last use. Ends the drain
    /// (and the journal) once no old key is left.
    pub(super) async fn progress_drain(
        &mut self,
        record: JournalRecord,
        keys: &[AccessKeyInfo],
    ) -> Result<(), RotationFailure> {
        let user = self.user;
        let policy = self.rotator.options.drain;
        let now = unix_now();
        let mut next = record.clone();
        next.keys_before.clear();
        self.report.outcome = Outcome::Draining;
        self.report.old_keys = keys
            .iter()
            .filter(|k| record.keys_before.contains(&k.access_key_id))
            .map(OldKeyReport::unchanged)
            .collect();
        let mut timed_out = false;
        for id in &record.keys_before {
            let key = keys.iter().find(|k| &k.access_key_id == id);
            let last_used = match key {
                Some(_) => self
                    .rotator
                    .iam
                    .access_key_last_used(id)
                    .await
                    .map_err(|cause| RotationFailure::DrainUnknown {
                        user: user.to_string(),
                        key: id.clone(),
                        cause,
                    })?,
                None => Default::default(),
            };
            let Some(step) = drain::decide(&record, key, &last_used, now, &policy) else {
                continue;
            };
            let kept = self.apply_drain_step(id, &step, &mut next, now).await;
            if kept {
                next.keys_before.push(id.clone());
            }
            timed_out |= step == DrainStep::TimedOut;
            let handed_over = next.handed_over.unwrap_or(record.started);
            if let Some(warning) = still_in_use(id, &step, &last_used, handed_over, now, &policy) {
                self.report.warnings.push(warning);
            }
            self.report.drain = Some(DrainReport {
                access_key_id: id.clone(),
                since: rfc3339(next.handed_over.unwrap_or(record.started)),
                deactivated: next.deactivated.map(rfc3339),
                note: drain::describe(&step, id, user, &last_used),
                last_used: Some(last_used),
                step: Some(step),
            });
        }
        if next.keys_before.is_empty() {
            // Nothing left to drain: the rotation is complete.
            self.report.outcome = Outcome::Rotated;
            self.held = Held::Nothing;
            return Ok(());
        }
        if next != record
            && let Err(err) = self.advance(next).await
        {
            tracing::warn!("could not record the drain's progress: {err}");
        }
        if timed_out {
            let note = self.report.drain.as_ref().map(|d| d.note.clone());
            return Err(RotationFailure::DrainTimedOut {
                user: user.to_string(),
                what: note.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// What a run would do with each draining key now, for a dry run.
    pub(super) async fn drain_plan(
        &self,
        record: &JournalRecord,
        keys: &[AccessKeyInfo],
    ) -> Vec<String> {
        let policy = self.rotator.options.drain;
        let mut lines = Vec::new();
        for id in &record.keys_before {
            let key = keys.iter().find(|k| &k.access_key_id == id);
            let used = match self.rotator.iam.access_key_last_used(id).await {
                Ok(used) => used,
                Err(err) => {
                    lines.push(format!("cannot tell what to do with old key {id}: {err}"));
                    continue;
                }
            };
            lines.push(
                match drain::decide(record, key, &used, unix_now(), &policy) {
                    Some(step) => drain::describe(&step, id, self.user, &used),
                    None => format!("old key {id} is gone: the drain ends"),
                },
            );
        }
        lines
    }

    /// Carries out one drain step on old key `id`; whether the key stays.
    async fn apply_drain_step(
        &mut self,
        id: &str,
        step: &DrainStep,
        next: &mut JournalRecord,
        now: u64,
    ) -> bool {
        match step {
            DrainStep::InUse | DrainStep::Wait { .. } | DrainStep::Grace { .. } => true,
            DrainStep::TimedOut => true,
            DrainStep::Restart => {
                next.handed_over = Some(now);
                next.deactivated = None;
                true
            }
            DrainStep::Deactivate => match self.deactivate(id).await {
                Ok(()) => {
                    next.deactivated = Some(now);
                    self.report.set_old_key(id, OldKeyAction::KeptInactive);
                    true
                }
                Err(err) if err.kind == IamErrorKind::NoSuchEntity => false,
                Err(err) => {
                    tracing::warn!("could not deactivate draining key {id}: {err}");
                    true
                }
            },
            DrainStep::Delete | DrainStep::ForceDelete => {
                match self.delete_key(Step::DeleteOldKey, id).await {
                    Ok(()) => {
                        self.report.set_old_key(id, OldKeyAction::Deleted);
                        false
                    }
                    Err(err) => {
                        tracing::warn!("could not delete draining key {id}: {err}");
                        true
                    }
                }
            }
        }
    }
}

/// A warning for an old key still in use a whole quiet window after the
/// handover: a consumer was missed, and a person has until the drain's
/// timeout to move it before the run stops and calls for one.
fn still_in_use(
    id: &str,
    step: &DrainStep,
    last_used: &crate::iam::KeyLastUsed,
    handed_over: u64,
    now: u64,
    policy: &crate::rotation::DrainPolicy,
) -> Option<String> {
    if *step != DrainStep::InUse || now < handed_over + policy.quiet.as_secs() {
        return None;
    }
    let by = last_used
        .service
        .as_deref()
        .map(|s| format!(" by {s}"))
        .unwrap_or_default();
    Some(format!(
        "old key {id} is still in use (last used {}{by}) {} after the handover: move what uses \
         it to the new key before {}, when the drain stops and needs a person",
        last_used.date.as_deref().unwrap_or("?"),
        crate::rotation::human_duration(std::time::Duration::from_secs(now - handed_over)),
        rfc3339(handed_over + policy.timeout.as_secs())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::KeyLastUsed;
    use crate::rotation::DrainPolicy;

    #[test]
    fn a_key_in_use_after_a_quiet_window_is_a_warning() {
        let policy = DrainPolicy::default();
        let used = KeyLastUsed {
            date: Some("2026-12-02T10:00:00Z".into()),
            service: Some("s3".into()),
            region: None,
        };
        let day = 24 * 3600;
        let t = 1_796_205_600;
        // The handover's first day: consumers are still moving.
        assert_eq!(
            still_in_use("AKIAOLD", &DrainStep::InUse, &used, t, t + 3600, &policy),
            None
        );
        let warning =
            still_in_use("AKIAOLD", &DrainStep::InUse, &used, t, t + 2 * day, &policy).unwrap();
        assert!(
            warning.contains("AKIAOLD") && warning.contains("by s3"),
            "{warning}"
        );
        assert!(warning.contains(&rfc3339(t + 14 * day)), "{warning}");
        // Past the timeout it is an error, not a warning.
        assert_eq!(
            still_in_use(
                "AKIAOLD",
                &DrainStep::TimedOut,
                &used,
                t,
                t + 20 * day,
                &policy
            ),
            None
        );
    }
}
