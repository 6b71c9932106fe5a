//! Answers settled on a store one process owns (memory, SQLite): replayed from memory at once, written to
//! the file in batches and by a flush, never dropped when the waiting room is full.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backstop_state::backend::{Lookup, MAX_SETTLED};
use backstop_state::record::Entry;
use backstop_state::{NoStateObserver, StateSpec, Store};
use std::sync::Arc;
use std::time::Duration;

fn entry(value: &str) -> Entry {
    Entry {
        value: value.to_string(),
        ttl: Some(Duration::from_secs(60)),
    }
}

fn open(spec: &StateSpec) -> Arc<Store> {
    Arc::new(Store::open(spec, "s:", "r", Arc::new(NoStateObserver)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_answer_is_replayed_at_once_and_in_the_file_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        StateSpec::parse(&format!("sqlite:{}", dir.path().join("state.db").display())).unwrap();
    let store = open(&spec);
    let lookup = |value: &'static str| {
        let store = store.clone();
        async move {
            store
                .lookup("idem:1", "idem:1:lease", entry(value))
                .await
                .unwrap()
        }
    };
    assert_eq!(lookup("first").await, Lookup::Leased);
    assert_eq!(lookup("second").await, Lookup::Held(Some("first".into())));

    store.settle("idem:1", entry("answer"), "idem:1:lease", "first");
    assert_eq!(lookup("third").await, Lookup::Stored("answer".into()));
    assert!(
        !store.give_back("idem:1:lease", "first").await.unwrap(),
        "the lease was given back with the answer"
    );

    store.flush().await.unwrap();
    let restarted = open(&spec);
    assert_eq!(
        restarted.get("idem:1").await.unwrap().as_deref(),
        Some("answer"),
        "a flushed answer is in the file"
    );
    assert_eq!(
        restarted
            .lookup("idem:1", "idem:1:lease", entry("fourth"))
            .await
            .unwrap(),
        Lookup::Stored("answer".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_writer_brings_settled_answers_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        StateSpec::parse(&format!("sqlite:{}", dir.path().join("state.db").display())).unwrap();
    let store = open(&spec);
    for n in 0..300 {
        let (record, lease) = (format!("idem:{n}"), format!("idem:{n}:lease"));
        assert_eq!(
            store.lookup(&record, &lease, entry("mine")).await.unwrap(),
            Lookup::Leased
        );
        store.settle(&record, entry(&format!("answer {n}")), &lease, "mine");
    }
    // More answers than one batch takes: they reach the file over several batches, in no set order.
    let reader = open(&spec);
    let start = tokio::time::Instant::now();
    for n in 0..300 {
        let key = format!("idem:{n}");
        let stored = loop {
            if let Some(stored) = reader.get(&key).await.unwrap() {
                break stored;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{key} not written"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(stored, format!("answer {n}"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn past_the_waiting_room_an_answer_is_written_on_its_own_not_dropped() {
    let store = open(&StateSpec::Memory);
    // The writer runs on this thread: until the test waits, nothing is written and the room fills up.
    for n in 0..=MAX_SETTLED {
        let (record, lease) = (format!("idem:{n}"), format!("idem:{n}:lease"));
        store.lookup(&record, &lease, entry("mine")).await.unwrap();
        store.settle(&record, entry(&format!("answer {n}")), &lease, "mine");
    }
    let last = format!("idem:{MAX_SETTLED}");
    assert_eq!(store.get(&last).await.unwrap(), None, "not in the room");
    store.flush().await.unwrap();
    let start = tokio::time::Instant::now();
    while store.get(&last).await.unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the overflow was lost"
        );
        tokio::task::yield_now().await;
    }
    for n in [0, MAX_SETTLED / 2, MAX_SETTLED] {
        let stored = store.get(&format!("idem:{n}")).await.unwrap();
        assert_eq!(stored, Some(format!("answer {n}")));
    }
    assert_eq!(
        store
            .lookup(&last, &format!("{last}:lease"), entry("again"))
            .await
            .unwrap(),
        Lookup::Stored(format!("answer {MAX_SETTLED}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_answers_are_written_without_a_word_on_the_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        StateSpec::parse(&format!("sqlite:{}", dir.path().join("state.db").display())).unwrap();
    let store = open(&spec);
    let mut feed = store.subscribe();
    for n in 0..2_000 {
        let (record, lease) = (format!("idem:{n}"), format!("idem:{n}:lease"));
        let looked = store.lookup(&record, &lease, entry("first")).await.unwrap();
        assert_eq!(looked, Lookup::Leased);
        store.settle(&record, entry("answer"), &lease, "first");
    }
    store.flush().await.unwrap();
    assert_eq!(
        store.get("idem:1999").await.unwrap().as_deref(),
        Some("answer")
    );

    store
        .put_many(vec![("breaker:p/m".into(), entry("open"))])
        .await
        .unwrap();
    let change = feed.recv().await.expect("no lag, no answer announced");
    assert_eq!(change.key, "s:breaker:p/m");
}
