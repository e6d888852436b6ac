//! Content digests, checked before they name anything.
//!
//! A digest from a registry (a manifest's descriptors, a header) or from a
//! user becomes a file name in the store, part of a URL and part of a tag;
//! `sha256:../../dev/zero` must never get that far. A [`Digest`] is only
//! ever `sha256:` and 64, or `sha512:` and 128, lowercase hex digits, as
//! the OCI image spec registers them.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A registered digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `sha256`, 64 hex digits.
    Sha256,
    /// `sha512`, 128 hex digits.
    Sha512,
}

impl Algorithm {
    /// Its name in a digest.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase: safe to use in a
/// path, a URL or a tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits alone (a file name in the store).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// `sha256-<hex>`: the form cosign's signature tags use.
    pub fn tag_form(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    /// Why it is not a digest (the input is not repeated: it may be
    /// anything a registry sent).
    type Err = String;

    fn from_str(s: &str) -> Result<Digest, String> {
        let (name, hex) = s
            .split_once(':')
            .ok_or("a digest is ALGORITHM:HEX, e.g. sha256: and 64 hex digits")?;
        let algorithm = match name {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err("the algorithm must be sha256 or sha512".into()),
        };
        if hex.len() != algorithm.hex_len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format!(
                "{} must be followed by {} lowercase hex digits",
                algorithm.name(),
                algorithm.hex_len()
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

/// Hashes bytes as they stream by.
pub enum Hasher {
    /// sha256.
    Sha256(sha2::Sha256),
    /// sha512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_well_formed_digests_parse() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ok.parse::<Digest>().unwrap().to_string(), ok);
        let ok512 = format!("sha512:{}", "0".repeat(128));
        assert_eq!(ok512.parse::<Digest>().unwrap().hex().len(), 128);
        for bad in [
            "sha256:../../../../dev/zero".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha256:{}/x", "a".repeat(62)),
            format!("sha512:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            format!("SHA256:{}", "a".repeat(64)),
            "sha256".to_string(),
            String::new(),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_and_names_tags() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.tag_form(), format!("sha256-{}", d.hex()));
        assert_eq!(Digest::of(Algorithm::Sha512, b"").hex().len(), 128);
    }
}
