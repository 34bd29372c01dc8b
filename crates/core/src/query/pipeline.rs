//! Aggregation pipelines (`GET /aggregate/:className`): the JSON a client sends, read into
//! stages the store translates to SQL.
//!
//! The subset is the one Parse Server's PostgreSQL adapter translates to SQL — `$match`,
//! `$group` (an `_id` of `null`, a `$field`, a date part of one, or an object of those;
//! `$sum`, `$avg`, `$min`, `$max`, `$count`), `$project` (keep, drop or rename fields),
//! `$sort`, `$limit`, `$skip`, `$count` and `$unwind` — with MongoDB's meaning, which is
//! what the SDKs document. Anything else is refused here with `102 INVALID_QUERY`, before
//! anything runs, naming what is not supported.
//!
//! Field references follow Parse's storage names as well as its API names: `$_id` is
//! `objectId`, `$_created_at`/`$_updated_at` are `createdAt`/`updatedAt`, and a pointer
//! field may be named `$_p_field` as in Parse's MongoDB layout.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::query::Filter;

/// The most stages a pipeline may hold.
pub const MAX_STAGES: usize = 64;

/// A date part of a Date field (`$year: "$createdAt"`), in UTC, numbered as MongoDB does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    Year,
    /// 1–12.
    Month,
    /// 1–31.
    DayOfMonth,
    /// 0–23.
    Hour,
    Minute,
    Second,
    Millisecond,
    /// 1 (Sunday) – 7 (Saturday).
    DayOfWeek,
    /// 1–366.
    DayOfYear,
}

impl DatePart {
    fn from_operator(operator: &str) -> Option<DatePart> {
        Some(match operator {
            "$year" => DatePart::Year,
            "$month" => DatePart::Month,
            "$dayOfMonth" => DatePart::DayOfMonth,
            "$hour" => DatePart::Hour,
            "$minute" => DatePart::Minute,
            "$second" => DatePart::Second,
            "$millisecond" => DatePart::Millisecond,
            "$dayOfWeek" => DatePart::DayOfWeek,
            "$dayOfYear" => DatePart::DayOfYear,
            _ => return None,
        })
    }
}

/// A value a group key or an accumulator reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The value of a field of the stage's input (its API name).
    Field(String),
    /// A date part of a Date field.
    DatePart(DatePart, String),
}

/// A `$group` stage's `_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupId {
    /// `null`, a constant, `""`, `{}` or `[]`: one group of everything, whose `objectId`
    /// is `null`.
    All,
    /// One key: the group's `objectId` is its value.
    Key(Expr),
    /// Several keys: the group's `objectId` is an object of them.
    Keys(Vec<(String, Expr)>),
}

/// A `$group` accumulator.
#[derive(Debug, Clone, PartialEq)]
pub enum Accumulator {
    /// `$sum` of a field: numbers only, 0 when there are none.
    Sum(String),
    /// `$sum` of a constant: the constant times the number of objects (`{$sum: 1}` counts).
    SumConstant(f64),
    Avg(String),
    Min(String),
    Max(String),
    /// `$count: {}`: the number of objects.
    Count,
}

/// One field a `$project` stage outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Projected {
    /// `field: 1`: kept.
    Keep,
    /// `name: "$field"`: the value of another field.
    Rename(String),
}

/// A `$project` stage: inclusion (only these fields, `objectId` too unless dropped) or
/// exclusion (every field but these).
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Include {
        fields: Vec<(String, Projected)>,
        keep_id: bool,
    },
    Exclude(Vec<String>),
}

/// A `$match` stage. The pipeline parser leaves it as the client wrote it ([`Match::Raw`]);
/// the caller resolves it into a Parse `where` ([`Match::Where`]) where the stage's input
/// still has the class's fields. After a `$group`, `$unwind` or renaming `$project` it stays
/// raw and compares the stage's computed fields (`$eq`, `$ne`, `$lt`, `$lte`, `$gt`, `$gte`,
/// `$in`, `$nin`, `$exists`, `$and`, `$or`, `$nor`).
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Raw(Map<String, Value>),
    Where(Filter),
}

