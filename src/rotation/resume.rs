//! What a run does about a record an interrupted run left: a pure function
//! of (record, the keys IAM shows now, the time), so every pair can be
//! tested, and a dry run or `keyrot status` can say what a real run would
//! do without doing it.
//!
//! A rerun may delete a key only when the record *and* IAM agree it is the
//! interrupted run's and nobody holds it: the record names it (or, before
//! the create's answer was recorded, it is the one key IAM made that the
//! record does not know), and IAM's creation time puts it inside the window
//! in which that run's `CreateAccessKey` could have been applied. Anything
//! else is someone else's doing: the rerun stops and says what it found.

use super::report::{parse_rfc3339, rfc3339};
use super::state::{JournalRecord, Phase};
use crate::iam::{AccessKeyInfo, KeyStatus};

/// What to do about an interrupted run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// Keys the interrupted run made and never handed over: delete them.
    pub delete: Vec<String>,
    /// Its old keys, still there, to retire (phase `propagated`).
    pub retire: Vec<AccessKeyInfo>,
    /// Its new key, which stays (phase `propagated`).
    pub keep: Option<String>,
    /// Whether a fresh rotation follows.
    pub afresh: bool,
    /// A create of the interrupted run whose answer was lost may still be
    /// applied by IAM: its start, carried into the fresh run's record so
    /// that the key it makes is still recognised.
    pub carry_window: Option<u64>,
    /// What this run does about it, in words.
    pub summary: String,
}

