//! Objects ↔ rows: how each schema type is stored in its column and read back.
//!
//! The encoding is the contract the translator relies on: strings, numbers and booleans are
//! native SQL values, dates are normalised ISO text (which sorts as the instant), pointers
//! are the bare target id, and everything else is the canonical `serde_json` text of the
//! value (keys sorted), so that equality on JSON values is equality of text.
//!
//! A typed column cannot tell an explicit `null` from an absent field (both are SQL NULL), so
//! each class table also has [`NULLS_COLUMN`]: a JSON array of the top-level fields that are
//! explicitly null (SQL NULL when there are none). A null *inside* an Object or Array value
//! is part of that value's JSON text and needs no entry.

use std::collections::BTreeSet;

use parlor_core::object::{Acl, Object};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::{Error, value};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use crate::error::{StoreError, StoreResult};
use crate::sql::Bind;

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

/// The SQL declaration of a field's column; `None` for types without a column
/// (Relation lives in a join table, ACL in `_rperm`/`_wperm`).
pub(crate) fn column_decl(field_type: &FieldType) -> Option<&'static str> {
    match field_type {
        FieldType::Number => Some("NUMERIC"),
        FieldType::Boolean => Some("INTEGER"),
        FieldType::String
        | FieldType::Date
        | FieldType::Pointer(_)
        | FieldType::Object
        | FieldType::Array
        | FieldType::File
        | FieldType::GeoPoint
        | FieldType::Bytes
        | FieldType::Polygon => Some("TEXT"),
        FieldType::Relation(_) | FieldType::Acl => None,
    }
}

/// Whether a column of this type holds JSON text (so dotted paths can reach inside it).
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
        .filter(|(name, field)| !is_default_field(name) && column_decl(&field.field_type).is_some())
        .map(|(name, field)| (name.as_str(), &field.field_type))
}

/// Canonical JSON text: `serde_json` writes object keys sorted, so equal values give equal text.
pub(crate) fn canonical_json(value: &Value) -> String {
    value.to_string()
}

/// The bound value that stores `value` in a column of `field_type`.
/// `Null` stores SQL NULL; whether that is an explicit null is [`encode_nulls`]'s business.
pub(crate) fn encode_value(name: &str, field_type: &FieldType, value: &Value) -> StoreResult<Bind> {
    if value.is_null() {
        return Ok(Bind::Null);
    }
    let mismatch = || {
        StoreError::Invalid(Error::incorrect_type(format!(
            "schema mismatch for {name}; expected {}",
            field_type.describe()
        )))
    };
    let bind = match field_type {
        FieldType::String => Bind::Text(value.as_str().ok_or_else(mismatch)?.to_owned()),
        FieldType::Number => match value {
            Value::Number(number) => Bind::json_number(number),
            _ => return Err(mismatch()),
        },
        FieldType::Boolean => Bind::Integer(i64::from(value.as_bool().ok_or_else(mismatch)?)),
        FieldType::Date => Bind::Text(value::as_date(value).ok_or_else(mismatch)?),
        FieldType::Pointer(target) => match value::as_pointer(value) {
            Some((class_name, object_id)) if class_name == target => {
                Bind::Text(object_id.to_owned())
            }
            _ => return Err(mismatch()),
        },
        FieldType::Array => match value {
            Value::Array(_) => Bind::Text(canonical_json(&normalize_dates(value))),
            _ => return Err(mismatch()),
        },
        FieldType::Object => match value {
            Value::Object(_) => Bind::Text(canonical_json(&normalize_dates(value))),
            _ => return Err(mismatch()),
        },
        FieldType::File | FieldType::GeoPoint | FieldType::Bytes | FieldType::Polygon => {
            match value {
                Value::Object(_) => Bind::Text(canonical_json(value)),
                _ => return Err(mismatch()),
            }
        }
        FieldType::Relation(_) | FieldType::Acl => return Err(mismatch()),
    };
    Ok(bind)
}

/// `value` with every nested `{"__type":"Date"}` in normalised ISO form, as Date columns
/// are: queries compare dates as text, and the matcher compares them normalised.
fn normalize_dates(value: &Value) -> Value {
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

/// `_rperm` and `_wperm` for an ACL: JSON arrays of entries, or NULL when there is no ACL.
pub(crate) fn encode_acl(acl: Option<&Acl>) -> (Bind, Bind) {
    match acl {
        None => (Bind::Null, Bind::Null),
        Some(acl) => (
            Bind::Text(canonical_json(&Value::from(acl.readers()))),
            Bind::Text(canonical_json(&Value::from(acl.writers()))),
        ),
    }
}

/// [`NULLS_COLUMN`] for the fields of `fields` that are explicitly null and have a column.
pub(crate) fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> Bind {
    let names: BTreeSet<&str> = field_columns(schema)
        .map(|(name, _)| name)
        .filter(|name| fields.get(*name).is_some_and(Value::is_null))
        .collect();
    if names.is_empty() {
        Bind::Null
    } else {
        Bind::Text(canonical_json(&Value::from_iter(names)))
    }
}

/// What a select returns, in column order after the default columns.
pub(crate) struct Projection<'s> {
    /// Field columns selected, with their types.
    pub(crate) columns: Vec<(&'s str, &'s FieldType)>,
    /// Relation fields whose `{"__type":"Relation"}` marker is added to every object.
    pub(crate) relations: Vec<(&'s str, &'s str)>,
}

