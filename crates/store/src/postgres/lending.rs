//! Connections lent to finds without the pool's pings (the shared [`Lending`] holds them).
//!
//! sqlx (0.9) pings a pooled connection when it lends it (`test_before_acquire`) and again
//! when it is given back: two round trips to PostgreSQL around every query, 22 % of a get's
//! CPU in the server and most of PostgreSQL's messages. Finds borrow from here instead:
//! connections taken out of the pool (`detach`: they passed its checks and its `search_path`
//! set-up), given back only when the read ran to its end. At most [`LENT_MAX`] exist; when
//! all are lent, a find waits its turn for one (a query's time, on a busy server less than a
//! millisecond) rather than taking the pool's path and its two pings; only one that waited
//! [`WAIT`] (slow scans hold them all) uses the pool.
//!
//! What the pings guarded against is handled where it happens: a connection that turns out
//! dead (PostgreSQL restarted while it sat idle here) is dropped and the find runs again on
//! the pool; one whose read was abandoned mid-way (its caller went away) is closed, since
//! the protocol state it was left in is unknown.

use std::time::Duration;

use sqlx_postgres::{PgConnection, PgPool};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::StoreError;
use crate::lending::{Lend, Lending, Lent};

/// The most connections lent or kept idle here, on top of the pool's.
pub(super) const LENT_MAX: usize = 8;

/// How long a find waits for a lent connection before it uses the pool.
const WAIT: Duration = Duration::from_millis(20);

/// The connections, and the turns to borrow one.
pub(super) struct Lender {
    connections: Lending<PgConnection>,
    turns: Semaphore,
}

/// A connection lent to one find.
pub(super) struct Loan<'a> {
    lent: Lent<'a, PgConnection>,
    _turn: SemaphorePermit<'a>,
}

impl Lender {
    pub(super) fn new() -> Lender {
        Lender {
            connections: Lending::new(LENT_MAX),
            turns: Semaphore::new(LENT_MAX),
        }
    }

    /// An idle connection, or one taken out of `pool` while fewer than [`LENT_MAX`] exist,
    /// once it is this find's turn; `None`: use the pool.
    pub(super) async fn lend(&self, pool: &PgPool) -> Option<Loan<'_>> {
        let turn = tokio::time::timeout(WAIT, self.turns.acquire())
            .await
            .ok()?
            .ok()?;
        let lent = match self.connections.lend()? {
            Lend::Idle(lent) => lent,
            Lend::Room(room) => room.adopt(pool.acquire().await.ok()?.detach()),
        };
        Some(Loan { lent, _turn: turn })
    }

    /// Connections that exist here (`Store::stats`).
    pub(super) fn open(&self) -> u64 {
        self.connections.open()
    }

    /// Closes the idle connections; nothing is lent from here on, and no find waits.
    pub(super) fn close(&self) {
        self.connections.close();
        self.turns.close();
    }
}

impl Loan<'_> {
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        self.lent.conn()
    }

    /// The read ran to its end; `reusable`: the connection may be lent again.
    pub(super) fn finish(self, reusable: bool) {
        self.lent.finish(reusable);
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sqlx_postgres::PgPoolOptions;

    use super::*;

    async fn pool() -> Option<PgPool> {
        let Ok(url) = std::env::var("PARLOR_TEST_POSTGRES_URL") else {
            println!("skipped: PARLOR_TEST_POSTGRES_URL is not set");
            return None;
        };
        Some(
            PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .unwrap(),
        )
    }

    /// With every connection lent, a find waits its turn and gets the first one given back;
    /// one that waited too long is sent to the pool; closing wakes no one to a connection.
    #[tokio::test]
    async fn finds_wait_their_turn_for_a_lent_connection() {
        let Some(pool) = pool().await else {
            return;
        };
        let lender = Lender::new();
        let mut loans = Vec::new();
        for _ in 0..LENT_MAX {
            loans.push(lender.lend(&pool).await.expect("room to lend"));
        }
        assert_eq!(lender.open(), LENT_MAX as u64);
        let started = Instant::now();
        assert!(lender.lend(&pool).await.is_none(), "no more than LENT_MAX");
        assert!(started.elapsed() >= WAIT, "it waited its turn first");
        let (given_back, waiter) = tokio::join!(
            async {
                tokio::time::sleep(WAIT / 4).await;
                loans.pop().unwrap().finish(true);
            },
            lender.lend(&pool),
        );
        let () = given_back;
        let waiter = waiter.expect("the waiting find got the connection given back");
        waiter.finish(true);
        assert_eq!(lender.open(), LENT_MAX as u64, "reused, not a new one");
        // A connection not given back as reusable is closed; its room is lent again.
        loans.pop().unwrap().finish(false);
        assert_eq!(lender.open(), LENT_MAX as u64 - 1);
        let mut again = lender.lend(&pool).await.expect("room again");
        sqlx_core::query::query("SELECT 1")
            .execute(again.conn())
            .await
            .unwrap();
        again.finish(true);
        drop(loans);
        lender.close();
        assert!(lender.lend(&pool).await.is_none());
        assert_eq!(lender.open(), 0);
    }
}
