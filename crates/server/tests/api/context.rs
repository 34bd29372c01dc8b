//! Session context and retrieval: the Context every ChatSession gets, the prompt a persona's
//! reply is built from (`build_request`), the background summary (`summarize_session`, with
//! the fake LLM over real HTTP) and the `searchContext` function over real HTTP.
//!
//! The prompt and summary tests fill a SQLite database through a real server, stop it, and
//! then open the same database with `parlor_server::open_operations` to call the library.

use std::time::Duration;

use parlor_core::object::Object;
use parlor_server::ai::context::{Summarized, build_request, summarize_session};
use parlor_server::ai::provider::{ChatMessage, ChatRequest, ChatRole};
use parlor_server::ai::search::search_context;
use parlor_server::ai::tokens::{TOKENS_PER_MESSAGE, count_tokens};
use parlor_server::config::ServeOptions;
use parlor_server::operation::{Auth, Operations};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::fake_llm::{FakeLlm, Script};
use crate::common::{APP_ID, MASTER_KEY, TestServer, User, pointer};

/// The model the library tests ask for: not an OpenAI name, so tokens are estimated.
const MODEL: &str = "fake-model";

/// `ada`, whose display name is Ada Lovelace.
async fn ada_lovelace(server: &TestServer) -> User {
    server
        .sign_up_with(json!({"username": "ada", "password": "pw", "displayName": "Ada Lovelace"}))
        .await
}

async fn persona(server: &TestServer, body: Value) -> String {
    server.create("Persona", body).await
}

