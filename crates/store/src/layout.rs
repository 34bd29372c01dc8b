//! The storage layout every SQL backend shares, whatever its dialect.
//!
//! A class is a table named after it with the default columns ([`DEFAULT_COLUMNS`]) and a
//! column per field that has one ([`field_columns`]); a relation is a join table
//! ([`join_table`]); explicit nulls are listed in [`NULLS_COLUMN`]; some system fields get
//! unique indexes ([`SYSTEM_UNIQUE`]). How a Parse value maps to a storage category
//! ([`Stored`]) is decided here too, so every backend refuses the same mismatches with the
//! same errors; each backend then picks its column types and encodings.

use std::collections::BTreeSet;

use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::{Error, value};
use serde_json::{Map, Value};

use crate::error::{StoreError, StoreResult};

/// The column listing the top-level fields stored as an explicit `null`.
pub(crate) const NULLS_COLUMN: &str = "_nulls";

/// The columns every class table has, before its field columns, in select order.
pub(crate) const DEFAULT_COLUMNS: [&str; 6] = [
    "objectId",
    "createdAt",
    "updatedAt",
    "_rperm",
    "_wperm",
    NULLS_COLUMN,
];

/// Fields that get a unique index in system classes, so that concurrent sign-ups cannot
/// both take a name.
pub(crate) const SYSTEM_UNIQUE: [(&str, &str); 4] = [
    ("_User", "username"),
    ("_User", "email"),
    ("_Role", "name"),
    ("_Session", "sessionToken"),
];

/// System unique fields that Parse treats as case-insensitive (ASCII case folding), so
/// `Bob` and `bob` cannot both sign up, and a `Cond::EqIgnoreCase` lookup on them is an
/// index search.
pub(crate) const CASE_INSENSITIVE_UNIQUE: [(&str, &str); 2] =
    [("_User", "username"), ("_User", "email")];

/// The key of a `schema.indexes` entry that makes the index unique (`$` cannot start a field
/// name, so it never collides with one).
pub const UNIQUE_INDEX_KEY: &str = "$unique";

/// Whether a field of this type has a column (Relation lives in a join table, ACL in
/// `_rperm`/`_wperm`).
pub(crate) fn has_column(field_type: &FieldType) -> bool {
    !matches!(field_type, FieldType::Relation(_) | FieldType::Acl)
}

/// Whether a column of this type holds JSON (so dotted paths can reach inside it).
pub(crate) fn is_json_column(field_type: &FieldType) -> bool {
    matches!(
        field_type,
        FieldType::Object
            | FieldType::Array
            | FieldType::File
            | FieldType::GeoPoint
            | FieldType::Bytes
            | FieldType::Polygon
    )
}

/// Whether `name` is stored in one of the default columns rather than a field column.
pub(crate) fn is_default_field(name: &str) -> bool {
    matches!(name, "objectId" | "createdAt" | "updatedAt" | "ACL")
}

/// The field columns of a class: every schema field with a column, in schema order.
pub(crate) fn field_columns(schema: &ClassSchema) -> impl Iterator<Item = (&str, &FieldType)> {
    schema
        .fields
        .iter()
        .filter(|(name, field)| !is_default_field(name) && has_column(&field.field_type))
        .map(|(name, field)| (name.as_str(), &field.field_type))
}

/// Refuses, before any statement runs, a class that would need more columns than the
/// backend's tables hold (`max_columns`: SQLite 2,000, PostgreSQL 1,600): the default
/// columns and one per field with a column. Adding columns one by one until the database
/// says no would hold the writer for seconds first. The error is the client's (`255`).
pub(crate) fn check_column_count(schema: &ClassSchema, max_columns: usize) -> StoreResult<()> {
    let columns = DEFAULT_COLUMNS.len() + field_columns(schema).count();
    if columns > max_columns {
        return Err(StoreError::Invalid(too_many_columns(max_columns)));
    }
    Ok(())
}

