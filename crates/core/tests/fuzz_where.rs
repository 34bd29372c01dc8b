//! Fuzzing the query parser with proptest: arbitrary JSON, and JSON shaped like real `where`
//! clauses with hostile values, must never panic and must fail only with the codes a client
//! mistake gets (102, 105, 107, 111 …), never with an internal error.
//!
//! `PROPTEST_CASES=200000 cargo test -p parlor_core --release --test fuzz_where` runs it long.

use std::sync::Arc;

use parlor_core::Code;
use parlor_core::object::{Acl, Object};
use parlor_core::query::matcher::matches;
use parlor_core::query::parse::{parse_keys, parse_order};
use parlor_core::query::{Filter, QueryContext, parse_where};
use parlor_core::schema::{ClassSchema, FieldSchema, FieldType};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

struct Context {
    message: Arc<ClassSchema>,
}

impl QueryContext for Context {
    fn schema(&self, class_name: &str) -> Option<Arc<ClassSchema>> {
        (class_name == "Message").then(|| self.message.clone())
    }

    fn restrict_subquery(&self, _class_name: &str) -> parlor_core::Result<Filter> {
        Ok(Filter::Readable(vec!["*".into()]))
    }
}

fn schema() -> Arc<ClassSchema> {
    let mut schema = ClassSchema::new("Message");
    for (name, field_type) in [
        ("text", FieldType::String),
        ("n", FieldType::Number),
        ("flag", FieldType::Boolean),
        ("when", FieldType::Date),
        ("tags", FieldType::Array),
        ("meta", FieldType::Object),
        ("session", FieldType::Pointer("Message".into())),
        ("likes", FieldType::Relation("Message".into())),
    ] {
        schema
            .fields
            .insert(name.into(), FieldSchema::of(field_type));
    }
    Arc::new(schema)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!("'; DROP TABLE \"Message\";--")),
        Just(json!("\\Qa.b\\E")),
        Just(json!("(a+)+$")),
        Just(json!({"__type": "Date", "iso": "2024-05-01T12:34:56.789Z"})),
        Just(json!({"__type": "Pointer", "className": "Message", "objectId": "abc"})),
        Just(json!({"$relativeTime": "in 2 days"})),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("text".to_owned()),
        Just("n".to_owned()),
        Just("tags".to_owned()),
        Just("meta.a.b".to_owned()),
        Just("when".to_owned()),
        Just("session".to_owned()),
        Just("ACL".to_owned()),
        Just("_rperm".to_owned()),
        Just("$or".to_owned()),
        Just("$and".to_owned()),
        Just("$nor".to_owned()),
        Just("$relatedTo".to_owned()),
        "[$a-z._]{1,8}",
    ]
}

fn operator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$eq"),
        Just("$ne"),
        Just("$lt"),
        Just("$lte"),
        Just("$gt"),
        Just("$gte"),
        Just("$in"),
        Just("$nin"),
        Just("$all"),
        Just("$containedBy"),
        Just("$exists"),
        Just("$regex"),
        Just("$options"),
        Just("$text"),
        Just("$select"),
        Just("$dontSelect"),
        Just("$inQuery"),
        Just("$notInQuery"),
        Just("$nearSphere"),
        Just("$bogus"),
    ]
    .prop_map(str::to_owned)
}

/// JSON shaped like a `where`: keys and operators from the real vocabulary, hostile values.
fn where_like() -> impl Strategy<Value = Value> {
    let leaf = scalar();
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner.clone()), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>())),
            prop::collection::vec((operator(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Any JSON at all.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(8, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

const CLIENT_CODES: [Code; 6] = [
    Code::InvalidQuery,
    Code::InvalidKeyName,
    Code::InvalidJson,
    Code::IncorrectType,
    Code::InvalidPointer,
    Code::InvalidNestedKey,
];

fn check(where_json: &Value) {
    let schema = schema();
    let context = Context {
        message: schema.clone(),
    };
    match parse_where(where_json, &schema, &context) {
        Ok(filter) => {
            // Whatever parses can be evaluated without panicking.
            let mut fields = Map::new();
            fields.insert("text".into(), json!("hello"));
            fields.insert(
                "tags".into(),
                json!(["a", 1, {"__type": "Pointer", "className": "Message", "objectId": "abc"}]),
            );
            fields.insert("meta".into(), json!({"a": {"b": 2}}));
            let object = Object {
                object_id: "abc".into(),
                created_at: "2024-05-01T12:34:56.789Z".into(),
                updated_at: "2024-05-01T12:34:56.789Z".into(),
                acl: Some(Acl::default()),
                fields,
            };
            let _ = matches(&filter, &object);
        }
        Err(error) => assert!(
            CLIENT_CODES.contains(&error.code),
            "unexpected code for {where_json}: {error:?}"
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn where_like_input_never_panics(where_json in where_like()) {
        check(&where_json);
    }

    #[test]
    fn arbitrary_json_never_panics(where_json in arbitrary_json()) {
        check(&where_json);
    }

    #[test]
    fn order_and_keys_never_panic(text in ".{0,40}") {
        let schema = schema();
        if let Err(error) = parse_order(&text, &schema) {
            prop_assert!(CLIENT_CODES.contains(&error.code));
        }
        let _ = parse_keys(&text);
    }
}

/// Nesting far beyond the limit (request bodies stop at serde_json's 128 levels) is refused with 102 before anything recurses over it.
#[test]
fn very_deep_nesting_is_refused() {
    let mut deep = json!({"text": "x"});
    for _ in 0..120 {
        deep = json!({ "$or": [deep] });
    }
    let schema = schema();
    let context = Context {
        message: schema.clone(),
    };
    let error = parse_where(&deep, &schema, &context).expect_err("too deep");
    assert_eq!(error.code, Code::InvalidQuery);
}
