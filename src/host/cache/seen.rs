//! What the cache remembers of plugin files it hashed: in `seen/`, a small
//! record per file (named by device and inode) of its [`FileStamp`] and
//! sha256, so a warm start need not read an 18 MB plugin again while the
//! file is unchanged (see the parent module's docs for why that is safe).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cache, prepare_dir, write_atomically};

impl Cache {
    /// The sha256 a plugin file with exactly this stamp was found to have,
    /// if this cache hashed it before (see [`FileStamp`]).
    pub(in crate::host) fn known_sha256(&self, stamp: &FileStamp) -> Option<String> {
        let Cache::Dir(dir) = self else {
            return None;
        };
        let path = dir.join(SEEN_DIR).join(stamp.file_name());
        match read_seen(&path) {
            Ok(Some((seen, sha256))) if seen == *stamp => Some(sha256),
            Ok(_) => None,
            Err(why) => {
                tracing::debug!("ignoring {}: {why}", path.display());
                None
            }
        }
    }

    /// Records that the plugin file with this stamp has this sha256, if
    /// the stamp is settled (see [`FileStamp::settled`]). Best effort.
    pub(in crate::host) fn remember_sha256(
        &self,
        stamp: &FileStamp,
        sha256: &str,
        hashing_began: SystemTime,
    ) {
        let Cache::Dir(dir) = self else {
            return;
        };
        if !stamp.settled(hashing_began) {
            return;
        }
        let seen = dir.join(SEEN_DIR);
        let result = prepare_dir(&seen)
            .map_err(std::io::Error::other)
            .and_then(|()| {
                let text = format!("{} {sha256}\n", stamp.to_text());
                write_atomically(&seen, &seen.join(stamp.file_name()), &[text.as_bytes()])
            });
        if let Err(err) = result {
            tracing::debug!(
                "could not record the plugin's sha256 in {}: {err}",
                seen.display()
            );
        }
    }
}

/// Where [`Cache::remember_sha256`] keeps what it knows, one small file per
/// plugin file (named by device and inode).
const SEEN_DIR: &str = "seen";

/// What identifies one version of a plugin file without reading it: its
/// device and inode, size, and modification and change times. Any write
/// to a file moves its change time (ctime) to the current time, and no
/// call can set ctime back, so a file whose stamp is unchanged since it
/// was hashed still has that hash. That lets a warm start skip hashing an
/// 18 MB plugin (~14 ms), pinned or not (see `Plugin::load`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::host) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How long a file must have been left alone before its stamp is trusted:
/// file times come from a clock that advances in ticks (milliseconds on
/// Linux, up to 2 s on some file systems), so a write in the same tick as
/// the hash could leave the stamp unchanged. (git calls this "racy".)
const SETTLE: Duration = Duration::from_secs(2);

impl FileStamp {
    /// The stamp of an open file.
    pub(in crate::host) fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file was last changed well before `hashing_began`, so
    /// that any later change is certain to give it another stamp.
    fn settled(&self, hashing_began: SystemTime) -> bool {
        let Ok(began) = hashing_began.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let latest = self.mtime.max(self.ctime);
        let Ok(secs) = u64::try_from(latest.0) else {
            return false;
        };
        let changed = Duration::new(secs, latest.1.clamp(0, 999_999_999) as u32);
        changed + SETTLE < began
    }

    fn file_name(&self) -> String {
        format!("{:x}-{:x}", self.dev, self.ino)
    }

    fn to_text(self) -> String {
        format!(
            "{} {} {} {}.{} {}.{}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    fn from_text(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let mut number = || words.next()?.parse::<u64>().ok();
        let (dev, ino, size) = (number()?, number()?, number()?);
        let mut time = || {
            let (secs, nanos) = words.next()?.split_once('.')?;
            Some((secs.parse().ok()?, nanos.parse().ok()?))
        };
        let (mtime, ctime) = (time()?, time()?);
        Some(Self {
            dev,
            ino,
            size,
            mtime,
            ctime,
        })
    }
}

/// The stamp and sha256 a `seen` file records, `None` if there is none,
/// or why it is bad. Trusted like an entry: ours and private, or ignored.
fn read_seen(path: &Path) -> Result<Option<(FileStamp, String)>, String> {
    let bytes = match crate::fsutil::read_private(path, 512) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let text = String::from_utf8(bytes).map_err(|_| "not a record of a plugin's sha256")?;
    let (stamp, sha256) = text
        .trim_end()
        .rsplit_once(' ')
        .ok_or("not a record of a plugin's sha256")?;
    let stamp = FileStamp::from_text(stamp).ok_or("not a record of a plugin's sha256")?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not a record of a plugin's sha256".into());
    }
    Ok(Some((stamp, sha256.to_ascii_lowercase())))
}

