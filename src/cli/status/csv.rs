//! `keyrot status --output csv`: a row per key (a user without keys, or a
//! whole account, is one row), for the spreadsheet auditors ask for.
//! Quoted as RFC 4180 says; a cell a spreadsheet would run as a formula
//! (first character `=`, `+`, `-`, `@`, tab or CR: tag values are anyone's
//! to write) starts with `'`.

use std::io::{self, Write};

use keyrot::rotation::{ExemptReport, parse_rfc3339, unix_now};

use super::view::{KeyView, UserView};

const HEADER: [&str; 20] = [
    "account",
    "account_name",
    "user",
    "owner",
    "target",
    "state",
    "due",
    "exempt_by",
    "exempt_reason",
    "exempt_until",
    "key_id",
    "key_status",
    "key_created",
    "key_age_days",
    "last_used",
    "last_used_service",
    "last_used_region",
    "next",
    "warnings",
    "error",
];

/// Writes rows under the header.
pub(super) struct Rows<'a, W: Write> {
    out: &'a mut W,
}

impl<'a, W: Write> Rows<'a, W> {
    /// Starts the document with its header row.
    pub fn new(out: &'a mut W) -> io::Result<Self> {
        let mut rows = Rows { out };
        rows.row(HEADER.map(String::from))?;
        Ok(rows)
    }

    /// A user's rows: one per key, or one if it has none.
    pub fn user(&mut self, account: &str, name: Option<&str>, user: &UserView) -> io::Result<()> {
        let exempt = user.exempt.as_ref();
        let base = |key: Option<&KeyView>| -> [String; 20] {
            let used = key.and_then(|k| k.last_used.as_ref());
            [
                account.to_string(),
                name.unwrap_or_default().to_string(),
                user.user.clone(),
                user.owner.clone().unwrap_or_default(),
                user.target.clone().unwrap_or_default(),
                user.state.to_string(),
                user.due.clone().unwrap_or_default(),
                exempt.map(|e| e.by.clone()).unwrap_or_default(),
                exempt.map(|e| e.reason.clone()).unwrap_or_default(),
                exempt.and_then(|e| e.until.clone()).unwrap_or_default(),
                key.map(|k| k.access_key_id.clone()).unwrap_or_default(),
                key.map(|k| k.status.as_str().to_string())
                    .unwrap_or_default(),
                key.and_then(|k| k.create_date.clone()).unwrap_or_default(),
                key.and_then(|k| k.create_date.as_deref())
                    .and_then(parse_rfc3339)
                    .map(|created| (unix_now().saturating_sub(created) / 86_400).to_string())
                    .unwrap_or_default(),
                used.and_then(|u| u.date.clone()).unwrap_or_default(),
                used.and_then(|u| u.service.clone()).unwrap_or_default(),
                used.and_then(|u| u.region.clone()).unwrap_or_default(),
                user.next.clone(),
                user.warnings.join("; "),
                user.error.clone().unwrap_or_default(),
            ]
        };
        if user.keys.is_empty() {
            return self.row(base(None));
        }
        for key in &user.keys {
            self.row(base(Some(key)))?;
        }
        Ok(())
    }

    /// A whole account's row (user `*`): exempt, or why it could not be
    /// looked at.
    pub fn account(
        &mut self,
        account: &str,
        name: &str,
        state: &str,
        exempt: Option<&ExemptReport>,
        error: Option<&str>,
    ) -> io::Result<()> {
        let mut cells: [String; 20] = Default::default();
        cells[0] = account.to_string();
        cells[1] = name.to_string();
        cells[2] = "*".into();
        cells[5] = state.to_string();
        if let Some(exempt) = exempt {
            cells[7].clone_from(&exempt.by);
            cells[8].clone_from(&exempt.reason);
            cells[9] = exempt.until.clone().unwrap_or_default();
        }
        cells[19] = error.unwrap_or_default().to_string();
        self.row(cells)
    }

    fn row(&mut self, cells: [String; 20]) -> io::Result<()> {
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        // CRLF ends records, as RFC 4180 says and spreadsheets expect.
        write!(self.out, "{}\r\n", line.join(","))
    }
}

/// One cell, defused and quoted as needed.
fn cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("ci-bot"), "ci-bot");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }
}
