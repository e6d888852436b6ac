//! Fleets through the real binary against moto: several `--user` flags, a
//! users file of hundreds at concurrency 8, `--all-users --path-prefix`,
//! one refused user among many, throttling on a third of the calls (the
//! fault proxy), a second account through `--role-arn`, a job file with
//! two targets in two accounts, and Ctrl-C in the middle of a fleet.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use aws_config::BehaviorVersion;
use aws_sdk_iam::config::{Credentials, Region};
use serde_json::Value;

use crate::proxy::{FaultProxy, Faults};
use crate::util::{Moto, plugin, show};

/// The account moto gives the default credentials.
const ACCOUNT: &str = "123456789012";
/// A second account, reached by assuming a role in it.
const OTHER_ACCOUNT: &str = "210987654321";

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// Creates `count` users named `prefix-N` (under IAM `path`), each with
/// one active key; returns (user, key) pairs.
async fn users(
    iam: &aws_sdk_iam::Client,
    prefix: &str,
    path: &str,
    count: usize,
) -> Vec<(String, String)> {
    let mut made = Vec::new();
    // A few at a time: moto is quick, but one by one adds up.
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let batch = chunk.iter().map(|i| async move {
            let user = format!("{prefix}-{i:03}");
            iam.create_user()
                .user_name(&user)
                .path(path)
                .send()
                .await
                .expect("create user");
            let key = iam
                .create_access_key()
                .user_name(&user)
                .send()
                .await
                .expect("create key");
            (user, key.access_key().unwrap().access_key_id().to_string())
        });
        made.extend(futures_util::future::join_all(batch).await);
    }
    made
}