/// A pipeline to run: the objects `filter` selects (the request's `where` and any
/// `$match` stages before the first stage that changes their fields), through `stages`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub filter: Filter,
    pub stages: Vec<Stage>,
    /// `explain`: one row, `{"QUERY PLAN": …}`, the database's plan of the statement.
    pub explain: bool,
}

impl Stage {
    /// Whether the stage's output still has the class's fields under their names and types
    /// (some of them after a `$project`), so a later `$match` reads as a Parse `where`.
    pub fn keeps_fields(&self) -> bool {
        match self {
            Stage::Match(_) | Stage::Sort(_) | Stage::Limit(_) | Stage::Skip(_) => true,
            Stage::Project(Projection::Exclude(_)) => true,
            Stage::Project(Projection::Include { fields, .. }) => fields
                .iter()
                .all(|(_, projected)| *projected == Projected::Keep),
            Stage::Group { .. } | Stage::Count(_) | Stage::Unwind { .. } => false,
        }
    }
}

/// One stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Match(Match),
    Group {
        id: GroupId,
        fields: Vec<(String, Accumulator)>,
    },
    Project(Projection),
    /// Fields and whether descending.
    Sort(Vec<(String, bool)>),
    Limit(u64),
    Skip(u64),
    /// `$count: "name"`: one object `{name: n}`, none when `n` is 0.
    Count(String),
    Unwind {
        /// The Array field (API name).
        field: String,
        /// Keep objects whose field is missing, null or empty (with the field null/absent).
        preserve_empty: bool,
        /// Name of a field receiving the item's index.
        index_field: Option<String>,
    },
}

/// The key order of every JSON object in `raw` (JSON text), in document order: what a
/// `serde_json::Map` (sorted by key here) forgets, and what an object pipeline's stages and a
/// `$sort`'s keys mean. Not JSON: nothing.
pub fn key_orders(raw: &str) -> Vec<Vec<String>> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Collect<'a>(&'a RefCell<Vec<Vec<String>>>);

    impl<'de> DeserializeSeed<'de> for Collect<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> std::result::Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Collect<'_> {
        type Value = ();
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            let index = {
                let mut lists = self.0.borrow_mut();
                lists.push(Vec::new());
                lists.len() - 1
            };
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                keys.push(key);
                map.next_value_seed(Collect(self.0))?;
            }
            self.0.borrow_mut()[index] = keys;
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            while seq.next_element_seed(Collect(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }

    let lists = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    if Collect(&lists).deserialize(&mut deserializer).is_err() {
        return Vec::new();
    }
    lists.into_inner()
}

/// The keys of `map` in the order one of `orders` (from [`key_orders`]) gives them, if one
/// has exactly these keys.
fn written_order<'m>(
    map: &'m Map<String, Value>,
    orders: &[Vec<String>],
) -> Option<Vec<&'m String>> {
    let order = orders
        .iter()
        .find(|order| order.len() == map.len() && order.iter().all(|key| map.contains_key(key)))?;
    order
        .iter()
        .map(|key| map.get_key_value(key).map(|(key, _)| key))
        .collect()
}

