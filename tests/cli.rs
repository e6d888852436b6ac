//! End-to-end tests of the `keyrot` binary against moto, with real plugin
//! components built from `plugins/`. Each test checks the exit code and what
//! IAM holds afterwards, as the emulator reports it.

use serde_json::Value;

use crate::util::{Moto, plugin, show};

fn path(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn success_replaces_the_active_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate("hello", &["--plugin-log", "show"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "exactly one key remains: {keys:?}");
    let (new, status) = &keys[0];
    assert_ne!(new, &old);
    assert_eq!(status, "Active");
    // The plugin's log line reaches stderr, prefixed with its name.
    assert!(
        stderr(&out).contains(&format!("[hello] hello, new key {new}")),
        "{}",
        show(&out)
    );
    assert!(
        stdout(&out).contains("user ci-bot (account 123456789012): rotated"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn json_report_says_what_happened_to_each_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate(
        "hello",
        &[
            "--output",
            "json",
            "--config",
            "greeting=hi",
            "--plugin-log",
            "show",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(report["outcome"], "rotated");
    assert_eq!(report["new_key"]["access_key_id"], new.as_str());
    assert_eq!(report["new_key"]["state"], "propagated");
    assert_eq!(report["old_keys"][0]["access_key_id"], old.as_str());
    assert_eq!(report["old_keys"][0]["action"], "deleted");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "list-keys",
            "preflight",
            "create-key",
            "check-keys",
            "verify-key",
            "handle",
            "confirm-new-key",
            "delete-old-key"
        ]
    );
    // The setting reached the plugin through wasi:config.
    let log = report["handler_log"].to_string();
    assert!(log.contains(&format!("hi, new key {new}")), "{log}");
}

#[tokio::test]
async fn endpoint_can_come_from_aws_endpoint_url() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let hello = path("hello");
    let out = moto.keyrot_with_env(
        &["--plugin", &hello, "--user", "ci-bot"],
        &[("AWS_ENDPOINT_URL", &moto.url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);
}

#[tokio::test]
async fn self_heal_deletes_the_inactive_key_at_the_limit() {
    let (moto, active) = Moto::start_with_user("ci-bot").await;
    let inactive = moto.create_key("ci-bot", "Inactive").await;
    let out = moto.rotate("hello", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].0 != active && keys[0].0 != inactive);
    assert_eq!(keys[0].1, "Active");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let action_of = |id: &str| {
        report["old_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["access_key_id"] == id)
            .map(|k| k["action"].clone())
            .unwrap()
    };
    assert_eq!(action_of(&inactive), "deleted-to-make-room");
    assert_eq!(action_of(&active), "deleted");
}

#[tokio::test]
async fn two_active_keys_are_refused_and_left_alone() {
    let (moto, first) = Moto::start_with_user("ci-bot").await;
    let second = moto.create_key("ci-bot", "Active").await;
    let before = moto.keys("ci-bot").await;
    let out = moto.rotate("hello", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(moto.keys("ci-bot").await, before);
    let err = stderr(&out);
    assert!(err.contains("two active access keys"), "{err}");
    // Both named in full (ids are not secret, and the fix needs them),
    // with their creation dates.
    for id in [&first, &second] {
        assert!(err.contains(&format!("{id}, created ")), "{err}");
    }
    assert!(!err.contains("[hello]"), "the handler must not run: {err}");
}

/// Runs a plugin that fails in `handle` and checks the old key survives and
/// the new key is gone.
async fn assert_handler_failure(plugin_name: &str, extra: &[&str], expect: &[&str]) {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let plugin = path(plugin_name);
    let mut args = vec![
        "--plugin",
        &plugin,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = moto.keyrot(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        moto.keys("ci-bot").await,
        vec![(old.clone(), "Active".to_string())],
        "only the old key, still active"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["new_key"]["state"], "deleted");
    assert_eq!(report["old_keys"][0]["action"], "unchanged");
    let err = stderr(&out);
    for text in expect {
        assert!(err.contains(text), "stderr lacks {text:?}:\n{err}");
    }
}

#[tokio::test]
async fn handler_failure_deletes_the_new_key() {
    assert_handler_failure(
        "fixture_fail",
        &[],
        &[
            "plugin 'fail'",
            "destination rejected the key (403 Forbidden)",
        ],
    )
    .await;
}

#[tokio::test]
async fn handler_trap_deletes_the_new_key() {
    assert_handler_failure(
        "fixture_trap",
        &[],
        &["plugin 'trap' crashed", "handler exploded"],
    )
    .await;
}

#[tokio::test]
async fn handler_timeout_deletes_the_new_key() {
    assert_handler_failure(
        "fixture_spin",
        &["--timeout", "2s"],
        &["plugin 'spin' did not finish within 2s", "--timeout"],
    )
    .await;
}

#[tokio::test]
async fn preflight_failure_creates_nothing() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate("fixture_fail", &["--config", "at=preflight"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains("preflight failed"), "{}", show(&out));
    assert_eq!(moto.keys("ci-bot").await, vec![(old, "Active".to_string())]);
    assert_eq!(moto.all_secrets().len(), 1, "no key was ever created");
}

#[tokio::test]
async fn unknown_user_fails_before_creating_anything() {
    let moto = Moto::start();
    let hello = path("hello");
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--user",
        "nobody",
        "--endpoint-url",
        &moto.url,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("iam user 'nobody' does not exist"),
        "{}",
        show(&out)
    );
    assert!(moto.all_secrets().is_empty());
}

/// Bad input must fail with exit 2 before IAM is touched, naming the fix.
async fn assert_bad_input(args: &[&str], expect: &str) {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let mut all = vec!["--endpoint-url", moto.url.as_str()];
    all.extend_from_slice(args);
    if !args.contains(&"--user") {
        all.extend(["--user", "ci-bot"]);
    }
    let out = moto.keyrot(&all);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains(expect),
        "stderr lacks {expect:?}:\n{}",
        show(&out)
    );
    assert_eq!(moto.keys("ci-bot").await, vec![(old, "Active".to_string())]);
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
}

#[tokio::test]
async fn missing_plugin_file_is_bad_input() {
    assert_bad_input(
        &["--plugin", "/nonexistent/github.wasm"],
        "cannot read plugin '/nonexistent/github.wasm'",
    )
    .await;
}

#[tokio::test]
async fn non_wasm_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("handler.wasm");
    std::fs::write(&file, "#!/bin/sh\necho not wasm\n").unwrap();
    assert_bad_input(
        &["--plugin", file.to_str().unwrap()],
        "is not a WebAssembly component",
    )
    .await;
}

#[tokio::test]
async fn core_module_is_bad_input_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("core.wasm");
    std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
    assert_bad_input(
        &["--plugin", file.to_str().unwrap()],
        "is a core WebAssembly module, not a component",
    )
    .await;
}

#[tokio::test]
async fn truncated_component_is_bad_input() {
    let bytes = std::fs::read(plugin("hello")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("truncated.wasm");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    assert_bad_input(
        &["--plugin", file.to_str().unwrap()],
        "is not a valid WebAssembly component",
    )
    .await;
}

#[tokio::test]
async fn component_of_another_world_is_bad_input() {
    let other = path("not-a-handler");
    assert_bad_input(&["--plugin", &other], "is not a keyrot handler").await;
}

#[tokio::test]
async fn unknown_setting_is_bad_input() {
    let hello = path("hello");
    assert_bad_input(
        &["--plugin", &hello, "--config", "greting=hi"],
        "plugin 'hello' does not read setting(s) 'greting' (did you mean 'greeting'?); it reads: greeting",
    )
    .await;
}

#[tokio::test]
async fn bad_flags_are_bad_input() {
    let hello = path("hello");
    assert_bad_input(&["--plugin", &hello, "--timeout", "0s"], "--timeout").await;
    assert_bad_input(&["--plugin", &hello, "--output", "xml"], "--output").await;
    assert_bad_input(&["--plugin", &hello, "--config", "novalue"], "KEY=VALUE").await;
    assert_bad_input(
        &["--plugin", &hello, "--user", "bad name"],
        "not a valid IAM user name",
    )
    .await;
}

#[tokio::test]
async fn help_documents_exit_codes_and_examples() {
    let moto = Moto::start();
    let out = moto.keyrot(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for text in [
        "Exit codes:",
        "3  partial",
        "4  needs manual action",
        "--plugin github.wasm",
    ] {
        assert!(help.contains(text), "--help lacks {text:?}:\n{help}");
    }
}

#[tokio::test]
async fn undeletable_old_key_is_deactivated_and_reported_partial() {
    let (moto, old) = Moto::start_denying("iam:DeleteAccessKey").await;
    let out = moto.rotate("hello", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    let status_of = |id: &str| keys.iter().find(|(k, _)| k == id).map(|(_, s)| s.as_str());
    assert_eq!(status_of(&old), Some("Inactive"), "{keys:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "partial");
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    assert_eq!(status_of(new), Some("Active"), "{keys:?}");
    assert_eq!(report["old_keys"][0]["action"], "deactivated");
    assert!(
        stderr(&out).contains("could not be deleted"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn undeletable_new_key_after_handler_failure_is_named_for_manual_action() {
    let (moto, old) = Moto::start_denying("iam:DeleteAccessKey").await;
    let out = moto.rotate("fixture_fail", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "needs-manual-action");
    assert_eq!(report["new_key"]["state"], "orphaned");
    let orphan = report["new_key"]["access_key_id"].as_str().unwrap();
    // The old key still works; the orphan is the only other key, and the
    // message tells the operator exactly how to remove it.
    let keys = moto.keys("ci-bot").await;
    assert!(keys.contains(&(old, "Active".to_string())), "{keys:?}");
    assert!(keys.iter().any(|(k, _)| k == orphan), "{keys:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--user-name ci-bot --access-key-id {orphan}")),
        "{err}"
    );
}

/// The fail fixture puts the secret in its log, stdout, stderr and error;
/// hello succeeds. In text and JSON, quiet and verbose, no secret moto ever
/// issued may appear in keyrot's output.
#[tokio::test]
async fn secret_never_appears_in_output() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let fail = path("fixture_fail");
    let hello = path("hello");
    let mut outputs = Vec::new();
    for plugin in [&fail, &hello] {
        for output in ["text", "json"] {
            for verbosity in ["-vv", "-v"] {
                let out = moto.keyrot(&[
                    "--plugin",
                    plugin,
                    "--user",
                    "ci-bot",
                    "--endpoint-url",
                    &moto.url,
                    "--output",
                    output,
                    verbosity,
                    "--plugin-log",
                    "show",
                ]);
                outputs.push(out);
            }
        }
    }
    // The handler did run with the key, so there was a secret to leak.
    let runs = outputs.iter().map(show).collect::<Vec<_>>().join("\n");
    assert!(runs.contains("leaking [redacted] to the log"), "{runs}");
    assert!(runs.contains("leaking [redacted] to stdout"), "{runs}");
    assert!(runs.contains("(403 Forbidden) for [redacted]"), "{runs}");
    let secrets = moto.all_secrets();
    assert!(
        secrets.len() >= 9,
        "every run created a key: {}",
        secrets.len()
    );
    for secret in &secrets {
        assert!(!runs.contains(secret.as_str()), "secret leaked:\n{runs}");
    }
}

/// Ctrl-C while the handler runs cancels it and deletes the new key: the
/// user keeps its old key and nothing else.
#[tokio::test]
async fn an_interrupt_during_the_handler_deletes_the_new_key() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let spin = path("fixture_spin");
    let (mut cmd, _home) = moto.command(
        &[
            "--plugin",
            &spin,
            "--user",
            "ci-bot",
            "--endpoint-url",
            &moto.url,
            "--timeout",
            "60s",
        ],
        &[],
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    // The handler is running once the new key has been announced.
    while !seen.iter().any(|l: &String| l.contains("created key")) {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("keyrot never created the key: {seen:?}"));
        seen.push(line);
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    seen.extend(received.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by the operator"), "{stderr}");
    moto.assert_only_key("ci-bot", &old).await;
}
