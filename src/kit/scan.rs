//! Finding a secret in text a plugin wrote, in the forms a careless
//! handler copies it in: as is, JSON-escaped, URL-encoded, base64 (standard
//! or URL-safe, at any alignment inside a longer encoded string) and hex.
//! keyrot's redaction catches only the first; `keyrot plugin test` fails a
//! handler that shows a secret in any of them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde::Serialize;

/// How a secret was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// As is.
    Raw,
    /// With JSON's escapes (`\/`).
    JsonEscaped,
    /// Percent-encoded, as in a URL or a form body.
    UrlEncoded,
    /// Base64, standard alphabet.
    Base64,
    /// Base64, URL-safe alphabet.
    Base64Url,
    /// Hexadecimal, either case.
    Hex,
}

impl Form {
    /// In words, for a message: "base64-encoded".
    pub fn words(self) -> &'static str {
        match self {
            Form::Raw => "as is",
            Form::JsonEscaped => "JSON-escaped",
            Form::UrlEncoded => "URL-encoded",
            Form::Base64 => "base64-encoded",
            Form::Base64Url => "base64url-encoded",
            Form::Hex => "hex-encoded",
        }
    }
}

/// Secrets shorter than this are not looked for: they would match by
/// chance. Access keys' secrets have 40 characters.
pub const MIN_SECRET_LEN: usize = 8;

/// The first form in which `secret` appears in `text`, if any.
pub fn find(text: &str, secret: &str) -> Option<Form> {
    if secret.len() < MIN_SECRET_LEN {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    patterns(secret)
        .into_iter()
        .find_map(|(form, pattern, any_case)| {
            let found = if any_case {
                lower.contains(&pattern.to_ascii_lowercase())
            } else {
                text.contains(&pattern)
            };
            found.then_some(form)
        })
}

/// `text` with every copy of `secret`, in every form [`find`] knows,
/// replaced by `[redacted]`.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < MIN_SECRET_LEN {
        return text.to_string();
    }
    let mut out = text.to_string();
    for (_, pattern, any_case) in patterns(secret) {
        if any_case {
            // Found case-insensitively; ASCII patterns keep byte offsets.
            while let Some(at) = out.to_ascii_lowercase().find(&pattern.to_ascii_lowercase()) {
                out.replace_range(at..at + pattern.len(), "[redacted]");
            }
        } else {
            out = out.replace(&pattern, "[redacted]");
        }
    }
    out
}

/// What to look for: (form, text, whether case does not matter).
fn patterns(secret: &str) -> Vec<(Form, String, bool)> {
    let bytes = secret.as_bytes();
    let mut patterns = vec![(Form::Raw, secret.to_string(), false)];
    let json = secret.replace('\\', "\\\\").replace('/', "\\/");
    if json != secret {
        patterns.push((Form::JsonEscaped, json, false));
    }
    let url: String = bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    if url != secret {
        patterns.push((Form::UrlEncoded, url, true));
    }
    let every_byte: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
    patterns.push((Form::UrlEncoded, every_byte, true));
    for offset in 0..3 {
        patterns.push((
            Form::Base64,
            base64_core(&STANDARD_NO_PAD, bytes, offset),
            false,
        ));
        patterns.push((
            Form::Base64Url,
            base64_core(&URL_SAFE_NO_PAD, bytes, offset),
            false,
        ));
    }
    patterns.push((Form::Hex, hex::encode(bytes), true));
    patterns
}

/// The base64 characters that encode `bytes` alone when they start
/// `offset` bytes into a longer encoded string: the ones whose six bits all
/// come from `bytes`, whatever surrounds them.
fn base64_core(engine: &impl Engine, bytes: &[u8], offset: usize) -> String {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(bytes);
    let encoded = engine.encode(&data);
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + bytes.len()) / 6;
    encoded[first..end].to_string()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn finds_each_form() {
        assert_eq!(find(&format!("key={SECRET}"), SECRET), Some(Form::Raw));
        assert_eq!(
            find(
                &serde_json::json!({ "s": SECRET })
                    .to_string()
                    .replace('/', "\\/"),
                SECRET
            ),
            Some(Form::JsonEscaped)
        );
        let url = "key=wJalrXUtnFEMI%2fK7MDENG%2BbPxRfiCYEXAMPLEKEY&x=1";
        assert_eq!(find(url, SECRET), Some(Form::UrlEncoded));
        let every: String = SECRET.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(find(&every, SECRET), Some(Form::UrlEncoded));
        assert_eq!(find(&hex::encode_upper(SECRET), SECRET), Some(Form::Hex));
        assert_eq!(find("nothing here", SECRET), None);
    }

    #[test]
    fn finds_base64_at_any_alignment() {
        for prefix in ["", "a", "ab", "abc", "user:"] {
            let data = format!("{prefix}{SECRET}!");
            let standard = STANDARD.encode(&data);
            assert_eq!(find(&standard, SECRET), Some(Form::Base64), "{prefix:?}");
            let url = URL_SAFE.encode(&data);
            // The same as base64 unless the encoding has a 62nd or 63rd digit.
            let found = find(&url, SECRET);
            assert!(
                matches!(found, Some(Form::Base64Url | Form::Base64)),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn scrubs_every_form() {
        let text = format!(
            "a {SECRET} b {} c {}",
            STANDARD.encode(format!("x{SECRET}")),
            hex::encode(SECRET)
        );
        let scrubbed = scrub(&text, SECRET);
        assert_eq!(find(&scrubbed, SECRET), None, "{scrubbed}");
        assert!(scrubbed.starts_with("a [redacted] b "), "{scrubbed}");
    }

    #[test]
    fn short_secrets_are_not_looked_for() {
        assert_eq!(find("abc", "abc"), None);
    }
}
