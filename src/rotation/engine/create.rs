//! Making the new key: the create (retried only when IAM definitely did not
//! act), what a create with no answer may have left, the check that nobody
//! else changed the keys meanwhile, and the proof that the key works.

use super::*;

impl<I: Iam, H: NewKeyHandler> Attempt<'_, I, H> {
    /// Creates the new key, making room only when IAM says the user is at
    /// its limit.
    pub(super) async fn create_key(
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
    /// [`Attempt::create_failed`] to look into.
    pub(super) async fn create_once(&mut self) -> Result<NewAccessKey, IamError> {
        let policy = RetryPolicy {
            attempts: u32::MAX,
            deadline: CREATE_THROTTLE_DEADLINE,
            ..self.rotator.retry
        };
        let iam = &self.rotator.iam;
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
        self.note_step(Step::CreateKey, None, start, &result, Some(attempts.count));
        testhook::hit("after-create-key");
        result
    }

    /// The failure for a create that did not return a key. `CreateAccessKey`
    /// is not idempotent: after a timeout or a dropped connection IAM may
    /// have made the key all the same, or may still make it, and nobody would
    /// hold it. So look: delete the key the call made if it is there, and
    /// otherwise keep the journal (`create-sent`) so that the next run
    /// deletes it once it appears.
    pub(super) async fn create_failed(
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
        let listed = self.list_keys(Step::ListKeys, None).await;
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
        let stray = match self.stray_of(keys, &now) {
            Ok(stray) => stray,
            Err(list) => {
                return match list {
                    // Nothing yet: IAM may still apply the call.
                    None => {
                        let started = self.written.as_ref().map_or_else(unix_now, |r| r.started);
                        RotationFailure::CreateUnanswered {
                            user: user.to_string(),
                            cause,
                            until: rfc3339(started + CREATE_LANDS_WITHIN),
                        }
                    }
                    Some(list) => RotationFailure::CreateUncertain {
                        user: user.to_string(),
                        cause,
                        list,
                    },
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

    /// The one key in `now` that was not in `before`: the one a create with
    /// no answer made. `Err(None)`: none yet; `Err(Some(why))`: several,
    /// another process made keys too, and which one is this call's?
    fn stray_of(
        &self,
        before: &[AccessKeyInfo],
        now: &[AccessKeyInfo],
    ) -> Result<String, Option<IamError>> {
        let known = |id: &str| before.iter().any(|k| k.access_key_id == id);
        let strays: Vec<&str> = now
            .iter()
            .map(|k| k.access_key_id.as_str())
            .filter(|id| !known(id))
            .collect();
        match strays.as_slice() {
            [] => Err(None),
            [one] => Ok(one.to_string()),
            several => Err(Some(IamError::new(
                IamErrorKind::Other,
                format!(
                    "keys {} appeared, and keyrot cannot tell which one the call made",
                    several.join(", ")
                ),
            ))),
        }
    }

    /// Lists the keys again after the create. A key that is neither ours nor
    /// known from before means another process is rotating this user: ours
    /// must go (it was never handed out), theirs stays.
    pub(super) async fn check_keys(
        &mut self,
        before: &[AccessKeyInfo],
        new_key: &str,
        current: Option<&AccessKeyInfo>,
    ) -> Result<(), GiveUp> {
        let now = match self.list_keys(Step::CheckKeys, None).await {
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
    pub(super) async fn verify(&mut self, key: &NewAccessKey) -> Result<(), GiveUp> {
        let Some(verifier) = &self.rotator.verifier else {
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
            deadline: self.rotator.options.verify_timeout,
        };
        let start = Instant::now();
        let attempts = tokio::select! {
            attempts = policy.run_counted(|| verifier.caller_arn(key)) => attempts,
            () = self.rotator.interrupt.stopped() => {
                return Err(GiveUp::Handler(Interrupt::error()));
            }
            () = self.rotator.journal.lost(self.user) => {
                return Err(GiveUp::Lost(lost_error(self.user)));
            }
        };
        let account = self.rotator.caller.as_ref().map(|c| c.account.as_str());
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
                human_duration(self.rotator.options.verify_timeout)
            )),
        };
        self.note_step(
            Step::VerifyKey,
            Some(&key.access_key_id),
            start,
            &result,
            Some(attempts.count),
        );
        testhook::hit("after-verify-key");
        result.map_err(GiveUp::Verify)
    }
}
