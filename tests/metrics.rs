//! Metrics through the real binary against moto: `status --output
//! prometheus` and a run's `--metrics-file`, each read back by the
//! reference client's own parser (`prometheus_client.parser`, from PyPI),
//! and compared with what IAM says.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::util::{Moto, plugin, show};

const DAY: u64 = 86_400;

/// One sample as the parser read it.
#[derive(Debug)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format with `prometheus_client`; returns
/// family name → (type, samples). Panics if the parser refuses it.
pub fn parse_prometheus(text: &[u8]) -> BTreeMap<String, (String, Vec<Sample>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.prom");
    std::fs::write(&file, text).unwrap();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert family.documentation, f"{family.name} has no HELP"
    families[family.name] = [family.type, [[s.labels, s.value] for s in family.samples]]
print(json.dumps(families))
"#,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("run {} (scripts/setup.sh makes it): {e}", python.display()));
    assert!(
        out.status.success(),
        "prometheus_client refused the metrics:\n{}\n---\n{}",
        String::from_utf8_lossy(text),
        show(&out)
    );
    let parsed: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .into_iter()
        .map(|(name, family)| {
            let kind = family[0].as_str().unwrap().to_string();
            let samples = family[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    labels: serde_json::from_value(s[0].clone()).unwrap(),
                    value: s[1].as_f64().unwrap(),
                })
                .collect();
            (name, (kind, samples))
        })
        .collect()
}

/// `promtool check metrics`: Prometheus' own lint of names, units, help
/// and types. Panics with what it found.
pub fn promtool_lint(text: &[u8]) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run promtool (scripts/setup.sh installs it): {e}"));
    child.stdin.take().unwrap().write_all(text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}\n---\n{}",
        show(&out),
        String::from_utf8_lossy(text)
    );
}