/// The error of a class past its backend's column limit.
pub(crate) fn too_many_columns(max_columns: usize) -> Error {
    Error::new(
        parlor_core::Code::InvalidSchemaOperation,
        format!(
            "Too many fields: the database holds at most {max_columns} columns per class \
             ({} of them for the default fields).",
            DEFAULT_COLUMNS.len()
        ),
    )
}

/// The name of the join table of relation `field` on `class_name`.
pub(crate) fn join_table(field: &str, class_name: &str) -> String {
    format!("_Join:{field}:{class_name}")
}

/// The index on a pointer field, `(field, createdAt, objectId)`.
pub(crate) fn pointer_index(class_name: &str, field: &str) -> String {
    format!("{class_name}$ptr${field}")
}

/// The latitude index of a GeoPoint field (SQLite), which geo queries narrow rows with.
pub(crate) fn geo_index(class_name: &str, field: &str) -> String {
    format!("{class_name}$geo${field}")
}

/// The unique index of a [`SYSTEM_UNIQUE`] field.
pub(crate) fn unique_index(class_name: &str, field: &str) -> String {
    format!("{class_name}$unique${field}")
}

/// The index of a `schema.indexes` entry.
pub(crate) fn schema_index(class_name: &str, index_name: &str) -> String {
    format!("{class_name}$idx${index_name}")
}

/// The `{"__type":"Relation"}` marker reads and write results carry for a relation field.
pub(crate) fn relation_marker(target: &str) -> Value {
    serde_json::json!({"__type": "Relation", "className": target})
}

/// Adds the relation markers of `schema` to an object's fields.
pub(crate) fn add_relation_markers(schema: &ClassSchema, fields: &mut Map<String, Value>) {
    for (name, field) in &schema.fields {
        if let FieldType::Relation(target) = &field.field_type {
            fields.insert(name.clone(), relation_marker(target));
        }
    }
}

/// The fields whose columns an `update_class` from `before` to `after` removes and adds:
/// a field whose type changed is both.
pub(crate) struct FieldChanges<'s> {
    pub(crate) removed: Vec<(&'s String, &'s FieldType)>,
    pub(crate) added: Vec<(&'s String, &'s FieldType)>,
}

impl<'s> FieldChanges<'s> {
    pub(crate) fn between(before: &'s ClassSchema, after: &'s ClassSchema) -> FieldChanges<'s> {
        let changed = |from: &'s ClassSchema, to: &'s ClassSchema| {
            from.fields
                .iter()
                .filter(|(name, field)| {
                    !is_default_field(name) && to.field_type(name) != Some(&field.field_type)
                })
                .map(|(name, field)| (name, &field.field_type))
                .collect()
        };
        FieldChanges {
            removed: changed(before, after),
            added: changed(after, before),
        }
    }

    /// Whether a `schema.indexes` entry names a removed field.
    pub(crate) fn index_uses_removed(&self, spec: &Value) -> bool {
        spec.as_object().is_some_and(|spec| {
            self.removed
                .iter()
                .any(|(name, _)| spec.contains_key(name.as_str()))
        })
    }
}

/// A field value in the storage category its schema type gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stored {
    /// SQL NULL (absent, or an explicit null, which [`explicit_nulls`] records).
    Null,
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
    /// Objects, arrays and the typed values (File, GeoPoint, Bytes, Polygon), dates inside
    /// them normalised.
    Json(Value),
}

