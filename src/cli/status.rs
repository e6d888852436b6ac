//! `keyrot status` and `keyrot journal`: look, change nothing (but `journal
//! clear`, which removes a record on the operator's word).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use keyrot::fleet;
use keyrot::{
    AccessKeyInfo, AwsIam, AwsOptions, CallerIdentity, FileJournal, Iam, IamErrorKind,
    IamTagJournal, Journal, JournalRecord, KeyLastUsed, KeyStatus, StateDir,
    rotation::{drain, human_duration, parse_rfc3339, resume, unix_now},
};
use serde::Serialize;

use super::args::{DrainArgs, JournalArgs, JournalCommand, JournalKind, StatusArgs};
use super::{Cli, Output, render, state_options};

/// One key as `status` shows it.
#[derive(Debug, Serialize)]
struct KeyView {
    access_key_id: String,
    status: KeyStatus,
    create_date: Option<String>,
    age: Option<String>,
    last_used: Option<KeyLastUsed>,
}

/// One user as `status` shows it.
#[derive(Debug, Serialize)]
struct UserView {
    user: String,
    keys: Vec<KeyView>,
    journal: Option<JournalRecord>,
    /// What a rotation would do now.
    next: String,
    error: Option<String>,
}

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
        anyhow::bail!("--path-prefix selects among all users: it needs --all-users");
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
    let mut users = Vec::new();
    for user in &names {
        users.push(user_view(&iam, journal.as_ref(), user, args.older_than).await);
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
    }
    out.flush()?;
    Ok(code)
}

async fn user_view(
    iam: &AwsIam,
    journal: &dyn Journal,
    user: &str,
    older_than: Option<Duration>,
) -> UserView {
    let mut view = UserView {
        user: user.to_string(),
        keys: Vec::new(),
        journal: None,
        next: String::new(),
        error: None,
    };
    let keys = match iam.list_access_keys(user).await {
        Ok(keys) => keys,
        Err(err) => {
            view.error = Some(if err.kind == IamErrorKind::NoSuchEntity {
                format!("iam user '{user}' does not exist")
            } else {
                format!("could not list the access keys: {err}")
            });
            view.next = "cannot tell".into();
            return view;
        }
    };
    match journal.peek(user).await {
        Ok(record) => view.journal = record,
        Err(err) => view.error = Some(err.to_string()),
    }
    for key in &keys {
        let last_used = match iam.access_key_last_used(&key.access_key_id).await {
            Ok(used) => Some(used),
            Err(err) => {
                tracing::warn!("no last use for {}: {err}", key.access_key_id);
                None
            }
        };
        view.keys.push(KeyView {
            access_key_id: key.access_key_id.clone(),
            status: key.status.clone(),
            create_date: key.create_date.clone(),
            age: age(key).map(human_duration),
            last_used,
        });
    }
    view.next = match view
        .journal
        .as_ref()
        .filter(|r| r.phase == keyrot::Phase::Draining)
    {
        Some(record) => drain_next(record, &keys, &view.keys),
        None => next(&keys, view.journal.as_ref(), older_than),
    };
    view
}

/// What a rotation would do now.
/// What the next run does with a draining old key (by the default drain
/// windows), from its last use.
fn drain_next(record: &JournalRecord, keys: &[AccessKeyInfo], views: &[KeyView]) -> String {
    let steps: Vec<String> = record
        .keys_before
        .iter()
        .map(|id| {
            let key = keys.iter().find(|k| &k.access_key_id == id);
            let used = views
                .iter()
                .find(|v| &v.access_key_id == id)
                .and_then(|v| v.last_used.clone())
                .unwrap_or_default();
            let policy = keyrot::rotation::DrainPolicy::default();
            match drain::decide(record, key, &used, unix_now(), &policy) {
                Some(step) => drain::describe(&step, id, &record.user, &used),
                None => format!("old key {id} is gone: the drain ends"),
            }
        })
        .collect();
    format!(
        "drain (since {}): {}",
        keyrot::rotation::rfc3339(record.handed_over.unwrap_or(record.started)),
        steps.join("; ")
    )
}

