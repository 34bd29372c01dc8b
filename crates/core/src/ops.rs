//! Field operators of a write (§2.7): parsed from the request body, applied to a stored state.
//!
//! The store applies [`apply`] to the current value inside the write transaction, so an
//! `Increment` or `AddUnique` from two concurrent requests loses nothing.

use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::value;

/// What a write does to one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOp {
    /// Sets the value (already validated; `Null` stores null).
    Set(Value),
    /// Unsets the field.
    Delete,
    Increment(serde_json::Number),
    Add(Vec<Value>),
    AddUnique(Vec<Value>),
    Remove(Vec<Value>),
    /// Adds and removes members of a relation (object ids of `target_class`).
    Relation {
        target_class: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
}

/// One change of a write: a top-level field, a path inside it for dotted keys, and the op.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldUpdate {
    pub field: String,
    /// Keys inside an Object field (`{"meta.tokens": …}` → field `meta`, path `["tokens"]`).
    pub path: Vec<String>,
    pub op: FieldOp,
}

impl FieldUpdate {
    /// Whether the response must echo the resulting value (§2.5: the array and number ops).
    pub fn echoes_result(&self) -> bool {
        matches!(
            self.op,
            FieldOp::Increment(_) | FieldOp::Add(_) | FieldOp::AddUnique(_) | FieldOp::Remove(_)
        )
    }
}

/// Parses a body value: an `{"__op":…}` object becomes its op, anything else a validated `Set`.
pub fn parse_op(raw: &Value) -> Result<FieldOp> {
    let Some(op_name) = raw
        .as_object()
        .and_then(|map| map.get("__op"))
        .map(|op| op.as_str())
    else {
        return value::validate_typed(raw).map(FieldOp::Set);
    };
    let map = raw.as_object().cloned().unwrap_or_default();
    let objects = |message: &'static str| -> Result<Vec<Value>> {
        match map.get("objects") {
            Some(Value::Array(items)) => items.iter().map(value::validate_typed).collect(),
            _ => Err(Error::invalid_json(message)),
        }
    };
    match op_name {
        Some("Increment") => match map.get("amount") {
            Some(Value::Number(amount)) => Ok(FieldOp::Increment(amount.clone())),
            _ => Err(Error::invalid_json("incrementing must provide a number")),
        },
        Some("Delete") => Ok(FieldOp::Delete),
        Some("Add") => objects("objects to add must be an array").map(FieldOp::Add),
        Some("AddUnique") => objects("objects to add must be an array").map(FieldOp::AddUnique),
        Some("Remove") => objects("objects to remove must be an array").map(FieldOp::Remove),
        Some("AddRelation") => relation_op(&map, true),
        Some("RemoveRelation") => relation_op(&map, false),
        Some("Batch") => {
            let ops = map
                .get("ops")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::invalid_json("Batch ops must be an array"))?;
            let mut merged: Option<FieldOp> = None;
            for op in ops {
                let FieldOp::Relation {
                    target_class,
                    add,
                    remove,
                } = parse_op(op)?
                else {
                    return Err(Error::invalid_json("only relation ops may be batched"));
                };
                merged = Some(match merged {
                    None => FieldOp::Relation {
                        target_class,
                        add,
                        remove,
                    },
                    Some(FieldOp::Relation {
                        target_class: known,
                        add: mut all_add,
                        remove: mut all_remove,
                    }) => {
                        if known != target_class {
                            return Err(Error::incorrect_type(
                                "related objects must all be of the same class",
                            ));
                        }
                        all_add.extend(add);
                        all_remove.extend(remove);
                        FieldOp::Relation {
                            target_class: known,
                            add: all_add,
                            remove: all_remove,
                        }
                    }
                    Some(other) => other,
                });
            }
            merged.ok_or_else(|| Error::invalid_json("Batch ops must not be empty"))
        }
        Some(other) => Err(Error::new(
            Code::CommandUnavailable,
            format!("The {other} operator is not supported."),
        )),
        None => Err(Error::invalid_json("__op must be a string")),
    }
}

fn relation_op(map: &Map<String, Value>, adding: bool) -> Result<FieldOp> {
    let items = map
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_json("relation objects must be an array"))?;
    let mut target_class: Option<String> = None;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let (class_name, object_id) = value::as_pointer(item)
            .ok_or_else(|| Error::new(Code::InvalidPointer, "relation objects must be pointers"))?;
        match &target_class {
            Some(known) if known != class_name => {
                return Err(Error::incorrect_type(
                    "related objects must all be of the same class",
                ));
            }
            Some(_) => {}
            None => target_class = Some(class_name.to_owned()),
        }
        ids.push(object_id.to_owned());
    }
    let target_class =
        target_class.ok_or_else(|| Error::invalid_json("relation objects must not be empty"))?;
    Ok(if adding {
        FieldOp::Relation {
            target_class,
            add: ids,
            remove: Vec::new(),
        }
    } else {
        FieldOp::Relation {
            target_class,
            add: Vec::new(),
            remove: ids,
        }
    })
}

