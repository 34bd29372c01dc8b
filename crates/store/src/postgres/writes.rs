//! One [`Write`] executed inside a PostgreSQL transaction.
//!
//! Updates and deletes first read the row `FOR UPDATE` with the guard in the WHERE clause:
//! the row stays locked until the transaction ends, so a concurrent update of the same
//! object waits, then reads the state this one committed (PostgreSQL re-checks the WHERE on
//! it), and increments and array ops compose. The ops themselves are applied in Rust
//! (`parlor_core::ops`), as in SQLite, so both backends compute the same results.

use std::collections::BTreeSet;

use parlor_core::Error;
use parlor_core::object::{Acl, Object};
use parlor_core::ops::{self, FieldOp, FieldUpdate};
use parlor_core::query::Filter;
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::Value;
use sqlx_postgres::PgConnection;

use crate::error::{StoreError, StoreResult};
use crate::layout::{
    DEFAULT_COLUMNS, NULLS_COLUMN, add_relation_markers, field_columns, is_default_field,
    is_untyped_null_write, join_table,
};
use crate::postgres::ddl::{TableChanges, ensure_join_table};
use crate::postgres::rows::{PgBind, PgSql, encode_acl, encode_nulls, encode_value};
use crate::postgres::{execute, select, select_objects};
use crate::sql::quote_ident;
use crate::{Write, WriteOutcome};

/// Which tables exist, for guards with subqueries and for join tables.
pub(crate) type TableExists<'a> = &'a (dyn Fn(&str) -> bool + Sync);

pub(crate) async fn apply(
    conn: &mut PgConnection,
    write: &Write,
    table_exists: TableExists<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    match write {
        Write::Create {
            schema,
            object,
            relations,
        } => create(conn, schema, object, relations, table_exists, changes).await,
        Write::Update {
            schema,
            object_id,
            guard,
            updates,
            updated_at,
        } => {
            let update = Update {
                schema,
                object_id,
                guard,
                updates,
                updated_at,
            };
            update.apply(conn, table_exists, changes).await
        }
        Write::Delete {
            schema,
            object_id,
            guard,
        } => delete(conn, schema, object_id, guard, table_exists).await,
    }
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(Error::invalid_key_name(message))
}

/// The `INSERT` of a new object.
pub(crate) fn insert_statement(schema: &ClassSchema, object: &Object) -> StoreResult<PgSql> {
    let mut columns: Vec<&str> = DEFAULT_COLUMNS.to_vec();
    let (readers, writers) = encode_acl(object.acl.as_ref());
    let mut values = vec![
        PgBind::Text(object.object_id.clone()),
        PgBind::Text(object.created_at.clone()),
        PgBind::Text(object.updated_at.clone()),
        readers,
        writers,
        encode_nulls(schema, &object.fields),
    ];
    for (name, value) in &object.fields {
        if is_default_field(name) {
            continue;
        }
        match schema.field_type(name) {
            Some(FieldType::Relation(_)) => continue,
            // An explicit null lives in `_nulls` alone, whether the schema knows the field
            // or not (`layout::explicit_nulls`).
            Some(_) | None if value.is_null() => continue,
            Some(field_type) => {
                columns.push(name);
                values.push(encode_value(name, field_type, value)?);
            }
            None => {
                return Err(invalid(format!(
                    "unknown field {name} in {}",
                    schema.class_name
                )));
            }
        }
    }
    let mut out = PgSql::new();
    out.push("INSERT INTO ");
    out.ident(&schema.class_name);
    out.push(" (");
    out.push(
        &columns
            .iter()
            .map(|column| quote_ident(column))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push(") VALUES (");
    out.param_list(values);
    out.push(")");
    Ok(out)
}

/// A create's outcome: the object as reads return it.
pub(crate) fn created(schema: &ClassSchema, object: &Object) -> WriteOutcome {
    let mut created = object.clone();
    add_relation_markers(schema, &mut created.fields);
    WriteOutcome::Created(created)
}

async fn create(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object: &Object,
    relations: &[FieldUpdate],
    table_exists: TableExists<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    execute(conn, &insert_statement(schema, object)?).await?;
    for relation in relations {
        apply_relation(
            conn,
            schema,
            &object.object_id,
            relation,
            table_exists,
            changes,
        )
        .await?;
    }
    Ok(created(schema, object))
}

/// Inserts or deletes the join rows of a relation op; other ops are refused.
async fn apply_relation(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object_id: &str,
    update: &FieldUpdate,
    table_exists: TableExists<'_>,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let FieldOp::Relation { add, remove, .. } = &update.op else {
        return Err(invalid(format!("{} is not a relation op", update.field)));
    };
    if !matches!(
        schema.field_type(&update.field),
        Some(FieldType::Relation(_))
    ) {
        return Err(invalid(format!(
            "{} is not a relation of {}",
            update.field, schema.class_name
        )));
    }
    let table = join_table(&update.field, &schema.class_name);
    if !table_exists(&table) {
        ensure_join_table(conn, &update.field, &schema.class_name, changes).await?;
    }
    if !add.is_empty() {
        let mut out = PgSql::new();
        out.push("INSERT INTO ");
        out.ident(&table);
        out.push(" (\"owningId\", \"relatedId\") SELECT ");
        out.text(object_id);
        out.push(", unnest(");
        out.param(PgBind::TextArray(add.clone()));
        out.push(") ON CONFLICT DO NOTHING");
        execute(conn, &out).await?;
    }
    if !remove.is_empty() {
        let mut out = PgSql::new();
        out.push("DELETE FROM ");
        out.ident(&table);
        out.push(" WHERE \"owningId\" = ");
        out.text(object_id);
        out.push(" AND \"relatedId\" = ANY(");
        out.param(PgBind::TextArray(remove.clone()));
        out.push(")");
        execute(conn, &out).await?;
    }
    Ok(())
}

