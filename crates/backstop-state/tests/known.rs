//! The keys a SQLite file may hold, kept by the process that owns it: a lookup of a key never stored reads
//! nothing, a key stored before a restart is still found, and an expired one is read and not replayed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backstop_state::backend::Lookup;
use backstop_state::record::Entry;
use backstop_state::{StateObserver, StateSpec, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts the reads of records (`get`) the store makes.
#[derive(Default)]
struct Reads(AtomicUsize);

impl StateObserver for Reads {
    fn op(&self, op: &str, _outcome: &str, _elapsed: Duration) {
        if op == "get" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Reads {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn entry(value: &str, ttl: Duration) -> Entry {
    Entry {
        value: value.to_string(),
        ttl: Some(ttl),
    }
}

fn open(spec: &StateSpec) -> (Arc<Store>, Arc<Reads>) {
    let reads = Arc::new(Reads::default());
    let store = Store::open(spec, "s:", "r", reads.clone()).unwrap();
    (Arc::new(store), reads)
}

async fn look(store: &Store, key: &str, value: &str) -> Lookup {
    let lease = format!("{key}:lease");
    let leased = entry(value, Duration::from_secs(30));
    store.lookup(key, &lease, leased).await.unwrap()
}

fn sqlite(dir: &tempfile::TempDir) -> StateSpec {
    StateSpec::parse(&format!("sqlite:{}", dir.path().join("state.db").display())).unwrap()
}

/// A store on a new file in `dir`, where `idem:1` was just looked up and leased (as "first").
async fn leased_on_new_file(dir: &tempfile::TempDir) -> (StateSpec, Arc<Store>, Arc<Reads>) {
    let spec = sqlite(dir);
    let (store, reads) = open(&spec);
    assert_eq!(look(&store, "idem:1", "first").await, Lookup::Leased);
    (spec, store, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_reads_nothing_and_a_stored_one_is_found_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, store, reads) = leased_on_new_file(&dir).await;
    assert_eq!(reads.count(), 0, "a key never stored is not read");

    let answer = entry("answer", Duration::from_secs(60));
    store.settle("idem:1", answer, "idem:1:lease", "first");
    assert_eq!(
        look(&store, "idem:1", "second").await,
        Lookup::Stored("answer".into()),
        "settled a moment ago: replayed"
    );
    store.flush().await.unwrap();
    assert_eq!(
        look(&store, "idem:1", "third").await,
        Lookup::Stored("answer".into()),
        "written: replayed from the file"
    );
    assert_eq!(reads.count(), 1);
    drop(store);

    let (restarted, reads) = open(&spec);
    assert_eq!(
        look(&restarted, "idem:1", "fourth").await,
        Lookup::Stored("answer".into()),
        "the keys of the file are known after a restart"
    );
    assert_eq!(reads.count(), 1);
    assert_eq!(look(&restarted, "idem:2", "first").await, Lookup::Leased);
    assert_eq!(reads.count(), 1, "still no read for a new key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_read_and_found_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store, reads) = leased_on_new_file(&dir).await;
    // Long enough to be written (an answer that expires while it waits is dropped, never written), short
    // enough to wait out.
    let short = entry("answer", Duration::from_millis(300));
    store.settle("idem:1", short, "idem:1:lease", "first");
    store.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        look(&store, "idem:1", "second").await,
        Lookup::Leased,
        "its record ended: the request is a first again"
    );
    assert_eq!(reads.count(), 1, "a stale fingerprint costs one read");

    let again = entry("answer again", Duration::from_secs(60));
    store.settle("idem:1", again, "idem:1:lease", "second");
    store.flush().await.unwrap();
    assert_eq!(
        look(&store, "idem:1", "third").await,
        Lookup::Stored("answer again".into())
    );
}
