//! Hardening, through the real binary: keyrot's own output cannot strand a
//! key, its cache cannot be made to run the wrong code, and inputs that are
//! not plain files (FIFOs) fail fast instead of hanging. Hostile plugin
//! strings are in `sandbox`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{Moto, Reply, TestServer, plugin, show};

fn path(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` to its end. A hang is a failure, not a wait: after a minute
/// (far beyond any of these runs) keyrot is killed and the test fails.
fn finish(cmd: &mut Command) -> ExitStatus {
    let mut child = cmd.spawn().expect("spawn keyrot");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for keyrot") {
            return status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyrot hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn dev_full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

/// A pipe whose reader is already gone: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

/// Rotates with hello, logging all it can (-vv, the plugin's lines shown),
/// with stdout and stderr as `streams` sets them; the run must finish as a
/// normal rotation: exit 0, exactly one key, the new one, active.
async fn rotation_survives(streams: impl FnOnce(&mut Command), extra: &[&str]) {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let hello = path("hello");
    let mut args = vec![
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "-vv",
        "--plugin-log",
        "show",
    ];
    args.extend_from_slice(extra);
    let (mut cmd, _home) = moto.command(&args, &[]);
    streams(&mut cmd);
    let status = finish(&mut cmd);
    assert_eq!(status.code(), Some(0), "{status}");
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "exactly one key: {keys:?}");
    assert_ne!(keys[0].0, old, "the new key");
    assert_eq!(keys[0].1, "Active");
}

#[tokio::test]
async fn a_full_stderr_does_not_strand_a_key() {
    rotation_survives(
        |cmd| {
            cmd.stdout(Stdio::null()).stderr(dev_full());
        },
        &[],
    )
    .await;
}

#[tokio::test]
async fn a_closed_stderr_pipe_does_not_strand_a_key() {
    rotation_survives(
        |cmd| {
            cmd.stdout(Stdio::null()).stderr(closed_pipe());
        },
        &[],
    )
    .await;
}

#[tokio::test]
async fn a_full_or_closed_stdout_does_not_strand_a_key() {
    for output in ["text", "json"] {
        rotation_survives(
            |cmd| {
                cmd.stdout(dev_full()).stderr(Stdio::null());
            },
            &["--output", output],
        )
        .await;
        rotation_survives(
            |cmd| {
                cmd.stdout(closed_pipe()).stderr(closed_pipe());
            },
            &["--output", output],
        )
        .await;
    }
}

/// A panic in keyrot's host code while the plugin runs (outside the guest,
/// and inside a host call with the guest's frames on the stack) is a
/// handler failure: exit 1, the new key (if any) deleted, the old one kept.
#[tokio::test]
async fn a_host_panic_while_the_plugin_runs_ends_safely() {
    for point in ["host-handle", "host-log"] {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let hook = format!("{point}:panic");
        let out = moto.rotate(
            "hello",
            &["--output", "json"],
            &[("KEYROT_TEST_HOOK", &hook)],
        );
        assert_eq!(out.status.code(), Some(1), "{point}: {}", show(&out));
        moto.assert_only_key("ci-bot", &old).await;
        let err = stderr(&out);
        assert!(err.contains("keyrot's host failed"), "{point}: {err}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["outcome"], "failed", "{point}");
        if point == "host-handle" {
            assert_eq!(report["new_key"]["state"], "deleted");
        }
    }
}

/// The cache file of `plugin_path` in `cache`.
fn cache_entry(cache: &Path, plugin_path: &str) -> (PathBuf, String) {
    let sha = hex::encode(Sha256::digest(std::fs::read(plugin_path).unwrap()));
    let entry = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&sha))
        .unwrap_or_else(|| panic!("no cache entry for {plugin_path}"));
    (entry, sha)
}

#[tokio::test]
async fn a_cache_entry_copied_over_another_plugins_name_is_not_run() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let cache = tempfile::tempdir().unwrap();
    let env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let (hello, hostile) = (path("hello"), path("fixture_hostile"));
    for plugin in [&hello, &hostile] {
        let out = moto.keyrot_with_env(&["plugin", "inspect", plugin], &env);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let (hello_entry, hello_sha) = cache_entry(cache.path(), &hello);
    let (hostile_entry, _) = cache_entry(cache.path(), &hostile);
    std::fs::copy(&hostile_entry, &hello_entry).unwrap();

    let out = moto.rotate(
        "hello",
        &["--plugin-sha256", &hello_sha, "--plugin-log", "show"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    assert_ne!(new, &old);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[hello] hello, new key {new}")),
        "{err}"
    );
    assert!(err.contains("compiled from another plugin"), "{err}");
    // Rebuilt: the entry now holds hello's code again.
    let out = moto.rotate("hello", &["--plugin-sha256", &hello_sha], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!stderr(&out).contains("another plugin"), "{}", show(&out));
}

/// The cache remembers the sha256 of a plugin file that has not changed
/// (same inode, size, mtime and ctime), so a warm start need not read it,
/// pinned or not. A record naming another plugin (only someone who can
/// write the private cache could plant one, as they could plant compiled
/// code) is believed unpinned, and pinned only when it names the pin:
/// otherwise the file is hashed and the pin checked against its bytes. A
/// record that names the pin while the file holds other bytes is caught as
/// soon as the bytes are needed (no compiled entry for the pin).
#[tokio::test]
async fn a_pinned_plugin_is_hashed_when_the_cache_remembers_another_sha256() {
    use std::os::unix::fs::MetadataExt;
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let cache = tempfile::tempdir().unwrap();
    let env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let (hello, hostile) = (path("hello"), path("fixture_hostile"));
    for plugin in [&hello, &hostile] {
        let out = moto.keyrot_with_env(&["plugin", "inspect", plugin], &env);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let (_, hello_sha) = cache_entry(cache.path(), &hello);
    let (_, hostile_sha) = cache_entry(cache.path(), &hostile);
    let meta = std::fs::metadata(&hello).unwrap();
    let record = format!(
        "{} {} {} {}.{} {}.{} {hostile_sha}\n",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let seen = cache.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    std::fs::write(
        seen.join(format!("{:x}-{:x}", meta.dev(), meta.ino())),
        &record,
    )
    .unwrap();

    let out = moto.keyrot_with_env(&["plugin", "inspect", &hello, "--output", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["name"], "hostile", "the record is used: {report}");

    let out = moto.rotate(
        "hello",
        &["--plugin-sha256", &hello_sha, "--plugin-log", "show"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[hello] hello, new key {new}")),
        "{err}"
    );

    // The pinned run above hashed the file and put the record right; plant
    // the wrong one again. Pinned to what it names, it is believed: the
    // file is not read, and the compiled code for that sha256 is what
    // describes itself (before any key is touched: the setting is refused).
    std::fs::write(
        seen.join(format!("{:x}-{:x}", meta.dev(), meta.ino())),
        &record,
    )
    .unwrap();
    let refused = ["--plugin-sha256", &hostile_sha, "--config", "nope=1"];
    let out = moto.rotate("hello", &refused, &env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("plugin 'hostile'"), "{}", show(&out));
    // Without a compiled entry for the pin, the bytes are read after all,
    // and they are not the pinned ones.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let entry = entry.unwrap().path();
        if entry.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(entry).unwrap();
        }
    }
    let out = moto.rotate("hello", &refused, &env);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "has sha256 {hello_sha}, not the pinned {hostile_sha}"
        )),
        "{err}"
    );
    assert!(!err.contains("hostile'"), "{err}");
    assert_eq!(moto.keys("ci-bot").await[0].0, *new, "no key was touched");
}

#[tokio::test]
async fn grants_over_keyrots_cache_or_state_directory_are_refused() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let state = root.path().join("state");
    let env = [
        ("KEYROT_CACHE_DIR", cache.to_str().unwrap()),
        ("KEYROT_STATE_DIR", state.to_str().unwrap()),
    ];
    let root_str = root.path().to_str().unwrap();
    let cases = [
        (root_str.to_string(), "cache"),
        (format!("{root_str}:/data"), "cache"),
        (format!("{root_str}:ro"), "state directory"),
        (format!("{}:ro", state.display()), "state directory"),
    ];
    for (grant, expect) in cases {
        let out = moto.rotate("hello", &["--allow-dir", &grant], &env);
        assert_eq!(out.status.code(), Some(2), "{grant}: {}", show(&out));
        let err = stderr(&out);
        assert!(err.contains("--allow-dir") && err.contains(expect), "{err}");
        moto.assert_only_key("ci-bot", &old).await;
        assert_eq!(moto.all_secrets().len(), 1, "no key was created");
        assert!(!cache.exists() && !state.exists(), "nothing created");
    }
    // A grant beside them is fine (the store fixture declares /dest).
    std::fs::create_dir(root.path().join("data")).unwrap();
    let data = format!("{}:/dest", root.path().join("data").display());
    let out = moto.rotate("fixture_store", &["--allow-dir", &data], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// A server that echoes the request's headers in an error page: the
/// injected token comes back to the plugin, which quotes the first 200
/// bytes of the body, cutting the token. No copy, whole or cut, may reach
/// the output.
#[tokio::test]
async fn an_injected_header_echoed_back_is_redacted_even_when_cut() {
    const TOKEN: &str = "tokSUPERSECRETvalue0123456789abcdef";
    let echo = TestServer::start(|request| {
        let auth = request.header("authorization").unwrap_or("").to_string();
        // Pad so that the fixture's 200-byte cut keeps 15 bytes of the token.
        let pad = "p".repeat(200 - "authorization: Bearer ".len() - 15);
        Reply::new(500, format!("{pad}authorization: {auth}\n"))
    });
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let url = format!("{}/echo", echo.url);
    let config = format!("url={url}");
    let inject = format!("{}=Authorization:Bearer {{env:ECHO_TOKEN}}", echo.url);
    for output in ["text", "json"] {
        let out = moto.rotate(
            "fixture_http",
            &[
                "--allow-host",
                &echo.url,
                "--inject-header",
                &inject,
                "--config",
                &config,
                "--output",
                output,
                "--plugin-log",
                "show",
                "-vv",
            ],
            &[("ECHO_TOKEN", TOKEN)],
        );
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        moto.assert_only_key("ci-bot", &old).await;
        let shown = show(&out);
        assert!(
            shown.contains("authorization: Bearer [redacted]"),
            "{shown}"
        );
        assert!(!shown.contains(&TOKEN[..8]), "{shown}");
    }
    assert_eq!(
        echo.requests()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "the token did reach the server"
    );
}

#[tokio::test]
async fn plugin_log_is_hidden_off_a_terminal_and_out_of_json_unless_asked() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    // Tests run without a terminal: auto hides the plugin's lines.
    let out = moto.rotate("hello", &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let err = stderr(&out);
    assert!(!err.contains("[hello]"), "{err}");
    assert!(err.contains("plugin log lines not shown"), "{err}");
    assert!(err.contains("--plugin-log show"), "{err}");

    let out = moto.rotate("hello", &["--output", "json"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.get("handler_log").is_none(), "{report}");
    assert_eq!(report["handler_log_hidden"], 2, "{report}");

    let out = moto.rotate("hello", &["--output", "json", "--plugin-log", "show"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["handler_log"].as_array().unwrap().len(), 2);
    assert!(
        stderr(&out).contains("[hello] hello, new key"),
        "{}",
        show(&out)
    );

    let out = moto.rotate("hello", &["--plugin-log", "hide", "-q"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stderr(&out), "", "quiet and hidden: nothing at all");
}

/// On a terminal, `auto` shows the plugin's lines (and has nothing to count).
#[tokio::test]
async fn plugin_log_is_shown_on_a_terminal() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: out-pointers to two ints; no name, termios or size given.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (mut master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let hello = path("hello");
    let (mut cmd, _home) = moto.command(
        &[
            "--plugin",
            &hello,
            "--user",
            "ci-bot",
            "--endpoint-url",
            &moto.url,
        ],
        &[],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::from(slave));
    // Read as keyrot writes (a terminal's buffer is small); the read ends
    // with an error once the last copy of the terminal's other end closes.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let _ = master.read_to_end(&mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = finish(&mut cmd);
    drop(cmd);
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let new = &moto.keys("ci-bot").await[0].0;
    assert!(
        err.contains(&format!("[hello] hello, new key {new}")),
        "{err}"
    );
    assert!(!err.contains("not shown"), "{err}");
}

/// Every file input refuses a FIFO at once (exit 2, nothing created)
/// rather than waiting for a writer that never comes.
#[tokio::test]
async fn fifos_as_inputs_fail_fast() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let hello = path("hello");
    let secret = format!("greeting=file:{fifo}");
    let inject = format!("http://127.0.0.1:9=X-Token:{{file:{fifo}}}");
    let cases: [&[&str]; 4] = [
        &["--plugin", fifo],
        &["--job", fifo, "--plugin", &hello],
        &["--plugin", &hello, "--secret", &secret],
        &[
            "--plugin",
            &hello,
            "--allow-host",
            "http://127.0.0.1:9",
            "--inject-header",
            &inject,
        ],
    ];
    for case in cases {
        let mut args = vec!["--user", "ci-bot", "--endpoint-url", &moto.url];
        args.extend_from_slice(case);
        let (mut cmd, _home) = moto.command(&args, &[]);
        let err_file = dir.path().join("stderr");
        cmd.stdout(Stdio::null())
            .stderr(File::create(&err_file).unwrap());
        let status = finish(&mut cmd);
        let err = std::fs::read_to_string(&err_file).unwrap();
        assert_eq!(status.code(), Some(2), "{case:?}: {err}");
        assert!(
            err.contains("a FIFO, not a regular file"),
            "{case:?}: {err}"
        );
        moto.assert_only_key("ci-bot", &old).await;
        assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    }
}

#[tokio::test]
async fn a_fifo_planted_as_a_cache_entry_is_replaced() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let cache = tempfile::tempdir().unwrap();
    let env = [("KEYROT_CACHE_DIR", cache.path().to_str().unwrap())];
    let hello = path("hello");
    let out = moto.keyrot_with_env(&["plugin", "inspect", &hello], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (entry, _) = cache_entry(cache.path(), &hello);
    std::fs::remove_file(&entry).unwrap();
    mkfifo(&entry);
    let wasm = path("hello");
    let (mut cmd, _home) = moto.command(
        &[
            "--plugin",
            &wasm,
            "--user",
            "ci-bot",
            "--endpoint-url",
            &moto.url,
        ],
        &env,
    );
    let logs = tempfile::tempdir().unwrap();
    let err_file = logs.path().join("stderr");
    cmd.stdout(Stdio::null())
        .stderr(File::create(&err_file).unwrap());
    let status = finish(&mut cmd);
    let err = std::fs::read_to_string(&err_file).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(std::fs::metadata(&entry).unwrap().is_file(), "rebuilt");
}

#[tokio::test]
async fn job_file_errors_never_echo_a_secret() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "plugin = \"{}\"\nuser = \"ci-bot\"\n[secrets]\ntoken = ghp_LEAKEDLEAKEDLEAKED\n",
            path("hello")
        ),
    )
    .unwrap();
    let out = moto.keyrot(&["--job", job.to_str().unwrap(), "--endpoint-url", &moto.url]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!show(&out).contains("ghp_"), "{}", show(&out));
    assert!(stderr(&out).contains("line 4"), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn limits_past_the_maximum_are_too_large() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    for (flag, value) in [("--memory", "17GiB"), ("--timeout", "1441m")] {
        let out = moto.rotate("hello", &[flag, value], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = stderr(&out);
        assert!(err.contains(flag) && err.contains("too large"), "{err}");
        moto.assert_only_key("ci-bot", &old).await;
    }
}
