//! Tables, columns and indexes of classes, and the `_SCHEMA` and `_Files` tables.
//!
//! The layout is SQLite's (see `crate::layout`): a table per class, a join table per
//! relation, `_SCHEMA` holding each class's schema JSON. PostgreSQL specifics:
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
use serde_json::Value;
use sqlx_core::executor::Executor;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;

use crate::error::{StoreError, StoreResult};
use crate::layout::{
    CASE_INSENSITIVE_UNIQUE, FieldChanges, NULLS_COLUMN, SYSTEM_UNIQUE, UNIQUE_INDEX_KEY,
    check_column_count, field_columns, geo_index, join_table, pointer_index, schema_index,
    unique_index,
};
use crate::postgres::rows::column_type;
use crate::sql::quote_ident;

/// Tables a job created or dropped, applied to the store's table list once committed.
#[derive(Debug, Default)]
pub(crate) struct TableChanges {
    pub(crate) created: Vec<String>,
    pub(crate) dropped: Vec<String>,
}

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// The most columns a PostgreSQL table holds. Dropped columns keep counting until the table
/// is rewritten, which only the database sees: past the check on the schema, its own refusal
/// (`54011`) is mapped to the same error.
const MAX_COLUMNS: usize = 1600;

/// Runs DDL text (simple protocol: each statement runs once, nothing to cache).
async fn execute(conn: &mut PgConnection, sql: String) -> StoreResult<()> {
    conn.execute(raw_sql(AssertSqlSafe(sql))).await?;
    Ok(())
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

fn quote_index(name: &str) -> String {
    quote_ident(&identifier(name))
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

pub(crate) async fn create_class(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let class_name = &schema.class_name;
    check_column_count(schema, MAX_COLUMNS)?;
    check_identifiers(
        class_name,
        schema
            .fields
            .iter()
            .map(|(name, field)| (name, &field.field_type)),
    )?;
    let table = quote_ident(class_name);
    let mut sql = format!(
        "CREATE TABLE {table} (\"objectId\" text COLLATE \"C\" PRIMARY KEY, \
         \"createdAt\" text COLLATE \"C\", \"updatedAt\" text COLLATE \"C\", \
         \"_rperm\" text[], \"_wperm\" text[], {} text[]",
        quote_ident(NULLS_COLUMN)
    );
    for (name, field_type) in field_columns(schema) {
        if let Some(column_type) = column_type(field_type) {
            sql.push_str(&format!(", {} {column_type}", quote_ident(name)));
        }
    }
    sql.push_str("); ");
    sql.push_str(&format!(
        "CREATE INDEX {} ON {table} (\"createdAt\", \"objectId\"); \
         CREATE INDEX {} ON {table} USING gin (\"_rperm\")",
        quote_index(&format!("{class_name}$created")),
        quote_index(&format!("{class_name}$rperm")),
    ));
    execute(conn, sql).await?;
    changes.created.push(class_name.clone());
    for (name, field) in &schema.fields {
        add_field_extras(conn, class_name, name, &field.field_type, changes).await?;
    }
    for (index_name, spec) in &schema.indexes {
        create_index(conn, schema, index_name, spec).await?;
    }
    save_schema(conn, schema).await
}

/// The indexes and join table a field brings besides its column.
async fn add_field_extras(
    conn: &mut PgConnection,
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
                    "CREATE INDEX IF NOT EXISTS {} ON {} ({} NULLS FIRST, \"createdAt\", \"objectId\")",
                    quote_index(&pointer_index(class_name, name)),
                    quote_ident(class_name),
                    quote_ident(name)
                ),
            )
            .await?;
        }
        FieldType::Relation(_) => ensure_join_table(conn, name, class_name, changes).await?,
        // The expressions the dialect's geo conditions read (`PgDialect::coordinate`): a
        // query's latitude band is the range, its longitude band is checked in the index.
        FieldType::GeoPoint => {
            execute(
                conn,
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ((({column} ->> 'latitude')::float8), (({column} ->> 'longitude')::float8))",
                    quote_index(&geo_index(class_name, name)),
                    quote_ident(class_name),
                    column = quote_ident(name)
                ),
            )
            .await?;
        }
        _ => {}
    }
    if SYSTEM_UNIQUE.contains(&(class_name, name)) {
        let column = if CASE_INSENSITIVE_UNIQUE.contains(&(class_name, name)) {
            format!("lower({})", quote_ident(name))
        } else {
            quote_ident(name)
        };
        execute(
            conn,
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({column})",
                quote_index(&unique_index(class_name, name)),
                quote_ident(class_name),
            ),
        )
        .await?;
    }
    Ok(())
}

/// Creates the join table of relation `field` on `class_name` if it is missing.
pub(crate) async fn ensure_join_table(
    conn: &mut PgConnection,
    field: &str,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let table = join_table(field, class_name);
    execute(
        conn,
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"owningId\" text COLLATE \"C\" NOT NULL, \
             \"relatedId\" text COLLATE \"C\" NOT NULL, PRIMARY KEY (\"owningId\", \"relatedId\")); \
             CREATE INDEX IF NOT EXISTS {} ON {} (\"relatedId\")",
            quote_ident(&table),
            quote_index(&format!("{table}$related")),
            quote_ident(&table)
        ),
    )
    .await?;
    changes.created.push(table);
    Ok(())
}

/// Creates one `schema.indexes` entry (`{field: 1 | -1, "$unique"?: true}`); `_id_` and
/// entries naming no column of the class are skipped.
async fn create_index(
    conn: &mut PgConnection,
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
            quote_index(&schema_index(&schema.class_name, index_name)),
            quote_ident(&schema.class_name)
        ),
    )
    .await
}

