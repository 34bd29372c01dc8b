//! Built-in rules of the AI chat template (parse-protocol.md §14) that shape objects as they
//! are written. Access rules of the template live in its CLPs; this module only fills values.

use parlor_core::object::Object;
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::value::date_value;
use serde_json::{Map, Value};

/// Fills template values on a new object; what it fills is also returned, for the response.
pub fn on_create(schema: &ClassSchema, object: &mut Object) -> Map<String, Value> {
    let mut filled = Map::new();
    // A Message's `timestamp` defaults to its creation time, so clients can order by a field
    // they may also set themselves (imported history keeps its original times).
    let has_timestamp = matches!(schema.field_type("timestamp"), Some(FieldType::Date));
    if schema.class_name == "Message"
        && has_timestamp
        && object.fields.get("timestamp").is_none_or(Value::is_null)
    {
        let timestamp = date_value(&object.created_at);
        object
            .fields
            .insert("timestamp".to_owned(), timestamp.clone());
        filled.insert("timestamp".to_owned(), timestamp);
    }
    filled
}
