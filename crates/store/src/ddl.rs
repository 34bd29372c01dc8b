//! The DDL text of a schema change, written once for both backends.
//!
//! Which tables, columns and indexes a class has is the same in SQLite and PostgreSQL (see
//! `layout`); only the words differ (column types, index expressions, how long an index name
//! may be). So the statements are built here as plain strings by pure functions over a
//! [`DdlDialect`], and each backend's `ddl` module only runs them: rusqlite synchronously on
//! the writer's connection, sqlx asynchronously inside a transaction. Sharing the text is
//! what keeps the two layouts from drifting apart.
//!
//! Left per backend, because the backends really differ there: reading the catalog
//! (`sqlite_master` / `pg_tables`), writing `_SCHEMA` (`INSERT OR REPLACE` / `ON CONFLICT`),
//! taking a field out of `_nulls` (a JSON array / a `text[]`), and SQLite's upgrades of tables
//! from earlier builds and its FTS5 tables.

use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::layout::{
    CASE_INSENSITIVE_UNIQUE, FieldChanges, NULLS_COLUMN, SYSTEM_UNIQUE, UNIQUE_INDEX_KEY,
    check_column_count, field_columns, geo_index, join_table, pointer_index, schema_index,
    unique_index,
};
use crate::sql::quote_ident;
use crate::translate::Dialect;

/// Tables a job created or dropped, applied to the store's table list once the job is
/// committed (a rolled-back job changes nothing).
#[derive(Debug, Default)]
pub(crate) struct TableChanges {
    pub(crate) created: Vec<String>,
    pub(crate) dropped: Vec<String>,
}

/// A schema change, owned so that a backend can run it on a thread or task of its own.
#[derive(Debug)]
pub(crate) enum SchemaChange {
    Create(ClassSchema),
    Update {
        before: ClassSchema,
        after: ClassSchema,
    },
    Drop(String),
    Purge(String),
}

impl SchemaChange {
    /// The class whose generation moves once the change is committed.
    pub(crate) fn class_name(&self) -> &str {
        match self {
            SchemaChange::Create(schema) | SchemaChange::Update { after: schema, .. } => {
                &schema.class_name
            }
            SchemaChange::Drop(class_name) | SchemaChange::Purge(class_name) => class_name,
        }
    }
}

/// What the DDL of one backend says differently. The query side of the same backend
/// ([`Dialect`]) supplies the expressions indexes must match: `coordinate` for GeoPoint
/// indexes and `nulls_order` for the NULLS placement of index columns.
pub(crate) trait DdlDialect: Dialect {
    /// The most columns a table holds.
    const MAX_COLUMNS: usize;
    /// The type of `objectId`, the dates and the join tables' ids.
    const ID_TYPE: &'static str;
    /// The type of the ACL lists and `_nulls`.
    const LIST_TYPE: &'static str;
    /// Written after a join table's column list.
    const JOIN_TABLE_OPTIONS: &'static str;

    /// The column type of a field, `None` for fields without a column.
    fn column_type(field_type: &FieldType) -> Option<&'static str>;
    /// An index's name as the database stores it.
    fn index_name(name: &str) -> String {
        name.to_owned()
    }
    /// The indexed expression of a system unique field (`column` is quoted).
    fn unique_column(column: &str, case_insensitive: bool) -> String;
    /// Refuses names the database could not hold, before any statement runs.
    fn check_names<'s>(
        _class_name: &str,
        _fields: impl IntoIterator<Item = (&'s String, &'s FieldType)>,
    ) -> StoreResult<()> {
        Ok(())
    }
    /// Indexes every class table has besides `(createdAt, objectId)`.
    fn class_indexes(_class_name: &str) -> Vec<String> {
        Vec::new()
    }
    /// Statements to run before the column of a removed field is dropped.
    fn before_drop_column(_class_name: &str, _name: &str) -> Vec<String> {
        Vec::new()
    }
    /// `ALTER TABLE … DROP COLUMN` of a removed field.
    fn drop_column(table: &str, column: &str) -> String;
    /// The statements adding `clauses` (each `ADD COLUMN …`) to `table`.
    fn add_columns(table: &str, clauses: Vec<String>) -> Vec<String>;
}

