//! Fleets: which users a run rotates (`--user`, `--users-file`,
//! `--all-users`, a job's `[[target]]` blocks), rotating them N at a time,
//! and what the operator sees meanwhile (a progress bar on a terminal,
//! one line per user otherwise).
//!
//! A failure on one user never stops the others. Ctrl-C or SIGTERM starts
//! no new user; each rotation in flight stops safely as a single one does;
//! every user is still reported.

use std::future::Future;
use std::io::IsTerminal;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyrot::{AwsIam, Iam, IamErrorKind, Interrupt, Outcome, RotationReport};
use tokio::sync::Semaphore;

use super::Users;
use super::args::{Cli, RotateArgs};
use super::job::Job;

/// Largest users file read: ten thousand names take well under 1 MiB.
const MAX_USERS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The users the flags select, if any: `--user` (repeatable) and
/// `--users-file` together, or `--all-users`.
pub(super) fn flag_users(args: &RotateArgs) -> anyhow::Result<Option<Users>> {
    if args.all_users {
        let path_prefix = args.path_prefix.clone().unwrap_or_else(|| "/".into());
        check_path_prefix(&path_prefix).map_err(|e| anyhow::anyhow!("--path-prefix: {e}"))?;
        return Ok(Some(Users::All { path_prefix }));
    }
    let mut names = Vec::new();
    for user in &args.user {
        super::check_user_name(user)?;
        names.push(user.clone());
    }
    if let Some(file) = &args.users_file {
        names.extend(read_users_file(file)?);
    }
    Ok((!names.is_empty()).then(|| Users::Named(dedup(names))))
}

/// The users a job file (or one of its targets) selects. The error names
/// the key at fault, for the caller to place in the file.
pub(super) fn job_users(job: &Job) -> Result<Users, String> {
    let mut names: Vec<String> = job.user.iter().chain(&job.users).cloned().collect();
    for name in &names {
        super::check_user_name(name).map_err(|e| format!("users: {e}"))?;
    }
    if let Some(file) = &job.users_file {
        names.extend(read_users_file(file).map_err(|e| format!("users-file: {e:#}"))?);
    }
    match job.all_users {
        Some(true) if !names.is_empty() => {
            Err("all-users = true cannot be combined with user, users or users-file".into())
        }
        Some(true) => {
            let path_prefix = job.path_prefix.clone().unwrap_or_else(|| "/".into());
            check_path_prefix(&path_prefix).map_err(|e| format!("path-prefix: {e}"))?;
            Ok(Users::All { path_prefix })
        }
        _ if job.path_prefix.is_some() => Err("path-prefix needs all-users = true".into()),
        _ if names.is_empty() => Err(
            "no user given: pass --user NAME, --users-file FILE or --all-users (or set user, \
             users, users-file or all-users in the job file)"
                .into(),
        ),
        _ => Ok(Users::Named(dedup(names))),
    }
}

/// Reads a users file: one IAM user name a line; `#` starts a comment (it
/// cannot occur in a name); blank lines are ignored. Every name is checked
/// before anything runs, and a bad one is named with its line.
pub(super) fn read_users_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = keyrot::input::read_regular_text(path, MAX_USERS_FILE_BYTES)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        super::check_user_name(name)
            .with_context(|| format!("users file {}, line {}", path.display(), i + 1))?;
        names.push(name.to_string());
    }
    if names.is_empty() {
        bail!(
            "users file {} names no user (one IAM user name a line)",
            path.display()
        );
    }
    Ok(names)
}

/// IAM paths start and end with `/` and hold printable ASCII.
pub(super) fn check_path_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/')
        || prefix.len() > 512
        || !prefix.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(format!(
            "'{prefix}' is not an IAM path prefix: it starts with / (e.g. /ci/), in printable \
             ASCII without spaces"
        ));
    }
    Ok(())
}

/// `names` without repeats, first spelling kept: IAM user names ignore
/// case, so `ci-bot` and `CI-Bot` are one user.
fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(name.to_ascii_lowercase()))
        .collect()
}

