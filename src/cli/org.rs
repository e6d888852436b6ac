//! Organization runs on the command line: `--org`/`--ou` and the job
//! file's `[org]` table made one checked [`OrgPlan`], then the organization
//! listed and entered ([`OrgPlan::census`]) for a rotation or for
//! `keyrot status --org`.

use anyhow::{Context, bail};
use keyrot::AwsOptions;
use keyrot::aws::{Account, AwsOrganizations, RoleReach};
use keyrot::org::{
    AccountExemption, Census, OrgError, OrgErrorKind, OrgRun, Place, Rule, Scope, ScreenRules,
};

use super::args::OrgArgs;
use super::job::Job;
use super::stderr_line;

/// An organization run, checked: its scope, shard, exemptions, and the
/// role each member account is entered through.
pub(super) struct OrgPlan {
    pub run: OrgRun,
    role_name: String,
    external_id: Option<String>,
    session_name: Option<String>,
    /// The job's `[aws]` external id and session name: the home account's
    /// own role's, if it assumes one.
    home_role: (Option<String>, Option<String>),
}

impl OrgPlan {
    /// The organization run the flags and the job ask for, if any. Flags
    /// override the `[org]` table (`--exempt-group` adds to it).
    pub fn new(
        flags: &OrgArgs,
        aws: &AwsOptions,
        job: &Job,
        job_path: Option<&str>,
        concurrency: usize,
    ) -> anyhow::Result<Option<Self>> {
        if !flags.any() && job.org.is_none() {
            if flags.org_role_name.is_some()
                || !flags.exempt_group.is_empty()
                || flags.owner_tag.is_some()
                || flags.shard.is_some()
            {
                bail!(
                    "--org-role-name, --exempt-group, --owner-tag and --shard are for an \
                     organization run: add --org (or --ou, or an [org] table in the job file)"
                );
            }
            return Ok(None);
        }
        let table = job.org.clone().unwrap_or_default();
        let path = job_path.unwrap_or("?");
        if let Some((i, _)) = job
            .target
            .iter()
            .enumerate()
            .find(|(_, t)| t.aws != AwsOptions::default())
        {
            bail!(
                "job file {path}: target {}: [target.aws] cannot be used in an organization \
                 run: every account is entered through [org] role-name; set AWS options in the \
                 top-level [aws] table",
                job.target[i]
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("#{}", i + 1))
            );
        }
        let ous = if flags.ou.is_empty() {
            table.ous.clone()
        } else {
            flags.ou.clone()
        };
        for ou in &ous {
            check_ou(ou).map_err(|e| anyhow::anyhow!("--ou (or [org] ous): {e}"))?;
        }
        let scope = if ous.is_empty() {
            Scope::Organization
        } else {
            Scope::Ous(ous)
        };
        let role_name = flags
            .org_role_name
            .clone()
            .or(table.role_name.clone())
            .context(
                "an organization run enters each member account through a role: pass \
                 --org-role-name NAME (or role-name in the job's [org] table), e.g. \
                 OrganizationAccountAccessRole, or the keyrot role of \
                 examples/org/member-role-policy.json",
            )?;
        let external_id = aws.external_id.clone().or(table.external_id.clone());
        let session_name = aws
            .role_session_name
            .clone()
            .or(table.role_session_name.clone());
        RoleReach::check(&role_name, session_name.as_deref()).map_err(anyhow::Error::msg)?;
        let exempt = table
            .exempt
            .iter()
            .map(|entry| {
                let in_job = format!("job file {path}: [[org.exempt]]");
                if entry.reason.trim().is_empty() {
                    bail!("{in_job}: every exemption gives its `reason`");
                }
                let place = match (&entry.account, &entry.ou) {
                    (Some(account), None) => {
                        check_account(account).map_err(|e| anyhow::anyhow!("{in_job}: {e}"))?;
                        Place::Accounts(vec![account.clone()])
                    }
                    (None, Some(ou)) => {
                        check_ou(ou).map_err(|e| anyhow::anyhow!("{in_job}: {e}"))?;
                        Place::Ous(vec![ou.clone()])
                    }
                    _ => bail!("{in_job}: each entry names one `account` or one `ou`"),
                };
                Ok(AccountExemption {
                    place,
                    reason: entry.reason.trim().to_string(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut exempt_groups = table.exempt_groups.clone();
        exempt_groups.extend(flags.exempt_group.iter().cloned());
        for group in &exempt_groups {
            check_group(group)?;
        }
        let owner_tag = flags.owner_tag.clone().or(table.owner_tag.clone());
        if let Some(tag) = &owner_tag
            && (tag.trim().is_empty() || tag.len() > 128)
        {
            bail!("--owner-tag (owner-tag): '{tag}' is not a tag key (1-128 characters)");
        }
        Ok(Some(OrgPlan {
            run: OrgRun {
                scope,
                shard: flags.shard,
                exempt,
                screen: ScreenRules {
                    exempt_groups,
                    owner_tag,
                    warn_within: None,
                },
                concurrency,
            },
            role_name,
            external_id,
            session_name,
            home_role: (
                job.aws.external_id.clone(),
                job.aws.role_session_name.clone(),
            ),
        }))
    }

    /// The AWS options of the account keyrot runs in: the flags' external
    /// id and session name belong to the member role, not to it.
    pub fn home_aws(&self, aws: AwsOptions) -> AwsOptions {
        AwsOptions {
            external_id: self.home_role.0.clone(),
            role_session_name: self.home_role.1.clone(),
            ..aws
        }
    }

    /// Reaches the home account, lists the organization and enters its
    /// accounts: the census, or the exit code of a failure already
    /// reported (nothing was changed).
    pub async fn census(
        &self,
        home: &AwsOptions,
        rules: &[Rule],
    ) -> anyhow::Result<Result<(Census, Account), u8>> {
        let account = match keyrot::aws::connect(home).await {
            Ok(account) => account,
            Err(err) => {
                stderr_line(format_args!("error: {err}; nothing was changed"));
                return Ok(Err(1));
            }
        };
        tracing::info!(
            "organization run from account {} as {}, entering accounts through role {}",
            account.caller.account,
            account.caller.arn,
            self.role_name
        );
        let org = AwsOrganizations::from_config(&account.config);
        let reach = RoleReach {
            home: account.clone(),
            role_name: self.role_name.clone(),
            external_id: self.external_id.clone(),
            session_name: self.session_name.clone(),
            verify: true,
        };
        match self.run.census(&org, &reach, rules).await {
            Ok(census) => {
                self.log(&census);
                Ok(Ok((census, account)))
            }
            Err(err) => {
                stderr_line(format_args!("error: {}", failure(&err, &account)));
                Ok(Err(if err.kind == OrgErrorKind::NoSuchParent {
                    super::EXIT_BAD_INPUT
                } else {
                    1
                }))
            }
        }
    }

    /// What the census found, for the operator's log.
    fn log(&self, census: &Census) {
        use keyrot::org::AccountState;
        let count =
            |f: fn(&AccountState) -> bool| census.accounts.iter().filter(|a| f(&a.state)).count();
        let shard = match self.run.shard {
            Some(shard) => format!(
                " (shard {shard}: {} accounts are other shards')",
                census.other_shards
            ),
            None => String::new(),
        };
        tracing::info!(
            "organization: {} accounts here{shard}: {} entered, {} exempt, {} could not be \
             entered; {} matched no target; {} suspended or closed, skipped",
            census.accounts.len() + census.uncovered.len(),
            count(|s| matches!(s, AccountState::Reached { .. })),
            count(|s| matches!(s, AccountState::Exempt(_))),
            count(|s| matches!(s, AccountState::Unreached(_))),
            census.uncovered.len(),
            census.inactive.len(),
        );
        for account in &census.inactive {
            tracing::debug!(
                "account {} ({}) is {}: skipped",
                account.id,
                account.name,
                account.status
            );
        }
        for account in &census.uncovered {
            tracing::info!(
                "account {} ({}) matches no target: left alone",
                account.id,
                account.name
            );
        }
    }
}

/// What to tell the operator when the organization cannot be listed.
fn failure(err: &OrgError, home: &Account) -> String {
    let who = &home.caller.arn;
    match err.kind {
        OrgErrorKind::AccessDenied => format!(
            "cannot list the organization's accounts ({}) as {who}: {err}. An organization \
             run starts in the management account or in a delegated administrator for AWS \
             Organizations, allowed organizations:ListAccounts, ListRoots, \
             ListOrganizationalUnitsForParent and ListAccountsForParent, and sts:AssumeRole \
             on the member role: examples/org/management-policy.json has them; nothing was \
             changed",
            err.call
        ),
        OrgErrorKind::NotInOrganization => format!(
            "account {} is not in an AWS Organization ({err}): --org needs one; for a single \
             account, drop --org; nothing was changed",
            home.caller.account
        ),
        OrgErrorKind::NoSuchParent => format!("{err}; nothing was changed"),
        OrgErrorKind::Other => format!(
            "cannot list the organization ({}) as {who}: {err}; nothing was changed",
            err.call
        ),
    }
}

/// The accounts a job's target covers: `ous`, `accounts`, or anywhere.
pub(super) fn place_of(target: &Job) -> Result<Place, String> {
    match (target.ous.is_empty(), target.accounts.is_empty()) {
        (true, true) => Ok(Place::Anywhere),
        (false, true) => {
            target.ous.iter().try_for_each(|ou| check_ou(ou))?;
            Ok(Place::Ous(target.ous.clone()))
        }
        (true, false) => {
            target.accounts.iter().try_for_each(|a| check_account(a))?;
            Ok(Place::Accounts(target.accounts.clone()))
        }
        (false, false) => {
            Err("a target chooses accounts by `ous` or by `accounts`, not both".into())
        }
    }
}

/// OU ids: `ou-` then the root's 4-32 characters, `-`, then 8-32 more.
pub(super) fn check_ou(ou: &str) -> Result<(), String> {
    let parts: Vec<&str> = ou.split('-').collect();
    let lower_alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match parts.as_slice() {
        ["ou", root, id]
            if (4..=32).contains(&root.len())
                && (8..=32).contains(&id.len())
                && lower_alnum(root)
                && lower_alnum(id) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "'{ou}' is not an OU id (like ou-abcd-12345678; `aws organizations \
             list-organizational-units-for-parent` lists them)"
        )),
    }
}

/// Account ids: 12 digits.
pub(super) fn check_account(account: &str) -> Result<(), String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("'{account}' is not an AWS account id (12 digits)"))
    }
}

/// IAM group names: 1-128 letters, digits and `+=,.@_-`.
fn check_group(group: &str) -> anyhow::Result<()> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if group.is_empty() || group.len() > 128 || !group.chars().all(valid) {
        bail!(
            "--exempt-group (exempt-groups): '{group}' is not an IAM group name (1-128 \
             letters, digits and +=,.@_- characters)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ou_and_account_ids_are_checked() {
        assert!(check_ou("ou-abcd-12345678").is_ok());
        assert!(check_ou("ou-ab-12345678").is_err());
        assert!(check_ou("r-abcd").is_err());
        assert!(check_ou("OU-ABCD-12345678").is_err());
        assert!(check_account("123456789012").is_ok());
        assert!(check_account("12345678901").is_err());
    }
}
