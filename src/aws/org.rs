//! AWS Organizations through aws-sdk-organizations ([`AwsOrganizations`]),
//! and entering its member accounts through a role named once
//! ([`RoleReach`]).

use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_organizations::error::{ProvideErrorMetadata, SdkError};

use super::error::iam_error;
use super::{Account, AwsIam, DEFAULT_SESSION_NAME};
use crate::fleet::{Reached, Unreached};
use crate::org::{OrgAccount, OrgError, OrgErrorKind, Organizations, Reach};
use crate::rotation::CallerIdentity;

/// [`Organizations`] backed by aws-sdk-organizations.
#[derive(Clone, Debug)]
pub struct AwsOrganizations {
    client: aws_sdk_organizations::Client,
}

impl AwsOrganizations {
    /// A client for the organization of the account `config` signs for.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_organizations::Client::new(config),
        }
    }
}

/// Classifies an Organizations error, naming the call.
fn org_error<E, R>(call: &'static str, err: SdkError<E, R>) -> OrgError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let kind = match err.code() {
        Some("AWSOrganizationsNotInUseException") => OrgErrorKind::NotInOrganization,
        Some("ParentNotFoundException") => OrgErrorKind::NoSuchParent,
        _ => OrgErrorKind::Other,
    };
    let error = iam_error(err);
    OrgError {
        kind: match error.kind {
            crate::iam::IamErrorKind::AccessDenied => OrgErrorKind::AccessDenied,
            _ => kind,
        },
        call,
        message: error.message,
    }
}

fn account_of(account: &aws_sdk_organizations::types::Account) -> OrgAccount {
    // `State` is the newer field (ACTIVE, SUSPENDED, PENDING_CLOSURE,
    // CLOSED); `Status` the older one, still all some APIs answer.
    let status = account
        .state()
        .map(|s| s.as_str().to_string())
        .or_else(|| account.status().map(|s| s.as_str().to_string()))
        .unwrap_or_else(|| "UNKNOWN".into());
    OrgAccount {
        id: account.id().unwrap_or_default().to_string(),
        name: account.name().unwrap_or_default().to_string(),
        status,
        ous: Vec::new(),
    }
}

#[async_trait]
impl Organizations for AwsOrganizations {
    async fn list_accounts(&self) -> Result<Vec<OrgAccount>, OrgError> {
        let mut pages = self.client.list_accounts().into_paginator().send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| org_error("organizations:ListAccounts", e))?;
            accounts.extend(page.accounts().iter().cloned());
        }
        Ok(accounts.iter().map(account_of).collect())
    }

    async fn list_roots(&self) -> Result<Vec<String>, OrgError> {
        let mut pages = self.client.list_roots().into_paginator().send();
        let mut roots = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| org_error("organizations:ListRoots", e))?;
            roots.extend(page.roots().iter().cloned());
        }
        Ok(roots
            .iter()
            .filter_map(|r| r.id().map(str::to_string))
            .collect())
    }

    async fn list_child_ous(&self, parent: &str) -> Result<Vec<String>, OrgError> {
        let mut pages = self
            .client
            .list_organizational_units_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        let mut ous = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| org_error("organizations:ListOrganizationalUnitsForParent", e))?;
            ous.extend(page.organizational_units().iter().cloned());
        }
        Ok(ous
            .iter()
            .filter_map(|ou| ou.id().map(str::to_string))
            .collect())
    }

    async fn list_accounts_for_parent(&self, parent: &str) -> Result<Vec<OrgAccount>, OrgError> {
        let mut pages = self
            .client
            .list_accounts_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| org_error("organizations:ListAccountsForParent", e))?;
            accounts.extend(page.accounts().iter().cloned());
        }
        Ok(accounts.iter().map(account_of).collect())
    }
}

/// Enters member accounts through the role `role_name` in each
/// (`arn:PARTITION:iam::ACCOUNT:role/NAME`), from the account keyrot runs
/// in, which it uses as it is.
#[derive(Clone, Debug)]
pub struct RoleReach {
    /// Where keyrot runs: the management account or a delegated
    /// administrator.
    pub home: Account,
    /// The role's name (or path and name) in each member account.
    pub role_name: String,
    /// The external id the roles' trust policies require.
    pub external_id: Option<String>,
    /// The session name CloudTrail records [default: keyrot].
    pub session_name: Option<String>,
    /// Verify new keys with STS.
    pub verify: bool,
}

impl RoleReach {
    /// Checks a role name (or `path/name`) and session name before any
    /// call: a typo would otherwise fail in every account.
    pub fn check(role_name: &str, session_name: Option<&str>) -> Result<(), String> {
        let valid = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
        let name = role_name.trim_matches('/');
        if name.is_empty() || name.len() > 512 || !role_name.chars().all(valid) {
            return Err(format!(
                "'{role_name}' is not an IAM role name (--org-role-name, role-name): letters, \
                 digits and +=,.@_- characters, optionally under a path (ci/keyrot)"
            ));
        }
        if let Some(session) = session_name
            && !super::is_session_name(session)
        {
            return Err(format!(
                "role session name '{session}' must be 2-64 letters, digits and =,.@- characters"
            ));
        }
        Ok(())
    }

    /// The role's ARN in `account`, in the home account's partition.
    pub fn role_arn(&self, account: &str) -> String {
        let partition = self.home.caller.arn.split(':').nth(1).unwrap_or("aws");
        format!(
            "arn:{partition}:iam::{account}:role/{}",
            self.role_name.trim_matches('/')
        )
    }
}

#[async_trait]
impl Reach for RoleReach {
    async fn reach(&self, account: &OrgAccount) -> Result<Reached, Unreached> {
        // The role exists in members, not in the account keyrot runs in.
        if account.id == self.home.caller.account {
            return Ok(self.home.reached(self.verify));
        }
        let role = self.role_arn(&account.id);
        let session = self.session_name.as_deref().unwrap_or(DEFAULT_SESSION_NAME);
        let config = &self.home.config;
        // One explicit AssumeRole, a few quick attempts: its answer says
        // plainly why a role cannot be assumed, and names the session.
        let quick = aws_sdk_sts::config::Builder::from(config)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(2)),
            )
            .build();
        let mut assume = aws_sdk_sts::Client::from_conf(quick)
            .assume_role()
            .role_arn(&role)
            .role_session_name(session);
        if let Some(id) = &self.external_id {
            assume = assume.external_id(id);
        }
        let assumed = assume.send().await.map_err(|err| Unreached {
            account: Some(account.id.clone()),
            why: format!(
                "cannot assume role {role} (sts:AssumeRole, as {}): {}; the role may be \
                 missing in account {} or not trust this caller: create it (the \
                 organization's access role, say), or exempt the account; nothing was \
                 changed in this account",
                self.home.caller.arn,
                iam_error(err),
                account.id
            ),
        })?;
        let arn = assumed
            .assumed_role_user()
            .map(|u| u.arn().to_string())
            .unwrap_or_else(|| role.clone());
        // The SDK's provider keeps the session fresh for a long run.
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role)
            .session_name(session)
            .configure(config);
        if let Some(id) = &self.external_id {
            provider = provider.external_id(id);
        }
        let provider = provider.build().await;
        let member = config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        let reached = Account {
            iam: AwsIam::from_config(&member),
            caller: CallerIdentity {
                account: account.id.clone(),
                arn,
            },
            config: member,
        };
        Ok(reached.reached(self.verify))
    }
}
