//! An organization run's census: every account in scope and in this
//! worker's shard, reached through its role (or why not), and its users
//! given to the first rule that matches them; exempt accounts named with
//! their reason. A rotation turns it into fleet targets
//! ([`Census::into_targets`]); `keyrot status --org` reads it as it is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::accounts::{OrgAccount, OrgError, Organizations, Scope, discover};
use super::screen::{ScreenRules, TagScreen};
use super::shard::Shard;
use crate::fleet::{Notes, Reached, Target, Unreached, Users};
use crate::iam::IamErrorKind;
use crate::rotation::{ExemptReport, RotateOptions, RotationReport, human_duration};

/// Which accounts a rule or an exemption covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Every account in scope.
    Anywhere,
    /// Accounts under any of these OUs, at any depth.
    Ous(Vec<String>),
    /// These accounts.
    Accounts(Vec<String>),
}

impl Place {
    /// What of `account` this place matched, in words (`OU ou-…`,
    /// `account 1234…`, `any account`), or `None`.
    pub fn matched(&self, account: &OrgAccount) -> Option<String> {
        match self {
            Place::Anywhere => Some("any account".into()),
            Place::Accounts(ids) => ids
                .contains(&account.id)
                .then(|| format!("account {}", account.id)),
            // The innermost OU named: the most specific reason.
            Place::Ous(ous) => account
                .ous
                .iter()
                .rev()
                .find(|ou| ous.contains(ou))
                .map(|ou| format!("OU {ou}")),
        }
    }

    /// Whether matching needs each account's OUs.
    pub fn names_ous(&self) -> bool {
        matches!(self, Place::Ous(_))
    }
}

/// Accounts left alone on purpose (a job file's `[org] exempt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountExemption {
    /// Which accounts.
    pub place: Place,
    /// Why, shown in every report.
    pub reason: String,
}

/// One rule of an organization run: where, which users, and the policy.
/// The first rule that matches a user decides for it.
#[derive(Clone, Debug)]
pub struct Rule {
    /// How reports name it (`target prod`).
    pub label: String,
    /// Which accounts.
    pub place: Place,
    /// Which users in them, by IAM path (`/` for all).
    pub path_prefix: String,
    /// The policy: max age, warning window, retire mode, ...
    pub options: RotateOptions,
    /// Prove each new key works before its handler gets it.
    pub verify: bool,
}

impl Rule {
    /// The rule in words, for a user of `account`.
    pub fn words(&self, account: &OrgAccount) -> String {
        format!(
            "{}, path {}: {}",
            self.place
                .matched(account)
                .unwrap_or_else(|| "no match".into()),
            self.path_prefix,
            policy_words(&self.options)
        )
    }
}

/// A rotation policy in words: `max age 90d, warn 14d before, retire drain`.
pub fn policy_words(options: &RotateOptions) -> String {
    let mut words = vec![match options.older_than {
        Some(age) => format!("max age {}", human_duration(age)),
        None => "any age".into(),
    }];
    if let Some(window) = options.warn_within {
        words.push(format!("warn {} before", human_duration(window)));
    }
    words.push(format!("retire {}", options.retire.as_str()));
    words.join(", ")
}

/// Enters an account of the organization (assumes its role).
#[async_trait]
pub trait Reach: Send + Sync {
    /// The account reached, or why not (its role cannot be assumed, say).
    async fn reach(&self, account: &OrgAccount) -> Result<Reached, Unreached>;
}

/// What an organization run covers and how it treats users.
#[derive(Clone, Debug)]
pub struct OrgRun {
    /// The organization, or some OUs of it.
    pub scope: Scope,
    /// This worker's share of the accounts.
    pub shard: Option<Shard>,
    /// Accounts and OUs left alone.
    pub exempt: Vec<AccountExemption>,
    /// Exempt groups, the owner tag, the warning window.
    pub screen: ScreenRules,
    /// Accounts entered at a time.
    pub concurrency: usize,
}

