//! Connections lent to finds without the pool's pings.
//!
//! sqlx (0.9) pings a pooled connection when it lends it (`test_before_acquire`) and again
//! when it is given back: two round trips to PostgreSQL around every query, 22 % of a get's
//! CPU in the server and most of PostgreSQL's messages. Finds borrow from here instead:
//! connections taken out of the pool (`detach`: they passed its checks and its `search_path`
//! set-up), given back only when the read ran to its end. At most [`LENT_MAX`] exist; past
//! that, finds use the pool as before.
//!
//! What the pings guarded against is handled where it happens: a connection that turns out
//! dead (PostgreSQL restarted while it sat idle here) is dropped and the find runs again on
//! the pool; one whose read was abandoned mid-way (its caller went away) is closed, since
//! the protocol state it was left in is unknown.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx_postgres::{PgConnection, PgPool};

use crate::error::StoreError;

/// The most connections lent or kept idle here, on top of the pool's.
pub(super) const LENT_MAX: usize = 8;

#[derive(Default)]
pub(super) struct Lending {
    idle: Mutex<Vec<PgConnection>>,
    /// Connections that exist here (idle or lent).
    open: AtomicUsize,
    closed: AtomicBool,
}

/// A connection lent by [`Lending`]; given back when [`Lent::finish`]ed, closed otherwise.
pub(super) struct Lent<'a> {
    home: &'a Lending,
    conn: Option<PgConnection>,
    finished: bool,
}

impl Lending {
    /// An idle connection, or one taken from `pool` while fewer than [`LENT_MAX`] exist;
    /// `None`: use the pool.
    pub(super) async fn lend<'a>(&'a self, pool: &PgPool) -> Option<Lent<'a>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => {
                if self.open.fetch_add(1, Ordering::AcqRel) >= LENT_MAX {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                match pool.acquire().await {
                    Ok(conn) => conn.detach(),
                    Err(_) => {
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        return None;
                    }
                }
            }
        };
        Some(Lent {
            home: self,
            conn: Some(conn),
            finished: false,
        })
    }

    /// Closes the idle connections; later finds use the (closed) pool.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.idle.lock() {
            let dropped = idle.len();
            idle.clear();
            self.open.fetch_sub(dropped, Ordering::AcqRel);
        }
    }

    /// Connections that exist here (`Store::stats`).
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Lent<'_> {
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        // Set from creation until drop.
        self.conn.as_mut().expect("a lent connection")
    }

    /// The read ran to its end: the connection may be lent again, unless it failed in a way
    /// that says it is gone.
    pub(super) fn finish(mut self, error: Option<&StoreError>) {
        self.finished = !error.is_some_and(is_lost_connection);
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.finished
            && !self.home.closed.load(Ordering::Acquire)
            && let Ok(mut idle) = self.home.idle.lock()
        {
            idle.push(conn);
            return;
        }
        drop(conn);
        self.home.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A failure of the connection itself rather than of the statement: the socket is closed
/// or broke, or the server ended the session (`57P01`, an administrator's or a shutdown's
/// termination).
pub(super) fn is_lost_connection(error: &StoreError) -> bool {
    let StoreError::Database(inner) = error else {
        return false;
    };
    let Some(error) = inner.downcast_ref::<sqlx_core::Error>() else {
        return false;
    };
    match error {
        sqlx_core::Error::Io(_) | sqlx_core::Error::Protocol(_) => true,
        sqlx_core::Error::Database(database) => {
            database.code().is_some_and(|code| code.starts_with("57P"))
        }
        _ => false,
    }
}
