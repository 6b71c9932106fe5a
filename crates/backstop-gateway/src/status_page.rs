//! Provider status pages: each provider's Statuspage v2 `status.json` read every
//! `status_poll`, never through a chat request. The indicator (`none`, `minor`, `major`,
//! `critical`; `unknown` while unread or unreachable) is kept on a board that `/status`,
//! `/admin/targets` and the `backstop_provider_status` gauge show, and that the plan reads to
//! put the targets of a provider with a major incident last, or leave them out
//! (`on_major_incident`). A status page never opens a breaker: only calls do.

use crate::config::{Config, Model, OnMajorIncident, StatusPage};
use crate::metrics::Metrics;
use crate::pipeline::Gateway;
use crate::tools::read_bounded;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The longest a status page read may take.
const MAX_READ_TIME: Duration = Duration::from_secs(10);

/// The most bytes of a status page read (a `status.json` is a few hundred).
const MAX_PAGE_BYTES: u64 = 64 << 10;

/// How often the poller looks at the configuration again (for a reload).
const RECHECK: Duration = Duration::from_secs(1);

/// What a provider's status page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    /// All systems operational.
    None,
    /// A minor incident.
    Minor,
    /// A major incident.
    Major,
    /// A critical incident.
    Critical,
    /// Not read yet, unreachable, or not understood: not an incident.
    Unknown,
}

impl Indicator {
    /// Statuspage's own word for it (`unknown` for what it did not say).
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::None => "none",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
            Indicator::Unknown => "unknown",
        }
    }

    /// Its value in `backstop_provider_status`.
    pub fn gauge(self) -> i64 {
        match self {
            Indicator::None => 0,
            Indicator::Minor => 1,
            Indicator::Major => 2,
            Indicator::Critical => 3,
            Indicator::Unknown => -1,
        }
    }

    fn parse(word: &str) -> Self {
        match word {
            "none" => Indicator::None,
            "minor" => Indicator::Minor,
            "major" => Indicator::Major,
            "critical" => Indicator::Critical,
            _ => Indicator::Unknown,
        }
    }

    /// Whether it is a major or critical incident.
    pub fn is_major(self) -> bool {
        matches!(self, Indicator::Major | Indicator::Critical)
    }
}

/// The last reading of one provider's status page.
#[derive(Debug, Clone)]
struct Report {
    url: String,
    indicator: Indicator,
    description: Option<String>,
    checked: Option<SystemTime>,
    error: Option<String>,
}

/// The indicators of every provider's status page, and whether the poller runs.
#[derive(Default)]
pub struct StatusBoard {
    reports: RwLock<HashMap<String, Report>>,
    polling: AtomicBool,
}

impl StatusBoard {
    /// What `provider`'s status page at `page` says now (`Unknown` until read).
    pub fn indicator(&self, provider: &str, page: &StatusPage) -> Indicator {
        self.reports
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(provider)
            .filter(|report| report.url == page.url)
            .map_or(Indicator::Unknown, |report| report.indicator)
    }

    fn set(&self, provider: &str, report: Report) {
        self.reports
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(provider.to_string(), report);
    }

    fn report(&self, provider: &str) -> Option<Report> {
        self.reports
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(provider)
            .cloned()
    }
}

/// Starts the poller of `gateway`'s status pages on the current runtime, once per gateway;
/// it ends when the gateway is dropped. Without a runtime it does nothing.
pub fn start(gateway: &Arc<Gateway>) {
    let board = gateway.status_board();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if board.polling.swap(true, Ordering::SeqCst) {
        return;
    }
    register(gateway.metrics(), &gateway.config());
    runtime.spawn(poll_forever(Arc::downgrade(gateway)));
}

async fn poll_forever(gateway: Weak<Gateway>) {
    let client = match crate::client::builder()
        .timeout(MAX_READ_TIME)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!("status pages are not read: cannot build an HTTP client: {error}");
            return;
        }
    };
    let mut due: HashMap<String, Instant> = HashMap::new();
    loop {
        let Some(strong) = gateway.upgrade() else {
            return;
        };
        let config = strong.config();
        let now = Instant::now();
        let mut wake = now + RECHECK;
        for (name, provider) in &config.providers {
            let Some(page) = &provider.status_page else {
                continue;
            };
            let next = due.entry(name.clone()).or_insert(now);
            if *next <= now {
                *next = now + page.poll;
                let report = read_page(&client, page).await;
                publish(&strong, name, report);
            }
            wake = wake.min(*next);
        }
        due.retain(|name, _| config.providers.contains_key(name));
        drop(strong);
        tokio::time::sleep_until(wake).await;
    }
}

/// Puts `report` on the board, sets the gauge and logs a change of indicator.
fn publish(gateway: &Gateway, provider: &str, report: Report) {
    let before = gateway.status_board().report(provider);
    if before.as_ref().map(|b| b.indicator) != Some(report.indicator) {
        let from = before.map_or("unknown", |b| b.indicator.as_str());
        match &report.error {
            Some(error) => tracing::warn!(
                provider,
                from,
                to = "unknown",
                "status page unreadable: {error}"
            ),
            None => tracing::info!(
                provider,
                from,
                to = report.indicator.as_str(),
                "status page indicator changed"
            ),
        }
    }
    gateway
        .metrics()
        .provider_status(provider, report.indicator.gauge());
    gateway.status_board().set(provider, report);
}