/// A session owned by `owner` with these participants and personas; `manual` policy, so no
/// reply is generated behind the test's back. Returns the create reply's body.
async fn session(
    server: &TestServer,
    owner: &User,
    participants: &[&User],
    personas: &[&str],
) -> Value {
    let body = json!({
        "participants": participants.iter().map(|user| pointer("_User", &user.id)).collect::<Vec<_>>(),
        "personas": personas.iter().map(|id| pointer("Persona", id)).collect::<Vec<_>>(),
        "policy": "manual",
    });
    let reply = server
        .as_user(owner, Method::POST, "/classes/ChatSession", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body
}

/// A user's message; a short pause keeps every message's `createdAt` distinct.
async fn post(server: &TestServer, user: &User, session_id: &str, content: &str) -> String {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let body = json!({"session": pointer("ChatSession", session_id), "content": content});
    let reply = server
        .as_user(user, Method::POST, "/classes/Message", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["objectId"].as_str().unwrap().to_owned()
}

/// A message written by the master key (persona replies, notices, hidden messages).
async fn post_as_master(server: &TestServer, session_id: &str, fields: Value) -> String {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let mut body = json!({"session": pointer("ChatSession", session_id)});
    for (key, value) in fields.as_object().unwrap() {
        body[key] = value.clone();
    }
    server.create("Message", body).await
}

/// `searchContext` as `user`; panics unless it answers `{"result": [...]}`.
async fn search(server: &TestServer, user: &User, session_id: &str, query: &str) -> Vec<Value> {
    let reply = server
        .call_as(
            user,
            "searchContext",
            json!({"sessionId": session_id, "query": query}),
        )
        .await;
    assert_eq!(
        reply.status.as_u16(),
        200,
        "search {query:?}: {:?}",
        reply.body
    );
    reply.body["result"]
        .as_array()
        .expect("result array")
        .clone()
}

fn object_id(value: &Value) -> &str {
    value["objectId"].as_str().unwrap()
}

// ---------------------------------------------------------------------------------------
// Library access: a SQLite database filled over HTTP, then opened directly.

/// A server on a SQLite file of `dir` (whatever the suite's backend: the library tests need
/// the file afterwards), with `fake` as its default provider.
async fn sqlite_server(dir: &tempfile::TempDir, fake: &FakeLlm) -> TestServer {
    TestServer::with(options(dir, fake)).await
}

fn options(dir: &tempfile::TempDir, fake: &FakeLlm) -> ServeOptions {
    ServeOptions {
        database: Some(format!("sqlite://{}/parlor.db", dir.path().display())),
        app_id: Some(APP_ID.to_owned()),
        master_key: Some(MASTER_KEY.to_owned()),
        port: Some(0),
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some(MODEL.to_owned()),
        ..ServeOptions::default()
    }
}

/// Stops the server and opens its database as the library would (same providers).
async fn library(server: TestServer, dir: &tempfile::TempDir, fake: &FakeLlm) -> Operations {
    server.stop().await;
    let config = options(dir, fake).resolve().expect("config");
    parlor_server::open_operations(&config, "http://127.0.0.1/parse".to_owned())
        .await
        .expect("operations")
}

async fn load(operations: &Operations, class_name: &str, object_id: &str) -> Object {
    operations
        .load_object(class_name, object_id)
        .await
        .expect("load")
        .unwrap_or_else(|| panic!("{class_name}/{object_id} exists"))
}

/// What a turn costs in `build_request`'s budget.
fn turn_cost(turn: &ChatMessage) -> usize {
    count_tokens(MODEL, &turn.content)
        + turn
            .name
            .as_deref()
            .map_or(0, |name| count_tokens(MODEL, name))
        + TOKENS_PER_MESSAGE
}

fn system_of(request: &ChatRequest) -> &str {
    request.system.as_deref().expect("a system prompt")
}

/// The position of `part` in `text`; panics when absent.
#[track_caller]
fn position(text: &str, part: &str) -> usize {
    text.find(part)
        .unwrap_or_else(|| panic!("{part:?} is missing from {text:?}"))
}

/// Words no other message shares (so retrieval finds nothing), all of one length and count
/// (so every turn costs the same).
fn filler(index: usize) -> String {
    format!("w{index:03}a w{index:03}b w{index:03}c w{index:03}d")
}

// ---------------------------------------------------------------------------------------
// (1) Each ChatSession gets its Context.

/// Creating a session makes its Context in the same write: the session's `context` pointer
/// names it, it has `sessionId`, `data: {}`, the `session` pointer and the members' ACL;
/// participants read it (and may update `data`), strangers can neither get nor find it; a
/// second Context for the session is refused with 137; clients cannot choose `context`.
#[tokio::test]
async fn each_session_gets_its_context() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let created = session(&server, &ada, &[&ada, &bob], &[]).await;
    let session_id = object_id(&created).to_owned();
    assert_eq!(created["context"]["className"], "Context", "{created:?}");
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();

    // As stored, and as the owner reads the session.
    let stored_session = server.get("ChatSession", &session_id).await;
    assert_eq!(stored_session["context"], pointer("Context", &context_id));
    let read = server
        .as_user(
            &ada,
            Method::GET,
            &format!("/classes/ChatSession/{session_id}"),
            None,
        )
        .await;
    assert_eq!(read.status.as_u16(), 200, "{:?}", read.body);
    assert_eq!(read.body["context"]["objectId"], context_id.as_str());

    let context = server.get("Context", &context_id).await;
    assert_eq!(context["sessionId"], session_id.as_str());
    assert_eq!(context["data"], json!({}));
    assert_eq!(context["session"], pointer("ChatSession", &session_id));
    // The members' ACL, nobody else: read and write for each member (the template rule for
    // Contexts: the app and the server keep `data` together).
    let acl = context["ACL"].as_object().expect("an ACL");
    let mut entries: Vec<&String> = acl.keys().collect();
    entries.sort();
    let mut members = vec![&ada.id, &bob.id];
    members.sort();
    assert_eq!(entries, members, "{acl:?}");
    for member in [&ada.id, &bob.id] {
        assert_eq!(acl[member.as_str()], json!({"read": true, "write": true}));
    }
    assert!(!acl.contains_key("*"));
    assert_eq!(server.count("Context").await, 1, "exactly one Context");

    // Participants read it; a stranger neither gets it nor finds it.
    let path = format!("/classes/Context/{context_id}");
    for member in [&ada, &bob] {
        let reply = server.as_user(member, Method::GET, &path, None).await;
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
        assert_eq!(reply.body["sessionId"], session_id.as_str());
    }
    let hidden = server.as_user(&eve, Method::GET, &path, None).await;
    assert_eq!(hidden.status.as_u16(), 404, "{:?}", hidden.body);
    assert_eq!(hidden.body["code"], 101);
    let found = server
        .as_user(&eve, Method::GET, "/classes/Context", None)
        .await;
    assert_eq!(found.status.as_u16(), 200, "{:?}", found.body);
    assert_eq!(found.body["results"], json!([]));
    let anonymous = server.public(Method::GET, &path, None).await;
    assert_ne!(anonymous.status.as_u16(), 200, "{:?}", anonymous.body);

    // A participant keeps state in `data` with Parse's operators; a stranger cannot.
    let update = server
        .as_user(
            &bob,
            Method::PUT,
            &path,
            Some(json!({"data": {"city": "Lyon"}})),
        )
        .await;
    assert_eq!(update.status.as_u16(), 200, "{:?}", update.body);
    let update = server
        .as_user(
            &ada,
            Method::PUT,
            &path,
            Some(json!({"data.visits": {"__op": "Increment", "amount": 2}})),
        )
        .await;
    assert_eq!(update.status.as_u16(), 200, "{:?}", update.body);
    assert_eq!(
        server.get("Context", &context_id).await["data"],
        json!({"city": "Lyon", "visits": 2})
    );
    let refused = server
        .as_user(
            &eve,
            Method::PUT,
            &path,
            Some(json!({"data": {"city": "Paris"}})),
        )
        .await;
    assert_ne!(refused.status.as_u16(), 200, "{:?}", refused.body);
    assert_eq!(
        server.get("Context", &context_id).await["data"]["city"],
        "Lyon"
    );

    // A second Context for the same session: 137.
    let second = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Context",
            Some(json!({
                "session": pointer("ChatSession", &session_id),
                "sessionId": session_id,
                "data": {},
            })),
        )
        .await;
    assert_eq!(second.body["code"], 137, "{:?}", second.body);
    assert_eq!(second.status.as_u16(), 400);
    assert_eq!(server.count("Context").await, 1);

    // The server sets `context`; a client cannot point its session elsewhere.
    let chosen = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({
                "participants": [pointer("_User", &ada.id)],
                "context": pointer("Context", &context_id),
            })),
        )
        .await;
    assert_eq!(chosen.body["code"], 119, "{:?}", chosen.body);

    // Every new session gets its own.
    let other = session(&server, &bob, &[&bob], &[]).await;
    assert_ne!(other["context"]["objectId"], context_id.as_str());
    assert_eq!(server.count("Context").await, 2);
}

