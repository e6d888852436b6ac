//! keyrot's own files, handled one safe way: the compiled-code cache, the
//! OCI store, the signature cache (and, next, the journal).
//!
//! Whoever can write one of these files chooses what keyrot loads, runs or
//! believes, so they live in private directories and are trusted only when
//! private:
//!
//! - [`open_private`] / [`read_private`] open without following a symlink
//!   (`O_NOFOLLOW`) and without blocking (`O_NONBLOCK`: a FIFO planted under
//!   the name cannot hang keyrot), then check the *opened* file, not the
//!   path: a regular file, owned by this user, writable by nobody else, and
//!   no larger than the caller's cap.
//! - [`write_atomic`] / [`AtomicFile`] write a fresh temp file (`O_EXCL`,
//!   `O_NOFOLLOW`, 0600) in the same directory, fsync it, rename it over the
//!   final name and fsync the directory: a crash leaves the old file or the
//!   new one, never half of one, and a symlink planted under either name is
//!   replaced, never followed (rename replaces the link itself).
//! - [`ensure_private_dir`] creates a directory 0700, or checks an existing
//!   one is a real directory (not a symlink), ours, and not writable by
//!   group or others.
//!
//! Errors are `io::Error`s; a file that exists but is not safe to trust
//! has kind [`io::ErrorKind::PermissionDenied`] (or `InvalidData` when it
//! is too large) and says why, so callers can tell "absent"
//! ([`io::ErrorKind::NotFound`]) from "refused".

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why an existing file or directory is not trusted.
fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

/// Checks metadata of something keyrot trusts: owned by this user and
/// writable by nobody else. `what` names it in the error ("file",
/// "directory").
pub fn check_private(meta: &fs::Metadata, what: &str) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(refused(format!(
            "the {what} belongs to another user (uid {}, not {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "the {what} is writable by other users (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Opens `path` for reading, never following a symlink at its last
/// component and never blocking, and checks the opened file is regular,
/// private ([`check_private`]) and at most `max_bytes` long. Returns the
/// file and its metadata; a missing file is `NotFound`.
pub fn open_private(path: &Path, max_bytes: u64) -> io::Result<(File, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW on a symlink fails with ELOOP: say what it means.
            if e.raw_os_error() == Some(libc::ELOOP) {
                refused("it is a symlink, which keyrot never follows here".into())
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    check_private(&meta, "file")?;
    if meta.len() > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {max_bytes} bytes allowed"),
        ));
    }
    Ok((file, meta))
}

/// Reads a private file whole ([`open_private`]'s checks), at most
/// `max_bytes`; a file that grows past the cap while being read is
/// refused too.
pub fn read_private(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let (file, meta) = open_private(path, max_bytes)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {max_bytes} bytes allowed"),
        ));
    }
    Ok(bytes)
}

/// Creates `dir` (and missing parents) 0700, or checks an existing one:
/// a directory, not a symlink, ours, not writable by group or others.
/// Only `dir` itself is checked; callers check each level they own.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Made 0700 (a umask can only take bits away). No chmod after:
            // it would follow a symlink planted in between, and the check
            // below refuses one anyway.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(refused(
            "not a directory (a symlink is not accepted)".into(),
        ));
    }
    check_private(&meta, "directory")
}

/// [`ensure_private_dir`] for `base` and every directory from it down to
/// `base/rel`, so nobody else can swap a level in between.
/// An error names the directory at fault.
pub fn ensure_private_tree(base: &Path, rel: &Path) -> io::Result<PathBuf> {
    let named = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
    };
    ensure_private_dir(base).map_err(named(base))?;
    let mut dir = base.to_path_buf();
    for part in rel.components() {
        dir.push(part);
        ensure_private_dir(&dir).map_err(named(&dir))?;
    }
    Ok(dir)
}

/// Writes `bytes` to `path` (in `dir`) atomically and durably: see
/// [`AtomicFile`].
pub fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(dir, path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file being written under a temp name, to appear under its final name
/// only when [`AtomicFile::commit`] has synced it; dropped uncommitted, the
/// temp file is removed. The temp file is created fresh (`O_EXCL`,
/// `O_NOFOLLOW`, 0600) in the final file's directory.
pub struct AtomicFile {
    file: File,
    dir: PathBuf,
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing what will become `path`, which must be in `dir`.
    pub fn create(dir: &Path, path: &Path) -> io::Result<AtomicFile> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // A unique name: one process may write several files of one name
        // at once (a fleet's threads); O_EXCL refuses anything already there.
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{:016x}",
            std::process::id(),
            unique()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        Ok(AtomicFile {
            file,
            dir: dir.to_path_buf(),
            tmp,
            path: path.to_path_buf(),
            committed: false,
        })
    }

    /// Sets the file's permissions (0600 until then), before it appears.
    pub fn set_permissions(&self, permissions: fs::Permissions) -> io::Result<()> {
        self.file.set_permissions(permissions)
    }

    /// Syncs the file, renames it over the final name and syncs the
    /// directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        File::open(&self.dir)?.sync_all()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A number unlikely to repeat, for temp names (O_EXCL catches a repeat).
fn unique() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_atomically_and_reads_back_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        write_atomic(dir.path(), &path, b"one").unwrap();
        write_atomic(dir.path(), &path, b"two").unwrap();
        assert_eq!(read_private(&path, 10).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // The cap holds.
        assert_eq!(
            read_private(&path, 2).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Absent is NotFound, not a refusal.
        assert_eq!(
            read_private(&dir.path().join("nope"), 10)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut file = AtomicFile::create(dir.path(), &path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("entry");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = read_private(&link, 100).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // Writing replaces the link, never writes through it.
        write_atomic(dir.path(), &link, b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_private(&path, 100).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(dir.path(), &path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = read_private(&path, 100).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }

    #[test]
    fn private_directories_are_made_or_checked() {
        let dir = tempfile::tempdir().unwrap();
        let made = ensure_private_tree(dir.path(), Path::new("a/b")).unwrap();
        assert_eq!(made, dir.path().join("a/b"));
        assert_eq!(fs::metadata(&made).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&made, fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_private_dir(&made).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("a"), &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // A directory of another user: as root, make one; unprivileged,
        // /usr is one (root's).
        let theirs = if unsafe { libc::geteuid() } == 0 {
            let theirs = dir.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            theirs
        } else {
            PathBuf::from("/usr")
        };
        let err = ensure_private_dir(&theirs).unwrap_err();
        assert!(err.to_string().contains("another user"), "{err}");
    }
}
