//! Faults injected into a target by an operator (admin API, drills): for a while
//! the gateway behaves as if the target failed that way, without calling it.

use super::classify::class_of_status;
use super::failure::Failure;
use backstop_core::FailureClass;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// What an injected fault simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InjectedKind {
    /// The upstream answers with this HTTP status.
    Status {
        /// The status.
        status: u16,
    },
    /// The upstream accepts the request and stays silent past `first_byte`.
    Timeout,
    /// The connection is reset before any byte.
    Reset,
}

/// An injected fault and when it ends.
#[derive(Debug, Clone, Copy)]
pub struct InjectedFault {
    /// What it simulates.
    pub kind: InjectedKind,
    /// When it stops applying.
    pub until: Instant,
}

impl InjectedFault {
    /// A fault of `kind` for `duration` from now.
    pub fn new(kind: InjectedKind, duration: Duration) -> Self {
        Self {
            kind,
            until: Instant::now() + duration,
        }
    }

    /// Whether it still applies.
    pub fn active(&self) -> bool {
        Instant::now() < self.until
    }

    /// Plays the fault out: returns the failure the target would have produced, after
    /// waiting (for a timeout) until `first_byte_deadline`.
    pub async fn play(&self, first_byte_deadline: Instant) -> Failure {
        match self.kind {
            InjectedKind::Status { status } => Failure {
                class: class_of_status(status),
                status: Some(status),
                message: format!("injected fault: status {status}"),
                retry_after: None,
                upstream_body: None,
            },
            InjectedKind::Timeout => {
                tokio::time::sleep_until(first_byte_deadline).await;
                Failure::local(
                    FailureClass::Unavailable,
                    "injected fault: no response within first_byte",
                )
            }
            InjectedKind::Reset => {
                Failure::local(FailureClass::Transient, "injected fault: connection reset")
            }
        }
    }
}
