//! The AWS shared credentials (or config) file as text: a parser that reads
//! it as the AWS CLI and boto3 do, and a surgical editor that sets one
//! profile's key pair and leaves every other byte as it was.
//!
//! Pure: no I/O and no WASI, so it is unit-tested natively.
//!
//! botocore reads these files with Python's `configparser.RawConfigParser`
//! (`botocore.configloader.raw_config_parse`); this module follows its
//! rules, and the end-to-end tests check the result with botocore itself:
//! - lines end in LF or CRLF (a lone CR, or any other control character
//!   but tab, is refused); a line that is blank, or whose first non-space
//!   character is `#` or `;` (however indented), is skipped;
//! - `[name]` starts a section: the name runs to the line's last `]`, as
//!   written (spaces included), and what follows is ignored; a section that
//!   appears twice, or `[DEFAULT]` (whose keys would apply to every
//!   profile), is refused;
//! - `key = value` or `key: value`: split at the first `=` or `:`, both
//!   sides stripped, key names case-insensitive; an inline `# text` is part
//!   of the value; a key that appears twice in a section is refused;
//! - a line indented deeper than the key line above it continues that
//!   value (for an empty value, botocore reads `k = v` sub-properties);
//! - in a credentials file the section name is the profile name; in a
//!   config file ([`FileKind::Config`]) a profile is `[profile NAME]`
//!   (`[default]` for the default one), and other sections (`[sso-session
//!   x]`, `[services x]`, a bare `[ci]`) are not profiles.

use std::fmt;
use std::ops::Range;

const COMMENT: &[char] = &['#', ';'];

pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
/// Keys that belong to temporary credentials: left beside a new long-term
/// key they would make the SDKs sign with a mismatched pair.
const SESSION_KEYS: [&str; 2] = ["aws_session_token", "aws_security_token"];

/// Why a file is not a profile file the AWS CLI can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Which of the two shared files: they name profile sections differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `~/.aws/credentials`: `[NAME]`.
    Credentials,
    /// `~/.aws/config`: `[profile NAME]`, and `[default]`.
    Config,
}

/// A parsed credentials file that borrows its text, so unedited lines are
/// written back exactly as read.
#[derive(Debug)]
pub struct CredentialsFile<'a> {
    lines: Vec<Line<'a>>,
    /// The file's line ending (that of its first line), used for added lines.
    eol: &'a str,
    kind: FileKind,
}

#[derive(Debug)]
struct Line<'a> {
    /// The line without its ending.
    body: &'a str,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without one.
    eol: &'a str,
    kind: Kind,
    /// The profile whose section this line is in, if any.
    profile: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A blank line or a comment.
    Inert,
    Header,
    Property {
        /// Lowercased, as configparser stores it.
        key: String,
        /// Where the key name as written ends in `body`.
        key_end: usize,
        /// The value in `body`, without surrounding whitespace or comment.
        value: Range<usize>,
    },
    /// An indented line that extends the property above it.
    Continuation,
}

/// The result of [`CredentialsFile::set_key`].
#[derive(Debug, PartialEq, Eq)]
pub struct Edit {
    /// The whole new file.
    pub text: String,
    /// Session-token keys dropped from the profile, as they were spelled.
    pub removed: Vec<String>,
    /// The profile did not exist and was appended.
    pub appended_profile: bool,
}

