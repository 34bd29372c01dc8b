//! The shape of a client's frame (§11.2), checked before the frame is acted on.
//!
//! Parse Server validates every frame against a JSON schema per `op` and answers a frame that
//! does not fit with error `1`, the validator's message, `reconnect: true` and no `requestId`;
//! it then ignores the frame. Clients rely on that: the JS SDK reconnects (and so subscribes
//! again) on such an error, and drops `installationId` from its `connect` when it reads
//! exactly "Additional properties not allowed". So this module accepts the same frames as
//! Parse Server's schemas and words its refusals the same way: the properties each op allows,
//! which of them are required, their JSON types, and for `keys`/`watch` non-empty arrays of
//! distinct strings. What the values mean (the app id, a session token, the query itself) is
//! checked later, by the code that handles the op.

use serde_json::{Map, Value};

/// A frame's operation, once its shape is known to be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Connect,
    Subscribe,
    Update,
    Unsubscribe,
}

/// What a property must hold.
#[derive(Debug, Clone, Copy)]
enum Shape {
    String,
    Number,
    Object,
    /// A non-empty array of distinct strings (`keys`, `watch`).
    StringSet,
    /// The `query` of a subscribe or update.
    Query,
}

/// The properties an object may have, and which of them it must have (checked in this order).
struct Schema {
    properties: &'static [(&'static str, Shape)],
    required: &'static [&'static str],
}

/// Every op names its own `op`; its type and value were checked before the op's schema.
const CONNECT: Schema = Schema {
    properties: &[
        ("op", Shape::String),
        ("applicationId", Shape::String),
        ("javascriptKey", Shape::String),
        ("masterKey", Shape::String),
        ("clientKey", Shape::String),
        ("windowsKey", Shape::String),
        ("restAPIKey", Shape::String),
        ("sessionToken", Shape::String),
        ("installationId", Shape::String),
    ],
    required: &["op", "applicationId"],
};

/// `subscribe` and `update` take the same frame.
const SUBSCRIBE: Schema = Schema {
    properties: &[
        ("op", Shape::String),
        ("requestId", Shape::Number),
        ("query", Shape::Query),
        ("sessionToken", Shape::String),
    ],
    required: &["op", "requestId", "query"],
};

const UNSUBSCRIBE: Schema = Schema {
    properties: &[("op", Shape::String), ("requestId", Shape::Number)],
    required: &["op", "requestId"],
};

const QUERY: Schema = Schema {
    properties: &[
        ("className", Shape::String),
        ("where", Shape::Object),
        ("keys", Shape::StringSet),
        ("watch", Shape::StringSet),
    ],
    required: &["where", "className"],
};

/// The op and the properties of a well-formed frame, or the message of error `1` for one
/// that is not.
pub(super) fn check(frame: Value) -> Result<(Op, Map<String, Value>), String> {
    let Value::Object(message) = frame else {
        return Err(wrong_type(&frame, "object"));
    };
    let op = match message.get("op") {
        None => return Err(missing("op")),
        Some(Value::String(op)) => op.as_str(),
        Some(other) => return Err(wrong_type(other, "string")),
    };
    let (op, schema) = match op {
        "connect" => (Op::Connect, &CONNECT),
        "subscribe" => (Op::Subscribe, &SUBSCRIBE),
        "update" => (Op::Update, &SUBSCRIBE),
        "unsubscribe" => (Op::Unsubscribe, &UNSUBSCRIBE),
        other => return Err(format!("No enum match for: {}", Value::from(other))),
    };
    check_object(&message, schema)?;
    Ok((op, message))
}

fn check_object(object: &Map<String, Value>, schema: &Schema) -> Result<(), String> {
    if let Some(name) = schema
        .required
        .iter()
        .find(|name| !object.contains_key(**name))
    {
        return Err(missing(name));
    }
    for (name, value) in object {
        let Some((_, shape)) = schema
            .properties
            .iter()
            .find(|(property, _)| property == name)
        else {
            return Err("Additional properties not allowed".to_owned());
        };
        check_value(value, *shape)?;
    }
    Ok(())
}

