//! The PostgreSQL store: the shared `Store` contract (`tests/suite`), and what only PostgreSQL
//! has: its query plans, schemas, NUL-free text, concurrent writers reporting in commit order,
//! regexes rewritten for its engine, and prepared statements.
//!
//! The tests need `PARLOR_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`);
//! without it each one prints a note and passes. Each store lives in a fresh schema, dropped
//! when the test ends.
#![allow(clippy::unwrap_used)]

mod pg;
mod suite;

use std::sync::Arc;

use parlor_core::ops::FieldOp;
use parlor_core::query::{Cond, Filter};
use parlor_core::schema::FieldType;
use parlor_store::postgres::{PostgresOptions, PostgresStore};
use parlor_store::{Store, StoreError, Write, WriteOutcome};
use pg::{TestSchema, open};
use serde_json::{Value, json};
use suite::{class, cond, ids, insert, object, pattern, set, update};

suite::store_tests!(open);

/// Reconnecting (here by `?schema=` in the URL) finds the schemas again.
#[tokio::test]
async fn ddl_follows_schema_changes() {
    let Some((guard, store)) = open().await else {
        return;
    };
    suite::ddl_follows_schema_changes(&store, async {
        let separator = if guard.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}schema={}", guard.url, guard.name);
        let reopened = PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .unwrap();
        Box::new(reopened) as Box<dyn Store>
    })
    .await;
}

/// Without NUL, which PostgreSQL refuses (`nul_characters_are_refused`).
#[tokio::test]
async fn hostile_values_match_literally() {
    let Some((_guard, store)) = open().await else {
        return;
    };
    suite::hostile_values_match_literally(&store, &[]).await;
}

/// The lookups use the `lower(col)` unique indexes in the `"C"` collation.
#[tokio::test]
async fn user_names_and_emails_are_unique_ignoring_case() {
    let Some((_guard, store)) = open().await else {
        return;
    };
    suite::user_names_and_emails_are_unique_ignoring_case(&store, |index| {
        format!("using \"{index}\"")
    })
    .await;
}

/// The chat-history query is an index range scan with no sort step: in a long session, as
/// the planner sees it once the table is analysed, the newest 50 are read from the index,
/// newest first, with no sort.
#[tokio::test]
async fn chat_history_uses_the_pointer_index() {
    let Some((guard, store)) = open().await else {
        return;
    };
    let (schema, query) = suite::chat_history(&store).await;
    insert(
        &store,
        &schema,
        (0..3000)
            .map(|i| object(&format!("x{i:04}"), i, json!({"session": {"__type": "Pointer", "className": "ChatSession", "objectId": if i % 3 == 0 { "s1".to_owned() } else { format!("other{}", i % 100) }}})))
            .collect(),
    )
    .await;
    guard.execute("ANALYZE \"Message\"").await;
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(
        plan.contains("Index Scan Backward using \"Message$ptr$session\""),
        "{plan}"
    );
    assert!(!plan.contains("Sort"), "{plan}");
}

/// A find by a pointer that most rows leave unset reads the pointer's index.
#[tokio::test]
async fn finds_by_a_mostly_unset_pointer_use_its_index() {
    let Some((guard, store)) = open().await else {
        return;
    };
    let (schema, query) = suite::pointers_mostly_unset(&store).await;
    guard.execute("ANALYZE \"Message\"").await;
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(plan.contains("\"Message$ptr$parent\""), "{plan}");
}

/// A `$text` condition is served by the trigram index the first such find creates: the
/// planner runs the word regex through it (a bitmap index scan), not on every row.
#[tokio::test]
async fn text_conditions_use_a_trigram_index() {
    let Some((guard, store)) = open().await else {
        return;
    };
    let schema = class("Doc", &[("body", FieldType::String)]);
    store.create_class(&schema).await.unwrap();
    insert(
        &store,
        &schema,
        (0..3000)
            .map(|i| {
                object(
                    &format!("d{i:04}"),
                    i,
                    json!({"body": format!("message number {i} about the weather")}),
                )
            })
            .collect(),
    )
    .await;
    let query = parlor_core::query::FindQuery::filter(cond(
        &schema,
        "body",
        Cond::Text(vec!["1234".into()]),
    ));
    assert_eq!(store.find(&schema, &query).await.unwrap().len(), 1);
    guard.execute("ANALYZE \"Doc\"").await;
    let plan = store.explain(&schema, &query).await.unwrap();
    assert!(plan.contains("Doc_body_trgm"), "{plan}");
}