impl<'a> CredentialsFile<'a> {
    /// Parses `text` as a credentials file, failing where the AWS CLI would.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        Self::parse_as(text, FileKind::Credentials)
    }

    /// Parses `text` as a file of `kind`, failing where the AWS CLI would.
    pub fn parse_as(text: &'a str, kind: FileKind) -> Result<Self, ParseError> {
        let mut lines: Vec<Line<'a>> = Vec::new();
        let mut section: Option<&'a str> = None;
        let mut profile = None;
        // configparser's state: whether an option is open (indented lines
        // continue it), the indentation of the line that opened it, and
        // whether its value was empty (then botocore reads `k = v`
        // sub-properties).
        let mut open_property: Option<bool> = None;
        let mut indent_level = 0;
        let mut sections: Vec<&str> = Vec::new();
        let mut keys: Vec<(&str, String)> = Vec::new();

        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let (body, eol) = split_eol(raw);
            let error = |message| ParseError {
                line: index + 1,
                message,
            };
            // Python reads a lone CR as a line break; other control
            // characters have no place in these files.
            if body.chars().any(|c| c.is_control() && c != '\t') {
                return Err(error("a control character other than tab"));
            }
            let stripped = body.trim_matches(is_space);
            let line_kind = if stripped.is_empty() || stripped.starts_with(COMMENT) {
                // Blank lines and comment lines, however indented, neither
                // end a value nor change the indentation level.
                Kind::Inert
            } else {
                let indent = body.chars().take_while(|&c| is_space(c)).count();
                match open_property {
                    Some(nested) if indent > indent_level => {
                        if nested && !stripped.contains('=') {
                            return Err(error("expected 'key = value' in a sub-property"));
                        }
                        Kind::Continuation
                    }
                    _ => {
                        indent_level = indent;
                        if let Some(name) = section_name(stripped) {
                            if name == "DEFAULT" {
                                return Err(error(
                                    "a [DEFAULT] section applies to every profile for the AWS \
                                     CLI; this plugin does not edit such a file",
                                ));
                            }
                            if sections.contains(&name) {
                                return Err(error(
                                    "a section that appeared before (the AWS CLI refuses that)",
                                ));
                            }
                            sections.push(name);
                            section = Some(name);
                            profile = header_profile(name, kind).map_err(error)?;
                            open_property = None;
                            Kind::Header
                        } else if let Some(name) = section {
                            let (key, key_end, value) = property(body, stripped).map_err(error)?;
                            if keys.iter().any(|(s, k)| *s == name && *k == key) {
                                return Err(error(
                                    "a key that appeared before in this section (the AWS CLI \
                                     refuses that)",
                                ));
                            }
                            keys.push((name, key.clone()));
                            open_property = Some(value.is_empty());
                            Kind::Property {
                                key,
                                key_end,
                                value,
                            }
                        } else {
                            return Err(error("expected a [profile] header before this line"));
                        }
                    }
                }
            };
            lines.push(Line {
                body,
                eol,
                kind: line_kind,
                profile,
            });
        }

        let eol = lines
            .iter()
            .map(|line| line.eol)
            .find(|eol| !eol.is_empty())
            .unwrap_or("\n");
        Ok(Self { lines, eol, kind })
    }

    /// Whether a section for `profile` exists.
    pub fn has_profile(&self, profile: &str) -> bool {
        self.lines
            .iter()
            .any(|line| line.kind == Kind::Header && line.profile == Some(profile))
    }

    /// The distinct non-empty `aws_access_key_id` values in `profile`, in
    /// file order. More than one means duplicate lines or sections that
    /// disagree.
    pub fn access_key_ids(&self, profile: &str) -> Vec<String> {
        self.values(profile, ACCESS_KEY_ID)
    }

    /// The distinct non-empty values of `key` (lowercase) in `profile`.
    pub fn values(&self, profile: &str, key: &str) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            if line.profile != Some(profile) {
                continue;
            }
            if let Kind::Property { key: found, .. } = &line.kind
                && found == key
            {
                let value = self.value_at(index);
                if !value.is_empty() && !values.contains(&value) {
                    values.push(value);
                }
            }
        }
        values
    }

    /// A property's value as configparser reads it: continuation lines join it
    /// with newlines.
    fn value_at(&self, index: usize) -> String {
        let line = &self.lines[index];
        let Kind::Property { value, .. } = &line.kind else {
            return String::new();
        };
        let mut out = line.body[value.clone()].to_string();
        for next in self.lines[index + 1..]
            .iter()
            .take_while(|l| matches!(l.kind, Kind::Continuation | Kind::Inert))
            .filter(|l| l.kind == Kind::Continuation)
        {
            out.push('\n');
            out.push_str(next.body.trim_matches(is_space));
        }
        out
    }

    /// The file with `profile` holding `key_id` and `secret`.
    ///
    /// In every section of the profile: the values of `aws_access_key_id`
    /// and `aws_secret_access_key` are replaced in place (key spelling,
    /// spacing and trailing comments kept), and session-token lines are
    /// dropped. A missing key is added after the profile's last property
    /// (or its header). A missing profile is appended. Everything else is
    /// copied byte for byte, line endings included.
    ///
    /// The caller checks the values with [`storable`] first.
    pub fn set_key(&self, profile: &str, key_id: &str, secret: &str) -> Edit {
        let in_profile = |line: &Line| line.profile == Some(profile);
        let has_key = |wanted: &str| {
            self.lines.iter().any(|line| {
                in_profile(line)
                    && matches!(&line.kind, Kind::Property { key, .. } if key == wanted)
            })
        };
        let missing: Vec<(&str, &str)> = [(ACCESS_KEY_ID, key_id), (SECRET_ACCESS_KEY, secret)]
            .into_iter()
            .filter(|(name, _)| !has_key(name))
            .collect();
        let insert_after = self.insertion_point(profile);
        let separator = self.separator();

        let mut out = Output::new(self.eol);
        let mut removed = Vec::new();
        // Continuation lines of a replaced or dropped property are part of
        // its old value.
        let mut skipping = false;
        for (index, line) in self.lines.iter().enumerate() {
            // Blank and comment lines may sit between a property and its
            // continuations, so only a new property or header ends them.
            if matches!(line.kind, Kind::Header | Kind::Property { .. }) {
                skipping = false;
            }
            let is_continuation = line.kind == Kind::Continuation;
            if !(skipping && is_continuation) {
                match &line.kind {
                    Kind::Property {
                        key,
                        key_end,
                        value,
                    } if in_profile(line) => {
                        if key == ACCESS_KEY_ID || key == SECRET_ACCESS_KEY {
                            let new = if key == ACCESS_KEY_ID { key_id } else { secret };
                            out.line(&replace_value(line.body, value, new), line.eol);
                            skipping = true;
                        } else if SESSION_KEYS.contains(&key.as_str()) {
                            removed.push(line.body[..*key_end].to_string());
                            skipping = true;
                        } else {
                            out.line(line.body, line.eol);
                        }
                    }
                    _ => out.line(line.body, line.eol),
                }
            }
            if insert_after == Some(index) {
                for (name, value) in &missing {
                    out.line(&format!("{name}{separator}{value}"), self.eol);
                }
            }
        }

        let appended_profile = insert_after.is_none();
        if appended_profile {
            if self.lines.last().is_some_and(|line| !is_blank(line.body)) {
                out.line("", self.eol);
            }
            let header = match self.kind {
                FileKind::Config if profile != "default" => format!("[profile {profile}]"),
                _ => format!("[{profile}]"),
            };
            out.line(&header, self.eol);
            out.line(&format!("{ACCESS_KEY_ID}{separator}{key_id}"), self.eol);
            out.line(&format!("{SECRET_ACCESS_KEY}{separator}{secret}"), self.eol);
        }

        Edit {
            text: out.text,
            removed,
            appended_profile,
        }
    }

    /// Where keys missing from `profile` go: after the last property (or
    /// continuation) of its first section, or after its header if it has
    /// none; `None` if the profile does not exist.
    fn insertion_point(&self, profile: &str) -> Option<usize> {
        let header = self
            .lines
            .iter()
            .position(|line| line.kind == Kind::Header && line.profile == Some(profile))?;
        let section_end = self.lines[header + 1..]
            .iter()
            .position(|line| line.kind == Kind::Header)
            .map_or(self.lines.len(), |offset| header + 1 + offset);
        let last_property = (header + 1..section_end).rev().find(|&index| {
            matches!(
                self.lines[index].kind,
                Kind::Property { .. } | Kind::Continuation
            )
        });
        Some(last_property.unwrap_or(header))
    }

    /// How added lines separate key and value: as the file's first property
    /// with a value does (`=`, ` = `, ...), else ` = `.
    fn separator(&self) -> &'a str {
        self.lines
            .iter()
            .find_map(|line| match &line.kind {
                Kind::Property { key_end, value, .. } if !value.is_empty() => {
                    Some(&line.body[*key_end..value.start])
                }
                _ => None,
            })
            .unwrap_or(" = ")
    }
}

