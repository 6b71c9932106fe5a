//! The hostile suite: Backstop tried as an attacker and as a misbehaving provider would
//! try it. Slow and greedy clients, auth edge cases, endless and malformed upstreams,
//! invalid requests and secrets in every output, each against a real gateway.

pub(crate) mod auth;
mod edge;
mod streams;
mod validation;
