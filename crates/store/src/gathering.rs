//! Work that arrives together, handed out in batches to a few drain tasks.
//!
//! The first item starts a drain at once (an item alone waits for nothing); items arriving
//! while every drain is busy wait and go in a drain's next batch. A drain takes batches
//! until nothing waits, then ends. `postgres::merged_creates` and `postgres::merged_reads`
//! gather this way.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Items waiting, and how many drains run (at most `max_running`).
pub(crate) struct Gathering<T> {
    queue: Mutex<Queue<T>>,
    max_running: usize,
}

struct Queue<T> {
    pending: Vec<T>,
    running: usize,
}

impl<T> Gathering<T> {
    pub(crate) fn new(max_running: usize) -> Gathering<T> {
        Gathering {
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                running: 0,
            }),
            max_running,
        }
    }

    /// Queues `item`; `true`: the caller must start a drain (which calls [`Gathering::take`]
    /// until it answers `None`).
    pub(crate) fn push(&self, item: T) -> bool {
        let mut queue = self.lock();
        queue.pending.push(item);
        let start = queue.running < self.max_running;
        if start {
            queue.running += 1;
        }
        start
    }

    /// The next batch of at most `max` items in arrival order; `None` when nothing waits,
    /// and the drain asking has ended.
    pub(crate) fn take(&self, max: usize) -> Option<Vec<T>> {
        let mut queue = self.lock();
        if queue.pending.is_empty() {
            queue.running -= 1;
            return None;
        }
        let take = queue.pending.len().min(max);
        Some(queue.pending.drain(..take).collect())
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // Held only to push or take, never across an await; a panic cannot leave it half done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_start_up_to_the_limit_and_end_when_nothing_waits() {
        let gathering = Gathering::new(2);
        assert!(gathering.push(1));
        assert!(gathering.push(2));
        assert!(!gathering.push(3), "two drains already run");
        assert_eq!(gathering.take(2), Some(vec![1, 2]));
        assert_eq!(gathering.take(2), Some(vec![3]));
        assert_eq!(gathering.take(2), None, "one drain ends");
        assert!(gathering.push(4), "one drain runs: another may start");
        assert!(!gathering.push(5), "two drains run again");
        assert_eq!(gathering.take(8), Some(vec![4, 5]));
        assert_eq!(gathering.take(8), None);
        assert_eq!(gathering.take(8), None, "both drains ended");
        assert!(gathering.push(6), "no drain runs: one starts");
    }
}