// ---------------------------------------------------------------------------------------
// (2) The prompt.

/// The system prompt comes first (persona prompt, who it is, the Context's data and
/// summary); turns are attributed by name, this persona's own as `assistant`; streaming,
/// empty and system messages are left out; the request carries the persona's settings.
#[tokio::test]
async fn build_request_assembles_the_prompt() {
    let fake = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bob = server.sign_up("bob").await;
    let sage = persona(
        &server,
        json!({"name": "Sage", "description": "a wise owl", "systemPrompt": "Be wise and brief.", "temperature": 0.3}),
    )
    .await;
    let jester = persona(&server, json!({"name": "Jester"})).await;
    let created = session(&server, &ada, &[&ada, &bob], &[&sage, &jester]).await;
    let session_id = object_id(&created).to_owned();
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();
    let update = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"data": {"city": "Lyon", "step": 2}})),
        )
        .await;
    assert_eq!(update.status.as_u16(), 200, "{:?}", update.body);
    let update = server
        .master(
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"summary": "They talked about owls."})),
        )
        .await;
    assert_eq!(update.status.as_u16(), 200, "{:?}", update.body);

    post(&server, &ada, &session_id, "Hello everyone").await;
    post(&server, &bob, &session_id, "Hi Ada").await;
    let assistant = |persona: &str, content: &str, status: &str| json!({"role": "assistant", "persona": pointer("Persona", persona), "content": content, "status": status});
    post_as_master(
        &server,
        &session_id,
        assistant(&sage, "Greetings from Sage", "complete"),
    )
    .await;
    post_as_master(
        &server,
        &session_id,
        assistant(&jester, "Jester jokes", "complete"),
    )
    .await;
    post_as_master(
        &server,
        &session_id,
        json!({"role": "system", "content": "bob joined"}),
    )
    .await;
    post_as_master(&server, &session_id, assistant(&jester, "   ", "failed")).await;
    post(&server, &ada, &session_id, "What do owls eat?").await;
    // The reply being generated: streaming, left out.
    post_as_master(
        &server,
        &session_id,
        assistant(&sage, "Owls eat mi", "streaming"),
    )
    .await;

    let operations = library(server, &dir, &fake).await;
    let session = load(&operations, "ChatSession", &session_id).await;
    let sage_object = load(&operations, "Persona", &sage).await;
    let jester_object = load(&operations, "Persona", &jester).await;

    let request = build_request(&operations, &session, &sage_object, MODEL, 100, 8192, None)
        .await
        .unwrap();
    assert_eq!(request.model, MODEL);
    assert_eq!(request.max_tokens, Some(100));
    assert_eq!(request.temperature, Some(0.3));
    let system = system_of(&request);
    assert!(system.starts_with("Be wise and brief."), "{system}");
    let identity = position(system, "You are Sage: a wise owl");
    let data = position(system, r#""city":"Lyon""#);
    assert!(system.contains(r#""step":2"#), "{system}");
    let summary = position(system, "They talked about owls.");
    assert!(
        0 < identity && identity < data && data < summary,
        "{system}"
    );
    assert!(
        !system.contains("Earlier excerpts"),
        "nothing was cut: {system}"
    );
    assert_eq!(
        request.messages,
        vec![
            ChatMessage::user("Hello everyone").with_name("Ada Lovelace"),
            ChatMessage::user("Hi Ada").with_name("bob"),
            ChatMessage::assistant("Greetings from Sage"),
            ChatMessage::user("Jester jokes").with_name("Jester"),
            ChatMessage::user("What do owls eat?").with_name("Ada Lovelace"),
        ]
    );

    // From the other persona's side: Sage is another speaker, Jester's own turn is its own.
    let request = build_request(
        &operations,
        &session,
        &jester_object,
        MODEL,
        100,
        8192,
        None,
    )
    .await
    .unwrap();
    let system = system_of(&request);
    assert!(system.starts_with("You are Jester."), "{system}");
    assert!(system.contains("They talked about owls."), "{system}");
    assert_eq!(request.temperature, None);
    assert_eq!(
        request.messages[2..4],
        [
            ChatMessage::user("Greetings from Sage").with_name("Sage"),
            ChatMessage::assistant("Jester jokes"),
        ]
    );
    assert!(fake.requests().is_empty(), "nothing was cut, no summary");
}

/// A tiny window keeps only the newest turns that fit (in order, within the budget, a fifth
/// of it kept for retrieved excerpts), and a cut history starts a background summary.
#[tokio::test]
async fn a_small_window_keeps_the_newest_turns() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::reply(&["Ada posted fillers."]));
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bot = persona(&server, json!({"name": "Bot", "systemPrompt": "Be brief."})).await;
    let created = session(&server, &ada, &[&ada], &[&bot]).await;
    let session_id = object_id(&created).to_owned();
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();
    let total = 12;
    for index in 0..total {
        post(&server, &ada, &session_id, &filler(index)).await;
    }
    let operations = library(server, &dir, &fake).await;
    let session = load(&operations, "ChatSession", &session_id).await;
    let bot_object = load(&operations, "Persona", &bot).await;

    // A large window: everything, oldest first.
    let full = build_request(&operations, &session, &bot_object, MODEL, 50, 8192, None)
        .await
        .unwrap();
    assert_eq!(full.messages.len(), total);
    assert_eq!(full.messages[0].content, filler(0));
    let cost = turn_cost(&full.messages[0]);
    assert!(full.messages.iter().all(|turn| turn_cost(turn) == cost));
    let system_cost = count_tokens(MODEL, system_of(&full)) + TOKENS_PER_MESSAGE;

    // A window for about four turns: once cut, a fifth goes to retrieval, so three remain.
    let output = 50;
    let budget = cost * 22 / 5;
    let window = u32::try_from(output + system_cost + budget).unwrap();
    let expected = (budget - budget / 5) / cost;
    assert_eq!(expected, 3, "the arithmetic of this test");
    let cut = build_request(
        &operations,
        &session,
        &bot_object,
        MODEL,
        u32::try_from(output).unwrap(),
        window,
        None,
    )
    .await
    .unwrap();
    let kept: Vec<&str> = cut
        .messages
        .iter()
        .map(|turn| turn.content.as_str())
        .collect();
    let newest: Vec<String> = (total - expected..total).map(filler).collect();
    assert_eq!(kept, newest, "the newest turns, oldest first");
    assert_eq!(system_of(&cut), system_of(&full), "no excerpt matched");
    let used = system_cost + cut.messages.iter().map(turn_cost).sum::<usize>();
    assert!(
        used + output <= window as usize,
        "{used} + {output} > {window}"
    );

    // A window too small for any turn: none, and no error.
    let none = build_request(&operations, &session, &bot_object, MODEL, 50, 60, None)
        .await
        .unwrap();
    assert!(none.messages.is_empty(), "{:?}", none.messages);

    // The cut started a summary in the background: the fake is asked, the Context written.
    let mut summary = Value::Null;
    for _ in 0..250 {
        let context = load(&operations, "Context", &context_id).await;
        if let Some(text) = context.fields.get("summary") {
            summary = text.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(summary, "Ada posted fillers.");
    assert_eq!(fake.requests().len(), 1, "one summary call at a time");
}

/// With a long history and a small window, older turns that share words with the latest
/// user message come back as retrieved excerpts in the system prompt.
#[tokio::test]
async fn older_turns_come_back_through_search() {
    let fake = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bot = persona(&server, json!({"name": "Bot", "systemPrompt": "Be brief."})).await;
    let session_id = object_id(&session(&server, &ada, &[&ada], &[&bot]).await).to_owned();
    // Another session's matching message must never leak in.
    let other_id = object_id(&session(&server, &ada, &[&ada], &[&bot]).await).to_owned();
    post(
        &server,
        &ada,
        &other_id,
        "The secret password is marlin in the other session",
    )
    .await;
    post(
        &server,
        &ada,
        &session_id,
        "Remember this: the secret password is swordfish",
    )
    .await;
    for index in 0..40 {
        post(&server, &ada, &session_id, &filler(index)).await;
    }
    post(
        &server,
        &ada,
        &session_id,
        "What was the secret password again?",
    )
    .await;
    let operations = library(server, &dir, &fake).await;
    let session = load(&operations, "ChatSession", &session_id).await;
    let bot_object = load(&operations, "Persona", &bot).await;

    let request = build_request(&operations, &session, &bot_object, MODEL, 50, 400, None)
        .await
        .unwrap();
    let system = system_of(&request);
    assert!(system.starts_with("Be brief."), "{system}");
    let heading = position(system, "Earlier excerpts from this conversation");
    let excerpt = position(system, "swordfish");
    assert!(heading < excerpt, "{system}");
    assert!(
        !system.contains("marlin"),
        "another session's message: {system}"
    );
    assert!(
        request.messages.len() < 42,
        "the history was cut: {}",
        request.messages.len()
    );
    assert!(
        request
            .messages
            .iter()
            .all(|turn| !turn.content.contains("swordfish")),
        "the old turn is an excerpt, not a turn"
    );
    assert_eq!(
        request.messages.last().unwrap().content,
        "What was the secret password again?"
    );
}

// ---------------------------------------------------------------------------------------
// (3) The summary.

/// `summarize_session` sends the turns older than the newest six to the provider, writes
/// the answer to `Context.summary` with the watermark `summaryThrough`, does nothing when
/// too little is new, and the next prompt carries the summary.
#[tokio::test]
async fn summarize_session_writes_the_summary() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["Ada ", "planned ", "a trip ", "to Lyon."]));
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bot = persona(&server, json!({"name": "Guide"})).await;
    let created = session(&server, &ada, &[&ada], &[&bot]).await;
    let session_id = object_id(&created).to_owned();
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for index in 0..10 {
        ids.push(post(&server, &ada, &session_id, &format!("trip note {index:02}")).await);
        if index == 1 {
            // Left out of the summary as out of a prompt: a notice, an empty failed reply.
            post_as_master(
                &server,
                &session_id,
                json!({"role": "system", "content": "bob joined"}),
            )
            .await;
            post_as_master(
                &server,
                &session_id,
                json!({"role": "assistant", "persona": pointer("Persona", &bot), "content": " ", "status": "failed"}),
            )
            .await;
        }
    }
    post_as_master(
        &server,
        &session_id,
        json!({"role": "assistant", "persona": pointer("Persona", &bot), "content": "Noted.", "status": "complete"}),
    )
    .await;
    let operations = library(server, &dir, &fake).await;

    let summary = summarize_session(&operations, &session_id).await.unwrap();
    assert_eq!(
        summary,
        Summarized::Written("Ada planned a trip to Lyon.".to_owned())
    );

    // The provider got the five older turns (eleven, less the newest six), by name.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["model"], MODEL);
    let transcript = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|message| message["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for index in 0..5 {
        assert!(
            transcript.contains(&format!("Ada Lovelace: trip note {index:02}")),
            "{transcript}"
        );
    }
    for index in 5..10 {
        assert!(
            !transcript.contains(&format!("trip note {index:02}")),
            "{transcript}"
        );
    }
    assert!(!transcript.contains("Noted."), "{transcript}");
    assert!(!transcript.contains("bob joined"), "{transcript}");
    assert!(!transcript.contains("Guide:"), "{transcript}");

    let context = load(&operations, "Context", &context_id).await;
    assert_eq!(
        context.fields["summary"],
        json!("Ada planned a trip to Lyon.")
    );
    let through = &context.fields["summaryThrough"];
    assert_eq!(through["objectId"], ids[4].as_str(), "{through:?}");
    let fifth = load(&operations, "Message", &ids[4]).await;
    assert_eq!(through["createdAt"], fifth.created_at.as_str());

    // Nothing new enough: no call, nothing changed, and the answer says why.
    let Summarized::Skipped(reason) = summarize_session(&operations, &session_id).await.unwrap()
    else {
        panic!("summarised again");
    };
    assert!(reason.contains("too little to summarise"), "{reason}");
    assert_eq!(fake.requests().len(), 1);

    // The next prompt carries it.
    let session = load(&operations, "ChatSession", &session_id).await;
    let guide = load(&operations, "Persona", &bot).await;
    let request = build_request(&operations, &session, &guide, MODEL, 100, 8192, None)
        .await
        .unwrap();
    assert!(
        system_of(&request)
            .contains("Summary of the earlier conversation:\nAda planned a trip to Lyon."),
        "{:?}",
        request.system
    );
    assert_eq!(request.messages.last().unwrap().role, ChatRole::Assistant);
}

