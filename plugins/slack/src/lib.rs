//! A Slack reporter: one readable message per channel with the run's
//! counts and a line per user that needs attention (failed, needs a
//! person, or warned), through an incoming webhook (`webhook-url`) or the
//! Web API's `chat.postMessage` (`token`, a bot token, and `channel`).
//!
//! With `chat.postMessage`, users are routed by owner: `owner-channels`
//! maps owner tag values to channels (`team-a=#team-a,team-b=C0123`), the
//! rest go to `channel`. A message stays within Block Kit's limits (50
//! blocks a message, 3000 characters a section): the first part is posted,
//! and the rest follow as replies in its thread (with a webhook, which
//! cannot thread, as further messages). Slack answers `chat.postMessage`
//! errors with 200 and `{"ok": false, "error": ...}`: those fail the
//! report; 429 (with `Retry-After`) and 5xx are retried.

mod message;

use reporter_kit::http::{self, Retry};
use reporter_kit::{Guest, PluginInfo, RunReport, Setting};
use serde_json::Value;

use crate::message::{Message, messages};

struct Slack;

/// Where messages go.
enum Sink {
    /// An incoming webhook: bound to one channel, no threads.
    Webhook(String),
    /// `chat.postMessage` with a bot token.
    Api {
        url: String,
        token: String,
        channel: String,
        owners: Vec<(String, String)>,
    },
}

impl Guest for Slack {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, secret| Setting {
            name: name.into(),
            description: description.into(),
            required: false,
            secret,
        };
        PluginInfo {
            name: "slack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Posts the run's counts and a line per user needing attention to Slack."
                .into(),
            settings: vec![
                setting(
                    "webhook-url",
                    "An incoming webhook URL, https://hooks.slack.com/services/... (or token)",
                    true,
                ),
                setting(
                    "token",
                    "A bot token (xoxb-...) with chat:write, for chat.postMessage (or webhook-url)",
                    true,
                ),
                setting(
                    "channel",
                    "With token: the channel for users no owner-channels entry routes, e.g. #ops",
                    false,
                ),
                setting(
                    "owner-channels",
                    "With token: owner tag value to channel, e.g. team-a=#team-a,team-b=C0123",
                    false,
                ),
                setting(
                    "api-url",
                    "The Web API base URL (default https://slack.com/api)",
                    false,
                ),
            ],
        }
    }

    fn report(run: RunReport) -> Result<(), String> {
        let sink = sink()?;
        let routes = match &sink {
            Sink::Webhook(_) => vec![(String::new(), run.users.iter().collect())],
            Sink::Api {
                channel, owners, ..
            } => route(&run, channel, owners),
        };
        let mut sent = 0;
        for (channel, users) in routes {
            let parts = messages(&run, &users);
            let mut thread: Option<String> = None;
            for (i, part) in parts.iter().enumerate() {
                let ts = post(&sink, &channel, part, thread.as_deref())?;
                if i == 0 {
                    thread = ts;
                }
                sent += 1;
            }
        }
        reporter_kit::info(
            "report",
            &format!("posted {sent} message(s) about {} user(s)", run.users.len()),
        );
        Ok(())
    }
}

fn sink() -> Result<Sink, String> {
    let webhook = reporter_kit::setting("webhook-url")?;
    let token = reporter_kit::setting("token")?;
    match (webhook, token) {
        (Some(_), Some(_)) => Err("give webhook-url or token, not both".into()),
        (Some(url), None) => Ok(Sink::Webhook(url)),
        (None, Some(token)) => {
            let channel = reporter_kit::setting("channel")?.unwrap_or_default();
            let owners = match reporter_kit::setting("owner-channels")? {
                Some(map) => parse_owners(&map)?,
                None => Vec::new(),
            };
            if channel.is_empty() && owners.is_empty() {
                return Err("with token, set channel (and/or owner-channels)".into());
            }
            let url =
                reporter_kit::setting("api-url")?.unwrap_or_else(|| "https://slack.com/api".into());
            Ok(Sink::Api {
                url: url.trim_end_matches('/').to_string(),
                token,
                channel,
                owners,
            })
        }
        (None, None) => Err("set webhook-url (an incoming webhook) or token (a bot token)".into()),
    }
}