/// Stores in different schemas of one database do not see each other's classes, and
/// `?schema=` in the URL picks the schema as `PostgresOptions::schema` does.
#[tokio::test]
async fn schemas_keep_stores_apart() {
    let Some((guard, store)) = open().await else {
        return;
    };
    let other_guard = TestSchema::new(&guard.url, "parlor_test_other");
    let other = other_guard.store().await;
    let schema = class("Thing", &[("n", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    insert(&store, &schema, vec![object("t", 1, json!({"n": 1}))]).await;
    assert!(other.load_schemas().await.unwrap().is_empty());
    assert_eq!(other.count(&schema, &Filter::True).await.unwrap(), 0);
    other.create_class(&schema).await.unwrap();
    assert_eq!(other.count(&schema, &Filter::True).await.unwrap(), 0);
    assert_eq!(store.count(&schema, &Filter::True).await.unwrap(), 1);
    let separator = if guard.url.contains('?') { '&' } else { '?' };
    let by_url = PostgresStore::connect(
        &format!("{}{separator}schema={}", guard.url, guard.name),
        PostgresOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(by_url.count(&schema, &Filter::True).await.unwrap(), 1);
    // A class another instance creates later is found on first use.
    let same_schema = other_guard.store().await;
    let late = class("Late", &[]);
    other.create_class(&late).await.unwrap();
    insert(&other, &late, vec![object("l", 1, json!({}))]).await;
    assert_eq!(same_schema.count(&late, &Filter::True).await.unwrap(), 1);
    same_schema.close().await;
    by_url.close().await;
    other.close().await;
    store.close().await;
}

/// PostgreSQL text cannot hold NUL: such a value is refused as the client's mistake, and
/// nothing of the write is kept.
#[tokio::test]
async fn nul_characters_are_refused() {
    let Some((_guard, store)) = open().await else {
        return;
    };
    let schema = class(
        "Text",
        &[("text", FieldType::String), ("meta", FieldType::Object)],
    );
    store.create_class(&schema).await.unwrap();
    for fields in [
        json!({"text": "nul\0byte"}),
        json!({"meta": {"k": "nul\0byte"}}),
    ] {
        let result = store
            .write(vec![Write::Create {
                schema: Arc::new(schema.clone()),
                object: object("n", 1, fields.clone()),
                relations: Vec::new(),
            }])
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{fields}: {result:?}"
        );
    }
    assert_eq!(store.count(&schema, &Filter::True).await.unwrap(), 0);
    store.close().await;
}

/// Patterns that PostgreSQL's engine reads differently from the `regex` crate (flags,
/// anchors, Unicode word boundaries and case folding, long repetitions) match exactly what
/// the matcher's regex matches.
#[tokio::test]
async fn regexes_match_like_the_regex_crate() {
    let Some((_guard, store)) = open().await else {
        return;
    };
    let schema = class("Subject", &[("text", FieldType::String)]);
    store.create_class(&schema).await.unwrap();
    let subjects = [
        "",
        "a",
        "A",
        "ab",
        "a\nb",
        "b\na",
        "a\r\nb",
        "x.y",
        "é",
        "É",
        "naïve café",
        "straße",
        "STRASSE",
        "ẞ",
        "K",
        "\u{212A}",
        "word_1",
        "über-all",
        "[x]",
        "a+b",
        "tab\there",
        "😀",
        "aaaa",
        &"a".repeat(300),
        &"a".repeat(301),
    ];
    insert(
        &store,
        &schema,
        subjects
            .iter()
            .enumerate()
            .map(|(i, text)| object(&format!("s{i:02}"), i as u32, json!({"text": text})))
            .collect(),
    )
    .await;
    let patterns = [
        "^a$",
        "(?m)^b",
        "(?m)a$",
        "(?s)a.b",
        "a.b",
        "(?i)^a",
        "(?i)é",
        "(?i)straße",
        "(?i)k",
        r"\bcafé\b",
        r"\bna",
        r"\w+\b-",
        r"\B",
        r"\Ba",
        r"(?-u:\b)x",
        r"^\w+$",
        r"^\W",
        r"\d",
        r"\s",
        r"\S+",
        r"^\[x\]$",
        r"a\+b",
        r"[^a]",
        "a{300}",
        "^a{2,4}$",
        "a{256,}",
        "(a|b)+",
        "^(?:x|y)",
        "😀",
        "[😀-😂]",
        r"\x{1F600}",
        "(?R)^b",
        "(?R)a$",
        "(?x) a b ",
        "(?i)ǅ",
        r"\p{Greek}",
        r"\pL+",
        r"[[:alpha:]]+$",
        "",
        "^$",
        "[a&&b]",
    ];
    for source in patterns {
        let compiled = parlor_core::query::regex::build(source).unwrap();
        let expected: Vec<String> = subjects
            .iter()
            .enumerate()
            .filter(|(_, text)| compiled.is_match(text))
            .map(|(i, _)| format!("s{i:02}"))
            .collect();
        let filter = cond(&schema, "text", Cond::Regex(pattern(source)));
        assert_eq!(ids(&store, &schema, filter).await, expected, "{source:?}");
    }
    store.close().await;
}

/// The change sink hears every committed write once, in commit order: concurrent increments
/// of one counter are reported with the values they committed, in increasing order; a
/// failed write reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_sink_hears_commits_in_order() {
    use std::sync::Mutex;

    use parlor_store::{Change, ChangeSink};

    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(String, String, Option<Value>)>>,
    }
    impl ChangeSink for Recorder {
        fn committed(&self, changes: &[Change<'_>]) {
            let mut seen = self.seen.lock().unwrap();
            for change in changes {
                let (id, n) = match change.outcome {
                    WriteOutcome::Created(object) => (object.object_id.clone(), None),
                    WriteOutcome::Updated { after, .. } => {
                        (after.object_id.clone(), after.fields.get("n").cloned())
                    }
                    WriteOutcome::Deleted(object) => (object.object_id.clone(), None),
                };
                seen.push((change.class_name.to_owned(), id, n));
            }
        }
    }

    let Some((_guard, store)) = open().await else {
        return;
    };
    let store = Arc::new(store);
    let recorder = Arc::new(Recorder::default());
    store.set_change_sink(recorder.clone());
    let schema = class("Counter", &[("n", FieldType::Number)]);
    store.create_class(&schema).await.unwrap();
    insert(&*store, &schema, vec![object("c", 1, json!({"n": 0}))]).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = Arc::clone(&store);
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(vec![update(
                    &schema,
                    "c",
                    vec![set("n", FieldOp::Increment(1.into()))],
                )])
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let result = store
        .write(vec![Write::Create {
            schema: Arc::new(schema.clone()),
            object: object("c", 2, json!({})),
            relations: Vec::new(),
        }])
        .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateValue)),
        "{result:?}"
    );
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 41, "{seen:?}");
    assert_eq!(seen[0], ("Counter".to_owned(), "c".to_owned(), None));
    let counts: Vec<Value> = seen[1..].iter().filter_map(|(_, _, n)| n.clone()).collect();
    assert_eq!(counts, (1..=40).map(|n| json!(n)).collect::<Vec<_>>());
    store.close().await;
}

