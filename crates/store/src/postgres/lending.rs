//! Connections lent to finds without the pool's pings (the shared [`Lending`] holds them).
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

use sqlx_postgres::{PgConnection, PgPool};

use crate::error::StoreError;
use crate::lending::{Lending, Lent};

/// The most connections lent or kept idle here, on top of the pool's.
pub(super) const LENT_MAX: usize = 8;

/// An idle connection, or one taken out of `pool` while fewer than [`LENT_MAX`] exist;
/// `None`: use the pool.
pub(super) async fn lend<'a>(
    lending: &'a Lending<PgConnection>,
    pool: &PgPool,
) -> Option<Lent<'a, PgConnection>> {
    if let Some(lent) = lending.idle() {
        return Some(lent);
    }
    if !lending.reserve() {
        return None;
    }
    match pool.acquire().await {
        Ok(conn) => Some(lending.adopt(conn.detach())),
        Err(_) => {
            lending.unreserve();
            None
        }
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
