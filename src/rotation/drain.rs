//! Drain mode's decision: what to do with an old key the handler's new key
//! replaced, from IAM's own record of the old key's last use. A pure
//! function of (the draining record, the key as IAM lists it, its last
//! use, the time, the policy), so every case is tested without waiting
//! days, and `keyrot status` and a dry run say what a run would do.
//!
//! An old key drains in three stages, one scheduled run after another:
//!
//! 1. **active**: used within the last [`DrainPolicy::quiet`] window (or
//!    handed over less than a window ago, as IAM records use late): kept;
//!    still used after [`DrainPolicy::timeout`]: a person must look;
//! 2. **deactivated** once quiet for a whole window: a consumer that was
//!    missed breaks now, visibly, and `keyrot drain undo` puts the key back;
//! 3. **deleted** once [`DrainPolicy::grace`] has passed since.

use std::time::Duration;

use serde::Serialize;

use super::state::{CLOCK_SKEW, JournalRecord};
use crate::iam::{AccessKeyInfo, KeyLastUsed, KeyStatus};
use crate::time::{parse_rfc3339, rfc3339};

/// How long drain mode waits, and whether it may retire a key in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainPolicy {
    /// A key unused this long is no longer in use (`--drain-quiet`): longer
    /// than IAM's delay in recording use and than a daily job's period.
    pub quiet: Duration,
    /// How long a deactivated key waits before it is deleted
    /// (`--drain-grace`): the time to notice a missed consumer.
    pub grace: Duration,
    /// A key still used this long after the handover needs a person
    /// (`--drain-timeout`).
    pub timeout: Duration,
    /// Delete a key still in use after the timeout anyway (`--force`).
    pub force: bool,
}

impl DrainPolicy {
    /// The default quiet window: one day.
    pub const DEFAULT_QUIET: Duration = Duration::from_secs(24 * 3600);
    /// The default grace: three days.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(3 * 24 * 3600);
    /// The default timeout: fourteen days.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(14 * 24 * 3600);
}

impl Default for DrainPolicy {
    fn default() -> Self {
        Self {
            quiet: Self::DEFAULT_QUIET,
            grace: Self::DEFAULT_GRACE,
            timeout: Self::DEFAULT_TIMEOUT,
            force: false,
        }
    }
}

/// What to do with a draining key now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum DrainStep {
    /// Used within the quiet window: keep it active.
    InUse,
    /// Not used lately, but handed over less than a quiet window ago: IAM
    /// may not have recorded the last use yet. Keep it until `until`.
    Wait {
        /// Unix seconds.
        until: u64,
    },
    /// Quiet for a whole window: deactivate it now.
    Deactivate,
    /// Deactivated, waiting out the grace until `until`.
    Grace {
        /// Unix seconds.
        until: u64,
    },
    /// The grace has passed: delete it now.
    Delete,
    /// Used after the timeout: a person must look; nothing is deleted.
    TimedOut,
    /// Used after the timeout, and `--force`: delete it now anyway.
    ForceDelete,
    /// Found active again after it was deactivated (`keyrot drain undo`,
    /// or by hand): its drain restarts.
    Restart,
}

impl DrainStep {
    /// Whether the key goes now (deleted).
    pub fn deletes(&self) -> bool {
        matches!(self, DrainStep::Delete | DrainStep::ForceDelete)
    }
}

/// Decides what to do with the draining `key` now. `None` for a key IAM no
/// longer has (someone deleted it): nothing left to drain.
pub fn decide(
    record: &JournalRecord,
    key: Option<&AccessKeyInfo>,
    last_used: &KeyLastUsed,
    now: u64,
    policy: &DrainPolicy,
) -> Option<DrainStep> {
    let key = key?;
    let handed_over = record.handed_over.unwrap_or(record.started);
    let quiet = policy.quiet.as_secs();
    if let Some(deactivated) = record.deactivated {
        if key.status == KeyStatus::Active {
            return Some(DrainStep::Restart);
        }
        let until = deactivated + policy.grace.as_secs();
        return Some(if now >= until {
            DrainStep::Delete
        } else {
            DrainStep::Grace { until }
        });
    }
    // Use keyrot made with the key before the handover (its own calls, a
    // consumer long gone) ages out like any other: only the last use counts.
    let used = last_used.date.as_deref().and_then(parse_rfc3339);
    let in_use = used.is_some_and(|t| t + quiet + CLOCK_SKEW > now);
    if in_use {
        let late = now >= handed_over + policy.timeout.as_secs();
        return Some(match (late, policy.force) {
            (false, _) => DrainStep::InUse,
            (true, false) => DrainStep::TimedOut,
            (true, true) => DrainStep::ForceDelete,
        });
    }
    let until = handed_over + quiet;
    Some(if now >= until {
        DrainStep::Deactivate
    } else {
        DrainStep::Wait { until }
    })
}

