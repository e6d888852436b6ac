//! `--shard K/N`: a stable share of an organization's accounts, so N
//! workers of an existing scheduler (a Kubernetes Indexed Job, a CI
//! matrix) cover it once between them.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Worker `index` of `count`: the accounts whose id hashes to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This worker, from 0.
    pub index: u32,
    /// How many workers share the organization.
    pub count: u32,
}

impl Shard {
    /// Most workers one organization is spread over.
    pub const MAX_COUNT: u32 = 10_000;

    /// Whether `account` is this worker's. The hash of the id, not its
    /// place in a listing: an account keeps its worker as others come and
    /// go, and every worker agrees without talking to the others.
    pub fn contains(&self, account: &str) -> bool {
        let hash = Sha256::digest(account.as_bytes());
        let head = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
        head % u64::from(self.count) == u64::from(self.index)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "'{s}' is not a shard: give K/N, worker K (from 0) of N, e.g. 0/3, 1/3, 2/3 \
                 (JOB_COMPLETION_INDEX/N in a Kubernetes Indexed Job)"
            )
        };
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > Self::MAX_COUNT || index >= count {
            return Err(format!(
                "{} (K must be below N, and N from 1 to {})",
                bad(),
                Self::MAX_COUNT
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "-1/3", "1", "a/b", "1/10001"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_account_falls_in_exactly_one_shard() {
        let accounts: Vec<String> = (0..300).map(|i| format!("{:012}", 100_000 + i)).collect();
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for account in &accounts {
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.contains(account)).collect();
            assert_eq!(owners.len(), 1, "{account}");
            sizes[owners[0].index as usize] += 1;
        }
        // A hash spreads them: no worker is left idle.
        assert!(sizes.iter().all(|&n| n > 50), "{sizes:?}");
    }
}
