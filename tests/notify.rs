//! Reporters (`--notify`, `[[notify]]`) through the real binary, against
//! moto and local fakes of each service ([`crate::notify_fakes`]): each
//! shipped reporter receives exactly the events its filter selects; a
//! reporter that fails, hangs or traps changes no rotation, shows in the
//! report, and changes the exit code only with `--notify-required`; a
//! reporter built from the WIT alone in Python works; bad reporter input
//! fails before any key is created; and no secret access key reaches any
//! reporter, in any encoding.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use serde_json::Value;

use crate::notify_fakes::{FakePagerDuty, FakeSlack, FakeWebhook, hmac_sha256_hex};
use crate::util::{Moto, plugin, show};

const WEBHOOK_SECRET: &str = "whsec-test-signing-secret";
/// A token the host injects into the alerts reporter's requests.
const ALERTS_TOKEN: &str = "alerts-receiver-token-7c1e";
/// The account moto's default credentials belong to.
const ACCOUNT: &str = "123456789012";

fn wasm(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// Writes a job file into `dir`.
fn job(dir: &Path, text: &str) -> String {
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Every secret moto ever issued is absent from `seen` (what reporters
/// received, and what keyrot printed), raw and encoded: base64 (standard
/// and URL-safe, padded or not), hex, and percent-encoded.
fn assert_no_secret(moto: &Moto, seen: &[Vec<u8>]) {
    let secrets = moto.all_secrets();
    assert!(!secrets.is_empty(), "moto issued secrets");
    for secret in secrets {
        let forms = [
            secret.clone(),
            base64::engine::general_purpose::STANDARD.encode(&secret),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&secret),
            base64::engine::general_purpose::URL_SAFE.encode(&secret),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret),
            hex::encode(&secret),
            hex::encode_upper(&secret),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        ];
        for bytes in seen {
            let text = String::from_utf8_lossy(bytes);
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "a secret access key (as {form}) reached a reporter or the output:\n{text}"
                );
            }
        }
    }
}

/// stdout and stderr, for [`assert_no_secret`].
fn printed(out: &Output) -> Vec<Vec<u8>> {
    vec![out.stdout.clone(), out.stderr.clone()]
}

fn bodies(server: &crate::util::TestServer) -> Vec<Vec<u8>> {
    server.requests().into_iter().map(|r| r.body).collect()
}

/// The reporters' part of a JSON report, by name.
fn notifications(report: &Value) -> std::collections::BTreeMap<String, Value> {
    report["notifications"]
        .as_array()
        .unwrap_or_else(|| panic!("no notifications in {report}"))
        .iter()
        .map(|n| (n["reporter"].as_str().unwrap().to_string(), n.clone()))
        .collect()
}