/// `name` as an index name, quoted.
pub(crate) fn quote_index<D: DdlDialect>(name: &str) -> String {
    quote_ident(&D::index_name(name))
}

/// The statements creating the tables and indexes of a new class, in order. The class's own
/// table and its join tables go into `changes`.
pub(crate) fn create_class<D: DdlDialect>(
    schema: &ClassSchema,
    changes: &mut TableChanges,
) -> StoreResult<Vec<String>> {
    let class_name = &schema.class_name;
    check_column_count(schema, D::MAX_COLUMNS)?;
    D::check_names(
        class_name,
        schema
            .fields
            .iter()
            .map(|(name, field)| (name, &field.field_type)),
    )?;
    let (id, list) = (D::ID_TYPE, D::LIST_TYPE);
    let table = quote_ident(class_name);
    let mut sql = format!(
        "CREATE TABLE {table} (\"objectId\" {id} PRIMARY KEY, \"createdAt\" {id}, \
         \"updatedAt\" {id}, \"_rperm\" {list}, \"_wperm\" {list}, {} {list}",
        quote_ident(NULLS_COLUMN)
    );
    for (name, field_type) in field_columns(schema) {
        if let Some(column_type) = D::column_type(field_type) {
            sql.push_str(&format!(", {} {column_type}", quote_ident(name)));
        }
    }
    sql.push(')');
    let mut statements = vec![
        sql,
        format!(
            "CREATE INDEX {} ON {table} (\"createdAt\", \"objectId\")",
            quote_index::<D>(&format!("{class_name}$created"))
        ),
    ];
    statements.extend(D::class_indexes(class_name));
    changes.created.push(class_name.clone());
    for (name, field) in &schema.fields {
        statements.extend(field_extras::<D>(
            class_name,
            name,
            &field.field_type,
            changes,
        ));
    }
    for (index_name, spec) in &schema.indexes {
        statements.extend(create_index::<D>(schema, index_name, spec));
    }
    Ok(statements)
}

/// The indexes and join table a field brings besides its column.
fn field_extras<D: DdlDialect>(
    class_name: &str,
    name: &str,
    field_type: &FieldType,
    changes: &mut TableChanges,
) -> Vec<String> {
    let table = quote_ident(class_name);
    let column = quote_ident(name);
    let mut statements = Vec::new();
    match field_type {
        // Ordered like a find on the pointer orders it, ending in the find's tie-breakers.
        // Only rows that have the pointer: a find compares it with an id (`=`, `IN`, a
        // subquery), which both databases know excludes NULL, while a chat message leaves most
        // of its pointers (parent, persona, reply) unset and would pay for an entry in each.
        FieldType::Pointer(_) => statements.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({column}{}, \"createdAt\", \"objectId\") \
             WHERE {column} IS NOT NULL",
            quote_index::<D>(&pointer_index(class_name, name)),
            D::nulls_order(false)
        )),
        FieldType::Relation(_) => {
            statements.push(ensure_join_table::<D>(name, class_name, changes))
        }
        // The expressions the dialect's geo conditions read, literally: a query's latitude
        // band is the range, its longitude band is checked in the index before a row is read.
        FieldType::GeoPoint => statements.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({}, {})",
            quote_index::<D>(&geo_index(class_name, name)),
            D::coordinate(&column, "latitude"),
            D::coordinate(&column, "longitude")
        )),
        _ => {}
    }
    if SYSTEM_UNIQUE.contains(&(class_name, name)) {
        statements.push(create_unique_index::<D>(class_name, name));
    }
    statements
}

