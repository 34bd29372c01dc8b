//! The PostgreSQL implementation of [`Store`], on sqlx's PostgreSQL driver.
//!
//! - `ddl`: runs the DDL text of `crate::ddl`; the `_SCHEMA` and `_Files` tables.
//! - `rows`: column types, bound values, and how rows decode into objects.
//! - `dialect`: how filters and orders are written in this database (`crate::translate`
//!   holds the one translator).
//! - `regex`: Parse's regex dialect rewritten for PostgreSQL's engine.
//! - `search`: full-text search (`to_tsvector`, a GIN expression index made on first use).
//! - `writes`: creates, updates and deletes inside a transaction.
//! - `sequencer`: commit order for the change sink.
//! - `merged_creates`: lone creates that arrive together, sent as one multi-row `INSERT`.
//! - `merged_reads`: gets by id that arrive together, sent as one statement.
//!
//! The layout and the semantics are SQLite's (the same tests run against both, and the
//! agreement property test checks both against the matcher); only the dialect differs.
//!
//! Connections come from a pool; each statement is prepared once per connection and cached
//! by sqlx. A [`Store::write`] is one transaction on one connection, run in a task of its
//! own, so that a caller that stops waiting cannot cut it between `COMMIT` and the report of
//! what it committed. Several instances may share a database, each in its own schema
//! ([`PostgresOptions::schema`], or `?schema=` in the URL).

pub mod channel;
mod ddl;
mod dialect;
mod lending;
mod merged_creates;
mod merged_reads;
mod regex;
mod rows;
mod search;
mod sequencer;
mod writes;

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::query::pipeline::Aggregate;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;
use sqlx_core::connection::Connection;
use sqlx_core::query::{Query, query};
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_core::types::Json;
use sqlx_postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgExecutor, PgPool, PgPoolOptions, PgRow, Postgres,
};

use crate::error::{StoreError, StoreResult};
use crate::sql::quote_ident;
use crate::{Change, ChangeSink, JsonRows, SearchHit, Store, StoreStats, Write, WriteOutcome};

use crate::aggregate;
use crate::ddl::{SchemaChange, TableChanges};
use crate::select::{self, Projection};
use crate::selected::JsonRowsWriter;
use crate::state::{self, Generations};
use crate::text_search;
use dialect::PgDialect;
use merged_reads::PointRead;
use rows::{PgBind, PgSql};
use sequencer::{Sequencer, Ticket};

/// Tuning and placement of a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// The schema (namespace) the store's tables live in, created if missing; `None`: the
    /// connection's default `search_path` (normally `public`). Overrides `?schema=` in the URL.
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            max_connections: 16,
            schema: None,
        }
    }
}

/// Prepared statements each connection keeps: the shapes of the app's queries and writes.
const STATEMENT_CACHE: usize = 256;

/// How many times a write that lost a deadlock (or a serialization conflict) is retried.
const WRITE_ATTEMPTS: usize = 3;

/// The key of the advisory lock that serialises start-up work (creating the base tables)
/// between instances starting at once.
const SETUP_LOCK: i64 = 0x7061_726c_6f72;

/// Part of every statement's text, moved by every schema change.
///
/// sqlx caches prepared statements by text, and PostgreSQL refuses to run a cached statement
/// whose result columns changed type ("cached plan must not change result type"), which is
/// what a field removed and added again with another type does to the same select. Moving
/// this number gives every statement a new text after a schema change. It is process-wide
/// (rather than per store) because it only needs to move, and a statement failing because
/// another instance changed the schema moves it too, before the statement is retried.
static STATEMENT_EPOCH: AtomicU64 = AtomicU64::new(0);

