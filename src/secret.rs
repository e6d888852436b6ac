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

/// Shortest start of a secret that is redacted on its own: a copy cut
/// after this many bytes (a body cut at 200 bytes, a line cut at a limit)
/// is still caught.
pub const MIN_REDACTED_PREFIX: usize = 8;

/// Replaces every copy of the given secrets in `text` with `[redacted]`:
/// whole copies, and cut copies that keep at least the first
/// [`MIN_REDACTED_PREFIX`] bytes (as long as they match). Shorter secrets
/// are matched whole.
///
/// Used on anything a plugin writes (log lines, errors, output) because a
/// careless handler may print the key it was given. Only literal copies are
/// caught: this is a safety net against accidents, not a defence against a
/// plugin that means to leak (see the README's threat model).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = redact_one(&out, secret);
    }
    out
}

fn redact_one(text: &str, secret: &str) -> String {
    let head = &secret[..crate::text::truncate(secret, MIN_REDACTED_PREFIX).len()];
    if !text.contains(head) {
        return text.to_string();
    }
    let (text_bytes, secret_bytes) = (text.as_bytes(), secret.as_bytes());
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = text[rest..].find(head) {
        let start = rest + found;
        let mut end = start + head.len();
        while end < text.len()
            && end - start < secret.len()
            && text_bytes[end] == secret_bytes[end - start]
        {
            end += 1;
        }
        // A match may stop inside a multi-byte character: stop before it.
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[rest..start]);
        out.push_str("[redacted]");
        rest = end.max(start + head.len());
    }
    out.push_str(&text[rest..]);
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

    #[test]
    fn redacts_cut_copies_of_eight_bytes_or_more() {
        let secret = "tokSUPERSECRETvalue";
        assert_eq!(
            redact("auth: Bearer tokSUPERSECRETv\n", &[secret]),
            "auth: Bearer [redacted]\n"
        );
        assert_eq!(redact("x tokSUPER", &[secret]), "x [redacted]");
        // Seven bytes are not enough to tell a secret from chance.
        assert_eq!(redact("x tokSUPE", &[secret]), "x tokSUPE");
        // A whole copy followed by more text keeps the text.
        assert_eq!(redact("tokSUPERSECRETvalue123", &[secret]), "[redacted]123");
        // Short secrets only whole.
        assert_eq!(redact("abc ab", &["abc"]), "[redacted] ab");
        // Multi-byte characters are never split.
        assert_eq!(redact("ééééé€", &["éééééé"]), "[redacted]€");
    }
}
