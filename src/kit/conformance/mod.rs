//! `keyrot plugin test`: a handler checked against the contract, with no
//! AWS account, no network and no credentials.
//!
//! The handler runs as in a real run (the same [`WasmHandler`], sandbox,
//! grants and limits) through real rotations ([`KeyRotator`] over
//! [`MemoryIam`], a user with one active key, a journal in a temporary
//! state directory), and a [`Witness`] in its sandbox sees what it reads
//! and says before redaction. The checks, one per rule ([`RULES`]):
//!
//! 1. `describe`, three times (twice by itself, once as keyrot loads the
//!    plugin): the same answer, `needs` included; the settings given as
//!    secrets marked secret; keyrot's check of the grants against `needs`.
//! 2. A rotation of the user: it completes, `handle` once.
//! 3. Settings: keyrot refuses each required one missing and an unknown
//!    one, naming it; `preflight` without each optional one given refuses
//!    or accepts, but does not crash.
//! 4. A failing `handle` (its destination made unusable, see
//!    `destination`): it fails, and keyrot deletes the new key.
//! 5. The resume case: a rotation stopped for good right after `handle`
//!    succeeded (its future dropped, as a kill would), then a rerun, which
//!    finishes the journal and tells the handler the abandoned key.
//! 6. An unreachable destination in a fresh IAM: `preflight` refuses it
//!    before any key exists.
//! 7. Over every call: the settings read are described; no secret (new
//!    keys', `--secret` settings') appears in any text, raw or encoded
//!    ([`super::scan`]); `preflight` changed no granted directory; each
//!    call stayed within the time and memory limits (and `needs`).
//!
//! A check that cannot apply (no setting names the destination, say) is
//! skipped with the reason, never passed.

mod checks;
mod destination;
mod harness;
mod report;
mod run;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use self::checks::{
    describe_secrets, describe_settings, describe_stable, handle_once, limits, needs_granted,
    preflight_changes_nothing, secret_hidden,
};
use self::destination::Made;
pub use self::destination::TEST_DIR;
use self::harness::{USER, active_key};
use self::report::check;
pub use self::report::{
    CallRecord, Check, ConformanceReport, RULES, SCHEMA_VERSION, Status, Summary, Tested,
};
use self::run::Run;
use super::scan;
use crate::grants::Grants;
use crate::handler::HandlerErrorKind;
use crate::host::witness::Witness;
use crate::host::{
    LoadOptions, Plugin, PluginError, PluginInfo, PluginKind, PluginLimits, Sandbox, Settings,
    WasmHandler,
};
use crate::iam::{KeyStatus, MemoryIam};
use crate::rotation::Outcome;

/// What to test, and with what: the flags of `keyrot plugin test`.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The handler component.
    pub plugin: PathBuf,
    /// How to load it.
    pub load: LoadOptions,
    /// Its settings (`--config`, `--secret`), as a real run would give.
    pub settings: Settings,
    /// Its grants (`--allow-host`, `--allow-dir`).
    pub grants: Grants,
    /// The limits of each call (`--timeout`, `--memory`).
    pub limits: PluginLimits,
}

/// Why the suite could not start: the input, not the handler, is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The plugin cannot be read, or is not a keyrot plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Something a real run would need is missing.
    #[error("{0}")]
    Input(String),
}

/// The age of the test user's key before the first rotation.
const OLD_KEY_AGE: Duration = Duration::from_secs(100 * 24 * 3600);

/// A setting no handler reads, for the check that keyrot refuses it.
const UNKNOWN_SETTING: &str = "keyrot-test-unknown";

