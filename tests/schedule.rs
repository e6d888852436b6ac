//! Rotation left on a schedule, through the real binary against moto:
//! verifying the new key, surviving `kill -9` at every step, one run per
//! user, grace mode, `--older-than`, status and dry runs, and the faults
//! moto cannot make (a lost create answer, throttling, STS rejecting a new
//! key) from the fault proxy in front of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::proxy::{FaultProxy, Faults};
use crate::util::{Moto, plugin, show};

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// A destination the test can read (the `store` fixture's directory) and a
/// state directory shared by every run of one test.
pub(crate) struct Setup {
    /// The fixture that stores the key (`fixture_store` unless
    /// [`Setup::with_plugin`] says otherwise).
    pub plugin: &'static str,
    pub moto: Moto,
    pub old: String,
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
    pub state: PathBuf,
}

impl Setup {
    pub async fn new() -> Setup {
        Self::with_plugin("fixture_store").await
    }

    /// [`Setup::new`] with another fixture of the same file format, e.g.
    /// `fixture_store_v2` (contract 0.2.0).
    pub async fn with_plugin(plugin: &'static str) -> Setup {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let state = dir.path().join("state");
        std::fs::create_dir(&dest).unwrap();
        Setup {
            plugin,
            moto,
            old,
            dir,
            dest,
            state,
        }
    }

    /// The `store` rotation's flags, against `endpoint`, plus `extra`.
    pub fn args(&self, endpoint: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--plugin",
            plugin(self.plugin).to_str().unwrap(),
            "--user",
            "ci-bot",
            "--endpoint-url",
            endpoint,
            "--allow-dir",
            &format!("{}:/dest", self.dest.display()),
            "--state-dir",
            self.state.to_str().unwrap(),
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn run(&self, extra: &[&str]) -> Output {
        self.run_via(&self.moto.url, extra, &[])
    }

    pub fn run_via(&self, endpoint: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let args = self.args(endpoint, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.moto.keyrot_with_env(&args, env);
        let printed = show(&out);
        for secret in self.moto.all_secrets() {
            assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
        }
        out
    }

    /// Starts a run that pauses at `point`; returns once it is there.
    pub fn start_paused(&self, point: &str, extra: &[&str]) -> (Child, tempfile::TempDir) {
        self.start_at(&format!("{point}:pause"), &self.moto.url, extra, &[])
    }

    /// Starts a run with the test hook `hook` (`point:pause` or
    /// `point:wait`) against `endpoint`; returns once it is at the point.
    /// Its stdout is kept for [`finish`].
    pub fn start_at(
        &self,
        hook: &str,
        endpoint: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Child, tempfile::TempDir) {
        let args = self.args(endpoint, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_at(&self.moto, &args, hook, env)
    }

    /// The flags of [`Setup::args`], but with the state directory `state`:
    /// a run on another machine.
    pub fn args_elsewhere(&self, endpoint: &str, state: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = self.args(endpoint, extra);
        let at = args.iter().position(|a| a == "--state-dir").unwrap();
        args[at + 1] = state.to_str().unwrap().to_string();
        args
    }

    /// The key id and secret the destination holds, if any.
    pub fn held(&self) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.dest.join("key")).ok()?;
        let mut lines = text.lines();
        Some((lines.next()?.to_string(), lines.next()?.to_string()))
    }

    /// The promise after any run, however it ended: exactly one active key,
    /// the one the destination holds (with its real secret), and no other
    /// key but, in grace mode, inactive old ones.
    pub async fn assert_converged(&self, grace: bool) {
        let keys = self.moto.keys("ci-bot").await;
        let active: Vec<&String> = keys
            .iter()
            .filter(|(_, s)| s == "Active")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(active.len(), 1, "exactly one active key: {keys:?}");
        let (held, secret) = self.held().expect("the destination holds a key");
        assert_eq!(active[0], &held, "the active key is the one held: {keys:?}");
        let issued = self.moto.keys_with_secrets();
        assert!(
            issued.contains(&(held.clone(), secret)),
            "the destination holds the real secret of {held}"
        );
        for (id, status) in &keys {
            if id != &held {
                assert!(grace && status == "Inactive", "key nobody holds: {keys:?}");
            }
        }
    }
}

/// Starts keyrot with `args` against `moto` and the test hook `hook`
/// (`point:pause` or `point:wait`); returns once it is at the point. Its
/// stdout is kept for [`finish`].
pub(crate) fn start_at(
    moto: &Moto,
    args: &[&str],
    hook: &str,
    env: &[(&str, &str)],
) -> (Child, tempfile::TempDir) {
    let point = hook.split(':').next().unwrap();
    let mut env = env.to_vec();
    env.push(("KEYROT_TEST_HOOK", hook));
    let (mut cmd, home) = moto.command(args, &env);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(&format!("paused at {point}")) => break,
            Some(Ok(line)) => seen.push(line),
            _ => panic!("keyrot never reached {point}: {}", seen.join("\n")),
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, home)
}

