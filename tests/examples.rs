//! The IAM policies in `examples/` are proven, not just written: keyrot
//! rotates against moto with IAM authorization on, signing as a user that
//! holds exactly the example policy, and a narrower policy fails the way the
//! examples' README says.
//!
//! moto evaluates every IAM user action against the resource `*` (it checks
//! actions, not user ARNs), so each user-scoped statement's `Resource` is
//! set to `*` for the emulator; the tests check first that the files
//! themselves are scoped (by user path, or to `${aws:username}`). The
//! `iam:ListUsers` statement stays as shipped: IAM gives `ListUsers` no
//! resource type, so only `*` matches it, and moto, checking against `*`,
//! answers the same. moto ignores `Condition` blocks on user calls, so the
//! `aws:TagKeys` condition is checked against the tag keys keyrot sends,
//! recorded on the wire. Everything else is the file as shipped.

use std::path::Path;

use serde_json::Value;

use crate::proxy::{FaultProxy, Faults};
use crate::util::{Moto, plugin, show};

/// An example file, parsed.
fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A statement's actions, whether one string or a list.
fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(all) => all
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
        other => panic!("unexpected Action {other}"),
    }
}

/// Whether a statement is the one for `--all-users` (only `iam:ListUsers`).
fn is_list_users(statement: &Value) -> bool {
    actions(statement) == ["iam:ListUsers"]
}

/// Every `Resource` of every statement but the `iam:ListUsers` one, as
/// strings.
fn resources(policy: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for statement in policy["Statement"].as_array().expect("a Statement list") {
        if is_list_users(statement) {
            continue;
        }
        match &statement["Resource"] {
            Value::String(r) => all.push(r.clone()),
            Value::Array(rs) => all.extend(rs.iter().map(|r| r.as_str().unwrap().to_string())),
            other => panic!("unexpected Resource {other}"),
        }
    }
    all
}

/// The policy as moto can check it: every user-scoped `Resource` set to
/// `*`; the `iam:ListUsers` statement as shipped.
fn for_moto(mut policy: Value) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        if !is_list_users(statement) {
            statement["Resource"] = Value::from("*");
        }
    }
    policy
}

/// The policy without one action (and without a statement left empty).
fn without(mut policy: Value, action: &str) -> Value {
    let statements = policy["Statement"].as_array_mut().unwrap();
    let before: usize = statements.iter().map(|s| actions(s).len()).sum();
    for statement in statements.iter_mut() {
        let kept: Vec<Value> = actions(statement)
            .into_iter()
            .filter(|a| a != action)
            .map(Value::from)
            .collect();
        statement["Action"] = Value::from(kept);
    }
    statements.retain(|s| !actions(s).is_empty());
    let after: usize = statements.iter().map(|s| actions(s).len()).sum();
    assert!(after < before, "the example grants {action}");
    policy
}

/// The `aws:TagKeys` patterns of the statement that grants `iam:TagUser`.
fn tag_key_patterns(policy: &Value) -> Vec<String> {
    let statement = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| actions(s).iter().any(|a| a == "iam:TagUser"))
        .expect("a statement granting iam:TagUser");
    let mut tagging = actions(statement);
    tagging.sort();
    assert_eq!(
        tagging,
        ["iam:ListUserTags", "iam:TagUser", "iam:UntagUser"],
        "the tag permissions sit in a statement of their own, for --journal iam"
    );
    statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
        .as_array()
        .expect("a ForAllValues:StringLike condition on aws:TagKeys")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// IAM's `StringLike`: `*` matches any run of characters, `?` any one;
/// case-sensitive.
fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

#[test]
fn example_policies_are_scoped_to_a_path_or_to_the_caller() {
    for r in resources(&example("iam-policy-rotate-users.json")) {
        assert!(
            r.starts_with("arn:aws:iam::") && r.contains(":user/keyrot-managed/"),
            "{r} is not scoped to the user path /keyrot-managed/"
        );
    }
    for r in resources(&example("iam-policy-rotate-self.json")) {
        assert!(r.ends_with("/${aws:username}"), "{r} is not the caller");
    }
}

