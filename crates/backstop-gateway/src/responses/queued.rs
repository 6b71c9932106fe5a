//! A Responses request replayed by the durable queue: its answer is finished as the live route would finish it
//! (the gateway's `resp_` id, the request's settings echoed), but it is not kept for `previous_response_id`:
//! the job does not hold the client key a stored answer belongs to, so the result says `"store": false`.

use super::echo;
use super::store::MemoryStore;
use backstop_state::queue::Outcome;
use bytes::Bytes;

/// Finishes the Responses answer in `outcome` for the job body `body` (a request whose earlier turns were
/// already expanded into `input` when it was queued). An error result is left as it is.
pub fn finish_queued(body: &str, outcome: &mut Outcome) {
    if outcome.status_code != 200 {
        return;
    }
    let Ok(mut answer) = serde_json::from_str::<serde_json::Value>(&outcome.result) else {
        return;
    };
    let Ok((_, echo)) = echo::prepare(Bytes::from(body.to_owned()), &MemoryStore::default(), "")
    else {
        return;
    };
    echo.finish(&mut answer);
    if let Some(object) = answer.as_object_mut() {
        object.insert("store".into(), false.into());
    }
    outcome.result = answer.to_string();
}
