//! The SQLite implementation of [`Store`].
//!
//! - `ddl`: runs the DDL text of `crate::ddl`; the `_SCHEMA` table, upgrades of older tables.
//! - `rows`: how each field type is stored in a column and read back.
//! - `dialect`: how filters and orders are written in this database (`crate::translate`
//!   holds the one translator).
//! - `writes`: creates, updates and deletes inside a transaction.
//! - `writer`: the single writer thread and its group commit.
//! - `checkpointer`: the WAL's checkpoints, off the writer's thread.
//! - `search`: full-text search through FTS5 indexes kept by triggers.
//!
//! Execution is synchronous `rusqlite` on dedicated OS threads: statements come from each
//! connection's prepared-statement cache and rows are decoded straight from the statement,
//! so a read costs SQLite's work plus one hand-off to a thread and one back (a
//! `tokio::sync::oneshot`). The async methods only enqueue a job and await its answer; they
//! never block the runtime for longer than one primary-key lookup: a find by `objectId`
//! (a get, the rules' membership check) runs on the caller's thread on a connection of its
//! own (`InlineReaders`), since its ~10 µs in SQLite cost less than the two thread wake-ups
//! of a hand-off.
//!
//! Connections: WAL, `synchronous=NORMAL`, a busy timeout, foreign keys off, and a `REGEXP`
//! function backed by the `regex` crate (the matcher's engine, with its size limits). Reads
//! run on `SqliteOptions::readers` threads, each owning a read-only connection and pulling
//! from one shared queue; one writer thread owns the only writable connection and does every
//! write and DDL. An in-memory database has a single connection, the writer's, which also
//! serves the reads, since each connection to `:memory:` would otherwise be a database of its
//! own.

mod checkpointer;
mod ddl;
mod dialect;
mod rows;
mod search;
mod writer;
mod writes;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::query::pipeline::Aggregate;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;
use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::error::{StoreError, StoreResult};
use crate::lending::{Lend, Lending, Lent};
use crate::sql::{Bind, SqlBuilder};
use crate::sqlite::checkpointer::Checkpointer;
use crate::{ChangeSink, JsonRows, SearchHit, Store, StoreStats, Write, WriteOutcome};

use crate::aggregate;
use crate::ddl::SchemaChange;
use crate::select::{self, Projection};
use crate::selected::JsonRowsWriter;
use crate::state::{self, Generations};
use crate::text_search;
pub(crate) use ddl::MAX_COLUMNS;
pub use ddl::UNIQUE_INDEX_KEY;
use dialect::SqliteDialect;
use writer::{Ddl, Job, SharedSink, Writer};

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Reader threads, each with a read-only connection (file databases only).
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

/// A read to run on a reader's connection; it answers through a channel it captured.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Prepared statements each connection keeps: the shapes of the app's queries and writes.
const STATEMENT_CACHE: usize = 256;

/// A [`Store`] on one SQLite database.
pub struct SqliteStore {
    /// Where jobs are sent; `None` once the store is closed, so that late calls fail
    /// instead of waiting for threads that are gone.
    queues: RwLock<Option<Queues>>,
    /// The writer thread, then the reader threads; joined by [`Store::close`].
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The tables that exist, as of the last commit: subqueries and relations over missing
    /// tables are empty rather than errors, and a find on a class without a table is empty.
    tables: Arc<RwLock<HashSet<String>>>,
    /// [`Store::class_generation`]: per class, how many committed jobs touched it. The
    /// writer bumps it after each commit, before answering the jobs.
    generations: Arc<Generations>,
    /// Where the writer reports each commit (`Store::set_change_sink`).
    sink: SharedSink,
    /// Reader connections open, and how many are running a query now (`Store::stats`).
    readers: u64,
    busy_readers: Arc<AtomicU64>,
    /// Connections for primary-key lookups run on the caller's thread; `None` for an
    /// in-memory database.
    inline: Option<InlineReaders>,
}

/// Read-only connections lent to primary-key lookups, which run on the calling thread.
///
/// A lookup by `objectId` reads a handful of pages: handing it to a reader thread and
/// back (a futex wake each way, two context switches) cost more than the lookup, a fifth
/// of a get's CPU. Only such lookups run here: anything that could scan would hold a
/// request worker. Connections open on first use, up to [`INLINE_CONNECTIONS`]; a lookup
/// that finds none idle goes to the reader threads.
struct InlineReaders {
    path: PathBuf,
    busy_timeout: Duration,
    connections: Lending<Connection>,
}

