//! [`Store`]: pulled artifacts kept content-addressed on disk, every blob
//! under its digest in a private directory, read back only when its bytes
//! still match its name.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::digest::{Algorithm, Hasher};
use super::{Digest, MAX_COMPONENT_BYTES, OciError};

/// Where the blobs are, under the cache directory.
const BLOBS: &str = "oci/blobs";

/// The content-addressed store: `<cache>/oci/blobs/<algorithm>/<hex>`, every
/// level a private directory, every file read and written through
/// [`crate::fsutil`].
#[derive(Clone, Debug)]
pub struct Store {
    cache: PathBuf,
}

impl Store {
    /// The store under a cache directory.
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            cache: cache_dir.to_path_buf(),
        }
    }

    /// The directory for `algorithm`, made or checked private from the
    /// cache directory down; an unsafe one is refused.
    pub(super) fn dir(&self, algorithm: Algorithm) -> Result<PathBuf, OciError> {
        let rel = Path::new(BLOBS).join(algorithm.name());
        crate::fsutil::ensure_private_tree(&self.cache, &rel).map_err(|cause| {
            OciError::UnsafeCache {
                path: self.cache.clone(),
                cause,
            }
        })
    }

    /// Where the blob with this digest is kept.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.cache
            .join(BLOBS)
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// The blob with this digest, if stored, private and intact, at most
    /// `max` bytes; anything else is treated as absent (and replaced by
    /// the next pull).
    pub(super) fn get(&self, digest: &Digest, max: u64) -> Option<Vec<u8>> {
        let path = self.path(digest);
        let read = crate::fsutil::read_private(&path, max)
            .map(|bytes| (Digest::of(digest.algorithm(), &bytes), bytes));
        intact(&path, digest, read)
    }

    /// The stored component with this digest, checked as it is read;
    /// returns its path and sha256 (hex).
    pub(super) fn component(&self, digest: &Digest) -> Option<(PathBuf, String)> {
        if let Err(e) = self.dir(digest.algorithm()) {
            tracing::warn!("{e}");
            return None;
        }
        let path = self.path(digest);
        let sha256 = intact(&path, digest, hash_component(&path, digest.algorithm()))?;
        Some((path, sha256.hex().to_string()))
    }

    /// Stores bytes under their sha256 (atomically, 0600 in a 0700 dir).
    pub(super) fn put(&self, bytes: &[u8]) -> Result<PathBuf, OciError> {
        let digest = Digest::sha256(bytes);
        let dir = self.dir(digest.algorithm())?;
        let path = self.path(&digest);
        crate::fsutil::write_atomic(&dir, &path, bytes).map_err(|cause| OciError::Cache {
            path: path.clone(),
            cause,
        })?;
        Ok(path)
    }
}

/// A component file's digest with `algorithm` and its sha256, in one read
/// of at most [`MAX_COMPONENT_BYTES`].
fn hash_component(path: &Path, algorithm: Algorithm) -> std::io::Result<(Digest, Digest)> {
    let (mut file, _) = crate::fsutil::open_private(path, MAX_COMPONENT_BYTES)?;
    let mut hasher = Hasher::new(algorithm);
    let mut sha256 = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sha256.update(&buf[..n]);
    }
    Ok((hasher.finish(), sha256.finish()))
}

/// What was read from `path` if the digest read is `expected`. A file
/// missing, unsafe or not what its name says counts as absent, the last
/// two with a warning.
fn intact<T>(path: &Path, expected: &Digest, read: std::io::Result<(Digest, T)>) -> Option<T> {
    match read {
        Ok((actual, value)) if &actual == expected => Some(value),
        Ok(_) => {
            tracing::warn!(
                "ignoring {}: its bytes do not match its name",
                path.display()
            );
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            None
        }
    }
}
