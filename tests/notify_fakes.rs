//! Local fakes of the services keyrot's reporters talk to, on loopback,
//! answering as each service's public API documentation says (not as the
//! reporters assume):
//!
//! - a webhook receiver that answers a script of statuses (503, 429 with
//!   `Retry-After`, then 200), and checks nothing: checking the signature
//!   is the test's job, with an HMAC of its own ([`hmac_sha256_hex`]);
//! - Slack's `chat.postMessage` (Web API): a bot token in `Authorization`,
//!   errors as 200 with `{"ok": false, "error": ...}` (`invalid_auth`,
//!   `channel_not_found`, `no_text`, `invalid_blocks` past 50 blocks or a
//!   section text past 3000 characters or a header past 150,
//!   `thread_not_found`), 429 with `Retry-After` when rate limited, and
//!   `{"ok": true, "channel", "ts", "message"}` on success;
//! - PagerDuty's Events API v2 (`POST /v2/enqueue`): a 32-character
//!   `routing_key`, `event_action` trigger/acknowledge/resolve, a trigger's
//!   `payload` with `summary` (at most 1024 characters), `source` and
//!   `severity`; 202 `{"status":"success","message":"Event
//!   processed","dedup_key":...}`, 400 `{"status":"invalid event",
//!   "message":"Event object is invalid","errors":[...]}`, 429 when
//!   throttled. It keeps each alert's state by `dedup_key`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::util::{Recorded, Reply, TestServer};

/// HMAC-SHA256 (RFC 2104) of `body` under `key`, lowercase hex: the
/// tests' own, to check the reporters' signatures against.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(body)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// A webhook receiver answering a script of statuses, then 200.
pub struct FakeWebhook {
    pub server: TestServer,
}

impl FakeWebhook {
    /// Answers `script` first (429s with `Retry-After: 1`), then 200.
    pub fn start(script: &[u16]) -> FakeWebhook {
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let server = TestServer::start(move |request: &Recorded| {
            if request.method != "POST" {
                return Reply::new(405, "method not allowed");
            }
            match script.lock().unwrap().pop_front() {
                Some(429) => Reply::new(429, "slow down").header("retry-after", "1"),
                Some(status) => Reply::new(status, "scripted"),
                None => Reply::new(200, "ok"),
            }
        });
        FakeWebhook { server }
    }
}

/// One message Slack accepted.
#[derive(Clone, Debug)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Vec<Value>,
}

/// Slack's Web API, `chat.postMessage` only.
pub struct FakeSlack {
    pub server: TestServer,
    messages: Arc<Mutex<Vec<SlackMessage>>>,
}

impl FakeSlack {
    /// The bot token it accepts.
    pub const TOKEN: &str = "xoxb-fake-slack-token";
    /// Its one incoming webhook (the path is the webhook's secret), bound
    /// to channel `#hooked`.
    pub const WEBHOOK_PATH: &str = "/services/T0FAKE/B0FAKE/fakeWebhookSecret";

    /// Knows `channels`; the first `rate_limited` calls are answered 429.
    pub fn start(channels: &[&str], rate_limited: usize) -> FakeSlack {
        let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let messages: Arc<Mutex<Vec<SlackMessage>>> = Arc::default();
        let limited = Arc::new(Mutex::new(rate_limited));
        let kept = messages.clone();
        let server = TestServer::start(move |request: &Recorded| {
            let ok_false = |error: &str| {
                Reply::new(200, json!({"ok": false, "error": error}).to_string())
                    .header("content-type", "application/json; charset=utf-8")
            };
            if request.method == "POST" && request.path == Self::WEBHOOK_PATH {
                return incoming_webhook(request, &kept);
            }
            if request.method != "POST" || request.path != "/chat.postMessage" {
                return Reply::new(404, "not found");
            }
            {
                let mut left = limited.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Reply::new(429, "").header("retry-after", "1");
                }
            }
            if request.header("authorization") != Some(&format!("Bearer {}", Self::TOKEN)) {
                return ok_false("invalid_auth");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return ok_false("invalid_json");
            };
            let channel = body["channel"].as_str().unwrap_or("");
            if !channels.iter().any(|c| c == channel) {
                return ok_false("channel_not_found");
            }
            let text = body["text"].as_str().unwrap_or("").to_string();
            let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
            if text.is_empty() && blocks.is_empty() {
                return ok_false("no_text");
            }
            if !blocks_are_valid(&blocks) {
                return ok_false("invalid_blocks");
            }
            let mut messages = kept.lock().unwrap();
            let thread_ts = body["thread_ts"].as_str().map(str::to_string);
            if let Some(parent) = &thread_ts
                && !messages
                    .iter()
                    .any(|m| &m.ts == parent && m.channel == channel)
            {
                return ok_false("thread_not_found");
            }
            let ts = format!("1700000000.{:06}", messages.len() + 1);
            messages.push(SlackMessage {
                channel: channel.to_string(),
                ts: ts.clone(),
                thread_ts,
                text: text.clone(),
                blocks: blocks.clone(),
            });
            Reply::new(
                200,
                json!({"ok": true, "channel": "C0FAKE", "ts": ts,
                       "message": {"type": "message", "text": text, "ts": ts}})
                .to_string(),
            )
            .header("content-type", "application/json; charset=utf-8")
        });
        FakeSlack { server, messages }
    }

    /// The messages accepted, in order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.messages.lock().unwrap().clone()
    }
}

