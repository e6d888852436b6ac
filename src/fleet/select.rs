//! Which users a fleet rotates: names checked as IAM checks them, users
//! files, path prefixes, repeats, and users IAM does not know.

use std::collections::HashSet;
use std::path::Path;

use futures_util::StreamExt;

use crate::iam::{Iam, IamErrorKind};

/// Largest users file read: ten thousand names take well under 1 MiB.
const MAX_USERS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// From this many users on, one `ListUsers` beats a call per user.
const LIST_ALL_FROM: usize = 20;

/// IAM user names are 1-64 characters of letters, digits and `+=,.@_-`.
pub fn check_user_name(user: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if user.is_empty() || user.len() > 64 || !user.chars().all(valid_char) {
        return Err(format!(
            "'{user}' is not a valid IAM user name (1-64 letters, digits and +=,.@_- characters)"
        ));
    }
    Ok(())
}

/// IAM paths start and end with `/` and hold printable ASCII.
pub fn check_path_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/')
        || prefix.len() > 512
        || !prefix.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(format!(
            "'{prefix}' is not an IAM path prefix: it starts with / (e.g. /ci/), in printable \
             ASCII without spaces"
        ));
    }
    Ok(())
}

/// Reads a users file: one IAM user name a line; `#` starts a comment (it
/// cannot occur in a name); blank lines are ignored. Every name is checked
/// before anything runs, and a bad one is named with its line.
pub fn read_users_file(path: &Path) -> Result<Vec<String>, String> {
    let text = crate::input::read_regular_text(path, MAX_USERS_FILE_BYTES)
        .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        check_user_name(name)
            .map_err(|e| format!("users file {}, line {}: {e}", path.display(), i + 1))?;
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(format!(
            "users file {} names no user (one IAM user name a line)",
            path.display()
        ));
    }
    Ok(names)
}

/// `names` without repeats, first spelling kept: IAM user names ignore
/// case, so `ci-bot` and `CI-Bot` are one user.
pub fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(name.to_ascii_lowercase()))
        .collect()
}

/// Which of `users` IAM says do not exist. For a large fleet, one
/// `ListUsers` (a page per 1000 users) answers for all; without that
/// permission, or for a few users, `ListAccessKeys` per user (the call a
/// rotation starts with), `concurrency` at a time. Other errors are left
/// for each rotation to report.
pub async fn unknown_users(iam: &dyn Iam, users: &[String], concurrency: usize) -> Vec<String> {
    if users.len() >= LIST_ALL_FROM
        && let Ok(all) = iam.list_users("/").await
    {
        let known: HashSet<String> = all.iter().map(|u| u.to_ascii_lowercase()).collect();
        return users
            .iter()
            .filter(|u| !known.contains(&u.to_ascii_lowercase()))
            .cloned()
            .collect();
    }
    futures_util::stream::iter(users)
        .map(|user| async move {
            match iam.list_access_keys(user).await {
                Err(err) if err.kind == IamErrorKind::NoSuchEntity => Some(user.clone()),
                _ => None,
            }
        })
        .buffered(concurrency.max(1))
        .filter_map(|unknown| async move { unknown })
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_iam_rules() {
        assert!(check_user_name("ci-bot").is_ok());
        assert!(check_user_name("svc+deploy@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("has space").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn users_files_skip_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, "# CI users\nci-a\n\n  ci-b  # deploys\nCI-A\n").unwrap();
        let names = read_users_file(&path).unwrap();
        assert_eq!(names, ["ci-a", "ci-b", "CI-A"]);
        assert_eq!(dedup(names), ["ci-a", "ci-b"]);
    }

    #[test]
    fn a_bad_name_in_a_users_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, "ci-a\nci b\n").unwrap();
        let err = read_users_file(&path).unwrap_err();
        assert!(err.contains("line 2") && err.contains("'ci b'"), "{err}");
        std::fs::write(&path, "# nobody\n\n").unwrap();
        let err = read_users_file(&path).unwrap_err();
        assert!(err.contains("names no user"), "{err}");
    }

    #[test]
    fn path_prefixes_follow_iam_rules() {
        assert!(check_path_prefix("/").is_ok());
        assert!(check_path_prefix("/ci/").is_ok());
        assert!(check_path_prefix("ci/").is_err());
        assert!(check_path_prefix("/c i/").is_err());
    }
}
