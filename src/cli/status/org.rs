//! `keyrot status --org`: the compliance view of an organization. Per
//! account and user: key ages, last use, what is due, warned, exempt,
//! draining, or left by a failed run; as text, JSON, CSV or metrics. Read-only: it
//! needs only the read permissions of examples/org/status-policy.json.

use std::io::Write;
use std::sync::Arc;

use anyhow::bail;
use futures_util::StreamExt;
use keyrot::fleet::{Screen, Screened};
use keyrot::org::{AccountState, Census, OrgAccount, Rule};
use keyrot::rotation::{ExemptReport, RetireMode, RotateOptions};
use keyrot::text::escape_control;
use keyrot::{IamTagJournal, Journal, StateDir};
use serde::Serialize;

use super::csv::Rows;
use super::prometheus;
use super::view::{Policy, UserView, user_view};
use crate::cli::args::{JournalKind, StatusArgs};
use crate::cli::job::Job;
use crate::cli::metrics::Metrics;
use crate::cli::org::{OrgPlan, place_of};
use crate::cli::plan::target_label;
use crate::cli::{Cli, Output, render, state_options};

/// Users looked at a time, across accounts.
const LOOKS_AT_A_TIME: usize = 8;

/// The whole `status --org` document.
#[derive(Debug, Serialize)]
struct OrgStatusView {
    schema_version: u32,
    /// The account keyrot ran in, and as whom.
    home_account: String,
    caller_arn: String,
    /// This worker's share, `K/N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    accounts: Vec<AccountView>,
    /// Accounts in scope keyrot did not look into, and why.
    skipped: Vec<SkippedAccount>,
    /// Users per state.
    summary: std::collections::BTreeMap<&'static str, usize>,
}

/// One account.
#[derive(Debug, Serialize)]
struct AccountView {
    account: String,
    account_name: String,
    ous: Vec<String>,
    /// `entered`, `exempt`, or `error`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exempt: Option<ExemptReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    users: Vec<UserView>,
}

/// An account not looked into.
#[derive(Debug, Serialize)]
struct SkippedAccount {
    account: String,
    account_name: String,
    /// `SUSPENDED`, `CLOSED`, ..., or `no target matches`.
    why: String,
}

/// `keyrot status --org`, `--ou`, or `--job` with an `[org]` table.
pub(super) async fn status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<u8> {
    let job = match &args.job {
        Some(path) => Job::load(path)?,
        None => Job::default(),
    };
    let job_path = args.job.as_ref().map(|p| p.display().to_string());
    if job.org.is_none() && !args.org.any() {
        bail!(
            "status --job reads organization jobs (with an [org] table, or with --org); for \
             other jobs pass --user, --users-file or --all-users"
        );
    }
    if args.all_users {
        bail!(
            "--all-users is implied with --org: every user of each account is shown (narrow \
             with --path-prefix, or pick some with --user)"
        );
    }
    let mut only: Vec<String> = args.user.clone();
    for user in &only {
        crate::cli::check_user_name(user)?;
    }
    if let Some(file) = &args.users_file {
        only.extend(keyrot::fleet::read_users_file(file).map_err(anyhow::Error::msg)?);
    }
    let mut org = OrgPlan::new(
        &args.org,
        &args.aws,
        &job,
        job_path.as_deref(),
        LOOKS_AT_A_TIME,
    )?
    .expect("an organization run");
    let rules = rules(args, &job, job_path.as_deref())?;
    org.run.screen.warn_within = rules.iter().filter_map(|r| r.options.warn_within).max();
    let home = org.home_aws(args.aws.clone().or(job.aws.clone()));
    home.check().await.map_err(anyhow::Error::msg)?;
    let (kind, dir) = state_options(&args.state, job.journal)?;
    let state = match kind {
        JournalKind::File => Some(StateDir::open(&dir)?),
        JournalKind::Iam => None,
    };
    let (census, home) = match org.census(&home, &rules).await? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let shard = org.run.shard.map(|s| s.to_string());
    let view = look(census, &rules, state.as_ref(), &only).await;
    let view = OrgStatusView {
        schema_version: keyrot::rotation::SCHEMA_VERSION,
        home_account: home.caller.account,
        caller_arn: home.caller.arn,
        shard,
        summary: summary(&view.0),
        accounts: view.0,
        skipped: view.1,
    };
    let failed = view
        .accounts
        .iter()
        .any(|a| a.error.is_some() || a.users.iter().any(|u| u.error.is_some()));
    let mut out = std::io::stdout().lock();
    match cli.output {
        Output::Json => render::json(&mut out, &view)?,
        Output::Text => text(&mut out, &view)?,
        Output::Csv => csv(&mut out, &view)?,
        Output::Prometheus => metrics(&mut out, &view)?,
    }
    out.flush()?;
    Ok(u8::from(failed))
}