/// Reads the pipeline of an aggregate request: `pipeline` when given (an array of stages,
/// or one object of them), else the request's own `$stage` parameters, in order. Parameters
/// that are not stages (`where`, `distinct`, …) are the caller's; `others` lists them.
/// `orders` ([`key_orders`] of the request's JSON texts) gives the written order of an
/// object pipeline's stages and of a `$sort`'s keys.
pub fn parse_pipeline(
    params: &Map<String, Value>,
    others: &[&str],
    orders: &[Vec<String>],
) -> Result<Vec<Stage>> {
    let stages: Vec<(String, Value)> = match params.get("pipeline") {
        Some(Value::Array(items)) => {
            let mut stages = Vec::new();
            for item in items {
                let Some(map) = item.as_object() else {
                    return Err(Error::invalid_query(
                        "Pipeline stages should be objects with one key.",
                    ));
                };
                if map.len() != 1 {
                    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                    return Err(Error::invalid_query(format!(
                        "Pipeline stages should only have one key but found {}.",
                        keys.join(", ")
                    )));
                }
                stages.extend(map.iter().map(|(key, value)| (key.clone(), value.clone())));
            }
            stages
        }
        Some(Value::Object(map)) => in_stage_order(map, orders),
        Some(Value::String(text)) => {
            // A query-string `pipeline` that is not JSON at all.
            return Err(Error::invalid_query(format!("Invalid pipeline: {text}")));
        }
        Some(other) => {
            return Err(Error::invalid_query(format!("Invalid pipeline: {other}")));
        }
        None => {
            let stages: Map<String, Value> = params
                .iter()
                .filter(|(key, _)| !others.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            in_stage_order(&stages, orders)
        }
    };
    if stages.len() > MAX_STAGES {
        return Err(Error::invalid_query(format!(
            "A pipeline holds at most {MAX_STAGES} stages."
        )));
    }
    stages
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "where" | "distinct"))
        .map(|(name, value)| stage(name, value, orders))
        .collect()
}

/// The stages of an object pipeline (`{"$match": …, "$group": …}`) in their written order;
/// when that is not known (parameters of the query string), in the order a pipeline runs
/// them (filter, unwind, project, group, then sort, skip, limit, count).
fn in_stage_order(map: &Map<String, Value>, orders: &[Vec<String>]) -> Vec<(String, Value)> {
    if let Some(keys) = written_order(map, orders) {
        return keys
            .into_iter()
            .map(|key| (key.clone(), map[key].clone()))
            .collect();
    }
    const ORDER: [&str; 8] = [
        "$match", "$unwind", "$project", "$group", "$sort", "$skip", "$limit", "$count",
    ];
    let rank = |key: &str| ORDER.iter().position(|known| *known == key).unwrap_or(0);
    let mut stages: Vec<(String, Value)> = map
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    stages.sort_by_key(|(key, _)| rank(key));
    stages
}

fn stage(name: &str, value: &Value, orders: &[Vec<String>]) -> Result<Stage> {
    if !name.starts_with('$') {
        return Err(Error::invalid_query(format!(
            "Invalid aggregate stage '{name}'."
        )));
    }
    match name {
        "$match" => match value {
            Value::Object(map) => Ok(Stage::Match(Match::Raw(map.clone()))),
            _ => Err(Error::invalid_query("$match should be an object.")),
        },
        "$group" => group(value),
        "$project" => project(value),
        "$sort" => sort(value, orders),
        "$limit" => Ok(Stage::Limit(count_of("$limit", value)?)),
        "$skip" => Ok(Stage::Skip(count_of("$skip", value)?)),
        "$count" => match value.as_str() {
            Some(field) if valid_output_name(field) => Ok(Stage::Count(field.to_owned())),
            _ => Err(Error::invalid_query(
                "$count should be a field name (not empty, no '$' or '.').",
            )),
        },
        "$unwind" => unwind(value),
        other => Err(unsupported(format!("aggregate stage {other}"))),
    }
}

fn unsupported(what: String) -> Error {
    Error::invalid_query(format!("{what} is not supported"))
}

fn count_of(stage: &str, value: &Value) -> Result<u64> {
    value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && n.is_finite())
                .map(|n| n.min(i64::MAX as f64) as u64)
        })
        .map(|n| n.min(i64::MAX as u64))
        .ok_or_else(|| Error::invalid_query(format!("{stage} should be a non-negative integer.")))
}

/// A field name a stage may output: not empty, not starting with `$`, no `.`.
fn valid_output_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('$') && !name.contains('.')
}

/// `$field` → the field's API name.
pub fn field_reference(value: &Value) -> Option<String> {
    let name = value.as_str()?.strip_prefix('$')?;
    if name.is_empty() || name.starts_with('$') {
        return None;
    }
    Some(api_field_name(name))
}

