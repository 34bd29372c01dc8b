//! Two instances on one PostgreSQL database (issue 6): live events, schema changes and role
//! changes made through one are seen through the other. Needs `PARLOR_TEST_POSTGRES_URL`.

use std::time::Duration;

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::fake_llm::{FakeLlm, Script};
use crate::common::live::{connected, next, subscribe_all};
use crate::common::*;

/// Two servers sharing a fresh schema of the test database, or `None` (with the reason
/// printed) when no PostgreSQL is configured.
async fn two_instances() -> Option<(TestServer, TestServer, String)> {
    two_instances_with(|_| None).await
}

/// [`two_instances`] with `--pubsub` chosen from the schema name.
async fn two_instances_with(
    pubsub: impl Fn(&str) -> Option<String>,
) -> Option<(TestServer, TestServer, String)> {
    let url = postgres_or_skip()?;
    let (schema, database) = fresh_database(&url, "two");
    let pubsub = pubsub(&schema);
    let options = || ServeOptions {
        database: Some(database.clone()),
        pubsub: pubsub.clone(),
        ..ServeOptions::default()
    };
    // Started at once on an empty database: both create the template's classes.
    let (first, second) = tokio::join!(TestServer::with(options()), TestServer::with(options()));
    Some((first, second, schema))
}

/// The test PostgreSQL URL, or `None` with the reason printed.
fn postgres_or_skip() -> Option<String> {
    let url = postgres_url();
    if url.is_none() {
        println!("skipped: PARLOR_TEST_POSTGRES_URL is not set");
    }
    url
}

/// A fresh schema name starting with `prefix` and the database URL that selects it.
fn fresh_database(url: &str, prefix: &str) -> (String, String) {
    let schema = format!(
        "{prefix}_{}",
        std::process::id() as u64 * 1000 + rand_suffix()
    );
    let database = with_pg_schema(url, &schema);
    (schema, database)
}

/// A fake LLM whose default reply is 400 tokens, 50 ms apart: still streaming when a test
/// kills or cancels it.
async fn long_story_llm() -> FakeLlm {
    let fake = FakeLlm::start().await;
    let tokens: Vec<String> = (0..400).map(|index| format!("w{index} ")).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    fake.set_default(Script::reply(&tokens).token_delay(Duration::from_millis(50)));
    fake
}

/// A user, a persona and a session with it, made through `server`; the user's token and the
/// session id.
async fn chat(server: &TestServer) -> (String, String) {
    let user = server.sign_up("ada").await;
    let persona = server.create("Persona", json!({"name": "Sage"})).await;
    let session = server
        .as_user(
            &user,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [pointer("_User", &user.id)], "personas": [pointer("Persona", &persona)]})),
        )
        .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    (
        user.token,
        session.body["objectId"].as_str().unwrap().to_owned(),
    )
}

async fn say(server: &TestServer, token: &str, session: &str) {
    let posted = server
        .as_user(
            token,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer("ChatSession", session), "content": "tell me a long story"})),
        )
        .await;
    assert_eq!(posted.status, 201, "{:?}", posted.body);
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| u64::from(time.subsec_nanos()) % 1000)
        .unwrap_or(0)
}

