//! Where the rotation journal lives, and the lock that keeps two runs on one
//! user from interleaving.
//!
//! - [`StateDir`] (`--state-dir`, default `$XDG_STATE_HOME/keyrot` or
//!   `~/.local/state/keyrot`, 0700): a JSON file per (account, user),
//!   written durably (temp file, fsync, rename, fsync the directory), and an
//!   exclusive `flock` per (account, user) that dies with its process.
//! - [`IamTagJournal`] (`--journal iam`): the same record as a tag on the
//!   IAM user, so a rerun on any machine (an ephemeral CI runner) finds it.
//!   The tag doubles as a lease with an expiry: a second run elsewhere waits
//!   or backs off while it is live.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::iam::{Iam, IamErrorKind};
use crate::rotation::{Journal, JournalError, JournalRecord, Phase, RetireMode, rfc3339, unix_now};

/// The largest journal file keyrot reads.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

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
        let io = |cause: std::io::Error| JournalError::Io {
            location: format!("state directory {}", root.display()),
            cause: cause.to_string(),
        };
        match fs::symlink_metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(io)?;
                fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
            Ok(_) => {}
        }
        let meta = fs::symlink_metadata(root).map_err(io)?;
        let refuse = |why: String| JournalError::Corrupt {
            location: format!("state directory {}", root.display()),
            user: "USER".into(),
            why,
        };
        if !meta.is_dir() {
            return Err(refuse("not a directory (a symlink is not accepted)".into()));
        }
        check_private(&meta).map_err(refuse)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The file journal for users of `account` (`unknown` if not known).
    pub fn journal(&self, account: Option<&str>) -> FileJournal {
        FileJournal {
            dir: self.root.join("journal").join(account.unwrap_or("unknown")),
        }
    }

    /// Takes the exclusive lock on (account, user). Busy: waits up to
    /// `wait`, then fails naming the process that holds it.
    pub fn lock(
        &self,
        account: Option<&str>,
        user: &str,
        wait: Option<Duration>,
    ) -> Result<UserLock, JournalError> {
        let dir = self.root.join("locks").join(account.unwrap_or("unknown"));
        // IAM user names ignore case: `CI-Bot` and `ci-bot` share one lock.
        let path = dir.join(format!("{}.lock", user.to_ascii_lowercase()));
        let io = |cause: std::io::Error| JournalError::Io {
            location: path.display().to_string(),
            cause: cause.to_string(),
        };
        create_private_dir(&dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io)?;
        let deadline = Instant::now() + wait.unwrap_or_default();
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(err));
            }
            if Instant::now() >= deadline {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(JournalError::Busy {
                    user: user.to_string(),
                    owner: if holder.is_empty() {
                        "another process".into()
                    } else {
                        format!("pid {holder}")
                    },
                    until: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(UserLock { _file: file })
    }
}

/// Held while a run works on one user; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct UserLock {
    _file: File,
}

/// The journal as one JSON file per user in the state directory.
#[derive(Clone, Debug)]
pub struct FileJournal {
    dir: PathBuf,
}

impl FileJournal {
    fn path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{user}.json"))
    }

    fn read(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let path = self.path(user);
        let location = path.display().to_string();
        let bytes = match read_private_file(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(JournalError::Corrupt {
                    location,
                    user: user.to_string(),
                    why: e.to_string(),
                });
            }
        };
        let record: JournalRecord =
            serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                location: location.clone(),
                user: user.to_string(),
                why: e.to_string(),
            })?;
        if record.version != JournalRecord::VERSION || record.user != user {
            return Err(JournalError::Corrupt {
                location,
                user: user.to_string(),
                why: format!(
                    "it is version {} for user '{}'",
                    record.version, record.user
                ),
            });
        }
        Ok(Some(record))
    }
}

#[async_trait]
impl Journal for FileJournal {
    async fn begin(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        self.read(user)
    }

    async fn peek(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        self.read(user)
    }

