//! The sync task: applies the changes of other replicas from the feed, and with a shared backend reads the whole
//! state again every second (every few seconds while it is down) to repair a missed message or a lost
//! subscription.

use crate::targets::{Targets, TARGET_KINDS};
use crate::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How often a shared backend is read again in full.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// The longest pause between resyncs while the backend is down.
const RESYNC_MAX: Duration = Duration::from_secs(5);

/// How long a periodic resync may take.
const RESYNC_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts the feed forwarder (Redis) and the sync task; the receiver fires once the feed is subscribed.
pub(crate) fn spawn(store: Arc<Store>, targets: Arc<Targets>) -> oneshot::Receiver<()> {
    let changes = store.subscribe();
    let feed = store.clone();
    let (ready, subscribed) = oneshot::channel();
    tokio::spawn(async move { feed.run_feed(ready).await });
    tokio::spawn(async move {
        let periodic = store.is_shared();
        follow(
            changes,
            periodic,
            |change| targets.apply_change(change),
            || {
                let (store, targets) = (store.clone(), targets.clone());
                async move { resync(&store, &targets, RESYNC_TIMEOUT, false).await }
            },
        )
        .await;
    });
    subscribed
}

/// The sync task's loop: applies each change received, resyncs when the feed lagged, and with
/// `periodic` also every [`RESYNC_EVERY`] (backing off to [`RESYNC_MAX`] while `resync` fails).
/// The next periodic resync is a deadline that changes received meanwhile do not move, so a steady
/// feed never holds off the repair of what it missed. Ends when the feed closes.
async fn follow<C: Clone, R: Future<Output = bool>>(
    mut changes: broadcast::Receiver<C>,
    periodic: bool,
    mut apply: impl FnMut(&C),
    mut resync: impl FnMut() -> R,
) {
    let mut delay = RESYNC_EVERY;
    let next_resync = tokio::time::sleep(delay);
    tokio::pin!(next_resync);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => apply(&change),
                Err(RecvError::Lagged(_)) => {
                    resync().await;
                }
                Err(RecvError::Closed) => return,
            },
            () = &mut next_resync, if periodic => {
                let up = resync().await;
                delay = if up { RESYNC_EVERY } else { (delay * 2).min(RESYNC_MAX) };
                next_resync.as_mut().reset(Instant::now() + delay);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Runs `follow` for `run_ms` of paused time while a change arrives every `every_ms`;
    /// returns how many changes were applied and how many resyncs ran.
    async fn follow_for(run_ms: u64, every_ms: u64, periodic: bool, up: bool) -> (u32, u32) {
        let (sender, changes) = broadcast::channel(16);
        let feeder = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
            loop {
                tick.tick().await;
                if sender.send(()).is_err() {
                    return;
                }
            }
        });
        let applied = Cell::new(0);
        let resyncs = Cell::new(0);
        let task = follow(
            changes,
            periodic,
            |()| applied.set(applied.get() + 1),
            || {
                resyncs.set(resyncs.get() + 1);
                std::future::ready(up)
            },
        );
        let _ = tokio::time::timeout(Duration::from_millis(run_ms), task).await;
        feeder.abort();
        (applied.get(), resyncs.get())
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_feed_does_not_hold_off_the_periodic_resync() {
        let (applied, resyncs) = follow_for(5_500, 100, true, true).await;
        assert!(applied >= 50, "{applied} changes applied");
        assert_eq!(resyncs, 5, "one resync a second while changes keep coming");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_resync_backs_off_to_the_longest_pause() {
        // Resyncs at 1, 3, 7, 12 and 17 s: the pause doubles from a second and stops at five.
        let (_, resyncs) = follow_for(17_500, 100, true, false).await;
        assert_eq!(resyncs, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_store_never_resyncs_on_a_timer() {
        let (applied, resyncs) = follow_for(5_000, 500, false, true).await;
        assert!(applied >= 9, "{applied} changes applied");
        assert_eq!(resyncs, 0);
    }
}