fn next(
    keys: &[AccessKeyInfo],
    journal: Option<&JournalRecord>,
    older: Option<Duration>,
) -> String {
    if let Some(record) = journal.filter(|r| r.phase != keyrot::Phase::Claimed) {
        let then = match resume::plan(record, keys, unix_now()) {
            Err(why) => format!("stop with exit 2: {why}"),
            Ok(plan) => {
                let mut steps = Vec::new();
                if !plan.delete.is_empty() {
                    steps.push(format!("delete {}", plan.delete.join(", ")));
                }
                if !plan.retire.is_empty() {
                    let ids: Vec<&str> = plan
                        .retire
                        .iter()
                        .map(|k| k.access_key_id.as_str())
                        .collect();
                    steps.push(format!("{} {}", record.retire.as_str(), ids.join(", ")));
                }
                steps.push(if plan.afresh { "rotate afresh" } else { "done" }.into());
                steps.join(", then ")
            }
        };
        return format!(
            "resume: finish the interrupted run of {} (phase {}): {then}",
            record.owner,
            record.phase.as_str()
        );
    }
    let active: Vec<&AccessKeyInfo> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .collect();
    if active.len() >= 2 {
        return "refuse: two active keys".into();
    }
    if let (Some(threshold), Some(key)) = (older, active.first())
        && let Some(age) = age(key)
        && age < threshold
    {
        return format!(
            "skip: younger than {} (age {})",
            human_duration(threshold),
            human_duration(age)
        );
    }
    let not_active: Vec<&str> = keys
        .iter()
        .filter(|k| k.status != KeyStatus::Active)
        .map(|k| k.access_key_id.as_str())
        .collect();
    if keys.len() >= 2 && !not_active.is_empty() {
        return format!(
            "rotate, making room: delete inactive {}",
            not_active.join(", ")
        );
    }
    "rotate".into()
}

fn age(key: &AccessKeyInfo) -> Option<Duration> {
    let created = parse_rfc3339(key.create_date.as_deref()?)?;
    Some(Duration::from_secs(unix_now().saturating_sub(created)))
}

fn text(out: &mut impl Write, view: &StatusView) -> std::io::Result<()> {
    writeln!(out, "account {} (as {})", view.account, view.caller_arn)?;
    for user in &view.users {
        writeln!(out, "user {}", user.user)?;
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
        writeln!(out, "  next: {}", user.next)?;
    }
    Ok(())
}

