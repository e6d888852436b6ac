//! The promise under bad luck, tried as a hostile operator would: a failed
//! rerun, a create IAM applies after keyrot gave up on it, forged and stale
//! journal records, two machines at once, a lease that cannot be renewed, a
//! new key deleted behind keyrot's back. Each case runs the real binary
//! against moto (behind the fault proxy where moto cannot make the fault)
//! and asserts the end state: exactly one active key, the one the
//! destination holds, or a clear refusal with the journal kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy::{FaultProxy, Faults};
use crate::schedule::{Setup, finish, json, kill, stderr};
use crate::util::{Moto, plugin, show};

const ACCOUNT: &str = "123456789012";

/// A file a paused run (`point:wait`) waits for before it goes on.
struct Gate {
    path: PathBuf,
}

impl Gate {
    fn new(setup: &Setup, name: &str) -> Gate {
        Gate {
            path: setup.dir.path().join(format!("go-{name}")),
        }
    }

    fn env(&self) -> (&'static str, &str) {
        ("KEYROT_TEST_RESUME", self.path.to_str().unwrap())
    }

    fn open(&self) {
        std::fs::write(&self.path, "").unwrap();
    }
}

/// The file journal's record of ci-bot, if any.
fn journal_file(setup: &Setup) -> Option<Value> {
    let path = setup.state.join(format!("journal/{ACCOUNT}/ci-bot.json"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// Writes a record by hand, as someone with the state directory could.
fn write_journal_file(setup: &Setup, record: &Value) {
    let dir = setup.state.join(format!("journal/{ACCOUNT}"));
    std::fs::create_dir_all(&dir).unwrap();
    for d in [
        setup.state.clone(),
        setup.state.join("journal"),
        dir.clone(),
    ] {
        set_mode(&d, 0o700);
    }
    let path = dir.join("ci-bot.json");
    std::fs::write(&path, record.to_string()).unwrap();
    set_mode(&path, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// ci-bot's tags, by key.
async fn tags(moto: &Moto) -> Vec<(String, String)> {
    let out = moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The IAM journal's tag on ci-bot, if any.
async fn journal_tag(moto: &Moto) -> Option<String> {
    tags(moto)
        .await
        .into_iter()
        .find(|(k, _)| k == "keyrot-journal")
        .map(|(_, v)| v)
}

/// One field (`p`, `n`, `x`, …) of the journal tag.
fn tag_field(tag: &str, name: &str) -> Option<String> {
    tag.split(['/', ' '])
        .find_map(|f| f.strip_prefix(&format!("{name}=")).map(str::to_string))
}

async fn set_journal_tag(moto: &Moto, value: &str) {
    moto.client
        .tag_user()
        .user_name("ci-bot")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("keyrot-journal")
                .value(value)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs keyrot with `args` in the background (stdout kept, stderr drained).
fn spawn(moto: &Moto, args: &[String], env: &[(&str, &str)]) -> (Child, tempfile::TempDir) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut cmd, home) = moto.command(&args, env);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.stderr.take();
    (child, home)
}

fn keyrot(moto: &Moto, args: &[String], env: &[(&str, &str)]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    moto.keyrot_with_env(&args, env)
}

// ---- a rerun that fails keeps the journal ----------------------------------

#[tokio::test]
async fn a_rerun_whose_listing_fails_keeps_the_journal_and_the_next_converges() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-created", &[]);
    kill(child);
    let before = journal_file(&setup).expect("the killed run's journal");
    assert_eq!(before["phase"], "created");

    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            deny: vec![("ListAccessKeys".into(), u32::MAX)],
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("the journal is kept (phase created)"),
        "{error}"
    );
    assert_eq!(
        journal_file(&setup),
        Some(before),
        "the journal is kept as it was"
    );

    // IAM answers again: the next run finishes the interrupted rotation.
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["resumed"]["phase"], "created");
    setup.assert_converged(false).await;
    assert!(journal_file(&setup).is_none());
}

#[tokio::test]
async fn the_iam_journal_survives_a_rerun_whose_tag_listing_fails() {
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    let (child, _home) = setup.start_paused("saved-created", &iam);
    kill(child);
    let before = journal_tag(&setup.moto)
        .await
        .expect("the killed run's tag");

    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            deny: vec![("ListUserTags".into(), u32::MAX)],
            ..Faults::default()
        },
    );
    // Another machine, an hour later (the killed run's lease is over).
    let other = tempfile::tempdir().unwrap();
    let later = [("KEYROT_TEST_CLOCK_OFFSET", "3600")];
    let args = setup.args_elsewhere(&proxy.url, other.path(), &iam);
    let out = keyrot(&setup.moto, &args, &later);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        journal_tag(&setup.moto).await,
        Some(before),
        "the tag is kept"
    );

    let args = setup.args_elsewhere(&setup.moto.url, other.path(), &iam);
    let out = keyrot(&setup.moto, &args, &later);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
    assert!(
        tags(&setup.moto).await.is_empty(),
        "no journal, no claim left"
    );
}