    async fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let path = self.path(&record.user);
        let dir = self.dir.clone();
        let json = serde_json::to_vec_pretty(record).map_err(|e| JournalError::Io {
            location: path.display().to_string(),
            cause: e.to_string(),
        })?;
        // fsync takes milliseconds: off the async threads, so the other
        // rotations of a fleet go on meanwhile.
        off_runtime(move || {
            let io = |cause: std::io::Error| JournalError::Io {
                location: path.display().to_string(),
                cause: cause.to_string(),
            };
            create_private_dir(&dir).map_err(io)?;
            write_durably(&dir, &path, &json).map_err(io)
        })
        .await
    }

    async fn clear(&self, user: &str) -> Result<(), JournalError> {
        let path = self.path(user);
        let dir = self.dir.clone();
        off_runtime(move || match fs::remove_file(&path) {
            Ok(()) => sync_dir(&dir).map_err(|cause| JournalError::Io {
                location: dir.display().to_string(),
                cause: cause.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JournalError::Io {
                location: path.display().to_string(),
                cause: e.to_string(),
            }),
        })
        .await
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
pub struct IamTagJournal {
    iam: Arc<dyn Iam>,
    owner: String,
    lease: Duration,
    settle: Duration,
}

impl IamTagJournal {
    /// The tag's key.
    pub const TAG: &'static str = "keyrot-journal";
    /// How long a run holds the user without writing: longer than any run
    /// step (a plugin call is at most 24h, but typically a minute).
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);

    /// A journal kept through `iam`, for this process.
    pub fn new(iam: Arc<dyn Iam>, lease: Duration) -> Self {
        Self {
            iam,
            owner: crate::rotation::owner_id(),
            lease,
            settle: Duration::from_secs(2),
        }
    }

    /// How long to wait after claiming before checking the claim held (IAM
    /// is eventually consistent; two runs claiming at once both see the
    /// last writer after this).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    async fn read(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let tags = self
            .iam
            .list_user_tags(user)
            .await
            .map_err(|cause| self.iam_error(user, cause))?;
        let Some((_, value)) = tags.iter().find(|(k, _)| k == Self::TAG) else {
            return Ok(None);
        };
        decode_tag(user, value)
            .map(Some)
            .map_err(|why| JournalError::Corrupt {
                location: format!("tag {} on IAM user '{user}'", Self::TAG),
                user: user.to_string(),
                why,
            })
    }

    fn iam_error(&self, user: &str, cause: crate::iam::IamError) -> JournalError {
        JournalError::Iam {
            user: user.to_string(),
            cause,
        }
    }

    async fn write(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let mut record = record.clone();
        record.owner = self.owner.clone();
        record.lease_until = unix_now() + self.lease.as_secs();
        self.iam
            .tag_user(&record.user, Self::TAG, &encode_tag(&record))
            .await
            .map_err(|cause| self.iam_error(&record.user, cause))
    }

    fn busy(&self, record: &JournalRecord) -> Option<JournalError> {
        (record.owner != self.owner && record.lease_until > unix_now()).then(|| {
            JournalError::Busy {
                user: record.user.clone(),
                owner: record.owner.clone(),
                until: format!(" (its lease ends {})", rfc3339(record.lease_until)),
            }
        })
    }
}

#[async_trait]
impl Journal for IamTagJournal {
    async fn begin(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        let pending = self.read(user).await?;
        if let Some(record) = &pending {
            if let Some(busy) = self.busy(record) {
                return Err(busy);
            }
            // An expired lease: a crashed run to finish. Take it over.
            self.write(record).await?;
        } else {
            self.write(&JournalRecord {
                version: JournalRecord::VERSION,
                account: None,
                user: user.to_string(),
                phase: Phase::Claimed,
                keys_before: Vec::new(),
                active_before: None,
                new_key: None,
                retire: RetireMode::Delete,
                started: unix_now(),
                owner: String::new(),
                lease_until: 0,
            })
            .await?;
        }
        // Two runs claiming at once: the last writer wins, the other backs
        // off once the tag has settled.
        tokio::time::sleep(self.settle).await;
        match self.read(user).await? {
            Some(now) if now.owner != self.owner => Err(JournalError::Busy {
                user: user.to_string(),
                owner: now.owner,
                until: format!(" (its lease ends {})", rfc3339(now.lease_until)),
            }),
            _ => Ok(pending),
        }
    }

    async fn peek(&self, user: &str) -> Result<Option<JournalRecord>, JournalError> {
        self.read(user).await
    }

    async fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        self.write(record).await
    }

    async fn clear(&self, user: &str) -> Result<(), JournalError> {
        match self.iam.untag_user(user, Self::TAG).await {
            Err(e) if e.kind != IamErrorKind::NoSuchEntity => Err(self.iam_error(user, e)),
            _ => Ok(()),
        }
    }
}

