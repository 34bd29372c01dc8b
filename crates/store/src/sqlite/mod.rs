//! The SQLite implementation of [`Store`].
//!
//! - `ddl`: tables, columns, indexes, the `_SCHEMA` table.
//! - `rows`: how each field type is stored in a column and read back.
//! - `translate`: filters and orders → SQL with bound parameters (the dialect).
//! - `select`: whole read statements (projection, WHERE, ORDER BY, LIMIT).
//! - `writes`: creates, updates and deletes inside a transaction.
//! - `writer`: the single writer task and its group commit.
//!
//! Connections: WAL, `synchronous=NORMAL`, a busy timeout, foreign keys off, and a `REGEXP`
//! function backed by the `regex` crate (the matcher's engine). Reads use a pool of read-only
//! connections; one writer connection, owned by the writer task, does every write and DDL.
//! An in-memory database has a single connection shared by the writer and the readers,
//! since each connection to `:memory:` would otherwise be a database of its own.

mod ddl;
mod rows;
mod select;
mod translate;
mod writer;
mod writes;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{StoreError, StoreResult};
use crate::sql::{Bind, SqlBuilder};
use crate::{Store, Write, WriteOutcome};

pub use ddl::UNIQUE_INDEX_KEY;
use writer::{Ddl, Job, Writer};

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read-only connections for finds and counts (file databases only).
    pub readers: u32,
    /// The most jobs committed together in one transaction.
    pub max_group: usize,
    /// How long a connection waits for a lock before failing with "database is locked".
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            readers: 4,
            max_group: 256,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] on one SQLite database.
pub struct SqliteStore {
    readers: SqlitePool,
    /// The writer task's queue; every write and schema change goes through it.
    jobs: mpsc::Sender<Job>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
    /// The tables that exist, as of the last commit: subqueries and relations over missing
    /// tables are empty rather than errors, and a find on a class without a table is empty.
    tables: Arc<RwLock<HashSet<String>>>,
}

/// The jobs waiting for the writer, beyond which callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

impl SqliteStore {
    /// Opens `sqlite://path/to/file.db` (creating the folders and the file if missing) or
    /// `sqlite::memory:`.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(url, SqliteOptions::default()).await
    }

    /// [`SqliteStore::open`] with explicit tuning.
    pub async fn open_with(url: &str, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let base = SqliteConnectOptions::from_str(url)?
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false)
            .with_regexp();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (writer_pool, readers) = if in_memory {
            let pool = single_connection_pool().connect_with(base).await?;
            (pool.clone(), pool)
        } else {
            if let Some(parent) = base.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
            let writer_options = base
                .clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            let writer_pool = single_connection_pool()
                .connect_with(writer_options)
                .await?;
            // The writer has created the file and switched it to WAL, so read-only
            // connections can open it now.
            let readers = SqlitePoolOptions::new()
                .max_connections(options.readers.max(1))
                .min_connections(1)
                .test_before_acquire(false)
                .connect_with(base.read_only(true))
                .await?;
            (writer_pool, readers)
        };
        let committed: HashSet<String> = {
            let mut conn = writer_pool.acquire().await?;
            ddl::create_schema_table(&mut conn).await?;
            ddl::upgrade_class_tables(&mut conn).await?;
            ddl::table_names(&mut conn).await?.into_iter().collect()
        };
        let tables = Arc::new(RwLock::new(committed.clone()));
        let (jobs, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            pool: writer_pool,
            jobs: receiver,
            max_group: options.max_group.max(1),
            committed,
            shared: Arc::clone(&tables),
        };
        let writer_task = tokio::spawn(writer.run());
        Ok(SqliteStore {
            readers,
            jobs,
            writer_task: Mutex::new(Some(writer_task)),
            tables,
        })
    }

    /// Whether a table exists, as of the last commit.
    fn table_exists(&self, name: &str) -> bool {
        self.tables
            .read()
            .map(|tables| tables.contains(name))
            .unwrap_or(false)
    }

    /// Runs `translate` with a view of the existing tables. The lock is released before
    /// any query runs.
    fn with_tables<T>(&self, translate: impl FnOnce(&dyn Fn(&str) -> bool) -> T) -> T {
        match self.tables.read() {
            Ok(tables) => translate(&|name: &str| tables.contains(name)),
            Err(_) => translate(&|_: &str| false),
        }
    }

    async fn send<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Job,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(job(reply)).await.is_err() {
            return Err(StoreError::Database(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::PoolClosed)))
    }

    async fn ddl(&self, ddl: Ddl) -> StoreResult<()> {
        self.send(|reply| Job::Ddl { ddl, reply }).await
    }
}

/// A pool that keeps exactly one connection open for the life of the store (an in-memory
/// database lives only as long as its connection).
fn single_connection_pool() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}

/// A prepared query with the builder's values bound in order.
pub(crate) fn bound(out: SqlBuilder) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    let mut query = sqlx::query(AssertSqlSafe(out.sql));
    for value in out.binds {
        query = match value {
            Bind::Null => query.bind(None::<String>),
            Bind::Integer(integer) => query.bind(integer),
            Bind::Real(real) => query.bind(real),
            Bind::Text(text) => query.bind(text),
        };
    }
    query
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_schemas(&self) -> StoreResult<Vec<ClassSchema>> {
        let mut conn = self.readers.acquire().await?;
        ddl::load_schemas(&mut conn).await
    }

    async fn create_class(&self, schema: &ClassSchema) -> StoreResult<()> {
        self.ddl(Ddl::Create(schema.clone())).await
    }

    async fn update_class(&self, before: &ClassSchema, after: &ClassSchema) -> StoreResult<()> {
        self.ddl(Ddl::Update {
            before: before.clone(),
            after: after.clone(),
        })
        .await
    }

    async fn drop_class(&self, class_name: &str) -> StoreResult<()> {
        self.ddl(Ddl::Drop(class_name.to_owned())).await
    }

    async fn purge_class(&self, class_name: &str) -> StoreResult<()> {
        self.ddl(Ddl::Purge(class_name.to_owned())).await
    }

    async fn find(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Vec<Object>> {
        if !self.table_exists(&schema.class_name) {
            return Ok(Vec::new());
        }
        let (out, projection) =
            self.with_tables(|table_exists| select::find(schema, query, table_exists));
        let rows = bound(out).fetch_all(&self.readers).await?;
        rows.iter().map(|row| projection.decode(row)).collect()
    }

    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64> {
        if !self.table_exists(&schema.class_name) {
            return Ok(0);
        }
        let out = self.with_tables(|table_exists| select::count(schema, filter, table_exists));
        let row = bound(out).fetch_one(&self.readers).await?;
        let count: i64 = row.try_get(0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.send(|reply| Job::Write { writes, reply }).await
    }

    async fn explain(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<String> {
        let (mut out, _) =
            self.with_tables(|table_exists| select::find(schema, query, table_exists));
        out.sql.insert_str(0, "EXPLAIN QUERY PLAN ");
        let rows = bound(out).fetch_all(&self.readers).await?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<String, _>(3))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }

    fn reserves_class_name(&self, class_name: &str) -> bool {
        class_name
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
    }

    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.jobs.send(Job::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
        let task = self
            .writer_task
            .lock()
            .ok()
            .and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.readers.close().await;
    }
}
