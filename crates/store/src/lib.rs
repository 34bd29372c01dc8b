//! `parlor_store`: persistence of classes and objects behind one trait.
//!
//! The operation layer decides *what* to read and write (with the access rules already
//! folded into each [`Filter`] as `Readable`/`Writable` conditions); a store decides *how*:
//! SQL, transactions, indexes. Each backend is a [`translate::Dialect`] ([`sqlite`],
//! [`postgres`]): the query translator (`translate`) and the read statements (`select`) are
//! written once over it. The layout both share (tables, columns, join tables, which value
//! goes in which storage category) is `layout`, the DDL text of a schema change is `ddl` (over
//! a `ddl::DdlDialect`), the in-memory class generations and table lookups are `state`, and
//! `sql` builds statements with bound values. Each backend only runs what these build.
//!
//! **Invariant:** every query runs in the database, with filters, order, skip, limit and
//! count translated to SQL; no backend filters rows in Rust.
//! **Invariant:** one call to [`Store::write`] is one transaction: all of it or none of it.

mod aggregate;
mod ddl;
pub mod error;
mod gathering;
mod layout;
mod lending;
pub mod postgres;
mod select;
mod selected;
mod sql;
pub mod sqlite;
mod state;
pub mod text_search;
mod translate;
mod writes;

use std::sync::Arc;

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::ops::FieldUpdate;
use parlor_core::query::pipeline::Aggregate;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;

pub use error::{StoreError, StoreResult};
pub use selected::JsonRows;

/// One write inside a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Inserts `object` (its id and timestamps already set, its fields already in final form).
    /// `relations` holds the relation ops of the create (`FieldOp::Relation` updates).
    Create {
        schema: Arc<ClassSchema>,
        object: Object,
        relations: Vec<FieldUpdate>,
    },
    /// Applies `updates` to the object with this id, if it satisfies `guard` (the caller's
    /// write rights); otherwise fails with [`StoreError::ObjectNotFound`]. The ops are applied
    /// to the state read inside the transaction, so concurrent updates compose. An update of
    /// the field `ACL` (a `Set` of ACL JSON, or `Delete`) rewrites the object's ACL.
    Update {
        schema: Arc<ClassSchema>,
        object_id: String,
        guard: Filter,
        updates: Vec<FieldUpdate>,
        updated_at: String,
    },
    /// Deletes the object with this id if it satisfies `guard`, else `ObjectNotFound`.
    Delete {
        schema: Arc<ClassSchema>,
        object_id: String,
        guard: Filter,
    },
}

impl Write {
    /// The class the write changes.
    pub fn class_name(&self) -> &str {
        match self {
            Write::Create { schema, .. }
            | Write::Update { schema, .. }
            | Write::Delete { schema, .. } => &schema.class_name,
        }
    }
}

/// What a write did, with the states the live-query hub and triggers need.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Created(Object),
    Updated { before: Object, after: Object },
    Deleted(Object),
}

/// One committed change, as a [`ChangeSink`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub class_name: &'a str,
    pub outcome: &'a WriteOutcome,
}

/// Receives committed changes, in commit order (the live-query event bus).
pub trait ChangeSink: Send + Sync + 'static {
    /// Called once per committed transaction with what it changed, in commit order, before
    /// the writer is answered. Must not block: it runs on the store's commit path.
    fn committed(&self, changes: &[Change<'_>]);
}

/// One result of [`Store::search`]: the object and an excerpt of the searched field around
/// the matched words.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub object: Object,
    pub snippet: String,
}