/// Runs every check on the handler `suite` names.
pub async fn run(suite: Suite) -> Result<ConformanceReport, SuiteError> {
    let plugin = Plugin::load(&suite.plugin, &suite.load)?;
    let mut tested = Tested {
        path: suite.plugin.display().to_string(),
        sha256: plugin.sha256().to_string(),
        contract: plugin.contract().to_string(),
        ..Tested::default()
    };
    if plugin.kind() != PluginKind::Handler {
        return Err(SuiteError::Input(format!(
            "{} is a keyrot reporter ({}): `keyrot plugin test` tests new-key handlers",
            suite.plugin.display(),
            plugin.contract()
        )));
    }
    let mut checks = Vec::new();
    let first = match WasmHandler::inspect(plugin.clone()).await {
        Ok(report) => report.info,
        Err(PluginError::Settings(why)) => {
            checks.push(check("describe-stable", Status::Fail, why));
            skip_rest(&mut checks, "describe failed, so nothing else could run");
            return Ok(ConformanceReport::new(tested, checks, vec![], vec![]));
        }
        Err(e) => return Err(e.into()),
    };
    tested.name = first.name.clone();
    tested.version = first.version.clone();
    let second = WasmHandler::inspect(plugin.clone()).await.map(|r| r.info);

    let mut made = Made::default();
    let witness = Witness::new();
    let mut base = Sandbox {
        settings: suite.settings,
        grants: suite.grants,
        limits: suite.limits,
        signer: None,
        witness: Some(witness.clone()),
    };
    let provided = destination::provide(&first, &mut base, &mut made).map_err(SuiteError::Input)?;
    missing_settings(&first, &base.settings)?;
    checks.push(describe_secrets(&first, &base.settings));

    let handler = match WasmHandler::new(plugin.clone(), base.clone()).await {
        Ok(handler) => Arc::new(handler),
        Err(e) => {
            checks.push(describe_stable(&first, second.as_ref().ok(), None));
            checks.push(check("needs-granted", Status::Fail, e.to_string()));
            skip_rest(
                &mut checks,
                "keyrot refused to load the plugin with these settings and grants",
            );
            return Ok(ConformanceReport::new(tested, checks, provided, vec![]));
        }
    };
    checks.push(match &second {
        Ok(second) => describe_stable(&first, Some(second), Some(handler.info())),
        Err(e) => check(
            "describe-stable",
            Status::Fail,
            format!("the second call failed: {e}"),
        ),
    });
    checks.push(needs_granted(&first, &base));

    let kit = Run {
        plugin,
        info: first,
        base,
        witness,
        log: Arc::default(),
        iam: Arc::new(MemoryIam::new()),
        state: made.dir().map_err(SuiteError::Input)?,
        handler,
    };
    kit.iam
        .add_key(USER, KeyStatus::Active, OLD_KEY_AGE.as_secs());
    let mut rotations = Vec::new();

    // The user's first rotation, on the author's destination.
    let happy = kit.recorder("rotation", &kit.handler, &kit.handler);
    let before = active_key(&kit.iam).await;
    let report = harness::rotate(kit.iam.clone(), happy.clone(), &kit.state).await;
    let rotated = report.outcome == Outcome::Rotated;
    checks.push(kit.rotation_check(&report, &happy.calls(), before, &provided));
    rotations.push(("rotation", happy.calls()));

    checks.push(kit.settings_refused().await);

    let unusable = destination::unusable(&kit.info, &kit.base, &mut made);
    let broken = match unusable {
        Ok((sandbox, what)) => match WasmHandler::new(kit.plugin.clone(), sandbox).await {
            Ok(handler) => Ok((Arc::new(handler), what)),
            Err(e) => Err(format!(
                "keyrot would not load the plugin with its destination made unusable ({what}): \
                 {e}"
            )),
        },
        Err(why) => Err(why),
    };
    match &broken {
        Ok((bad, what)) => {
            let (check, calls) = kit.handle_failure(bad, what).await;
            checks.push(check);
            rotations.push(("handle-failure", calls));
        }
        Err(why) => checks.push(check("handle-failure", Status::Skip, why.clone())),
    }

    let (resume, calls) = kit.resume(rotated).await;
    checks.push(resume);
    rotations.extend(calls.into_iter().map(|c| ("resume", c)));

    match &broken {
        Ok((bad, what)) => {
            let (check, calls) = kit.unreachable(bad, what).await;
            checks.push(check);
            rotations.push(("preflight-unreachable", calls));
        }
        Err(why) => checks.push(check("preflight-unreachable", Status::Skip, why.clone())),
    }

    let log = std::mem::take(&mut *kit.log.lock().unwrap_or_else(PoisonError::into_inner));
    checks.push(handle_once(&rotations));
    checks.push(describe_settings(&kit.info, &log));
    checks.push(secret_hidden(&kit.base.settings, &log));
    checks.push(preflight_changes_nothing(&kit.base, &log));
    checks.push(limits(&kit.info, &kit.base.limits, &log));
    drop(made);
    // The checks quote what the plugin said: not its secrets, in any form.
    let mut records = log.records;
    let secrets = log.secrets.iter().map(|s| s.as_str());
    let secrets: Vec<&str> = secrets
        .chain(kit.base.settings.secret_pairs().map(|(_, v)| v))
        .collect();
    let scrub = |text: &mut String| {
        for secret in &secrets {
            *text = scan::scrub(text, secret);
        }
    };
    checks.iter_mut().for_each(|c| scrub(&mut c.detail));
    records
        .iter_mut()
        .filter_map(|r| r.error.as_mut())
        .for_each(scrub);
    Ok(ConformanceReport::new(tested, checks, provided, records))
}

