//! The machinery of `keyrot plugin test`: real rotations ([`KeyRotator`]
//! over [`MemoryIam`], a journal in a temporary state directory) through a
//! [`Recorder`] that stands between keyrot and the [`WasmHandler`],
//! timing each call and keeping what the plugin read and said, what the
//! granted directories looked like around each `preflight`, and the
//! secrets each `handle` was given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::report::CallRecord;
use crate::handler::{HandlerError, HandlerErrorKind, HandlerLog, NewKeyHandler, Rotation};
use crate::host::WasmHandler;
use crate::host::witness::{Observed, Witness};
use crate::iam::{Iam, KeyStatus, MemoryIam, NewAccessKey};
use crate::journal::StateDir;
use crate::rotation::{CallerIdentity, KeyRotator, RotationReport};

/// The IAM user every test rotation rotates.
pub const USER: &str = "keyrot-plugin-test";

/// The account the user is in, as keyrot tells the handler.
pub const ACCOUNT: &str = "123456789012";

/// What the plugin did in one call.
pub struct CallSeen {
    /// Which probe made it.
    pub probe: &'static str,
    /// `preflight` or `handle`.
    pub call: &'static str,
    /// What the witness recorded.
    pub observed: Observed,
}

/// Everything recorded across the suite's calls.
#[derive(Default)]
pub struct Log {
    /// Each call's timing and outcome, for the report.
    pub records: Vec<CallRecord>,
    /// Each call's reads and texts, for the checks.
    pub seen: Vec<CallSeen>,
    /// The secret of every key `handle` was given.
    pub secrets: Vec<Zeroizing<String>>,
    /// Files a `preflight` changed: (probe, what changed).
    pub preflight_changes: Vec<(&'static str, String)>,
}

/// What one rotation's handler calls were.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// Each `preflight`: the rotation it was told, and how it ended.
    pub preflights: Vec<(Rotation, Result<(), HandlerError>)>,
    /// Each `handle`: the rotation, the key id, and how it ended.
    pub handles: Vec<(Rotation, String, Result<(), HandlerError>)>,
}

/// Stands between keyrot and the plugin for one rotation.
pub struct Recorder {
    probe: &'static str,
    preflight: Arc<WasmHandler>,
    handle: Arc<WasmHandler>,
    witness: Arc<Witness>,
    log: Arc<Mutex<Log>>,
    watched: Vec<PathBuf>,
    /// Told once `handle` succeeded; the call then never returns, as if
    /// keyrot had been killed right after it.
    stop_after_handle: Option<Arc<Notify>>,
    calls: Mutex<Calls>,
}

impl Recorder {
    /// A recorder for `probe` that sends `preflight` to one handler and
    /// `handle` to another (the same, but for the check of a failing
    /// `handle`), watching the host directories `watched`.
    pub fn new(
        probe: &'static str,
        preflight: Arc<WasmHandler>,
        handle: Arc<WasmHandler>,
        witness: Arc<Witness>,
        log: Arc<Mutex<Log>>,
        watched: Vec<PathBuf>,
    ) -> Self {
        Self {
            probe,
            preflight,
            handle,
            witness,
            log,
            watched,
            stop_after_handle: None,
            calls: Mutex::default(),
        }
    }

    /// Never returns from a successful `handle`, after telling `stop`.
    pub fn stopping_after_handle(mut self, stop: Arc<Notify>) -> Self {
        self.stop_after_handle = Some(stop);
        self
    }

    /// The calls made so far.
    pub fn calls(&self) -> Calls {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a finished call.
    fn record(&self, call: &'static str, started: Instant, result: &Result<(), HandlerError>) {
        let observed = self.witness.take();
        let record = CallRecord {
            probe: self.probe,
            call,
            ms: started.elapsed().as_millis() as u64,
            memory_bytes: observed.memory_peak as u64,
            outcome: match result {
                Ok(()) => "ok",
                Err(e) => kind_word(e.kind),
            },
            error: result.as_ref().err().map(|e| e.message.clone()),
        };
        let mut log = self.log();
        log.records.push(record);
        log.seen.push(CallSeen {
            probe: self.probe,
            call,
            observed,
        });
    }
}

/// A handler error's kind, as the report spells it.
pub fn kind_word(kind: HandlerErrorKind) -> &'static str {
    match kind {
        HandlerErrorKind::Rejected => "rejected",
        HandlerErrorKind::Trapped => "trapped",
        HandlerErrorKind::TimedOut => "timed-out",
        HandlerErrorKind::OutOfMemory => "out-of-memory",
        HandlerErrorKind::Interrupted => "interrupted",
    }
}

#[async_trait]
impl NewKeyHandler for Recorder {
    async fn preflight(&self, rotation: &Rotation, log: &HandlerLog) -> Result<(), HandlerError> {
        let before = snapshot(&self.watched);
        let started = Instant::now();
        let result = self.preflight.preflight(rotation, log).await;
        self.record("preflight", started, &result);
        let after = snapshot(&self.watched);
        if let Some(change) = difference(&before, &after) {
            self.log().preflight_changes.push((self.probe, change));
        }
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.preflights.push((rotation.clone(), result.clone()));
        result
    }

