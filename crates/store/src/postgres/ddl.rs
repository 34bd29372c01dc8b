//! Tables, columns and indexes of classes, and the `_SCHEMA` and `_Files` tables.
//!
//! The layout is SQLite's (see `crate::layout`): a table per class, a join table per
//! relation, `_SCHEMA` holding each class's schema JSON. The statements of a schema change
//! are built by `crate::ddl` from the [`DdlDialect`] words below; this module runs them.
//! PostgreSQL specifics:
//! - every DDL statement runs inside the caller's transaction (PostgreSQL DDL is
//!   transactional), so a failed schema change leaves nothing behind;
//! - `_User.username`/`email` are unique on `lower(col)`: their columns are in the `"C"`
//!   collation, where `lower` folds ASCII only, like SQLite's `NOCASE`;
//! - `_rperm` has a GIN index, which serves the `&&` of `Readable` (`_wperm` is only read by
//!   the guards of writes by `objectId`, which the primary key serves);
//! - index columns of fields are `ASC NULLS FIRST` or `DESC NULLS LAST`, the placement a find
//!   orders fields with, so an index serves the ORDER BY in either direction;
//! - index names longer than PostgreSQL's 63 bytes are shortened with a hash, so that two
//!   long names never truncate to the same one.
//!
//! Indexes end in `(…, createdAt, objectId)` where ordering matters, as in SQLite, so the
//! chat-history query (`Message` by `session`, newest first) is an index range scan.

use parlor_core::Error;
use parlor_core::schema::{ClassSchema, FieldType};
use sqlx_core::executor::Executor;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;

use crate::ddl::{self as shared, DdlDialect, SchemaChange, TableChanges, quote_index};
use crate::error::{StoreError, StoreResult};
use crate::layout::{NULLS_COLUMN, join_table};
use crate::postgres::dialect::PgDialect;
use crate::postgres::rows::column_type;
use crate::sql::quote_ident;

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// The most columns a PostgreSQL table holds. Dropped columns keep counting until the table
/// is rewritten, which only the database sees: past the check on the schema, its own refusal
/// (`54011`) is mapped to the same error.
const MAX_COLUMNS: usize = 1600;

/// PostgreSQL's words for the shared DDL text (`crate::ddl`).
impl DdlDialect for PgDialect {
    const MAX_COLUMNS: usize = MAX_COLUMNS;
    // Byte order, as SQLite compares: sorting and `lower` then agree across backends.
    const ID_TYPE: &'static str = "text COLLATE \"C\"";
    const LIST_TYPE: &'static str = "text[]";
    const JOIN_TABLE_OPTIONS: &'static str = "";

    fn column_type(field_type: &FieldType) -> Option<&'static str> {
        column_type(field_type)
    }

    fn index_name(name: &str) -> String {
        identifier(name)
    }

    /// `lower` of a `"C"` column folds ASCII only, like SQLite's `NOCASE`.
    fn unique_column(column: &str, case_insensitive: bool) -> String {
        if case_insensitive {
            format!("lower({column})")
        } else {
            column.to_owned()
        }
    }

    fn check_names<'s>(
        class_name: &str,
        fields: impl IntoIterator<Item = (&'s String, &'s FieldType)>,
    ) -> StoreResult<()> {
        check_identifiers(class_name, fields)
    }

    /// Serves the `&&` of `Readable`.
    fn class_indexes(class_name: &str) -> Vec<String> {
        vec![format!(
            "CREATE INDEX {} ON {} USING gin (\"_rperm\")",
            quote_index::<PgDialect>(&format!("{class_name}$rperm")),
            quote_ident(class_name)
        )]
    }

    /// Dropping a column drops its indexes (the unique index on `lower(col)` too), so
    /// nothing runs before; `IF EXISTS` since the count check may see a column the table lost.
    fn drop_column(table: &str, column: &str) -> String {
        format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")
    }

    /// New columns in one statement: the table's exclusive lock is taken once, and the
    /// catalog is written once, however many fields arrive together.
    fn add_columns(table: &str, clauses: Vec<String>) -> Vec<String> {
        vec![format!("ALTER TABLE {table} {}", clauses.join(", "))]
    }
}

/// Runs DDL text (simple protocol: each statement runs once, nothing to cache).
async fn execute(conn: &mut PgConnection, sql: String) -> StoreResult<()> {
    conn.execute(raw_sql(AssertSqlSafe(sql))).await?;
    Ok(())
}

/// Runs DDL statements in order, as one simple-protocol batch: one round trip however many
/// there are; a failure stops at it (the caller's transaction then rolls all of them back).
async fn execute_all(conn: &mut PgConnection, statements: Vec<String>) -> StoreResult<()> {
    if statements.is_empty() {
        return Ok(());
    }
    execute(conn, statements.join("; ")).await
}

/// `name` as PostgreSQL will store it: unchanged when short enough, else a prefix and a hash
/// of the whole name.
pub(crate) fn identifier(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER {
        return name.to_owned();
    }
    // FNV-1a: stable across builds and platforms, which `DefaultHasher` does not promise.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut end = MAX_IDENTIFIER - 17;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}${hash:016x}", &name[..end])
}

