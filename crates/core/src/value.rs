//! The Parse JSON encoding of typed values (parse-protocol.md §2.2).
//!
//! Values travel as `serde_json::Value`; this module recognises and builds the `__type`
//! forms, formats dates the one way Parse does, and infers a schema type from a value.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::schema::FieldType;

/// Formats an instant as Parse does: UTC, exactly three fractional digits, `Z`.
pub fn format_date(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current instant, formatted for storage and the wire.
pub fn now_iso() -> String {
    format_date(Utc::now())
}

/// Parses an ISO-8601 date and normalises it to Parse's format, so that stored dates
/// compare correctly as strings.
pub fn normalize_iso(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|date| format_date(date.with_timezone(&Utc)))
}

/// `{"__type":"Date","iso":…}`.
pub fn date_value(iso: &str) -> Value {
    json!({"__type": "Date", "iso": iso})
}

/// `{"__type":"Pointer","className":…,"objectId":…}`.
pub fn pointer_value(class_name: &str, object_id: &str) -> Value {
    json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

/// The `__type` tag of a typed JSON object, if it has one.
pub fn type_tag(value: &Value) -> Option<&str> {
    value.as_object()?.get("__type")?.as_str()
}

/// A pointer's `(className, objectId)`, for `{"__type":"Pointer"}` and included `{"__type":"Object"}` forms.
pub fn as_pointer(value: &Value) -> Option<(&str, &str)> {
    let map = value.as_object()?;
    match map.get("__type")?.as_str()? {
        "Pointer" | "Object" => Some((
            map.get("className")?.as_str()?,
            map.get("objectId")?.as_str()?,
        )),
        _ => None,
    }
}

/// A Date's normalised ISO text, for `{"__type":"Date","iso":…}`.
pub fn as_date(value: &Value) -> Option<String> {
    let map = value.as_object()?;
    if map.get("__type")?.as_str()? != "Date" {
        return None;
    }
    normalize_iso(map.get("iso")?.as_str()?)
}

/// The schema type a written value implies, used for schema-on-write.
/// `None` for `null` and for operator objects (`__op`), which carry no type by themselves.
pub fn infer_type(value: &Value) -> Option<FieldType> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(FieldType::Boolean),
        Value::Number(_) => Some(FieldType::Number),
        Value::String(_) => Some(FieldType::String),
        Value::Array(_) => Some(FieldType::Array),
        Value::Object(map) => {
            if map.contains_key("__op") {
                return None;
            }
            match map.get("__type").and_then(Value::as_str) {
                Some("Date") => Some(FieldType::Date),
                Some("Pointer") => map
                    .get("className")
                    .and_then(Value::as_str)
                    .map(|class_name| FieldType::Pointer(class_name.to_owned())),
                Some("Relation") => map
                    .get("className")
                    .and_then(Value::as_str)
                    .map(|class_name| FieldType::Relation(class_name.to_owned())),
                Some("File") => Some(FieldType::File),
                Some("GeoPoint") => Some(FieldType::GeoPoint),
                Some("Polygon") => Some(FieldType::Polygon),
                Some("Bytes") => Some(FieldType::Bytes),
                _ => Some(FieldType::Object),
            }
        }
    }
}

/// Checks the shape of a typed value and returns it in stored form
/// (dates normalised, polygons closed). Plain values pass through unchanged.
pub fn validate_typed(value: &Value) -> Result<Value> {
    let Some(map) = value.as_object() else {
        return Ok(value.clone());
    };
    let Some(tag) = map.get("__type").and_then(Value::as_str) else {
        return validate_nested_keys(map).map(|()| value.clone());
    };
    match tag {
        "Date" => as_date(value)
            .map(|iso| date_value(&iso))
            .ok_or_else(|| Error::incorrect_type("invalid date")),
        "Pointer" | "Object" => {
            let valid = map.get("className").and_then(Value::as_str).is_some()
                && map.get("objectId").and_then(Value::as_str).is_some();
            if !valid {
                return Err(Error::new(crate::Code::InvalidPointer, "invalid pointer"));
            }
            Ok(pointer_value(
                map["className"].as_str().unwrap_or_default(),
                map["objectId"].as_str().unwrap_or_default(),
            ))
        }
        "GeoPoint" => {
            let latitude = map.get("latitude").and_then(Value::as_f64);
            let longitude = map.get("longitude").and_then(Value::as_f64);
            match (latitude, longitude) {
                (Some(lat), Some(lng))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng) =>
                {
                    Ok(json!({"__type": "GeoPoint", "latitude": lat, "longitude": lng}))
                }
                _ => Err(Error::incorrect_type(
                    "invalid GeoPoint: latitude must be in [-90, 90] and longitude in [-180, 180]",
                )),
            }
        }
        "File" => match map.get("name").and_then(Value::as_str) {
            Some(name) => {
                let mut file = Map::new();
                file.insert("__type".into(), "File".into());
                file.insert("name".into(), name.into());
                if let Some(url) = map.get("url").and_then(Value::as_str) {
                    file.insert("url".into(), url.into());
                }
                Ok(Value::Object(file))
            }
            None => Err(Error::incorrect_type("invalid File: name is required")),
        },
        "Bytes" => {
            use base64::Engine;
            let text = map.get("base64").and_then(Value::as_str);
            match text.map(|text| base64::engine::general_purpose::STANDARD.decode(text)) {
                Some(Ok(_)) => Ok(json!({"__type": "Bytes", "base64": text})),
                _ => Err(Error::incorrect_type("invalid Bytes: base64 is required")),
            }
        }
        "Polygon" => validate_polygon(map),
        "Relation" => Ok(value.clone()),
        other => Err(Error::incorrect_type(format!("invalid type: {other}"))),
    }
}

fn validate_polygon(map: &Map<String, Value>) -> Result<Value> {
    let invalid = || {
        Error::incorrect_type(
            "Polygon must have at least 3 distinct points as [latitude, longitude] pairs",
        )
    };
    let points = map
        .get("coordinates")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?;
    let mut coordinates: Vec<[f64; 2]> = Vec::with_capacity(points.len() + 1);
    for point in points {
        let pair = point
            .as_array()
            .filter(|pair| pair.len() == 2)
            .ok_or_else(invalid)?;
        let (Some(lat), Some(lng)) = (pair[0].as_f64(), pair[1].as_f64()) else {
            return Err(invalid());
        };
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return Err(invalid());
        }
        coordinates.push([lat, lng]);
    }
    let mut distinct = coordinates.clone();
    distinct.dedup();
    if distinct.first() == distinct.last() && distinct.len() > 1 {
        distinct.pop();
    }
    if distinct.len() < 3 {
        return Err(invalid());
    }
    if coordinates.first() != coordinates.last() {
        let first = coordinates[0];
        coordinates.push(first);
    }
    Ok(json!({"__type": "Polygon", "coordinates": coordinates}))
}

/// Object field keys may not contain `$` or `.` (code 121), at any depth.
fn validate_nested_keys(map: &Map<String, Value>) -> Result<()> {
    for (key, value) in map {
        if key.contains('$') || key.contains('.') {
            return Err(Error::new(
                crate::Code::InvalidNestedKey,
                "Nested keys should not contain the '$' or '.' characters",
            ));
        }
        check_nested(value)?;
    }
    Ok(())
}

fn check_nested(value: &Value) -> Result<()> {
    match value {
        Value::Object(map) if !map.contains_key("__type") => validate_nested_keys(map),
        Value::Array(items) => items.iter().try_for_each(check_nested),
        _ => Ok(()),
    }
}

/// The depth of a JSON value: bounded so that recursion over client input stays shallow.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