/// The most connections [`InlineReaders`] opens: one per request worker of a small
/// machine, and a few for workers that lend theirs to a long poll.
const INLINE_CONNECTIONS: usize = 8;

impl InlineReaders {
    /// An idle connection, or a new one while fewer than [`INLINE_CONNECTIONS`] are open.
    fn lend(&self) -> Option<Lent<'_, Connection>> {
        match self.connections.lend()? {
            Lend::Idle(lent) => Some(lent),
            Lend::Room(room) => open_reader(&self.path, self.busy_timeout)
                .ok()
                .map(|conn| room.adopt(conn)),
        }
    }
}

/// Whether a find is a primary-key lookup that can run on the caller's thread: an
/// `objectId` equality every result must meet, and nothing that runs a subquery or needs
/// an index built first.
fn is_point_lookup(filter: &Filter) -> bool {
    let by_id = |filter: &Filter| {
        matches!(
            filter,
            Filter::Cond {
                field,
                cond: parlor_core::query::Cond::Eq(parlor_core::query::Operand::String(_)),
            } if field.field == "objectId" && field.path.is_empty()
        )
    };
    let keyed = match filter {
        Filter::And(items) => items.iter().any(by_id),
        other => by_id(other),
    };
    keyed && filter.is_matchable()
}

/// The job queues. Both are unbounded: every job has a caller awaiting its answer, so the
/// queues hold at most one job per request in flight.
struct Queues {
    /// The writer's queue; every write and schema change goes through it.
    writer: flume::Sender<Job>,
    /// The readers' shared queue; `None` for an in-memory database, whose reads go to the
    /// writer.
    readers: Option<flume::Sender<ReadJob>>,
}

/// Where the database lives.
enum Location {
    Memory,
    File(PathBuf),
}

impl Location {
    /// `sqlite://path`, `sqlite:path` (query parameters are ignored) or an in-memory URL.
    fn parse(url: &str) -> StoreResult<Location> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::database(format!("not a SQLite URL: {url}")))?;
        if rest.contains(":memory:") || rest.contains("mode=memory") {
            return Ok(Location::Memory);
        }
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(StoreError::database(format!(
                "no file in SQLite URL: {url}"
            )));
        }
        Ok(Location::File(PathBuf::from(path)))
    }
}

fn closed() -> StoreError {
    StoreError::database("the store is closed")
}

