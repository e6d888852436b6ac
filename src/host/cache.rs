//! The compiled-component cache: compile each plugin once.
//!
//! Compiling a large component (a Python one is ~18 MB) takes seconds;
//! loading its compiled form takes milliseconds. Entries are keyed by the
//! plugin's sha256 and the engine's compatibility hash (Wasmtime version and
//! settings), live in a 0700 directory, and record in their header the
//! plugin sha256 and engine hash they were compiled for, under a digest that
//! covers header and payload. Loading compiled code is trusting it, so an
//! entry is used only if the directory and file belong to this user, are
//! writable by nobody else, the digest matches, and the header names the
//! plugin and engine being loaded (so an entry copied over another's name is
//! refused); anything else is rebuilt, never loaded blindly.
//!
//! The digest detects accidents, not forgery: anyone who can write the
//! directory can write a valid entry. That is why the directory must be
//! private, and why no plugin may be granted write access to it
//! ([`crate::grants::check_private_dirs`]).

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a keyrot cache entry, and its format version.
const MAGIC: &[u8; 8] = b"KEYROTC2";

/// What an entry was compiled from: the plugin's sha256 and the engine's
/// compatibility hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Origin {
    plugin_sha256: [u8; 32],
    engine_hash: u64,
}

impl Origin {
    const LEN: usize = 32 + 8;

    fn to_bytes(self) -> [u8; Self::LEN] {
        let mut bytes = [0; Self::LEN];
        bytes[..32].copy_from_slice(&self.plugin_sha256);
        bytes[32..].copy_from_slice(&self.engine_hash.to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut plugin_sha256 = [0; 32];
        plugin_sha256.copy_from_slice(&bytes[..32]);
        let mut hash = [0; 8];
        hash.copy_from_slice(&bytes[32..Self::LEN]);
        Self {
            plugin_sha256,
            engine_hash: u64::from_le_bytes(hash),
        }
    }
}

/// The entry's digest: over its origin and its payload.
fn entry_digest(origin: &Origin, payload: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(origin.to_bytes());
    hasher.update(payload);
    hasher.finalize().into()
}

/// Where compiled plugins are kept, if anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheMode {
    /// Always compile (`--no-cache`).
    Disabled,
    /// Use this directory.
    Dir(PathBuf),
}

impl CacheMode {
    /// `KEYROT_CACHE_DIR`, else `$XDG_CACHE_HOME/keyrot`, else
    /// `~/.cache/keyrot`; disabled if none can be found.
    pub fn user_default() -> Self {
        crate::dirs::cache_dir().map_or(CacheMode::Disabled, CacheMode::Dir)
    }
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid cache entry.
    Hit,
    /// Compiled and stored (there was no usable entry).
    Compiled,
    /// Compiled; caching is off or the directory is unusable.
    Uncached,
}

/// Loads the compiled form of `wasm` from the cache, or compiles it (and
/// stores the result).
pub(super) fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    sha256: &str,
    mode: &CacheMode,
    label: &str,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let dir = match mode {
        CacheMode::Dir(dir) => match prepare_dir(dir) {
            Ok(()) => dir,
            Err(why) => {
                tracing::warn!("not using the plugin cache {}: {why}", dir.display());
                announce_compile(label, wasm.len(), "not cached: the cache is unusable");
                return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
            }
        },
        CacheMode::Disabled => {
            announce_compile(label, wasm.len(), "not cached: --no-cache");
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
        }
    };
    let origin = Origin {
        plugin_sha256: {
            let mut bytes = [0; 32];
            // The caller hashed the file already; hash again only if its hex
            // is somehow malformed.
            if hex::decode_to_slice(sha256, &mut bytes).is_err() {
                bytes = Sha256::digest(wasm).into();
            }
            bytes
        },
        engine_hash: engine_hash(engine),
    };
    let entry = dir.join(format!("{sha256}-{:016x}.cwasm", origin.engine_hash));
    match read_entry(&entry, &origin) {
        Ok(Some(payload)) => {
            // SAFETY: the payload is what `precompile_component` produced for
            // this plugin and engine configuration: the file is ours (owner
            // and mode checked), unmodified (digest checked), and its header
            // names this plugin's sha256 and this engine's compatibility
            // hash. Wasmtime checks the version again.
            match unsafe { Component::deserialize(engine, &payload) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(err) => tracing::debug!("cache entry {} unusable: {err}", entry.display()),
            }
        }
        Ok(None) => {}
        Err(why) => tracing::warn!(
            "ignoring cache entry {}: {why}; compiling the plugin afresh",
            entry.display()
        ),
    }
    announce_compile(label, wasm.len(), "cached afterwards");
    let payload = engine.precompile_component(wasm)?;
    // SAFETY: just produced by this engine from the plugin's bytes.
    let component = unsafe { Component::deserialize(engine, &payload)? };
    if let Err(err) = write_entry(dir, &entry, &origin, &payload) {
        tracing::warn!(
            "could not cache the compiled plugin in {}: {err}",
            dir.display()
        );
    }
    Ok((component, CacheOutcome::Compiled))
}