#[tokio::test]
async fn webhooks_get_exactly_their_events_signed_and_retried() {
    let (moto, old) = Moto::start_with_user("ci-a").await;
    moto.create_user("ci-b").await;
    let kept = moto.create_key("ci-b", "Active").await;
    // A consumer used ci-a's key: IAM records it, and reporters are told.
    let (_, secret) = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| *id == old)
        .unwrap();
    moto.client_for(&old, &secret)
        .list_users()
        .send()
        .await
        .expect("the old key works");
    let deploy = FakeWebhook::start(&[]);
    // The alerts receiver is unwell at first, then rate limits once.
    let alerts = FakeWebhook::start(&[503, 429]);
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        &format!(
            r#"
# ci-a rotates; ci-b's destination refuses the key: failed, unchanged.
[[target]]
name = "good"
plugin = "{hello}"
user = "ci-a"

[[target]]
name = "refused"
plugin = "{fail}"
user = "ci-b"

[[notify]]
name = "deploy"
plugin = "{webhook}"
on = ["rotated"]
allow-hosts = ["{deploy}"]
[notify.config]
url = "{deploy}/hooks/keyrot"
[notify.secrets]
secret = "env:WEBHOOK_SECRET"

[[notify]]
name = "alerts"
plugin = "{webhook}"
on = ["failed", "needs-attention"]
allow-hosts = ["{alerts}"]
# The receiver wants a token the reporter never sees.
inject-headers = ["{alerts}=Authorization:Bearer {{env:ALERTS_TOKEN}}"]
[notify.config]
url = "{alerts}/alerts"
"#,
            hello = wasm("hello"),
            fail = wasm("fixture_fail"),
            webhook = wasm("webhook"),
            deploy = deploy.server.url,
            alerts = alerts.server.url,
        ),
    );
    let out = moto.keyrot_with_env(
        &[
            "--job",
            &job,
            "--endpoint-url",
            &moto.url,
            "--output",
            "json",
        ],
        &[
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("ALERTS_TOKEN", ALERTS_TOKEN),
        ],
    );
    // ci-b failed: exit 1, whatever the reporters did.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-b", &kept).await;
    let report = json(&out);
    let keys = moto.keys("ci-a").await;
    assert_eq!(keys.len(), 1);
    let new = &keys[0].0;
    assert_ne!(new, &old);

    // deploy: ci-a only, rotated, with its keys, signed as GitHub signs.
    let requests = deploy.server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["event"], "keyrot.run");
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{body}");
    assert_eq!(users[0]["user"], "ci-a");
    assert_eq!(users[0]["account"], ACCOUNT);
    assert_eq!(users[0]["outcome"], "rotated");
    assert_eq!(users[0]["events"], serde_json::json!(["rotated"]));
    assert_eq!(users[0]["new_key"]["access_key_id"], new.as_str());
    assert_eq!(users[0]["old_keys"][0]["access_key_id"], old.as_str());
    assert_eq!(users[0]["old_keys"][0]["action"], "deleted");
    assert_eq!(users[0]["old_keys"][0]["age_days"], 0);
    assert_eq!(users[0]["old_keys"][0]["last_used_service"], "iam");
    assert!(
        users[0]["old_keys"][0]["last_used"].is_string(),
        "the old key's last use before the run: {body}"
    );
    assert_eq!(body["summary"]["users"], 2);
    assert_eq!(body["summary"]["rotated"], 1);
    assert_eq!(body["summary"]["failed"], 1);
    let signature = requests[0]
        .header("x-keyrot-signature-256")
        .expect("a signature header");
    assert_eq!(
        signature,
        format!(
            "sha256={}",
            hmac_sha256_hex(WEBHOOK_SECRET.as_bytes(), &requests[0].body)
        )
    );
    assert_eq!(requests[0].path, "/hooks/keyrot");

    // alerts: ci-b only, after a 503 and a 429: the same delivery thrice.
    let requests = alerts.server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let delivery = requests[0].header("x-keyrot-delivery").unwrap();
    for request in &requests {
        assert_eq!(request.header("x-keyrot-delivery"), Some(delivery));
        assert_eq!(request.body, requests[0].body);
        // No secret configured: nothing signed.
        assert_eq!(request.header("x-keyrot-signature-256"), None);
    }
    let body: Value = serde_json::from_slice(&requests[2].body).unwrap();
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{body}");
    assert_eq!(users[0]["user"], "ci-b");
    assert_eq!(users[0]["target"], "target refused");
    assert_eq!(users[0]["outcome"], "failed");
    assert_eq!(users[0]["events"], serde_json::json!(["failed"]));
    assert_eq!(users[0]["new_key"]["state"], "deleted");
    let reason = users[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("handler failed") && reason.contains("was deleted"),
        "{reason}"
    );
    assert!(users[0]["advice"].is_string(), "{body}");

    let sent = notifications(&report);
    assert_eq!(sent["deploy"]["delivery"], "sent");
    assert_eq!(sent["deploy"]["users"], 1);
    assert_eq!(sent["alerts"]["delivery"], "sent");
    // The signing secret never shows either.
    assert!(!show(&out).contains(WEBHOOK_SECRET), "{}", show(&out));
    assert!(!show(&out).contains(ALERTS_TOKEN), "{}", show(&out));
    // The host added the token to every delivery to that receiver, and to
    // no other.
    for request in alerts.server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {ALERTS_TOKEN}").as_str())
        );
    }
    for request in deploy.server.requests() {
        assert_eq!(request.header("authorization"), None);
    }
    let mut seen = printed(&out);
    seen.extend(bodies(&deploy.server));
    seen.extend(bodies(&alerts.server));
    assert_no_secret(&moto, &seen);
}

