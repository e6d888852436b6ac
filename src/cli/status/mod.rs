//! `keyrot status` and `keyrot journal`: look, change nothing (but `journal
//! clear`, which removes a record on the operator's word).
//!
//! - `view`: one user as status shows it;
//! - `org`: `status --org`, the compliance view of an organization;
//! - `csv`: the rows of `--output csv`;
//! - `prometheus`: the metrics of `--output prometheus`;
//! - `journal`: `keyrot journal show|clear` and `keyrot drain undo`.

mod csv;
mod journal;
mod org;
mod prometheus;
mod view;

use std::io::Write;
use std::sync::Arc;

use keyrot::fleet;
use keyrot::text::escape_control;
use keyrot::{
    AwsIam, AwsOptions, CallerIdentity, FileJournal, Iam, IamTagJournal, Journal, KeyLastUsed,
    StateDir,
};
use serde::Serialize;

pub(in crate::cli) use self::journal::{drain_undo, journal};
use self::view::{Policy, UserView, user_view};
use super::args::{JournalKind, StatusArgs};
use super::{Cli, Output, render, state_options};

/// The whole `status` document.
#[derive(Debug, Serialize)]
struct StatusView {
    schema_version: u32,
    account: String,
    caller_arn: String,
    users: Vec<UserView>,
}

/// Where the journal is kept, for the commands that look at it.
enum Store {
    File(StateDir, Arc<FileJournal>),
    Iam(Arc<IamTagJournal>),
}

impl Store {
    fn journal(&self) -> Arc<dyn Journal> {
        match self {
            Store::File(_, journal) => journal.clone(),
            Store::Iam(journal) => journal.clone(),
        }
    }
}

/// The AWS side every look needs: a client, who we are, the journal. An
/// account that cannot be reached is exit 1, as for a rotation.
async fn connect(
    aws: &AwsOptions,
    state: &super::args::StateArgs,
) -> anyhow::Result<Result<(AwsIam, CallerIdentity, Store), u8>> {
    aws.check().await.map_err(anyhow::Error::msg)?;
    let (kind, dir) = state_options(state, None)?;
    let account = match keyrot::aws::connect(aws).await {
        Ok(account) => account,
        Err(err) => {
            super::stderr_line(format_args!("error: {err}"));
            return Ok(Err(1));
        }
    };
    let store = match kind {
        JournalKind::File => {
            let state = StateDir::open(&dir)?;
            let journal = Arc::new(state.journal(Some(&account.caller.account)));
            Store::File(state, journal)
        }
        JournalKind::Iam => Store::Iam(Arc::new(IamTagJournal::new(
            Arc::new(account.iam.clone()),
            IamTagJournal::DEFAULT_LEASE,
        ))),
    };
    Ok(Ok((account.iam, account.caller, store)))
}