fn next_statement_epoch() {
    STATEMENT_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// A [`Store`] on a PostgreSQL database.
pub struct PostgresStore {
    inner: Arc<Inner>,
}

/// The state write tasks share with the store.
struct Inner {
    pool: PgPool,
    /// The tables that exist, as of the last commit: subqueries and relations over missing
    /// tables are empty rather than errors. Refreshed from the catalog when a find names a
    /// class it lacks (another instance may have created it).
    /// Copy-on-write, so that a transaction takes a snapshot without copying the set.
    tables: RwLock<Arc<HashSet<String>>>,
    /// [`Store::class_generation`]: per class, how many committed changes touched it.
    generations: Generations,
    /// Where committed writes are reported (`Store::set_change_sink`).
    sink: RwLock<Option<Arc<dyn ChangeSink>>>,
    /// Orders the reports of conflicting transactions as they committed.
    sequencer: Arc<Sequencer>,
    /// `pg_trgm` could not be created here: `$text` scans (`search::ensure_trigram_index`).
    trigrams_unavailable: AtomicBool,
    /// Connections lent to finds without the pool's pings (`lending`).
    lending: lending::Lender,
    /// Lone creates waiting to go to the database together (`merged_creates`).
    merger: merged_creates::Merger,
    /// Gets by id waiting to go to the database together (`merged_reads`).
    read_merger: merged_reads::ReadMerger,
}

impl From<sqlx_core::Error> for StoreError {
    /// Maps the situations the server distinguishes (as SQLite's store does): a unique
    /// violation is a duplicate, text PostgreSQL cannot hold (NUL) and a pattern its regex
    /// engine refuses are the client's; everything else is a database failure.
    fn from(error: sqlx_core::Error) -> StoreError {
        let code = error
            .as_database_error()
            .and_then(|database| database.code())
            .map(|code| code.into_owned());
        match code.as_deref() {
            Some("23505") => StoreError::DuplicateValue,
            Some("22021" | "22P05") => rows::unstorable(&error.to_string()),
            Some("2201B") => StoreError::Invalid(parlor_core::Error::invalid_query(format!(
                "Invalid regular expression: {}",
                database_message(&error)
            ))),
            // PostgreSQL's limits (class 54), which a client's request can reach: the
            // statement failed, its transaction is rolled back, nothing changed.
            // Past `ddl`'s own check: columns of deleted fields still count here.
            Some("54011") => StoreError::Invalid(parlor_core::Error::new(
                parlor_core::Code::InvalidSchemaOperation,
                "Too many fields: PostgreSQL holds at most 1600 columns per class, \
                 counting those of fields deleted earlier.",
            )),
            Some("54000") => StoreError::Invalid(parlor_core::Error::new(
                parlor_core::Code::ObjectTooLarge,
                format!(
                    "The object is too large for the database: {}.",
                    database_message(&error)
                ),
            )),
            Some("54001" | "54023") => {
                StoreError::Invalid(parlor_core::Error::invalid_query(format!(
                    "The query is too large or too deeply nested for the database ({}).",
                    database_message(&error)
                )))
            }
            // sqlx refuses, before sending it, a statement with more bound values than the
            // protocol carries (65,535), e.g. a huge `$in`.
            None if matches!(&error, sqlx_core::Error::Protocol(message) if message.contains("too many arguments")) => {
                StoreError::Invalid(parlor_core::Error::invalid_query(
                    "The query is too large for the database (more than 65535 values).",
                ))
            }
            _ => StoreError::Database(Box::new(error)),
        }
    }
}

/// The message PostgreSQL gave with a failure (empty for failures that are not the
/// database's).
fn database_message(error: &sqlx_core::Error) -> String {
    error
        .as_database_error()
        .map(|database| database.message().to_owned())
        .unwrap_or_default()
}

/// The SQLSTATE of a database failure.
fn sqlstate(error: &StoreError) -> Option<String> {
    let StoreError::Database(inner) = error else {
        return None;
    };
    inner
        .downcast_ref::<sqlx_core::Error>()
        .and_then(|error| error.as_database_error())
        .and_then(|database| database.code())
        .map(|code| code.into_owned())
}

/// A cached statement whose result changed shape (see [`STATEMENT_EPOCH`]).
fn is_stale_statement(error: &StoreError) -> bool {
    sqlstate(error).as_deref() == Some("0A000")
}

/// Whether a failed write may simply be run again: PostgreSQL chose it as a deadlock victim
/// or serialization loser, or a cached statement went stale; it rolled the write back.
fn is_retryable(error: &StoreError) -> bool {
    matches!(
        sqlstate(error).as_deref(),
        Some("40P01" | "40001" | "0A000")
    )
}

/// Runs a read, once more with fresh statements if a cached one went stale.
async fn read<T, F, R>(run: R) -> StoreResult<T>
where
    R: Fn() -> F,
    F: Future<Output = StoreResult<T>>,
{
    match run().await {
        Err(error) if is_stale_statement(&error) => {
            next_statement_epoch();
            run().await
        }
        result => result,
    }
}

/// `url` without its `schema` query parameter, and that parameter's (percent-decoded) value.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(value) => {
                schema = Some(percent_decode(value));
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, schema)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = match bytes.get(index..index + 3) {
            Some([b'%', high, low]) => std::str::from_utf8(&[*high, *low])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes.get(index).copied().unwrap_or_default());
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A statement with its values bound.
fn bound(out: &PgSql) -> Query<'_, Postgres, PgArguments> {
    let epoch = STATEMENT_EPOCH.load(Ordering::Relaxed);
    let sql = if epoch == 0 {
        out.sql.clone()
    } else {
        format!("{} /* {epoch} */", out.sql)
    };
    let mut statement = query(AssertSqlSafe(sql));
    for bind in &out.binds {
        statement = match bind {
            PgBind::Null => statement,
            PgBind::Int(integer) => statement.bind(*integer),
            PgBind::Float(float) => statement.bind(*float),
            PgBind::Bool(flag) => statement.bind(*flag),
            PgBind::Text(text) => statement.bind(text.as_str()),
            PgBind::TextArray(texts) => statement.bind(texts.as_slice()),
            PgBind::Json(json) => statement.bind(Json(json)),
        };
    }
    statement
}

