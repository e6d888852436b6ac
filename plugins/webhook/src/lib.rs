//! A generic webhook reporter: POSTs the run's report as one JSON document
//! to `url`, for anything that takes a POST (an Argo Events webhook
//! source, a deploy hook that restarts the key's consumers).
//!
//! With a `secret`, the body is signed as GitHub signs its webhooks:
//! `X-Keyrot-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, so the
//! receiver can check that keyrot sent it (compare in constant time).
//! Every delivery has an `X-Keyrot-Delivery` id, the same on every retry,
//! for receivers that deduplicate. 429 and 5xx answers are retried with
//! backoff (honouring `Retry-After`); any other non-2xx answer fails.

use reporter_kit::http::{self, Retry};
use reporter_kit::{Guest, PluginInfo, RunReport, Setting};

struct Webhook;

impl Guest for Webhook {
    fn describe() -> PluginInfo {
        let setting = |name: &str, description: &str, required, secret| Setting {
            name: name.into(),
            description: description.into(),
            required,
            secret,
        };
        PluginInfo {
            name: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "POSTs the run's report as JSON to a URL, HMAC-signed, with retries."
                .into(),
            settings: vec![
                setting(
                    "url",
                    "Where to POST, e.g. https://events.example.com/keyrot",
                    true,
                    false,
                ),
                setting(
                    "secret",
                    "Signs each body: X-Keyrot-Signature-256: sha256=HMAC-SHA256(secret, body)",
                    false,
                    true,
                ),
                setting(
                    "attempts",
                    "Attempts on 429 and 5xx answers, with backoff (default 4)",
                    false,
                    false,
                ),
            ],
        }
    }

    fn report(run: RunReport) -> Result<(), String> {
        let url = reporter_kit::required("url")?;
        let secret = reporter_kit::setting("secret")?;
        let attempts = reporter_kit::number("attempts", Retry::default().attempts)?;
        let mut document = reporter_kit::json::run(&run);
        document["event"] = "keyrot.run".into();
        let body = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
        let mut headers = vec![
            ("x-keyrot-event", "run".to_string()),
            ("x-keyrot-delivery", delivery_id()),
        ];
        if let Some(secret) = &secret {
            let signature = reporter_kit::hmac_sha256_hex(secret.as_bytes(), &body);
            headers.push(("x-keyrot-signature-256", format!("sha256={signature}")));
        }
        let retry = Retry {
            attempts: attempts.max(1),
            ..Retry::default()
        };
        let response = http::post_json_retrying(&url, &headers, &body, retry)?;
        if !response.is_success() {
            return Err(format!(
                "the webhook answered {}: {}",
                response.status,
                response.text()
            ));
        }
        reporter_kit::info(
            "report",
            &format!(
                "delivered {} user(s) to the webhook (answer {})",
                run.users.len(),
                response.status
            ),
        );
        Ok(())
    }
}

/// 16 random bytes, hex: one id per delivery, kept across its retries.
fn delivery_id() -> String {
    waki::bindings::wasi::random::random::get_random_bytes(16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

reporter_kit::export!(Webhook);