async fn read_page(client: &reqwest::Client, page: &StatusPage) -> Report {
    let read = async {
        let response = client
            .get(&page.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("{}", error.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        let body = read_bounded(response, MAX_PAGE_BYTES).await?;
        let document: Value = serde_json::from_slice(&body)
            .map_err(|_| "not a Statuspage v2 document".to_string())?;
        let status = &document["status"];
        let word = status["indicator"]
            .as_str()
            .ok_or_else(|| "no status.indicator".to_string())?;
        Ok((
            Indicator::parse(word),
            status["description"].as_str().map(str::to_string),
        ))
    };
    let timeout = page.poll.min(MAX_READ_TIME);
    let outcome = tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
    match outcome {
        Ok((indicator, description)) => Report {
            url: page.url.clone(),
            indicator,
            description,
            checked: Some(SystemTime::now()),
            error: None,
        },
        Err(error) => Report {
            url: page.url.clone(),
            indicator: Indicator::Unknown,
            description: None,
            checked: Some(SystemTime::now()),
            error: Some(error),
        },
    }
}

/// `order` (indices of `model`'s targets) with the targets of providers in a major incident
/// moved last (`deprioritize`) or left out (`avoid`, unless that would leave none).
pub fn reorder(gateway: &Gateway, model: &Model, order: Vec<usize>) -> Vec<usize> {
    let board = gateway.status_board();
    let mut first = Vec::with_capacity(order.len());
    let mut last = Vec::new();
    let mut avoided = Vec::new();
    for index in order {
        let provider = model.targets.get(index).map(|t| &t.provider);
        let page = provider.and_then(|p| p.status_page.as_ref().map(|page| (p, page)));
        match page {
            Some((provider, page)) if board.indicator(&provider.name, page).is_major() => {
                match page.on_major_incident {
                    OnMajorIncident::Deprioritize => last.push(index),
                    OnMajorIncident::Avoid => avoided.push(index),
                    OnMajorIncident::Ignore => first.push(index),
                }
            }
            _ => first.push(index),
        }
    }
    let keep_avoided = first.is_empty() && last.is_empty();
    first.extend(last);
    if keep_avoided {
        first.extend(avoided);
    }
    first
}

/// The `providers` object of `/status`: each provider's status page indicator.
pub fn providers_report(gateway: &Gateway, config: &Config) -> Value {
    let board = gateway.status_board();
    let mut out = serde_json::Map::new();
    for (name, provider) in &config.providers {
        let entry = match &provider.status_page {
            None => json!({"status_page": null}),
            Some(page) => {
                let report = board.report(name).filter(|r| r.url == page.url);
                let indicator = board.indicator(name, page);
                let checked = report.as_ref().and_then(|r| r.checked).and_then(|at| {
                    at.duration_since(SystemTime::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs())
                });
                json!({
                    "status_page": indicator.as_str(),
                    "description": report.as_ref().and_then(|r| r.description.clone()),
                    "error": report.as_ref().and_then(|r| r.error.clone()),
                    "checked_at": checked,
                    "url": page.url,
                    "on_major_incident": match page.on_major_incident {
                        OnMajorIncident::Deprioritize => "deprioritize",
                        OnMajorIncident::Avoid => "avoid",
                        OnMajorIncident::Ignore => "ignore",
                    },
                })
            }
        };
        out.insert(name.clone(), entry);
    }
    Value::Object(out)
}

/// The indicator of the provider of the target labelled `label`, for a target report.
pub fn target_indicator(gateway: &Gateway, config: &Config, label: &str) -> Option<&'static str> {
    let provider = label.split('/').next()?;
    let page = config.providers.get(provider)?.status_page.as_ref()?;
    Some(gateway.status_board().indicator(provider, page).as_str())
}

/// The worst indicator the status pages of `model`'s providers show (`None` when none of
/// them has one), for `/status`.
pub fn model_reported(gateway: &Gateway, model: &Model) -> Option<&'static str> {
    let rank = |indicator: Indicator| match indicator {
        Indicator::Unknown => 0,
        Indicator::None => 1,
        Indicator::Minor => 2,
        Indicator::Major => 3,
        Indicator::Critical => 4,
    };
    model
        .targets
        .iter()
        .filter_map(|target| {
            let page = target.provider.status_page.as_ref()?;
            Some(
                gateway
                    .status_board()
                    .indicator(&target.provider.name, page),
            )
        })
        .max_by_key(|indicator| rank(*indicator))
        .map(Indicator::as_str)
}

/// Sets the gauge of every provider with a status page to `unknown` until it is read.
pub fn register(metrics: &Metrics, config: &Config) {
    for (name, provider) in &config.providers {
        if provider.status_page.is_some() {
            metrics.provider_status(name, Indicator::Unknown.gauge());
        }
    }
}
