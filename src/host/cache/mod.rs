//! The compiled-component cache: compile each plugin once.
//!
//! Compiling a large component (a Python one is ~18 MB) takes seconds;
//! loading its compiled form takes milliseconds. Entries are keyed by the
//! plugin's sha256 and the engine's compatibility hash (Wasmtime version and
//! settings) and live in a 0700 directory. An entry is Wasmtime's compiled
//! artifact (an ELF file) followed by a keyrot trailer that records the
//! plugin sha256 and engine hash it was compiled for and the artifact's
//! length. Loading compiled code is trusting it, so an entry is used only if
//! the directory and file belong to this user and are writable by nobody
//! else, the trailer is there and its length matches the file (a truncated
//! or extended entry is refused), the trailer names the plugin and engine
//! being loaded (so an entry copied over another's name is refused), and
//! Wasmtime accepts the artifact's headers (its ELF structure, and its own
//! record of the Wasmtime version and settings). Anything else is rebuilt,
//! never loaded blindly. Opening, checking and writing files is
//! [`crate::fsutil`]'s, as for every cache and state file.
//!
//! A valid entry is mapped into memory, not read: Wasmtime pages in only the
//! code a plugin runs, and its initial memory images come straight from the
//! file (copy-on-write). That is what makes a warm start of a 37 MB entry
//! take milliseconds, and it is why there is no digest over the whole
//! artifact any more (computing one meant reading every byte on every
//! start). The trade-off, stated plainly: the checks above catch a truncated
//! entry, a partial write (entries are written to a temp file, synced, then
//! renamed, so one never appears under its final name), a file of another
//! kind, an entry from another plugin, engine or Wasmtime version, and
//! damage to the artifact's headers; they do not catch bytes flipped inside
//! the compiled code by a failing disk. Neither check ever stopped forgery:
//! anyone who can write the directory can write a valid entry. That is why
//! the directory must be private, and why no plugin may be granted write
//! access to it ([`crate::grants::check_private_dirs`]).
//!
//! Finding the entry needs the plugin's sha256, and hashing an 18 MB plugin
//! costs more than the rest of a warm start. So the cache also records, in
//! `seen/`, the sha256 of each plugin file it hashed, with the file's
//! [`FileStamp`] (device, inode, size, mtime, ctime); while the stamp is
//! unchanged the file is not read again. Every write moves a file's ctime
//! and nothing can set it back (short of changing the system clock), and
//! only files left alone for a few seconds are recorded, so a changed file
//! is always hashed again. A record is trusted like an entry (private, or
//! ignored). A pinned plugin uses it only when it names the pinned sha256;
//! otherwise the file is hashed and `--plugin-sha256` checked against the
//! bytes read at that start. That is no weaker than hashing every time: the
//! pin guards against the file changing, which moves its stamp, and what
//! runs on a hit is the entry's code, which only the cache vouches for
//! either way. The worst a wrong record can do is what a wrong entry can
//! do.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

mod seen;

pub(in crate::host) use self::seen::FileStamp;

/// Marks the end of a keyrot cache entry, and its format version.
const MAGIC: &[u8; 8] = b"KEYROTC3";

/// What an entry was compiled from: the plugin's sha256 and the engine's
/// compatibility hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Origin {
    plugin_sha256: [u8; 32],
    engine_hash: u64,
}

/// The trailer after the artifact: origin, artifact length, magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trailer {
    origin: Origin,
    payload_len: u64,
}

impl Trailer {
    const LEN: usize = 32 + 8 + 8 + MAGIC.len();

