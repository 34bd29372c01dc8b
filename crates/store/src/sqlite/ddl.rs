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
//! writer's transaction (except [`load_schemas`], which runs on a reader).

use parlor_core::Error;
use parlor_core::schema::{ClassSchema, FieldType};
use rusqlite::Connection;
use serde_json::Value;

use crate::error::{StoreError, StoreResult};
pub use crate::layout::UNIQUE_INDEX_KEY;
use crate::layout::{
    CASE_INSENSITIVE_UNIQUE, FieldChanges, SYSTEM_UNIQUE, check_column_count, geo_index,
    join_table, pointer_index, schema_index, unique_index,
};
use crate::sql::quote_ident;
use crate::sqlite::rows::{NULLS_COLUMN, column_decl, field_columns};

/// The most columns a table holds (`SQLITE_MAX_COLUMN`, which the bundled build keeps at
/// SQLite's default).
pub(crate) const MAX_COLUMNS: usize = 2000;

/// Tables a job created or dropped, applied to the store's table list once the job is
/// committed.
#[derive(Debug, Default)]
pub(crate) struct TableChanges {
    pub(crate) created: Vec<String>,
    pub(crate) dropped: Vec<String>,
}

/// Runs DDL text (not worth caching: each statement runs once).
fn execute(conn: &Connection, sql: String) -> StoreResult<()> {
    conn.execute_batch(&sql)?;
    Ok(())
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

pub(crate) fn create_class(
    conn: &Connection,
    schema: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let class_name = &schema.class_name;
    check_column_count(schema, MAX_COLUMNS)?;
    let mut sql = format!(
        "CREATE TABLE {} (\"objectId\" TEXT PRIMARY KEY, \"createdAt\" TEXT, \"updatedAt\" TEXT, \
         \"_rperm\" TEXT, \"_wperm\" TEXT, {} TEXT",
        quote_ident(class_name),
        quote_ident(NULLS_COLUMN)
    );
    for (name, field_type) in field_columns(schema) {
        if let Some(decl) = column_decl(field_type) {
            sql.push_str(&format!(", {} {decl}", quote_ident(name)));
        }
    }
    sql.push(')');
    execute(conn, sql)?;
    changes.created.push(class_name.clone());
    execute(
        conn,
        format!(
            "CREATE INDEX {} ON {} (\"createdAt\", \"objectId\")",
            quote_ident(&format!("{class_name}$created")),
            quote_ident(class_name)
        ),
    )?;
    for (name, field) in &schema.fields {
        add_field_extras(conn, class_name, name, &field.field_type, changes)?;
    }
    for (index_name, spec) in &schema.indexes {
        create_index(conn, schema, index_name, spec)?;
    }
    save_schema(conn, schema)
}

/// The indexes and join table a field brings besides its column.
fn add_field_extras(
    conn: &Connection,
    class_name: &str,
    name: &str,
    field_type: &FieldType,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    match field_type {
        FieldType::Pointer(_) => {
            execute(
                conn,
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ({}, \"createdAt\", \"objectId\")",
                    quote_ident(&pointer_index(class_name, name)),
                    quote_ident(class_name),
                    quote_ident(name)
                ),
            )?;
        }
        FieldType::Relation(_) => ensure_join_table(conn, name, class_name, changes)?,
        // The expressions the dialect's geo conditions read, literally: a query's latitude
        // band is the range, its longitude band is checked in the index before a row is read.
        FieldType::GeoPoint => {
            execute(
                conn,
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (json_extract({column}, '$.latitude'), json_extract({column}, '$.longitude'))",
                    quote_ident(&geo_index(class_name, name)),
                    quote_ident(class_name),
                    column = quote_ident(name)
                ),
            )?;
        }
        _ => {}
    }
    if SYSTEM_UNIQUE.contains(&(class_name, name)) {
        execute(conn, create_unique_index(class_name, name))?;
    }
    Ok(())
}

/// `CREATE UNIQUE INDEX` of a system unique field, `NOCASE` for the case-insensitive ones.
fn create_unique_index(class_name: &str, name: &str) -> String {
    let collation = if CASE_INSENSITIVE_UNIQUE.contains(&(class_name, name)) {
        " COLLATE NOCASE"
    } else {
        ""
    };
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}{collation})",
        quote_ident(&unique_index(class_name, name)),
        quote_ident(class_name),
        quote_ident(name)
    )
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
        let replaced = execute(conn, format!("DROP INDEX {}", quote_ident(&index)))
            .and_then(|()| execute(conn, create_unique_index(class_name, name)));
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
    let table = join_table(field, class_name);
    execute(
        conn,
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"owningId\" TEXT NOT NULL, \"relatedId\" TEXT NOT NULL, \
             PRIMARY KEY (\"owningId\", \"relatedId\")) WITHOUT ROWID",
            quote_ident(&table)
        ),
    )?;
    execute(
        conn,
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (\"relatedId\")",
            quote_ident(&format!("{table}$related")),
            quote_ident(&table)
        ),
    )?;
    changes.created.push(table);
    Ok(())
}

/// Creates one `schema.indexes` entry (`{field: 1 | -1, "$unique"?: true}`); `_id_` and
/// entries naming no column of the class are skipped.
fn create_index(
    conn: &Connection,
    schema: &ClassSchema,
    index_name: &str,
    spec: &Value,
) -> StoreResult<()> {
    let Some(columns) = index_columns(schema, index_name, spec) else {
        return Ok(());
    };
    let unique = spec.get(UNIQUE_INDEX_KEY) == Some(&Value::Bool(true));
    execute(
        conn,
        format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({columns})",
            if unique { "UNIQUE " } else { "" },
            quote_ident(&schema_index(&schema.class_name, index_name)),
            quote_ident(&schema.class_name)
        ),
    )
}

