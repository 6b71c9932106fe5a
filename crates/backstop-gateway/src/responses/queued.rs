//! A Responses request replayed by the durable queue: its answer is finished as the live route would finish it
//! (the gateway's `resp_` id, the request's settings echoed) and kept in the response store for
//! `previous_response_id`, owned by the client key that queued it. A job queued before jobs named their
//! client has no owner to keep it for: its result says `"store": false`.

use super::echo;
use super::store::{MemoryStore, ResponseStore, Stored};
use crate::pipeline::Gateway;
use backstop_state::queue::Outcome;
use bytes::Bytes;
use std::sync::Arc;

/// Finishes the Responses answer in `outcome` for the job body `body` (a request whose earlier turns were
/// already expanded into `input` when it was queued) and stores it for `owner` (see
/// [`crate::keep::key::client_id`]) unless the request said `"store": false`. An error result is left as
/// it is.
pub async fn finish_queued(
    gateway: &Gateway,
    body: &str,
    owner: Option<&str>,
    outcome: &mut Outcome,
) {
    if let Some((id, record)) = finish(body, owner, outcome).await {
        let limits = super::limits(&gateway.config());
        super::keep(&gateway.response_store(), gateway, &id, record, limits).await;
    }
}

/// Finishes the answer in `outcome`; the id and record to keep, if it is to be kept.
async fn finish(
    body: &str,
    owner: Option<&str>,
    outcome: &mut Outcome,
) -> Option<(String, Stored)> {
    if outcome.status_code != 200 {
        return None;
    }
    let mut answer = serde_json::from_str::<serde_json::Value>(&outcome.result).ok()?;
    // The earlier turns are already in `input`: nothing is read from a store.
    let none = ResponseStore::Memory(Arc::new(MemoryStore::default()));
    let (_, echo) = echo::prepare(Bytes::from(body.to_owned()), &none, "")
        .await
        .ok()?;
    echo.finish(&mut answer);
    let kept = match owner {
        Some(owner) => echo.record(owner, &answer),
        None => {
            if let Some(object) = answer.as_object_mut() {
                object.insert("store".into(), false.into());
            }
            None
        }
    };
    outcome.result = answer.to_string();
    Some((echo.id, kept?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_state::queue::JobStatus;

    fn outcome(status_code: u16, result: &str) -> Outcome {
        Outcome {
            status: JobStatus::Done,
            result: result.to_owned(),
            status_code,
        }
    }

    #[tokio::test]
    async fn an_answer_gets_the_gateway_id_and_the_echoed_settings_and_an_error_is_left_alone() {
        let body = r#"{"model":"m","input":"hi","metadata":{"k":"v"},"temperature":0.5}"#;
        let mut answered = outcome(
            200,
            r#"{"id":"upstream","object":"response","status":"completed"}"#,
        );
        let (id, record) = finish(body, Some("owner"), &mut answered).await.unwrap();
        let answer: serde_json::Value = serde_json::from_str(&answered.result).unwrap();
        assert!(id.starts_with("resp_"), "{id}");
        assert_eq!(answer["id"], id.as_str());
        assert_eq!(answer["metadata"]["k"], "v");
        assert_eq!(answer["temperature"], 0.5);
        assert_eq!(answer["store"], true);
        assert_eq!(record.owner, "owner");
        assert_eq!(
            record.conversation[0]["content"], "hi",
            "{:?}",
            record.conversation
        );

        let error = r#"{"error":{"message":"down","type":"server_error"}}"#;
        let mut failed = outcome(503, error);
        assert!(finish(body, Some("owner"), &mut failed).await.is_none());
        assert_eq!(failed.result, error);
    }

    #[tokio::test]
    async fn a_job_without_an_owner_or_with_store_false_is_not_kept() {
        let answer = r#"{"id":"upstream","object":"response","status":"completed"}"#;
        let mut old = outcome(200, answer);
        let body = r#"{"model":"m","input":"hi"}"#;
        assert!(finish(body, None, &mut old).await.is_none());
        let old: serde_json::Value = serde_json::from_str(&old.result).unwrap();
        assert_eq!(old["store"], false);

        let mut unstored = outcome(200, answer);
        let body = r#"{"model":"m","input":"hi","store":false}"#;
        assert!(finish(body, Some("owner"), &mut unstored).await.is_none());
    }
}
