//! Every edge of [`keyrot::KeyRotator::rotate_keys`], as one table of
//! scenarios on the fault-injecting [`FakeIam`].
//!
//! Each row gives the user's keys, the faults, the handler's behaviour and
//! what must come out: the result, the keys left in IAM, the exit code, and
//! row-specific checks on the report. [`invariants`] then checks, after every
//! row, the promises keyrot makes whatever happens (never lose the working
//! key, never leave a key nobody holds unnamed, never leak a secret).

use std::sync::Arc;

use keyrot::{
    GiveUp, HandlerError, HandlerErrorKind, IamErrorKind, KeyRotator, KeyStatus, NewKeyState,
    OldKeyAction, Outcome, RotationError, RotationFailure, RotationReport, Step,
};

use crate::fake::{FakeHandler, FakeIam, Fault, Op, Times, fast_retry};

use HandlerErrorKind::{OutOfMemory, Rejected, TimedOut, Trapped};
use KeyStatus::{Active, Expired, Inactive};

const USER: &str = "ci-bot";

/// One row of the table.
struct Scenario {
    /// The user's keys before the run, in the order IAM lists them.
    keys: &'static [KeyStatus],
    /// Whether the user exists at all.
    known_user: bool,
    /// Injects faults, given the fake and the ids of `keys` in order.
    setup: fn(&FakeIam, &[String]),
    /// `Some` makes the handler's preflight fail with that kind.
    preflight: Option<HandlerErrorKind>,
    /// `Some` makes the handler's handle fail with that kind.
    handle: Option<HandlerErrorKind>,
    expect: Expect,
    /// Active and non-active keys in IAM at the end.
    end: (usize, usize),
    /// The original active key's status at the end: `None` if it is gone
    /// (or there was none).
    original: Option<KeyStatus>,
    /// What the report says became of the new key; `None` if none was made.
    new_key: Option<NewKeyState>,
    exit: u8,
    /// Assertions only this row makes.
    check: fn(&Run),
}

enum Expect {
    Succeeds(Outcome),
    Fails(Failure),
}

/// [`RotationFailure`]'s variants, without their payloads.
#[derive(Debug, PartialEq)]
enum Failure {
    UnknownUser,
    ListKeys,
    TwoActiveKeys,
    Preflight,
    MakeRoom,
    CreateKey,
    Handler,
    Orphaned,
    StrayKey,
    CreateUncertain,
    CreateUnanswered,
    NewKeyGone,
    Unconfirmed,
}

fn failure_of(failure: &RotationFailure) -> Failure {
    match failure {
        RotationFailure::UnknownUser { .. } => Failure::UnknownUser,
        RotationFailure::ListKeys { .. } => Failure::ListKeys,
        RotationFailure::TwoActiveKeys { .. } => Failure::TwoActiveKeys,
        RotationFailure::Preflight { .. } => Failure::Preflight,
        RotationFailure::MakeRoom { .. } => Failure::MakeRoom,
        RotationFailure::CreateKey { .. } => Failure::CreateKey,
        RotationFailure::NewKeyDeleted {
            why: GiveUp::Handler(_),
            ..
        } => Failure::Handler,
        RotationFailure::Orphaned { .. } => Failure::Orphaned,
        RotationFailure::StrayKey { .. } => Failure::StrayKey,
        RotationFailure::CreateUncertain { .. } => Failure::CreateUncertain,
        RotationFailure::CreateUnanswered { .. } => Failure::CreateUnanswered,
        RotationFailure::NewKeyGone { .. } => Failure::NewKeyGone,
        RotationFailure::Unconfirmed { .. } => Failure::Unconfirmed,
        other => panic!("no row expects {other:?}"),
    }
}

fn no_faults(_: &FakeIam, _: &[String]) {}

fn no_check(_: &Run) {}

/// The happy path on a user with no keys; rows override what they are about.
const BASE: Scenario = Scenario {
    keys: &[],
    known_user: true,
    setup: no_faults,
    preflight: None,
    handle: None,
    expect: Expect::Succeeds(Outcome::Rotated),
    end: (1, 0),
    original: None,
    new_key: Some(NewKeyState::Propagated),
    exit: 0,
    check: no_check,
};

/// A handler failure on a user with one active key.
const HANDLER_FAILS: Scenario = Scenario {
    keys: &[Active],
    handle: Some(Rejected),
    expect: Expect::Fails(Failure::Handler),
    original: Some(Active),
    new_key: Some(NewKeyState::Deleted),
    exit: 1,
    ..BASE
};