/// What a client writes through one instance reaches the other's subscribers, in order.
#[tokio::test]
async fn live_events_cross_instances_in_order() {
    let Some((first, second, schema)) = two_instances().await else {
        return;
    };
    first.create("Counter", json!({"n": 0})).await;
    let mut socket = connected(&first, None).await;
    subscribe_all(&mut socket, 1, "Counter").await;
    let id = second.create("Counter", json!({"n": 0})).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["object"]["objectId"].clone()),
        (json!("create"), json!(id))
    );
    let path = format!("/classes/Counter/{id}");
    for _ in 0..20 {
        let reply = second
            .master(
                Method::PUT,
                &path,
                Some(json!({"n": {"__op": "Increment", "amount": 1}})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    for expected in 1..=20 {
        let event = next(&mut socket).await;
        assert_eq!(
            (event["op"].clone(), event["object"]["n"].clone()),
            (json!("update"), json!(expected))
        );
    }
    // Big objects travel too (past NOTIFY's 8,000-byte payload limit).
    let big = "y".repeat(20_000);
    second
        .master(Method::PUT, &path, Some(json!({"blob": big})))
        .await;
    let event = next(&mut socket).await;
    assert_eq!(event["object"]["blob"].as_str().map(str::len), Some(20_000));
    drop(socket);
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// A burst of concurrent writes on one instance (sent to the others in batches of what
/// queued up meanwhile) reaches the other's subscribers whole: every change once, each
/// object's changes in their commit order.
#[tokio::test]
async fn a_burst_of_writes_crosses_instances_whole_and_in_order() {
    let Some((first, second, schema)) = two_instances().await else {
        return;
    };
    first.create("Counter", json!({"n": 0})).await;
    let mut socket = connected(&first, None).await;
    subscribe_all(&mut socket, 1, "Counter").await;
    const OBJECTS: usize = 20;
    const STEPS: i64 = 15;
    let mut ids = Vec::new();
    for _ in 0..OBJECTS {
        ids.push(second.create("Counter", json!({"n": 0})).await);
    }
    for _ in 0..OBJECTS {
        let event = next(&mut socket).await;
        assert_eq!(event["op"], "create", "{event}");
    }
    let writers = ids.iter().map(|id| {
        let second = &second;
        async move {
            let path = format!("/classes/Counter/{id}");
            for _ in 0..STEPS {
                let body = json!({"n": {"__op": "Increment", "amount": 1}});
                let reply = second.master(Method::PUT, &path, Some(body)).await;
                assert_eq!(reply.status, 200, "{:?}", reply.body);
            }
        }
    });
    futures::future::join_all(writers).await;
    let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for _ in 0..OBJECTS * STEPS as usize {
        let event = next(&mut socket).await;
        assert_eq!(event["op"], "update", "{event}");
        let id = event["object"]["objectId"].as_str().unwrap().to_owned();
        let last = seen.entry(id).or_insert(0);
        assert_eq!(event["object"]["n"], json!(*last + 1), "in commit order");
        *last += 1;
    }
    assert_eq!(seen.len(), OBJECTS);
    assert!(seen.values().all(|n| *n == STEPS));
    drop(socket);
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// A schema change and a role change made through one instance hold on the other.
#[tokio::test]
async fn schema_and_role_changes_cross_instances() {
    let Some((first, second, schema)) = two_instances().await else {
        return;
    };
    let created = second
        .master(
            Method::POST,
            "/schemas/Gadget",
            Some(json!({"className": "Gadget", "fields": {"size": {"type": "Number"}}})),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let mut seen = false;
    for _ in 0..50 {
        let reply = first.master(Method::GET, "/schemas/Gadget", None).await;
        if reply.status == 200 && reply.body["fields"]["size"]["type"] == "Number" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the other instance knows the new class");
    // A type the other instance defined is enforced here too.
    let wrong = first
        .master(
            Method::POST,
            "/classes/Gadget",
            Some(json!({"size": "big"})),
        )
        .await;
    assert_eq!(wrong.body["code"], 111, "{:?}", wrong.body);

    let User { id: alice, token } = first.sign_up("alice").await;
    let role = second
        .master(
            Method::POST,
            "/roles",
            Some(json!({"name": "Editors", "ACL": {"*": {"read": true}}})),
        )
        .await;
    let role_id = role.body["objectId"].as_str().unwrap().to_owned();
    let note = second
        .create(
            "Note",
            json!({"text": "for editors", "ACL": {"role:Editors": {"read": true}}}),
        )
        .await;
    let note_path = format!("/classes/Note/{note}");
    assert_eq!(
        first
            .as_user(&token, Method::GET, &note_path, None)
            .await
            .status,
        404
    );
    let mut socket = connected(&first, Some(&token)).await;
    subscribe_all(&mut socket, 1, "Note").await;

    let add = json!({"users": {"__op": "AddRelation", "objects": [pointer("_User", &alice)]}});
    second
        .master(Method::PUT, &format!("/roles/{role_id}"), Some(add))
        .await;
    let mut readable = false;
    for _ in 0..50 {
        if first
            .as_user(&token, Method::GET, &note_path, None)
            .await
            .status
            == 200
        {
            readable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        readable,
        "the role change reached the other instance's role cache"
    );
    second
        .create(
            "Note",
            json!({"text": "fresh", "ACL": {"role:Editors": {"read": true}}}),
        )
        .await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["object"]["text"].clone()),
        (json!("create"), json!("fresh"))
    );
    drop(socket);
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// A session used on one instance (and so cached there) is refused there at once when it is
/// logged out through the other.
#[tokio::test]
async fn a_log_out_on_one_instance_ends_the_session_on_the_other() {
    let Some((first, second, schema)) = two_instances().await else {
        return;
    };
    let User { token, .. } = first.sign_up("alice").await;
    let me = second.as_user(&token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let out = first
        .as_user(&token, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let mut refused = false;
    // The relay carries the deletion within milliseconds; the session cache's own time limit
    // (5 s) is longer than this wait, so passing here means the relay cleared it.
    for _ in 0..40 {
        let me = second.as_user(&token, Method::GET, "/users/me", None).await;
        if me.body["code"] == 209 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the other instance still accepts a logged-out token"
    );
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// A participant that posted through one instance (which so keeps its session for the next
/// message) is refused there once the owner removes it through the other.
#[tokio::test]
async fn a_participant_removed_on_one_instance_cannot_post_on_the_other() {
    let Some((first, second, schema)) = two_instances().await else {
        return;
    };
    let ada = first.sign_up("ada").await;
    let bob = first.sign_up("bob").await;
    let session_id = first.session_with(&ada, &[&bob]).await;
    let post = || async {
        first
            .as_user(
                &bob,
                Method::POST,
                "/classes/Message",
                Some(json!({"session": pointer("ChatSession", &session_id), "content": "hi"})),
            )
            .await
    };
    let posted = post().await;
    assert_eq!(posted.status, 201, "{:?}", posted.body);
    let removed = second
        .change_participants(&ada, &session_id, "Remove", &bob)
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    // The relay carries the change within milliseconds; the cache's own time limit (5 s) is
    // longer than this wait, so passing here means the relay cleared it.
    let mut refused = false;
    for _ in 0..40 {
        let reply = post().await;
        if reply.body["code"] == 119 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the other instance still lets a removed participant post"
    );
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// The Redis alternative carries the same events (`--pubsub redis://…`).
#[tokio::test]
async fn live_events_cross_instances_over_redis() {
    let Ok(redis) = std::env::var("PARLOR_TEST_REDIS_URL") else {
        println!("skipped: PARLOR_TEST_REDIS_URL is not set");
        return;
    };
    let pubsub = |schema: &str| Some(format!("{}/?channel={schema}", redis.trim_end_matches('/')));
    let Some((first, second, schema)) = two_instances_with(pubsub).await else {
        return;
    };
    first.create("Note", json!({"text": "setup"})).await;
    let mut socket = connected(&first, None).await;
    subscribe_all(&mut socket, 1, "Note").await;
    for index in 0..5 {
        second.create("Note", json!({"n": index})).await;
    }
    for index in 0..5 {
        let event = next(&mut socket).await;
        assert_eq!(
            (event["op"].clone(), event["object"]["n"].clone()),
            (json!("create"), json!(index))
        );
    }
    drop(socket);
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// The assistant reply to a message in a fresh session with one persona, once it exists
/// (as the master key reads it through `server`).
async fn reply_of(server: &TestServer, session_id: &str) -> Value {
    for _ in 0..100 {
        let found = server
            .find_as(
                true,
                "Message",
                &[(
                    "where",
                    json!({"session": pointer("ChatSession", session_id), "role": "assistant"}),
                )],
            )
            .await;
        if let Some(reply) = found.body["results"]
            .as_array()
            .and_then(|results| results.first())
        {
            return reply.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no reply was created");
}

/// Waits until the reply's status is `status` (read through `server`), up to `within`.
async fn reply_status(server: &TestServer, id: &str, status: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let reply = server.get("Message", id).await;
        if reply["status"] == status || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A reply whose server is killed (`kill -9`) mid-stream does not stay `streaming`: the
/// other instance marks it failed within `--reply-stale-after` (3 s here) and a little.
#[tokio::test]
async fn a_reply_whose_server_dies_is_marked_failed_by_another() {
    let Some(url) = postgres_or_skip() else {
        return;
    };
    let fake = long_story_llm().await;
    let (schema, database) = fresh_database(&url, "kill");
    let survivor = TestServer::with(ServeOptions {
        database: Some(database.clone()),
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".into()),
        reply_stale_after: Some(3),
        ..ServeOptions::default()
    })
    .await;
    let (token, session) = chat(&survivor).await;

    // The doomed instance: a real process, so that it can be killed without a goodbye.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut doomed = std::process::Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--database",
            &database,
        ])
        .args(["--app-id", APP_ID, "--master-key", MASTER_KEY])
        .args([
            "--llm-base-url",
            &fake.base_url,
            "--llm-model",
            "fake-model",
        ])
        .args(["--reply-stale-after", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn parlor");
    let doomed_base = format!("http://127.0.0.1:{port}/parse");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("{doomed_base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the second instance started");
    let posted = client
        .post(format!("{doomed_base}/classes/Message"))
        .header("x-parse-application-id", APP_ID)
        .header("x-parse-session-token", &token)
        .json(&json!({"session": pointer("ChatSession", &session), "content": "tell me a long story"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    let reply = reply_of(&survivor, &session).await;
    let id = reply["objectId"].as_str().unwrap().to_owned();
    // Streaming, with some text, on the doomed instance; then it dies.
    let streaming = reply_status(&survivor, &id, "streaming", Duration::from_secs(5)).await;
    assert_eq!(streaming["status"], "streaming");
    tokio::time::sleep(Duration::from_millis(600)).await;
    doomed.kill().expect("kill -9");
    let _ = doomed.wait();
    let started = std::time::Instant::now();
    let ended = reply_status(&survivor, &id, "failed", Duration::from_secs(15)).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped"),
        "{ended}"
    );
    assert!(
        !ended["content"].as_str().unwrap_or_default().is_empty(),
        "the text so far is kept"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "marked within the bound"
    );
    drop(survivor);
    drop_pg_schema(&schema, true);
}

/// `cancelGeneration` reaching the instance that does not run the reply stops it on the one
/// that does (its upstream request is closed).
#[tokio::test]
async fn cancel_works_from_any_instance() {
    let Some(url) = postgres_or_skip() else {
        return;
    };
    let fake = long_story_llm().await;
    let (schema, database) = fresh_database(&url, "cancel");
    let options = || ServeOptions {
        database: Some(database.clone()),
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".into()),
        reply_stale_after: Some(3),
        ..ServeOptions::default()
    };
    let first = TestServer::with(options()).await;
    let second = TestServer::with(options()).await;
    let (token, session) = chat(&first).await;
    say(&first, &token, &session).await;
    let reply = reply_of(&second, &session).await;
    let id = reply["objectId"].as_str().unwrap().to_owned();
    // The token stream, joined on the instance that does not run the reply.
    let stream_url = second.url(&format!(
        "/messages/{id}/stream?sessionToken={token}&_ApplicationId={APP_ID}"
    ));
    let mut sse = second.client.get(stream_url).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
            .await
            .expect("a delta in time")
            .unwrap()
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = second
        .call_as(&token, "cancelGeneration", json!({"messageId": id}))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["result"]["status"], "cancelled");
    assert!(
        fake.wait_for_disconnects(1, Duration::from_secs(5)).await,
        "the running instance closed its upstream request"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = first.get("Message", &id).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    // The joined stream ends with the reply.
    while !seen.contains("event: done") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
            .await
            .expect("the end in time")
            .unwrap();
        let Some(chunk) = chunk else { break };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(r#""status":"cancelled""#), "{seen}");
    drop(first);
    drop(second);
    drop_pg_schema(&schema, true);
}

/// A field added on one instance is in the other's GraphQL schema once the change reaches it
/// through the relay (its schema is rebuilt for the next request, no restart).
#[tokio::test]
async fn a_schema_change_reaches_the_other_instances_graphql() {
    let Some((first, second, _schema)) = two_instances().await else {
        return;
    };
    first
        .create_class("Book", json!({"fields": {"title": {"type": "String"}}}))
        .await;
    let reply = first
        .master(
            Method::PUT,
            "/schemas/Book",
            Some(json!({"fields": {"rating": {"type": "Number"}}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    first
        .create("Book", json!({"title": "Dune", "rating": 5}))
        .await;
    let query = json!({"query": "{ books { edges { node { title rating } } } }"}).to_string();
    let mut last = String::new();
    for _ in 0..100 {
        let response = second
            .client
            .post(format!("{}/graphql", second.base))
            .header("x-parse-application-id", APP_ID)
            .body(query.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        last = response.text().await.unwrap();
        if status == 200 {
            let body: Value = serde_json::from_str(&last).unwrap();
            assert_eq!(
                body["data"]["books"]["edges"],
                json!([{"node": {"title": "Dune", "rating": 5}}])
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the second instance never saw the field: {last}");
}

/// A persona edited through one instance is what the other answers with next, though it
/// keeps the personas it read (the relay clears them).
#[tokio::test]
async fn a_persona_edited_on_one_instance_answers_so_on_the_other() {
    let Some(url) = postgres_or_skip() else {
        return;
    };
    let fake = FakeLlm::start().await;
    let (schema, database) = fresh_database(&url, "persona");
    let options = || ServeOptions {
        database: Some(database.clone()),
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".into()),
        ..ServeOptions::default()
    };
    let editor = TestServer::with(options()).await;
    let answerer = TestServer::with(options()).await;
    let ada = answerer.sign_up("ada").await;
    let persona = editor
        .create(
            "Persona",
            json!({"name": "Sage", "systemPrompt": "Speak like a pirate."}),
        )
        .await;
    let session = answerer
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [pointer("_User", &ada.id)], "personas": [pointer("Persona", &persona)]})),
        )
        .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    let session = session.body["objectId"].as_str().unwrap().to_owned();
    let asked = |count: usize| {
        let fake = &fake;
        async move {
            for _ in 0..500 {
                if fake.requests().len() >= count {
                    return fake.requests()[count - 1].body["messages"][0]["content"].to_string();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the provider was not asked {count} times");
        }
    };
    say(&answerer, &ada.token, &session).await;
    assert!(asked(1).await.contains("pirate"));
    let edited = editor
        .master(
            Method::PUT,
            &format!("/classes/Persona/{persona}"),
            Some(json!({"systemPrompt": "Speak like a poet."})),
        )
        .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    // The change reaches the answerer through the relay, a moment after the commit.
    let mut prompt = String::new();
    for attempt in 2..12 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        say(&answerer, &ada.token, &session).await;
        prompt = asked(attempt).await;
        if prompt.contains("poet") {
            break;
        }
    }
    assert!(
        prompt.contains("poet") && !prompt.contains("pirate"),
        "{prompt}"
    );
    drop(editor);
    drop(answerer);
    drop_pg_schema(&schema, true);
}
