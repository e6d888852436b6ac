//! Whether a profile may be overwritten. Pure, so it is unit-tested natively.
//!
//! A credentials profile is someone's working key. The handler replaces it
//! only when it holds nothing, the very key being rotated (which keyrot
//! deletes afterwards anyway), or a key an interrupted rotation of this user
//! left there (which keyrot has deleted already); any other key might belong
//! to another user or account, so overwriting it needs `force=true`.

/// Why writing is allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The profile holds no access key.
    Empty,
    /// The profile holds exactly the key being rotated.
    Current,
    /// The profile holds exactly this key, which an interrupted rotation
    /// of this user stored there before keyrot deleted it (one of contract
    /// 0.4.0's `abandoned-key-ids`).
    Abandoned(String),
    /// The profile holds another key; `force=true` says replace it. The
    /// string names the key(s), masked, for the log.
    Forced(String),
}

/// What keyrot said about the keys: the user's active key, and the keys
/// interrupted rotations may have left at the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected<'a> {
    /// `rotation.current-key-id`.
    pub current: Option<&'a str>,
    /// `rotation.abandoned-key-ids`, newest first; empty when no
    /// interrupted rotation is being finished.
    pub abandoned: &'a [String],
}

/// Decides whether `profile`, holding the access key ids `held`, may be
/// given a new key when keyrot expects the keys `expected`.
pub fn check(
    profile: &str,
    held: &[String],
    expected: Expected,
    force: bool,
) -> Result<Verdict, String> {
    let Expected { current, abandoned } = expected;
    match held {
        [] => return Ok(Verdict::Empty),
        [only] if Some(only.as_str()) == current => return Ok(Verdict::Current),
        [only] if abandoned.contains(only) => return Ok(Verdict::Abandoned(only.clone())),
        _ => {}
    }
    // Masks that collide would read as "holds X, not X": show those in
    // full (key ids are not secret, only long).
    let mut ids: Vec<&str> = held.iter().map(String::as_str).collect();
    for id in current
        .into_iter()
        .chain(abandoned.iter().map(String::as_str))
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let masked: Vec<String> = ids.into_iter().map(mask).collect();
    let clash = (1..masked.len()).any(|i| masked[..i].contains(&masked[i]));
    let show = |id: &str| if clash { id.to_string() } else { mask(id) };
    let list = |ids: &[String]| ids.iter().map(|id| show(id)).collect::<Vec<_>>().join(", ");
    let holds = match held {
        [one] => format!("key {}", show(one)),
        many => format!("keys {} (in duplicate lines or sections)", list(many)),
    };
    if force {
        return Ok(Verdict::Forced(holds));
    }
    let left = match abandoned {
        [] => None,
        [one] => Some(format!(
            "the one an interrupted rotation left ({})",
            show(one)
        )),
        many => Some(format!(
            "any of the {} keys interrupted rotations left ({})",
            many.len(),
            list(many)
        )),
    };
    let why = match (current, left) {
        (Some(current), None) => format!("not the key being rotated ({})", show(current)),
        (Some(current), Some(left)) => format!(
            "neither the key being rotated ({}) nor {left}",
            show(current)
        ),
        (None, None) => "and the user has no active key being rotated".to_string(),
        (None, Some(left)) => {
            format!("not {left}, and the user has no active key being rotated")
        }
    };
    Err(format!(
        "profile '{profile}' holds {holds}, {why}: refusing to overwrite it; \
         pass --config force=true to replace it anyway"
    ))
}

