//! What becomes of a complete answer served by the engine: it is stored in the model's cache
//! and as the answer of the request's `Idempotency-Key`, when they apply.

use super::cache;
use super::idempotency::Lease;
use crate::config::CacheSettings;
use crate::pipeline::Gateway;
use backstop_protocol::ChatResponse;
use backstop_state::Store;
use std::sync::Arc;

/// A cache entry to write.
pub(super) struct CacheWrite {
    pub store: Arc<Store>,
    pub settings: CacheSettings,
    pub key: String,
}

/// Takes a complete successful answer (a whole one at once, a stream when its relay ends
/// cleanly) and keeps it; dropped without one, it keeps nothing and gives the lease back.
pub struct Keeper {
    pub(super) gateway: Arc<Gateway>,
    pub(super) model: String,
    pub(super) tier: &'static str,
    pub(super) cache: Option<CacheWrite>,
    pub(super) lease: Option<Lease>,
}

impl Keeper {
    /// Keeps `answer` (in the background: the client does not wait for the store).
    pub fn complete(self, answer: ChatResponse) {
        if let Some(lease) = self.lease {
            lease.complete(&answer, &self.model, self.tier);
        }
        let Some(write) = self.cache else {
            return;
        };
        let (gateway, model) = (self.gateway, self.model);
        tokio::spawn(async move {
            let index = gateway.keep().index();
            cache::put(
                &write.store,
                index,
                &model,
                &write.settings,
                write.key,
                &answer,
            )
            .await;
        });
    }
}