#[tokio::test]
async fn a_failed_tag_listing_never_removes_a_live_runs_tag() {
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    let gate = Gate::new(&setup, "a");
    let (a, _home) = setup.start_at("before-handle:wait", &setup.moto.url, &iam, &[gate.env()]);
    let during = journal_tag(&setup.moto).await.expect("run A's tag");

    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            deny: vec![("ListUserTags".into(), u32::MAX)],
            ..Faults::default()
        },
    );
    let other = tempfile::tempdir().unwrap();
    let out = keyrot(
        &setup.moto,
        &setup.args_elsewhere(&proxy.url, other.path(), &iam),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let now = journal_tag(&setup.moto)
        .await
        .expect("run A's tag is still there");
    assert_eq!(tag_field(&now, "h"), tag_field(&during, "h"));
    assert_eq!(tag_field(&now, "p").as_deref(), Some("created"));

    gate.open();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_create_applied_after_its_answer_was_lost_is_deleted_by_the_next_run() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            defer_creates: 1,
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let error = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("IAM may still apply the call until"),
        "{error}"
    );
    assert_eq!(journal_file(&setup).unwrap()["phase"], "create-sent");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;

    // IAM applies the create now: a key nobody holds.
    assert_eq!(proxy.release_deferred(&setup.moto.url), 1);
    assert_eq!(setup.moto.keys("ci-bot").await.len(), 2);

    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let action = report["resumed"]["action"].as_str().unwrap();
    assert!(action.starts_with("deleted key"), "{action}");
    setup.assert_converged(false).await;
    assert!(journal_file(&setup).is_none());
}

#[tokio::test]
async fn a_create_that_lands_after_the_rerun_rotated_is_still_caught() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            defer_creates: 1,
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    // The rerun comes before IAM applies the lost create: it rotates, and
    // keeps watching for that key.
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "rotated");
    let note = report["journal"].as_str().unwrap();
    assert!(note.contains("the journal is kept until"), "{note}");
    setup.assert_converged(false).await;
    let watch = journal_file(&setup).expect("a record to keep watching");
    assert_eq!(watch["phase"], "create-sent");

    proxy.release_deferred(&setup.moto.url);
    assert_eq!(
        setup.moto.keys("ci-bot").await.len(),
        2,
        "the late key landed"
    );

    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        json(&out)["resumed"]["action"]
            .as_str()
            .unwrap()
            .starts_with("deleted key"),
        "{}",
        show(&out)
    );
    setup.assert_converged(false).await;
    assert!(journal_file(&setup).is_none());
}

// ---- never delete a key the journal cannot prove is ours ------------------

