//! The first hour, through the real binary: help that shows the formats,
//! colour only for terminals, errors that say what to do (and name where a
//! bad value came from), a readable `plugin inspect`, the compile notice,
//! and `keyrot cache list` / `clean`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::docs::{commands, help_flags};
use crate::util::{Moto, Reply, TestServer, plugin, show};

fn path(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the binary with a cleared environment (no AWS config, no
/// NO_COLOR) plus `env`, for commands that must not reach AWS at all: any
/// IAM call would go to a closed port.
fn keyrot(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyrot-cache");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("KEYROT_CACHE_DIR", &cache)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run keyrot")
}

#[test]
fn help_groups_the_options_and_shows_their_formats() {
    let out = keyrot(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let help = stdout(&out);
    for text in [
        "Plugin:",
        "Grants:",
        "AWS:",
        "Limits:",
        "Output:",
        "--allow-dir <HOST_PATH[:GUEST_PATH][:ro]>",
        "--inject-header <HOST=HEADER:VALUE>",
        "--color <WHEN>",
        "Environment:",
        "KEYROT_LOG",
        "KEYROT_CACHE_DIR",
        "NO_COLOR",
        "AWS_PROFILE",
    ] {
        assert!(help.contains(text), "--help lacks {text:?}:\n{help}");
    }
    let grants = help.find("Grants:").unwrap();
    let allow_dir = help.find("--allow-dir <").unwrap();
    let aws = help.find("AWS:").unwrap();
    assert!(grants < allow_dir && allow_dir < aws, "{help}");
}

#[test]
fn logs_are_coloured_only_when_asked_or_on_a_terminal() {
    let hello = path("hello");
    let args = ["plugin", "inspect", hello.as_str(), "-v"];
    // stderr is a pipe here: no colour by default, even without NO_COLOR.
    let plain = keyrot(&args, &[]);
    assert_eq!(plain.status.code(), Some(0), "{}", show(&plain));
    assert!(
        stderr(&plain).contains("DEBUG"),
        "a log line: {}",
        show(&plain)
    );
    assert!(!stderr(&plain).contains('\x1b'), "{:?}", stderr(&plain));

    let always = keyrot(
        &["plugin", "inspect", &hello, "-v", "--color", "always"],
        &[],
    );
    assert!(stderr(&always).contains('\x1b'), "{:?}", stderr(&always));
    let no_color = keyrot(&args, &[("NO_COLOR", "1")]);
    assert!(!stderr(&no_color).contains('\x1b'));
    let never = keyrot(
        &["plugin", "inspect", &hello, "-v", "--color", "never"],
        &[],
    );
    assert!(!stderr(&never).contains('\x1b'));
}

#[test]
fn inspect_is_aligned_pins_ready_to_paste_and_lists_imports_with_v() {
    let github = path("github");
    let sha = hex::encode(Sha256::digest(std::fs::read(&github).unwrap()));
    let out = keyrot(&["plugin", "inspect", &github], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("  --plugin-sha256 {sha}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("  plugin-sha256 = \"{sha}\"")),
        "{text}"
    );
    assert!(
        !text.contains("wasi:http/outgoing-handler"),
        "raw imports only with -v: {text}"
    );
    assert!(text.contains("interfaces (-v lists them)"), "{text}");

    // Each setting's description starts in the same column.
    let json = keyrot(&["plugin", "inspect", &github, "--output", "json"], &[]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let settings = report["settings"].as_array().unwrap();
    assert!(settings.len() > 1, "{report}");
    let columns: Vec<usize> = settings
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap();
            let description = s["description"].as_str().unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("  {name} ")))
                .unwrap_or_else(|| panic!("no line for {name}: {text}"));
            line.find(description).expect("description on its line")
        })
        .collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");

    let verbose = keyrot(&["plugin", "inspect", &github, "-v"], &[]);
    assert!(
        stdout(&verbose).contains("  wasi:http/outgoing-handler"),
        "{}",
        show(&verbose)
    );
}

