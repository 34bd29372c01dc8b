//! GraphQL inputs → Parse's REST JSON: `where` inputs → a `where` object (§3.2), field
//! inputs → a write body with `__type` values and `__op` operations (§2.2, §2.7), ACL inputs
//! → an ACL. The operation layer then parses and checks them exactly as it does REST's.
//!
//! Nested creates (`createAndLink`, `createAndAdd`) are not done here: they are collected
//! for the resolver, which plans them with the parent so all commit together.

use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value, json};

use super::names::object_id_of;
use crate::operation::SchemaCache;

/// GraphQL constraint names → Parse query operators.
fn operator(name: &str) -> Option<&'static str> {
    Some(match name {
        "equalTo" => "$eq",
        "notEqualTo" => "$ne",
        "lessThan" => "$lt",
        "lessThanOrEqualTo" => "$lte",
        "greaterThan" => "$gt",
        "greaterThanOrEqualTo" => "$gte",
        "in" => "$in",
        "notIn" => "$nin",
        "exists" => "$exists",
        "inQueryKey" => "$select",
        "notInQueryKey" => "$dontSelect",
        "containedBy" => "$containedBy",
        "contains" => "$all",
        "matchesRegex" => "$regex",
        "options" => "$options",
        "text" => "$text",
        "nearSphere" => "$nearSphere",
        "maxDistance" => "$maxDistance",
        "maxDistanceInRadians" => "$maxDistanceInRadians",
        "maxDistanceInMiles" => "$maxDistanceInMiles",
        "maxDistanceInKilometers" => "$maxDistanceInKilometers",
        "within" => "$within",
        "geoWithin" => "$geoWithin",
        "geoIntersects" => "$geoIntersects",
        _ => return None,
    })
}

fn geo_point(value: &Value) -> Value {
    let mut point = value.as_object().cloned().unwrap_or_default();
    point.insert("__type".into(), "GeoPoint".into());
    Value::Object(point)
}

