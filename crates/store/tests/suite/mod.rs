//! The `Store` contract, shared by the backends' test files (`tests/sqlite.rs`,
//! `tests/postgres.rs`): storage round trips, every filter node, order and paging, writes and
//! their transactions, DDL, hostile values, files, and the chat-history query. Each test is a
//! function of a store; [`store_tests!`] instantiates every one of them as a `#[tokio::test]`
//! of the backend that invokes it. The few tests that need something of the backend besides a
//! store (reopening it, its plan text, the values it can hold) take it as arguments and are
//! instantiated by hand in the backend's file.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use parlor_core::object::{Acl, Object};
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand, Pattern, SortKey, SubQuery};
use parlor_core::schema::{ClassSchema, FieldSchema, FieldType};
use parlor_store::{Store, StoreError, Write, WriteOutcome};
use serde_json::{Value, json};

/// Instantiates every shared test for one backend. `$open` names an async function returning
/// `Option<(guard, store)>`: `None` skips the test (the function says why); the guard lives
/// until the test ends.
macro_rules! store_tests {
    ($open:path) => {
        $crate::suite::store_tests!(@current $open;
            round_trip_of_every_field_type,
            filters_match_like_the_matcher,
            order_paging_keys_and_count,
            readable_and_writable,
            related_to_follows_join_rows,
            in_query_and_select,
            updates_apply_each_op,
            guards_protect_updates_and_deletes,
            unique_index_violation_is_duplicate_value,
            explicit_nulls_are_stored_and_exist,
            untyped_nulls_are_kept,
            relation_membership_conditions,
            equality_ignoring_case,
            class_generation_follows_committed_changes,
            files_round_trip,
            field_type_changes_do_not_reuse_stale_statements,
            geo_queries_and_distance_order,
            text_conditions_find_what_their_regex_finds,
        );
        $crate::suite::store_tests!(@multi_thread $open;
            concurrent_updates_compose,
            jobs_are_isolated_and_atomic,
        );
    };
    (@current $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((_guard, store)) = $open().await else {
                    return;
                };
                $crate::suite::$name(&store).await;
            }
        )*
    };
    (@multi_thread $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some((_guard, store)) = $open().await else {
                    return;
                };
                $crate::suite::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}
pub(crate) use store_tests;

pub fn class(name: &str, fields: &[(&str, FieldType)]) -> ClassSchema {
    let mut schema = ClassSchema::new(name);
    for (field, field_type) in fields {
        schema
            .fields
            .insert((*field).to_owned(), FieldSchema::of(field_type.clone()));
    }
    schema
}

/// An object whose creation time orders like its position `n`.
pub fn object(id: &str, n: u32, fields: Value) -> Object {
    let created_at = format!("2024-01-01T00:00:{:02}.000Z", n % 60);
    Object {
        object_id: id.to_owned(),
        created_at: created_at.clone(),
        updated_at: created_at,
        acl: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

pub fn field_ref(schema: &ClassSchema, dotted: &str) -> FieldRef {
    let mut parts = dotted.split('.');
    let field = parts.next().unwrap().to_owned();
    FieldRef {
        field_type: schema.field_type(&field).cloned(),
        field,
        path: parts.map(str::to_owned).collect(),
    }
}

pub fn cond(schema: &ClassSchema, dotted: &str, cond: Cond) -> Filter {
    Filter::Cond {
        field: field_ref(schema, dotted),
        cond,
    }
}

pub fn pattern(source: &str) -> Pattern {
    Pattern {
        source: source.to_owned(),
        regex: parlor_core::query::regex::build(source).unwrap(),
    }
}

pub fn s(text: &str) -> Operand {
    Operand::String(text.to_owned())
}

pub fn n(number: f64) -> Operand {
    Operand::Number(number)
}

pub fn date(iso: &str) -> Operand {
    Operand::Date(iso.to_owned())
}

pub fn ptr(class_name: &str, object_id: &str) -> Operand {
    Operand::Pointer {
        class_name: class_name.to_owned(),
        object_id: object_id.to_owned(),
    }
}

pub fn user(id: &str) -> Value {
    json!({"__type": "Pointer", "className": "_User", "objectId": id})
}

pub fn iso(text: &str) -> Value {
    json!({"__type": "Date", "iso": text})
}

pub async fn insert(store: &dyn Store, schema: &ClassSchema, objects: Vec<Object>) {
    let schema = Arc::new(schema.clone());
    let writes = objects
        .into_iter()
        .map(|object| Write::Create {
            schema: Arc::clone(&schema),
            object,
            relations: Vec::new(),
        })
        .collect();
    store.write(writes).await.unwrap();
}

pub async fn ids(store: &dyn Store, schema: &ClassSchema, filter: Filter) -> Vec<String> {
    let mut ids: Vec<String> = store
        .find(schema, &FindQuery::filter(filter))
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.object_id)
        .collect();
    ids.sort();
    ids
}

pub async fn get(store: &dyn Store, schema: &ClassSchema, id: &str) -> Option<Object> {
    let filter = cond(schema, "objectId", Cond::Eq(s(id)));
    store
        .find(schema, &FindQuery::filter(filter))
        .await
        .unwrap()
        .into_iter()
        .next()
}

pub fn update(schema: &ClassSchema, id: &str, updates: Vec<FieldUpdate>) -> Write {
    Write::Update {
        schema: Arc::new(schema.clone()),
        object_id: id.to_owned(),
        guard: Filter::True,
        updates,
        updated_at: "2024-06-01T00:00:00.000Z".to_owned(),
    }
}

pub fn set(field: &str, op: FieldOp) -> FieldUpdate {
    FieldUpdate {
        field: field.to_owned(),
        path: Vec::new(),
        op,
    }
}

pub fn thing_schema() -> ClassSchema {
    class(
        "Thing",
        &[
            ("name", FieldType::String),
            ("score", FieldType::Number),
            ("flag", FieldType::Boolean),
            ("when", FieldType::Date),
            ("owner", FieldType::Pointer("_User".into())),
            ("tags", FieldType::Array),
            ("meta", FieldType::Object),
            ("file", FieldType::File),
            ("geo", FieldType::GeoPoint),
            ("blob", FieldType::Bytes),
            ("area", FieldType::Polygon),
            ("members", FieldType::Relation("_User".into())),
        ],
    )
}

/// Five things with overlapping values, some fields absent.
pub async fn things(store: &dyn Store) -> ClassSchema {
    let schema = thing_schema();
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        vec![
            object(
                "a",
                1,
                json!({"name": "alpha", "score": 1, "flag": true, "when": iso("2024-03-01T00:00:00.000Z"),
                       "owner": user("u1"), "tags": ["x", "y", 3, user("u1")],
                       "meta": {"k": "v", "n": 5, "d": iso("2024-03-01T00:00:00.000Z"), "arr": ["p", 1]}}),
            ),
            object(
                "b",
                2,
                json!({"name": "beta", "score": 2.5, "flag": false, "when": iso("2024-04-01T00:00:00.000Z"),
                       "owner": user("u2"), "tags": ["y"], "meta": {"k": "w", "n": 7.5}}),
            ),
            object(
                "c",
                3,
                json!({"name": "gamma ray", "score": -3, "tags": [], "meta": {"k": 1}}),
            ),
            object("d", 4, json!({"name": "Delta", "tags": [["x"], {"o": 1}]})),
            object("e", 5, json!({})),
        ],
    )
    .await;
    schema
}

/// Roles `r1` (users u1, u2), `r2` (users u2; roles r1) and `r3` (no members), over the
/// system `_User` and `_Role` schemas.
pub async fn roles(store: &dyn Store) -> ClassSchema {
    let users = ClassSchema::new("_User");
    let roles = ClassSchema::new("_Role");
    store.create_class(&users).await.unwrap();
    store.create_class(&roles).await.unwrap();
    insert(
        store,
        &users,
        (1..=3)
            .map(|i| object(&format!("u{i}"), i, json!({"username": format!("user{i}")})))
            .collect(),
    )
    .await;
    let relation = |field: &str, target: &str, add: &[&str]| FieldUpdate {
        field: field.into(),
        path: Vec::new(),
        op: FieldOp::Relation {
            target_class: target.into(),
            add: add.iter().map(|id| (*id).to_owned()).collect(),
            remove: Vec::new(),
        },
    };
    let shared = Arc::new(roles.clone());
    let create = |id: &str, n: u32, relations: Vec<FieldUpdate>| Write::Create {
        schema: Arc::clone(&shared),
        object: object(id, n, json!({"name": id})),
        relations,
    };
    store
        .write(vec![
            create("r1", 1, vec![relation("users", "_User", &["u1", "u2"])]),
            create(
                "r2",
                2,
                vec![
                    relation("users", "_User", &["u2"]),
                    relation("roles", "_Role", &["r1"]),
                ],
            ),
            create("r3", 3, Vec::new()),
        ])
        .await
        .unwrap();
    roles
}

