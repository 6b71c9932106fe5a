//! The request pipeline: plan the candidates, run them through the one engine of
//! `backstop-core` (breaker permit, send, classify, retry, hedge or move on), commit the
//! first good answer (a stream's first event), or answer with a clear error naming every
//! target tried. One function records how each attempt ended (`record`).

mod attempt;
mod attempts;
mod buffers;
mod call;
mod classify;
mod events;
pub(crate) mod failure;
mod fallback_tier;
mod gateway;
mod hedge;
mod inject;
mod kept;
mod outgoing;
mod plan;
mod record;
mod relay;
mod reload;
mod request;
mod rescue;
mod serve;
mod structured;

pub use attempt::{notes, upstream_error_for_caller, AttemptError};
pub use attempts::{verdict, Events};
pub use buffers::{BudgetExhausted, BufferBudget, Held};
pub use call::{read_body, read_failure};
pub use classify::{class_of, class_of_status};
pub use events::GatewayObserver;
pub use failure::{describe_transport, transport_class, Failure};
pub use gateway::{Gateway, TargetHealth};
pub use inject::{InjectedFault, InjectedKind};
pub use outgoing::OutgoingBody;
pub use plan::{plan, Route};
pub use record::{record_attempt, record_usage, Answered, Ended};
pub use reload::{ReloadError, Reloaded};
pub use request::ClientRequest;
