//! Query parameters (§3.1, §2.4) → typed requests for the operation layer.

use parlor_core::Error;
use serde_json::{Map, Value};

use crate::operation::{FindRequest, GetRequest};

const FIND_PARAMS: [&str; 15] = [
    "where",
    "skip",
    "limit",
    "order",
    "count",
    "keys",
    "excludeKeys",
    "include",
    "includeAll",
    "redirectClassNameForKey",
    "readPreference",
    "includeReadPreference",
    "subqueryReadPreference",
    "hint",
    "explain",
];

const IGNORED_FIND_PARAMS: [&str; 1] = ["comment"];

const GET_PARAMS: [&str; 6] = [
    "keys",
    "include",
    "excludeKeys",
    "readPreference",
    "includeReadPreference",
    "subqueryReadPreference",
];

/// A comma list given as a string (or, leniently, as an array of strings or a number).
fn list(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items.iter().flat_map(list).collect(),
        Value::Number(number) => vec![number.to_string()],
        _ => Vec::new(),
    }
}

fn non_negative(name: &str, value: &Value) -> Result<u64, Error> {
    let parsed = match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.is_finite() && *float >= 0.0 && float.fract() == 0.0)
                .map(|float| float.min(i64::MAX as f64) as u64)
        }),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    // SQLite's LIMIT and OFFSET are signed 64-bit: larger values mean "no bound" anyway.
    parsed
        .map(|n| n.min(i64::MAX as u64))
        .ok_or_else(|| Error::invalid_query(format!("Invalid {name}: {value}")))
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty() && text != "0" && text != "false",
        _ => false,
    }
}

/// `where` as an object, or as a JSON string holding one (§1.3).
fn where_object(value: &Value) -> Result<Value, Error> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        Value::Null => Ok(Value::Object(Map::new())),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ Value::Object(_)) => Ok(parsed),
            Ok(_) => Err(Error::invalid_query("where must be a JSON object")),
            Err(_) => Err(Error::invalid_json("Invalid JSON in where")),
        },
        _ => Err(Error::invalid_query("where must be a JSON object")),
    }
}

pub fn find_request(params: &Map<String, Value>) -> Result<FindRequest, Error> {
    let mut request = FindRequest {
        where_json: Value::Object(Map::new()),
        ..FindRequest::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "where" => request.where_json = where_object(value)?,
            "skip" => request.skip = non_negative("skip", value)?,
            "limit" => request.limit = Some(non_negative("limit", value)?),
            "order" => request.order = Some(list(value).join(",")),
            "count" => request.count = truthy(value),
            "keys" => request.keys = Some(list(value)),
            "excludeKeys" => request.exclude_keys = list(value),
            "include" => request.include = list(value),
            "includeAll" => request.include_all = truthy(value),
            "explain" => request.explain = truthy(value),
            // An index hint is accepted and left to the database's planner, as Parse
            // Server's PostgreSQL adapter does (neither SQLite nor PostgreSQL takes hints
            // by name); `explain` shows which index the planner chose.
            "hint" => {}
            "redirectClassNameForKey" => {
                request.redirect_class_name_for_key = value.as_str().map(str::to_owned)
            }
            other if FIND_PARAMS.contains(&other) || IGNORED_FIND_PARAMS.contains(&other) => {}
            other => {
                return Err(Error::invalid_query(format!(
                    "Invalid parameter for query: {other}"
                )));
            }
        }
    }
    Ok(request)
}

pub fn get_request(params: &Map<String, Value>) -> Result<GetRequest, Error> {
    let mut request = GetRequest::default();
    for (name, value) in params {
        match name.as_str() {
            "keys" => request.keys = Some(list(value)),
            "excludeKeys" => request.exclude_keys = list(value),
            "include" => {
                let include = list(value);
                request.include_all = include.iter().any(|path| path == "*");
                request.include = include;
            }
            other if GET_PARAMS.contains(&other) => {}
            _ => return Err(Error::invalid_query("Improper encode of parameter")),
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_parameters_are_refused() {
        let params = json!({"foo": 1}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            find_request(&params).unwrap_err().message,
            "Invalid parameter for query: foo"
        );
        assert_eq!(
            get_request(&params).unwrap_err().message,
            "Improper encode of parameter"
        );
    }

    #[test]
    fn limits_are_integers_and_huge_ones_are_clamped() {
        let params = json!({"limit": 1e30, "skip": "5"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let request = find_request(&params).unwrap_or_default();
        assert_eq!(request.limit, Some(i64::MAX as u64));
        assert_eq!(request.skip, 5);
        let params = json!({"limit": -1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(find_request(&params).is_err());
        let params = json!({"limit": "ten"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(find_request(&params).is_err());
    }

    #[test]
    fn where_may_be_a_json_string() {
        let params = json!({"where": "{\"a\":1}"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            find_request(&params).unwrap_or_default().where_json,
            json!({"a": 1})
        );
    }
}
