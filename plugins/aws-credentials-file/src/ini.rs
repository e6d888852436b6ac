//! The AWS shared credentials file as text: a parser that follows the AWS
//! SDKs' profile-file rules, and a surgical editor that sets one profile's
//! key pair and leaves every other byte as it was.
//!
//! Pure: no I/O and no WASI, so it is unit-tested natively.
//!
//! The rules mirror the SDKs' parser (aws-runtime `env_config/parse.rs`),
//! so a file this module accepts is one the SDKs read the same way:
//! - lines end in LF or CRLF; a line that is empty or only spaces and tabs
//!   is blank; one starting with `#` or `;` in column 0 is a comment;
//! - `[name]` starts a section (a trailing comment is allowed); in a
//!   credentials file the section name is the profile name, and a name with
//!   a space in it (`[profile ci]`) is ignored by the SDKs; in a config file
//!   (`~/.aws/config`, [`FileKind::Config`]) a profile is `[profile NAME]`
//!   (`[default]` for the default one), and other sections (`[sso-session
//!   x]`, `[services x]`, a bare `[ci]`) are not profiles;
//! - `key = value`: split at the first `=`, both sides trimmed, key names
//!   case-insensitive, ` #` or ` ;` starts a trailing comment;
//! - a line starting with a space or tab continues the property above it;
//! - sections with the same name are merged.

use std::fmt;
use std::ops::Range;

/// What the SDKs count as whitespace in a profile file (not `char::is_whitespace`).
const WHITESPACE: &[char] = &[' ', '\t'];
const COMMENT: &[char] = &['#', ';'];

pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
/// Keys that belong to temporary credentials: left beside a new long-term
/// key they would make the SDKs sign with a mismatched pair.
const SESSION_KEYS: [&str; 2] = ["aws_session_token", "aws_security_token"];