    fn to_bytes(self) -> [u8; Self::LEN] {
        let mut bytes = [0; Self::LEN];
        bytes[..32].copy_from_slice(&self.origin.plugin_sha256);
        bytes[32..40].copy_from_slice(&self.origin.engine_hash.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[48..].copy_from_slice(MAGIC);
        bytes
    }

    /// `None` if the bytes do not end with the magic.
    fn from_bytes(bytes: &[u8; Self::LEN]) -> Option<Self> {
        if &bytes[48..] != MAGIC {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let mut plugin_sha256 = [0; 32];
        plugin_sha256.copy_from_slice(&bytes[..32]);
        Some(Self {
            origin: Origin {
                plugin_sha256,
                engine_hash: word(32),
            },
            payload_len: word(40),
        })
    }
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

/// The cache as one load sees it: checked once, then looked up and, on a
/// miss, filled.
pub(super) enum Cache {
    /// `--no-cache`.
    Disabled,
    /// The directory is not safe to use; why was logged.
    Unusable,
    /// A private directory.
    Dir(PathBuf),
}

impl Cache {
    /// Checks (or creates, 0700) the directory `mode` names.
    pub(super) fn open(mode: &CacheMode) -> Self {
        match mode {
            CacheMode::Disabled => Cache::Disabled,
            CacheMode::Dir(dir) => match prepare_dir(dir) {
                Ok(()) => Cache::Dir(dir.clone()),
                Err(why) => {
                    tracing::warn!("not using the plugin cache {}: {why}", dir.display());
                    Cache::Unusable
                }
            },
        }
    }

    /// The compiled plugin whose sha256 (hex) is `sha256`, if a valid
    /// entry holds it. A bad entry is logged and treated as missing.
    pub(super) fn lookup(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let Cache::Dir(dir) = self else {
            return None;
        };
        let origin = origin(engine, sha256)?;
        let path = entry_path(dir, sha256, &origin);
        let (file, payload_len) = match open_entry(&path, &origin) {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(
                    "ignoring cache entry {}: {why}; compiling the plugin afresh",
                    path.display()
                );
                return None;
            }
        };
        // SAFETY: Wasmtime maps the file and runs its code. The file is the
        // one just checked (reopened through its descriptor, so nothing can
        // be swapped in under the same name): ours and writable by nobody
        // else (owner and mode checked), complete (trailer and length
        // checked), and compiled by `precompile_component` for this plugin's
        // sha256 and this engine's compatibility hash (trailer checked);
        // Wasmtime checks its own headers and version again. keyrot never
        // modifies an entry in place (see `write_entry`), which the mapping
        // requires.
        let loaded = match fd_path(&file) {
            Some(fd_path) => unsafe { Component::deserialize_file(engine, fd_path) },
            // No /proc or /dev/fd: read the artifact instead (slower; the
            // same checks hold, on the bytes read from the checked file).
            None => match read_payload(&file, payload_len) {
                Ok(bytes) => unsafe { Component::deserialize(engine, bytes) },
                Err(err) => Err(err.into()),
            },
        };
        match loaded {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    "ignoring cache entry {}: Wasmtime refused it ({err:#}); compiling the \
                     plugin afresh",
                    path.display()
                );
                None
            }
        }
    }