/// An incoming webhook: 200 `ok` (text) on success, 400 with the error
/// (`invalid_payload`, `no_text`, `invalid_blocks`) otherwise; no threads.
fn incoming_webhook(request: &Recorded, messages: &Mutex<Vec<SlackMessage>>) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return Reply::new(400, "invalid_payload");
    };
    let text = body["text"].as_str().unwrap_or("").to_string();
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    if text.is_empty() && blocks.is_empty() {
        return Reply::new(400, "no_text");
    }
    if !blocks_are_valid(&blocks) {
        return Reply::new(400, "invalid_blocks");
    }
    let mut messages = messages.lock().unwrap();
    let ts = format!("1700000000.{:06}", messages.len() + 1);
    messages.push(SlackMessage {
        channel: "#hooked".into(),
        ts,
        thread_ts: None,
        text,
        blocks,
    });
    Reply::new(200, "ok").header("content-type", "text/html")
}

/// Block Kit's limits: at most 50 blocks; a section's text at most 3000
/// characters, a header's (plain text) at most 150.
fn blocks_are_valid(blocks: &[Value]) -> bool {
    blocks.len() <= 50
        && blocks.iter().all(|block| {
            let text = block["text"]["text"].as_str().unwrap_or("");
            match block["type"].as_str() {
                Some("section") => !text.is_empty() && text.chars().count() <= 3000,
                Some("header") => {
                    block["text"]["type"] == "plain_text" && text.chars().count() <= 150
                }
                Some("context" | "divider") => true,
                _ => false,
            }
        })
}

/// PagerDuty's Events API v2.
pub struct FakePagerDuty {
    pub server: TestServer,
    alerts: Arc<Mutex<BTreeMap<String, String>>>,
}

impl FakePagerDuty {
    /// A routing key of the right shape (32 characters).
    pub const ROUTING_KEY: &str = "R0ut1ngKey0123456789abcdefABCDEF";

    /// The first `throttled` events are answered 429.
    pub fn start(throttled: usize) -> FakePagerDuty {
        let alerts: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let kept = alerts.clone();
        let throttled = Arc::new(Mutex::new(throttled));
        let server = TestServer::start(move |request: &Recorded| {
            let invalid = |why: &str| {
                Reply::new(
                    400,
                    json!({"status": "invalid event", "message": "Event object is invalid",
                           "errors": [why]})
                    .to_string(),
                )
            };
            if request.method != "POST" || request.path != "/v2/enqueue" {
                return Reply::new(404, "not found");
            }
            {
                let mut left = throttled.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Reply::new(429, json!({"status": "throttle event"}).to_string());
                }
            }
            let Ok(event) = serde_json::from_slice::<Value>(&request.body) else {
                return invalid("Could not parse the request body as JSON");
            };
            if event["routing_key"].as_str().map(str::len) != Some(32) {
                return invalid("Length of 'routing_key' is incorrect (should be 32 characters)");
            }
            let action = event["event_action"].as_str().unwrap_or("");
            let dedup = event["dedup_key"].as_str().map(str::to_string);
            if dedup.as_ref().is_some_and(|k| k.len() > 255) {
                return invalid("'dedup_key' is too long");
            }
            match action {
                "trigger" => {
                    let payload = &event["payload"];
                    let summary = payload["summary"].as_str().unwrap_or("");
                    if summary.is_empty() || summary.chars().count() > 1024 {
                        return invalid("'payload.summary' is missing or too long");
                    }
                    if payload["source"].as_str().unwrap_or("").is_empty() {
                        return invalid("'payload.source' is missing");
                    }
                    let severity = payload["severity"].as_str().unwrap_or("");
                    if !["critical", "error", "warning", "info"].contains(&severity) {
                        return invalid("'payload.severity' is invalid");
                    }
                }
                "acknowledge" | "resolve" if dedup.is_none() => {
                    return invalid("'dedup_key' is missing");
                }
                "acknowledge" | "resolve" => {}
                _ => return invalid("'event_action' is invalid"),
            }
            let key = dedup.unwrap_or_else(|| format!("generated-{}", kept.lock().unwrap().len()));
            let state = match action {
                "trigger" => "triggered",
                "acknowledge" => "acknowledged",
                _ => "resolved",
            };
            kept.lock().unwrap().insert(key.clone(), state.to_string());
            Reply::new(
                202,
                json!({"status": "success", "message": "Event processed", "dedup_key": key})
                    .to_string(),
            )
        });
        FakePagerDuty { server, alerts }
    }

    /// Each alert's state by `dedup_key`: triggered, acknowledged, resolved.
    pub fn alerts(&self) -> BTreeMap<String, String> {
        self.alerts.lock().unwrap().clone()
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    // RFC 4231, test case 2.
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
