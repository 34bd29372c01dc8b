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

/// What [`Lending::lend`] has: an idle connection, or room for the caller to open one.
pub(crate) enum Lend<'a, C> {
    Idle(Lent<'a, C>),
    Room(Room<'a, C>),
}

/// Room for one more connection: the caller opens it and hands it to [`Room::adopt`];
/// dropped unused (the connection could not be opened), the room is given back.
pub(crate) struct Room<'a, C> {
    home: &'a Lending<C>,
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

    /// An idle connection, or room to open one while fewer than the most exist; `None`
    /// when neither (or once closed).
    pub(crate) fn lend(&self) -> Option<Lend<'_, C>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if let Some(conn) = self.idle.lock().ok()?.pop() {
            return Some(Lend::Idle(self.lent(conn)));
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.unreserve();
            return None;
        }
        Some(Lend::Room(Room { home: self }))
    }

    fn unreserve(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
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

impl<'a, C> Room<'a, C> {
    /// Lends the connection opened in this room.
    pub(crate) fn adopt(self, conn: C) -> Lent<'a, C> {
        let home = self.home;
        // The room is now the connection's: not given back.
        std::mem::forget(self);
        home.lent(conn)
    }
}

impl<C> Drop for Room<'_, C> {
    fn drop(&mut self) {
        self.home.unreserve();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn room(lending: &Lending<u32>) -> Room<'_, u32> {
        match lending.lend() {
            Some(Lend::Room(room)) => room,
            _ => panic!("expected room to open a connection"),
        }
    }

    /// Room that was never filled (the connection could not be opened, or the caller went
    /// away while opening it) is given back; a connection finished cleanly is lent again.
    #[test]
    fn unused_room_is_given_back_and_finished_connections_are_lent_again() {
        let lending = Lending::new(2);
        let first = room(&lending).adopt(1);
        drop(room(&lending));
        assert_eq!(lending.open(), 1, "the unused room was given back");
        let second = room(&lending).adopt(2);
        assert!(lending.lend().is_none(), "at most two");
        first.finish(true);
        match lending.lend() {
            Some(Lend::Idle(mut lent)) => assert_eq!(*lent.conn(), 1),
            _ => panic!("expected the idle connection"),
        }
        // Dropped without `finish`: closed, its room free again.
        assert_eq!(lending.open(), 1);
        drop(second);
        assert_eq!(lending.open(), 0);
    }
}