/// Plans the resume of `record` against `keys`, or says why IAM no longer
/// matches it.
pub fn plan(
    record: &JournalRecord,
    keys: &[AccessKeyInfo],
    now: u64,
) -> Result<ResumePlan, String> {
    let user = &record.user;
    let phase = record.phase.as_str();
    let find = |id: &str| keys.iter().find(|k| k.access_key_id == id);
    let is_active = |id: &str| find(id).is_some_and(|k| k.status == KeyStatus::Active);
    let (from, until) = record.create_window();
    let created = |key: &AccessKeyInfo| key.create_date.as_deref().and_then(parse_rfc3339);
    let in_window = |key: &AccessKeyInfo| created(key).is_some_and(|t| (from..=until).contains(&t));
    let window = format!("{} to {}", rfc3339(from), rfc3339(until));
    let mut plan = ResumePlan {
        delete: Vec::new(),
        retire: Vec::new(),
        keep: None,
        afresh: true,
        carry_window: None,
        summary: String::new(),
    };

    let unknown: Vec<&AccessKeyInfo> = keys
        .iter()
        .filter(|k| {
            !record.keys_before.contains(&k.access_key_id)
                && record.new_key.as_deref() != Some(k.access_key_id.as_str())
        })
        .collect();
    let active_gone = || -> Option<String> {
        let active = record.active_before.as_deref()?;
        (!is_active(active)).then(|| {
            format!(
                "an interrupted run on user '{user}' (phase {phase}) found key {active} active, \
                 and it no longer is"
            )
        })
    };

    match record.phase {
        Phase::Claimed => {
            plan.summary = "it had changed nothing; rotating afresh".into();
        }
        Phase::CreateSent => {
            // The create's answer never reached the record: a key IAM made
            // inside the window, unknown to the record, is the run's.
            let (theirs, foreign): (Vec<&AccessKeyInfo>, Vec<&AccessKeyInfo>) =
                unknown.iter().partition(|k| in_window(k));
            if !foreign.is_empty() {
                return Err(format!(
                    "user '{user}' has key(s) {} that the interrupted run did not know, \
                     created outside the window in which its CreateAccessKey could have been \
                     applied ({window})",
                    described(&foreign)
                ));
            }
            match theirs.as_slice() {
                [] => {
                    if record.create_may_still_land(now) {
                        plan.carry_window = Some(record.started);
                        plan.summary = format!(
                            "nothing to undo yet: its CreateAccessKey may still be applied \
                             until {}; rotating afresh, and a later run deletes that key if it \
                             appears",
                            rfc3339(record.started + super::state::CREATE_LANDS_WITHIN)
                        );
                    } else {
                        plan.summary = "its create was never applied: nothing to undo; \
                                        rotating afresh"
                            .into();
                    }
                }
                [key] => {
                    if let Some(why) = active_gone() {
                        return Err(why);
                    }
                    plan.delete.push(key.access_key_id.clone());
                    plan.summary = format!(
                        "deleted key {} that it had created but not confirmed propagated; \
                         rotating afresh",
                        key.access_key_id
                    );
                }
                several => {
                    return Err(format!(
                        "user '{user}' has keys {} that the interrupted run did not know, and \
                         cannot tell which one it created",
                        described(several)
                    ));
                }
            }
        }
        Phase::Created => {
            let new = record.new_key.as_deref().unwrap_or_default();
            if !unknown.is_empty() {
                return Err(format!(
                    "user '{user}' has key(s) {} that the interrupted run did not know",
                    described(&unknown)
                ));
            }
            match find(new) {
                Some(key) => {
                    if !in_window(key) {
                        return Err(not_in_window(record, key, &window));
                    }
                    if let Some(why) = active_gone() {
                        return Err(why);
                    }
                    plan.delete.push(new.to_string());
                    plan.summary = format!(
                        "deleted key {new} that it had created but not confirmed propagated; \
                         rotating afresh"
                    );
                }
                None => {
                    plan.summary =
                        format!("its new key {new} is gone: nothing to undo; rotating afresh");
                }
            }
        }
        Phase::Propagated => {
            let new = record.new_key.as_deref().unwrap_or_default();
            let Some(key) = find(new).filter(|k| k.status == KeyStatus::Active) else {
                return Err(format!(
                    "an interrupted run on user '{user}' propagated key {new}, which is no longer \
                     active: retiring the old keys would leave none"
                ));
            };
            if !in_window(key) {
                return Err(not_in_window(record, key, &window));
            }
            plan.retire = record
                .keys_before
                .iter()
                .filter_map(|id| find(id).cloned())
                .collect();
            plan.keep = Some(new.to_string());
            plan.afresh = false;
            plan.summary = format!(
                "its new key {new} was propagated: retired the old keys ({})",
                record.retire.as_str()
            );
        }
    }
    // Keys the record says were there before must have been: one created
    // after the run started was not.
    for id in &record.keys_before {
        if let Some(key) = find(id)
            && let Some(t) = created(key)
            && t > record.started + super::state::CLOCK_SKEW
        {
            return Err(format!(
                "the journal of an interrupted run on user '{user}' lists key {id} as one the \
                 user had before it started ({}), but IAM says {id} was created at {}",
                rfc3339(record.started),
                rfc3339(t)
            ));
        }
    }
    Ok(plan)
}

fn not_in_window(record: &JournalRecord, key: &AccessKeyInfo, window: &str) -> String {
    format!(
        "the journal of an interrupted run on user '{}' names key {} as the one it created, but \
         IAM says it was created {}, outside the window in which that run could have created it \
         ({window})",
        record.user,
        key.access_key_id,
        key.create_date
            .as_deref()
            .map_or("at an unknown time".to_string(), |d| format!("at {d}"))
    )
}

