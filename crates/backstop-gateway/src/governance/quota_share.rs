//! The room of targets found short, shared between replicas through the state store: a replica that learns from
//! a provider's headers that a target is below its headroom writes `quota:{target}` (what is left of each limit
//! and when it resets, kept until the last reset) through a background writer, never waiting on the request path;
//! every replica applies the records the others write, from the store's change feed and once at attach. So
//! replica B avoids a target that replica A learned is short, until its reset.
//!
//! Only a target below its headroom is shared: a roomy one needs no warning, and sharing every answer's headers
//! would cost a write per request.

use super::quota::{Quotas, Room, TargetRoom};
use backstop_state::record::{now_ms, Change, Entry};
use backstop_state::records::{to_instant, to_wall};
use backstop_state::writer::Writer;
use backstop_state::Store;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The key prefix of the shared records.
const PREFIX: &str = "quota:";

/// How long the first read of the records in the store may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// One limit as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct StoredRoom {
    limit: u64,
    remaining: u64,
    /// When the count resets (Unix ms).
    reset_at_ms: u64,
}

/// What one replica learned of a target.
#[derive(Debug, Serialize, Deserialize)]
struct RoomRecord {
    replica: String,
    requests: Option<StoredRoom>,
    tokens: Option<StoredRoom>,
}

impl RoomRecord {
    fn of(room: &TargetRoom, replica: &str) -> Self {
        let stored = |room: Option<Room>| {
            room.map(|r| StoredRoom {
                limit: r.limit,
                remaining: r.remaining,
                reset_at_ms: to_wall(r.reset_at),
            })
        };
        RoomRecord {
            replica: replica.to_string(),
            requests: stored(room.requests),
            tokens: stored(room.tokens),
        }
    }

    fn room(&self) -> TargetRoom {
        let live = |stored: Option<StoredRoom>| {
            stored.map(|s| Room {
                limit: s.limit,
                remaining: s.remaining,
                reset_at: to_instant(s.reset_at_ms),
            })
        };
        TargetRoom {
            requests: live(self.requests),
            tokens: live(self.tokens),
        }
    }

    /// How long the record is worth keeping: until its last reset.
    fn ttl(&self) -> Duration {
        let last = [self.requests, self.tokens]
            .into_iter()
            .flatten()
            .map(|s| s.reset_at_ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(last.saturating_sub(now_ms()).max(1))
    }
}

/// Writes the targets this replica found short.
pub struct Sharer {
    writer: Writer,
    replica: String,
}

impl Sharer {
    /// Queues `room` of `target` for the store, without waiting.
    pub(super) fn publish(&self, target: &str, room: &TargetRoom) {
        let record = RoomRecord::of(room, &self.replica);
        let ttl = record.ttl();
        if let Ok(value) = serde_json::to_string(&record) {
            self.writer.send(
                format!("{PREFIX}{target}"),
                Entry {
                    value,
                    ttl: Some(ttl),
                },
            );
        }
    }
}

/// Shares the targets `quotas` finds short through `store` from now on (only the first call counts), applying
/// what the other replicas wrote; the task ends with the store's change feed or when `quotas` is dropped.
pub fn attach(quotas: &Arc<Quotas>, store: Arc<Store>) {
    let sharer = Sharer {
        writer: Writer::spawn(store.clone()),
        replica: store.replica().to_string(),
    };
    if quotas.sharer.set(sharer).is_err() {
        return;
    }
    let changes = store.subscribe();
    tokio::spawn(follow(
        Arc::downgrade(quotas),
        Arc::downgrade(&store),
        changes,
    ));
}

/// Applies the records already in the store, then every change of one.
async fn follow(
    quotas: Weak<Quotas>,
    store: Weak<Store>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    if let (Some(quotas), Some(store)) = (quotas.upgrade(), store.upgrade()) {
        if let Ok(records) = store.scan(PREFIX, LOAD_TIMEOUT).await {
            for (key, value) in records {
                apply(&quotas, store.replica(), &key, &value);
            }
        }
    }
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            // A missed record only costs the other replicas their own answers to learn the same.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let (Some(quotas), Some(store)) = (quotas.upgrade(), store.upgrade()) else {
            return;
        };
        if change.origin == store.replica() {
            continue;
        }
        if let (Some(key), Some(value)) = (store.local_key(&change.key), &change.value) {
            apply(&quotas, store.replica(), key, value);
        }
    }
}

/// Applies the record `value` stored under `key`, unless this replica wrote it.
fn apply(quotas: &Quotas, replica: &str, key: &str, value: &str) {
    let Some(target) = key.strip_prefix(PREFIX) else {
        return;
    };
    let Ok(record) = serde_json::from_str::<RoomRecord>(value) else {
        return;
    };
    if record.replica != replica {
        quotas.adopt(target, record.room());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_state::{NoStateObserver, StateSpec};
    use http::HeaderMap;

    fn short_of_requests() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-ratelimit-limit-requests", "100"),
            ("x-ratelimit-remaining-requests", "3"),
            ("x-ratelimit-reset-requests", "20s"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    #[tokio::test]
    async fn a_short_target_is_written_and_applied_by_another_replica_only() {
        let open = |replica: &str| {
            Arc::new(
                Store::open(&StateSpec::Memory, "t:", replica, Arc::new(NoStateObserver)).unwrap(),
            )
        };
        let store = open("a");
        let (a, b) = (Arc::new(Quotas::default()), Arc::new(Quotas::default()));
        attach(&a, store.clone());
        a.observe("p/roomy", &HeaderMap::new(), 0.05);
        a.observe("p/m", &short_of_requests(), 0.05);
        let written = loop {
            if let Some(value) = store.get("quota:p/m").await.unwrap() {
                break value;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let record: RoomRecord = serde_json::from_str(&written).unwrap();
        assert_eq!(record.replica, "a");
        assert_eq!(record.requests.map(|r| r.remaining), Some(3));
        assert!(record.ttl() > Duration::from_secs(15) && record.ttl() <= Duration::from_secs(20));
        assert_eq!(store.scan(PREFIX, LOAD_TIMEOUT).await.unwrap().len(), 1);

        apply(&a, "a", "quota:p/m", &written);
        apply(&b, "a", "quota:p/m", &written);
        assert!(
            !b.short("p/m", 0.05, 0),
            "its own record is not applied again"
        );
        apply(&b, "b", "quota:p/m", &written);
        assert!(b.short("p/m", 0.05, 0));
        assert!(!b.short("p/m", 0.02, 0));
    }
}
