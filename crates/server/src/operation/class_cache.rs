//! A cache of answers read from one class (the roles a user holds from `_Role`, the session a
//! token names from `_Session`), shared by all requests.
//!
//! **Invariant:** an answer is reused only while nothing has committed to its class since it was
//! read. Each entry keeps the stamp it was loaded under — the cache's own generation (moved by
//! [`ClassCache::clear`]) and the store's
//! [`class_generation`](parlor_store::Store::class_generation) of the class, both read *before*
//! the lookup — and a hit needs the current stamp to be equal, so no write path has to remember
//! to clear it. Changes made by another process (a second server on the same database) are not
//! counted by the store: the relay clears the cache when it hears of them, and the time limit
//! bounds how long they go unseen without one.
//!
//! A `std` lock: it is held only to copy an entry in or out, never across an `.await`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The cache's generation and the store's generation of the class, read before a lookup.
pub type Stamp = (u64, u64);

#[derive(Debug)]
pub struct ClassCache<V> {
    entries: RwLock<HashMap<String, Cached<V>>>,
    /// Moved by [`ClassCache::clear`]; an entry loaded under another value is stale. It also
    /// keeps a lookup that started before a clear from storing what it read.
    generation: AtomicU64,
    /// How long an entry is reused at most.
    ttl: Duration,
    /// The most entries kept; past it, stale entries are dropped, then all.
    capacity: usize,
}

#[derive(Debug, Clone)]
struct Cached<V> {
    value: V,
    loaded_at: Instant,
    stamp: Stamp,
}

impl<V: Clone> ClassCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> ClassCache<V> {
        ClassCache {
            entries: RwLock::default(),
            generation: AtomicU64::new(0),
            ttl,
            capacity,
        }
    }

    /// The stamp to read before a lookup, given the store's generation of the class.
    pub fn stamp(&self, class_generation: u64) -> Stamp {
        (self.generation.load(Ordering::SeqCst), class_generation)
    }

    /// The cached answer for `key`, if loaded under `stamp` and recently.
    pub fn get(&self, key: &str, stamp: Stamp) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let cached = entries.get(key)?;
        (cached.stamp == stamp && cached.loaded_at.elapsed() < self.ttl)
            .then(|| cached.value.clone())
    }

    /// Keeps `value` for `key`, unless the cache was cleared since `stamp` was read.
    pub fn insert(&self, key: &str, value: V, stamp: Stamp) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != stamp.0 {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, cached| cached.stamp == stamp && cached.loaded_at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key.to_owned(),
            Cached {
                value,
                loaded_at: Instant::now(),
                stamp,
            },
        );
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        // Under the write lock, so that no insert checks the generation in between.
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clear between reading the stamp and storing the answer keeps the answer out.
    #[test]
    fn refuses_answers_from_before_a_clear() {
        let cache = ClassCache::new(Duration::from_secs(30), 10);
        let stamp = cache.stamp(7);
        cache.insert("u1", vec!["Mods".to_owned()], stamp);
        assert_eq!(cache.get("u1", stamp), Some(vec!["Mods".to_owned()]));
        assert_eq!(cache.get("u1", cache.stamp(8)), None);
        cache.clear();
        assert_eq!(cache.get("u1", stamp), None);
        cache.insert("u1", vec!["Mods".to_owned()], stamp);
        assert_eq!(cache.get("u1", cache.stamp(7)), None);
    }

    #[test]
    fn entries_expire_and_capacity_is_kept() {
        let cache = ClassCache::new(Duration::ZERO, 2);
        let stamp = cache.stamp(1);
        cache.insert("a", 1, stamp);
        assert_eq!(
            cache.get("a", stamp),
            None,
            "a zero time limit reuses nothing"
        );
        let cache = ClassCache::new(Duration::from_secs(30), 2);
        for key in ["a", "b", "c"] {
            cache.insert(key, 1, stamp);
        }
        let kept = ["a", "b", "c"]
            .iter()
            .filter(|key| cache.get(key, stamp).is_some())
            .count();
        assert!(kept <= 2, "{kept} entries kept past a capacity of 2");
        assert_eq!(cache.get("c", stamp), Some(1));
    }
}
