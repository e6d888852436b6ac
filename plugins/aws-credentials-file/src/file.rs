//! The filesystem side, with `std::fs` only: under wasm32-wasip2 it resolves
//! absolute paths against the directories keyrot preopens (`--allow-dir`),
//! and natively it runs the unit tests in a scratch directory.
//!
//! An existing file is rewritten in place, so it keeps its inode: its mode,
//! owner, ACLs and hard links (WASI has no `chmod` or `chown`, so a file
//! renamed over it would get the host's umask and keyrot's user instead).
//! The previous content is first written to a synced backup beside it,
//! which is removed once the new content is synced; if writing fails the
//! previous content is put back, and if even that fails the error names
//! the backup. A new file is created atomically: written to a temporary
//! file beside it, synced, renamed, and the directory synced. Either way
//! the grant must be the directory, not just the file.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
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
/// refused: the file would be rewritten through it, somewhere the setting
/// does not name.
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

/// Proves an existing `path` can be opened for writing (without changing
/// it), which rewriting it in place needs.
pub fn probe_writable(path: &Path) -> Result<(), String> {
    match OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot write {} ({e})", path.display())),
    }
}

/// Writes `content` to `path`. `previous` is the file's current content,
/// or `None` if it does not exist: an existing file is rewritten in place
/// (keeping its mode and owner), a new one is created atomically. On
/// failure the file is as it was, or the error says where its previous
/// content is.
pub fn replace(path: &Path, previous: Option<&str>, content: &str) -> Result<(), String> {
    match previous {
        None => create(path, content),
        Some(previous) => rewrite(path, previous, content),
    }
}

/// Creates `path` atomically: temporary file, sync, rename, directory sync.
fn create(path: &Path, content: &str) -> Result<(), String> {
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
    // Durability only: the file is in place, and failing now would make
    // keyrot delete a key the file already holds.
    let _ = sync_dir(path);
    Ok(())
}

/// Rewrites an existing `path` in place, with a synced backup of
/// `previous` beside it while it does.
fn rewrite(path: &Path, previous: &str, content: &str) -> Result<(), String> {
    let (backup, mut file) = create_temp(path, "bak")?;
    let saved = file
        .write_all(previous.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    // Durability of the backup's name only; its content is synced.
    let _ = sync_dir(path);
    if let Err(e) = saved {
        let _ = fs::remove_file(&backup);
        return Err(format!(
            "cannot back up {} before rewriting it: {e}",
            path.display()
        ));
    }
    let mut target = match OpenOptions::new().write(true).open(path) {
        Ok(target) => target,
        Err(e) => {
            let _ = fs::remove_file(&backup);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
    };
    if let Err(e) = overwrite(&mut target, content) {
        return Err(match overwrite(&mut target, previous) {
            Ok(()) => {
                let _ = fs::remove_file(&backup);
                format!(
                    "cannot replace {}: {e}; it holds its previous content again",
                    path.display()
                )
            }
            Err(_) => format!(
                "cannot replace {}: {e}; its previous content is in {}",
                path.display(),
                backup.display()
            ),
        });
    }
    drop(target);
    // The new content is synced: the backup has done its job.
    let _ = fs::remove_file(&backup);
    let _ = sync_dir(path);
    Ok(())
}

/// Puts `content` at the start of `file`, cuts what follows, and syncs.
fn overwrite(file: &mut File, content: &str) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(content.as_bytes())?;
    file.set_len(content.len() as u64)?;
    file.sync_all()
}

/// Syncs the directory holding `path`, so a rename or removal in it is on
/// disk.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(parent(path))?.sync_all()
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
        replace(&path, None, "[a]\nlonger\n").unwrap();
        assert_eq!(read(&path), Ok(Some("[a]\nlonger\n".into())));
        replace(&path, Some("[a]\nlonger\n"), "[b]\r\n").unwrap();
        assert_eq!(
            read(&path),
            Ok(Some("[b]\r\n".into())),
            "cut to the new length"
        );
        assert_eq!(scratch.entries(), ["credentials"]);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_file_keeps_its_inode_mode_and_owner() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let scratch = Scratch::new();
        let path = scratch.0.join("credentials");
        fs::write(&path, "[a]\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before = fs::metadata(&path).unwrap();
        replace(&path, Some("[a]\n"), "[b]\n").unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(after.mode() & 0o7777, 0o640);
        assert_eq!(
            (after.ino(), after.uid(), after.gid()),
            (before.ino(), before.uid(), before.gid())
        );
        assert_eq!(read(&path), Ok(Some("[b]\n".into())));
        assert_eq!(scratch.entries(), ["credentials"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temp_file() {
        let scratch = Scratch::new();
        // Renaming a file over a non-empty directory fails.
        let path = scratch.0.join("credentials");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        let error = replace(&path, None, "[a]\n").unwrap_err();
        assert!(error.starts_with("cannot replace"), "{error}");
        assert_eq!(scratch.entries(), ["credentials"]);
    }

    #[test]
    fn a_file_that_cannot_be_written_is_left_alone_without_a_backup() {
        let scratch = Scratch::new();
        // A directory cannot be opened for writing.
        let path = scratch.0.join("credentials");
        fs::create_dir(&path).unwrap();
        assert!(probe_writable(&path).is_err());
        let error = replace(&path, Some("[a]\n"), "[b]\n").unwrap_err();
        assert!(error.starts_with("cannot write"), "{error}");
        assert_eq!(scratch.entries(), ["credentials"]);
        probe_writable(&scratch.0.join("missing")).unwrap();
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