/// Creates sent together go to PostgreSQL together (`merged_creates`), and each still gets its
/// own answer: of 300 concurrent creates into two classes with three column lists, a few
/// reuse an objectId and fail alone with `DuplicateValue` (the others of their statement
/// land), every other one is stored with its fields, and the change sink hears each stored
/// create once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_sent_together_each_get_their_own_answer() {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use parlor_store::{Change, ChangeSink};

    #[derive(Default)]
    struct Recorder {
        created: Mutex<Vec<String>>,
    }
    impl ChangeSink for Recorder {
        fn committed(&self, changes: &[Change<'_>]) {
            let mut created = self.created.lock().unwrap();
            for change in changes {
                if let WriteOutcome::Created(object) = change.outcome {
                    created.push(format!("{}/{}", change.class_name, object.object_id));
                }
            }
        }
    }

    let Some((_guard, store)) = open().await else {
        return;
    };
    let store = Arc::new(store);
    let recorder = Arc::new(Recorder::default());
    store.set_change_sink(recorder.clone());
    let note = Arc::new(class(
        "Note",
        &[("text", FieldType::String), ("n", FieldType::Number)],
    ));
    let tag = Arc::new(class("Tag", &[("name", FieldType::String)]));
    store.create_class(&note).await.unwrap();
    store.create_class(&tag).await.unwrap();
    insert(
        &*store,
        &note,
        vec![object("taken", 1, json!({"text": "first"}))],
    )
    .await;

    let mut tasks = Vec::new();
    for i in 0..300_u32 {
        let (schema, id, fields) = match i % 3 {
            0 => (&note, format!("n{i}"), json!({"text": format!("t{i}")})),
            1 => (
                &note,
                format!("n{i}"),
                json!({"text": format!("t{i}"), "n": i}),
            ),
            _ => (&tag, format!("g{i}"), json!({"name": format!("g{i}")})),
        };
        // Four Notes reuse the one id already stored.
        let id = if i % 50 == 7 && i % 3 != 2 {
            "taken".to_owned()
        } else {
            id
        };
        let write = Write::Create {
            schema: Arc::clone(schema),
            object: object(&id, i, fields),
            relations: Vec::new(),
        };
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(
            async move { (id, store.write(vec![write]).await) },
        ));
    }
    let mut stored = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(outcomes)) => {
                assert_eq!(outcomes.len(), 1);
                let WriteOutcome::Created(object) = &outcomes[0] else {
                    panic!("{outcomes:?}")
                };
                assert_eq!(object.object_id, id);
                stored.push(id);
            }
            (id, Err(StoreError::DuplicateValue)) => {
                assert_eq!(id, "taken");
                refused += 1;
            }
            (id, Err(error)) => panic!("{id}: {error}"),
        }
    }
    assert_eq!(refused, 4);
    assert_eq!(stored.len(), 296);
    let mut texts: HashMap<String, Value> = HashMap::new();
    for found in store
        .find(&note, &parlor_core::query::FindQuery::filter(Filter::True))
        .await
        .unwrap()
    {
        texts.insert(found.object_id.clone(), json!(found.fields));
    }
    assert_eq!(texts.len(), 1 + 196, "the stored Notes");
    assert_eq!(texts["n4"]["text"], "t4");
    assert_eq!(texts["n4"]["n"].as_f64(), Some(4.0));
    assert_eq!(texts["n3"], json!({"text": "t3"}));
    assert_eq!(texts["taken"], json!({"text": "first"}));
    let tags = ids(&*store, &tag, Filter::True).await;
    assert_eq!(tags.len(), 100, "the stored Tags");
    let mut heard = recorder.created.lock().unwrap().clone();
    heard.sort();
    let before = heard.len();
    heard.dedup();
    assert_eq!(before, heard.len(), "each create heard once");
    assert_eq!(
        heard.len(),
        1 + 296,
        "the first Note and every stored create"
    );
    store.close().await;
}

