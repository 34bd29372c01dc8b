//! The SQL translation agrees with the in-memory matcher: random objects, random filters,
//! and the same set of matches from `find` as from `parlor_core::query::matcher::matches`,
//! on SQLite and (when `PARLOR_TEST_POSTGRES_URL` is set) on PostgreSQL. And `find_json`
//! (rows written straight as client JSON) answers what `find`'s objects serialise to.
#![allow(clippy::unwrap_used)]

mod pg;

use std::collections::BTreeSet;
use std::sync::Arc;

use parlor_core::object::{Acl, Object, Permission};
use parlor_core::query::geo::{GeoCond, GeoPoint};
use parlor_core::query::matcher::matches;
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand, Pattern};
use parlor_core::schema::{ClassSchema, FieldSchema, FieldType};
use parlor_store::sqlite::SqliteStore;
use parlor_store::{Store, Write};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

const STRINGS: [&str; 15] = [
    "",
    "q\"\\\n\t</script>\u{1}",
    "a",
    "b",
    "ab",
    "A",
    "Ab",
    "x y",
    "é",
    "É",
    "x²",
    "a_b",
    "a-b Y",
    "λόγος",
    "ſ",
];
/// Operands of `EqIgnoreCase`: case variants of [`STRINGS`], and non-ASCII letters that
/// only a Unicode-aware folding would equate.
const CASE_STRINGS: [&str; 8] = ["", "a", "A", "AB", "aB", "X Y", "é", "É"];
const NUMBERS: [f64; 6] = [-1.0, 0.0, 1.0, 1.5, 2.0, 10.0];
const DATES: [&str; 3] = [
    "2024-01-01T00:00:00.000Z",
    "2024-06-01T12:00:00.000Z",
    "2025-01-01T00:00:00.000Z",
];
const IDS: [&str; 2] = ["u1", "u2"];
const CLASSES: [&str; 2] = ["_User", "Other"];
const OBJECT_KEYS: [&str; 3] = ["k", "m", "we\"ird.'"];
const ACL_ENTRIES: [&str; 3] = ["*", "u1", "role:r"];
const PATTERNS: [&str; 6] = ["^a", "b$", "(?i)^a", "x y", "é", "^$"];
const TERMS: [&str; 10] = ["a", "ab", "x", "Y", "a_b", "a-b", "ΛΌΓΟΣ", "S", "-", "e"];

fn schema() -> ClassSchema {
    let mut schema = ClassSchema::new("Prop");
    for (name, field_type) in [
        ("s", FieldType::String),
        ("n", FieldType::Number),
        ("b", FieldType::Boolean),
        ("d", FieldType::Date),
        ("p", FieldType::Pointer("_User".into())),
        ("a", FieldType::Array),
        ("o", FieldType::Object),
        ("g", FieldType::GeoPoint),
        ("y", FieldType::Polygon),
        ("r", FieldType::Relation("Other".into())),
    ] {
        schema
            .fields
            .insert(name.to_owned(), FieldSchema::of(field_type));
    }
    schema
}

fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn date_value(iso: &str) -> Value {
    json!({"__type": "Date", "iso": iso})
}

fn pointer_value(class_name: &str, object_id: &str) -> Value {
    json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

fn string_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(STRINGS.to_vec()).prop_map(str::to_owned)
}

/// Numbers as JSON floats (`2.0`) and as JSON integers (`2`), which both evaluators must treat alike.
fn number_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(NUMBERS.to_vec()).prop_map(number),
        prop::sample::select(vec![-1i64, 0, 1, 2, 10]).prop_map(Value::from),
    ]
}

fn date_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(DATES.to_vec()).prop_map(str::to_owned)
}

fn pointer_strategy() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(CLASSES.to_vec()),
        prop::sample::select(IDS.to_vec()),
    )
        .prop_map(|(class_name, id)| (class_name.to_owned(), id.to_owned()))
}

