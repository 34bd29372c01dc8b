//! Objects ↔ rows in PostgreSQL: column types, bound values, and decoding.
//!
//! Column types: strings, dates (normalised ISO text, which sorts as the instant) and pointer
//! ids are `text COLLATE "C"` (byte order, as the matcher and SQLite compare strings);
//! numbers `double precision`, read back as integers when integral (as SQLite's NUMERIC
//! does, so `5.0` reads `5`); booleans `boolean`; objects, arrays and typed values `jsonb`;
//! ACLs `text[]` in `_rperm`/`_wperm`; explicit nulls a `text[]` of field names in
//! [`NULLS_COLUMN`](crate::layout::NULLS_COLUMN) (NULL when there are none).
//!
//! Every bound value carries its type in the statement text (`$3::text`), so a statement's
//! text always has the same parameter types: sqlx caches prepared statements by text.

use std::borrow::Cow;

use parlor_core::Error;
use parlor_core::object::Acl;
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sqlx_core::row::Row;
use sqlx_postgres::PgRow;

use crate::error::{StoreError, StoreResult};
use crate::layout::{Stored, explicit_nulls, stored_value};
use crate::selected::{Cell, Names, SelectedRow};
use crate::sql::{BindValue, SqlBuilder};

/// A value bound to a PostgreSQL statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PgBind {
    /// Written as the constant `NULL`, never bound.
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    TextArray(Vec<String>),
    Json(Value),
}

impl BindValue for PgBind {
    fn placeholder(sql: &mut String, position: usize, value: &PgBind) -> bool {
        let cast = match value {
            PgBind::Null => {
                sql.push_str("NULL");
                return false;
            }
            PgBind::Int(_) => "int8",
            PgBind::Float(_) => "float8",
            PgBind::Bool(_) => "bool",
            PgBind::Text(_) => "text",
            PgBind::TextArray(_) => "text[]",
            PgBind::Json(_) => "jsonb",
        };
        sql.push('$');
        sql.push_str(&position.to_string());
        sql.push_str("::");
        sql.push_str(cast);
        true
    }

    fn text(value: String) -> PgBind {
        PgBind::Text(value)
    }
}

pub(crate) type PgSql = SqlBuilder<PgBind>;

/// The SQL type of a field's column; `None` for types without a column.
pub(crate) fn column_type(field_type: &FieldType) -> Option<&'static str> {
    match field_type {
        FieldType::Number => Some("double precision"),
        FieldType::Boolean => Some("boolean"),
        FieldType::String | FieldType::Date | FieldType::Pointer(_) => Some("text COLLATE \"C\""),
        FieldType::Object
        | FieldType::Array
        | FieldType::File
        | FieldType::GeoPoint
        | FieldType::Bytes
        | FieldType::Polygon => Some("jsonb"),
        FieldType::Relation(_) | FieldType::Acl => None,
    }
}

/// A number as stored in a `double precision` column.
pub(crate) fn number_bind(number: &serde_json::Number) -> PgBind {
    PgBind::Float(number.as_f64().unwrap_or(0.0))
}

/// The bound value that stores `value` in a column of `field_type`.
pub(crate) fn encode_value(
    name: &str,
    field_type: &FieldType,
    value: &Value,
) -> StoreResult<PgBind> {
    Ok(match stored_value(name, field_type, value)? {
        Stored::Null => PgBind::Null,
        Stored::Text(text) => PgBind::Text(text),
        Stored::Number(number) => number_bind(&number),
        Stored::Bool(flag) => PgBind::Bool(flag),
        Stored::Json(json) => PgBind::Json(json),
    })
}

/// `_rperm` and `_wperm` for an ACL: arrays of entries, or NULL when there is no ACL.
pub(crate) fn encode_acl(acl: Option<&Acl>) -> (PgBind, PgBind) {
    match acl {
        None => (PgBind::Null, PgBind::Null),
        Some(acl) => (
            PgBind::TextArray(acl.readers()),
            PgBind::TextArray(acl.writers()),
        ),
    }
}

/// [`NULLS_COLUMN`](crate::layout::NULLS_COLUMN) for the fields of `fields` that are explicitly
/// null ([`explicit_nulls`]).
pub(crate) fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> PgBind {
    let names = explicit_nulls(schema, fields);
    if names.is_empty() {
        PgBind::Null
    } else {
        PgBind::TextArray(names.into_iter().map(str::to_owned).collect())
    }
}

impl SelectedRow for PgRow {
    fn text(&self, index: usize) -> StoreResult<Option<&str>> {
        Ok(self.try_get(index)?)
    }

    /// `_rperm`, `_wperm` and `_nulls` are `text[]`.
    fn names(&self, index: usize) -> StoreResult<Option<Names<'_>>> {
        let names: Option<Vec<String>> = self.try_get(index)?;
        Ok(names.map(|names| names.into_iter().map(Cow::Owned).collect()))
    }

    fn cell(&self, index: usize, field_type: &FieldType) -> StoreResult<Cell<'_>> {
        let cell = match field_type {
            FieldType::Number => self.try_get::<Option<f64>, _>(index)?.map(number_cell),
            FieldType::Boolean => self.try_get::<Option<bool>, _>(index)?.map(Cell::Bool),
            FieldType::String | FieldType::Date | FieldType::Pointer(_) => {
                self.try_get::<Option<&str>, _>(index)?.map(Cell::Text)
            }
            FieldType::Object
            | FieldType::Array
            | FieldType::File
            | FieldType::GeoPoint
            | FieldType::Bytes
            | FieldType::Polygon => self
                .try_get::<Option<&RawValue>, _>(index)?
                .map(|json| Cell::Json(json.get())),
            FieldType::Relation(_) | FieldType::Acl => None,
        };
        Ok(cell.unwrap_or(Cell::Null))
    }
}

/// A stored double as a cell: integral values that fit `i64` as integers, as SQLite's NUMERIC
/// affinity keeps them, so integer-ness round-trips.
fn number_cell(number: f64) -> Cell<'static> {
    // i64::MAX as f64 rounds up to 2^63, which is outside i64; the strict bound keeps the
    // conversion lossless.
    if number.fract() == 0.0
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&number)
    {
        return Cell::Integer(number as i64);
    }
    Cell::Real(number)
}

/// The error a value PostgreSQL cannot store is (a NUL character in text or JSON).
pub(crate) fn unstorable(detail: &str) -> StoreError {
    StoreError::Invalid(Error::invalid_json(format!(
        "value cannot be stored: {detail}"
    )))
}
