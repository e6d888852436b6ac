//! Drain mode through the real binary against moto, whose
//! `GetAccessKeyLastUsed` records every request signed with a key: the
//! consumer here is real, a client signing calls with the old key. Time
//! moves by keyrot's test clock (days in a second) and by the drain flags,
//! never by sleeping.

use serde_json::Value;

use crate::schedule::{Setup, json, kill, stderr};
use crate::util::show;

const DAY: u64 = 24 * 3600;

/// `KEYROT_TEST_CLOCK_OFFSET` for `days` from now.
fn later(seconds: u64) -> String {
    seconds.to_string()
}

impl Setup {
    /// One call signed with the old key, as a consumer that still uses it
    /// makes: IAM records it as the key's last use.
    async fn use_old_key(&self) {
        let (_, secret) = self
            .moto
            .keys_with_secrets()
            .into_iter()
            .find(|(id, _)| *id == self.old)
            .expect("moto issued the old key");
        let consumer = self.moto.client_for(&self.old, &secret);
        consumer
            .list_users()
            .send()
            .await
            .expect("the old key works");
    }

    /// A drain-mode run, `offset` seconds later by keyrot's clock.
    fn drain_run(&self, offset: u64, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["--retire", "drain"];
        args.extend(extra);
        let offset = later(offset);
        self.run_via(
            &self.moto.url,
            &args,
            &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
        )
    }

    fn journal_phase(&self) -> Option<String> {
        let path = self.state.join("journal/123456789012/ci-bot.json");
        let text = std::fs::read_to_string(path).ok()?;
        let record: Value = serde_json::from_str(&text).unwrap();
        Some(record["phase"].as_str().unwrap().to_string())
    }

    async fn status_of(&self, key: &str) -> Option<String> {
        self.moto
            .keys("ci-bot")
            .await
            .into_iter()
            .find(|(id, _)| id == key)
            .map(|(_, status)| status)
    }
}

/// The handover run: the new key is stored, the old one stays active.
async fn hand_over(setup: &Setup, extra: &[&str]) -> String {
    let out = setup.drain_run(0, extra);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "draining", "{report}");
    assert!(
        report["drain"]["note"]
            .as_str()
            .unwrap()
            .contains("draining since"),
        "{report}"
    );
    let new = report["new_key"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        setup.held().unwrap().0,
        new,
        "the destination holds the new key"
    );
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));
    new
}