/// The fleet flags for the `hello` plugin against `endpoint`, plus `extra`.
fn fleet_args(endpoint: &str, state: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--plugin",
        plugin("hello").to_str().unwrap(),
        "--endpoint-url",
        endpoint,
        "--state-dir",
        state.to_str().unwrap(),
        "--plugin-log",
        "show",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // JSON unless the test asks for another output.
    if !extra.contains(&"--output") {
        args.extend(["--output".to_string(), "json".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(moto: &Moto, endpoint: &str, state: &std::path::Path, extra: &[&str]) -> Output {
    let args = fleet_args(endpoint, state, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    checked(moto, moto.keyrot(&args))
}

/// `out`, once proven to hold no secret moto ever issued.
fn checked(moto: &Moto, out: Output) -> Output {
    let printed = show(&out);
    for secret in moto.all_secrets() {
        assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
    }
    out
}

/// Each user's run in a fleet report, by user name.
fn runs(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    doc["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("a fleet report has runs: {doc}"))
        .iter()
        .map(|r| (r["user"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// Asserts `user` was rotated: one active key, the new one the report
/// names, which the handler was given, and the old key gone.
async fn assert_rotated(iam: &aws_sdk_iam::Client, run: &Value, user: &str, old: &str) {
    assert_eq!(run["outcome"], "rotated", "{user}: {run}");
    let new = run["new_key"]["access_key_id"].as_str().unwrap();
    assert_ne!(new, old);
    let keys = keys(iam, user).await;
    assert_eq!(
        keys,
        vec![(new.to_string(), "Active".to_string())],
        "{user}"
    );
    let log = run["handler_log"].to_string();
    assert!(log.contains(new), "{user}: the handler got {new}: {log}");
}

async fn keys(iam: &aws_sdk_iam::Client, user: &str) -> Vec<(String, String)> {
    let out = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("list keys");
    out.access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap().to_string(),
                k.status().unwrap().as_str().to_string(),
            )
        })
        .collect()
}

/// An IAM client of moto's signing as the default credentials.
fn admin(moto: &Moto) -> aws_sdk_iam::Client {
    let (id, secret) = moto.credentials();
    moto.client_for(&id, &secret)
}

/// Credentials for a role in `account`, from moto's STS (moto keeps a
/// separate IAM per account and maps these credentials to it).
async fn assume(moto: &Moto, account: &str) -> (aws_sdk_iam::Client, String) {
    let role = format!("arn:aws:iam::{account}:role/keyrot");
    let (id, secret) = moto.credentials();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new(id, secret, None, None, "tests"))
        .load()
        .await;
    let out = aws_sdk_sts::Client::new(&config)
        .assume_role()
        .role_arn(&role)
        .role_session_name("tests")
        .send()
        .await
        .expect("assume role");
    let c = out.credentials().unwrap();
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "tests",
    );
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(creds)
        .build();
    (aws_sdk_iam::Client::from_conf(config), role)
}

#[tokio::test]
async fn several_user_flags_rotate_each_user_and_report_a_fleet() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 3).await;
    let state = tempfile::tempdir().unwrap();
    let mut extra = Vec::new();
    for (user, _) in &made {
        extra.extend(["--user", user.as_str()]);
    }
    let out = run(&moto, &moto.url, state.path(), &extra);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["summary"]["users"], 3, "{doc}");
    assert_eq!(doc["summary"]["rotated"], 3, "{doc}");
    assert_eq!(doc["summary"]["exit_code"], 0, "{doc}");
    assert_eq!(doc["summary"]["accounts"], serde_json::json!([ACCOUNT]));
    let runs = runs(&doc);
    for (user, old) in &made {
        assert_eq!(runs[user]["account"], ACCOUNT);
        assert!(runs[user]["duration_ms"].is_u64(), "{}", runs[user]);
        assert_rotated(&iam, &runs[user], user, old).await;
    }

    // The text report: a line per user naming the account, and a summary.
    let out = run(
        &moto,
        &moto.url,
        state.path(),
        &[&extra[..], &["--output", "text"]].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for (user, _) in &made {
        assert!(
            text.lines().any(|l| l.starts_with(ACCOUNT)
                && l.contains(user.as_str())
                && l.contains("rotated")),
            "{text}"
        );
    }
    assert!(text.contains("3 users in 1 account"), "{text}");
}

#[tokio::test]
async fn a_users_file_of_hundreds_rotates_at_concurrency_8() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "bot", "/", 240).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    let mut listing = String::from("# the CI fleet\n\n");
    for (user, _) in &made {
        listing.push_str(&format!("{user}   # a comment\n"));
    }
    std::fs::write(&file, listing).unwrap();
    let out = run(
        &moto,
        &moto.url,
        &dir.path().join("state"),
        &[
            "--users-file",
            file.to_str().unwrap(),
            "--concurrency",
            "8",
            "--no-verify",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["summary"]["rotated"], 240, "{}", doc["summary"]);
    let runs = runs(&doc);
    // The report keeps the file's order.
    let order: Vec<&str> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = made.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(order, expected);
    for (user, old) in &made {
        assert_rotated(&iam, &runs[user], user, old).await;
    }
    // Not a terminal: one plain progress line per user on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[240/240]"), "{stderr}");
}

#[tokio::test]
async fn all_users_under_a_path_prefix_are_rotated_and_no_one_else() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let ci = users(&iam, "ci", "/ci/", 5).await;
    let people = users(&iam, "person", "/people/", 3).await;
    let state = tempfile::tempdir().unwrap();
    let out = run(
        &moto,
        &moto.url,
        state.path(),
        &["--all-users", "--path-prefix", "/ci/"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    let runs = runs(&doc);
    assert_eq!(runs.len(), 5, "{doc}");
    for (user, old) in &ci {
        assert_rotated(&iam, &runs[user], user, old).await;
    }
    for (user, old) in &people {
        assert_eq!(keys(&iam, user).await, vec![(old.clone(), "Active".into())]);
    }

    // `status` looks at the same selection.
    let out = moto.keyrot(&[
        "status",
        "--all-users",
        "--path-prefix",
        "/ci/",
        "--endpoint-url",
        &moto.url,
        "--state-dir",
        state.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    let shown: Vec<&str> = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = ci.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn one_refused_user_does_not_stop_the_others() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 6).await;
    // Two active keys: keyrot cannot know which one is in use, and refuses.
    let (refused, first) = made[2].clone();
    let second = iam
        .create_access_key()
        .user_name(&refused)
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string();
    let state = tempfile::tempdir().unwrap();
    let mut extra = vec!["--concurrency", "3"];
    for (user, _) in &made {
        extra.extend(["--user", user.as_str()]);
    }
    let out = run(&moto, &moto.url, state.path(), &extra);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["summary"]["rotated"], 5, "{doc}");
    assert_eq!(doc["summary"]["failed"], 1, "{doc}");
    let runs = runs(&doc);
    assert_eq!(runs[&refused]["outcome"], "failed");
    for (user, old) in made.iter().filter(|(u, _)| *u != refused) {
        assert_rotated(&iam, &runs[user], user, old).await;
    }
    let mut left = keys(&iam, &refused).await;
    left.sort();
    let mut both = vec![(first, "Active".to_string()), (second, "Active".into())];
    both.sort();
    assert_eq!(left, both, "the refused user's keys are untouched");

    // The text report names the user and why.
    let out = run(
        &moto,
        &moto.url,
        state.path(),
        &[&extra[..], &["--output", "text"]].concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{refused} (account {ACCOUNT}): failed"))),
        "{text}"
    );
}

#[tokio::test]
async fn throttling_on_a_third_of_the_calls_fails_no_user() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 24).await;
    let proxy = FaultProxy::start(
        &moto.url,
        Faults {
            throttle_every: Some(3),
            ..Faults::default()
        },
    );
    let state = tempfile::tempdir().unwrap();
    let mut extra = vec!["--concurrency", "8"];
    for (user, _) in &made {
        extra.extend(["--user", user.as_str()]);
    }
    let out = run(&moto, &proxy.url, state.path(), &extra);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(proxy.seen().throttled >= 24, "{:?}", proxy.seen());
    let doc = json(&out);
    let runs = runs(&doc);
    for (user, old) in &made {
        assert_rotated(&iam, &runs[user], user, old).await;
    }
}

#[tokio::test]
async fn a_role_in_a_second_account_rotates_that_accounts_users() {
    let moto = Moto::start();
    let home = admin(&moto);
    let (other, role) = assume(&moto, OTHER_ACCOUNT).await;
    let theirs = users(&other, "ci", "/", 2).await;
    // A user of the same name at home, which must not be touched.
    let ours = users(&home, "ci", "/", 1).await;
    let state = tempfile::tempdir().unwrap();
    let out = run(
        &moto,
        &moto.url,
        state.path(),
        &[
            "--user",
            &theirs[0].0,
            "--user",
            &theirs[1].0,
            "--role-arn",
            &role,
            "--external-id",
            "fleet-tests",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(
        doc["summary"]["accounts"],
        serde_json::json!([OTHER_ACCOUNT])
    );
    let runs = runs(&doc);
    for (user, old) in &theirs {
        assert_eq!(runs[user]["account"], OTHER_ACCOUNT);
        assert!(
            runs[user]["caller_arn"]
                .as_str()
                .unwrap()
                .contains(OTHER_ACCOUNT)
        );
        assert_rotated(&other, &runs[user], user, old).await;
    }
    assert_eq!(
        keys(&home, &ours[0].0).await,
        vec![(ours[0].1.clone(), "Active".into())]
    );
}

#[tokio::test]
async fn a_job_file_with_two_targets_in_two_accounts() {
    let moto = Moto::start();
    let home = admin(&moto);
    let (other, role) = assume(&moto, OTHER_ACCOUNT).await;
    let ours = users(&home, "app", "/", 2).await;
    let theirs = users(&other, "ci", "/ci/", 3).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("home.txt"),
        format!("{}\n{}\n", ours[0].0, ours[1].0),
    )
    .unwrap();
    std::fs::copy(plugin("hello"), dir.path().join("hello.wasm")).unwrap();
    let job = dir.path().join("fleet.toml");
    std::fs::write(
        &job,
        format!(
            r#"
plugin = "hello.wasm"
concurrency = 2
verify = false

[aws]
endpoint-url = "{url}"

[config]
greeting = "hi"

[[target]]
name = "home"
users-file = "home.txt"

[[target]]
name = "other"
all-users = true
path-prefix = "/ci/"
[target.aws]
role-arn = "{role}"
[target.config]
greeting = "howdy"
"#,
            url = moto.url
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = checked(
        &moto,
        moto.keyrot(&[
            "--job",
            job.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            "json",
            "--plugin-log",
            "show",
        ]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(
        doc["summary"]["accounts"],
        serde_json::json!([ACCOUNT, OTHER_ACCOUNT])
    );
    let runs = runs(&doc);
    assert_eq!(runs.len(), 5, "{doc}");
    for (user, old) in &ours {
        assert_eq!(runs[user]["account"], ACCOUNT);
        assert_rotated(&home, &runs[user], user, old).await;
        assert!(runs[user]["handler_log"].to_string().contains("hi,"));
    }
    for (user, old) in &theirs {
        assert_eq!(runs[user]["account"], OTHER_ACCOUNT);
        assert_rotated(&other, &runs[user], user, old).await;
        // The target's own setting replaced the default.
        assert!(runs[user]["handler_log"].to_string().contains("howdy,"));
    }

    // `--user` picks from the targets; a name in none is refused before
    // anything is rotated.
    let out = moto.keyrot(&[
        "--job",
        job.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--user",
        &ours[0].0,
        "--user",
        "nobody-here",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody-here"),
        "{}",
        show(&out)
    );
    let rotated = runs[&ours[0].0]["new_key"]["access_key_id"]
        .as_str()
        .unwrap();
    assert_eq!(
        keys(&home, &ours[0].0).await,
        vec![(rotated.to_string(), "Active".into())],
        "nothing rotated again"
    );

    // An unknown key in a target is an error that says where.
    std::fs::write(
        dir.path().join("typo.toml"),
        "plugin = \"hello.wasm\"\n[[target]]\nusers = [\"a\"]\nallow-host = [\"x\"]\n",
    )
    .unwrap();
    let out = moto.keyrot(&["--job", dir.path().join("typo.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field `allow-host`"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn bad_input_in_a_fleet_changes_nothing() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    std::fs::write(&file, format!("{}\nnot a name\n", made[0].0)).unwrap();
    let state = dir.path().join("state");
    for extra in [
        vec!["--users-file", file.to_str().unwrap()],
        vec!["--user", &made[0].0, "--concurrency", "0"],
        vec!["--all-users", "--path-prefix", "ci/"],
        vec!["--user", &made[0].0, "--role-arn", "arn:aws:iam::1:user/x"],
    ] {
        let out = run(&moto, &moto.url, &state, &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", show(&out));
    }
    for (user, old) in &made {
        assert_eq!(keys(&iam, user).await, vec![(old.clone(), "Active".into())]);
    }
}

#[tokio::test]
async fn ctrl_c_in_a_fleet_starts_no_new_user_and_reports_every_user() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    let names: Vec<&str> = made.iter().map(|(u, _)| u.as_str()).collect();
    std::fs::write(&file, names.join("\n")).unwrap();
    let state = dir.path().join("state");
    let args = fleet_args(
        &moto.url,
        &state,
        &["--users-file", file.to_str().unwrap(), "--concurrency", "2"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut cmd, _home) = moto.command(&args, &[]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Once the first users are done, interrupt.
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("[3/") => break,
            Some(Ok(_)) => {}
            _ => panic!("the fleet never got going"),
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let out = checked(&moto, child.wait_with_output().unwrap());
    let stderr = drain.join().unwrap().join("\n");
    for secret in moto.all_secrets() {
        assert!(!stderr.contains(&secret), "a secret leaked:\n{stderr}");
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs(&doc);
    assert_eq!(runs.len(), 60, "every user is reported");
    let not_started = runs
        .values()
        .filter(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("not started"))
        })
        .count();
    assert!(not_started > 0, "{}", doc["summary"]);
    for (user, old) in &made {
        let keys = keys(&iam, user).await;
        let active: Vec<_> = keys.iter().filter(|(_, s)| s == "Active").collect();
        assert_eq!(active.len(), 1, "{user}: exactly one active key: {keys:?}");
        assert_eq!(keys.len(), 1, "{user}: no orphan: {keys:?}");
        match runs[user]["outcome"].as_str().unwrap() {
            "rotated" => assert_ne!(&active[0].0, old),
            _ => assert_eq!(&active[0].0, old, "{user}: {}", runs[user]),
        }
    }
}

/// Runs `cmd` (plus `extra`) on a pseudo-terminal with `script(1)`, as a
/// person would; returns what the terminal showed.
pub(crate) fn on_a_terminal(cmd: &std::process::Command, extra: &str) -> Output {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    line.push(' ');
    line.push_str(extra);
    let mut script = std::process::Command::new("script");
    script.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    script
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("run script(1)")
}

#[tokio::test]
async fn a_terminal_gets_a_progress_bar_and_quiet_gets_nothing() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 3).await;
    let state = tempfile::tempdir().unwrap();
    let mut extra = vec!["--output", "text"];
    for (user, _) in &made {
        extra.extend(["--user", user.as_str()]);
    }
    let args = fleet_args(&moto.url, state.path(), &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (cmd, _home) = moto.command(&args, &[("TERM", "xterm")]);
    let out = checked(&moto, on_a_terminal(&cmd, ""));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("rotated 3  skipped 0  failed 0"),
        "{screen}"
    );
    assert!(
        !screen.contains("[3/3]"),
        "no plain lines on a terminal: {screen}"
    );
    // The report follows the bar.
    assert!(screen.contains("3 users in 1 account"), "{screen}");

    // -q: neither the bar on a terminal nor lines off one.
    let out = checked(&moto, on_a_terminal(&cmd, "-q"));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        !screen.contains("skipped 0  failed 0"),
        "-q shows no bar: {screen}"
    );
    assert!(screen.contains("3 users in 1 account"), "{screen}");
    let quiet = run(
        &moto,
        &moto.url,
        state.path(),
        &[&extra[..], &["-q"]].concat(),
    );
    assert_eq!(quiet.status.code(), Some(0), "{}", show(&quiet));
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("[3/3]"),
        "{}",
        show(&quiet)
    );
}

#[tokio::test]
async fn with_older_than_a_nightly_run_rotates_exactly_the_keys_that_are_due() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 6).await;
    let state = tempfile::tempdir().unwrap();
    let all: Vec<&str> = made
        .iter()
        .flat_map(|(u, _)| ["--user", u.as_str()])
        .collect();
    // Half the fleet got new keys a moment ago; the other half's are older.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let fresh: Vec<&str> = made[..3]
        .iter()
        .flat_map(|(u, _)| ["--user", u.as_str()])
        .collect();
    let out = run(&moto, &moto.url, state.path(), &fresh);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let first = runs(&json(&out));

    let out = run(
        &moto,
        &moto.url,
        state.path(),
        &[&all[..], &["--older-than", "3s"]].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["summary"]["skipped"], 3, "{}", doc["summary"]);
    assert_eq!(doc["summary"]["rotated"], 3, "{}", doc["summary"]);
    let runs = runs(&doc);
    for (user, _) in &made[..3] {
        assert_eq!(runs[user]["outcome"], "skipped", "{user}");
        let kept = first[user]["new_key"]["access_key_id"].as_str().unwrap();
        assert_eq!(
            keys(&iam, user).await,
            vec![(kept.to_string(), "Active".into())]
        );
    }
    for (user, old) in &made[3..] {
        assert_rotated(&iam, &runs[user], user, old).await;
    }
}

#[tokio::test]
async fn bad_input_in_any_target_or_user_rotates_no_one() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 3).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin("hello"), dir.path().join("hello.wasm")).unwrap();
    let state = dir.path().join("state");
    let job = |name: &str, second: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "plugin = \"hello.wasm\"\nverify = false\n[aws]\nendpoint-url = \"{}\"\n\
                 [[target]]\nusers = [\"{}\", \"{}\"]\n[[target]]\n{second}\n",
                moto.url, made[0].0, made[1].0
            ),
        )
        .unwrap();
        path
    };
    let cases = [
        // The second target's secret cannot be read.
        (
            job(
                "secret.toml",
                &format!(
                    "users = [\"{}\"]\n[target.secrets]\ngreeting = \"env:NOT_SET_ANYWHERE\"",
                    made[2].0
                ),
            ),
            "NOT_SET_ANYWHERE",
        ),
        // The second target names a user of the first again.
        (
            job(
                "twice.toml",
                &format!("users = [\"{}\"]", made[0].0.to_uppercase()),
            ),
            "selected twice",
        ),
        // A user that does not exist.
        (
            job("unknown.toml", "users = [\"no-such-user\"]"),
            "no-such-user",
        ),
    ];
    for (path, why) in &cases {
        let out = checked(
            &moto,
            moto.keyrot(&[
                "--job",
                path.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ]),
        );
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{}",
            show(&out)
        );
    }
    for (user, old) in &made {
        assert_eq!(
            keys(&iam, user).await,
            vec![(old.clone(), "Active".into())],
            "{user}"
        );
    }

    // One user in two spellings on the command line is one user.
    let out = run(
        &moto,
        &moto.url,
        &state,
        &[
            "--user",
            &made[0].0,
            "--user",
            &made[0].0.to_uppercase(),
            "--user",
            &made[1].0,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)["runs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_target_that_cannot_be_reached_fails_alone() {
    let moto = Moto::start();
    let iam = admin(&moto);
    let made = users(&iam, "ci", "/", 3).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin("hello"), dir.path().join("hello.wasm")).unwrap();
    // Nothing listens on port 1 (tcpmux): the second target's AWS cannot
    // be reached. (A port freed here could be taken by another test.)
    let dead = "http://127.0.0.1:1".to_string();
    let job = dir.path().join("fleet.toml");
    std::fs::write(
        &job,
        format!(
            "plugin = \"hello.wasm\"\nverify = false\n[aws]\nendpoint-url = \"{}\"\n\
             [[target]]\nname = \"up\"\nusers = [\"{}\", \"{}\"]\n\
             [[target]]\nname = \"down\"\nusers = [\"{}\"]\n\
             [target.aws]\nendpoint-url = \"{dead}\"\nmax-attempts = 1\n",
            moto.url, made[0].0, made[1].0, made[2].0
        ),
    )
    .unwrap();
    let out = checked(
        &moto,
        moto.keyrot(&[
            "--job",
            job.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--output",
            "json",
        ]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = json(&out);
    let runs = runs(&doc);
    assert_eq!(runs[&made[0].0]["outcome"], "rotated");
    assert_eq!(runs[&made[1].0]["outcome"], "rotated");
    let down = &runs[&made[2].0];
    assert_eq!(down["outcome"], "failed", "{down}");
    assert!(
        down["error"]
            .as_str()
            .unwrap()
            .starts_with("target down: cannot tell which AWS account"),
        "{down}"
    );
    assert_eq!(
        keys(&iam, &made[2].0).await,
        vec![(made[2].1.clone(), "Active".into())]
    );
}

#[tokio::test]
async fn an_unknown_user_in_a_large_users_file_rotates_no_one() {
    let moto = Moto::start();
    let iam = admin(&moto);
    // Enough users that keyrot asks ListUsers once instead of each user.
    let made = users(&iam, "ci", "/", 24).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    let mut names: Vec<&str> = made.iter().map(|(u, _)| u.as_str()).collect();
    names.insert(12, "ghost-user");
    std::fs::write(&file, names.join("\n")).unwrap();
    let out = run(
        &moto,
        &moto.url,
        &dir.path().join("state"),
        &["--users-file", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no such IAM user in account 123456789012: ghost-user"),
        "{}",
        show(&out)
    );
    // The fleet's JSON shape, saying exit 2.
    assert_eq!(json(&out)["summary"]["exit_code"], 2);
    for (user, old) in &made {
        assert_eq!(keys(&iam, user).await, vec![(old.clone(), "Active".into())]);
    }
}
