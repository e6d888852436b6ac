//! Secret settings: where each value comes from (`env:VAR`, `file:PATH`),
//! read before any key is created.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::expand_home;

use zeroize::Zeroizing;

/// Largest secret file read: secrets are tokens and keys, not documents.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Where a secret value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of keyrot's process.
    Env(String),
    /// A file (its content, without a trailing newline).
    File(PathBuf),
}

impl FromStr for SecretSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(SecretSource::Env(var.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource::File(expand_home(path))),
            // Never echo `s`: the likeliest mistake is the secret itself.
            _ => Err(
                "a secret source must be env:VARIABLE or file:PATH, never the value itself"
                    .to_string(),
            ),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "env:{var}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl SecretSource {
    /// Reads the value now, so a missing variable or file fails before any
    /// key is created.
    pub fn resolve(&self) -> Result<Zeroizing<String>, String> {
        let value = match self {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            SecretSource::File(path) => crate::input::read_regular_text(path, MAX_SECRET_BYTES)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        };
        let value = Zeroizing::new(value);
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Err(format!("secret from {self} is empty"));
        }
        Ok(Zeroizing::new(trimmed.to_string()))
    }
}

/// `NAME=SOURCE`, as given to `--secret`.
pub fn parse_secret_arg(s: &str) -> Result<(String, SecretSource), String> {
    let (name, source) = s
        .split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .ok_or("expected NAME=env:VARIABLE or NAME=file:PATH")?;
    let name = name.trim();
    let source = source
        .parse()
        .map_err(|e| format!("--secret {name}: {e}"))?;
    Ok((name.to_string(), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sources() {
        assert_eq!(
            parse_secret_arg("token=env:GITHUB_TOKEN").unwrap(),
            ("token".into(), SecretSource::Env("GITHUB_TOKEN".into()))
        );
        assert!(parse_secret_arg("token=ghp_literal").is_err());
        assert!(parse_secret_arg("token").is_err());

        let dir = std::env::temp_dir().join(format!("keyrot-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let source = SecretSource::File(dir.clone());
        assert_eq!(source.resolve().unwrap().as_str(), "s3cret");
        std::fs::remove_file(&dir).unwrap();
        assert!(source.resolve().is_err());
        assert!(
            SecretSource::Env("KEYROT_TEST_UNSET_VARIABLE".into())
                .resolve()
                .is_err()
        );
    }
}