/// Runs a statement that returns no rows.
pub(crate) async fn execute(conn: &mut PgConnection, out: &PgSql) -> StoreResult<u64> {
    Ok(bound(out).execute(conn).await?.rows_affected())
}

/// Runs a select of `projection` and decodes every row.
pub(crate) async fn select_objects<'c>(
    executor: impl PgExecutor<'c>,
    out: &PgSql,
    projection: &Projection,
) -> StoreResult<Vec<Object>> {
    let rows = bound(out).fetch_all(executor).await?;
    rows.iter().map(|row| projection.decode(row)).collect()
}

impl PostgresStore {
    /// A find's statement run, its rows made into a `T` by `collect`. A get by id goes
    /// together with the gets waiting beside it (`merged_reads`).
    async fn select<T: Default>(
        &self,
        schema: &ClassSchema,
        query: &FindQuery,
        collect: impl Fn(&[PgRow], &Projection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if !self.inner.class_table_exists(&schema.class_name).await? {
            return Ok(T::default());
        }
        if let Some(read) = PointRead::of(query) {
            let projection = Arc::new(Projection::new(schema, query.keys.as_deref()));
            let row = self
                .inner
                .read_merged(&schema.class_name, Arc::clone(&projection), read)
                .await?;
            let rows: Vec<PgRow> = row.into_iter().collect();
            return collect(&rows, &projection);
        }
        self.inner
            .ensure_text_indexes(&schema.class_name, &query.filter)
            .await?;
        let (out, projection) = self
            .inner
            .with_tables(|table_exists| select::find::<PgDialect>(schema, query, table_exists))?;
        let rows = self.inner.fetch_rows(&out).await?;
        collect(&rows, &projection)
    }
}

impl Inner {
    /// The rows of a read statement, run on a lent connection when one is free (else the
    /// pool), once more with fresh statements if a cached one went stale.
    async fn fetch_rows(&self, out: &PgSql) -> StoreResult<Vec<PgRow>> {
        if let Some(mut lent) = self.lending.lend(&self.pool).await {
            let fetched = bound(out).fetch_all(lent.conn()).await;
            let fetched = fetched.map_err(StoreError::from);
            lent.finish(!fetched.as_ref().is_err_and(lending::is_lost_connection));
            match fetched {
                Err(error) if lending::is_lost_connection(&error) || is_stale_statement(&error) => {
                    if is_stale_statement(&error) {
                        next_statement_epoch();
                    }
                }
                fetched => return fetched,
            }
        }
        read(|| async { Ok(bound(out).fetch_all(&self.pool).await?) }).await
    }
}

impl PostgresStore {
    /// `EXPLAIN (FORMAT JSON)` of a statement: the database's plan as JSON.
    async fn plan(&self, mut out: PgSql) -> StoreResult<serde_json::Value> {
        out.sql.insert_str(0, "EXPLAIN (FORMAT JSON) ");
        let row = bound(&out)
            .persistent(false)
            .fetch_one(&self.inner.pool)
            .await?;
        let plan: Json<serde_json::Value> = sqlx_core::row::Row::try_get(&row, 0)?;
        Ok(plan.0)
    }

