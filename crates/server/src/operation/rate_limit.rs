//! Fixed-window rate limits, per key (a client address for log-ins, a user for directory
//! searches): a window of one minute is enough to stop guessing or scraping at speed, and
//! costs one small map.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Attempts per key in the current minute.
#[derive(Debug)]
pub struct PerMinute<K> {
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K> Default for PerMinute<K> {
    fn default() -> PerMinute<K> {
        PerMinute {
            windows: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> PerMinute<K> {
    /// Counts an attempt; `false` when `key` is over `per_minute` (0: no limit).
    pub fn admit(&self, key: K, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let now = Instant::now();
        // Bounded memory: stale windows go once the map grows large.
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= per_minute
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn counts_per_key_and_minute() {
        let limiter = PerMinute::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!((0..3).all(|_| limiter.admit(ip, 3)));
        assert!(!limiter.admit(ip, 3));
        assert!(limiter.admit(other, 3));
        assert!(limiter.admit(ip, 0));
    }
}
