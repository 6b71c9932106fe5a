//! The tiers of one request around the engine: an idempotent replay or the key's lease
//! first, then a `serve = "always"` cached answer before any upstream call; after the engine
//! (tiers `full` and `reduced`), the guard on a fallback's answer and what is kept of the
//! answer served; when the engine is exhausted, the `cached` tier, then `static`. A later
//! tier (such as a queue) goes after [`Tiers::degraded`] when it answers `Err(None)`.

use super::answer::{respond, Rendering};
use super::cache::{self, ClientDirectives};
use super::guard::{self, Held};
use super::idempotency::{self, Begin, Lease};
use super::keeper::{CacheWrite, Keeper};
use crate::config::{CacheServe, GuardTier, Model};
use crate::http::{ApiError, ServedMeta};
use crate::pipeline::{ClientRequest, Gateway, Route};
use axum::response::Response;
use backstop_state::Store;
use http::HeaderValue;
use std::sync::Arc;

/// Whether the relay of `request` must gather its answer for [`Keeper`]: the model keeps a
/// cache or the request has an `Idempotency-Key`.
pub fn wants_answer(request: &ClientRequest) -> bool {
    request.headers.contains_key(idempotency::HEADER)
        || (request
            .config
            .models
            .get(&request.envelope.model)
            .is_some_and(|model| model.cache.is_some())
            && !ClientDirectives::of(&request.headers).no_store)
}

/// Whether a stream from `route` must be held whole before it is sent, so that the guard can
/// check it: `route` is a fallback, the requested model guards `reduced`, and the request
/// offers an irreversible tool.
pub fn holds_stream(request: &ClientRequest, route: &Route) -> bool {
    let config = &request.config;
    route.is_fallback
        && config
            .models
            .get(&request.envelope.model)
            .is_some_and(|model| guard::guards(config, model, GuardTier::Reduced))
        && guard::offers_irreversible(config, request)
}

/// How a request starts.
pub enum Start {
    /// Answered already: an idempotent replay, or a cached answer served before upstream.
    Answered(Response),
    /// To be served by the engine, then the degraded tiers.
    Serve(Tiers),
}

/// One request's way through the tiers.
pub struct Tiers {
    gateway: Arc<Gateway>,
    request: Arc<ClientRequest>,
    model: Arc<Model>,
    store: Option<Arc<Store>>,
    cache_key: Option<String>,
    directives: ClientDirectives,
    lease: Option<Lease>,
    held: Option<Held>,
}

impl Tiers {
    /// Looks up the request's `Idempotency-Key` and, with `serve = "always"`, the cache.
    pub async fn start(
        gateway: &Arc<Gateway>,
        request: &Arc<ClientRequest>,
        model: &Arc<Model>,
    ) -> Result<Start, ApiError> {
        let lease = match idempotency::begin(gateway, request).await? {
            Begin::Replay(response) => return Ok(Start::Answered(response)),
            Begin::Proceed(lease) => lease,
        };
        let directives = ClientDirectives::of(&request.headers);
        let store = super::store(gateway);
        let cache_key = model
            .cache
            .as_ref()
            .filter(|_| store.is_some() && !directives.no_store)
            .and_then(|settings| cache::key_of(request, &model.name, settings));
        let mut tiers = Tiers {
            gateway: gateway.clone(),
            request: request.clone(),
            model: model.clone(),
            store,
            cache_key,
            directives,
            lease,
            held: None,
        };
        let always = model
            .cache
            .as_ref()
            .is_some_and(|settings| settings.serve == CacheServe::Always);
        if always {
            if let Some(response) = tiers.cached_answer(0, CacheServe::Always).await {
                return Ok(Start::Answered(response));
            }
        }
        Ok(Start::Serve(tiers))
    }

    /// Whether the guard holds an answer of `route` that calls the tools `calls` names (read
    /// only when it is checked): only a fallback's answer, when the model guards `reduced`.
    pub fn holds(&mut self, route: &Route, calls: impl FnOnce() -> Vec<String>) -> bool {
        let config = &self.request.config;
        if !route.is_fallback || !guard::guards(config, &self.model, GuardTier::Reduced) {
            return false;
        }
        let calls = calls();
        let metrics = self.gateway.metrics();
        let names = calls.iter().map(String::as_str);
        self.held = guard::check(config, &self.model, GuardTier::Reduced, names, metrics);
        self.held.is_some()
    }

    /// What keeps the answer the engine served from `route`, if anything is to be kept.
    pub fn keeper(self, route: &Route) -> Option<Keeper> {
        let cache = match (&self.store, self.cache_key, &self.model.cache) {
            (Some(store), Some(key), Some(settings)) => Some(CacheWrite {
                store: store.clone(),
                settings: settings.clone(),
                key,
            }),
            _ => None,
        };
        if cache.is_none() && self.lease.is_none() {
            return None;
        }
        Some(Keeper {
            gateway: self.gateway,
            model: self.model.name.clone(),
            tier: if route.is_fallback { "reduced" } else { "full" },
            cache,
            lease: self.lease,
        })
    }

    /// Once the engine is exhausted (for reasons of the targets, not the request): a cached
    /// answer, else the static one (`static_answer`), else the guard's 503 when it held an
    /// answer, else `Err(None)`: the caller answers with the engine's error (or a later tier).
    pub async fn degraded(
        mut self,
        calls: u32,
        static_answer: impl FnOnce() -> Option<Response>,
    ) -> Result<Response, Option<ApiError>> {
        // Boxed: this runs once the engine has given up, and the future of every request
        // that awaits it would otherwise keep room for a cache read.
        if let Some(response) = Box::pin(self.cached_answer(calls, CacheServe::OnFailure)).await {
            return Ok(response);
        }
        if let Some(response) = static_answer() {
            return Ok(response);
        }
        match &self.held {
            Some(held) => Err(Some(guard::held_error(&self.model, held, calls))),
            None => Err(None),
        }
    }

    /// A cached answer, unless there is none, the client said `no-cache`, or the guard holds
    /// it. Counted in `backstop_cache_hits_total{serve}`; an idempotent request keeps it.
    async fn cached_answer(&mut self, calls: u32, serve: CacheServe) -> Option<Response> {
        if self.directives.no_cache {
            return None;
        }
        let (store, key) = (self.store.as_ref()?, self.cache_key.as_ref()?);
        let hit = cache::get(store, key).await?;
        let config = &self.request.config;
        let metrics = self.gateway.metrics();
        let calls_of = super::answer::tool_calls(&hit.answer);
        if let Some(held) = guard::check(config, &self.model, GuardTier::Cached, calls_of, metrics)
        {
            self.held = Some(held);
            return None;
        }
        metrics.keep().hit(&self.model.name, serve.as_str());
        let meta = ServedMeta {
            model: self.model.name.clone(),
            target: None,
            attempts: calls,
            fallback: false,
            degraded: Some("cached"),
        };
        let mut response = respond(&Rendering::of(&self.request), &hit.answer, &meta);
        response
            .headers_mut()
            .insert("x-backstop-cache-age", HeaderValue::from(hit.age));
        if let Some(lease) = self.lease.take() {
            lease.complete(&hit.answer, &self.model.name, "cached");
        }
        if serve == CacheServe::OnFailure {
            tracing::warn!(model = %self.model.name, age_s = hit.age, "every target failed: answered from the cache");
        }
        Some(response)
    }
}