/// Waits for a run started with [`Setup::start_at`]; its stdout (the
/// report) is in the output, its stderr was drained.
pub(crate) fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

pub(crate) fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Kills the real binary at `point`, reruns the same command, and checks
/// the rerun converges with exit 0.
async fn kill_at_then_rerun(point: &str, extra: &[&str]) {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused(point, extra);
    kill(child);
    let out = setup.run(extra);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let grace = extra.contains(&"deactivate");
    setup.assert_converged(grace).await;
    let report = json(&out);
    assert_eq!(report["outcome"], "rotated", "{report}");
    assert!(
        !setup
            .state
            .join("journal")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|account| { account.path().read_dir().unwrap().next().is_some() }),
        "the journal is removed once the run ends"
    );
    // The old key is retired: gone, or inactive in grace mode.
    let keys = setup.moto.keys("ci-bot").await;
    assert!(
        !keys.contains(&(setup.old.clone(), "Active".into())),
        "{keys:?}"
    );
}

#[tokio::test]
async fn kill_during_preflight_then_rerun_converges() {
    kill_at_then_rerun("before-preflight", &[]).await;
}

#[tokio::test]
async fn kill_just_after_the_create_answer_then_rerun_converges() {
    // The journal says only "create sent": the rerun finds the key the
    // killed run made by listing, deletes it, and rotates afresh.
    kill_at_then_rerun("after-create-key", &[]).await;
}

#[tokio::test]
async fn kill_after_the_new_key_is_journaled_then_rerun_converges() {
    kill_at_then_rerun("saved-created", &[]).await;
}

#[tokio::test]
async fn kill_during_handle_then_rerun_converges() {
    kill_at_then_rerun("before-handle", &[]).await;
}

#[tokio::test]
async fn kill_after_handle_before_it_is_journaled_then_rerun_converges() {
    // The destination holds the new key, but the journal does not know:
    // the rerun deletes it and rotates afresh, which replaces it.
    kill_at_then_rerun("after-handle", &[]).await;
}

#[tokio::test]
async fn kill_during_retirement_then_rerun_converges() {
    kill_at_then_rerun("saved-propagated", &[]).await;
}

#[tokio::test]
async fn kill_during_retirement_in_grace_mode_then_rerun_converges() {
    kill_at_then_rerun("saved-propagated", &["--retire", "deactivate"]).await;
}

#[tokio::test]
async fn kill_after_deactivating_the_old_key_then_rerun_converges() {
    kill_at_then_rerun("after-deactivate-old-key", &["--retire", "deactivate"]).await;
}

#[tokio::test]
async fn a_rerun_after_a_kill_says_it_resumed() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-propagated", &[]);
    kill(child);
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["resumed"]["phase"], "propagated", "{report}");
    let action = report["resumed"]["action"].as_str().unwrap();
    assert!(action.contains("retired the old keys"), "{action}");
    assert_eq!(report["old_keys"][0]["access_key_id"], setup.old.as_str());
    assert_eq!(report["old_keys"][0]["action"], "deleted");
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn the_iam_journal_lets_another_machine_finish_a_killed_run() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-created", &["--journal", "iam"]);
    kill(child);
    // "Another machine": a fresh state directory, so only the tag is left.
    let other = tempfile::tempdir().unwrap();
    let mut args = setup.args(&setup.moto.url, &["--journal", "iam"]);
    let state = args.iter().position(|a| a == "--state-dir").unwrap();
    args[state + 1] = other.path().to_str().unwrap().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The killed run's lease is still live: a rerun elsewhere backs off.
    let out = setup.moto.keyrot(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("is rotating user 'ci-bot'"),
        "{}",
        show(&out)
    );
    // Once the lease has expired, a rerun finishes it. (An hour later, by
    // the rerun's clock: waiting out the real lease would take minutes.)
    let out = setup
        .moto
        .keyrot_with_env(&args, &[("KEYROT_TEST_CLOCK_OFFSET", "3600")]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["resumed"]["phase"], "created");
    setup.assert_converged(false).await;
    let tags = setup
        .moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags().is_empty(),
        "the tag is removed: {:?}",
        tags.tags()
    );
}