/// Components from this size on take seconds to compile.
const SLOW_COMPILE_BYTES: usize = 1 << 20;

/// Says so before a compile that takes seconds, instead of a silent pause.
fn announce_compile(label: &str, bytes: usize, then: &str) {
    if bytes < SLOW_COMPILE_BYTES {
        return;
    }
    let mb = bytes as f64 / 1e6;
    // About half a second per MB on a 2-core machine (the README's table).
    let secs = (mb * 0.5).ceil().max(1.0);
    tracing::info!("compiling {label} ({mb:.1} MB) once, ~{secs:.0} s; {then}");
}

/// The engine's compatibility hash, as a number for file names.
fn engine_hash(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// Creates the directory 0700, or checks an existing one is ours alone.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory (a symlink is not accepted)".into());
    }
    check_private(&meta, "directory")
}

/// Owned by this user and writable by nobody else.
fn check_private(meta: &fs::Metadata, what: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(format!(
            "the {what} belongs to another user (uid {})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("the {what} is writable by other users"));
    }
    Ok(())
}

/// The payload of a valid entry compiled from `expected`, `None` if there
/// is none, or why it is bad.
fn read_entry(path: &Path, expected: &Origin) -> Result<Option<Vec<u8>>, String> {
    // Check and read the same open file, never following a symlink, so
    // nothing can be swapped in between the check and the read; O_NONBLOCK
    // so a FIFO planted here cannot block the open.
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    check_private(&meta, "file")?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let header = MAGIC.len() + Origin::LEN + 32;
    if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a keyrot cache entry (or from another keyrot version)".into());
    }
    let (origin, rest) = bytes[MAGIC.len()..].split_at(Origin::LEN);
    let (digest, payload) = rest.split_at(32);
    let origin = Origin::from_bytes(origin);
    if entry_digest(&origin, payload) != digest {
        return Err("corrupted (digest mismatch)".into());
    }
    if origin.plugin_sha256 != expected.plugin_sha256 {
        return Err(format!(
            "it was compiled from another plugin (sha256 {}), not this one",
            hex::encode(origin.plugin_sha256)
        ));
    }
    if origin.engine_hash != expected.engine_hash {
        return Err("it was compiled for another engine configuration".into());
    }
    Ok(Some(payload.to_vec()))
}

/// Writes an entry atomically: a private temp file, then a rename.
fn write_entry(dir: &Path, path: &Path, origin: &Origin, payload: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand_suffix()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&origin.to_bytes())?;
        file.write_all(&entry_digest(origin, payload))?;
        file.write_all(payload)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn rand_suffix() -> u64 {
    let mut hasher = DefaultHasher::new();
    std::time::SystemTime::now().hash(&mut hasher);
    std::thread::current().id().hash(&mut hasher);
    hasher.finish()
}

/// One compiled plugin in the cache directory, for `keyrot cache list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheEntry {
    /// The entry's file.
    pub path: PathBuf,
    /// The sha256 of the plugin it was compiled from, if the file name
    /// says (`SHA256-ENGINE.cwasm`).
    pub plugin_sha256: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    #[serde(skip)]
    pub modified: std::time::SystemTime,
    /// Seconds since it was written.
    pub age_secs: u64,
}

