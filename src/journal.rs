//! Where the rotation journal lives, and the lock that keeps two runs on one
//! user from interleaving.
//!
//! - [`StateDir`] (`--state-dir`, default `$XDG_STATE_HOME/keyrot` or
//!   `~/.local/state/keyrot`, 0700): a JSON file per (account, user),
//!   written durably ([`fsutil::write_atomic`]), and an exclusive `flock`
//!   per (account, user) that dies with its process. Every directory below
//!   the root is checked as the root is: a real directory (never a
//!   symlink), ours, writable by nobody else ([`fsutil`]).
//! - [`FileJournal`] takes that lock in [`Journal::begin`] and lets go of it
//!   when the run clears or releases the record: whoever uses the journal,
//!   the binary or a library caller, gets the lock with it.
//! - [`IamTagJournal`] (`--journal iam`): the same record as a tag on the
//!   IAM user, so a rerun on any machine (an ephemeral CI runner) finds it.
//!   The record carries a lease, renewed while the run works; see the type
//!   for how two machines are kept from both holding it.
//!
//! Both refuse a record that is incomplete or contradicts itself
//! ([`JournalRecord::check`]): a rerun acts on it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::fsutil;
use crate::iam::{Iam, IamErrorKind};
use crate::rotation::state::CLOCK_SKEW;
use crate::rotation::{Journal, JournalError, JournalRecord, Phase, RetireMode, rfc3339, unix_now};

/// The largest journal file keyrot reads.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// How often a run waiting for a user's lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// keyrot's state directory: journals and locks.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens the state directory, creating it 0700 if missing. Refuses one
    /// that is not a directory, belongs to another user or is writable by
    /// others: a journal there could be forged.
    pub fn open(root: &Path) -> Result<Self, JournalError> {
        let missing = !root.exists();
        fsutil::ensure_private_dir(root).map_err(|e| {
            let location = format!("state directory {}", root.display());
            // Where it cannot be made (a read-only root filesystem in a
            // container, say), say how to give keyrot one.
            if missing && !root.exists() {
                JournalError::Io {
                    location,
                    cause: format!(
                        "cannot create it ({e}): give keyrot a writable directory with \
                         --state-dir DIR or KEYROT_STATE_DIR (needed by --journal iam too, for \
                         its locks)"
                    ),
                }
            } else {
                dir_error(&location, "USER", e)
            }
        })?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The file journal for users of `account` (`unknown` if not known).
    /// Its [`Journal::begin`] takes the user's lock, failing at once if
    /// another run holds it (see [`FileJournal::waiting`]).
    pub fn journal(&self, account: Option<&str>) -> FileJournal {
        FileJournal {
            state: self.clone(),
            account: account.unwrap_or("unknown").to_string(),
            wait: None,
            locks: Arc::default(),
        }
    }

    /// The accounts whose file journal holds a record for `user`.
    pub fn accounts_with_journal(&self, user: &str) -> Result<Vec<String>, JournalError> {
        let dir = self.root.join("journal");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(dir_error(&dir.display().to_string(), user, e)),
        };
        let mut accounts = Vec::new();
        for entry in entries.flatten() {
            let account = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let has = [FileJournal::file_name(user), format!("{user}.json")]
                .iter()
                .any(|name| path.join(name).exists());
            if has {
                accounts.push(account);
            }
        }
        accounts.sort();
        Ok(accounts)
    }

    /// Takes the exclusive lock on (account, user), blocking this thread.
    /// Busy: waits up to `wait`, then fails naming the process that holds
    /// it.
    pub fn lock(
        &self,
        account: Option<&str>,
        user: &str,
        wait: Option<Duration>,
    ) -> Result<UserLock, JournalError> {
        let deadline = Instant::now() + wait.unwrap_or_default();
        let mut file = self.lock_file(account.unwrap_or("unknown"), user)?;
        loop {
            if let Some(lock) = file.try_lock()? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(file.busy(user));
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// The lock file of (account, user), open, not yet locked.
    fn lock_file(&self, account: &str, user: &str) -> Result<LockFile, JournalError> {
        let dir = fsutil::ensure_private_tree(&self.root, &Path::new("locks").join(account))
            .map_err(|e| dir_error("lock directory", user, e))?;
        // IAM user names ignore case: `CI-Bot` and `ci-bot` share one lock.
        let path = dir.join(format!("{}.lock", user.to_ascii_lowercase()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|cause| JournalError::Io {
                location: path.display().to_string(),
                cause: cause.to_string(),
            })?;
        Ok(LockFile { file, path })
    }
}

/// A lock file, open.
struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// One attempt: the lock, or `None` if another process holds it.
    fn try_lock(&mut self) -> Result<Option<UserLock>, JournalError> {
        let io = |cause: std::io::Error| JournalError::Io {
            location: self.path.display().to_string(),
            cause: cause.to_string(),
        };
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(None),
                _ => Err(io(err)),
            };
        }
        let mut file = self.file.try_clone().map_err(io)?;
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Some(UserLock { _file: file }))
    }

    /// The error for a lock another process holds, naming it.
    fn busy(&mut self, user: &str) -> JournalError {
        let mut holder = String::new();
        let _ = self.file.read_to_string(&mut holder);
        let holder = holder.trim();
        JournalError::Busy {
            user: user.to_string(),
            owner: if holder.is_empty() {
                "another process".into()
            } else {
                format!("pid {holder}")
            },
            until: String::new(),
        }
    }
}

