//! The reference cannot drift from the binary: `docs/reference.md` lists
//! exactly the flags each command's `--help` shows (same names, same value
//! names), the job-file keys keyrot accepts, the environment variables the
//! source reads, and the fields of the JSON report a real run prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::util::{Moto, plugin, show};

/// One flag, as `--help` or the reference spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flag {
    pub long: String,
    pub short: Option<char>,
    /// The value's name (`FILE` in `--job <FILE>`), if it takes one.
    pub value: Option<String>,
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(short) = self.short {
            write!(f, "-{short}, ")?;
        }
        write!(f, "--{}", self.long)?;
        if let Some(value) = &self.value {
            write!(f, " {value}")?;
        }
        Ok(())
    }
}

/// The binary's output for `args`, in a clean environment (no AWS, no
/// NO_COLOR, a private HOME).
pub fn keyrot_output(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(args)
        .output()
        .expect("run keyrot")
}

/// `keyrot ARGS` (ending in `-h` or `--help`): its stdout, checked to be a
/// successful help.
pub fn help(args: &[&str]) -> String {
    let out = keyrot_output(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The flags a help text lists, each with the heading it sits under.
pub fn help_flags(help: &str) -> Vec<(String, Flag)> {
    let mut heading = String::new();
    let mut flags = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = line.trim_end_matches(':').to_string();
            continue;
        }
        // Flags sit at 2 (with a short form) or 6 spaces; descriptions and
        // possible values deeper.
        let indent = line.len() - line.trim_start().len();
        if !(2..=6).contains(&indent) {
            continue;
        }
        if let Some(flag) = parse_help_flag(line.trim_start()) {
            flags.push((heading.clone(), flag));
        }
    }
    flags
}

/// `-c, --config <KEY=VALUE>  A setting...` or `--dry-run  Check...`.
fn parse_help_flag(text: &str) -> Option<Flag> {
    let (short, rest) = match text.as_bytes() {
        [b'-', c, b',', b' ', ..] if c.is_ascii_alphabetic() => (Some(*c as char), &text[4..]),
        _ => (None, text),
    };
    let rest = rest.strip_prefix("--")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    let (long, after) = rest.split_at(end);
    let after = after.strip_prefix("...").unwrap_or(after);
    let value = after
        .strip_prefix(" <")
        .and_then(|v| v.split_once('>'))
        .map(|(v, _)| v.to_string());
    Some(Flag {
        long: long.to_string(),
        short,
        value,
    })
}

/// The subcommands a help's `Commands:` section lists (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut in_commands = false;
    let mut names = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_commands = line == "Commands:";
            continue;
        }
        if in_commands
            && let Some(name) = line.split_whitespace().next()
            && name != "help"
        {
            names.push(name.to_string());
        }
    }
    names
}

/// Every command of the binary, found through the help itself: `[]` for
/// `keyrot`, `["journal", "show"]` for `keyrot journal show`, ...
pub fn commands() -> Vec<Vec<String>> {
    fn walk(path: Vec<String>, found: &mut Vec<Vec<String>>) {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let text = help(&args);
        found.push(path.clone());
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            walk(next, found);
        }
    }
    let mut found = Vec::new();
    walk(Vec::new(), &mut found);
    found
}

fn reference() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("docs/reference.md")).unwrap()
}

/// The text of the reference's `## {title}` section.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("docs/reference.md has no section '## {title}'"));
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// The cells of a Markdown table row (`\|` is a `|` inside a cell).
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The `code` spans of a Markdown cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The flag a reference table's first cell names: `` `-c`, `--config KEY=VALUE` ``.
fn doc_flag(cell: &str) -> Option<Flag> {
    let mut flag: Option<Flag> = None;
    let mut short = None;
    for span in code_spans(cell) {
        if let Some(rest) = span.strip_prefix("--") {
            let (long, value) = match rest.split_once(' ') {
                Some((long, value)) => (long, Some(value.to_string())),
                None => (rest, None),
            };
            flag = Some(Flag {
                long: long.to_string(),
                short: None,
                value,
            });
        } else if let Some(c) = span.strip_prefix('-')
            && c.len() == 1
        {
            short = c.chars().next();
        }
    }
    flag.map(|f| Flag { short, ..f })
}

/// The reference's flags: for each command (`keyrot status`, or `*` for
/// "Every command"), the flags of every `###` section that names it.
fn documented_flags() -> BTreeMap<String, BTreeSet<Flag>> {
    let doc = reference();
    let flags = section(&doc, "Flags");
    let mut documented: BTreeMap<String, BTreeSet<Flag>> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    for line in flags.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            current = if heading == "Every command" {
                vec!["*".to_string()]
            } else {
                code_spans(heading)
                    .into_iter()
                    .filter(|s| s.starts_with("keyrot"))
                    .collect()
            };
            assert!(
                !current.is_empty(),
                "a flags section names no command: {line}"
            );
            for command in &current {
                documented.entry(command.clone()).or_default();
            }
            continue;
        }
        if line.starts_with("| `-") {
            let flag = doc_flag(&cells(line)[0])
                .unwrap_or_else(|| panic!("no flag in the reference row {line}"));
            for command in &current {
                documented.get_mut(command).unwrap().insert(flag.clone());
            }
        }
    }
    documented
}