/// A finished run, for the checks.
struct Run {
    fake: Arc<FakeIam>,
    handler: Arc<FakeHandler>,
    /// The user's keys before the run.
    initial: Vec<(String, KeyStatus)>,
    result: Result<RotationReport, RotationError>,
}

impl Run {
    fn report(&self) -> &RotationReport {
        match &self.result {
            Ok(report) => report,
            Err(err) => &err.report,
        }
    }

    fn err(&self) -> &RotationError {
        self.result
            .as_ref()
            .expect_err("the run should have failed")
    }

    fn message(&self) -> String {
        self.err().to_string()
    }

    /// The id of the `i`th key the user had before the run.
    fn id(&self, i: usize) -> &str {
        &self.initial[i].0
    }

    fn new_key_id(&self) -> String {
        let new_key = self.report().new_key.as_ref().expect("a new key");
        new_key.access_key_id.clone()
    }

    /// What the report says became of the `i`th old key.
    fn action(&self, i: usize) -> &OldKeyAction {
        let old = &self.report().old_keys[i];
        assert_eq!(old.access_key_id, self.id(i), "old_keys keeps list order");
        &old.action
    }

    /// The steps as (step, key, ok).
    fn steps(&self) -> Vec<(Step, Option<String>, bool)> {
        let steps = self.report().steps.iter();
        steps.map(|s| (s.step, s.key_id.clone(), s.ok)).collect()
    }

    fn ops(&self) -> Vec<Op> {
        self.fake.calls().iter().map(|c| c.op).collect()
    }

    /// The results of the delete calls on `key_id`, in order.
    fn deletes_of(&self, key_id: &str) -> Vec<bool> {
        let calls = self.fake.calls().into_iter();
        calls
            .filter(|c| c.op == Op::Delete && c.key_id.as_deref() == Some(key_id))
            .map(|c| c.ok)
            .collect()
    }
}

fn step(step: Step, key: Option<&str>, ok: bool) -> (Step, Option<String>, bool) {
    (step, key.map(str::to_string), ok)
}

async fn run(s: Scenario) {
    let fake = FakeIam::new();
    let mut ids = Vec::new();
    if s.known_user {
        fake.add_user(USER);
        ids = s
            .keys
            .iter()
            .map(|k| fake.add_key(USER, k.clone()))
            .collect();
    }
    let initial = fake.keys(USER);
    (s.setup)(&fake, &ids);
    let handler_result = |kind: Option<HandlerErrorKind>| match kind {
        Some(kind) => Err(HandlerError::new(kind, format!("{kind:?}: injected"))),
        None => Ok(()),
    };
    let handler = FakeHandler::new(fake.clone())
        .with_preflight(handler_result(s.preflight))
        .with_handle(handler_result(s.handle));
    let handler = Arc::new(handler);
    let result = KeyRotator::new(fake.clone(), handler.clone())
        .with_retry(fast_retry())
        .rotate_keys(USER)
        .await;
    let run = Run {
        fake,
        handler,
        initial,
        result,
    };

    let (outcome, exit) = match (&s.expect, &run.result) {
        (Expect::Succeeds(want), Ok(report)) => {
            assert_eq!(report.outcome, *want, "outcome; report: {report:#?}");
            (report.outcome, report.outcome.exit_code())
        }
        (Expect::Fails(want), Err(err)) => {
            assert_eq!(failure_of(&err.failure), *want, "failure: {err}");
            (err.report.outcome, err.exit_code())
        }
        (Expect::Succeeds(_), Err(err)) => panic!("expected success, got: {err}"),
        (Expect::Fails(want), Ok(report)) => {
            panic!("expected {want:?}, got success: {report:#?}")
        }
    };
    assert_eq!(exit, s.exit, "exit code of {outcome:?}");

    let after = run.fake.keys(USER);
    let active = run.fake.active_keys(USER).len();
    assert_eq!((active, after.len() - active), s.end, "end keys: {after:?}");
    let original = run.initial.iter().find(|(_, status)| *status == Active);
    let original = original.and_then(|(id, _)| run.fake.status(USER, id));
    assert_eq!(original, s.original, "the original active key at the end");
    let new_key = run.report().new_key.as_ref().map(|k| k.state);
    assert_eq!(new_key, s.new_key, "new key state");

    invariants(&run);
    (s.check)(&run);
}