/// Finds borrow connections that skip the pool's checks; when the server ends them (as at
/// a restart, or an administrator's `pg_terminate_backend`), the next finds still answer,
/// and nothing answers once the store is closed.
#[tokio::test]
async fn finds_survive_connections_the_server_ended() {
    let Some(url) = pg::database_url() else {
        return;
    };
    let guard = TestSchema::new(&url, "lost");
    let application = guard.name.clone();
    let separator = if url.contains('?') { '&' } else { '?' };
    let store = PostgresStore::connect(
        &format!("{url}{separator}application_name={application}"),
        PostgresOptions {
            max_connections: 4,
            schema: Some(guard.name.clone()),
        },
    )
    .await
    .unwrap();
    let schema = suite::things(&store).await;
    let store = Arc::new(store);
    let warm: Vec<_> = (0..12)
        .map(|_| {
            let (store, schema) = (Arc::clone(&store), schema.clone());
            tokio::spawn(async move { suite::get(&*store, &schema, "a").await.is_some() })
        })
        .collect();
    for found in warm {
        assert!(found.await.unwrap());
    }
    guard
        .execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{application}'"
        ))
        .await;
    for _ in 0..3 {
        for id in ["a", "b", "c", "d", "e"] {
            let found = suite::get(&*store, &schema, id).await;
            assert_eq!(found.map(|object| object.object_id).as_deref(), Some(id));
        }
    }
    assert_eq!(ids(&*store, &schema, Filter::True).await.len(), 5);
    store.close().await;
    let by_id = cond(&schema, "objectId", Cond::Eq(suite::s("a")));
    let closed = store
        .find(&schema, &parlor_core::query::FindQuery::filter(by_id))
        .await;
    assert!(closed.is_err(), "a find answered after close: {closed:?}");
}

