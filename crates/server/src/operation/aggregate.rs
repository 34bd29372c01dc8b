//! `GET /aggregate/:className`: aggregation pipelines and `distinct`, master key only (as
//! Parse Server: its router refuses any other caller with `403 unauthorized: master key is
//! required`, so neither CLPs nor ACLs apply).
//!
//! The request's `where` and each `$match` whose input still has the class's fields are
//! read as a Parse `where` ([`parse_where`], with the aggregate spellings Parse accepts:
//! `_id`, `_created_at`, `_p_field`, dates and pointer ids as plain strings), so they mean
//! what they mean in a find; the store translates the whole pipeline to SQL.

use std::sync::Arc;

use parlor_core::query::parse_where;
use parlor_core::query::pipeline::{
    Aggregate, Match, Projected, Projection, Stage, api_field_name, parse_pipeline,
};
use parlor_core::schema::{ClassSchema, FieldType, is_internal_field};
use parlor_core::value;
use parlor_core::{Code, Error};
use serde_json::{Map, Value};

use super::read::CallerQueryContext;
use super::{Auth, OpError, OpResult, Operations};

/// Request parameters of `/aggregate` that are not pipeline stages. `rawValues` and
/// `rawFieldNames` (the SDK's options for Parse Server 9.9's MongoDB-native pipelines) are
/// accepted and change nothing: values and names are always read as Parse's.
const OPTIONS: [&str; 9] = [
    "where",
    "distinct",
    "pipeline",
    "hint",
    "explain",
    "readPreference",
    "comment",
    "rawValues",
    "rawFieldNames",
];

impl Operations {
    /// `GET /aggregate/:className` with `pipeline` (or `$stage` parameters), or `distinct`.
    /// The results of a class that does not exist are empty. `orders`: the key orders of the
    /// request's JSON as written ([`parlor_core::query::pipeline::key_orders`]).
    pub async fn aggregate(
        &self,
        auth: &Auth,
        class_name: &str,
        params: &Map<String, Value>,
        orders: &[Vec<String>],
    ) -> OpResult<Vec<Value>> {
        if !auth.master {
            return Err(OpError::MasterKeyRequired);
        }
        let where_json =
            match params.get("where") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(Value::String(text)) => serde_json::from_str(text)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| Error::invalid_json("Invalid JSON in where"))?,
                Some(where_json @ Value::Object(_)) => where_json.clone(),
                Some(_) => return Err(Error::invalid_query("where must be a JSON object").into()),
            };
        let distinct = match params.get("distinct") {
            None => None,
            Some(Value::String(field)) => Some(field.clone()),
            Some(other) => Some(other.to_string()),
        };
        let stages = if distinct.is_some() {
            Vec::new()
        } else {
            parse_pipeline(params, &OPTIONS, orders)?
        };
        let Some(schema) = self.schemas.get(class_name) else {
            return Ok(Vec::new());
        };
        // What no caller may read back (`_hashed_password`, lockout counters) is not a
        // field of the pipeline's rows.
        let schema = Arc::new(visible(&schema));
        let context = CallerQueryContext {
            operations: self,
            auth,
        };
        let mut filter = parse_where(&aggregate_where(&where_json, &schema), &schema, &context)?;
        if let Some(field) = distinct {
            let field = api_field_name(&field);
            let values = self.store.distinct(&schema, &filter, &field).await?;
            return Ok(values);
        }
        // The fields the rows have while they still are the class's objects.
        let mut fields: Option<ClassSchema> = Some((*schema).clone());
        let mut leading = true;
        let mut resolved = Vec::new();
        for stage in stages {
            if let (Stage::Match(Match::Raw(conditions)), Some(fields)) = (&stage, &fields) {
                let where_json = aggregate_where(&Value::Object(conditions.clone()), fields);
                let condition = parse_where(&where_json, fields, &context)?;
                if leading {
                    filter = filter.and(condition);
                } else {
                    resolved.push(Stage::Match(Match::Where(condition)));
                }
                continue;
            }
            leading = false;
            fields = match (&stage, fields) {
                (stage, Some(fields)) if stage.keeps_fields() => Some(narrowed(fields, stage)),
                _ => None,
            };
            resolved.push(stage);
        }
        let pipeline = Aggregate {
            filter,
            stages: resolved,
            explain: params.get("explain").is_some_and(truthy),
        };
        let rows = self.store.aggregate(&schema, &pipeline).await?;
        Ok(rows.into_iter().map(Value::Object).collect())
    }
}