/// How `value` is stored in a column of `field_type`, or the error a mismatch is.
pub(crate) fn stored_value(
    name: &str,
    field_type: &FieldType,
    value: &Value,
) -> StoreResult<Stored> {
    if value.is_null() {
        return Ok(Stored::Null);
    }
    let mismatch = || {
        StoreError::Invalid(Error::incorrect_type(format!(
            "schema mismatch for {name}; expected {}",
            field_type.describe()
        )))
    };
    let stored = match field_type {
        FieldType::String => Stored::Text(value.as_str().ok_or_else(mismatch)?.to_owned()),
        FieldType::Number => match value {
            Value::Number(number) => Stored::Number(number.clone()),
            _ => return Err(mismatch()),
        },
        FieldType::Boolean => Stored::Bool(value.as_bool().ok_or_else(mismatch)?),
        FieldType::Date => Stored::Text(value::as_date(value).ok_or_else(mismatch)?),
        FieldType::Pointer(target) => match value::as_pointer(value) {
            Some((class_name, object_id)) if class_name == target => {
                Stored::Text(object_id.to_owned())
            }
            _ => return Err(mismatch()),
        },
        FieldType::Array => match value {
            Value::Array(_) => Stored::Json(normalize_dates(value)),
            _ => return Err(mismatch()),
        },
        FieldType::Object => match value {
            Value::Object(_) => Stored::Json(normalize_dates(value)),
            _ => return Err(mismatch()),
        },
        FieldType::File | FieldType::GeoPoint | FieldType::Bytes | FieldType::Polygon => {
            match value {
                Value::Object(_) => Stored::Json(value.clone()),
                _ => return Err(mismatch()),
            }
        }
        FieldType::Relation(_) | FieldType::Acl => return Err(mismatch()),
    };
    Ok(stored)
}

/// `value` with every nested `{"__type":"Date"}` in normalised ISO form, as Date columns
/// are: queries compare dates as text, and the matcher compares them normalised.
pub(crate) fn normalize_dates(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(normalize_dates).collect()),
        Value::Object(map) => match value::as_date(value) {
            Some(iso) => value::date_value(&iso),
            _ => Value::Object(
                map.iter()
                    .map(|(key, item)| (key.clone(), normalize_dates(item)))
                    .collect(),
            ),
        },
        _ => value.clone(),
    }
}

/// The fields of `fields` that are explicitly null, sorted: those with a column, and those
/// the schema does not know at all (a null says nothing of a type, so it adds no field and
/// no column: [`NULLS_COLUMN`] alone keeps it, as MongoDB keeps `{"f": null}`, so that it
/// reads back and `$exists` finds it).
pub(crate) fn explicit_nulls<'f>(
    schema: &ClassSchema,
    fields: &'f Map<String, Value>,
) -> BTreeSet<&'f str> {
    fields
        .iter()
        .filter(|(name, value)| {
            value.is_null()
                && match schema.field_type(name) {
                    Some(field_type) => !is_default_field(name) && has_column(field_type),
                    None => true,
                }
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The explicit nulls a read returns for fields the schema does not know ([`explicit_nulls`]):
/// the names in a row's [`NULLS_COLUMN`] that are no field of the class, among `keys`.
#[derive(Debug, Clone)]
pub(crate) struct UntypedNulls {
    /// The class's fields (a listed name among them is read from its column instead).
    known: BTreeSet<String>,
    keys: Option<Vec<String>>,
}

impl UntypedNulls {
    pub(crate) fn new(schema: &ClassSchema, keys: Option<&[String]>) -> UntypedNulls {
        UntypedNulls {
            known: schema.fields.keys().cloned().collect(),
            keys: keys.map(<[String]>::to_vec),
        }
    }

    /// The untyped nulls among `listed` (a row's [`NULLS_COLUMN`]).
    pub(crate) fn names<'a, S: AsRef<str>>(
        &'a self,
        listed: &'a [S],
    ) -> impl Iterator<Item = &'a str> {
        listed.iter().map(AsRef::as_ref).filter(|name| {
            let wanted = self
                .keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|key| key == name));
            wanted && !self.known.contains(*name)
        })
    }

    /// Adds to `fields` the untyped nulls among `listed`.
    pub(crate) fn add<S: AsRef<str>>(&self, listed: &[S], fields: &mut Map<String, Value>) {
        for name in self.names(listed) {
            fields.insert(name.to_owned(), Value::Null);
        }
    }
}

/// Whether an update of `field` is the write of an explicit null (or its removal) on a field
/// the schema does not know, which [`NULLS_COLUMN`] alone records.
pub(crate) fn is_untyped_null_write(schema: &ClassSchema, update: &FieldUpdate) -> bool {
    schema.field_type(&update.field).is_none()
        && update.path.is_empty()
        && matches!(update.op, FieldOp::Set(Value::Null) | FieldOp::Delete)
}