#[test]
fn the_first_compile_of_a_large_plugin_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let js = path("js-hello");
    let first = keyrot(
        &["plugin", "inspect", &js],
        &[("KEYROT_CACHE_DIR", cache_dir)],
    );
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    let said = stderr(&first);
    assert!(
        said.contains("compiling js-hello.wasm (") && said.contains("once, ~"),
        "{said}"
    );
    assert!(said.contains("cached afterwards"), "{said}");
    let again = keyrot(
        &["plugin", "inspect", &js],
        &[("KEYROT_CACHE_DIR", cache_dir)],
    );
    assert!(!stderr(&again).contains("compiling"), "{}", show(&again));
    let uncached = keyrot(
        &["plugin", "inspect", &js, "--no-cache"],
        &[("KEYROT_CACHE_DIR", cache_dir)],
    );
    assert!(
        stderr(&uncached).contains("not cached: --no-cache"),
        "{}",
        show(&uncached)
    );
    // A small plugin compiles in milliseconds: nothing to announce.
    let small = keyrot(
        &["plugin", "inspect", &path("hello")],
        &[("KEYROT_CACHE_DIR", cache_dir)],
    );
    assert!(!stderr(&small).contains("compiling"), "{}", show(&small));
}

#[test]
fn cache_list_shows_entries_and_clean_removes_them() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("keyrot");
    let env = [("KEYROT_CACHE_DIR", dir.to_str().unwrap())];
    let empty = keyrot(&["cache", "list"], &env);
    assert_eq!(empty.status.code(), Some(0), "{}", show(&empty));
    assert!(stdout(&empty).contains("0 entries"), "{}", show(&empty));

    let hello = path("hello");
    let sha = hex::encode(Sha256::digest(std::fs::read(&hello).unwrap()));
    assert_eq!(
        keyrot(&["plugin", "inspect", &hello], &env).status.code(),
        Some(0)
    );
    let list = keyrot(&["cache", "list"], &env);
    let text = stdout(&list);
    assert!(text.contains("1 entry"), "{text}");
    assert!(text.contains(&sha), "{text}");
    let json = keyrot(&["cache", "list", "--output", "json"], &env);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["entries"][0]["plugin_sha256"], sha.as_str());
    assert!(report["entries"][0]["size"].as_u64().unwrap() > 0);

    let young = keyrot(&["cache", "clean", "--older-than", "1d"], &env);
    assert_eq!(young.status.code(), Some(0), "{}", show(&young));
    assert!(
        stdout(&young).contains("removed 0 entries"),
        "{}",
        show(&young)
    );
    // The entry is kept (and seen/, the record of hello.wasm's sha256, if
    // the file was old enough to be recorded).
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "seen")
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");

    let clean = keyrot(&["cache", "clean"], &env);
    assert!(
        stdout(&clean).contains("removed 1 entry"),
        "{}",
        show(&clean)
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let bad = keyrot(&["cache", "clean", "--older-than", "soon"], &env);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
}

#[test]
fn a_setting_typo_suggests_the_closest_name() {
    let out = keyrot(
        &[
            "--plugin",
            &path("hello"),
            "--user",
            "ci-bot",
            "--config",
            "greting=hi",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("'greting' (did you mean 'greeting'?)"),
        "{}",
        show(&out)
    );
}

#[test]
fn job_file_values_are_named_by_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    let hello = path("hello");
    let run = |body: &str| {
        std::fs::write(
            &job,
            format!("plugin = \"{hello}\"\nuser = \"ci-bot\"\n{body}"),
        )
        .unwrap();
        keyrot(&["--job", job.to_str().unwrap()], &[])
    };
    for (body, key, flag) in [
        (
            "allow-dirs = [\"no-such-dir\"]\n",
            "allow-dirs",
            "--allow-dir",
        ),
        ("timeout = \"soon\"\n", "timeout", "--timeout"),
        (
            "plugin-sha256 = \"abc\"\n",
            "plugin-sha256",
            "--plugin-sha256",
        ),
        (
            "inject-headers = [\"api.github.com=Authorization:{env:PATH}\"]\n",
            "inject-headers",
            "--inject-header",
        ),
        (
            "[secrets]\ntoken = \"env:KEYROT_TEST_UNSET\"\n",
            "[secrets] token",
            "--secret",
        ),
    ] {
        let out = run(body);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("job file {}: {key}", job.display())),
            "{body}: {err}"
        );
        assert!(
            !err.contains(&format!("{flag} ")),
            "{body}: names the flag: {err}"
        );
    }
}

