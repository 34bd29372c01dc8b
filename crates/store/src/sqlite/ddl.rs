//! Tables, columns and indexes of classes, and the `_SCHEMA` table.
//!
//! Layout: one table per class named after it, with `objectId` (primary key), `createdAt`,
//! `updatedAt`, `_rperm`, `_wperm`, `_nulls` (the fields stored as an explicit null) and a
//! column per field (see [`super::rows`]). A relation lives in its own join table
//! `"_Join:<field>:<class>"`. Tables from builds before `_nulls` get it when the store opens
//! ([`upgrade_class_tables`]), and case-sensitive `_User.username`/`email` unique indexes
//! become `NOCASE` ones ([`upgrade_unique_indexes`]).
//!
//! Indexes always end in `(…, createdAt, objectId)` where ordering matters: a find's ORDER BY
//! ends with `objectId` as tie-breaker, and an index that already holds it serves the whole
//! ORDER BY, so the chat-history query (`Message` by `session`, newest first) is an index
//! range scan with no sort step. These functions run on the writer's connection, inside the
//! writer's transaction (except [`load_schemas`], which runs on a reader). The text of a
//! schema change is `crate::ddl`'s, shared with PostgreSQL; this module runs it and keeps what
//! only SQLite has (its catalog, the upgrades of older tables).

use parlor_core::schema::{ClassSchema, FieldType};
use rusqlite::Connection;

use crate::ddl::{self as shared, DdlDialect, SchemaChange, TableChanges};
use crate::error::{StoreError, StoreResult};
pub use crate::layout::UNIQUE_INDEX_KEY;
use crate::layout::{CASE_INSENSITIVE_UNIQUE, geo_index, pointer_index, unique_index};
use crate::sql::quote_ident;
use crate::sqlite::dialect::SqliteDialect;
use crate::sqlite::rows::{NULLS_COLUMN, column_decl, field_columns};

/// The most columns a table holds (`SQLITE_MAX_COLUMN`, which the bundled build keeps at
/// SQLite's default).
pub(crate) const MAX_COLUMNS: usize = 2000;

/// SQLite's words for the shared DDL text (`crate::ddl`).
impl DdlDialect for SqliteDialect {
    const MAX_COLUMNS: usize = MAX_COLUMNS;
    const ID_TYPE: &'static str = "TEXT";
    const LIST_TYPE: &'static str = "TEXT";
    // The join table is its primary key: no rowid to store beside it.
    const JOIN_TABLE_OPTIONS: &'static str = " WITHOUT ROWID";

    fn column_type(field_type: &FieldType) -> Option<&'static str> {
        column_decl(field_type)
    }

    fn unique_column(column: &str, case_insensitive: bool) -> String {
        if case_insensitive {
            format!("{column} COLLATE NOCASE")
        } else {
            column.to_owned()
        }
    }

    /// SQLite refuses to drop a column an index uses.
    fn before_drop_column(class_name: &str, name: &str) -> Vec<String> {
        [
            pointer_index(class_name, name),
            unique_index(class_name, name),
            geo_index(class_name, name),
        ]
        .iter()
        .map(|index| format!("DROP INDEX IF EXISTS {}", quote_ident(index)))
        .collect()
    }

    fn drop_column(table: &str, column: &str) -> String {
        format!("ALTER TABLE {table} DROP COLUMN {column}")
    }

    /// One column a statement: SQLite's `ALTER TABLE` takes no list.
    fn add_columns(table: &str, clauses: Vec<String>) -> Vec<String> {
        clauses
            .into_iter()
            .map(|clause| format!("ALTER TABLE {table} {clause}"))
            .collect()
    }
}

/// Runs DDL text (not worth caching: each statement runs once).
fn execute(conn: &Connection, sql: String) -> StoreResult<()> {
    conn.execute_batch(&sql)?;
    Ok(())
}

fn execute_all(conn: &Connection, statements: Vec<String>) -> StoreResult<()> {
    statements
        .into_iter()
        .try_for_each(|sql| execute(conn, sql))
}