/// `team-a=#team-a,team-b=C0123` as pairs.
fn parse_owners(map: &str) -> Result<Vec<(String, String)>, String> {
    map.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (owner, channel) = entry
                .split_once('=')
                .filter(|(o, c)| !o.trim().is_empty() && !c.trim().is_empty())
                .ok_or_else(|| {
                    format!("owner-channels: '{entry}' is not OWNER=CHANNEL (e.g. team-a=#team-a)")
                })?;
            Ok((owner.trim().to_string(), channel.trim().to_string()))
        })
        .collect()
}

/// The users by channel: an owner's channel, else the default one; in the
/// order channels first appear.
fn route<'a>(
    run: &'a RunReport,
    default: &str,
    owners: &[(String, String)],
) -> Vec<(String, Vec<&'a reporter_kit::UserReport>)> {
    let mut routes: Vec<(String, Vec<&reporter_kit::UserReport>)> = Vec::new();
    for user in &run.users {
        let channel = user
            .owner
            .as_deref()
            .and_then(|owner| owners.iter().find(|(o, _)| o == owner))
            .map_or(default, |(_, channel)| channel.as_str());
        if channel.is_empty() {
            reporter_kit::warn(
                "route",
                &format!(
                    "{}: owner {:?} has no channel in owner-channels and no default channel is \
                     set: not posted",
                    reporter_kit::who(user),
                    user.owner.as_deref().unwrap_or("(none)")
                ),
            );
            continue;
        }
        match routes.iter_mut().find(|(c, _)| c == channel) {
            Some((_, users)) => users.push(user),
            None => routes.push((channel.to_string(), vec![user])),
        }
    }
    routes
}

/// Posts one message; the `ts` Slack gave it (chat.postMessage only).
fn post(
    sink: &Sink,
    channel: &str,
    message: &Message,
    thread: Option<&str>,
) -> Result<Option<String>, String> {
    let mut body = serde_json::json!({ "text": message.text, "blocks": message.blocks });
    match sink {
        Sink::Webhook(url) => {
            let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let response = http::post_json_retrying(url, &[], &bytes, Retry::default())?;
            if !response.is_success() {
                return Err(format!(
                    "the incoming webhook answered {}: {}",
                    response.status,
                    response.text()
                ));
            }
            Ok(None)
        }
        Sink::Api { url, token, .. } => {
            body["channel"] = channel.into();
            if let Some(ts) = thread {
                body["thread_ts"] = ts.into();
            }
            let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let headers = [("authorization", format!("Bearer {token}"))];
            let endpoint = format!("{url}/chat.postMessage");
            let response = http::post_json_retrying(&endpoint, &headers, &bytes, Retry::default())?;
            if !response.is_success() {
                return Err(format!(
                    "chat.postMessage answered {}: {}",
                    response.status,
                    response.text()
                ));
            }
            let answer: Value = serde_json::from_slice(&response.body)
                .map_err(|e| format!("chat.postMessage answered something not JSON: {e}"))?;
            if answer["ok"] != Value::Bool(true) {
                let error = answer["error"].as_str().unwrap_or("unknown error");
                return Err(format!("Slack refused the message to {channel}: {error}"));
            }
            Ok(answer["ts"].as_str().map(str::to_string))
        }
    }
}

reporter_kit::export!(Slack);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_channels_parse_and_refuse_what_is_not_a_pair() {
        assert_eq!(
            parse_owners("team-a=#team-a, team-b = C0123,").unwrap(),
            [
                ("team-a".to_string(), "#team-a".to_string()),
                ("team-b".to_string(), "C0123".to_string())
            ]
        );
        assert!(
            parse_owners("team-a")
                .unwrap_err()
                .contains("OWNER=CHANNEL")
        );
        assert!(parse_owners("=#ops").is_err());
    }
}
