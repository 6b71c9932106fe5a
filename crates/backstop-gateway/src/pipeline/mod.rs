//! The request pipeline: plan the candidates, run the one attempt loop (breaker
//! permit, send, classify, retry or move on), commit the first good answer, or
//! answer with a clear error naming every target tried.

mod attempt;
mod buffers;
mod call;
mod classify;
mod events;
mod failure;
mod gateway;
mod hedge;
mod inject;
mod plan;
mod relay;
mod reload;
mod request;
mod rescue;
mod serve;

pub use attempt::upstream_error_for_caller;
pub use buffers::{BudgetExhausted, BufferBudget, Held};
pub use call::{read_body, read_failure, record_usage};
pub use classify::{class_of, class_of_status};
pub use failure::{describe_transport, transport_class, Failure};
pub use gateway::{Gateway, TargetHealth};
pub use inject::{InjectedFault, InjectedKind};
pub use plan::{plan, Candidate};
pub use reload::{ReloadError, Reloaded};
pub use request::ClientRequest;
