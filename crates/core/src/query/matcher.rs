//! The in-memory evaluator of [`Filter`], used by live queries.
//!
//! The SQL store translates the same AST; a property test checks that the two agree. The rules
//! below are the specification both evaluators follow, word for word.
//!
//! # The value of a field
//! `v` is the object's value at the [`FieldRef`]:
//! - a field the schema does not have (`field_type` is `None`) is *missing* on every object,
//!   but where it is stored as an explicit `null` at the top level (a null carries no type,
//!   so it adds no field to the schema): there v is `null`;
//! - otherwise the top-level value, with `objectId` as a string and `createdAt`/`updatedAt` as
//!   `{"__type":"Date"}` values ([`Object::get`]); a field the object lacks is *missing*;
//! - a `path` descends through JSON objects, and only on Object fields: a path on a field of
//!   any other type, or a non-object (including `null`) met before the last key, gives
//!   *missing*, and so does a last key the object lacks;
//! - v is *absent* when it is missing or JSON `null`. Missing and `null` differ only for
//!   `Exists`: an explicit `null` (a top-level field stored as null, or a `null` member at
//!   the end of a path) exists. Every other condition sees only present or absent.
//!
//! # Kinds
//! A JSON number is a Number (compared as `f64`), a string a String, a boolean a Bool,
//! `{"__type":"Date","iso":s}` a Date (its text, normalised when it parses), a
//! `{"__type":"Pointer"|"Object"}` with `className` and `objectId` a Pointer, `null` a Null, and
//! anything else (objects, arrays, other typed values) Json.
//!
//! *Item equality* of a value and an operand: same kind and equal value (numbers as `f64`,
//! dates by their text, pointers by class and id); a Json operand equals a value when the two
//! are equal as `serde_json` values; a Null operand equals a JSON `null` (inside arrays).
//!
//! # Conditions
//! - `Eq(Null)`: v is absent. Otherwise, if v is an array and the operand is not a Json array:
//!   some item of v equals the operand. Otherwise, a Json operand: v is present and equal to it as
//!   JSON (a Json array operand compares the whole array). Otherwise: v (present) equals the
//!   operand. A String operand never equals a Pointer value.
//! - `Ne(op)` is `!Eq(op)`; `In(list)` is some `Eq` (an empty list: false); `Nin` is `!In`.
//! - `Lt`/`Lte`/`Gt`/`Gte`: v is present, not an array, and of the operand's kind, which is
//!   Number, String or Date (any other operand: false). Strings compare as Rust `str` (bytes,
//!   like SQLite's BINARY collation), numbers as `f64`, dates by their text.
//! - `All(list)`: v is an array, the list is not empty, and each operand equals some item.
//! - `AllMatch(patterns)`: v is an array, the list is not empty, and each pattern matches some
//!   item that is a string.
//! - `ContainedBy(list)`: v is an array and each of its items equals some operand (an empty
//!   array: true). Absent or not an array: false.
//! - `Exists(true)`: v is not missing (an explicit `null` exists: Mongo's rule, which Parse
//!   follows); `Exists(false)`: v is missing.
//! - `Regex(p)`: v is a string and `p.regex` matches it (arrays: false).
//! - `Text(terms)`: v is a string, the list is not empty, and for every term the regex
//!   [`text_term_pattern`]`(term)` matches v.
//! - `EqIgnoreCase(s)`: v is a string (not an array) equal to `s` with ASCII letters folded
//!   to one case (`str::eq_ignore_ascii_case`, which is SQLite's `NOCASE`); other characters
//!   compare exactly.
//! - `Readable(group)`: the object has no ACL, or the ACL lets an entry of `group` read;
//!   `Writable(group)`: likewise for write.
//! - `And`: all (empty: true); `Or`: any (empty: false); `Nor`: none (empty: true);
//!   `True`, `False`.
//! - `RelatedTo`, `InQuery`, `Select`, and any condition on a Relation field (relation
//!   membership, `{"users": Pointer}`): false; they need the database
//!   ([`Filter::is_matchable`] says so).

use std::borrow::Cow;

use serde_json::Value;

use crate::object::Object;
use crate::query::ast::{Cond, FieldRef, Filter, Operand, Pattern};
use crate::query::regex::{self, text_term_pattern};
use crate::schema::FieldType;
use crate::value;