fn described(keys: &[&AccessKeyInfo]) -> String {
    keys.iter()
        .map(|k| match &k.create_date {
            Some(date) => format!("{} (created {date})", k.access_key_id),
            None => k.access_key_id.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    //! Every phase against what IAM may show after a crash: the keys as the
    //! run left them, keys someone else made, keys gone, times that do not
    //! fit, and the clock after the window.

    use super::*;
    use crate::rotation::state::{CLOCK_SKEW, CREATE_LANDS_WITHIN, RetireMode};

    const T: u64 = 1_796_205_600; // the interrupted run's start
    const K0: &str = "AKIAOLDOLDOLDOLDOLD0";
    const K1: &str = "AKIAINACTIVEINACTIV1";
    const NEW: &str = "AKIANEWNEWNEWNEWNEW1";
    const HAND: &str = "AKIABYHANDBYHANDBYH1";

    fn record(phase: Phase) -> JournalRecord {
        JournalRecord {
            version: JournalRecord::VERSION,
            account: Some("123456789012".into()),
            user: "ci-bot".into(),
            phase,
            keys_before: vec![K0.into()],
            active_before: Some(K0.into()),
            new_key: matches!(phase, Phase::Created | Phase::Propagated).then(|| NEW.into()),
            retire: RetireMode::Delete,
            started: T,
            owner: "host:1:abcd".into(),
            lease_until: 0,
        }
    }

    fn key(id: &str, status: KeyStatus, created: u64) -> AccessKeyInfo {
        AccessKeyInfo {
            access_key_id: id.into(),
            status,
            create_date: Some(rfc3339(created)),
        }
    }

    fn old() -> AccessKeyInfo {
        key(K0, KeyStatus::Active, T - 90 * 86_400)
    }

    fn new(status: KeyStatus) -> AccessKeyInfo {
        key(NEW, status, T + 3)
    }

    fn ok(record: &JournalRecord, keys: &[AccessKeyInfo], now: u64) -> ResumePlan {
        plan(record, keys, now).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(record: &JournalRecord, keys: &[AccessKeyInfo], now: u64) -> String {
        plan(record, keys, now).expect_err("refused")
    }

    #[test]
    fn create_sent_deletes_the_one_key_made_in_its_window() {
        let plan = ok(
            &record(Phase::CreateSent),
            &[old(), new(KeyStatus::Active)],
            T + 60,
        );
        assert_eq!(plan.delete, [NEW]);
        assert!(plan.afresh && plan.carry_window.is_none());
    }

    #[test]
    fn create_sent_with_nothing_made_carries_its_window_while_it_is_open() {
        let plan = ok(&record(Phase::CreateSent), &[old()], T + 60);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.carry_window, Some(T));
        assert!(
            plan.summary.contains("may still be applied"),
            "{}",
            plan.summary
        );
        let later = ok(
            &record(Phase::CreateSent),
            &[old()],
            T + CREATE_LANDS_WITHIN + 1,
        );
        assert_eq!(later.carry_window, None);
    }

    #[test]
    fn create_sent_never_claims_a_key_made_after_its_window() {
        // A stale record (48 h) and a key someone made by hand since.
        let hand = key(HAND, KeyStatus::Active, T + 48 * 3600);
        let why = refused(
            &record(Phase::CreateSent),
            &[old(), hand],
            T + 48 * 3600 + 60,
        );
        assert!(
            why.contains(HAND) && why.contains("outside the window"),
            "{why}"
        );
    }

    #[test]
    fn create_sent_never_claims_an_older_key() {
        // The only key, made before the run: never "the run's".
        let mut record = record(Phase::CreateSent);
        record.keys_before.clear();
        record.active_before = None;
        let why = refused(&record, &[old()], T + 60);
        assert!(why.contains(K0), "{why}");
    }

    #[test]
    fn create_sent_refuses_two_candidates() {
        let mut record = record(Phase::CreateSent);
        record.keys_before.clear();
        record.active_before = None;
        let keys = [new(KeyStatus::Active), key(HAND, KeyStatus::Active, T + 5)];
        assert!(refused(&record, &keys, T + 60).contains("cannot tell"));
    }

    #[test]
    fn create_sent_refuses_when_the_active_key_went() {
        let inactive = key(K0, KeyStatus::Inactive, T - 86_400);
        let why = refused(
            &record(Phase::CreateSent),
            &[inactive, new(KeyStatus::Active)],
            T + 60,
        );
        assert!(why.contains("no longer is"), "{why}");
    }

    #[test]
    fn the_window_tolerates_clock_skew_and_no_more() {
        let record = record(Phase::CreateSent);
        let edge = key(NEW, KeyStatus::Active, T - CLOCK_SKEW);
        assert_eq!(ok(&record, &[old(), edge], T).delete, [NEW]);
        let before = key(NEW, KeyStatus::Active, T - CLOCK_SKEW - 1);
        refused(&record, &[old(), before], T);
        let last = key(NEW, KeyStatus::Active, T + CREATE_LANDS_WITHIN + CLOCK_SKEW);
        assert_eq!(ok(&record, &[old(), last], T + 3600).delete, [NEW]);
        let after = key(
            NEW,
            KeyStatus::Active,
            T + CREATE_LANDS_WITHIN + CLOCK_SKEW + 1,
        );
        refused(&record, &[old(), after], T + 3600);
    }

    #[test]
    fn a_key_without_a_creation_date_is_never_attributed() {
        let undated = AccessKeyInfo {
            access_key_id: NEW.into(),
            status: KeyStatus::Active,
            create_date: None,
        };
        refused(&record(Phase::CreateSent), &[old(), undated], T + 60);
    }

    #[test]
    fn created_deletes_its_new_key_or_finds_nothing_to_undo() {
        let plan = ok(
            &record(Phase::Created),
            &[old(), new(KeyStatus::Active)],
            T + 60,
        );
        assert_eq!(plan.delete, [NEW]);
        let plan = ok(&record(Phase::Created), &[old()], T + 60);
        assert!(plan.delete.is_empty() && plan.afresh);
    }

    #[test]
    fn created_refuses_a_new_key_from_outside_its_window() {
        // A record naming the user's long-standing key as "new".
        let mut record = record(Phase::Created);
        record.keys_before.clear();
        record.active_before = None;
        record.new_key = Some(K0.into());
        let why = refused(&record, &[old()], T + 60);
        assert!(why.contains("outside the window"), "{why}");
    }

    #[test]
    fn created_refuses_keys_it_did_not_know() {
        let hand = key(HAND, KeyStatus::Inactive, T + 30);
        refused(
            &record(Phase::Created),
            &[old(), new(KeyStatus::Active), hand],
            T + 60,
        );
    }

    #[test]
    fn propagated_retires_the_old_keys_and_keeps_the_new_one() {
        let mut record = record(Phase::Propagated);
        record.keys_before.push(K1.into());
        let inactive = key(K1, KeyStatus::Inactive, T - 86_400);
        let plan = ok(&record, &[old(), inactive, new(KeyStatus::Active)], T + 60);
        assert_eq!(plan.retire.len(), 2);
        assert_eq!(plan.keep.as_deref(), Some(NEW));
        assert!(plan.delete.is_empty() && !plan.afresh);
    }

    #[test]
    fn propagated_refuses_when_its_new_key_is_not_active() {
        refused(&record(Phase::Propagated), &[old()], T + 60);
        refused(
            &record(Phase::Propagated),
            &[old(), new(KeyStatus::Inactive)],
            T + 60,
        );
    }

    #[test]
    fn propagated_refuses_a_forged_pair_of_keys() {
        // "o=NEW n=K0": the long-standing key claimed as the new one.
        let mut record = record(Phase::Propagated);
        record.keys_before = vec![NEW.into()];
        record.active_before = Some(NEW.into());
        record.new_key = Some(K0.into());
        let why = refused(&record, &[old(), new(KeyStatus::Active)], T + 60);
        assert!(why.contains("IAM says"), "{why}");
    }

    #[test]
    fn an_old_key_made_after_the_run_started_is_refused() {
        let mut record = record(Phase::Propagated);
        record.keys_before = vec![HAND.into()];
        record.active_before = Some(HAND.into());
        let hand = key(HAND, KeyStatus::Active, T + 3600);
        let why = refused(&record, &[hand, new(KeyStatus::Active)], T + 7200);
        assert!(why.contains("was created at"), "{why}");
    }
}
