//! Webhooks: a job that asked with `x-backstop-callback: URL` has its final state POSTed there once it is
//! finished, signed `x-backstop-signature: sha256=HEX` (HMAC-SHA256 of the body with `queue.callback_secret`).
//!
//! No SSRF: the URL's host (and port, when not the default) must be listed exactly in `queue.callback_hosts`,
//! over HTTPS unless the entry says `http://`; redirects are not followed. Deliveries are retried with backoff a
//! bounded number of times, and at most [`MAX_IN_FLIGHT`] run at once.

use crate::config::{CallbackHost, QueueSettings};
use crate::http::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The request header naming the webhook URL.
pub const HEADER: &str = "x-backstop-callback";

/// Deliveries running at once; past it a finished job's webhook is dropped (and counted).
pub const MAX_IN_FLIGHT: usize = 64;

/// Tries of one delivery, with a backoff doubling from one second between them.
pub const TRIES: u32 = 6;

/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

static IN_FLIGHT: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT)));

/// The webhook URL of a request, if it names one: refused (400 naming the header) unless its host is listed.
pub fn requested(
    headers: &http::HeaderMap,
    settings: &QueueSettings,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("invalid `{HEADER}` header: {why}"),
        )
    };
    let text = value.to_str().map_err(|_| refuse("not ASCII"))?.trim();
    let url = url::Url::parse(text).map_err(|error| refuse(&format!("not a URL ({error})")))?;
    if !allowed(&url, &settings.callback_hosts) {
        return Err(refuse(
            "its host is not listed in `queue.callback_hosts` (HTTPS, or plain HTTP only for hosts listed with `http://`)",
        ));
    }
    Ok(Some(url.to_string()))
}

fn allowed(url: &url::Url, hosts: &[CallbackHost]) -> bool {
    let http = match url.scheme() {
        "https" => false,
        "http" => true,
        _ => return false,
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    hosts
        .iter()
        .any(|entry| entry.authority == authority && (!http || entry.http))
}

/// `sha256=HEX`: the signature of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` (the job as `GET` shows it) to `url` in the background, with retries.
pub fn deliver(url: String, body: String, secret: String, metrics: Arc<Metrics>) {
    let Ok(permit) = IN_FLIGHT.clone().try_acquire_owned() else {
        tracing::warn!("too many webhook deliveries in flight: one dropped");
        metrics.queue().webhook("dropped");
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let outcome = if post_with_retries(&url, body, &secret).await {
            "delivered"
        } else {
            "failed"
        };
        metrics.queue().webhook(outcome);
    });
}

async fn post_with_retries(url: &str, body: String, secret: &str) -> bool {
    let client = match crate::client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TRY_TIMEOUT)
        .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!("cannot build the webhook client: {error}");
            return false;
        }
    };
    let signed = signature(secret, body.as_bytes());
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=TRIES {
        let sent = client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-backstop-signature", &signed)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                tracing::warn!(
                    attempt,
                    status = response.status().as_u16(),
                    "webhook refused"
                )
            }
            Err(error) => tracing::warn!(attempt, "webhook not delivered: {error}"),
        }
        if attempt < TRIES {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[(&str, bool)]) -> QueueSettings {
        QueueSettings {
            callback_hosts: hosts
                .iter()
                .map(|(authority, http)| CallbackHost {
                    http: *http,
                    authority: authority.to_string(),
                })
                .collect(),
            ..QueueSettings::default()
        }
    }

    fn check(url: &str, settings: &QueueSettings) -> Result<Option<String>, ApiError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(HEADER, url.parse().unwrap());
        requested(&headers, settings)
    }

    #[test]
    fn only_listed_hosts_over_the_listed_scheme() {
        let listed = settings(&[("hooks.example.com", false), ("127.0.0.1:9000", true)]);
        assert!(check("https://hooks.example.com/done", &listed)
            .unwrap()
            .is_some());
        assert!(check("http://127.0.0.1:9000/x", &listed).unwrap().is_some());
        for refused in [
            "http://hooks.example.com/done",
            "https://hooks.example.com:8443/done",
            "https://evil.example.com/",
            "https://hooks.example.com.evil.net/",
            "https://user:pw@hooks.example.com/",
            "http://127.0.0.1:9001/",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "not a url",
        ] {
            let error = check(refused, &listed).unwrap_err();
            assert_eq!(error.status, 400, "{refused}");
            assert!(error.message.contains(HEADER), "{}", error.message);
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