/// Which of `users` IAM says do not exist. For a large fleet, one
/// `ListUsers` (a page per 1000 users) answers for all; without that
/// permission, or for a few users, `ListAccessKeys` per user (the call a
/// rotation starts with), `concurrency` at a time. Other errors are left
/// for each rotation to report.
pub(super) async fn unknown_users(
    iam: &AwsIam,
    users: &[String],
    concurrency: usize,
) -> Vec<String> {
    use futures_util::StreamExt;
    if users.len() >= LIST_ALL_FROM
        && let Ok(all) = iam.list_users("/").await
    {
        let known: std::collections::HashSet<String> =
            all.iter().map(|u| u.to_ascii_lowercase()).collect();
        return users
            .iter()
            .filter(|u| !known.contains(&u.to_ascii_lowercase()))
            .cloned()
            .collect();
    }
    futures_util::stream::iter(users)
        .map(|user| async move {
            match iam.list_access_keys(user).await {
                Err(err) if err.kind == IamErrorKind::NoSuchEntity => Some(user.clone()),
                _ => None,
            }
        })
        .buffered(concurrency)
        .filter_map(|unknown| async move { unknown })
        .collect()
        .await
}

/// From this many users on, one `ListUsers` beats a call per user.
const LIST_ALL_FROM: usize = 20;

/// One user's turn: a rotation to run, or a report already known (the
/// account could not be reached, say).
pub(super) enum Turn {
    Run {
        account: String,
        user: String,
        rotate: Pin<Box<dyn Future<Output = RotationReport> + Send>>,
    },
    Done(Box<RotationReport>),
}

/// Runs every turn, `concurrency` at a time, in order of start; returns the
/// reports in the order of `turns`. Once `interrupt` fires, turns not yet
/// started are reported as not started; those in flight finish safely.
pub(super) async fn run(
    turns: Vec<Turn>,
    concurrency: usize,
    interrupt: &Interrupt,
    progress: &Progress,
) -> Vec<RotationReport> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut reports: Vec<Option<RotationReport>> = Vec::with_capacity(turns.len());
    let mut whose = std::collections::HashMap::new();
    for (index, turn) in turns.into_iter().enumerate() {
        reports.push(None);
        match turn {
            Turn::Done(report) => {
                progress.finished(&report);
                reports[index] = Some(*report);
            }
            Turn::Run {
                account,
                user,
                rotate,
            } => {
                // Acquired here, in order, so users start in the order given
                // and no task exists before its turn.
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.ok(),
                    () = interrupt.stopped() => None,
                };
                if permit.is_none() || interrupt.is_triggered() {
                    let report = not_started(&account, &user);
                    progress.finished(&report);
                    reports[index] = Some(report);
                    continue;
                }
                progress.started(&user);
                // In a fleet, log lines say whose rotation they are about.
                let span = if progress.fleet {
                    tracing::info_span!("rotate", %account, %user)
                } else {
                    tracing::Span::none()
                };
                let (a, u) = (account.clone(), user.clone());
                let task = tasks.spawn(tracing::Instrument::instrument(
                    async move {
                        let started = Instant::now();
                        let mut report = rotate.await;
                        report.duration_ms = Some(started.elapsed().as_millis() as u64);
                        drop(permit);
                        (index, report)
                    },
                    span,
                ));
                whose.insert(task.id(), (index, a, u));
            }
        }
        // Reap what has finished, so progress is live.
        while let Some(done) = tasks.try_join_next() {
            collect(done, &whose, &mut reports, progress);
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(done, &whose, &mut reports, progress);
    }
    reports
        .into_iter()
        .map(|r| r.expect("every turn is reported"))
        .collect()
}