/// Why a file is not a profile file the SDKs can read.
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
        /// Lowercased, as the SDKs compare it.
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
    /// Parses `text` as a credentials file, failing where the AWS SDKs would.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        Self::parse_as(text, FileKind::Credentials)
    }

    /// Parses `text` as a file of `kind`, failing where the AWS SDKs would.
    pub fn parse_as(text: &'a str, kind: FileKind) -> Result<Self, ParseError> {
        let mut lines: Vec<Line<'a>> = Vec::new();
        let mut in_section = false;
        let mut profile = None;
        // The property an indented line would continue, and whether its
        // value was empty (then the SDKs require `k = v` sub-properties).
        let mut open_property: Option<bool> = None;

        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let (body, eol) = split_eol(raw);
            let error = |message| ParseError {
                line: index + 1,
                message,
            };
            let kind = if is_blank(body) || body.starts_with(COMMENT) {
                Kind::Inert
            } else if body.starts_with('[') {
                profile = header_profile(body, kind)
                    .ok_or_else(|| error("a section header must end with ']'"))?;
                in_section = true;
                open_property = None;
                Kind::Header
            } else if body.starts_with(WHITESPACE) {
                if !in_section {
                    return Err(error("expected a [profile] header before this line"));
                }
                match open_property {
                    None => {
                        return Err(error(
                            "an indented line must continue a property (unindent it or remove it)",
                        ));
                    }
                    Some(true) => {
                        property(body.trim_matches(WHITESPACE))
                            .map_err(|_| error("expected 'key = value' in a sub-property"))?;
                    }
                    Some(false) => {}
                }
                Kind::Continuation
            } else {
                if !in_section {
                    return Err(error("expected a [profile] header before this line"));
                }
                let (key, key_end, value) = property(body).map_err(error)?;
                open_property = Some(value.is_empty());
                Kind::Property {
                    key,
                    key_end,
                    value,
                }
            };
            lines.push(Line {
                body,
                eol,
                kind,
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

    /// A property's value as the SDKs read it: continuation lines join it
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
            out.push_str(next.body.trim_matches(WHITESPACE));
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
    body.trim_matches(WHITESPACE).is_empty()
}

/// The profile a `[...]` header names, `Some(None)` for a section the SDKs
/// do not read as a profile of a file of `kind` (`[profile ci]` in a
/// credentials file, `[ci]` or `[sso-session x]` in a config file), `None`
/// if it is malformed.
fn header_profile(body: &str, kind: FileKind) -> Option<Option<&str>> {
    let inner = strip_comment(body, false)
        .strip_prefix('[')?
        .strip_suffix(']')?
        .trim_matches(WHITESPACE);
    let name = match kind {
        FileKind::Credentials => Some(inner),
        FileKind::Config if inner == "default" => Some(inner),
        FileKind::Config => inner
            .strip_prefix("profile")
            .filter(|rest| rest.starts_with(WHITESPACE))
            .map(|rest| rest.trim_matches(WHITESPACE)),
    };
    Some(name.filter(|name| !name.is_empty() && !name.contains(WHITESPACE)))
}

/// Splits a property line into its lowercased key, where the key as written
/// ends, and the value's range.
fn property(body: &str) -> Result<(String, usize, Range<usize>), &'static str> {
    let effective = strip_comment(body, true);
    // `effective` is a sub-slice of `body`; find where it starts.
    let start = effective.as_ptr() as usize - body.as_ptr() as usize;
    let (key, rest) = effective
        .split_once('=')
        .ok_or("expected '=' in a property line")?;
    let name = key.trim_matches(WHITESPACE);
    if name.is_empty() {
        return Err("a property has no name before '='");
    }
    let key_end = start + key.trim_end_matches(WHITESPACE).len();
    let value_start =
        start + key.len() + 1 + (rest.len() - rest.trim_start_matches(WHITESPACE).len());
    Ok((
        name.to_ascii_lowercase(),
        key_end,
        value_start..start + effective.len(),
    ))
}

/// `line` without surrounding whitespace and trailing comment. In property
/// lines a comment character must follow whitespace (`a=b#c` has value
/// `b#c`); in headers it need not.
fn strip_comment(line: &str, comments_need_whitespace: bool) -> &str {
    let line = line.trim_matches(WHITESPACE);
    let mut previous_whitespace = false;
    for (index, c) in line.char_indices() {
        if COMMENT.contains(&c) && (previous_whitespace || !comments_need_whitespace) {
            return line[..index].trim_matches(WHITESPACE);
        }
        previous_whitespace = c.is_whitespace();
    }
    line
}

/// `body` with `range` replaced by `new`, keeping a space after `=` when the
/// old value was empty but the key side was spaced (`k =` → `k = new`).
fn replace_value(body: &str, range: &Range<usize>, new: &str) -> String {
    let before = &body[..range.start];
    let pad = range.is_empty()
        && before
            .strip_suffix('=')
            .is_some_and(|key| key.ends_with(WHITESPACE));
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
    fn keeps_comments_blank_lines_and_trailing_comments() {
        let text = "# managed by hand\n\n[ci]   # the CI bot\n; keys below\naws_access_key_id = AKIAOLD   # rotated by keyrot\n\n  \naws_secret_access_key = old ; secret\n# end\n";
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "# managed by hand\n\n[ci]   # the CI bot\n; keys below\naws_access_key_id = {ID}   # rotated by keyrot\n\n  \naws_secret_access_key = {SECRET} ; secret\n# end\n"
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
    fn sees_every_key_in_duplicate_sections_and_replaces_them_all() {
        let text = "[ci]\naws_access_key_id = AKIAONE\n[x]\n[ ci ]\naws_access_key_id = AKIATWO\naws_secret_access_key = s\n";
        assert_eq!(ids(text, "ci"), ["AKIAONE", "AKIATWO"]);
        let out = edit(text, "ci");
        assert_eq!(
            out.text,
            format!(
                "[ci]\naws_access_key_id = {ID}\n[x]\n[ ci ]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n"
            )
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
        // A blank line does not end a continuation, for the SDKs either.
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
        // The SDKs ignore `[profile ci]` in a credentials file.
        let text = "[profile ci]\naws_access_key_id = AKIAOLD\n";
        assert!(ids(text, "ci").is_empty());
        let out = edit(text, "ci");
        assert!(out.appended_profile);
        assert!(out.text.starts_with(text));
    }

    #[test]
    fn rejects_what_the_sdks_reject() {
        let cases = [
            ("aws_access_key_id = x\n", 1),
            ("[ci]\nno equals sign\n", 2),
            ("[ci]\n = value\n", 2),
            ("[ci\n", 1),
            ("[ci] x\n", 1),
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
