//! What keyrot's reporters share: the `keyrot:reporter` bindings (each
//! reporter crate calls [`export!`] on its type), settings, logging,
//! outbound HTTP with bounded retries, HMAC-SHA256, and the run's report
//! as JSON. Not a plugin itself.

wit_bindgen::generate!({
    // The only thing a reporter needs from keyrot: the `wit/reporter/` folder.
    path: "../../wit/reporter",
    world: "keyrot:reporter/run-reporter",
    generate_all,
    pub_export_macro: true,
    default_bindings_module: "reporter_kit",
});

pub mod http;
pub mod json;

pub use exports::keyrot::reporter::reporter::Guest;
pub use keyrot::reporter::types::{
    Event, NewKey, OldKey, Outcome, PluginInfo, RunReport, Setting, Summary, UserReport,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasi::logging::logging::{Level, log};

/// A setting, `None` when unset or empty.
pub fn setting(name: &str) -> Result<Option<String>, String> {
    let value = wasi::config::store::get(name)
        .map_err(|e| format!("cannot read setting '{name}': {e:?}"))?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

/// A setting that must be there (describe marks it required too).
pub fn required(name: &str) -> Result<String, String> {
    setting(name)?.ok_or_else(|| format!("setting '{name}' is missing"))
}

/// A whole-number setting with a default.
pub fn number(name: &str, default: u32) -> Result<u32, String> {
    match setting(name)? {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("setting '{name}' must be a whole number, not '{text}'")),
    }
}

/// An info line in the reporter's log.
pub fn info(context: &str, message: &str) {
    log(Level::Info, context, message);
}

/// A warning in the reporter's log.
pub fn warn(context: &str, message: &str) {
    log(Level::Warn, context, message);
}

/// HMAC-SHA256 of `body` under `secret`, lowercase hex: GitHub's
/// `X-Hub-Signature-256` without its `sha256=` prefix.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The WIT name of an outcome, as keyrot's JSON report spells it.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Rotated => "rotated",
        Outcome::Skipped => "skipped",
        Outcome::Exempt => "exempt",
        Outcome::WouldRotate => "would-rotate",
        Outcome::Draining => "draining",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
        Outcome::NeedsManualAction => "needs-manual-action",
        Outcome::BadInput => "bad-input",
    }
}

/// The WIT name of an event, as job files spell it.
pub fn event_name(event: Event) -> &'static str {
    match event {
        Event::Rotated => "rotated",
        Event::Failed => "failed",
        Event::NeedsAttention => "needs-attention",
        Event::Warning => "warning",
        Event::Skipped => "skipped",
        Event::Exempt => "exempt",
        Event::WouldRotate => "would-rotate",
    }
}

/// Whether a user needs a person (failed or needs attention).
pub fn needs_attention(user: &UserReport) -> bool {
    user.events
        .iter()
        .any(|e| matches!(e, Event::Failed | Event::NeedsAttention))
}

/// `account/user`, or the user alone when the account is unknown.
pub fn who(user: &UserReport) -> String {
    match &user.account {
        Some(account) => format!("{account}/{}", user.user),
        None => user.user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        assert!(http::retryable(429) && http::retryable(503));
        assert!(!http::retryable(400) && !http::retryable(202) && !http::retryable(404));
    }
}