// ---------------------------------------------------------------------------------------
// (4) searchContext.

/// `searchContext` finds words of older messages, best match first, with snippets; only
/// participants may call it; messages the caller cannot read and other sessions' never
/// appear; `limit` bounds the hits; the session's Context is found by its data.
#[tokio::test]
async fn search_context_finds_older_messages() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let created = session(&server, &ada, &[&ada, &bob], &[]).await;
    let session_id = object_id(&created).to_owned();
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();
    let weak = post(
        &server,
        &ada,
        &session_id,
        "We talked about the budget once, among many other unrelated things like lunch, \
         the weather, the new office chairs and the summer holidays.",
    )
    .await;
    let strong = post(
        &server,
        &bob,
        &session_id,
        "Marketing budget: the marketing budget is forty thousand",
    )
    .await;
    for index in 0..20 {
        post(&server, &bob, &session_id, &filler(index)).await;
    }
    // Readable by Ada alone, although Bob is a participant.
    let hidden = post_as_master(
        &server,
        &session_id,
        json!({"sender": pointer("_User", &ada.id), "content": "budget marketing secret for ada", "ACL": {ada.id.as_str(): {"read": true}}}),
    )
    .await;
    let elsewhere = object_id(&session(&server, &bob, &[&bob], &[]).await).to_owned();
    post(
        &server,
        &bob,
        &elsewhere,
        "marketing budget of another session",
    )
    .await;

    let hits = search(&server, &bob, &session_id, "marketing budget").await;
    let found: Vec<&str> = hits.iter().map(object_id).collect();
    assert_eq!(found, [strong.as_str(), weak.as_str()], "{hits:?}");
    for hit in &hits {
        assert_eq!(hit["className"], "Message");
        assert!(hit["createdAt"].is_string(), "{hit:?}");
        let snippet = hit["snippet"].as_str().unwrap().to_lowercase();
        assert!(snippet.contains("budget"), "{hit:?}");
    }
    let weak_hit = &hits[1];
    assert!(
        weak_hit["snippet"].as_str().unwrap().len() < 200,
        "a snippet, not the whole text: {weak_hit:?}"
    );
    let weak_message = server.get("Message", &weak).await;
    assert_eq!(weak_hit["createdAt"], weak_message["createdAt"]);

    // Ada may read the hidden message, so she finds it too.
    let hits = search(&server, &ada, &session_id, "marketing budget").await;
    assert!(
        hits.iter().any(|hit| hit["objectId"] == hidden.as_str()),
        "{hits:?}"
    );
    assert_eq!(hits.len(), 3);

    // limit.
    let reply = server
        .call_as(
            &bob,
            "searchContext",
            json!({"sessionId": session_id, "query": "budget", "limit": 1}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    assert_eq!(reply.body["result"].as_array().unwrap().len(), 1);
    assert_eq!(reply.body["result"][0]["objectId"], strong.as_str());
    let words = search(&server, &bob, &session_id, "w007c").await;
    assert_eq!(words.len(), 1, "{words:?}");
    assert_eq!(words[0]["snippet"], filler(7));

    // Not a participant: a Parse error, no hits. Nor anonymous.
    let refused = server
        .call_as(
            &eve,
            "searchContext",
            json!({"sessionId": session_id, "query": "budget"}),
        )
        .await;
    assert!(
        (400..500).contains(&refused.status.as_u16()),
        "{:?}",
        refused.body
    );
    assert!(refused.body["code"].is_i64(), "{:?}", refused.body);
    assert!(refused.body.get("result").is_none());
    assert!(!refused.text.contains("budget"), "{}", refused.text);
    let anonymous = server
        .public(
            Method::POST,
            "/functions/searchContext",
            Some(json!({"sessionId": session_id, "query": "budget"})),
        )
        .await;
    assert!(anonymous.body["code"].is_i64(), "{:?}", anonymous.body);
    assert!(!anonymous.text.contains("forty"), "{}", anonymous.text);
    let unknown = server
        .call_as(
            &bob,
            "searchContext",
            json!({"sessionId": "nosuchsession", "query": "budget"}),
        )
        .await;
    assert!(unknown.body["code"].is_i64(), "{:?}", unknown.body);

    // The Context is found by its data, and leads when it has every word.
    let update = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"data": {"topic": "quarterly budget"}})),
        )
        .await;
    assert_eq!(update.status.as_u16(), 200, "{:?}", update.body);
    let hits = search(&server, &bob, &session_id, "quarterly budget").await;
    assert_eq!(hits[0]["className"], "Context", "{hits:?}");
    assert_eq!(hits[0]["objectId"], context_id.as_str());
    assert!(hits[0]["snippet"].as_str().unwrap().contains("quarterly"));
    assert!(hits[1..].iter().all(|hit| hit["className"] == "Message"));
}