/// The object with this id if it passes `guard`, its row locked; else `ObjectNotFound`.
async fn current(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: TableExists<'_>,
) -> StoreResult<Object> {
    if !table_exists(&schema.class_name) {
        return Err(StoreError::ObjectNotFound);
    }
    let (out, projection) = select::by_id_for_update(schema, object_id, guard, table_exists)?;
    select_objects(conn, &out, &projection)
        .await?
        .pop()
        .ok_or(StoreError::ObjectNotFound)
}

/// The fields of `Write::Update`.
struct Update<'w> {
    schema: &'w ClassSchema,
    object_id: &'w str,
    guard: &'w Filter,
    updates: &'w [FieldUpdate],
    updated_at: &'w str,
}

impl Update<'_> {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        table_exists: TableExists<'_>,
        changes: &mut TableChanges,
    ) -> StoreResult<WriteOutcome> {
        let schema = self.schema;
        let before = current(conn, schema, self.object_id, self.guard, table_exists).await?;
        let mut after = before.clone();
        after.updated_at = self.updated_at.to_owned();
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        let mut acl_touched = false;
        for update in self.updates {
            if let FieldOp::Relation { .. } = update.op {
                apply_relation(conn, schema, self.object_id, update, table_exists, changes).await?;
                continue;
            }
            if update.field == "ACL" {
                after.acl = match &update.op {
                    FieldOp::Set(Value::Null) | FieldOp::Delete => None,
                    FieldOp::Set(acl) => Some(Acl::from_json(acl)?),
                    _ => return Err(invalid("ACL can only be set or deleted".to_owned())),
                };
                acl_touched = true;
                continue;
            }
            match schema.field_type(&update.field) {
                // `_nulls` alone records it.
                None if is_untyped_null_write(schema, update) => {}
                Some(FieldType::Relation(_) | FieldType::Acl) | None => {
                    return Err(invalid(format!(
                        "cannot write {} in {}",
                        update.field, schema.class_name
                    )));
                }
                Some(_) if is_default_field(&update.field) => {
                    return Err(invalid(format!("{} cannot be written", update.field)));
                }
                Some(_) => {}
            }
            // `Some(Null)` (a Set of null) keeps the field as an explicit null; `None`
            // (Delete) unsets it.
            let new_value =
                ops::apply_at_path(after.fields.get(&update.field), &update.path, &update.op)?;
            match new_value {
                Some(value) => after.fields.insert(update.field.clone(), value),
                None => after.fields.remove(&update.field),
            };
            touched.insert(&update.field);
        }

        let mut out = PgSql::new();
        out.push("UPDATE ");
        out.ident(&schema.class_name);
        out.push(" SET \"updatedAt\" = ");
        out.text(self.updated_at);
        if acl_touched {
            let (readers, writers) = encode_acl(after.acl.as_ref());
            out.push(", \"_rperm\" = ");
            out.param(readers);
            out.push(", \"_wperm\" = ");
            out.param(writers);
        }
        if !touched.is_empty() {
            out.push(", ");
            out.ident(NULLS_COLUMN);
            out.push(" = ");
            out.param(encode_nulls(schema, &after.fields));
        }
        for (name, field_type) in field_columns(schema) {
            if !touched.contains(name) {
                continue;
            }
            let value = after.fields.get(name).unwrap_or(&Value::Null);
            out.push(", ");
            out.ident(name);
            out.push(" = ");
            out.param(encode_value(name, field_type, value)?);
        }
        out.push(" WHERE \"objectId\" = ");
        out.text(self.object_id);
        execute(conn, &out).await?;
        Ok(WriteOutcome::Updated { before, after })
    }
}

async fn delete(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: TableExists<'_>,
) -> StoreResult<WriteOutcome> {
    let before = current(conn, schema, object_id, guard, table_exists).await?;
    let mut out = PgSql::new();
    out.push("DELETE FROM ");
    out.ident(&schema.class_name);
    out.push(" WHERE \"objectId\" = ");
    out.text(object_id);
    execute(conn, &out).await?;
    for (name, field) in &schema.fields {
        let FieldType::Relation(_) = field.field_type else {
            continue;
        };
        let table = join_table(name, &schema.class_name);
        if !table_exists(&table) {
            continue;
        }
        let mut out = PgSql::new();
        out.push("DELETE FROM ");
        out.ident(&table);
        out.push(" WHERE \"owningId\" = ");
        out.text(object_id);
        execute(conn, &out).await?;
    }
    Ok(WriteOutcome::Deleted(before))
}