/// IAM gives `iam:ListUsers` no resource type: its statement must be `*`,
/// and hold nothing else (the other actions stay scoped).
#[test]
fn list_users_has_a_statement_of_its_own_on_every_resource() {
    let policy = example("iam-policy-rotate-users.json");
    let list: Vec<&Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| actions(s).iter().any(|a| a == "iam:ListUsers"))
        .collect();
    assert_eq!(list.len(), 1, "one statement grants iam:ListUsers");
    assert!(is_list_users(list[0]), "and only it: {}", list[0]);
    assert_eq!(list[0]["Resource"], "*");
    assert!(
        !example("iam-policy-rotate-self.json")
            .to_string()
            .contains("iam:ListUsers"),
        "a user rotating its own key lists no users"
    );
}

/// The tag condition allows keyrot's two kinds of tag keys and nothing
/// else, in both policies alike. (moto does not evaluate conditions; the
/// keys keyrot really sends are checked in
/// [`the_users_policy_covers_every_call_of_a_journal_iam_fleet`].)
#[test]
fn the_tag_condition_allows_keyrots_tags_only() {
    let patterns = tag_key_patterns(&example("iam-policy-rotate-users.json"));
    assert_eq!(patterns, ["keyrot-journal", "keyrot-claim-*"]);
    assert_eq!(
        tag_key_patterns(&example("iam-policy-rotate-self.json")),
        patterns,
        "the self-rotation policy has the same condition"
    );
    let allowed = |key: &str| patterns.iter().any(|p| string_like(p, key));
    assert!(allowed("keyrot-journal"));
    assert!(allowed("keyrot-claim-0123456789abcdef"));
    for other in [
        "team",
        "cost-center",
        "keyrot-journal-old",
        "Keyrot-Journal",
        "xkeyrot-claim-1",
    ] {
        assert!(!allowed(other), "{other} would be allowed");
    }
}

/// With IAM authorization on: the users policy rotates every user under its
/// path (`--all-users --path-prefix`), and its tag statement lets the
/// caller write and remove keyrot's tags. (A whole `--journal iam`
/// rotation cannot run against moto with authorization on: moto checks
/// SigV4 over a re-encoded form body, spaces as `+` where the SDK sent
/// `%20`, so a `TagUser` whose value has a space, as keyrot's records and
/// claims do, fails `SignatureDoesNotMatch` before any policy is looked at.
/// [`the_users_policy_covers_every_call_of_a_journal_iam_fleet`] checks
/// those calls against the policy instead.)
#[tokio::test]
async fn the_users_policy_rotates_all_users_under_its_path() {
    let policy = for_moto(example("iam-policy-rotate-users.json"));
    let (moto, old) = Moto::start_with_policy_at("operator", &policy, "/keyrot-managed/").await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--endpoint-url",
        &moto.url,
        "--all-users",
        "--path-prefix",
        "/keyrot-managed/",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["users"], 1, "{report}");
    assert_eq!(report["runs"][0]["user"], "ci-bot", "{report}");
    let new = report["runs"][0]["new_key"]["access_key_id"]
        .as_str()
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(
        moto.keys("ci-bot").await,
        [(new.to_string(), "Active".to_string())]
    );
    // The tag statement's actions, as the operator, on keyrot's tag keys.
    for key in ["keyrot-journal", "keyrot-claim-0123456789abcdef"] {
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value("v")
            .build()
            .unwrap();
        moto.client
            .tag_user()
            .user_name("ci-bot")
            .tags(tag)
            .send()
            .await
            .unwrap_or_else(|e| panic!("TagUser {key}: {e:?}"));
    }
    let tags = moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    moto.client
        .untag_user()
        .user_name("ci-bot")
        .tag_keys("keyrot-journal")
        .tag_keys("keyrot-claim-0123456789abcdef")
        .send()
        .await
        .expect("UntagUser");
}

/// Whether `policy` has a statement allowing IAM action `action` (by its
/// `Action` list; moto's check, done here).
fn allows(policy: &Value, action: &str) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        s["Effect"] == "Allow"
            && actions(s)
                .iter()
                .any(|a| string_like(a, &format!("iam:{action}")))
    })
}