/// Whatever the query, `searchContext` answers without a server error and the database is
/// unharmed: quotes, FTS operators, SQL, empty and 10 kB queries.
#[tokio::test]
async fn hostile_queries_never_fail() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let session_id = object_id(&session(&server, &ada, &[&ada], &[]).await).to_owned();
    let plain = post(&server, &ada, &session_id, "near the river, or maybe not").await;
    post(
        &server,
        &ada,
        &session_id,
        "a \"quoted\" word and a star * here",
    )
    .await;
    let long = "budget ".repeat(1500) + &"x\"*(".repeat(1000);
    let queries = [
        "\"",
        "\"\"",
        "*",
        "NEAR(",
        "NEAR(river maybe, 2)",
        "-x",
        "OR",
        "AND OR NOT",
        "river OR",
        "'); DROP TABLE \"Message\"; --",
        "'); DROP TABLE Message; --",
        "",
        "   ",
        "^river",
        "content:river",
        "river*",
        "{}[]()!&|:<>@\\",
        "\u{0345}\u{0300}",
        "\0river",
        "東京 Zürich naïve",
        long.as_str(),
    ];
    for query in queries {
        let reply = server
            .call_as(
                &ada,
                "searchContext",
                json!({"sessionId": session_id, "query": query}),
            )
            .await;
        let shown: String = query.chars().take(40).collect();
        assert!(
            reply.status.as_u16() < 500,
            "{shown:?}: {} {:?}",
            reply.status,
            reply.body
        );
        if reply.status.as_u16() == 200 {
            assert!(
                reply.body["result"].is_array(),
                "{shown:?}: {:?}",
                reply.body
            );
        } else {
            assert!(reply.body["code"].is_i64(), "{shown:?}: {:?}", reply.body);
        }
    }
    // Operators are words: "near" and "or" are found as words.
    let hits = search(&server, &ada, &session_id, "NEAR(").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["objectId"], plain.as_str());
    let hits = search(&server, &ada, &session_id, "quoted\"").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(search(&server, &ada, &session_id, "\"").await.is_empty());
    // Odd limits.
    for limit in [json!(0), json!(-1), json!(1_000_000), json!("x")] {
        let reply = server
            .call_as(
                &ada,
                "searchContext",
                json!({"sessionId": session_id, "query": "river", "limit": limit}),
            )
            .await;
        assert!(reply.status.as_u16() < 500, "{limit}: {:?}", reply.body);
    }
    // Nothing was dropped.
    assert_eq!(server.count("Message").await, 2);
    assert_eq!(search(&server, &ada, &session_id, "river").await.len(), 1);
}