/// The value a field takes after `op`, from its current value (`None` = unset).
/// Relation ops do not touch the field's value and return it unchanged.
pub fn apply(current: Option<&Value>, op: &FieldOp) -> Result<Option<Value>> {
    Ok(match op {
        FieldOp::Set(new_value) => Some(new_value.clone()),
        FieldOp::Delete => None,
        FieldOp::Increment(amount) => {
            let sum = match current {
                None | Some(Value::Null) => Value::Number(amount.clone()),
                Some(Value::Number(current)) => add_numbers(current, amount),
                Some(_) => {
                    return Err(Error::invalid_json(
                        "Cannot increment a field that is not a number",
                    ));
                }
            };
            Some(sum)
        }
        FieldOp::Add(items) => {
            let mut array = current_array(current)?;
            array.extend(items.iter().cloned());
            Some(Value::Array(array))
        }
        FieldOp::AddUnique(items) => {
            let mut array = current_array(current)?;
            for item in items {
                if !array.iter().any(|existing| same_item(existing, item)) {
                    array.push(item.clone());
                }
            }
            Some(Value::Array(array))
        }
        FieldOp::Remove(items) => {
            let mut array = current_array(current)?;
            array.retain(|existing| !items.iter().any(|item| same_item(existing, item)));
            Some(Value::Array(array))
        }
        FieldOp::Relation { .. } => current.cloned(),
    })
}

/// Applies `op` at `path` inside an Object value (dotted-key writes).
pub fn apply_at_path(
    current: Option<&Value>,
    path: &[String],
    op: &FieldOp,
) -> Result<Option<Value>> {
    let Some((key, rest)) = path.split_first() else {
        return apply(current, op);
    };
    let mut map = match current {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(Error::incorrect_type(
                "cannot write a dotted key into a field that is not an Object",
            ));
        }
    };
    match apply_at_path(map.get(key), rest, op)? {
        Some(new_value) => map.insert(key.clone(), new_value),
        None => map.remove(key),
    };
    Ok(Some(Value::Object(map)))
}

fn current_array(current: Option<&Value>) -> Result<Vec<Value>> {
    match current {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(Error::incorrect_type(
            "cannot apply an array operation to a field that is not an Array",
        )),
    }
}

/// Array items are the same when deeply equal; pointers compare class and id only.
fn same_item(left: &Value, right: &Value) -> bool {
    match (value::as_pointer(left), value::as_pointer(right)) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
}

fn add_numbers(left: &serde_json::Number, right: &serde_json::Number) -> Value {
    if let (Some(a), Some(b)) = (left.as_i64(), right.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Value::from(sum);
    }
    let sum = left.as_f64().unwrap_or(0.0) + right.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(sum)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn op(raw: Value) -> FieldOp {
        parse_op(&raw).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn increment_keeps_integers_and_starts_from_amount() {
        let increment = op(json!({"__op": "Increment", "amount": 2}));
        assert_eq!(apply(Some(&json!(3)), &increment), Ok(Some(json!(5))));
        assert_eq!(apply(None, &increment), Ok(Some(json!(2))));
        let half = op(json!({"__op": "Increment", "amount": 0.5}));
        assert_eq!(apply(Some(&json!(1)), &half), Ok(Some(json!(1.5))));
    }

    #[test]
    fn bad_payloads_have_parse_codes() {
        let error = parse_op(&json!({"__op": "Increment", "amount": "x"})).unwrap_err();
        assert_eq!(error.code, Code::InvalidJson);
        let error = parse_op(&json!({"__op": "Add", "objects": 1})).unwrap_err();
        assert_eq!(error.code, Code::InvalidJson);
        let error = parse_op(&json!({"__op": "Frobnicate"})).unwrap_err();
        assert_eq!(error.code, Code::CommandUnavailable);
    }

    #[test]
    fn add_unique_compares_pointers_by_identity_and_keeps_order() {
        let existing = json!(["a", {"__type": "Pointer", "className": "U", "objectId": "1"}]);
        let add = op(json!({"__op": "AddUnique", "objects": [
            {"__type": "Object", "className": "U", "objectId": "1", "name": "x"}, "b", "a", "c"]}));
        assert_eq!(
            apply(Some(&existing), &add),
            Ok(Some(
                json!(["a", {"__type": "Pointer", "className": "U", "objectId": "1"}, "b", "c"])
            ))
        );
        let remove = op(json!({"__op": "Remove", "objects": ["a"]}));
        assert_eq!(
            apply(Some(&json!(["a", "b", "a"])), &remove),
            Ok(Some(json!(["b"])))
        );
        assert_eq!(apply(None, &remove), Ok(Some(json!([]))));
    }

    #[test]
    fn dotted_writes_keep_sibling_keys() {
        let current = json!({"a": 1, "b": {"c": 2}});
        let set = op(json!(5));
        assert_eq!(
            apply_at_path(Some(&current), &["b".into(), "d".into()], &set),
            Ok(Some(json!({"a": 1, "b": {"c": 2, "d": 5}})))
        );
    }
}