#[tokio::test]
async fn forged_journal_tags_delete_nothing() {
    let setup = Setup::new().await;
    let old = &setup.old;
    let t = now();
    for forged in [
        // Anyone with iam:TagUser can write these.
        format!("v=1 p=propagated o={old} n={old}"),
        format!(
            "v=1 p=propagated o={old} a={old} n={old} r=delete t={t} x={} h=x:1:ab",
            t + 900
        ),
        "v=1 p=create-sent".to_string(),
        format!(
            "v=1 p=create-sent o= r=delete t={} x=0 h=x:1:ab",
            t + 86_400
        ),
        format!(
            "v=1 p=created o= n={old} r=delete t={} x=0 h=x:1:ab",
            t - 86_400
        ),
    ] {
        set_journal_tag(&setup.moto, &forged).await;
        let out = setup.run(&["--journal", "iam"]);
        assert_eq!(out.status.code(), Some(2), "{forged}: {}", show(&out));
        assert!(
            stderr(&out).contains("keyrot journal clear --user ci-bot"),
            "{forged}: {}",
            show(&out)
        );
        setup.moto.assert_only_key("ci-bot", old).await;
        // Kept for a person (a run that took it over wrote its own name).
        let owner_less = |tag: &str| {
            tag.split(['/', ' '])
                .filter(|f| !f.starts_with("h="))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let kept = journal_tag(&setup.moto).await.expect("kept");
        assert_eq!(owner_less(&kept), owner_less(&forged));
    }
}

#[tokio::test]
async fn a_stale_create_sent_never_deletes_a_key_made_by_hand_since() {
    let setup = Setup::new().await;
    // A run two days ago died just before its create.
    let two_days_ago = [("KEYROT_TEST_CLOCK_OFFSET", "-172800")];
    let (child, _home) = setup.start_at(
        "saved-create-sent:pause",
        &setup.moto.url,
        &[],
        &two_days_ago,
    );
    kill(child);
    // Since then, someone made a key by hand (and uses it).
    let by_hand = setup.moto.create_key("ci-bot", "Active").await;
    let keys = setup.moto.keys("ci-bot").await;

    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let error = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&by_hand) && error.contains("outside the window"),
        "{error}"
    );
    assert_eq!(setup.moto.keys("ci-bot").await, keys, "nothing deleted");
    assert_eq!(journal_file(&setup).unwrap()["phase"], "create-sent");
}

#[tokio::test]
async fn hand_edited_file_records_are_refused_as_corrupt() {
    let setup = Setup::new().await;
    let old = &setup.old;
    let t = now();
    let base = serde_json::json!({
        "version": 1, "account": ACCOUNT, "user": "ci-bot", "phase": "created",
        "keys_before": [old], "active_before": old, "new_key": "AKIAFORGEDFORGEDFORG",
        "retire": "delete", "started": t - 60, "owner": "host:1:ab", "lease_until": 0,
    });
    let edits: [(&str, Value); 5] = [
        (
            "the new key among the old",
            serde_json::json!({"new_key": old}),
        ),
        (
            "started tomorrow",
            serde_json::json!({"started": t + 86_400}),
        ),
        ("an unknown phase", serde_json::json!({"phase": "flying"})),
        (
            "a lease before its start",
            serde_json::json!({"lease_until": t - 3600}),
        ),
        ("no owner", serde_json::json!({"owner": ""})),
    ];
    for (what, edit) in edits {
        let mut record = base.clone();
        for (k, v) in edit.as_object().unwrap() {
            record[k] = v.clone();
        }
        write_journal_file(&setup, &record);
        let out = setup.run(&[]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", show(&out));
        assert!(
            stderr(&out).contains("keyrot journal clear --user ci-bot"),
            "{what}: {}",
            show(&out)
        );
        setup.moto.assert_only_key("ci-bot", old).await;
    }
}

#[tokio::test]
async fn a_symlinked_account_directory_in_the_state_dir_is_refused() {
    let setup = Setup::new().await;
    let elsewhere = setup.dir.path().join("elsewhere");
    std::fs::create_dir_all(setup.state.join("journal")).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    set_mode(&setup.state, 0o700);
    set_mode(&setup.state.join("journal"), 0o700);
    std::os::unix::fs::symlink(&elsewhere, setup.state.join(format!("journal/{ACCOUNT}"))).unwrap();
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("symlink"), "{}", show(&out));
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}

// ---- two machines, one user ------------------------------------------------