#[tokio::test]
async fn an_old_key_is_kept_while_used_then_deactivated_then_deleted() {
    let setup = Setup::new().await;
    setup.use_old_key().await;
    let new = hand_over(&setup, &[]).await;
    assert_eq!(setup.journal_phase().as_deref(), Some("draining"));

    // The next night: the consumer still used it a moment ago.
    setup.use_old_key().await;
    let out = setup.drain_run(0, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["drain"]["step"], "in-use", "{report}");
    assert_eq!(report["drain"]["last_used"]["service"], "iam", "{report}");
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));
    assert_eq!(setup.moto.keys("ci-bot").await.len(), 2, "no new rotation");

    // The consumer moved to the new key; two days on, the old one is quiet.
    let out = setup.drain_run(2 * DAY, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["drain"]["step"], "deactivate", "{report}");
    let note = report["drain"]["note"].as_str().unwrap();
    assert!(note.contains("keyrot drain undo --user ci-bot"), "{note}");
    assert_eq!(
        setup.status_of(&setup.old).await.as_deref(),
        Some("Inactive")
    );

    // Within the grace it waits; after it, the old key goes.
    let out = setup.drain_run(3 * DAY, &[]);
    assert_eq!(json(&out)["drain"]["step"], "grace", "{}", show(&out));
    let out = setup.drain_run(6 * DAY, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["outcome"], "rotated", "{}", show(&out));
    assert_eq!(
        setup.moto.keys("ci-bot").await,
        [(new, "Active".to_string())]
    );
    assert_eq!(setup.journal_phase(), None, "the drain's record is gone");
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn an_old_key_used_past_the_timeout_needs_a_person_and_nothing_is_deleted() {
    let setup = Setup::new().await;
    hand_over(&setup, &[]).await;
    let windows = ["--drain-quiet", "1h", "--drain-timeout", "10m"];
    // Half an hour later it is still used (within the hour's quiet window).
    setup.use_old_key().await;
    let out = setup.drain_run(1800, &windows);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("still in use") && err.contains("by iam in us-east-1"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));
    assert_eq!(setup.journal_phase().as_deref(), Some("draining"));

    // --force retires it anyway.
    let forced = [&windows[..], &["--force"]].concat();
    let out = setup.drain_run(1800, &forced);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(setup.status_of(&setup.old).await, None, "deleted");
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn a_missed_consumer_is_put_back_with_drain_undo() {
    let setup = Setup::new().await;
    hand_over(&setup, &[]).await;
    let out = setup.drain_run(2 * DAY, &[]);
    assert_eq!(json(&out)["drain"]["step"], "deactivate", "{}", show(&out));
    assert_eq!(
        setup.status_of(&setup.old).await.as_deref(),
        Some("Inactive")
    );

    // Something broke: the operator puts the old key back.
    let state = setup.state.to_str().unwrap();
    let offset = later(2 * DAY);
    let out = setup.moto.keyrot_with_env(
        &[
            "drain",
            "undo",
            "--user",
            "ci-bot",
            "--endpoint-url",
            &setup.moto.url,
            "--state-dir",
            state,
        ],
        &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("active again"),
        "{}",
        show(&out)
    );
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));

    // The missed consumer works again; the drain starts over.
    setup.use_old_key().await;
    let out = setup.drain_run(2 * DAY + 3600, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let step = json(&out)["drain"]["step"].clone();
    assert!(step == "wait" || step == "in-use", "{}", show(&out));
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));

    // Undo with nothing deactivated is refused.
    let out = setup.moto.keyrot(&[
        "drain",
        "undo",
        "--user",
        "ci-bot",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        state,
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
}

#[tokio::test]
async fn a_run_while_one_drains_starts_no_new_rotation_and_says_why() {
    let setup = Setup::new().await;
    let new = hand_over(&setup, &[]).await;
    // Any run: drain mode or not, it moves the drain on and creates nothing.
    setup.use_old_key().await;
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "draining", "{report}");
    assert_eq!(report["new_key"]["access_key_id"], new.as_str());
    assert_eq!(setup.moto.all_secrets().len(), 2, "no third key was made");

    // A dry run and status say what the next run does.
    let out = setup.drain_run(2 * DAY, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let plan = json(&out)["plan"].to_string();
    assert!(
        plan.contains("no longer used") && plan.contains("no new rotation"),
        "{plan}"
    );
    assert_eq!(
        setup.status_of(&setup.old).await.as_deref(),
        Some("Active"),
        "dry"
    );
    let out = setup.moto.keyrot(&[
        "status",
        "--user",
        "ci-bot",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        setup.state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("next: drain (since") && text.contains("still in use"),
        "{text}"
    );
}

/// Kills the real binary at `point` of a drain run `offset` later, reruns
/// it, and checks the drain goes on as if nothing happened.
async fn kill_during_drain(point: &str, offset: u64) -> Setup {
    let setup = Setup::new().await;
    hand_over(&setup, &[]).await;
    let env_offset = later(offset);
    let (child, _home) = setup.start_at(
        &format!("{point}:pause"),
        &setup.moto.url,
        &["--retire", "drain"],
        &[("KEYROT_TEST_CLOCK_OFFSET", env_offset.as_str())],
    );
    kill(child);
    let out = setup.drain_run(offset, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup
}

#[tokio::test]
async fn kill_at_the_handover_then_rerun_keeps_draining() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_at(
        "saved-draining:pause",
        &setup.moto.url,
        &["--retire", "drain"],
        &[],
    );
    kill(child);
    let out = setup.drain_run(0, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["outcome"], "draining", "{}", show(&out));
    assert_eq!(setup.status_of(&setup.old).await.as_deref(), Some("Active"));
    assert_eq!(setup.moto.all_secrets().len(), 2, "no second new key");
}

#[tokio::test]
async fn kill_while_deactivating_then_rerun_deactivates_and_records_it() {
    let setup = kill_during_drain("after-deactivate-old-key", 2 * DAY).await;
    assert_eq!(
        setup.status_of(&setup.old).await.as_deref(),
        Some("Inactive")
    );
    let out = setup.drain_run(6 * DAY, &[]);
    assert_eq!(json(&out)["outcome"], "rotated", "{}", show(&out));
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn kill_while_deleting_then_rerun_ends_the_drain() {
    let setup = Setup::new().await;
    hand_over(&setup, &[]).await;
    setup.drain_run(2 * DAY, &[]);
    let offset = later(6 * DAY);
    let (child, _home) = setup.start_at(
        "after-delete-old-key:pause",
        &setup.moto.url,
        &["--retire", "drain"],
        &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
    );
    kill(child);
    let out = setup.drain_run(6 * DAY, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["outcome"], "rotated", "{}", show(&out));
    assert_eq!(setup.journal_phase(), None);
    setup.assert_converged(false).await;
}

#[tokio::test]
async fn the_iam_journal_carries_a_drain_across_machines() {
    let setup = Setup::new().await;
    let iam = ["--journal", "iam"];
    hand_over(&setup, &iam).await;
    // Each later run on another machine (a fresh state directory).
    for (offset, step) in [(2 * DAY, "deactivate"), (6 * DAY, "delete")] {
        let other = tempfile::tempdir().unwrap();
        let mut args = setup.args_elsewhere(&setup.moto.url, other.path(), &iam);
        args.extend(["--retire".into(), "drain".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let offset = later(offset);
        let out = setup
            .moto
            .keyrot_with_env(&args, &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert_eq!(json(&out)["drain"]["step"], step, "{}", show(&out));
    }
    setup.assert_converged(false).await;
    let tags = setup
        .moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty(), "{:?}", tags.tags());
}