impl<'s> Projection<'s> {
    /// Every field, or only `keys` (plus the default fields) when given.
    pub(crate) fn new(schema: &'s ClassSchema, keys: Option<&[String]>) -> Projection<'s> {
        let wanted = |name: &str| keys.is_none_or(|keys| keys.iter().any(|key| key == name));
        let columns = field_columns(schema)
            .filter(|(name, _)| wanted(name))
            .collect();
        let relations = schema
            .fields
            .iter()
            .filter_map(|(name, field)| match &field.field_type {
                FieldType::Relation(target) if wanted(name) => {
                    Some((name.as_str(), target.as_str()))
                }
                _ => None,
            })
            .collect();
        Projection { columns, relations }
    }

    /// Decodes one row selected with this projection.
    pub(crate) fn decode(&self, row: &SqliteRow) -> StoreResult<Object> {
        let object_id: String = row.try_get(0)?;
        let created_at: Option<String> = row.try_get(1)?;
        let updated_at: Option<String> = row.try_get(2)?;
        let readers: Option<String> = row.try_get(3)?;
        let writers: Option<String> = row.try_get(4)?;
        let nulls: Option<String> = row.try_get(5)?;
        let acl = decode_acl(readers.as_deref(), writers.as_deref())?;
        let nulls: Vec<String> = match nulls {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
        };
        let mut fields = Map::new();
        for (index, (name, field_type)) in self.columns.iter().enumerate() {
            if let Some(value) = decode_column(row, DEFAULT_COLUMNS.len() + index, field_type)? {
                fields.insert((*name).to_owned(), value);
            } else if nulls.iter().any(|null| null == name) {
                fields.insert((*name).to_owned(), Value::Null);
            }
        }
        for (name, target) in &self.relations {
            fields.insert(
                (*name).to_owned(),
                serde_json::json!({"__type": "Relation", "className": target}),
            );
        }
        Ok(Object {
            object_id,
            created_at: created_at.unwrap_or_default(),
            updated_at: updated_at.unwrap_or_default(),
            acl,
            fields,
        })
    }
}

fn decode_acl(readers: Option<&str>, writers: Option<&str>) -> StoreResult<Option<Acl>> {
    if readers.is_none() && writers.is_none() {
        return Ok(None);
    }
    let parse = |text: Option<&str>| -> StoreResult<Vec<String>> {
        match text {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(text).map_err(corrupt),
        }
    };
    Ok(Some(Acl::from_perms(&parse(readers)?, &parse(writers)?)))
}

fn decode_column(
    row: &SqliteRow,
    index: usize,
    field_type: &FieldType,
) -> StoreResult<Option<Value>> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(None);
    }
    // NUMERIC columns keep integral values as INTEGER and the rest as REAL; the storage
    // class decides the JSON number's form.
    let storage_class = raw.type_info().name().to_owned();
    let value = match field_type {
        FieldType::Number => match storage_class.as_str() {
            "INTEGER" => Value::from(row.try_get::<i64, _>(index)?),
            "REAL" => serde_json::Number::from_f64(row.try_get::<f64, _>(index)?)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            _ => return Err(corrupt(format!("Number column holds {storage_class}"))),
        },
        FieldType::Boolean => Value::Bool(row.try_get::<i64, _>(index)? != 0),
        FieldType::String => Value::String(row.try_get::<String, _>(index)?),
        FieldType::Date => value::date_value(&row.try_get::<String, _>(index)?),
        FieldType::Pointer(target) => {
            value::pointer_value(target, &row.try_get::<String, _>(index)?)
        }
        FieldType::Object
        | FieldType::Array
        | FieldType::File
        | FieldType::GeoPoint
        | FieldType::Bytes
        | FieldType::Polygon => {
            serde_json::from_str(&row.try_get::<String, _>(index)?).map_err(corrupt)?
        }
        FieldType::Relation(_) | FieldType::Acl => return Ok(None),
    };
    Ok(Some(value))
}

/// A stored value that does not decode: the database was written by something else.
fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("corrupt stored value: {error}").into(),
    ))
}