#[tokio::test]
async fn two_runs_with_one_hostname_and_pid_never_share_a_lease() {
    // Two pods of one CronJob: same hostname, both PID 1.
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    let pod = ("KEYROT_TEST_OWNER", "cron-pod:1");
    let gate = Gate::new(&setup, "a");
    let (a, _home) = setup.start_at(
        "before-handle:wait",
        &setup.moto.url,
        &iam,
        &[pod, gate.env()],
    );
    let during = setup.moto.keys("ci-bot").await;

    let other = tempfile::tempdir().unwrap();
    let args = setup.args_elsewhere(&setup.moto.url, other.path(), &iam);
    let out = keyrot(&setup.moto, &args, &[pod]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("is rotating user 'ci-bot'"),
        "{}",
        show(&out)
    );
    assert_eq!(setup.moto.keys("ci-bot").await, during, "B touched nothing");

    gate.open();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_run_renews_its_lease_while_a_step_takes_longer_than_it() {
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    let gate = Gate::new(&setup, "a");
    let lease = ("KEYROT_TEST_LEASE", "3s");
    let (a, _home) = setup.start_at(
        "before-handle:wait",
        &setup.moto.url,
        &iam,
        &[lease, gate.env()],
    );
    // The lease is renewed while the run waits: its end moves on, more
    // than one lease length past the first.
    let first: u64 = tag_field(&journal_tag(&setup.moto).await.unwrap(), "x")
        .unwrap()
        .parse()
        .unwrap();
    let start = Instant::now();
    loop {
        let tag = journal_tag(&setup.moto).await.expect("run A's tag");
        let x: u64 = tag_field(&tag, "x").unwrap().parse().unwrap();
        if x > first + 3 {
            assert_eq!(tag_field(&tag, "p").as_deref(), Some("created"), "{tag}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never renewed: {tag}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let other = tempfile::tempdir().unwrap();
    let out = keyrot(
        &setup.moto,
        &setup.args_elsewhere(&setup.moto.url, other.path(), &iam),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    gate.open();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
    assert!(tags(&setup.moto).await.is_empty());
}

#[tokio::test]
async fn a_run_that_cannot_renew_its_lease_stops_before_it_runs_out() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start(&moto.url, Faults::default());
    let spin = plugin("fixture_spin");
    let args: Vec<String> = [
        "--plugin",
        spin.to_str().unwrap(),
        "--user",
        "ci-bot",
        "--endpoint-url",
        &proxy.url,
        "--state-dir",
        state.path().to_str().unwrap(),
        "--journal",
        "iam",
        "--timeout",
        "120s",
        "--output",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let go = state.path().join("go");
    let env = [
        ("KEYROT_TEST_LEASE", "3s"),
        ("KEYROT_TEST_HOOK", "before-handle:wait"),
        ("KEYROT_TEST_RESUME", go.to_str().unwrap()),
    ];
    let (a, _home) = spawn(&moto, &args, &env);
    // Once the run is about to call the handler (which spins until its
    // two-minute limit), IAM stops taking its tag writes.
    let start = Instant::now();
    while !proxy
        .seen()
        .calls
        .iter()
        .any(|(a, _)| a == "GetCallerIdentity")
        || journal_tag(&moto)
            .await
            .is_none_or(|t| tag_field(&t, "p").as_deref() != Some("created"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run A never got there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.set(|f| f.deny = vec![("TagUser".into(), u32::MAX)]);
    std::fs::write(&go, "").unwrap();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("no longer holds user 'ci-bot'"), "{error}");
    assert_eq!(report["new_key"]["state"], "deleted", "{report}");
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_claim_delayed_on_the_wire_never_makes_two_winners() {
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            hold_tag_user: 1,
            ..Faults::default()
        },
    );
    // Run A reads no tag and claims, but its claim is held on the wire.
    let other = tempfile::tempdir().unwrap();
    let (a, _home_a) = spawn(
        &setup.moto,
        &setup.args_elsewhere(&proxy.url, other.path(), &iam),
        &[],
    );
    proxy.wait_held(1);
    // Meanwhile run B claims, wins, creates its key, and is about to hand
    // it over.
    let gate = Gate::new(&setup, "b");
    let (b, _home_b) = setup.start_at("before-handle:wait", &setup.moto.url, &iam, &[gate.env()]);
    let b_key = setup
        .moto
        .keys("ci-bot")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| *k != setup.old)
        .expect("B's new key");
    // A's claim lands now, long after B's check: A must see B's record and
    // back off, and B's record must be intact.
    proxy.release_held();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(1), "A backs off: {}", show(&out));
    let tag = journal_tag(&setup.moto)
        .await
        .expect("B's record is intact");
    assert_eq!(tag_field(&tag, "p").as_deref(), Some("created"), "{tag}");
    assert_eq!(tag_field(&tag, "n"), Some(b_key), "{tag}");
    let claims: Vec<_> = tags(&setup.moto)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("keyrot-claim-"))
        .collect();
    assert!(claims.is_empty(), "A removed its claim: {claims:?}");

    gate.open();
    let out = finish(b);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_new_key_deleted_by_someone_else_fails_the_run_and_retires_nothing() {
    let setup = Setup::new().await;
    let gate = Gate::new(&setup, "a");
    let (a, _home) = setup.start_at("after-handle:wait", &setup.moto.url, &[], &[gate.env()]);
    let (stored, _) = setup.held().expect("the handler stored the new key");
    setup
        .moto
        .client
        .delete_access_key()
        .user_name("ci-bot")
        .access_key_id(&stored)
        .send()
        .await
        .unwrap();
    gate.open();
    let out = finish(a);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let report = json(&out);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("no longer exists"), "{error}");
    assert_eq!(report["new_key"]["state"], "gone");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;

    // The next run gives the destination a working key.
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn journal_clear_refuses_while_a_run_holds_the_user() {
    let setup = Setup::new().await;
    let clear = |extra: &[&str], journal: &str| {
        let mut args = vec![
            "journal",
            "clear",
            "--user",
            "ci-bot",
            "--endpoint-url",
            &setup.moto.url,
            "--state-dir",
            setup.state.to_str().unwrap(),
            "--journal",
            journal,
        ];
        args.extend(extra);
        setup.moto.keyrot(&args)
    };

    // The file journal: the user's lock.
    let gate = Gate::new(&setup, "a");
    let (a, _home) = setup.start_at("before-handle:wait", &setup.moto.url, &[], &[gate.env()]);
    let out = clear(&[], "file");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains("--force"), "{}", show(&out));
    assert!(journal_file(&setup).is_some(), "kept");
    gate.open();
    assert_eq!(finish(a).status.code(), Some(0));
    setup.assert_converged(false).await;

    // The IAM journal: a live lease.
    let gate = Gate::new(&setup, "b");
    let iam = ["--journal", "iam"];
    let (b, _home) = setup.start_at("before-handle:wait", &setup.moto.url, &iam, &[gate.env()]);
    let out = clear(&[], "iam");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("holds user 'ci-bot'"),
        "{}",
        show(&out)
    );
    assert!(journal_tag(&setup.moto).await.is_some(), "kept");
    gate.open();
    assert_eq!(finish(b).status.code(), Some(0));
    setup.assert_converged(false).await;

    // A record nobody holds any more goes on the operator's word; one that
    // someone still holds only with --force.
    let (c, _home) = setup.start_paused("saved-created", &iam);
    kill(c);
    let out = clear(&[], "iam");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the lease is still live: {}",
        show(&out)
    );
    let out = clear(&["--force"], "iam");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(tags(&setup.moto).await.is_empty());
}

