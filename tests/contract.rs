//! Contract versions, through the real binary against moto: the same keyrot
//! rotates with a plugin built from `wit/` (`keyrot:handler@0.4.0`, which is
//! told the account id and, after interrupted runs, every key they may have
//! left), with one built from the frozen `wit/0.3.0/` (told the newest such
//! key only), one from `wit/0.2.0/` (told the account id only) and one from
//! `wit/0.1.0/` (told neither), and `plugin inspect` names the version each
//! speaks.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::schedule::{Setup, kill};
use crate::util::{Moto, plugin, show};

const CURRENT: &str = "keyrot:handler@0.4.0";
const V0_3: &str = "keyrot:handler@0.3.0";
const V0_2: &str = "keyrot:handler@0.2.0";
const V0_1: &str = "keyrot:handler@0.1.0";

/// The account moto answers `sts:GetCallerIdentity` with by default.
const MOTO_ACCOUNT: &str = "123456789012";

/// One rotation of `ci-bot` through a `store` fixture, which writes what it
/// received to the granted directory.
struct Stored {
    moto: Moto,
    old: String,
    out: Output,
    _dir: tempfile::TempDir,
    dest: PathBuf,
}

impl Stored {
    async fn run(fixture: &str) -> Stored {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let dir = tempfile::tempdir().unwrap();
        let grant = format!("{}:/dest", dir.path().display());
        let out = moto.rotate(fixture, &["--allow-dir", &grant, "--output", "json"], &[]);
        Stored {
            moto,
            old,
            out,
            dest: dir.path().join("key"),
            _dir: dir,
        }
    }

    fn report(&self) -> Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", show(&self.out)))
    }

    /// The lines the plugin wrote: key id, secret, then what else it got.
    fn held(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.dest)
            .unwrap_or_else(|e| panic!("the plugin stored nothing ({e}): {}", show(&self.out)));
        text.lines().map(str::to_string).collect()
    }

    /// The rotation worked: one key left, a new one, and the destination
    /// holds it with its real secret.
    async fn assert_rotated(&self) {
        assert_eq!(self.out.status.code(), Some(0), "{}", show(&self.out));
        let keys = self.moto.keys("ci-bot").await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        let new = &keys[0].0;
        assert_ne!(new, &self.old, "the old key is gone");
        let held = self.held();
        assert_eq!(&held[0], new, "the destination holds the new key");
        assert!(
            self.moto
                .keys_with_secrets()
                .contains(&(new.clone(), held[1].clone())),
            "the destination holds the new key's real secret"
        );
    }
}

#[tokio::test]
async fn a_plugin_of_the_current_contract_is_told_the_account_id() {
    let run = Stored::run("fixture_store").await;
    run.assert_rotated().await;
    let report = run.report();
    assert_eq!(report["account"], MOTO_ACCOUNT, "{report}");
    assert_eq!(
        run.held()[2..],
        [format!("account={MOTO_ACCOUNT}"), "abandoned=".into()],
        "the plugin got the account the caller identity names, and no abandoned key: \
         no interrupted run was finished"
    );
}

#[tokio::test]
async fn a_plugin_of_the_0_3_0_contract_still_rotates_and_declares_nothing() {
    let run = Stored::run("fixture_store_v3").await;
    run.assert_rotated().await;
    assert_eq!(
        run.held()[2..],
        [format!("account={MOTO_ACCOUNT}"), "abandoned=".into()]
    );
}

#[tokio::test]
async fn a_plugin_of_the_0_2_0_contract_still_rotates_and_gets_the_account_id_only() {
    let run = Stored::run("fixture_store_v2").await;
    run.assert_rotated().await;
    assert_eq!(run.report()["account"], MOTO_ACCOUNT);
    assert_eq!(run.held()[2..], [format!("account={MOTO_ACCOUNT}")]);
}

