//! A selected row, as each backend hands it over ([`SelectedRow`]), and the two things a read
//! makes of it: an [`Object`] ([`Projection::decode`]) or the JSON text a client reads
//! ([`JsonRowsWriter`]). The text is written straight from the row's cells, so a page
//! of results is not built as objects and values only to be serialised again (that building
//! was most of a history page's CPU). Both read the same cells through [`Cell`], so they
//! answer the same, field order aside.

use std::borrow::Cow;

use parlor_core::object::{Acl, Object};
use parlor_core::schema::FieldType;
use parlor_core::value;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{StoreError, StoreResult};
use crate::layout::DEFAULT_COLUMNS;
use crate::select::Projection;

/// One field column's value as the backend read it, borrowed from the row.
pub(crate) enum Cell<'r> {
    Null,
    Integer(i64),
    Real(f64),
    Bool(bool),
    /// A String column's text, a Date's ISO text, a Pointer's target id.
    Text(&'r str),
    /// The JSON text of an Object, Array or typed value (File, GeoPoint, Bytes, Polygon).
    Json(&'r str),
}

/// How a backend reads one selected row: the default columns by index (`objectId`,
/// `createdAt`, `updatedAt` as text; `_rperm`, `_wperm`, `_nulls` as lists of names) and each
/// field column as a [`Cell`] of its type.
pub(crate) trait SelectedRow {
    fn text(&self, index: usize) -> StoreResult<Option<&str>>;
    fn names(&self, index: usize) -> StoreResult<Option<Names<'_>>>;
    fn cell(&self, index: usize, field_type: &FieldType) -> StoreResult<Cell<'_>>;
}

/// A list of names read from a row, borrowed from it where the backend can.
pub(crate) type Names<'r> = Vec<Cow<'r, str>>;

const OBJECT_ID: usize = 0;
const CREATED_AT: usize = 1;
const UPDATED_AT: usize = 2;
pub(crate) const READERS: usize = 3;
const WRITERS: usize = 4;
const NULLS: usize = 5;

/// A find's objects as the JSON array a client reads (`[{…},{…}]`), and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRows {
    pub json: String,
    pub len: usize,
}

/// No objects: `[]`.
impl Default for JsonRows {
    fn default() -> JsonRows {
        JsonRows {
            json: "[]".to_owned(),
            len: 0,
        }
    }
}

impl JsonRows {
    /// The text of the one object, when there is exactly one.
    pub fn single_object(self) -> Option<String> {
        if self.len != 1 {
            return None;
        }
        let mut json = self.json;
        json.pop();
        json.remove(0);
        Some(json)
    }

    /// The objects as values again, for a caller that needs them after all.
    pub fn into_values(self) -> StoreResult<Vec<Value>> {
        serde_json::from_str(&self.json).map_err(corrupt)
    }
}

/// Writes a page of rows as a JSON array.
pub(crate) struct JsonRowsWriter<'p> {
    projection: &'p Projection,
    /// `,"name":` of each field column, escaped once for the page rather than once per row.
    column_keys: Vec<Vec<u8>>,
    /// `,"name":{"__type":"Relation",…}` of each relation field: the same in every object.
    relation_entries: Vec<u8>,
    out: Vec<u8>,
    len: usize,
}

