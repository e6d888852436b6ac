//! Contract versions, through the real binary against moto: the same keyrot
//! rotates with a plugin built from `wit/` (`keyrot:handler@0.2.0`, which is
//! told the account id) and with one built from the frozen `wit/0.1.0/`
//! (which is not), and `plugin inspect` names the version each speaks.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::util::{Moto, plugin, show};

const CURRENT: &str = "keyrot:handler@0.2.0";
const OLDER: &str = "keyrot:handler@0.1.0";

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
        [format!("account={MOTO_ACCOUNT}")],
        "the plugin got the account the caller identity names"
    );
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
        ("fixture_store_v1", OLDER, "older, still loaded"),
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
/// language; circleci and dotenv stay on 0.1.0 on purpose (their worlds
/// include it, and their builds take it from `wit/0.1.0/`).
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
        ("circleci", OLDER),
        ("dotenv", OLDER),
    ] {
        let wasm = plugin(name).to_string_lossy().into_owned();
        let out = moto.keyrot(&["plugin", "inspect", &wasm, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", show(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["contract"], contract, "{name}");
    }
}

#[tokio::test]
async fn a_component_that_is_no_handler_is_told_both_accepted_versions() {
    let moto = Moto::start();
    let wasm = plugin("not-a-handler").to_string_lossy().into_owned();
    let out = moto.keyrot(&["plugin", "inspect", &wasm]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keyrot:handler/new-key-handler@0.2.0 (or the older @0.1.0)"),
        "{stderr}"
    );
    assert!(stderr.contains("it exports wasi:cli/run@"), "{stderr}");
}