impl SqliteStore {
    /// Opens `sqlite://path/to/file.db` (creating the folders and the file if missing) or
    /// `sqlite::memory:`.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(url, SqliteOptions::default()).await
    }

    /// [`SqliteStore::open`] with explicit tuning.
    pub async fn open_with(url: &str, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let location = Location::parse(url)?;
        let tables = Arc::new(RwLock::new(HashSet::new()));
        let generations = Arc::new(Generations::default());
        let sink: SharedSink = Arc::new(RwLock::new(None));
        let (writer_queue, writer_jobs) = flume::unbounded();
        let (ready, writer_ready) = oneshot::channel();
        let writer_thread = {
            let path = match &location {
                Location::Memory => None,
                Location::File(path) => Some(path.clone()),
            };
            let busy_timeout = options.busy_timeout;
            let max_group = options.max_group.max(1);
            let shared = Arc::clone(&tables);
            let generations = Arc::clone(&generations);
            let sink = Arc::clone(&sink);
            spawn("parlor-sqlite-writer", move || {
                let opened = open_writer(path.clone(), busy_timeout, &shared).and_then(
                    |(mut conn, committed)| {
                        let checkpointer = path
                            .map(|path| Checkpointer::start(&path, busy_timeout, &mut conn))
                            .transpose()?;
                        Ok((conn, committed, checkpointer))
                    },
                );
                let (conn, committed, checkpointer) = match opened {
                    Ok(opened) => {
                        let _ = ready.send(Ok(()));
                        opened
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                Writer {
                    conn,
                    jobs: writer_jobs,
                    max_group,
                    committed,
                    shared,
                    generations,
                    sink,
                    checkpointer,
                }
                .run();
            })?
        };
        let mut threads = vec![writer_thread];
        writer_ready.await.unwrap_or_else(|_| Err(closed()))?;
        let busy_readers = Arc::new(AtomicU64::new(0));
        let reader_count = match location {
            Location::Memory => 0,
            Location::File(_) => u64::from(options.readers.max(1)),
        };
        let readers = match &location {
            Location::Memory => None,
            Location::File(path) => {
                // The writer has created the file and switched it to WAL, so read-only
                // connections can open it now.
                let (reader_queue, reader_jobs) = flume::unbounded::<ReadJob>();
                for index in 0..options.readers.max(1) {
                    let (ready, reader_ready) = oneshot::channel();
                    let path = path.clone();
                    let jobs = reader_jobs.clone();
                    let busy_timeout = options.busy_timeout;
                    let busy = Arc::clone(&busy_readers);
                    threads.push(spawn(
                        &format!("parlor-sqlite-reader-{index}"),
                        move || {
                            let conn = match open_reader(&path, busy_timeout) {
                                Ok(conn) => {
                                    let _ = ready.send(Ok(()));
                                    conn
                                }
                                Err(error) => {
                                    let _ = ready.send(Err(error));
                                    return;
                                }
                            };
                            while let Ok(job) = jobs.recv() {
                                busy.fetch_add(1, Ordering::Relaxed);
                                // A panicking read loses its answer (its caller gets an error),
                                // not the thread.
                                let run = std::panic::AssertUnwindSafe(|| job(&conn));
                                if std::panic::catch_unwind(run).is_err() {
                                    tracing::error!("a read panicked");
                                }
                                busy.fetch_sub(1, Ordering::Relaxed);
                            }
                        },
                    )?);
                    reader_ready.await.unwrap_or_else(|_| Err(closed()))?;
                }
                Some(reader_queue)
            }
        };
        let inline = match location {
            Location::Memory => None,
            Location::File(path) => Some(InlineReaders {
                path,
                busy_timeout: options.busy_timeout,
                connections: Lending::new(INLINE_CONNECTIONS),
            }),
        };
        Ok(SqliteStore {
            inline,
            queues: RwLock::new(Some(Queues {
                writer: writer_queue,
                readers,
            })),
            threads: Mutex::new(threads),
            tables,
            generations,
            sink,
            readers: reader_count,
            busy_readers,
        })
    }

    /// Whether a table exists, as of the last commit.
    fn table_exists(&self, name: &str) -> bool {
        state::table_exists(&self.tables, name)
    }

    /// Runs `translate` with a view of the existing tables. The lock is released before
    /// any query runs.
    fn with_tables<T>(&self, translate: impl FnOnce(&dyn Fn(&str) -> bool) -> T) -> T {
        state::with_tables(&self.tables, translate)
    }

    /// Runs `work` on a reader's connection and awaits its result.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        {
            let queues = self.queues.read().map_err(|_| closed())?;
            let queues = queues.as_ref().ok_or_else(closed)?;
            let sent = match &queues.readers {
                Some(readers) => readers.send(job).is_ok(),
                None => queues.writer.send(Job::Read(job)).is_ok(),
            };
            if !sent {
                return Err(closed());
            }
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Sends a job to the writer and awaits its answer.
    async fn send<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Job,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        {
            let queues = self.queues.read().map_err(|_| closed())?;
            let queues = queues.as_ref().ok_or_else(closed)?;
            if queues.writer.send(job(reply)).is_err() {
                return Err(closed());
            }
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Creates the FTS5 index of each field `filter` has a `$text` condition on, unless it
    /// exists (the translation uses it once it does).
    async fn ensure_text_indexes(&self, class_name: &str, filter: &Filter) -> StoreResult<()> {
        for field in text_search::text_fields(filter) {
            if !self.table_exists(&search::index_table(class_name, field)) {
                self.ddl(Ddl::TextIndex {
                    class_name: class_name.to_owned(),
                    field: field.to_owned(),
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn ddl(&self, ddl: Ddl) -> StoreResult<()> {
        self.send(|reply| Job::Ddl { ddl, reply }).await
    }

    async fn schema_change(&self, change: SchemaChange) -> StoreResult<()> {
        self.ddl(Ddl::Schema(change)).await
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> StoreResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|error| StoreError::Database(Box::new(error)))
}

/// Settings every connection gets.
fn configure(conn: &Connection, busy_timeout: Duration) -> StoreResult<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans independent of bound values: otherwise SQLite (3.50+) re-prepares a cached
    // statement whenever the value bound to its `LIMIT ?` differs from the last one (a
    // history page after a get by id…), which cost ~6% of the server's CPU under load.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    add_regexp(conn)?;
    add_text_score(conn)?;
    add_geo_functions(conn)?;
    Ok(())
}

/// Registers the geo functions the dialect's geo conditions call, computed by
/// `parlor_core::query::geo`, the matcher's own code, so both evaluators agree to the bit:
/// - `parlor_geo_distance(lat, lon, lat0, lon0)`: great-circle distance in radians;
/// - `parlor_geo_in_polygon(lat, lon, polygon)`: `polygon` a JSON `[[lat, lon], …]`;
/// - `parlor_polygon_contains(polygon_field, lat, lon)`: a Polygon field's JSON contains the
///   point.
///
/// Each gives NULL (false in a WHERE) when an argument is NULL or not what it should be.
fn add_geo_functions(conn: &Connection) -> rusqlite::Result<()> {
    use parlor_core::query::geo::{self, GeoPoint};
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let point = |ctx: &rusqlite::functions::Context<'_>, at: usize| -> Option<GeoPoint> {
        Some(GeoPoint {
            latitude: ctx.get::<Option<f64>>(at).ok()??,
            longitude: ctx.get::<Option<f64>>(at + 1).ok()??,
        })
    };
    conn.create_scalar_function("parlor_geo_distance", 4, flags, move |ctx| {
        Ok(point(ctx, 0)
            .zip(point(ctx, 2))
            .map(|(a, b)| geo::distance(b, a)))
    })?;
    conn.create_scalar_function("parlor_geo_in_polygon", 3, flags, move |ctx| {
        let polygon = ctx.get_or_create_aux(
            2,
            |value| -> Result<Vec<GeoPoint>, Box<dyn std::error::Error + Send + Sync>> {
                let pairs: Vec<[f64; 2]> = serde_json::from_str(value.as_str()?)?;
                Ok(pairs
                    .into_iter()
                    .map(|[latitude, longitude]| GeoPoint {
                        latitude,
                        longitude,
                    })
                    .collect())
            },
        )?;
        Ok(point(ctx, 0).map(|here| geo::point_in_polygon(here, &polygon)))
    })?;
    conn.create_scalar_function("parlor_polygon_contains", 3, flags, move |ctx| {
        let Some(text) = ctx.get::<Option<String>>(0)? else {
            return Ok(None);
        };
        let polygon = serde_json::from_str(&text)
            .ok()
            .and_then(|value| geo::polygon_of(&value));
        Ok(polygon
            .zip(point(ctx, 1))
            .map(|(polygon, here)| geo::point_in_polygon(here, &polygon)))
    })
}

/// Opens the writer's connection (creating the file and its folders), prepares the
/// database, and publishes its tables; returns the connection and the tables.
fn open_writer(
    path: Option<PathBuf>,
    busy_timeout: Duration,
    shared: &RwLock<HashSet<String>>,
) -> StoreResult<(Connection, HashSet<String>)> {
    let conn = match path {
        None => Connection::open_in_memory()?,
        Some(path) => {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|error| StoreError::Database(Box::new(error)))?;
            }
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn
        }
    };
    configure(&conn, busy_timeout)?;
    // The writer runs each job of a group under a savepoint, so every page it changes is
    // copied to a statement journal first; kept in memory (its size is bounded by one
    // group's pages), not in a temporary file written on each insert (~6% of a create's CPU).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    ddl::create_schema_table(&conn)?;
    ddl::upgrade_class_tables(&conn)?;
    ddl::upgrade_unique_indexes(&conn)?;
    search::upgrade_indexes(&conn)?;
    let committed: HashSet<String> = ddl::table_names(&conn)?.into_iter().collect();
    if let Ok(mut tables) = shared.write() {
        tables.clone_from(&committed);
    }
    Ok((conn, committed))
}

fn open_reader(path: &std::path::Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn, busy_timeout)?;
    Ok(conn)
}

/// The steps of `EXPLAIN QUERY PLAN` of a statement, as JSON objects.
fn plan_steps(conn: &Connection, out: &SqlBuilder) -> StoreResult<Value> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", out.sql))?;
    let steps = statement
        .query_map(params_from_iter(&out.binds), |row| {
            Ok(serde_json::json!({
                "id": row.get::<_, i64>(0)?,
                "parent": row.get::<_, i64>(1)?,
                "detail": row.get::<_, String>(3)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(steps))
}

/// An SQL value as JSON, as a pipeline's rows are read before shaping.
fn sql_value_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null | ValueRef::Blob(_) => Value::Null,
        ValueRef::Integer(integer) => Value::from(integer),
        ValueRef::Real(real) => serde_json::Number::from_f64(real)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ValueRef::Text(text) => Value::String(String::from_utf8_lossy(text).into_owned()),
    }
}

/// Registers `parlor_text_score(text, patterns, stop)`: a `$text` search's relevance
/// ([`parlor_core::query::regex::text_score`]) for a JSON array of term patterns and a stop
/// words' pattern (empty: none), compiled once per statement execution (the arguments'
/// auxiliary data). NULL for a NULL text.
fn add_text_score(conn: &Connection) -> rusqlite::Result<()> {
    use parlor_core::query::regex::{Regex, WORD_PATTERN, build, text_score};
    type Boxed = Box<dyn std::error::Error + Send + Sync>;
    type Compiled = (Vec<Regex>, Regex);
    conn.create_scalar_function(
        "parlor_text_score",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let compiled = ctx.get_or_create_aux(1, |patterns| -> Result<Compiled, Boxed> {
                let sources: Vec<String> = serde_json::from_str(patterns.as_str()?)?;
                let terms = sources
                    .iter()
                    .map(|source| build(source))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((terms, build(WORD_PATTERN)?))
            })?;
            let stop = ctx.get_or_create_aux(2, |pattern| -> Result<Option<Regex>, Boxed> {
                match pattern.as_str()? {
                    "" => Ok(None),
                    source => Ok(Some(build(source)?)),
                }
            })?;
            match ctx.get_raw(0) {
                ValueRef::Text(bytes) => {
                    let text = String::from_utf8_lossy(bytes);
                    Ok(Some(text_score(
                        &text,
                        &compiled.0,
                        &compiled.1,
                        stop.as_ref().as_ref(),
                    )))
                }
                _ => Ok(None),
            }
        },
    )
}

/// Registers `regexp(pattern, text)`, which SQLite calls for `text REGEXP pattern`.
///
/// Patterns compile with the matcher's size-limited builder, once per statement execution
/// (the compiled regex is the pattern argument's auxiliary data, kept while the bound
/// pattern stays the same). A NULL text gives NULL, like other SQL operators.
fn add_regexp(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let regex = ctx.get_or_create_aux(
                0,
                |pattern| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(parlor_core::query::regex::build(pattern.as_str()?)?)
                },
            )?;
            let utf8 = |bytes| {
                std::str::from_utf8(bytes)
                    .map_err(|error| rusqlite::Error::UserFunctionError(Box::new(error)))
            };
            let matched = match ctx.get_raw(1) {
                ValueRef::Null => return Ok(None),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => regex.is_match(utf8(bytes)?),
                ValueRef::Integer(integer) => regex.is_match(&integer.to_string()),
                ValueRef::Real(real) => regex.is_match(&real.to_string()),
            };
            Ok(Some(matched))
        },
    )
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::Null => ValueRef::Null,
            Bind::Integer(integer) => ValueRef::Integer(*integer),
            Bind::Real(real) => ValueRef::Real(*real),
            Bind::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// Runs a statement that returns no rows, from the statement cache.
