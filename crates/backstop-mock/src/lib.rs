//! `backstop-mock`: a fake LLM provider that misbehaves exactly as real ones do.
//!
//! Failover cannot be tested against real providers on demand, and tests have no network. This
//! crate speaks the OpenAI Chat Completions, Anthropic Messages and Gemini `generateContent`
//! wire formats (streaming and not, tools included) with a deterministic answer, plus OpenAI
//! embeddings and Gemini `batchEmbedContents` with deterministic vectors (under the `openai`
//! and `gemini` routes' faults), and injects
//! the failures a resilience gateway must survive: provider error statuses with their real
//! bodies and headers, TCP resets, hangs, slow or cut or stalled or corrupted streams, the
//! providers' own mid-stream error events, prefill rejections and silent model swaps. Each [`Fault`] applies to a selection of requests (route,
//! model glob) for a count, a time window, always, or with a seeded probability.
//!
//! Every request is recorded, so a test can assert how many attempts reached the provider and
//! how far apart they were.
//!
//! # Quick start
//!
//! ```no_run
//! use backstop_mock::{Fault, MockConfig, MockServer, Route};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let mock = MockServer::start(MockConfig::default()).await?;
//! // The next two OpenAI requests for any gpt-* model get a 503 with OpenAI's error body.
//! mock.add_fault(Fault::status(503).route(Route::Openai).model("gpt-*").count(2));
//! let base_url = format!("{}/v1", mock.url()); // give this to an OpenAI client
//! # let _ = base_url;
//! assert!(mock.requests().is_empty());
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Over TLS ([`MockServer::start_tls`] with a [`MockTls`]), the mock offers HTTP/2 and
//! HTTP/1.1 by ALPN, and records each request's HTTP version, so a client's protocol
//! negotiation can be tested too. Feature `tls-test-certs` adds `TestCerts`, throwaway
//! certificates for such tests.
//!
//! The script format, the control API and every fault are described in `docs/mock.md`.

#![warn(missing_docs)]

mod anthropic;
mod ask;
mod cloud;
mod cloud_errors;
mod config;
mod control;
mod effect;
mod embed;
mod errors;
mod fault;
mod gemini;
mod handler;
mod log;
mod openai;
mod quota;
#[cfg(feature = "redis-server")]
pub mod redis_server;
mod registry;
mod reply;
mod responses;
mod routes;
mod server;
mod shape;
mod spec;
mod status_page;
mod stream;
#[cfg(feature = "tls-test-certs")]
mod test_certs;
mod tls;

pub use backstop_core::duration::{format_duration, parse_duration};
pub use cloud::BEDROCK_SECRET_ACCESS_KEY;
pub use config::{answer_chunks, MockConfig, MockError, ScriptFormat, DEFAULT_ANSWER};
pub use fault::{glob_match, Fault, FaultKind, Mode, Route, Selector};
pub use log::RecordedRequest;
pub use quota::Quota;
pub use server::{run, run_with, MockServer};
#[cfg(feature = "tls-test-certs")]
pub use test_certs::TestCerts;
pub use tls::MockTls;
