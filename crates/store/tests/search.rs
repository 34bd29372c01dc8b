//! `Store::search` on both backends: words found in any order and case, ranked, filtered
//! (the caller's ACL, a restriction such as the session), excerpts returned, the index kept
//! in step with updates and deletes, and hostile query syntax reduced to words. PostgreSQL
//! runs when `PARLOR_TEST_POSTGRES_URL` is set; otherwise its test prints why it skipped.
#![allow(clippy::unwrap_used)]

mod pg;

use std::sync::Arc;

use parlor_core::object::{Acl, Object};
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, Operand};
use parlor_core::schema::{ClassSchema, FieldSchema, FieldType};
use parlor_store::sqlite::SqliteStore;
use parlor_store::{Store, Write};
use serde_json::{Value, json};

fn schema() -> ClassSchema {
    let mut schema = ClassSchema::new("Note");
    for (field, field_type) in [("content", FieldType::String), ("topic", FieldType::String)] {
        schema
            .fields
            .insert(field.to_owned(), FieldSchema::of(field_type));
    }
    schema
}

fn note(id: &str, n: u32, topic: &str, content: &str, reader: Option<&str>) -> Object {
    let created_at = format!("2024-01-01T00:00:{:02}.000Z", n % 60);
    let acl = reader.map(|reader| Acl::from_json(&json!({ reader: {"read": true} })).unwrap());
    Object {
        object_id: id.to_owned(),
        created_at: created_at.clone(),
        updated_at: created_at,
        acl,
        fields: json!({"content": content, "topic": topic})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn topic(schema: &ClassSchema, value: &str) -> Filter {
    Filter::Cond {
        field: FieldRef {
            field: "topic".to_owned(),
            field_type: schema.field_type("topic").cloned(),
            path: Vec::new(),
        },
        cond: Cond::Eq(Operand::String(value.to_owned())),
    }
}

async fn ids(store: &dyn Store, schema: &ClassSchema, filter: &Filter, query: &str) -> Vec<String> {
    store
        .search(schema, "content", filter, query, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.object.object_id)
        .collect()
}

/// The whole contract, run against one store.
async fn contract(store: &dyn Store) {
    let schema = Arc::new(schema());
    store.create_class(&schema).await.unwrap();
    let notes = vec![
        note("n1", 1, "a", "The quokka lives on Rottnest island", None),
        note(
            "n2",
            2,
            "a",
            "Deploy the quokka service to staging, then the quokka monitor",
            None,
        ),
        note("n3", 3, "b", "Quokka notes from another session", None),
        note("n4", 4, "a", "A secret quokka plan", Some("u2")),
        note("n5", 5, "a", "Nothing to see here", None),
    ];
    // Written before the first search: the index must pick up existing rows.
    store
        .write(
            notes
                .into_iter()
                .map(|object| Write::Create {
                    schema: Arc::clone(&schema),
                    object,
                    relations: Vec::new(),
                })
                .collect(),
        )
        .await
        .unwrap();
    let readable = Filter::Readable(vec!["*".to_owned(), "u1".to_owned()]);
    let session_a = Filter::And(vec![topic(&schema, "a"), readable.clone()]);

    // Case-insensitive, restricted to the filter, ACL respected; the note that says
    // "quokka" twice ranks first.
    let found = ids(store, &schema, &session_a, "QUOKKA").await;
    assert_eq!(found.first().map(String::as_str), Some("n2"), "{found:?}");
    let mut sorted = found.clone();
    sorted.sort();
    assert_eq!(sorted, ["n1", "n2"]);

    // Any of the words matches; more matching words rank higher.
    let found = ids(store, &schema, &session_a, "island staging").await;
    assert_eq!(found.len(), 2);
    let found = ids(store, &schema, &session_a, "rottnest island quokka").await;
    assert_eq!(found.first().map(String::as_str), Some("n1"));

    // The excerpt is plain text from the field.
    let hits = store
        .search(&schema, "content", &session_a, "rottnest", 5)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(
        hits[0].snippet.contains("Rottnest"),
        "{:?}",
        hits[0].snippet
    );
    assert_eq!(hits[0].object.fields.get("topic"), Some(&Value::from("a")));

    // Hostile syntax is reduced to words: no error, and the words still match.
    for hostile in [
        "\"",
        "\"quokka",
        "quokka*",
        "NEAR(quokka island",
        "-quokka",
        "quokka OR",
        "OR",
        "AND NOT",
        "content:quokka",
        "^quokka",
        "(((",
        "'; DROP TABLE \"Note\"; --",
        "",
        "   ",
        "* - \" ( ) : ^ +",
    ] {
        let result = store
            .search(&schema, "content", &session_a, hostile, 5)
            .await;
        assert!(result.is_ok(), "{hostile:?}: {result:?}");
    }
    assert_eq!(ids(store, &schema, &session_a, "\"quokka*").await.len(), 2);

    // Updates and deletes keep the index in step.
    store
        .write(vec![Write::Update {
            schema: Arc::clone(&schema),
            object_id: "n5".to_owned(),
            guard: Filter::True,
            updates: vec![FieldUpdate {
                field: "content".to_owned(),
                path: Vec::new(),
                op: FieldOp::Set(json!("now a wombat appears")),
            }],
            updated_at: "2024-01-01T00:01:00.000Z".to_owned(),
        }])
        .await
        .unwrap();
    assert_eq!(ids(store, &schema, &session_a, "wombat").await, ["n5"]);
    assert!(ids(store, &schema, &session_a, "nothing").await.is_empty());
    store
        .write(vec![Write::Delete {
            schema: Arc::clone(&schema),
            object_id: "n5".to_owned(),
            guard: Filter::True,
        }])
        .await
        .unwrap();
    assert!(ids(store, &schema, &session_a, "wombat").await.is_empty());

    // The limit holds, and a class without a table finds nothing.
    let hits = store
        .search(&schema, "content", &Filter::True, "quokka", 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let missing = ClassSchema::new("Missing");
    assert!(
        ids(store, &missing, &Filter::True, "quokka")
            .await
            .is_empty()
    );

    // Dropping the class drops its index; a class created again is indexed afresh.
    store.purge_class("Note").await.unwrap();
    store.drop_class("Note").await.unwrap();
    store.create_class(&schema).await.unwrap();
    assert!(
        ids(store, &schema, &Filter::True, "quokka")
            .await
            .is_empty()
    );
    store
        .write(vec![Write::Create {
            schema: Arc::clone(&schema),
            object: note("m1", 1, "a", "a quokka again", None),
            relations: Vec::new(),
        }])
        .await
        .unwrap();
    assert_eq!(ids(store, &schema, &Filter::True, "quokka").await, ["m1"]);
}

/// SQLite: FTS5 with triggers.
#[tokio::test]
async fn sqlite_search() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/search.db", dir.path().display());
    let store = SqliteStore::open(&url).await.unwrap();
    contract(&store).await;
    store.close().await;
}

/// SQLite in memory (reads on the writer's connection).
#[tokio::test]
async fn sqlite_memory_search() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    contract(&store).await;
    store.close().await;
}

/// PostgreSQL: `to_tsvector` with a GIN expression index.
#[tokio::test]
async fn postgres_search() {
    let Some((_schema, store)) = pg::open().await else {
        return;
    };
    contract(&store).await;
    store.close().await;
}