/// Creates `_SCHEMA` if missing.
pub(crate) fn create_schema_table(conn: &Connection) -> StoreResult<()> {
    // Uploaded files live beside the classes, so a backup of the database holds them too.
    execute(
        conn,
        "CREATE TABLE IF NOT EXISTS \"_Files\" (\"name\" TEXT PRIMARY KEY, \"contentType\" TEXT NOT NULL, \"data\" BLOB NOT NULL)"
            .to_owned(),
    )?;
    execute(
        conn,
        "CREATE TABLE IF NOT EXISTS \"_SCHEMA\" (\"className\" TEXT PRIMARY KEY, \"schema\" TEXT)"
            .to_owned(),
    )
}

/// Brings tables written by earlier builds up to their schema: adds [`NULLS_COLUMN`] (their
/// rows have no explicit nulls, which is what a NULL `_nulls` says) and a column for every
/// schema field that lacks one (e.g. a system field added in a later release; its rows hold
/// nothing there yet).
pub(crate) fn upgrade_class_tables(conn: &Connection) -> StoreResult<()> {
    let classes: Vec<(String, String)> = conn
        .prepare(
            "SELECT s.\"className\", s.\"schema\" FROM \"_SCHEMA\" AS s \
             WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = s.\"className\")",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (class_name, schema_text) in classes {
        let existing: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?)")?
            .query_map([&class_name], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let has = |column: &str| {
            existing
                .iter()
                .any(|name| name.eq_ignore_ascii_case(column))
        };
        let mut missing: Vec<(String, &'static str)> = Vec::new();
        if !has(NULLS_COLUMN) {
            missing.push((NULLS_COLUMN.to_owned(), "TEXT"));
        }
        let schema = serde_json::from_str(&schema_text)
            .ok()
            .and_then(|value| ClassSchema::from_json(&value).ok());
        if let Some(schema) = &schema {
            for (name, field_type) in field_columns(schema) {
                if let Some(declaration) = column_decl(field_type)
                    && !has(name)
                {
                    missing.push((name.to_owned(), declaration));
                }
            }
        }
        for (column, declaration) in missing {
            execute(
                conn,
                format!(
                    "ALTER TABLE {} ADD COLUMN {} {declaration}",
                    quote_ident(&class_name),
                    quote_ident(&column)
                ),
            )?;
        }
    }
    Ok(())
}

/// Every table in the database.
pub(crate) fn table_names(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

/// Runs one schema change on the writer's connection, inside the writer's transaction.
pub(crate) fn apply(
    conn: &Connection,
    change: &SchemaChange,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    match change {
        SchemaChange::Create(schema) => create_class(conn, schema, changes),
        SchemaChange::Update { before, after } => update_class(conn, before, after, changes),
        SchemaChange::Drop(class_name) => drop_class(conn, class_name, changes),
        SchemaChange::Purge(class_name) => purge_class(conn, class_name),
    }
}

fn create_class(
    conn: &Connection,
    schema: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    execute_all(
        conn,
        shared::create_class::<SqliteDialect>(schema, changes)?,
    )?;
    save_schema(conn, schema)
}

/// Replaces the case-sensitive unique indexes of [`CASE_INSENSITIVE_UNIQUE`] fields that
/// earlier builds created by `NOCASE` ones. When the rows already hold values that differ
/// only in case, the new index cannot be built: the old one is kept (uniqueness stays
/// case-sensitive for that field) and a warning says which field to clean up.
pub(crate) fn upgrade_unique_indexes(conn: &Connection) -> StoreResult<()> {
    for (class_name, name) in CASE_INSENSITIVE_UNIQUE {
        let index = unique_index(class_name, name);
        let definition: Option<String> = conn
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?")?
            .query_map([&index], |row| row.get(0))?
            .next()
            .transpose()?;
        let Some(definition) = definition else {
            continue;
        };
        if definition.to_ascii_uppercase().contains("COLLATE NOCASE") {
            continue;
        }
        execute(conn, "SAVEPOINT \"nocase_index\"".to_owned())?;
        let replaced =
            execute(conn, format!("DROP INDEX {}", quote_ident(&index))).and_then(|()| {
                execute(
                    conn,
                    shared::create_unique_index::<SqliteDialect>(class_name, name),
                )
            });
        match replaced {
            Ok(()) => execute(conn, "RELEASE \"nocase_index\"".to_owned())?,
            Err(error) => {
                execute(
                    conn,
                    "ROLLBACK TO \"nocase_index\"; RELEASE \"nocase_index\"".to_owned(),
                )?;
                if !is_constraint_violation(&error) {
                    return Err(error);
                }
                tracing::warn!(
                    "{class_name}.{name} holds values that differ only in case; its unique index \
                     stays case-sensitive until they are made distinct"
                );
            }
        }
    }
    Ok(())
}

fn is_constraint_violation(error: &StoreError) -> bool {
    let StoreError::Database(inner) = error else {
        return false;
    };
    matches!(
        inner.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

/// Creates the join table of relation `field` on `class_name` if it is missing.
pub(crate) fn ensure_join_table(
    conn: &Connection,
    field: &str,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    execute(
        conn,
        shared::ensure_join_table::<SqliteDialect>(field, class_name, changes),
    )
}

fn update_class(
    conn: &Connection,
    before: &ClassSchema,
    after: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let fields = shared::check_update::<SqliteDialect>(before, after)?;
    let class_name = &after.class_name;
    execute_all(
        conn,
        shared::drop_changed_indexes::<SqliteDialect>(before, after, &fields),
    )?;
    for (name, field_type) in &fields.removed {
        crate::sqlite::search::drop_indexes(conn, class_name, Some(name), changes)?;
        execute_all(
            conn,
            shared::remove_field::<SqliteDialect>(class_name, name, field_type, changes),
        )?;
        if column_decl(field_type).is_some() {
            forget_nulls(conn, class_name, name)?;
        }
    }
    execute_all(
        conn,
        shared::add_fields::<SqliteDialect>(before, after, &fields, changes),
    )?;
    save_schema(conn, after)
}

/// Takes `name` out of every row's [`NULLS_COLUMN`], so that a field removed from the
/// schema and added again does not come back as null.
fn forget_nulls(conn: &Connection, class_name: &str, name: &str) -> StoreResult<()> {
    let nulls = quote_ident(NULLS_COLUMN);
    conn.execute(
        &format!(
            "UPDATE {table} SET {nulls} = (SELECT CASE WHEN COUNT(*) = 0 THEN NULL \
             ELSE json_group_array(je.value) END FROM json_each({nulls}) AS je WHERE je.value <> ?1) \
             WHERE EXISTS (SELECT 1 FROM json_each({nulls}) AS je WHERE je.value = ?1)",
            table = quote_ident(class_name),
        ),
        [name],
    )?;
    Ok(())
}

fn save_schema(conn: &Connection, schema: &ClassSchema) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO \"_SCHEMA\" (\"className\", \"schema\") VALUES (?, ?)",
    )?
    .execute((&schema.class_name, schema.to_json().to_string()))?;
    Ok(())
}

fn drop_class(conn: &Connection, class_name: &str, changes: &mut TableChanges) -> StoreResult<()> {
    crate::sqlite::search::drop_indexes(conn, class_name, None, changes)?;
    let join_tables = shared::join_tables_of(table_names(conn)?, class_name);
    execute_all(conn, shared::drop_class(class_name, join_tables, changes))?;
    conn.prepare_cached("DELETE FROM \"_SCHEMA\" WHERE \"className\" = ?")?
        .execute([class_name])?;
    Ok(())
}

fn purge_class(conn: &Connection, class_name: &str) -> StoreResult<()> {
    let tables = table_names(conn)?;
    let exists = tables.iter().any(|name| name == class_name);
    let join_tables = shared::join_tables_of(tables, class_name);
    execute_all(conn, shared::purge_class(class_name, &join_tables, exists))
}

/// Every stored schema.
pub(crate) fn load_schemas(conn: &Connection) -> StoreResult<Vec<ClassSchema>> {
    let mut statement =
        conn.prepare_cached("SELECT \"schema\" FROM \"_SCHEMA\" ORDER BY \"className\"")?;
    let texts: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    shared::parse_schemas(&texts)
}
