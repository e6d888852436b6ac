//! Secret values that never print.
//!
//! The secret access key is the one value keyrot must never leak: it goes to
//! the handler and nowhere else. [`SecretAccessKey`] makes that a property of
//! the type: `Debug` is redacted, there is no `Display` or `Serialize`, and the
//! bytes are zeroized on drop.

use std::fmt;

use zeroize::Zeroizing;

/// The secret half of an IAM access key.
#[derive(Clone)]
pub struct SecretAccessKey(Zeroizing<String>);

impl SecretAccessKey {
    /// Wraps a secret access key.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Call this only to hand the key to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

/// Shortens an access key id to its first and last four characters
/// (`AKIA…WXYZ`): enough to tell two keys apart in a message.
pub fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return id.to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Replaces every occurrence of the given secrets in `text` with `[redacted]`.
///
/// Used on anything a plugin writes (log lines, errors, output) because a
/// careless handler may print the key it was given.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("wJalr"), "{shown}");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    }

    #[test]
    fn masks_long_ids_only() {
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask_key_id("short"), "short");
    }

    #[test]
    fn redacts_every_occurrence() {
        assert_eq!(
            redact("a s3cr3t b s3cr3t", &["s3cr3t", ""]),
            "a [redacted] b [redacted]"
        );
    }
}
