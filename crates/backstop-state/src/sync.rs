//! The sync task: applies the changes of other replicas from the feed, and with a shared backend reads the whole
//! state again every second (every few seconds while it is down) to repair a missed message or a lost
//! subscription.

use crate::targets::{Targets, TARGET_KINDS};
use crate::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

/// How often a shared backend is read again in full.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// The longest pause between resyncs while the backend is down.
const RESYNC_MAX: Duration = Duration::from_secs(5);

/// How long a periodic resync may take.
const RESYNC_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts the feed forwarder (Redis) and the sync task; the receiver fires once the feed is subscribed.
pub(crate) fn spawn(store: Arc<Store>, targets: Arc<Targets>) -> oneshot::Receiver<()> {
    let mut changes = store.subscribe();
    let feed = store.clone();
    let (ready, subscribed) = oneshot::channel();
    tokio::spawn(async move { feed.run_feed(ready).await });
    tokio::spawn(async move {
        let mut delay = RESYNC_EVERY;
        loop {
            let tick = async {
                if store.is_shared() {
                    tokio::time::sleep(delay).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => targets.apply_change(&change),
                    Err(RecvError::Lagged(_)) => {
                        resync(&store, &targets, RESYNC_TIMEOUT, false).await;
                    }
                    Err(RecvError::Closed) => return,
                },
                () = tick => {
                    let up = resync(&store, &targets, RESYNC_TIMEOUT, false).await;
                    delay = if up { RESYNC_EVERY } else { (delay * 2).min(RESYNC_MAX) };
                }
            }
        }
    });
    subscribed
}

/// Reads every record about targets and applies it (each kind within `limit`); `false` if the
/// store could not be read. Other records (cached answers, idempotency records) are not read.
pub(crate) async fn resync(store: &Store, targets: &Targets, limit: Duration, all: bool) -> bool {
    for kind in TARGET_KINDS {
        match store.scan(&format!("{kind}:"), limit).await {
            Ok(records) => {
                for (key, value) in records {
                    targets.apply(&key, &value, all);
                }
            }
            Err(_) => return false,
        }
    }
    true
}
