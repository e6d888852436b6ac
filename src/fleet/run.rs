//! Running a prepared fleet: `concurrency` rotations at a time, users
//! started in order, a failure on one never stopping the others, and every
//! user reported, even one whose task died or whose turn never came.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};

use super::Observer;
use crate::rotation::{Interrupt, Outcome, RotationReport};

/// One user's part of a fleet: a rotation to run, or a report already known (its
/// account could not be reached, say).
pub(super) enum UserTask {
    Rotate {
        account: String,
        user: String,
        rotation: Pin<Box<dyn Future<Output = RotationReport> + Send>>,
    },
    Reported(Box<RotationReport>),
}

/// Runs every user's task, `concurrency` at a time, in order of start;
/// returns the reports in the order of `users`. Once `interrupt` fires,
/// users not yet started are reported as not started; those in flight
/// finish safely.
pub(super) async fn run_tasks(
    users: Vec<UserTask>,
    concurrency: usize,
    interrupt: &Interrupt,
    observer: &dyn Observer,
    name_users_in_logs: bool,
) -> Vec<RotationReport> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut reports: Vec<Option<RotationReport>> = Vec::with_capacity(users.len());
    let mut whose = HashMap::new();
    for (index, task) in users.into_iter().enumerate() {
        reports.push(None);
        let (account, user, rotation) = match task {
            UserTask::Reported(report) => {
                observer.finished(&report);
                reports[index] = Some(*report);
                continue;
            }
            UserTask::Rotate {
                account,
                user,
                rotation,
            } => (account, user, rotation),
        };
        // Acquired here, in order, so users start in the order given and no
        // task exists before its turn.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.ok(),
            () = interrupt.stopped() => None,
        };
        if permit.is_none() || interrupt.is_triggered() {
            let report = not_started(&account, &user);
            observer.finished(&report);
            reports[index] = Some(report);
            continue;
        }
        observer.started(&account, &user);
        // In a fleet, log lines say whose rotation they are about.
        let span = if name_users_in_logs {
            tracing::info_span!("rotate", %account, %user)
        } else {
            tracing::Span::none()
        };
        let task = tasks.spawn(tracing::Instrument::instrument(
            async move {
                let started = Instant::now();
                let mut report = rotation.await;
                report.duration_ms = Some(started.elapsed().as_millis() as u64);
                drop(permit);
                (index, report)
            },
            span,
        ));
        whose.insert(task.id(), (index, account, user));
        // Reap what has finished, so progress is live.
        while let Some(done) = tasks.try_join_next() {
            collect(done, &whose, &mut reports, observer);
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(done, &whose, &mut reports, observer);
    }
    reports
        .into_iter()
        .map(|r| r.expect("every turn is reported"))
        .collect()
}

fn collect(
    done: Result<(usize, RotationReport), JoinError>,
    whose: &HashMap<Id, (usize, String, String)>,
    reports: &mut [Option<RotationReport>],
    observer: &dyn Observer,
) {
    let (index, report) = match done {
        Ok(done) => done,
        // The engine catches panics of its own steps; a task that still
        // died is a bug, and its user must not vanish from the report: its
        // keys are in a state nobody checked.
        Err(err) => {
            let Some((index, account, user)) = whose.get(&err.id()) else {
                return;
            };
            let mut report = RotationReport::failed(
                user,
                Some(account),
                format!(
                    "keyrot's rotation of {user} failed unexpectedly ({err}; a bug in keyrot, \
                     please report it): check the user's keys with `keyrot status --user {user}`"
                ),
            );
            report.outcome = Outcome::NeedsManualAction;
            (*index, report)
        }
    };
    observer.finished(&report);
    reports[index] = Some(report);
}

/// A user whose turn never came.
fn not_started(account: &str, user: &str) -> RotationReport {
    RotationReport::failed(
        user,
        Some(account),
        "not started: keyrot was interrupted before this user's turn; nothing was changed".into(),
    )
}
