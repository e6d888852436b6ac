//! The README's "Common errors" quote what the binary prints: each entry's
//! message is produced here through the real binary (against moto, as a
//! user would meet it) and compared with the quote, exit code included. An
//! entry with no test here, or a test with no entry, fails too.
//!
//! In a quote, `…` stands for text that changes from run to run (key ids, a
//! pid, a path) or that the README leaves out; every other character must
//! be printed, in order.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use crate::proxy::{FaultProxy, Faults};
use crate::util::{Moto, plugin, show};

/// One entry: `**Title** (exit N)` and the quote in the ```text block
/// after it.
#[derive(Debug)]
struct Entry {
    title: String,
    exit: i32,
    quote: String,
}

fn entries() -> Vec<Entry> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("\n## Common errors\n")
        .expect("the README has a '## Common errors' section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut entries = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("**") else {
            continue;
        };
        let (title, after) = rest.split_once("**").expect("a closing **");
        let exit = after
            .trim()
            .strip_prefix("(exit ")
            .and_then(|e| e.strip_suffix(')'))
            .unwrap_or_else(|| panic!("'{title}': no (exit N) after the title"))
            .parse()
            .unwrap();
        let quote: Vec<&str> = lines
            .by_ref()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| *l != "```")
            .collect();
        assert_eq!(
            quote.first(),
            Some(&"```text"),
            "'{title}': a ```text block follows"
        );
        entries.push(Entry {
            title: title.to_string(),
            exit,
            quote: quote[1..].join("\n"),
        });
    }
    entries
}

/// The titles this file has a test for.
const TESTED: &[&str] = &[
    "No AWS credentials",
    "Unknown user",
    "Two active keys",
    "The handler needs a host",
    "A misspelled setting",
    "Not allowed by IAM",
    "No writable state directory",
    "Another run holds the user",
];

#[test]
fn every_quoted_error_has_a_test_and_every_test_a_quote() {
    let titles: Vec<String> = entries().into_iter().map(|e| e.title).collect();
    assert_eq!(
        titles, TESTED,
        "the README's Common errors and the tests here"
    );
}

/// Whether `printed` holds the quote: its pieces between `…`, in order.
fn holds(printed: &str, quote: &str) -> bool {
    let mut rest = printed;
    for piece in quote.split('…') {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn a_quote_matches_only_in_order() {
    assert!(holds("error: a 12 b 34 c", "error: a … b … c"));
    assert!(!holds("error: b 12 a", "error: a … b"));
    assert!(!holds("error: a b", "error: a … c"));
}

/// Checks the README's entry `title` against what a run printed.
fn check(title: &str, out: &Output) {
    let entry = entries()
        .into_iter()
        .find(|e| e.title == title)
        .unwrap_or_else(|| panic!("the README has no entry '{title}'"));
    assert!(
        entry.quote.len() > 40 && entry.quote.starts_with("error: "),
        "'{title}': {:?}",
        entry.quote
    );
    assert_eq!(
        out.status.code(),
        Some(entry.exit),
        "'{title}': {}",
        show(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        holds(&stderr, &entry.quote),
        "'{title}': the README quotes\n{}\nbut keyrot printed\n{}",
        entry.quote,
        show(out)
    );
}

fn wasm(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

#[tokio::test]
async fn no_aws_credentials() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let (mut cmd, _home) = moto.command(
        &[
            "--plugin",
            &wasm("hello"),
            "--user",
            "ci-bot",
            "--endpoint-url",
            &moto.url,
        ],
        &[],
    );
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    check("No AWS credentials", &cmd.output().unwrap());
}

#[tokio::test]
async fn unknown_user() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let hello = wasm("hello");
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--user",
        "ci-bott",
        "--endpoint-url",
        &moto.url,
    ]);
    check("Unknown user", &out);
}

#[tokio::test]
async fn two_active_keys() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    moto.create_key("ci-bot", "Active").await;
    check("Two active keys", &moto.rotate("hello", &[], &[]));
}

#[tokio::test]
async fn the_handler_needs_a_host() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    check(
        "The handler needs a host",
        &moto.rotate("github", &["--config", "repo=octo/app"], &[]),
    );
}

#[tokio::test]
async fn a_misspelled_setting() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate(
        "github",
        &["--allow-host", "api.github.com", "--config", "rpo=octo/app"],
        &[],
    );
    check("A misspelled setting", &out);
}

/// IAM's own AccessDenied answer (moto's is not in IAM's shape, so the
/// fault proxy answers as IAM does).
#[tokio::test]
async fn not_allowed_by_iam() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let faults = Faults {
        deny: vec![("CreateAccessKey".to_string(), u32::MAX)],
        ..Faults::default()
    };
    let proxy = FaultProxy::start(&moto.url, faults);
    let hello = wasm("hello");
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &proxy.url,
    ]);
    check("Not allowed by IAM", &out);
    moto.assert_only_key("ci-bot", &old).await;
}

/// As a container with a read-only root meets it: the Kubernetes example
/// without its state volume (see `kubernetes.rs`).
#[tokio::test]
async fn no_writable_state_directory() {
    use crate::kubernetes::{Cluster, example_pod, run_pod, volumes};
    let mut pod = example_pod();
    let state = pod.env.remove("KEYROT_STATE_DIR").unwrap();
    pod.mounts
        .retain(|m| !state.starts_with(&format!("{}/", m.path)));
    let cluster = Cluster::start(&pod).await;
    let volumes = volumes(&pod, &cluster.files);
    check(
        "No writable state directory",
        &run_pod(&pod, &volumes, &cluster.env),
    );
}

#[tokio::test]
async fn another_run_holds_the_user() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let state = tempfile::tempdir().unwrap();
    let hello = wasm("hello");
    let args = [
        "--plugin",
        hello.as_str(),
        "--user",
        "ci-bot",
        "--endpoint-url",
        moto.url.as_str(),
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    // A first run, paused before its preflight: it holds the user's lock.
    let (mut first, _home) = moto.command(&args, &[("KEYROT_TEST_HOOK", "before-preflight:pause")]);
    let mut first = first
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("paused at before-preflight") => break,
            Some(Ok(_)) => continue,
            other => panic!("the first run never paused: {other:?}"),
        }
    }
    let second = moto.keyrot(&args);
    let _ = first.kill();
    let _ = first.wait();
    check("Another run holds the user", &second);
}