/// An organization of the management account alone, with `users` under
/// /ci/, each tagged with its owner (and `exempt`'s with the
/// `keyrot:exempt` tag given), each with one key.
async fn org_with_users(users: &[(String, &str)], exempt: (&str, &str)) -> Moto {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    let moto = Moto::start();
    let orgs = aws_sdk_organizations::Client::from_conf(
        aws_sdk_organizations::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&moto.url)
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build(),
    );
    orgs.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("create the organization");
    let tag = |key: &str, value: &str| {
        aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .unwrap()
    };
    for (user, owner) in users {
        let mut create = moto
            .client
            .create_user()
            .user_name(user)
            .path("/ci/")
            .tags(tag("owner", owner));
        if user == exempt.0 {
            create = create.tags(tag("keyrot:exempt", exempt.1));
        }
        create.send().await.expect("create a user");
        moto.create_key(user, "Active").await;
    }
    moto
}

#[tokio::test]
async fn slack_routes_warnings_by_owner_and_threads_what_does_not_fit() {
    // 55 users of team-b (no channel of its own: the default), one of
    // team-a (its own channel). Every key is young: skipped, and due
    // within the warning window, so every user is warned and none rotated.
    let mut users: Vec<(String, &str)> =
        (0..55).map(|i| (format!("svc-{i:02}"), "team-b")).collect();
    users.push(("alice-bot".into(), "team-a"));
    // team-a's vendor-bot is exempt, until a day within the window: a
    // warning too.
    users.push(("vendor-bot".into(), "team-a"));
    let until = aws_smithy_types::DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 5 * 86_400,
    )
    .fmt(aws_smithy_types::date_time::Format::DateTime)
    .unwrap()[..10]
        .to_string();
    let exemption = format!("vendor sync, until {until}");
    let moto = org_with_users(&users, ("vendor-bot", &exemption)).await;
    let before = moto.all_secrets().len();
    // Slack rate limits the first call.
    let slack = FakeSlack::start(&["#ops", "#team-a"], 1);
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        &format!(
            r##"
plugin = "{hello}"
concurrency = 8
path-prefix = "/ci/"
max-age = "90d"
warn-age = "100d"

[org]
role-name = "keyrot-member"   # no member account here: never entered
owner-tag = "owner"

[[notify]]
plugin = "{slack}"
on = ["warning"]
allow-hosts = ["{url}"]
[notify.config]
api-url = "{url}"
channel = "#ops"
owner-channels = "team-a=#team-a"
[notify.secrets]
token = "env:SLACK_TOKEN"
"##,
            hello = wasm("hello"),
            slack = wasm("slack"),
            url = slack.server.url,
        ),
    );
    let out = moto.keyrot_with_env(
        &[
            "--job",
            &job,
            "--endpoint-url",
            &moto.url,
            "--output",
            "json",
            "--plugin-log",
            "show",
        ],
        &[("SLACK_TOKEN", FakeSlack::TOKEN)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(moto.all_secrets().len(), before, "no key was created");
    let report = json(&out);
    assert_eq!(
        notifications(&report)["slack"]["delivery"],
        "sent",
        "{report}"
    );
    assert_eq!(notifications(&report)["slack"]["users"], 57);

    let messages = slack.messages();
    let team_a: Vec<_> = messages.iter().filter(|m| m.channel == "#team-a").collect();
    let ops: Vec<_> = messages.iter().filter(|m| m.channel == "#ops").collect();
    assert_eq!(team_a.len(), 1, "{messages:?}");
    // 55 lines, a header and the counts: more than one message's 50 blocks.
    assert_eq!(ops.len(), 2, "{messages:?}");
    assert_eq!(ops[0].thread_ts, None);
    assert_eq!(ops[1].thread_ts.as_deref(), Some(ops[0].ts.as_str()));
    assert_eq!(ops[0].blocks.len(), 50);
    // The notification text, for clients that cannot show blocks.
    assert!(
        ops[0].text.contains("55 user(s) with warnings"),
        "{}",
        ops[0].text
    );
    assert!(ops[1].text.contains("part 2 of 2"), "{}", ops[1].text);
    assert_eq!(ops[0].blocks[0]["type"], "header");
    let header = ops[0].blocks[0]["text"]["text"].as_str().unwrap();
    assert!(header.contains("55 user(s) with warnings"), "{header}");
    let counts = ops[0].blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        counts.contains("57 user(s)")
            && counts.contains("56 skipped")
            && counts.contains("1 exempt"),
        "{counts}"
    );
    // Every team-b user on exactly one line of #ops; alice-bot only in #team-a.
    let lines = |ms: &[&crate::notify_fakes::SlackMessage]| -> Vec<String> {
        ms.iter()
            .flat_map(|m| m.blocks.iter())
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_string))
            .filter(|t| t.starts_with(":warning:"))
            .collect()
    };
    let ops_lines = lines(&ops);
    assert_eq!(ops_lines.len(), 55, "{ops_lines:?}");
    let team_a_lines = lines(&team_a);
    assert_eq!(team_a_lines.len(), 2, "{team_a_lines:?}");
    let vendor = team_a_lines
        .iter()
        .find(|l| l.contains("vendor-bot"))
        .unwrap();
    assert!(
        vendor.contains("exempt") && vendor.contains(&format!("ends on {until}")),
        "{vendor}"
    );
    for (user, owner) in users.iter().filter(|(u, _)| u != "vendor-bot") {
        let here = if *owner == "team-a" {
            lines(&team_a)
        } else {
            ops_lines.clone()
        };
        let who = format!("*{ACCOUNT}/{user}* (owner {owner}) skipped");
        assert_eq!(
            here.iter().filter(|l| l.contains(&who)).count(),
            1,
            "{who} in {here:?}"
        );
        assert!(here.iter().any(|l| l.contains("comes due in")), "{here:?}");
    }
    // The rate-limited first call was retried: one request more than messages.
    assert_eq!(slack.server.requests().len(), messages.len() + 1);
    assert!(!show(&out).contains(FakeSlack::TOKEN));
    let mut seen = printed(&out);
    seen.extend(bodies(&slack.server));
    assert_no_secret(&moto, &seen);
}