/// `CREATE UNIQUE INDEX` of a system unique field, case-insensitive for the fields of
/// [`CASE_INSENSITIVE_UNIQUE`].
pub(crate) fn create_unique_index<D: DdlDialect>(class_name: &str, name: &str) -> String {
    let case_insensitive = CASE_INSENSITIVE_UNIQUE.contains(&(class_name, name));
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
        quote_index::<D>(&unique_index(class_name, name)),
        quote_ident(class_name),
        D::unique_column(&quote_ident(name), case_insensitive)
    )
}

/// The statement creating the join table of relation `field` on `class_name` and its index
/// by `relatedId` if missing; the table goes into `changes`.
pub(crate) fn ensure_join_table<D: DdlDialect>(
    field: &str,
    class_name: &str,
    changes: &mut TableChanges,
) -> String {
    let table = join_table(field, class_name);
    let id = D::ID_TYPE;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {quoted} (\"owningId\" {id} NOT NULL, \
         \"relatedId\" {id} NOT NULL, PRIMARY KEY (\"owningId\", \"relatedId\")){}; \
         CREATE INDEX IF NOT EXISTS {} ON {quoted} (\"relatedId\")",
        D::JOIN_TABLE_OPTIONS,
        quote_index::<D>(&format!("{table}$related")),
        quoted = quote_ident(&table),
    );
    changes.created.push(table);
    sql
}

/// Creates one `schema.indexes` entry (`{field: 1 | -1, "$unique"?: true}`); `_id_` and
/// entries naming no column of the class give nothing.
fn create_index<D: DdlDialect>(
    schema: &ClassSchema,
    index_name: &str,
    spec: &Value,
) -> Option<String> {
    let columns = index_columns::<D>(schema, index_name, spec)?;
    let unique = spec.get(UNIQUE_INDEX_KEY) == Some(&Value::Bool(true));
    Some(format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {} ({columns})",
        if unique { "UNIQUE " } else { "" },
        quote_index::<D>(&schema_index(&schema.class_name, index_name)),
        quote_ident(&schema.class_name)
    ))
}