/// Persistence of classes (tables), their schemas and their objects.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every stored class schema (the schema cache is filled from this at start-up).
    async fn load_schemas(&self) -> StoreResult<Vec<ClassSchema>>;

    /// Creates the class's table, its indexes and its schema row.
    async fn create_class(&self, schema: &ClassSchema) -> StoreResult<()>;

    /// Stores `schema` as the class's new definition and brings the table in line with it:
    /// adds columns for new fields, drops the columns (and join tables) of removed fields,
    /// creates and drops indexes.
    async fn update_class(&self, before: &ClassSchema, after: &ClassSchema) -> StoreResult<()>;

    /// Drops the class's table, join tables and schema row.
    async fn drop_class(&self, class_name: &str) -> StoreResult<()>;

    /// Deletes every object of the class, keeping the schema.
    async fn purge_class(&self, class_name: &str) -> StoreResult<()>;

    /// Runs a find.
    async fn find(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Vec<Object>>;

    /// Runs a find and answers its objects as the JSON array a client reads: each object as
    /// [`Object::into_json`] of [`Store::find`]'s would serialise (field order aside), written
    /// straight from the rows by the backends.
    async fn find_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<JsonRows>;

    /// Counts the objects matching `filter`.
    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64>;

    /// Applies the writes in one transaction: all succeed, or none is kept and the first
    /// failure is returned.
    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>>;

    /// A number that changes once a write or schema change touching `class_name` has
    /// committed, before the caller of that write is answered, and never otherwise. Caches
    /// of a class's contents (the server's role cache) note it when they load and reload
    /// when it has moved. It counts what this store instance commits (this process).
    fn class_generation(&self, class_name: &str) -> u64;

    /// Sets the receiver of committed changes. Transactions that touch the same object call
    /// it in the order they committed, so an object's events are never reordered; a failed
    /// transaction calls nothing.
    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>);

    /// Full-text search of the String field `field` among the objects matching `filter`
    /// (which carries the caller's ACL and any other restriction), best match first, at most
    /// `limit` hits. `query` is user input: it is reduced to plain words
    /// ([`text_search::terms`]) and any object containing one of them matches, so no query
    /// can fail on syntax or reach the database as an operator. The backend keeps its text
    /// index (SQLite FTS5, a PostgreSQL GIN expression index) itself, created on first use.
    async fn search(
        &self,
        schema: &ClassSchema,
        field: &str,
        filter: &Filter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<SearchHit>>;

    /// The database's plan for a find, for tests and diagnostics.
    async fn explain(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<String>;

    /// The database's plan for a find as JSON (`explain=true`): PostgreSQL's
    /// `EXPLAIN (FORMAT JSON)`, SQLite's `EXPLAIN QUERY PLAN` rows as objects.
    async fn explain_json(
        &self,
        schema: &ClassSchema,
        query: &FindQuery,
    ) -> StoreResult<serde_json::Value>;

    /// Runs an aggregation pipeline in the database; its rows as Parse JSON (see
    /// `aggregate` for the subset and how values are shaped). Empty when the class has no
    /// table.
    async fn aggregate(
        &self,
        schema: &ClassSchema,
        pipeline: &Aggregate,
    ) -> StoreResult<Vec<serde_json::Map<String, serde_json::Value>>>;

    /// The distinct non-null values of `field` (a field, the items of an Array field, or a
    /// dotted path into an Object field) among the objects matching `filter`, as Parse JSON.
    async fn distinct(
        &self,
        schema: &ClassSchema,
        filter: &Filter,
        field: &str,
    ) -> StoreResult<Vec<serde_json::Value>>;

    /// Stores (or replaces) a file's bytes under `name`.
    async fn put_file(&self, name: &str, content_type: &str, data: Vec<u8>) -> StoreResult<()>;

    /// A stored file's content type and bytes.
    async fn get_file(&self, name: &str) -> StoreResult<Option<(String, Vec<u8>)>>;

    /// Deletes a stored file; `false` if there was none.
    async fn delete_file(&self, name: &str) -> StoreResult<bool>;

    /// The names of stored files after `after` (all, for `None`), in byte order, at most
    /// `limit`: a page of the file listing `parlor export` walks.
    async fn list_files(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>>;

    /// Whether the backend reserves this class name for itself (e.g. SQLite's `sqlite_…`
    /// tables); such classes cannot be created.
    fn reserves_class_name(&self, _class_name: &str) -> bool {
        false
    }

    /// How busy the backend is now, for `/metrics`.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Finishes pending writes and closes connections.
    async fn close(&self);
}

/// A backend's load at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions waiting for the writer (SQLite's single writer thread).
    pub writer_queue: u64,
    /// Connections busy with a query.
    pub connections_in_use: u64,
    /// Connections open.
    pub connections: u64,
    /// Which database: `sqlite` or `postgresql`.
    pub backend: &'static str,
}
