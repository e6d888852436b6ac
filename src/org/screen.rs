//! Exemptions and owners of users: the `keyrot:exempt` tag (`reason,
//! until 2027-03-01`), membership of an exempt IAM group, and the owner
//! tag whose value travels with the user's report. [`TagScreen`] applies
//! them just before each user's rotation, and `keyrot status` shows the
//! same decisions.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::fleet::{Notes, Screen, Screened};
use crate::iam::Iam;
use crate::rotation::{ExemptReport, RotationReport, human_duration, parse_rfc3339, unix_now};

/// The user tag that exempts a user: `reason`, or `reason, until
/// YYYY-MM-DD` (the last day it holds, UTC).
pub const EXEMPT_TAG: &str = "keyrot:exempt";

/// How users are screened in an organization run.
#[derive(Clone, Debug, Default)]
pub struct ScreenRules {
    /// Members of these IAM groups are exempt (`--exempt-group`).
    pub exempt_groups: Vec<String>,
    /// The tag whose value names a user's owner (`--owner-tag`).
    pub owner_tag: Option<String>,
    /// Exemptions ending within this long are warned about.
    pub warn_within: Option<Duration>,
}

/// A `keyrot:exempt` tag, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagExemption {
    /// Why the user is exempt.
    pub reason: String,
    /// The last day it holds, `YYYY-MM-DD`, and the second it ends.
    pub until: Option<(String, u64)>,
}

impl TagExemption {
    /// Reads a tag value: `reason`, or `reason, until YYYY-MM-DD`. A value
    /// that ends in `until` and something that is not a date is refused,
    /// so a typo never turns a dated exemption into a permanent one.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let words: Vec<&str> = value.split_whitespace().collect();
        let dated = words.len() >= 2 && words[words.len() - 2].eq_ignore_ascii_case("until");
        if !dated {
            if words
                .last()
                .is_some_and(|w| w.eq_ignore_ascii_case("until"))
            {
                return Err(format!(
                    "tag {EXEMPT_TAG} = '{value}' ends in 'until' without a date: write \
                     'reason, until YYYY-MM-DD'"
                ));
            }
            return Ok(TagExemption {
                reason: reason_or_default(value),
                until: None,
            });
        }
        let date = words[words.len() - 1];
        let end = parse_day(date).ok_or_else(|| {
            format!(
                "tag {EXEMPT_TAG} = '{value}': '{date}' is not a date; write 'reason, until \
                 YYYY-MM-DD' (the last day the exemption holds, UTC)"
            )
        })?;
        // The reason is everything before "until", without the separator.
        let cut = value
            .to_ascii_lowercase()
            .rfind("until")
            .expect("found above");
        let reason = value[..cut].trim().trim_end_matches([',', ';']).trim();
        Ok(TagExemption {
            reason: reason_or_default(reason),
            until: Some((date.to_string(), end)),
        })
    }

    /// Whether it still holds at `now` (Unix seconds).
    pub fn holds(&self, now: u64) -> bool {
        self.until.as_ref().is_none_or(|(_, end)| now <= *end)
    }
}

fn reason_or_default(reason: &str) -> String {
    if reason.is_empty() {
        "(no reason given)".into()
    } else {
        reason.to_string()
    }
}

/// `YYYY-MM-DD` as the last second of that day, UTC.
fn parse_day(date: &str) -> Option<u64> {
    let shaped = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    parse_rfc3339(&format!("{date}T23:59:59Z"))
}

/// Screens the users of one account: exempt by group (members read once
/// per account) or by tag, and their owners.
#[derive(Clone, Debug, Default)]
pub struct TagScreen {
    rules: ScreenRules,
    /// Lower-case user name to the exempt group it is in.
    group_of: HashMap<String, String>,
    /// The account's name, for reports.
    account_name: Option<String>,
    /// The IAM user keyrot itself signs as here, if it is one.
    myself: Option<String>,
}