/// Gets by id that arrive together go as one statement (`merged_reads`), and each still gets
/// its own answer: 600 concurrent gets by four callers (the master key, two users, one with a
/// role) of public, private, role-only and nobody-readable objects, ids asked many times and
/// ids that do not exist, with and without `keys`, as objects and as JSON text, each answer
/// the one its own filter gives on the stored objects; an id PostgreSQL refuses (NUL) fails
/// only its own get.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gets_sent_together_each_get_their_own_answer() {
    use parlor_core::object::{Acl, Object};
    use parlor_core::query::matcher::matches;
    use parlor_core::query::{FieldRef, FindQuery, Operand};

    let Some((_guard, store)) = open().await else {
        return;
    };
    let store = Arc::new(store);
    let note = class(
        "Note",
        &[("text", FieldType::String), ("n", FieldType::Number)],
    );
    store.create_class(&note).await.unwrap();
    let acls = [
        None,
        Some(json!({"u1": {"read": true, "write": true}})),
        Some(json!({"role:admin": {"read": true}, "u1": {"write": true}})),
        Some(json!({"u2": {"write": true}})),
        Some(json!({"*": {"read": true}})),
    ];
    let stored: Vec<Object> = (0..40_u32)
        .map(|i| {
            let mut object = object(
                &format!("o{i:02}"),
                i,
                json!({"text": format!("t{i}"), "n": i}),
            );
            object.acl = acls[i as usize % acls.len()]
                .as_ref()
                .map(|acl| Acl::from_json(acl).unwrap());
            object
        })
        .collect();
    insert(&*store, &note, stored.clone()).await;
    let note = Arc::new(note);
    let callers: [Option<Vec<String>>; 4] = [
        None,
        Some(vec!["*".into(), "u1".into()]),
        Some(vec!["*".into(), "u2".into()]),
        Some(vec!["*".into(), "u2".into(), "role:admin".into()]),
    ];

    let mut tasks = Vec::new();
    for i in 0..600_usize {
        // Ids o00..o44: the last five do not exist; each existing one is asked ~14 times.
        // Every 25th id holds a NUL, which PostgreSQL refuses: only that get fails.
        let id = if i % 25 == 12 {
            "o\0".to_owned()
        } else {
            format!("o{:02}", (i * 7) % 45)
        };
        let readers = callers[i % callers.len()].clone();
        let keys = (i % 3 == 0).then(|| vec!["text".to_owned()]);
        let id_filter = Filter::Cond {
            field: FieldRef {
                field: "objectId".into(),
                path: Vec::new(),
                field_type: Some(FieldType::String),
            },
            cond: Cond::Eq(Operand::String(id.clone())),
        };
        let filter = match &readers {
            None => id_filter,
            Some(group) => id_filter.and(Filter::Readable(group.clone())),
        };
        let query = FindQuery {
            limit: Some(1),
            keys: keys.clone(),
            ..FindQuery::filter(filter.clone())
        };
        let store = Arc::clone(&store);
        let note = Arc::clone(&note);
        tasks.push(tokio::spawn(async move {
            if id.contains('\0') {
                let refused = if i % 2 == 0 {
                    store.find(&note, &query).await.is_err()
                } else {
                    store.find_json(&note, &query).await.is_err()
                };
                assert!(refused, "a NUL id is refused");
                return (filter, keys, None);
            }
            let found: Vec<Value> = if i % 2 == 0 {
                let objects = store.find(&note, &query).await.unwrap();
                objects
                    .into_iter()
                    .map(|object| json!([object.object_id, object.fields]))
                    .collect()
            } else {
                let rows = store.find_json(&note, &query).await.unwrap();
                rows.into_values()
                    .unwrap()
                    .into_iter()
                    .map(|mut object| {
                        let object = object.as_object_mut().unwrap();
                        let id = object.remove("objectId").unwrap();
                        for default in ["createdAt", "updatedAt", "ACL"] {
                            object.remove(default);
                        }
                        json!([id, object])
                    })
                    .collect()
            };
            (filter, keys, Some(found))
        }));
    }
    let mut seen = [0_usize; 2];
    for task in tasks {
        let (filter, keys, found) = task.await.unwrap();
        let Some(found) = found else {
            continue;
        };
        let expected: Vec<Value> = stored
            .iter()
            .filter(|object| matches(&filter, object))
            .map(|object| {
                let mut fields = object.fields.clone();
                if keys.is_some() {
                    fields.remove("n");
                }
                json!([object.object_id, fields])
            })
            .collect();
        assert_eq!(found, expected, "{filter:?} keys {keys:?}");
        seen[expected.len().min(1)] += 1;
    }
    assert!(
        seen[0] > 100 && seen[1] > 100,
        "both found and refused gets: {seen:?}"
    );
    store.close().await;
}

