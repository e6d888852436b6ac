//! The journal record as an IAM tag value (`v=1/p=created/o=…/h=…`), and
//! back: every field but `a`, `n`, `c`, `d`, `z` and `b` required, none twice.

use std::collections::HashMap;

use crate::rotation::{JournalRecord, Phase, RetireMode};

/// Fields of a tag value: `/` since keyrot 0.2 (spaces are legal in IAM tag
/// values, but some SigV4 implementations encode them differently from
/// AWS's own SDKs), a space before.
const FIELD_SEPARATORS: [char; 2] = ['/', ' '];

/// `v=1/p=created/o=AKIA1+AKIA2/a=AKIA1/n=AKIA3/r=delete/t=…/x=…/h=owner`:
/// IAM tag values allow letters, digits, spaces and `_.:/=+-@`, up to 256
/// characters (owner ids hold no `/`). A record that does not fit is an
/// error, never cut: the owner is compared whole.
pub(super) fn encode_tag(record: &JournalRecord) -> Result<String, String> {
    let mut fields = vec![
        format!("v={}", record.version),
        format!("p={}", record.phase.as_str()),
        format!("o={}", record.keys_before.join("+")),
    ];
    if let Some(active) = &record.active_before {
        fields.push(format!("a={active}"));
    }
    if let Some(new) = &record.new_key {
        fields.push(format!("n={new}"));
    }
    if let Some(account) = &record.account {
        fields.push(format!("c={account}"));
    }
    fields.push(format!("r={}", record.retire.as_str()));
    fields.push(format!("t={}", record.started));
    fields.push(format!("x={}", record.lease_until));
    if let Some(handed) = record.handed_over {
        fields.push(format!("d={handed}"));
    }
    if let Some(deactivated) = record.deactivated {
        fields.push(format!("z={deactivated}"));
    }
    fields.push(format!("h={}", record.owner));
    // The abandoned keys only widen what a handler accepts: the oldest go
    // first when the record would not fit a tag.
    for kept in (0..=record.abandoned.len()).rev() {
        let mut with = fields.clone();
        if kept > 0 {
            with.insert(
                with.len() - 1,
                format!("b={}", record.abandoned[..kept].join("+")),
            );
        }
        let text = with.join("/");
        if text.len() <= 256 || kept == 0 {
            fields = with;
            break;
        }
    }
    let text = fields.join("/");
    if text.len() > 256 {
        return Err(format!(
            "the record is {} characters, more than an IAM tag holds",
            text.len()
        ));
    }
    Ok(text)
}