/// `keyrot status`.
pub(super) async fn status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<u8> {
    if args.org.any() || args.job.is_some() {
        return org::status(cli, args).await;
    }
    if args.org.org_role_name.is_some()
        || !args.org.exempt_group.is_empty()
        || args.org.owner_tag.is_some()
        || args.org.shard.is_some()
    {
        anyhow::bail!(
            "--org-role-name, --exempt-group, --owner-tag and --shard are for an organization: \
             add --org (or --ou)"
        );
    }
    if args.warn_within.is_some() && args.older_than.is_none() {
        anyhow::bail!("--warn-within warns before a key reaches --older-than: give that too");
    }
    let mut names = Vec::new();
    for user in &args.user {
        super::check_user_name(user)?;
        names.push(user.clone());
    }
    if let Some(file) = &args.users_file {
        names.extend(fleet::read_users_file(file).map_err(anyhow::Error::msg)?);
    }
    let prefix = args.path_prefix.as_deref().unwrap_or("/");
    if args.path_prefix.is_some() && !args.all_users {
        anyhow::bail!("--path-prefix selects among all users: it needs --all-users (or --org)");
    }
    if args.all_users {
        fleet::check_path_prefix(prefix).map_err(|e| anyhow::anyhow!("--path-prefix: {e}"))?;
    }
    let (iam, caller, store) = match connect(&args.aws, &args.state).await? {
        Ok(connected) => connected,
        Err(code) => return Ok(code),
    };
    let journal = store.journal();
    if args.all_users {
        names = iam.list_users(prefix).await.map_err(|e| {
            anyhow::anyhow!("cannot list the users under {prefix} (iam:ListUsers): {e}")
        })?;
    }
    let policy = Policy {
        older_than: args.older_than,
        warn_within: args.warn_within,
    };
    let mut users = Vec::new();
    for user in &names {
        users.push(user_view(&iam, journal.as_ref(), user, policy).await);
    }
    let code = if users.iter().any(|u| u.error.is_some()) {
        2
    } else {
        0
    };
    let view = StatusView {
        schema_version: keyrot::rotation::SCHEMA_VERSION,
        account: caller.account,
        caller_arn: caller.arn,
        users,
    };
    let mut out = std::io::stdout().lock();
    match cli.output {
        Output::Json => render::json(&mut out, &view)?,
        Output::Text => text(&mut out, &view)?,
        Output::Csv => {
            let mut rows = csv::Rows::new(&mut out)?;
            for user in &view.users {
                rows.user(&view.account, None, user)?;
            }
        }
        Output::Prometheus => {
            let mut metrics = super::metrics::Metrics::default();
            for user in &view.users {
                prometheus::user(&mut metrics, &view.account, "", user);
            }
            let errors = view.users.iter().filter(|u| u.error.is_some()).count();
            prometheus::finish(&mut metrics, errors);
            metrics.write(&mut out)?;
        }
    }
    out.flush()?;
    Ok(code)
}

fn text(out: &mut impl Write, view: &StatusView) -> std::io::Result<()> {
    writeln!(out, "account {} (as {})", view.account, view.caller_arn)?;
    for user in &view.users {
        user_text(out, user)?;
    }
    Ok(())
}

/// One user, a few lines: its keys, journal, warnings and what is next.
fn user_text(out: &mut impl Write, user: &UserView) -> std::io::Result<()> {
    {
        writeln!(out, "user {}  [{}]", user.user, user.state)?;
        if let Some(owner) = &user.owner {
            writeln!(out, "  owner {}", escape_control(owner))?;
        }
        if let Some(exempt) = &user.exempt {
            writeln!(out, "  {}", render::exempt_text(exempt))?;
        }
        if let Some(error) = &user.error {
            writeln!(out, "  error: {error}")?;
        }
        if user.keys.is_empty() && user.error.is_none() {
            writeln!(out, "  (no access keys)")?;
        }
        for key in &user.keys {
            let used = match &key.last_used {
                Some(KeyLastUsed {
                    date: Some(date),
                    service,
                    region,
                }) => format!(
                    "last used {date} {} {}",
                    service.as_deref().unwrap_or("-"),
                    region.as_deref().unwrap_or("-")
                ),
                Some(_) => "never used".into(),
                None => "last use unknown".into(),
            };
            writeln!(
                out,
                "  {}  {:<8}  created {}  age {:<8}  {used}",
                key.access_key_id,
                key.status.as_str(),
                key.create_date.as_deref().unwrap_or("?"),
                key.age.as_deref().unwrap_or("?"),
            )?;
        }
        if let Some(record) = &user.journal {
            writeln!(
                out,
                "  journal: phase {} by {} (new key {})",
                record.phase.as_str(),
                record.owner,
                record.new_key.as_deref().unwrap_or("none yet")
            )?;
        }
        for warning in &user.warnings {
            writeln!(out, "  warning: {}", escape_control(warning))?;
        }
        writeln!(out, "  next: {}", user.next)?;
    }
    Ok(())
}