/// Refuses to start when a required setting is missing: the test needs
/// what a real run needs.
fn missing_settings(info: &PluginInfo, settings: &Settings) -> Result<(), SuiteError> {
    let given: BTreeSet<&str> = settings.names().collect();
    let missing: Vec<String> = info
        .settings
        .iter()
        .filter(|s| s.required && !given.contains(s.name.as_str()))
        .map(|s| {
            let flag = if s.secret {
                format!("--secret {}=env:VARIABLE", s.name)
            } else {
                format!("--config {}=VALUE", s.name)
            };
            format!("{flag} ({})", crate::text::escape_control(&s.description))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SuiteError::Input(format!(
        "plugin '{}' needs required setting(s), as a real run would: {}",
        crate::text::escape_control(&info.name),
        missing.join(", ")
    )))
}

/// A failed call's kind, as a verb phrase: "crashed", "refused".
fn failed_word(kind: HandlerErrorKind) -> &'static str {
    match kind {
        HandlerErrorKind::Rejected => "refused",
        HandlerErrorKind::Trapped => "crashed",
        HandlerErrorKind::TimedOut => "ran out of time",
        HandlerErrorKind::OutOfMemory => "ran out of memory",
        HandlerErrorKind::Interrupted => "was interrupted",
    }
}

/// Adds a skip, with `why`, for every rule not checked yet.
fn skip_rest(checks: &mut Vec<Check>, why: &str) {
    for (rule, _) in RULES {
        if !checks.iter().any(|c| c.rule == *rule) {
            checks.push(check(rule, Status::Skip, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Setting;

    fn info(settings: &[(&str, bool, bool)]) -> PluginInfo {
        PluginInfo {
            name: "t".into(),
            version: "1".into(),
            description: "d".into(),
            settings: settings
                .iter()
                .map(|(name, required, secret)| Setting {
                    name: name.to_string(),
                    description: "d".into(),
                    required: *required,
                    secret: *secret,
                })
                .collect(),
            needs: None,
        }
    }

    #[test]
    fn a_setting_given_as_secret_must_be_marked_secret() {
        let settings = Settings::new([]).with_secrets([(
            "token".to_string(),
            zeroize::Zeroizing::new("t0ken-value".to_string()),
        )]);
        let unmarked = describe_secrets(&info(&[("token", false, false)]), &settings);
        assert_eq!(unmarked.status, Status::Fail);
        assert!(unmarked.detail.contains("'token'"), "{}", unmarked.detail);
        let marked = describe_secrets(&info(&[("token", false, true)]), &settings);
        assert_eq!(marked.status, Status::Pass);
    }

    #[test]
    fn a_missing_required_setting_is_the_authors_to_give() {
        let err = missing_settings(&info(&[("path", true, false)]), &Settings::default());
        let err = err.unwrap_err().to_string();
        assert!(err.contains("--config path=VALUE"), "{err}");
        let ok = Settings::new([("path".to_string(), "/x".to_string())]);
        assert!(missing_settings(&info(&[("path", true, false)]), &ok).is_ok());
    }

    #[test]
    fn describe_must_not_change() {
        let one = info(&[("a", true, false)]);
        let mut two = one.clone();
        assert_eq!(describe_stable(&one, Some(&two), None).status, Status::Pass);
        two.version = "2".into();
        let changed = describe_stable(&one, Some(&two), None);
        assert_eq!(changed.status, Status::Fail);
        assert!(
            changed.detail.contains("version changed"),
            "{}",
            changed.detail
        );
    }
}