/// Removes the `seen` records that name one of these sha256s (best effort:
/// a record left behind only points at a missing entry).
pub(super) fn forget(cache: &Path, sha256s: &[&str]) {
    let seen = &cache.join(SEEN_DIR);
    let Ok(records) = fs::read_dir(seen) else {
        return;
    };
    for record in records.flatten() {
        let path = record.path();
        let named = match read_seen(&path) {
            Ok(Some((_, sha256))) => sha256s.contains(&sha256.as_str()),
            Ok(None) => false,
            // Not a valid record (never trusted): nothing keeps it.
            Err(_) => true,
        };
        if named {
            let _ = fs::remove_file(&path);
        }
    }
    // Only succeeds when empty.
    let _ = fs::remove_dir(seen);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::CacheMode;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remembers_a_settled_files_sha256_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&CacheMode::Dir(dir.path().join("cache")));
        let plugin = dir.path().join("plugin.wasm");
        fs::write(&plugin, b"version 1").unwrap();
        let stamp = |path: &Path| FileStamp::of(&fs::metadata(path).unwrap());
        let sha = "ab".repeat(32);

        // Just written: not settled, so not remembered.
        cache.remember_sha256(&stamp(&plugin), &sha, SystemTime::now());
        assert_eq!(cache.known_sha256(&stamp(&plugin)), None);
        // Hashed well after its last change: remembered.
        let later = SystemTime::now() + SETTLE + Duration::from_secs(1);
        cache.remember_sha256(&stamp(&plugin), &sha, later);
        assert_eq!(cache.known_sha256(&stamp(&plugin)), Some(sha.clone()));

        // Any write moves ctime (and here the size): forgotten.
        fs::write(&plugin, b"version 2, longer").unwrap();
        assert_eq!(cache.known_sha256(&stamp(&plugin)), None);
        // Same size, mtime set back to the old one: ctime still moved.
        let old = stamp(&plugin);
        cache.remember_sha256(&old, &sha, later);
        // Past the file clock's tick (at most 10 ms on Linux), as a file
        // that has settled is by definition.
        std::thread::sleep(Duration::from_millis(50));
        fs::write(&plugin, b"version 3, longer").unwrap();
        let mtime = fs::metadata(&plugin).unwrap().modified().unwrap();
        let file = fs::File::options().write(true).open(&plugin).unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let new = stamp(&plugin);
        assert_ne!(new, old, "ctime moved");
        assert_eq!(cache.known_sha256(&new), None);

        // A record others could write is not trusted.
        cache.remember_sha256(&new, &sha, later);
        let record = dir
            .path()
            .join("cache")
            .join(SEEN_DIR)
            .join(new.file_name());
        fs::set_permissions(&record, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.known_sha256(&new), None);
        // Nor a malformed one.
        fs::write(&record, "1 2 3 junk").unwrap();
        fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cache.known_sha256(&new), None);
        // And with caching off nothing is remembered.
        Cache::Disabled.remember_sha256(&new, &sha, later);
        assert_eq!(Cache::Disabled.known_sha256(&new), None);
    }

    #[test]
    fn a_stamp_round_trips_as_text() {
        let stamp = FileStamp {
            dev: 2049,
            ino: 77,
            size: 18_300_000,
            mtime: (1_700_000_000, 5),
            ctime: (1_700_000_001, 999_999_999),
        };
        assert_eq!(FileStamp::from_text(&stamp.to_text()), Some(stamp));
        assert_eq!(FileStamp::from_text("1 2 3 4.5"), None);
    }
}
