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

use super::state::{JournalRecord, Phase};
use crate::iam::{AccessKeyInfo, KeyStatus};
use crate::time::{parse_rfc3339, rfc3339};

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
    /// A drain in progress: its old keys go when nothing uses them
    /// ([`super::drain`]), and no new rotation starts meanwhile.
    pub drain: bool,
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
    let evidence = Evidence { record, keys, now };
    let plan = match record.phase {
        Phase::Claimed => ResumePlan::afresh("it had changed nothing; rotating afresh".into()),
        Phase::CreateSent => evidence.create_sent()?,
        Phase::Created => evidence.created()?,
        Phase::Propagated => evidence.propagated()?,
        Phase::Draining => evidence.draining()?,
    };
    evidence.check_old_keys()?;
    Ok(plan)
}

impl ResumePlan {
    fn afresh(summary: String) -> Self {
        Self {
            delete: Vec::new(),
            retire: Vec::new(),
            keep: None,
            afresh: true,
            carry_window: None,
            drain: false,
            summary,
        }
    }
}

/// What the record says, and what IAM shows now.
struct Evidence<'a> {
    record: &'a JournalRecord,
    keys: &'a [AccessKeyInfo],
    now: u64,
}

impl Evidence<'_> {
    fn find(&self, id: &str) -> Option<&AccessKeyInfo> {
        self.keys.iter().find(|k| k.access_key_id == id)
    }

    /// Whether IAM created `key` inside the run's create window.
    fn in_window(&self, key: &AccessKeyInfo) -> bool {
        let (from, until) = self.record.create_window();
        created(key).is_some_and(|t| (from..=until).contains(&t))
    }

    fn window(&self) -> String {
        let (from, until) = self.record.create_window();
        format!("{} to {}", rfc3339(from), rfc3339(until))
    }

    /// Keys IAM has that the record names neither as old nor as new.
    fn unknown(&self) -> Vec<&AccessKeyInfo> {
        let record = self.record;
        self.keys
            .iter()
            .filter(|k| {
                !record.keys_before.contains(&k.access_key_id)
                    && record.new_key.as_deref() != Some(k.access_key_id.as_str())
            })
            .collect()
    }

    /// Why the run's active key no longer being active stops the resume.
    fn active_gone(&self) -> Result<(), String> {
        let Some(active) = self.record.active_before.as_deref() else {
            return Ok(());
        };
        if self
            .find(active)
            .is_some_and(|k| k.status == KeyStatus::Active)
        {
            return Ok(());
        }
        Err(format!(
            "an interrupted run on user '{}' (phase {}) found key {active} active, and it no \
             longer is",
            self.record.user,
            self.record.phase.as_str()
        ))
    }

    /// The create's answer never reached the record: a key IAM made inside
    /// the window, unknown to the record, is the run's.
    fn create_sent(&self) -> Result<ResumePlan, String> {
        let user = &self.record.user;
        let unknown = self.unknown();
        let (theirs, foreign): (Vec<&AccessKeyInfo>, Vec<&AccessKeyInfo>) =
            unknown.iter().partition(|k| self.in_window(k));
        if !foreign.is_empty() {
            return Err(format!(
                "user '{user}' has key(s) {} that the interrupted run did not know, created \
                 outside the window in which its CreateAccessKey could have been applied ({})",
                described(&foreign),
                self.window()
            ));
        }
        match theirs.as_slice() {
            [] if self.record.create_may_still_land(self.now) => {
                let mut plan = ResumePlan::afresh(format!(
                    "nothing to undo yet: its CreateAccessKey may still be applied until {}; \
                     rotating afresh, and a later run deletes that key if it appears",
                    rfc3339(self.record.started + super::state::CREATE_LANDS_WITHIN)
                ));
                plan.carry_window = Some(self.record.started);
                Ok(plan)
            }
            [] => Ok(ResumePlan::afresh(
                "its create was never applied: nothing to undo; rotating afresh".into(),
            )),
            [key] => {
                self.active_gone()?;
                Ok(self.delete(&key.access_key_id))
            }
            several => Err(format!(
                "user '{user}' has keys {} that the interrupted run did not know, and cannot \
                 tell which one it created",
                described(several)
            )),
        }
    }

    /// The new key exists, or did: it may be stored somewhere, but was
    /// never confirmed handed over.
    fn created(&self) -> Result<ResumePlan, String> {
        let new = self.record.new_key.as_deref().unwrap_or_default();
        let unknown = self.unknown();
        if !unknown.is_empty() {
            return Err(format!(
                "user '{}' has key(s) {} that the interrupted run did not know",
                self.record.user,
                described(&unknown)
            ));
        }
        let Some(key) = self.find(new) else {
            return Ok(ResumePlan::afresh(format!(
                "its new key {new} is gone: nothing to undo; rotating afresh"
            )));
        };
        if !self.in_window(key) {
            return Err(not_in_window(self.record, key, &self.window()));
        }
        self.active_gone()?;
        Ok(self.delete(new))
    }

    /// The handler stored the new key: retire the old ones, keep it.
    fn propagated(&self) -> Result<ResumePlan, String> {
        let new = self.record.new_key.as_deref().unwrap_or_default();
        let Some(key) = self.find(new).filter(|k| k.status == KeyStatus::Active) else {
            return Err(format!(
                "an interrupted run on user '{}' propagated key {new}, which is no longer \
                 active: retiring the old keys would leave none",
                self.record.user
            ));
        };
        if !self.in_window(key) {
            return Err(not_in_window(self.record, key, &self.window()));
        }
        let mut plan = ResumePlan::afresh(format!(
            "its new key {new} was propagated: retired the old keys ({})",
            self.record.retire.as_str()
        ));
        plan.retire = self
            .record
            .keys_before
            .iter()
            .filter_map(|id| self.find(id).cloned())
            .collect();
        plan.keep = Some(new.to_string());
        plan.afresh = false;
        Ok(plan)
    }

    /// A drain in progress: its new key must still be the user's, as for
    /// `propagated`; the old keys are the drain's to retire.
    fn draining(&self) -> Result<ResumePlan, String> {
        let mut plan = self.propagated()?;
        plan.retire.clear();
        plan.drain = true;
        plan.summary = format!(
            "its old key(s) {} drain since {}",
            self.record.keys_before.join(", "),
            rfc3339(self.record.handed_over.unwrap_or(self.record.started))
        );
        Ok(plan)
    }

    /// Delete the run's key `id`, then rotate afresh.
    fn delete(&self, id: &str) -> ResumePlan {
        let mut plan = ResumePlan::afresh(format!(
            "deleted key {id} that it had created but not confirmed propagated; rotating afresh"
        ));
        plan.delete.push(id.to_string());
        plan
    }

    /// Keys the record says were there before must have been: one created
    /// after the run started was not.
    fn check_old_keys(&self) -> Result<(), String> {
        let record = self.record;
        for id in &record.keys_before {
            if let Some(t) = self.find(id).and_then(created)
                && t > record.started + super::state::CLOCK_SKEW
            {
                return Err(format!(
                    "the journal of an interrupted run on user '{}' lists key {id} as one the \
                     user had before it started ({}), but IAM says {id} was created at {}",
                    record.user,
                    rfc3339(record.started),
                    rfc3339(t)
                ));
            }
        }
        Ok(())
    }
}

/// When IAM says `key` was created.
fn created(key: &AccessKeyInfo) -> Option<u64> {
    key.create_date.as_deref().and_then(parse_rfc3339)
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
            handed_over: None,
            deactivated: None,
            abandoned: Vec::new(),
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