    /// Compiles `wasm` (whose sha256 is `sha256`) and stores the result.
    pub(super) fn compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
        label: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let dir = match self {
            Cache::Dir(dir) => dir,
            Cache::Disabled | Cache::Unusable => {
                let why = if matches!(self, Cache::Disabled) {
                    "not cached: --no-cache"
                } else {
                    "not cached: the cache is unusable"
                };
                announce_compile(label, wasm.len(), why);
                return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
            }
        };
        announce_compile(label, wasm.len(), "cached afterwards");
        let payload = engine.precompile_component(wasm)?;
        // SAFETY: just produced by this engine from the plugin's bytes.
        let component = unsafe { Component::deserialize(engine, &payload)? };
        match origin(engine, sha256) {
            Some(origin) => {
                let path = entry_path(dir, sha256, &origin);
                if let Err(err) = write_entry(dir, &path, &origin, &payload) {
                    tracing::warn!(
                        "could not cache the compiled plugin in {}: {err}",
                        dir.display()
                    );
                }
            }
            None => tracing::warn!("not caching the plugin: malformed sha256 {sha256:?}"),
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// The origin of an entry for this plugin (sha256 in hex) and engine.
fn origin(engine: &Engine, sha256: &str) -> Option<Origin> {
    let mut plugin_sha256 = [0; 32];
    hex::decode_to_slice(sha256, &mut plugin_sha256).ok()?;
    Some(Origin {
        plugin_sha256,
        engine_hash: engine_hash(engine),
    })
}

fn entry_path(dir: &Path, sha256: &str, origin: &Origin) -> PathBuf {
    dir.join(format!("{sha256}-{:016x}.cwasm", origin.engine_hash))
}

/// A path that opens exactly this open file, whatever its name points to
/// by then (Wasmtime's component loader takes a path, not a file); `None`
/// where the system offers none.
fn fd_path(file: &fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
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
    crate::fsutil::ensure_private_dir(dir).map_err(|e| e.to_string())
}

/// No compiled plugin is near this; a larger file is not an entry.
const MAX_ENTRY_BYTES: u64 = 4 << 30;

/// The open file of a valid entry compiled from `expected` and its
/// artifact's length, `None` if there is none, or why it is bad. Reads only
/// the trailer, never the artifact.
fn open_entry(path: &Path, expected: &Origin) -> Result<Option<(fs::File, u64)>, String> {
    // Check and load the same open file, never following a symlink, so
    // nothing can be swapped in between the check and the load; never
    // blocking, so a FIFO planted here cannot hang the open.
    let (file, meta) = match crate::fsutil::open_private(path, MAX_ENTRY_BYTES) {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let not_ours = || "not a keyrot cache entry (or from another keyrot version)".to_string();
    let len = meta.len();
    let Some(payload_len) = len.checked_sub(Trailer::LEN as u64) else {
        return Err(not_ours());
    };
    let mut bytes = [0; Trailer::LEN];
    file.read_exact_at(&mut bytes, payload_len)
        .map_err(|e| e.to_string())?;
    // A truncated entry has lost its trailer; one with bytes appended ends
    // in them. Either way the last bytes are not a trailer that counts
    // exactly the bytes before it.
    let trailer = Trailer::from_bytes(&bytes).ok_or_else(not_ours)?;
    if trailer.payload_len != payload_len {
        return Err(format!(
            "truncated or extended: it records {} bytes of compiled code, the file has {}",
            trailer.payload_len, payload_len
        ));
    }
    let origin = trailer.origin;
    if origin.plugin_sha256 != expected.plugin_sha256 {
        return Err(format!(
            "it was compiled from another plugin (sha256 {}), not this one",
            hex::encode(origin.plugin_sha256)
        ));
    }
    if origin.engine_hash != expected.engine_hash {
        return Err("it was compiled for another engine configuration".into());
    }
    Ok(Some((file, payload_len)))
}

/// Reads the artifact of an entry [`open_entry`] accepted, for systems
/// where the open file cannot be reopened by path to be mapped.
fn read_payload(mut file: &fs::File, payload_len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::with_capacity(payload_len as usize);
    file.take(payload_len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != payload_len {
        return Err(std::io::Error::other("the entry shrank while being read"));
    }
    Ok(bytes)
}

/// Writes an entry atomically: a private temp file, synced, then renamed
/// over the final name. An entry is never changed in place, so a mapped one
/// never changes under a running plugin.
fn write_entry(dir: &Path, path: &Path, origin: &Origin, payload: &[u8]) -> std::io::Result<()> {
    let trailer = Trailer {
        origin: *origin,
        payload_len: payload.len() as u64,
    };
    write_atomically(dir, path, &[payload, &trailer.to_bytes()])
}

/// Writes `parts` to `path` in `dir`: a private temp file, synced, then
/// renamed over the final name ([`crate::fsutil::AtomicFile`]).
fn write_atomically(dir: &Path, path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = crate::fsutil::AtomicFile::create(dir, path)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.commit()
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
/// The records of which plugin file had which sha256 (`seen/`) that name
/// a removed entry's plugin go too, and `seen/` itself once empty.
pub fn remove_entries(entries: &[CacheEntry]) -> std::io::Result<u64> {
    let mut freed = 0;
    for entry in entries {
        match fs::remove_file(&entry.path) {
            Ok(()) => freed += entry.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let removed: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.plugin_sha256.as_deref())
        .collect();
    if let Some(dir) = entries.first().and_then(|e| e.path.parent()) {
        seen::forget(dir, &removed);
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn entry_in(dir: &Path) -> PathBuf {
        dir.join("entry.cwasm")
    }

    const ORIGIN: Origin = Origin {
        plugin_sha256: [7; 32],
        engine_hash: 42,
    };

    /// What `Cache::lookup` would hand Wasmtime: the artifact's bytes.
    fn read_entry(path: &Path, expected: &Origin) -> Result<Option<Vec<u8>>, String> {
        Ok(open_entry(path, expected)?.map(|(file, len)| read_payload(&file, len).unwrap()))
    }

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
    fn detects_truncation_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_in(dir.path());
        write_entry(dir.path(), &path, &ORIGIN, b"compiled").unwrap();
        let whole = fs::read(&path).unwrap();
        for cut in [1, Trailer::LEN, whole.len() - 3] {
            fs::write(&path, &whole[..whole.len() - cut]).unwrap();
            let err = read_entry(&path, &ORIGIN).unwrap_err();
            assert!(err.contains("not a keyrot cache entry"), "cut {cut}: {err}");
        }
        // Bytes lost from the artifact, or added to it, with the trailer
        // intact: the recorded length no longer matches.
        let mut shorter = whole.clone();
        shorter.remove(0);
        fs::write(&path, &shorter).unwrap();
        let err = read_entry(&path, &ORIGIN).unwrap_err();
        assert!(err.contains("truncated or extended"), "{err}");
        let mut longer = b"x".to_vec();
        longer.extend_from_slice(&whole);
        fs::write(&path, &longer).unwrap();
        let err = read_entry(&path, &ORIGIN).unwrap_err();
        assert!(err.contains("truncated or extended"), "{err}");
        let mut appended = whole.clone();
        appended.extend_from_slice(b"junk");
        fs::write(&path, &appended).unwrap();
        let err = read_entry(&path, &ORIGIN).unwrap_err();
        assert!(err.contains("not a keyrot cache entry"), "{err}");

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
    }

    /// The smallest component: just the header.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn a_stored_component_is_mapped_back_and_a_damaged_one_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&CacheMode::Dir(dir.path().to_path_buf()));
        let engine = Engine::default();
        let sha = "ab".repeat(32);
        assert!(cache.lookup(&engine, &sha).is_none(), "empty cache");
        let (_, outcome) = cache
            .compile(&engine, EMPTY_COMPONENT, &sha, "empty")
            .unwrap();
        assert_eq!(outcome, CacheOutcome::Compiled);
        // Wasmtime maps the entry, trailer and all.
        assert!(cache.lookup(&engine, &sha).is_some());
        // Another plugin's name finds nothing.
        assert!(cache.lookup(&engine, &"cd".repeat(32)).is_none());

        // Damage to the artifact's ELF header: trailer and length still
        // check out, Wasmtime refuses it, and the lookup misses.
        let path = list_entries(dir.path()).unwrap().remove(0).path;
        let mut bytes = fs::read(&path).unwrap();
        bytes[1] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(open_entry(&path, &origin(&engine, &sha).unwrap()).is_ok());
        assert!(cache.lookup(&engine, &sha).is_none());

        // The entry copied over another plugin's name is refused.
        cache
            .compile(&engine, EMPTY_COMPONENT, &sha, "empty")
            .unwrap();
        let other = "cd".repeat(32);
        let other_path = entry_path(dir.path(), &other, &origin(&engine, &other).unwrap());
        fs::copy(&path, &other_path).unwrap();
        assert!(cache.lookup(&engine, &other).is_none());
        assert!(cache.lookup(&engine, &sha).is_some());
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