/// A point anywhere in a band that keeps clear of the poles and the antimeridian (where
/// PostgreSQL's planar polygons and the matcher would read "inside" differently); continuous
/// values, so no point falls exactly on an edge or a distance limit.
fn geo_point_strategy() -> impl Strategy<Value = GeoPoint> {
    (-60.0..60.0f64, -120.0..120.0f64).prop_map(|(latitude, longitude)| GeoPoint {
        latitude,
        longitude,
    })
}

fn geo_point_json(point: GeoPoint) -> Value {
    json!({"__type": "GeoPoint", "latitude": point.latitude, "longitude": point.longitude})
}

/// Triangles: always simple polygons, on which every point-in-polygon rule agrees.
fn triangle_strategy() -> impl Strategy<Value = Vec<GeoPoint>> {
    prop::collection::vec(geo_point_strategy(), 3)
}

fn polygon_json(points: &[GeoPoint]) -> Value {
    let coordinates: Vec<Value> = points
        .iter()
        .map(|point| json!([point.latitude, point.longitude]))
        .collect();
    json!({"__type": "Polygon", "coordinates": coordinates})
}

fn geo_cond_strategy() -> impl Strategy<Value = Cond> {
    prop_oneof![
        2 => (geo_point_strategy(), prop::option::of(0.0..1.5f64))
            .prop_map(|(point, max_distance)| GeoCond::Near { point, max_distance }),
        2 => (geo_point_strategy(), geo_point_strategy()).prop_map(|(a, b)| {
            let south_west = GeoPoint { latitude: a.latitude.min(b.latitude), longitude: a.longitude };
            let north_east = GeoPoint { latitude: a.latitude.max(b.latitude), longitude: b.longitude };
            GeoCond::WithinBox { south_west, north_east }
        }),
        2 => triangle_strategy().prop_map(GeoCond::WithinPolygon),
        2 => (geo_point_strategy(), 0.0..1.5f64)
            .prop_map(|(center, radius)| GeoCond::WithinSphere { center, radius }),
        2 => geo_point_strategy().prop_map(GeoCond::PolygonContains),
    ]
    .prop_map(Cond::Geo)
}

/// The fields geo conditions go on: their own, and others where they hold nothing.
fn geo_field_strategy() -> impl Strategy<Value = FieldRef> {
    let schema = schema();
    let top =
        prop::sample::select(vec!["g", "y", "g", "y", "s", "o", "missing"]).prop_map(move |name| {
            FieldRef {
                field: name.to_owned(),
                path: Vec::new(),
                field_type: schema.field_type(name).cloned(),
            }
        });
    prop_oneof![
        6 => top,
        1 => Just(FieldRef {
            field: "o".to_owned(),
            path: vec!["k".to_owned()],
            field_type: Some(FieldType::Object),
        }),
    ]
}

/// A value that can sit inside an array or an object.
fn item_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => string_strategy().prop_map(Value::from),
        3 => number_strategy(),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        2 => pointer_strategy().prop_map(|(c, id)| pointer_value(&c, &id)),
        1 => date_strategy().prop_map(|iso| date_value(&iso)),
        1 => Just(json!(["a"])),
        1 => Just(json!({"k": 1})),
    ]
}

fn array_strategy() -> impl Strategy<Value = Value> {
    prop::collection::vec(item_strategy(), 0..4).prop_map(Value::Array)
}