fn collect(
    done: Result<(usize, RotationReport), tokio::task::JoinError>,
    whose: &std::collections::HashMap<tokio::task::Id, (usize, String, String)>,
    reports: &mut [Option<RotationReport>],
    progress: &Progress,
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
            let mut report = RotationReport::new(user);
            report.account = Some(account.clone());
            report.outcome = Outcome::NeedsManualAction;
            report.error = Some(format!(
                "keyrot's rotation of {user} failed unexpectedly ({err}; a bug in keyrot, please \
                 report it): check the user's keys with `keyrot status --user {user}`"
            ));
            (*index, report)
        }
    };
    progress.finished(&report);
    reports[index] = Some(report);
}

/// A user whose turn never came.
fn not_started(account: &str, user: &str) -> RotationReport {
    let mut report = RotationReport::new(user);
    report.account = Some(account.to_string());
    report.outcome = Outcome::Failed;
    report.error = Some(
        "not started: keyrot was interrupted before this user's turn; nothing was changed".into(),
    );
    report
}

/// What the operator sees while a fleet rotates: a progress bar when stderr
/// is a terminal, a line per finished user when it is not, nothing with -q.
pub(super) struct Progress {
    fleet: bool,
    bar: Option<ProgressBar>,
    lines: bool,
    total: usize,
    counts: std::sync::Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    done: usize,
    rotated: usize,
    skipped: usize,
    failed: usize,
}

impl Progress {
    pub(super) fn new(cli: &Cli, total: usize, fleet: bool) -> Self {
        let show = fleet && !cli.quiet;
        let bar = (show && std::io::stderr().is_terminal())
            .then(|| {
                ProgressBar::with_draw_target(
                    Some(total as u64),
                    ProgressDrawTarget::stderr_with_hz(4),
                )
            })
            // A terminal indicatif cannot draw on (TERM=dumb): plain lines.
            .filter(|bar| !bar.is_hidden());
        if let Some(bar) = &bar {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} users  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            super::console::set_progress_bar(Some(bar.clone()));
        }
        Self {
            fleet,
            lines: show && bar.is_none(),
            bar,
            total,
            counts: Default::default(),
        }
    }

    fn started(&self, user: &str) {
        tracing::debug!("starting {user}");
    }

    fn finished(&self, report: &RotationReport) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.done += 1;
        match report.outcome {
            Outcome::Rotated | Outcome::Partial => counts.rotated += 1,
            Outcome::Skipped | Outcome::WouldRotate => counts.skipped += 1,
            Outcome::Failed | Outcome::NeedsManualAction | Outcome::BadInput => counts.failed += 1,
        }
        if let Some(bar) = &self.bar {
            bar.set_position(counts.done as u64);
            bar.set_message(format!(
                "rotated {}  skipped {}  failed {}",
                counts.rotated, counts.skipped, counts.failed
            ));
        } else if self.lines {
            super::stderr_line(format_args!(
                "[{}/{}] {}",
                counts.done,
                self.total,
                super::render::fleet_line(report)
            ));
        }
    }

    /// Draws the bar one last time, with the final counts, and lets go of
    /// stderr before the report is printed.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            super::console::set_progress_bar(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_files_skip_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, "# CI users\nci-a\n\n  ci-b  # deploys\nCI-A\n").unwrap();
        let names = read_users_file(&path).unwrap();
        assert_eq!(names, ["ci-a", "ci-b", "CI-A"]);
        assert_eq!(dedup(names), ["ci-a", "ci-b"]);
    }

    #[test]
    fn a_bad_name_in_a_users_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, "ci-a\nci b\n").unwrap();
        let err = format!("{:#}", read_users_file(&path).unwrap_err());
        assert!(err.contains("line 2") && err.contains("'ci b'"), "{err}");
        std::fs::write(&path, "# nobody\n\n").unwrap();
        let err = format!("{:#}", read_users_file(&path).unwrap_err());
        assert!(err.contains("names no user"), "{err}");
    }

    #[test]
    fn path_prefixes_follow_iam_rules() {
        assert!(check_path_prefix("/").is_ok());
        assert!(check_path_prefix("/ci/").is_ok());
        assert!(check_path_prefix("ci/").is_err());
        assert!(check_path_prefix("/c i/").is_err());
    }
}