/// Whether `value` can be written as a property value and read back
/// unchanged: non-empty, with no whitespace, control or comment characters.
/// AWS key ids and secrets never contain them.
pub fn storable(value: &str) -> bool {
    !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || COMMENT.contains(&c))
}

/// Builds the new text; a line that had no ending gets the file's ending
/// once something follows it.
struct Output<'e> {
    text: String,
    eol: &'e str,
    open: bool,
}

impl<'e> Output<'e> {
    fn new(eol: &'e str) -> Self {
        Self {
            text: String::new(),
            eol,
            open: false,
        }
    }

    fn line(&mut self, body: &str, eol: &str) {
        if self.open {
            self.text.push_str(self.eol);
        }
        self.text.push_str(body);
        self.text.push_str(eol);
        self.open = eol.is_empty();
    }
}

fn split_eol(raw: &str) -> (&str, &str) {
    if let Some(body) = raw.strip_suffix("\r\n") {
        (body, "\r\n")
    } else if let Some(body) = raw.strip_suffix('\n') {
        (body, "\n")
    } else {
        (raw, "")
    }
}

fn is_blank(body: &str) -> bool {
    body.trim_matches(is_space).is_empty()
}

/// What Python's `str.strip()` and configparser's indentation count as
/// whitespace (control characters other than tab are refused earlier).
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// The section a header line names, as configparser reads it: from the
/// first `[` to the last `]` with at least one character between (anything
/// after that `]` is ignored); `None` if the line is not a header.
fn section_name(stripped: &str) -> Option<&str> {
    let rest = stripped.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// The profile a section of a file of `kind` holds, as botocore maps them:
/// in a credentials file the section name as written; in a config file
/// `default`, or the second word of `profile NAME` (any `profile…` section
/// of exactly two words). `Ok(None)` for a section that is no profile.
fn header_profile(name: &str, kind: FileKind) -> Result<Option<&str>, &'static str> {
    match kind {
        FileKind::Credentials => Ok(Some(name)),
        FileKind::Config if name == "default" => Ok(Some(name)),
        FileKind::Config if name.starts_with("profile") => {
            // botocore splits it with shlex: refuse what only shlex reads.
            if name.contains(['"', '\'', '\\']) {
                return Err("a quoted profile section name, which this plugin does not read");
            }
            let words: Vec<&str> = name.split(is_space).filter(|w| !w.is_empty()).collect();
            Ok((words.len() == 2).then_some(words[1]))
        }
        FileKind::Config => Ok(None),
    }
}

