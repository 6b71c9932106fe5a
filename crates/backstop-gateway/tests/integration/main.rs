//! The gateway's integration tests, one binary: the gateway in-process on port 0 (or the real
//! `backstop` binary where a test needs a process), mock upstreams on port 0, shared fixtures in
//! `common`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

mod channels;
mod drill;
mod embeddings;
mod gateway;
mod governance;
mod governance_paths;
mod hedge;
pub(crate) mod hostile;
mod keep;
mod operations;
mod queue;
mod rescue;
mod resilience;
mod responses;
mod responses_passthrough;
mod responses_shared;
mod stalls;
mod state;
mod status_pages;
mod structured;
mod telemetry;
mod threads;
mod tiers;
mod tls;
mod tools;