#[tokio::test]
async fn pagerduty_triggers_for_a_failure_and_resolves_after_a_good_rerun() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let pd = FakePagerDuty::start(1);
    let dir = tempfile::tempdir().unwrap();
    let run = |handler: &str, routing_key: &str, extra: &[&str]| {
        let job = job(
            dir.path(),
            &format!(
                r#"
plugin = "{handler}"
user = "ci-bot"

[[notify]]
plugin = "{pagerduty}"
allow-hosts = ["{url}"]
[notify.config]
api-url = "{url}"
source = "keyrot-tests"
[notify.secrets]
routing-key = "env:PD_ROUTING_KEY"
"#,
                handler = wasm(handler),
                pagerduty = wasm("pagerduty"),
                url = pd.server.url,
            ),
        );
        let mut args = vec![
            "--job",
            job.as_str(),
            "--endpoint-url",
            moto.url.as_str(),
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        moto.keyrot_with_env(&args, &[("PD_ROUTING_KEY", routing_key)])
    };
    let dedup = format!("keyrot/{ACCOUNT}/ci-bot");

    // A failed rotation (the handler refuses): one alert, after a 429.
    let out = run("fixture_fail", FakePagerDuty::ROUTING_KEY, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(notifications(&json(&out))["pagerduty"]["delivery"], "sent");
    let requests = pd.server.requests();
    assert_eq!(requests.len(), 2, "a 429, then the event: {requests:?}");
    let event: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], dedup.as_str());
    assert_eq!(event["payload"]["severity"], "error");
    assert_eq!(event["payload"]["source"], "keyrot-tests");
    let summary = event["payload"]["summary"].as_str().unwrap();
    assert!(summary.contains("ci-bot failed"), "{summary}");
    assert_eq!(event["payload"]["custom_details"]["outcome"], "failed");
    assert_eq!(pd.alerts()[&dedup], "triggered");
    let mut seen = printed(&out);

    // The rerun fails again: the same alert, not another.
    let out = run("fixture_fail", FakePagerDuty::ROUTING_KEY, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(pd.alerts().len(), 1);
    seen.extend(printed(&out));

    // A good rerun: rotated, and the alert resolved.
    let out = run("hello", FakePagerDuty::ROUTING_KEY, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let event: Value = serde_json::from_slice(&pd.server.requests().last().unwrap().body).unwrap();
    assert_eq!(event["event_action"], "resolve");
    assert_eq!(pd.alerts()[&dedup], "resolved");
    seen.extend(printed(&out));

    // PagerDuty refuses an event (a routing key of the wrong length): the
    // rotation stands, the report says why, and only --notify-required
    // turns it into exit 5.
    let key = moto.keys("ci-bot").await[0].0.clone();
    let out = run("fixture_fail", "short-key", &[]);
    assert_eq!(out.status.code(), Some(1), "a rotation's own code wins");
    let report = json(&out);
    let pagerduty = &notifications(&report)["pagerduty"];
    assert_eq!(pagerduty["delivery"], "failed");
    let error = pagerduty["error"].as_str().unwrap();
    assert!(
        error.contains("400") && error.contains("routing_key"),
        "{error}"
    );
    moto.assert_only_key("ci-bot", &key).await;
    seen.extend(printed(&out));
    for (extra, code) in [(&[][..], 0), (&["--notify-required"][..], 5)] {
        let out = run("hello", "short-key", extra);
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert_eq!(json(&out)["outcome"], "rotated");
        seen.extend(printed(&out));
    }
    seen.extend(bodies(&pd.server));
    assert_no_secret(&moto, &seen);
}

#[tokio::test]
async fn a_reporter_that_fails_hangs_or_traps_changes_no_rotation() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let fault = wasm("fixture_report_fault");
    let hello = wasm("hello");
    let mut seen = Vec::new();
    for (mode, says) in [
        ("error", "the service said no"),
        ("trap", "crashed"),
        ("hang", "did not finish within"),
        ("oom", "ran out of memory"),
    ] {
        let before = moto.keys("ci-bot").await[0].0.clone();
        let dir = tempfile::tempdir().unwrap();
        let job = job(
            dir.path(),
            &format!(
                r#"
plugin = "{hello}"
user = "ci-bot"

[[notify]]
name = "faulty"
plugin = "{fault}"
timeout = "2s"
memory = "64MiB"
[notify.config]
mode = "{mode}"
"#
            ),
        );
        let out = moto.keyrot(&["--job", &job, "--endpoint-url", &moto.url]);
        // Rotated, exit 0: the reporter's failure is only reported.
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", show(&out));
        let keys = moto.keys("ci-bot").await;
        assert_eq!(keys.len(), 1, "{mode}");
        assert_ne!(keys[0].0, before, "{mode}: rotated");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("rotated"), "{mode}: {stdout}");
        assert!(
            stdout.contains("warning: reporter 'faulty' failed") && stdout.contains(says),
            "{mode}: {stdout}"
        );
        assert!(stdout.contains("the rotations are unaffected"), "{stdout}");
        seen.extend(printed(&out));

        // JSON says the same, and --notify-required makes it exit 5.
        let out = moto.keyrot(&[
            "--job",
            &job,
            "--endpoint-url",
            &moto.url,
            "--output",
            "json",
            "--notify-required",
        ]);
        assert_eq!(out.status.code(), Some(5), "{mode}: {}", show(&out));
        let report = json(&out);
        assert_eq!(report["outcome"], "rotated");
        let faulty = &notifications(&report)["faulty"];
        assert_eq!(faulty["delivery"], "failed");
        assert!(faulty["error"].as_str().unwrap().contains(says), "{faulty}");
        seen.extend(printed(&out));
    }
    assert_no_secret(&moto, &seen);
}