/// Object values, whose members are explicitly null often (a null member exists for
/// `Exists`, a missing one does not).
fn object_value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => item_strategy(),
        1 => array_strategy(),
        2 => Just(Value::Null),
    ];
    let nested = prop::collection::btree_map(
        prop::sample::select(OBJECT_KEYS.to_vec()).prop_map(str::to_owned),
        leaf.clone(),
        0..3,
    )
    .prop_map(|map| Value::Object(map.into_iter().collect()));
    prop::collection::btree_map(
        prop::sample::select(OBJECT_KEYS.to_vec()).prop_map(str::to_owned),
        prop_oneof![3 => leaf, 1 => nested],
        0..3,
    )
    .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn acl_strategy() -> impl Strategy<Value = Option<Acl>> {
    prop::option::of(
        prop::collection::btree_map(
            prop::sample::select(ACL_ENTRIES.to_vec()).prop_map(str::to_owned),
            (any::<bool>(), any::<bool>()),
            0..3,
        )
        .prop_map(|entries| Acl {
            entries: entries
                .into_iter()
                .filter(|(_, (read, write))| *read || *write)
                .map(|(entry, (read, write))| (entry, Permission { read, write }))
                .collect(),
        }),
    )
}

/// The fields of one object; each is absent a quarter of the time and an explicit null
/// (stored in `_nulls`) a fifth of the time.
fn fields_strategy() -> impl Strategy<Value = Map<String, Value>> {
    let sometimes = |strategy: BoxedStrategy<Value>| {
        prop_oneof![
            5 => Just(None),
            4 => Just(Some(Value::Null)),
            11 => strategy.prop_map(Some),
        ]
    };
    (
        sometimes(string_strategy().prop_map(Value::from).boxed()),
        sometimes(number_strategy().boxed()),
        sometimes(any::<bool>().prop_map(Value::from).boxed()),
        sometimes(date_strategy().prop_map(|iso| date_value(&iso)).boxed()),
        sometimes(
            prop::sample::select(IDS.to_vec())
                .prop_map(|id| pointer_value("_User", id))
                .boxed(),
        ),
        sometimes(array_strategy().boxed()),
        sometimes(object_value_strategy().boxed()),
        sometimes(geo_point_strategy().prop_map(geo_point_json).boxed()),
        sometimes(
            triangle_strategy()
                .prop_map(|points| polygon_json(&points))
                .boxed(),
        ),
        any::<bool>(),
    )
        .prop_map(|(s, n, b, d, p, a, o, g, y, loose)| {
            let mut fields = Map::new();
            for (name, value) in [
                ("s", s),
                ("n", n),
                ("b", b),
                ("d", d),
                ("p", p),
                ("a", a),
                ("o", o),
                ("g", g),
                ("y", y),
            ] {
                if let Some(value) = value {
                    fields.insert(name.to_owned(), value);
                }
            }
            // An explicit null of a field the schema does not know.
            if loose {
                fields.insert("loose".to_owned(), Value::Null);
            }
            fields
        })
}

fn objects_strategy() -> impl Strategy<Value = Vec<Object>> {
    prop::collection::vec((fields_strategy(), acl_strategy()), 20..40).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(index, (fields, acl))| {
                let created_at = format!("2024-01-01T00:{:02}:{:02}.000Z", index / 60, index % 60);
                Object {
                    object_id: format!("o{index:02}"),
                    created_at: created_at.clone(),
                    updated_at: created_at,
                    acl,
                    fields,
                }
            })
            .collect()
    })
}

fn operand_strategy() -> impl Strategy<Value = Operand> {
    prop_oneof![
        1 => Just(Operand::Null),
        1 => any::<bool>().prop_map(Operand::Bool),
        3 => prop::sample::select(NUMBERS.to_vec()).prop_map(Operand::Number),
        3 => string_strategy().prop_map(Operand::String),
        2 => date_strategy().prop_map(Operand::Date),
        2 => pointer_strategy().prop_map(|(class_name, object_id)| Operand::Pointer { class_name, object_id }),
        1 => array_strategy().prop_map(Operand::Json),
        1 => prop_oneof![Just(json!({"k": 1})), Just(json!(["a"])), Just(json!([])), Just(json!({}))]
            .prop_map(Operand::Json),
    ]
}