/// Held while a run works on one user; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct UserLock {
    _file: File,
}

/// A directory under the state dir that cannot be used: refused (exit 2,
/// someone else could write there) or an I/O failure.
fn dir_error(location: &str, user: &str, err: std::io::Error) -> JournalError {
    if err.kind() == std::io::ErrorKind::PermissionDenied {
        JournalError::Corrupt {
            location: location.to_string(),
            user: user.to_string(),
            why: err.to_string(),
        }
    } else {
        JournalError::Io {
            location: location.to_string(),
            cause: err.to_string(),
        }
    }
}

/// The journal as one JSON file per user in the state directory, under
/// the user's lock.
#[derive(Clone, Debug)]
pub struct FileJournal {
    state: StateDir,
    account: String,
    /// How long [`Journal::begin`] waits for another run's lock.
    wait: Option<Duration>,
    /// The locks this journal holds, by lower-cased user.
    locks: Arc<Mutex<HashMap<String, UserLock>>>,
}

impl FileJournal {
    /// Waits up to `wait` for another run's lock on a user, instead of
    /// failing at once (`--wait-lock`).
    pub fn waiting(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }

    /// The account's journal directory, made or checked private on the way.
    fn dir(&self, user: &str) -> Result<PathBuf, JournalError> {
        let rel = Path::new("journal").join(&self.account);
        fsutil::ensure_private_tree(&self.state.root, &rel)
            .map_err(|e| dir_error("journal directory", user, e))
    }

    /// IAM user names ignore case: one file per user, whatever the spelling.
    fn file_name(user: &str) -> String {
        format!("{}.json", user.to_ascii_lowercase())
    }

    fn read(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let dir = self.dir(user)?;
        let corrupt = |location: &Path, why: String| JournalError::Corrupt {
            location: location.display().to_string(),
            user: user.to_string(),
            why,
        };
        let mut path = dir.join(Self::file_name(user));
        // Journals of keyrot 0.1 were named as the user was spelled.
        let legacy = dir.join(format!("{user}.json"));
        if !path.exists() && legacy.exists() {
            path = legacy;
        }
        let bytes = match fsutil::read_private(&path, MAX_RECORD_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(corrupt(&path, e.to_string())),
        };
        let record: JournalRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
        if !record.user.eq_ignore_ascii_case(user) {
            return Err(corrupt(
                &path,
                format!("it is the record of user '{}'", record.user),
            ));
        }
        record
            .check(unix_now())
            .map_err(|why| corrupt(&path, why))?;
        Ok(Some(record))
    }