pub(crate) fn execute(conn: &Connection, out: &SqlBuilder) -> rusqlite::Result<usize> {
    conn.prepare_cached(&out.sql)?
        .execute(params_from_iter(&out.binds))
}

/// Runs a select of `projection` and decodes every row.
pub(crate) fn select_objects(
    conn: &Connection,
    out: &SqlBuilder,
    projection: &Projection,
) -> StoreResult<Vec<Object>> {
    let mut statement = conn.prepare_cached(&out.sql)?;
    let mut rows = statement.query(params_from_iter(&out.binds))?;
    let mut objects = Vec::new();
    while let Some(row) = rows.next()? {
        objects.push(projection.decode(row)?);
    }
    Ok(objects)
}

/// Runs a select of `projection` and writes every row as client JSON.
fn select_json(
    conn: &Connection,
    out: &SqlBuilder,
    projection: &Projection,
) -> StoreResult<JsonRows> {
    let mut statement = conn.prepare_cached(&out.sql)?;
    let mut rows = statement.query(params_from_iter(&out.binds))?;
    let mut page = JsonRowsWriter::new(projection)?;
    while let Some(row) = rows.next()? {
        page.push(row)?;
    }
    page.finish()
}

impl SqliteStore {
    /// A find's statement run, its rows made into a `T` by `select`: on the caller's thread
    /// for a lookup by id when a read-only connection is idle, else on a reader thread.
    async fn select<T: Default + Send + 'static>(
        &self,
        schema: &ClassSchema,
        query: &FindQuery,
        select: fn(&Connection, &SqlBuilder, &Projection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if !self.table_exists(&schema.class_name) {
            return Ok(T::default());
        }
        self.ensure_text_indexes(&schema.class_name, &query.filter)
            .await?;
        let (out, projection) = self.with_tables(|table_exists| {
            select::find::<SqliteDialect>(schema, query, table_exists)
        })?;
        if is_point_lookup(&query.filter)
            && let Some(mut lent) = self.inline.as_ref().and_then(InlineReaders::lend)
        {
            self.busy_readers.fetch_add(1, Ordering::Relaxed);
            let found = select(lent.conn(), &out, &projection);
            self.busy_readers.fetch_sub(1, Ordering::Relaxed);
            lent.finish(true);
            return found;
        }
        self.read(move |conn| select(conn, &out, &projection)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_schemas(&self) -> StoreResult<Vec<ClassSchema>> {
        self.read(ddl::load_schemas).await
    }

    async fn create_class(&self, schema: &ClassSchema) -> StoreResult<()> {
        self.schema_change(SchemaChange::Create(schema.clone()))
            .await
    }

    async fn update_class(&self, before: &ClassSchema, after: &ClassSchema) -> StoreResult<()> {
        self.schema_change(SchemaChange::Update {
            before: before.clone(),
            after: after.clone(),
        })
        .await
    }

    async fn drop_class(&self, class_name: &str) -> StoreResult<()> {
        self.schema_change(SchemaChange::Drop(class_name.to_owned()))
            .await
    }

    async fn purge_class(&self, class_name: &str) -> StoreResult<()> {
        self.schema_change(SchemaChange::Purge(class_name.to_owned()))
            .await
    }

    async fn find(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Vec<Object>> {
        self.select(schema, query, select_objects).await
    }

    async fn find_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<JsonRows> {
        self.select(schema, query, select_json).await
    }

    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64> {
        if !self.table_exists(&schema.class_name) {
            return Ok(0);
        }
        self.ensure_text_indexes(&schema.class_name, filter).await?;
        let out = self.with_tables(|table_exists| {
            select::count::<SqliteDialect>(schema, filter, table_exists)
        })?;
        let count = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&out.sql)?;
                let count: i64 =
                    statement.query_row(params_from_iter(&out.binds), |row| row.get(0))?;
                Ok(count)
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = writes::prepare(&writes);
        self.send(|reply| Job::Write {
            writes,
            prepared,
            reply,
        })
        .await
    }

    fn class_generation(&self, class_name: &str) -> u64 {
        self.generations.get(class_name)
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        if let Ok(mut slot) = self.sink.write() {
            *slot = Some(sink);
        }
    }

    async fn search(
        &self,
        schema: &ClassSchema,
        field: &str,
        filter: &Filter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<SearchHit>> {
        let Some(expression) = search::match_expression(query) else {
            return Ok(Vec::new());
        };
        if limit == 0 || !self.table_exists(&schema.class_name) {
            return Ok(Vec::new());
        }
        if !self.table_exists(&search::index_table(&schema.class_name, field)) {
            self.ddl(Ddl::TextIndex {
                class_name: schema.class_name.clone(),
                field: field.to_owned(),
            })
            .await?;
        }
        let (out, projection) = self.with_tables(|table_exists| {
            search::statement(schema, field, filter, expression, limit, table_exists)
        });
        self.read(move |conn| search::run(conn, &out, &projection))
            .await
    }

    async fn explain(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<String> {
        let (mut out, _) = self.with_tables(|table_exists| {
            select::find::<SqliteDialect>(schema, query, table_exists)
        })?;
        out.sql.insert_str(0, "EXPLAIN QUERY PLAN ");
        self.read(move |conn| {
            let mut statement = conn.prepare(&out.sql)?;
            let lines = statement
                .query_map(params_from_iter(&out.binds), |row| row.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(lines.join("\n"))
        })
        .await
    }

    async fn explain_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Value> {
        let (out, _) = self.with_tables(|table_exists| {
            select::find::<SqliteDialect>(schema, query, table_exists)
        })?;
        self.read(move |conn| plan_steps(conn, &out)).await
    }

    async fn aggregate(
        &self,
        schema: &ClassSchema,
        pipeline: &Aggregate,
    ) -> StoreResult<Vec<Map<String, Value>>> {
        if !self.table_exists(&schema.class_name) {
            return Ok(Vec::new());
        }
        let statement = self.with_tables(|table_exists| {
            aggregate::statement::<SqliteDialect>(schema, pipeline, table_exists)
        })?;
        if pipeline.explain {
            let plan = self
                .read(move |conn| plan_steps(conn, &statement.out))
                .await?;
            let mut row = Map::new();
            row.insert("QUERY PLAN".into(), plan);
            return Ok(vec![row]);
        }
        self.read(move |conn| {
            let mut prepared = conn.prepare(&statement.out.sql)?;
            let mut rows = prepared.query(params_from_iter(&statement.out.binds))?;
            let mut objects = Vec::new();
            while let Some(row) = rows.next()? {
                let raw = (0..statement.columns.len())
                    .map(|index| row.get_ref(index).map(sql_value_json))
                    .collect::<Result<Vec<_>, _>>()?;
                objects.push(aggregate::shape_row::<SqliteDialect>(
                    &statement.columns,
                    raw,
                ));
            }
            Ok(objects)
        })
        .await
    }

    async fn distinct(
        &self,
        schema: &ClassSchema,
        filter: &Filter,
        field: &str,
    ) -> StoreResult<Vec<Value>> {
        if !self.table_exists(&schema.class_name) {
            return Ok(Vec::new());
        }
        let Some((out, kind)) = self.with_tables(|table_exists| {
            aggregate::distinct::<SqliteDialect>(schema, filter, field, table_exists)
        })?
        else {
            return Ok(Vec::new());
        };
        let raw = self
            .read(move |conn| {
                let mut prepared = conn.prepare(&out.sql)?;
                let values = prepared
                    .query_map(params_from_iter(&out.binds), |row| {
                        row.get_ref(0).map(sql_value_json)
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(values)
            })
            .await?;
        Ok(aggregate::distinct_values::<SqliteDialect>(&kind, raw))
    }

    async fn put_file(&self, name: &str, content_type: &str, data: Vec<u8>) -> StoreResult<()> {
        let ddl = Ddl::PutFile {
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            data,
        };
        self.ddl(ddl).await
    }

    async fn get_file(&self, name: &str) -> StoreResult<Option<(String, Vec<u8>)>> {
        let name = name.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT \"contentType\", \"data\" FROM \"_Files\" WHERE \"name\" = ?",
            )?;
            let mut rows = statement.query([&name])?;
            match rows.next()? {
                Some(row) => Ok(Some((row.get(0)?, row.get(1)?))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn delete_file(&self, name: &str) -> StoreResult<bool> {
        if self.get_file(name).await?.is_none() {
            return Ok(false);
        }
        self.ddl(Ddl::DeleteFile(name.to_owned())).await?;
        Ok(true)
    }

    async fn list_files(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or_default().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            // `_Files.name` is TEXT with the default BINARY collation: byte order, as on PostgreSQL.
            let mut statement = conn.prepare_cached(
                "SELECT \"name\" FROM \"_Files\" WHERE \"name\" > ? ORDER BY \"name\" LIMIT ?",
            )?;
            let names = statement
                .query_map(rusqlite::params![after, limit], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
    }

    fn reserves_class_name(&self, class_name: &str) -> bool {
        class_name
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
    }

    fn stats(&self) -> StoreStats {
        let writer_queue = self
            .queues
            .read()
            .ok()
            .and_then(|queues| queues.as_ref().map(|queues| queues.writer.len()))
            .unwrap_or(0);
        StoreStats {
            writer_queue: u64::try_from(writer_queue).unwrap_or(u64::MAX),
            // The writer's connection is always open and counted as busy while jobs wait.
            connections_in_use: self.busy_readers.load(Ordering::Relaxed)
                + u64::from(writer_queue > 0),
            connections: self.readers
                + 1
                + self
                    .inline
                    .as_ref()
                    .map_or(0, |inline| inline.connections.open()),
            backend: "sqlite",
        }
    }

    async fn close(&self) {
        // Later calls fail from here on. The readers go first: they drain their queue and
        // stop once its last sender (this one) is dropped. Then the writer finishes what is
        // queued before `Close` and closes the last connection, which checkpoints the WAL
        // into the database file (a read-only connection could not).
        let queues = self
            .queues
            .write()
            .ok()
            .and_then(|mut queues| queues.take());
        let mut threads = self
            .threads
            .lock()
            .map(|mut threads| std::mem::take(&mut *threads))
            .unwrap_or_default();
        // The writer is the first thread spawned.
        let writer = (!threads.is_empty()).then(|| threads.remove(0));
        if let Some(inline) = &self.inline {
            inline.connections.close();
        }
        if let Some(queues) = queues {
            drop(queues.readers);
            join(threads).await;
            let (reply, done) = oneshot::channel();
            if queues.writer.send(Job::Close { reply }).is_ok() {
                let _ = done.await;
            }
        } else {
            join(threads).await;
        }
        join(writer.into_iter().collect()).await;
    }
}

/// Waits for threads without blocking the runtime.
async fn join(threads: Vec<JoinHandle<()>>) {
    if threads.is_empty() {
        return;
    }
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a SQLite thread panicked");
            }
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!("joining the SQLite threads failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        configure(&conn, Duration::from_secs(1)).expect("configured");
        conn
    }

    /// `REGEXP` matches with the `regex` crate, gives NULL for a NULL text, and refuses a
    /// pattern that does not compile instead of matching nothing.
    #[test]
    fn regexp_function() {
        let conn = connection();
        let matches = |text: Option<&str>, pattern: &str| -> rusqlite::Result<Option<bool>> {
            conn.query_row("SELECT ?1 REGEXP ?2", (text, pattern), |row| row.get(0))
        };
        assert_eq!(matches(Some("hello"), "^h.l").ok(), Some(Some(true)));
        assert_eq!(matches(Some("hello"), "(?i)^H").ok(), Some(Some(true)));
        assert_eq!(matches(Some("hello"), "x").ok(), Some(Some(false)));
        assert_eq!(matches(None, "x").ok(), Some(None));
        assert!(matches(Some("hello"), "(").is_err());
    }

    /// The compiled pattern is reused across the rows of one statement.
    #[test]
    fn regexp_over_rows() {
        let conn = connection();
        let count: i64 = conn
            .query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                 SELECT COUNT(*) FROM n WHERE CAST(i AS TEXT) REGEXP ?1",
                ["^1"],
                |row| row.get(0),
            )
            .expect("query");
        assert_eq!(count, 112);
    }

    /// `close` leaves the database checkpointed (no WAL file), and calls after it fail
    /// instead of waiting for threads that are gone.
    #[tokio::test]
    async fn close_checkpoints_and_later_calls_fail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/closed.db", dir.path().display());
        let store = SqliteStore::open(&url).await.expect("open");
        assert!(store.load_schemas().await.expect("schemas").is_empty());
        store.close().await;
        assert!(!dir.path().join("closed.db-wal").exists());
        assert!(store.load_schemas().await.is_err());
        assert!(store.drop_class("Nothing").await.is_err());
        store.close().await;
    }
}
