//! The Block Kit message: a header with what needs a person, the run's
//! counts, a section per user that needs attention or was warned, one line
//! for those rotated, and parts that keep within Slack's limits.

use reporter_kit::{Event, RunReport, UserReport};
use serde_json::{Value, json};

/// Blocks in one message (Slack: at most 50).
const MAX_BLOCKS: usize = 50;
/// Characters of one section's text (Slack: at most 3000).
const MAX_SECTION_CHARS: usize = 3000;
/// Characters of a header's text (Slack: at most 150).
const MAX_HEADER_CHARS: usize = 150;

/// One message to post: the notification text and its blocks.
pub struct Message {
    pub text: String,
    pub blocks: Vec<Value>,
}

/// The messages for `users` of `run`: the first carries the header and
/// counts; later ones continue it (as thread replies where possible).
pub fn messages(run: &RunReport, users: &[&UserReport]) -> Vec<Message> {
    let attention = users
        .iter()
        .filter(|u| reporter_kit::needs_attention(u))
        .count();
    let warned = users
        .iter()
        .filter(|u| u.events.contains(&Event::Warning))
        .count();
    let title = match (attention, warned) {
        (0, 0) => "keyrot: keys rotated".to_string(),
        (0, w) => format!("keyrot: {w} user(s) with warnings"),
        (a, _) => format!("keyrot: {a} user(s) need attention"),
    };
    let title = if run.dry_run {
        format!("{title} (dry run)")
    } else {
        title
    };
    let counts = counts(run);

    let mut lines: Vec<String> = users
        .iter()
        .filter(|u| reporter_kit::needs_attention(u) || u.events.contains(&Event::Warning))
        .map(|u| line(u))
        .collect();
    let rotated: Vec<String> = users
        .iter()
        .filter(|u| u.events.contains(&Event::Rotated) && !reporter_kit::needs_attention(u))
        .map(|u| escape(&reporter_kit::who(u)))
        .collect();
    if !rotated.is_empty() {
        lines.push(format!("*Rotated:* {}", rotated.join(", ")));
    }
    let others: Vec<String> = users
        .iter()
        .filter(|u| {
            u.events
                .iter()
                .all(|e| matches!(e, Event::Skipped | Event::Exempt | Event::WouldRotate))
        })
        .map(|u| {
            format!(
                "{} ({})",
                escape(&reporter_kit::who(u)),
                reporter_kit::outcome_name(u.outcome)
            )
        })
        .collect();
    if !others.is_empty() {
        lines.push(format!("*Also:* {}", others.join(", ")));
    }

    let first = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title, MAX_HEADER_CHARS)}}),
        section(&counts),
    ];
    let mut parts: Vec<Vec<Value>> = vec![first];
    for text in lines {
        let block = section(&text);
        let current = parts.last_mut().expect("one part at least");
        if current.len() >= MAX_BLOCKS {
            parts.push(vec![block]);
        } else {
            current.push(block);
        }
    }
    let total = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, blocks)| Message {
            text: if i == 0 {
                format!("{title}: {counts}")
            } else {
                format!("{title} (part {} of {total})", i + 1)
            },
            blocks,
        })
        .collect()
}

/// The run's counts in words: `10 users: 3 rotated, 1 failed`.
fn counts(run: &RunReport) -> String {
    let s = &run.summary;
    let mut parts = Vec::new();
    for (n, what) in [
        (s.rotated + s.draining, "rotated"),
        (s.failed, "failed"),
        (s.needs_manual_action, "NEED A PERSON"),
        (s.partial, "partial"),
        (s.bad_input, "bad input"),
        (s.warned, "with warnings"),
        (s.skipped, "skipped"),
        (s.exempt, "exempt"),
        (s.would_rotate, "would rotate"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!("*{} user(s)*: {}", s.users, parts.join(", "))
}

/// One user's line: who, owner, outcome, and the reason, advice and
/// warnings.
fn line(user: &UserReport) -> String {
    let mark = if reporter_kit::needs_attention(user) {
        ":red_circle:"
    } else {
        ":warning:"
    };
    let mut text = format!(
        "{mark} *{}*{} {}",
        escape(&reporter_kit::who(user)),
        user.owner
            .as_deref()
            .map(|o| format!(" (owner {})", escape(o)))
            .unwrap_or_default(),
        reporter_kit::outcome_name(user.outcome)
    );
    if let Some(reason) = &user.reason {
        text.push_str(&format!(": {}", escape(reason)));
    }
    if let Some(advice) = &user.advice {
        text.push_str(&format!("\n_{}_", escape(advice)));
    }
    for warning in &user.warnings {
        text.push_str(&format!("\n:warning: {}", escape(warning)));
    }
    text
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS)}})
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (so a user's text cannot
/// mention `<!channel>` or make links).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, an ellipsis marking a cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use reporter_kit::{Outcome, Summary};

    fn user(i: usize, reason: Option<String>) -> UserReport {
        UserReport {
            account: Some("123456789012".into()),
            account_name: None,
            user: format!("u{i}<!channel>"),
            owner: Some("team-a".into()),
            target: None,
            outcome: if reason.is_some() {
                Outcome::Failed
            } else {
                Outcome::Skipped
            },
            events: vec![if reason.is_some() {
                Event::Failed
            } else {
                Event::Warning
            }],
            new_key: None,
            old_keys: Vec::new(),
            due: None,
            exemption: None,
            warnings: vec!["key comes due in 3d".into()],
            reason,
            advice: None,
        }
    }

    fn run(users: Vec<UserReport>) -> RunReport {
        RunReport {
            keyrot_version: "0.1.0".into(),
            time: "2026-12-07T00:00:00Z".into(),
            dry_run: false,
            accounts: vec!["123456789012".into()],
            summary: Summary {
                users: users.len() as u32,
                rotated: 0,
                skipped: 0,
                exempt: 0,
                would_rotate: 0,
                draining: 0,
                failed: 0,
                partial: 0,
                needs_manual_action: 0,
                bad_input: 0,
                warned: 0,
                exit_code: 1,
            },
            users,
        }
    }

    #[test]
    fn long_runs_split_within_block_kits_limits() {
        let mut users: Vec<UserReport> = (0..60).map(|i| user(i, None)).collect();
        users.push(user(60, Some("x".repeat(5000))));
        let run = run(users);
        let selected: Vec<&UserReport> = run.users.iter().collect();
        let parts = messages(&run, &selected);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].blocks.len(), MAX_BLOCKS);
        assert_eq!(parts[1].blocks.len(), 61 + 2 - MAX_BLOCKS);
        for block in parts.iter().flat_map(|p| &p.blocks) {
            let text = block["text"]["text"].as_str().unwrap();
            assert!(text.chars().count() <= MAX_SECTION_CHARS);
            // A user's text cannot mention @channel.
            assert!(!text.contains("<!channel>"), "{text}");
        }
        assert!(
            parts[0].blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("1 user(s) need attention")
        );
    }
}