    /// Takes the user's lock, waiting up to `self.wait` without blocking a
    /// thread (so a run waiting for it can be interrupted).
    async fn lock(&self, user: &str) -> Result<UserLock, JournalError> {
        let deadline = Instant::now() + self.wait.unwrap_or_default();
        let mut file = self.state.lock_file(&self.account, user)?;
        let mut said = false;
        loop {
            if let Some(lock) = file.try_lock()? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(file.busy(user));
            }
            if !said {
                said = true;
                tracing::info!(
                    "{}: waiting up to {} for it (--wait-lock)",
                    file.busy(user),
                    crate::rotation::human_duration(self.wait.unwrap_or_default())
                );
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    fn unlock(&self, user: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user.to_ascii_lowercase());
    }
}

#[async_trait]
impl Journal for FileJournal {
    async fn begin(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let key = user.to_ascii_lowercase();
        let held = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key);
        // The lock first, then the record: what it says may not change
        // under this run.
        let lock = if held {
            None
        } else {
            Some(self.lock(user).await?)
        };
        let record = self.read(user)?;
        if let Some(lock) = lock {
            self.locks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, lock);
        }
        Ok(record)
    }

    async fn peek(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        self.read(user)
    }

    async fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let dir = self.dir(&record.user)?;
        let path = dir.join(Self::file_name(&record.user));
        let legacy = dir.join(format!("{}.json", record.user));
        let json = serde_json::to_vec_pretty(record).map_err(|e| JournalError::Io {
            location: path.display().to_string(),
            cause: e.to_string(),
        })?;
        // fsync takes milliseconds: off the async threads, so the other
        // rotations of a fleet go on meanwhile.
        off_runtime(move || {
            fsutil::write_atomic(&dir, &path, &json).map_err(|cause| JournalError::Io {
                location: path.display().to_string(),
                cause: cause.to_string(),
            })?;
            // A record of keyrot 0.1 under the old spelling is now replaced.
            if legacy != path {
                let _ = fs::remove_file(&legacy);
            }
            Ok(())
        })
        .await
    }

    async fn clear(&self, user: &str) -> Result<(), JournalError> {
        let dir = self.dir(user)?;
        let paths = [
            dir.join(Self::file_name(user)),
            dir.join(format!("{user}.json")),
        ];
        let removed = off_runtime(move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => File::open(&dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|cause| JournalError::Io {
                            location: dir.display().to_string(),
                            cause: cause.to_string(),
                        })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(JournalError::Io {
                            location: path.display().to_string(),
                            cause: e.to_string(),
                        });
                    }
                }
            }
            Ok(())
        })
        .await;
        self.unlock(user);
        removed
    }

    async fn release(&self, user: &str) {
        self.unlock(user);
    }
}

/// Runs blocking file work on Tokio's blocking threads.
async fn off_runtime(
    work: impl FnOnce() -> Result<(), JournalError> + Send + 'static,
) -> Result<(), JournalError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(JournalError::Io {
            location: "journal".into(),
            cause: format!("the journal write did not finish: {e}"),
        })
    })
}

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
        let busy = |owner: &str, until: u64| JournalError::Busy {
            user: user.to_string(),
            owner: owner.to_string(),
            until: format!(" (its lease ends {})", rfc3339(until)),
        };
        let now = unix_now();
        let before = inner.read(user).await?;
        if let Some(record) = &before.record
            && record.owner != inner.owner
            && live(record.lease_until, now)
        {
            return Err(busy(&record.owner, record.lease_until));
        }
        if let Some(claim) = before.claims.iter().find(|c| live(c.until, now)) {
            return Err(busy(&claim.owner, claim.until));
        }

        // Claim beside the record, never over it; then look again.
        let claim = inner.claim_key();
        let value = format!("h={}/x={}", inner.owner, unix_now() + CLAIM_TTL);
        inner.tag(user, &claim, &value).await?;
        tokio::time::sleep(inner.settle).await;
        let after = match inner.read(user).await {
            Ok(after) => after,
            Err(err) => {
                let _ = inner.untag(user, &claim).await;
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
                after
                    .record
                    .as_ref()
                    .filter(|r| r.owner != inner.owner && after.record != before.record)
                    .map(|r| (r.owner.clone(), r.lease_until))
            });
        if let Some((owner, until)) = rival {
            let _ = inner.untag(user, &claim).await;
            return Err(busy(&owner, until));
        }

        // Won: the record is this run's now (an expired one taken over as
        // it stands, to be finished).
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
        });
        let written = inner.write(&record).await;
        // Our claim and any expired ones go; a claim left behind only delays
        // other runs until it expires.
        for key in std::iter::once(claim).chain(
            after
                .claims
                .iter()
                .filter(|c| !live(c.until, now))
                .map(|c| c.key.clone()),
        ) {
            if let Err(err) = inner.untag(user, &key).await {
                tracing::warn!("could not remove the claim tag {key} of user {user}: {err}");
            }
        }
        let written = written?;
        let hold = Arc::new(Hold {
            record: tokio::sync::Mutex::new(written),
            lost: Mutex::new(None),
            notify: Notify::new(),
            keeper: Mutex::new(None),
        });
        let keeper = tokio::spawn(inner.clone().keep(hold.clone()));
        *hold.keeper.lock().unwrap() = Some(keeper);
        if let Some(old) = inner
            .held
            .lock()
            .unwrap()
            .insert(user.to_ascii_lowercase(), hold)
        {
            old.stop();
        }
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

