//! The flags of organization runs, shared by a rotation and `keyrot status`.

use clap::Args;
use keyrot::org::Shard;

/// Every account of an AWS Organization, or some OUs of it, entered
/// through one role name.
#[derive(Clone, Debug, Default, Args)]
pub struct OrgArgs {
    /// Every active account of the AWS Organization
    ///
    /// Run from the management account or a delegated administrator
    /// (organizations:ListAccounts); each account is entered through
    /// --org-role-name, and all its users are taken (narrow with
    /// --path-prefix). Suspended and closed accounts are skipped.
    #[arg(long, help_heading = "Organization")]
    pub org: bool,

    /// Only the accounts under this OU, at any depth (repeatable)
    ///
    /// An id like ou-abcd-12345678; implies --org.
    #[arg(long, value_name = "OU", help_heading = "Organization")]
    pub ou: Vec<String>,

    /// The role keyrot assumes in each member account, by name
    ///
    /// arn:aws:iam::ACCOUNT:role/NAME in each account (the account keyrot
    /// runs in is used as it is). --external-id and --role-session-name
    /// apply to it.
    #[arg(long, value_name = "NAME", help_heading = "Organization")]
    pub org_role_name: Option<String>,

    /// Leave the members of this IAM group alone, in every account (repeatable)
    ///
    /// Each is reported as exempt, with the group.
    #[arg(
        long,
        value_name = "GROUP",
        hide_short_help = true,
        help_heading = "Organization"
    )]
    pub exempt_group: Vec<String>,

    /// The user tag that names a user's owner; its value goes into the report
    #[arg(
        long,
        value_name = "KEY",
        hide_short_help = true,
        help_heading = "Organization"
    )]
    pub owner_tag: Option<String>,

    /// Take share K of N of the accounts (K from 0), e.g. 1/3, for N workers
    ///
    /// A stable share by a hash of the account id: N workers with 0/N to
    /// N-1/N cover the organization once (a Kubernetes Indexed Job:
    /// $(JOB_COMPLETION_INDEX)/N).
    #[arg(
        long,
        value_name = "K/N",
        hide_short_help = true,
        help_heading = "Organization"
    )]
    pub shard: Option<Shard>,
}

impl OrgArgs {
    /// Whether a flag asks for an organization run.
    pub fn any(&self) -> bool {
        self.org || !self.ou.is_empty()
    }
}