fn field_strategy() -> impl Strategy<Value = FieldRef> {
    let schema = schema();
    let plain = [
        "s",
        "n",
        "b",
        "d",
        "p",
        "a",
        "o",
        "objectId",
        "createdAt",
        "missing",
    ];
    let top = prop::sample::select(plain.to_vec()).prop_map(move |name| FieldRef {
        field: name.to_owned(),
        path: Vec::new(),
        field_type: schema.field_type(name).cloned(),
    });
    let path =
        prop::collection::vec(prop::sample::select(OBJECT_KEYS.to_vec()), 1..3).prop_map(|keys| {
            FieldRef {
                field: "o".to_owned(),
                path: keys.into_iter().map(str::to_owned).collect(),
                field_type: Some(FieldType::Object),
            }
        });
    // A path on a non-Object field is absent in both evaluators.
    let bad_path = Just(FieldRef {
        field: "a".to_owned(),
        path: vec!["k".to_owned()],
        field_type: Some(FieldType::Array),
    });
    prop_oneof![6 => top, 3 => path, 1 => bad_path]
}

fn pattern(source: &str) -> Pattern {
    Pattern {
        source: source.to_owned(),
        regex: parlor_core::query::regex::build(source).unwrap(),
    }
}

fn cond_strategy() -> impl Strategy<Value = Cond> {
    let operands = || prop::collection::vec(operand_strategy(), 0..4);
    prop_oneof![
        4 => operand_strategy().prop_map(Cond::Eq),
        2 => operand_strategy().prop_map(Cond::Ne),
        1 => operand_strategy().prop_map(Cond::Lt),
        1 => operand_strategy().prop_map(Cond::Lte),
        1 => operand_strategy().prop_map(Cond::Gt),
        1 => operand_strategy().prop_map(Cond::Gte),
        2 => operands().prop_map(Cond::In),
        2 => operands().prop_map(Cond::Nin),
        2 => operands().prop_map(Cond::All),
        1 => prop::collection::vec(prop::sample::select(PATTERNS.to_vec()), 0..3)
            .prop_map(|sources| Cond::AllMatch(sources.into_iter().map(pattern).collect())),
        2 => operands().prop_map(Cond::ContainedBy),
        3 => any::<bool>().prop_map(Cond::Exists),
        2 => prop::sample::select(PATTERNS.to_vec()).prop_map(|source| Cond::Regex(pattern(source))),
        1 => prop::collection::vec(prop::sample::select(TERMS.to_vec()), 0..3)
            .prop_map(|terms| Cond::Text(terms.into_iter().map(str::to_owned).collect())),
        2 => prop::sample::select(CASE_STRINGS.to_vec())
            .prop_map(|text| Cond::EqIgnoreCase(text.to_owned())),
    ]
}

fn group_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(ACL_ENTRIES.to_vec()), 0..3)
        .prop_map(|entries| entries.into_iter().map(str::to_owned).collect())
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        8 => (field_strategy(), cond_strategy()).prop_map(|(field, cond)| Filter::Cond { field, cond }),
        3 => (geo_field_strategy(), geo_cond_strategy()).prop_map(|(field, cond)| Filter::Cond { field, cond }),
        1 => group_strategy().prop_map(Filter::Readable),
        1 => group_strategy().prop_map(Filter::Writable),
        1 => prop_oneof![Just(Filter::True), Just(Filter::False)],
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            prop::collection::vec(inner, 0..3).prop_map(Filter::Nor),
        ]
    })
}

async fn check(objects: Vec<Object>, filters: Vec<Filter>) -> Result<(), TestCaseError> {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let result = check_on(&store, &objects, &filters).await;
    store.close().await;
    result
}

/// Creates the class in `store`, stores `objects`, compares each filter's matches with the
/// matcher's, and drops the class again.
async fn check_on(
    store: &dyn Store,
    objects: &[Object],
    filters: &[Filter],
) -> Result<(), TestCaseError> {
    let schema = schema();
    store.create_class(&schema).await.unwrap();
    let result = compare(store, &schema, objects, filters).await;
    store.drop_class(&schema.class_name).await.unwrap();
    result
}

