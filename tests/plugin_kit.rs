//! `keyrot plugin new` and `keyrot plugin test` through the real binary.
//!
//! Each language's template is written by `plugin new`, built with the
//! command it prints (the toolchains `scripts/build-plugins.sh` installs,
//! and their caches: the Rust build shares `plugins/target`, JavaScript
//! uses `plugins/js/node_modules`, C the tools in `plugins/target/c-tools`
//! and `.venv`), and must pass every check of `plugin test`. The fixture
//! `plugins/fixtures/breaks` breaks one rule at a time and must fail
//! exactly the check of that rule. A missing toolchain fails these tests,
//! naming the script that installs it; it never skips them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

use crate::github_server::FakeGitHub;
use crate::util::{plugin, show};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The keyrot binary in `dir`, with a clean environment and a private
/// HOME; the compiled-plugin cache is the test run's shared one.
fn keyrot(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyrot-cache");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyrot"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env("KEYROT_CACHE_DIR", &cache)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run keyrot")
}

/// `keyrot plugin new NAME --lang LANG --output json` in `dir`: the
/// project's directory and what the binary said about it.
fn plugin_new(dir: &Path, name: &str, lang: &str) -> (PathBuf, Value) {
    let out = keyrot(
        dir,
        &["plugin", "new", name, "--lang", lang, "--output", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    let project = dir.join(name);
    assert!(project.join("README.md").is_file(), "{said}");
    // The README documents the build command the binary prints, and the test.
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let build = said["project"]["build"].as_str().unwrap();
    let documented = build.split(" && ").last().unwrap();
    assert!(
        readme.contains(documented),
        "README lacks `{documented}`:\n{readme}"
    );
    assert!(readme.contains("keyrot plugin test"), "{readme}");
    (project, said)
}

/// Runs a build command, failing (not skipping) with `hint` when it does.
fn build(cmd: &mut Command, hint: &str) -> f64 {
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): {hint}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({hint}):\n{}",
        show(&out)
    );
    started.elapsed().as_secs_f64()
}

/// `keyrot plugin test WASM ARGS --output json`: exit code and report.
fn plugin_test(wasm: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value, Output) {
    let wasm = wasm.to_string_lossy();
    let mut all = vec!["plugin", "test", wasm.as_ref(), "--output", "json"];
    all.extend_from_slice(args);
    let dir = tempfile::tempdir().unwrap();
    let out = keyrot(dir.path(), &all, env);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", show(&out)));
    (out.status.code(), report, out)
}

/// The check of `rule` in a report.
fn check<'a>(report: &'a Value, rule: &str) -> &'a Value {
    let checks = report["checks"].as_array().unwrap();
    checks
        .iter()
        .find(|c| c["rule"] == rule)
        .unwrap_or_else(|| panic!("no check {rule}: {report:#}"))
}

/// Every check passed: a template exercises every one.
fn assert_keeps_the_contract(code: Option<i32>, report: &Value, out: &Output) {
    assert_eq!(code, Some(0), "{report:#}\n{}", show(out));
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["status"], "pass", "{check:#}\n{}", show(out));
    }
    assert_eq!(report["summary"]["passed"], 13, "{report:#}");
}

