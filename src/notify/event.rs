//! The events a reporter can ask for (`on = [...]`), what each user's
//! report raises, and the operator's filter: pure data, tested alone.

use std::fmt;

use serde::Serialize;

use crate::rotation::{Outcome, RotationReport};

/// Something a reporter can be told about. One user can raise several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A new key is in place (`rotated`, `draining`).
    Rotated,
    /// Nothing was rotated and it should have been (`failed`, `bad-input`).
    Failed,
    /// A person must act (`partial`, `needs-manual-action`).
    NeedsAttention,
    /// A warning, though nothing failed: a key due soon, an exemption
    /// ending, an old key still in use.
    Warning,
    /// Not due yet (`skipped`).
    Skipped,
    /// Left alone by an exemption.
    Exempt,
    /// A dry run would rotate.
    WouldRotate,
}

impl Event {
    /// Every event, in the order they are listed.
    pub const ALL: [Event; 7] = [
        Event::Rotated,
        Event::Failed,
        Event::NeedsAttention,
        Event::Warning,
        Event::Skipped,
        Event::Exempt,
        Event::WouldRotate,
    ];

    /// What a reporter is told about when its filter is not given: what
    /// an on-call engineer acts on, and what a deploy hook restarts
    /// consumers for. Skipped, exempt and dry-run users are opt-in.
    pub const DEFAULT: [Event; 4] = [
        Event::Failed,
        Event::NeedsAttention,
        Event::Warning,
        Event::Rotated,
    ];

    /// The name in job files, flags and reports, e.g. `needs-attention`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Rotated => "rotated",
            Event::Failed => "failed",
            Event::NeedsAttention => "needs-attention",
            Event::Warning => "warning",
            Event::Skipped => "skipped",
            Event::Exempt => "exempt",
            Event::WouldRotate => "would-rotate",
        }
    }

    /// The events one user's report raises.
    pub fn of(report: &RotationReport) -> Vec<Event> {
        let by_outcome = match report.outcome {
            Outcome::Rotated | Outcome::Draining => Event::Rotated,
            Outcome::Failed | Outcome::BadInput => Event::Failed,
            Outcome::Partial | Outcome::NeedsManualAction => Event::NeedsAttention,
            Outcome::Skipped => Event::Skipped,
            Outcome::Exempt => Event::Exempt,
            Outcome::WouldRotate => Event::WouldRotate,
        };
        let mut events = vec![by_outcome];
        if !report.warnings.is_empty() {
            events.push(Event::Warning);
        }
        events
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Event {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Event::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown event '{}': use {}",
                    crate::text::escape_control(s),
                    names.join(", ")
                )
            })
    }
}

/// The events a reporter asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSet(Vec<Event>);

impl Default for EventSet {
    fn default() -> Self {
        let mut events = Event::DEFAULT.to_vec();
        events.sort();
        Self(events)
    }
}

impl EventSet {
    /// Parses event names; an unknown or missing one is an error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut events = Vec::new();
        for name in names {
            let event: Event = name.trim().parse()?;
            if !events.contains(&event) {
                events.push(event);
            }
        }
        if events.is_empty() {
            return Err("no event given: name at least one, e.g. on = [\"failed\"]".into());
        }
        events.sort();
        Ok(Self(events))
    }

    /// The events, in [`Event::ALL`]'s order.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.0.iter().copied()
    }

    /// The events of `raised` this set selects.
    pub fn select(&self, raised: &[Event]) -> Vec<Event> {
        raised
            .iter()
            .copied()
            .filter(|e| self.0.contains(e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_raises_one_event_and_warnings_one_more() {
        let mut report = RotationReport::new("u");
        for (outcome, event) in [
            (Outcome::Rotated, Event::Rotated),
            (Outcome::Draining, Event::Rotated),
            (Outcome::Failed, Event::Failed),
            (Outcome::BadInput, Event::Failed),
            (Outcome::Partial, Event::NeedsAttention),
            (Outcome::NeedsManualAction, Event::NeedsAttention),
            (Outcome::Skipped, Event::Skipped),
            (Outcome::Exempt, Event::Exempt),
            (Outcome::WouldRotate, Event::WouldRotate),
        ] {
            report.outcome = outcome;
            assert_eq!(Event::of(&report), [event]);
        }
        report.outcome = Outcome::Skipped;
        report.warnings.push("key due in 3d".into());
        assert_eq!(Event::of(&report), [Event::Skipped, Event::Warning]);
    }

    #[test]
    fn filters_parse_and_select() {
        let set = EventSet::parse(["warning", "failed", "failed"]).unwrap();
        assert_eq!(
            set.events().collect::<Vec<_>>(),
            [Event::Failed, Event::Warning]
        );
        assert_eq!(
            set.select(&[Event::Skipped, Event::Warning]),
            [Event::Warning]
        );
        assert!(set.select(&[Event::Rotated]).is_empty());
        let err = EventSet::parse(["failure"]).unwrap_err();
        assert!(err.contains("unknown event 'failure'") && err.contains("needs-attention"));
        assert!(EventSet::parse([]).is_err());
        assert_eq!(
            EventSet::default().events().collect::<Vec<_>>(),
            [
                Event::Rotated,
                Event::Failed,
                Event::NeedsAttention,
                Event::Warning
            ]
        );
    }
}
