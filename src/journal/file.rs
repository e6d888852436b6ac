//! The journal in the state directory: [`StateDir`] (checked private at
//! every level), the per-user lock, and [`FileJournal`], which takes the
//! lock when a run begins and lets go when it ends.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::fsutil;
use crate::rotation::{Journal, JournalError, JournalRecord, unix_now};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::tests::record;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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