/// What must hold after any run, whatever the row.
fn invariants(run: &Run) {
    let report = run.report();
    let after = run.fake.keys(USER);
    let status_now = |id: &str| run.fake.status(USER, id);
    let active_before: Vec<&str> = run
        .initial
        .iter()
        .filter(|(_, status)| *status == Active)
        .map(|(id, _)| id.as_str())
        .collect();
    let active_after = run.fake.active_keys(USER);
    let refused_two =
        matches!(&run.result, Err(e) if failure_of(&e.failure) == Failure::TwoActiveKeys);

    // The user never loses its working key...
    if !active_before.is_empty() {
        assert!(!active_after.is_empty(), "no active key left: {after:?}");
    }
    // ...and never silently ends up with two.
    if active_after.len() > 1 {
        assert!(
            report.outcome == Outcome::NeedsManualAction || refused_two,
            "two active keys but outcome {:?}: {after:?}",
            report.outcome
        );
    }

    if let Err(err) = &run.result {
        // Every failure happens before step 6: the working key is untouched.
        for id in &active_before {
            assert_eq!(status_now(id), Some(Active), "{id} after {err}");
        }
        let expected_outcome = match err.failure {
            RotationFailure::Orphaned { .. }
            | RotationFailure::StrayKey { .. }
            | RotationFailure::CreateUncertain { .. }
            | RotationFailure::NewKeyGone { .. }
            | RotationFailure::Unconfirmed { .. } => Outcome::NeedsManualAction,
            RotationFailure::UnknownUser { .. } => Outcome::BadInput,
            _ => Outcome::Failed,
        };
        assert_eq!(report.outcome, expected_outcome);
        // The only key that may remain that the user did not have is the
        // named orphan, or a stored key whose retirement was not confirmed.
        let orphan = match &err.failure {
            RotationFailure::Orphaned { key, .. }
            | RotationFailure::StrayKey { key, .. }
            | RotationFailure::Unconfirmed { key, .. } => Some(key.as_str()),
            _ => None,
        };
        for (id, _) in &after {
            let known = run.initial.iter().any(|(old, _)| old == id);
            assert!(
                known || orphan == Some(id.as_str()),
                "unpropagated key {id}"
            );
        }
        if let Some(orphan) = orphan {
            assert!(status_now(orphan).is_some(), "the orphan {orphan} exists");
            let message = err.to_string();
            assert!(message.contains(orphan), "{message}");
            assert!(message.contains("aws iam delete-access-key"), "{message}");
        }
    }

    // The report tells the truth about each old key.
    if !report.old_keys.is_empty() {
        let listed: Vec<_> = report
            .old_keys
            .iter()
            .map(|k| (k.access_key_id.clone(), k.status.clone()))
            .collect();
        assert_eq!(listed, run.initial, "old_keys is what IAM listed");
    }
    for old in &report.old_keys {
        let id = &old.access_key_id;
        let now = status_now(id);
        match &old.action {
            OldKeyAction::Unchanged
            | OldKeyAction::DeleteFailed { .. }
            | OldKeyAction::Draining => {
                assert_eq!(now.as_ref(), Some(&old.status), "{id}: {:?}", old.action)
            }
            OldKeyAction::DeletedToMakeRoom => {
                assert_ne!(old.status, Active, "made room by deleting active {id}");
                assert_eq!(now, None, "{id}: {:?}", old.action);
            }
            OldKeyAction::Deleted | OldKeyAction::AlreadyGone => {
                assert_eq!(now, None, "{id}: {:?}", old.action)
            }
            OldKeyAction::Deactivated { .. } | OldKeyAction::KeptInactive => {
                assert_eq!(now, Some(Inactive), "{id}")
            }
            OldKeyAction::StillActive { .. } => assert_eq!(now, Some(Active), "{id}"),
        }
    }
    // Any old key that disappeared is one the report says was deleted.
    for (id, _) in &run.initial {
        if status_now(id).is_none() {
            let old = report.old_keys.iter().find(|k| &k.access_key_id == id);
            let action = old.map(|k| &k.action);
            assert!(
                matches!(
                    action,
                    Some(
                        OldKeyAction::Deleted
                            | OldKeyAction::AlreadyGone
                            | OldKeyAction::DeletedToMakeRoom
                    )
                ),
                "{id} is gone but the report says {action:?}"
            );
        }
    }

    // And about the new key, which a success always leaves propagated.
    if run.result.is_ok() {
        let state = report.new_key.as_ref().map(|k| k.state);
        assert_eq!(state, Some(NewKeyState::Propagated));
    }
    if let Some(new_key) = &report.new_key {
        let now = status_now(&new_key.access_key_id);
        let want = match new_key.state {
            NewKeyState::Propagated | NewKeyState::Orphaned => Some(Active),
            NewKeyState::Deleted | NewKeyState::Gone => None,
        };
        assert_eq!(now, want, "new key {new_key:?}");
    }

    // The handler got the key once, while it was active, with its secret.
    let seen = run.handler.seen();
    assert!(
        seen.handle_calls <= 1,
        "handle called {}",
        seen.handle_calls
    );
    if seen.handle_calls == 1 {
        assert!(seen.key_was_active, "handler got an inactive key");
        assert!(seen.secret_matched, "handler got the wrong secret");
        assert_eq!(seen.key_id, Some(run.new_key_id()));
        let logged = format!("storing {}", run.new_key_id());
        let log = &report.handler_log;
        assert!(
            log.iter().any(|l| l.message == logged),
            "handler log {log:?}"
        );
    }

    // No secret, in any rendering of the result.
    let mut shown = vec![
        serde_json::to_string(report).expect("report serializes"),
        format!("{report:?}"),
    ];
    if let Err(err) = &run.result {
        shown.extend([err.to_string(), format!("{err:?}")]);
    }
    let secrets = run.fake.secrets();
    for text in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "secret leaked: {text}");
        }
    }
}

