//! Lone creates that arrive together, sent as one multi-row `INSERT` per class and column list.
//!
//! PostgreSQL spends on a one-row statement and its commit about three times what it spends on
//! each row of a ten-row `INSERT` (pgbench on the 2-core machine: 14.4k one-row inserts/s
//! against 51.6k rows/s in tens). So the creates waiting for the database go together: the
//! first one starts a drain task at once (a create alone waits for nothing), and those that
//! arrive while a statement runs go in the next one ([`Gathering`]).
//!
//! A merged statement is still one autocommitted statement, so (as for a lone create) its
//! ticket is taken before it is sent and every row commits or none does. One that fails is
//! retried row by row, so that each create gets its own answer: a duplicate key fails only its
//! own row. Callers are answered after the report, as every other write is.

use std::collections::HashMap;
use std::sync::Arc;

use parlor_core::object::Object;
use parlor_core::schema::ClassSchema;

use tokio::sync::oneshot;

use crate::ddl::TableChanges;
use crate::error::{StoreError, StoreResult};
use crate::gathering::Gathering;
use crate::postgres::dialect::PgDialect;
use crate::postgres::rows::{PgBind, PgSql};
use crate::postgres::{Inner, execute};
use crate::writes::{created, insert_rows, row};
use crate::{Write, WriteOutcome};

/// Drains sending statements at the same time. One: the next statement's rows gather while
/// the last one commits. Two made statements smaller and cost more per create, in the
/// server and in PostgreSQL (bench/README, "eighth sitting"); the price of one is that a
/// statement stuck behind a lock (a schema change's) holds every lone create until it ends.
const MAX_RUNNING: usize = 1;

/// The most rows one drain takes.
const MAX_ROWS: usize = 64;

/// The most bound values one statement carries (PostgreSQL takes 65,535).
const MAX_BINDS: usize = 30_000;

/// The creates waiting, and the drains sending them.
pub(crate) struct Merger(Gathering<Pending>);

impl Default for Merger {
    fn default() -> Merger {
        Merger(Gathering::new(MAX_RUNNING))
    }
}

/// A create waiting: its class, its object, and where its answer goes.
struct Pending {
    schema: Arc<ClassSchema>,
    object: Object,
    reply: oneshot::Sender<StoreResult<WriteOutcome>>,
}

impl Inner {
    /// Commits `object`, created without relations, merged with the creates waiting beside it.
    pub(crate) async fn create_merged(
        self: &Arc<Self>,
        schema: Arc<ClassSchema>,
        object: Object,
    ) -> StoreResult<WriteOutcome> {
        let (reply, answer) = oneshot::channel();
        let start = self.merger.0.push(Pending {
            schema,
            object,
            reply,
        });
        if start {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.drain().await });
        }
        answer
            .await
            .map_err(|_| StoreError::database("a merged create was dropped"))?
    }

    /// Sends what is waiting, a statement per class and column list, until nothing is.
    async fn drain(self: Arc<Self>) {
        while let Some(batch) = self.merger.0.take(MAX_ROWS) {
            self.send_batch(batch).await;
        }
    }

    async fn send_batch(&self, batch: Vec<Pending>) {
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: HashMap<(String, Vec<String>), usize> = HashMap::new();
        for pending in batch {
            let row =
                row::<PgDialect>(&pending.schema, &pending.object).map(|(columns, values)| {
                    let columns: Vec<String> = columns.into_iter().map(str::to_owned).collect();
                    ((pending.schema.class_name.clone(), columns), values)
                });
            match row {
                Ok((key, values)) => {
                    let index = *group_of.entry(key.clone()).or_insert_with(|| {
                        groups.push(Group {
                            class_name: key.0,
                            columns: key.1,
                            rows: Vec::new(),
                        });
                        groups.len() - 1
                    });
                    groups[index].rows.push((pending, values));
                }
                Err(error) => {
                    let _ = pending.reply.send(Err(error));
                }
            }
        }
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                let message = error.to_string();
                for group in groups {
                    for (pending, _) in group.rows {
                        let _ = pending
                            .reply
                            .send(Err(StoreError::database(message.clone())));
                    }
                }
                return;
            }
        };
        let ticket = self.sequencer.ticket();
        let mut committed: Vec<Pending> = Vec::new();
        for group in groups {
            for chunk in group.chunks() {
                let Group {
                    class_name,
                    columns,
                    rows,
                } = chunk;
                let merged = rows.len() > 1 && {
                    let values = rows.iter().map(|(_, values)| values.clone()).collect();
                    let statement = insert(&class_name, &columns, values);
                    execute(&mut conn, &statement).await.is_ok()
                };
                for (pending, values) in rows {
                    let result = if merged {
                        Ok(())
                    } else {
                        let statement = insert(&class_name, &columns, vec![values]);
                        execute(&mut conn, &statement).await.map(drop)
                    };
                    match result {
                        Ok(()) => committed.push(pending),
                        Err(error) => {
                            let _ = pending.reply.send(Err(error));
                        }
                    }
                }
            }
        }
        drop(conn);
        let outcomes: Vec<WriteOutcome> = committed
            .iter()
            .map(|pending| created(&pending.schema, &pending.object))
            .collect();
        let (writes, replies): (Vec<Write>, Vec<_>) = committed
            .into_iter()
            .map(|pending| {
                let write = Write::Create {
                    schema: pending.schema,
                    object: pending.object,
                    relations: Vec::new(),
                };
                (write, pending.reply)
            })
            .unzip();
        if writes.is_empty() {
            // Nothing committed: the place in the commit order is given up.
            drop(ticket);
            return;
        }
        self.report(ticket, &writes, &outcomes, TableChanges::default())
            .await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(Ok(outcome));
        }
    }
}

/// Rows for one table and column list, in arrival order.
struct Group {
    class_name: String,
    columns: Vec<String>,
    rows: Vec<(Pending, Vec<PgBind>)>,
}

impl Group {
    /// The group cut so that no statement carries more than [`MAX_BINDS`] values.
    fn chunks(self) -> Vec<Group> {
        let size = (MAX_BINDS / self.columns.len().max(1)).max(1);
        let mut chunks = Vec::new();
        let mut rows = self.rows.into_iter().peekable();
        while rows.peek().is_some() {
            chunks.push(Group {
                class_name: self.class_name.clone(),
                columns: self.columns.clone(),
                rows: rows.by_ref().take(size).collect(),
            });
        }
        chunks
    }
}

/// The `INSERT` of `rows` into `class_name`'s table, each in `columns` order.
fn insert(class_name: &str, columns: &[String], rows: Vec<Vec<PgBind>>) -> PgSql {
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    insert_rows::<PgDialect>(class_name, &columns, rows)
}
