//! Telling people what a run did: reporters (`--notify`, `[[notify]]`),
//! called once per run after every rotation has ended.
//!
//! A [`Reporter`] is a [`Notifier`] (the WASM host's `WasmReporter`, or
//! your own Rust type) with the events its operator asked for. [`notify`]
//! turns the run's reports into what each reporter is given, a
//! [`RunNotice`] holding only the users its filter selects, calls the
//! reporters, and says what became of each ([`NotificationReport`]). A
//! reporter never changes a rotation: this runs after them, on reports
//! that are final, and its failures are only reported.
//!
//! [`RunNotice`] is built from [`RotationReport`]s, which never hold a
//! secret access key; it copies ids, outcomes and words, nothing else.

mod event;
mod notice;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

pub use self::event::{Event, EventSet};
pub use self::notice::{NoticeKey, NoticeNewKey, RunNotice, UserNotice};
use crate::handler::{HandlerError, HandlerLog, LogLine};
use crate::rotation::RotationReport;

/// The exit code of a run whose rotations all ended well but a reporter
/// failed, when the operator asked for it (`--notify-required`).
pub const EXIT_NOTIFY_FAILED: u8 = 5;

/// Something that tells people about a run: a reporter plugin, or a Rust
/// type of a library caller.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `run`. What the reporter logs goes to `log`. An error never
    /// changes a rotation; it is reported.
    async fn notify(&self, run: &RunNotice, log: &HandlerLog) -> Result<(), HandlerError>;
}

/// A notifier and the events it is told about.
#[derive(Clone)]
pub struct Reporter {
    /// How reports and messages name it (unique in a run).
    pub name: String,
    /// The events it is told about.
    pub on: EventSet,
    /// What delivers them.
    pub notifier: Arc<dyn Notifier>,
}

/// What became of one reporter's delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The reporter was called and said the report is delivered.
    Sent,
    /// No user raised an event it asked for: it was not called.
    NothingToSend,
    /// It returned an error, trapped, or ran out of time or memory.
    Failed,
}

/// One reporter's part of the run's report.
#[derive(Clone, Debug, Serialize)]
pub struct NotificationReport {
    /// The reporter's name.
    pub reporter: String,
    /// What became of the delivery.
    pub delivery: Delivery,
    /// Users it was told about.
    pub users: usize,
    /// The events it asked for.
    pub on: Vec<Event>,
    /// Why it failed, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it logged (shown with `--plugin-log show`).
    pub log: Vec<LogLine>,
}

impl NotificationReport {
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.delivery == Delivery::Failed
    }
}

/// Tells every reporter about the run: each gets the users whose events it
/// asked for, and is not called when there are none. Reporters run one
/// after another, each under its own limits; none can change a report.
pub async fn notify(reporters: &[Reporter], reports: &[RotationReport]) -> Vec<NotificationReport> {
    let mut done = Vec::with_capacity(reporters.len());
    for reporter in reporters {
        let run = RunNotice::of(reports, &reporter.on);
        let mut report = NotificationReport {
            reporter: reporter.name.clone(),
            delivery: Delivery::NothingToSend,
            users: run.users.len(),
            on: reporter.on.events().collect(),
            error: None,
            log: Vec::new(),
        };
        if !run.users.is_empty() {
            let log = HandlerLog::new();
            match reporter.notifier.notify(&run, &log).await {
                Ok(()) => report.delivery = Delivery::Sent,
                Err(err) => {
                    tracing::warn!(reporter = %reporter.name, "reporter failed: {}", err.message);
                    report.delivery = Delivery::Failed;
                    report.error = Some(format!(
                        "reporter '{}' failed: {}; the rotations are unaffected",
                        reporter.name, err.message
                    ));
                }
            }
            report.log = log.take();
        }
        done.push(report);
    }
    done
}

/// The exit code after the reporters: the rotations' own `code` unless it
/// is 0, some reporter failed and the operator asked for it.
pub fn exit_code(code: u8, notifications: &[NotificationReport], required: bool) -> u8 {
    if code == 0 && required && notifications.iter().any(NotificationReport::failed) {
        EXIT_NOTIFY_FAILED
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Outcome;
    use std::sync::Mutex;

    /// Records what it is told; fails when asked to.
    struct Recorder {
        seen: Mutex<Vec<RunNotice>>,
        fail: bool,
    }

    #[async_trait]
    impl Notifier for Recorder {
        async fn notify(&self, run: &RunNotice, _log: &HandlerLog) -> Result<(), HandlerError> {
            self.seen.lock().unwrap().push(run.clone());
            if self.fail {
                return Err(HandlerError::rejected("webhook answered 500"));
            }
            Ok(())
        }
    }

    fn reporter(on: &[&str], fail: bool) -> (Reporter, Arc<Recorder>) {
        let recorder = Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            fail,
        });
        let on = EventSet::parse(on.iter().copied()).unwrap();
        (
            Reporter {
                name: "r".into(),
                on,
                notifier: recorder.clone(),
            },
            recorder,
        )
    }

    fn report(user: &str, outcome: Outcome) -> RotationReport {
        let mut r = RotationReport::new(user);
        r.outcome = outcome;
        r
    }

    #[tokio::test]
    async fn each_reporter_gets_only_what_it_asked_for() {
        let reports = [
            report("a", Outcome::Rotated),
            report("b", Outcome::Failed),
            report("c", Outcome::Skipped),
        ];
        let (failed, seen_failed) = reporter(&["failed"], false);
        let (exempt, seen_exempt) = reporter(&["exempt"], false);
        let done = notify(&[failed, exempt], &reports).await;
        let users: Vec<String> = seen_failed.seen.lock().unwrap()[0]
            .users
            .iter()
            .map(|u| u.user.clone())
            .collect();
        assert_eq!(users, ["b"]);
        assert_eq!(seen_failed.seen.lock().unwrap()[0].summary.users, 3);
        assert!(seen_exempt.seen.lock().unwrap().is_empty());
        assert_eq!(done[0].delivery, Delivery::Sent);
        assert_eq!(done[1].delivery, Delivery::NothingToSend);
    }

    #[tokio::test]
    async fn a_failed_reporter_is_reported_and_changes_the_code_only_when_required() {
        let reports = [report("a", Outcome::Rotated)];
        let (r, _) = reporter(&["rotated"], true);
        let done = notify(&[r], &reports).await;
        assert!(done[0].failed());
        assert!(done[0].error.as_deref().unwrap().contains("500"));
        assert_eq!(exit_code(0, &done, false), 0);
        assert_eq!(exit_code(0, &done, true), EXIT_NOTIFY_FAILED);
        // A rotation's own failure is the more important news.
        assert_eq!(exit_code(4, &done, true), 4);
    }
}
