//! The Backstop gateway: an OpenAI- and Anthropic-compatible proxy that absorbs
//! upstream failures (retries, circuit breakers, fallbacks) in one place.

pub mod cli;
pub mod config;
pub mod demo;
pub mod drill;
pub mod http;
pub mod pipeline;
pub mod routes;
pub mod server;
pub mod upstream;