#[tokio::test]
async fn a_second_run_on_the_same_user_is_refused_while_one_runs() {
    let setup = Setup::new().await;
    let (first, _home) = setup.start_paused("before-handle", &[]);
    let keys_during = setup.moto.keys("ci-bot").await;
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("another keyrot run (pid {})", first.id()))
            && err.contains("is rotating user 'ci-bot'"),
        "{err}"
    );
    assert_eq!(
        setup.moto.keys("ci-bot").await,
        keys_during,
        "nothing changed"
    );
    kill(first);
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn wait_lock_queues_behind_a_run_that_finishes() {
    let setup = Setup::new().await;
    let (first, _home) = setup.start_paused("before-preflight", &[]);
    let pid = first.id();
    // Kill the first run a moment after the second starts waiting.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        // SAFETY: signalling a child of this test.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    });
    let out = setup.run(&["--wait-lock", "60s"]);
    killer.join().unwrap();
    drop(first);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn two_runs_with_separate_state_dirs_never_leave_a_bad_state() {
    // No shared lock: IAM's own two-key limit and the check after the
    // create must keep them apart. Whatever the interleaving, each run
    // rotates or fails cleanly, and the user ends in a good state.
    let setup = Setup::new().await;
    for round in 0..3 {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let children: Vec<(Child, tempfile::TempDir)> = dirs
            .iter()
            .map(|dir| {
                let mut args = setup.args(&setup.moto.url, &[]);
                let state = args.iter().position(|a| a == "--state-dir").unwrap();
                args[state + 1] = dir.path().to_str().unwrap().to_string();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let (mut cmd, home) = setup.moto.command(&args, &[]);
                let child = cmd
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, home)
            })
            .collect();
        let mut codes = Vec::new();
        for (child, _home) in children {
            let out = child.wait_with_output().unwrap();
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "round {round}: neither rotated nor failed cleanly: {}",
                show(&out)
            );
            codes.push(code);
        }
        assert!(
            codes.contains(&Some(0)),
            "round {round}: one run rotates: {codes:?}"
        );
        setup.assert_converged(false).await;
    }
}

#[tokio::test]
async fn a_lost_create_answer_leaves_no_stray_key() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            drop_create_answers: 1,
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(proxy.seen().dropped, 1);
    let err = stderr(&out);
    assert!(
        err.contains("created") && err.contains("anyway, which was deleted"),
        "{err}"
    );
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
    // The next run is not refused for two active keys: it rotates.
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_third_of_iam_calls_throttled_never_fails_a_run() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            throttle_every: Some(3),
            ..Faults::default()
        },
    );
    for _ in 0..3 {
        let out = setup.run_via(&proxy.url, &[], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        setup.assert_converged(false).await;
    }
    assert!(proxy.seen().throttled >= 5, "{:?}", proxy.seen());
}

#[tokio::test]
async fn the_new_key_is_verified_with_sts_before_the_handler_gets_it() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            reject_sts: 3,
            sts_accepts: vec!["test".into()], // the operator's key
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let verify = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify-key")
        .unwrap_or_else(|| panic!("a verify-key step: {report}"));
    assert_eq!(verify["attempts"], 4, "{verify}");
    assert_eq!(verify["ok"], true);
    // Signed with the new key, before handle.
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    let calls = proxy.seen().calls;
    assert!(
        calls
            .iter()
            .any(|(action, key)| action == "GetCallerIdentity" && key == new),
        "{calls:?}"
    );
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let at = |name: &str| steps.iter().position(|s| *s == name).unwrap();
    assert!(at("verify-key") < at("handle"), "{steps:?}");
    assert_eq!(report["account"], "123456789012");
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_key_that_never_works_is_deleted_and_the_old_one_kept() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            reject_sts: u32::MAX,
            sts_accepts: vec!["test".into()],
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &["--verify-timeout", "3s"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("the new key never became usable"),
        "{}",
        show(&out)
    );
    assert_eq!(json(&out)["new_key"]["state"], "deleted");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
    assert!(setup.held().is_none(), "the handler never got the key");
}

