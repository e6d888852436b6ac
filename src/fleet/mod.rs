//! Rotating a fleet: many users, in one or several accounts, a few at a
//! time, as a library feature. The binary is one caller of it.
//!
//! 1. Describe each set of users as a [`Target`]: who ([`Users`]), the
//!    handler their keys go to, the rotation options, and the account
//!    reached ([`Reached`], e.g. by `keyrot::aws::connect`) or why it
//!    could not be.
//! 2. [`Fleet::prepare`] resolves every target's users (`ListUsers` for
//!    [`Users::All`]), and refuses bad input before any key changes: a
//!    user selected twice, a user IAM does not know, a name `only` picks
//!    that no target has. A target that cannot be reached fails its own
//!    users, not the run.
//! 3. [`Rotations::run`] rotates them, [`Fleet::concurrency`] at a time,
//!    each with the same journaled, verified rotation as a single one
//!    (under the user's lock when the journal is a file), telling an
//!    [`Observer`] as users start and finish. A failure on one user never
//!    stops the others; after [`Fleet::interrupt`] fires no user starts,
//!    those in flight stop safely, and every user is still reported.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use keyrot::fleet::{Fleet, JournalChoice, NoObserver, Reached, Target, Users};
//! use keyrot::{AwsOptions, PluginLimits, RotateOptions, Settings, StateDir, WasmHandler};
//!
//! let handler = WasmHandler::load("hello.wasm".as_ref(), Settings::default(), PluginLimits::default()).await?;
//! let account = keyrot::aws::connect(&AwsOptions::default()).await?;
//! let target = Target {
//!     label: String::new(),
//!     users: Users::Named(vec!["ci-a".into(), "ci-b".into()]),
//!     handler: Arc::new(handler),
//!     options: RotateOptions::default(),
//!     account: Ok(account.reached(true)),
//!     notes: Default::default(),
//!     screen: None,
//! };
//! let fleet = Fleet::new(JournalChoice::File(StateDir::open("state".as_ref())?));
//! let reports = fleet.prepare(vec![target]).await?.run(&NoObserver).await;
//! println!("{}", keyrot::fleet::FleetSummary::of(&reports, 0).exit_code);
//! # Ok(())
//! # }
//! ```

mod run;
mod screen;
mod select;
mod summary;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use self::run::{UserTask, run_tasks};
pub use self::screen::{Notes, Screen, Screened};
pub use self::select::{check_path_prefix, check_user_name, dedup, read_users_file, unknown_users};
pub use self::summary::{FleetSummary, fleet_exit_code};
use crate::handler::NewKeyHandler;
use crate::iam::Iam;
use crate::journal::{IamTagJournal, StateDir};
use crate::rotation::{
    CallerIdentity, Interrupt, Journal, KeyRotator, NoJournal, RotateOptions, RotationReport,
};
use crate::verify::KeyVerifier;

/// Who a target rotates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Users {
    /// These users, in order, each once.
    Named(Vec<String>),
    /// Every user whose IAM path starts with this (`/` for all).
    All {
        /// The IAM path prefix, e.g. `/ci/`.
        path_prefix: String,
    },
    /// These users, just listed from IAM (an organization's): not checked
    /// again.
    Listed(Vec<String>),
}

/// An account keyrot reached: IAM there, who keyrot acts as, and how to
/// prove a new key works (none: `--no-verify`).
#[derive(Clone)]
pub struct Reached {
    /// IAM in the account.
    pub iam: Arc<dyn Iam>,
    /// Who keyrot acts as, and in which account.
    pub caller: CallerIdentity,
    /// Proves each new key works before the handler gets it.
    pub verifier: Option<Arc<dyn KeyVerifier>>,
}

/// An account keyrot could not reach, for its users' reports.
#[derive(Clone, Debug)]
pub struct Unreached {
    /// The account, if known anyway (from a role ARN, say).
    pub account: Option<String>,
    /// Why, with what was not changed.
    pub why: String,
}

