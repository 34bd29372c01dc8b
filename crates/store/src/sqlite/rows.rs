//! Objects ↔ rows in SQLite: how each schema type is stored in its column and read back.
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

use std::borrow::Cow;

use parlor_core::object::Acl;
use parlor_core::schema::{ClassSchema, FieldType};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::StoreResult;
pub(crate) use crate::layout::{NULLS_COLUMN, field_columns};
use crate::layout::{Stored, explicit_nulls, stored_value};
use crate::selected::{Cell, Names, SelectedRow, corrupt};
use crate::sql::Bind;

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

/// Canonical JSON text: `serde_json` writes object keys sorted, so equal values give equal text.
pub(crate) fn canonical_json(value: &Value) -> String {
    value.to_string()
}

/// The bound value that stores `value` in a column of `field_type`.
/// `Null` stores SQL NULL; whether that is an explicit null is [`encode_nulls`]'s business.
pub(crate) fn encode_value(name: &str, field_type: &FieldType, value: &Value) -> StoreResult<Bind> {
    Ok(match stored_value(name, field_type, value)? {
        Stored::Null => Bind::Null,
        Stored::Text(text) => Bind::Text(text),
        Stored::Number(number) => Bind::json_number(&number),
        Stored::Bool(flag) => Bind::Integer(i64::from(flag)),
        Stored::Json(json) => Bind::Text(canonical_json(&json)),
    })
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

/// [`NULLS_COLUMN`] for the fields of `fields` that are explicitly null ([`explicit_nulls`]).
pub(crate) fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> Bind {
    let names = explicit_nulls(schema, fields);
    if names.is_empty() {
        Bind::Null
    } else {
        Bind::Text(canonical_json(&Value::from_iter(names)))
    }
}

impl SelectedRow for Row<'_> {
    fn text(&self, index: usize) -> StoreResult<Option<&str>> {
        match self.get_ref(index)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes).map(Some).map_err(corrupt),
            other => Err(corrupt(format!(
                "column {index} holds {}, expected TEXT",
                other.data_type()
            ))),
        }
    }

    /// `_rperm`, `_wperm` and `_nulls` hold JSON arrays of names, read in place unless a
    /// name has an escape.
    fn names(&self, index: usize) -> StoreResult<Option<Names<'_>>> {
        /// One name of the array, borrowed from the text when it can be.
        #[derive(Deserialize)]
        struct Name<'a>(#[serde(borrow)] Cow<'a, str>);
        let Some(text) = self.text(index)? else {
            return Ok(None);
        };
        let names: Vec<Name<'_>> = serde_json::from_str(text).map_err(corrupt)?;
        Ok(Some(names.into_iter().map(|name| name.0).collect()))
    }

    fn cell(&self, index: usize, field_type: &FieldType) -> StoreResult<Cell<'_>> {
        let raw = self.get_ref(index)?;
        if let ValueRef::Null = raw {
            return Ok(Cell::Null);
        }
        // NUMERIC columns keep integral values as INTEGER and the rest as REAL; the storage
        // class decides the JSON number's form.
        Ok(match field_type {
            FieldType::Number => match raw {
                ValueRef::Integer(integer) => Cell::Integer(integer),
                ValueRef::Real(real) => Cell::Real(real),
                other => {
                    return Err(corrupt(format!(
                        "Number column holds {}",
                        other.data_type()
                    )));
                }
            },
            FieldType::Boolean => match raw {
                ValueRef::Integer(integer) => Cell::Bool(integer != 0),
                other => {
                    return Err(corrupt(format!(
                        "Boolean column holds {}",
                        other.data_type()
                    )));
                }
            },
            FieldType::String | FieldType::Date | FieldType::Pointer(_) => {
                Cell::Text(column_text(raw, field_type)?)
            }
            FieldType::Object
            | FieldType::Array
            | FieldType::File
            | FieldType::GeoPoint
            | FieldType::Bytes
            | FieldType::Polygon => Cell::Json(column_text(raw, field_type)?),
            FieldType::Relation(_) | FieldType::Acl => Cell::Null,
        })
    }
}

/// The text of a column that should hold TEXT.
fn column_text<'r>(raw: ValueRef<'r>, field_type: &FieldType) -> StoreResult<&'r str> {
    match raw {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(corrupt),
        other => Err(corrupt(format!(
            "{} column holds {}",
            field_type.describe(),
            other.data_type()
        ))),
    }
}