    /// Connects to `postgres://…` (a `schema` query parameter names the schema to use when
    /// `options.schema` does not), creates the schema and the base tables if missing, and
    /// loads the list of tables.
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<PostgresStore> {
        let (url, url_schema) = split_schema(url);
        let schema = options.schema.or(url_schema);
        let connect_options =
            PgConnectOptions::from_str(&url)?.statement_cache_capacity(STATEMENT_CACHE);
        if let Some(schema) = &schema {
            let mut conn = PgConnection::connect_with(&connect_options).await?;
            let created = raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            )))
            .execute(&mut conn)
            .await;
            // Two instances creating the same schema at once: one wins, both go on.
            if let Err(error) = created {
                let error = StoreError::from(error);
                if !matches!(error, StoreError::DuplicateValue) {
                    return Err(error);
                }
            }
            conn.close().await?;
        }
        let search_path =
            schema.map(|schema| format!("SET search_path TO {}", quote_ident(&schema)));
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(search_path) = search_path {
                        raw_sql(AssertSqlSafe(search_path)).execute(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        let mut tx = pool.begin().await?;
        query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *tx)
            .await?;
        ddl::create_base_tables(&mut tx).await?;
        let tables: HashSet<String> = ddl::table_names(&mut tx).await?.into_iter().collect();
        tx.commit().await?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                tables: RwLock::new(Arc::new(tables)),
                generations: Generations::default(),
                sink: RwLock::new(None),
                sequencer: Arc::new(Sequencer::default()),
                trigrams_unavailable: AtomicBool::new(false),
                lending: lending::Lender::new(),
                merger: merged_creates::Merger::default(),
                read_merger: merged_reads::ReadMerger::default(),
            }),
        })
    }
}

impl Inner {
    fn table_exists(&self, name: &str) -> bool {
        state::table_exists(&self.tables, name)
    }

    /// Creates the trigram index of each field `filter` has a `$text` condition on.
    async fn ensure_text_indexes(&self, class_name: &str, filter: &Filter) -> StoreResult<()> {
        for field in text_search::text_fields(filter) {
            search::ensure_trigram_index(&self.pool, class_name, field, &self.trigrams_unavailable)
                .await?;
        }
        Ok(())
    }

    /// Whether the class has a table, asking the catalog when this process does not know
    /// of one (another instance may have created it since).
    async fn class_table_exists(&self, class_name: &str) -> StoreResult<bool> {
        if self.table_exists(class_name) {
            return Ok(true);
        }
        let mut conn = self.pool.acquire().await?;
        let names = ddl::table_names(&mut conn).await?;
        let exists = names.iter().any(|name| name == class_name);
        if let Ok(mut tables) = self.tables.write() {
            Arc::make_mut(&mut tables).extend(names);
        }
        Ok(exists)
    }

