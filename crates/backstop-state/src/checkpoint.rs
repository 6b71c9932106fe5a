//! Checkpoints for Rust agents: the result of each completed step of a task, kept in the same
//! store as the gateway's state (memory, SQLite or Redis), so that an agent that crashed at
//! step 7 resumes there without running (and paying for) steps 1 to 6 again. The gateway's
//! `Idempotency-Key` does the same for agents in any language.
//!
//! Results are JSON under `ckpt:{task length}:{task}:{step}`, for the checkpoints' time to live.
//!
//! ```no_run
//! # async fn demo() -> Result<(), backstop_state::StateError> {
//! use backstop_state::checkpoint::Checkpoints;
//! use backstop_state::{NoStateObserver, StateSpec, Store};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let spec = StateSpec::parse("sqlite:agent-state.db")?;
//! let store = Arc::new(Store::open(&spec, "agent:", "agent-1", Arc::new(NoStateObserver))?);
//! let checkpoints = Checkpoints::new(store, Some(Duration::from_secs(24 * 3600)));
//! // Runs the step once; after a restart, the same call returns the stored result at once.
//! let plan: String = checkpoints
//!     .step("trip-42", "plan", || async { Ok::<_, backstop_state::StateError>("fly, then train".to_string()) })
//!     .await?;
//! let done = checkpoints.completed("trip-42").await?;
//! assert_eq!(done[0].0, "plan");
//! # let _ = plan; Ok(()) }
//! ```

use crate::record::{now_ms, Entry};
use crate::{StateError, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long listing a task's steps may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(2);

/// The completed steps of tasks, in a store.
pub struct Checkpoints {
    store: Arc<Store>,
    ttl: Option<Duration>,
}

impl Checkpoints {
    /// Checkpoints in `store`, each kept for `ttl` (`None`: until the store is cleared).
    pub fn new(store: Arc<Store>, ttl: Option<Duration>) -> Self {
        Self { store, ttl }
    }

    fn task_prefix(task: &str) -> String {
        format!("ckpt:{}:{task}:", task.len())
    }

    /// Records `result` as the result of `step` of `task`.
    pub async fn record<T: Serialize>(
        &self,
        task: &str,
        step: &str,
        result: &T,
    ) -> Result<(), StateError> {
        let result =
            serde_json::to_value(result).map_err(|error| StateError::Backend(error.to_string()))?;
        let value = json!({"at": now_ms(), "result": result}).to_string();
        let key = format!("{}{step}", Self::task_prefix(task));
        let entry = Entry {
            value,
            ttl: self.ttl,
        };
        self.store.put_many(vec![(key, entry)]).await
    }

    /// The result of `step` of `task`, if it was recorded (and reads as a `T`).
    pub async fn get<T: DeserializeOwned>(
        &self,
        task: &str,
        step: &str,
    ) -> Result<Option<T>, StateError> {
        let key = format!("{}{step}", Self::task_prefix(task));
        let Some(value) = self.store.get(&key).await? else {
            return Ok(None);
        };
        Ok(result_of(&value).and_then(|(_, result)| serde_json::from_value(result).ok()))
    }

    /// The completed steps of `task` and their results, in the order they were recorded.
    pub async fn completed(&self, task: &str) -> Result<Vec<(String, Value)>, StateError> {
        let prefix = Self::task_prefix(task);
        let mut steps: Vec<(u64, String, Value)> = self
            .store
            .scan(&prefix, SCAN_TIMEOUT)
            .await?
            .into_iter()
            .filter_map(|(key, value)| {
                let step = key.strip_prefix(&prefix)?.to_string();
                let (at, result) = result_of(&value)?;
                Some((at, step, result))
            })
            .collect();
        steps.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(steps
            .into_iter()
            .map(|(_, step, result)| (step, result))
            .collect())
    }

    /// The result of `step` of `task`: the recorded one, or else `work`'s, recorded before it
    /// is returned. A failed `work` records nothing (the step runs again next time).
    pub async fn step<T, E, W, F>(&self, task: &str, step: &str, work: W) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StateError>,
        W: FnOnce() -> F,
        F: Future<Output = Result<T, E>>,
    {
        if let Some(done) = self.get(task, step).await? {
            return Ok(done);
        }
        let result = work().await?;
        self.record(task, step, &result).await?;
        Ok(result)
    }
}

fn result_of(value: &str) -> Option<(u64, Value)> {
    let mut stored: Value = serde_json::from_str(value).ok()?;
    let at = stored.get("at")?.as_u64()?;
    Some((at, stored.get_mut("result")?.take()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoStateObserver, StateSpec};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn sqlite(path: &std::path::Path) -> Checkpoints {
        let spec = StateSpec::Sqlite(path.to_path_buf());
        let store = Store::open(&spec, "t:", "agent", Arc::new(NoStateObserver)).unwrap();
        Checkpoints::new(Arc::new(store), None)
    }

    #[tokio::test]
    async fn a_restarted_agent_resumes_after_its_last_completed_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.db");
        let calls = AtomicU32::new(0);
        let run = |checkpoints: Checkpoints, crash_at: u32| {
            let calls = &calls;
            async move {
                for n in 1..=3u32 {
                    if n == crash_at {
                        return;
                    }
                    let step = format!("step-{n}");
                    let result: u32 = checkpoints
                        .step("task:7", &step, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StateError>(n * 10)
                        })
                        .await
                        .unwrap();
                    assert_eq!(result, n * 10);
                }
            }
        };
        run(sqlite(&path), 3).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        run(sqlite(&path), 0).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "steps 1 and 2 were not run again"
        );

        let again = sqlite(&path);
        let done = again.completed("task:7").await.unwrap();
        let steps: Vec<&str> = done.iter().map(|(step, _)| step.as_str()).collect();
        assert_eq!(steps, ["step-1", "step-2", "step-3"]);
        assert_eq!(done[2].1, json!(30));
        assert!(again.completed("task").await.unwrap().is_empty());
        assert_eq!(
            again.get::<u32>("task:7", "step-2").await.unwrap(),
            Some(20)
        );
    }
}