/// The rules a job's targets (or the flags alone) give: place, path and
/// policy, without loading any plugin. Flags override every target.
fn rules(args: &StatusArgs, job: &Job, job_path: Option<&str>) -> anyhow::Result<Vec<Rule>> {
    let fleet_job = !job.target.is_empty();
    job.targets()
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let label = target_label(target, i, fleet_job);
            let in_job = |key: &str| {
                let at = if label.is_empty() {
                    String::new()
                } else {
                    format!("{label}: ")
                };
                format!("job file {}: {at}{key}", job_path.unwrap_or("?"))
            };
            if target.user.is_some() || !target.users.is_empty() || target.users_file.is_some() {
                bail!(
                    "{}: an organization run takes every user of each account under a path \
                     (path-prefix); pick some by name with --user",
                    in_job("user, users, users-file")
                );
            }
            let path_prefix = args
                .path_prefix
                .clone()
                .or_else(|| target.path_prefix.clone())
                .unwrap_or_else(|| "/".into());
            keyrot::fleet::check_path_prefix(&path_prefix)
                .map_err(|e| anyhow::anyhow!("--path-prefix: {e}"))?;
            let older_than = args.older_than.or(target.parsed.older_than);
            let warn_within = args.warn_within.or(target.parsed.warn_within);
            if warn_within.is_some() && older_than.is_none() {
                bail!(
                    "--warn-within (warn-within, warn-age) warns before a key reaches \
                     --older-than (older-than, max-age): give that too"
                );
            }
            Ok(Rule {
                place: place_of(target)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", in_job("ous, accounts")))?,
                label,
                path_prefix,
                options: RotateOptions {
                    older_than,
                    warn_within,
                    retire: target.retire.unwrap_or(RetireMode::Delete),
                    ..RotateOptions::default()
                },
                verify: false,
            })
        })
        .collect()
}

/// Looks at every user of every entered account, a few at a time.
async fn look(
    census: Census,
    rules: &[Rule],
    state: Option<&StateDir>,
    only: &[String],
) -> (Vec<AccountView>, Vec<SkippedAccount>) {
    let skipped = census
        .inactive
        .iter()
        .map(|a| skipped(a, &a.status))
        .chain(
            census
                .uncovered
                .iter()
                .map(|a| skipped(a, "no target matches")),
        )
        .collect();
    let mut accounts = Vec::new();
    let mut looks = Vec::new();
    for (index, found) in census.accounts.into_iter().enumerate() {
        let account = &found.account;
        let mut view = AccountView {
            account: account.id.clone(),
            account_name: account.name.clone(),
            ous: account.ous.clone(),
            state: "entered",
            exempt: None,
            error: None,
            users: Vec::new(),
        };
        match found.state {
            AccountState::Exempt(exempt) => {
                view.state = "exempt";
                view.exempt = Some(exempt);
            }
            AccountState::Unreached(unreached) => {
                view.state = "error";
                view.error = Some(unreached.why);
            }
            AccountState::Reached {
                reached,
                users,
                screen,
            } => {
                let journal: Arc<dyn Journal> = match state {
                    Some(state) => Arc::new(state.journal(Some(&account.id))),
                    None => Arc::new(IamTagJournal::new(
                        reached.iam.clone(),
                        IamTagJournal::DEFAULT_LEASE,
                    )),
                };
                for (user, rule) in users {
                    if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&user)) {
                        continue;
                    }
                    let (iam, journal, screen) =
                        (reached.iam.clone(), journal.clone(), screen.clone());
                    let rule = &rules[rule];
                    let (id, words) = (account.id.clone(), rule.words(account));
                    let label = rule.label.clone();
                    let policy = Policy {
                        older_than: rule.options.older_than,
                        warn_within: rule.options.warn_within,
                    };
                    looks.push(async move {
                        let mut view = user_view(&*iam, journal.as_ref(), &user, policy).await;
                        view.target = (!label.is_empty()).then_some(label);
                        view.rule = Some(words);
                        match screen.screen(&*iam, &id, &user).await {
                            Screened::Rotate(notes) => {
                                view.owner = notes.owner;
                                view.warnings.extend(notes.warnings);
                            }
                            Screened::Decided(report) => {
                                view.owner = report.owner;
                                view.warnings.extend(report.warnings);
                                match report.exempt {
                                    Some(exempt) => {
                                        view.state = "exempt";
                                        view.next = "nothing: exempt".into();
                                        view.exempt = Some(exempt);
                                    }
                                    None => {
                                        view.state = "error";
                                        view.error = report.error;
                                    }
                                }
                            }
                        }
                        (index, view)
                    });
                }
            }
        }
        accounts.push(view);
    }
    let mut seen: Vec<(usize, UserView)> = futures_util::stream::iter(looks)
        .buffered(LOOKS_AT_A_TIME)
        .collect()
        .await;
    for (index, view) in seen.drain(..) {
        accounts[index].users.push(view);
    }
    (accounts, skipped)
}

