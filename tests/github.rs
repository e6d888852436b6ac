//! End-to-end tests of `github.wasm` through the binary, against moto and
//! a fake GitHub API that decrypts what the plugin stores: the secrets
//! GitHub ends up holding must be exactly the new key.

use serde_json::Value;

use crate::github_server::{Access, FakeGitHub, Fault, OrgSecret, RateLimit};
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
        "--plugin-log",
        "show",
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
    // Bodies go out with their length, as GitHub's own clients send them.
    let puts: Vec<_> = github
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    for put in puts {
        assert!(!put.chunked, "a chunked PUT: {:?}", put.headers);
        let length: usize = put.headers["content-length"].parse().unwrap();
        assert_eq!(length, put.body.unwrap().to_string().len());
    }
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
    // New secrets are private: shared with no repository by default.
    for name in ["CI_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert_eq!(
            github.org_secret(name),
            Some(org_secret("private", &[])),
            "{name}"
        );
    }
}

fn org_secret(visibility: &str, ids: &[u64]) -> OrgSecret {
    OrgSecret {
        visibility: visibility.into(),
        repository_ids: ids.to_vec(),
    }
}

const ORG_ARGS: [&str; 4] = [
    "--config",
    "org=octo-org",
    "--secret",
    "token=env:GITHUB_TOKEN",
];

#[tokio::test]
async fn organization_secrets_keep_their_visibility_and_selected_repositories() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    // More than one page (GitHub lists at most 100 a page).
    let ids: Vec<u64> = (1000..1000 + FakeGitHub::ORG_REPOS).collect();
    github.seed_org_secret("AWS_ACCESS_KEY_ID", &old, org_secret("selected", &ids));
    github.seed_org_secret("AWS_SECRET_ACCESS_KEY", "old", org_secret("all", &[]));
    let out = run(&moto, &github, &ORG_ARGS);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(&github.secrets()["orgs/octo-org/AWS_ACCESS_KEY_ID"], new);
    assert_eq!(
        github.org_secret("AWS_ACCESS_KEY_ID"),
        Some(org_secret("selected", &ids)),
        "the same repositories still see the key id"
    );
    assert_eq!(
        github.org_secret("AWS_SECRET_ACCESS_KEY"),
        Some(org_secret("all", &[]))
    );
    assert!(
        show(&out).contains(
            "AWS_ACCESS_KEY_ID in organization octo-org gets visibility selected (150 repositories)"
        ),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn an_explicit_visibility_wins_and_selected_keeps_the_repositories() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.seed_org_secret("AWS_ACCESS_KEY_ID", &old, org_secret("selected", &[5, 6]));
    github.seed_org_secret("AWS_SECRET_ACCESS_KEY", "old", org_secret("private", &[]));
    let mut args = ORG_ARGS.to_vec();
    args.extend(["--config", "visibility=selected"]);
    let out = run(&moto, &github, &args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        github.org_secret("AWS_ACCESS_KEY_ID"),
        Some(org_secret("selected", &[5, 6]))
    );
    assert_eq!(
        github.org_secret("AWS_SECRET_ACCESS_KEY"),
        Some(org_secret("selected", &[]))
    );
    assert!(
        show(&out).contains("it will reach no repository until you select some"),
        "{}",
        show(&out)
    );

    let mut args = ORG_ARGS.to_vec();
    args.extend(["--config", "visibility=all"]);
    let out = run(&moto, &github, &args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert_eq!(github.org_secret(name), Some(org_secret("all", &[])));
    }
    assert!(
        show(&out).contains(
            "changes the secret from visibility selected (2 repositories) to visibility all"
        ),
        "{}",
        show(&out)
    );
}

/// A preflight failure: exit 1, nothing created, nothing written.
fn assert_preflight_refused(
    moto: &Moto,
    github: &FakeGitHub,
    out: &std::process::Output,
    expect: &str,
) {
    assert_eq!(out.status.code(), Some(1), "{}", show(out));
    assert_eq!(
        moto.all_secrets().len(),
        1,
        "no key created:\n{}",
        show(out)
    );
    assert!(github.requests().iter().all(|r| r.method == "GET"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect), "stderr lacks {expect:?}:\n{err}");
}

