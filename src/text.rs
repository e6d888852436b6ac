//! Plugin-supplied text made safe to print on a terminal or in a log.
//!
//! A plugin chooses its name, description, log lines and error messages. On
//! a terminal, control characters in them (ESC, OSC sequences, BEL, a bare
//! CR) could move the cursor, retitle the window or draw a fake "rotated"
//! line over a failure. [`escape_control`] shows them as visible escapes
//! instead; JSON output escapes them on its own.

use std::borrow::Cow;
use std::fmt::Write;

/// What a panic said, from its payload (a `&str` or a `String`, as `panic!`
/// makes them).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Longest handler error message kept, in bytes.
pub const MAX_ERROR_BYTES: usize = 8 * 1024;

/// `text` with every control character but `\t` written as a visible
/// escape (`\n`, `\r`, `\u{1b}`, ...), so it prints as one inert line.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_escaped(c: char) -> bool {
    c != '\t' && c.is_control()
}

/// `text` cut to at most `max` bytes (on a character boundary).
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A handler's error message, cut to [`MAX_ERROR_BYTES`] with a note saying
/// how much was cut.
pub fn cap_error(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_ERROR_BYTES {
        return Cow::Borrowed(message);
    }
    let kept = truncate(message, MAX_ERROR_BYTES);
    Cow::Owned(format!(
        "{kept} [... {} more bytes of the message cut]",
        message.len() - kept.len()
    ))
}

/// Each distinct message in an error's source chain, joined: readable where
/// the SDK's own `Display` is just "dispatch failure".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(escape_control("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape_control("a\x1b[2K\rrotated\x07\n\u{9b}x"),
            "a\\u{1b}[2K\\rrotated\\u{7}\\n\\u{9b}x"
        );
    }

    #[test]
    fn long_errors_are_cut_with_a_note() {
        assert_eq!(cap_error("short"), "short");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let capped = cap_error(&long);
        assert!(capped.len() < MAX_ERROR_BYTES + 64);
        assert!(capped.ends_with(&format!(
            "[... {} more bytes of the message cut]",
            long.len() - MAX_ERROR_BYTES
        )));
    }
}