/// Every field type is stored and read back in its Parse form.
pub async fn round_trip_of_every_field_type(store: &dyn Store) {
    let schema = thing_schema();
    store.create_class(&schema).await.unwrap();
    let fields = json!({
        "name": "text", "score": 5.0, "flag": true, "when": iso("2024-05-01T12:34:56.789Z"),
        "owner": user("u1"), "tags": [1, "two", {"three": 3}, user("u2")],
        "meta": {"nested": {"deep": [1, 2.5]}, "z": null},
        "file": {"__type": "File", "name": "f.png", "url": "http://x/f.png"},
        "geo": {"__type": "GeoPoint", "latitude": 40.0, "longitude": -30.5},
        "blob": {"__type": "Bytes", "base64": "AAEC"},
        "area": {"__type": "Polygon", "coordinates": [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]},
    });
    let mut original = object("obj1", 1, fields);
    original.acl =
        Some(Acl::from_json(&json!({"*": {"read": true}, "u1": {"write": true}})).unwrap());
    insert(store, &schema, vec![original.clone()]).await;
    let stored = get(store, &schema, "obj1").await.unwrap();
    assert_eq!(stored.acl, original.acl);
    assert_eq!(stored.created_at, original.created_at);
    // 5.0 is stored in a NUMERIC column and reads back as the integer 5.
    assert_eq!(stored.fields["score"], json!(5));
    assert_eq!(
        stored.fields["members"],
        json!({"__type": "Relation", "className": "_User"})
    );
    for key in [
        "name", "flag", "when", "owner", "tags", "meta", "file", "geo", "blob", "area",
    ] {
        assert_eq!(stored.fields[key], original.fields[key], "{key}");
    }
    // Dates inside Objects are normalised like Date columns, so they compare as instants.
    let offset = object(
        "obj3",
        3,
        json!({"meta": {"at": iso("2024-05-01T14:34:56.789+02:00")}}),
    );
    insert(store, &schema, vec![offset]).await;
    let at = FieldRef {
        field: "meta".into(),
        path: vec!["at".into()],
        field_type: Some(FieldType::Object),
    };
    let by_date = Filter::Cond {
        field: at,
        cond: Cond::Eq(date("2024-05-01T12:34:56.789Z")),
    };
    assert_eq!(ids(store, &schema, by_date).await, vec!["obj3"]);
    let fractional = object("obj2", 2, json!({"score": 2.25}));
    insert(store, &schema, vec![fractional]).await;
    assert_eq!(
        get(store, &schema, "obj2").await.unwrap().fields["score"],
        json!(2.25)
    );
    assert!(
        !get(store, &schema, "obj2")
            .await
            .unwrap()
            .fields
            .contains_key("name")
    );
}