#[tokio::test]
async fn read_only_repository_access_fails_preflight() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.set_access(Access {
        push: false,
        admin: false,
        ..Access::default()
    });
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/app",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    assert_preflight_refused(
        &moto,
        &github,
        &out,
        "the token's user has read-only access to repository octo/app",
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn a_classic_token_without_the_needed_scope_fails_preflight() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.set_access(Access {
        oauth_scopes: Some("repo, read:org".into()),
        ..Access::default()
    });
    let out = run(&moto, &github, &ORG_ARGS);
    assert_preflight_refused(&moto, &github, &out, "lacks the admin:org scope");

    // The same token may write a repository's secrets.
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/app",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[tokio::test]
async fn an_organization_member_who_is_not_an_owner_is_warned() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.set_access(Access {
        org_role: "member".into(),
        ..Access::default()
    });
    let out = run(&moto, &github, &ORG_ARGS);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        show(&out).contains("is not an owner of organization octo-org (membership: member)"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_as_github_asks() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    github.set_fault(Fault::RateLimit {
        method: Some("PUT".into()),
        limit: RateLimit {
            status: 403,
            retry_after: Some(1),
            primary: false,
            reset_in: 60,
        },
        times: 1,
    });
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/app",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        show(&out).contains("GitHub rate limit (403) while setting secret AWS_ACCESS_KEY_ID in repository octo/app: waiting 1 s"),
        "{}",
        show(&out)
    );
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(&github.secrets()["repos/octo/app/AWS_ACCESS_KEY_ID"], new);
}

#[tokio::test]
async fn a_long_rate_limit_fails_preflight_as_a_rate_limit() {
    for (status, retry_after) in [(429, None), (403, Some(3600))] {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let github = FakeGitHub::start();
        github.set_fault(Fault::RateLimit {
            method: None,
            limit: RateLimit {
                status,
                retry_after,
                primary: true,
                reset_in: 3600,
            },
            times: 10,
        });
        let out = run(
            &moto,
            &github,
            &[
                "--config",
                "repo=octo/app",
                "--secret",
                "token=env:GITHUB_TOKEN",
            ],
        );
        let expect = format!("GitHub rate limit reached ({status}: API rate limit exceeded");
        assert_preflight_refused(&moto, &github, &out, &expect);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("retry in 36"), "{err}");
        assert!(!err.contains("rejected the token"), "{err}");
        moto.assert_only_key("ci-bot", &old).await;
    }
}

#[tokio::test]
async fn a_renamed_repository_is_followed_on_the_same_host() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let repo = format!("repo={}", FakeGitHub::OLD_REPO);
    let out = run(
        &moto,
        &github,
        &["--config", &repo, "--secret", "token=env:GITHUB_TOKEN"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    assert_eq!(&github.secrets()["repos/octo/app/AWS_ACCESS_KEY_ID"], new);
    assert!(show(&out).contains("moved permanently"), "{}", show(&out));
    let moved_put = format!(
        "/repositories/{}/actions/secrets/AWS_SECRET_ACCESS_KEY",
        FakeGitHub::REPO_ID
    );
    assert!(
        github
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path == moved_put),
        "the PUT was repeated at the new place (307)"
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let github = FakeGitHub::start();
    let elsewhere = FakeGitHub::start();
    github.set_fault(Fault::RedirectTo(elsewhere.url.clone()));
    // Not granted (it is not a host the plugin declares): the plugin
    // refuses the redirect itself rather than trying and being denied.
    let out = run(
        &moto,
        &github,
        &[
            "--config",
            "repo=octo/app",
            "--secret",
            "token=env:GITHUB_TOKEN",
        ],
    );
    let expect = format!("GitHub redirected to another host ({})", elsewhere.url);
    assert_preflight_refused(&moto, &github, &out, &expect);
    assert!(elsewhere.requests().is_empty());
    moto.assert_only_key("ci-bot", &old).await;
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