fn check_value(value: &Value, shape: Shape) -> Result<(), String> {
    match shape {
        Shape::String if !value.is_string() => Err(wrong_type(value, "string")),
        Shape::Number if !value.is_number() => Err(wrong_type(value, "number")),
        Shape::Object => as_object(value).map(|_| ()),
        Shape::Query => check_object(as_object(value)?, &QUERY),
        Shape::StringSet => {
            let Value::Array(items) = value else {
                return Err(wrong_type(value, "array"));
            };
            if items.is_empty() {
                return Err("Array is too short (0), minimum 1".to_owned());
            }
            for (index, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(wrong_type(item, "string"));
                }
                if let Some(first) = items[..index].iter().position(|earlier| earlier == item) {
                    return Err(format!(
                        "Array items are not unique (indices {first} and {index})"
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn as_object(value: &Value) -> Result<&Map<String, Value>, String> {
    value.as_object().ok_or_else(|| wrong_type(value, "object"))
}

fn missing(name: &str) -> String {
    format!("Missing required property: {name}")
}

fn wrong_type(value: &Value, expected: &str) -> String {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("Invalid type: {found} (expected {expected})")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_sdks_frames_pass() {
        let frames = [
            json!({"op": "connect", "applicationId": "app", "javascriptKey": "js", "sessionToken": "r:1", "installationId": "i"}),
            json!({"op": "connect", "applicationId": "app", "masterKey": "m", "clientKey": "c", "windowsKey": "w", "restAPIKey": "r"}),
            json!({"op": "subscribe", "requestId": 1, "query": {"className": "Message", "where": {}}}),
            json!({"op": "subscribe", "requestId": 2, "sessionToken": "r:1",
                   "query": {"className": "Message", "where": {"a": 1}, "keys": ["a", "b"], "watch": ["a"]}}),
            json!({"op": "update", "requestId": 2, "query": {"className": "Message", "where": {}}}),
            json!({"op": "unsubscribe", "requestId": 2}),
        ];
        let ops: Vec<Op> = frames
            .iter()
            .map(|frame| match check(frame.clone()) {
                Ok((op, _)) => op,
                Err(error) => panic!("{frame}: {error}"),
            })
            .collect();
        assert_eq!(
            ops,
            [
                Op::Connect,
                Op::Connect,
                Op::Subscribe,
                Op::Subscribe,
                Op::Update,
                Op::Unsubscribe
            ]
        );
    }

    #[test]
    fn frames_that_do_not_fit_are_refused_with_parse_servers_words() {
        let cases = [
            (json!([1]), "Invalid type: array (expected object)"),
            (json!({"requestId": 1}), "Missing required property: op"),
            (json!({"op": 1}), "Invalid type: number (expected string)"),
            (json!({"op": "dance"}), "No enum match for: \"dance\""),
            (
                json!({"op": "connect", "applicationId": "app", "bogus": 1}),
                "Additional properties not allowed",
            ),
            (
                json!({"op": "connect"}),
                "Missing required property: applicationId",
            ),
            (
                json!({"op": "connect", "applicationId": "app", "sessionToken": null}),
                "Invalid type: null (expected string)",
            ),
            (
                json!({"op": "subscribe", "query": {"className": "A", "where": {}}}),
                "Missing required property: requestId",
            ),
            (
                json!({"op": "subscribe", "requestId": "1", "query": {"className": "A", "where": {}}}),
                "Invalid type: string (expected number)",
            ),
            (
                json!({"op": "subscribe", "requestId": 1, "query": {"className": "A"}}),
                "Missing required property: where",
            ),
            (
                json!({"op": "update", "requestId": 1, "query": {"className": "A", "where": []}}),
                "Invalid type: array (expected object)",
            ),
            (
                json!({"op": "subscribe", "requestId": 1, "query": {"className": "A", "where": {}, "fields": ["a"]}}),
                "Additional properties not allowed",
            ),
            (
                json!({"op": "subscribe", "requestId": 1, "query": {"className": "A", "where": {}, "keys": []}}),
                "Array is too short (0), minimum 1",
            ),
            (
                json!({"op": "subscribe", "requestId": 1, "query": {"className": "A", "where": {}, "watch": ["a", 2]}}),
                "Invalid type: number (expected string)",
            ),
            (
                json!({"op": "subscribe", "requestId": 1, "query": {"className": "A", "where": {}, "keys": ["a", "b", "a"]}}),
                "Array items are not unique (indices 0 and 2)",
            ),
            (
                json!({"op": "unsubscribe", "requestId": 1, "query": {}}),
                "Additional properties not allowed",
            ),
            (
                json!({"op": "unsubscribe"}),
                "Missing required property: requestId",
            ),
        ];
        for (frame, expected) in cases {
            let refused = check(frame.clone()).map(|(op, _)| op);
            assert_eq!(refused, Err(expected.to_owned()), "{frame}");
        }
    }
}
