//! The Backstop gateway: an OpenAI- and Anthropic-compatible proxy that absorbs
//! upstream failures (retries, circuit breakers, fallbacks) in one place.

pub mod admin;
pub mod channels;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod dashboard;
pub mod demo;
pub mod drill;
pub mod embeddings;
pub mod governance;
pub mod http;
pub mod keep;
pub mod log_format;
pub mod log_writer;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod queue_metrics;
pub mod redact;
pub mod responses;
pub mod routes;
pub mod server;
pub mod state_metrics;
pub mod status;
pub mod status_page;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_log;
pub mod tools;
pub mod upstream;
