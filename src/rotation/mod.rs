//! The rotation: explicit steps over an explicit, journaled state.
//!
//! 1. **Resume** first: a journal left by a killed run is finished (see
//!    [`state`]) before anything else.
//! 2. **List** the user's keys. Unknown user: bad input, nothing changed.
//! 3. **Refuse two active keys**: keyrot cannot know which one is in use.
//! 4. **Skip** when the active key is younger than `--older-than`.
//! 5. **Preflight** the handler. Failure: nothing changed. A dry run stops
//!    here and says what it would do.
//! 6. **Create** the new key (journaled first). Only on `LimitExceeded`, and
//!    only if the user has keys that are not active, delete those and create
//!    once more. Throttling is retried (IAM did not act); a create with no
//!    definite answer may have made a key anyway: list again and delete any
//!    key that was not there before.
//! 7. **Check** the keys again: a key that appeared, or an active key that
//!    went, means another process is rotating this user; back off.
//! 8. **Verify** the new key with a call signed with it, retrying while IAM
//!    catches up, until `--verify-timeout`.
//! 9. **Handle**: give the handler the new key, once.
//! 10. **Confirm** the new key still exists and is active: someone may have
//!     deleted it, and then retiring the old keys would leave none.
//! 11. **Retire** every old key: delete (or deactivate, `--retire
//!     deactivate`). A key that cannot be deleted is deactivated, so the
//!     user never keeps two active keys, and the run is partial.
//!
//! From step 7 on, any failure gives the new key up: it is deleted
//! (retrying transient errors), or named for manual deletion if that fails.
//! Whatever happens, the [`RotationReport`] says what was done to each key,
//! and the journal is removed only if the run saw how IAM stands (see
//! [`state`] and [`resume`]).

pub mod drain;
mod engine;
mod failure;
mod report;
pub mod resume;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub use self::drain::{DrainPolicy, DrainStep};
pub use self::failure::{GiveUp, RotationError, RotationFailure};
pub use self::report::{
    ExemptReport, NewKeyReport, NewKeyState, OldKeyAction, OldKeyReport, Outcome, ResumeReport,
    RotationReport, SCHEMA_VERSION, SkipReport, Step, StepRecord,
};
pub use self::state::{Journal, JournalError, JournalRecord, NoJournal, Phase, RetireMode};
use crate::handler::{HandlerError, HandlerErrorKind, NewKeyHandler};
use crate::iam::Iam;
use crate::retry::RetryPolicy;
pub use crate::time::{human_duration, now_rfc3339, parse_rfc3339, rfc3339, unix_now};
use crate::verify::KeyVerifier;

/// How a rotation behaves: the operator's choices.
#[derive(Clone, Debug)]
pub struct RotateOptions {
    /// What to do with the old keys.
    pub retire: RetireMode,
    /// Rotate only if the active key is at least this old.
    pub older_than: Option<Duration>,
    /// With `older_than`: a key that comes due within this long is
    /// skipped with a warning, so its owner can prepare.
    pub warn_within: Option<Duration>,
    /// How long to wait for a new key to start working.
    pub verify_timeout: Duration,
    /// List, describe and preflight only: send no write call to IAM.
    pub dry_run: bool,
    /// How drain mode ([`RetireMode::Drain`]) waits.
    pub drain: DrainPolicy,
    /// Read each old key's last use (`GetAccessKeyLastUsed`, one call per
    /// key) before anything changes, for the report: reporters tell it.
    pub read_last_use: bool,
}

impl RotateOptions {
    /// The default `--verify-timeout`.
    pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            retire: RetireMode::Delete,
            older_than: None,
            warn_within: None,
            verify_timeout: Self::DEFAULT_VERIFY_TIMEOUT,
            dry_run: false,
            drain: DrainPolicy::default(),
            read_last_use: false,
        }
    }
}

/// Who keyrot acts as, from `sts:GetCallerIdentity`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The AWS account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
}

/// Rotates IAM access keys through a [`NewKeyHandler`].
pub struct KeyRotator<I, H> {
    iam: I,
    handler: H,
    options: RotateOptions,
    retry: RetryPolicy,
    interrupt: Interrupt,
    journal: Arc<dyn Journal>,
    verifier: Option<Arc<dyn KeyVerifier>>,
    caller: Option<CallerIdentity>,
}

impl<I: Iam, H: NewKeyHandler> KeyRotator<I, H> {
    /// A rotator over `iam` that hands new keys to `handler`: no journal,
    /// no verification, old keys deleted.
    pub fn new(iam: I, handler: H) -> Self {
        Self {
            iam,
            handler,
            options: RotateOptions::default(),
            retry: RetryPolicy::default(),
            interrupt: Interrupt::default(),
            journal: Arc::new(NoJournal),
            verifier: None,
            caller: None,
        }
    }

    /// Sets the operator's choices.
    pub fn with_options(mut self, options: RotateOptions) -> Self {
        self.options = options;
        self
    }

    /// Lets `interrupt` stop the rotation safely.
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// Replaces how transient IAM errors are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Keeps the run's state in `journal`, so a killed run can be resumed.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = journal;
        self
    }

    /// Proves each new key works, with `verifier`, before the handler gets it.
    pub fn with_verifier(mut self, verifier: Arc<dyn KeyVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Names the account and caller in reports and journals, and checks a
    /// new key belongs to that account.
    pub fn with_caller(mut self, caller: CallerIdentity) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Rotates `user`'s access keys. See the module docs for the steps.
    pub async fn rotate_keys(&self, user: &str) -> Result<RotationReport, RotationError> {
        engine::Attempt::new(self, user).run().await
    }
}

/// Stops a rotation safely from outside (Ctrl-C): before the new key
/// exists the run stops with nothing changed; once it exists the handler
/// call is cancelled and the new key deleted, as for any handler failure.
/// The IAM calls themselves are short and always run to completion.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    triggered: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// Asks the rotation to stop.
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once triggered.
    pub async fn stopped(&self) {
        loop {
            // Registered before the check, so a trigger in between is seen.
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    fn error() -> HandlerError {
        HandlerError::new(
            HandlerErrorKind::Interrupted,
            "interrupted by the operator (SIGINT or SIGTERM)",
        )
    }
}

/// This run, for journals, leases and messages: `host:pid:RANDOM`. The
/// host and pid are for people; the random part makes it unique, since two
/// containers can share a hostname and both be PID 1. At most 64
/// characters, in the characters an IAM tag allows.
pub fn owner_id() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| {
        let place = crate::testhook::owner().unwrap_or_else(|| {
            let mut buf = [0u8; 256];
            // SAFETY: the buffer is valid for its length; gethostname
            // writes at most that many bytes.
            let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
            let host = if ok {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                String::from_utf8_lossy(&buf[..end]).into_owned()
            } else {
                "localhost".into()
            };
            format!("{host}:{}", std::process::id())
        });
        let place: String = place
            .chars()
            // What an IAM tag value allows, but `/`, the tag's separator.
            .filter(|c| c.is_ascii_alphanumeric() || "_.:=+-@".contains(*c))
            .take(46)
            .collect();
        format!("{place}:{}", random_hex())
    })
}

/// 16 random hex digits from the kernel's generator.
fn random_hex() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom (a bare chroot): time and pid still differ
        // between runs that could meet.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    hex::encode(bytes)
}