// ---- smaller -----------------------------------------------------------------

#[tokio::test]
async fn a_dry_run_with_a_pending_journal_says_it_would_finish_it() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-created", &[]);
    kill(child);
    let pending = journal_file(&setup).unwrap();
    let new = pending["new_key"].as_str().unwrap().to_string();
    assert_eq!(
        setup.moto.keys("ci-bot").await.len(),
        2,
        "two active keys now"
    );

    let proxy = FaultProxy::start(&setup.moto.url, Faults::default());
    let out = setup.run_via(&proxy.url, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let plan: Vec<&str> = report["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        plan[0].starts_with("finish the interrupted run"),
        "{plan:?}"
    );
    assert!(
        plan.iter()
            .any(|s| s.contains(&format!("delete key {new}"))),
        "{plan:?}"
    );
    assert!(plan.contains(&"create a new access key"), "{plan:?}");
    assert!(
        plan.iter()
            .any(|s| s.contains(&format!("delete the old key {}", setup.old))),
        "{plan:?}"
    );
    assert!(!show(&out).contains("two active"), "{}", show(&out));
    let writes: Vec<_> = proxy
        .seen()
        .calls
        .into_iter()
        .filter(|(action, _)| !action.starts_with("List") && !action.starts_with("Get"))
        .collect();
    assert!(writes.is_empty(), "write calls: {writes:?}");
    assert_eq!(journal_file(&setup), Some(pending));

    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}
