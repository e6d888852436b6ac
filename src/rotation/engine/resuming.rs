//! An interrupted run's record, acted on ([`resume::plan`] decides): the
//! keys it left deleted or retired, or, for a dry run, said.

use super::*;

impl<I: Iam, H: NewKeyHandler> Attempt<'_, I, H> {
    /// A dry run's answer for an interrupted run: what the real run would do
    /// about it, then what it would do next.
    pub(super) async fn plan_resume(
        &mut self,
        record: JournalRecord,
    ) -> Result<(), RotationFailure> {
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
        if plan.drain {
            lines.extend(self.drain_plan(&record, &keys).await);
            lines.push("then stop: no new rotation starts while one drains".into());
            self.report.plan = lines;
            self.report.outcome = Outcome::WouldRotate;
            return Ok(());
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
        self.abandoned = abandoned(&record, &after);
        let result = self.rotate_afresh(Some(after)).await;
        lines.append(&mut self.report.plan);
        self.report.plan = lines;
        result
    }

    /// What a rotation would do now, for a dry run.
    pub(super) fn plan(&mut self, keys: &[AccessKeyInfo], current: Option<&AccessKeyInfo>) {
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
        if self.rotator.verifier.is_some() {
            plan.push("verify it with sts:GetCallerIdentity".to_string());
        }
        plan.push("hand it to the handler".to_string());
        if let Some(key) = current {
            plan.push(format!(
                "{} the old key {}",
                match self.rotator.options.retire {
                    RetireMode::Delete => "delete",
                    RetireMode::Deactivate => "deactivate",
                    RetireMode::Drain => "drain (keep active until unused, then retire)",
                },
                key.access_key_id
            ));
        }
        self.report.plan = plan;
    }

    /// Finishes what an interrupted run left, from its journal and what IAM
    /// holds now ([`resume::plan`]). If IAM does not match the journal,
    /// stops (exit 2) and keeps the journal.
    pub(super) async fn resume(
        &mut self,
        record: JournalRecord,
    ) -> Result<Resumed, RotationFailure> {
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
            let after: Vec<AccessKeyInfo> = keys
                .iter()
                .filter(|k| !plan.delete.contains(&k.access_key_id))
                .cloned()
                .collect();
            self.abandoned = abandoned(&record, &after);
            return Ok(Resumed::Afresh);
        }
        self.report.new_key = plan.keep.clone().map(|new| NewKeyReport {
            access_key_id: new,
            state: NewKeyState::Propagated,
        });
        // A drain in progress moves on; no new rotation starts meanwhile
        // (two in flight would mean three keys).
        if plan.drain {
            self.progress_drain(record, &keys).await?;
            return Ok(Resumed::Finished);
        }
        // Handed over in drain mode, but the drain was never recorded.
        if record.retire == RetireMode::Drain
            && let Some(new) = plan.keep.clone()
        {
            self.start_drain(record, &keys, &new).await?;
            return Ok(Resumed::Finished);
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
                last_used: None,
            })
            .collect();
        for key in &plan.retire {
            let action = self
                .retire(&key.access_key_id, &key.status, record.retire)
                .await;
            self.report.set_old_key(&key.access_key_id, action);
        }
        Ok(Resumed::Finished)
    }

    /// Lists the keys to resume against. An unknown user no longer matches
    /// the journal; any other failure keeps it for the next run.
    pub(super) async fn list_for_resume(&mut self) -> Result<Vec<AccessKeyInfo>, RotationFailure> {
        let user = self.user;
        let listed = self.list_keys(Step::ListKeys, None).await;
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

    pub(super) fn mismatch(&self, what: String) -> RotationFailure {
        RotationFailure::JournalMismatch {
            user: self.user.to_string(),
            what,
        }
    }
}

/// The keys interrupted runs, rotated afresh after, may have left at the
/// destination, newest first: the record's own new key if it was journaled
/// as created (only such a key can have reached the handler), then the
/// ones that run was itself finishing for. Whether this rerun deleted them
/// just now or found them gone (a rerun killed after deleting), the
/// destination may still hold one. A key IAM still lists (`left`) is not
/// gone, whatever a record says: it is never passed as abandoned.
fn abandoned(record: &JournalRecord, left: &[AccessKeyInfo]) -> Vec<String> {
    let own = (record.phase == Phase::Created)
        .then(|| record.new_key.clone())
        .flatten();
    let mut ids: Vec<String> = Vec::new();
    for id in own.into_iter().chain(record.abandoned.iter().cloned()) {
        if !ids.contains(&id) && !left.iter().any(|k| k.access_key_id == id) {
            ids.push(id);
        }
    }
    ids.truncate(JournalRecord::MAX_ABANDONED);
    ids
}
