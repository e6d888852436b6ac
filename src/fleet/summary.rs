//! A fleet's summary: counts per outcome, the accounts, and the exit code
//! of the whole run.

use serde::Serialize;

use crate::rotation::{Outcome, RotationReport};

/// The exit code of a run over many users: 4 if any needs manual action,
/// else 3 if any is partial, else 1 if any failed, else 2 if any had bad
/// input, else 0 (skipped and dry runs count as success).
pub fn fleet_exit_code(outcomes: impl IntoIterator<Item = Outcome>) -> u8 {
    let codes: Vec<u8> = outcomes.into_iter().map(Outcome::exit_code).collect();
    [4, 3, 1, 2]
        .into_iter()
        .find(|code| codes.contains(code))
        .unwrap_or(0)
}

/// Counts over a fleet's reports, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    /// Users in the run.
    pub users: usize,
    /// Rotated: new key in place, old keys retired.
    pub rotated: usize,
    /// Skipped by `--older-than`.
    pub skipped: usize,
    /// Left alone by an exemption.
    pub exempt: usize,
    /// Users with a warning (a key due soon, an exemption ending).
    pub warned: usize,
    /// Dry run: would rotate.
    pub would_rotate: usize,
    /// Rotated, the old key draining (`--retire drain`).
    pub draining: usize,
    /// Not rotated; keys as they were.
    pub failed: usize,
    /// Rotated, but an old key remains (inactive).
    pub partial: usize,
    /// An operator must act (see the user's report).
    pub needs_manual_action: usize,
    /// Refused input (unknown user, say); nothing touched.
    pub bad_input: usize,
    /// The accounts the users are in.
    pub accounts: Vec<String>,
    /// The process exit code (see [`fleet_exit_code`]).
    pub exit_code: u8,
    /// Wall-clock time of the whole run, in milliseconds.
    pub duration_ms: u64,
}

impl FleetSummary {
    /// Counts `reports`.
    pub fn of(reports: &[RotationReport], duration_ms: u64) -> Self {
        let mut summary = FleetSummary {
            users: reports.len(),
            exit_code: fleet_exit_code(reports.iter().map(|r| r.outcome)),
            duration_ms,
            ..Self::default()
        };
        for report in reports {
            *match report.outcome {
                Outcome::Rotated => &mut summary.rotated,
                Outcome::Skipped => &mut summary.skipped,
                Outcome::Exempt => &mut summary.exempt,
                Outcome::WouldRotate => &mut summary.would_rotate,
                Outcome::Draining => &mut summary.draining,
                Outcome::Failed => &mut summary.failed,
                Outcome::Partial => &mut summary.partial,
                Outcome::NeedsManualAction => &mut summary.needs_manual_action,
                Outcome::BadInput => &mut summary.bad_input,
            } += 1;
            summary.warned += usize::from(!report.warnings.is_empty());
            if let Some(account) = &report.account
                && !summary.accounts.contains(account)
            {
                summary.accounts.push(account.clone());
            }
        }
        summary.accounts.sort();
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_exit_code_takes_the_worst_in_the_documented_order() {
        use Outcome::*;
        assert_eq!(fleet_exit_code([]), 0);
        assert_eq!(fleet_exit_code([Rotated, Skipped, WouldRotate]), 0);
        assert_eq!(fleet_exit_code([Rotated, BadInput]), 2);
        assert_eq!(fleet_exit_code([BadInput, Failed, Rotated]), 1);
        assert_eq!(fleet_exit_code([Failed, Partial, BadInput]), 3);
        assert_eq!(fleet_exit_code([Partial, NeedsManualAction, Failed]), 4);
    }

    #[test]
    fn fleet_summary_counts_each_outcome_and_account() {
        let report = |user: &str, account: &str, outcome| {
            let mut r = RotationReport::new(user);
            r.account = Some(account.into());
            r.outcome = outcome;
            r
        };
        let reports = [
            report("a", "222222222222", Outcome::Rotated),
            report("b", "111111111111", Outcome::Skipped),
            report("c", "222222222222", Outcome::Failed),
        ];
        let summary = FleetSummary::of(&reports, 5);
        assert_eq!(
            (
                summary.users,
                summary.rotated,
                summary.skipped,
                summary.failed
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(summary.accounts, ["111111111111", "222222222222"]);
        assert_eq!(summary.exit_code, 1);
    }
}
