//! End-to-end tests of `github.wasm` through the binary, against moto and
//! a fake GitHub API that decrypts what the plugin stores: the secrets
//! GitHub ends up holding must be exactly the new key.

use serde_json::Value;

use crate::github_server::{FakeGitHub, Fault};
use crate::util::{Moto, show};

const TOKEN_ENV: (&str, &str) = ("GITHUB_TOKEN", FakeGitHub::TOKEN);

/// Runs github.wasm for user ci-bot against the fake, with `extra` flags.
fn run(moto: &Moto, github: &FakeGitHub, extra: &[&str]) -> std::process::Output {
    let api = format!("api-url={}", github.url);
    let mut args = vec![
        "--allow-host",
        &github.url,
        "--config",
        &api,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = moto.rotate("github", &args, &[TOKEN_ENV]);
    assert!(
        !show(&out).contains(FakeGitHub::TOKEN),
        "the token leaked:\n{}",
        show(&out)
    );
    out
}

/// The secret moto issued for `key_id`.
fn secret_of(moto: &Moto, key_id: &str) -> String {
    let keys = moto.keys_with_secrets();
    keys.into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, secret)| secret)
        .expect("moto issued the key")
}

#[tokio::test]
async fn repository_secrets_hold_the_new_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let repo = format!("repo={}", FakeGitHub::REPO);
    let out = run(
        &moto,
        &github,
        &["--config", &repo, "--secret", "token=env:GITHUB_TOKEN"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = report["new_key"]["access_key_id"].as_str().unwrap();
    assert_ne!(new, old);
    let stored = github.secrets();
    assert_eq!(stored["repos/octo/app/AWS_ACCESS_KEY_ID"], new);
    assert_eq!(
        stored["repos/octo/app/AWS_SECRET_ACCESS_KEY"],
        secret_of(&moto, new)
    );
    assert_eq!(
        moto.keys("ci-bot").await,
        vec![(new.to_string(), "Active".into())]
    );
}

#[tokio::test]
async fn an_injected_token_works_without_the_plugin_seeing_it() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let inject = format!("{}=Authorization:Bearer {{env:GITHUB_TOKEN}}", github.url);
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/app",
            "--config",
            "environment=staging/eu",
            "--inject-header",
            &inject,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(github.requests().iter().all(|r| r.authorized));
    assert!(
        github
            .secrets()
            .contains_key("repos/octo/app/environments/staging/eu/AWS_ACCESS_KEY_ID")
    );
}

#[tokio::test]
async fn organization_secrets_hold_the_new_key() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "org=octo-org",
            "--config",
            "key-id-secret-name=CI_KEY_ID",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stored = github.secrets();
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(&stored["orgs/octo-org/CI_KEY_ID"], new);
}

/// A failure GitHub causes must end with the new key deleted, the old key
/// still active, and a message that names the cause.
async fn assert_github_failure(fault: Fault, extra: &[&str], expect: &str) {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.set_fault(fault);
    let mut args = vec![
        "--config",
        "repo=octo/app",
        "--secret",
        "token=env:GITHUB_TOKEN",
    ];
    args.extend_from_slice(extra);
    let out = run(&moto, &github, &args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect), "stderr lacks {expect:?}:\n{err}");
}

#[tokio::test]
async fn a_rejected_token_fails_preflight() {
    assert_github_failure(Fault::Status(401), &[], "401").await;
}

#[tokio::test]
async fn an_unknown_repository_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/nope",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(
        moto.all_secrets().len(),
        1,
        "preflight failed: no key created"
    );
}

#[tokio::test]
async fn a_server_error_while_storing_deletes_the_new_key() {
    assert_github_failure(Fault::StatusOnPut(503), &[], "503").await;
}

#[tokio::test]
async fn a_hanging_github_ends_in_the_timeout() {
    assert_github_failure(
        Fault::Hang,
        &["--timeout", "3s"],
        "did not finish within 3s",
    )
    .await;
}

#[tokio::test]
async fn github_needs_its_host_allowed() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let out = moto.rotate(
        "github",
        &[
            "--config",
            "repo=octo/app",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
        &[TOKEN_ENV],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-host"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert!(github.requests().is_empty());
}

#[tokio::test]
async fn the_token_must_be_a_secret_not_a_setting() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let out = run(
        &moto,
        &github,
        &["--config", "repo=octo/app", "--config", "token=ghp_test"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--secret token=env:VARIABLE"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
}
