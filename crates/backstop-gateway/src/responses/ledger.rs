//! The bookkeeping behind the bound on stored responses: which ids are held, their sizes and
//! expiries, oldest first, so that a write past `[responses] max_bytes` knows what to drop.
//! The memory store keeps the records themselves in it; the shared store only its own
//! writes' sizes (see [`super::shared`]).

use std::collections::{HashMap, VecDeque};
use tokio::time::Instant;

struct Slot<T> {
    value: T,
    size: u64,
    expires: Instant,
    /// Its place in `Ledger::order`.
    seq: u64,
}

/// Values by id with a byte total, evicted oldest first.
pub struct Ledger<T> {
    slots: HashMap<String, Slot<T>>,
    /// Ids with their insertion number, the oldest first; an id whose value was removed or
    /// inserted again since is skipped when it comes up.
    order: VecDeque<(String, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
        }
    }
}

impl<T> Ledger<T> {
    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Removes `id`; its value, if it was held.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let slot = self.slots.remove(id)?;
        self.bytes -= slot.size;
        Some(slot.value)
    }

    /// The live value of `id` (an expired one is dropped).
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&T> {
        if self.slots.get(id)?.expires <= now {
            self.remove(id);
            return None;
        }
        self.slots.get(id).map(|slot| &slot.value)
    }

    /// Holds `value` of `size` bytes under `id` until `expires`, after dropping expired values
    /// and, oldest first, what keeps the total over `max_bytes`: the ids dropped while still
    /// live. The caller checks that `size` alone fits.
    pub fn insert(
        &mut self,
        id: &str,
        value: T,
        size: u64,
        expires: Instant,
        max_bytes: u64,
        now: Instant,
    ) -> Vec<String> {
        self.remove(id);
        let mut evicted = Vec::new();
        while let Some((oldest, seq)) = self.order.front().cloned() {
            let current = self.slots.get(&oldest).filter(|s| s.seq == seq);
            let live = current.is_some_and(|s| s.expires > now);
            if live && self.bytes + size <= max_bytes {
                break;
            }
            self.order.pop_front();
            if current.is_some() {
                self.remove(&oldest);
                if live {
                    evicted.push(oldest);
                }
            }
        }
        self.bytes += size;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((id.to_owned(), seq));
        self.slots.insert(
            id.to_owned(),
            Slot {
                value,
                size,
                expires,
                seq,
            },
        );
        evicted
    }
}
