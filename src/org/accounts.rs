//! Which accounts an organization has: the [`Organizations`] seam, and
//! [`discover`], which lists them (with the OUs each sits under, when a
//! rule needs them) and keeps the ones in scope.

use std::collections::HashSet;

use async_trait::async_trait;
use serde::Serialize;

/// An account of the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgAccount {
    /// The 12-digit account id.
    pub id: String,
    /// Its name in the organization.
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`, ...
    pub status: String,
    /// The OUs it sits under, outermost first (empty: right under the
    /// root, or not looked up).
    pub ous: Vec<String>,
}

impl OrgAccount {
    /// Whether keyrot works in it: suspended and closed accounts cannot be
    /// entered, and their users cannot use keys anyway.
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("ACTIVE")
    }
}

/// What kind of failure an Organizations call met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgErrorKind {
    /// The caller may not make the call: not the management account or a
    /// delegated administrator, or not allowed by its policy.
    AccessDenied,
    /// The caller's account is not in an organization.
    NotInOrganization,
    /// An OU (or root) id that the organization does not have.
    NoSuchParent,
    /// Anything else.
    Other,
}

/// An Organizations call failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct OrgError {
    /// The kind of failure.
    pub kind: OrgErrorKind,
    /// The call, e.g. `organizations:ListAccounts`.
    pub call: &'static str,
    /// The service's code and message.
    pub message: String,
}

/// The Organizations calls discovery makes; `AwsOrganizations` (in `aws/`)
/// implements them with aws-sdk-organizations.
#[async_trait]
pub trait Organizations: Send + Sync {
    /// Every account, across pages, without their OUs (`ListAccounts`).
    async fn list_accounts(&self) -> Result<Vec<OrgAccount>, OrgError>;
    /// The roots' ids (`ListRoots`; an organization has one).
    async fn list_roots(&self) -> Result<Vec<String>, OrgError>;
    /// The OUs right under `parent` (`ListOrganizationalUnitsForParent`).
    async fn list_child_ous(&self, parent: &str) -> Result<Vec<String>, OrgError>;
    /// The accounts right under `parent` (`ListAccountsForParent`).
    async fn list_accounts_for_parent(&self, parent: &str) -> Result<Vec<OrgAccount>, OrgError>;
}

/// Which part of the organization a run covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every account (`--org`).
    Organization,
    /// These OUs and everything under them (`--ou`).
    Ous(Vec<String>),
}

/// The accounts in `scope`, by id. With `tree` (a rule names an OU, or the
/// scope does), the organization is walked from its root so each account
/// knows its OUs; otherwise one paginated `ListAccounts` answers. An OU
/// named in the scope that the organization does not have is an error.
pub async fn discover(
    org: &dyn Organizations,
    scope: &Scope,
    tree: bool,
) -> Result<Vec<OrgAccount>, OrgError> {
    let (mut accounts, known_ous) = match scope {
        Scope::Organization if !tree => (org.list_accounts().await?, HashSet::new()),
        _ => {
            let tree = walk(org).await?;
            (tree.accounts, tree.ous)
        }
    };
    if let Scope::Ous(wanted) = scope {
        if let Some(missing) = wanted.iter().find(|ou| !known_ous.contains(*ou)) {
            return Err(OrgError {
                kind: OrgErrorKind::NoSuchParent,
                call: "organizations:ListOrganizationalUnitsForParent",
                message: format!(
                    "OU {missing} is not in this organization (OU ids look like \
                     ou-abcd-12345678; `aws organizations list-organizational-units-for-parent` \
                     lists them)"
                ),
            });
        }
        accounts.retain(|a| a.ous.iter().any(|ou| wanted.contains(ou)));
    }
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    accounts.dedup_by(|a, b| a.id == b.id);
    Ok(accounts)
}

/// The organization, walked from its roots.
struct Tree {
    accounts: Vec<OrgAccount>,
    ous: HashSet<String>,
}

async fn walk(org: &dyn Organizations) -> Result<Tree, OrgError> {
    let mut tree = Tree {
        accounts: Vec::new(),
        ous: HashSet::new(),
    };
    // (parent, the OUs above and including it): depth first, iteratively.
    let mut pending: Vec<(String, Vec<String>)> = org
        .list_roots()
        .await?
        .into_iter()
        .map(|root| (root, Vec::new()))
        .collect();
    while let Some((parent, path)) = pending.pop() {
        for mut account in org.list_accounts_for_parent(&parent).await? {
            account.ous = path.clone();
            tree.accounts.push(account);
        }
        for ou in org.list_child_ous(&parent).await? {
            // An organization is a tree; a cycle would be a broken
            // emulator or API, and must not loop forever.
            if tree.ous.insert(ou.clone()) {
                let mut below = path.clone();
                below.push(ou.clone());
                pending.push((ou, below));
            }
        }
    }
    Ok(tree)
}