/// One `#[tokio::test]` per row, so a failure names its scenario.
macro_rules! scenarios {
    ($($(#[$doc:meta])* $name:ident: $row:expr;)*) => {
        $(
            $(#[$doc])*
            #[tokio::test]
            async fn $name() {
                run($row).await;
            }
        )*
    };
}

scenarios! {
    /// Nothing to replace: the new key is simply the user's first.
    no_keys: BASE;

    one_active: Scenario {
        keys: &[Active],
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::Deleted);
            let seen = run.handler.seen();
            let rotation = seen.rotation.expect("handler called");
            assert_eq!(rotation.user_name, USER);
            assert_eq!(rotation.current_key_id.as_deref(), Some(run.id(0)));
            // A library caller that names no caller identity: no account.
            assert_eq!(rotation.account_id, None);
            // The second list is the check that no other process acted;
            // the third, that the new key is still there before retiring.
            assert_eq!(run.ops(), [Op::List, Op::Create, Op::List, Op::List, Op::Delete]);
            let new = run.new_key_id();
            assert_eq!(run.steps(), [
                step(Step::ListKeys, None, true),
                step(Step::Preflight, None, true),
                step(Step::CreateKey, None, true),
                step(Step::CheckKeys, None, true),
                step(Step::VerifyKey, Some(&new), true),
                step(Step::Handle, Some(&new), true),
                step(Step::ConfirmNewKey, Some(&new), true),
                step(Step::DeleteOldKey, Some(run.id(0)), true),
            ]);
            assert_eq!(run.report().error, None);
        },
        ..BASE
    };

    one_inactive: Scenario {
        keys: &[Inactive],
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::Deleted);
            let rotation = run.handler.seen().rotation.expect("handler called");
            assert_eq!(rotation.current_key_id, None, "an inactive key is not current");
        },
        ..BASE
    };

    /// At the limit: the inactive key makes room, then the active one retires.
    active_and_inactive_at_limit: Scenario {
        keys: &[Active, Inactive],
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::Deleted);
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
            let new = run.new_key_id();
            assert_eq!(run.steps(), [
                step(Step::ListKeys, None, true),
                step(Step::Preflight, None, true),
                step(Step::CreateKey, None, false),
                step(Step::MakeRoom, Some(run.id(1)), true),
                step(Step::CreateKey, None, true),
                step(Step::CheckKeys, None, true),
                step(Step::VerifyKey, Some(&new), true),
                step(Step::Handle, Some(&new), true),
                step(Step::ConfirmNewKey, Some(&new), true),
                step(Step::DeleteOldKey, Some(run.id(0)), true),
            ]);
            let refused = &run.report().steps[2];
            let error = refused.error.as_deref().unwrap_or_default();
            assert!(error.contains("LimitExceeded"), "{error}");
        },
        ..BASE
    };

    /// An expired key counts against the limit and makes room like an inactive one.
    expired_key_makes_room: Scenario {
        keys: &[Active, Expired],
        check: |run| {
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
            assert_eq!(*run.action(0), OldKeyAction::Deleted);
        },
        ..BASE
    };

    two_inactive_at_limit: Scenario {
        keys: &[Inactive, Inactive],
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::DeletedToMakeRoom);
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
            let steps: Vec<Step> = run.steps().into_iter().map(|s| s.0).collect();
            assert_eq!(steps.iter().filter(|s| **s == Step::MakeRoom).count(), 2);
            assert!(!steps.contains(&Step::DeleteOldKey), "{steps:?}");
        },
        ..BASE
    };

    /// Either key may be in use: refuse, touch nothing, name both in full
    /// (ids are not secret, and the fix needs them).
    two_active_refused: Scenario {
        keys: &[Active, Active],
        expect: Expect::Fails(Failure::TwoActiveKeys),
        end: (2, 0),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List]);
            let seen = run.handler.seen();
            assert_eq!((seen.preflight_calls, seen.handle_calls), (0, 0));
            let message = run.message();
            for id in [run.id(0), run.id(1)] {
                assert!(message.contains(&format!("{id}, created ")), "{message}");
            }
            assert!(run.report().old_keys.iter().all(|k| k.action == OldKeyAction::Unchanged));
        },
        ..BASE
    };

    list_fails: Scenario {
        keys: &[Active],
        setup: |fake, _| fake.fail(Op::List, None, IamErrorKind::AccessDenied, Times::Always),
        expect: Expect::Fails(Failure::ListKeys),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List]);
            assert_eq!(run.handler.seen().preflight_calls, 0);
            assert!(run.report().old_keys.is_empty());
            assert!(run.message().contains("AccessDenied"), "{}", run.message());
        },
        ..BASE
    };

    /// Bad input, not an outage: its own exit code, nothing touched.
    unknown_user: Scenario {
        known_user: false,
        expect: Expect::Fails(Failure::UnknownUser),
        end: (0, 0),
        new_key: None,
        exit: 2,
        check: |run| {
            assert_eq!(run.ops(), [Op::List]);
            assert_eq!(run.handler.seen().preflight_calls, 0);
            assert!(run.message().contains(USER), "{}", run.message());
        },
        ..BASE
    };

    preflight_fails: Scenario {
        keys: &[Active],
        preflight: Some(Rejected),
        expect: Expect::Fails(Failure::Preflight),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List], "no key created");
            let seen = run.handler.seen();
            assert_eq!((seen.preflight_calls, seen.handle_calls), (1, 0));
            let rotation = seen.rotation.expect("preflight called");
            assert_eq!(rotation.current_key_id.as_deref(), Some(run.id(0)));
        },
        ..BASE
    };

    create_fails: Scenario {
        keys: &[Active],
        setup: |fake, _| fake.fail(Op::Create, None, IamErrorKind::AccessDenied, Times::Always),
        expect: Expect::Fails(Failure::CreateKey),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List, Op::Create]);
            assert_eq!(run.handler.seen().handle_calls, 0);
        },
        ..BASE
    };

    /// The create worked but its answer was lost: the key it made is found
    /// by listing again and deleted, and the run fails cleanly.
    create_response_lost: Scenario {
        keys: &[Active],
        setup: |fake, _| {
            let lost = keyrot::IamError::new(IamErrorKind::NoAnswer, "connection reset");
            fake.inject(Fault::new(Op::Create, lost).times(Times::N(1)).applied());
        },
        expect: Expect::Fails(Failure::CreateKey),
        original: Some(Active),
        new_key: Some(NewKeyState::Deleted),
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List, Op::Create, Op::List, Op::Delete]);
            assert_eq!(run.handler.seen().handle_calls, 0);
            let stray = run.new_key_id();
            assert!(run.message().contains(&stray), "{}", run.message());
            assert!(run.message().contains("anyway, which was deleted"), "{}", run.message());
        },
        ..BASE
    };

    /// The lost create's key cannot be deleted either: it is named, with
    /// the command to delete it.
    create_response_lost_and_stray_undeletable: Scenario {
        keys: &[Active],
        setup: |fake, _| {
            let lost = keyrot::IamError::new(IamErrorKind::NoAnswer, "connection reset");
            fake.inject(Fault::new(Op::Create, lost).times(Times::N(1)).applied());
            let stray = fake.next_key_id();
            fake.fail(Op::Delete, Some(&stray), IamErrorKind::AccessDenied, Times::Always);
        },
        expect: Expect::Fails(Failure::StrayKey),
        end: (2, 0),
        original: Some(Active),
        new_key: Some(NewKeyState::Orphaned),
        exit: 4,
        check: |run| {
            let stray = run.new_key_id();
            let command =
                format!("aws iam delete-access-key --user-name {USER} --access-key-id {stray}");
            assert!(run.message().contains(&command), "{}", run.message());
        },
        ..BASE
    };

    /// A create timed out and the keys cannot be listed to check what it
    /// did: the operator is told to look.
    create_timeout_and_relist_fails: Scenario {
        keys: &[Active],
        setup: |fake, _| {
            fake.fail(Op::Create, None, IamErrorKind::NoAnswer, Times::Always);
            let down = keyrot::IamError::new(IamErrorKind::AccessDenied, "denied");
            fake.inject(Fault::new(Op::List, down).after(1));
        },
        expect: Expect::Fails(Failure::CreateUncertain),
        original: Some(Active),
        new_key: None,
        exit: 4,
        check: |run| {
            assert!(
                run.message().contains("aws iam list-access-keys --user-name"),
                "{}",
                run.message()
            );
        },
        ..BASE
    };

    /// Only LimitExceeded justifies deleting the inactive key; a throttled
    /// create must delete nothing, and is not retried (it might have worked).
    create_fails_otherwise_with_inactive_key: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, _| fake.fail(Op::Create, None, IamErrorKind::NoAnswer, Times::N(1)),
        expect: Expect::Fails(Failure::CreateUnanswered),
        end: (1, 1),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            // The lost-answer check lists again, and finds nothing to delete
            // yet: IAM may still apply the call, so the journal stays.
            assert_eq!(run.ops(), [Op::List, Op::Create, Op::List], "no delete at all");
            assert_eq!(*run.action(1), OldKeyAction::Unchanged);
            let error = run.message();
            assert!(error.contains("IAM may still apply the call until"), "{error}");
        },
        ..BASE
    };

    /// The self-heal delete fails: no key is created, nothing else changes.
    make_room_delete_fails: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, ids| {
            fake.fail(Op::Delete, Some(&ids[1]), IamErrorKind::AccessDenied, Times::Always)
        },
        expect: Expect::Fails(Failure::MakeRoom),
        end: (1, 1),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(run.ops(), [Op::List, Op::Create, Op::Delete]);
            assert_eq!(run.handler.seen().handle_calls, 0);
            assert_eq!(*run.action(1), OldKeyAction::Unchanged);
            let RotationFailure::MakeRoom { key, .. } = &run.err().failure else {
                unreachable!("checked by the row")
            };
            assert_eq!(key, run.id(1));
            let last = run.steps().pop();
            assert_eq!(last, Some(step(Step::MakeRoom, Some(run.id(1)), false)));
        },
        ..BASE
    };

    make_room_delete_retried: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, ids| {
            fake.fail(Op::Delete, Some(&ids[1]), IamErrorKind::NoAnswer, Times::N(1))
        },
        check: |run| {
            assert_eq!(run.deletes_of(run.id(1)), [false, true]);
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
        },
        ..BASE
    };

    /// Room was made but the second create fails: the message says so.
    create_after_make_room_fails: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, _| {
            let denied = keyrot::IamError::new(IamErrorKind::AccessDenied, "AccessDenied: no");
            fake.inject(Fault::new(Op::Create, denied).after(1));
        },
        expect: Expect::Fails(Failure::CreateKey),
        original: Some(Active),
        new_key: None,
        exit: 1,
        check: |run| {
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
            assert!(run.message().contains(run.id(1)), "{}", run.message());
            assert_eq!(run.handler.seen().handle_calls, 0);
        },
        ..BASE
    };

    /// The handler failed: the new key must not outlive it.
    handler_fails: Scenario {
        keys: &[Active],
        handle: Some(Rejected),
        expect: Expect::Fails(Failure::Handler),
        original: Some(Active),
        new_key: Some(NewKeyState::Deleted),
        exit: 1,
        check: |run| {
            let new = run.new_key_id();
            assert_eq!(run.deletes_of(&new), [true]);
            assert!(run.deletes_of(run.id(0)).is_empty(), "old key kept");
            assert_eq!(run.steps().pop(), Some(step(Step::DeleteNewKey, Some(&new), true)));
            assert!(run.message().contains(&new), "{}", run.message());
        },
        ..BASE
    };

    handler_times_out: Scenario {
        handle: Some(TimedOut),
        check: |run| handler_cause_is(run, TimedOut),
        ..HANDLER_FAILS
    };

    handler_traps: Scenario {
        handle: Some(Trapped),
        check: |run| handler_cause_is(run, Trapped),
        ..HANDLER_FAILS
    };

    handler_out_of_memory: Scenario {
        handle: Some(OutOfMemory),
        check: |run| handler_cause_is(run, OutOfMemory),
        ..HANDLER_FAILS
    };

    /// Handler and cleanup both fail: the orphan is named in full, with the
    /// command that deletes it.
    handler_fails_and_new_key_delete_fails: Scenario {
        setup: |fake, _| {
            let new = fake.next_key_id();
            fake.fail(Op::Delete, Some(&new), IamErrorKind::NoAnswer, Times::Always)
        },
        expect: Expect::Fails(Failure::Orphaned),
        end: (2, 0),
        new_key: Some(NewKeyState::Orphaned),
        exit: 4,
        check: |run| {
            let new = run.new_key_id();
            assert_eq!(run.deletes_of(&new), [false; 3], "retried up to the policy");
            let command =
                format!("aws iam delete-access-key --user-name {USER} --access-key-id {new}");
            assert!(run.message().contains(&command), "{}", run.message());
            let error = run.report().error.as_deref().unwrap_or_default();
            assert!(error.contains(&command), "report error: {error}");
        },
        ..HANDLER_FAILS
    };

    new_key_delete_transient_twice: Scenario {
        setup: |fake, _| {
            let new = fake.next_key_id();
            fake.fail(Op::Delete, Some(&new), IamErrorKind::NoAnswer, Times::N(2))
        },
        check: |run| assert_eq!(run.deletes_of(&run.new_key_id()), [false, false, true]),
        ..HANDLER_FAILS
    };

    /// Cleanup finds the new key already gone: that is what it wanted.
    new_key_already_gone: Scenario {
        setup: |fake, _| {
            let gone = keyrot::IamError::new(IamErrorKind::NoSuchEntity, "NoSuchEntity: gone");
            fake.inject(Fault::new(Op::Delete, gone).key(&fake.next_key_id()).applied());
        },
        check: |run| assert_eq!(run.deletes_of(&run.new_key_id()), [false]),
        ..HANDLER_FAILS
    };

    /// The message must not claim the existing keys are unchanged when the
    /// inactive one was deleted to make room.
    handler_fails_after_make_room: Scenario {
        keys: &[Active, Inactive],
        check: |run| {
            assert_eq!(*run.action(1), OldKeyAction::DeletedToMakeRoom);
            let message = run.message();
            assert!(
                message.contains(run.id(1)) && !message.contains("existing keys are unchanged"),
                "the message hides that {} was deleted to make room: {message}",
                run.id(1)
            );
        },
        ..HANDLER_FAILS
    };

    /// The old key cannot be deleted, so it is deactivated: partial, exit 3.
    /// Someone deletes the new key after the handler stored it: retiring
    /// the old key would leave none, so nothing is retired.
    new_key_deleted_before_retiring: Scenario {
        keys: &[Active],
        setup: |fake, _| {
            let new = fake.next_key_id();
            // Gone after the handler stored it, before the confirming list.
            fake.vanish_before_list(&new, 3);
        },
        expect: Expect::Fails(Failure::NewKeyGone),
        end: (1, 0),
        original: Some(Active),
        new_key: Some(NewKeyState::Gone),
        exit: 4,
        check: |run| {
            assert!(!run.ops().contains(&Op::Delete), "nothing retired");
            let error = run.message();
            assert!(error.contains("no longer exists"), "{error}");
        },
        ..BASE
    };

    /// The confirming list fails: nothing is retired, and the run says the
    /// two keys both work (an operator should look; a rerun finishes it).
    confirming_list_fails: Scenario {
        keys: &[Active],
        setup: |fake, _| {
            let denied = keyrot::IamError::new(IamErrorKind::AccessDenied, "AccessDenied: no");
            fake.inject(Fault::new(Op::List, denied).after(2));
        },
        expect: Expect::Fails(Failure::Unconfirmed),
        end: (2, 0),
        original: Some(Active),
        new_key: Some(NewKeyState::Propagated),
        exit: 4,
        check: |run| {
            assert!(!run.ops().contains(&Op::Delete), "nothing retired");
        },
        ..BASE
    };

    old_key_delete_fails: Scenario {
        keys: &[Active],
        setup: |fake, ids| {
            fake.fail(Op::Delete, Some(&ids[0]), IamErrorKind::AccessDenied, Times::Always)
        },
        expect: Expect::Succeeds(Outcome::Partial),
        end: (1, 1),
        original: Some(Inactive),
        exit: 3,
        check: |run| {
            let action = run.action(0);
            assert!(matches!(action, OldKeyAction::Deactivated { .. }), "{action:?}");
            let old = run.id(0);
            let tail: Vec<_> = run.steps().split_off(7);
            assert_eq!(tail, [
                step(Step::DeleteOldKey, Some(old), false),
                step(Step::DeactivateOldKey, Some(old), true),
            ]);
            let error = run.report().error.as_deref().unwrap_or_default();
            assert!(error.contains(old) && error.contains("aws iam delete-access-key"), "{error}");
        },
        ..BASE
    };

    /// NoSuchEntity on delete means the key is gone: the goal is reached.
    old_key_delete_no_such_entity: Scenario {
        keys: &[Active],
        setup: |fake, ids| {
            let gone = keyrot::IamError::new(IamErrorKind::NoSuchEntity, "NoSuchEntity: gone");
            fake.inject(Fault::new(Op::Delete, gone).key(&ids[0]).applied());
        },
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::AlreadyGone);
            assert_eq!(run.deletes_of(run.id(0)), [false]);
            assert_eq!(run.report().error, None);
        },
        ..BASE
    };

    /// The delete worked but its response was lost; the retry's
    /// NoSuchEntity must not turn into a failure.
    old_key_delete_response_lost: Scenario {
        keys: &[Active],
        setup: |fake, ids| {
            let lost = keyrot::IamError::new(IamErrorKind::NoAnswer, "timeout");
            fake.inject(Fault::new(Op::Delete, lost).key(&ids[0]).times(Times::N(1)).applied());
        },
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::AlreadyGone);
            assert_eq!(run.deletes_of(run.id(0)), [false, false]);
        },
        ..BASE
    };

    /// Two old keys reach step 6 (the inactive one was deleted by someone
    /// else after the list, so no room was needed). The active one's delete
    /// fails; the other is still dealt with.
    one_of_two_old_key_deletes_fails: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, ids| {
            fake.vanish_after_list(&ids[1]);
            fake.fail(Op::Delete, Some(&ids[0]), IamErrorKind::AccessDenied, Times::Always);
        },
        expect: Expect::Succeeds(Outcome::Partial),
        end: (1, 1),
        original: Some(Inactive),
        exit: 3,
        check: |run| {
            let action = run.action(0);
            assert!(matches!(action, OldKeyAction::Deactivated { .. }), "{action:?}");
            assert_eq!(*run.action(1), OldKeyAction::AlreadyGone);
            assert_eq!(run.deletes_of(run.id(1)), [false], "tried after the first failed");
        },
        ..BASE
    };

    /// An inactive old key that cannot be deleted stays inactive: partial.
    inactive_old_key_delete_fails: Scenario {
        keys: &[Active, Inactive],
        setup: |fake, ids| {
            fake.vanish_after_list(&ids[0]);
            fake.fail(Op::Delete, Some(&ids[1]), IamErrorKind::AccessDenied, Times::Always);
        },
        expect: Expect::Succeeds(Outcome::Partial),
        end: (1, 1),
        exit: 3,
        check: |run| {
            assert_eq!(*run.action(0), OldKeyAction::AlreadyGone);
            let action = run.action(1);
            assert!(matches!(action, OldKeyAction::DeleteFailed { .. }), "{action:?}");
            assert!(!run.ops().contains(&Op::Update), "an inactive key needs no deactivating");
        },
        ..BASE
    };

    /// Neither delete nor deactivate works: two active keys, an operator must act.
    old_key_stuck_active: Scenario {
        keys: &[Active],
        setup: |fake, ids| {
            fake.fail(Op::Delete, Some(&ids[0]), IamErrorKind::AccessDenied, Times::Always);
            fake.fail(Op::Update, Some(&ids[0]), IamErrorKind::AccessDenied, Times::Always);
        },
        expect: Expect::Succeeds(Outcome::NeedsManualAction),
        end: (2, 0),
        original: Some(Active),
        exit: 4,
        check: |run| {
            let action = run.action(0);
            assert!(matches!(action, OldKeyAction::StillActive { .. }), "{action:?}");
            let error = run.report().error.as_deref().unwrap_or_default();
            assert!(error.contains("STILL ACTIVE") && error.contains(run.id(0)), "{error}");
        },
        ..BASE
    };

    /// Every delete of the old key times out, but the first one went
    /// through: deactivating then finds no such key. The key is gone, so
    /// this is a clean rotation, not a key "still active".
    old_key_gone_while_delete_times_out: Scenario {
        keys: &[Active],
        setup: |fake, ids| {
            let lost = keyrot::IamError::new(IamErrorKind::NoAnswer, "timeout");
            fake.inject(Fault::new(Op::Delete, lost).key(&ids[0]).applied());
        },
        check: |run| {
            assert_eq!(run.deletes_of(run.id(0)), [false; 3]);
            assert_eq!(*run.action(0), OldKeyAction::AlreadyGone);
        },
        ..BASE
    };
}

fn handler_cause_is(run: &Run, kind: HandlerErrorKind) {
    let RotationFailure::NewKeyDeleted {
        why: GiveUp::Handler(cause),
        ..
    } = &run.err().failure
    else {
        unreachable!("checked by the row")
    };
    assert_eq!(cause.kind, kind);
    assert_eq!(run.handler.seen().handle_calls, 1);
}
