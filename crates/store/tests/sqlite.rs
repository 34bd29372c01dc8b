//! The SQLite store: the shared `Store` contract (`tests/suite`), and what is SQLite's own:
//! its query plans, in-memory databases, and databases written by earlier builds upgraded
//! when the store opens.
#![allow(clippy::unwrap_used)]

mod suite;

use std::sync::Arc;

use parlor_core::query::{Cond, Filter};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_store::sqlite::SqliteStore;
use parlor_store::{Store, StoreError, Write};
use serde_json::{Value, json};
use suite::{class, cond, get, ids, insert, object};
use tempfile::TempDir;

async fn open() -> Option<(TempDir, SqliteStore)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    Some((dir, store))
}

/// The database of [`open`]'s store, in a directory the store creates.
fn url(dir: &TempDir) -> String {
    format!("sqlite://{}/nested/dir/parlor.db", dir.path().display())
}

suite::store_tests!(open);

#[tokio::test]
async fn ddl_follows_schema_changes() {
    let (dir, store) = open().await.unwrap();
    suite::ddl_follows_schema_changes(&store, async {
        Box::new(SqliteStore::open(&url(&dir)).await.unwrap()) as Box<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn hostile_values_match_literally() {
    let (_dir, store) = open().await.unwrap();
    suite::hostile_values_match_literally(&store, &["nul\0byte"]).await;
}

/// The lookups use the `NOCASE` unique indexes.
#[tokio::test]
async fn user_names_and_emails_are_unique_ignoring_case() {
    let (_dir, store) = open().await.unwrap();
    suite::user_names_and_emails_are_unique_ignoring_case(&store, |index| {
        format!("USING INDEX {index}")
    })
    .await;
}

/// The chat-history query is an index range scan with no sort step.
#[tokio::test]
async fn chat_history_uses_the_pointer_index() {
    let (_dir, store) = open().await.unwrap();
    let (schema, query) = suite::chat_history(&store).await;
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(plan.contains("USING INDEX"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// A find by a pointer that most rows leave unset reads the pointer's index.
#[tokio::test]
async fn finds_by_a_mostly_unset_pointer_use_its_index() {
    let (_dir, store) = open().await.unwrap();
    let (schema, query) = suite::pointers_mostly_unset(&store).await;
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(plan.contains("USING INDEX Message$ptr$parent"), "{plan}");
}

/// A `$text` condition reads the rows its words' FTS5 index names (made by the first such
/// find), not every row of the class, and an index from an older build (tokenized without
/// the word categories `$text` relies on) is made again when the store opens.
#[tokio::test]
async fn text_conditions_use_the_full_text_index() {
    let (dir, store) = open().await.unwrap();
    let schema = class("Doc", &[("body", FieldType::String)]);
    store.create_class(&schema).await.unwrap();
    insert(
        &store,
        &schema,
        vec![object("a", 1, json!({"body": "x² here"}))],
    )
    .await;
    let query = parlor_core::query::FindQuery::filter(cond(
        &schema,
        "body",
        Cond::Text(vec!["here".into()]),
    ));
    assert_eq!(store.find(&schema, &query).await.unwrap().len(), 1);
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(plan.contains("_Fts:body:Doc VIRTUAL TABLE INDEX"), "{plan}");
    store.close().await;

    // An index as an older build made it: FTS5's default tokenizer, where `²` is a letter.
    let path = dir.path().join("nested/dir/parlor.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE \"_Fts:body:Doc\";
         CREATE VIRTUAL TABLE \"_Fts:body:Doc\" USING fts5(\"body\", content='Doc', content_rowid='rowid');
         INSERT INTO \"_Fts:body:Doc\"(\"_Fts:body:Doc\") VALUES ('rebuild');",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    let x =
        parlor_core::query::FindQuery::filter(cond(&schema, "body", Cond::Text(vec!["x".into()])));
    assert_eq!(store.find(&schema, &x).await.unwrap().len(), 1);
    store.close().await;
}

/// `sqlite::memory:` works with its single shared connection.
#[tokio::test]
async fn in_memory_database() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let schema = class("Thing", &[("n", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    insert(&store, &schema, vec![object("t", 1, json!({"n": 1}))]).await;
    assert_eq!(store.count(&schema, &Filter::True).await.unwrap(), 1);
    store.close().await;
}

/// A database written before `_nulls` existed gets the column when the store opens.
#[tokio::test]
async fn tables_without_nulls_column_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db", dir.path().display());
    let schema = class("Old", &[("s", FieldType::String)]);
    {
        let store = SqliteStore::open(&url).await.unwrap();
        store.create_class(&schema).await.unwrap();
        insert(&store, &schema, vec![object("a", 1, json!({"s": "x"}))]).await;
        store.close().await;
    }
    {
        let path = url.strip_prefix("sqlite://").unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("ALTER TABLE \"Old\" DROP COLUMN \"_nulls\"")
            .unwrap();
        conn.close().unwrap();
    }
    let store = SqliteStore::open(&url).await.unwrap();
    assert_eq!(
        Value::Object(get(&store, &schema, "a").await.unwrap().fields),
        json!({"s": "x"})
    );
    insert(&store, &schema, vec![object("b", 2, json!({"s": null}))]).await;
    assert_eq!(
        get(&store, &schema, "b").await.unwrap().fields.get("s"),
        Some(&Value::Null)
    );
    assert_eq!(
        ids(&store, &schema, cond(&schema, "s", Cond::Exists(true))).await,
        vec!["a", "b"]
    );
    store.close().await;
    // Opening again finds nothing left to upgrade.
    let store = SqliteStore::open(&url).await.unwrap();
    assert_eq!(get(&store, &schema, "b").await.unwrap().fields.len(), 1);
    store.close().await;
}

/// A database from a build whose `_User.username`/`email` unique indexes were
/// case-sensitive gets `NOCASE` ones when the store opens, except where rows already differ
/// only in case: that index stays as it was, and the store still opens.
#[tokio::test]
async fn case_sensitive_unique_indexes_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db", dir.path().display());
    let path = url.strip_prefix("sqlite://").unwrap().to_owned();
    let users = ClassSchema::new("_User");
    {
        let store = SqliteStore::open(&url).await.unwrap();
        store.create_class(&users).await.unwrap();
        store.close().await;
    }
    let index_sql = |field: &str| -> String {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE name = ?",
            [format!("_User$unique${field}")],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert!(index_sql("username").contains("COLLATE NOCASE"));
    {
        // What earlier builds created, and rows that only a case-sensitive index allows.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX \"_User$unique$username\";
             DROP INDEX \"_User$unique$email\";
             CREATE UNIQUE INDEX \"_User$unique$username\" ON \"_User\" (\"username\");
             CREATE UNIQUE INDEX \"_User$unique$email\" ON \"_User\" (\"email\");
             INSERT INTO \"_User\" (\"objectId\", \"username\", \"email\") VALUES
               ('u1', 'amy', 'amy@example.com'), ('u2', 'bob', 'AMY@example.com');",
        )
        .unwrap();
        conn.close().unwrap();
    }
    assert!(!index_sql("username").contains("NOCASE"));
    let store = SqliteStore::open(&url).await.unwrap();
    assert!(index_sql("username").contains("COLLATE NOCASE"));
    assert!(!index_sql("email").contains("NOCASE"));
    let create = |id: &str, fields: Value| Write::Create {
        schema: Arc::new(users.clone()),
        object: object(id, 3, fields),
        relations: Vec::new(),
    };
    let result = store
        .write(vec![create("u3", json!({"username": "AMY"}))])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    // The email index is still there, case-sensitive.
    let result = store
        .write(vec![create(
            "u3",
            json!({"username": "cy", "email": "amy@example.com"}),
        )])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    store
        .write(vec![create(
            "u3",
            json!({"username": "cy", "email": "Amy@example.com"}),
        )])
        .await
        .unwrap();
    store.close().await;
    // Once the duplicates are gone, the next open upgrades the email index too.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM \"_User\" WHERE \"objectId\" IN ('u2', 'u3')")
            .unwrap();
        conn.close().unwrap();
    }
    let store = SqliteStore::open(&url).await.unwrap();
    assert!(index_sql("email").contains("COLLATE NOCASE"));
    store.close().await;
}

/// A find by `objectId` runs on the caller's thread, on connections of its own: each sees
/// every commit before it, many at once all answer (more than it opens connections for:
/// the rest go to the reader threads), and none answers once the store is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_by_id_see_each_commit_and_stop_at_close() {
    use parlor_core::ops::FieldOp;
    use parlor_core::query::FindQuery;
    let (_dir, store) = open().await.unwrap();
    let schema = suite::things(&store).await;
    let name = |object: Option<parlor_core::object::Object>| {
        object.unwrap().fields.get("name").cloned().unwrap()
    };
    let before = store.stats().connections;
    assert_eq!(name(get(&store, &schema, "a").await), json!("alpha"));
    for round in 0..20 {
        let renamed = format!("name {round}");
        store
            .write(vec![suite::update(
                &schema,
                "a",
                vec![suite::set("name", FieldOp::Set(json!(renamed)))],
            )])
            .await
            .unwrap();
        assert_eq!(name(get(&store, &schema, "a").await), json!(renamed));
    }
    assert!(
        store.stats().connections > before,
        "no connection of its own"
    );

    let store = Arc::new(store);
    let lookups: Vec<_> = (0..64)
        .map(|index| {
            let store = Arc::clone(&store);
            let schema = schema.clone();
            let id = ["a", "b", "c", "d", "e"][index % 5];
            tokio::spawn(async move { get(&*store, &schema, id).await.map(|o| o.object_id) })
        })
        .collect();
    for (index, lookup) in lookups.into_iter().enumerate() {
        let id = ["a", "b", "c", "d", "e"][index % 5];
        assert_eq!(lookup.await.unwrap().as_deref(), Some(id));
    }

    store.close().await;
    let by_id = cond(&schema, "objectId", Cond::Eq(suite::s("a")));
    let closed = store.find(&schema, &FindQuery::filter(by_id)).await;
    assert!(closed.is_err(), "a lookup answered after close: {closed:?}");
}