/// Every account of the run, and what became of each before any key moved.
pub struct Census {
    /// The accounts in scope and in this worker's shard, by id.
    pub accounts: Vec<AccountCensus>,
    /// Suspended or closed accounts: skipped.
    pub inactive: Vec<OrgAccount>,
    /// Accounts no rule matches: left alone.
    pub uncovered: Vec<OrgAccount>,
    /// Accounts in scope that other shards take.
    pub other_shards: usize,
}

/// One account of a census.
pub struct AccountCensus {
    /// The account.
    pub account: OrgAccount,
    /// Exempt, unreachable, or reached with its users.
    pub state: AccountState,
}

/// What became of an account.
pub enum AccountState {
    /// Left alone on purpose.
    Exempt(ExemptReport),
    /// Its role could not be assumed, or its users not listed.
    Unreached(Unreached),
    /// Reached; its users, each with the rule that took it.
    Reached {
        /// IAM there, and who keyrot acts as.
        reached: Reached,
        /// Users, in listing order, with the index of their rule.
        users: Vec<(String, usize)>,
        /// Exemptions and owners of its users.
        screen: Arc<TagScreen>,
    },
}

impl OrgRun {
    /// Whether matching needs each account's OUs (the scope, a rule or an
    /// exemption names one): then the organization is walked.
    pub fn needs_tree(&self, rules: &[Rule]) -> bool {
        matches!(self.scope, Scope::Ous(_))
            || rules.iter().any(|r| r.place.names_ous())
            || self.exempt.iter().any(|e| e.place.names_ous())
    }

    /// Lists the accounts, keeps this worker's, enters each (a few at a
    /// time) and gives each user to the first rule that matches it. An
    /// account that cannot be entered fails on its own; only a failure to
    /// list the organization fails the run.
    pub async fn census(
        &self,
        org: &dyn Organizations,
        reach: &dyn Reach,
        rules: &[Rule],
    ) -> Result<Census, OrgError> {
        let accounts = discover(org, &self.scope, self.needs_tree(rules)).await?;
        let mut census = Census {
            accounts: Vec::new(),
            inactive: Vec::new(),
            uncovered: Vec::new(),
            other_shards: 0,
        };
        let mut to_enter = Vec::new();
        for account in accounts {
            if !account.is_active() {
                census.inactive.push(account);
            } else if self.shard.is_some_and(|s| !s.contains(&account.id)) {
                census.other_shards += 1;
            } else if let Some(exempt) = self.exemption(&account) {
                census.accounts.push(AccountCensus {
                    account,
                    state: AccountState::Exempt(exempt),
                });
            } else if rules.iter().any(|r| r.place.matched(&account).is_some()) {
                to_enter.push(account);
            } else {
                census.uncovered.push(account);
            }
        }
        let entered: Vec<AccountCensus> = futures_util::stream::iter(to_enter)
            .map(|account| self.enter(account, reach, rules))
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        census.accounts.extend(entered);
        census
            .accounts
            .sort_by(|a, b| a.account.id.cmp(&b.account.id));
        Ok(census)
    }

    fn exemption(&self, account: &OrgAccount) -> Option<ExemptReport> {
        self.exempt.iter().find_map(|e| {
            e.place.matched(account).map(|by| ExemptReport {
                by,
                reason: e.reason.clone(),
                until: None,
            })
        })
    }

    /// Enters one account: its role, its exempt groups' members, its users
    /// under each rule's path.
    async fn enter(&self, account: OrgAccount, reach: &dyn Reach, rules: &[Rule]) -> AccountCensus {
        let reached = match reach.reach(&account).await {
            Ok(reached) => reached,
            Err(unreached) => {
                return AccountCensus {
                    account,
                    state: AccountState::Unreached(unreached),
                };
            }
        };
        match self.users_of(&account, &reached, rules).await {
            Ok((users, members)) => {
                let screen =
                    TagScreen::new(self.screen.clone(), members, Some(account.name.clone()))
                        .acting_as(&reached.caller.arn);
                AccountCensus {
                    account,
                    state: AccountState::Reached {
                        reached,
                        users,
                        screen: Arc::new(screen),
                    },
                }
            }
            Err(why) => AccountCensus {
                state: AccountState::Unreached(Unreached {
                    account: Some(account.id.clone()),
                    why: format!("{why}; nothing was changed in this account"),
                }),
                account,
            },
        }
    }

