//! The journal as a tag on the IAM user, with a lease: how two machines
//! are kept from both holding a user without a compare-and-swap, how the
//! lease is renewed while a run works, and how a run learns it lost it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::tag::{decode_claim, decode_tag, encode_tag};
use crate::iam::{Iam, IamErrorKind};
use crate::rotation::state::CLOCK_SKEW;
use crate::rotation::{Journal, JournalError, JournalRecord, Phase, RetireMode, rfc3339, unix_now};

/// The journal as a tag on the IAM user, doubling as a lease.
///
/// IAM offers no compare-and-swap on tags, so holding the user takes two
/// steps. A run first writes a *claim*, a tag of its own
/// (`keyrot-claim-RANDOM`), waits for IAM to settle, and looks again: if any
/// other live claim or a live record of another run is there, it backs off.
/// A claim can never overwrite anyone's record, so a claim slowed down on
/// the wire lands beside the winner's record, and its run sees that record
/// and backs off. Only the winner then writes the record (`keyrot-journal`),
/// with a lease; every later write first checks the record is still this
/// run's ([`JournalError::Lost`] if not), and the lease is renewed every
/// third of its length while the run works. A run that cannot renew it in
/// time stops ([`Journal::lost`]) before another run may take over: other
/// runs wait for the lease to end plus [`CLOCK_SKEW`].
pub struct IamTagJournal {
    inner: Arc<Inner>,
}

struct Inner {
    iam: Arc<dyn Iam>,
    owner: String,
    lease: Duration,
    settle: Duration,
    held: Mutex<HashMap<String, Arc<Hold>>>,
}

/// A user this run holds.
struct Hold {
    /// The record as last written, with its lease. Every write of the
    /// record holds this lock, so the renewal never writes an older phase.
    record: tokio::sync::Mutex<JournalRecord>,
    /// Why the run no longer holds the user, once it does not.
    lost: Mutex<Option<String>>,
    notify: Notify,
    keeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Hold {
    fn lose(&self, why: String) {
        self.lost.lock().unwrap().get_or_insert(why);
        self.notify.notify_waiters();
    }

    fn stop(&self) {
        if let Some(keeper) = self.keeper.lock().unwrap().take() {
            keeper.abort();
        }
    }
}

/// Another run's claim tag.
struct Claim {
    key: String,
    owner: String,
    until: u64,
}

/// What the user's tags say.
struct Tags {
    record: Option<JournalRecord>,
    claims: Vec<Claim>,
}

/// How long a claim stays live if its run dies while claiming.
const CLAIM_TTL: u64 = 60;

/// Whether a lease or claim ending at `until` still holds at `now`, by a
/// clock that may be [`CLOCK_SKEW`] ahead of the holder's. 0: released.
fn live(until: u64, now: u64) -> bool {
    until != 0 && until + CLOCK_SKEW > now
}

impl IamTagJournal {
    /// The tag's key.
    pub const TAG: &'static str = "keyrot-journal";
    /// The prefix of a claim tag's key.
    pub const CLAIM_TAG: &'static str = "keyrot-claim-";
    /// How long a run holds the user without renewing: renewed every third
    /// of it while any step runs, so any step may take longer.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);

