//! A pub/sub channel over PostgreSQL's LISTEN/NOTIFY, for instances sharing one database.
//!
//! NOTIFY payloads are limited to 8000 bytes, and a change event carries whole objects, so a
//! larger message is written to the `_ChannelMessages` table and only its id is notified,
//! with the message's first bytes; the listener reads it back unless those bytes show it is
//! one it skips (an instance's own: [`PgChannel::subscribe`]). The table's payloads are
//! stored uncompressed (`STORAGE EXTERNAL`): they are read once or never and pruned after a
//! few minutes, and compressing them was a tenth of PostgreSQL's CPU under a burst of
//! creates. Rows older than a few minutes are removed by the publisher now and then. The
//! channel is named after the schema (`?schema=`), so instances in different schemas of one
//! database do not hear each other.

use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_postgres::{PgListener, PgPool, PgPoolOptions};

use super::split_schema;
use crate::error::{StoreError, StoreResult};
use crate::sql::quote_ident;

/// Payloads up to this size go in the notification itself.
const INLINE_LIMIT: usize = 7900;

/// How many of a stored payload's first bytes its notification carries.
const HEAD_BYTES: usize = 128;

/// One database's channel.
#[derive(Clone)]
pub struct PgChannel {
    url: String,
    pool: PgPool,
    name: String,
    /// `"schema"."_ChannelMessages"`, or the unqualified name in the default schema.
    table: String,
}

impl PgChannel {
    /// Connects a small pool for publishing and creates the overflow table if missing.
    pub async fn connect(url: &str) -> StoreResult<PgChannel> {
        let (url, schema) = split_schema(url);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .map_err(|error| StoreError::database(format!("pub/sub connection: {error}")))?;
        let name = match &schema {
            Some(schema) => format!("parlor_{schema}"),
            None => "parlor".to_owned(),
        };
        let table = match &schema {
            Some(schema) => format!("{}.\"_ChannelMessages\"", quote_ident(schema)),
            None => "\"_ChannelMessages\"".to_owned(),
        };
        let mut statements = Vec::new();
        if let Some(schema) = &schema {
            statements.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            ));
        }
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now(), payload TEXT NOT NULL)"
        ));
        // Also for a table an earlier version made (a catalog change only).
        statements.push(format!(
            "ALTER TABLE {table} ALTER COLUMN payload SET STORAGE EXTERNAL"
        ));
        for statement in statements {
            // `IF NOT EXISTS` is not atomic in PostgreSQL: instances starting together can
            // collide on the catalog's unique index; the loser tries again and finds it made.
            let mut attempt = 0;
            loop {
                match query(sqlx_core::sql_str::AssertSqlSafe(statement.clone()))
                    .execute(&pool)
                    .await
                {
                    Ok(_) => break,
                    Err(_) if attempt < 3 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(PgChannel {
            url,
            pool,
            name,
            table,
        })
    }

    /// Sends one message to every listener (this instance's own included).
    pub async fn publish(&self, payload: &str) -> StoreResult<()> {
        let notification = if payload.len() <= INLINE_LIMIT {
            format!("m{payload}")
        } else {
            let insert = format!(
                "INSERT INTO {} (payload) VALUES ($1) RETURNING id",
                self.table
            );
            let (id,): (i64,) = query_as(sqlx_core::sql_str::AssertSqlSafe(insert))
                .bind(payload)
                .fetch_one(&self.pool)
                .await?;
            if id % 256 == 0 {
                let prune = format!(
                    "DELETE FROM {} WHERE at < now() - interval '5 minutes'",
                    self.table
                );
                query(sqlx_core::sql_str::AssertSqlSafe(prune))
                    .execute(&self.pool)
                    .await?;
            }
            format!("r{id} {}", head(payload))
        };
        query("SELECT pg_notify($1, $2)")
            .bind(&self.name)
            .bind(notification)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every message published from now on, in the order they were sent, but those that
    /// start with `skip` (when given, at most [`HEAD_BYTES`] long): a stored one is then not
    /// read back. The stream ends when the listening connection is lost.
    pub async fn subscribe(&self, skip: Option<String>) -> StoreResult<BoxStream<'static, String>> {
        let mut listener = PgListener::connect(&self.url)
            .await
            .map_err(|error| StoreError::database(format!("pub/sub listener: {error}")))?;
        listener.listen(&self.name).await?;
        let pool = self.pool.clone();
        let table = self.table.clone();
        let notifications = listener.into_stream();
        Ok(notifications
            .take_while(|item| std::future::ready(item.is_ok()))
            .filter_map(move |item| {
                let pool = pool.clone();
                let table = table.clone();
                let skip = skip.clone();
                async move {
                    let notification = item.ok()?;
                    let text = notification.payload();
                    let skipped =
                        |start: &str| skip.as_deref().is_some_and(|skip| start.starts_with(skip));
                    if let Some(inline) = text.strip_prefix('m') {
                        return (!skipped(inline)).then(|| inline.to_owned());
                    }
                    let (id, start) = text.strip_prefix('r')?.split_once(' ')?;
                    if skipped(start) {
                        return None;
                    }
                    let id: i64 = id.parse().ok()?;
                    let select = format!("SELECT payload FROM {table} WHERE id = $1");
                    let row: Option<(String,)> =
                        query_as(sqlx_core::sql_str::AssertSqlSafe(select))
                            .bind(id)
                            .fetch_optional(&pool)
                            .await
                            .ok()?;
                    row.map(|(payload,)| payload)
                }
            })
            .boxed())
    }
}

/// The first [`HEAD_BYTES`] of `payload`, or fewer to end on a character boundary.
fn head(payload: &str) -> &str {
    let mut end = payload.len().min(HEAD_BYTES);
    while !payload.is_char_boundary(end) {
        end -= 1;
    }
    &payload[..end]
}
