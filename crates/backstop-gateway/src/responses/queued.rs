//! A Responses request replayed by the durable queue: its answer is finished as the live route would finish it
//! (the gateway's `resp_` id, the request's settings echoed), but it is not kept for `previous_response_id`:
//! the job does not hold the client key a stored answer belongs to, so the result says `"store": false`.

use super::echo;
use super::store::{MemoryStore, ResponseStore};
use backstop_state::queue::Outcome;
use bytes::Bytes;
use std::sync::Arc;

/// Finishes the Responses answer in `outcome` for the job body `body` (a request whose earlier turns were
/// already expanded into `input` when it was queued). An error result is left as it is.
pub async fn finish_queued(body: &str, outcome: &mut Outcome) {
    if outcome.status_code != 200 {
        return;
    }
    let Ok(mut answer) = serde_json::from_str::<serde_json::Value>(&outcome.result) else {
        return;
    };
    // The earlier turns are already in `input`: nothing is read from a store.
    let none = ResponseStore::Memory(Arc::new(MemoryStore::default()));
    let Ok((_, echo)) = echo::prepare(Bytes::from(body.to_owned()), &none, "").await else {
        return;
    };
    echo.finish(&mut answer);
    if let Some(object) = answer.as_object_mut() {
        object.insert("store".into(), false.into());
    }
    outcome.result = answer.to_string();
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
        finish_queued(body, &mut answered).await;
        let answer: serde_json::Value = serde_json::from_str(&answered.result).unwrap();
        assert!(
            answer["id"].as_str().unwrap().starts_with("resp_"),
            "{answer}"
        );
        assert_eq!(answer["metadata"]["k"], "v");
        assert_eq!(answer["temperature"], 0.5);
        assert_eq!(answer["store"], false);

        let error = r#"{"error":{"message":"down","type":"server_error"}}"#;
        let mut failed = outcome(503, error);
        finish_queued(body, &mut failed).await;
        assert_eq!(failed.result, error);
    }
}