/// The pub/sub channel between instances: small messages ride in the notification, large ones
/// are stored (uncompressed) and read back; a listener that skips a prefix (its own messages)
/// hears neither kind of those, and still hears every other message, in order.
#[tokio::test]
async fn the_channel_skips_its_own_messages_without_reading_them_back() {
    use futures::StreamExt;
    use parlor_store::postgres::channel::PgChannel;

    let Some(url) = pg::database_url() else {
        return;
    };
    let guard = TestSchema::new(&url, "channel");
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}schema={}", guard.name);
    let channel = PgChannel::connect(&url).await.unwrap();
    let mut everything = channel.subscribe(None).await.unwrap();
    let mut others = channel.subscribe(Some("me:".to_owned())).await.unwrap();
    let large = |who: &str| format!("{who}:{}", "é".repeat(10_000));
    let sent = [
        "me:small".to_owned(),
        large("me"),
        "you:small".to_owned(),
        large("you"),
        "meh".to_owned(),
    ];
    for message in &sent {
        channel.publish(message).await.unwrap();
    }
    let mut heard = Vec::new();
    for _ in 0..sent.len() {
        heard.push(everything.next().await.unwrap());
    }
    assert_eq!(heard, sent);
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(others.next().await.unwrap());
    }
    assert_eq!(
        heard,
        vec![sent[2].clone(), sent[3].clone(), sent[4].clone()]
    );

    let storage = guard
        .text(
            "SELECT attstorage::text FROM pg_attribute \
             WHERE attrelid = '\"_ChannelMessages\"'::regclass AND attname = 'payload'",
        )
        .await;
    assert_eq!(storage, "e", "stored uncompressed");
}