fn index_columns<D: DdlDialect>(
    schema: &ClassSchema,
    index_name: &str,
    spec: &Value,
) -> Option<String> {
    if index_name == "_id_" {
        return None;
    }
    let columns: Vec<String> = spec
        .as_object()?
        .iter()
        .filter(|(field, _)| field.as_str() != UNIQUE_INDEX_KEY)
        .map(|(field, direction)| {
            let descending = direction.as_f64() == Some(-1.0);
            // The default columns are never NULL; fields get the NULLS placement a find
            // orders them with (`Dialect::nulls_order`), so the index serves its ORDER BY.
            let nulls = if matches!(field.as_str(), "objectId" | "createdAt" | "updatedAt") {
                ""
            } else if field_columns(schema).any(|(name, _)| name == field) {
                D::nulls_order(descending)
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

/// Checks a schema update and returns the field changes it makes; nothing has run yet.
pub(crate) fn check_update<'s, D: DdlDialect>(
    before: &'s ClassSchema,
    after: &'s ClassSchema,
) -> StoreResult<FieldChanges<'s>> {
    if before.class_name != after.class_name {
        return Err(StoreError::Invalid(parlor_core::Error::invalid_query(
            "cannot rename a class",
        )));
    }
    check_column_count(after, D::MAX_COLUMNS)?;
    let fields = FieldChanges::between(before, after);
    D::check_names(&after.class_name, fields.added.iter().copied())?;
    Ok(fields)
}

/// The `DROP INDEX` of every schema index that the update changes or whose columns go:
/// first, since SQLite refuses to drop a column an index uses.
pub(crate) fn drop_changed_indexes<D: DdlDialect>(
    before: &ClassSchema,
    after: &ClassSchema,
    fields: &FieldChanges<'_>,
) -> Vec<String> {
    before
        .indexes
        .iter()
        .filter(|(index_name, spec)| {
            after.indexes.get(*index_name) != Some(spec) || fields.index_uses_removed(spec)
        })
        .map(|(index_name, _)| {
            format!(
                "DROP INDEX IF EXISTS {}",
                quote_index::<D>(&schema_index(&before.class_name, index_name))
            )
        })
        .collect()
}

/// The statements removing field `name` (its join table or its column); the join table goes
/// into `changes`. Whether it had a column is [`D::column_type`](DdlDialect::column_type).
pub(crate) fn remove_field<D: DdlDialect>(
    class_name: &str,
    name: &str,
    field_type: &FieldType,
    changes: &mut TableChanges,
) -> Vec<String> {
    match field_type {
        FieldType::Relation(_) => {
            let table = join_table(name, class_name);
            let sql = drop_table(&table);
            changes.dropped.push(table);
            vec![sql]
        }
        field_type if D::column_type(field_type).is_some() => {
            let mut statements = D::before_drop_column(class_name, name);
            statements.push(D::drop_column(&quote_ident(class_name), &quote_ident(name)));
            statements
        }
        _ => Vec::new(),
    }
}

/// The statements adding the update's new fields (columns, then their indexes and join
/// tables) and (re)creating the schema indexes it changes; new join tables go into
/// `changes`.
pub(crate) fn add_fields<D: DdlDialect>(
    before: &ClassSchema,
    after: &ClassSchema,
    fields: &FieldChanges<'_>,
    changes: &mut TableChanges,
) -> Vec<String> {
    let class_name = &after.class_name;
    let clauses: Vec<String> = fields
        .added
        .iter()
        .filter_map(|(name, field_type)| {
            D::column_type(field_type)
                .map(|column_type| format!("ADD COLUMN {} {column_type}", quote_ident(name)))
        })
        .collect();
    let mut statements = if clauses.is_empty() {
        Vec::new()
    } else {
        D::add_columns(&quote_ident(class_name), clauses)
    };
    for (name, field_type) in &fields.added {
        statements.extend(field_extras::<D>(class_name, name, field_type, changes));
    }
    for (index_name, spec) in &after.indexes {
        if before.indexes.get(index_name) != Some(spec) || fields.index_uses_removed(spec) {
            statements.extend(create_index::<D>(after, index_name, spec));
        }
    }
    statements
}

/// `DROP TABLE IF EXISTS` of `table`.
pub(crate) fn drop_table(table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", quote_ident(table))
}

/// The statements dropping a class's join tables and then its table, all going into
/// `changes`.
pub(crate) fn drop_class(
    class_name: &str,
    join_tables: Vec<String>,
    changes: &mut TableChanges,
) -> Vec<String> {
    let mut statements: Vec<String> = join_tables.iter().map(|table| drop_table(table)).collect();
    statements.push(drop_table(class_name));
    changes.dropped.extend(join_tables);
    changes.dropped.push(class_name.to_owned());
    statements
}

/// The statements emptying a class's join tables and, when it exists, its table.
pub(crate) fn purge_class(
    class_name: &str,
    join_tables: &[String],
    class_table_exists: bool,
) -> Vec<String> {
    let class_table = class_table_exists.then_some(class_name);
    join_tables
        .iter()
        .map(String::as_str)
        .chain(class_table)
        .map(|table| format!("DELETE FROM {}", quote_ident(table)))
        .collect()
}

/// The join tables owned by `class_name` (`_Join:<field>:<class_name>`) among `tables`.
pub(crate) fn join_tables_of(tables: Vec<String>, class_name: &str) -> Vec<String> {
    let suffix = format!(":{class_name}");
    tables
        .into_iter()
        .filter(|name| {
            name.strip_prefix("_Join:")
                .and_then(|rest| rest.strip_suffix(&suffix))
                .is_some_and(|field| !field.contains(':'))
        })
        .collect()
}

/// The schemas stored as JSON text in `_SCHEMA`.
pub(crate) fn parse_schemas(texts: &[String]) -> StoreResult<Vec<ClassSchema>> {
    texts
        .iter()
        .map(|text| {
            let json: Value = serde_json::from_str(text)
                .map_err(|error| StoreError::Database(Box::new(error)))?;
            ClassSchema::from_json(&json).map_err(StoreError::Invalid)
        })
        .collect()
}