/// `keyrot journal show|clear`.
pub(super) async fn journal(cli: &Cli, command: &JournalCommand) -> anyhow::Result<u8> {
    let (JournalCommand::Show(args) | JournalCommand::Clear(args)) = command;
    let user = &args.user;
    super::check_user_name(user)?;
    let store = match journal_store(args).await? {
        Ok(store) => store,
        Err(code) => return Ok(code),
    };
    let record = match &store {
        None => None,
        Some((store, _)) => store
            .journal()
            .peek(user)
            .await
            .or_else(|err| match command {
                // A record too broken to read can still be removed.
                JournalCommand::Clear(_) if err.is_bad_input() => Ok(None),
                _ => Err(err),
            })?,
    };
    let mut out = std::io::stdout().lock();
    match (command, &store) {
        (JournalCommand::Show(_), _) => match (&record, cli.output) {
            (_, Output::Json) => render::json(&mut out, &record)?,
            (Some(record), Output::Text) => {
                writeln!(out, "{}", serde_json::to_string_pretty(record)?)?
            }
            (None, Output::Text) => writeln!(out, "no journal for user {user}")?,
        },
        (JournalCommand::Clear(_), None) => writeln!(out, "no journal for user {user}")?,
        (JournalCommand::Clear(_), Some((store, account))) => {
            if let Err(why) = clear(store, account, user, args.force).await? {
                // Another run holds the user: exit 1, as a second run would.
                super::stderr_line(format_args!(
                    "error: {why}: the run that holds it would lose its record; let it end, or \
                     pass --force if it is gone (nothing was changed)"
                ));
                return Ok(1);
            }
            writeln!(out, "journal for user {user} cleared")?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// Where the user's journal is, and the account: `None` when the file
/// journal has no record for the user in any account; `Err(code)` when the
/// IAM journal's account cannot be reached. The file journal needs no AWS
/// call: the account is given, or found in the state directory.
async fn journal_store(args: &JournalArgs) -> anyhow::Result<Result<Option<(Store, String)>, u8>> {
    let (kind, dir) = state_options(&args.state, None)?;
    if kind == JournalKind::Iam {
        return Ok(match connect(&args.aws, &args.state).await? {
            Ok((_iam, caller, store)) => Ok(Some((store, caller.account))),
            Err(code) => Err(code),
        });
    }
    let state = StateDir::open(&dir)?;
    let account = match &args.account {
        Some(account) => Some(account.clone()),
        None => match state.accounts_with_journal(&args.user)?.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            several => anyhow::bail!(
                "user {} has journals in accounts {}: pass --account ID",
                args.user,
                several.join(", ")
            ),
        },
    };
    Ok(Ok(account.map(|account| {
        let journal = Arc::new(state.journal(Some(&account)));
        (Store::File(state, journal), account)
    })))
}

/// Removes the user's journal, under the user's lock (file journal) or
/// unless a live lease holds it (IAM journal); `--force` skips both.
/// `Ok(Err(why))`: another run holds the user.
async fn clear(
    store: &Store,
    account: &str,
    user: &str,
    force: bool,
) -> anyhow::Result<Result<(), String>> {
    match store {
        Store::File(state, journal) => {
            let _lock = match state.lock(Some(account), user, None) {
                Ok(lock) => Some(lock),
                Err(_) if force => None,
                Err(keyrot::rotation::JournalError::Busy { owner, .. }) => {
                    return Ok(Err(format!("keyrot run ({owner}) holds user '{user}'")));
                }
                Err(err) => return Err(err.into()),
            };
            journal.clear(user).await?;
        }
        Store::Iam(journal) => {
            if !force && let Some((owner, until)) = journal.holder(user).await? {
                return Ok(Err(format!(
                    "keyrot run {owner} holds user '{user}' (its lease ends {})",
                    keyrot::rotation::rfc3339(until)
                )));
            }
            journal.remove_all(user).await?;
        }
    }
    Ok(Ok(()))
}

/// `keyrot drain undo`: a draining old key that was deactivated is made
/// active again, and its drain restarts now (a consumer was missed).
pub(super) async fn drain_undo(args: &DrainArgs) -> anyhow::Result<u8> {
    let user = &args.user;
    super::check_user_name(user)?;
    let (iam, _caller, store) = match connect(&args.aws, &args.state).await? {
        Ok(connected) => connected,
        Err(code) => return Ok(code),
    };
    let journal = store.journal();
    // As a run would: under the user's lock, or its lease.
    let record = journal.begin(user).await?;
    let undone = async {
        let Some(mut record) =
            record.filter(|r| r.phase == keyrot::Phase::Draining && r.deactivated.is_some())
        else {
            anyhow::bail!(
                "user {user} has no old key that a drain deactivated (`keyrot status --user \
                 {user}` shows its keys and journal); nothing was changed"
            );
        };
        for key in &record.keys_before {
            iam.update_access_key_status(user, key, KeyStatus::Active)
                .await
                .map_err(|e| anyhow::anyhow!("could not make old key {key} active again: {e}"))?;
        }
        record.deactivated = None;
        record.handed_over = Some(unix_now());
        journal.save(&record).await?;
        Ok(record.keys_before)
    }
    .await;
    journal.release(user).await;
    let keys = undone?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "old key {} of user {user} is active again; its drain restarts now (a later run \
         deactivates it once IAM has seen it unused for --drain-quiet)",
        keys.join(", ")
    )?;
    out.flush()?;
    Ok(0)
}