/// One set of users and what their rotations share.
pub struct Target<H> {
    /// How messages name it (`target prod`); empty when there is one.
    pub label: String,
    /// Who.
    pub users: Users,
    /// Where their new keys go.
    pub handler: H,
    /// How their keys are rotated.
    pub options: RotateOptions,
    /// Their account, or why it could not be reached.
    pub account: Result<Reached, Unreached>,
    /// Written into each of its users' reports: the rule that selected
    /// them, their account's name.
    pub notes: Notes,
    /// Looks at each user just before its rotation (exemptions, owners).
    pub screen: Option<Arc<dyn Screen>>,
}

/// Where each user's journal is kept.
#[derive(Clone, Debug)]
pub enum JournalChoice {
    /// None: a run killed midway is not resumed.
    None,
    /// A file per user in this state directory, under the user's lock.
    File(StateDir),
    /// A tag on each IAM user, with a lease this long.
    IamTag {
        /// The lease ([`IamTagJournal::DEFAULT_LEASE`] normally).
        lease: Duration,
    },
}

impl JournalChoice {
    /// The journal for users of `account`, reached through `iam`; a file
    /// journal waits up to `wait_lock` for another run's lock.
    pub fn for_account(
        &self,
        iam: Arc<dyn Iam>,
        account: &str,
        wait_lock: Option<Duration>,
    ) -> Arc<dyn Journal> {
        match self {
            JournalChoice::None => Arc::new(NoJournal),
            JournalChoice::File(state) => Arc::new(state.journal(Some(account)).waiting(wait_lock)),
            JournalChoice::IamTag { lease } => Arc::new(IamTagJournal::new(iam, *lease)),
        }
    }
}

/// Hears about a fleet as it runs (a progress bar, say).
pub trait Observer: Send + Sync {
    /// `user`'s rotation starts.
    fn started(&self, account: &str, user: &str) {
        let _ = (account, user);
    }

    /// A user is done (rotated, failed, or never started).
    fn finished(&self, report: &RotationReport) {
        let _ = report;
    }
}

/// An observer that hears nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// Input refused before any user's key changed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FleetError {
    /// Two targets (or two spellings) select one user.
    #[error(
        "user {user} of account {account} is selected twice (by two targets, or in two \
         spellings: IAM user names ignore case); each user may be rotated once per run \
         (nothing was rotated)"
    )]
    SelectedTwice {
        /// The user.
        user: String,
        /// Its account.
        account: String,
    },
    /// Users IAM does not know.
    #[error("{prefix}no such IAM user in account {account}: {users} (nothing was rotated)")]
    UnknownUsers {
        /// `target NAME: `, or nothing.
        prefix: String,
        /// The account.
        account: String,
        /// The unknown users, comma-separated.
        users: String,
    },
    /// Names [`Fleet::only`] picks that no target has.
    #[error("not in any of the job file's targets: {users} (nothing was rotated)")]
    NotInTargets {
        /// The names, comma-separated.
        users: String,
    },
}

/// How a fleet runs: its journal, how many at a time, how to stop it.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Where each user's journal is kept.
    pub journal: JournalChoice,
    /// How long a user's rotation waits for another run's lock on it.
    pub wait_lock: Option<Duration>,
    /// Users rotated at a time.
    pub concurrency: usize,
    /// Rotate only these of the targets' users (case ignored).
    pub only: Option<Vec<String>>,
    /// Refuse the run if a named user does not exist (a single user's
    /// rotation reports that itself).
    pub check_users: bool,
    /// Name each user in log lines (a fleet's, not a single rotation's).
    pub name_users_in_logs: bool,
    /// Stops the fleet safely.
    pub interrupt: Interrupt,
}

impl Fleet {
    /// Users rotated at a time by default.
    pub const DEFAULT_CONCURRENCY: usize = 4;

    /// A fleet with `journal` and the defaults: four at a time, unknown
    /// users refused, no waiting for locks.
    pub fn new(journal: JournalChoice) -> Self {
        Self {
            journal,
            wait_lock: None,
            concurrency: Self::DEFAULT_CONCURRENCY,
            only: None,
            check_users: true,
            name_users_in_logs: true,
            interrupt: Interrupt::default(),
        }
    }