/// Whether `object` satisfies `filter`.
pub fn matches(filter: &Filter, object: &Object) -> bool {
    match filter {
        Filter::True => true,
        Filter::False => false,
        Filter::And(items) => items.iter().all(|item| matches(item, object)),
        Filter::Or(items) => items.iter().any(|item| matches(item, object)),
        Filter::Nor(items) => !items.iter().any(|item| matches(item, object)),
        Filter::Cond { field, .. } if field.is_relation() => false,
        Filter::Cond { field, cond } => {
            let value = field_value(object, field);
            matches_cond(cond, value.as_deref())
        }
        Filter::RelatedTo { .. } | Filter::InQuery { .. } | Filter::Select { .. } => false,
        Filter::Readable(group) => object.acl.as_ref().is_none_or(|acl| acl.can_read(group)),
        Filter::Writable(group) => object.acl.as_ref().is_none_or(|acl| acl.can_write(group)),
    }
}

/// Whether a field value satisfies a condition: `None` is a missing value, `Some(Null)` an
/// explicit null, which only `Exists` tells apart from missing.
pub fn matches_cond(cond: &Cond, stored: Option<&Value>) -> bool {
    // Every condition but `Exists` reads an explicit null as absent.
    let value = stored.filter(|value| !value.is_null());
    match cond {
        Cond::Eq(operand) => equals(value, operand),
        Cond::Ne(operand) => !equals(value, operand),
        Cond::In(operands) => operands.iter().any(|operand| equals(value, operand)),
        Cond::Nin(operands) => !operands.iter().any(|operand| equals(value, operand)),
        Cond::Lt(operand) => compare(value, operand).is_some_and(|order| order.is_lt()),
        Cond::Lte(operand) => compare(value, operand).is_some_and(|order| order.is_le()),
        Cond::Gt(operand) => compare(value, operand).is_some_and(|order| order.is_gt()),
        Cond::Gte(operand) => compare(value, operand).is_some_and(|order| order.is_ge()),
        Cond::All(operands) => match value {
            Some(Value::Array(items)) => {
                !operands.is_empty()
                    && operands
                        .iter()
                        .all(|operand| items.iter().any(|item| item_equals(item, operand)))
            }
            _ => false,
        },
        Cond::AllMatch(patterns) => match value {
            Some(Value::Array(items)) => {
                !patterns.is_empty()
                    && patterns
                        .iter()
                        .all(|pattern| items.iter().any(|item| is_match(pattern, item)))
            }
            _ => false,
        },
        Cond::ContainedBy(operands) => match value {
            Some(Value::Array(items)) => items
                .iter()
                .all(|item| operands.iter().any(|operand| item_equals(item, operand))),
            _ => false,
        },
        Cond::Exists(exists) => stored.is_some() == *exists,
        Cond::Regex(pattern) => value.is_some_and(|value| is_match(pattern, value)),
        Cond::EqIgnoreCase(operand) => value
            .and_then(Value::as_str)
            .is_some_and(|text| text.eq_ignore_ascii_case(operand)),
        Cond::Text(terms) => match value {
            Some(Value::String(text)) => {
                !terms.is_empty()
                    && terms.iter().all(|term| {
                        regex::build(&text_term_pattern(term))
                            .is_ok_and(|regex| regex.is_match(text))
                    })
            }
            _ => false,
        },
    }
}

/// The value at a field reference: `None` when missing, `Some(Null)` for an explicit null.
fn field_value<'o>(object: &'o Object, field: &FieldRef) -> Option<Cow<'o, Value>> {
    let Some(field_type) = field.field_type.as_ref() else {
        return object
            .fields
            .get(&field.field)
            .filter(|value| value.is_null() && field.path.is_empty())
            .map(Cow::Borrowed);
    };
    if !field.path.is_empty() && *field_type != FieldType::Object {
        return None;
    }
    match field.field.as_str() {
        "objectId" | "createdAt" | "updatedAt" | "ACL" => {
            let root = object.get(&field.field)?;
            descend(&root, &field.path).cloned().map(Cow::Owned)
        }
        name => descend(object.fields.get(name)?, &field.path).map(Cow::Borrowed),
    }
}

fn descend<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut value = root;
    for key in path {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// A value's kind, for item equality and comparisons.
enum Kind<'v> {
    Null,
    Number(f64),
    String(&'v str),
    Bool(bool),
    Date(Cow<'v, str>),
    Pointer(&'v str, &'v str),
    Json,
}

fn kind(value: &Value) -> Kind<'_> {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(flag) => Kind::Bool(*flag),
        Value::Number(number) => number.as_f64().map_or(Kind::Json, Kind::Number),
        Value::String(text) => Kind::String(text),
        Value::Array(_) => Kind::Json,
        Value::Object(map) => match value::type_tag(value) {
            Some("Date") => match map.get("iso").and_then(Value::as_str) {
                Some(iso) => {
                    Kind::Date(value::normalize_iso(iso).map_or(Cow::Borrowed(iso), Cow::Owned))
                }
                None => Kind::Json,
            },
            Some("Pointer" | "Object") => match value::as_pointer(value) {
                Some((class_name, object_id)) => Kind::Pointer(class_name, object_id),
                None => Kind::Json,
            },
            _ => Kind::Json,
        },
    }
}