/// The entries in `dir`, oldest first. A missing directory has none.
/// Only regular `*.cwasm` files directly in `dir` count (never followed
/// symlinks), plus temp files an interrupted write left behind.
pub fn list_entries(dir: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let now = std::time::SystemTime::now();
    let mut entries = Vec::new();
    for item in read {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let leftover = name.starts_with(".tmp-");
        if !leftover && !name.ends_with(".cwasm") {
            continue;
        }
        let meta = fs::symlink_metadata(item.path())?;
        if !meta.is_file() {
            continue;
        }
        let plugin_sha256 = name
            .strip_suffix(".cwasm")
            .and_then(|stem| stem.split('-').next())
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string);
        let modified = meta.modified()?;
        entries.push(CacheEntry {
            path: item.path(),
            plugin_sha256,
            size: meta.len(),
            modified,
            age_secs: now.duration_since(modified).unwrap_or_default().as_secs(),
        });
    }
    entries.sort_by_key(|e| e.modified);
    Ok(entries)
}

/// Removes these entries (from [`list_entries`]); returns the bytes freed.
/// An entry already gone counts as removed.
pub fn remove_entries(entries: &[CacheEntry]) -> std::io::Result<u64> {
    let mut freed = 0;
    for entry in entries {
        match fs::remove_file(&entry.path) {
            Ok(()) => freed += entry.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_in(dir: &Path) -> PathBuf {
        dir.join("entry.cwasm")
    }

    const ORIGIN: Origin = Origin {
        plugin_sha256: [7; 32],
        engine_hash: 42,
    };

    #[test]
    fn round_trips_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        write_entry(dir.path(), &entry_in(dir.path()), &ORIGIN, b"compiled").unwrap();
        assert_eq!(
            read_entry(&entry_in(dir.path()), &ORIGIN).unwrap().unwrap(),
            b"compiled"
        );
    }

    #[test]
    fn detects_corruption_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_in(dir.path());
        write_entry(dir.path(), &path, &ORIGIN, b"compiled").unwrap();
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(
            read_entry(&path, &ORIGIN)
                .unwrap_err()
                .contains("corrupted")
        );

        fs::write(&path, b"\0asm junk").unwrap();
        assert!(
            read_entry(&path, &ORIGIN)
                .unwrap_err()
                .contains("not a keyrot cache entry")
        );

        write_entry(dir.path(), &path, &ORIGIN, b"compiled").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            read_entry(&path, &ORIGIN)
                .unwrap_err()
                .contains("writable by other users")
        );
    }

    #[test]
    fn an_entry_from_another_plugin_or_engine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_in(dir.path());
        write_entry(dir.path(), &path, &ORIGIN, b"compiled").unwrap();
        let other_plugin = Origin {
            plugin_sha256: [8; 32],
            ..ORIGIN
        };
        let err = read_entry(&path, &other_plugin).unwrap_err();
        assert!(err.contains("another plugin"), "{err}");
        let other_engine = Origin {
            engine_hash: 43,
            ..ORIGIN
        };
        let err = read_entry(&path, &other_engine).unwrap_err();
        assert!(err.contains("another engine"), "{err}");
        // Rewriting the header to claim another origin breaks the digest.
        let mut bytes = fs::read(&path).unwrap();
        bytes[MAGIC.len()] = 8;
        fs::write(&path, &bytes).unwrap();
        let err = read_entry(&path, &other_plugin).unwrap_err();
        assert!(err.contains("corrupted"), "{err}");
    }

    #[test]
    fn a_fifo_entry_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_in(dir.path());
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(
            read_entry(&path, &ORIGIN)
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn a_symlinked_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.cwasm");
        write_entry(dir.path(), &real, &ORIGIN, b"compiled").unwrap();
        let link = entry_in(dir.path());
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(read_entry(&link, &ORIGIN).is_err());
    }

    #[test]
    fn a_missing_entry_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_entry(&entry_in(dir.path()), &ORIGIN)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn lists_and_removes_entries_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ab".repeat(32);
        let entry = dir.path().join(format!("{sha}-0123456789abcdef.cwasm"));
        write_entry(dir.path(), &entry, &ORIGIN, b"compiled").unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        std::os::unix::fs::symlink(&entry, dir.path().join("link.cwasm")).unwrap();
        let entries = list_entries(dir.path()).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].plugin_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(entries[0].size, fs::metadata(&entry).unwrap().len());
        assert_eq!(remove_entries(&entries).unwrap(), entries[0].size);
        assert!(!entry.exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(
            list_entries(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_a_shared_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            prepare_dir(dir.path())
                .unwrap_err()
                .contains("writable by other users")
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        assert!(prepare_dir(&link).unwrap_err().contains("symlink"));
        let fresh = dir.path().join("a/b");
        prepare_dir(&fresh).unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }
}