/// A key id shortened for messages: its first and last four characters.
pub fn mask(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return id.to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURRENT: &str = "AKIACURRENTKEY005678";
    const OTHER: &str = "AKIAOTHERKEYXXXX1234";
    const ABANDONED: &str = "AKIAABANDONEDKEY9012";
    /// Left by an earlier interrupted run than ABANDONED.
    const OLDER: &str = "AKIAOLDERLEFTKEY3456";

    fn held(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    /// keyrot rotates `current`, after no interrupted run.
    fn rotating(current: Option<&str>) -> Expected<'_> {
        Expected {
            current,
            abandoned: &[],
        }
    }

    /// keyrot rotates `current`, after interrupted runs that may have left
    /// `abandoned` (newest first).
    fn resuming<'a>(current: Option<&'a str>, abandoned: &'a [String]) -> Expected<'a> {
        Expected { current, abandoned }
    }

    #[test]
    fn an_empty_profile_may_be_written() {
        assert_eq!(
            check("ci", &[], rotating(Some(CURRENT)), false),
            Ok(Verdict::Empty)
        );
        assert_eq!(check("ci", &[], rotating(None), false), Ok(Verdict::Empty));
        assert_eq!(
            check(
                "ci",
                &[],
                resuming(Some(CURRENT), &held(&[ABANDONED])),
                false
            ),
            Ok(Verdict::Empty)
        );
    }

    #[test]
    fn the_key_being_rotated_may_be_replaced() {
        assert_eq!(
            check("ci", &held(&[CURRENT]), rotating(Some(CURRENT)), false),
            Ok(Verdict::Current)
        );
        assert_eq!(
            check(
                "ci",
                &held(&[CURRENT]),
                resuming(Some(CURRENT), &held(&[ABANDONED])),
                false
            ),
            Ok(Verdict::Current)
        );
    }

    #[test]
    fn the_key_an_interrupted_rotation_left_may_be_replaced() {
        assert_eq!(
            check(
                "ci",
                &held(&[ABANDONED]),
                resuming(Some(CURRENT), &held(&[ABANDONED])),
                false
            ),
            Ok(Verdict::Abandoned(ABANDONED.into()))
        );
        // Also for a user that had no active key to rotate.
        assert_eq!(
            check(
                "ci",
                &held(&[ABANDONED]),
                resuming(None, &held(&[ABANDONED])),
                false
            ),
            Ok(Verdict::Abandoned(ABANDONED.into()))
        );
    }

    #[test]
    fn any_key_interrupted_rotations_left_may_be_replaced() {
        // Two runs interrupted in a row: the profile holds the older one.
        let left = held(&[ABANDONED, OLDER]);
        assert_eq!(
            check("ci", &held(&[OLDER]), resuming(Some(CURRENT), &left), false),
            Ok(Verdict::Abandoned(OLDER.into()))
        );
        assert_eq!(
            check("ci", &held(&[ABANDONED]), resuming(None, &left), false),
            Ok(Verdict::Abandoned(ABANDONED.into()))
        );
        assert_eq!(
            check(
                "ci",
                &held(&[CURRENT]),
                resuming(Some(CURRENT), &left),
                false
            ),
            Ok(Verdict::Current)
        );
    }

    #[test]
    fn another_key_is_refused_after_two_interrupted_rotations_naming_both() {
        let left = held(&[ABANDONED, OLDER]);
        let error =
            check("ci", &held(&[OTHER]), resuming(Some(CURRENT), &left), false).unwrap_err();
        assert_eq!(
            error,
            "profile 'ci' holds key AKIA…1234, neither the key being rotated (AKIA…5678) \
             nor any of the 2 keys interrupted rotations left (AKIA…9012, AKIA…3456): \
             refusing to overwrite it; pass --config force=true to replace it anyway"
        );
        let error = check("ci", &held(&[OTHER]), resuming(None, &left), false).unwrap_err();
        assert!(
            error.contains(
                "not any of the 2 keys interrupted rotations left (AKIA…9012, AKIA…3456), \
                 and the user has no active key being rotated"
            ),
            "{error}"
        );
        // Two abandoned keys in disagreeing duplicates are no one key.
        let error = check(
            "ci",
            &held(&[OLDER, ABANDONED]),
            resuming(Some(CURRENT), &left),
            false,
        )
        .unwrap_err();
        assert!(error.contains("holds keys AKIA…3456, AKIA…9012"), "{error}");
    }

    #[test]
    fn another_key_is_refused_with_masked_ids() {
        let error = check("ci", &held(&[OTHER]), rotating(Some(CURRENT)), false).unwrap_err();
        assert_eq!(
            error,
            "profile 'ci' holds key AKIA…1234, not the key being rotated (AKIA…5678): \
             refusing to overwrite it; pass --config force=true to replace it anyway"
        );
    }

    #[test]
    fn another_key_is_refused_after_an_interrupted_rotation_too() {
        let error = check(
            "ci",
            &held(&[OTHER]),
            resuming(Some(CURRENT), &held(&[ABANDONED])),
            false,
        )
        .unwrap_err();
        assert_eq!(
            error,
            "profile 'ci' holds key AKIA…1234, neither the key being rotated (AKIA…5678) \
             nor the one an interrupted rotation left (AKIA…9012): refusing to overwrite it; \
             pass --config force=true to replace it anyway"
        );
        let error = check(
            "ci",
            &held(&[OTHER]),
            resuming(None, &held(&[ABANDONED])),
            false,
        )
        .unwrap_err();
        assert_eq!(
            error,
            "profile 'ci' holds key AKIA…1234, not the one an interrupted rotation left \
             (AKIA…9012), and the user has no active key being rotated: refusing to \
             overwrite it; pass --config force=true to replace it anyway"
        );
    }

    #[test]
    fn any_key_is_refused_when_nothing_is_being_rotated() {
        let error = check("ci", &held(&[OTHER]), rotating(None), false).unwrap_err();
        assert!(error.contains("holds key AKIA…1234"), "{error}");
        assert!(error.contains("no active key"), "{error}");
        assert!(error.contains("force=true"), "{error}");
    }

    #[test]
    fn disagreeing_duplicates_are_refused_even_if_one_is_current() {
        let error = check(
            "ci",
            &held(&[CURRENT, OTHER]),
            rotating(Some(CURRENT)),
            false,
        )
        .unwrap_err();
        assert!(error.contains("holds keys AKIA…5678, AKIA…1234"), "{error}");
        // ... or the one an interrupted rotation left.
        let error = check(
            "ci",
            &held(&[ABANDONED, CURRENT]),
            resuming(Some(CURRENT), &held(&[ABANDONED])),
            false,
        )
        .unwrap_err();
        assert!(error.contains("holds keys AKIA…9012, AKIA…5678"), "{error}");
    }

    #[test]
    fn force_overrides_and_says_what_it_replaces() {
        assert_eq!(
            check("ci", &held(&[OTHER]), rotating(Some(CURRENT)), true),
            Ok(Verdict::Forced("key AKIA…1234".into()))
        );
        assert!(matches!(
            check("ci", &held(&[OTHER]), rotating(None), true),
            Ok(Verdict::Forced(_))
        ));
        assert_eq!(
            check(
                "ci",
                &held(&[OTHER]),
                resuming(Some(CURRENT), &held(&[ABANDONED])),
                true
            ),
            Ok(Verdict::Forced("key AKIA…1234".into()))
        );
    }

    #[test]
    fn ids_whose_masks_collide_are_shown_in_full() {
        let error = check(
            "ci",
            &held(&[OTHER]),
            rotating(Some("AKIAZZZZZZZZZZZZ1234")),
            false,
        )
        .unwrap_err();
        assert!(
            error.contains(&format!(
                "holds key {OTHER}, not the key being rotated (AKIAZZZZZZZZZZZZ1234)"
            )),
            "{error}"
        );
        let error = check(
            "ci",
            &held(&[OTHER]),
            resuming(Some(CURRENT), &held(&["AKIAYYYYYYYYYYYY1234"])),
            false,
        )
        .unwrap_err();
        assert!(
            error.contains(&format!(
                "holds key {OTHER}, neither the key being rotated ({CURRENT}) nor the one an \
                 interrupted rotation left (AKIAYYYYYYYYYYYY1234)"
            )),
            "{error}"
        );
    }

    #[test]
    fn masks_long_ids_only() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("AKIA1234"), "AKIA1234");
        assert_eq!(mask(""), "");
    }
}
