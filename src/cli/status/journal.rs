//! `keyrot journal show|clear` and `keyrot drain undo`: the journal an
//! interrupted run left, shown, removed on the operator's word, or a
//! drain put back.

use std::io::Write;
use std::sync::Arc;

use keyrot::rotation::unix_now;
use keyrot::{Iam, Journal, KeyStatus, StateDir};

use super::{Store, connect};
use crate::cli::args::{DrainArgs, JournalArgs, JournalCommand, JournalKind};
use crate::cli::{Cli, Output, check_user_name, render, state_options};

/// `keyrot journal show|clear`.
pub(in crate::cli) async fn journal(cli: &Cli, command: &JournalCommand) -> anyhow::Result<u8> {
    let (JournalCommand::Show(args) | JournalCommand::Clear(args)) = command;
    let user = &args.user;
    check_user_name(user)?;
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
            (Some(record), Output::Text | Output::Csv | Output::Prometheus) => {
                writeln!(out, "{}", serde_json::to_string_pretty(record)?)?
            }
            (None, Output::Text | Output::Csv | Output::Prometheus) => {
                writeln!(out, "no journal for user {user}")?
            }
        },
        (JournalCommand::Clear(_), None) => writeln!(out, "no journal for user {user}")?,
        (JournalCommand::Clear(_), Some((store, account))) => {
            if let Err(why) = clear(store, account, user, args.force).await? {
                // Another run holds the user: exit 1, as a second run would.
                crate::cli::stderr_line(format_args!(
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
pub(in crate::cli) async fn drain_undo(args: &DrainArgs) -> anyhow::Result<u8> {
    let user = &args.user;
    check_user_name(user)?;
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