    /// Runs `translate` with a view of the existing tables; the lock is released before
    /// any query runs.
    fn with_tables<T>(&self, translate: impl FnOnce(&dyn Fn(&str) -> bool) -> T) -> T {
        state::with_tables(&self.tables, translate)
    }

    fn apply_table_changes(&self, changes: TableChanges) {
        if changes.created.is_empty() && changes.dropped.is_empty() {
            return;
        }
        if let Ok(mut tables) = self.tables.write() {
            let tables = Arc::make_mut(&mut tables);
            for table in changes.dropped {
                tables.remove(&table);
            }
            tables.extend(changes.created);
        }
    }

    /// Runs `writes` in one transaction, retrying when PostgreSQL rolled it back to break a
    /// deadlock.
    async fn write(self: &Arc<Self>, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        let mut attempt = 1;
        loop {
            match self.write_once(&writes).await {
                Err(error) if attempt < WRITE_ATTEMPTS && is_retryable(&error) => {
                    if is_stale_statement(&error) {
                        next_statement_epoch();
                    }
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn write_once(self: &Arc<Self>, writes: &[Write]) -> StoreResult<Vec<WriteOutcome>> {
        // Another instance may have created a class's table since this one last looked;
        // writes to a table this process does not know of would otherwise miss their rows.
        for write in writes {
            self.class_table_exists(write.class_name()).await?;
        }
        // A lone create without relations is a single statement, committed as it runs: it
        // conflicts with another transaction only on a unique key, where the loser fails and
        // reports nothing. It goes with the creates waiting beside it (`merged_creates`).
        if let [
            Write::Create {
                schema,
                object,
                relations,
            },
        ] = writes
            && relations.is_empty()
        {
            let created = self
                .create_merged(Arc::clone(schema), object.clone())
                .await?;
            return Ok(vec![created]);
        }
        let mut tx = self.pool.begin().await?;
        let mut changes = TableChanges::default();
        let mut outcomes = Vec::with_capacity(writes.len());
        {
            // Tables this transaction creates (join tables) are created with IF NOT EXISTS,
            // so the snapshot of committed tables is enough here.
            let tables = self
                .tables
                .read()
                .map(|tables| Arc::clone(&tables))
                .unwrap_or_default();
            let table_exists = move |name: &str| tables.contains(name);
            for write in writes {
                outcomes.push(writes::apply(&mut tx, write, &table_exists, &mut changes).await?);
            }
        }
        // Every row this transaction changes is locked by now (see `sequencer`).
        let ticket = self.sequencer.ticket();
        tx.commit().await?;
        self.report(ticket, writes, &outcomes, changes).await;
        Ok(outcomes)
    }

    /// After a commit: moves the classes' generations and tells the sink, in commit order.
    async fn report(
        &self,
        ticket: Ticket,
        writes: &[Write],
        outcomes: &[WriteOutcome],
        changes: TableChanges,
    ) {
        self.apply_table_changes(changes);
        ticket.wait_turn().await;
        self.generations.bump(writes.iter().map(Write::class_name));
        let sink = self.sink.read().ok().and_then(|sink| sink.clone());
        if let Some(sink) = sink {
            let changes: Vec<Change<'_>> = writes
                .iter()
                .zip(outcomes)
                .map(|(write, outcome)| Change {
                    class_name: write.class_name(),
                    outcome,
                })
                .collect();
            sink.committed(&changes);
        }
        ticket.finish();
    }

    /// Runs a schema change in a transaction of its own; on commit, the class's generation
    /// moves and the table list follows.
    async fn ddl(&self, job: SchemaChange) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let mut changes = TableChanges::default();
        ddl::apply(&mut tx, &job, &mut changes).await?;
        tx.commit().await?;
        next_statement_epoch();
        self.apply_table_changes(changes);
        self.generations.bump([job.class_name()]);
        Ok(())
    }
}

impl PostgresStore {
    /// Runs a schema change in a task, so that a caller that stops waiting cannot leave the
    /// table list behind a committed change.
    async fn schema_change(&self, job: SchemaChange) -> StoreResult<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.ddl(job).await })
            .await
            .map_err(|error| StoreError::Database(Box::new(error)))?
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load_schemas(&self) -> StoreResult<Vec<ClassSchema>> {
        let mut conn = self.inner.pool.acquire().await?;
        ddl::load_schemas(&mut conn).await
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
        self.select(schema, query, |rows, projection| {
            rows.iter().map(|row| projection.decode(row)).collect()
        })
        .await
    }

    async fn find_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<JsonRows> {
        self.select(schema, query, |rows, projection| {
            let mut page = JsonRowsWriter::new(projection)?;
            for row in rows {
                page.push(row)?;
            }
            page.finish()
        })
        .await
    }

    async fn search(
        &self,
        schema: &ClassSchema,
        field: &str,
        filter: &Filter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<SearchHit>> {
        let Some(text) = search::websearch_text(query) else {
            return Ok(Vec::new());
        };
        if limit == 0 || !self.inner.class_table_exists(&schema.class_name).await? {
            return Ok(Vec::new());
        }
        search::ensure_index(&self.inner.pool, &schema.class_name, field).await?;
        let (out, projection) = self.inner.with_tables(|table_exists| {
            search::statement(schema, field, filter, text, limit, table_exists)
        })?;
        read(|| search::run(&self.inner.pool, &out, &projection)).await
    }

    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64> {
        if !self.inner.class_table_exists(&schema.class_name).await? {
            return Ok(0);
        }
        self.inner
            .ensure_text_indexes(&schema.class_name, filter)
            .await?;
        let out = self
            .inner
            .with_tables(|table_exists| select::count::<PgDialect>(schema, filter, table_exists))?;
        let count: i64 = read(|| async {
            let row = bound(&out).fetch_one(&self.inner.pool).await?;
            Ok(sqlx_core::row::Row::try_get(&row, 0)?)
        })
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.write(writes).await })
            .await
            .map_err(|error| StoreError::Database(Box::new(error)))?
    }

