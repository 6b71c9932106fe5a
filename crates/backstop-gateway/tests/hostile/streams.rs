//! Upstreams that misbehave mid-stream: endless, too fast, comments only, cut at a deadline.