/// Fields of a tag value: `/` since keyrot 0.2 (spaces are legal in IAM tag
/// values, but some SigV4 implementations encode them differently from
/// AWS's own SDKs), a space before.
const FIELD_SEPARATORS: [char; 2] = ['/', ' '];

/// `v=1/p=created/o=AKIA1+AKIA2/a=AKIA1/n=AKIA3/r=delete/t=…/x=…/h=owner`:
/// IAM tag values allow letters, digits, spaces and `_.:/=+-@`, up to 256
/// characters (owner ids hold no `/`). A record that does not fit is an
/// error, never cut: the owner is compared whole.
fn encode_tag(record: &JournalRecord) -> Result<String, String> {
    let mut fields = vec![
        format!("v={}", record.version),
        format!("p={}", record.phase.as_str()),
        format!("o={}", record.keys_before.join("+")),
    ];
    if let Some(active) = &record.active_before {
        fields.push(format!("a={active}"));
    }
    if let Some(new) = &record.new_key {
        fields.push(format!("n={new}"));
    }
    if let Some(account) = &record.account {
        fields.push(format!("c={account}"));
    }
    fields.push(format!("r={}", record.retire.as_str()));
    fields.push(format!("t={}", record.started));
    fields.push(format!("x={}", record.lease_until));
    fields.push(format!("h={}", record.owner));
    let text = fields.join("/");
    if text.len() > 256 {
        return Err(format!(
            "the record is {} characters, more than an IAM tag holds",
            text.len()
        ));
    }
    Ok(text)
}

/// The record in a tag. Every field but `a`, `n` and `c` must be there,
/// once; [`JournalRecord::check`] then tests that they agree.
fn decode_tag(user: &str, value: &str) -> Result<JournalRecord, String> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for field in value.split(FIELD_SEPARATORS).filter(|f| !f.is_empty()) {
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| format!("bad field '{field}'"))?;
        if fields.insert(key, v).is_some() {
            return Err(format!("field '{key}' appears twice"));
        }
    }
    let field = |key: &str, name: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("it has no {name} ({key}=)"))
    };
    let number = |key: &str, name: &str| {
        let v = field(key, name)?;
        v.parse::<u64>()
            .map_err(|_| format!("bad number '{v}' for {name}"))
    };
    let version = number("v", "version")?;
    let phase = match field("p", "phase")? {
        "claimed" => Phase::Claimed,
        "create-sent" => Phase::CreateSent,
        "created" => Phase::Created,
        "propagated" => Phase::Propagated,
        other => return Err(format!("unknown phase '{other}'")),
    };
    let retire = match field("r", "retire mode")? {
        "delete" => RetireMode::Delete,
        "deactivate" => RetireMode::Deactivate,
        other => return Err(format!("unknown retire mode '{other}'")),
    };
    Ok(JournalRecord {
        version: u32::try_from(version).map_err(|_| format!("unknown version {version}"))?,
        account: fields.get("c").map(|v| v.to_string()),
        user: user.to_string(),
        phase,
        keys_before: field("o", "list of keys")?
            .split('+')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        active_before: fields.get("a").map(|v| v.to_string()),
        new_key: fields.get("n").map(|v| v.to_string()),
        retire,
        started: number("t", "start time")?,
        owner: field("h", "owner")?.to_string(),
        lease_until: number("x", "lease")?,
    })
}