    /// Resolves every target's users and builds their rotations. Nothing
    /// runs yet: an error here leaves every key as it is.
    pub async fn prepare<H>(&self, targets: Vec<Target<H>>) -> Result<Rotations, FleetError>
    where
        H: NewKeyHandler + 'static,
    {
        let mut selection = Selection::default();
        let mut tasks = Vec::new();
        for target in targets {
            tasks.extend(self.prepare_target(target, &mut selection).await?);
        }
        if let Some(only) = &self.only
            && !selection.unlisted
        {
            let missing: Vec<&str> = only
                .iter()
                .filter(|name| !selection.matched.contains(&name.to_ascii_lowercase()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(FleetError::NotInTargets {
                    users: missing.join(", "),
                });
            }
        }
        Ok(Rotations {
            tasks,
            fleet: self.clone(),
        })
    }

    /// One target's tasks: its users' rotations, or, when its account or
    /// its users cannot be reached, reports of why.
    async fn prepare_target<H>(
        &self,
        target: Target<H>,
        selection: &mut Selection,
    ) -> Result<Vec<UserTask>, FleetError>
    where
        H: NewKeyHandler + 'static,
    {
        let prefix = if target.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", target.label)
        };
        let named = match &target.users {
            Users::Named(users) | Users::Listed(users) => Some(self.wanted(users)),
            Users::All { .. } => None,
        };
        selection.match_all(named.iter().flatten());
        let reached = match target.account {
            Ok(reached) => reached,
            Err(unreached) => {
                selection.unlisted |= named.is_none();
                let why = format!("{prefix}{}", unreached.why);
                let mut tasks = failed(&target.users, named, unreached.account, &why);
                for task in &mut tasks {
                    if let UserTask::Reported(report) = task {
                        target.notes.apply(report);
                    }
                }
                return Ok(tasks);
            }
        };
        let account = reached.caller.account.clone();
        tracing::info!(
            "{prefix}acting as {} in account {account}",
            reached.caller.arn
        );
        let users = match named {
            Some(users) => users,
            None => match self.list(&target.users, &reached, &prefix).await {
                Ok(users) => {
                    selection.match_all(&users);
                    users
                }
                Err(why) => {
                    selection.unlisted = true;
                    return Ok(failed(&target.users, None, Some(account), &why));
                }
            },
        };
        for user in &users {
            // Two rotations of one user would fight over its keys.
            if !selection
                .seen
                .insert((account.clone(), user.to_ascii_lowercase()))
            {
                return Err(FleetError::SelectedTwice {
                    user: user.clone(),
                    account,
                });
            }
        }
        if self.check_users && matches!(target.users, Users::Named(_)) {
            let unknown = unknown_users(&*reached.iam, &users, self.concurrency).await;
            if !unknown.is_empty() {
                return Err(FleetError::UnknownUsers {
                    prefix,
                    account,
                    users: unknown.join(", "),
                });
            }
        }
        let shared = Shared {
            label: target.label,
            notes: target.notes,
            screen: target.screen,
        };
        Ok(self.rotations(reached, target.handler, target.options, shared, users))
    }

    /// Every user under a target's path prefix that [`Fleet::only`] picks,
    /// or why they could not be listed.
    async fn list(
        &self,
        users: &Users,
        reached: &Reached,
        prefix: &str,
    ) -> Result<Vec<String>, String> {
        let Users::All { path_prefix } = users else {
            return Ok(Vec::new());
        };
        let account = &reached.caller.account;
        let listed = reached.iam.list_users(path_prefix).await.map_err(|err| {
            format!(
                "{prefix}cannot list the users under {path_prefix} in account {account} \
                 (iam:ListUsers): {err}; nothing was changed"
            )
        })?;
        if listed.is_empty() {
            tracing::warn!("{prefix}account {account} has no IAM user under path {path_prefix}");
        }
        Ok(self.wanted(&listed))
    }