    fn class_generation(&self, class_name: &str) -> u64 {
        self.inner.generations.get(class_name)
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        if let Ok(mut slot) = self.inner.sink.write() {
            *slot = Some(sink);
        }
    }

    async fn explain(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<String> {
        let (mut out, _) = self
            .inner
            .with_tables(|table_exists| select::find::<PgDialect>(schema, query, table_exists))?;
        out.sql.insert_str(0, "EXPLAIN ");
        let lines: Vec<String> = bound(&out)
            .persistent(false)
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|row| sqlx_core::row::Row::try_get::<String, _>(row, 0))
            .collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    async fn explain_json(
        &self,
        schema: &ClassSchema,
        query: &FindQuery,
    ) -> StoreResult<serde_json::Value> {
        let (out, _) = self
            .inner
            .with_tables(|table_exists| select::find::<PgDialect>(schema, query, table_exists))?;
        self.plan(out).await
    }

    async fn aggregate(
        &self,
        schema: &ClassSchema,
        pipeline: &Aggregate,
    ) -> StoreResult<Vec<serde_json::Map<String, serde_json::Value>>> {
        if !self.inner.class_table_exists(&schema.class_name).await? {
            return Ok(Vec::new());
        }
        let mut statement = self.inner.with_tables(|table_exists| {
            aggregate::statement::<PgDialect>(schema, pipeline, table_exists)
        })?;
        if pipeline.explain {
            let plan = self.plan(statement.out).await?;
            let mut row = serde_json::Map::new();
            row.insert("QUERY PLAN".into(), plan);
            return Ok(vec![row]);
        }
        // Each row as one JSON object, whatever the types its columns computed.
        statement.out.sql = format!(
            "SELECT row_to_json(r)::text FROM ({}) AS r",
            statement.out.sql
        );
        let rows = read(|| async {
            Ok(bound(&statement.out)
                .persistent(false)
                .fetch_all(&self.inner.pool)
                .await?)
        })
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = sqlx_core::row::Row::try_get(row, 0)?;
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&text)
                        .map_err(|error| StoreError::Database(Box::new(error)))?;
                let raw = statement
                    .columns
                    .iter()
                    .map(|column| object.remove(&column.name).unwrap_or_default())
                    .collect();
                Ok(aggregate::shape_row::<PgDialect>(&statement.columns, raw))
            })
            .collect()
    }

    async fn distinct(
        &self,
        schema: &ClassSchema,
        filter: &Filter,
        field: &str,
    ) -> StoreResult<Vec<serde_json::Value>> {
        if !self.inner.class_table_exists(&schema.class_name).await? {
            return Ok(Vec::new());
        }
        let Some((mut out, kind)) = self.inner.with_tables(|table_exists| {
            aggregate::distinct::<PgDialect>(schema, filter, field, table_exists)
        })?
        else {
            return Ok(Vec::new());
        };
        out.sql = format!("SELECT to_json(d.\"value\")::text FROM ({}) AS d", out.sql);
        let rows = read(|| async {
            Ok(bound(&out)
                .persistent(false)
                .fetch_all(&self.inner.pool)
                .await?)
        })
        .await?;
        let raw = rows
            .iter()
            .map(|row| {
                let text: Option<String> = sqlx_core::row::Row::try_get(row, 0)?;
                Ok(text
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or_default())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(aggregate::distinct_values::<PgDialect>(&kind, raw))
    }

    async fn put_file(&self, name: &str, content_type: &str, data: Vec<u8>) -> StoreResult<()> {
        query(
            "INSERT INTO \"_Files\" (\"name\", \"contentType\", \"data\") VALUES ($1, $2, $3) \
             ON CONFLICT (\"name\") DO UPDATE SET \"contentType\" = EXCLUDED.\"contentType\", \
             \"data\" = EXCLUDED.\"data\"",
        )
        .bind(name)
        .bind(content_type)
        .bind(data)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    async fn get_file(&self, name: &str) -> StoreResult<Option<(String, Vec<u8>)>> {
        let file: Option<(String, Vec<u8>)> = sqlx_core::query_as::query_as(
            "SELECT \"contentType\", \"data\" FROM \"_Files\" WHERE \"name\" = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(file)
    }

    async fn list_files(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        // `name` is `COLLATE "C"`: byte order, the same pages as SQLite's.
        let names: Vec<(String,)> = sqlx_core::query_as::query_as(
            "SELECT \"name\" FROM \"_Files\" WHERE \"name\" > $1 ORDER BY \"name\" LIMIT $2",
        )
        .bind(after.unwrap_or_default())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(names.into_iter().map(|(name,)| name).collect())
    }

    async fn delete_file(&self, name: &str) -> StoreResult<bool> {
        let deleted = query("DELETE FROM \"_Files\" WHERE \"name\" = $1")
            .bind(name)
            .execute(&self.inner.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    fn stats(&self) -> StoreStats {
        let open = u64::from(self.inner.pool.size());
        let idle = u64::try_from(self.inner.pool.num_idle()).unwrap_or(u64::MAX);
        StoreStats {
            // Writers run concurrently on pool connections; their order is kept by tickets.
            writer_queue: 0,
            connections_in_use: open.saturating_sub(idle),
            connections: open + self.inner.lending.open(),
            backend: "postgresql",
        }
    }

    async fn close(&self) {
        self.inner.lending.close();
        self.inner.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comes_out_of_the_url() {
        assert_eq!(
            split_schema("postgres://u@h/db?schema=t_1&sslmode=disable"),
            (
                "postgres://u@h/db?sslmode=disable".to_owned(),
                Some("t_1".to_owned())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db?schema=a%20b"),
            ("postgres://u@h/db".to_owned(), Some("a b".to_owned()))
        );
        assert_eq!(
            split_schema("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), None)
        );
    }
}
