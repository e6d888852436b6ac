//! Whether a profile may be overwritten. Pure, so it is unit-tested natively.
//!
//! A credentials profile is someone's working key. The handler replaces it
//! only when it holds nothing or holds the very key being rotated (which
//! keyrot deletes afterwards anyway); any other key might belong to another
//! user or account, so overwriting it needs `force=true`.

/// Why writing is allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The profile holds no access key.
    Empty,
    /// The profile holds exactly the key being rotated.
    Current,
    /// The profile holds another key; `force=true` says replace it. The
    /// string names the key(s), masked, for the log.
    Forced(String),
}

/// Decides whether `profile`, holding the access key ids `held`, may be
/// given a new key when `current` is the user's active key.
pub fn check(
    profile: &str,
    held: &[String],
    current: Option<&str>,
    force: bool,
) -> Result<Verdict, String> {
    match (held, current) {
        ([], _) => return Ok(Verdict::Empty),
        ([only], Some(current)) if only == current => return Ok(Verdict::Current),
        _ => {}
    }
    // Masks that collide would read as "holds X, not X": show those in
    // full (key ids are not secret, only long).
    let mut ids: Vec<&str> = held.iter().map(String::as_str).collect();
    ids.extend(current.filter(|current| !ids.contains(current)));
    let masked: Vec<String> = ids.into_iter().map(mask).collect();
    let clash = (1..masked.len()).any(|i| masked[..i].contains(&masked[i]));
    let show = |id: &str| if clash { id.to_string() } else { mask(id) };
    let holds = match held {
        [one] => format!("key {}", show(one)),
        many => format!(
            "keys {} (in duplicate lines or sections)",
            many.iter()
                .map(|id| show(id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if force {
        return Ok(Verdict::Forced(holds));
    }
    let why = match current {
        Some(current) => format!("not the key being rotated ({})", show(current)),
        None => "and the user has no active key being rotated".to_string(),
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

    fn held(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn an_empty_profile_may_be_written() {
        assert_eq!(check("ci", &[], Some(CURRENT), false), Ok(Verdict::Empty));
        assert_eq!(check("ci", &[], None, false), Ok(Verdict::Empty));
    }

    #[test]
    fn the_key_being_rotated_may_be_replaced() {
        assert_eq!(
            check("ci", &held(&[CURRENT]), Some(CURRENT), false),
            Ok(Verdict::Current)
        );
    }

    #[test]
    fn another_key_is_refused_with_masked_ids() {
        let error = check("ci", &held(&[OTHER]), Some(CURRENT), false).unwrap_err();
        assert_eq!(
            error,
            "profile 'ci' holds key AKIA…1234, not the key being rotated (AKIA…5678): \
             refusing to overwrite it; pass --config force=true to replace it anyway"
        );
    }

    #[test]
    fn any_key_is_refused_when_nothing_is_being_rotated() {
        let error = check("ci", &held(&[OTHER]), None, false).unwrap_err();
        assert!(error.contains("holds key AKIA…1234"), "{error}");
        assert!(error.contains("no active key"), "{error}");
        assert!(error.contains("force=true"), "{error}");
    }

    #[test]
    fn disagreeing_duplicates_are_refused_even_if_one_is_current() {
        let error = check("ci", &held(&[CURRENT, OTHER]), Some(CURRENT), false).unwrap_err();
        assert!(error.contains("holds keys AKIA…5678, AKIA…1234"), "{error}");
    }

    #[test]
    fn force_overrides_and_says_what_it_replaces() {
        assert_eq!(
            check("ci", &held(&[OTHER]), Some(CURRENT), true),
            Ok(Verdict::Forced("key AKIA…1234".into()))
        );
        assert!(matches!(
            check("ci", &held(&[OTHER]), None, true),
            Ok(Verdict::Forced(_))
        ));
    }

    #[test]
    fn ids_whose_masks_collide_are_shown_in_full() {
        let error = check("ci", &held(&[OTHER]), Some("AKIAZZZZZZZZZZZZ1234"), false).unwrap_err();
        assert!(
            error.contains(&format!(
                "holds key {OTHER}, not the key being rotated (AKIAZZZZZZZZZZZZ1234)"
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