/// A claim tag's owner and expiry: `h=owner x=until`.
fn decode_claim(value: &str) -> Option<(String, u64)> {
    let mut owner = None;
    let mut until = None;
    for field in value.split(FIELD_SEPARATORS) {
        match field.split_once('=')? {
            ("h", v) => owner = Some(v.to_string()),
            ("x", v) => until = v.parse().ok(),
            _ => {}
        }
    }
    Some((owner?, until?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    const K1: &str = "AKIAAAAAAAAAAAAAAAA1";
    const K2: &str = "AKIAAAAAAAAAAAAAAAA2";
    const K3: &str = "AKIAAAAAAAAAAAAAAAA3";

    fn record() -> JournalRecord {
        JournalRecord {
            version: JournalRecord::VERSION,
            account: Some("123456789012".into()),
            user: "ci-bot".into(),
            phase: Phase::Created,
            keys_before: vec![K1.into(), K2.into()],
            active_before: Some(K1.into()),
            new_key: Some(K3.into()),
            retire: RetireMode::Deactivate,
            started: 1_796_205_600,
            owner: "build-host-with-a-long-name.example.com:4194304:0123456789abcdef".into(),
            lease_until: 1_796_206_500,
        }
    }

    #[test]
    fn a_tag_round_trips_and_fits() {
        let record = record();
        let tag = encode_tag(&record).unwrap();
        assert!(tag.len() <= 256, "{} chars: {tag}", tag.len());
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)),
            "{tag}"
        );
        assert_eq!(decode_tag("ci-bot", &tag).unwrap(), record);
    }

    #[test]
    fn a_tag_of_keyrot_0_1_with_spaces_is_read() {
        let record = record();
        let spaced = encode_tag(&record).unwrap().replace('/', " ");
        assert_eq!(decode_tag("ci-bot", &spaced).unwrap(), record);
    }

    #[test]
    fn a_record_too_long_for_a_tag_is_an_error_not_cut() {
        let mut record = record();
        record.owner = "h".repeat(300);
        assert!(encode_tag(&record).is_err());
    }

    #[test]
    fn a_bad_tag_is_an_error() {
        for bad in [
            "v=9 p=created",
            "v=1 p=flying",
            "garbage",
            // The issue's forgeries: no time, no owner, no lease.
            "v=1 p=create-sent",
            "v=1 p=propagated o=AKIAAAAAAAAAAAAAAAA1 n=AKIAAAAAAAAAAAAAAAA1",
        ] {
            let checked = decode_tag("u", bad).and_then(|r| r.check(1_796_205_700));
            assert!(checked.is_err(), "accepted: {bad}");
        }
        let twice = format!("{} n={K1}", encode_tag(&record()).unwrap());
        assert!(decode_tag("u", &twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn a_record_that_contradicts_itself_is_refused() {
        let now = 1_796_205_700;
        let refused = |change: &dyn Fn(&mut JournalRecord), why: &str| {
            let mut r = record();
            change(&mut r);
            let err = r.check(now).expect_err(why);
            assert!(err.contains(why), "{err}");
        };
        refused(&|r| r.new_key = Some(K1.into()), "also one of the keys");
        refused(&|r| r.lease_until = r.started - 1, "lease ends before");
        refused(&|r| r.started = now + 3600, "in the future");
        refused(&|r| r.started = 0, "no start time");
        refused(&|r| r.owner.clear(), "no owner");
        refused(&|r| r.active_before = Some(K3.into()), "not among the keys");
        refused(&|r| r.phase = Phase::CreateSent, "with a new key");
        refused(
            &|r| {
                r.phase = Phase::Propagated;
                r.new_key = None;
            },
            "without a new key",
        );
        refused(
            &|r| r.keys_before.push(K3.into()),
            "more keys than IAM allows",
        );
        refused(&|r| r.keys_before[1] = K1.into(), "twice");
        refused(
            &|r| r.keys_before[1] = "not-a-key".into(),
            "not an access key id",
        );
        refused(&|r| r.account = Some("12".into()), "not an AWS account id");
        record().check(now).unwrap();
    }

    #[tokio::test]
    async fn a_file_journal_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        let journal = state.journal(Some("123456789012"));
        assert!(journal.begin("ci-bot").await.unwrap().is_none());
        journal.save(&record()).await.unwrap();
        assert_eq!(journal.begin("ci-bot").await.unwrap(), Some(record()));
        journal.clear("ci-bot").await.unwrap();
        assert!(journal.peek("ci-bot").await.unwrap().is_none());
        let mode = fs::metadata(state.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[tokio::test]
    async fn a_file_journal_ignores_the_case_of_user_names() {
        // IAM user names ignore case: a run as CI-Bot and a rerun as ci-bot
        // are one user, and must find one record.
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let journal = state.journal(Some("123456789012"));
        let record = JournalRecord {
            user: "CI-Bot".into(),
            ..record()
        };
        journal.save(&record).await.unwrap();
        assert_eq!(journal.peek("ci-bot").await.unwrap(), Some(record.clone()));
        journal.clear("ci-BOT").await.unwrap();
        assert!(journal.peek("CI-Bot").await.unwrap().is_none());

        // A record of keyrot 0.1, named as the user was spelled, is found.
        let legacy = dir.path().join("journal/123456789012/CI-Bot.json");
        fs::write(&legacy, serde_json::to_vec(&record).unwrap()).unwrap();
        fs::set_permissions(&legacy, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(journal.peek("CI-Bot").await.unwrap(), Some(record));
    }

    #[tokio::test]
    async fn a_corrupt_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let journal = state.journal(None);
        journal
            .save(&JournalRecord {
                user: "u".into(),
                ..record()
            })
            .await
            .unwrap();
        fs::write(dir.path().join("journal/unknown/u.json"), "{ not json").unwrap();
        let err = journal.begin("u").await.unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(
            err.to_string().contains("keyrot journal clear --user u"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_symlinked_account_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::create_dir(state.path().join("journal")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, state.path().join("journal/123456789012")).unwrap();
        let journal = state.journal(Some("123456789012"));
        let err = journal.peek("ci-bot").await.unwrap_err();
        assert!(
            err.is_bad_input() && err.to_string().contains("symlink"),
            "{err}"
        );
        assert!(journal.save(&record()).await.unwrap_err().is_bad_input());
        assert!(
            fs::read_dir(&elsewhere).unwrap().next().is_none(),
            "nothing written there"
        );
        // The lock directory gets the same check.
        std::os::unix::fs::symlink(&elsewhere, state.path().join("locks")).unwrap();
        let err = state.lock(Some("1"), "ci-bot", None).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    #[tokio::test]
    async fn begin_takes_the_users_lock_until_the_run_ends() {
        // A library caller using the file journal gets the lock with it.
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let first = state.journal(Some("123456789012"));
        let second = state.journal(Some("123456789012"));
        first.begin("ci-bot").await.unwrap();
        let busy = second.begin("CI-Bot").await.unwrap_err();
        assert!(matches!(busy, JournalError::Busy { .. }), "{busy}");
        first.release("ci-bot").await;
        second.begin("ci-bot").await.unwrap();
        second.clear("ci-bot").await.unwrap();
        first.begin("ci-bot").await.unwrap();
    }

    #[tokio::test]
    async fn a_run_waiting_for_a_lock_takes_it_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let first = state.journal(None);
        first.begin("ci-bot").await.unwrap();
        let waiting = state.journal(None).waiting(Some(Duration::from_secs(30)));
        let freed = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            first.release("ci-bot").await;
        };
        let (taken, ()) = tokio::join!(waiting.begin("ci-bot"), freed);
        taken.unwrap();
    }

    #[test]
    fn a_second_lock_on_one_user_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let _held = state.lock(Some("1"), "ci-bot", None).unwrap();
        let err = state.lock(Some("1"), "ci-bot", None).unwrap_err();
        let pid = std::process::id().to_string();
        assert!(err.to_string().contains(&pid), "{err}");
        // Another user, or the same name in another account, is free.
        state.lock(Some("1"), "other", None).unwrap();
        state.lock(Some("2"), "ci-bot", None).unwrap();
    }

    #[test]
    fn a_state_dir_that_is_a_file_or_shared_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(StateDir::open(&file).is_err());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }
}
