//! The gateway's integration tests, one binary: the gateway in-process on port 0 (or the real
//! `backstop` binary where a test needs a process), mock upstreams on port 0, shared fixtures in
//! `common`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

mod drill;
mod gateway;
mod hedge;
mod hostile;
mod operations;
mod rescue;
mod resilience;
mod stalls;
mod telemetry;
mod threads;
mod tls;