    /// The account's users, each with its rule (first match wins), and
    /// the members of its exempt groups.
    #[allow(clippy::type_complexity)]
    async fn users_of(
        &self,
        account: &OrgAccount,
        reached: &Reached,
        rules: &[Rule],
    ) -> Result<(Vec<(String, usize)>, Vec<(String, Vec<String>)>), String> {
        let mut members = Vec::new();
        for group in &self.screen.exempt_groups {
            match reached.iam.group_members(group).await {
                Ok(users) => members.push((group.clone(), users)),
                // No such group here: nobody in this account is exempt by it.
                Err(err) if err.kind == IamErrorKind::NoSuchEntity => {}
                Err(err) => {
                    return Err(format!(
                        "cannot read the members of IAM group {group} (iam:GetGroup), who \
                         are exempt: {err}"
                    ));
                }
            }
        }
        let mut listed: HashMap<&str, Vec<String>> = HashMap::new();
        let mut taken = HashSet::new();
        let mut users = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.place.matched(account).is_none() {
                continue;
            }
            let prefix = rule.path_prefix.as_str();
            if !listed.contains_key(prefix) {
                let names = reached.iam.list_users(prefix).await.map_err(|err| {
                    format!("cannot list the users under {prefix} (iam:ListUsers): {err}")
                })?;
                listed.insert(prefix, names);
            }
            for user in &listed[prefix] {
                // IAM user names ignore case.
                if taken.insert(user.to_ascii_lowercase()) {
                    users.push((user.clone(), index));
                }
            }
        }
        Ok((users, members))
    }
}

impl Census {
    /// The fleet's targets, one per account and rule (`handlers[i]` for
    /// rule `i`), each user's report naming its rule and account; an
    /// account that could not be entered is one failed line. Exempt
    /// accounts come back as reports.
    pub fn into_targets<H: Clone>(
        self,
        rules: &[Rule],
        handlers: &[H],
    ) -> (Vec<Target<H>>, Vec<RotationReport>) {
        let mut targets = Vec::new();
        let mut reports = Vec::new();
        for AccountCensus { account, state } in self.accounts {
            let notes = Notes {
                account_name: Some(account.name.clone()),
                ..Notes::default()
            };
            match state {
                AccountState::Exempt(exempt) => {
                    let mut report = RotationReport::exempt("*", Some(&account.id), exempt);
                    notes.apply(&mut report);
                    reports.push(report);
                }
                AccountState::Unreached(unreached) => {
                    let first = rules
                        .iter()
                        .position(|r| r.place.matched(&account).is_some())
                        .unwrap_or(0);
                    targets.push(Target {
                        label: rules[first].label.clone(),
                        users: Users::All {
                            path_prefix: "/".into(),
                        },
                        handler: handlers[first].clone(),
                        options: rules[first].options.clone(),
                        account: Err(unreached),
                        notes,
                        screen: None,
                    });
                }
                AccountState::Reached {
                    reached,
                    users,
                    screen,
                } => {
                    for (index, rule) in rules.iter().enumerate() {
                        let mut reached = reached.clone();
                        if !rule.verify {
                            reached.verifier = None;
                        }
                        let mine: Vec<String> = users
                            .iter()
                            .filter(|(_, i)| *i == index)
                            .map(|(user, _)| user.clone())
                            .collect();
                        if mine.is_empty() {
                            continue;
                        }
                        targets.push(Target {
                            label: rule.label.clone(),
                            users: Users::Listed(mine),
                            handler: handlers[index].clone(),
                            options: rule.options.clone(),
                            account: Ok(reached),
                            notes: Notes {
                                rule: Some(rule.words(&account)),
                                ..notes.clone()
                            },
                            screen: Some(screen.clone()),
                        });
                    }
                }
            }
        }
        (targets, reports)
    }
}
