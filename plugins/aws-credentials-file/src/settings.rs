//! The handler's settings, checked into a plain struct. Pure: values come
//! through a lookup function, so the checks are unit-tested natively.

use std::path::{Path, PathBuf};

use crate::ini::FileKind;

pub const PATH: &str = "path";
pub const PROFILE: &str = "profile";
pub const FORCE: &str = "force";
pub const FILE_TYPE: &str = "file-type";

/// Name, description and whether it is required, for `describe()`.
pub const DECLARED: [(&str, &str, bool); 4] = [
    (
        PATH,
        "The credentials file inside a granted directory, e.g. /aws/credentials \
         (grant it with --allow-dir ~/.aws:/aws)",
        true,
    ),
    (
        PROFILE,
        "The profile to write, e.g. ci (default: default)",
        false,
    ),
    (
        FORCE,
        "true to replace a profile holding a key other than the one being rotated \
         or one an interrupted rotation left (default: false)",
        false,
    ),
    (
        FILE_TYPE,
        "credentials ([NAME] sections) or config ([profile NAME] sections, as in \
         ~/.aws/config); default: config if the file is named config, else credentials",
        false,
    ),
];

#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// The credentials file, an absolute path inside the sandbox.
    pub path: PathBuf,
    pub profile: String,
    pub force: bool,
    /// How the file names profile sections.
    pub kind: FileKind,
}

impl Settings {
    /// Reads and checks every setting through `get`, which returns a
    /// setting's value if it was given.
    pub fn load(
        mut get: impl FnMut(&str) -> Result<Option<String>, String>,
    ) -> Result<Self, String> {
        let path = get(PATH)?.ok_or("setting 'path' is missing, e.g. path=/aws/credentials")?;
        let profile = get(PROFILE)?.unwrap_or_else(|| "default".into());
        let force = match get(FORCE)? {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            Some(value) => {
                return Err(format!(
                    "setting 'force' must be true or false, not '{value}'"
                ));
            }
        };
        let path = check_path(&path)?;
        let kind = match get(FILE_TYPE)?.as_deref() {
            Some("credentials") => FileKind::Credentials,
            Some("config") => FileKind::Config,
            None if path.file_name().is_some_and(|name| name == "config") => FileKind::Config,
            None => FileKind::Credentials,
            Some(other) => {
                return Err(format!(
                    "setting 'file-type' must be credentials or config, not '{other}'"
                ));
            }
        };
        Ok(Self {
            path,
            profile: check_profile(profile)?,
            force,
            kind,
        })
    }

    /// The directory that holds the file, where the temporary file goes.
    pub fn dir(&self) -> &Path {
        // `check_path` guarantees an absolute path with a file name.
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

fn check_path(path: &str) -> Result<PathBuf, String> {
    let parsed = Path::new(path);
    // Checked on the string: `Path::components` silently drops inner `.`.
    let plain = !path.split('/').any(|part| part == "." || part == "..");
    if !path.starts_with('/') || path.ends_with('/') || !plain || parsed.file_name().is_none() {
        return Err(format!(
            "setting 'path' must be an absolute path to a file inside a granted directory, \
             without '.' or '..', e.g. /aws/credentials; got '{path}'"
        ));
    }
    Ok(parsed.to_path_buf())
}

/// The SDKs ignore sections whose name is not an identifier of these
/// characters, so writing one would store a key nothing reads.
fn check_profile(profile: String) -> Result<String, String> {
    let valid = !profile.is_empty()
        && profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c));
    if valid {
        Ok(profile)
    } else {
        Err(format!(
            "setting 'profile' must be a profile name of letters, digits and _-/.%@:+ \
             (AWS SDKs ignore other names); got '{profile}'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::load(|name| {
            Ok(pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string()))
        })
    }

    #[test]
    fn defaults() {
        let settings = load(&[("path", "/aws/credentials")]).unwrap();
        assert_eq!(
            settings,
            Settings {
                path: "/aws/credentials".into(),
                profile: "default".into(),
                force: false,
                kind: FileKind::Credentials,
            }
        );
        let config = load(&[("path", "/aws/config")]).unwrap();
        assert_eq!(config.kind, FileKind::Config);
        let forced = load(&[("path", "/aws/config"), ("file-type", "credentials")]).unwrap();
        assert_eq!(forced.kind, FileKind::Credentials);
        let error = load(&[("path", "/aws/c"), ("file-type", "ini")]).unwrap_err();
        assert!(error.contains("'file-type'"), "{error}");
        assert_eq!(settings.dir(), Path::new("/aws"));
    }

    #[test]
    fn all_given() {
        let settings = load(&[
            ("path", "/aws/sub/creds"),
            ("profile", "ci-bot@acct:1.x+y/z%"),
            ("force", "TRUE"),
        ])
        .unwrap();
        assert_eq!(settings.profile, "ci-bot@acct:1.x+y/z%");
        assert!(settings.force);
        assert_eq!(settings.dir(), Path::new("/aws/sub"));
        assert!(!load(&[("path", "/a/b"), ("force", "false")]).unwrap().force);
    }

    #[test]
    fn path_is_required_and_must_be_a_plain_absolute_file_path() {
        assert!(load(&[]).unwrap_err().contains("'path' is missing"));
        for bad in [
            "",
            "credentials",
            "aws/credentials",
            "/aws/",
            "/",
            "/aws/../etc/x",
            "/aws/./c",
            "/aws/c/.",
            "/aws/..",
        ] {
            let error = load(&[("path", bad)]).unwrap_err();
            assert!(error.contains("setting 'path'"), "{bad}: {error}");
        }
    }

    #[test]
    fn profile_must_be_a_name_the_sdks_read() {
        for bad in ["", "profile ci", "a]b", "a#b"] {
            let error = load(&[("path", "/aws/c"), ("profile", bad)]).unwrap_err();
            assert!(error.contains("setting 'profile'"), "{bad}: {error}");
        }
    }

    #[test]
    fn force_must_be_a_boolean() {
        let error = load(&[("path", "/aws/c"), ("force", "yes")]).unwrap_err();
        assert_eq!(error, "setting 'force' must be true or false, not 'yes'");
    }

    #[test]
    fn lookup_errors_pass_through() {
        let error = Settings::load(|_| Err("store broke".into())).unwrap_err();
        assert_eq!(error, "store broke");
    }
}
