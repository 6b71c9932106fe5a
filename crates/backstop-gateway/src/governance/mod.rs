//! Policy that holds on every path a request takes, failover included: client keys with an identity, the models
//! they may ask for, budgets and rate limits, enforced with counters every replica shares (see [`counters`]).
//!
//! A request is admitted at the edge ([`Governance::admit`]): its key must allow the model, its budget must not
//! be spent, its rate limits not reached. What it then costs is charged on its [`Tab`] by every attempt that
//! reports usage, on whichever target served it, so retries, hedges, continuations and fallbacks all count.

mod admin;
mod admit;
pub mod counters;
pub mod drift;
mod metrics;
pub mod period;
pub mod quota;
mod quota_share;
mod readmit;
pub mod regions;
mod tab;

pub use admin::admin_keys;
pub use metrics::GovernanceMetrics;
pub use readmit::Readmission;
pub use tab::{stamp_cost, Tab};

use crate::config::{BudgetPeriod, ClientKey};
use backstop_state::record::now_ms;
use backstop_state::Store;
use counters::Counters;
use period::Window;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The governance state of one gateway: its shared counters.
#[derive(Default)]
pub struct Governance {
    counters: Arc<Counters>,
    /// The drifts from pinned versions seen so far.
    pub drifts: drift::Drifts,
    /// The room each target's provider says it has left.
    pub quotas: Arc<quota::Quotas>,
}

/// The counters of one client key, by kind.
#[derive(Clone, Copy)]
enum Counted {
    Spend,
    Requests,
    Tokens,
}

impl Governance {
    /// Shares spend and rate counters, and the targets short of room, through `store` from now on.
    pub fn attach(&self, store: Arc<Store>) {
        quota_share::attach(&self.quotas, store.clone());
        self.counters.attach(store);
    }

    /// The counter of `key` for `what` in `window`.
    fn counter(key: &ClientKey, what: Counted, window: &Window) -> String {
        let kind = match what {
            Counted::Spend => "spend",
            Counted::Requests => "requests",
            Counted::Tokens => "tokens",
        };
        format!("keys:{}:{kind}:{}", key.name, window.id)
    }

    /// Adds `usd` and `tokens` to what `key` used in its current windows, the spend also to what it spent on
    /// the public model `model`.
    pub fn charge(&self, key: &ClientKey, model: &str, usd: f64, tokens: u64) {
        let now = now_ms();
        if usd > 0.0 {
            let window = period::budget_window(spend_period(key), now);
            let name = Self::counter(key, Counted::Spend, &window);
            self.counters.add(&name, usd, window.ttl, window.ends_at_ms);
            let by_model = format!("{name}:{model}");
            self.counters
                .add(&by_model, usd, window.ttl, window.ends_at_ms);
        }
        if key.rate.tokens_per_minute.is_some() && tokens > 0 {
            let window = period::minute_window(now);
            let name = Self::counter(key, Counted::Tokens, &window);
            self.counters
                .add(&name, tokens as f64, window.ttl, window.ends_at_ms);
        }
    }

    /// What `key` spent in its budget's current period (the calendar month without a budget).
    pub async fn spent(&self, key: &ClientKey) -> f64 {
        let window = period::budget_window(spend_period(key), now_ms());
        let name = Self::counter(key, Counted::Spend, &window);
        self.counters
            .value(&name, window.ttl, window.ends_at_ms)
            .await
    }
}

impl Governance {
    /// What `key` spent on each public model in its budget's current period, every replica's spend included
    /// (as of their last flush). For `GET /admin/keys`: it reads the store.
    pub async fn spent_by_model(&self, key: &ClientKey) -> BTreeMap<String, f64> {
        let window = period::budget_window(spend_period(key), now_ms());
        let prefix = format!("{}:", Self::counter(key, Counted::Spend, &window));
        self.counters.starting_with(&prefix, SCAN_LIMIT).await
    }
}

/// How long `GET /admin/keys` waits for the store to list a key's spend by model.
const SCAN_LIMIT: Duration = Duration::from_secs(1);

/// The period a key's spend is counted in: its budget's, else the calendar month.
pub fn spend_period(key: &ClientKey) -> BudgetPeriod {
    key.budget.map_or(BudgetPeriod::Month, |budget| budget.per)
}
