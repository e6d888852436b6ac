//! Where the rotation journal lives, and the lock that keeps two runs on one
//! user from interleaving.
//!
//! - [`StateDir`] (`--state-dir`, default `$XDG_STATE_HOME/keyrot` or
//!   `~/.local/state/keyrot`, 0700): a JSON file per (account, user),
//!   written durably ([`fsutil::write_atomic`]), and an exclusive `flock`
//!   per (account, user) that dies with its process. Every directory below
//!   the root is checked as the root is: a real directory (never a
//!   symlink), ours, writable by nobody else ([`fsutil`]).
//! - [`FileJournal`] takes that lock in [`Journal::begin`] and lets go of it
//!   when the run clears or releases the record: whoever uses the journal,
//!   the binary or a library caller, gets the lock with it.
//! - [`IamTagJournal`] (`--journal iam`): the same record as a tag on the
//!   IAM user, so a rerun on any machine (an ephemeral CI runner) finds it.
//!   The record carries a lease, renewed while the run works; see the type
//!   for how two machines are kept from both holding it.
//!
//! - `file`: [`StateDir`], its locks, and [`FileJournal`];
//! - `iam_tag`: [`IamTagJournal`], its claims and its lease;
//! - `tag`: the record as an IAM tag value, and back.
//!
//! Both refuse a record that is incomplete or contradicts itself
//! ([`JournalRecord::check`]): a rerun acts on it.

mod file;
mod iam_tag;
mod tag;

pub use self::file::{FileJournal, StateDir, UserLock};
pub use self::iam_tag::IamTagJournal;

#[cfg(test)]
mod tests {
    //! A record every test of the journal's parts starts from.

    use crate::rotation::{JournalRecord, Phase, RetireMode};

    pub(super) const K1: &str = "AKIAAAAAAAAAAAAAAAA1";
    pub(super) const K2: &str = "AKIAAAAAAAAAAAAAAAA2";
    pub(super) const K3: &str = "AKIAAAAAAAAAAAAAAAA3";

    pub(super) fn record() -> JournalRecord {
        JournalRecord {
            version: JournalRecord::VERSION,
            account: Some("123456789012".into()),
            user: "ci-bot".into(),
            phase: Phase::Created,
            keys_before: vec![K1.into(), K2.into()],
            active_before: Some(K1.into()),
            new_key: Some(K3.into()),
            retire: RetireMode::Deactivate,
            started: 1_796_205_600,
            owner: "build-host-with-a-long-name.example.com:4194304:0123456789abcdef".into(),
            lease_until: 1_796_206_500,
            handed_over: None,
            deactivated: None,
            abandoned: Vec::new(),
        }
    }
}