/// Refuses names PostgreSQL would cut to [`MAX_IDENTIFIER`] bytes: a class's table, the
/// columns of `fields` and the join tables of its relations among them. Cut names could
/// collide (two fields sharing their first 63 bytes would be one column, two relations one
/// join table), so a schema change that needs one is the client's error, before any
/// statement runs. Index names are shortened safely instead ([`identifier`]).
fn check_identifiers<'s>(
    class_name: &str,
    fields: impl IntoIterator<Item = (&'s String, &'s FieldType)>,
) -> StoreResult<()> {
    let too_long = |code, what: String| {
        Err(StoreError::Invalid(Error::new(
            code,
            format!(
                "{what} is too long: PostgreSQL keeps at most {MAX_IDENTIFIER} bytes of a name."
            ),
        )))
    };
    if class_name.len() > MAX_IDENTIFIER {
        return too_long(
            parlor_core::Code::InvalidClassName,
            format!("The class name {class_name}"),
        );
    }
    for (name, field_type) in fields {
        if name.len() > MAX_IDENTIFIER {
            return too_long(
                parlor_core::Code::InvalidKeyName,
                format!("The field name {name}"),
            );
        }
        let join = join_table(name, class_name);
        if matches!(field_type, FieldType::Relation(_)) && join.len() > MAX_IDENTIFIER {
            return too_long(
                parlor_core::Code::InvalidKeyName,
                format!("The relation {name} of class {class_name} (its table {join})"),
            );
        }
    }
    Ok(())
}

/// Creates `_SCHEMA` and `_Files` if missing.
pub(crate) async fn create_base_tables(conn: &mut PgConnection) -> StoreResult<()> {
    execute(
        conn,
        "CREATE TABLE IF NOT EXISTS \"_SCHEMA\" (\"className\" text COLLATE \"C\" PRIMARY KEY, \"schema\" text); \
         CREATE TABLE IF NOT EXISTS \"_Files\" (\"name\" text COLLATE \"C\" PRIMARY KEY, \"contentType\" text NOT NULL, \"data\" bytea NOT NULL)"
            .to_owned(),
    )
    .await
}

/// Every table in the current schema.
pub(crate) async fn table_names(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    let names =
        query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_all(conn)
            .await?;
    Ok(names)
}

/// Runs one schema change inside the caller's transaction.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    change: &SchemaChange,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    match change {
        SchemaChange::Create(schema) => create_class(conn, schema, changes).await,
        SchemaChange::Update { before, after } => update_class(conn, before, after, changes).await,
        SchemaChange::Drop(class_name) => drop_class(conn, class_name, changes).await,
        SchemaChange::Purge(class_name) => purge_class(conn, class_name).await,
    }
}

async fn create_class(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let statements = shared::create_class::<PgDialect>(schema, changes)?;
    execute_all(conn, statements).await?;
    save_schema(conn, schema).await
}

/// Creates the join table of relation `field` on `class_name` if it is missing.
pub(crate) async fn ensure_join_table(
    conn: &mut PgConnection,
    field: &str,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let sql = shared::ensure_join_table::<PgDialect>(field, class_name, changes);
    execute(conn, sql).await
}

async fn update_class(
    conn: &mut PgConnection,
    before: &ClassSchema,
    after: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let fields = shared::check_update::<PgDialect>(before, after)?;
    let class_name = &after.class_name;
    let drops = shared::drop_changed_indexes::<PgDialect>(before, after, &fields);
    execute_all(conn, drops).await?;
    for (name, field_type) in &fields.removed {
        let statements = shared::remove_field::<PgDialect>(class_name, name, field_type, changes);
        execute_all(conn, statements).await?;
        if column_type(field_type).is_some() {
            forget_nulls(conn, class_name, name).await?;
        }
    }
    let statements = shared::add_fields::<PgDialect>(before, after, &fields, changes);
    execute_all(conn, statements).await?;
    save_schema(conn, after).await
}

/// Takes `name` out of every row's [`NULLS_COLUMN`], so that a field removed from the
/// schema and added again does not come back as null.
async fn forget_nulls(conn: &mut PgConnection, class_name: &str, name: &str) -> StoreResult<()> {
    let nulls = quote_ident(NULLS_COLUMN);
    let sql = format!(
        "UPDATE {} SET {nulls} = NULLIF(array_remove({nulls}, $1::text), '{{}}') \
         WHERE {nulls} @> ARRAY[$1::text]",
        quote_ident(class_name)
    );
    query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

async fn save_schema(conn: &mut PgConnection, schema: &ClassSchema) -> StoreResult<()> {
    query(
        "INSERT INTO \"_SCHEMA\" (\"className\", \"schema\") VALUES ($1, $2) \
         ON CONFLICT (\"className\") DO UPDATE SET \"schema\" = EXCLUDED.\"schema\"",
    )
    .bind(&schema.class_name)
    .bind(schema.to_json().to_string())
    .execute(conn)
    .await?;
    Ok(())
}

async fn drop_class(
    conn: &mut PgConnection,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let join_tables = shared::join_tables_of(table_names(conn).await?, class_name);
    execute_all(conn, shared::drop_class(class_name, join_tables, changes)).await?;
    query("DELETE FROM \"_SCHEMA\" WHERE \"className\" = $1")
        .bind(class_name)
        .execute(conn)
        .await?;
    Ok(())
}

async fn purge_class(conn: &mut PgConnection, class_name: &str) -> StoreResult<()> {
    let tables = table_names(conn).await?;
    let exists = tables.iter().any(|name| name == class_name);
    let join_tables = shared::join_tables_of(tables, class_name);
    execute_all(conn, shared::purge_class(class_name, &join_tables, exists)).await
}

/// Every stored schema.
pub(crate) async fn load_schemas(conn: &mut PgConnection) -> StoreResult<Vec<ClassSchema>> {
    let texts: Vec<String> =
        query_scalar("SELECT \"schema\" FROM \"_SCHEMA\" ORDER BY \"className\"")
            .fetch_all(conn)
            .await?;
    shared::parse_schemas(&texts)
}