/// The step in words, for reports, `keyrot status` and dry runs.
pub fn describe(step: &DrainStep, key: &str, user: &str, last_used: &KeyLastUsed) -> String {
    let used = match (&last_used.date, &last_used.service, &last_used.region) {
        (Some(date), service, region) => format!(
            "last used {date}{}{}",
            service
                .as_deref()
                .map(|s| format!(" by {s}"))
                .unwrap_or_default(),
            region
                .as_deref()
                .map(|r| format!(" in {r}"))
                .unwrap_or_default()
        ),
        (None, ..) => "never used".into(),
    };
    match step {
        DrainStep::InUse => format!("old key {key} is still in use ({used}): kept active"),
        DrainStep::Wait { until } => format!(
            "old key {key} looks unused ({used}), but was handed over too recently to be sure: \
             kept active until at least {}",
            rfc3339(*until)
        ),
        DrainStep::Deactivate => format!(
            "old key {key} is no longer used ({used}): deactivated; if something breaks, \
             `keyrot drain undo --user {user}` makes it active again and restarts the drain"
        ),
        DrainStep::Grace { until } => format!(
            "old key {key} is deactivated, and is deleted after {} (`keyrot drain undo --user \
             {user}` makes it active again)",
            rfc3339(*until)
        ),
        DrainStep::Delete => format!("old key {key} was deactivated long enough: deleted"),
        DrainStep::TimedOut => format!(
            "old key {key} is still in use ({used}) past --drain-timeout: find what uses it, \
             move it to the new key, and run again (or --force to delete it anyway); nothing \
             was deleted"
        ),
        DrainStep::ForceDelete => {
            format!("old key {key} was still in use ({used}), and --force deleted it")
        }
        DrainStep::Restart => format!(
            "old key {key} is active again after it was deactivated: its drain restarts now"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Every stage against the evidence: used lately, quiet, deactivated,
    //! re-activated, past the timeout with and without --force.

    use super::*;
    use crate::rotation::state::{Phase, RetireMode};

    const DAY: u64 = 24 * 3600;
    const T: u64 = 1_796_205_600; // the handover
    const OLD: &str = "AKIAOLDOLDOLDOLDOLD0";

    fn draining(deactivated: Option<u64>) -> JournalRecord {
        JournalRecord {
            version: JournalRecord::VERSION,
            account: None,
            user: "ci-bot".into(),
            phase: Phase::Draining,
            keys_before: vec![OLD.into()],
            active_before: Some(OLD.into()),
            new_key: Some("AKIANEWNEWNEWNEWNEW1".into()),
            retire: RetireMode::Drain,
            started: T - 60,
            owner: "h:1:ab".into(),
            lease_until: 0,
            handed_over: Some(T),
            deactivated,
            abandoned: Vec::new(),
        }
    }

    fn key(status: KeyStatus) -> AccessKeyInfo {
        AccessKeyInfo {
            access_key_id: OLD.into(),
            status,
            create_date: Some(rfc3339(T - 90 * DAY)),
        }
    }

    fn used_at(t: u64) -> KeyLastUsed {
        KeyLastUsed {
            date: Some(rfc3339(t)),
            service: Some("s3".into()),
            region: Some("eu-west-1".into()),
        }
    }

    fn step(record: &JournalRecord, status: KeyStatus, used: KeyLastUsed, now: u64) -> DrainStep {
        decide(
            record,
            Some(&key(status)),
            &used,
            now,
            &DrainPolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_key_used_lately_is_kept_until_the_timeout() {
        let record = draining(None);
        assert_eq!(
            step(&record, KeyStatus::Active, used_at(T + DAY), T + DAY + 60),
            DrainStep::InUse
        );
        assert_eq!(
            step(
                &record,
                KeyStatus::Active,
                used_at(T + 14 * DAY),
                T + 14 * DAY + 60
            ),
            DrainStep::TimedOut
        );
        let force = DrainPolicy {
            force: true,
            ..DrainPolicy::default()
        };
        let forced = decide(
            &record,
            Some(&key(KeyStatus::Active)),
            &used_at(T + 14 * DAY),
            T + 14 * DAY + 60,
            &force,
        );
        assert!(forced.unwrap().deletes());
    }

    #[test]
    fn a_quiet_key_waits_a_whole_window_after_the_handover_then_is_deactivated() {
        let record = draining(None);
        let never = KeyLastUsed::default();
        assert_eq!(
            step(&record, KeyStatus::Active, never.clone(), T + 3600),
            DrainStep::Wait { until: T + DAY }
        );
        assert_eq!(
            step(&record, KeyStatus::Active, never, T + DAY),
            DrainStep::Deactivate
        );
        // Last used before the handover, long enough ago: quiet too.
        assert_eq!(
            step(&record, KeyStatus::Active, used_at(T - 3600), T + DAY + 1),
            DrainStep::Deactivate
        );
    }

    #[test]
    fn a_deactivated_key_is_deleted_after_the_grace() {
        let record = draining(Some(T + DAY));
        let never = KeyLastUsed::default();
        assert_eq!(
            step(&record, KeyStatus::Inactive, never.clone(), T + 2 * DAY),
            DrainStep::Grace { until: T + 4 * DAY }
        );
        assert_eq!(
            step(&record, KeyStatus::Inactive, never, T + 4 * DAY),
            DrainStep::Delete
        );
    }

    #[test]
    fn a_key_made_active_again_restarts_its_drain() {
        let record = draining(Some(T + DAY));
        assert_eq!(
            step(
                &record,
                KeyStatus::Active,
                KeyLastUsed::default(),
                T + 2 * DAY
            ),
            DrainStep::Restart
        );
    }

    #[test]
    fn a_key_gone_has_nothing_left_to_drain() {
        let record = draining(None);
        assert_eq!(
            decide(
                &record,
                None,
                &KeyLastUsed::default(),
                T,
                &DrainPolicy::default()
            ),
            None
        );
    }

    #[test]
    fn each_step_says_what_was_done_and_what_to_do() {
        let used = used_at(T);
        let text = describe(&DrainStep::Deactivate, OLD, "ci-bot", &used);
        assert!(text.contains("keyrot drain undo --user ci-bot"), "{text}");
        let text = describe(&DrainStep::TimedOut, OLD, "ci-bot", &used);
        assert!(
            text.contains("by s3 in eu-west-1") && text.contains("--force"),
            "{text}"
        );
    }
}