impl TagScreen {
    /// A screen for one account whose exempt groups hold `members`
    /// (`(group, users)`).
    pub fn new(
        rules: ScreenRules,
        members: Vec<(String, Vec<String>)>,
        account_name: Option<String>,
    ) -> Self {
        let mut group_of = HashMap::new();
        for (group, users) in members {
            for user in users {
                group_of
                    .entry(user.to_ascii_lowercase())
                    .or_insert_with(|| group.clone());
            }
        }
        Self {
            rules,
            group_of,
            account_name,
            myself: None,
        }
    }

    /// Leaves alone the IAM user of `caller_arn` (keyrot's own identity in
    /// the account it runs in): its key also signs the role sessions of
    /// every other account, so it is rotated in a run of its own, which
    /// goes on with the new key.
    pub fn acting_as(mut self, caller_arn: &str) -> Self {
        self.myself = caller_arn
            .split_once(":user/")
            .map(|(_, path)| path.rsplit('/').next().unwrap_or(path).to_string());
        self
    }

    /// The decision for `user` with these tags, at `now`.
    pub fn decide(
        &self,
        account: &str,
        user: &str,
        tags: &[(String, String)],
        now: u64,
    ) -> Screened {
        let tag = |key: &str| {
            tags.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let owner = self.rules.owner_tag.as_deref().and_then(tag);
        let decided = |mut report: RotationReport| {
            report.owner.clone_from(&owner);
            report.account_name.clone_from(&self.account_name);
            Screened::Decided(Box::new(report))
        };
        if self
            .myself
            .as_deref()
            .is_some_and(|me| me.eq_ignore_ascii_case(user))
        {
            return decided(RotationReport::exempt(
                user,
                Some(account),
                ExemptReport {
                    by: "self".into(),
                    reason: format!(
                        "keyrot signs as this user, whose key opens every other account: \
                         rotate it in a run of its own (keyrot --user {user}), which goes on \
                         with the new key"
                    ),
                    until: None,
                },
            ));
        }
        if let Some(group) = self.group_of.get(&user.to_ascii_lowercase()) {
            return decided(RotationReport::exempt(
                user,
                Some(account),
                ExemptReport {
                    by: format!("group {group}"),
                    reason: format!("a member of IAM group {group} (--exempt-group)"),
                    until: None,
                },
            ));
        }
        let mut notes = Notes {
            owner: owner.clone(),
            ..Notes::default()
        };
        let Some(value) = tag(EXEMPT_TAG) else {
            return Screened::Rotate(notes);
        };
        let exemption = match TagExemption::parse(&value) {
            Ok(exemption) => exemption,
            Err(why) => {
                let mut report = RotationReport::bad_input(
                    user,
                    format!(
                        "{why}; fix the tag (`aws iam tag-user --user-name {user} --tags \
                         Key={EXEMPT_TAG},Value=...`) or remove it; nothing was changed"
                    ),
                );
                report.account = Some(account.to_string());
                return decided(report);
            }
        };
        let until = exemption.until.as_ref().map(|(day, _)| day.clone());
        if !exemption.holds(now) {
            notes.warnings.push(format!(
                "exemption by tag {EXEMPT_TAG} ended on {} ({}): rotated as usual; remove the \
                 tag or extend it",
                until.as_deref().unwrap_or("?"),
                exemption.reason
            ));
            return Screened::Rotate(notes);
        }
        let mut report = RotationReport::exempt(
            user,
            Some(account),
            ExemptReport {
                by: format!("tag {EXEMPT_TAG}"),
                reason: exemption.reason.clone(),
                until,
            },
        );
        if let (Some((day, end)), Some(window)) = (&exemption.until, self.rules.warn_within)
            && end.saturating_sub(now) <= window.as_secs()
        {
            report.warnings.push(format!(
                "exemption by tag {EXEMPT_TAG} ends on {day}, in {}: the user is rotated after \
                 that",
                human_duration(Duration::from_secs(end.saturating_sub(now)))
            ));
        }
        decided(report)
    }
}

#[async_trait]
impl Screen for TagScreen {
    async fn screen(&self, iam: &dyn Iam, account: &str, user: &str) -> Screened {
        // Group members and keyrot itself are known without a call; the
        // tag needs one.
        let me = self.myself.as_deref();
        if self.group_of.contains_key(&user.to_ascii_lowercase())
            || me.is_some_and(|me| me.eq_ignore_ascii_case(user))
        {
            return self.decide(account, user, &[], unix_now());
        }
        match iam.list_user_tags(user).await {
            Ok(tags) => self.decide(account, user, &tags, unix_now()),
            Err(err) => {
                let mut report = RotationReport::failed(
                    user,
                    Some(account),
                    format!(
                        "cannot read the user's tags (iam:ListUserTags), which say whether it \
                         is exempt ({EXEMPT_TAG}): {err}; nothing was changed"
                    ),
                );
                report.account_name.clone_from(&self.account_name);
                Screened::Decided(Box::new(report))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn exemption_tags_read_reason_and_last_day() {
        let e = TagExemption::parse("legacy vendor sync, until 2027-03-01").unwrap();
        assert_eq!(e.reason, "legacy vendor sync");
        let (day, end) = e.until.clone().unwrap();
        assert_eq!(day, "2027-03-01");
        assert!(e.holds(end) && !e.holds(end + 1));
        let e = TagExemption::parse("break glass").unwrap();
        assert_eq!((e.reason.as_str(), e.until), ("break glass", None));
        assert_eq!(
            TagExemption::parse("until 2027-01-01").unwrap().reason,
            "(no reason given)"
        );
    }

    #[test]
    fn a_mistyped_date_is_refused_not_made_permanent() {
        for bad in [
            "x, until 2027/03/01",
            "x, until March",
            "x until",
            "x, until 2027-13-45",
        ] {
            let err = TagExemption::parse(bad).unwrap_err();
            assert!(err.contains(EXEMPT_TAG), "{bad}: {err}");
        }
    }

    #[test]
    fn screens_decide_by_group_then_tag_and_carry_the_owner() {
        let rules = ScreenRules {
            exempt_groups: vec!["break-glass".into()],
            owner_tag: Some("owner".into()),
            warn_within: Some(Duration::from_secs(14 * DAY)),
        };
        let screen = TagScreen::new(
            rules,
            vec![("break-glass".into(), vec!["Admin".into()])],
            Some("prod".into()),
        );
        let now = parse_rfc3339("2027-02-20T12:00:00Z").unwrap();
        let tags = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let Screened::Decided(r) = screen.decide("1", "admin", &[], now) else {
            panic!("a group member is exempt")
        };
        assert_eq!(r.exempt.unwrap().by, "group break-glass");
        let owned = tags(&[
            ("Owner", "team-a"),
            ("keyrot:exempt", "vendor, until 2027-03-01"),
        ]);
        let Screened::Decided(r) = screen.decide("1", "ci", &owned, now) else {
            panic!("a dated exemption holds until its day")
        };
        assert_eq!(r.owner.as_deref(), Some("team-a"));
        assert_eq!(r.account_name.as_deref(), Some("prod"));
        assert!(
            r.warnings[0].contains("ends on 2027-03-01"),
            "{:?}",
            r.warnings
        );
        let later = now + 30 * DAY;
        let Screened::Rotate(notes) = screen.decide("1", "ci", &owned, later) else {
            panic!("an expired exemption is ignored")
        };
        assert_eq!(notes.owner.as_deref(), Some("team-a"));
        assert!(notes.warnings[0].contains("ended on 2027-03-01"));
        let Screened::Decided(r) =
            screen.decide("1", "ci", &tags(&[("keyrot:exempt", "x, until soon")]), now)
        else {
            panic!("an unreadable exemption changes nothing")
        };
        assert_eq!(r.outcome, crate::rotation::Outcome::BadInput);
        assert_eq!(r.account.as_deref(), Some("1"));
    }
}