/// A `--journal iam` fleet rotation (`--all-users`), through a proxy that
/// records each call and each tag key: every IAM action keyrot calls is one
/// the users policy allows, and every tag key it writes or removes is one
/// the policy's `aws:TagKeys` condition allows under IAM's `StringLike`.
/// Authorization is off here (see above why moto cannot check these calls
/// itself); the policy is evaluated by the test.
#[tokio::test]
async fn the_users_policy_covers_every_call_of_a_journal_iam_fleet() {
    let policy = example("iam-policy-rotate-users.json");
    let moto = Moto::start();
    moto.create_user_at("ci-bot", "/keyrot-managed/").await;
    let old = moto.create_key("ci-bot", "Active").await;
    moto.create_user("someone-else").await;
    let proxy = FaultProxy::start(&moto.url, Faults::default());
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--endpoint-url",
        &proxy.url,
        "--all-users",
        "--path-prefix",
        "/keyrot-managed/",
        "--journal",
        "iam",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["users"], 1, "{report}");
    let new = report["runs"][0]["new_key"]["access_key_id"]
        .as_str()
        .unwrap();
    assert_ne!(new, old);
    let seen = proxy.seen();
    for action in [
        "ListUsers",
        "ListUserTags",
        "TagUser",
        "UntagUser",
        "CreateAccessKey",
    ] {
        assert!(
            seen.calls.iter().any(|(a, _)| a == action),
            "keyrot called {action}: {:?}",
            seen.calls
        );
    }
    for (action, _) in &seen.calls {
        if action == "GetCallerIdentity" {
            continue; // sts: needs no permission
        }
        assert!(
            allows(&policy, action),
            "the users policy does not allow iam:{action}"
        );
    }
    let patterns = tag_key_patterns(&policy);
    assert!(
        seen.tag_keys.iter().any(|k| k == "keyrot-journal"),
        "{:?}",
        seen.tag_keys
    );
    assert!(
        seen.tag_keys.iter().any(|k| k.starts_with("keyrot-claim-")),
        "{:?}",
        seen.tag_keys
    );
    for key in &seen.tag_keys {
        assert!(
            patterns.iter().any(|p| string_like(p, key)),
            "keyrot tags {key}, which the policy's condition does not allow"
        );
    }
}

/// The advice examples/README.md used to give: `iam:ListUsers` scoped to
/// the user path. It never matches (ListUsers has no resource type), so
/// `--all-users` is denied and nothing changes.
#[tokio::test]
async fn list_users_scoped_to_a_path_denies_all_users() {
    let mut policy = for_moto(example("iam-policy-rotate-users.json"));
    for statement in policy["Statement"].as_array_mut().unwrap() {
        if is_list_users(statement) {
            statement["Resource"] = Value::from("arn:aws:iam::111122223333:user/keyrot-managed/*");
        }
    }
    let (moto, old) = Moto::start_with_policy_at("operator", &policy, "/keyrot-managed/").await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--endpoint-url",
        &moto.url,
        "--all-users",
        "--path-prefix",
        "/keyrot-managed/",
    ]);
    // moto's AccessDenied answer is not one the SDK parses (it reads as
    // "unhandled error"); the statement's resource is the only difference
    // from the policy that rotates in the test above.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("cannot list the users under /keyrot-managed/")
            && String::from_utf8_lossy(&out.stdout).contains("(iam:ListUsers)"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn the_example_policy_is_enough_to_rotate_another_users_key() {
    let policy = for_moto(example("iam-policy-rotate-users.json"));
    let (moto, old) = Moto::start_with_policy("operator", &policy).await;
    let out = moto.rotate("hello", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        moto.keys("ci-bot").await,
        [(new.to_string(), "Active".to_string())]
    );
}

/// As documented in examples/README.md: without `iam:DeleteAccessKey` the
/// new key is in place, the old one is deactivated, and the run is partial.
#[tokio::test]
async fn without_delete_the_old_key_is_only_deactivated() {
    let policy = without(
        for_moto(example("iam-policy-rotate-users.json")),
        "iam:DeleteAccessKey",
    );
    let (moto, old) = Moto::start_with_policy("operator", &policy).await;
    let out = moto.rotate("hello", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    let mut expected = vec![
        (new.to_string(), "Active".to_string()),
        (old.clone(), "Inactive".to_string()),
    ];
    expected.sort();
    assert_eq!(moto.keys("ci-bot").await, expected);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("old key {old} could not be deleted")) && err.contains("deactivated"),
        "{}",
        show(&out)
    );
}