fn index_columns(schema: &ClassSchema, index_name: &str, spec: &Value) -> Option<String> {
    if index_name == "_id_" {
        return None;
    }
    let is_column = |field: &str| {
        matches!(field, "objectId" | "createdAt" | "updatedAt")
            || field_columns(schema).any(|(name, _)| name == field)
    };
    let columns: Vec<String> = spec
        .as_object()?
        .iter()
        .filter(|(field, _)| field.as_str() != UNIQUE_INDEX_KEY)
        .map(|(field, direction)| {
            if !is_column(field) {
                return None;
            }
            let descending = direction.as_f64() == Some(-1.0);
            Some(format!(
                "{} {}",
                quote_ident(field),
                if descending { "DESC" } else { "ASC" }
            ))
        })
        .collect::<Option<_>>()?;
    (!columns.is_empty()).then(|| columns.join(", "))
}

pub(crate) fn update_class(
    conn: &Connection,
    before: &ClassSchema,
    after: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let class_name = &after.class_name;
    if before.class_name != *class_name {
        return Err(StoreError::Invalid(Error::invalid_query(
            "cannot rename a class",
        )));
    }
    check_column_count(after, MAX_COLUMNS)?;
    let fields = FieldChanges::between(before, after);
    let (removed, added) = (&fields.removed, &fields.added);

    // Indexes first: SQLite refuses to drop a column an index uses.
    for (index_name, spec) in &before.indexes {
        if after.indexes.get(index_name) != Some(spec) || fields.index_uses_removed(spec) {
            execute(
                conn,
                format!(
                    "DROP INDEX IF EXISTS {}",
                    quote_ident(&schema_index(class_name, index_name))
                ),
            )?;
        }
    }
    for (name, field_type) in removed {
        crate::sqlite::search::drop_indexes(conn, class_name, Some(name), changes)?;
        for index in [
            pointer_index(class_name, name),
            unique_index(class_name, name),
            geo_index(class_name, name),
        ] {
            execute(
                conn,
                format!("DROP INDEX IF EXISTS {}", quote_ident(&index)),
            )?;
        }
        match field_type {
            FieldType::Relation(_) => {
                let table = join_table(name, class_name);
                execute(
                    conn,
                    format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
                )?;
                changes.dropped.push(table);
            }
            field_type if column_decl(field_type).is_some() => {
                execute(
                    conn,
                    format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        quote_ident(class_name),
                        quote_ident(name)
                    ),
                )?;
                forget_nulls(conn, class_name, name)?;
            }
            _ => {}
        }
    }
    for (name, field_type) in added {
        if let Some(decl) = column_decl(field_type) {
            execute(
                conn,
                format!(
                    "ALTER TABLE {} ADD COLUMN {} {decl}",
                    quote_ident(class_name),
                    quote_ident(name)
                ),
            )?;
        }
        add_field_extras(conn, class_name, name, field_type, changes)?;
    }
    for (index_name, spec) in &after.indexes {
        if before.indexes.get(index_name) != Some(spec) || fields.index_uses_removed(spec) {
            create_index(conn, after, index_name, spec)?;
        }
    }
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

/// The join tables owned by `class_name` (`_Join:<field>:<class_name>`).
fn join_tables_of(conn: &Connection, class_name: &str) -> StoreResult<Vec<String>> {
    let suffix = format!(":{class_name}");
    Ok(table_names(conn)?
        .into_iter()
        .filter(|name| {
            name.strip_prefix("_Join:")
                .and_then(|rest| rest.strip_suffix(&suffix))
                .is_some_and(|field| !field.contains(':'))
        })
        .collect())
}

pub(crate) fn drop_class(
    conn: &Connection,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    crate::sqlite::search::drop_indexes(conn, class_name, None, changes)?;
    for table in join_tables_of(conn, class_name)? {
        execute(
            conn,
            format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
        )?;
        changes.dropped.push(table);
    }
    execute(
        conn,
        format!("DROP TABLE IF EXISTS {}", quote_ident(class_name)),
    )?;
    changes.dropped.push(class_name.to_owned());
    conn.prepare_cached("DELETE FROM \"_SCHEMA\" WHERE \"className\" = ?")?
        .execute([class_name])?;
    Ok(())
}

pub(crate) fn purge_class(conn: &Connection, class_name: &str) -> StoreResult<()> {
    for table in join_tables_of(conn, class_name)? {
        execute(conn, format!("DELETE FROM {}", quote_ident(&table)))?;
    }
    let exists = table_names(conn)?.iter().any(|name| name == class_name);
    if exists {
        execute(conn, format!("DELETE FROM {}", quote_ident(class_name)))?;
    }
    Ok(())
}

/// Every stored schema.
pub(crate) fn load_schemas(conn: &Connection) -> StoreResult<Vec<ClassSchema>> {
    let mut statement =
        conn.prepare_cached("SELECT \"schema\" FROM \"_SCHEMA\" ORDER BY \"className\"")?;
    let texts: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    texts
        .iter()
        .map(|text| {
            let json: Value = serde_json::from_str(text)
                .map_err(|error| StoreError::Database(Box::new(error)))?;
            ClassSchema::from_json(&json).map_err(StoreError::Invalid)
        })
        .collect()
}