async fn compare(
    store: &dyn Store,
    schema: &ClassSchema,
    objects: &[Object],
    filters: &[Filter],
) -> Result<(), TestCaseError> {
    let shared = Arc::new(schema.clone());
    let writes = objects
        .iter()
        .map(|object| Write::Create {
            schema: Arc::clone(&shared),
            object: object.clone(),
            relations: Vec::new(),
        })
        .collect();
    store.write(writes).await.unwrap();
    for filter in filters {
        let found: BTreeSet<String> = store
            .find(schema, &FindQuery::filter(filter.clone()))
            .await
            .map_err(|error| TestCaseError::fail(format!("{error} for {filter:?}")))?
            .into_iter()
            .map(|object| object.object_id)
            .collect();
        let expected: BTreeSet<String> = objects
            .iter()
            .filter(|object| matches(filter, object))
            .map(|object| object.object_id.clone())
            .collect();
        let json_found = written_as_json(store, schema, filter).await?;
        if json_found.len() != found.len() {
            return Err(TestCaseError::fail(format!(
                "find_json found {} objects, find {} for {filter:?}",
                json_found.len(),
                found.len()
            )));
        }
        if found != expected {
            let differing: Vec<String> = found.symmetric_difference(&expected).cloned().collect();
            let shown: Vec<Value> = objects
                .iter()
                .filter(|object| differing.contains(&object.object_id))
                .map(|object| Value::Object(object.to_json()))
                .collect();
            return Err(TestCaseError::fail(format!(
                "filter {filter:?}\nsql only: {:?}\nmatcher only: {:?}\nobjects: {}",
                found.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&found).collect::<Vec<_>>(),
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// `find_json`'s objects for `filter`, checked against `find`'s serialised (by objectId).
async fn written_as_json(
    store: &dyn Store,
    schema: &ClassSchema,
    filter: &Filter,
) -> Result<Vec<Value>, TestCaseError> {
    let query = FindQuery::filter(filter.clone());
    let failed =
        |error: parlor_store::StoreError| TestCaseError::fail(format!("{error} for {filter:?}"));
    let mut decoded: Vec<Value> = store
        .find(schema, &query)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|object| Value::Object(object.into_json()))
        .collect();
    let rows = store.find_json(schema, &query).await.map_err(failed)?;
    let mut written: Vec<Value> = serde_json::from_str(&rows.json)
        .map_err(|error| TestCaseError::fail(format!("find_json wrote invalid JSON: {error}")))?;
    prop_assert_eq!(rows.len, written.len());
    let by_id = |value: &Value| value["objectId"].as_str().unwrap_or_default().to_owned();
    decoded.sort_by_key(by_id);
    written.sort_by_key(by_id);
    prop_assert_eq!(
        &written,
        &decoded,
        "find_json differs from find for {:?}",
        filter
    );
    Ok(written)
}

/// The same property on PostgreSQL, with fewer cases (each one is a round trip to a server):
/// one store in a fresh schema, the class created and dropped per case.
#[test]
fn postgres_sql_agrees_with_matcher() {
    let Some(url) = pg::database_url() else {
        return;
    };
    let test_schema = pg::TestSchema::new(&url, "parlor_agreement");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(test_schema.store());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(64));
    let strategy = (
        objects_strategy(),
        prop::collection::vec(filter_strategy(), 4),
    );
    let result = runner.run(&strategy, |(objects, filters)| {
        runtime.block_on(check_on(&store, &objects, &filters))
    });
    runtime.block_on(store.close());
    if let Err(error) = result {
        panic!("{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `find` returns exactly the objects the matcher accepts.
    #[test]
    fn sql_agrees_with_matcher(
        objects in objects_strategy(),
        filters in prop::collection::vec(filter_strategy(), 4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(objects, filters))?;
    }
}
