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