/// As documented: without `iam:CreateAccessKey` nothing changes (exit 1).
#[tokio::test]
async fn without_create_nothing_changes() {
    let policy = without(
        for_moto(example("iam-policy-rotate-users.json")),
        "iam:CreateAccessKey",
    );
    let (moto, old) = Moto::start_with_policy("operator", &policy).await;
    let out = moto.rotate("hello", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
}

/// A user holding the self-rotation policy rotates its own key: the
/// credentials-file handler stores the new key, and that stored key is the
/// user's only key and works.
#[tokio::test]
async fn the_self_rotation_policy_rotates_the_callers_own_key() {
    let policy = for_moto(example("iam-policy-rotate-self.json"));
    let (moto, old) = Moto::start_with_policy("ci-bot", &policy).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!("[ci]\naws_access_key_id = {old}\naws_secret_access_key = old\n"),
    )
    .unwrap();
    let grant = format!("{}:/aws", dir.path().display());
    let out = moto.rotate(
        "aws_credentials_file",
        &[
            "--allow-dir",
            &grant,
            "--config",
            "path=/aws/credentials",
            "--config",
            "profile=ci",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let written = std::fs::read_to_string(&file).unwrap();
    let value = |key: &str| {
        written
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().strip_prefix('=').map(str::trim))
            .unwrap_or_else(|| panic!("no {key} in the credentials file"))
            .to_string()
    };
    let (id, secret) = (value("aws_access_key_id"), value("aws_secret_access_key"));
    assert_ne!(id, old);
    // The old key signed the rotation and is gone; the stored one works.
    let new_client = moto.client_for(&id, &secret);
    assert_eq!(
        moto.keys_as(&new_client, "ci-bot").await,
        [(id, "Active".to_string())]
    );
}

/// The schedule recipes' job file is a valid job: every key known, the
/// header's secret source resolved, the plugin found. It stops at the pin
/// (a placeholder to replace), before any AWS or GitHub call.
#[test]
fn the_recipes_job_file_is_valid_up_to_its_placeholder_pin() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let job = dir.path().join("rotate-ci.toml");
    std::fs::copy(root.join("examples/rotate-ci.toml"), &job).unwrap();
    std::fs::copy(
        crate::util::plugin("github"),
        dir.path().join("github.wasm"),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .env_clear()
        .env("HOME", home.path())
        .env("GH_SECRETS_TOKEN", "placeholder")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["--job", job.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("not the pinned {}", "0".repeat(64))),
        "{}",
        show(&out)
    );
}

/// Every `keyrot --flag` in the recipes is a flag keyrot has.
#[test]
fn the_recipes_use_only_real_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir().unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .env_clear()
        .env("HOME", home.path())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut checked = 0;
    for file in [
        "examples/Dockerfile",
        "examples/github-actions/rotate-aws-keys.yml",
        "examples/kubernetes/cronjob.yaml",
        "examples/org/org-rotation.toml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines() {
            // `keyrot --…` as a command, not a path such as /home/keyrot.
            let Some((before, command)) = line.split_once("keyrot --") else {
                continue;
            };
            if !(before.is_empty() || before.ends_with([' ', '"', ':'])) {
                continue;
            }
            let words = format!("--{command}");
            for flag in words.split_whitespace().filter(|w| w.starts_with("--")) {
                let flag = flag.trim_end_matches([',', '"', ']']);
                assert!(help.contains(flag), "{file}: {flag} is not in --help");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "found the keyrot command lines ({checked} flags)"
    );
}

/// The schedule recipes run where files do not last (a CI runner, a pod):
/// each keeps the journal on the IAM user, where the next run finds it.
#[test]
fn the_schedule_recipes_keep_the_journal_on_the_iam_user() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
    let job: toml::Table = toml::from_str(&read("examples/rotate-ci.toml")).unwrap();
    assert_eq!(
        job["journal"].as_str(),
        Some("iam"),
        "examples/rotate-ci.toml"
    );
    let workflow = read("examples/github-actions/rotate-aws-keys.yml");
    let run = workflow
        .lines()
        .find(|l| l.trim_start().starts_with("run: keyrot "))
        .expect("the workflow runs keyrot");
    assert!(run.contains("--journal iam"), "{run}");
    let cronjob = read("examples/kubernetes/cronjob.yaml");
    let args = cronjob
        .lines()
        .find(|l| l.trim_start().starts_with("args: ["))
        .expect("the CronJob's args");
    assert!(args.contains(r#""--journal", "iam""#), "{args}");
}
