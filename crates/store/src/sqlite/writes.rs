//! One [`Write`] executed on the writer's connection, inside the writer's transaction.
//!
//! Updates read the current row inside the transaction and apply the field ops to it
//! (`parlor_core::ops`), so concurrent increments and array ops compose; the writer runs
//! one job at a time, so the read and the write cannot interleave with another job.

use std::collections::BTreeSet;

use parlor_core::Error;
use parlor_core::object::{Acl, Object};
use parlor_core::ops::{self, FieldOp, FieldUpdate};
use parlor_core::query::Filter;
use parlor_core::schema::{ClassSchema, FieldType};
use rusqlite::Connection;
use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::layout::is_untyped_null_write;
use crate::sql::{Bind, SqlBuilder, quote_ident};
use crate::sqlite::ddl::{TableChanges, ensure_join_table};
use crate::sqlite::rows::{
    DEFAULT_COLUMNS, NULLS_COLUMN, encode_acl, encode_nulls, encode_value, field_columns,
    is_default_field,
};
use crate::sqlite::translate::join_table;
use crate::sqlite::{execute as run, select, select_objects};
use crate::{Write, WriteOutcome};

/// What the writes of a job may consult: which tables exist (for guards with subqueries).
pub(crate) struct WriteContext<'a> {
    pub(crate) table_exists: &'a (dyn Fn(&str) -> bool + Sync),
}

pub(crate) fn execute(
    conn: &Connection,
    write: &Write,
    context: &WriteContext<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    match write {
        Write::Create {
            schema,
            object,
            relations,
        } => create(conn, schema, object, relations, context, changes),
        Write::Update {
            schema,
            object_id,
            guard,
            updates,
            updated_at,
        } => update(
            conn, schema, object_id, guard, updates, updated_at, context, changes,
        ),
        Write::Delete {
            schema,
            object_id,
            guard,
        } => delete(conn, schema, object_id, guard, context),
    }
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(Error::invalid_key_name(message))
}

/// Maps a unique-index (or primary-key) violation to [`StoreError::DuplicateValue`].
fn on_duplicate(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            StoreError::DuplicateValue
        }
        _ => StoreError::from(error),
    }
}

fn create(
    conn: &Connection,
    schema: &ClassSchema,
    object: &Object,
    relations: &[FieldUpdate],
    context: &WriteContext<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    let mut columns: Vec<&str> = DEFAULT_COLUMNS.to_vec();
    let (readers, writers) = encode_acl(object.acl.as_ref());
    let mut values = vec![
        Bind::Text(object.object_id.clone()),
        Bind::Text(object.created_at.clone()),
        Bind::Text(object.updated_at.clone()),
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
    let mut out = SqlBuilder::new();
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
    run(conn, &out).map_err(on_duplicate)?;
    for relation in relations {
        apply_relation(conn, schema, &object.object_id, relation, context, changes)?;
    }
    let mut created = object.clone();
    add_relation_markers(schema, &mut created);
    Ok(WriteOutcome::Created(created))
}

/// Reads include a `{"__type":"Relation"}` marker per relation field; so do write results.
fn add_relation_markers(schema: &ClassSchema, object: &mut Object) {
    crate::layout::add_relation_markers(schema, &mut object.fields);
}

/// Inserts or deletes the join rows of a relation op; other ops are refused.
fn apply_relation(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    update: &FieldUpdate,
    context: &WriteContext<'_>,
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
    if !(context.table_exists)(&table) {
        ensure_join_table(conn, &update.field, &schema.class_name, changes)?;
    }
    let table = quote_ident(&table);
    if !add.is_empty() {
        let mut insert = conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table} (\"owningId\", \"relatedId\") VALUES (?, ?)"
        ))?;
        for related_id in add {
            insert.execute([object_id, related_id.as_str()])?;
        }
    }
    if !remove.is_empty() {
        let mut delete = conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE \"owningId\" = ? AND \"relatedId\" = ?"
        ))?;
        for related_id in remove {
            delete.execute([object_id, related_id.as_str()])?;
        }
    }
    Ok(())
}

/// The object with this id if it passes `guard`, else `ObjectNotFound`.
fn current(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    context: &WriteContext<'_>,
) -> StoreResult<Object> {
    if !(context.table_exists)(&schema.class_name) {
        return Err(StoreError::ObjectNotFound);
    }
    let (out, projection) = select::by_id(schema, object_id, guard, context.table_exists);
    select_objects(conn, &out, &projection)?
        .pop()
        .ok_or(StoreError::ObjectNotFound)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the fields of Write::Update, plus the connection"
)]
fn update(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    updates: &[FieldUpdate],
    updated_at: &str,
    context: &WriteContext<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    let before = current(conn, schema, object_id, guard, context)?;
    let mut after = before.clone();
    after.updated_at = updated_at.to_owned();
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut acl_touched = false;
    for update in updates {
        if let FieldOp::Relation { .. } = update.op {
            apply_relation(conn, schema, object_id, update, context, changes)?;
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
        // `Some(Null)` (a Set of null) keeps the field as an explicit null; `None` (Delete)
        // unsets it.
        let new_value =
            ops::apply_at_path(after.fields.get(&update.field), &update.path, &update.op)?;
        match new_value {
            Some(value) => after.fields.insert(update.field.clone(), value),
            None => after.fields.remove(&update.field),
        };
        touched.insert(&update.field);
    }

    let mut out = SqlBuilder::new();
    out.push("UPDATE ");
    out.ident(&schema.class_name);
    out.push(" SET \"updatedAt\" = ");
    out.text(updated_at);
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
    out.text(object_id);
    run(conn, &out).map_err(on_duplicate)?;
    Ok(WriteOutcome::Updated { before, after })
}

fn delete(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    context: &WriteContext<'_>,
) -> StoreResult<WriteOutcome> {
    let before = current(conn, schema, object_id, guard, context)?;
    conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE \"objectId\" = ?",
        quote_ident(&schema.class_name)
    ))?
    .execute([object_id])?;
    for (name, field) in &schema.fields {
        let FieldType::Relation(_) = field.field_type else {
            continue;
        };
        let table = join_table(name, &schema.class_name);
        if !(context.table_exists)(&table) {
            continue;
        }
        conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE \"owningId\" = ?",
            quote_ident(&table)
        ))?
        .execute([object_id])?;
    }
    Ok(WriteOutcome::Deleted(before))
}