    /// A journal kept through `iam`, for this run, with leases of `lease`
    /// (which a test build may shorten: [`crate::testhook::lease`]).
    pub fn new(iam: Arc<dyn Iam>, lease: Duration) -> Self {
        let lease = crate::testhook::lease().unwrap_or(lease);
        Self {
            inner: Arc::new(Inner {
                iam,
                owner: crate::rotation::owner_id().to_string(),
                lease: lease.max(Duration::from_secs(1)),
                settle: Duration::from_secs(2),
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How long to wait after claiming before looking again (IAM is
    /// eventually consistent; two runs claiming at once both see each
    /// other's claim after this).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set before use")
            .settle = settle;
        self
    }

    /// Whose live lease holds `user` now, and until when, if anyone's.
    pub async fn holder(&self, user: &str) -> Result<Option<(String, u64)>, JournalError> {
        let tags = self.inner.read(user).await?;
        let now = unix_now();
        Ok(tags
            .record
            .filter(|r| live(r.lease_until, now))
            .map(|r| (r.owner, r.lease_until))
            .or_else(|| {
                tags.claims
                    .into_iter()
                    .find(|c| live(c.until, now))
                    .map(|c| (c.owner, c.until))
            }))
    }

    /// Removes the record and every claim, whoever holds them: the
    /// operator's word (`keyrot journal clear`).
    pub async fn remove_all(&self, user: &str) -> Result<(), JournalError> {
        let inner = &self.inner;
        let claims = match inner.read(user).await {
            Ok(tags) => tags.claims,
            Err(JournalError::Corrupt { .. }) => inner.claim_keys(user).await?,
            Err(err) => return Err(err),
        };
        inner.untag(user, Self::TAG).await?;
        for claim in claims {
            inner.untag(user, &claim.key).await?;
        }
        Ok(())
    }
}

impl Inner {
    /// Claims `user` beside the record, never over it, and looks again once
    /// IAM has settled: the claim's tag key and the tags seen then, or
    /// [`JournalError::Busy`] (claim removed) if another run holds or claims
    /// the user.
    async fn claim(&self, user: &str) -> Result<(String, Tags), JournalError> {
        let busy = |owner: &str, until: u64| JournalError::Busy {
            user: user.to_string(),
            owner: owner.to_string(),
            until: format!(" (its lease ends {})", rfc3339(until)),
        };
        let now = unix_now();
        let before = self.read(user).await?;
        if let Some(record) = &before.record
            && record.owner != self.owner
            && live(record.lease_until, now)
        {
            return Err(busy(&record.owner, record.lease_until));
        }
        if let Some(claim) = before.claims.iter().find(|c| live(c.until, now)) {
            return Err(busy(&claim.owner, claim.until));
        }
        let claim = self.claim_key();
        let value = format!("h={}/x={}", self.owner, unix_now() + CLAIM_TTL);
        self.tag(user, &claim, &value).await?;
        tokio::time::sleep(self.settle).await;
        let after = match self.read(user).await {
            Ok(after) => after,
            Err(err) => {
                let _ = self.untag(user, &claim).await;
                return Err(err);
            }
        };
        let now = unix_now();
        let rival = after
            .claims
            .iter()
            .find(|c| c.key != claim && live(c.until, now))
            .map(|c| (c.owner.clone(), c.until))
            .or_else(|| {
                let changed = after.record != before.record;
                after
                    .record
                    .as_ref()
                    .filter(|r| r.owner != self.owner && changed)
                    .map(|r| (r.owner.clone(), r.lease_until))
            });
        if let Some((owner, until)) = rival {
            let _ = self.untag(user, &claim).await;
            return Err(busy(&owner, until));
        }
        Ok((claim, after))
    }

    /// Holds `user` with `record` as written, and starts renewing its lease.
    fn hold_user(self: &Arc<Self>, user: &str, record: JournalRecord) {
        let hold = Arc::new(Hold {
            record: tokio::sync::Mutex::new(record),
            lost: Mutex::new(None),
            notify: Notify::new(),
            keeper: Mutex::new(None),
        });
        let keeper = tokio::spawn(self.clone().keep(hold.clone()));
        *hold.keeper.lock().unwrap() = Some(keeper);
        let old = self
            .held
            .lock()
            .unwrap()
            .insert(user.to_ascii_lowercase(), hold);
        if let Some(old) = old {
            old.stop();
        }
    }

    fn iam_error(user: &str, cause: crate::iam::IamError) -> JournalError {
        JournalError::Iam {
            user: user.to_string(),
            cause,
        }
    }

    fn claim_key(&self) -> String {
        let random = self.owner.rsplit(':').next().unwrap_or_default();
        format!("{}{random}", IamTagJournal::CLAIM_TAG)
    }

    async fn tags(&self, user: &str) -> Result<Vec<(String, String)>, JournalError> {
        self.iam
            .list_user_tags(user)
            .await
            .map_err(|cause| Self::iam_error(user, cause))
    }

    async fn read(&self, user: &str) -> Result<Tags, JournalError> {
        let tags = self.tags(user).await?;
        let mut out = Tags {
            record: None,
            claims: Vec::new(),
        };
        for (key, value) in tags {
            if key == IamTagJournal::TAG {
                let record = decode_tag(user, &value)
                    .and_then(|r| r.check(unix_now()).map(|()| r))
                    .map_err(|why| JournalError::Corrupt {
                        location: format!("tag {} on IAM user '{user}'", IamTagJournal::TAG),
                        user: user.to_string(),
                        why,
                    })?;
                out.record = Some(record);
            } else if key.starts_with(IamTagJournal::CLAIM_TAG) {
                // A claim that cannot be read blocks as long as a claim can.
                let (owner, until) = decode_claim(&value)
                    .unwrap_or_else(|| (format!("unknown: unreadable tag {key}"), 0));
                out.claims.push(Claim {
                    key,
                    owner,
                    until: if until == 0 {
                        unix_now() + CLAIM_TTL
                    } else {
                        until
                    },
                });
            }
        }
        Ok(out)
    }

    async fn claim_keys(&self, user: &str) -> Result<Vec<Claim>, JournalError> {
        Ok(self
            .tags(user)
            .await?
            .into_iter()
            .filter(|(k, _)| k.starts_with(IamTagJournal::CLAIM_TAG))
            .map(|(key, _)| Claim {
                key,
                owner: String::new(),
                until: 0,
            })
            .collect())
    }

    async fn tag(&self, user: &str, key: &str, value: &str) -> Result<(), JournalError> {
        self.iam
            .tag_user(user, key, value)
            .await
            .map_err(|cause| Self::iam_error(user, cause))
    }

    async fn untag(&self, user: &str, key: &str) -> Result<(), JournalError> {
        match self.iam.untag_user(user, key).await {
            Err(e) if e.kind != IamErrorKind::NoSuchEntity => Err(Self::iam_error(user, e)),
            _ => Ok(()),
        }
    }

    /// Writes `record` as this run's, leased from now.
    async fn write(&self, record: &JournalRecord) -> Result<JournalRecord, JournalError> {
        let mut record = record.clone();
        record.owner = self.owner.clone();
        record.lease_until = unix_now() + self.lease.as_secs();
        let value = encode_tag(&record).map_err(|why| JournalError::Io {
            location: format!("tag {} on IAM user '{}'", IamTagJournal::TAG, record.user),
            cause: why,
        })?;
        self.tag(&record.user, IamTagJournal::TAG, &value).await?;
        Ok(record)
    }

    /// Writes `record` if the user's record is still this run's.
    async fn write_checked(&self, record: &JournalRecord) -> Result<JournalRecord, JournalError> {
        let user = &record.user;
        let lost = |why: String| JournalError::Lost {
            user: user.clone(),
            why,
        };
        match self.read(user).await?.record {
            Some(current) if current.owner == self.owner => self.write(record).await,
            Some(current) => Err(lost(format!(
                "run {} took its record over (phase {})",
                current.owner,
                current.phase.as_str()
            ))),
            None => Err(lost(
                "its record was removed (`keyrot journal clear`, or another run)".into(),
            )),
        }
    }

    fn hold(&self, user: &str) -> Option<Arc<Hold>> {
        self.held
            .lock()
            .unwrap()
            .get(&user.to_ascii_lowercase())
            .cloned()
    }

    fn unhold(&self, user: &str) -> Option<Arc<Hold>> {
        let hold = self.held.lock().unwrap().remove(&user.to_ascii_lowercase());
        if let Some(hold) = &hold {
            hold.stop();
        }
        hold
    }

    /// Renews the lease every third of it while the run holds the user;
    /// when it cannot be sure of holding it for another third, the run
    /// loses the user, in time to stop before anyone may take over.
    async fn keep(self: Arc<Self>, hold: Arc<Hold>) {
        let every = self.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let mut record = hold.record.lock().await;
            match self.write_checked(&record).await {
                Ok(written) => *record = written,
                Err(err @ JournalError::Lost { .. }) => {
                    hold.lose(err.to_string());
                    return;
                }
                Err(err) => {
                    let left = record.lease_until.saturating_sub(unix_now());
                    if left <= every.as_secs() {
                        hold.lose(format!("its lease could not be renewed in time ({err})"));
                        return;
                    }
                    tracing::warn!("could not renew the lease on user {}: {err}", record.user);
                }
            }
        }
    }
}

#[async_trait]
impl Journal for IamTagJournal {
    async fn begin(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let inner = &self.inner;
        let (claim, after) = inner.claim(user).await?;
        // Won: the record is this run's now (an expired one taken over as
        // it stands, to be finished).
        let now = unix_now();
        let pending = after.record;
        let record = pending.clone().unwrap_or_else(|| JournalRecord {
            version: JournalRecord::VERSION,
            account: None,
            user: user.to_string(),
            phase: Phase::Claimed,
            keys_before: Vec::new(),
            active_before: None,
            new_key: None,
            retire: RetireMode::Delete,
            started: now,
            owner: String::new(),
            lease_until: 0,
            handed_over: None,
            deactivated: None,
            abandoned: Vec::new(),
        });
        let written = inner.write(&record).await;
        // Our claim and any expired ones go; a claim left behind only delays
        // other runs until it expires.
        let expired = after.claims.iter().filter(|c| !live(c.until, now));
        for key in std::iter::once(claim).chain(expired.map(|c| c.key.clone())) {
            if let Err(err) = inner.untag(user, &key).await {
                tracing::warn!("could not remove the claim tag {key} of user {user}: {err}");
            }
        }
        inner.hold_user(user, written?);
        Ok(pending)
    }

    async fn peek(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        Ok(self.inner.read(user).await?.record)
    }

    async fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let inner = &self.inner;
        let Some(hold) = inner.hold(&record.user) else {
            // Not begun by this journal (a library caller's own use).
            inner.write(record).await?;
            return Ok(());
        };
        let mut current = hold.record.lock().await;
        match inner.write_checked(record).await {
            Ok(written) => {
                *current = written;
                Ok(())
            }
            Err(err @ JournalError::Lost { .. }) => {
                hold.lose(err.to_string());
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    async fn clear(&self, user: &str) -> Result<(), JournalError> {
        let inner = &self.inner;
        inner.unhold(user);
        match inner.read(user).await {
            Ok(tags) => match tags.record {
                Some(record) if record.owner != inner.owner => {
                    tracing::warn!(
                        "the journal of user {user} belongs to run {} now: left as it is",
                        record.owner
                    );
                    Ok(())
                }
                Some(_) => inner.untag(user, IamTagJournal::TAG).await,
                None => Ok(()),
            },
            Err(err) => Err(err),
        }
    }

    async fn release(&self, user: &str) {
        let inner = &self.inner;
        let Some(hold) = inner.unhold(user) else {
            return;
        };
        if hold.lost.lock().unwrap().is_some() {
            return;
        }
        // Keep the record, without the lease: the next run need not wait.
        let mut record = hold.record.lock().await.clone();
        let released = async {
            match inner.read(user).await?.record {
                Some(current) if current.owner == inner.owner => {
                    record.lease_until = 0;
                    let value = encode_tag(&record).map_err(|cause| JournalError::Io {
                        location: IamTagJournal::TAG.into(),
                        cause,
                    })?;
                    inner.tag(user, IamTagJournal::TAG, &value).await
                }
                _ => Ok(()),
            }
        };
        if let Err(err) = released.await {
            tracing::warn!("could not release the lease on user {user}: {err}");
        }
    }

    async fn lost(&self, user: &str) {
        let Some(hold) = self.inner.hold(user) else {
            return std::future::pending().await;
        };
        loop {
            // Registered before the check, so a loss in between is seen.
            let notified = hold.notify.notified();
            if hold.lost.lock().unwrap().is_some() {
                return;
            }
            notified.await;
        }
    }
}