/// The schema without the fields no client reads (those starting with `_`).
fn visible(schema: &ClassSchema) -> ClassSchema {
    let mut visible = schema.clone();
    visible.fields.retain(|name, _| !is_internal_field(name));
    visible
}

/// The fields left after a `$project` that keeps fields.
fn narrowed(mut fields: ClassSchema, stage: &Stage) -> ClassSchema {
    match stage {
        Stage::Project(Projection::Include {
            fields: kept,
            keep_id,
        }) => {
            fields.fields.retain(|name, _| {
                (name == "objectId" && *keep_id)
                    || kept
                        .iter()
                        .any(|(kept, projected)| kept == name && *projected == Projected::Keep)
            });
        }
        Stage::Project(Projection::Exclude(dropped)) => {
            fields.fields.retain(|name, _| !dropped.contains(name));
        }
        _ => {}
    }
    fields
}

/// A `$match` (or `where`) in the spellings aggregate requests use, as a Parse `where`:
/// `_id`, `_created_at`, `_updated_at` and `_p_field` keys under their API names, a Date
/// field compared with an ISO string (as JSON sends a JavaScript `Date`), a Pointer field
/// compared with a bare object id.
fn aggregate_where(where_json: &Value, schema: &ClassSchema) -> Value {
    let Some(map) = where_json.as_object() else {
        return where_json.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        if matches!(key.as_str(), "$or" | "$and" | "$nor") {
            let branches = match value {
                Value::Array(items) => items
                    .iter()
                    .map(|item| aggregate_where(item, schema))
                    .collect(),
                other => other.clone(),
            };
            out.insert(key.clone(), branches);
            continue;
        }
        if key.starts_with('$') {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let name = match key.split_once('.') {
            Some((top, rest)) => format!("{}.{rest}", api_field_name(top)),
            None => api_field_name(key),
        };
        let value = match schema.field_type(&name) {
            Some(field_type) => typed_operands(field_type, value),
            None => value.clone(),
        };
        out.insert(name, value);
    }
    Value::Object(out)
}

/// `value` with plain strings given for a Date or Pointer field turned into the typed
/// values a `where` compares them as, in operator objects and lists too.
fn typed_operands(field_type: &FieldType, value: &Value) -> Value {
    let typed = |item: &Value| -> Value {
        match (field_type, item.as_str()) {
            (FieldType::Date, Some(text)) => match value::normalize_iso(text) {
                Some(iso) => value::date_value(&iso),
                None => item.clone(),
            },
            (FieldType::Pointer(target), Some(id)) => value::pointer_value(target, id),
            _ => item.clone(),
        }
    };
    match value {
        Value::Object(operators) if operators.keys().all(|key| key.starts_with('$')) => {
            let converted = operators
                .iter()
                .map(|(operator, operand)| {
                    let operand = match (operator.as_str(), operand) {
                        ("$in" | "$nin" | "$all", Value::Array(items)) => {
                            Value::Array(items.iter().map(typed).collect())
                        }
                        ("$eq" | "$ne" | "$lt" | "$lte" | "$gt" | "$gte", operand) => {
                            typed(operand)
                        }
                        (_, operand) => operand.clone(),
                    };
                    (operator.clone(), operand)
                })
                .collect();
            Value::Object(converted)
        }
        other => typed(other),
    }
}

/// The refusal of a non-master `explain` (Parse Server 9's default).
pub fn explain_refused() -> OpError {
    OpError::parse(
        Code::InvalidQuery,
        "Using the explain query parameter requires the master key",
    )
}

/// A flag parameter: `true`, a non-zero number, or a string other than `""`, `0`, `false`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty() && text != "0" && text != "false",
        _ => false,
    }
}