/// Kills a rotation through `fixture` once its handler stored the new key
/// and before keyrot recorded that, reruns the same command, and returns
/// the key the killed run left at the destination and what the rerun's
/// handler wrote after the key and secret.
async fn kill_after_handle_then_rerun(fixture: &'static str) -> (String, Vec<String>) {
    let setup = Setup::with_plugin(fixture).await;
    let (child, _home) = setup.start_paused("after-handle", &[]);
    kill(child);
    let (left, _) = setup
        .held()
        .expect("the killed run's handler stored its key");
    assert_ne!(left, setup.old, "the killed run's own key");
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    setup.assert_converged(false).await;
    assert_ne!(setup.held().unwrap().0, left, "the rerun's key replaced it");
    assert!(
        !setup
            .moto
            .keys("ci-bot")
            .await
            .iter()
            .any(|(k, _)| *k == left),
        "the key the killed run left is deleted"
    );
    let text = std::fs::read_to_string(setup.dest.join("key")).unwrap();
    (left, text.lines().skip(2).map(str::to_string).collect())
}

#[tokio::test]
async fn after_a_kill_a_plugin_of_the_current_contract_is_told_the_key_left_behind() {
    let (left, rest) = kill_after_handle_then_rerun("fixture_store").await;
    assert_eq!(
        rest,
        [
            format!("account={MOTO_ACCOUNT}"),
            format!("abandoned={left}")
        ]
    );
}

#[tokio::test]
async fn after_a_kill_a_plugin_of_the_0_3_0_contract_is_told_the_key_left_behind() {
    let (left, rest) = kill_after_handle_then_rerun("fixture_store_v3").await;
    assert_eq!(
        rest,
        [
            format!("account={MOTO_ACCOUNT}"),
            format!("abandoned={left}")
        ]
    );
}

#[tokio::test]
async fn after_a_kill_a_plugin_of_the_0_2_0_contract_is_not_told_and_converges() {
    let (_, rest) = kill_after_handle_then_rerun("fixture_store_v2").await;
    assert_eq!(rest, [format!("account={MOTO_ACCOUNT}")]);
}

#[tokio::test]
async fn a_plugin_of_the_0_1_0_contract_still_rotates_and_gets_no_account_id() {
    let run = Stored::run("fixture_store_v1").await;
    run.assert_rotated().await;
    assert_eq!(run.report()["account"], MOTO_ACCOUNT);
    assert_eq!(run.held().len(), 2, "key id and secret only");
}

#[tokio::test]
async fn inspect_names_the_contract_version_in_text_and_json() {
    let moto = Moto::start();
    for (fixture, contract, note) in [
        ("fixture_store", CURRENT, "current"),
        ("fixture_store_v3", V0_3, "older, still loaded"),
        ("fixture_store_v2", V0_2, "older, still loaded"),
        ("fixture_store_v1", V0_1, "older, still loaded"),
    ] {
        let wasm = plugin(fixture).to_string_lossy().into_owned();
        let out = moto.keyrot(&["plugin", "inspect", &wasm]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("\n  contract  {contract} ({note})\n")),
            "{text}"
        );

        let out = moto.keyrot(&["plugin", "inspect", &wasm, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["contract"], contract, "{report}");
    }
}

/// Plugins built from `wit/` speak the current contract whatever their
/// language, dotenv and gitlab too (their worlds include it); circleci stays
/// on 0.1.0 on purpose (its world includes it, and its build takes it from
/// `wit/0.1.0/`).
#[tokio::test]
async fn each_in_repo_plugin_speaks_the_contract_its_build_chose() {
    let moto = Moto::start();
    for (name, contract) in [
        ("hello", CURRENT),
        ("rust_hello", CURRENT),
        ("github", CURRENT),
        ("aws_credentials_file", CURRENT),
        ("python-hello", CURRENT),
        ("gitlab", CURRENT),
        ("js-hello", CURRENT),
        ("c-hello", CURRENT),
        ("circleci", V0_1),
        ("dotenv", CURRENT),
    ] {
        let wasm = plugin(name).to_string_lossy().into_owned();
        let out = moto.keyrot(&["plugin", "inspect", &wasm, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", show(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["contract"], contract, "{name}");
    }
}

#[tokio::test]
async fn a_component_that_is_no_handler_is_told_every_accepted_version() {
    let moto = Moto::start();
    let wasm = plugin("not-a-handler").to_string_lossy().into_owned();
    let out = moto.keyrot(&["plugin", "inspect", &wasm]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("keyrot:handler/new-key-handler@0.4.0 (or the older @0.3.0, @0.2.0, @0.1.0)"),
        "{stderr}"
    );
    assert!(stderr.contains("it exports wasi:cli/run@"), "{stderr}");
}