/// A constraint value in the Parse encoding of a field's type.
fn encode_operand(field_type: Option<&FieldType>, value: &Value) -> Value {
    match (field_type, value) {
        (Some(FieldType::Date), Value::String(iso)) => json!({"__type": "Date", "iso": iso}),
        (Some(FieldType::Bytes), Value::String(base64)) => {
            json!({"__type": "Bytes", "base64": base64})
        }
        (Some(FieldType::File), Value::String(name)) => json!({"__type": "File", "name": name}),
        (_, Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|item| encode_operand(field_type, item))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// A `<Class>WhereInput` value → a Parse `where` object for `class_name`.
pub fn where_to_parse(schemas: &SchemaCache, class_name: &str, input: &Value) -> Value {
    let schema = schemas.get(class_name);
    let mut out = Map::new();
    let Some(input) = input.as_object() else {
        return Value::Object(out);
    };
    for (name, constraints) in input {
        match name.as_str() {
            "AND" | "OR" | "NOR" => {
                let branches = constraints
                    .as_array()
                    .map(|branches| {
                        branches
                            .iter()
                            .map(|branch| where_to_parse(schemas, class_name, branch))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(format!("${}", name.to_lowercase()), Value::Array(branches));
            }
            "id" | "objectId" => {
                let mut converted = Map::new();
                for (constraint, value) in constraints.as_object().into_iter().flatten() {
                    let value = match value {
                        Value::String(id) => Value::String(object_id_of(class_name, id)),
                        Value::Array(ids) => Value::Array(
                            ids.iter()
                                .map(|id| match id {
                                    Value::String(id) => {
                                        Value::String(object_id_of(class_name, id))
                                    }
                                    other => other.clone(),
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    add_constraint(
                        schemas,
                        &mut converted,
                        constraint,
                        &value,
                        None,
                        &mut out,
                        "objectId",
                    );
                }
                merge_into(&mut out, "objectId", converted);
            }
            field => {
                let field_type = match field {
                    "createdAt" | "updatedAt" => Some(FieldType::Date),
                    _ => schema
                        .as_ref()
                        .and_then(|schema| schema.field_type(field).cloned()),
                };
                let converted =
                    field_constraints(schemas, field, field_type.as_ref(), constraints, &mut out);
                if let Some(converted) = converted {
                    merge_into(&mut out, field, converted);
                }
            }
        }
    }
    Value::Object(out)
}

fn merge_into(out: &mut Map<String, Value>, key: &str, constraints: Map<String, Value>) {
    if constraints.is_empty() {
        return;
    }
    match out.get_mut(key).and_then(Value::as_object_mut) {
        Some(existing) => existing.extend(constraints),
        None => {
            out.insert(key.to_owned(), Value::Object(constraints));
        }
    }
}

/// A `have` input that only names objects of `target` by id (`{objectId: {equalTo: x}}` or
/// `{id: {in: […]}}`): the pointer operator and operand it amounts to.
fn by_id(target: &str, have: &Value) -> Option<(&'static str, Value)> {
    let have = have.as_object()?;
    let (key, constraint) = have.iter().next().filter(|_| have.len() == 1)?;
    if !matches!(key.as_str(), "objectId" | "id") {
        return None;
    }
    let constraint = constraint.as_object()?;
    let (operator, operand) = constraint.iter().next().filter(|_| constraint.len() == 1)?;
    let pointer = |id: &Value| {
        id.as_str().map(|id| {
            json!({"__type": "Pointer", "className": target, "objectId": object_id_of(target, id)})
        })
    };
    match operator.as_str() {
        "equalTo" => Some(("$eq", pointer(operand)?)),
        "in" => {
            let pointers: Option<Vec<Value>> = operand.as_array()?.iter().map(pointer).collect();
            Some(("$in", Value::Array(pointers?)))
        }
        _ => None,
    }
}

/// One field's constraints; `None` when they all went to other keys of `out` (`{key, value}`
/// constraints on an Object field become `field.key` entries).
fn field_constraints(
    schemas: &SchemaCache,
    field: &str,
    field_type: Option<&FieldType>,
    constraints: &Value,
    out: &mut Map<String, Value>,
) -> Option<Map<String, Value>> {
    let mut converted = Map::new();
    let constraints = constraints.as_object()?;
    if let Some(FieldType::Pointer(target) | FieldType::Relation(target)) = field_type {
        let is_relation = matches!(field_type, Some(FieldType::Relation(_)));
        for (name, value) in constraints {
            match name.as_str() {
                "have" if !is_relation && by_id(target, value).is_some() => {
                    // `have: {objectId: {equalTo: x}}` names the object itself: a pointer
                    // comparison (which live subscriptions can follow, and SQL answers from
                    // the column), rather than a subquery.
                    if let Some((operator, operand)) = by_id(target, value) {
                        converted.insert(operator.to_owned(), operand);
                    }
                }
                "have" | "haveNot" => {
                    let operator = if name == "have" {
                        "$inQuery"
                    } else {
                        "$notInQuery"
                    };
                    converted.insert(
                        operator.to_owned(),
                        json!({"className": target, "where": where_to_parse(schemas, target, value)}),
                    );
                }
                "exists" if is_relation => {
                    let operator = if value.as_bool() == Some(false) {
                        "$notInQuery"
                    } else {
                        "$inQuery"
                    };
                    converted.insert(
                        operator.to_owned(),
                        json!({"className": target, "where": {"objectId": {"$exists": true}}}),
                    );
                }
                "exists" => {
                    converted.insert("$exists".to_owned(), value.clone());
                }
                _ => {}
            }
        }
        return Some(converted);
    }
    for (name, value) in constraints {
        add_constraint(schemas, &mut converted, name, value, field_type, out, field);
    }
    Some(converted)
}

/// Adds one constraint of `field` to `converted` (or, for an Object field's `{key, value}`,
/// to `out` under `field.key`).
fn add_constraint(
    schemas: &SchemaCache,
    converted: &mut Map<String, Value>,
    name: &str,
    value: &Value,
    field_type: Option<&FieldType>,
    out: &mut Map<String, Value>,
    field: &str,
) {
    let Some(op) = operator(name) else {
        return;
    };
    // `{key, value}` on an Object field: `field.key` compared with `value`.
    if let Some(pair) = value.as_object()
        && let (Some(Value::String(key)), Some(inner)) = (pair.get("key"), pair.get("value"))
    {
        let entry = out
            .entry(format!("{field}.{key}"))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(entry) = entry.as_object_mut() {
            entry.insert(op.to_owned(), inner.clone());
        }
        return;
    }
    let encoded = match name {
        "inQueryKey" | "notInQueryKey" => {
            let query = value.get("query").cloned().unwrap_or(Value::Null);
            let class_name = query
                .get("className")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let inner_where = query.get("where").cloned().unwrap_or(json!({}));
            json!({
                "query": {"className": class_name, "where": where_to_parse(schemas, &class_name, &inner_where)},
                "key": value.get("key").cloned().unwrap_or(Value::Null),
            })
        }
        "text" => {
            let search = value.get("search").cloned().unwrap_or(Value::Null);
            let mut converted = Map::new();
            for (key, inner) in search.as_object().into_iter().flatten() {
                converted.insert(format!("${key}"), inner.clone());
            }
            json!({"$search": converted})
        }
        "nearSphere" => geo_point(value),
        "within" => {
            let corners = value.get("box").cloned().unwrap_or(Value::Null);
            json!({"$box": [
                geo_point(corners.get("bottomLeft").unwrap_or(&Value::Null)),
                geo_point(corners.get("upperRight").unwrap_or(&Value::Null)),
            ]})
        }
        "geoWithin" => {
            let mut within = Map::new();
            if let Some(points) = value.get("polygon").and_then(Value::as_array) {
                within.insert(
                    "$polygon".into(),
                    Value::Array(points.iter().map(geo_point).collect()),
                );
            }
            if let Some(sphere) = value.get("centerSphere") {
                within.insert(
                    "$centerSphere".into(),
                    json!([
                        geo_point(sphere.get("center").unwrap_or(&Value::Null)),
                        sphere.get("distance").cloned().unwrap_or(Value::Null)
                    ]),
                );
            }
            Value::Object(within)
        }
        "geoIntersects" => {
            json!({"$point": geo_point(value.get("point").unwrap_or(&Value::Null))})
        }
        _ => encode_operand(field_type, value),
    };
    converted.insert(op.to_owned(), encoded);
}

/// An `ACLInput` → a Parse ACL object.
pub fn acl_to_parse(input: &Value) -> Value {
    let mut acl = Map::new();
    let rights = |rule: &Value| {
        let mut rights = Map::new();
        for right in ["read", "write"] {
            if rule.get(right).and_then(Value::as_bool) == Some(true) {
                rights.insert(right.to_owned(), Value::Bool(true));
            }
        }
        Value::Object(rights)
    };
    if let Some(public) = input.get("public").filter(|public| !public.is_null()) {
        acl.insert("*".into(), rights(public));
    }
    for rule in input
        .get("users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(user_id) = rule.get("userId").and_then(Value::as_str) {
            acl.insert(object_id_of("_User", user_id), rights(rule));
        }
    }
    for rule in input
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(role) = rule.get("roleName").and_then(Value::as_str) {
            acl.insert(format!("role:{role}"), rights(rule));
        }
    }
    // Rights with neither read nor write grant nothing: leave them out.
    acl.retain(|_, rights| rights.as_object().is_some_and(|map| !map.is_empty()));
    Value::Object(acl)
}

/// An object to create inside a write (`createAndLink`, `createAndAdd`): its class and
/// its fields input, with the write it belongs to pointing at `placeholder`.
#[derive(Debug, Clone)]
pub struct NestedCreate {
    pub class_name: String,
    pub fields: Value,
    /// Where the created object's pointer goes: the field of the parent body, and for a
    /// relation the index in its `AddRelation` objects.
    pub field: String,
    pub relation_index: Option<usize>,
}

/// A `Create<Class>FieldsInput` / `Update<Class>FieldsInput` → a Parse write body, plus the
/// nested creates the body's pointers and relations wait for. File uploads are already
/// replaced by their stored file in `input` (see the resolver).
pub fn fields_to_parse(
    schema: &ClassSchema,
    input: &Value,
    updating: bool,
) -> Result<(Map<String, Value>, Vec<NestedCreate>), String> {
    let mut body = Map::new();
    let mut nested = Vec::new();
    let Some(input) = input.as_object() else {
        return Ok((body, nested));
    };
    for (field, value) in input {
        if field == "ACL" {
            body.insert(
                "ACL".into(),
                if value.is_null() {
                    Value::Null
                } else {
                    acl_to_parse(value)
                },
            );
            continue;
        }
        let field_type = schema.field_type(field);
        if value.is_null() {
            // null unsets the field (on create: leaves it out).
            if updating {
                body.insert(field.clone(), json!({"__op": "Delete"}));
            }
            continue;
        }
        let encoded = match field_type {
            Some(FieldType::Date) => match value {
                Value::String(iso) => json!({"__type": "Date", "iso": iso}),
                other => other.clone(),
            },
            Some(FieldType::GeoPoint) => geo_point(value),
            Some(FieldType::Polygon) => {
                let coordinates: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|point| json!([point.get("latitude"), point.get("longitude")]))
                    .collect();
                json!({"__type": "Polygon", "coordinates": coordinates})
            }
            Some(FieldType::Bytes) => match value {
                Value::String(base64) => json!({"__type": "Bytes", "base64": base64}),
                other => other.clone(),
            },
            Some(FieldType::File) => {
                let file = value.get("file").filter(|file| !file.is_null());
                match file {
                    Some(Value::String(name)) => json!({"__type": "File", "name": name}),
                    Some(Value::Object(info)) => {
                        let mut info = info.clone();
                        info.insert("__type".into(), "File".into());
                        Value::Object(info)
                    }
                    _ => return Err(format!("Invalid file upload for field {field}.")),
                }
            }
            Some(FieldType::Pointer(target)) => {
                let object = value.as_object().cloned().unwrap_or_default();
                let link = object.get("link").filter(|link| !link.is_null());
                let create = object
                    .get("createAndLink")
                    .filter(|create| !create.is_null());
                match (link, create) {
                    (Some(Value::String(link)), None) => json!({
                        "__type": "Pointer", "className": target, "objectId": object_id_of(target, link),
                    }),
                    (None, Some(create)) => {
                        nested.push(NestedCreate {
                            class_name: target.clone(),
                            fields: create.clone(),
                            field: field.clone(),
                            relation_index: None,
                        });
                        // Filled in once the nested object is planned.
                        Value::Null
                    }
                    _ => {
                        return Err(format!(
                            "You need to provide link OR createLink on the pointer mutation of field {field}"
                        ));
                    }
                }
            }
            Some(FieldType::Relation(target)) => {
                let object = value.as_object().cloned().unwrap_or_default();
                let pointers = |ids: Option<&Value>| -> Vec<Value> {
                    ids.and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|id| json!({"__type": "Pointer", "className": target, "objectId": object_id_of(target, id)}))
                        .collect()
                };
                let mut added = pointers(object.get("add"));
                for create in object
                    .get("createAndAdd")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    nested.push(NestedCreate {
                        class_name: target.clone(),
                        fields: create.clone(),
                        field: field.clone(),
                        relation_index: Some(added.len()),
                    });
                    added.push(Value::Null);
                }
                let removed = pointers(object.get("remove"));
                let mut ops = Vec::new();
                if !added.is_empty() {
                    ops.push(json!({"__op": "AddRelation", "objects": added}));
                }
                if !removed.is_empty() {
                    ops.push(json!({"__op": "RemoveRelation", "objects": removed}));
                }
                match ops.len() {
                    0 => {
                        return Err(format!(
                            "You need to provide at least one operation on the relation mutation of field {field}"
                        ));
                    }
                    1 => ops.pop().unwrap_or_default(),
                    _ => json!({"__op": "Batch", "ops": ops}),
                }
            }
            _ => value.clone(),
        };
        body.insert(field.clone(), encoded);
    }
    Ok((body, nested))
}

/// Puts a nested object's pointer where its create left a hole in `body`.
pub fn fill_nested(body: &mut Map<String, Value>, nested: &NestedCreate, object_id: &str) {
    let pointer =
        json!({"__type": "Pointer", "className": nested.class_name, "objectId": object_id});
    let Some(slot) = body.get_mut(&nested.field) else {
        return;
    };
    match nested.relation_index {
        None => *slot = pointer,
        Some(index) => {
            // Either the AddRelation itself or the first op of a Batch.
            let add = if slot.get("__op").and_then(Value::as_str) == Some("Batch") {
                slot.get_mut("ops").and_then(|ops| ops.get_mut(0))
            } else {
                Some(slot)
            };
            if let Some(hole) = add
                .and_then(|add| add.get_mut("objects"))
                .and_then(|objects| objects.get_mut(index))
            {
                *hole = pointer;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_core::schema::FieldSchema;

    fn cache() -> SchemaCache {
        let mut message = ClassSchema::new("Message");
        for (name, field_type) in [
            ("content", FieldType::String),
            ("session", FieldType::Pointer("ChatSession".into())),
            ("meta", FieldType::Object),
            ("sentAt", FieldType::Date),
            ("readers", FieldType::Relation("_User".into())),
        ] {
            message
                .fields
                .insert(name.into(), FieldSchema::of(field_type));
        }
        let mut session = ClassSchema::new("ChatSession");
        session
            .fields
            .insert("title".into(), FieldSchema::of(FieldType::String));
        SchemaCache::new(vec![message, session, ClassSchema::new("_User")])
    }

    #[test]
    fn where_inputs_become_parse_queries() {
        let schemas = cache();
        let input = json!({
            "content": {"equalTo": "hi", "notIn": ["a"]},
            "session": {"have": {"title": {"matchesRegex": "^T", "options": "i"}}},
            "meta": {"greaterThan": {"key": "n", "value": 3}},
            "sentAt": {"lessThan": "2024-01-01T00:00:00.000Z"},
            "id": {"in": [crate::graphql::names::global_id("Message", "abc"), "def"]},
            "OR": [{"content": {"exists": false}}, {"session": {"have": {"id": {"equalTo": crate::graphql::names::global_id("ChatSession", "s1")}}}}],
        });
        assert_eq!(
            where_to_parse(&schemas, "Message", &input),
            json!({
                "content": {"$eq": "hi", "$nin": ["a"]},
                "session": {"$inQuery": {"className": "ChatSession", "where": {"title": {"$regex": "^T", "$options": "i"}}}},
                "meta.n": {"$gt": 3},
                "sentAt": {"$lt": {"__type": "Date", "iso": "2024-01-01T00:00:00.000Z"}},
                "objectId": {"$in": ["abc", "def"]},
                "$or": [{"content": {"$exists": false}}, {"session": {"$eq": {"__type": "Pointer", "className": "ChatSession", "objectId": "s1"}}}],
            })
        );
    }

    #[test]
    fn field_inputs_become_write_bodies() {
        let schemas = cache();
        let schema = schemas
            .get("Message")
            .unwrap_or_else(|| std::sync::Arc::new(ClassSchema::new("Message")));
        let input = json!({
            "content": "hello",
            "session": {"createAndLink": {"title": "T"}},
            "readers": {"add": ["u1"], "remove": ["u2"]},
            "ACL": {"public": {"read": true, "write": false}, "users": [{"userId": crate::graphql::names::global_id("_User", "u1"), "read": true, "write": true}]},
            "meta": null,
        });
        let (mut body, nested) = fields_to_parse(&schema, &input, true).unwrap_or_default();
        assert_eq!(nested.len(), 1);
        fill_nested(&mut body, &nested[0], "newId");
        assert_eq!(
            Value::Object(body),
            json!({
                "content": "hello",
                "session": {"__type": "Pointer", "className": "ChatSession", "objectId": "newId"},
                "readers": {"__op": "Batch", "ops": [
                    {"__op": "AddRelation", "objects": [{"__type": "Pointer", "className": "_User", "objectId": "u1"}]},
                    {"__op": "RemoveRelation", "objects": [{"__type": "Pointer", "className": "_User", "objectId": "u2"}]},
                ]},
                "ACL": {"*": {"read": true}, "u1": {"read": true, "write": true}},
                "meta": {"__op": "Delete"},
            })
        );
        let both = json!({"session": {"link": "x", "createAndLink": {}}});
        assert!(fields_to_parse(&schema, &both, false).is_err());
    }
}