/// The library function directly: the master reads everything, a stranger is refused, a
/// message hidden by its ACL stays hidden, `limit` is capped.
#[tokio::test]
async fn search_context_in_the_library() {
    let fake = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let session_id = object_id(&session(&server, &ada, &[&ada, &bob], &[]).await).to_owned();
    for index in 0..60 {
        post(&server, &bob, &session_id, &format!("apple number {index}")).await;
    }
    let hidden = post_as_master(
        &server,
        &session_id,
        json!({"content": "apple for ada", "ACL": {ada.id.as_str(): {"read": true}}}),
    )
    .await;
    let operations = library(server, &dir, &fake).await;
    let user = |user: &User| Auth {
        user_id: Some(user.id.clone()),
        ..Auth::default()
    };
    let session = load(&operations, "ChatSession", &session_id).await;

    let hits = search_context(&operations, &Auth::master(), &session, "apple", None)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10, "the default limit");
    let hits = search_context(&operations, &Auth::master(), &session, "apple", Some(500))
        .await
        .unwrap();
    assert_eq!(hits.len(), 50, "the cap");
    let hits = search_context(&operations, &user(&bob), &session, "ada", Some(50))
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let hits = search_context(&operations, &user(&ada), &session, "ada", Some(50))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["objectId"], hidden.as_str());
    // Membership is the functions' check (the HTTP test above); below it, the ACL alone
    // still keeps every message from a reader it does not name.
    for outsider in [user(&eve), Auth::default()] {
        let hits = search_context(&operations, &outsider, &session, "apple", None)
            .await
            .unwrap();
        assert!(hits.is_empty(), "{hits:?}");
    }
    let hits = search_context(&operations, &user(&ada), &session, "", None)
        .await
        .unwrap();
    assert!(hits.is_empty());
}