#[tokio::test]
async fn no_verify_skips_the_check_and_says_so() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(
        &setup.moto.url,
        Faults {
            reject_sts: u32::MAX,
            sts_accepts: vec!["test".into()],
            ..Faults::default()
        },
    );
    let out = setup.run_via(&proxy.url, &["--no-verify"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let verify = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify-key")
        .unwrap()
        .clone();
    assert!(
        verify["note"].as_str().unwrap().contains("--no-verify"),
        "{verify}"
    );
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn grace_mode_deactivates_and_the_next_run_makes_room() {
    let setup = Setup::new().await;
    let out = setup.run(&["--retire", "deactivate"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["old_keys"][0]["action"], "kept-inactive");
    let keys = setup.moto.keys("ci-bot").await;
    assert!(
        keys.contains(&(setup.old.clone(), "Inactive".into())),
        "{keys:?}"
    );
    setup.assert_converged(true).await;
    // The next run needs the inactive key's room: it deletes it, and says so.
    let out = setup.run(&["--retire", "deactivate"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let first = report["old_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["access_key_id"] == setup.old.as_str())
        .unwrap()
        .clone();
    assert_eq!(first["action"], "deleted-to-make-room", "{report}");
    setup.assert_converged(true).await;
}

#[tokio::test]
async fn older_than_skips_a_young_key_and_rotates_an_old_one() {
    let setup = Setup::new().await;
    let out = setup.run(&["--older-than", "90d"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "skipped");
    assert_eq!(report["skipped"]["threshold"], "90d");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
    assert_eq!(setup.moto.all_secrets().len(), 1, "no key was created");

    std::thread::sleep(Duration::from_secs(2));
    let out = setup.run(&["--older-than", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["outcome"], "rotated");
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn dry_run_sends_no_write_call() {
    let setup = Setup::new().await;
    let proxy = FaultProxy::start(&setup.moto.url, Faults::default());
    let out = setup.run_via(&proxy.url, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "would-rotate");
    assert_eq!(report["dry_run"], true);
    let plan = report["plan"].to_string();
    assert!(plan.contains("create a new access key"), "{plan}");
    assert!(
        plan.contains(&format!("delete the old key {}", setup.old)),
        "{plan}"
    );
    let writes: Vec<_> = proxy
        .seen()
        .calls
        .into_iter()
        .filter(|(action, _)| !action.starts_with("List") && !action.starts_with("Get"))
        .collect();
    assert!(writes.is_empty(), "write calls: {writes:?}");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
    assert!(setup.held().is_none());

    // Two active keys: the dry run says it would refuse, with the usual code.
    setup.moto.create_key("ci-bot", "Active").await;
    let out = setup.run(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}

#[tokio::test]
async fn status_shows_keys_last_use_journal_and_what_a_rotation_would_do() {
    let setup = Setup::new().await;
    let inactive = setup.moto.create_key("ci-bot", "Inactive").await;
    let state = setup.state.to_str().unwrap();
    let out = setup.moto.keyrot(&[
        "status",
        "--user",
        "ci-bot",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        state,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&setup.old) && text.contains(&inactive),
        "{text}"
    );
    assert!(text.contains("account 123456789012"), "{text}");
    assert!(
        text.contains(&format!(
            "next: rotate, making room: delete inactive {inactive}"
        )),
        "{text}"
    );

    // A pending journal is shown, and JSON is one document.
    let (child, _home) = setup.start_paused("saved-created", &[]);
    kill(child);
    let out = setup.moto.keyrot(&[
        "status",
        "--user",
        "ci-bot",
        "--user",
        "nobody",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        state,
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown user: {}",
        show(&out)
    );
    let doc = json(&out);
    let user = &doc["users"][0];
    assert_eq!(user["journal"]["phase"], "created", "{doc}");
    assert!(
        user["next"].as_str().unwrap().starts_with("resume"),
        "{doc}"
    );
    assert!(user["keys"][0]["last_used"].is_object(), "{doc}");
    assert!(
        doc["users"][1]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

#[tokio::test]
async fn a_corrupt_journal_stops_with_exit_2_until_cleared() {
    let setup = Setup::new().await;
    let journal = setup.state.join("journal/123456789012");
    std::fs::create_dir_all(&journal).unwrap();
    std::fs::write(journal.join("ci-bot.json"), "{ not json").unwrap();
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("keyrot journal clear --user ci-bot"),
        "{}",
        show(&out)
    );
    setup.moto.assert_only_key("ci-bot", &setup.old).await;

    let out = setup.moto.keyrot(&[
        "journal",
        "clear",
        "--user",
        "ci-bot",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        setup.state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_state_dir_that_is_not_a_directory_is_bad_input() {
    let setup = Setup::new().await;
    std::fs::write(&setup.state, "a file").unwrap();
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", show(&out));
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
}

#[tokio::test]
async fn iam_that_no_longer_matches_the_journal_stops_with_exit_2() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-propagated", &[]);
    kill(child);
    // Someone deletes the propagated key by hand: retiring the old key now
    // would leave the user with none.
    let report_key = setup.held().unwrap().0;
    setup
        .moto
        .client
        .delete_access_key()
        .user_name("ci-bot")
        .access_key_id(&report_key)
        .send()
        .await
        .unwrap();
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("no longer active"), "{err}");
    assert!(err.contains("keyrot journal clear --user ci-bot"), "{err}");
    setup.moto.assert_only_key("ci-bot", &setup.old).await;
}

#[tokio::test]
async fn durations_take_every_unit() {
    let setup = Setup::new().await;
    for ok in ["1d", "36h", "90m", "5400s", "90000ms"] {
        let out = setup.run(&["--dry-run", "--older-than", ok]);
        assert_eq!(out.status.code(), Some(0), "{ok}: {}", show(&out));
    }
    let out = setup.run(&["--dry-run", "--older-than", "3w"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("ms, s, m, h or d"), "{}", show(&out));
}

/// The subcommand form and the bare form do the same thing.
#[tokio::test]
async fn rotate_subcommand_works_like_the_bare_form() {
    let setup = Setup::new().await;
    let args = setup.args(&setup.moto.url, &[]);
    let mut with_subcommand = vec!["rotate"];
    with_subcommand.extend(args.iter().map(String::as_str));
    let out = setup.moto.keyrot(&with_subcommand);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
}

/// Credentials mean what they say: an explicit profile wins over keys in
/// the environment, and a missing profile is an error, not a fall-back.
#[tokio::test]
async fn an_explicit_profile_beats_environment_keys() {
    let (moto, old) = Moto::start_denying("iam:GetUser").await;
    let (operator_id, operator_secret) = moto.credentials();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    // A credential_process profile, as SSO helpers and vaults use.
    std::fs::write(
        &config,
        format!(
            "[profile sec]\ncredential_process = printf '{{\"Version\": 1, \"AccessKeyId\": \
             \"{operator_id}\", \"SecretAccessKey\": \"{operator_secret}\"}}'\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let hello = plugin("hello");
    let args = [
        "--plugin",
        hello.to_str().unwrap(),
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--profile",
        "sec",
        "--output",
        "json",
    ];
    // The environment's keys are wrong: only the profile's can work.
    let env = [
        ("AWS_CONFIG_FILE", config),
        ("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let out = moto.keyrot_with_env(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert!(
        report["caller_arn"]
            .as_str()
            .unwrap()
            .ends_with(":user/operator"),
        "{report}"
    );
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);

    let mut missing = args.to_vec();
    let at = missing.iter().position(|a| *a == "sec").unwrap();
    missing[at] = "nope";
    let out = moto.keyrot_with_env(&missing, &env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("profile 'nope' not found in"),
        "{}",
        show(&out)
    );
}