#[test]
fn the_rust_template_builds_and_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (project, said) = plugin_new(dir.path(), "kit-rust-store", "rust");
    // The plugins' lock file: the versions already built in plugins/target,
    // so the build reuses them and fetches nothing.
    std::fs::copy(
        root().join("plugins/Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();
    let target = root().join("plugins/target");
    let seconds = build(
        Command::new("sh")
            .args(["-c", said["project"]["build"].as_str().unwrap()])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true"),
        "needs the wasm32-wasip2 target (scripts/setup.sh) and the plugins built once \
         (scripts/build-plugins.sh rust)",
    );
    let component = said["project"]["component"].as_str().unwrap();
    assert_eq!(
        component,
        "target/wasm32-wasip2/release/kit_rust_store.wasm"
    );
    let wasm = target.join(component.strip_prefix("target/").unwrap());
    let started = Instant::now();
    let (code, report, out) = plugin_test(&wasm, &[], &[]);
    eprintln!(
        "rust template: built in {seconds:.1}s, tested in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_keeps_the_contract(code, &report, &out);
    assert_eq!(report["plugin"]["name"], "kit-rust-store");
    assert_eq!(report["plugin"]["contract"], keyrot::host::CURRENT_CONTRACT);

    // The same run for people: a line per rule, then the counts.
    let text = keyrot(
        dir.path(),
        &["plugin", "test", &wasm.to_string_lossy()],
        &[],
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{}", show(&text));
    for (rule, _) in keyrot::kit::conformance::RULES {
        assert!(stdout.contains(&format!("✓ {rule} ")), "{rule}:\n{stdout}");
    }
    assert!(
        stdout.contains("13 passed, 0 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(provided --config path=/keyrot-test/path)"),
        "{stdout}"
    );
}

#[test]
fn the_python_template_builds_and_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (project, said) = plugin_new(dir.path(), "kit-python-store", "python");
    let venv = root().join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let seconds = build(
        Command::new("sh")
            .args(["-c", said["project"]["build"].as_str().unwrap()])
            .current_dir(&project)
            .env("PATH", path),
        "needs componentize-py in .venv (scripts/build-plugins.sh python installs it)",
    );
    let wasm = project.join(said["project"]["component"].as_str().unwrap());
    let started = Instant::now();
    let (code, report, out) = plugin_test(&wasm, &[], &[]);
    eprintln!(
        "python template: built in {seconds:.1}s, tested in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_keeps_the_contract(code, &report, &out);
}

#[test]
fn the_javascript_template_builds_and_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (project, said) = plugin_new(dir.path(), "kit-js-store", "javascript");
    let build_command = said["project"]["build"].as_str().unwrap();
    assert_eq!(build_command, "npm install && npm run build");
    // `npm install` installs what package.json pins, the versions
    // plugins/js/package-lock.json pins for our own plugins: use those.
    let modules = root().join("plugins/js/node_modules");
    assert!(
        modules.join("@bytecodealliance/componentize-js").is_dir(),
        "no ComponentizeJS in {}: run scripts/build-plugins.sh js",
        modules.display()
    );
    std::os::unix::fs::symlink(&modules, project.join("node_modules")).unwrap();
    let seconds = build(
        Command::new("npm")
            .args(["run", "build"])
            .current_dir(&project),
        "needs Node.js 20 and npm (scripts/build-plugins.sh js)",
    );
    let wasm = project.join(said["project"]["component"].as_str().unwrap());
    let started = Instant::now();
    let (code, report, out) = plugin_test(&wasm, &[], &[]);
    eprintln!(
        "javascript template: built in {seconds:.1}s, tested in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_keeps_the_contract(code, &report, &out);
}

#[test]
fn the_c_template_builds_and_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (project, said) = plugin_new(dir.path(), "kit-c-store", "c");
    assert_eq!(said["project"]["build"], "make");
    let tools = root().join("plugins/target/c-tools");
    let adapter = std::fs::read_dir(&tools)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().contains("reactor") && p.extension().is_some_and(|e| e == "wasm")
        })
        .unwrap_or_else(|| {
            panic!(
                "no preview1 reactor adapter in {}: run scripts/build-plugins.sh c",
                tools.display()
            )
        });
    let seconds = build(
        Command::new("make")
            .arg(format!(
                "WIT_BINDGEN={}",
                tools.join("bin/wit-bindgen").display()
            ))
            .arg(format!(
                "WASM_TOOLS={}",
                root().join(".venv/bin/wasm-tools").display()
            ))
            .arg(format!("ADAPTER={}", adapter.display()))
            .current_dir(&project),
        "needs clang for wasm32-wasi, wit-bindgen and wasm-tools (scripts/build-plugins.sh c)",
    );
    let wasm = project.join(said["project"]["component"].as_str().unwrap());
    let started = Instant::now();
    let (code, report, out) = plugin_test(&wasm, &[], &[]);
    eprintln!(
        "c template: built in {seconds:.1}s, tested in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_keeps_the_contract(code, &report, &out);
}

/// Each rule the `breaks` fixture can break: the flags that make it, the
/// check that must fail, and words its detail must hold.
const BROKEN: &[(&str, &[&str], &str, &str)] = &[
    (
        "log-secret",
        &[],
        "secret-hidden",
        "appears as is in handle's log lines",
    ),
    (
        "error-base64",
        &[],
        "secret-hidden",
        "appears base64-encoded in handle's error message",
    ),
    (
        "stdout-hex",
        &[],
        "secret-hidden",
        "appears hex-encoded in handle's stdout",
    ),
    (
        "log-token",
        &["--secret", "token=env:KIT_TOKEN"],
        "secret-hidden",
        "secret setting 'token' appears URL-encoded in preflight's log lines",
    ),
    ("undescribed-setting", &[], "describe-settings", "'region'"),
    ("trap", &[], "rotation", "handle crashed"),
    (
        "preflight-writes",
        &[],
        "preflight-changes-nothing",
        "created path",
    ),
    (
        "ignore-destination",
        &[],
        "preflight-unreachable",
        "preflight accepted",
    ),
    ("refuse-abandoned", &[], "resume", "failed in preflight"),
    ("slow", &["--timeout", "1s"], "limits", "ran out of time"),
    (
        "hungry",
        &["--memory", "64MiB"],
        "limits",
        "ran out of memory",
    ),
];

#[test]
fn a_handler_breaking_a_rule_fails_that_rules_check() {
    let wasm = plugin("fixture_breaks");
    let env = [("KIT_TOKEN", "tok-0123456789-secret")];
    // Honest, it keeps the contract: each failure below is its rule's.
    let (code, report, out) = plugin_test(&wasm, &[], &env);
    assert_keeps_the_contract(code, &report, &out);
    for (rule, flags, check_name, words) in BROKEN {
        let setting = format!("break={rule}");
        let mut args = vec!["--config", setting.as_str()];
        args.extend_from_slice(flags);
        let (code, report, out) = plugin_test(&wasm, &args, &env);
        assert_eq!(code, Some(1), "{rule}: {}", show(&out));
        assert_eq!(report["passed"], false, "{rule}");
        let found = check(&report, check_name);
        assert_eq!(found["status"], "fail", "{rule}: {report:#}");
        let detail = found["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{rule}: {detail}");
        // The report quotes what the plugin said, never its secrets.
        assert!(!show(&out).contains(env[0].1), "{rule}: {}", show(&out));
    }
}

#[test]
fn the_text_report_names_the_broken_rule() {
    let wasm = plugin("fixture_breaks").to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let args = ["plugin", "test", &wasm, "--config", "break=error-base64"];
    let out = keyrot(dir.path(), &args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .position(|l| l.starts_with("✗ secret-hidden"))
        .unwrap_or_else(|| panic!("no failed secret-hidden line:\n{stdout}"));
    let why = stdout.lines().nth(line + 1).unwrap();
    assert!(
        why.contains("base64-encoded in handle's error message"),
        "{stdout}"
    );
    assert!(stdout.contains("fix the failed checks"), "{stdout}");
}

#[test]
fn an_http_handler_is_tested_against_its_authors_fake() {
    let github = FakeGitHub::start();
    let api = format!("api-url={}", github.url);
    let repo = format!("repo={}", FakeGitHub::REPO);
    let args = [
        "--allow-host",
        &github.url,
        "--config",
        &api,
        "--config",
        &repo,
        "--secret",
        "token=env:GITHUB_TOKEN",
    ];
    let (code, report, out) = plugin_test(
        &plugin("github"),
        &args,
        &[("GITHUB_TOKEN", FakeGitHub::TOKEN)],
    );
    assert!(!show(&out).contains(FakeGitHub::TOKEN), "{}", show(&out));
    assert_eq!(code, Some(0), "{report:#}");
    // The destination moved to a closed loopback port, granted instead.
    let unreachable = check(&report, "preflight-unreachable");
    assert_eq!(unreachable["status"], "pass", "{report:#}");
    let detail = unreachable["detail"].as_str().unwrap();
    assert!(
        detail.contains("setting 'api-url' pointed at http://127.0.0.1:"),
        "{detail}"
    );
    assert_eq!(
        check(&report, "handle-failure")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(check(&report, "resume")["status"], "pass", "{report:#}");
    // No directory to watch: said, not passed.
    let watched = check(&report, "preflight-changes-nothing");
    assert_eq!(watched["status"], "skip", "{report:#}");
    // The fake holds the key of the last rotation.
    let stored = github.secrets();
    assert!(
        stored.contains_key("repos/octo/app/AWS_ACCESS_KEY_ID"),
        "{stored:?}"
    );
}

#[test]
fn bad_input_is_exit_2_and_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyrot(dir.path(), &["plugin", "test", "missing.wasm"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // A required setting a real run would need too.
    let hello = plugin("rust_hello").to_string_lossy().into_owned();
    let out = keyrot(dir.path(), &["plugin", "test", &hello], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("--config target=VALUE"),
        "{}",
        show(&out)
    );

    // A reporter is not a handler.
    let webhook = plugin("webhook").to_string_lossy().into_owned();
    let out = keyrot(dir.path(), &["plugin", "test", &webhook], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("tests new-key handlers"),
        "{}",
        show(&out)
    );

    // `plugin new`: a name no toolchain takes, a directory that exists.
    let out = keyrot(
        dir.path(),
        &["plugin", "new", "My_Store", "--lang", "rust"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("lower-case letters"), "{}", show(&out));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let out = keyrot(dir.path(), &["plugin", "new", "taken", "--lang", "c"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("already exists"), "{}", show(&out));
}