/// A history longer than the messages read for one prompt is cut even when every message
/// read fits a large window: the older ones are summarised in the background.
#[tokio::test]
async fn a_history_beyond_the_read_limit_is_summarised() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::reply(&["Long ago, fillers."]));
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bot = persona(&server, json!({"name": "Bot"})).await;
    let created = session(&server, &ada, &[&ada], &[&bot]).await;
    let session_id = object_id(&created).to_owned();
    let context_id = created["context"]["objectId"].as_str().unwrap().to_owned();
    let limit = usize::try_from(parlor_server::ai::context::HISTORY_LIMIT).unwrap();
    let bodies: Vec<Value> = (0..limit + 10)
        .map(|index| {
            json!({"session": pointer("ChatSession", &session_id), "content": filler(index)})
        })
        .collect();
    server.create_many("Message", bodies).await;
    // Among the newest, a notice the prompt leaves out.
    post_as_master(
        &server,
        &session_id,
        json!({"role": "system", "content": "a notice"}),
    )
    .await;
    let operations = library(server, &dir, &fake).await;
    let session = load(&operations, "ChatSession", &session_id).await;
    let bot_object = load(&operations, "Persona", &bot).await;
    let request = build_request(
        &operations,
        &session,
        &bot_object,
        MODEL,
        100,
        1_000_000,
        None,
    )
    .await
    .unwrap();
    assert_eq!(request.messages.len(), limit - 1, "every turn read fits");
    let mut summarised = false;
    for _ in 0..250 {
        let context = load(&operations, "Context", &context_id).await;
        if context.fields.get("summary") == Some(&json!("Long ago, fillers.")) {
            summarised = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        summarised,
        "the turns beyond the read limit were never summarised"
    );
}

