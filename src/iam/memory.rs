//! [`MemoryIam`]: IAM in memory, for trying a handler with no AWS account,
//! no network and no credentials (`keyrot plugin test`), and for programs
//! that test their own [`NewKeyHandler`](crate::NewKeyHandler).
//!
//! It keeps real IAM's rules that a rotation meets: an unknown user is
//! `NoSuchEntity`, a user has at most two keys (`LimitExceeded`), a missing
//! key is `NoSuchEntity`. Keys look like IAM's (`AKIA` and 16 upper-case
//! letters and digits; a 40-character secret of letters, digits, `/` and
//! `+`), are random, and carry their creation time, so an interrupted
//! run's journal can be checked against them as against IAM's.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{AccessKeyInfo, Iam, IamError, IamErrorKind, KeyStatus, NewAccessKey};
use crate::secret::SecretAccessKey;
use crate::time::{now_rfc3339, rfc3339};

/// IAM's fixed limit on access keys per user.
const KEYS_PER_USER: usize = 2;

/// An in-memory IAM: users, their keys, and a count of each call.
#[derive(Debug, Default)]
pub struct MemoryIam {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, Vec<AccessKeyInfo>>,
    created: Vec<String>,
    deleted: Vec<String>,
}

impl MemoryIam {
    /// An IAM with no users.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds user `name` (no keys).
    pub fn add_user(&self, name: &str) {
        self.lock().users.entry(name.to_string()).or_default();
    }

    /// Gives `user` (added if new) a key with `status`, created `age_secs`
    /// ago, outside the key limit (setup, not an IAM call); returns its id.
    pub fn add_key(&self, user: &str, status: KeyStatus, age_secs: u64) -> String {
        let created = crate::time::unix_now().saturating_sub(age_secs);
        let id = key_id();
        let mut state = self.lock();
        state
            .users
            .entry(user.to_string())
            .or_default()
            .push(AccessKeyInfo {
                access_key_id: id.clone(),
                status,
                create_date: Some(rfc3339(created)),
            });
        id
    }

    /// The user's keys now (none for an unknown user).
    pub fn keys(&self, user: &str) -> Vec<AccessKeyInfo> {
        let state = self.lock();
        let keys = state.users.get(user).map(Vec::as_slice).unwrap_or_default();
        keys.to_vec()
    }

    /// Every key id `CreateAccessKey` made, in order (deleted ones too).
    pub fn created(&self) -> Vec<String> {
        self.lock().created.clone()
    }

    /// Every key id `DeleteAccessKey` removed, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }
}

fn no_user(user: &str) -> IamError {
    IamError::new(
        IamErrorKind::NoSuchEntity,
        format!("NoSuchEntity: The user with name {user} cannot be found."),
    )
}

fn no_key(key_id: &str) -> IamError {
    IamError::new(
        IamErrorKind::NoSuchEntity,
        format!("NoSuchEntity: The Access Key with id {key_id} cannot be found."),
    )
}

#[async_trait]
impl Iam for MemoryIam {
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        let state = self.lock();
        let keys = state.users.get(user).ok_or_else(|| no_user(user))?;
        Ok(keys.clone())
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        let mut state = self.lock();
        let keys = state.users.get_mut(user).ok_or_else(|| no_user(user))?;
        if keys.len() >= KEYS_PER_USER {
            return Err(IamError::new(
                IamErrorKind::LimitExceeded,
                "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2",
            ));
        }
        let id = key_id();
        let create_date = now_rfc3339();
        keys.push(AccessKeyInfo {
            access_key_id: id.clone(),
            status: KeyStatus::Active,
            create_date: Some(create_date.clone()),
        });
        state.created.push(id.clone());
        Ok(NewAccessKey {
            user_name: user.to_string(),
            access_key_id: id,
            secret_access_key: SecretAccessKey::new(secret()),
            create_date,
        })
    }

    async fn update_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        let mut state = self.lock();
        let keys = state.users.get_mut(user).ok_or_else(|| no_user(user))?;
        let key = keys.iter_mut().find(|k| k.access_key_id == key_id);
        key.ok_or_else(|| no_key(key_id))?.status = status;
        Ok(())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        let keys = state.users.get_mut(user).ok_or_else(|| no_user(user))?;
        let index = keys.iter().position(|k| k.access_key_id == key_id);
        keys.remove(index.ok_or_else(|| no_key(key_id))?);
        state.deleted.push(key_id.to_string());
        Ok(())
    }

    async fn list_users(&self, path_prefix: &str) -> Result<Vec<String>, IamError> {
        // Every user lives at path `/`.
        let state = self.lock();
        Ok(if path_prefix == "/" {
            state.users.keys().cloned().collect()
        } else {
            Vec::new()
        })
    }
}

/// `AKIA` and 16 random upper-case letters and digits.
fn key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("AKIA{id}")
}

/// 40 random characters of IAM's secret alphabet, which has `/` and `+`:
/// a secret copied through a URL or base64 changes shape.
fn secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
    let mut secret: Vec<u8> = random_bytes::<40>()
        .iter()
        .map(|b| ALPHABET[usize::from(b % 64)])
        .collect();
    // Always one of each, so encodings that differ only there are tried.
    secret[7] = b'/';
    secret[23] = b'+';
    String::from_utf8(secret).expect("ASCII")
}

/// Random bytes from the kernel, else from the clock and a counter: the
/// keys must differ, not be unguessable.
fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut bytes = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut x = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
        for b in &mut bytes {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::is_key_id;

    #[tokio::test]
    async fn keeps_iams_rules() {
        let iam = MemoryIam::new();
        assert_eq!(
            iam.list_access_keys("nobody").await.unwrap_err().kind,
            IamErrorKind::NoSuchEntity
        );
        let old = iam.add_key("ci-bot", KeyStatus::Active, 3600);
        let new = iam.create_access_key("ci-bot").await.unwrap();
        assert!(is_key_id(&new.access_key_id) && new.access_key_id.starts_with("AKIA"));
        assert_eq!(new.secret_access_key.expose().len(), 40);
        assert_ne!(new.access_key_id, old);
        let full = iam.create_access_key("ci-bot").await.unwrap_err();
        assert_eq!(full.kind, IamErrorKind::LimitExceeded);
        iam.update_access_key_status("ci-bot", &old, KeyStatus::Inactive)
            .await
            .unwrap();
        iam.delete_access_key("ci-bot", &old).await.unwrap();
        let missing = iam.delete_access_key("ci-bot", &old).await.unwrap_err();
        assert_eq!(missing.kind, IamErrorKind::NoSuchEntity);
        let keys = iam.list_access_keys("ci-bot").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].access_key_id, new.access_key_id);
        assert_eq!(iam.created(), std::slice::from_ref(&new.access_key_id));
        assert_eq!(iam.deleted(), [old]);
    }

    #[test]
    fn keys_differ_and_secrets_have_slash_and_plus() {
        let (a, b) = (secret(), secret());
        assert_ne!(a, b);
        assert!(a.contains('/') && a.contains('+'));
        assert_ne!(key_id(), key_id());
    }
}