/// The samples of `family` whose labels include every pair of `having`.
pub fn samples<'a>(
    metrics: &'a BTreeMap<String, (String, Vec<Sample>)>,
    family: &str,
    having: &[(&str, &str)],
) -> Vec<&'a Sample> {
    metrics
        .get(family)
        .map(|(_, samples)| samples.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| {
            having
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one sample of `family` with labels `having`.
fn one(
    metrics: &BTreeMap<String, (String, Vec<Sample>)>,
    family: &str,
    having: &[(&str, &str)],
) -> f64 {
    let found = samples(metrics, family, having);
    assert_eq!(found.len(), 1, "{family} {having:?}: {found:?}");
    found[0].value
}

/// IAM's CreateDate of `key`, as Unix seconds.
async fn created(moto: &Moto, user: &str, key: &str) -> f64 {
    let out = moto
        .client
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let meta = out
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .expect("the key is listed");
    meta.create_date().unwrap().secs() as f64
}

#[tokio::test]
async fn status_metrics_parse_and_say_what_iam_says() {
    let moto = Moto::start();
    let mut keys = BTreeMap::new();
    for user in ["quiet-bot", "used-bot", "two-bot"] {
        moto.create_user(user).await;
        keys.insert(user, moto.create_key(user, "Active").await);
    }
    let second = moto.create_key("two-bot", "Active").await;
    moto.create_user("no-key-bot").await;
    // A consumer signs one call with used-bot's key: IAM records its use.
    let (_, secret) = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == &keys["used-bot"])
        .unwrap();
    moto.client_for(&keys["used-bot"], &secret)
        .list_users()
        .send()
        .await
        .expect("the key works");

    // Keys look 80 days old: due in 10 days of 90, within the 14-day warning.
    let offset = (80 * DAY).to_string();
    let out = moto.keyrot_with_env(
        &[
            "status",
            "--user",
            "quiet-bot",
            "--user",
            "used-bot",
            "--user",
            "two-bot",
            "--user",
            "no-key-bot",
            "--user",
            "ghost",
            "--older-than",
            "90d",
            "--warn-within",
            "14d",
            "--output",
            "prometheus",
            "--endpoint-url",
            &moto.url,
        ],
        &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
    );
    // A user that cannot be looked at is exit 2, the others still shown.
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    for secret in moto.all_secrets() {
        assert!(!show(&out).contains(&secret), "a secret leaked");
    }
    promtool_lint(&out.stdout);
    let m = parse_prometheus(&out.stdout);
    for (name, (kind, _)) in &m {
        assert!(name.starts_with("keyrot_"), "{name}");
        assert_eq!(kind, "gauge", "{name}");
    }

    let state = |user: &str| -> String {
        let found = samples(&m, "keyrot_user_state", &[("user", user)]);
        assert_eq!(found.len(), 1, "{user}: one state series: {found:?}");
        assert_eq!(found[0].value, 1.0);
        assert_eq!(found[0].labels["account"], "123456789012");
        found[0].labels["state"].clone()
    };
    assert_eq!(state("quiet-bot"), "warn");
    assert_eq!(state("used-bot"), "warn");
    assert_eq!(state("two-bot"), "refuse");
    assert_eq!(state("no-key-bot"), "no-keys");
    assert_eq!(state("ghost"), "error");
    assert_eq!(one(&m, "keyrot_status_errors", &[]), 1.0);

    for user in ["quiet-bot", "used-bot"] {
        let key = keys[user].as_str();
        let at = created(&moto, user, key).await;
        let labels = [("user", user), ("access_key_id", key), ("status", "Active")];
        assert_eq!(
            one(&m, "keyrot_access_key_created_timestamp_seconds", &labels),
            at
        );
        let age = one(&m, "keyrot_access_key_age_seconds", &labels);
        assert!(
            (80 * DAY) as f64 <= age && age < (81 * DAY) as f64,
            "{user}: age {age} by keyrot's clock, 80 days on"
        );
        assert_eq!(
            one(&m, "keyrot_user_due_timestamp_seconds", &[("user", user)]),
            at + (90 * DAY) as f64
        );
    }
    // Both of two-bot's keys are there.
    for key in [&keys["two-bot"], &second] {
        one(
            &m,
            "keyrot_access_key_created_timestamp_seconds",
            &[("user", "two-bot"), ("access_key_id", key)],
        );
    }
    // Last use: only the key that signed something, with where.
    let used = samples(&m, "keyrot_access_key_last_used_timestamp_seconds", &[]);
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0].labels["access_key_id"], keys["used-bot"]);
    assert_eq!(used[0].labels["service"], "iam");
    assert_eq!(used[0].labels["region"], "us-east-1");
    let at = created(&moto, "used-bot", &keys["used-bot"]).await;
    assert!(used[0].value >= at, "used after it was made");
    // Nothing changed.
    assert_eq!(moto.keys("quiet-bot").await.len(), 1);
}