/// Parse's storage names of the default fields and pointers, as API names (`_id.key`, a key
/// of a grouped `_id`, is `objectId.key`).
pub fn api_field_name(name: &str) -> String {
    if let Some(key) = name.strip_prefix("_id.") {
        return format!("objectId.{key}");
    }
    match name {
        "_id" => "objectId".to_owned(),
        "_created_at" => "createdAt".to_owned(),
        "_updated_at" => "updatedAt".to_owned(),
        other => other.strip_prefix("_p_").unwrap_or(other).to_owned(),
    }
}

fn expr(value: &Value) -> Result<Expr> {
    if let Some(field) = field_reference(value) {
        return Ok(Expr::Field(field));
    }
    if let Some(map) = value.as_object()
        && map.len() == 1
        && let Some((operator, operand)) = map.iter().next()
    {
        let Some(part) = DatePart::from_operator(operator) else {
            return Err(unsupported(format!("expression operator {operator}")));
        };
        // `{$year: "$f"}` or MongoDB's `{$year: {date: "$f"}}`.
        let operand = operand.get("date").unwrap_or(operand);
        return match field_reference(operand) {
            Some(field) => Ok(Expr::DatePart(part, field)),
            None => Err(Error::invalid_query(format!(
                "{operator} should name a Date field (\"$field\")."
            ))),
        };
    }
    Err(unsupported(format!("group key {value}")))
}

