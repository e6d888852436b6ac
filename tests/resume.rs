//! Resume without a human, through the real binary against moto: keyrot
//! killed (SIGKILL) at every step boundary of a rotation, then the same
//! command again with no flag, converges with each shipped handler that
//! refuses to overwrite a key it does not expect: `aws-credentials-file`
//! and `dotenv`.
//!
//! The hard boundary is right after `handle`: the file holds the killed
//! run's new key, and the journal still says `created`. The rerun deletes
//! that key (it was never confirmed handed over), rotates afresh and tells
//! the handler which key it was (`abandoned-key-ids`, since contract 0.3.0):
//! the handler replaces it instead of asking for `--config force=true`. Any
//! other key is still refused. A second kill, of the rerun, is the same:
//! the journal carries the first key forward, and the third run names both.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::schedule::{kill, start_at};
use crate::util::{Moto, plugin, show};

/// Every point a rotation with either handler passes, in order, without
/// `host-log` (which each plugin log line hits, inside a step):
/// `KEYROT_TEST_HOOK=*:trace` lists them, and
/// [`the_cases_are_every_boundary_a_rotation_passes`] checks this list
/// against it. Each one gets a case per handler below.
const BOUNDARIES: [&str; 19] = [
    "before-list-keys",
    "after-list-keys",
    "before-preflight",
    "after-preflight",
    "saved-create-sent",
    "after-create-key",
    "created-key",
    "saved-created",
    "before-check-keys",
    "after-check-keys",
    "after-verify-key",
    "before-handle",
    "host-handle",
    "after-handle",
    "saved-propagated",
    "before-confirm-new-key",
    "after-confirm-new-key",
    "before-delete-old-key",
    "after-delete-old-key",
];

/// What the file holds once keyrot is killed at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// The old key: the handler never wrote.
    Old,
    /// The killed run's new key, never confirmed handed over (the journal
    /// says `created`): the rerun deletes it and must replace it.
    Abandoned,
    /// The killed run's new key, journaled `propagated`: the rerun keeps
    /// it and retires the old key.
    Kept,
}

fn index(point: &str) -> usize {
    BOUNDARIES.iter().position(|p| *p == point).unwrap()
}

/// What each boundary leaves in the file.
fn left_at(point: &str) -> Left {
    match index(point).cmp(&index("after-handle")) {
        std::cmp::Ordering::Less => Left::Old,
        std::cmp::Ordering::Equal => Left::Abandoned,
        std::cmp::Ordering::Greater => Left::Kept,
    }
}

/// Whether a run killed at `point` left a journal record (the file journal
/// writes none before `create-sent`).
fn journaled_at(point: &str) -> bool {
    index(point) >= index("saved-create-sent")
}

/// A shipped handler that refuses to overwrite a key it does not expect.
#[derive(Clone, Copy, Debug)]
enum Strict {
    CredentialsFile,
    Dotenv,
}

impl Strict {
    fn plugin(self) -> &'static str {
        match self {
            Strict::CredentialsFile => "aws_credentials_file",
            Strict::Dotenv => "dotenv",
        }
    }

    /// The file's name, in the granted directory.
    fn file(self) -> &'static str {
        match self {
            Strict::CredentialsFile => "credentials",
            Strict::Dotenv => ".env",
        }
    }

    /// `--allow-dir DIR:MOUNT` and the settings that point at the file.
    fn args(self, dir: &Path) -> Vec<String> {
        let (mount, config): (&str, &[&str]) = match self {
            Strict::CredentialsFile => ("/aws", &["path=/aws/credentials", "profile=ci"]),
            Strict::Dotenv => ("/app", &["path=/app/.env"]),
        };
        let mut args = vec![
            "--allow-dir".to_string(),
            format!("{}:{mount}", dir.display()),
        ];
        for setting in config {
            args.extend(["--config".to_string(), setting.to_string()]);
        }
        args
    }

    /// The file holding key `id` with `secret`, between lines the handler
    /// must keep byte for byte.
    fn text(self, id: &str, secret: &str) -> String {
        match self {
            Strict::CredentialsFile => format!(
                "# managed by keyrot\n\
                 [default]\n\
                 aws_access_key_id = AKIADEFAULTDEFAULT00\n\
                 aws_secret_access_key = default-secret\n\
                 \n\
                 [ci]\n\
                 aws_access_key_id = {id}\n\
                 aws_secret_access_key = {secret}\n\
                 region = eu-west-1\n"
            ),
            Strict::Dotenv => format!(
                "# app settings\n\
                 DATABASE_URL=postgres://db/app\n\
                 AWS_ACCESS_KEY_ID={id}\n\
                 export AWS_SECRET_ACCESS_KEY=\"{secret}\"\n\
                 LAST=1\n"
            ),
        }
    }

    /// The line the handler logs when it replaces the key an interrupted
    /// rotation left.
    fn replacing_abandoned(self, id: &str) -> String {
        let masked = format!("{}…{}", &id[..4], &id[id.len() - 4..]);
        match self {
            Strict::CredentialsFile => format!(
                "profile 'ci' in /aws/credentials holds key {id}, which an interrupted \
                 rotation left there and keyrot has deleted since; it will be replaced"
            ),
            Strict::Dotenv => format!(
                "/app/.env sets AWS_ACCESS_KEY_ID to key {masked} (line 3), which an \
                 interrupted rotation left there and keyrot has deleted since; replacing it"
            ),
        }
    }
}

