//! Ending an attempt: confirming the handed-over key is still there,
//! retiring the old keys, or giving the new key up when a later step
//! failed.

use super::*;

impl<I: Iam, H: NewKeyHandler> Attempt<'_, I, H> {
    /// Before retiring anything: this run's new key must still exist and be
    /// active. If someone deleted it meanwhile, the destination holds a key
    /// that does not work, and retiring the old keys would leave none.
    pub(super) async fn confirm_new_key(
        &mut self,
        new_key: &str,
        before: &[AccessKeyInfo],
    ) -> Result<(), RotationFailure> {
        let user = self.user;
        let listed = self.list_keys(Step::ConfirmNewKey, Some(new_key)).await;
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

    /// Deletes a new key after a later step failed, and says so.
    pub(super) async fn give_up(&mut self, key: &str, why: GiveUp) -> RotationFailure {
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
    pub(super) async fn retire(
        &mut self,
        id: &str,
        status: &KeyStatus,
        mode: RetireMode,
    ) -> OldKeyAction {
        let user = self.user;
        let retry = self.rotator.retry;
        let iam = &self.rotator.iam;
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
    pub(super) async fn delete_key(&mut self, step: Step, id: &str) -> Result<(), IamError> {
        let (rotator, user) = (self.rotator, self.user);
        let retry = rotator.retry;
        self.step(
            step,
            Some(id),
            retry.run(|| delete_tolerating_missing(&rotator.iam, user, id)),
        )
        .await
    }

    /// Sets an old key `Inactive`, retrying transient errors.
    pub(super) async fn deactivate(&mut self, id: &str) -> Result<(), IamError> {
        let (rotator, user) = (self.rotator, self.user);
        let retry = rotator.retry;
        self.step(
            Step::DeactivateOldKey,
            Some(id),
            retry.run(|| {
                rotator
                    .iam
                    .update_access_key_status(user, id, KeyStatus::Inactive)
            }),
        )
        .await
    }
}
