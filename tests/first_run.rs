//! What a new user hit on a first run, each fixed and kept fixed: flags
//! that were silently ignored, messages that named the wrong thing or
//! nothing, the same failure with two exit codes, an error printed twice,
//! `journal` commands that needed AWS for a local file, a user rotating
//! its own key with the IAM journal, and a lock wait Ctrl-C could not stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fleet::on_a_terminal;
use crate::schedule::{Setup, kill, stderr};
use crate::util::{Moto, plugin, show};

fn hello() -> String {
    plugin("hello").to_str().unwrap().to_string()
}

/// A loopback port nobody listens on: 1 (tcpmux) is never served here, and
/// unlike a port freed by the test, no other test's server can take it.
fn closed_port() -> String {
    "http://127.0.0.1:1".to_string()
}

#[tokio::test]
async fn a_path_prefix_without_all_users_is_refused_not_ignored() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let hello = hello();
    for args in [
        vec![
            "--plugin",
            &hello,
            "--user",
            "ci-bot",
            "--path-prefix",
            "/ci/",
        ],
        vec!["status", "--user", "ci-bot", "--path-prefix", "/ci/"],
    ] {
        let mut args = args.clone();
        args.extend(["--endpoint-url", &moto.url]);
        let out = moto.keyrot(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(stderr(&out).contains("needs --all-users"), "{}", show(&out));
    }
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_plugin_and_no_user_names_the_flags_that_name_users() {
    let moto = Moto::start();
    let out = moto.keyrot(&["--plugin", &hello(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("no user given: pass --user NAME"), "{err}");
    assert!(!err.contains("job file"), "there is no job file: {err}");
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_named_and_is_exit_1_everywhere() {
    let moto = Moto::start();
    let closed = closed_port();
    let hello = hello();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    for args in [
        vec!["--plugin", &hello, "--user", "ci-bot"],
        vec!["status", "--user", "ci-bot"],
    ] {
        let mut args = args.clone();
        args.extend(["--endpoint-url", &closed, "--state-dir", state]);
        let out = moto.keyrot(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("(sts:GetCallerIdentity at {closed})")),
            "{args:?}: {err}"
        );
        let said = err.lines().filter(|l| l.starts_with("error:")).count();
        assert_eq!(said, 1, "said once: {err}");
    }
}

#[tokio::test]
async fn no_credentials_at_all_says_how_to_give_some() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["status", "--user", "ci-bot", "--endpoint-url", &moto.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no usable AWS credentials") && err.contains("--profile"),
        "{err}"
    );
}

#[tokio::test]
async fn a_single_users_error_is_shown_once_on_a_terminal() {
    let (moto, _old) = Moto::start_with_user("ci-bot").await;
    moto.create_key("ci-bot", "Active").await;
    let state = tempfile::tempdir().unwrap();
    let hello = hello();
    let args = [
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    let (cmd, _home) = moto.command(&args, &[("TERM", "xterm")]);
    let out = on_a_terminal(&cmd, "");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{screen}");
    assert_eq!(
        screen.matches("has two active access keys").count(),
        1,
        "{screen}"
    );
    // In a pipe (a CI log), stderr still says it.
    let out = moto.keyrot(&args);
    assert!(
        stderr(&out).contains("has two active access keys"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn inject_header_errors_name_the_flag_and_read_well() {
    let moto = Moto::start();
    let hello = hello();
    let base = [
        "--plugin",
        hello.as_str(),
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
    ];
    let unset = [
        "--allow-host",
        "api.example.com",
        "--inject-header",
        "api.example.com=Authorization:Bearer {env:KEYROT_TEST_UNSET_VAR}",
    ];
    let out = moto.keyrot(&[&base[..], &unset[..]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--inject-header") && err.contains("KEYROT_TEST_UNSET_VAR is not set"),
        "{err}"
    );
    let not_allowed = [
        "--allow-host",
        "api.example.com",
        "--inject-header",
        "other.example.com=Authorization:Bearer {env:PATH}",
    ];
    let out = moto.keyrot(&[&base[..], &not_allowed[..]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("is not allowed: add --allow-host"), "{err}");
    assert!(!err.contains("   "), "no runs of spaces: {err:?}");
}

#[tokio::test]
async fn journal_show_and_clear_need_no_aws_for_the_file_journal() {
    let setup = Setup::new().await;
    let (child, _home) = setup.start_paused("saved-created", &[]);
    kill(child);
    let state = setup.state.to_str().unwrap();
    // No endpoint that answers, no credentials: a local file is enough.
    let nowhere = closed_port();
    let journal = |extra: &[&str]| {
        let mut args = vec!["journal"];
        args.extend(extra);
        args.extend([
            "--user",
            "ci-bot",
            "--state-dir",
            state,
            "--endpoint-url",
            &nowhere,
        ]);
        setup.moto.keyrot(&args)
    };
    let out = journal(&["show"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"phase\": \"created\""),
        "{}",
        show(&out)
    );
    let out = journal(&["show", "--account", "210987654321"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no journal for user ci-bot"));
    let out = journal(&["clear", "--account", "123456789012"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = journal(&["show"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no journal for user ci-bot"));
}

#[tokio::test]
async fn a_user_rotating_its_own_key_with_the_iam_journal_leaves_no_tag() {
    let everything = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }],
    });
    let (moto, old) = Moto::start_with_policy("ci-bot", &everything).await;
    let state = tempfile::tempdir().unwrap();
    let hello = hello();
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--state-dir",
        state.path().to_str().unwrap(),
        "--journal",
        "iam",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // The old key is gone: look with the new one.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = report["new_key"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, secret) = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| *id == new)
        .expect("moto issued the new key");
    let as_new = moto.client_for(&new, &secret);
    assert_eq!(
        moto.keys_as(&as_new, "ci-bot").await,
        [(new.clone(), "Active".to_string())]
    );
    assert_ne!(new, old);
    let tags = as_new
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags().is_empty(),
        "the journal is cleared: {:?}",
        tags.tags()
    );
    assert!(
        !stderr(&out).contains("could not remove the journal"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn ctrl_c_stops_a_fleet_waiting_for_a_lock() {
    let setup = Setup::new().await;
    setup.moto.create_user("ci-b").await;
    setup.moto.create_key("ci-b", "Active").await;
    // Another run holds ci-bot's lock.
    let (holder, _home) = setup.start_paused("before-preflight", &[]);
    let hello = hello();
    let state = setup.state.to_str().unwrap();
    let args = [
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--user",
        "ci-b",
        "--concurrency",
        "1",
        "--wait-lock",
        "10m",
        "--endpoint-url",
        &setup.moto.url,
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let (mut cmd, _home2) = setup.moto.command(&args, &[]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it says it waits for the lock, interrupt it.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("waiting up to 10m") => break,
            Some(Ok(_)) => {}
            _ => panic!("the fleet never waited for the lock"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    // SAFETY: signalling a child of this test.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // It stops rather than waiting out the ten minutes.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still waiting for the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    kill(holder);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        errors[0].contains("interrupted while waiting"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("not started"), "{errors:?}");
    setup
        .moto
        .assert_only_key("ci-b", &setup.moto.keys("ci-b").await[0].0)
        .await;
}