/// `Eq`, on a whole field value.
fn equals(value: Option<&Value>, operand: &Operand) -> bool {
    if *operand == Operand::Null {
        return value.is_none();
    }
    let Some(value) = value else {
        return false;
    };
    let whole_array_operand = matches!(operand, Operand::Json(Value::Array(_)));
    match value {
        Value::Array(items) if !whole_array_operand => {
            items.iter().any(|item| item_equals(item, operand))
        }
        _ => item_equals(value, operand),
    }
}

/// Item equality: same kind and equal value; Json operands compare as JSON.
fn item_equals(item: &Value, operand: &Operand) -> bool {
    match (kind(item), operand) {
        (_, Operand::Json(json)) => item == json,
        (Kind::Null, Operand::Null) => true,
        (Kind::Number(left), Operand::Number(right)) => left == *right,
        (Kind::String(left), Operand::String(right)) => left == right,
        (Kind::Bool(left), Operand::Bool(right)) => left == *right,
        (Kind::Date(left), Operand::Date(right)) => *left == **right,
        (
            Kind::Pointer(class_name, object_id),
            Operand::Pointer {
                class_name: operand_class,
                object_id: operand_id,
            },
        ) => class_name == operand_class && object_id == operand_id,
        _ => false,
    }
}

/// The order of a present, non-array value against a Number, String or Date operand of its kind.
fn compare(value: Option<&Value>, operand: &Operand) -> Option<std::cmp::Ordering> {
    let value = value?;
    if value.is_array() {
        return None;
    }
    match (kind(value), operand) {
        (Kind::Number(left), Operand::Number(right)) => left.partial_cmp(right),
        (Kind::String(left), Operand::String(right)) => Some(left.cmp(right.as_str())),
        (Kind::Date(left), Operand::Date(right)) => Some(left.as_ref().cmp(right.as_str())),
        _ => None,
    }
}

