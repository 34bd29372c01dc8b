//! A few connections lent to reads that skip a backend's usual path: SQLite's lookups by id,
//! which run on the caller's thread instead of a reader thread, and PostgreSQL's finds, which
//! skip sqlx's pings. Each backend opens its own connections; this holds them between reads,
//! bounds how many exist, and closes them with the store.
//!
//! A connection goes back only when its read ran to its end ([`Lent::finish`]): one whose read
//! was abandoned mid-way (its caller went away) or failed in a way that says it is unusable is
//! closed instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(crate) struct Lending<C> {
    idle: Mutex<Vec<C>>,
    /// Connections that exist here, idle or lent, or being opened.
    open: AtomicUsize,
    closed: AtomicBool,
    max: usize,
}

/// A connection lent by [`Lending`].
pub(crate) struct Lent<'a, C> {
    home: &'a Lending<C>,
    conn: Option<C>,
    reusable: bool,
}

impl<C> Lending<C> {
    /// At most `max` connections.
    pub(crate) fn new(max: usize) -> Lending<C> {
        Lending {
            idle: Mutex::default(),
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            max,
        }
    }

    /// An idle connection, if any.
    pub(crate) fn idle(&self) -> Option<Lent<'_, C>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let conn = self.idle.lock().ok()?.pop()?;
        Some(self.lent(conn))
    }

    /// Room for one more connection: `true` while fewer than the most exist. The caller
    /// opens it and hands it to [`Lending::adopt`], or gives the room back with
    /// [`Lending::unreserve`] if it could not.
    pub(crate) fn reserve(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.unreserve();
            return false;
        }
        true
    }

    pub(crate) fn unreserve(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Lends a connection opened in reserved room.
    pub(crate) fn adopt(&self, conn: C) -> Lent<'_, C> {
        self.lent(conn)
    }

    fn lent(&self, conn: C) -> Lent<'_, C> {
        Lent {
            home: self,
            conn: Some(conn),
            reusable: false,
        }
    }

    /// Closes the idle connections; nothing is lent from here on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.idle.lock() {
            let closed = idle.len();
            idle.clear();
            self.open.fetch_sub(closed, Ordering::AcqRel);
        }
    }

    /// Connections that exist here (`Store::stats`).
    pub(crate) fn open(&self) -> u64 {
        u64::try_from(self.open.load(Ordering::Acquire).min(self.max)).unwrap_or(u64::MAX)
    }
}

impl<C> Lent<'_, C> {
    pub(crate) fn conn(&mut self) -> &mut C {
        // Set from creation until drop.
        self.conn.as_mut().expect("a lent connection")
    }

    /// The read ran to its end; `reusable`: the connection may be lent again.
    pub(crate) fn finish(mut self, reusable: bool) {
        self.reusable = reusable;
    }
}

impl<C> Drop for Lent<'_, C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reusable
            && !self.home.closed.load(Ordering::Acquire)
            && let Ok(mut idle) = self.home.idle.lock()
        {
            idle.push(conn);
            return;
        }
        drop(conn);
        self.home.unreserve();
    }
}