/// A fleet run that rotates one user and refuses another, with its metrics
/// file read back; a second run replaces the file, not appends to it.
#[tokio::test]
async fn a_run_writes_its_outcomes_for_the_textfile_collector() {
    let moto = Moto::start();
    moto.create_user("ci-bot").await;
    moto.create_key("ci-bot", "Active").await;
    moto.create_user("two-bot").await;
    moto.create_key("two-bot", "Active").await;
    moto.create_key("two-bot", "Active").await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "ci-bot\ntwo-bot\n").unwrap();
    let textfiles = dir.path().join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let file = textfiles.join("keyrot.prom");
    let hello = plugin("hello");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--plugin",
            hello.to_str().unwrap(),
            "--users-file",
            users.to_str().unwrap(),
            "--metrics-file",
            file.to_str().unwrap(),
            "--no-verify",
            "--endpoint-url",
            &moto.url,
        ];
        args.extend_from_slice(extra);
        let out = moto.keyrot(&args);
        for secret in moto.all_secrets() {
            assert!(!show(&out).contains(&secret), "a secret leaked");
        }
        out
    };

    let out = run(&[]);
    let code = out.status.code().expect("an exit code");
    assert_eq!(code, 1, "one user failed: {}", show(&out));
    let text = std::fs::read(&file).expect("the metrics file is written");
    for secret in moto.all_secrets() {
        assert!(!String::from_utf8_lossy(&text).contains(&secret));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the collector, another user, reads it");
    let names: Vec<String> = std::fs::read_dir(&textfiles)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keyrot.prom"], "no temp file is left behind");
    promtool_lint(&text);
    let m = parse_prometheus(&text);
    let outcome = |m: &BTreeMap<String, (String, Vec<Sample>)>, user: &str| -> String {
        let found = samples(m, "keyrot_rotation_outcome", &[("user", user)]);
        assert_eq!(found.len(), 1, "{user}: {found:?}");
        found[0].labels["outcome"].clone()
    };
    assert_eq!(outcome(&m, "ci-bot"), "rotated");
    assert_eq!(outcome(&m, "two-bot"), "failed");
    assert_eq!(one(&m, "keyrot_run_users", &[("outcome", "rotated")]), 1.0);
    assert_eq!(one(&m, "keyrot_run_users", &[("outcome", "failed")]), 1.0);
    assert_eq!(
        one(
            &m,
            "keyrot_run_users",
            &[("outcome", "needs-manual-action")]
        ),
        0.0,
        "every outcome has a series, 0 included"
    );
    assert_eq!(one(&m, "keyrot_run_exit_code", &[]), f64::from(code));
    assert!(one(&m, "keyrot_run_timestamp_seconds", &[]) > 0.0);

    // The next run: ci-bot's key is new, so it is skipped; two-bot is
    // fixed by hand. The file says only this run's outcomes.
    let two = moto.keys("two-bot").await;
    moto.client
        .delete_access_key()
        .user_name("two-bot")
        .access_key_id(&two[0].0)
        .send()
        .await
        .unwrap();
    let out = run(&["--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let m = parse_prometheus(&std::fs::read(&file).unwrap());
    assert_eq!(outcome(&m, "ci-bot"), "skipped");
    assert_eq!(outcome(&m, "two-bot"), "skipped");
    assert_eq!(one(&m, "keyrot_run_users", &[("outcome", "failed")]), 0.0);
    assert_eq!(one(&m, "keyrot_run_exit_code", &[]), 0.0);
}

#[tokio::test]
async fn metrics_input_that_cannot_work_fails_before_any_key_changes() {
    let (moto, key) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/keyrot.prom");
    let out = moto.rotate("hello", &["--metrics-file", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-file"), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");

    let out = moto.rotate(
        "hello",
        &["--metrics-file", dir.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a directory"));

    // Metrics on stdout are status's; a rotation is told where its go.
    let out = moto.rotate("hello", &["--output", "prometheus"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-file"));

    // A job file names it at the top level only.
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        "[[target]]\nuser = \"ci-bot\"\nmetrics-file = \"keyrot.prom\"\n",
    )
    .unwrap();
    let out = moto.rotate("hello", &["--job", job.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics-file"));

    moto.assert_only_key("ci-bot", &key).await;
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the job file"
    );
}

/// The example alert rules, unit-tested by promtool on keyrot's real
/// output: a run that fails one user, then status 100 days later. Each
/// file's timestamps are made relative to its own time (promtool's clock
/// starts at 0), so ages are as keyrot saw them; promtool fails the test on
/// any alert missing or extra.
#[tokio::test]
async fn the_example_alerts_fire_on_keyrots_own_output() {
    let moto = Moto::start();
    moto.create_user("ci-bot").await;
    moto.create_key("ci-bot", "Active").await;
    moto.create_user("two-bot").await;
    moto.create_key("two-bot", "Active").await;
    moto.create_key("two-bot", "Active").await;
    let dir = tempfile::tempdir().unwrap();
    let run_file = dir.path().join("run.prom");
    let hello = plugin("hello");
    let out = moto.keyrot(&[
        "--plugin",
        hello.to_str().unwrap(),
        "--user",
        "ci-bot",
        "--user",
        "two-bot",
        "--retire",
        "deactivate",
        "--metrics-file",
        run_file.to_str().unwrap(),
        "--no-verify",
        "--endpoint-url",
        &moto.url,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let offset = (100 * DAY).to_string();
    let status = moto.keyrot_with_env(
        &[
            "status",
            "--user",
            "ci-bot",
            "--user",
            "two-bot",
            "--output",
            "prometheus",
            "--endpoint-url",
            &moto.url,
        ],
        &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
    );
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));

    let mut series = Vec::new();
    for (text, clock) in [
        (
            std::fs::read(&run_file).unwrap(),
            "keyrot_run_timestamp_seconds",
        ),
        (status.stdout.clone(), "keyrot_status_timestamp_seconds"),
    ] {
        let m = parse_prometheus(&text);
        let now = one(&m, clock, &[]);
        for (name, (_, samples)) in &m {
            for s in samples {
                let value = if name.ends_with("_timestamp_seconds") {
                    s.value - now
                } else {
                    s.value
                };
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
                    .collect();
                series.push(serde_json::json!({
                    "series": format!("{name}{{{}}}", labels.join(",")),
                    "values": format!("{value}+0x60"),
                }));
            }
        }
    }
    let keys = moto.keys("ci-bot").await;
    let active: Vec<&String> = keys
        .iter()
        .filter(|(_, s)| s == "Active")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "the old key deactivated, not deleted: {keys:?}"
    );
    let too_old = |user: &str, key: &str| {
        serde_json::json!({
            "exp_labels": {
                "severity": "warning", "account": "123456789012", "user": user,
                "access_key_id": key, "status": "Active",
            },
            "exp_annotations": {"summary": format!(
                "Active access key {key} of {user} in account 123456789012 is older than 90 days"
            )},
        })
    };
    let mut old_alerts = vec![too_old("ci-bot", active[0])];
    for (key, _) in moto.keys("two-bot").await {
        old_alerts.push(too_old("two-bot", &key));
    }
    let tests = serde_json::json!({
        "rule_files": [Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus/keyrot-alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1h",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "2h", "alertname": "KeyrotAccessKeyTooOld", "exp_alerts": old_alerts},
                {"eval_time": "2h", "alertname": "KeyrotRotationFailed", "exp_alerts": [{
                    "exp_labels": {
                        "severity": "critical", "account": "123456789012", "user": "two-bot",
                        "outcome": "failed",
                    },
                    "exp_annotations": {"summary":
                        "keyrot's last run for two-bot in account 123456789012 ended failed"},
                }]},
                {"eval_time": "2h", "alertname": "KeyrotNotRunning", "exp_alerts": []},
                // Two days and a bit on, with no run since: it fires.
                {"eval_time": "49h", "alertname": "KeyrotNotRunning", "exp_alerts": [{
                    "exp_labels": {"severity": "warning"},
                    "exp_annotations": {"summary": "keyrot has not finished a run for two days"},
                }]},
                {"eval_time": "2h", "alertname": "KeyrotStatusErrors", "exp_alerts": []},
                {"eval_time": "2h", "alertname": "KeyrotRotationUnfinished", "exp_alerts": []},
            ],
        }],
    });
    // JSON is YAML.
    let test_file = dir.path().join("keyrot-alerts-test.yml");
    std::fs::write(&test_file, serde_json::to_vec_pretty(&tests).unwrap()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", test_file.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("run promtool (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{}\n--- the test file:\n{}",
        show(&out),
        serde_json::to_string_pretty(&tests).unwrap()
    );
}