/// One case: moto with user `ci-bot` and its old key, a granted directory
/// whose file holds that key, and a state directory every run shares.
struct Case {
    handler: Strict,
    moto: Moto,
    old: String,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    state: PathBuf,
    /// Flags every run of the case adds, e.g. `--journal iam`.
    extra: Vec<String>,
    /// With the IAM journal, a killed run's lease must run out before the
    /// next run may take the user over: each run after a kill runs an hour
    /// later by its clock (`KEYROT_TEST_CLOCK_OFFSET`), as a nightly job
    /// would, instead of the test waiting.
    later_after_kill: bool,
    clock: std::cell::Cell<u64>,
}

const OLD_SECRET: &str = "old-secret-value";

impl Case {
    async fn new(handler: Strict) -> Case {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dest");
        let state = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(handler.file()), handler.text(&old, OLD_SECRET)).unwrap();
        Case {
            handler,
            moto,
            old,
            _tmp: tmp,
            dir,
            state,
            extra: Vec::new(),
            later_after_kill: false,
            clock: std::cell::Cell::new(0),
        }
    }

    /// The test-hook environment the next run of the case gets.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self.clock.get() {
            0 => Vec::new(),
            offset => vec![("KEYROT_TEST_CLOCK_OFFSET", offset.to_string())],
        }
    }

    /// Moves the next run's clock past a killed run's lease, if need be.
    fn after_kill(&self) {
        if self.later_after_kill {
            self.clock.set(self.clock.get() + 3600);
        }
    }

    /// The command every run of the case uses, plus `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--plugin",
            plugin(self.handler.plugin()).to_str().unwrap(),
            "--user",
            "ci-bot",
            "--endpoint-url",
            &self.moto.url,
            "--state-dir",
            self.state.to_str().unwrap(),
            "--plugin-log",
            "show",
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.handler.args(&self.dir));
        args.extend(self.extra.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs the command (plus `extra`) to the end; no secret moto issued
    /// may appear in its output.
    fn run(&self, extra: &[&str]) -> Output {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = self.moto.keyrot_with_env(&args, &env);
        let printed = show(&out);
        for secret in self.moto.all_secrets() {
            assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
        }
        out
    }

    /// Runs the command until it reaches `point`, then kills it (SIGKILL).
    fn kill_at(&self, point: &str) {
        let args = self.args(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (child, _home) = start_at(&self.moto, &args, &format!("{point}:pause"), &env);
        kill(child);
        self.after_kill();
    }

    fn contents(&self) -> String {
        std::fs::read_to_string(self.dir.join(self.handler.file())).unwrap()
    }

    /// The secret moto issued for key `id`.
    fn secret_of(&self, id: &str) -> String {
        self.moto
            .keys_with_secrets()
            .into_iter()
            .find(|(k, _)| k == id)
            .unwrap_or_else(|| panic!("moto never issued {id}"))
            .1
    }

    /// Which key the file holds: the old one, or one moto issued, with its
    /// real secret, every other byte as it was.
    fn held(&self) -> String {
        let text = self.contents();
        if text == self.handler.text(&self.old, OLD_SECRET) {
            return self.old.clone();
        }
        for (id, secret) in self.moto.keys_with_secrets() {
            if id != self.old && text == self.handler.text(&id, &secret) {
                return id;
            }
        }
        panic!("the file holds no key moto issued, with its secret and nothing else changed");
    }

    /// The journal's records (one file per account and user).
    fn journal(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.join("journal"))
            .map(|accounts| {
                accounts
                    .flatten()
                    .flat_map(|a| std::fs::read_dir(a.path()).unwrap().flatten())
                    .map(|r| r.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The promise: exactly one key, active, the one the file holds (with
    /// its real secret and nothing else changed), not the old one; no key
    /// nobody holds; no temporary file left.
    async fn assert_converged(&self) -> String {
        let keys = self.moto.keys("ci-bot").await;
        let [(active, status)] = keys.as_slice() else {
            panic!("exactly one key, none that nobody holds: {keys:?}");
        };
        assert_eq!(status, "Active", "{keys:?}");
        assert_ne!(active, &self.old, "the old key is retired");
        assert_eq!(
            self.contents(),
            self.handler.text(active, &self.secret_of(active)),
            "the file holds the active key with its real secret, every other byte kept"
        );
        let mut entries: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [self.handler.file()],
            "nothing else in the directory"
        );
        active.clone()
    }
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Kills a rotation through `handler` at `point`, reruns the same command
/// without any flag, and checks that it converges.
async fn kill_at_then_rerun(handler: Strict, point: &str) {
    let case = Case::new(handler).await;
    case.kill_at(point);
    let left = case.held();
    let expected = left_at(point);
    match expected {
        Left::Old => assert_eq!(left, case.old, "at {point} the handler never wrote"),
        Left::Abandoned | Left::Kept => {
            assert_ne!(left, case.old, "at {point} the handler wrote its key")
        }
    }

    let out = case.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{point}: {}", show(&out));
    let report = report(&out);
    assert_eq!(report["outcome"], "rotated", "{point}: {report}");
    assert_eq!(
        report["resumed"].is_object(),
        journaled_at(point),
        "{point}: the rerun finished the killed run first, if it had journaled: {report}"
    );
    let now = case.assert_converged().await;
    if point == "saved-create-sent" {
        // The killed run's create may still be applied by IAM: the journal
        // watches for that key until the create window closes.
        let journal = report["journal"].as_str().unwrap_or_default();
        assert!(journal.contains("the journal is kept until"), "{report}");
    } else {
        assert_eq!(
            case.journal(),
            Vec::<PathBuf>::new(),
            "the journal is removed"
        );
    }
    match expected {
        Left::Old => {}
        Left::Abandoned => {
            assert_ne!(
                now, left,
                "{point}: the rerun replaced the killed run's key"
            );
            assert!(
                stderr(&out).contains(&handler.replacing_abandoned(&left)),
                "{point}: the handler said it replaces the key left behind: {}",
                show(&out)
            );
        }
        Left::Kept => assert_eq!(now, left, "{point}: the propagated key stays"),
    }
}

/// One test per handler and boundary, so the harness runs them in
/// parallel, each with its own moto.
macro_rules! kill_cases {
    ($($name:ident: $point:literal,)*) => {
        mod credentials_file {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    kill_at_then_rerun(Strict::CredentialsFile, $point).await;
                }
            )*
        }

        mod dotenv {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    kill_at_then_rerun(Strict::Dotenv, $point).await;
                }
            )*
        }

        /// The points the cases kill at, in order.
        const CASES: &[&str] = &[$($point),*];
    };
}

kill_cases! {
    killed_before_listing_the_keys: "before-list-keys",
    killed_after_listing_the_keys: "after-list-keys",
    killed_before_preflight: "before-preflight",
    killed_after_preflight: "after-preflight",
    killed_once_create_sent_is_journaled: "saved-create-sent",
    killed_as_the_create_answer_arrives: "after-create-key",
    killed_before_the_new_key_is_journaled: "created-key",
    killed_once_the_new_key_is_journaled: "saved-created",
    killed_before_checking_the_keys: "before-check-keys",
    killed_after_checking_the_keys: "after-check-keys",
    killed_after_verifying_the_new_key: "after-verify-key",
    killed_before_handle: "before-handle",
    killed_as_the_handler_starts: "host-handle",
    killed_after_handle_before_it_is_journaled: "after-handle",
    killed_once_propagated_is_journaled: "saved-propagated",
    killed_before_confirming_the_new_key: "before-confirm-new-key",
    killed_after_confirming_the_new_key: "after-confirm-new-key",
    killed_before_deleting_the_old_key: "before-delete-old-key",
    killed_after_deleting_the_old_key: "after-delete-old-key",
}

/// The cases are exactly the boundaries, and the boundaries are exactly
/// the points a real rotation with each handler passes: a step added to
/// the rotation fails this until it has its case.
#[tokio::test]
async fn the_cases_are_every_boundary_a_rotation_passes() {
    assert_eq!(CASES, BOUNDARIES);
    for handler in [Strict::CredentialsFile, Strict::Dotenv] {
        let case = Case::new(handler).await;
        let args = case.args(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = case
            .moto
            .keyrot_with_env(&args, &[("KEYROT_TEST_HOOK", "*:trace")]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        case.assert_converged().await;
        assert_eq!(case.journal(), Vec::<PathBuf>::new());
        let mut passed: Vec<String> = Vec::new();
        for line in stderr(&out).lines() {
            if let Some(point) = line.strip_prefix("keyrot-test-hook: passed ")
                && point != "host-log"
                && !passed.iter().any(|p| p == point)
            {
                passed.push(point.to_string());
            }
        }
        assert_eq!(passed, BOUNDARIES, "{handler:?}");
    }
}

/// Kills a rotation once the handler stored its key, then kills the rerun
/// after it deleted that key but before it journaled anything new (its
/// record still names the key, gone now): the third run still tells the
/// handler that key, and converges with no flag.
async fn a_rerun_killed_too_still_converges(handler: Strict) {
    let case = Case::new(handler).await;
    case.kill_at("after-handle");
    let left = case.held();
    case.kill_at("before-preflight");
    assert!(
        !case
            .moto
            .keys("ci-bot")
            .await
            .iter()
            .any(|(k, _)| *k == left),
        "the killed rerun deleted the key the first run left"
    );
    assert_eq!(case.held(), left, "which the file still holds");

    let out = case.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    case.assert_converged().await;
    assert!(
        stderr(&out).contains(&handler.replacing_abandoned(&left)),
        "{}",
        show(&out)
    );
    assert_eq!(
        case.journal(),
        Vec::<PathBuf>::new(),
        "the journal is removed"
    );
}

/// A second fault while finishing the first: run 1 is killed once its
/// handler stored K1 (the journal still says `created`); run 2 deletes K1,
/// rotates afresh and is killed at `second`, after creating K2. Whether
/// the file holds K1 (run 2 never reached its handler) or K2, run 3 tells
/// the handler both keys (contract 0.4.0's `abandoned-key-ids`, carried in
/// the journal) and converges with no flag. `journal` is the journal
/// flags every run uses.
async fn a_second_kill_while_finishing_the_first_still_converges(
    handler: Strict,
    second: &str,
    journal: &[&str],
) {
    let mut case = Case::new(handler).await;
    case.extra = journal.iter().map(|s| s.to_string()).collect();
    case.later_after_kill = journal.contains(&"iam");
    case.kill_at("after-handle");
    let first = case.held();
    assert_ne!(first, case.old, "run 1's handler stored its key");
    case.kill_at(second);
    let keys = case.moto.keys("ci-bot").await;
    assert!(
        !keys.iter().any(|(k, _)| *k == first),
        "run 2 deleted the key run 1 left: {keys:?}"
    );
    assert_eq!(keys.len(), 2, "run 2 created its own key: {keys:?}");
    let second_key = keys
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| *k != case.old)
        .unwrap();
    let held = case.held();
    if second == "after-handle" {
        assert_eq!(held, second_key, "run 2's handler stored its key");
    } else {
        assert_eq!(held, first, "run 2 never reached its handler");
    }

    let out = case.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{second}: {}", show(&out));
    let report = report(&out);
    assert_eq!(report["outcome"], "rotated", "{report}");
    let now = case.assert_converged().await;
    assert!(now != first && now != second_key, "a third key: {now}");
    assert!(
        stderr(&out).contains(&handler.replacing_abandoned(&held)),
        "{second}: the handler replaced the key left behind: {}",
        show(&out)
    );
    let keys = case.moto.keys("ci-bot").await;
    assert_eq!(keys, vec![(now.clone(), "Active".to_string())], "{keys:?}");
    if journal.is_empty() {
        assert_eq!(
            case.journal(),
            Vec::<PathBuf>::new(),
            "the journal is removed"
        );
    }
}

#[tokio::test]
async fn credentials_file_a_second_kill_before_its_handler_still_converges() {
    a_second_kill_while_finishing_the_first_still_converges(
        Strict::CredentialsFile,
        "saved-created",
        &[],
    )
    .await;
}

#[tokio::test]
async fn dotenv_a_second_kill_before_its_handler_still_converges() {
    a_second_kill_while_finishing_the_first_still_converges(Strict::Dotenv, "before-handle", &[])
        .await;
}

#[tokio::test]
async fn credentials_file_a_second_kill_after_its_handler_still_converges() {
    a_second_kill_while_finishing_the_first_still_converges(
        Strict::CredentialsFile,
        "after-handle",
        &[],
    )
    .await;
}

/// The IAM-tag journal carries the first key forward too: after the same
/// two kills (the rerun on another machine an hour later, once the killed
/// run's lease is over), the tag names run 2's key as created and run 1's
/// as abandoned (`b=`). (A third run would have to wait out run 2's lease
/// by a clock its key's create time agrees with; the file journal's tests
/// above run it.)
#[tokio::test]
async fn a_second_kill_with_the_iam_tag_journal_keeps_the_first_key_in_the_tag() {
    let mut case = Case::new(Strict::CredentialsFile).await;
    case.extra = vec!["--journal".into(), "iam".into()];
    case.later_after_kill = true;
    case.kill_at("after-handle");
    let first = case.held();
    case.later_after_kill = false;
    case.kill_at("saved-created");
    let tags = case
        .moto
        .client
        .list_user_tags()
        .user_name("ci-bot")
        .send()
        .await
        .unwrap();
    let tag = tags
        .tags()
        .iter()
        .find(|t| t.key() == "keyrot-journal")
        .map(|t| t.value().to_string())
        .expect("run 2's journal tag");
    let fields: Vec<&str> = tag.split('/').collect();
    assert!(fields.contains(&"p=created"), "{tag}");
    assert!(fields.contains(&format!("b={first}").as_str()), "{tag}");
    assert!(!fields.contains(&format!("n={first}").as_str()), "{tag}");
}

#[tokio::test]
async fn credentials_file_a_rerun_killed_too_still_converges() {
    a_rerun_killed_too_still_converges(Strict::CredentialsFile).await;
}

#[tokio::test]
async fn dotenv_a_rerun_killed_too_still_converges() {
    a_rerun_killed_too_still_converges(Strict::Dotenv).await;
}

/// After a kill once the handler stored its key, a dry run says what the
/// rerun will do, and the handler's preflight, told the key left behind,
/// accepts the file: the dry run changes nothing and exits 0.
async fn a_dry_run_after_a_kill_says_the_rerun_will_work(handler: Strict) {
    let case = Case::new(handler).await;
    case.kill_at("after-handle");
    let left = case.held();
    let keys = case.moto.keys("ci-bot").await;
    let before = case.contents();

    let out = case.run(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = report(&out);
    assert_eq!(report["outcome"], "would-rotate", "{report}");
    let plan = report["plan"].to_string();
    assert!(plan.contains(&format!("delete key {left}")), "{plan}");
    assert_eq!(case.moto.keys("ci-bot").await, keys, "nothing changed");
    assert_eq!(case.contents(), before);

    // And the real rerun does what the dry run said.
    let out = case.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    case.assert_converged().await;
}

#[tokio::test]
async fn credentials_file_a_dry_run_after_a_kill_says_the_rerun_will_work() {
    a_dry_run_after_a_kill_says_the_rerun_will_work(Strict::CredentialsFile).await;
}

#[tokio::test]
async fn dotenv_a_dry_run_after_a_kill_says_the_rerun_will_work() {
    a_dry_run_after_a_kill_says_the_rerun_will_work(Strict::Dotenv).await;
}

/// The key left behind is the only key besides the current one a handler
/// accepts: if the file holds another (someone edited it after the kill),
/// the rerun still refuses without `force=true`, naming both, and changes
/// nothing in the file; with `force=true` it converges.
async fn another_key_after_a_kill_is_still_refused(handler: Strict) {
    let case = Case::new(handler).await;
    case.kill_at("after-handle");
    let left = case.held();
    let foreign = "AKIASOMEONEELSE00000";
    let theirs = handler.text(foreign, "their-secret");
    let file = case.dir.join(handler.file());
    std::fs::write(&file, &theirs).unwrap();

    let out = case.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let masked = |id: &str| format!("{}…{}", &id[..4], &id[id.len() - 4..]);
    let refusal = format!(
        "neither the key being rotated ({}) nor the one an interrupted rotation left ({}): \
         refusing to overwrite it; pass --config force=true to replace it anyway",
        masked(&case.old),
        masked(&left)
    );
    assert!(stderr(&out).contains(&refusal), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), theirs);
    case.moto.assert_only_key("ci-bot", &case.old).await;

    let out = case.run(&["--config", "force=true"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    case.assert_converged().await;
}

#[tokio::test]
async fn credentials_file_another_key_after_a_kill_is_still_refused() {
    another_key_after_a_kill_is_still_refused(Strict::CredentialsFile).await;
}

#[tokio::test]
async fn dotenv_another_key_after_a_kill_is_still_refused() {
    another_key_after_a_kill_is_still_refused(Strict::Dotenv).await;
}