/// A plain-HTTP API: `--allow-host http://127.0.0.1:PORT` with the header
/// host written `127.0.0.1:PORT` (as the advice says) gets the header; the
/// header host alone gets advice that, followed, works.
#[tokio::test]
async fn a_header_for_a_plain_http_host_is_injected_as_the_advice_says() {
    let api = TestServer::start(|r| match r.header("authorization") {
        Some("Bearer t0ken") => Reply::new(200, "ok"),
        _ => Reply::new(401, "no token"),
    });
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let url = format!("url={}/x", api.url);
    let inject = format!(
        "127.0.0.1:{}=Authorization:Bearer {{env:API_TOKEN}}",
        api.port
    );
    let env = [("API_TOKEN", "t0ken")];
    let refused = moto.rotate(
        "fixture_http",
        &["--config", &url, "--inject-header", &inject],
        &env,
    );
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    moto.assert_only_key("ci-bot", &old).await;
    let advice = format!("--allow-host http://127.0.0.1:{} for plain HTTP", api.port);
    assert!(stderr(&refused).contains(&advice), "{}", show(&refused));

    let allow = format!("http://127.0.0.1:{}", api.port);
    let out = moto.rotate(
        "fixture_http",
        &[
            "--config",
            &url,
            "--allow-host",
            &allow,
            "--inject-header",
            &inject,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(api.requests().len(), 1);
    assert_eq!(
        api.requests()[0].header("authorization"),
        Some("Bearer t0ken")
    );
    assert!(!show(&out).contains("t0ken"), "{}", show(&out));
}

/// The hint that names the flag is in the error itself: `-q` hides the
/// WARN line, not the reason.
#[tokio::test]
async fn a_denied_host_and_its_flag_are_in_the_final_error() {
    // The granted host redirects the plugin to one it was not granted.
    let other = TestServer::start(|_| Reply::new(200, "ok"));
    let target = format!("{}/x", other.url);
    let allowed = TestServer::start(move |_| Reply::new(302, "").header("location", &target));
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let url = format!("url={}/x", allowed.url);
    let allow = format!("http://127.0.0.1:{}", allowed.port);
    let out = moto.rotate(
        "fixture_http",
        &[
            "-q",
            "--output",
            "json",
            "--config",
            &url,
            "--config",
            "follow=true",
            "--allow-host",
            &allow,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    let hint = format!("to allow it: --allow-host http://127.0.0.1:{}", other.port);
    let err = stderr(&out);
    assert!(!err.contains("WARN"), "-q: {err}");
    assert!(err.contains(&hint), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["error"].as_str().unwrap_or("").contains(&hint),
        "{report}"
    );
}

/// A user with no keys gets one: nothing to retire, exit 0.
#[tokio::test]
async fn a_user_with_no_keys_gets_one() {
    let moto = Moto::start();
    moto.create_user("ci-bot").await;
    let out = moto.rotate("hello", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "rotated");
    assert_eq!(
        report["old_keys"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    assert_eq!(
        moto.keys("ci-bot").await,
        [(new.to_string(), "Active".to_string())]
    );
}

/// A secret setting put under `[config]` in a job file is told to move to
/// `[secrets]`, not to use a flag.
#[test]
fn a_secret_under_config_in_a_job_file_is_told_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "plugin = \"{}\"\nuser = \"ci-bot\"\nallow-hosts = [\"api.github.com\"]\n\
             [config]\nrepo = \"o/r\"\ntoken = \"oops\"\n",
            path("github")
        ),
    )
    .unwrap();
    let out = keyrot(&["--job", job.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("move it from [config] to [secrets]"), "{err}");
    assert!(!err.contains("oops"), "{err}");
}

/// Global flags go before or after a subcommand; rotation flags are
/// refused with one (exit 2), naming the flag.
#[test]
fn global_flags_go_anywhere_and_rotation_flags_not_with_a_subcommand() {
    let hello = path("hello");
    let before = keyrot(
        &["-v", "--color", "never", "plugin", "inspect", &hello],
        &[],
    );
    assert_eq!(before.status.code(), Some(0), "{}", show(&before));
    assert!(stderr(&before).contains("DEBUG"), "{}", show(&before));
    let refused = keyrot(&["--user", "ci-bot", "plugin", "inspect", &hello], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        stderr(&refused)
            .contains("--user is for a rotation; it cannot be used with `keyrot plugin`"),
        "{}",
        show(&refused)
    );
    let refused = keyrot(
        &["cache", "list", "--endpoint-url", "http://127.0.0.1:9"],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
}

/// `-h` is a page: the usage and the main flags, each group titled; `--help`
/// has every flag, the examples, the environment and the exit codes.
#[test]
fn short_help_is_a_page_and_long_help_has_every_flag() {
    let short = stdout(&keyrot(&["-h"], &[]));
    let long = stdout(&keyrot(&["--help"], &[]));
    assert!(
        short.lines().count() <= 60,
        "-h is {} lines:\n{short}",
        short.lines().count()
    );
    let short_flags: Vec<String> = help_flags(&short)
        .into_iter()
        .map(|(_, f)| f.long)
        .collect();
    let long_flags: Vec<String> = help_flags(&long).into_iter().map(|(_, f)| f.long).collect();
    assert!(long_flags.len() >= 40, "{long_flags:?}");
    assert!(short_flags.len() <= 20, "{short_flags:?}");
    for flag in &short_flags {
        assert!(
            long_flags.contains(flag),
            "--{flag} is in -h but not in --help"
        );
    }
    for main in [
        "job",
        "dry-run",
        "plugin",
        "user",
        "config",
        "secret",
        "allow-host",
        "output",
    ] {
        assert!(
            short_flags.iter().any(|f| f == main),
            "-h lacks --{main}:\n{short}"
        );
    }
    for deep in [
        "wait-lock",
        "verify-timeout",
        "role-arn",
        "memory",
        "inject-header",
    ] {
        assert!(!short_flags.iter().any(|f| f == deep), "-h shows --{deep}");
        assert!(
            long_flags.iter().any(|f| f == deep),
            "--help lacks --{deep}"
        );
    }
    assert!(
        short.contains("keyrot --help"),
        "-h says where the rest is:\n{short}"
    );
    for part in ["Examples:", "Environment:", "Exit codes:"] {
        assert!(long.contains(part), "--help lacks {part}");
        assert!(!short.contains(part), "-h has {part}");
    }
}

/// Every flag of every command sits under a title that says what it is
/// for; the untitled "Options" holds only -h and -V.
#[test]
fn every_flag_sits_in_a_titled_group() {
    for path in commands() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout(&keyrot(&args, &[]));
        for (heading, flag) in help_flags(&help) {
            assert!(
                !heading.is_empty(),
                "{args:?}: --{} has no heading",
                flag.long
            );
            if heading == "Options" {
                assert!(
                    ["help", "version"].contains(&flag.long.as_str()),
                    "{args:?}: --{} is untitled (under Options)",
                    flag.long
                );
            }
        }
    }
}

/// `keyrot` alone: a short usage on stderr, exit 2, not an error wall.
#[test]
fn keyrot_alone_prints_a_short_usage() {
    let out = keyrot(&[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Usage: keyrot --plugin <PATH> --user <NAME>"),
        "{err}"
    );
    assert!(err.contains("keyrot --job <FILE>"), "{err}");
    assert!(
        err.contains("--dry-run") && err.contains("keyrot --help"),
        "{err}"
    );
    assert!(!err.contains("error"), "{err}");
    assert!(err.lines().count() <= 12, "{err}");
}

/// Global flags show in the help of the commands they mean something to,
/// and not elsewhere.
#[test]
fn global_flags_show_only_where_they_mean_something() {
    let shown = |args: &[&str], flag: &str| {
        let mut args = args.to_vec();
        args.push("--help");
        let help = stdout(&keyrot(&args, &[]));
        help_flags(&help).into_iter().any(|(_, f)| f.long == flag)
    };
    for (args, flag, expected) in [
        (&["rotate"][..], "plugin-log", true),
        (&["plugin", "inspect"][..], "no-cache", true),
        (&["plugin", "push"][..], "insecure-registry", true),
        (&["plugin", "verify"][..], "insecure-registry", true),
        (&["status"][..], "output", true),
        (&["journal", "show"][..], "output", true),
        (&["cache", "list"][..], "output", true),
        (&["cache", "list"][..], "color", true),
        (&["status"][..], "plugin-log", false),
        (&["status"][..], "no-cache", false),
        (&["status"][..], "insecure-registry", false),
        (&["journal", "clear"][..], "output", false),
        (&["journal", "show"][..], "force", false),
        (&["journal", "clear"][..], "force", true),
        (&["cache", "clean"][..], "no-cache", false),
        (&["plugin", "sign"][..], "output", false),
        (&["plugin", "sign"][..], "plugin-log", false),
    ] {
        assert_eq!(
            shown(args, flag),
            expected,
            "keyrot {} --help, --{flag}",
            args.join(" ")
        );
    }
}