/// `v=1 p=created o=AKIA1+AKIA2 a=AKIA1 n=AKIA3 r=delete t=… x=… h=host:pid`:
/// IAM tag values allow letters, digits, spaces and `_.:/=+-@`, up to 256
/// characters. The owner is cut to fit.
fn encode_tag(record: &JournalRecord) -> String {
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
    let text = fields.join(" ");
    let owner: String = record
        .owner
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(*c))
        .take(255usize.saturating_sub(text.len() + 3))
        .collect();
    format!("{text} h={owner}")
}

fn decode_tag(user: &str, value: &str) -> Result<JournalRecord, String> {
    let mut record = JournalRecord {
        version: 0,
        account: None,
        user: user.to_string(),
        phase: Phase::Claimed,
        keys_before: Vec::new(),
        active_before: None,
        new_key: None,
        retire: RetireMode::Delete,
        started: 0,
        owner: String::new(),
        lease_until: 0,
    };
    let number = |v: &str| v.parse::<u64>().map_err(|_| format!("bad number '{v}'"));
    for field in value.split(' ').filter(|f| !f.is_empty()) {
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| format!("bad field '{field}'"))?;
        match key {
            "v" => record.version = number(v)? as u32,
            "p" => {
                record.phase = match v {
                    "claimed" => Phase::Claimed,
                    "create-sent" => Phase::CreateSent,
                    "created" => Phase::Created,
                    "propagated" => Phase::Propagated,
                    other => return Err(format!("unknown phase '{other}'")),
                }
            }
            "o" => {
                record.keys_before = v
                    .split('+')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "a" => record.active_before = Some(v.to_string()),
            "n" => record.new_key = Some(v.to_string()),
            "c" => record.account = Some(v.to_string()),
            "r" => {
                record.retire = match v {
                    "delete" => RetireMode::Delete,
                    "deactivate" => RetireMode::Deactivate,
                    other => return Err(format!("unknown retire mode '{other}'")),
                }
            }
            "t" => record.started = number(v)?,
            "x" => record.lease_until = number(v)?,
            "h" => record.owner = v.to_string(),
            _ => {}
        }
    }
    if record.version != JournalRecord::VERSION {
        return Err(format!("unknown version {}", record.version));
    }
    Ok(record)
}

/// Owned by this user and writable by nobody else.
fn check_private(meta: &fs::Metadata) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(format!("it belongs to another user (uid {})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err("it is writable by other users".into());
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// Reads a small regular file of ours, never following a symlink and never
/// blocking on a FIFO.
fn read_private_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    check_private(&meta).map_err(std::io::Error::other)?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(std::io::Error::other("too large for a journal"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Write to a temp file, fsync, rename over `path`, fsync the directory: a
/// crash leaves the old record or the new one, never half of one.
/// The temp file is named after the record's own file: one process writes
/// many users' records at once in a fleet run, each under its user's lock.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> JournalRecord {
        JournalRecord {
            version: JournalRecord::VERSION,
            account: Some("123456789012".into()),
            user: "ci-bot".into(),
            phase: Phase::Created,
            keys_before: vec!["AKIAAAAAAAAAAAAAAAA1".into(), "AKIAAAAAAAAAAAAAAAA2".into()],
            active_before: Some("AKIAAAAAAAAAAAAAAAA1".into()),
            new_key: Some("AKIAAAAAAAAAAAAAAAA3".into()),
            retire: RetireMode::Deactivate,
            started: 1_796_205_600,
            owner: "build-host-with-a-name.example.com:123456".into(),
            lease_until: 1_796_206_500,
        }
    }

    #[test]
    fn a_tag_round_trips_and_fits() {
        let record = record();
        let tag = encode_tag(&record);
        assert!(tag.len() <= 256, "{} chars: {tag}", tag.len());
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)),
            "{tag}"
        );
        assert_eq!(decode_tag("ci-bot", &tag).unwrap(), record);
    }

    #[test]
    fn a_long_owner_is_cut_to_fit() {
        let mut record = record();
        record.owner = "h".repeat(300);
        assert!(encode_tag(&record).len() <= 256);
    }

    #[test]
    fn a_bad_tag_is_an_error() {
        assert!(decode_tag("u", "v=9 p=created").is_err());
        assert!(decode_tag("u", "v=1 p=flying").is_err());
        assert!(decode_tag("u", "garbage").is_err());
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
        fs::write(journal.path("u"), "{ not json").unwrap();
        let err = journal.begin("u").await.unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(
            err.to_string().contains("keyrot journal clear --user u"),
            "{err}"
        );
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
