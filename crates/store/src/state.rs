//! What a store keeps in memory beside its database, the same for both backends: the
//! per-class generation counters behind [`Store::class_generation`](crate::Store), and the
//! lookups into the list of existing tables.
//!
//! How the table list itself is held and refreshed differs, so it stays per backend: SQLite's
//! single writer owns the authoritative copy and publishes a `HashSet` to its readers, while
//! PostgreSQL's tasks share a copy-on-write `Arc<HashSet>` and ask the catalog for tables
//! another instance made. The lookups below take either.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// Per class, the number of committed jobs that touched it.
#[derive(Debug, Default)]
pub(crate) struct Generations(RwLock<HashMap<String, u64>>);

impl Generations {
    /// The class's generation: 0 until a job touching it commits.
    pub(crate) fn get(&self, class_name: &str) -> u64 {
        self.0
            .read()
            .map(|generations| generations.get(class_name).copied().unwrap_or(0))
            // A poisoned lock: a number that matches no cached one.
            .unwrap_or(u64::MAX)
    }

    /// Moves each class on by one, once their jobs committed (a class named twice moves
    /// twice, which is harmless: only a change matters to a cache).
    pub(crate) fn bump<'c>(&self, class_names: impl IntoIterator<Item = &'c str>) {
        if let Ok(mut generations) = self.0.write() {
            for class_name in class_names {
                let generation = generations.entry(class_name.to_owned()).or_insert(0);
                *generation = generation.wrapping_add(1);
            }
        }
    }
}

/// Whether `name` is among `tables` (false when the lock is poisoned).
pub(crate) fn table_exists<S: Borrow<HashSet<String>>>(tables: &RwLock<S>, name: &str) -> bool {
    tables
        .read()
        .map(|tables| Borrow::<HashSet<String>>::borrow(&*tables).contains(name))
        .unwrap_or(false)
}

/// Runs `translate` with a view of `tables`. The lock is released before any query runs.
pub(crate) fn with_tables<S: Borrow<HashSet<String>>, T>(
    tables: &RwLock<S>,
    translate: impl FnOnce(&dyn Fn(&str) -> bool) -> T,
) -> T {
    match tables.read() {
        Ok(tables) => {
            translate(&|name: &str| Borrow::<HashSet<String>>::borrow(&*tables).contains(name))
        }
        Err(_) => translate(&|_: &str| false),
    }
}
