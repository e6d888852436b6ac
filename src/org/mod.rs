//! Whole AWS Organizations from one run: discovery, rules, exemptions,
//! owners and shards, as a library feature.
//!
//! 1. [`discover`] lists the organization's accounts through the
//!    [`Organizations`] seam (`ListAccounts`, or a walk of the OU tree when
//!    a rule names an OU); suspended and closed accounts are skipped.
//! 2. [`OrgRun::census`] keeps this worker's [`Shard`], sets exempt
//!    accounts aside with their reason, enters each other account through
//!    a [`Reach`] (its role, a few at a time; one that cannot be entered
//!    fails alone), and gives each user to the first [`Rule`] whose place
//!    and path match it.
//! 3. [`Census::into_targets`] makes fleet targets of it: each user is
//!    screened just before its rotation ([`TagScreen`]: exempt by tag or
//!    group, with the owner tag's value in its report), then rotated with
//!    its rule's policy.

mod accounts;
mod census;
mod screen;
mod shard;

pub use self::accounts::{OrgAccount, OrgError, OrgErrorKind, Organizations, Scope, discover};
pub use self::census::{
    AccountCensus, AccountExemption, AccountState, Census, OrgRun, Place, Reach, Rule, policy_words,
};
pub use self::screen::{EXEMPT_TAG, ScreenRules, TagExemption, TagScreen};
pub use self::shard::Shard;