/// Retrieval searches for the latest *human* message, not another persona's reply that came
/// after it.
#[tokio::test]
async fn retrieval_follows_the_latest_human_message() {
    let fake = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &fake).await;
    let ada = ada_lovelace(&server).await;
    let bot = persona(&server, json!({"name": "Bot"})).await;
    let other = persona(&server, json!({"name": "Other"})).await;
    let session_id = object_id(&session(&server, &ada, &[&ada], &[&bot, &other]).await).to_owned();
    post(
        &server,
        &ada,
        &session_id,
        "The secret password is swordfish",
    )
    .await;
    post(
        &server,
        &ada,
        &session_id,
        "Unrelated: a train leaves at nine",
    )
    .await;
    for index in 0..40 {
        post(&server, &ada, &session_id, &filler(index)).await;
    }
    post(&server, &ada, &session_id, "What was the secret password?").await;
    post_as_master(
        &server,
        &session_id,
        json!({"role": "assistant", "persona": pointer("Persona", &other), "content": "Which train?", "status": "complete"}),
    )
    .await;
    let operations = library(server, &dir, &fake).await;
    let session = load(&operations, "ChatSession", &session_id).await;
    let bot_object = load(&operations, "Persona", &bot).await;
    let request = build_request(&operations, &session, &bot_object, MODEL, 50, 400, None)
        .await
        .unwrap();
    let system = system_of(&request);
    assert!(system.contains("swordfish"), "{system}");
    assert!(!system.contains("nine"), "{system}");
}
