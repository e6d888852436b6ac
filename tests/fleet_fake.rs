//! The library's fleet ([`keyrot::fleet`]) in process, on the fake IAM:
//! the cases that are hard to reach through the binary (Ctrl-C before a
//! user's turn, a rotation task that panics) and the input a fleet refuses
//! before any key changes (a user selected twice, a user IAM does not
//! know), plus the lock a library caller gets with the file journal.

use std::sync::Arc;

use async_trait::async_trait;
use keyrot::fleet::{
    Fleet, FleetError, JournalChoice, NoObserver, Reached, Target, Unreached, Users,
};
use keyrot::{
    CallerIdentity, HandlerError, HandlerErrorKind, HandlerLog, Interrupt, JournalError, KeyStatus,
    NewAccessKey, NewKeyHandler, Outcome, RotateOptions, Rotation, StateDir,
};

use crate::fake::{FakeHandler, FakeIam, Op};

const ACCOUNT: &str = "123456789012";

fn reached(iam: &Arc<FakeIam>) -> Result<Reached, Unreached> {
    Ok(Reached {
        iam: iam.clone(),
        caller: CallerIdentity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/operator"),
        },
        verifier: None,
    })
}

fn target<H>(label: &str, users: &[&str], handler: H, iam: &Arc<FakeIam>) -> Target<H> {
    Target {
        label: label.into(),
        users: Users::Named(users.iter().map(|u| u.to_string()).collect()),
        handler,
        options: RotateOptions::default(),
        account: reached(iam),
        notes: Default::default(),
        screen: None,
    }
}

/// A fake IAM with these users, one active key each.
fn iam_with(users: &[&str]) -> Arc<FakeIam> {
    let iam = FakeIam::new();
    for user in users {
        iam.add_user(user);
        iam.add_key(user, KeyStatus::Active);
    }
    iam
}

fn fleet() -> Fleet {
    let mut fleet = Fleet::new(JournalChoice::None);
    fleet.concurrency = 1;
    fleet
}

fn creates(iam: &FakeIam) -> usize {
    iam.calls().iter().filter(|c| c.op == Op::Create).count()
}

/// A handler that interrupts the fleet from its first preflight.
struct Interrupting(Interrupt);

#[async_trait]
impl NewKeyHandler for Interrupting {
    async fn preflight(&self, _: &Rotation, _: &HandlerLog) -> Result<(), HandlerError> {
        self.0.trigger();
        Ok(())
    }

    async fn handle(
        &self,
        _: &Rotation,
        _: &NewAccessKey,
        _: &HandlerLog,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn after_an_interrupt_no_user_starts_and_every_user_is_reported() {
    let iam = iam_with(&["ci-a", "ci-b", "ci-c"]);
    let fleet = fleet();
    let handler = Interrupting(fleet.interrupt.clone());
    let rotations = fleet
        .prepare(vec![target("", &["ci-a", "ci-b", "ci-c"], handler, &iam)])
        .await
        .unwrap();
    let reports = rotations.run(&NoObserver).await;
    assert_eq!(reports.len(), 3);
    let error = |i: usize| reports[i].error.clone().unwrap_or_default();
    assert!(error(0).contains("interrupted"), "{}", error(0));
    for i in [1, 2] {
        assert_eq!(reports[i].outcome, Outcome::Failed);
        assert!(error(i).starts_with("not started"), "{}", error(i));
    }
    assert_eq!(creates(&iam), 0, "no key was created");
}

#[tokio::test]
async fn a_rotation_that_panics_is_reported_and_the_others_go_on() {
    let iam = iam_with(&["ci-a", "ci-b", "ci-c"]);
    iam.panic_on_list("ci-b");
    let handler = Arc::new(FakeHandler::new(iam.clone()));
    // The panic is for the rotation, not the check that users exist.
    let mut fleet = fleet();
    fleet.check_users = false;
    let reports = fleet
        .prepare(vec![target("", &["ci-a", "ci-b", "ci-c"], handler, &iam)])
        .await
        .unwrap()
        .run(&NoObserver)
        .await;
    let outcomes: Vec<Outcome> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Rotated,
            Outcome::NeedsManualAction,
            Outcome::Rotated
        ]
    );
    let error = reports[1].error.as_deref().unwrap();
    assert!(
        error.contains("failed unexpectedly") && error.contains("keyrot status --user ci-b"),
        "{error}"
    );
    assert_eq!(reports[1].account.as_deref(), Some(ACCOUNT));
}

