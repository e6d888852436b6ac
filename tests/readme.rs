//! The docs show real, tested code: every block of the handler guide
//! (`docs/handlers.md`) marked `<!-- example: PATH -->` must equal that
//! file, and each example must build and rotate a key through the binary.
//! And no command in the docs changes real keys without saying so.

use std::path::Path;

use crate::util::{Moto, plugin, show};

/// The handler guide, where the marked examples live.
const GUIDE: &str = "docs/handlers.md";

/// (path, code) for each marked block in the handler guide.
fn examples() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join(GUIDE)).unwrap();
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
fn the_guides_examples_are_the_files_the_tests_build() {
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
            .unwrap_or_else(|e| panic!("{GUIDE} example {path}: {e}"));
        assert_eq!(code, file, "{GUIDE} block differs from {path}");
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

/// Every Markdown file a user reads for commands: the README, `docs/`,
/// `examples/README.md`, `CONTRIBUTING.md` and each plugin's README.
fn user_docs() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![
        root.join("README.md"),
        root.join("CONTRIBUTING.md"),
        root.join("examples/README.md"),
    ];
    for dir in ["docs", "plugins"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if dir == "docs" && path.extension().is_some_and(|e| e == "md") {
                docs.push(path);
            } else if path.join("README.md").is_file() {
                docs.push(path.join("README.md"));
            }
        }
    }
    docs.sort();
    docs
}

/// The `keyrot` commands in `text`'s shell blocks that rotate (name
/// `--user` or `--job`) without the emulator (`--endpoint-url`) or
/// `--dry-run`, and without a comment right above saying that it changes
/// real things and how to try it first; and how many rotating commands
/// there are in all.
fn unsafe_commands(text: &str) -> (Vec<String>, usize) {
    let mut in_sh = false;
    let mut comments: Vec<String> = Vec::new();
    let mut command: Option<String> = None;
    let mut rotating = 0;
    let mut unsafe_ones = Vec::new();
    for line in text.lines() {
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
        // `keyrot status` only looks, whatever it is asked to look at.
        let selects = ["--user", "--job", "--org", "--ou "]
            .iter()
            .any(|flag| cmd.contains(flag));
        if selects && !cmd.starts_with("keyrot status") {
            rotating += 1;
            let said = comments.join(" ");
            let safe = cmd.contains("--endpoint-url") || cmd.contains("--dry-run");
            let warned = said.contains("Changes real things") && said.contains("--dry-run");
            if !(safe || warned) {
                unsafe_ones.push(cmd);
            }
        }
        comments.clear();
    }
    (unsafe_ones, rotating)
}

/// Docs that cannot hurt: every `keyrot` command in a shell block of the
/// README, `docs/`, the examples' README or a plugin's README that rotates
/// runs against the local emulator (`--endpoint-url`), uses `--dry-run`,
/// or says right above it, in a comment, that it changes real things and
/// how to try it first (`--dry-run`).
#[test]
fn every_documented_command_that_rotates_is_safe_or_says_what_it_changes() {
    let mut rotating = 0;
    let mut plugin_readmes = 0;
    for doc in user_docs() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let (unsafe_ones, found) = unsafe_commands(&text);
        assert!(
            unsafe_ones.is_empty(),
            "{} has commands that rotate for real without saying so: {unsafe_ones:#?}",
            doc.display()
        );
        rotating += found;
        if doc.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins")) && found > 0 {
            plugin_readmes += 1;
        }
    }
    assert!(
        rotating >= 15,
        "found the docs' rotating commands ({rotating})"
    );
    assert!(
        plugin_readmes >= 5,
        "found the plugin READMEs' commands ({plugin_readmes})"
    );
}

/// The check itself: a bare rotation is caught, a warned, emulated or dry
/// one is not.
#[test]
fn the_safety_check_catches_a_bare_rotation() {
    let bare = "```sh\nkeyrot --plugin x.wasm --user ci-bot \\\n  --config a=b\n```\n";
    assert_eq!(unsafe_commands(bare).0.len(), 1);
    let warned = "```sh\n# Changes real things: ... --dry-run changes nothing.\nkeyrot --plugin x.wasm --user u\n```\n";
    assert_eq!(unsafe_commands(warned), (vec![], 1));
    let stale = "```sh\n# Changes real things; --dry-run first.\necho hi\nkeyrot --plugin x.wasm --user u\n```\n";
    assert_eq!(
        unsafe_commands(stale).0.len(),
        1,
        "the comment must be right above"
    );
    let dry = "```sh\nkeyrot --job j.toml --dry-run\n```\n";
    assert_eq!(unsafe_commands(dry), (vec![], 1));
}

/// A heading's anchor, as GitHub makes it: lower case, punctuation other
/// than `-` and `_` dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `text` without its fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The docs were split across files: every relative link in them (and its
/// `#anchor`) leads somewhere.
#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut checked = 0;
    for doc in user_docs() {
        let text = prose(&std::fs::read_to_string(&doc).unwrap());
        for (at, _) in text.match_indices("](") {
            let target = text[at + 2..].split(')').next().unwrap_or("");
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            assert!(
                file.exists(),
                "{}: link to {target}: no such file",
                doc.display()
            );
            if !fragment.is_empty() {
                let headings: Vec<String> = prose(&std::fs::read_to_string(&file).unwrap())
                    .lines()
                    .filter_map(|l| {
                        l.trim_start_matches('#')
                            .strip_prefix(' ')
                            .filter(|_| l.starts_with('#'))
                    })
                    .map(anchor)
                    .collect();
                assert!(
                    headings.iter().any(|h| h == fragment),
                    "{}: link to {target}: no heading with that anchor in {}",
                    doc.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "found the docs' links ({checked})");
    assert_eq!(anchor("The compiled-code cache"), "the-compiled-code-cache");
    assert_eq!(anchor("`keyrot status`"), "keyrot-status");
}
