//! The statements of a [`Write`](crate::Write), built once over a [`Dialect`] for every
//! backend: the `INSERT` of a create, the new state and `UPDATE` of an update (field ops
//! applied in Rust, `parlor_core::ops`, so both backends compute the same results), the
//! `DELETE`s of a delete, and the checks of a relation op. Each backend's `writes` runs
//! them in its own transaction and writes the join rows of relation ops its own way.

use std::collections::BTreeSet;

use parlor_core::Error;
use parlor_core::object::{Acl, Object};
use parlor_core::ops::{self, FieldOp, FieldUpdate};
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::Value;

use crate::WriteOutcome;
use crate::error::{StoreError, StoreResult};
use crate::layout::{
    DEFAULT_COLUMNS, NULLS_COLUMN, add_relation_markers, field_columns, is_default_field,
    is_untyped_null_write, join_table,
};
use crate::sql::{BindValue, SqlBuilder, quote_ident};
use crate::translate::Dialect;

/// A write the store refuses as malformed (the operation layer validates before, so this
/// is a last line of defence).
pub(crate) fn invalid(message: String) -> StoreError {
    StoreError::Invalid(Error::invalid_key_name(message))
}

/// The `INSERT` of a new object (relation fields live in join tables, explicit nulls in
/// `_nulls` alone).
pub(crate) fn insert<D: Dialect>(
    schema: &ClassSchema,
    object: &Object,
) -> StoreResult<SqlBuilder<D::Bind>> {
    let (columns, values) = row::<D>(schema, object)?;
    Ok(insert_rows::<D>(&schema.class_name, &columns, vec![values]))
}

/// The columns a new object's row fills and their values, in the same order.
pub(crate) fn row<'o, D: Dialect>(
    schema: &ClassSchema,
    object: &'o Object,
) -> StoreResult<(Vec<&'o str>, Vec<D::Bind>)> {
    let mut columns: Vec<&str> = DEFAULT_COLUMNS.to_vec();
    let (readers, writers) = D::encode_acl(object.acl.as_ref());
    let mut values = vec![
        D::Bind::text(object.object_id.clone()),
        D::Bind::text(object.created_at.clone()),
        D::Bind::text(object.updated_at.clone()),
        readers,
        writers,
        D::encode_nulls(schema, &object.fields),
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
                values.push(D::encode_value(name, field_type, value)?);
            }
            None => {
                return Err(invalid(format!(
                    "unknown field {name} in {}",
                    schema.class_name
                )));
            }
        }
    }
    Ok((columns, values))
}

/// One `INSERT` of `rows` into `class_name`'s table, each row's values in `columns` order.
pub(crate) fn insert_rows<D: Dialect>(
    class_name: &str,
    columns: &[&str],
    rows: Vec<Vec<D::Bind>>,
) -> SqlBuilder<D::Bind> {
    let mut out = SqlBuilder::new();
    out.push("INSERT INTO ");
    out.ident(class_name);
    out.push(" (");
    out.push(
        &columns
            .iter()
            .map(|column| quote_ident(column))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push(") VALUES ");
    for (index, values) in rows.into_iter().enumerate() {
        if index > 0 {
            out.push(", ");
        }
        out.push("(");
        out.param_list(values);
        out.push(")");
    }
    out
}

/// A create's outcome: the object as reads return it, with a `{"__type":"Relation"}`
/// marker per relation field.
pub(crate) fn created(schema: &ClassSchema, object: &Object) -> WriteOutcome {
    let mut created = object.clone();
    add_relation_markers(schema, &mut created.fields);
    WriteOutcome::Created(created)
}

/// A relation op, checked: the join table it writes and the ids it adds and removes.
pub(crate) struct RelationChange<'u> {
    pub(crate) table: String,
    pub(crate) add: &'u [String],
    pub(crate) remove: &'u [String],
}

/// Checks that `update` is a relation op on a Relation field of `schema`.
pub(crate) fn relation_change<'u>(
    schema: &ClassSchema,
    update: &'u FieldUpdate,
) -> StoreResult<RelationChange<'u>> {
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
    Ok(RelationChange {
        table: join_table(&update.field, &schema.class_name),
        add,
        remove,
    })
}

/// An update worked out against the current state of the object.
pub(crate) struct UpdatePlan<'u, B> {
    /// The object as it will be after the update.
    pub(crate) after: Object,
    /// The relation ops, whose join rows the backend writes.
    pub(crate) relations: Vec<&'u FieldUpdate>,
    /// The `UPDATE` of the object's row.
    pub(crate) statement: SqlBuilder<B>,
}

/// Applies `updates` to `before` (read inside the transaction, so concurrent increments and
/// array ops compose) and writes the `UPDATE` of the columns they touched.
pub(crate) fn plan_update<'u, D: Dialect>(
    schema: &ClassSchema,
    before: &Object,
    updates: &'u [FieldUpdate],
    updated_at: &str,
) -> StoreResult<UpdatePlan<'u, D::Bind>> {
    let mut after = before.clone();
    after.updated_at = updated_at.to_owned();
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut acl_touched = false;
    let mut relations = Vec::new();
    for update in updates {
        if let FieldOp::Relation { .. } = update.op {
            relations.push(update);
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
        let (readers, writers) = D::encode_acl(after.acl.as_ref());
        out.push(", \"_rperm\" = ");
        out.param(readers);
        out.push(", \"_wperm\" = ");
        out.param(writers);
    }
    if !touched.is_empty() {
        out.push(", ");
        out.ident(NULLS_COLUMN);
        out.push(" = ");
        out.param(D::encode_nulls(schema, &after.fields));
    }
    for (name, field_type) in field_columns(schema) {
        if !touched.contains(name) {
            continue;
        }
        let value = after.fields.get(name).unwrap_or(&Value::Null);
        out.push(", ");
        out.ident(name);
        out.push(" = ");
        out.param(D::encode_value(name, field_type, value)?);
    }
    out.push(" WHERE \"objectId\" = ");
    out.text(&before.object_id);
    Ok(UpdatePlan {
        after,
        relations,
        statement: out,
    })
}

/// The `DELETE`s of an object: its row, then its rows in the join tables that exist.
pub(crate) fn delete_statements<B: BindValue>(
    schema: &ClassSchema,
    object_id: &str,
    table_exists: &dyn Fn(&str) -> bool,
) -> Vec<SqlBuilder<B>> {
    let mut out = SqlBuilder::new();
    out.push("DELETE FROM ");
    out.ident(&schema.class_name);
    out.push(" WHERE \"objectId\" = ");
    out.text(object_id);
    let mut statements = vec![out];
    for (name, field) in &schema.fields {
        let FieldType::Relation(_) = field.field_type else {
            continue;
        };
        let table = join_table(name, &schema.class_name);
        if !table_exists(&table) {
            continue;
        }
        let mut out = SqlBuilder::new();
        out.push("DELETE FROM ");
        out.ident(&table);
        out.push(" WHERE \"owningId\" = ");
        out.text(object_id);
        statements.push(out);
    }
    statements
}