/// Every filter node, with positive and negative cases, absent fields and kind mismatches.
pub async fn filters_match_like_the_matcher(store: &dyn Store) {
    let schema = things(store).await;
    let sc = &schema;
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (Filter::True, vec!["a", "b", "c", "d", "e"]),
        (Filter::False, vec![]),
        (Filter::And(vec![]), vec!["a", "b", "c", "d", "e"]),
        (Filter::Or(vec![]), vec![]),
        // Eq on each kind.
        (cond(sc, "name", Cond::Eq(s("alpha"))), vec!["a"]),
        (cond(sc, "name", Cond::Eq(n(1.0))), vec![]),
        (cond(sc, "score", Cond::Eq(n(1.0))), vec!["a"]),
        (cond(sc, "score", Cond::Eq(n(2.5))), vec!["b"]),
        (cond(sc, "score", Cond::Eq(s("1"))), vec![]),
        (cond(sc, "flag", Cond::Eq(Operand::Bool(false))), vec!["b"]),
        (
            cond(sc, "when", Cond::Eq(date("2024-03-01T00:00:00.000Z"))),
            vec!["a"],
        ),
        (
            cond(sc, "when", Cond::Eq(s("2024-03-01T00:00:00.000Z"))),
            vec![],
        ),
        (cond(sc, "owner", Cond::Eq(ptr("_User", "u1"))), vec!["a"]),
        (cond(sc, "owner", Cond::Eq(ptr("Other", "u1"))), vec![]),
        (cond(sc, "owner", Cond::Eq(s("u1"))), vec![]),
        (cond(sc, "name", Cond::Eq(Operand::Null)), vec!["e"]),
        (
            cond(sc, "nope", Cond::Eq(Operand::Null)),
            vec!["a", "b", "c", "d", "e"],
        ),
        (cond(sc, "nope", Cond::Eq(s("x"))), vec![]),
        (
            cond(sc, "createdAt", Cond::Eq(date("2024-01-01T00:00:02.000Z"))),
            vec!["b"],
        ),
        // Arrays: containment, pointers in arrays, whole equality for array operands.
        (cond(sc, "tags", Cond::Eq(s("y"))), vec!["a", "b"]),
        (cond(sc, "tags", Cond::Eq(n(3.0))), vec!["a"]),
        (cond(sc, "tags", Cond::Eq(ptr("_User", "u1"))), vec!["a"]),
        (
            cond(sc, "tags", Cond::Eq(Operand::Json(json!(["y"])))),
            vec!["b"],
        ),
        (
            cond(sc, "tags", Cond::Eq(Operand::Json(json!({"o": 1})))),
            vec!["d"],
        ),
        (
            cond(sc, "tags", Cond::Eq(Operand::Json(json!([])))),
            vec!["c"],
        ),
        // Objects and dotted paths.
        (
            cond(sc, "meta", Cond::Eq(Operand::Json(json!({"k": 1})))),
            vec!["c"],
        ),
        (cond(sc, "meta.k", Cond::Eq(s("v"))), vec!["a"]),
        (cond(sc, "meta.k", Cond::Eq(n(1.0))), vec!["c"]),
        (cond(sc, "meta.n", Cond::Gt(n(6.0))), vec!["b"]),
        (
            cond(sc, "meta.d", Cond::Eq(date("2024-03-01T00:00:00.000Z"))),
            vec!["a"],
        ),
        (
            cond(sc, "meta.d", Cond::Lt(date("2025-01-01T00:00:00.000Z"))),
            vec!["a"],
        ),
        (cond(sc, "meta.arr", Cond::Eq(s("p"))), vec!["a"]),
        (cond(sc, "meta.k", Cond::Exists(true)), vec!["a", "b", "c"]),
        (cond(sc, "meta.k", Cond::Exists(false)), vec!["d", "e"]),
        (cond(sc, "name.k", Cond::Exists(true)), vec![]),
        // Ne / In / Nin.
        (
            cond(sc, "name", Cond::Ne(s("alpha"))),
            vec!["b", "c", "d", "e"],
        ),
        (cond(sc, "tags", Cond::Ne(s("y"))), vec!["c", "d", "e"]),
        (
            cond(sc, "name", Cond::Ne(Operand::Null)),
            vec!["a", "b", "c", "d"],
        ),
        (
            cond(sc, "score", Cond::In(vec![n(1.0), n(-3.0), s("x")])),
            vec!["a", "c"],
        ),
        (cond(sc, "score", Cond::In(vec![])), vec![]),
        (
            cond(sc, "score", Cond::In(vec![Operand::Null, n(1.0)])),
            vec!["a", "d", "e"],
        ),
        (
            cond(sc, "score", Cond::Nin(vec![n(1.0), n(-3.0)])),
            vec!["b", "d", "e"],
        ),
        (
            cond(sc, "tags", Cond::In(vec![s("x"), s("nope")])),
            vec!["a"],
        ),
        (
            cond(sc, "tags", Cond::Nin(vec![s("x")])),
            vec!["b", "c", "d", "e"],
        ),
        // Ranges: same kind only.
        (cond(sc, "score", Cond::Gt(n(1.0))), vec!["b"]),
        (cond(sc, "score", Cond::Gte(n(1.0))), vec!["a", "b"]),
        (cond(sc, "score", Cond::Lt(n(0.0))), vec!["c"]),
        (cond(sc, "score", Cond::Lte(n(2.5))), vec!["a", "b", "c"]),
        (cond(sc, "score", Cond::Lt(s("z"))), vec![]),
        (cond(sc, "name", Cond::Lt(s("b"))), vec!["a", "d"]),
        (cond(sc, "name", Cond::Gte(s("b"))), vec!["b", "c"]),
        (
            cond(sc, "when", Cond::Gt(date("2024-03-15T00:00:00.000Z"))),
            vec!["b"],
        ),
        (cond(sc, "tags", Cond::Gt(s("a"))), vec![]),
        (cond(sc, "flag", Cond::Gt(Operand::Bool(false))), vec![]),
        // All / AllMatch / ContainedBy.
        (cond(sc, "tags", Cond::All(vec![s("x"), s("y")])), vec!["a"]),
        (cond(sc, "tags", Cond::All(vec![s("y")])), vec!["a", "b"]),
        (cond(sc, "tags", Cond::All(vec![])), vec![]),
        (cond(sc, "name", Cond::All(vec![s("alpha")])), vec![]),
        (
            cond(
                sc,
                "tags",
                Cond::AllMatch(vec![pattern("^x"), pattern("^y")]),
            ),
            vec!["a"],
        ),
        (
            cond(sc, "tags", Cond::ContainedBy(vec![s("y"), s("z")])),
            vec!["b", "c"],
        ),
        (
            cond(
                sc,
                "tags",
                Cond::ContainedBy(vec![s("x"), s("y"), n(3.0), ptr("_User", "u1")]),
            ),
            vec!["a", "b", "c"],
        ),
        (
            cond(sc, "meta.arr", Cond::ContainedBy(vec![s("p"), n(1.0)])),
            vec!["a"],
        ),
        // Exists.
        (cond(sc, "score", Cond::Exists(true)), vec!["a", "b", "c"]),
        (cond(sc, "score", Cond::Exists(false)), vec!["d", "e"]),
        (
            cond(sc, "nope", Cond::Exists(false)),
            vec!["a", "b", "c", "d", "e"],
        ),
        // Regex and text.
        (
            cond(sc, "name", Cond::Regex(pattern("^[a-c]"))),
            vec!["a", "b"],
        ),
        (cond(sc, "name", Cond::Regex(pattern("(?i)^d"))), vec!["d"]),
        (cond(sc, "owner", Cond::Regex(pattern("u"))), vec![]),
        (cond(sc, "meta.k", Cond::Regex(pattern("^w$"))), vec!["b"]),
        (cond(sc, "name", Cond::Text(vec!["RAY".into()])), vec!["c"]),
        (cond(sc, "name", Cond::Text(vec!["ra".into()])), vec![]),
        (cond(sc, "name", Cond::Text(vec![])), vec![]),
        // Boolean combinations.
        (
            Filter::Or(vec![
                cond(sc, "name", Cond::Eq(s("alpha"))),
                cond(sc, "score", Cond::Lt(n(0.0))),
            ]),
            vec!["a", "c"],
        ),
        (
            Filter::Nor(vec![
                cond(sc, "name", Cond::Eq(s("alpha"))),
                cond(sc, "score", Cond::Lt(n(0.0))),
            ]),
            vec!["b", "d", "e"],
        ),
        (
            Filter::And(vec![
                cond(sc, "tags", Cond::Eq(s("y"))),
                cond(sc, "flag", Cond::Eq(Operand::Bool(true))),
            ]),
            vec!["a"],
        ),
        // Negation of an absent-valued comparison is true.
        (
            Filter::Nor(vec![cond(sc, "score", Cond::Gt(n(0.0)))]),
            vec!["c", "d", "e"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(ids(store, sc, filter.clone()).await, expected, "{filter:?}");
    }
}

/// Order on several keys, descending, skip, limit, keys and count.
/// `$nearSphere` (with and without a limit), `$within $box`, `$geoWithin` `$polygon` and
/// `$centerSphere`, `$geoIntersects` on a Polygon field, and the distance order.
pub async fn geo_queries_and_distance_order(store: &dyn Store) {
    use parlor_core::query::geo::{GeoCond, GeoPoint};
    let schema = class(
        "Place",
        &[("at", FieldType::GeoPoint), ("area", FieldType::Polygon)],
    );
    store.create_class(&schema).await.unwrap();
    let point = |latitude: f64, longitude: f64| GeoPoint {
        latitude,
        longitude,
    };
    let geo = |latitude: f64, longitude: f64| json!({"__type": "GeoPoint", "latitude": latitude, "longitude": longitude});
    // San Francisco, Oakland (13 km), Los Angeles (559 km), New York; none without a point.
    insert(
        store,
        &schema,
        vec![
            object("sf", 1, json!({"at": geo(37.7749, -122.4194), "area": {"__type": "Polygon", "coordinates": [[37.0, -123.0], [38.0, -123.0], [38.0, -122.0], [37.0, -122.0]]}})),
            object("oak", 2, json!({"at": geo(37.8044, -122.2712)})),
            object("la", 3, json!({"at": geo(34.0522, -118.2437)})),
            object("ny", 4, json!({"at": geo(40.7128, -74.0060)})),
            object("none", 5, json!({})),
        ],
    )
    .await;
    let find = |filter: Filter, near: Option<GeoPoint>| {
        let schema = &schema;
        async move {
            let mut query = FindQuery::filter(filter);
            if let Some(near) = near {
                query.order = vec![SortKey {
                    field: field_ref(schema, "at"),
                    descending: false,
                    near: Some(near),
                }];
            }
            store
                .find(schema, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|object| object.object_id)
                .collect::<Vec<_>>()
        }
    };
    let sf = point(37.7749, -122.4194);
    let within_km = |km: f64| {
        cond(
            &schema,
            "at",
            Cond::Geo(GeoCond::Near {
                point: sf,
                max_distance: Some(km / 6371.0),
            }),
        )
    };
    assert_eq!(find(within_km(20.0), Some(sf)).await, vec!["sf", "oak"]);
    assert_eq!(
        find(within_km(600.0), Some(sf)).await,
        vec!["sf", "oak", "la"]
    );
    let everywhere = cond(
        &schema,
        "at",
        Cond::Geo(GeoCond::Near {
            point: point(40.0, -75.0),
            max_distance: None,
        }),
    );
    assert_eq!(
        find(everywhere, Some(point(40.0, -75.0))).await,
        vec!["ny", "la", "oak", "sf"]
    );
    let boxed = cond(
        &schema,
        "at",
        Cond::Geo(GeoCond::WithinBox {
            south_west: point(33.0, -123.0),
            north_east: point(38.0, -118.0),
        }),
    );
    assert_eq!(find(boxed, None).await, vec!["sf", "oak", "la"]);
    let bay = cond(
        &schema,
        "at",
        Cond::Geo(GeoCond::WithinPolygon(vec![
            point(37.0, -123.0),
            point(38.5, -123.0),
            point(38.5, -122.0),
            point(37.0, -122.0),
        ])),
    );
    assert_eq!(find(bay, None).await, vec!["sf", "oak"]);
    let sphere = cond(
        &schema,
        "at",
        Cond::Geo(GeoCond::WithinSphere {
            center: point(34.0, -118.0),
            radius: 50.0 / 6371.0,
        }),
    );
    assert_eq!(find(sphere, None).await, vec!["la"]);
    let contains = |latitude: f64, longitude: f64| {
        cond(
            &schema,
            "area",
            Cond::Geo(GeoCond::PolygonContains(point(latitude, longitude))),
        )
    };
    assert_eq!(find(contains(37.5, -122.5), None).await, vec!["sf"]);
    assert!(find(contains(36.0, -122.5), None).await.is_empty());
    // On a field of another type, a geo condition holds nothing.
    let wrong = cond(
        &schema,
        "area",
        Cond::Geo(GeoCond::WithinSphere {
            center: sf,
            radius: 1.0,
        }),
    );
    assert!(find(wrong, None).await.is_empty());
}

pub async fn order_paging_keys_and_count(store: &dyn Store) {
    let schema = class(
        "Row",
        &[
            ("group", FieldType::Number),
            ("label", FieldType::String),
            ("meta", FieldType::Object),
        ],
    );
    store.create_class(&schema).await.unwrap();
    let rows = (0..10)
        .map(|i| {
            object(
                &format!("r{i}"),
                i,
                json!({"group": i % 3, "label": format!("L{}", 9 - i), "meta": {"rank": 10 - i}}),
            )
        })
        .collect();
    insert(store, &schema, rows).await;
    let order = |keys: &[(&str, bool)]| -> Vec<SortKey> {
        keys.iter()
            .map(|(key, descending)| SortKey {
                field: field_ref(&schema, key),
                descending: *descending,
                near: None,
            })
            .collect()
    };
    let run = |query: FindQuery| {
        let schema = &schema;
        async move {
            store
                .find(schema, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|object| object.object_id)
                .collect::<Vec<_>>()
        }
    };
    let mut query = FindQuery::filter(Filter::True);
    assert_eq!(
        run(query.clone()).await,
        (0..10).map(|i| format!("r{i}")).collect::<Vec<_>>()
    );
    query.order = order(&[("group", true), ("label", false)]);
    assert_eq!(
        run(query.clone()).await,
        vec!["r8", "r5", "r2", "r7", "r4", "r1", "r9", "r6", "r3", "r0"]
    );
    query.order = order(&[("meta.rank", false)]);
    assert_eq!(run(query.clone()).await.first().unwrap(), "r9");
    query.order = order(&[("group", false)]);
    query.skip = 2;
    query.limit = Some(3);
    assert_eq!(run(query.clone()).await, vec!["r6", "r9", "r1"]);
    query.limit = None;
    assert_eq!(run(query.clone()).await.len(), 8);
    query.limit = Some(0);
    assert!(run(query.clone()).await.is_empty());
    // Keys: only the listed fields come back, plus the defaults.
    let mut keyed = FindQuery::filter(Filter::True);
    keyed.keys = Some(vec!["label".into()]);
    keyed.limit = Some(1);
    let found = store.find(&schema, &keyed).await.unwrap();
    assert_eq!(found[0].fields.keys().collect::<Vec<_>>(), vec!["label"]);
    assert_eq!(found[0].created_at, "2024-01-01T00:00:00.000Z");
    let filter = cond(&schema, "group", Cond::Eq(n(1.0)));
    assert_eq!(store.count(&schema, &filter).await.unwrap(), 3);
    assert_eq!(store.count(&schema, &Filter::True).await.unwrap(), 10);
    let missing = class("Missing", &[]);
    assert_eq!(store.count(&missing, &Filter::True).await.unwrap(), 0);
    assert!(
        store
            .find(&missing, &FindQuery::filter(Filter::True))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Readable/Writable follow `_rperm`/`_wperm`; no ACL means public.
pub async fn readable_and_writable(store: &dyn Store) {
    let schema = class("Doc", &[]);
    store.create_class(&schema).await.unwrap();
    let with_acl = |id: &str, n: u32, acl: Option<Value>| {
        let mut object = object(id, n, json!({}));
        object.acl = acl.map(|acl| Acl::from_json(&acl).unwrap());
        object
    };
    insert(
        store,
        &schema,
        vec![
            with_acl("public", 1, None),
            with_acl(
                "readall",
                2,
                Some(json!({"*": {"read": true}, "u1": {"write": true}})),
            ),
            with_acl(
                "u1only",
                3,
                Some(json!({"u1": {"read": true, "write": true}})),
            ),
            with_acl("role", 4, Some(json!({"role:admin": {"read": true}}))),
            with_acl("nobody", 5, Some(json!({}))),
        ],
    )
    .await;
    let group = |entries: &[&str]| entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        ids(store, &schema, Filter::Readable(group(&["*"]))).await,
        vec!["public", "readall"]
    );
    assert_eq!(
        ids(store, &schema, Filter::Readable(group(&["*", "u1"]))).await,
        vec!["public", "readall", "u1only"]
    );
    assert_eq!(
        ids(
            store,
            &schema,
            Filter::Readable(group(&["*", "role:admin"]))
        )
        .await,
        vec!["public", "readall", "role"]
    );
    assert_eq!(
        ids(store, &schema, Filter::Readable(vec![])).await,
        vec!["public"]
    );
    assert_eq!(
        ids(store, &schema, Filter::Writable(group(&["*", "u1"]))).await,
        vec!["public", "readall", "u1only"]
    );
    assert_eq!(
        ids(store, &schema, Filter::Writable(group(&["*"]))).await,
        vec!["public"]
    );
}

/// `$relatedTo` reads the join table written by relation ops on create and update.
pub async fn related_to_follows_join_rows(store: &dyn Store) {
    let users = class("_User", &[]);
    let role = class("_Role", &[]);
    store.create_class(&users).await.unwrap();
    store.create_class(&role).await.unwrap();
    insert(
        store,
        &users,
        (1..=3)
            .map(|i| object(&format!("u{i}"), i, json!({})))
            .collect(),
    )
    .await;
    let relation = |add: &[&str], remove: &[&str]| FieldUpdate {
        field: "users".into(),
        path: Vec::new(),
        op: FieldOp::Relation {
            target_class: "_User".into(),
            add: add.iter().map(|s| (*s).to_owned()).collect(),
            remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        },
    };
    store
        .write(vec![Write::Create {
            schema: Arc::new(role.clone()),
            object: object("r1", 1, json!({"name": "admin"})),
            relations: vec![relation(&["u1", "u2"], &[])],
        }])
        .await
        .unwrap();
    let related = |owner_id: &str| Filter::RelatedTo {
        owner_class: "_Role".into(),
        owner_id: owner_id.into(),
        key: "users".into(),
    };
    assert_eq!(ids(store, &users, related("r1")).await, vec!["u1", "u2"]);
    store
        .write(vec![update(&role, "r1", vec![relation(&["u3"], &["u1"])])])
        .await
        .unwrap();
    assert_eq!(ids(store, &users, related("r1")).await, vec!["u2", "u3"]);
    assert!(ids(store, &users, related("nope")).await.is_empty());
    let missing_relation = Filter::RelatedTo {
        owner_class: "_Role".into(),
        owner_id: "r1".into(),
        key: "nothing".into(),
    };
    assert!(ids(store, &users, missing_relation).await.is_empty());
    // Deleting the owner deletes its join rows.
    store
        .write(vec![Write::Delete {
            schema: Arc::new(role.clone()),
            object_id: "r1".into(),
            guard: Filter::True,
        }])
        .await
        .unwrap();
    assert!(ids(store, &users, related("r1")).await.is_empty());
}

/// `$inQuery`/`$notInQuery` and `$select`/`$dontSelect` run the subquery in SQL.
pub async fn in_query_and_select(store: &dyn Store) {
    let sessions = class(
        "ChatSession",
        &[
            ("archived", FieldType::Boolean),
            ("title", FieldType::String),
        ],
    );
    let messages = class(
        "Message",
        &[
            ("session", FieldType::Pointer("ChatSession".into())),
            ("sessions", FieldType::Array),
            ("text", FieldType::String),
        ],
    );
    store.create_class(&sessions).await.unwrap();
    store.create_class(&messages).await.unwrap();
    insert(
        store,
        &sessions,
        vec![
            object("s1", 1, json!({"archived": false, "title": "hello"})),
            object("s2", 2, json!({"archived": true, "title": "bye"})),
            object("s3", 3, json!({"archived": false})),
        ],
    )
    .await;
    let session =
        |id: &str| json!({"__type": "Pointer", "className": "ChatSession", "objectId": id});
    insert(
        store,
        &messages,
        vec![
            object("m1", 1, json!({"session": session("s1"), "text": "hello", "sessions": [session("s2")]})),
            object("m2", 2, json!({"session": session("s2"), "text": "bye", "sessions": [session("s1"), session("s3")]})),
            object("m3", 3, json!({"text": "none"})),
        ],
    )
    .await;
    let active = SubQuery {
        class_name: "ChatSession".into(),
        filter: cond(&sessions, "archived", Cond::Eq(Operand::Bool(false))),
    };
    let in_query = |field: &str, negate: bool| Filter::InQuery {
        field: field_ref(&messages, field),
        query: Box::new(active.clone()),
        negate,
    };
    assert_eq!(
        ids(store, &messages, in_query("session", false)).await,
        vec!["m1"]
    );
    assert_eq!(
        ids(store, &messages, in_query("session", true)).await,
        vec!["m2", "m3"]
    );
    assert_eq!(
        ids(store, &messages, in_query("sessions", false)).await,
        vec!["m2"]
    );
    let missing_class = Filter::InQuery {
        field: field_ref(&messages, "session"),
        query: Box::new(SubQuery {
            class_name: "Nowhere".into(),
            filter: Filter::True,
        }),
        negate: false,
    };
    assert!(ids(store, &messages, missing_class).await.is_empty());
    let select = |negate: bool| Filter::Select {
        field: field_ref(&messages, "text"),
        query: Box::new(SubQuery {
            class_name: "ChatSession".into(),
            filter: Filter::True,
        }),
        key: field_ref(&sessions, "title"),
        negate,
    };
    assert_eq!(ids(store, &messages, select(false)).await, vec!["m1", "m2"]);
    // s3 has no title: NULL keys do not make `$dontSelect` unknown.
    assert_eq!(ids(store, &messages, select(true)).await, vec!["m3"]);
}

/// Every field op is applied to the state read inside the transaction.
pub async fn updates_apply_each_op(store: &dyn Store) {
    let schema = class(
        "Counter",
        &[
            ("n", FieldType::Number),
            ("list", FieldType::Array),
            ("meta", FieldType::Object),
            ("s", FieldType::String),
        ],
    );
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        vec![object("c", 1, json!({"n": 1, "list": ["a"], "s": "x"}))],
    )
    .await;
    let outcome = store
        .write(vec![update(
            &schema,
            "c",
            vec![
                set("n", FieldOp::Increment(2.into())),
                set("list", FieldOp::Add(vec![json!("b"), json!("a")])),
                set("s", FieldOp::Delete),
                FieldUpdate {
                    field: "meta".into(),
                    path: vec!["tokens".into()],
                    op: FieldOp::Increment(5.into()),
                },
                set("ACL", FieldOp::Set(json!({"u1": {"read": true}}))),
            ],
        )])
        .await
        .unwrap();
    let WriteOutcome::Updated { before, after } = &outcome[0] else {
        panic!("{outcome:?}");
    };
    assert_eq!(before.fields["n"], json!(1));
    assert_eq!(after.fields["n"], json!(3));
    assert_eq!(after.updated_at, "2024-06-01T00:00:00.000Z");
    let stored = get(store, &schema, "c").await.unwrap();
    assert_eq!(&stored, after);
    assert_eq!(stored.fields["list"], json!(["a", "b", "a"]));
    assert_eq!(stored.fields["meta"], json!({"tokens": 5}));
    assert!(!stored.fields.contains_key("s"));
    assert_eq!(stored.acl.unwrap().readers(), vec!["u1".to_owned()]);
    store
        .write(vec![update(
            &schema,
            "c",
            vec![
                set("list", FieldOp::AddUnique(vec![json!("a"), json!("c")])),
                set(
                    "n",
                    FieldOp::Increment(serde_json::Number::from_f64(0.5).unwrap()),
                ),
                set("ACL", FieldOp::Delete),
            ],
        )])
        .await
        .unwrap();
    let stored = get(store, &schema, "c").await.unwrap();
    assert_eq!(stored.fields["list"], json!(["a", "b", "a", "c"]));
    assert_eq!(stored.fields["n"], json!(3.5));
    assert_eq!(stored.acl, None);
    store
        .write(vec![update(
            &schema,
            "c",
            vec![set("list", FieldOp::Remove(vec![json!("a")]))],
        )])
        .await
        .unwrap();
    assert_eq!(
        get(store, &schema, "c").await.unwrap().fields["list"],
        json!(["b", "c"])
    );
    // An op that does not fit the stored value is the client's fault.
    let error = store
        .write(vec![update(
            &schema,
            "c",
            vec![set("list", FieldOp::Increment(1.into()))],
        )])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
}

/// Update and delete with a failing guard are "not found" and change nothing.
pub async fn guards_protect_updates_and_deletes(store: &dyn Store) {
    let schema = class("Note", &[("n", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    let mut note = object("note", 1, json!({"n": 1}));
    note.acl = Some(Acl::from_json(&json!({"owner": {"read": true, "write": true}})).unwrap());
    insert(store, &schema, vec![note]).await;
    let guard = Filter::Writable(vec!["*".into(), "stranger".into()]);
    let result = store
        .write(vec![Write::Update {
            schema: Arc::new(schema.clone()),
            object_id: "note".into(),
            guard: guard.clone(),
            updates: vec![set("n", FieldOp::Increment(1.into()))],
            updated_at: "2024-06-01T00:00:00.000Z".into(),
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::ObjectNotFound)),
        "{result:?}"
    );
    let result = store
        .write(vec![Write::Delete {
            schema: Arc::new(schema.clone()),
            object_id: "note".into(),
            guard,
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::ObjectNotFound)),
        "{result:?}"
    );
    assert_eq!(
        get(store, &schema, "note").await.unwrap().fields["n"],
        json!(1)
    );
    let outcome = store
        .write(vec![Write::Delete {
            schema: Arc::new(schema.clone()),
            object_id: "note".into(),
            guard: Filter::Writable(vec!["owner".into()]),
        }])
        .await
        .unwrap();
    assert!(matches!(&outcome[0], WriteOutcome::Deleted(before) if before.object_id == "note"));
    assert!(get(store, &schema, "note").await.is_none());
}

/// Unique indexes (declared with `$unique`) refuse duplicates, on create and on update.
pub async fn unique_index_violation_is_duplicate_value(store: &dyn Store) {
    let mut schema = class("Account", &[("handle", FieldType::String)]);
    schema.indexes.insert(
        "handle_unique".into(),
        json!({"handle": 1, "$unique": true}),
    );
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        vec![
            object("a1", 1, json!({"handle": "bob"})),
            object("a2", 2, json!({"handle": "amy"})),
        ],
    )
    .await;
    let result = store
        .write(vec![Write::Create {
            schema: Arc::new(schema.clone()),
            object: object("a3", 3, json!({"handle": "bob"})),
            relations: Vec::new(),
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    let result = store
        .write(vec![update(
            &schema,
            "a2",
            vec![set("handle", FieldOp::Set(json!("bob")))],
        )])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    // _User's username is unique without being declared.
    let users = class("_User", &[]);
    store.create_class(&users).await.unwrap();
    insert(
        store,
        &users,
        vec![object("u1", 1, json!({"username": "x"}))],
    )
    .await;
    let result = store
        .write(vec![Write::Create {
            schema: Arc::new(users.clone()),
            object: object("u2", 2, json!({"username": "x"})),
            relations: Vec::new(),
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
}

/// §2.2: a top-level null is stored as an explicit null (`_nulls`), read back as `null`,
/// and exists for `$exists`; a Delete unsets it; any value or op result replaces it.
pub async fn explicit_nulls_are_stored_and_exist(store: &dyn Store) {
    let schema = class(
        "Nullable",
        &[
            ("s", FieldType::String),
            ("n", FieldType::Number),
            ("o", FieldType::Object),
            ("p", FieldType::Pointer("_User".into())),
            ("w", FieldType::Number),
        ],
    );
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        vec![
            object(
                "a",
                1,
                json!({"s": null, "n": null, "o": {"x": null}, "w": 1}),
            ),
            object("b", 2, json!({"s": "x", "o": {}, "p": null, "w": 2})),
            object("c", 3, json!({"w": 3})),
        ],
    )
    .await;
    let a = get(store, &schema, "a").await.unwrap();
    assert_eq!(
        Value::Object(a.fields.clone()),
        json!({"s": null, "n": null, "o": {"x": null}, "w": 1})
    );
    let b = get(store, &schema, "b").await.unwrap();
    assert_eq!(b.fields.get("p"), Some(&Value::Null));
    assert!(
        !get(store, &schema, "c")
            .await
            .unwrap()
            .fields
            .contains_key("s")
    );

    let sc = &schema;
    let cases = vec![
        (cond(sc, "s", Cond::Exists(true)), vec!["a", "b"]),
        (cond(sc, "s", Cond::Exists(false)), vec!["c"]),
        (cond(sc, "p", Cond::Exists(true)), vec!["b"]),
        (cond(sc, "o.x", Cond::Exists(true)), vec!["a"]),
        (cond(sc, "o.x", Cond::Exists(false)), vec!["b", "c"]),
        (
            cond(sc, "objectId", Cond::Exists(true)),
            vec!["a", "b", "c"],
        ),
        // Every other condition reads the null as absent.
        (cond(sc, "s", Cond::Eq(Operand::Null)), vec!["a", "c"]),
        (cond(sc, "s", Cond::Ne(Operand::Null)), vec!["b"]),
        (cond(sc, "s", Cond::Ne(s("x"))), vec!["a", "c"]),
        (cond(sc, "s", Cond::Nin(vec![s("x")])), vec!["a", "c"]),
        (cond(sc, "n", Cond::Lt(n(5.0))), vec![]),
        (
            cond(sc, "o.x", Cond::Eq(Operand::Null)),
            vec!["a", "b", "c"],
        ),
        (
            Filter::Nor(vec![cond(sc, "s", Cond::Exists(true))]),
            vec!["c"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            ids(store, &schema, filter.clone()).await,
            expected,
            "{filter:?}"
        );
    }

    // Keys: a null field that is not selected does not appear.
    let mut query = FindQuery::filter(cond(sc, "objectId", Cond::Eq(s("a"))));
    query.keys = Some(vec!["w".to_owned()]);
    let found = store.find(&schema, &query).await.unwrap();
    assert_eq!(Value::Object(found[0].fields.clone()), json!({"w": 1}));
    query.keys = Some(vec!["s".to_owned()]);
    let found = store.find(&schema, &query).await.unwrap();
    assert_eq!(Value::Object(found[0].fields.clone()), json!({"s": null}));

    // Updates: Set(null) adds the name, a value / op result / Delete takes it away.
    let outcome = store
        .write(vec![update(
            &schema,
            "b",
            vec![
                set("s", FieldOp::Set(Value::Null)),
                set("p", FieldOp::Set(user("u1"))),
            ],
        )])
        .await
        .unwrap();
    let WriteOutcome::Updated { after, .. } = &outcome[0] else {
        panic!("{outcome:?}");
    };
    assert_eq!(after.fields.get("s"), Some(&Value::Null));
    assert_eq!(&get(store, &schema, "b").await.unwrap(), after);
    store
        .write(vec![update(
            &schema,
            "a",
            vec![
                set("s", FieldOp::Set(json!("now"))),
                set("n", FieldOp::Increment(2.into())),
                set("w", FieldOp::Set(Value::Null)),
                FieldUpdate {
                    field: "o".into(),
                    path: vec!["y".into()],
                    op: FieldOp::Set(Value::Null),
                },
            ],
        )])
        .await
        .unwrap();
    let a = get(store, &schema, "a").await.unwrap();
    assert_eq!(
        Value::Object(a.fields),
        json!({"s": "now", "n": 2, "o": {"x": null, "y": null}, "w": null})
    );
    store
        .write(vec![update(&schema, "a", vec![set("w", FieldOp::Delete)])])
        .await
        .unwrap();
    let a = get(store, &schema, "a").await.unwrap();
    assert!(!a.fields.contains_key("w"), "{:?}", a.fields);
    assert_eq!(
        ids(store, &schema, cond(sc, "w", Cond::Exists(false))).await,
        vec!["a"]
    );
    assert_eq!(
        ids(store, &schema, cond(sc, "s", Cond::Exists(true))).await,
        vec!["a", "b"]
    );
    assert_eq!(
        ids(store, &schema, cond(sc, "n", Cond::Exists(true))).await,
        vec!["a"]
    );

    // A field removed from the schema and added again does not come back as null.
    let mut without = schema.clone();
    without.fields.remove("s");
    store.update_class(&schema, &without).await.unwrap();
    store.update_class(&without, &schema).await.unwrap();
    let b = get(store, &schema, "b").await.unwrap();
    assert!(!b.fields.contains_key("s"), "{:?}", b.fields);
    assert_eq!(
        ids(store, &schema, cond(sc, "s", Cond::Exists(true))).await,
        Vec::<String>::new()
    );
}

/// A null of a field the schema does not know (issue 10): no column, but `_nulls` keeps it,
/// so it reads back (when `keys` allows), `Exists` finds it, a Delete forgets it, and once
/// the field is added to the schema the stored null is that object's value.
pub async fn untyped_nulls_are_kept(store: &dyn Store) {
    let schema = class("Loose", &[("w", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        vec![
            object("a", 1, json!({"u": null, "w": 1})),
            object("b", 2, json!({"w": 2})),
        ],
    )
    .await;
    let a = get(store, &schema, "a").await.unwrap();
    assert_eq!(Value::Object(a.fields.clone()), json!({"u": null, "w": 1}));
    let sc = &schema;
    assert_eq!(
        ids(store, sc, cond(sc, "u", Cond::Exists(true))).await,
        vec!["a"]
    );
    assert_eq!(
        ids(store, sc, cond(sc, "u", Cond::Exists(false))).await,
        vec!["b"]
    );
    // Every other condition sees it absent, as for a typed field.
    assert_eq!(
        ids(store, sc, cond(sc, "u", Cond::Eq(Operand::Null))).await,
        vec!["a", "b"]
    );
    let mut query = FindQuery::filter(Filter::True);
    query.keys = Some(vec!["w".to_owned()]);
    let found = store.find(&schema, &query).await.unwrap();
    assert_eq!(Value::Object(found[0].fields.clone()), json!({"w": 1}));

    // An update sets it on b and forgets it on a.
    store
        .write(vec![
            update(&schema, "b", vec![set("u", FieldOp::Set(Value::Null))]),
            update(&schema, "a", vec![set("u", FieldOp::Delete)]),
        ])
        .await
        .unwrap();
    assert_eq!(
        ids(store, sc, cond(sc, "u", Cond::Exists(true))).await,
        vec!["b"]
    );
    assert!(
        !get(store, &schema, "a")
            .await
            .unwrap()
            .fields
            .contains_key("u")
    );

    // The field gets a type: b's stored null is its value.
    let mut typed = schema.clone();
    typed.fields.insert(
        "u".into(),
        parlor_core::schema::FieldSchema::of(FieldType::String),
    );
    store.update_class(&schema, &typed).await.unwrap();
    let b = get(store, &typed, "b").await.unwrap();
    assert_eq!(b.fields.get("u"), Some(&Value::Null));
    assert_eq!(
        ids(store, &typed, cond(&typed, "u", Cond::Exists(true))).await,
        vec!["b"]
    );
}

/// A condition on a Relation field tests membership in its join table: `Eq`/`In` of
/// pointers, `Ne`/`Nin` as their negation; a pointer of another class, a non-pointer and a
/// relation without a join table hold nothing. It composes with other conditions, counts, and
/// works inside a subquery.
pub async fn relation_membership_conditions(store: &dyn Store) {
    let roles = roles(store).await;
    let users = cond(&roles, "users", Cond::Eq(ptr("_User", "u1")));
    assert!(!users.is_matchable());
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (users, vec!["r1"]),
        (
            cond(&roles, "users", Cond::Eq(ptr("_User", "u2"))),
            vec!["r1", "r2"],
        ),
        (cond(&roles, "users", Cond::Eq(ptr("_User", "u3"))), vec![]),
        (
            cond(
                &roles,
                "users",
                Cond::In(vec![ptr("_User", "u1"), ptr("_User", "u3")]),
            ),
            vec!["r1"],
        ),
        (
            cond(
                &roles,
                "users",
                Cond::In(vec![ptr("_User", "u1"), ptr("_User", "u2")]),
            ),
            vec!["r1", "r2"],
        ),
        (cond(&roles, "users", Cond::In(vec![])), vec![]),
        (
            cond(&roles, "users", Cond::Ne(ptr("_User", "u2"))),
            vec!["r3"],
        ),
        (
            cond(
                &roles,
                "users",
                Cond::Nin(vec![ptr("_User", "u1"), s("u2")]),
            ),
            vec!["r2", "r3"],
        ),
        (
            cond(&roles, "users", Cond::Nin(vec![])),
            vec!["r1", "r2", "r3"],
        ),
        // The pointer's class must be the relation's target.
        (cond(&roles, "users", Cond::Eq(ptr("_Role", "u1"))), vec![]),
        (
            cond(&roles, "users", Cond::Ne(ptr("_Role", "u1"))),
            vec!["r1", "r2", "r3"],
        ),
        (cond(&roles, "users", Cond::Eq(s("u1"))), vec![]),
        (cond(&roles, "users", Cond::Eq(Operand::Null)), vec![]),
        (
            cond(&roles, "roles", Cond::Eq(ptr("_Role", "r1"))),
            vec!["r2"],
        ),
        (
            cond(&roles, "roles", Cond::Eq(ptr("_Role", "r1"))).and(cond(
                &roles,
                "users",
                Cond::Eq(ptr("_User", "u2")),
            )),
            vec!["r2"],
        ),
        (
            Filter::Or(vec![
                cond(&roles, "users", Cond::Eq(ptr("_User", "u1"))),
                cond(&roles, "name", Cond::Eq(s("r3"))),
            ]),
            vec!["r1", "r3"],
        ),
        (
            Filter::Nor(vec![cond(&roles, "users", Cond::Eq(ptr("_User", "u1")))]),
            vec!["r2", "r3"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            ids(store, &roles, filter.clone()).await,
            expected,
            "{filter:?}"
        );
    }
    // A Relation field whose join table does not exist: no members.
    let ghost = Filter::Cond {
        field: FieldRef {
            field: "ghost".into(),
            path: Vec::new(),
            field_type: Some(FieldType::Relation("_User".into())),
        },
        cond: Cond::Eq(ptr("_User", "u1")),
    };
    assert!(ids(store, &roles, ghost).await.is_empty());
    let not_ghost = Filter::Cond {
        field: FieldRef {
            field: "ghost".into(),
            path: Vec::new(),
            field_type: Some(FieldType::Relation("_User".into())),
        },
        cond: Cond::Ne(ptr("_User", "u1")),
    };
    assert_eq!(ids(store, &roles, not_ghost).await, vec!["r1", "r2", "r3"]);
    assert_eq!(
        store
            .count(&roles, &cond(&roles, "users", Cond::Eq(ptr("_User", "u2"))))
            .await
            .unwrap(),
        2
    );
    // Inside a subquery the relation belongs to the subquery's class: the users named like
    // a role that holds u2.
    let users = ClassSchema::new("_User");
    insert(
        store,
        &users,
        vec![object("u9", 9, json!({"username": "r2"}))],
    )
    .await;
    let named_like_roles_of = |user_id: &str, negate: bool| Filter::Select {
        field: field_ref(&users, "username"),
        query: Box::new(SubQuery {
            class_name: "_Role".into(),
            filter: cond(&roles, "users", Cond::Eq(ptr("_User", user_id))),
        }),
        key: field_ref(&roles, "name"),
        negate,
    };
    assert_eq!(
        ids(store, &users, named_like_roles_of("u2", false)).await,
        vec!["u9"]
    );
    assert!(
        ids(store, &users, named_like_roles_of("u1", false))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(store, &users, named_like_roles_of("u2", true)).await,
        vec!["u1", "u2", "u3"]
    );
    // The membership test reads the join table by its `relatedId` index.
    let plan = store
        .explain(
            &roles,
            &FindQuery::filter(cond(&roles, "users", Cond::Eq(ptr("_User", "u1")))),
        )
        .await
        .unwrap();
    assert!(plan.contains("_Join:users:_Role$related"), "{plan}");
    store.close().await;
}

/// `EqIgnoreCase` folds ASCII case only, on String columns and strings inside Object
/// fields; anything else is false.
pub async fn equality_ignoring_case(store: &dyn Store) {
    let schema = things(store).await;
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (
            cond(&schema, "name", Cond::EqIgnoreCase("ALPHA".into())),
            vec!["a"],
        ),
        (
            cond(&schema, "name", Cond::EqIgnoreCase("delta".into())),
            vec!["d"],
        ),
        (
            cond(&schema, "name", Cond::EqIgnoreCase("GAMMA RAY".into())),
            vec!["c"],
        ),
        (
            cond(&schema, "name", Cond::EqIgnoreCase("alph".into())),
            vec![],
        ),
        (
            cond(&schema, "meta.k", Cond::EqIgnoreCase("V".into())),
            vec!["a"],
        ),
        (
            cond(&schema, "meta.n", Cond::EqIgnoreCase("5".into())),
            vec![],
        ),
        (
            cond(&schema, "score", Cond::EqIgnoreCase("1".into())),
            vec![],
        ),
        (
            cond(&schema, "owner", Cond::EqIgnoreCase("U1".into())),
            vec![],
        ),
        (
            cond(&schema, "tags", Cond::EqIgnoreCase("X".into())),
            vec![],
        ),
        (
            cond(&schema, "objectId", Cond::EqIgnoreCase("B".into())),
            vec!["b"],
        ),
        (
            cond(&schema, "missing", Cond::EqIgnoreCase("".into())),
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            ids(store, &schema, filter.clone()).await,
            expected,
            "{filter:?}"
        );
    }
    store.close().await;
}

/// `class_generation` moves once a write or schema change of the class has committed (by the
/// time its caller is answered), and not for reads, failed writes or other classes.
pub async fn class_generation_follows_committed_changes(store: &dyn Store) {
    let roles = roles(store).await;
    let users = ClassSchema::new("_User");
    let generation = store.class_generation("_Role");
    assert!(generation > 0);
    ids(store, &roles, Filter::True).await;
    insert(store, &users, vec![object("u8", 8, json!({}))]).await;
    assert_eq!(store.class_generation("_Role"), generation);
    let remove_u1 = FieldUpdate {
        field: "users".into(),
        path: Vec::new(),
        op: FieldOp::Relation {
            target_class: "_User".into(),
            add: Vec::new(),
            remove: vec!["u1".into()],
        },
    };
    store
        .write(vec![update(&roles, "r1", vec![remove_u1])])
        .await
        .unwrap();
    let after_update = store.class_generation("_Role");
    assert_ne!(after_update, generation);
    // A failed write (a duplicate name) changes nothing.
    let result = store
        .write(vec![Write::Create {
            schema: Arc::new(roles.clone()),
            object: object("r9", 9, json!({"name": "r1"})),
            relations: Vec::new(),
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    assert_eq!(store.class_generation("_Role"), after_update);
    store.purge_class("_Role").await.unwrap();
    assert_ne!(store.class_generation("_Role"), after_update);
    assert_eq!(store.class_generation("Nothing"), 0);
    store.close().await;
}

/// Adding a field, writing it, removing it (and its column), dropping the class. `reopen`
/// opens the same database again once `store` is closed.
pub async fn ddl_follows_schema_changes(
    store: &dyn Store,
    reopen: impl Future<Output = Box<dyn Store>>,
) {
    let before = class("Evolving", &[("old", FieldType::String)]);
    store.create_class(&before).await.unwrap();
    insert(store, &before, vec![object("e1", 1, json!({"old": "x"}))]).await;
    let mut after = class(
        "Evolving",
        &[
            ("added", FieldType::Number),
            ("link", FieldType::Pointer("_User".into())),
            ("rel", FieldType::Relation("_User".into())),
        ],
    );
    after
        .indexes
        .insert("by_added".into(), json!({"added": -1}));
    store.update_class(&before, &after).await.unwrap();
    store
        .write(vec![update(
            &after,
            "e1",
            vec![set("added", FieldOp::Set(json!(7)))],
        )])
        .await
        .unwrap();
    let stored = get(store, &after, "e1").await.unwrap();
    assert_eq!(stored.fields["added"], json!(7));
    assert!(!stored.fields.contains_key("old"));
    assert_eq!(
        stored.fields["rel"],
        json!({"__type": "Relation", "className": "_User"})
    );
    let schemas = store.load_schemas().await.unwrap();
    assert_eq!(
        schemas.iter().find(|s| s.class_name == "Evolving").unwrap(),
        &after
    );
    // The column is gone: the old schema can no longer be read.
    assert!(
        store
            .find(&before, &FindQuery::filter(Filter::True))
            .await
            .is_err()
    );
    store.purge_class("Evolving").await.unwrap();
    assert_eq!(store.count(&after, &Filter::True).await.unwrap(), 0);
    store.drop_class("Evolving").await.unwrap();
    assert!(
        store
            .load_schemas()
            .await
            .unwrap()
            .iter()
            .all(|s| s.class_name != "Evolving")
    );
    assert!(
        store
            .find(&after, &FindQuery::filter(Filter::True))
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    // Reopening finds the schemas again.
    let reopened = reopen.await;
    assert!(reopened.load_schemas().await.unwrap().is_empty());
    reopened.close().await;
}

/// SQL metacharacters in values, keys and sub-keys are data, never syntax. `more` are further
/// values the backend can hold (PostgreSQL text cannot hold NUL).
pub async fn hostile_values_match_literally(store: &dyn Store, more: &[&str]) {
    let schema = class(
        "Hostile",
        &[
            ("text", FieldType::String),
            ("tags", FieldType::Array),
            ("meta", FieldType::Object),
        ],
    );
    store.create_class(&schema).await.unwrap();
    let mut nasty = vec![
        "it's",
        "a\"b",
        "x'; DROP TABLE \"Hostile\";--",
        "100%",
        "under_score",
        "back\\slash",
        "$.\"key\"",
        "[0]",
        "emoji 🎉",
    ];
    nasty.extend_from_slice(more);
    let objects = nasty
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let mut meta = serde_json::Map::new();
            meta.insert((*value).to_owned(), json!(value));
            object(
                &format!("h{i}"),
                i as u32,
                json!({"text": value, "tags": [value], "meta": Value::Object(meta)}),
            )
        })
        .collect();
    insert(store, &schema, objects).await;
    for (i, value) in nasty.iter().enumerate() {
        let expected = vec![format!("h{i}")];
        assert_eq!(
            ids(store, &schema, cond(&schema, "text", Cond::Eq(s(value)))).await,
            expected,
            "{value}"
        );
        assert_eq!(
            ids(store, &schema, cond(&schema, "tags", Cond::Eq(s(value)))).await,
            expected,
            "{value}"
        );
        let path = FieldRef {
            field: "meta".into(),
            path: vec![(*value).to_owned()],
            field_type: Some(FieldType::Object),
        };
        let by_key = Filter::Cond {
            field: path.clone(),
            cond: Cond::Eq(s(value)),
        };
        assert_eq!(ids(store, &schema, by_key).await, expected, "key {value}");
        let exists = Filter::Cond {
            field: path,
            cond: Cond::Exists(true),
        };
        assert_eq!(ids(store, &schema, exists).await, expected, "key {value}");
        let regex = cond(
            &schema,
            "text",
            Cond::Regex(pattern(&format!(
                "^{}$",
                parlor_core::query::regex::expand_quotes(&format!("\\Q{value}\\E"))
            ))),
        );
        assert_eq!(ids(store, &schema, regex).await, expected, "regex {value}");
        let whole = Operand::Json(json!({*value: value}));
        assert_eq!(
            ids(store, &schema, cond(&schema, "meta", Cond::Eq(whole))).await,
            expected,
            "json {value}"
        );
    }
    assert_eq!(
        store.count(&schema, &Filter::True).await.unwrap(),
        nasty.len() as u64
    );
    // Hostile ACL entries, object ids, relation owners and sort sub-keys are data too.
    let readable = Filter::Readable(vec!["'; --".into(), "\"".into()]);
    assert_eq!(ids(store, &schema, readable).await.len(), nasty.len());
    for &value in &nasty {
        let by_id = cond(&schema, "objectId", Cond::Eq(s(value)));
        assert!(ids(store, &schema, by_id).await.is_empty());
        let related = Filter::RelatedTo {
            owner_class: value.to_owned(),
            owner_id: value.to_owned(),
            key: value.to_owned(),
        };
        assert!(ids(store, &schema, related).await.is_empty());
        let query = FindQuery {
            order: vec![SortKey {
                field: FieldRef {
                    field: "meta".into(),
                    path: vec![value.to_owned()],
                    field_type: Some(FieldType::Object),
                },
                descending: true,
                near: None,
            }],
            ..FindQuery::filter(Filter::True)
        };
        let found = store.find(&schema, &query).await.unwrap();
        let index = nasty.iter().position(|other| other == &value).unwrap();
        // The one object with that key sorts first when descending (absent values are NULL).
        assert_eq!(found[0].object_id, format!("h{index}"), "sort by {value}");
    }
    assert_eq!(
        store.count(&schema, &Filter::True).await.unwrap(),
        nasty.len() as u64
    );
}

/// `_User.username` and `_User.email` are unique regardless of ASCII case, and a
/// case-insensitive lookup on them is an index search: its plan contains what `index_in_plan`
/// makes of the index name. `_Role.name` stays case-sensitive.
pub async fn user_names_and_emails_are_unique_ignoring_case(
    store: &dyn Store,
    index_in_plan: fn(&str) -> String,
) {
    let users = ClassSchema::new("_User");
    let roles = ClassSchema::new("_Role");
    store.create_class(&users).await.unwrap();
    store.create_class(&roles).await.unwrap();
    insert(
        store,
        &users,
        vec![object(
            "u1",
            1,
            json!({"username": "Bob", "email": "Bob@Example.com"}),
        )],
    )
    .await;
    let create = |schema: &ClassSchema, id: &str, fields: Value| Write::Create {
        schema: Arc::new(schema.clone()),
        object: object(id, 2, fields),
        relations: Vec::new(),
    };
    for fields in [
        json!({"username": "BOB"}),
        json!({"username": "bob", "email": "other@example.com"}),
        json!({"username": "robert", "email": "bob@EXAMPLE.COM"}),
    ] {
        let result = store
            .write(vec![create(&users, "u2", fields.clone())])
            .await;
        assert!(
            matches!(result, Err(StoreError::DuplicateValue)),
            "{fields}: {result:?}"
        );
    }
    // Case folding is ASCII only.
    insert(
        store,
        &users,
        vec![
            object("u3", 3, json!({"username": "é"})),
            object("u4", 4, json!({"username": "É"})),
        ],
    )
    .await;
    assert_eq!(
        ids(
            store,
            &users,
            cond(&users, "username", Cond::EqIgnoreCase("bOB".into()))
        )
        .await,
        vec!["u1"]
    );
    assert_eq!(
        ids(
            store,
            &users,
            cond(&users, "username", Cond::EqIgnoreCase("é".into()))
        )
        .await,
        vec!["u3"]
    );
    assert_eq!(
        ids(
            store,
            &users,
            cond(
                &users,
                "email",
                Cond::EqIgnoreCase("BOB@example.COM".into())
            )
        )
        .await,
        vec!["u1"]
    );
    for field in ["email", "username"] {
        let query = FindQuery {
            limit: Some(1),
            ..FindQuery::filter(cond(&users, field, Cond::EqIgnoreCase("x@y.z".into())))
        };
        let plan = store.explain(&users, &query).await.unwrap();
        assert!(
            plan.contains(&index_in_plan(&format!("_User$unique${field}"))),
            "{field}: {plan}"
        );
    }
    // Role names differ by case.
    store
        .write(vec![
            create(&roles, "r1", json!({"name": "Mods"})),
            create(&roles, "r2", json!({"name": "mods"})),
        ])
        .await
        .unwrap();
    let result = store
        .write(vec![create(&roles, "r3", json!({"name": "Mods"}))])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    store.close().await;
}

/// Files are stored, replaced, read and deleted.
pub async fn files_round_trip(store: &dyn Store) {
    assert_eq!(store.get_file("a.txt").await.unwrap(), None);
    store
        .put_file("a.txt", "text/plain", b"hello\0world".to_vec())
        .await
        .unwrap();
    store
        .put_file("a.txt", "text/markdown", b"# hi".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get_file("a.txt").await.unwrap(),
        Some(("text/markdown".to_owned(), b"# hi".to_vec()))
    );
    assert!(store.delete_file("a.txt").await.unwrap());
    assert!(!store.delete_file("a.txt").await.unwrap());
    assert_eq!(store.get_file("a.txt").await.unwrap(), None);
    store.close().await;
}

/// A field removed and added again with another type changes what a statement with the
/// same text returns: statements prepared before the change are not reused after it.
pub async fn field_type_changes_do_not_reuse_stale_statements(store: &dyn Store) {
    let before = class("Shifty", &[("x", FieldType::String)]);
    store.create_class(&before).await.unwrap();
    insert(store, &before, vec![object("a", 1, json!({"x": "text"}))]).await;
    for _ in 0..3 {
        assert_eq!(ids(store, &before, Filter::True).await, vec!["a"]);
        get(store, &before, "a").await.unwrap();
    }
    let without = class("Shifty", &[]);
    store.update_class(&before, &without).await.unwrap();
    let after = class("Shifty", &[("x", FieldType::Number)]);
    store.update_class(&without, &after).await.unwrap();
    insert(store, &after, vec![object("b", 2, json!({"x": 5}))]).await;
    for _ in 0..3 {
        assert_eq!(get(store, &after, "b").await.unwrap().fields["x"], json!(5));
        assert_eq!(ids(store, &after, Filter::True).await, vec!["a", "b"]);
    }
    store.close().await;
}

/// Fifty concurrent increments and add-uniques lose nothing.
pub async fn concurrent_updates_compose(store: Arc<dyn Store>) {
    let schema = class(
        "Counter",
        &[("n", FieldType::Number), ("seen", FieldType::Array)],
    );
    store.create_class(&schema).await.unwrap();
    insert(&*store, &schema, vec![object("c", 1, json!({}))]).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(vec![update(
                    &schema,
                    "c",
                    vec![
                        set("n", FieldOp::Increment(1.into())),
                        set("seen", FieldOp::AddUnique(vec![json!(i % 10)])),
                    ],
                )])
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = get(&*store, &schema, "c").await.unwrap();
    assert_eq!(stored.fields["n"], json!(50));
    let mut seen: Vec<i64> = stored.fields["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

/// A failing job in a commit group leaves the others; a failing write undoes its job.
pub async fn jobs_are_isolated_and_atomic(store: Arc<dyn Store>) {
    let schema = class("Item", &[("n", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    insert(&*store, &schema, vec![object("taken", 0, json!({}))]).await;
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let store = Arc::clone(&store);
        let schema = Arc::new(schema.clone());
        tasks.push(tokio::spawn(async move {
            // Every fourth job collides with an existing id.
            let id = if i % 4 == 0 {
                "taken".to_owned()
            } else {
                format!("i{i}")
            };
            let result = store
                .write(vec![Write::Create {
                    schema,
                    object: object(&id, i, json!({"n": i})),
                    relations: Vec::new(),
                }])
                .await;
            (i, result)
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        if i % 4 == 0 {
            assert!(
                matches!(result, Err(StoreError::DuplicateValue)),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    assert_eq!(store.count(&schema, &Filter::True).await.unwrap(), 31);
    // The second write fails, so the first is not kept either.
    let arc = Arc::new(schema.clone());
    let result = store
        .write(vec![
            Write::Create {
                schema: Arc::clone(&arc),
                object: object("fresh", 1, json!({})),
                relations: Vec::new(),
            },
            update(
                &schema,
                "missing",
                vec![set("n", FieldOp::Increment(1.into()))],
            ),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::ObjectNotFound)),
        "{result:?}"
    );
    assert!(get(&*store, &schema, "fresh").await.is_none());
}

/// The chat-history query (a session's newest 50 readable messages) over 60 messages in two
/// sessions returns the session's newest first. Returns the class and the query, for the
/// backend to check its plan.
pub async fn chat_history(store: &dyn Store) -> (ClassSchema, FindQuery) {
    let schema = class(
        "Message",
        &[
            ("session", FieldType::Pointer("ChatSession".into())),
            ("text", FieldType::String),
        ],
    );
    store.create_class(&schema).await.unwrap();
    let query = FindQuery {
        filter: cond(&schema, "session", Cond::Eq(ptr("ChatSession", "s1")))
            .and(Filter::Readable(vec!["*".into(), "u1".into()])),
        order: vec![SortKey {
            field: field_ref(&schema, "createdAt"),
            descending: true,
            near: None,
        }],
        skip: 0,
        limit: Some(50),
        keys: None,
        score: None,
    };
    insert(
        store,
        &schema,
        (0..60)
            .map(|i| object(&format!("m{i:02}"), i, json!({"session": {"__type": "Pointer", "className": "ChatSession", "objectId": if i % 2 == 0 { "s1" } else { "s2" }}})))
            .collect(),
    )
    .await;
    let found = store.find(&schema, &query).await.unwrap();
    assert_eq!(found.len(), 30);
    assert_eq!(found[0].object_id, "m58");
    (schema, query)
}

/// Replies (`parent` set) among 3,000 messages that mostly have none: finds by the pointer,
/// by a list of pointers, and for the unset pointer (`null`, `$exists: false`) answer exactly
/// those rows, whatever the pointer index leaves out. The find by a list is returned, for its
/// plan.
pub async fn pointers_mostly_unset(store: &dyn Store) -> (ClassSchema, FindQuery) {
    let schema = class(
        "Message",
        &[("parent", FieldType::Pointer("Message".into()))],
    );
    store.create_class(&schema).await.unwrap();
    insert(
        store,
        &schema,
        (0..3000)
            .map(|i| {
                let fields = if i % 100 == 0 {
                    json!({"parent": {"__type": "Pointer", "className": "Message", "objectId": format!("p{}", i % 300)}})
                } else {
                    json!({})
                };
                object(&format!("m{i:04}"), i, fields)
            })
            .collect(),
    )
    .await;
    let count = |filter: Filter| {
        let schema = &schema;
        async move {
            store
                .find(schema, &FindQuery::filter(filter))
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        count(cond(&schema, "parent", Cond::Eq(ptr("Message", "p100")))).await,
        10
    );
    let by_list = cond(
        &schema,
        "parent",
        Cond::In(vec![ptr("Message", "p0"), ptr("Message", "p200")]),
    );
    assert_eq!(count(by_list.clone()).await, 20);
    assert_eq!(
        count(cond(&schema, "parent", Cond::Eq(Operand::Null))).await,
        2970
    );
    assert_eq!(
        count(cond(&schema, "parent", Cond::Exists(false))).await,
        2970
    );
    assert_eq!(count(cond(&schema, "parent", Cond::Exists(true))).await, 30);
    (schema, FindQuery::filter(by_list))
}

/// `$text` on a String column: the store narrows the rows with its index (FTS5, trigrams)
/// and still answers exactly what each term's word regex answers, whatever the scripts,
/// case foldings and punctuation around the words; updates and deletes keep the index.
pub async fn text_conditions_find_what_their_regex_finds(store: &dyn Store) {
    let sc = class(
        "Doc",
        &[("body", FieldType::String), ("other", FieldType::String)],
    );
    store.create_class(&sc).await.unwrap();
    insert(
        store,
        &sc,
        vec![
            object("greek", 1, json!({"body": "ο λόγος του"})),
            object("square", 2, json!({"body": "x² and y"})),
            object("snake", 3, json!({"body": "call foo_bar now"})),
            object("dash", 4, json!({"body": "a well-known fact"})),
            object("kelvin", 5, json!({"body": "300 \u{212A} is warm"})),
            object("cafe", 6, json!({"body": "Café au lait", "other": "café"})),
            object("inside", 7, json!({"body": "xylophone"})),
            object("empty", 8, json!({"other": "x"})),
        ],
    )
    .await;
    let text = |terms: &[&str]| {
        cond(
            &sc,
            "body",
            Cond::Text(terms.iter().map(|term| (*term).to_owned()).collect()),
        )
    };
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (text(&["ΛΌΓΟΣ"]), vec!["greek"]),
        (text(&["λόγοσ"]), vec!["greek"]),
        (text(&["x"]), vec!["square"]),
        (text(&["x²"]), vec![]),
        (text(&["foo_bar"]), vec!["snake"]),
        (text(&["foo"]), vec![]),
        (text(&["well-known"]), vec!["dash"]),
        (text(&["known", "FACT"]), vec!["dash"]),
        (text(&["known", "nothing"]), vec![]),
        (text(&["k"]), vec!["kelvin"]),
        (text(&["CAFÉ"]), vec!["cafe"]),
        // The regex is diacritic-sensitive: the index's folding only narrows.
        (text(&["cafe"]), vec![]),
        // No word to look up: the regex alone decides (`\b-\b` inside `well-known`).
        (text(&["-"]), vec!["dash"]),
        (text(&["xylo"]), vec![]),
        (
            Filter::Or(vec![text(&["lait"]), cond(&sc, "other", Cond::Eq(s("x")))]),
            vec!["cafe", "empty"],
        ),
        (
            Filter::Nor(vec![text(&["x", "y"])]),
            vec![
                "cafe", "dash", "empty", "greek", "inside", "kelvin", "snake",
            ],
        ),
    ];
    for (filter, expected) in &cases {
        assert_eq!(
            ids(store, &sc, filter.clone()).await,
            *expected,
            "{filter:?}"
        );
    }
    // Writes after the index exists are searched too.
    insert(
        store,
        &sc,
        vec![object("late", 9, json!({"body": "a late λόγος"}))],
    )
    .await;
    store
        .write(vec![Write::Delete {
            schema: Arc::new(sc.clone()),
            object_id: "greek".into(),
            guard: Filter::True,
        }])
        .await
        .unwrap();
    assert_eq!(ids(store, &sc, text(&["λόγος"])).await, vec!["late"]);
    assert_eq!(store.count(&sc, &text(&["LATE"])).await.unwrap(), 1);
}
