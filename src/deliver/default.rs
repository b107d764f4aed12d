//! The `default` type: the event as JSON (`payloadKeys`), Standard Webhooks signing when the
//! webhook has a secret, and classification by HTTP status (docs/reference.md §5).

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::channel::{Channel, Envelope, Route};
use super::{parse_retry_after, payload, Attempt, Deliverer, Outcome};
use crate::config::Config;
use crate::webhook::Webhook;

/// The `default` channel: one destination per webhook, no rate windows.
pub struct Default;

impl Channel for Default {
    fn route(&self, wh: &Webhook, _cfg: &Config) -> Route {
        Route {
            name: format!("wh:{}", wh.id),
            windows: vec![],
        }
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send(d, env))
    }
}

/// Sends the event as JSON, signed when the webhook has a secret.
async fn send(d: &Deliverer, env: &Envelope) -> Attempt {
    let (wh, ev) = (&env.webhook, &env.event);
    let body = match d.default_body(wh, ev) {
        Ok(body) => body,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    let content_type = if wh.content_type.is_empty() {
        "application/json"
    } else {
        wh.content_type.as_str()
    };
    let mut headers = vec![("content-type".to_string(), content_type.to_string())];
    if !wh.secret.is_empty() {
        let id = d.message_id(env.delivery_id);
        let ts = chrono::Utc::now().timestamp();
        let sig = payload::standard_webhooks_signature(&wh.secret, &id, ts, &body);
        headers.push(("webhook-id".into(), id));
        headers.push(("webhook-timestamp".into(), ts.to_string()));
        headers.push(("webhook-signature".into(), sig));
    }
    let sent = d.post(&wh.url, headers, body).await;
    let outcome = match &sent.result {
        Err(e) => Outcome::Retry {
            after: None,
            error: e.clone(),
        },
        Ok((status, resp_headers, _)) => {
            classify_default(*status, resp_headers, d.cfg.delivery.max_retry_after)
        }
    };
    sent.into_attempt(outcome)
}

/// Classifies a `default` webhook's answer per docs/reference.md §5.
pub fn classify_default(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    max_retry_after: Duration,
) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Dead("HTTP 410 Gone: the endpoint says it no longer exists".into()),
        300..=399 => {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            Outcome::Retry {
                after: None,
                error: format!(
                    "HTTP {status}: redirect to {} not followed",
                    crate::mask::url(to)
                ),
            }
        }
        429 | 503 => Outcome::Retry {
            // A zero or past Retry-After says nothing useful: the schedule applies.
            after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
                .filter(|d| !d.is_zero())
                .map(|d| d.min(max_retry_after)),
            error: format!("HTTP {status}"),
        },
        _ => Outcome::Retry {
            after: None,
            error: format!("HTTP {status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_default_answers() {
        let h = reqwest::header::HeaderMap::new();
        let cap = Duration::from_secs(3600);
        assert_eq!(classify_default(204, &h, cap), Outcome::Delivered);
        assert!(matches!(classify_default(410, &h, cap), Outcome::Dead(_)));
        assert!(matches!(
            classify_default(500, &h, cap),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify_default(302, &h, cap),
            Outcome::Retry { .. }
        ));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(
            classify_default(429, &h, cap),
            Outcome::Retry {
                after: Some(cap),
                error: "HTTP 429".into()
            }
        );
    }
}
