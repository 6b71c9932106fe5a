//! The Backstop gateway: an OpenAI- and Anthropic-compatible proxy that absorbs
//! upstream failures (retries, circuit breakers, fallbacks) in one place.

pub mod admin;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod dashboard;
pub mod demo;
pub mod drill;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod redact;
pub mod routes;
pub mod server;
pub mod status;
pub mod telemetry;
pub mod upstream;
