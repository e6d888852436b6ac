//! The IAM policies in `examples/` are proven, not just written: keyrot
//! rotates against moto with IAM authorization on, signing as a user that
//! holds exactly the example policy, and a narrower policy fails the way the
//! examples' README says.
//!
//! moto evaluates every IAM user action against the resource `*` (it checks
//! actions, not user ARNs), so each statement's `Resource` is set to `*` for
//! the emulator; the tests check first that the files themselves are scoped
//! (by user path, or to `${aws:username}`). Everything else is the file as
//! shipped.

use std::path::Path;

use serde_json::Value;

use crate::util::{Moto, show};

/// An example file, parsed.
fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `Resource` of every statement, as strings.
fn resources(policy: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for statement in policy["Statement"].as_array().expect("a Statement list") {
        match &statement["Resource"] {
            Value::String(r) => all.push(r.clone()),
            Value::Array(rs) => all.extend(rs.iter().map(|r| r.as_str().unwrap().to_string())),
            other => panic!("unexpected Resource {other}"),
        }
    }
    all
}

/// The policy as moto can check it: every `Resource` set to `*`.
fn for_moto(mut policy: Value) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        statement["Resource"] = Value::from("*");
    }
    policy
}

/// The policy without one action.
fn without(mut policy: Value, action: &str) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let actions = statement["Action"].as_array_mut().unwrap();
        let before = actions.len();
        actions.retain(|a| a != action);
        assert!(actions.len() < before, "the example grants {action}");
    }
    policy
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