    /// The rotations of `users` in one reached account, sharing one rotator.
    fn rotations<H>(
        &self,
        reached: Reached,
        handler: H,
        options: RotateOptions,
        shared: Shared,
        users: Vec<String>,
    ) -> Vec<UserTask>
    where
        H: NewKeyHandler + 'static,
    {
        let account = reached.caller.account.clone();
        let journal = self
            .journal
            .for_account(reached.iam.clone(), &account, self.wait_lock);
        let iam = reached.iam.clone();
        let mut rotator = KeyRotator::new(reached.iam, handler)
            .with_options(options)
            .with_interrupt(self.interrupt.clone())
            .with_journal(journal)
            .with_caller(reached.caller);
        if let Some(verifier) = reached.verifier {
            rotator = rotator.with_verifier(verifier);
        }
        let rotator = Arc::new(rotator);
        let shared = Arc::new(shared);
        users
            .into_iter()
            .map(|user| {
                let (rotator, shared, iam) = (rotator.clone(), shared.clone(), iam.clone());
                let account = account.clone();
                UserTask::Rotate {
                    account: account.clone(),
                    user: user.clone(),
                    rotation: Box::pin(async move {
                        let notes = match &shared.screen {
                            None => shared.notes.clone(),
                            Some(screen) => match screen.screen(&*iam, &account, &user).await {
                                Screened::Rotate(notes) => shared.notes.and(notes),
                                Screened::Decided(mut report) => {
                                    shared.mark(&mut report, &shared.notes);
                                    return *report;
                                }
                            },
                        };
                        let mut report = match rotator.rotate_keys(&user).await {
                            Ok(report) => report,
                            Err(err) => *err.report,
                        };
                        shared.mark(&mut report, &notes);
                        report
                    }),
                }
            })
            .collect()
    }

    /// `users` that [`Fleet::only`] picks.
    fn wanted(&self, users: &[String]) -> Vec<String> {
        users
            .iter()
            .filter(|user| {
                self.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o.eq_ignore_ascii_case(user)))
            })
            .cloned()
            .collect()
    }
}

/// What every user of a target shares beyond the rotator.
struct Shared {
    label: String,
    notes: Notes,
    screen: Option<Arc<dyn Screen>>,
}

impl Shared {
    /// Names the target and adds `notes` to a user's report.
    fn mark(&self, report: &mut RotationReport, notes: &Notes) {
        if !self.label.is_empty() && report.target.is_none() {
            report.target = Some(self.label.clone());
        }
        notes.apply(report);
    }
}

/// What a fleet's targets selected so far.
#[derive(Default)]
struct Selection {
    /// (account, user) in lower case: IAM user names ignore case.
    seen: HashSet<(String, String)>,
    /// Users matched (lower case), for [`Fleet::only`].
    matched: HashSet<String>,
    /// A target whose users could not be listed may hold any name.
    unlisted: bool,
}

impl Selection {
    fn match_all<'a>(&mut self, users: impl IntoIterator<Item = &'a String>) {
        self.matched
            .extend(users.into_iter().map(|u| u.to_ascii_lowercase()));
    }
}

/// The tasks of a target that could not be reached: each named user fails
/// with `why`; a target of all users is one line for the path.
fn failed(
    users: &Users,
    named: Option<Vec<String>>,
    account: Option<String>,
    why: &str,
) -> Vec<UserTask> {
    let users = match (named, users) {
        (Some(users), _) => users,
        (None, Users::All { path_prefix }) => vec![format!("{path_prefix}*")],
        (None, Users::Named(_) | Users::Listed(_)) => Vec::new(),
    };
    users
        .iter()
        .map(|user| {
            UserTask::Reported(Box::new(RotationReport::failed(
                user,
                account.as_deref(),
                why.to_string(),
            )))
        })
        .collect()
}

/// A fleet's rotations, prepared and not yet run.
pub struct Rotations {
    tasks: Vec<UserTask>,
    fleet: Fleet,
}

impl Rotations {
    /// How many users the run reports.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there is nobody to rotate.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds reports decided before the run (an exempt account, say), so
    /// they are counted and shown with the rest, first.
    pub fn include(&mut self, reports: Vec<RotationReport>) {
        let decided = reports
            .into_iter()
            .map(|report| UserTask::Reported(Box::new(report)));
        self.tasks.splice(0..0, decided);
    }

    /// Rotates every user, [`Fleet::concurrency`] at a time; returns each
    /// user's report, in the order the targets named them.
    pub async fn run(self, observer: &dyn Observer) -> Vec<RotationReport> {
        let fleet = self.fleet;
        run_tasks(
            self.tasks,
            fleet.concurrency,
            &fleet.interrupt,
            observer,
            fleet.name_users_in_logs,
        )
        .await
    }
}