    async fn handle(
        &self,
        rotation: &Rotation,
        key: &NewAccessKey,
        log: &HandlerLog,
    ) -> Result<(), HandlerError> {
        let secret = Zeroizing::new(key.secret_access_key.expose().to_string());
        self.log().secrets.push(secret);
        let started = Instant::now();
        let result = self.handle.handle(rotation, key, log).await;
        self.record("handle", started, &result);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handles
            .push((rotation.clone(), key.access_key_id.clone(), result.clone()));
        if let (Ok(()), Some(stop)) = (&result, &self.stop_after_handle) {
            stop.notify_one();
            std::future::pending::<()>().await;
        }
        result
    }
}

/// One rotation of [`USER`] over `iam`, with a journal in `state`. A
/// failed rotation's report is returned like a successful one's.
pub async fn rotate(iam: Arc<MemoryIam>, handler: Arc<Recorder>, state: &Path) -> RotationReport {
    match rotator(iam, handler, state) {
        Ok(rotator) => match rotator.rotate_keys(USER).await {
            Ok(report) => report,
            Err(e) => *e.report,
        },
        Err(why) => RotationReport::failed(USER, Some(ACCOUNT), why),
    }
}

/// A rotation of [`USER`] that is stopped for good right after `handle`
/// succeeded, before keyrot records that it did: a kill at the worst
/// moment. `Some(report)` if it ended on its own first.
pub async fn rotate_then_stop(
    iam: Arc<MemoryIam>,
    handler: Arc<Recorder>,
    stop: Arc<Notify>,
    state: &Path,
) -> Option<RotationReport> {
    let rotator = match rotator(iam, handler, state) {
        Ok(rotator) => rotator,
        Err(why) => return Some(RotationReport::failed(USER, Some(ACCOUNT), why)),
    };
    tokio::select! {
        ended = rotator.rotate_keys(USER) => Some(match ended {
            Ok(report) => report,
            Err(e) => *e.report,
        }),
        // The rotation's future is dropped here, mid-run, with its journal.
        () = stop.notified() => None,
    }
}

fn rotator(
    iam: Arc<MemoryIam>,
    handler: Arc<Recorder>,
    state: &Path,
) -> Result<KeyRotator<Arc<MemoryIam>, Arc<Recorder>>, String> {
    let state = StateDir::open(state).map_err(|e| e.to_string())?;
    let journal = Arc::new(state.journal(Some(ACCOUNT)));
    Ok(KeyRotator::new(iam, handler)
        .with_journal(journal)
        .with_caller(CallerIdentity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/keyrot-plugin-test-runner"),
        }))
}

/// The user's active key in `iam`, if it has one.
pub async fn active_key(iam: &MemoryIam) -> Option<String> {
    let keys = iam.list_access_keys(USER).await.ok()?;
    keys.into_iter()
        .find(|k| k.status == KeyStatus::Active)
        .map(|k| k.access_key_id)
}

/// The rotation keyrot would tell the handler about `iam`'s user now.
pub async fn rotation_now(iam: &MemoryIam) -> Rotation {
    Rotation {
        user_name: USER.into(),
        current_key_id: active_key(iam).await,
        account_id: Some(ACCOUNT.into()),
        abandoned_key_ids: Vec::new(),
    }
}

/// Entries a snapshot keeps per directory, and bytes read per file: a
/// handler's destination is small; a large directory is compared in part.
const MAX_ENTRIES: usize = 2000;
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The directories' contents: each path (under its directory's index) and
/// what it is (a digest of a file's first bytes and its length).
type Snapshot = BTreeMap<String, String>;

fn snapshot(dirs: &[PathBuf]) -> Snapshot {
    let mut found = Snapshot::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut stack = vec![dir.clone()];
        let mut seen = 0;
        while let Some(current) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&current) else {
                continue;
            };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_ENTRIES {
                    break;
                }
                let path = entry.path();
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let key = format!("{i}:{rel}");
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    found.insert(key, "directory".into());
                    stack.push(path);
                } else {
                    found.insert(key, describe_file(&path, meta.len()));
                }
            }
        }
    }
    found
}

fn describe_file(path: &Path, len: u64) -> String {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes));
    match read {
        Ok(_) => format!(
            "{len} bytes, sha256 {}",
            hex::encode(Sha256::digest(&bytes))
        ),
        Err(_) => format!("{len} bytes, unreadable"),
    }
}

/// What differs between two snapshots, in words (paths only: a file's
/// content may be a key).
fn difference(before: &Snapshot, after: &Snapshot) -> Option<String> {
    let name = |key: &str| key.split_once(':').map_or(key, |(_, rel)| rel).to_string();
    let mut changes = Vec::new();
    for (key, was) in before {
        match after.get(key) {
            None => changes.push(format!("removed {}", name(key))),
            Some(now) if now != was => changes.push(format!("changed {}", name(key))),
            Some(_) => {}
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        changes.push(format!("created {}", name(key)));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_tell_created_changed_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        std::fs::write(dir.path().join("a"), "1").unwrap();
        std::fs::write(dir.path().join("b"), "2").unwrap();
        let before = snapshot(&dirs);
        assert_eq!(difference(&before, &snapshot(&dirs)), None);
        std::fs::write(dir.path().join("a"), "3").unwrap();
        std::fs::remove_file(dir.path().join("b")).unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c/d"), "4").unwrap();
        let change = difference(&before, &snapshot(&dirs)).unwrap();
        assert_eq!(change, "changed a, removed b, created c, created c/d");
    }
}
