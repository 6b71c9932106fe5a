//! Invalid requests: a 400 in the caller's protocol, never an upstream call, on every path.
