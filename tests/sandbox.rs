//! The hostile-plugin suite: each fixture attacks the sandbox through the
//! real binary against moto. Every attack must end as a clear handler
//! failure naming the plugin and the cause, with the new key deleted, the
//! old key still active, keyrot alive and its memory bounded.

use crate::util::{Moto, plugin, run_measuring_memory, show};

/// keyrot's own footprint (Wasmtime, the SDK, a compiled plugin) stays far
/// below this whatever a plugin does; plugin memory is capped separately.
const MAX_KEYROT_RSS: u64 = 400 * 1024 * 1024;

/// Runs the hostile fixture with `attack` and checks the run ended as a
/// handler failure whose message contains every one of `expect`.
async fn attack(name: &str, extra: &[&str], expect: &[&str]) -> String {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let hostile = plugin("fixture_hostile").to_string_lossy().into_owned();
    let setting = format!("attack={name}");
    // The fixture declares /data, as a file handler would: an attack that
    // is not about a directory of its own gets an empty one.
    let data = tempfile::tempdir().unwrap();
    let grant = format!("{}:/data", data.path().display());
    let mut args = vec![
        "--plugin",
        &hostile,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--config",
        &setting,
    ];
    if !extra.contains(&"--allow-dir") {
        args.extend(["--allow-dir", grant.as_str()]);
    }
    args.extend_from_slice(extra);
    let (mut cmd, _home) = moto.command(&args, &[]);
    let (out, peak) = run_measuring_memory(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: handler failed"))
        .unwrap_or_else(|| panic!("no handler failure reported:\n{}", show(&out)));
    for text in expect {
        assert!(error.contains(text), "error lacks {text:?}: {error}");
    }
    assert!(
        error.contains("was deleted"),
        "the new key must be deleted: {error}"
    );
    let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    for secret in moto.all_secrets() {
        assert!(!all.contains(&secret), "a secret leaked:\n{}", show(&out));
    }
    assert!(
        peak < MAX_KEYROT_RSS,
        "keyrot peaked at {} MiB",
        peak / (1024 * 1024)
    );
    stderr
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    attack(
        "memory",
        &["--memory", "64MiB"],
        &["plugin 'hostile' ran out of memory", "64 MiB", "--memory"],
    )
    .await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    attack(
        "recursion",
        &[],
        &["plugin 'hostile' crashed", "stack overflow"],
    )
    .await;
}

#[tokio::test]
async fn log_flood_stays_bounded() {
    let stderr = attack(
        "flood",
        &[],
        &["plugin 'hostile'", "blocked: flood finished"],
    )
    .await;
    // A million lines and 100 MB of output shrink to the capped log.
    assert!(
        stderr.len() < 2 * 1024 * 1024,
        "stderr is {} bytes",
        stderr.len()
    );
    assert!(
        stderr.contains("more log lines dropped"),
        "overflow is counted"
    );
}

#[tokio::test]
async fn files_outside_any_grant_do_not_exist() {
    attack(
        "file",
        &[],
        &["plugin 'hostile'", "blocked:", "/etc/passwd"],
    )
    .await;
    assert!(!std::path::Path::new("/tmp/keyrot-escape").exists());
}

#[tokio::test]
async fn environment_and_arguments_are_empty() {
    attack(
        "env",
        &[],
        &["plugin 'hostile'", "blocked: no environment, no arguments"],
    )
    .await;
}

#[tokio::test]
async fn sockets_are_denied_even_to_a_listening_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("target={}", listener.local_addr().unwrap());
    attack(
        "socket",
        &["--config", &target],
        &["plugin 'hostile'", "blocked:"],
    )
    .await;
}

#[tokio::test]
async fn a_leaked_secret_is_redacted() {
    // `attack` also checks that no secret moto issued appears anywhere.
    attack(
        "secret-exfil",
        &["--output", "json"],
        &["plugin 'hostile'", "[redacted]"],
    )
    .await;
}

/// Control characters a plugin chose, raw, anywhere in `text`.
fn raw_control(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
}

#[tokio::test]
async fn forged_terminal_sequences_are_printed_escaped() {
    for output in ["text", "json"] {
        let stderr = attack(
            "forge",
            &["--plugin-log", "show", "--output", output],
            &[
                "plugin 'hostile'",
                "blocked: error \\u{1b}[2K\\u{1b}]0;keyrot",
            ],
        )
        .await;
        assert_eq!(raw_control(&stderr), None, "{stderr}");
        // Each of the log line, stdout and stderr arrived, escaped.
        for source in ["log", "stdout", "stderr"] {
            assert!(
                stderr.contains(&format!("{source} \\u{{1b}}[2K")),
                "{source}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn inspect_prints_plugin_strings_escaped() {
    let moto = Moto::start();
    let hostile = plugin("fixture_hostile").to_string_lossy().into_owned();
    let out = moto.keyrot(&["plugin", "inspect", &hostile]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(raw_control(&text), None, "{text:?}");
    assert!(text.contains("Unused. \\u{1b}[2K"), "{text}");
}

#[tokio::test]
async fn a_huge_error_message_is_cut() {
    let stderr = attack(
        "long-error",
        &["--output", "json"],
        &[
            "plugin 'hostile'",
            "blocked: long error",
            "more bytes of the message cut",
        ],
    )
    .await;
    assert!(stderr.len() < 64 * 1024, "stderr is {} bytes", stderr.len());
}

#[tokio::test]
async fn symlinks_cannot_be_created_in_a_granted_directory() {
    let dir = tempfile::tempdir().unwrap();
    let grant = format!("{}:/data", dir.path().display());
    attack(
        "symlink",
        &["--allow-dir", &grant],
        &[
            "plugin 'hostile'",
            "blocked: symlink /data/absolute",
            "symlink /data/relative",
        ],
    )
    .await;
    for name in ["absolute", "relative"] {
        assert!(
            std::fs::symlink_metadata(dir.path().join(name)).is_err(),
            "{name} symlink exists"
        );
    }
}