fn skipped(account: &OrgAccount, why: &str) -> SkippedAccount {
    SkippedAccount {
        account: account.id.clone(),
        account_name: account.name.clone(),
        why: why.to_string(),
    }
}

fn summary(accounts: &[AccountView]) -> std::collections::BTreeMap<&'static str, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for user in accounts.iter().flat_map(|a| &a.users) {
        *counts.entry(user.state).or_insert(0) += 1;
    }
    counts
}

fn text(out: &mut impl Write, view: &OrgStatusView) -> std::io::Result<()> {
    let shard = view
        .shard
        .as_deref()
        .map(|s| format!(", shard {s}"))
        .unwrap_or_default();
    writeln!(
        out,
        "organization seen from account {} (as {}){shard}",
        view.home_account, view.caller_arn
    )?;
    writeln!(
        out,
        "{:<12}  {:<16}  {:<24}  {:<12}  {:<8}  {:<8}  {:<10}  NEXT",
        "ACCOUNT", "NAME", "USER", "OWNER", "STATE", "AGE", "LAST USED"
    )?;
    for account in &view.accounts {
        for user in &account.users {
            let key = user
                .keys
                .iter()
                .find(|k| k.status == keyrot::KeyStatus::Active)
                .or(user.keys.first());
            let used = match key.and_then(|k| k.last_used.as_ref()) {
                Some(used) => used
                    .date
                    .as_deref()
                    .map_or("never".to_string(), |d| d.chars().take(10).collect()),
                None => "-".into(),
            };
            writeln!(
                out,
                "{:<12}  {:<16}  {:<24}  {:<12}  {:<8}  {:<8}  {:<10}  {}",
                account.account,
                escape_control(&account.account_name),
                user.user,
                escape_control(user.owner.as_deref().unwrap_or("-")),
                user.state,
                key.and_then(|k| k.age.as_deref()).unwrap_or("-"),
                used,
                user.next
            )?;
        }
    }
    let mut notes = Vec::new();
    for account in &view.accounts {
        let who = format!(
            "account {} ({})",
            account.account,
            escape_control(&account.account_name)
        );
        if let Some(exempt) = &account.exempt {
            notes.push(format!("{who}: {}", render::exempt_text(exempt)));
        }
        if let Some(error) = &account.error {
            notes.push(format!("{who}: error: {}", escape_control(error)));
        }
        for user in &account.users {
            let whose = format!("{} in {who}", user.user);
            if let Some(exempt) = &user.exempt {
                notes.push(format!("{whose}: {}", render::exempt_text(exempt)));
            }
            if let Some(error) = &user.error {
                notes.push(format!("{whose}: error: {}", escape_control(error)));
            }
            for warning in &user.warnings {
                notes.push(format!("{whose}: warning: {}", escape_control(warning)));
            }
        }
    }
    for skipped in &view.skipped {
        notes.push(format!(
            "account {} ({}) skipped: {}",
            skipped.account,
            escape_control(&skipped.account_name),
            skipped.why
        ));
    }
    if !notes.is_empty() {
        writeln!(out)?;
    }
    for note in notes {
        writeln!(out, "{note}")?;
    }
    let counts: Vec<String> = view
        .summary
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    writeln!(
        out,
        "\n{} accounts, {} users: {}",
        view.accounts.len(),
        view.accounts.iter().map(|a| a.users.len()).sum::<usize>(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    )
}

fn metrics(out: &mut impl Write, view: &OrgStatusView) -> std::io::Result<()> {
    let mut metrics = Metrics::default();
    let mut errors = 0;
    for account in &view.accounts {
        prometheus::account(
            &mut metrics,
            &account.account,
            &account.account_name,
            account.state,
            account.exempt.as_ref(),
        );
        errors += usize::from(account.error.is_some());
        for user in &account.users {
            prometheus::user(&mut metrics, &account.account, &account.account_name, user);
            errors += usize::from(user.error.is_some());
        }
    }
    prometheus::finish(&mut metrics, errors);
    metrics.write(out)
}

fn csv(out: &mut impl Write, view: &OrgStatusView) -> std::io::Result<()> {
    let mut rows = Rows::new(out)?;
    for account in &view.accounts {
        if account.state != "entered" {
            rows.account(
                &account.account,
                &account.account_name,
                account.state,
                account.exempt.as_ref(),
                account.error.as_deref(),
            )?;
        }
        for user in &account.users {
            rows.user(&account.account, Some(&account.account_name), user)?;
        }
    }
    for skipped in &view.skipped {
        rows.account(
            &skipped.account,
            &skipped.account_name,
            "skipped",
            None,
            None,
        )?;
    }
    Ok(())
}
