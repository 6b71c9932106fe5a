//! The leases of a store that no other process writes to (memory, SQLite: one node), kept in a bounded map of
//! this process. Such a lease only matters while its holder lives: after a crash its request died with the
//! process, so it need not survive in the file, and taking or giving one back costs no store write.

use crate::StateError;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most leases held at once; past it a claim is refused (an error, like a store that does not answer).
pub const MAX_LEASES: usize = 65_536;

/// Leases by key: the holder's value and when the lease ends if it is not given back (`None`: never).
#[derive(Default)]
pub struct LocalLeases {
    held: Mutex<HashMap<String, (String, Option<Instant>)>>,
}

impl LocalLeases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Option<Instant>)>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the lease `key` for `value` for at most `ttl` (`None`: until given back) unless someone holds
    /// it: `Ok(None)` when taken, `Ok(Some(holder's value))` when held, an error when [`MAX_LEASES`] live
    /// leases are held.
    pub fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<String>, StateError> {
        let now = Instant::now();
        let live = |until: &Option<Instant>| until.is_none_or(|until| until > now);
        let mut held = self.lock();
        if let Some((holder, until)) = held.get(key) {
            if live(until) {
                return Ok(Some(holder.clone()));
            }
        }
        if held.len() >= MAX_LEASES {
            held.retain(|_, (_, until)| live(until));
            if held.len() >= MAX_LEASES {
                return Err(StateError::Backend(format!(
                    "{MAX_LEASES} leases are held in this process: no room for another"
                )));
            }
        }
        let until = ttl.and_then(|ttl| now.checked_add(ttl));
        held.insert(key.to_string(), (value.to_string(), until));
        Ok(None)
    }

    /// Gives the lease `key` back if `value` still holds it.
    pub fn release(&self, key: &str, value: &str) -> bool {
        let mut held = self.lock();
        if held.get(key).is_some_and(|(holder, _)| holder == value) {
            held.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_until_given_back_by_its_holder_or_its_end() {
        let leases = LocalLeases::default();
        let ttl = Some(Duration::from_secs(60));
        assert_eq!(leases.claim("k", "a", ttl).unwrap(), None);
        assert_eq!(leases.claim("k", "b", ttl).unwrap(), Some("a".into()));
        assert!(!leases.release("k", "b"));
        assert!(leases.release("k", "a"));
        assert_eq!(leases.claim("k", "b", ttl).unwrap(), None);

        assert_eq!(
            leases.claim("short", "a", Some(Duration::ZERO)).unwrap(),
            None
        );
        assert_eq!(leases.claim("short", "b", ttl).unwrap(), None);
    }

    #[test]
    fn past_the_bound_a_claim_is_refused_unless_a_lease_has_ended() {
        let leases = LocalLeases::default();
        for n in 0..MAX_LEASES - 1 {
            leases.claim(&n.to_string(), "v", None).unwrap();
        }
        leases.claim("ends", "v", Some(Duration::ZERO)).unwrap();
        assert_eq!(leases.claim("new", "v", None).unwrap(), None);
        let refused = leases.claim("another", "v", None);
        assert!(refused.unwrap_err().to_string().contains("leases"));
        assert!(leases.release("new", "v"));
        assert!(leases.claim("another", "v", None).is_ok());
    }
}