#[tokio::test]
async fn a_python_reporter_built_from_the_wit_alone_is_told_what_its_flags_select() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    moto.create_user("ci-two").await;
    moto.create_key("ci-two", "Active").await;
    let python = wasm("python-report");
    // Both refused at preflight: failed, nothing created.
    let out = moto.keyrot(&[
        "--plugin",
        &wasm("fixture_fail"),
        "--config",
        "at=preflight",
        "--user",
        "ci-bot",
        "--user",
        "ci-two",
        "--endpoint-url",
        &moto.url,
        "--notify",
        &python,
        "--notify-config",
        "python-report:prefix=kr",
        "--notify-on",
        "python-report:failed",
        "--output",
        "json",
        "--plugin-log",
        "show",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    let python = &notifications(&report)["python-report"];
    assert_eq!(python["delivery"], "sent", "{python}");
    let mut lines: Vec<String> = python["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    // The counts first, then a line per user (in the order they ended).
    assert_eq!(
        lines.remove(0),
        "kr: 2 users, 0 rotated, 2 failed, exit 1, dry run False"
    );
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("kr: {ACCOUNT}/ci-bot failed events=failed new=- old=1 warnings=0"),
            format!("kr: {ACCOUNT}/ci-two failed events=failed new=- old=1 warnings=0"),
        ],
        "{python}"
    );
    let mut seen = printed(&out);

    // The rotated users, when asked for.
    let out = moto.keyrot(&[
        "--plugin",
        &wasm("hello"),
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--notify",
        &wasm("python-report"),
        "--notify-on",
        "python-report:rotated,failed",
        "--output",
        "json",
        "--plugin-log",
        "show",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    let log = notifications(&report)["python-report"]["log"].to_string();
    assert!(
        log.contains(&format!(
            "keyrot: {ACCOUNT}/ci-bot rotated events=rotated new={new} old=1"
        )),
        "{log}"
    );
    seen.extend(printed(&out));
    seen.push(log.into_bytes());
    assert_no_secret(&moto, &seen);
}

#[tokio::test]
async fn bad_reporter_input_fails_before_any_key_is_created() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm not really").unwrap();
    let broken = broken.to_string_lossy().into_owned();
    let missing = dir.path().join("missing.wasm");
    let missing = missing.to_string_lossy().into_owned();
    let hello = wasm("hello");
    let slack = wasm("slack");
    let webhook = wasm("webhook");
    let unknown_event = job(
        dir.path(),
        &format!(
            "plugin = \"{hello}\"\nuser = \"ci-bot\"\n[[notify]]\nplugin = \"{slack}\"\non = [\"failure\"]\n"
        ),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--notify", &missing], "cannot read plugin"),
        (vec!["--notify", &broken], "broken.wasm"),
        (
            vec!["--notify", &hello],
            "is a keyrot handler (keyrot:handler@0.4.0), not a reporter",
        ),
        (vec!["--job", &unknown_event], "unknown event 'failure'"),
        (
            vec![
                "--notify",
                &webhook,
                "--notify-allow-host",
                "webhook:http://127.0.0.1:9",
            ],
            "needs required setting(s): --notify-config webhook:url=VALUE",
        ),
        (
            vec!["--notify", &webhook, "--notify-config", "hook:url=http://x"],
            "names reporter 'hook', which this run does not have",
        ),
        (
            vec![
                "--notify",
                &webhook,
                "--notify-config",
                "webhook:url=http://127.0.0.1:9/x",
                "--notify-on",
                "webhook:rotated,paged",
            ],
            "unknown event 'paged'",
        ),
        (
            vec![
                "--notify",
                &webhook,
                "--notify-config",
                "webhook:url=http://127.0.0.1:9/x",
            ],
            "no host is allowed: add allow-hosts to its [[notify]] block",
        ),
        (
            vec!["--notify-required"],
            "--notify-required needs a reporter",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["--user", "ci-bot", "--endpoint-url", moto.url.as_str()];
        if !extra.contains(&"--job") {
            args.extend(["--plugin", hello.as_str()]);
        }
        args.extend(extra.iter().copied());
        let out = moto.keyrot(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(says),
            "{extra:?}: expected '{says}' in {stderr}"
        );
        moto.assert_only_key("ci-bot", &old).await;
    }
    // A reporter given as the handler is refused too.
    let out = moto.keyrot(&[
        "--plugin",
        &slack,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is a keyrot reporter (keyrot:reporter@0.1.0), not a handler"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[test]
fn inspect_knows_a_reporter() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(["plugin", "inspect", "--output", "json", &wasm("pagerduty")])
        .env(
            "KEYROT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyrot-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["contract"], "keyrot:reporter@0.1.0");
    assert_eq!(report["kind"], "reporter");
    assert_eq!(report["name"], "pagerduty");
    let routing = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "routing-key")
        .unwrap();
    assert_eq!(routing["secret"], true);
}

/// The block after `<!-- MARKER -->` in `doc` (a repository path).
fn marked_block(doc: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let start = text
        .find(&format!("<!-- {marker} -->\n"))
        .unwrap_or_else(|| panic!("{doc} has no <!-- {marker} --> block"));
    let rest = &text[start..];
    let body = &rest[rest.find('\n').unwrap() + 1..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("\n```").unwrap() + 1].to_string()
}

#[test]
fn the_reporter_guides_python_example_is_the_file_the_tests_build() {
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/python-report/app.py"),
    )
    .unwrap();
    assert_eq!(
        marked_block("docs/reporters.md", "example: plugins/python-report/app.py"),
        file
    );
}

/// The README's job file with a handler and two reporters is one keyrot
/// accepts: every key, event and secret source checks out, and the run
/// gets as far as loading its handler (which this test does not have).
#[test]
fn the_readme_job_with_two_reporters_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, marked_block("README.md", "job: notify")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(["--job", path.to_str().unwrap(), "--dry-run"])
        .env_clear()
        .env("HOME", dir.path())
        .env("GITHUB_TOKEN", "t")
        .env("DEPLOY_HOOK_SECRET", "s")
        .env("SLACK_BOT_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read plugin") && stderr.contains("github.wasm"),
        "{stderr}"
    );
}

#[tokio::test]
async fn slack_through_an_incoming_webhook_names_the_failure_and_what_to_do() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let slack = FakeSlack::start(&[], 0);
    let hook = format!("{}{}", slack.server.url, FakeSlack::WEBHOOK_PATH);
    let allow = format!("slack:{}", slack.server.url);
    let out = moto.keyrot_with_env(
        &[
            "--plugin",
            &wasm("fixture_fail"),
            "--user",
            "ci-bot",
            "--endpoint-url",
            &moto.url,
            "--notify",
            &wasm("slack"),
            "--notify-secret",
            "slack:webhook-url=env:SLACK_WEBHOOK",
            "--notify-allow-host",
            &allow,
        ],
        &[("SLACK_WEBHOOK", hook.as_str())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("notify slack: sent (1 user)"), "{stdout}");
    let messages = slack.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].channel, "#hooked");
    let header = messages[0].blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(header, "keyrot: 1 user(s) need attention");
    let line = messages[0].blocks[2]["text"]["text"].as_str().unwrap();
    assert!(
        line.starts_with(&format!(
            ":red_circle: *{ACCOUNT}/ci-bot* failed: handler failed"
        )) && line.contains("_nothing was changed: fix what the reason names"),
        "{line}"
    );
    // The webhook's URL is its secret: never printed.
    assert!(!show(&out).contains("fakeWebhookSecret"), "{}", show(&out));
    let mut seen = printed(&out);
    seen.extend(bodies(&slack.server));
    assert_no_secret(&moto, &seen);
}