/// Splits a property line into its lowercased key, where the key as written
/// ends, and the value's range, as configparser does: the key runs to the
/// first `=` or `:`, and the value is the rest of the line, stripped, an
/// inline `# text` included.
fn property(body: &str, stripped: &str) -> Result<(String, usize, Range<usize>), &'static str> {
    // `stripped` is a sub-slice of `body`; find where it starts.
    let start = stripped.as_ptr() as usize - body.as_ptr() as usize;
    let delimiter = stripped
        .find(['=', ':'])
        .ok_or("expected 'key = value' (or 'key: value')")?;
    let name = stripped[..delimiter].trim_end_matches(is_space);
    if name.is_empty() {
        return Err("a property has no name before '='");
    }
    let rest = &stripped[delimiter + 1..];
    let value_start =
        start + delimiter + 1 + (rest.len() - rest.trim_start_matches(is_space).len());
    Ok((
        name.to_lowercase(),
        start + name.len(),
        value_start..start + stripped.len(),
    ))
}

/// `body` with `range` replaced by `new`, keeping a space after `=` when the
/// old value was empty but the key side was spaced (`k =` → `k = new`).
fn replace_value(body: &str, range: &Range<usize>, new: &str) -> String {
    let before = &body[..range.start];
    let pad = range.is_empty()
        && before
            .strip_suffix('=')
            .is_some_and(|key| key.ends_with(is_space));
    let mut out = String::with_capacity(body.len() + new.len() + 1);
    out.push_str(before);
    if pad {
        out.push(' ');
    }
    out.push_str(new);
    out.push_str(&body[range.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIANEWNEWNEWNEW5678";
    const SECRET: &str = "new/Secret+Key/abcdefghijklmnopqrstuvw";

    fn edit(text: &str, profile: &str) -> Edit {
        CredentialsFile::parse(text)
            .expect("parses")
            .set_key(profile, ID, SECRET)
    }

    fn ids(text: &str, profile: &str) -> Vec<String> {
        CredentialsFile::parse(text)
            .expect("parses")
            .access_key_ids(profile)
    }

    #[test]
    fn replaces_the_key_pair_in_default() {
        let text = "[default]\naws_access_key_id = AKIAOLD\naws_secret_access_key = oldsecret\n";
        let out = edit(text, "default");
        assert_eq!(
            out.text,
            format!("[default]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n")
        );
        assert!(out.removed.is_empty());
        assert!(!out.appended_profile);
    }

    #[test]
    fn replaces_a_middle_profile_and_leaves_the_others_byte_identical() {
        let before = "[default]\naws_access_key_id=AKIADEFAULT\naws_secret_access_key=defsecret\nregion=eu-west-1\n\n";
        let after = "\n[prod]\n; production\naws_access_key_id = AKIAPROD\naws_secret_access_key = prodsecret\n";
        let text = format!(
            "{before}[ci]\naws_access_key_id = AKIAOLD\nregion = us-east-1\naws_secret_access_key = old\n{after}"
        );
        let out = edit(&text, "ci");
        assert_eq!(
            out.text,
            format!(
                "{before}[ci]\naws_access_key_id = {ID}\nregion = us-east-1\naws_secret_access_key = {SECRET}\n{after}"
            )
        );
    }

    #[test]
    fn keeps_comment_lines_and_reads_inline_text_as_part_of_the_value() {
        // As configparser does: `#`/`;` start a comment only at the start of
        // a line (indented or not); after a value they are part of it.
        let text = "# managed by hand\n\n[ci]   # the CI bot\n  ; keys below\naws_access_key_id = AKIAOLD   # rotated by keyrot\n\n  \naws_secret_access_key = old ; secret\n# end\n";
        let file = CredentialsFile::parse(text).unwrap();
        assert_eq!(file.access_key_ids("ci"), ["AKIAOLD   # rotated by keyrot"]);
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "# managed by hand\n\n[ci]   # the CI bot\n  ; keys below\naws_access_key_id = {ID}\n\n  \naws_secret_access_key = {SECRET}\n# end\n"
            )
        );
    }

    #[test]
    fn reads_colon_delimiters_and_keeps_them() {
        let text =
            "[ci]\naws_access_key_id: AKIAOLD\nAWS_Secret_Access_Key : old\nurl = http://x:1\n";
        let file = CredentialsFile::parse(text).unwrap();
        assert_eq!(file.access_key_ids("ci"), ["AKIAOLD"]);
        assert_eq!(file.values("ci", "url"), ["http://x:1"]);
        assert_eq!(
            edit(text, "ci").text,
            format!(
                "[ci]\naws_access_key_id: {ID}\nAWS_Secret_Access_Key : {SECRET}\nurl = http://x:1\n"
            )
        );
    }

    #[test]
    fn keeps_crlf_line_endings() {
        let text = "[default]\r\naws_access_key_id = AKIAOLD\r\naws_secret_access_key = old\r\n\r\n[other]\r\nregion = x\r\n";
        let out = edit(text, "default");
        assert_eq!(
            out.text,
            format!(
                "[default]\r\naws_access_key_id = {ID}\r\naws_secret_access_key = {SECRET}\r\n\r\n[other]\r\nregion = x\r\n"
            )
        );
        // Added lines and appended profiles use CRLF too.
        let out = edit("[other]\r\nregion = x\r\n", "ci");
        assert_eq!(
            out.text,
            format!(
                "[other]\r\nregion = x\r\n\r\n[ci]\r\naws_access_key_id = {ID}\r\naws_secret_access_key = {SECRET}\r\n"
            )
        );
    }

    #[test]
    fn adds_missing_keys_after_the_last_property() {
        let text = "[ci]\nregion = us-east-1\n\n[prod]\nregion = eu-west-1\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\nregion = us-east-1\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n\n[prod]\nregion = eu-west-1\n"
            )
        );
        assert!(!out.appended_profile);
    }

    #[test]
    fn adds_the_missing_secret_only() {
        let text = "[ci]\naws_access_key_id = AKIAOLD\n# note\n\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n# note\n\n")
        );
    }

    #[test]
    fn adds_keys_right_after_an_empty_sections_header() {
        let out = edit("[ci]\n\n[prod]\n", "ci");
        assert_eq!(
            out.text,
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n\n[prod]\n")
        );
    }

    #[test]
    fn adds_keys_to_an_unterminated_last_line() {
        let out = edit("[ci]\nregion = x", "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\nregion = x\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n"
            )
        );
    }

    #[test]
    fn removes_session_tokens_from_the_profile_only() {
        let text = "[ci]\naws_access_key_id = ASIAOLD\naws_secret_access_key = old\naws_session_token = tok\n  continued\nAWS_Security_Token=tok2\nregion = x\n\n[other]\naws_session_token = keep\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\nregion = x\n\n[other]\naws_session_token = keep\n"
            )
        );
        assert_eq!(out.removed, ["aws_session_token", "AWS_Security_Token"]);
    }

    #[test]
    fn adds_missing_keys_where_a_removed_token_was_last() {
        let out = edit("[ci]\naws_session_token = tok\n\n[b]\n", "ci");
        assert_eq!(
            out.text,
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n\n[b]\n")
        );
        assert_eq!(out.removed, ["aws_session_token"]);
    }

    #[test]
    fn appends_a_missing_profile_after_a_blank_line() {
        let text = "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = def\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!("{text}\n[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n")
        );
        assert!(out.appended_profile);

        // No second blank line when the file already ends with one, and an
        // unterminated last line is terminated first.
        let out = edit("[a]\nx = 1\n\n", "ci");
        assert!(out.text.starts_with("[a]\nx = 1\n\n[ci]\n"), "{}", out.text);
        let out = edit("[a]\nx = 1", "ci");
        assert!(out.text.starts_with("[a]\nx = 1\n\n[ci]\n"), "{}", out.text);
    }

    #[test]
    fn writes_just_the_profile_into_an_empty_file() {
        let expected =
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n");
        assert_eq!(edit("", "ci").text, expected);
        assert!(edit("", "ci").appended_profile);
        // A file of comments keeps them.
        assert_eq!(
            edit("# nothing yet\n", "ci").text,
            format!("# nothing yet\n\n{expected}")
        );
    }

    #[test]
    fn matches_key_names_in_any_case_and_keeps_their_spelling() {
        let text = "[ci]\nAWS_ACCESS_KEY_ID = AKIAOLD\nAws_Secret_Access_Key=old\n";
        assert_eq!(ids(text, "ci"), ["AKIAOLD"]);
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!("[ci]\nAWS_ACCESS_KEY_ID = {ID}\nAws_Secret_Access_Key={SECRET}\n")
        );
    }

    #[test]
    fn handles_key_value_with_and_without_spaces() {
        let text = "[ci]\naws_access_key_id=AKIAOLD\naws_secret_access_key  =\told  \n";
        assert_eq!(ids(text, "ci"), ["AKIAOLD"]);
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!("[ci]\naws_access_key_id={ID}\naws_secret_access_key  =\t{SECRET}  \n")
        );
    }

    #[test]
    fn added_lines_follow_the_files_spacing() {
        let out = edit("[a]\nregion=x\n", "ci");
        assert!(
            out.text.ends_with(&format!(
                "[ci]\naws_access_key_id={ID}\naws_secret_access_key={SECRET}\n"
            )),
            "{}",
            out.text
        );
    }

    #[test]
    fn values_may_contain_equals_and_hash_signs() {
        let text =
            "[ci]\naws_access_key_id = AKIAOLD\naws_secret_access_key = ab=cd==#x\nother = a=b\n";
        let file = CredentialsFile::parse(text).unwrap();
        let Kind::Property { value, .. } = &file.lines[2].kind else {
            panic!("not a property")
        };
        assert_eq!(&file.lines[2].body[value.clone()], "ab=cd==#x");
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\nother = a=b\n"
            )
        );
    }

    #[test]
    fn fills_an_empty_value() {
        let out = edit("[ci]\naws_access_key_id =\naws_secret_access_key=\n", "ci");
        assert_eq!(
            out.text,
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key={SECRET}\n")
        );
        assert!(ids("[ci]\naws_access_key_id =\n", "ci").is_empty());
    }

    #[test]
    fn detects_the_key_a_profile_holds() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\n[ci]\naws_access_key_id = AKIAOTHER1234\n[empty]\nregion = x\n";
        assert_eq!(ids(text, "ci"), ["AKIAOTHER1234"]);
        assert_eq!(ids(text, "default"), ["AKIADEFAULT"]);
        assert!(ids(text, "empty").is_empty());
        assert!(ids(text, "missing").is_empty());
        let file = CredentialsFile::parse(text).unwrap();
        assert!(file.has_profile("empty"));
        assert!(!file.has_profile("missing"));
    }

    #[test]
    fn a_section_name_is_read_as_written() {
        // `[ ci ]` is section " ci ", not profile ci, for the AWS CLI.
        let text = "[ci]\naws_access_key_id = AKIAONE\n[ ci ]\naws_access_key_id = AKIATWO\n";
        assert_eq!(ids(text, "ci"), ["AKIAONE"]);
        assert_eq!(
            edit(text, "ci").text,
            format!(
                "[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n[ ci ]\naws_access_key_id = AKIATWO\n"
            )
        );
        // Text after the closing bracket is ignored.
        assert!(
            CredentialsFile::parse("[ci] x\n")
                .unwrap()
                .has_profile("ci")
        );
    }

    #[test]
    fn a_continued_key_id_is_read_whole_and_replaced_whole() {
        let text = "[ci]\naws_access_key_id = AKIAOLD\n  tail\naws_secret_access_key = old\n";
        assert_eq!(ids(text, "ci"), ["AKIAOLD\ntail"]);
        assert_eq!(
            edit(text, "ci").text,
            format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n")
        );
        // A blank line does not end a continuation, for configparser either.
        let text = "[ci]\naws_access_key_id = AKIAOLD\n\n  tail\n";
        assert_eq!(ids(text, "ci"), ["AKIAOLD\ntail"]);
        assert_eq!(
            edit(text, "ci").text,
            format!("[ci]\naws_access_key_id = {ID}\n\naws_secret_access_key = {SECRET}\n")
        );
    }

    #[test]
    fn keeps_sub_properties_of_other_keys() {
        let text = "[ci]\ns3 =\n  max_concurrent_requests = 20\naws_access_key_id = AKIAOLD\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\ns3 =\n  max_concurrent_requests = 20\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n"
            )
        );
    }

    #[test]
    fn a_prefixed_section_is_not_the_profile() {
        // The AWS CLI ignores `[profile ci]` in a credentials file.
        let text = "[profile ci]\naws_access_key_id = AKIAOLD\n";
        assert!(ids(text, "ci").is_empty());
        let out = edit(text, "ci");
        assert!(out.appended_profile);
        assert!(out.text.starts_with(text));
    }

    #[test]
    fn rejects_what_the_aws_cli_rejects() {
        let cases = [
            ("aws_access_key_id = x\n", 1),
            ("[ci]\nno equals sign\n", 2),
            ("[ci]\n = value\n", 2),
            ("[ci\n", 1),
            ("[]\n", 1),
            ("[ci]\na = 1\n[b]\n[ci]\n", 4),
            ("[ci]\na = 1\nA = 2\n", 3),
            ("[DEFAULT]\na = 1\n", 1),
            ("[ci]\na = 1\rb = 2\n", 2),
            ("\n  indented before a section\n", 2),
            ("[ci]\n  indented after a header\n", 2),
            ("[ci]\ns3 =\n  not a sub property\n", 3),
        ];
        for (text, line) in cases {
            let error = CredentialsFile::parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
        }
    }

    #[test]
    fn accepts_comments_and_headers_with_comments() {
        let text = "; top\n# top\n[ci] ; note\n[b]#note\n";
        let file = CredentialsFile::parse(text).unwrap();
        assert!(file.has_profile("ci"));
        assert!(file.has_profile("b"));
    }

    #[test]
    fn a_config_file_names_profiles_profile_name() {
        let text = "[default]\nregion = us-east-1\n\n[profile ci]\naws_access_key_id = AKIAOLD\n\
                    aws_secret_access_key = old\n\n[ci]\naws_access_key_id = AKIANOTAPROFILE\n\n\
                    [sso-session corp]\nsso_region = eu-west-1\n";
        let file = CredentialsFile::parse_as(text, FileKind::Config).unwrap();
        assert!(file.has_profile("default") && file.has_profile("ci"));
        assert_eq!(file.access_key_ids("ci"), ["AKIAOLD"]);
        let edit = file.set_key("ci", ID, SECRET);
        assert_eq!(
            edit.text,
            text.replace("= AKIAOLD", &format!("= {ID}"))
                .replace("= old", &format!("= {SECRET}"))
        );
        // A new profile is appended the config file's way; default is bare.
        let edit = file.set_key("deploy", ID, SECRET);
        assert!(edit.text.ends_with(&format!(
            "\n[profile deploy]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n"
        )));
        let file = CredentialsFile::parse_as("", FileKind::Config).unwrap();
        assert!(
            file.set_key("default", ID, SECRET)
                .text
                .starts_with("[default]\n")
        );
        // The same text as a credentials file: [profile ci] is no profile.
        let file = CredentialsFile::parse(text).unwrap();
        assert_eq!(file.access_key_ids("ci"), ["AKIANOTAPROFILE"]);
    }

    #[test]
    fn only_plain_key_material_is_storable() {
        assert!(storable(ID));
        assert!(storable(SECRET));
        for bad in ["", "a b", "a\nb", "a\tb", "a#b", "a;b", "a\rb"] {
            assert!(!storable(bad), "{bad:?}");
        }
    }
}