fn is_constant_id(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(text) => !text.starts_with('$'),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

fn group(value: &Value) -> Result<Stage> {
    let Some(map) = value.as_object() else {
        return Err(Error::invalid_query("$group should be an object."));
    };
    if map.contains_key("objectId") {
        return Err(Error::invalid_query(
            "Cannot use 'objectId' in aggregation stage $group.",
        ));
    }
    let Some(id_value) = map.get("_id") else {
        return Err(Error::invalid_query(
            "Invalid parameter for query: group. Missing key _id",
        ));
    };
    let id = if is_constant_id(id_value) {
        GroupId::All
    } else if let Some(keys) = id_value.as_object().filter(|keys| {
        keys.keys()
            .next()
            .is_some_and(|first| !first.starts_with('$'))
    }) {
        let mut parts = Vec::new();
        for (name, key) in keys {
            if !valid_output_name(name) {
                return Err(Error::invalid_query(format!(
                    "Invalid group key name '{name}'."
                )));
            }
            parts.push((name.clone(), expr(key)?));
        }
        GroupId::Keys(parts)
    } else {
        GroupId::Key(expr(id_value)?)
    };
    let mut fields = Vec::new();
    for (name, value) in map {
        if name == "_id" {
            continue;
        }
        if !valid_output_name(name) {
            return Err(Error::invalid_query(format!(
                "Invalid field name '{name}' in $group."
            )));
        }
        fields.push((name.clone(), accumulator(name, value)?));
    }
    Ok(Stage::Group { id, fields })
}

fn accumulator(name: &str, value: &Value) -> Result<Accumulator> {
    let Some((operator, operand)) = value
        .as_object()
        .filter(|map| map.len() == 1)
        .and_then(|map| map.iter().next())
    else {
        return Err(Error::invalid_query(format!(
            "The field '{name}' must be an accumulator object."
        )));
    };
    let field = || {
        field_reference(operand).ok_or_else(|| {
            Error::invalid_query(format!(
                "{operator} of '{name}' should name a field (\"$field\")."
            ))
        })
    };
    Ok(match operator.as_str() {
        "$sum" => match operand {
            Value::Number(number) => Accumulator::SumConstant(number.as_f64().unwrap_or(0.0)),
            _ => Accumulator::Sum(field()?),
        },
        "$avg" => Accumulator::Avg(field()?),
        "$min" => Accumulator::Min(field()?),
        "$max" => Accumulator::Max(field()?),
        "$count" if operand.as_object().is_some_and(Map::is_empty) => Accumulator::Count,
        "$count" => return Err(Error::invalid_query("$count takes no argument: {}.")),
        other => return Err(unsupported(format!("accumulator {other}"))),
    })
}

fn project(value: &Value) -> Result<Stage> {
    let Some(map) = value.as_object().filter(|map| !map.is_empty()) else {
        return Err(Error::invalid_query(
            "$project should be an object of at least one field.",
        ));
    };
    let mut included = Vec::new();
    let mut excluded = Vec::new();
    let mut keep_id = true;
    for (name, spec) in map {
        let name = api_field_name(name);
        let flag = match spec {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => Some(number.as_f64() != Some(0.0)),
            _ => None,
        };
        match flag {
            Some(false) if name == "objectId" => keep_id = false,
            Some(false) => excluded.push(name),
            Some(true) => included.push((name, Projected::Keep)),
            None => match field_reference(spec) {
                Some(source) if valid_output_name(&name) => {
                    included.push((name, Projected::Rename(source)));
                }
                _ => return Err(unsupported(format!("$project expression {spec}"))),
            },
        }
    }
    if !included.is_empty() && !excluded.is_empty() {
        return Err(Error::invalid_query(
            "$project cannot both include and exclude fields.",
        ));
    }
    if !excluded.is_empty() || included.is_empty() {
        if !keep_id {
            excluded.push("objectId".to_owned());
        }
        return Ok(Stage::Project(Projection::Exclude(excluded)));
    }
    Ok(Stage::Project(Projection::Include {
        fields: included,
        keep_id,
    }))
}

fn sort(value: &Value, orders: &[Vec<String>]) -> Result<Stage> {
    let Some(map) = value.as_object().filter(|map| !map.is_empty()) else {
        return Err(Error::invalid_query("$sort should be an object of fields."));
    };
    let written = written_order(map, orders).unwrap_or_else(|| map.keys().collect());
    let mut keys = Vec::new();
    for name in written {
        let direction = &map[name];
        let descending = match direction.as_i64() {
            Some(1) => false,
            Some(-1) => true,
            _ => {
                return Err(Error::invalid_query(format!(
                    "$sort of '{name}' should be 1 or -1."
                )));
            }
        };
        keys.push((api_field_name(name), descending));
    }
    Ok(Stage::Sort(keys))
}

fn unwind(value: &Value) -> Result<Stage> {
    let (path, preserve_empty, index_field) = match value {
        Value::String(_) => (value, false, None),
        Value::Object(map) => {
            let Some(path) = map.get("path") else {
                return Err(Error::invalid_query("$unwind needs a path."));
            };
            let preserve = match map.get("preserveNullAndEmptyArrays") {
                None => false,
                Some(Value::Bool(flag)) => *flag,
                Some(_) => {
                    return Err(Error::invalid_query(
                        "$unwind preserveNullAndEmptyArrays should be a boolean.",
                    ));
                }
            };
            let index = match map.get("includeArrayIndex") {
                None => None,
                Some(Value::String(name)) if valid_output_name(name) => Some(name.clone()),
                Some(_) => {
                    return Err(Error::invalid_query(
                        "$unwind includeArrayIndex should be a field name.",
                    ));
                }
            };
            (path, preserve, index)
        }
        _ => {
            return Err(Error::invalid_query(
                "$unwind should be \"$field\" or an object.",
            ));
        }
    };
    let Some(field) = field_reference(path).filter(|field| !field.contains('.')) else {
        return Err(Error::invalid_query(
            "$unwind path should name a top-level field (\"$field\").",
        ));
    };
    Ok(Stage::Unwind {
        field,
        preserve_empty,
        index_field,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(params: Value) -> Result<Vec<Stage>> {
        parse_pipeline(params.as_object().unwrap_or(&Map::new()), &["where"], &[])
    }

    #[test]
    fn pipelines_as_arrays_objects_and_parameters() {
        let group = json!({"_id": "$name", "n": {"$sum": 1}});
        let expected = vec![Stage::Group {
            id: GroupId::Key(Expr::Field("name".into())),
            fields: vec![("n".into(), Accumulator::SumConstant(1.0))],
        }];
        assert_eq!(
            parse(json!({"pipeline": [{"$group": group}]})).ok(),
            Some(expected.clone())
        );
        assert_eq!(
            parse(json!({"pipeline": {"$group": group}})).ok(),
            Some(expected.clone())
        );
        assert_eq!(
            parse(json!({"$group": group, "where": {}})).ok(),
            Some(expected)
        );
    }

    #[test]
    fn group_ids() {
        let stages = parse(json!({"pipeline": [
            {"$group": {"_id": null}},
            {"$group": {"_id": {}}},
            {"$group": {"_id": {"day": {"$dayOfMonth": "$_created_at"}, "p": "$_p_owner"}}},
        ]}))
        .unwrap_or_default();
        assert!(matches!(
            stages[0],
            Stage::Group {
                id: GroupId::All,
                ..
            }
        ));
        assert!(matches!(
            stages[1],
            Stage::Group {
                id: GroupId::All,
                ..
            }
        ));
        assert_eq!(
            stages[2],
            Stage::Group {
                id: GroupId::Keys(vec![
                    (
                        "day".into(),
                        Expr::DatePart(DatePart::DayOfMonth, "createdAt".into())
                    ),
                    ("p".into(), Expr::Field("owner".into())),
                ]),
                fields: vec![],
            }
        );
    }

    /// The written order of an object pipeline's stages and of `$sort` keys is kept when the
    /// raw JSON is known.
    #[test]
    fn written_key_order() {
        let raw = r#"{"pipeline": {"$sort": {"n": -1, "_id": 1}, "$match": {"a": 1}}}"#;
        let params: Value = serde_json::from_str(raw).unwrap_or_default();
        let orders = key_orders(raw);
        let stages = parse_pipeline(params.as_object().unwrap_or(&Map::new()), &[], &orders)
            .unwrap_or_default();
        assert_eq!(
            stages[0],
            Stage::Sort(vec![("n".into(), true), ("objectId".into(), false)])
        );
        assert!(matches!(stages[1], Stage::Match(_)));
        // Without it: the run order, keys sorted.
        let stages =
            parse_pipeline(params.as_object().unwrap_or(&Map::new()), &[], &[]).unwrap_or_default();
        assert!(matches!(stages[0], Stage::Match(_)));
        assert_eq!(
            stages[1],
            Stage::Sort(vec![("objectId".into(), false), ("n".into(), true)])
        );
        assert!(key_orders("not json").is_empty());
    }

    /// Everything outside the subset is a 102 naming it.
    #[test]
    fn unsupported_is_102() {
        for (params, message) in [
            (
                json!({"$lookup": {}}),
                "aggregate stage $lookup is not supported",
            ),
            (
                json!({"$group": {}}),
                "Invalid parameter for query: group. Missing key _id",
            ),
            (
                json!({"$group": {"_id": "$a", "objectId": 1}}),
                "Cannot use 'objectId' in aggregation stage $group.",
            ),
            (
                json!({"$group": {"_id": "$a", "x": {"$push": "$b"}}}),
                "accumulator $push is not supported",
            ),
            (
                json!({"$project": {"x": {"$substr": ["$a", 1, 2]}}}),
                "$project expression {\"$substr\":[\"$a\",1,2]} is not supported",
            ),
            (json!({"group": {}}), "Invalid aggregate stage 'group'."),
            (
                json!({"pipeline": [{"$limit": 1, "$skip": 1}]}),
                "Pipeline stages should only have one key but found $limit, $skip.",
            ),
            (json!({"pipeline": 1234}), "Invalid pipeline: 1234"),
            (
                json!({"$limit": -1}),
                "$limit should be a non-negative integer.",
            ),
        ] {
            let error = parse(params).unwrap_err();
            assert_eq!(error.code, crate::error::Code::InvalidQuery);
            assert_eq!(error.message, message);
        }
    }
}