fn is_match(pattern: &Pattern, value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| pattern.regex.is_match(text))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::object::Acl;
    use crate::query::ast::SubQuery;
    use crate::query::parse::fixtures::parse;

    /// An object of class `Message` from its REST JSON (`objectId`, `createdAt`, `updatedAt`
    /// and `ACL` go to their members; the rest are fields).
    fn object(json: &Value) -> Object {
        let mut fields: Map<String, Value> = json.as_object().cloned().unwrap_or_default();
        let text =
            |fields: &mut Map<String, Value>, key: &str, default: &str| match fields.remove(key) {
                Some(Value::String(text)) => text,
                _ => default.to_owned(),
            };
        let object_id = text(&mut fields, "objectId", "o1");
        let created_at = text(&mut fields, "createdAt", "2024-01-01T00:00:00.000Z");
        let updated_at = text(&mut fields, "updatedAt", "2024-06-01T00:00:00.000Z");
        let acl = fields
            .remove("ACL")
            .and_then(|acl| Acl::from_json(&acl).ok());
        Object {
            object_id,
            created_at,
            updated_at,
            acl,
            fields,
        }
    }

    /// Parses `where` against `Message` and matches it with each object, expecting `expected`.
    fn check(where_text: &str, cases: &[(Value, bool)]) {
        let filter = match parse(where_text) {
            Ok(filter) => filter,
            Err(error) => panic!("where {where_text} does not parse: {error}"),
        };
        for (json, expected) in cases {
            let shown: String = json.to_string().chars().take(200).collect();
            assert_eq!(
                matches(&filter, &object(json)),
                *expected,
                "where {where_text} on {shown}"
            );
        }
    }

    fn date(iso: &str) -> Value {
        json!({"__type": "Date", "iso": iso})
    }

    fn pointer(class_name: &str, object_id: &str) -> Value {
        json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
    }

    #[test]
    fn equality_on_scalars() {
        check(
            r#"{"n":1}"#,
            &[
                (json!({"n": 1}), true),
                (json!({"n": 1.0}), true),
                (json!({"n": 2}), false),
                (json!({"n": "1"}), false),
                (json!({"n": true}), false),
                (json!({"n": null}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"text":"a"}"#,
            &[
                (json!({"text": "a"}), true),
                (json!({"text": "A"}), false),
                (json!({"text": ["a"]}), true),
            ],
        );
        check(
            r#"{"flag":false}"#,
            &[
                (json!({"flag": false}), true),
                (json!({"flag": 0}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"objectId":"o1"}"#,
            &[(json!({}), true), (json!({"objectId": "o2"}), false)],
        );
    }

    #[test]
    fn equality_with_null() {
        for where_text in [r#"{"text":null}"#, r#"{"text":{"$eq":null}}"#] {
            check(
                where_text,
                &[
                    (json!({}), true),
                    (json!({"text": null}), true),
                    (json!({"text": "a"}), false),
                    (json!({"text": [null]}), false),
                ],
            );
        }
        check(
            r#"{"text":{"$ne":null}}"#,
            &[
                (json!({}), false),
                (json!({"text": null}), false),
                (json!({"text": ""}), true),
            ],
        );
    }

    #[test]
    fn equality_on_arrays_means_contains() {
        check(
            r#"{"tags":"c"}"#,
            &[
                (json!({"tags": ["a", "c"]}), true),
                (json!({"tags": ["a"]}), false),
                (json!({"tags": []}), false),
                (json!({"tags": [["c"]]}), false),
                (json!({"tags": "c"}), true),
            ],
        );
        check(
            r#"{"tags":{"$ne":"c"}}"#,
            &[
                (json!({"tags": ["a", "c"]}), false),
                (json!({"tags": ["a"]}), true),
                (json!({}), true),
            ],
        );
        // An array operand compares the whole array.
        check(
            r#"{"tags":["a","c"]}"#,
            &[
                (json!({"tags": ["a", "c"]}), true),
                (json!({"tags": ["c", "a"]}), false),
                (json!({"tags": ["a", "c", "d"]}), false),
                (json!({"tags": [["a", "c"]]}), false),
            ],
        );
        check(
            r#"{"tags":{"$ne":["a"]}}"#,
            &[
                (json!({"tags": ["a"]}), false),
                (json!({"tags": ["b"]}), true),
                (json!({}), true),
            ],
        );
        // An object operand is contained like any item.
        check(
            r#"{"tags":{"k":1}}"#,
            &[
                (json!({"tags": [{"k": 1}, 2]}), true),
                (json!({"tags": [{"k": 2}]}), false),
                (json!({"tags": {"k": 1}}), true),
            ],
        );
        check(
            r#"{"tags":{"__type":"Pointer","className":"_User","objectId":"u1"}}"#,
            &[
                (json!({"tags": [pointer("_User", "u1")]}), true),
                (json!({"tags": [pointer("_User", "u2")]}), false),
                (json!({"tags": ["u1"]}), false),
            ],
        );
    }

    #[test]
    fn pointers_compare_class_and_id() {
        check(
            r#"{"author":{"__type":"Pointer","className":"_User","objectId":"u1"}}"#,
            &[
                (json!({"author": pointer("_User", "u1")}), true),
                (
                    json!({"author": {"__type": "Object", "className": "_User", "objectId": "u1", "name": "x"}}),
                    true,
                ),
                (json!({"author": pointer("_User", "u2")}), false),
                (json!({"author": pointer("Other", "u1")}), false),
                (json!({"author": "u1"}), false),
                (json!({}), false),
            ],
        );
        // A bare objectId string does not match a pointer.
        check(
            r#"{"author":"u1"}"#,
            &[(json!({"author": pointer("_User", "u1")}), false)],
        );
    }

    #[test]
    fn dates_compare_instants() {
        check(
            r#"{"when":{"__type":"Date","iso":"2024-05-01T12:00:00+02:00"}}"#,
            &[
                (json!({"when": date("2024-05-01T10:00:00.000Z")}), true),
                (json!({"when": date("2024-05-01T10:00:00Z")}), true),
                (json!({"when": date("2024-05-01T10:00:01.000Z")}), false),
                (json!({"when": "2024-05-01T10:00:00.000Z"}), false),
            ],
        );
        // A string operand does not match a Date value.
        check(
            r#"{"when":"2024-05-01T10:00:00.000Z"}"#,
            &[(json!({"when": date("2024-05-01T10:00:00.000Z")}), false)],
        );
        check(
            r#"{"createdAt":{"$lt":{"__type":"Date","iso":"2024-03-01T00:00:00.000Z"}}}"#,
            &[
                (json!({}), true),
                (json!({"createdAt": "2024-04-01T00:00:00.000Z"}), false),
            ],
        );
        check(
            r#"{"updatedAt":{"$gte":{"$relativeTime":"100 years ago"}}}"#,
            &[(json!({}), true)],
        );
        check(
            r#"{"updatedAt":{"$gte":{"$relativeTime":"in 1 day"}}}"#,
            &[(json!({}), false)],
        );
    }

    #[test]
    fn ordering_operators() {
        let numbers = [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})];
        let expect = |where_text: &str, results: [bool; 3]| {
            let cases: Vec<(Value, bool)> = numbers.iter().cloned().zip(results).collect();
            check(where_text, &cases);
        };
        expect(r#"{"n":{"$lt":2}}"#, [true, false, false]);
        expect(r#"{"n":{"$lte":2}}"#, [true, true, false]);
        expect(r#"{"n":{"$gt":2}}"#, [false, false, true]);
        expect(r#"{"n":{"$gte":2}}"#, [false, true, true]);
        expect(r#"{"n":{"$gt":1,"$lt":3}}"#, [false, true, false]);
        check(
            r#"{"n":{"$lt":2}}"#,
            &[
                (json!({"n": "1"}), false),
                (json!({"n": [1]}), false),
                (json!({"n": null}), false),
                (json!({}), false),
                (json!({"n": 1.5}), true),
            ],
        );
        check(
            r#"{"text":{"$gt":"b"}}"#,
            &[
                (json!({"text": "c"}), true),
                (json!({"text": "B"}), false),
                (json!({"text": "b"}), false),
                (json!({"text": "é"}), true),
                (json!({"text": 5}), false),
            ],
        );
        // Bool, null, pointer and JSON operands order nothing.
        for where_text in [
            r#"{"flag":{"$lt":true}}"#,
            r#"{"flag":{"$gte":false}}"#,
            r#"{"text":{"$gte":null}}"#,
            r#"{"meta":{"$gte":{"a":1}}}"#,
            r#"{"author":{"$gte":{"__type":"Pointer","className":"_User","objectId":"a"}}}"#,
        ] {
            check(
                where_text,
                &[
                    (json!({"flag": false, "text": "a", "meta": {"a": 1}}), false),
                    (json!({"author": pointer("_User", "b")}), false),
                ],
            );
        }
    }

    #[test]
    fn in_and_nin() {
        check(
            r#"{"n":{"$in":[1,"a",null]}}"#,
            &[
                (json!({"n": 1}), true),
                (json!({"n": "a"}), true),
                (json!({}), true),
                (json!({"n": 2}), false),
                (json!({"n": [2, 1]}), true),
            ],
        );
        check(
            r#"{"n":{"$in":[]}}"#,
            &[(json!({"n": 1}), false), (json!({}), false)],
        );
        check(
            r#"{"n":{"$nin":[]}}"#,
            &[(json!({"n": 1}), true), (json!({}), true)],
        );
        check(
            r#"{"n":{"$nin":[1,2]}}"#,
            &[
                (json!({"n": 1}), false),
                (json!({"n": 3}), true),
                (json!({}), true),
                (json!({"n": [3, 2]}), false),
            ],
        );
        check(
            r#"{"tags":{"$in":[["a","b"]]}}"#,
            &[
                (json!({"tags": ["a", "b"]}), true),
                (json!({"tags": ["a"]}), false),
            ],
        );
        check(
            r#"{"objectId":{"$in":["o1","o2"]}}"#,
            &[(json!({}), true), (json!({"objectId": "o3"}), false)],
        );
    }

    #[test]
    fn all_and_contained_by() {
        check(
            r#"{"tags":{"$all":["a","b"]}}"#,
            &[
                (json!({"tags": ["b", "c", "a"]}), true),
                (json!({"tags": ["a"]}), false),
                (json!({"tags": "a"}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"tags":{"$all":[]}}"#,
            &[
                (json!({"tags": []}), false),
                (json!({"tags": ["a"]}), false),
            ],
        );
        check(
            r#"{"tags":{"$all":[null]}}"#,
            &[
                (json!({"tags": [null]}), true),
                (json!({"tags": []}), false),
            ],
        );
        check(
            r#"{"tags":{"$all":[{"$regex":"^\\Qab\\E"},{"$regex":"^c","$options":"i"}]}}"#,
            &[
                (json!({"tags": ["abc", "Cd"]}), true),
                (json!({"tags": ["abc"]}), false),
                (json!({"tags": ["xab", "c"]}), false),
                (json!({"tags": [1, "c"]}), false),
                (json!({"tags": "abc"}), false),
            ],
        );
        check(
            r#"{"tags":{"$containedBy":["a","b"]}}"#,
            &[
                (json!({"tags": ["a"]}), true),
                (json!({"tags": ["b", "a", "a"]}), true),
                (json!({"tags": []}), true),
                (json!({"tags": ["a", "c"]}), false),
                (json!({"tags": "a"}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"tags":{"$containedBy":[]}}"#,
            &[(json!({"tags": []}), true), (json!({"tags": [1]}), false)],
        );
    }

    #[test]
    fn exists() {
        // An explicit null exists (Mongo's rule); only a missing field does not.
        check(
            r#"{"text":{"$exists":true}}"#,
            &[
                (json!({"text": "a"}), true),
                (json!({"text": ""}), true),
                (json!({"text": false}), true),
                (json!({"text": null}), true),
                (json!({}), false),
            ],
        );
        check(
            r#"{"text":{"$exists":false}}"#,
            &[
                (json!({"text": "a"}), false),
                (json!({"text": null}), false),
                (json!({}), true),
            ],
        );
        // Dotted paths: a null member exists, a missing one does not, and a null met on the
        // way leaves the rest of the path missing.
        check(
            r#"{"meta.x":{"$exists":true}}"#,
            &[
                (json!({"meta": {"x": null}}), true),
                (json!({"meta": {"x": 0}}), true),
                (json!({"meta": {}}), false),
                (json!({"meta": null}), false),
                (json!({"meta": {"x": null, "y": 1}}), true),
                (json!({}), false),
            ],
        );
        check(
            r#"{"meta.x.y":{"$exists":false}}"#,
            &[
                (json!({"meta": {"x": null}}), true),
                (json!({"meta": {"x": {"y": null}}}), false),
            ],
        );
        check(
            r#"{"meta":{"$exists":true}}"#,
            &[(json!({"meta": null}), true), (json!({}), false)],
        );
        // A field the schema does not have is absent, even when the object carries it.
        check(
            r#"{"nope":{"$exists":false}}"#,
            &[(json!({"nope": 1}), true)],
        );
        check(r#"{"nope":1}"#, &[(json!({"nope": 1}), false)]);
    }

    /// Apart from `Exists`, an explicit null reads as a missing value.
    #[test]
    fn explicit_null_is_absent_except_for_exists() {
        let null = json!({"text": null, "n": null, "tags": null, "meta": null});
        let missing = json!({});
        for (where_text, expected) in [
            (r#"{"text":null}"#, true),
            (r#"{"text":{"$ne":null}}"#, false),
            (r#"{"text":{"$in":[null]}}"#, true),
            (r#"{"text":{"$nin":[null]}}"#, false),
            (r#"{"text":{"$ne":"a"}}"#, true),
            (r#"{"text":{"$nin":["a"]}}"#, true),
            (r#"{"text":"a"}"#, false),
            (r#"{"text":{"$in":["a"]}}"#, false),
            (r#"{"n":{"$lt":2}}"#, false),
            (r#"{"n":{"$gte":0}}"#, false),
            (r#"{"text":{"$regex":""}}"#, false),
            (r#"{"tags":{"$all":[null]}}"#, false),
            (r#"{"tags":{"$containedBy":[]}}"#, false),
            (r#"{"meta":{"$in":[{"a":1}]}}"#, false),
            (r#"{"meta.a":null}"#, true),
        ] {
            check(
                where_text,
                &[(null.clone(), expected), (missing.clone(), expected)],
            );
        }
        // Null items inside arrays keep their rules.
        check(
            r#"{"tags":null}"#,
            &[
                (json!({"tags": [null]}), false),
                (json!({"tags": null}), true),
            ],
        );
        check(
            r#"{"tags":{"$exists":true}}"#,
            &[
                (json!({"tags": [null]}), true),
                (json!({"tags": null}), true),
            ],
        );
    }

    #[test]
    fn regex() {
        check(
            r#"{"text":{"$regex":"^\\Qa.b\\E"}}"#,
            &[
                (json!({"text": "a.bc"}), true),
                (json!({"text": "axb"}), false),
                (json!({"text": "A.B"}), false),
                (json!({"text": ["a.b"]}), false),
                (json!({"text": 1}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"text":{"$regex":"^\\Qa.b\\E","$options":"i"}}"#,
            &[(json!({"text": "A.B"}), true)],
        );
        check(
            r#"{"text":{"$regex":""}}"#,
            &[(json!({"text": ""}), true), (json!({}), false)],
        );
    }

    #[test]
    fn text() {
        check(
            r#"{"text":{"$text":{"$search":{"$term":"rust async"}}}}"#,
            &[
                (json!({"text": "Async code in RUST"}), true),
                (json!({"text": "rust only"}), false),
                (json!({"text": "rusty async"}), false),
                (json!({"text": ["rust async"]}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":" "}}}}"#,
            &[(json!({"text": "x"}), false)],
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a.b (x"}}}}"#,
            &[
                (json!({"text": "see a.b(x here"}), true),
                // `\b` before `(` needs a word character right before it.
                (json!({"text": "see a.b (x here"}), false),
                (json!({"text": "axb(x"}), false),
            ],
        );
    }

    #[test]
    fn dotted_keys() {
        check(
            r#"{"meta.model":"gpt"}"#,
            &[
                (json!({"meta": {"model": "gpt"}}), true),
                (json!({"meta": {"model": "other"}}), false),
                (json!({"meta": {"model": ["gpt"]}}), true),
                (json!({"meta": "gpt"}), false),
                (json!({"meta": {}}), false),
                (json!({}), false),
            ],
        );
        check(
            r#"{"meta.usage.total":{"$gt":10}}"#,
            &[
                (json!({"meta": {"usage": {"total": 11}}}), true),
                (json!({"meta": {"usage": 11}}), false),
                (json!({"meta": {"usage": [{"total": 11}]}}), false),
            ],
        );
        check(
            r#"{"meta.a":{"$exists":false}}"#,
            &[
                (json!({"meta": {"a": null}}), false),
                (json!({"meta": {"a": 0}}), false),
                (json!({"meta": {}}), true),
            ],
        );
        check(
            r#"{"meta.a":null}"#,
            &[
                (json!({"meta": {"a": null}}), true),
                (json!({"meta": {}}), true),
                (json!({"meta": {"a": 0}}), false),
            ],
        );
        // A path on a field that is not an Object is absent.
        check(
            r#"{"author.objectId":"u1"}"#,
            &[(json!({"author": pointer("_User", "u1")}), false)],
        );
        check(
            r#"{"author.objectId":{"$exists":false}}"#,
            &[(json!({"author": pointer("_User", "u1")}), true)],
        );
        check(
            r#"{"createdAt.iso":{"$exists":true}}"#,
            &[(json!({}), false)],
        );
    }

    #[test]
    fn combinators() {
        check(
            r#"{"$or":[{"n":1},{"text":"a"}]}"#,
            &[
                (json!({"n": 1}), true),
                (json!({"text": "a"}), true),
                (json!({"n": 2, "text": "b"}), false),
            ],
        );
        check(
            r#"{"$and":[{"n":{"$gt":0}},{"n":{"$lt":2}}],"text":"a"}"#,
            &[
                (json!({"n": 1, "text": "a"}), true),
                (json!({"n": 1, "text": "b"}), false),
                (json!({"n": 3, "text": "a"}), false),
            ],
        );
        check(
            r#"{"$nor":[{"n":1},{"n":2}]}"#,
            &[
                (json!({"n": 1}), false),
                (json!({"n": 3}), true),
                (json!({}), true),
            ],
        );
        check(
            r#"{"meta":{"x":1,"$exists":true}}"#,
            &[
                (json!({"meta": {"x": 1}}), true),
                (json!({"meta": {"x": 2}}), false),
            ],
        );
    }

    #[test]
    fn filters_built_directly() {
        let field = FieldRef {
            field: "n".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::Number),
        };
        let cond = |cond: Cond| Filter::Cond {
            field: field.clone(),
            cond,
        };
        let sub_query = || {
            Box::new(SubQuery {
                class_name: "_User".to_owned(),
                filter: Filter::True,
            })
        };
        let everyone = vec!["*".to_owned()];
        let bob = vec!["bob".to_owned(), "role:admin".to_owned()];
        let public = object(&json!({"n": 1}));
        let private =
            object(&json!({"n": 1, "ACL": {"bob": {"read": true}, "role:admin": {"write": true}}}));
        let listed = object(&json!({"n": ["a"]}));
        let cases: Vec<(Filter, &Object, bool)> = vec![
            (Filter::True, &public, true),
            (Filter::False, &public, false),
            (Filter::And(Vec::new()), &public, true),
            (Filter::Or(Vec::new()), &public, false),
            (Filter::Nor(Vec::new()), &public, true),
            (Filter::Readable(everyone.clone()), &public, true),
            (Filter::Readable(everyone.clone()), &private, false),
            (Filter::Readable(bob.clone()), &private, true),
            (Filter::Writable(everyone.clone()), &public, true),
            (Filter::Writable(everyone.clone()), &private, false),
            (Filter::Writable(bob.clone()), &private, true),
            (Filter::Writable(vec!["bob".to_owned()]), &private, false),
            (
                Filter::RelatedTo {
                    owner_class: "Team".to_owned(),
                    owner_id: "t".to_owned(),
                    key: "members".to_owned(),
                },
                &public,
                false,
            ),
            (
                Filter::InQuery {
                    field: field.clone(),
                    query: sub_query(),
                    negate: true,
                },
                &public,
                false,
            ),
            (
                Filter::Select {
                    field: field.clone(),
                    query: sub_query(),
                    key: field.clone(),
                    negate: false,
                },
                &public,
                false,
            ),
            (cond(Cond::Eq(Operand::Number(1.0))), &public, true),
            (cond(Cond::Text(Vec::new())), &public, false),
            (cond(Cond::AllMatch(Vec::new())), &listed, false),
            (cond(Cond::Eq(Operand::Json(json!(1)))), &public, true),
            (cond(Cond::Eq(Operand::Json(json!(1.0)))), &public, false),
            (cond(Cond::Eq(Operand::Json(Value::Null))), &public, false),
            (cond(Cond::Lt(Operand::Json(json!(2)))), &public, false),
        ];
        for (idx, (filter, object, expected)) in cases.iter().enumerate() {
            assert_eq!(matches(filter, object), *expected, "case {idx}: {filter:?}");
        }
    }

    /// `EqIgnoreCase` folds ASCII letters only, sees strings only (not arrays, not other
    /// kinds), and is matchable.
    #[test]
    fn equality_ignoring_ascii_case() {
        let field = |name: &str, field_type: FieldType| FieldRef {
            field: name.to_owned(),
            path: Vec::new(),
            field_type: Some(field_type),
        };
        let text = |operand: &str| Filter::Cond {
            field: field("text", FieldType::String),
            cond: Cond::EqIgnoreCase(operand.to_owned()),
        };
        let cases: Vec<(Filter, Value, bool)> = vec![
            (
                text("Bob@Example.COM"),
                json!({"text": "bob@example.com"}),
                true,
            ),
            (text("bob"), json!({"text": "BOB"}), true),
            (text("bob"), json!({"text": "bobby"}), false),
            (text("é"), json!({"text": "É"}), false),
            (text("é"), json!({"text": "é"}), true),
            (text("Straße"), json!({"text": "STRASSE"}), false),
            (text("a"), json!({"text": ["A"]}), false),
            (text(""), json!({"text": ""}), true),
            (text(""), json!({}), false),
            (text(""), json!({"text": null}), false),
            (text("1"), json!({"text": 1}), false),
        ];
        for (idx, (filter, json, expected)) in cases.iter().enumerate() {
            assert!(filter.is_matchable());
            assert_eq!(
                matches(filter, &object(json)),
                *expected,
                "case {idx}: {filter:?}"
            );
        }
    }

    /// A condition on a Relation field (membership) needs the join table: the matcher says
    /// false for every form, negations included, and the filter is not matchable.
    #[test]
    fn relation_conditions_need_the_database() {
        let likes = FieldRef {
            field: "likes".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::Relation("_User".into())),
        };
        let user = Operand::Pointer {
            class_name: "_User".to_owned(),
            object_id: "u1".to_owned(),
        };
        let stored = object(&json!({"likes": [pointer("_User", "u1")]}));
        for cond in [
            Cond::Eq(user.clone()),
            Cond::Ne(user.clone()),
            Cond::In(vec![user.clone()]),
            Cond::Nin(vec![user.clone()]),
            Cond::Exists(false),
        ] {
            let filter = Filter::Cond {
                field: likes.clone(),
                cond,
            };
            assert!(!filter.is_matchable(), "{filter:?}");
            assert!(!Filter::Or(vec![Filter::True, filter.clone()]).is_matchable());
            assert!(!matches(&filter, &stored), "{filter:?}");
        }
        let parsed = parse(r#"{"likes":{"__type":"Pointer","className":"_User","objectId":"u1"}}"#)
            .unwrap_or(Filter::True);
        assert!(!parsed.is_matchable(), "{parsed:?}");
    }

    #[test]
    fn hostile_objects() {
        let mut deep = json!("x");
        for _ in 0..100 {
            deep = json!({"a": deep});
        }
        check(
            r#"{"meta.a.a.a":{"$exists":true}}"#,
            &[(json!({"meta": deep}), true)],
        );
        let huge: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
        check(
            r#"{"tags":{"$all":[99999,0]},"n":{"$nin":[-1]}}"#,
            &[(json!({"tags": huge, "n": huge}), true)],
        );
        check(
            r#"{"meta.weird_key":1}"#,
            &[(
                json!({"meta": {"weird_key": 1, "": 2, "a.b": 3, "$x": 4}}),
                true,
            )],
        );
        check(
            r#"{"when":{"$gt":{"__type":"Date","iso":"2024-01-01T00:00:00Z"}}}"#,
            &[
                (json!({"when": {"__type": "Date"}}), false),
                (json!({"when": {"__type": "Date", "iso": 5}}), false),
                // An unparseable iso compares as written (the SQL side cannot parse it either).
                (
                    json!({"when": {"__type": "Date", "iso": "not a date"}}),
                    true,
                ),
                (json!({"when": {"__type": "Date", "iso": "1999"}}), false),
                (json!({"when": {"__type": "Pointer"}}), false),
            ],
        );
        check(
            r#"{"author":{"$ne":{"__type":"Pointer","className":"_User","objectId":"u"}}}"#,
            &[(
                json!({"author": {"__type": "Pointer", "objectId": "u"}}),
                true,
            )],
        );
    }
}