fn index_columns(schema: &ClassSchema, index_name: &str, spec: &Value) -> Option<String> {
    if index_name == "_id_" {
        return None;
    }
    let columns: Vec<String> = spec
        .as_object()?
        .iter()
        .filter(|(field, _)| field.as_str() != UNIQUE_INDEX_KEY)
        .map(|(field, direction)| {
            let descending = direction.as_f64() == Some(-1.0);
            // The default columns are never NULL; a find orders them with PostgreSQL's
            // default NULLS placement, and fields with SQLite's (see `Translator::order` and `Dialect::nulls_order`).
            let nulls = if matches!(field.as_str(), "objectId" | "createdAt" | "updatedAt") {
                ""
            } else if field_columns(schema).any(|(name, _)| name == field) {
                if descending {
                    " NULLS LAST"
                } else {
                    " NULLS FIRST"
                }
            } else {
                return None;
            };
            Some(format!(
                "{} {}{nulls}",
                quote_ident(field),
                if descending { "DESC" } else { "ASC" }
            ))
        })
        .collect::<Option<_>>()?;
    (!columns.is_empty()).then(|| columns.join(", "))
}

pub(crate) async fn update_class(
    conn: &mut PgConnection,
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
    check_identifiers(class_name, fields.added.iter().copied())?;
    let table = quote_ident(class_name);
    for (index_name, spec) in &before.indexes {
        if after.indexes.get(index_name) != Some(spec) || fields.index_uses_removed(spec) {
            execute(
                conn,
                format!(
                    "DROP INDEX IF EXISTS {}",
                    quote_index(&schema_index(class_name, index_name))
                ),
            )
            .await?;
        }
    }
    for (name, field_type) in &fields.removed {
        // Dropping a column drops its indexes; the unique index of a system field, on
        // `lower(col)`, goes with it too.
        match field_type {
            FieldType::Relation(_) => {
                let join = join_table(name, class_name);
                execute(conn, format!("DROP TABLE IF EXISTS {}", quote_ident(&join))).await?;
                changes.dropped.push(join);
            }
            field_type if column_type(field_type).is_some() => {
                execute(
                    conn,
                    format!(
                        "ALTER TABLE {table} DROP COLUMN IF EXISTS {}",
                        quote_ident(name)
                    ),
                )
                .await?;
                forget_nulls(conn, class_name, name).await?;
            }
            _ => {}
        }
    }
    // New columns in one statement: the table's exclusive lock is taken once, and the
    // catalog is written once, however many fields arrive together.
    let new_columns: Vec<String> = fields
        .added
        .iter()
        .filter_map(|(name, field_type)| {
            column_type(field_type)
                .map(|column_type| format!("ADD COLUMN {} {column_type}", quote_ident(name)))
        })
        .collect();
    if !new_columns.is_empty() {
        execute(
            conn,
            format!("ALTER TABLE {table} {}", new_columns.join(", ")),
        )
        .await?;
    }
    for (name, field_type) in &fields.added {
        add_field_extras(conn, class_name, name, field_type, changes).await?;
    }
    for (index_name, spec) in &after.indexes {
        if before.indexes.get(index_name) != Some(spec) || fields.index_uses_removed(spec) {
            create_index(conn, after, index_name, spec).await?;
        }
    }
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

/// The join tables owned by `class_name` (`_Join:<field>:<class_name>`).
async fn join_tables_of(conn: &mut PgConnection, class_name: &str) -> StoreResult<Vec<String>> {
    let suffix = format!(":{class_name}");
    Ok(table_names(conn)
        .await?
        .into_iter()
        .filter(|name| {
            name.strip_prefix("_Join:")
                .and_then(|rest| rest.strip_suffix(&suffix))
                .is_some_and(|field| !field.contains(':'))
        })
        .collect())
}

pub(crate) async fn drop_class(
    conn: &mut PgConnection,
    class_name: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    for table in join_tables_of(conn, class_name).await? {
        execute(
            conn,
            format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
        )
        .await?;
        changes.dropped.push(table);
    }
    execute(
        conn,
        format!("DROP TABLE IF EXISTS {}", quote_ident(class_name)),
    )
    .await?;
    changes.dropped.push(class_name.to_owned());
    query("DELETE FROM \"_SCHEMA\" WHERE \"className\" = $1")
        .bind(class_name)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn purge_class(conn: &mut PgConnection, class_name: &str) -> StoreResult<()> {
    for table in join_tables_of(conn, class_name).await? {
        execute(conn, format!("DELETE FROM {}", quote_ident(&table))).await?;
    }
    let exists = table_names(conn)
        .await?
        .iter()
        .any(|name| name == class_name);
    if exists {
        execute(conn, format!("DELETE FROM {}", quote_ident(class_name))).await?;
    }
    Ok(())
}

/// Every stored schema.
pub(crate) async fn load_schemas(conn: &mut PgConnection) -> StoreResult<Vec<ClassSchema>> {
    let texts: Vec<String> =
        query_scalar("SELECT \"schema\" FROM \"_SCHEMA\" ORDER BY \"className\"")
            .fetch_all(conn)
            .await?;
    texts
        .iter()
        .map(|text| {
            let json: Value = serde_json::from_str(text)
                .map_err(|error| StoreError::Database(Box::new(error)))?;
            ClassSchema::from_json(&json).map_err(StoreError::Invalid)
        })
        .collect()
}