#[tokio::test]
async fn a_user_selected_twice_is_refused_before_anything_runs() {
    let iam = iam_with(&["ci-a", "ci-b"]);
    let handler = Arc::new(FakeHandler::new(iam.clone()));
    let err = fleet()
        .prepare(vec![
            target("target one", &["ci-a"], handler.clone(), &iam),
            // IAM user names ignore case: the same user, spelled otherwise.
            target("target two", &["ci-b", "CI-A"], handler, &iam),
        ])
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, FleetError::SelectedTwice { user, .. } if user == "CI-A"),
        "{err}"
    );
    assert_eq!(creates(&iam), 0);
}

#[tokio::test]
async fn an_unknown_user_is_refused_before_any_key_changes() {
    let iam = iam_with(&["ci-a", "ci-b"]);
    let handler = Arc::new(FakeHandler::new(iam.clone()));
    let err = fleet()
        .prepare(vec![target("", &["ci-a", "nobody", "ci-b"], handler, &iam)])
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("no such IAM user in account 123456789012: nobody"),
        "{err}"
    );
    assert_eq!(creates(&iam), 0);
}

#[tokio::test]
async fn an_unreached_account_fails_its_own_users_and_the_rest_rotate() {
    let iam = iam_with(&["ci-a", "ci-b"]);
    let handler = Arc::new(FakeHandler::new(iam.clone()));
    let mut down = target("target down", &["ci-x", "ci-y"], handler.clone(), &iam);
    down.account = Err(Unreached {
        account: Some("210987654321".into()),
        why: "cannot reach it; nothing was changed".into(),
    });
    let reports = fleet()
        .prepare(vec![
            down,
            target("target up", &["ci-a", "ci-b"], handler, &iam),
        ])
        .await
        .unwrap()
        .run(&NoObserver)
        .await;
    let summary: Vec<(String, Outcome)> = reports
        .iter()
        .map(|r| (r.user.clone(), r.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            ("ci-x".into(), Outcome::Failed),
            ("ci-y".into(), Outcome::Failed),
            ("ci-a".into(), Outcome::Rotated),
            ("ci-b".into(), Outcome::Rotated),
        ]
    );
    assert_eq!(
        reports[0].error.as_deref(),
        Some("target down: cannot reach it; nothing was changed")
    );
    assert_eq!(reports[0].account.as_deref(), Some("210987654321"));
}

#[tokio::test]
async fn all_users_are_listed_through_the_iam_seam_and_only_picks_among_them() {
    let iam = iam_with(&["ci-a", "ci-b", "ci-c"]);
    let handler = Arc::new(FakeHandler::new(iam.clone()));
    let mut all = target("", &[], handler, &iam);
    all.users = Users::All {
        path_prefix: "/".into(),
    };
    let mut fleet = fleet();
    fleet.only = Some(vec!["CI-C".into(), "ci-a".into()]);
    let reports = fleet
        .prepare(vec![all])
        .await
        .unwrap()
        .run(&NoObserver)
        .await;
    let users: Vec<&str> = reports.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["ci-a", "ci-c"]);
    assert!(reports.iter().all(|r| r.outcome == Outcome::Rotated));
    assert!(iam.calls().iter().any(|c| c.op == Op::ListUsers));
}

/// A handler that, while it runs, tries to take the user's lock itself.
struct LockProbe {
    state: StateDir,
    found_busy: std::sync::Mutex<Option<bool>>,
}

#[async_trait]
impl NewKeyHandler for LockProbe {
    async fn handle(
        &self,
        rotation: &Rotation,
        _: &NewAccessKey,
        _: &HandlerLog,
    ) -> Result<(), HandlerError> {
        let busy = matches!(
            self.state.lock(Some(ACCOUNT), &rotation.user_name, None),
            Err(JournalError::Busy { .. })
        );
        *self.found_busy.lock().unwrap() = Some(busy);
        if busy {
            Ok(())
        } else {
            Err(HandlerError::new(
                HandlerErrorKind::Rejected,
                "the lock was free",
            ))
        }
    }
}

#[tokio::test]
async fn a_library_caller_using_the_file_journal_gets_the_users_lock() {
    let iam = iam_with(&["ci-a"]);
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let probe = Arc::new(LockProbe {
        state: state.clone(),
        found_busy: Default::default(),
    });
    let mut fleet = fleet();
    fleet.journal = JournalChoice::File(state.clone());
    let reports = fleet
        .prepare(vec![target("", &["ci-a"], probe.clone(), &iam)])
        .await
        .unwrap()
        .run(&NoObserver)
        .await;
    assert_eq!(
        *probe.found_busy.lock().unwrap(),
        Some(true),
        "held during the rotation"
    );
    assert_eq!(
        reports[0].outcome,
        Outcome::Rotated,
        "{:?}",
        reports[0].error
    );
    // Released once the run ended.
    state.lock(Some(ACCOUNT), "ci-a", None).unwrap();
}