#[test]
fn the_reference_lists_exactly_the_flags_of_every_commands_help() {
    let documented = documented_flags();
    let every = documented
        .get("*")
        .expect("an 'Every command' section")
        .clone();
    let commands = commands();
    assert!(
        commands.len() >= 12,
        "found the commands through --help: {commands:?}"
    );
    let mut named = BTreeSet::new();
    let mut problems = Vec::new();
    for path in &commands {
        let name = std::iter::once("keyrot")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let shown: BTreeSet<Flag> = help_flags(&help(&args))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        let mut in_doc = every.clone();
        if let Some(own) = documented.get(&name) {
            named.insert(name.clone());
            in_doc.extend(own.iter().cloned());
        }
        for flag in shown.difference(&in_doc) {
            problems.push(format!(
                "`{name} --help` shows `{flag}`, docs/reference.md does not"
            ));
        }
        for flag in in_doc.difference(&shown) {
            problems.push(format!(
                "docs/reference.md lists `{flag}` for `{name}`, its --help does not"
            ));
        }
    }
    for name in documented.keys().filter(|n| *n != "*") {
        if !named.contains(name) {
            problems.push(format!(
                "docs/reference.md has a section for `{name}`, which is no command"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The parsers above, on a help and a reference row of known shape: the
/// comparison cannot pass because they found nothing.
#[test]
fn the_flag_parsers_read_help_and_reference_rows() {
    let help = "Usage: keyrot\n\nOptions:\n  -h, --help\n          Print help\n\nPlugin:\n  -c, --config <KEY=VALUE>  A setting\n      --no-cache\n          - auto: not a flag\n  -v, --verbose...  More\n";
    let flags: Vec<String> = help_flags(help)
        .into_iter()
        .map(|(h, f)| format!("{h}: {f}"))
        .collect();
    assert_eq!(
        flags,
        [
            "Options: -h, --help",
            "Plugin: -c, --config KEY=VALUE",
            "Plugin: --no-cache",
            "Plugin: -v, --verbose"
        ]
    );
    let row = "| `--secret NAME=env:VAR\\|NAME=file:PATH` | `[secrets]` | a secret |";
    assert_eq!(
        doc_flag(&cells(row)[0]).unwrap().to_string(),
        "--secret NAME=env:VAR|NAME=file:PATH"
    );
    assert_eq!(
        doc_flag("`-c`, `--config KEY=VALUE`").unwrap().to_string(),
        "-c, --config KEY=VALUE"
    );
}

/// Names that look like environment variables in `src/` but are not read
/// from the environment, with why.
const NOT_READ: &[(&str, &str)] = &[
    ("CARGO_PKG_VERSION", "read at compile time by env!()"),
    ("SHA256_HEX", "a flag's value name"),
    ("GITHUB_TOKEN", "an example in a message"),
];

/// Every `"NAME"` in `src/` that looks like an environment variable
/// (capitals with an underscore, or `HOME`), except the test hooks
/// (`KEYROT_TEST_*`, which release builds ignore) and [`NOT_READ`].
fn names_in_source() -> BTreeSet<String> {
    fn visit(dir: &Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Every stretch between two quotes, whatever the quotes'
                // parity (a '"' char literal cannot hide a name).
                for literal in text.split('"').skip(1) {
                    let looks = literal == "HOME"
                        || (literal.contains('_')
                            && literal.len() > 3
                            && literal
                                .chars()
                                .next()
                                .is_some_and(|c| c.is_ascii_uppercase())
                            && literal
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
                    if looks {
                        names.insert(literal.to_string());
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut names,
    );
    names.retain(|n| !n.starts_with("KEYROT_TEST_") && !NOT_READ.iter().any(|(x, _)| x == n));
    names
}

#[test]
fn every_environment_variable_keyrot_reads_is_in_the_reference_and_in_help() {
    let names = names_in_source();
    // Read by keyrot's dependencies on its behalf; documented too.
    let mut expected: BTreeSet<String> = [
        "DOCKER_CONFIG",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    expected.extend(names.iter().cloned());
    for must in [
        "KEYROT_STATE_DIR",
        "KEYROT_CACHE_DIR",
        "KEYROT_LOG",
        "KEYROT_REGISTRY_USER",
        "KEYROT_REGISTRY_PASSWORD",
        "COSIGN_PASSWORD",
        "NO_COLOR",
        "HOME",
    ] {
        assert!(
            names.contains(must),
            "the source scan found {must}: {names:?}"
        );
    }
    let doc = reference();
    let environment = section(&doc, "Environment");
    let documented: BTreeSet<String> = environment
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| code_spans(&cells(l)[0]))
        .collect();
    let help = help(&["--help"]);
    let env_help = &help[help
        .find("\nEnvironment:\n")
        .expect("--help has an Environment list")..];
    let mut problems = Vec::new();
    for name in &expected {
        if !documented.contains(name) {
            problems.push(format!(
                "{name} is read but not in docs/reference.md's Environment table"
            ));
        }
        if !env_help.contains(name.as_str()) {
            problems.push(format!(
                "{name} is read but not in --help's Environment list"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The keys of `pub struct Job` in the job-file module, kebab-cased.
fn job_keys_in_source() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("src/cli/job.rs")).expect(
        "the job file's keys are read from src/cli/job.rs: if `Job` moved, update this test",
    );
    let start = text
        .find("pub struct Job {")
        .expect("`pub struct Job` in src/cli/job.rs");
    let body = &text[start..start + text[start..].find("\n}").unwrap()];
    // Fields serde skips are not keys of the file.
    let mut skipped = false;
    let mut keys = BTreeSet::new();
    for line in body.lines().map(str::trim) {
        if line.starts_with("#[serde(skip") {
            skipped = true;
        } else if let Some((field, _)) = line.strip_prefix("pub ").and_then(|l| l.split_once(':'))
            && !std::mem::take(&mut skipped)
        {
            keys.insert(field.replace('_', "-"));
        }
    }
    keys
}

#[test]
fn the_reference_lists_every_job_file_key_keyrot_accepts() {
    let doc = reference();
    let jobs = section(&doc, "Job files");
    let documented: BTreeSet<String> = jobs
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| code_spans(&cells(l)[0]))
        .collect();
    let in_source = job_keys_in_source();
    assert!(in_source.len() >= 20, "{in_source:?}");
    assert_eq!(
        documented, in_source,
        "docs/reference.md's job keys vs src/cli/job.rs"
    );
    // And the binary accepts each one (a wrong type is another error than
    // an unknown key), and refuses a key that is not one.
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    let run = |key: &str| {
        std::fs::write(&job, format!("{key} = 0\n")).unwrap();
        let out = keyrot_output(&["--job", job.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for key in &documented {
        let err = run(key);
        assert!(!err.contains("unknown field"), "{key}: {err}");
    }
    assert!(run("no-such-key").contains("unknown field `no-such-key`"));
    // The [aws] table: keyrot names all its keys when one is unknown.
    std::fs::write(&job, "[aws]\nno-such-key = 0\n").unwrap();
    let out = keyrot_output(&["--job", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    let aws_row = jobs
        .lines()
        .find(|l| l.starts_with("| `aws` |"))
        .expect("an `aws` row");
    let aws_keys: BTreeSet<String> = code_spans(&cells(aws_row)[2]).into_iter().collect();
    let accepted: BTreeSet<String> = code_spans(expected).into_iter().collect();
    assert_eq!(aws_keys, accepted, "the [aws] keys in docs/reference.md");
}

/// Every field a real report has, for a rotation, a dry run and a fleet, is
/// described in the reference.
#[tokio::test]
async fn every_field_of_the_json_reports_is_in_the_reference() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    moto.create_user("ci-bot-2").await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let base = [
        "--plugin",
        hello.as_str(),
        "--endpoint-url",
        moto.url.as_str(),
        "--output",
        "json",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = moto.keyrot(&args);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let dry = run(&["--user", "ci-bot", "--dry-run"]);
    let rotated = run(&["--user", "ci-bot", "--plugin-log", "show"]);
    let fleet = run(&["--user", "ci-bot", "--user", "ci-bot-2"]);
    let doc = reference();
    let reports = section(&doc, "JSON reports");
    let rotation_table =
        &reports[reports.find("### A rotation").unwrap()..reports.find("### A fleet").unwrap()];
    let documented: BTreeSet<String> = rotation_table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| code_spans(&cells(l)[0]))
        .collect();
    let mut fields = BTreeSet::new();
    for report in [&dry, &rotated, &fleet["runs"][0], &fleet["runs"][1]] {
        fields.extend(report.as_object().unwrap().keys().cloned());
    }
    let missing: Vec<_> = fields.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "report fields not in docs/reference.md: {missing:?}"
    );
    for field in fleet["summary"].as_object().unwrap().keys() {
        assert!(
            reports.contains(&format!("`{field}`")),
            "summary field {field} not in docs/reference.md"
        );
    }
}
