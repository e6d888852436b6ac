//! Sealing a secret for GitHub: a libsodium `crypto_box_seal` to the
//! target's public key. The randomness source is a parameter so the sealing
//! is tested natively; in the component it is `wasi:random` (see `lib.rs`),
//! which avoids pulling in getrandom.

use crypto_box::PublicKey;
use rand_core::CryptoRngCore;

/// Seals `plaintext` so only the holder of the secret key matching
/// `public_key` (GitHub) can open it.
pub fn seal(
    public_key: &[u8; 32],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, String> {
    PublicKey::from_bytes(*public_key)
        .seal(rng, plaintext)
        .map_err(|_| "cannot encrypt the secret with GitHub's public key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::SecretKey;
    use rand_core::{CryptoRng, RngCore};

    /// A deterministic stand-in for wasi:random; never use outside tests.
    struct CounterRng(u8);

    impl RngCore for CounterRng {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for CounterRng {}

    #[test]
    fn sealed_value_opens_with_the_secret_key() {
        let secret = SecretKey::from_bytes([42; 32]);
        let public = secret.public_key().to_bytes();
        let mut rng = CounterRng(0);
        let sealed = seal(&public, b"wJalrXUtnFEMI/K7MDENG", &mut rng).unwrap();
        // Ephemeral public key (32) + MAC (16) + plaintext.
        assert_eq!(sealed.len(), 32 + 16 + 21);
        assert_eq!(secret.unseal(&sealed).unwrap(), b"wJalrXUtnFEMI/K7MDENG");
        // Fresh randomness per seal: the same plaintext seals differently.
        let again = seal(&public, b"wJalrXUtnFEMI/K7MDENG", &mut rng).unwrap();
        assert_ne!(sealed, again);
        // Another key cannot open it.
        assert!(SecretKey::from_bytes([1; 32]).unseal(&sealed).is_err());
    }
}
