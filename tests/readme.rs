//! The README's handler guide shows real, tested code: every block marked
//! `<!-- example: PATH -->` must equal that file, and each example must
//! build and rotate a key through the binary.

use std::path::Path;

use crate::util::{Moto, plugin, show};

/// (path, code) for each marked block in the README.
fn examples() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut found = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- example: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "no code block after the marker for {path}"
        );
        let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        found.push((path.to_string(), code.join("\n") + "\n"));
    }
    found
}

#[test]
fn readme_examples_are_the_files_the_tests_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = examples();
    assert!(
        examples
            .iter()
            .any(|(p, _)| p == "plugins/rust-hello/src/lib.rs"),
        "the Rust example is marked"
    );
    for (path, code) in examples {
        let file = std::fs::read_to_string(root.join(&path))
            .unwrap_or_else(|e| panic!("README example {path}: {e}"));
        assert_eq!(code, file, "README block differs from {path}");
    }
}

#[tokio::test]
async fn the_rust_guide_example_rotates_a_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let wasm = plugin("rust_hello").to_string_lossy().into_owned();
    let out = moto.keyrot(&[
        "--plugin",
        &wasm,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--config",
        "target=vault",
        "--plugin-log",
        "show",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].0, old);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("storing {} in vault", keys[0].0)),
        "{}",
        show(&out)
    );
}

/// Docs that cannot hurt: every `keyrot` command in a README shell block
/// that rotates (names `--user` or `--job`) runs against the local emulator
/// (`--endpoint-url`), uses `--dry-run`, or says right above it, in a
/// comment, that it changes real things and how to try it first.
#[test]
fn every_readme_command_that_rotates_is_safe_or_says_what_it_changes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut in_sh = false;
    let mut comments: Vec<String> = Vec::new();
    let mut command: Option<String> = None;
    let mut rotating = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            comments.clear();
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(cmd) = command.as_mut() {
            cmd.push_str(line);
        } else if line.starts_with("keyrot ") {
            command = Some(line.to_string());
        } else if let Some(comment) = line.strip_prefix('#') {
            comments.push(comment.to_string());
            continue;
        } else {
            comments.clear();
            continue;
        }
        if line.ends_with('\\') {
            continue;
        }
        let cmd = command.take().unwrap();
        if cmd.contains("--user") || cmd.contains("--job") {
            rotating += 1;
            let said = comments.join(" ");
            let safe = cmd.contains("--endpoint-url") || cmd.contains("--dry-run");
            let warned = said.contains("Changes real things") && said.contains("--dry-run");
            assert!(
                safe || warned,
                "README command rotates for real without saying so: {cmd}"
            );
        }
        comments.clear();
    }
    assert!(
        rotating >= 5,
        "found the README's rotating commands ({rotating})"
    );
}