/// The record in a tag. Every field but `a`, `n`, `c`, `d`, `z` and `b` must be there,
/// once; [`JournalRecord::check`] then tests that they agree.
pub(super) fn decode_tag(user: &str, value: &str) -> Result<JournalRecord, String> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for field in value.split(FIELD_SEPARATORS).filter(|f| !f.is_empty()) {
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| format!("bad field '{field}'"))?;
        if fields.insert(key, v).is_some() {
            return Err(format!("field '{key}' appears twice"));
        }
    }
    let field = |key: &str, name: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("it has no {name} ({key}=)"))
    };
    let number = |key: &str, name: &str| {
        let v = field(key, name)?;
        v.parse::<u64>()
            .map_err(|_| format!("bad number '{v}' for {name}"))
    };
    let optional_number = |key: &str, name: &str| {
        fields
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("bad number '{v}' for {name}"))
            })
            .transpose()
    };
    let version = number("v", "version")?;
    let phase = match field("p", "phase")? {
        "claimed" => Phase::Claimed,
        "create-sent" => Phase::CreateSent,
        "created" => Phase::Created,
        "propagated" => Phase::Propagated,
        "draining" => Phase::Draining,
        other => return Err(format!("unknown phase '{other}'")),
    };
    let retire = match field("r", "retire mode")? {
        "delete" => RetireMode::Delete,
        "deactivate" => RetireMode::Deactivate,
        "drain" => RetireMode::Drain,
        other => return Err(format!("unknown retire mode '{other}'")),
    };
    Ok(JournalRecord {
        version: u32::try_from(version).map_err(|_| format!("unknown version {version}"))?,
        account: fields.get("c").map(|v| v.to_string()),
        user: user.to_string(),
        phase,
        keys_before: field("o", "list of keys")?
            .split('+')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        active_before: fields.get("a").map(|v| v.to_string()),
        new_key: fields.get("n").map(|v| v.to_string()),
        retire,
        started: number("t", "start time")?,
        owner: field("h", "owner")?.to_string(),
        lease_until: number("x", "lease")?,
        handed_over: optional_number("d", "handover time")?,
        deactivated: optional_number("z", "deactivation time")?,
        abandoned: fields
            .get("b")
            .map(|v| {
                v.split('+')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A claim tag's owner and expiry: `h=owner x=until`.
pub(super) fn decode_claim(value: &str) -> Option<(String, u64)> {
    let mut owner = None;
    let mut until = None;
    for field in value.split(FIELD_SEPARATORS) {
        match field.split_once('=')? {
            ("h", v) => owner = Some(v.to_string()),
            ("x", v) => until = v.parse().ok(),
            _ => {}
        }
    }
    Some((owner?, until?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::tests::{K1, K3, record};

    #[test]
    fn a_tag_round_trips_and_fits() {
        let record = record();
        let tag = encode_tag(&record).unwrap();
        assert!(tag.len() <= 256, "{} chars: {tag}", tag.len());
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)),
            "{tag}"
        );
        assert_eq!(decode_tag("ci-bot", &tag).unwrap(), record);
    }

    #[test]
    fn abandoned_keys_round_trip_and_the_oldest_give_way_to_the_limit() {
        let mut record = record();
        record.keys_before = vec![K1.into()];
        record.abandoned = vec!["AKIAABANDONEDABANDN2".into(), "AKIAABANDONEDABANDN1".into()];
        let tag = encode_tag(&record).unwrap();
        assert!(
            tag.contains("/b=AKIAABANDONEDABANDN2+AKIAABANDONEDABANDN1/"),
            "{tag}"
        );
        assert_eq!(decode_tag("ci-bot", &tag).unwrap(), record);
        // An owner long enough that only one abandoned key fits: the newest.
        let room = 256 - tag.len() + "+AKIAABANDONEDABANDN1".len() - 1;
        record.owner.push_str(&"x".repeat(room));
        let tag = encode_tag(&record).unwrap();
        assert!(tag.len() <= 256);
        assert_eq!(
            decode_tag("ci-bot", &tag).unwrap().abandoned,
            vec!["AKIAABANDONEDABANDN2".to_string()]
        );
    }

    #[test]
    fn a_tag_of_keyrot_0_1_with_spaces_is_read() {
        let record = record();
        let spaced = encode_tag(&record).unwrap().replace('/', " ");
        assert_eq!(decode_tag("ci-bot", &spaced).unwrap(), record);
    }

    #[test]
    fn a_record_too_long_for_a_tag_is_an_error_not_cut() {
        let mut record = record();
        record.owner = "h".repeat(300);
        assert!(encode_tag(&record).is_err());
    }

    #[test]
    fn a_bad_tag_is_an_error() {
        for bad in [
            "v=9 p=created",
            "v=1 p=flying",
            "garbage",
            // The issue's forgeries: no time, no owner, no lease.
            "v=1 p=create-sent",
            "v=1 p=propagated o=AKIAAAAAAAAAAAAAAAA1 n=AKIAAAAAAAAAAAAAAAA1",
        ] {
            let checked = decode_tag("u", bad).and_then(|r| r.check(1_796_205_700));
            assert!(checked.is_err(), "accepted: {bad}");
        }
        let twice = format!("{} n={K1}", encode_tag(&record()).unwrap());
        assert!(decode_tag("u", &twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn a_record_that_contradicts_itself_is_refused() {
        let now = 1_796_205_700;
        let refused = |change: &dyn Fn(&mut JournalRecord), why: &str| {
            let mut r = record();
            change(&mut r);
            let err = r.check(now).expect_err(why);
            assert!(err.contains(why), "{err}");
        };
        refused(&|r| r.new_key = Some(K1.into()), "also one of the keys");
        refused(&|r| r.lease_until = r.started - 1, "lease ends before");
        refused(&|r| r.started = now + 3600, "in the future");
        refused(&|r| r.started = 0, "no start time");
        refused(&|r| r.owner.clear(), "no owner");
        refused(&|r| r.active_before = Some(K3.into()), "not among the keys");
        refused(&|r| r.phase = Phase::CreateSent, "with a new key");
        refused(
            &|r| {
                r.phase = Phase::Propagated;
                r.new_key = None;
            },
            "without a new key",
        );
        refused(
            &|r| r.keys_before.push(K3.into()),
            "more keys than IAM allows",
        );
        refused(&|r| r.keys_before[1] = K1.into(), "twice");
        refused(
            &|r| r.keys_before[1] = "not-a-key".into(),
            "not an access key id",
        );
        refused(&|r| r.account = Some("12".into()), "not an AWS account id");
        record().check(now).unwrap();
    }
}