impl<'p> JsonRowsWriter<'p> {
    pub(crate) fn new(projection: &'p Projection) -> StoreResult<JsonRowsWriter<'p>> {
        let key = |name: &str| -> StoreResult<Vec<u8>> {
            let mut key = Vec::with_capacity(name.len() + 4);
            write_key(&mut key, name, false)?;
            Ok(key)
        };
        let column_keys = projection
            .columns
            .iter()
            .map(|(name, _)| key(name))
            .collect::<StoreResult<_>>()?;
        let mut relation_entries = Vec::new();
        for (name, marker) in &projection.relations {
            relation_entries.extend(key(name)?);
            write(&mut relation_entries, marker)?;
        }
        // Sized for a page of messages: growing from empty copied the page several times.
        let mut out = Vec::with_capacity(32 * 1024);
        out.push(b'[');
        Ok(JsonRowsWriter {
            projection,
            column_keys,
            relation_entries,
            out,
            len: 0,
        })
    }

    /// Appends the object in `row`: what [`Object::into_json`] of [`Projection::decode`]
    /// serialises to, field order aside.
    pub(crate) fn push(&mut self, row: &impl SelectedRow) -> StoreResult<()> {
        let out = &mut self.out;
        if self.len > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"objectId":"#);
        write(out, row.text(OBJECT_ID)?.unwrap_or_default())?;
        out.extend_from_slice(br#","createdAt":"#);
        write(out, row.text(CREATED_AT)?.unwrap_or_default())?;
        out.extend_from_slice(br#","updatedAt":"#);
        write(out, row.text(UPDATED_AT)?.unwrap_or_default())?;
        let readers = row.names(READERS)?;
        let writers = row.names(WRITERS)?;
        if readers.is_some() || writers.is_some() {
            out.extend_from_slice(br#","ACL":"#);
            write_acl(
                out,
                readers.as_deref().unwrap_or_default(),
                writers.as_deref().unwrap_or_default(),
            )?;
        }
        let nulls = row.names(NULLS)?.unwrap_or_default();
        let columns = self.projection.columns.iter().zip(&self.column_keys);
        for (index, ((name, field_type), key)) in columns.enumerate() {
            match row.cell(DEFAULT_COLUMNS.len() + index, field_type)? {
                Cell::Null if nulls.iter().any(|null| null == name) => {
                    out.extend_from_slice(key);
                    out.extend_from_slice(b"null");
                }
                Cell::Null => {}
                cell => {
                    out.extend_from_slice(key);
                    write_cell(out, cell, field_type)?;
                }
            }
        }
        for name in self.projection.untyped_nulls.names(&nulls) {
            write_key(out, name, false)?;
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(&self.relation_entries);
        out.push(b'}');
        self.len += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> StoreResult<JsonRows> {
        self.out.push(b']');
        let json = String::from_utf8(self.out).map_err(corrupt)?;
        Ok(JsonRows {
            json,
            len: self.len,
        })
    }
}

impl Projection {
    /// The object in `row`.
    pub(crate) fn decode(&self, row: &impl SelectedRow) -> StoreResult<Object> {
        let owned = |text: Option<&str>| text.unwrap_or_default().to_owned();
        let nulls = row.names(NULLS)?.unwrap_or_default();
        let fields = self.fields(&nulls, |index, field_type| {
            cell_value(row.cell(index, field_type)?, field_type)
        })?;
        Ok(Object {
            object_id: owned(row.text(OBJECT_ID)?),
            created_at: owned(row.text(CREATED_AT)?),
            updated_at: owned(row.text(UPDATED_AT)?),
            acl: row_acl(row)?,
            fields,
        })
    }
}

/// The row's ACL: none when both `_rperm` and `_wperm` are NULL.
fn row_acl(row: &impl SelectedRow) -> StoreResult<Option<Acl>> {
    match (row.names(READERS)?, row.names(WRITERS)?) {
        (None, None) => Ok(None),
        (readers, writers) => Ok(Some(Acl::from_perms(
            &readers.unwrap_or_default(),
            &writers.unwrap_or_default(),
        ))),
    }
}

/// The ACL of `_rperm`/`_wperm` as [`Acl::to_json`] of [`Acl::from_perms`] writes it, without
/// building either: entries in order, each with the grants it has.
fn write_acl(out: &mut Vec<u8>, readers: &[Cow<str>], writers: &[Cow<str>]) -> StoreResult<()> {
    let mut entries: Vec<&str> = readers.iter().chain(writers).map(AsRef::as_ref).collect();
    entries.sort_unstable();
    entries.dedup();
    out.push(b'{');
    for (index, entry) in entries.into_iter().enumerate() {
        write_key(out, entry, index == 0)?;
        let read = readers.iter().any(|reader| reader == entry);
        let write = writers.iter().any(|writer| writer == entry);
        out.extend_from_slice(match (read, write) {
            (true, true) => br#"{"read":true,"write":true}"#.as_slice(),
            (true, false) => br#"{"read":true}"#.as_slice(),
            _ => br#"{"write":true}"#.as_slice(),
        });
    }
    out.push(b'}');
    Ok(())
}

/// A field column's cell as the Parse value of its field type; `None` for SQL NULL.
fn cell_value(cell: Cell<'_>, field_type: &FieldType) -> StoreResult<Option<Value>> {
    Ok(Some(match cell {
        Cell::Null => return Ok(None),
        Cell::Integer(integer) => Value::from(integer),
        Cell::Real(real) => serde_json::Number::from_f64(real)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Cell::Bool(flag) => Value::Bool(flag),
        Cell::Text(text) => match field_type {
            FieldType::Date => value::date_value(text),
            FieldType::Pointer(target) => value::pointer_value(target, text),
            _ => Value::String(text.to_owned()),
        },
        Cell::Json(text) => serde_json::from_str(text).map_err(corrupt)?,
    }))
}

/// [`cell_value`]'s value written as JSON text.
fn write_cell(out: &mut Vec<u8>, cell: Cell<'_>, field_type: &FieldType) -> StoreResult<()> {
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Integer(integer) => write(out, &integer)?,
        // Not finite: `null`, as `Number::from_f64` makes it.
        Cell::Real(real) => write(out, &real)?,
        Cell::Bool(flag) => write(out, &flag)?,
        Cell::Text(text) => match field_type {
            FieldType::Date => {
                out.extend_from_slice(br#"{"__type":"Date","iso":"#);
                write(out, text)?;
                out.push(b'}');
            }
            FieldType::Pointer(target) => {
                out.extend_from_slice(br#"{"__type":"Pointer","className":"#);
                write(out, target)?;
                out.extend_from_slice(br#","objectId":"#);
                write(out, text)?;
                out.push(b'}');
            }
            _ => write(out, text)?,
        },
        // Checked to be one JSON value, so that a stored value written by something else
        // cannot break the answer around it.
        Cell::Json(text) => {
            let raw: &RawValue = serde_json::from_str(text).map_err(corrupt)?;
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    Ok(())
}

/// `"key":`, after a comma unless it is the object's first.
fn write_key(out: &mut Vec<u8>, key: &str, first: bool) -> StoreResult<()> {
    if !first {
        out.push(b',');
    }
    write(out, key)?;
    out.push(b':');
    Ok(())
}

/// `value` as serde_json writes it (the same escaping and number forms as a serialised `Value`).
fn write(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) -> StoreResult<()> {
    serde_json::to_writer(out, value).map_err(corrupt)
}

/// A stored value that does not decode: the database was written by something else.
pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::database(format!("corrupt stored value: {error}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use parlor_core::schema::{ClassSchema, FieldSchema};
    use serde_json::json;

    use super::*;

    /// A row held in memory, as a backend would read it.
    struct Row {
        texts: [Option<&'static str>; 3],
        names: [Option<Vec<String>>; 3],
        cells: HashMap<usize, Cell<'static>>,
    }

    impl SelectedRow for Row {
        fn text(&self, index: usize) -> StoreResult<Option<&str>> {
            Ok(self.texts[index])
        }
        fn names(&self, index: usize) -> StoreResult<Option<Names<'_>>> {
            Ok(self.names[index - READERS].as_ref().map(|names| {
                names
                    .iter()
                    .map(|name| Cow::Borrowed(name.as_str()))
                    .collect()
            }))
        }
        fn cell(&self, index: usize, _: &FieldType) -> StoreResult<Cell<'_>> {
            Ok(match self.cells.get(&index) {
                None | Some(Cell::Null) => Cell::Null,
                Some(Cell::Integer(integer)) => Cell::Integer(*integer),
                Some(Cell::Real(real)) => Cell::Real(*real),
                Some(Cell::Bool(flag)) => Cell::Bool(*flag),
                Some(Cell::Text(text)) => Cell::Text(text),
                Some(Cell::Json(text)) => Cell::Json(text),
            })
        }
    }

    fn schema() -> ClassSchema {
        let mut schema = ClassSchema::new("Note");
        for (name, field_type) in [
            ("title", FieldType::String),
            ("count", FieldType::Number),
            ("ratio", FieldType::Number),
            ("done", FieldType::Boolean),
            ("due", FieldType::Date),
            ("owner", FieldType::Pointer("_User".into())),
            ("meta", FieldType::Object),
            ("gone", FieldType::String),
            ("tags", FieldType::Relation("Tag".into())),
        ] {
            schema
                .fields
                .insert(name.into(), FieldSchema::of(field_type));
        }
        schema
    }

    fn names(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|name| (*name).to_owned()).collect())
    }

    fn json_of(projection: &Projection, row: &Row) -> Value {
        let mut page = JsonRowsWriter::new(projection).unwrap();
        page.push(row).unwrap();
        page.push(row).unwrap();
        let rows = page.finish().unwrap();
        assert_eq!(rows.len, 2);
        let mut objects: Vec<Value> = serde_json::from_str(&rows.json).unwrap();
        assert_eq!(objects[0], objects[1]);
        objects.pop().unwrap()
    }

    #[test]
    fn written_text_is_the_decoded_object_as_a_client_reads_it() {
        let schema = schema();
        let projection = Projection::new(&schema, None);
        let column = |name: &str| {
            DEFAULT_COLUMNS.len()
                + projection
                    .columns
                    .iter()
                    .position(|(column, _)| column == name)
                    .unwrap()
        };
        let cells = HashMap::from([
            (
                column("title"),
                Cell::Text("say \"hi\"\n\u{1F600} </script>"),
            ),
            (column("count"), Cell::Integer(-3)),
            (column("ratio"), Cell::Real(0.25)),
            (column("done"), Cell::Bool(true)),
            (column("due"), Cell::Text("2026-01-02T03:04:05.678Z")),
            (column("owner"), Cell::Text("u1")),
            (
                column("meta"),
                Cell::Json(r#"{"a":[1,2.5,null],"b":{"c":"d"}}"#),
            ),
        ]);
        let row = Row {
            texts: [
                Some("n1"),
                Some("2026-01-01T00:00:00.000Z"),
                Some("2026-01-01T00:00:01.000Z"),
            ],
            names: [
                names(&["*", "u1"]),
                names(&["u1"]),
                names(&["gone", "extra"]),
            ],
            cells,
        };
        let decoded = Value::Object(projection.decode(&row).unwrap().into_json());
        assert_eq!(json_of(&projection, &row), decoded);
        assert_eq!(decoded["gone"], Value::Null);
        assert_eq!(decoded["extra"], Value::Null);
        assert_eq!(
            decoded["tags"],
            json!({"__type": "Relation", "className": "Tag"})
        );
        assert_eq!(
            decoded["ACL"],
            json!({"*": {"read": true}, "u1": {"read": true, "write": true}})
        );
        assert_eq!(
            decoded["owner"],
            json!({"__type": "Pointer", "className": "_User", "objectId": "u1"})
        );

        // No ACL, no nulls, a real that is not finite, only some keys.
        let keys = ["ratio".to_owned(), "extra".to_owned()];
        let projection = Projection::new(&schema, Some(&keys));
        let row = Row {
            texts: [Some("n2"), Some("2026-01-01T00:00:00.000Z"), None],
            names: [None, None, names(&["extra", "gone"])],
            cells: HashMap::from([(DEFAULT_COLUMNS.len(), Cell::Real(f64::NAN))]),
        };
        let decoded = Value::Object(projection.decode(&row).unwrap().into_json());
        assert_eq!(json_of(&projection, &row), decoded);
        assert_eq!(
            decoded,
            json!({"objectId": "n2", "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "",
                   "ratio": null, "extra": null})
        );
    }

    #[test]
    fn default_column_indexes_follow_the_layout() {
        let indexes = [OBJECT_ID, CREATED_AT, UPDATED_AT, READERS, WRITERS, NULLS];
        let names = indexes.map(|index| DEFAULT_COLUMNS[index]);
        let meant = [
            "objectId",
            "createdAt",
            "updatedAt",
            "_rperm",
            "_wperm",
            "_nulls",
        ];
        assert_eq!(names, meant);
    }

    #[test]
    fn a_stored_value_that_is_not_json_is_refused_not_copied() {
        let schema = schema();
        let projection = Projection::new(&schema, Some(&["meta".to_owned()]));
        let row = Row {
            texts: [Some("n3"), Some(""), Some("")],
            names: [None, None, None],
            cells: HashMap::from([(DEFAULT_COLUMNS.len(), Cell::Json(r#"1}, {"x": 2"#))]),
        };
        assert!(
            JsonRowsWriter::new(&projection)
                .unwrap()
                .push(&row)
                .is_err()
        );
        assert!(projection.decode(&row).is_err());
    }
}
