//! The filesystem side, with `std::fs` only: under wasm32-wasip2 it resolves
//! absolute paths against the directories keyrot preopens (`--allow-dir`),
//! and natively it runs the unit tests in a scratch directory.
//!
//! The file is replaced atomically: the new content goes to a temporary file
//! beside it, is synced, and is renamed over the target, so a reader (or a
//! crash) sees the old file or the new one, never half of either. That is
//! why the grant must be the directory, not just the file.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file's text, or `None` if it does not exist yet.
pub fn read(path: &Path) -> Result<Option<String>, String> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8 text", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Fails if `path` exists but is not a regular file. A symbolic link is
/// refused because the rename would replace the link itself, silently
/// detaching whatever it pointed to.
pub fn check_target(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link, which replacing the file would break: \
             set path to the file it points to, inside a granted directory",
            path.display()
        )),
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot inspect {}: {e}", path.display())),
    }
}

/// Proves a temporary file can be created (and removed) beside `path`,
/// which is what [`replace`] needs.
pub fn probe_dir(path: &Path) -> Result<(), String> {
    let dir = parent(path);
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "directory {} not found in the sandbox: grant it with \
                 --allow-dir HOST_DIR:{} (and make sure HOST_DIR exists)",
                dir.display(),
                dir.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot open directory {} ({e}): is it granted with --allow-dir?",
                dir.display()
            ));
        }
    }
    let (probe, file) = create_temp(path, "probe")?;
    drop(file);
    fs::remove_file(&probe)
        .map_err(|e| format!("cannot remove probe file {}: {e}", probe.display()))
}

/// Atomically replaces `path` with `content` (creating it if needed). On any
/// failure the temporary file is removed and `path` is as it was.
pub fn replace(path: &Path, content: &str) -> Result<(), String> {
    let (temp, mut file) = create_temp(path, "tmp")?;
    let written = file
        .write_all(content.as_bytes())
        .and_then(|()| file.sync_all());
    // Closed before the rename: some hosts cannot rename an open file.
    drop(file);
    let result = written.and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot replace {}: {e}", path.display()));
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Creates `.NAME.keyrot-RANDOM.SUFFIX` beside `path`, never reusing an
/// existing name.
fn create_temp(path: &Path, suffix: &str) -> Result<(PathBuf, File), String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let mut last_error = None;
    // A few tries: a clash with a leftover name is unlikely, not impossible.
    for _ in 0..3 {
        let temp = parent(path).join(format!(".{name}.keyrot-{:016x}.{suffix}", random()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => {
                return Err(format!(
                    "cannot create a file in {} ({e}): the directory must be writable",
                    parent(path).display()
                ));
            }
        }
    }
    Err(format!(
        "cannot create a temporary file in {}: {}",
        parent(path).display(),
        last_error.map_or_else(String::new, |e| e.to_string())
    ))
}

/// 64 unpredictable bits for a file name: `RandomState` is seeded from the
/// OS (wasi:random in the sandbox), mixed with the clock.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    if let Ok(elapsed) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("keyrot-acf-test-{:016x}", random()));
            fs::create_dir(&dir).unwrap();
            Self(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replace_creates_then_overwrites_leaving_no_temp_files() {
        let scratch = Scratch::new();
        let path = scratch.0.join("credentials");
        assert_eq!(read(&path), Ok(None));
        replace(&path, "[a]\n").unwrap();
        assert_eq!(read(&path), Ok(Some("[a]\n".into())));
        replace(&path, "[b]\r\n").unwrap();
        assert_eq!(read(&path), Ok(Some("[b]\r\n".into())));
        assert_eq!(scratch.entries(), ["credentials"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temp_file() {
        let scratch = Scratch::new();
        // Renaming a file over a non-empty directory fails.
        let path = scratch.0.join("credentials");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        let error = replace(&path, "[a]\n").unwrap_err();
        assert!(error.starts_with("cannot replace"), "{error}");
        assert_eq!(scratch.entries(), ["credentials"]);
    }

    #[test]
    fn probe_leaves_nothing_behind_and_names_a_missing_directory() {
        let scratch = Scratch::new();
        probe_dir(&scratch.0.join("credentials")).unwrap();
        assert!(scratch.entries().is_empty());
        let error = probe_dir(&scratch.0.join("missing/credentials")).unwrap_err();
        assert!(error.contains("--allow-dir"), "{error}");
    }

    #[test]
    fn check_target_refuses_directories_and_links() {
        let scratch = Scratch::new();
        let file = scratch.0.join("credentials");
        check_target(&file).unwrap();
        fs::write(&file, "").unwrap();
        check_target(&file).unwrap();
        assert!(
            check_target(&scratch.0)
                .unwrap_err()
                .contains("not a regular file")
        );
        #[cfg(unix)]
        {
            let link = scratch.0.join("link");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert!(check_target(&link).unwrap_err().contains("symbolic link"));
        }
    }

    #[test]
    fn read_refuses_binary() {
        let scratch = Scratch::new();
        let path = scratch.0.join("credentials");
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read(&path).unwrap_err().contains("not UTF-8"));
    }
}
