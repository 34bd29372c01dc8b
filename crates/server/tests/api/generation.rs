//! Persona replies end to end: a real server, the fake LLM over real HTTP, REST polling, the
//! cloud functions and the SSE token stream.

use std::time::Duration;

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::fake_llm::{FakeLlm, Script};
use crate::common::live::{connected, next, send};
use crate::common::{APP_ID, Reply, TestServer, User, pointer};

/// A server whose default provider is `fake`.
async fn server_with(fake: &FakeLlm, options: ServeOptions) -> TestServer {
    TestServer::with(ServeOptions {
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".to_owned()),
        ..options
    })
    .await
}

/// `ada`, and a session of hers with the persona Bot (`extra` fields added to the session).
async fn ada_and_bot(server: &TestServer, extra: Value) -> (User, String) {
    let ada = server.sign_up("ada").await;
    let bot = persona(server, json!({"name": "Bot"})).await;
    let session_id = session(server, &ada, &[&bot], extra).await;
    (ada, session_id)
}

/// The SSE token stream of a reply, with the user's session token and the app id in the
/// query.
fn stream_url(server: &TestServer, message_id: &str, user: &User) -> String {
    server.url(&format!(
        "/messages/{message_id}/stream?sessionToken={}&_ApplicationId={APP_ID}",
        user.token
    ))
}

/// The `messageId` a `generate` or `regenerate` call answers.
fn result_message_id(reply: &Reply) -> String {
    reply.body["result"]["messageId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn persona(server: &TestServer, body: Value) -> String {
    let reply = server
        .master(Method::POST, "/classes/Persona", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["objectId"].as_str().unwrap().to_owned()
}

async fn session(server: &TestServer, owner: &User, personas: &[&str], extra: Value) -> String {
    let mut body = json!({
        "participants": [pointer("_User", &owner.id)],
        "personas": personas.iter().map(|id| pointer("Persona", id)).collect::<Vec<_>>(),
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let reply = server
        .as_user(owner, Method::POST, "/classes/ChatSession", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["objectId"].as_str().unwrap().to_owned()
}

async fn post(server: &TestServer, user: &User, session_id: &str, content: &str) -> String {
    let body = json!({"session": pointer("ChatSession", session_id), "content": content});
    let reply = server
        .as_user(user, Method::POST, "/classes/Message", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["objectId"].as_str().unwrap().to_owned()
}

/// The session's messages, oldest first, as the master key reads them.
async fn messages(server: &TestServer, session_id: &str) -> Vec<Value> {
    server
        .find(
            "Message",
            &[
                (
                    "where",
                    json!({"session": pointer("ChatSession", session_id)}),
                ),
                ("order", json!("createdAt")),
            ],
        )
        .await
}

/// Waits until `count` assistant messages of the session are no longer streaming.
async fn finished_replies(server: &TestServer, session_id: &str, count: usize) -> Vec<Value> {
    for _ in 0..500 {
        let replies: Vec<Value> = messages(server, session_id)
            .await
            .into_iter()
            .filter(|message| message["role"] == "assistant")
            .collect();
        if replies.len() >= count && replies.iter().all(|reply| reply["status"] != "streaming") {
            return replies;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "replies did not finish: {:?}",
        messages(server, session_id).await
    );
}

/// A user's message gets the persona's reply, streamed and finished with usage and timing;
/// the provider received the persona's system prompt first and the user's turn.
#[tokio::test]
async fn a_message_gets_a_streamed_reply_with_usage() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::default().token_delay(Duration::from_millis(40)));
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let bot = persona(
        &server,
        json!({"name": "Bot", "systemPrompt": "You are Bot."}),
    )
    .await;
    let session_id = session(&server, &ada, &[&bot], json!({})).await;
    post(&server, &ada, &session_id, "Hello there").await;
    // The reply exists while it streams.
    let mut saw_streaming = false;
    for _ in 0..100 {
        let all = messages(&server, &session_id).await;
        if all
            .iter()
            .any(|m| m["role"] == "assistant" && m["status"] == "streaming")
        {
            saw_streaming = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_streaming, "the reply is created at once, streaming");
    let replies = finished_replies(&server, &session_id, 1).await;
    let reply = &replies[0];
    assert_eq!(reply["status"], "complete", "{reply:?}");
    assert_eq!(reply["content"], "Hello from the fake model.");
    assert_eq!(reply["persona"]["objectId"], bot.as_str());
    assert!(reply.get("sender").is_none());
    assert_eq!(reply["model"], "fake-model");
    assert!(reply["firstTokenMs"].is_number());
    assert_eq!(reply["usage"]["completion_tokens"], 6);
    assert!(reply["usage"].get("estimated").is_none());
    // Participants read it; usage is recorded in the master-only class.
    let read = server
        .as_user(
            &ada,
            Method::GET,
            &format!("/classes/Message/{}", reply["objectId"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(read.status.as_u16(), 200);
    let usage = server.find("AiUsage", &[]).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["user"]["objectId"], ada.id.as_str());
    let hidden = server
        .as_user(&ada, Method::GET, "/classes/AiUsage", None)
        .await;
    assert_ne!(hidden.status.as_u16(), 200, "usage is master-only");
    let session_now = server.get("ChatSession", &session_id).await;
    assert!(session_now["lastMessageAt"].is_object());
    // The prompt.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["stream"], true);
    let sent = body["messages"].as_array().unwrap();
    assert!(!sent.is_empty(), "{body}");
    let last = sent.last().unwrap();
    assert_eq!(last["role"], "user");
    assert!(
        last["content"].as_str().unwrap().contains("Hello there"),
        "{body}"
    );
}

/// Mentions pick the persona under any policy; `first`, `round_robin`, `manual` and `all`
/// choose as documented.
#[tokio::test]
async fn policies_and_mentions_choose_the_persona() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let one = persona(&server, json!({"name": "One"})).await;
    let two = persona(&server, json!({"name": "Two"})).await;
    let persona_of = |reply: &Value| reply["persona"]["objectId"].as_str().unwrap().to_owned();

    let all = session(&server, &ada, &[&one, &two], json!({})).await;
    post(&server, &ada, &all, "hi both").await;
    let replies = finished_replies(&server, &all, 2).await;
    assert_eq!(
        replies.iter().map(persona_of).collect::<Vec<_>>(),
        vec![one.clone(), two.clone()]
    );

    let first = session(&server, &ada, &[&one, &two], json!({"policy": "first"})).await;
    post(&server, &ada, &first, "hi").await;
    // Replies to two messages posted at once may be created in either order (each message
    // is answered by its own task), so the second is posted once the first is answered.
    finished_replies(&server, &first, 1).await;
    post(&server, &ada, &first, "@two only you").await;
    let replies = finished_replies(&server, &first, 2).await;
    assert_eq!(
        replies.iter().map(persona_of).collect::<Vec<_>>(),
        vec![one.clone(), two.clone()]
    );

    let rr = session(
        &server,
        &ada,
        &[&one, &two],
        json!({"policy": "round_robin"}),
    )
    .await;
    post(&server, &ada, &rr, "a").await;
    finished_replies(&server, &rr, 1).await;
    post(&server, &ada, &rr, "b").await;
    finished_replies(&server, &rr, 2).await;
    post(&server, &ada, &rr, "c").await;
    let replies = finished_replies(&server, &rr, 3).await;
    assert_eq!(
        replies.iter().map(persona_of).collect::<Vec<_>>(),
        vec![one.clone(), two.clone(), one.clone()]
    );

    let manual = session(&server, &ada, &[&one, &two], json!({"policy": "manual"})).await;
    post(&server, &ada, &manual, "nobody answers").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&server, &manual).await.len(), 1);
    post(&server, &ada, &manual, "hey @ONE").await;
    let replies = finished_replies(&server, &manual, 1).await;
    assert_eq!(persona_of(&replies[0]), one);
    let generated = server
        .call_as(
            &ada,
            "generate",
            json!({"sessionId": manual, "personaId": two}),
        )
        .await;
    assert_eq!(generated.status.as_u16(), 200, "{:?}", generated.body);
    let replies = finished_replies(&server, &manual, 2).await;
    assert_eq!(persona_of(&replies[1]), two);
    assert_eq!(
        replies[1]["objectId"],
        generated.body["result"]["messageId"]
    );
}

/// A stream that breaks keeps its text and records the error; one without a usage chunk
/// gets an estimated usage.
#[tokio::test]
async fn failures_keep_text_and_usage_is_estimated() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({})).await;
    fake.push(
        Script::reply(&["Half", " an", " answer", " more"]).error_after(3, "server_error", "boom"),
    );
    post(&server, &ada, &session_id, "one").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    assert_eq!(replies[0]["status"], "failed");
    assert_eq!(replies[0]["content"], "Half an answer");
    assert!(
        replies[0]["error"].as_str().unwrap().contains("boom"),
        "{:?}",
        replies[0]
    );
    fake.push(Script::default().no_usage());
    post(&server, &ada, &session_id, "two").await;
    let replies = finished_replies(&server, &session_id, 2).await;
    assert_eq!(replies[1]["status"], "complete");
    assert_eq!(replies[1]["usage"]["estimated"], true);
    assert!(replies[1]["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

/// `cancelGeneration` ends the reply `cancelled` and closes the upstream connection;
/// `regenerate` makes a sibling linked by `parent`.
#[tokio::test]
async fn cancel_and_regenerate() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({"policy": "manual"})).await;
    fake.push(Script::reply(&["slow"; 50]).token_delay(Duration::from_millis(100)));
    let generated = server
        .call_as(&ada, "generate", json!({"sessionId": session_id}))
        .await;
    let message_id = result_message_id(&generated);
    assert!(fake.wait_for_requests(1, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let cancelled = server
        .call_as(&ada, "cancelGeneration", json!({"messageId": message_id}))
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["result"]["status"], "cancelled");
    assert!(
        fake.wait_for_disconnects(1, Duration::from_secs(5)).await,
        "upstream closed"
    );
    let regenerated = server
        .call_as(&ada, "regenerate", json!({"messageId": message_id}))
        .await;
    assert_eq!(regenerated.status.as_u16(), 200, "{:?}", regenerated.body);
    let new_id = result_message_id(&regenerated);
    let replies = finished_replies(&server, &session_id, 2).await;
    let new = replies
        .iter()
        .find(|r| r["objectId"] == new_id.as_str())
        .unwrap();
    assert_eq!(new["parent"]["objectId"], message_id.as_str());
    assert_eq!(new["status"], "complete");
    let old = replies
        .iter()
        .find(|r| r["objectId"] == message_id.as_str())
        .unwrap();
    assert_eq!(old["status"], "cancelled");
    let unknown = server.call_as(&ada, "nope", json!({})).await;
    assert_eq!(unknown.body["code"], 141);
    assert_eq!(unknown.body["error"], "Invalid function: \"nope\"");
}

/// The daily quota and the per-user limit stop replies before the provider is called.
#[tokio::test]
async fn quota_and_per_user_limit() {
    let fake = FakeLlm::start().await;
    let server = server_with(
        &fake,
        ServeOptions {
            daily_token_quota: Some(5),
            max_generations_per_user: Some(1),
            ..ServeOptions::default()
        },
    )
    .await;
    let (ada, session_id) = ada_and_bot(&server, json!({"policy": "manual"})).await;
    fake.push(Script::reply(&["x"; 40]).token_delay(Duration::from_millis(30)));
    let first = server
        .call_as(&ada, "generate", json!({"sessionId": session_id}))
        .await;
    assert_eq!(first.status.as_u16(), 200, "{:?}", first.body);
    let second = server
        .call_as(&ada, "generate", json!({"sessionId": session_id}))
        .await;
    assert_eq!(second.body["code"], 141, "{:?}", second.body);
    assert!(
        second.body["error"].as_str().unwrap().contains("limit"),
        "{:?}",
        second.body
    );
    finished_replies(&server, &session_id, 1).await;
    // The first reply spent more than the quota: the next one fails before any request.
    post(&server, &ada, &session_id, "@bot again").await;
    let replies = finished_replies(&server, &session_id, 2).await;
    assert_eq!(replies[1]["status"], "failed");
    assert!(
        replies[1]["error"].as_str().unwrap().contains("quota"),
        "{:?}",
        replies[1]
    );
    assert_eq!(fake.requests().len(), 1);
}

/// Someone outside the session can neither call the functions nor read the stream.
#[tokio::test]
async fn outsiders_are_refused() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let eve = server.sign_up("eve").await;
    let bot = persona(&server, json!({"name": "Bot"})).await;
    let session_id = session(&server, &ada, &[&bot], json!({})).await;
    post(&server, &ada, &session_id, "hi").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    let message_id = replies[0]["objectId"].as_str().unwrap();
    for (name, params) in [
        ("generate", json!({"sessionId": session_id})),
        ("cancelGeneration", json!({"messageId": message_id})),
        ("regenerate", json!({"messageId": message_id})),
        (
            "searchContext",
            json!({"sessionId": session_id, "query": "hi"}),
        ),
        ("summarizeSession", json!({"sessionId": session_id})),
        ("previewContext", json!({"sessionId": session_id})),
        ("leaveSession", json!({"sessionId": session_id})),
    ] {
        // One rule, one answer: an outsider hears "not found", as for a session that does
        // not exist.
        let reply = server.call_as(&eve, name, params.clone()).await;
        assert_eq!(reply.status.as_u16(), 404, "{name}: {:?}", reply.body);
        assert_eq!(reply.body["code"], 101, "{name}: {:?}", reply.body);
        if let Some(session) = params.get("sessionId") {
            let mut missing = params.clone();
            missing["sessionId"] = json!("noSuchOne1");
            let reply = server.call_as(&ada, name, missing).await;
            assert_eq!(
                reply.body,
                json!({"code": 101, "error": "Object not found."}),
                "{name} {session}"
            );
        }
    }
    let stream = server
        .client
        .get(stream_url(&server, message_id, &eve))
        .send()
        .await
        .unwrap();
    assert_ne!(stream.status().as_u16(), 200);
    // The reply the server wrote carries the members' ACL: eve neither finds nor edits it.
    let found = server
        .as_user(&eve, Method::GET, "/classes/Message", None)
        .await;
    assert_eq!(found.body["results"], json!([]), "{:?}", found.body);
    let edit = server
        .as_user(
            &eve,
            Method::PUT,
            &format!("/classes/Message/{message_id}"),
            Some(json!({"content": "defaced"})),
        )
        .await;
    assert_eq!(edit.body["code"], 101, "{:?}", edit.body);
    assert_eq!(fake.requests().len(), 1, "nothing was generated for eve");
    assert_eq!(messages(&server, &session_id).await.len(), 2);
}

/// The SSE stream: a late joiner gets everything, `Last-Event-ID` resumes, `done` ends it.
#[tokio::test]
async fn sse_stream_replays_and_resumes() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({"policy": "manual"})).await;
    fake.push(Script::reply(&["one", " two", " three"]).token_delay(Duration::from_millis(150)));
    let generated = server
        .call_as(&ada, "generate", json!({"sessionId": session_id}))
        .await;
    let message_id = result_message_id(&generated);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = server
        .client
        .get(server.url(&format!("/messages/{message_id}/stream")))
        .header("x-parse-application-id", APP_ID)
        .header("x-parse-session-token", &ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = live.text().await.unwrap();
    let deltas: String = events(&text, "delta")
        .iter()
        .map(|data| data["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, "one two three", "{text}");
    let done = events(&text, "done");
    assert_eq!(done, vec![json!({"status": "complete"})]);
    // Finished: one delta from the offset, then done.
    let resumed = server
        .client
        .get(stream_url(&server, &message_id, &ada))
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deltas = events(&resumed, "delta");
    assert_eq!(
        deltas,
        vec![json!({"offset": 3, "text": " two three"})],
        "{resumed}"
    );
    assert!(resumed.contains("id: 13\n"), "{resumed}");
}

/// The `data` of each event named `name`.
fn events(text: &str, name: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|line| line == format!("event: {name}")))
        .filter_map(|block| block.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// A persona's greeting is posted when it joins a session, at creation or later.
#[tokio::test]
async fn greetings_are_posted_when_personas_join() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let one = persona(&server, json!({"name": "One", "greeting": "Hi, I am One."})).await;
    let two = persona(&server, json!({"name": "Two", "greeting": "Two here."})).await;
    let session_id = session(&server, &ada, &[&one], json!({"policy": "manual"})).await;
    let replies = finished_replies(&server, &session_id, 1).await;
    assert_eq!(replies[0]["content"], "Hi, I am One.");
    let update = json!({"personas": [pointer("Persona", &one), pointer("Persona", &two)]});
    let reply = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/ChatSession/{session_id}"),
            Some(update),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let replies = finished_replies(&server, &session_id, 2).await;
    assert_eq!(replies[1]["content"], "Two here.");
    assert_eq!(fake.requests().len(), 0);
}

/// With no provider at all, a reply fails with an error that says how to configure one.
#[tokio::test]
async fn no_provider_says_how_to_configure_one() {
    let server = TestServer::new().await;
    let (ada, session_id) = ada_and_bot(&server, json!({})).await;
    post(&server, &ada, &session_id, "hi").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    assert_eq!(replies[0]["status"], "failed");
    assert!(
        replies[0]["error"]
            .as_str()
            .unwrap()
            .contains("--llm-base-url"),
        "{:?}",
        replies[0]
    );
}

/// A connection cut in the middle of the stream ends the reply `failed`, with the text that
/// arrived before the cut kept and an `error` that says the stream broke off.
#[tokio::test]
async fn a_cut_connection_keeps_the_text_and_fails() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({})).await;
    fake.push(
        Script::reply(&["Cut", " short", " here", " never", " seen"])
            .token_delay(Duration::from_millis(20))
            .cut_after(3),
    );
    post(&server, &ada, &session_id, "talk").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    let reply = &replies[0];
    assert_eq!(reply["status"], "failed", "{reply:?}");
    assert_eq!(reply["content"], "Cut short here");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{reply:?}");
    assert_eq!(
        fake.requests().len(),
        1,
        "a broken stream is not sent again"
    );
    // The SSE stream of the finished reply says the same.
    let id = reply["objectId"].as_str().unwrap();
    let text = server
        .client
        .get(stream_url(&server, id, &ada))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let done = events(&text, "done");
    assert_eq!(done.len(), 1, "{text}");
    assert_eq!(done[0]["status"], "failed", "{text}");
    assert_eq!(done[0]["error"], reply["error"], "{text}");
}

/// A prompt the provider refuses as too long is sent once more with a smaller window; the
/// second attempt's answer completes the reply.
#[tokio::test]
async fn a_context_overflow_is_retried_once_with_a_smaller_window() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({"policy": "manual"})).await;
    for turn in 0..4 {
        post(&server, &ada, &session_id, &format!("earlier turn {turn}")).await;
    }
    fake.push(Script::context_overflow());
    post(&server, &ada, &session_id, "@bot the question").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    assert_eq!(replies[0]["status"], "complete", "{:?}", replies[0]);
    assert_eq!(replies[0]["content"], "Hello from the fake model.");
    assert!(replies[0].get("error").is_none(), "{:?}", replies[0]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "one refusal, one retry");
    let sent = |index: usize| requests[index].body["messages"].as_array().unwrap().len();
    assert!(sent(1) <= sent(0), "{} then {}", sent(0), sent(1));
    for request in &requests {
        let last = request.body["messages"].as_array().unwrap().last().unwrap();
        assert!(
            last["content"].as_str().unwrap().contains("the question"),
            "{}",
            request.body
        );
    }
    // Twice refused: the reply fails with the provider's reason, after exactly one retry.
    fake.push(Script::context_overflow());
    fake.push(Script::context_overflow());
    post(&server, &ada, &session_id, "@bot again").await;
    let replies = finished_replies(&server, &session_id, 2).await;
    assert_eq!(replies[1]["status"], "failed", "{:?}", replies[1]);
    assert!(
        replies[1]["error"]
            .as_str()
            .unwrap()
            .contains("context window"),
        "{:?}",
        replies[1]
    );
    assert_eq!(fake.requests().len(), 4);
}

/// `--max-generations 1`: while one reply streams, a second session's reply ends `failed`
/// at once with an error naming the limit, without calling the provider; a `generate` call
/// is refused with 141. Once the first is done, replies run again.
#[tokio::test]
async fn max_generations_refuses_a_second_reply_at_once() {
    let fake = FakeLlm::start().await;
    let server = server_with(
        &fake,
        ServeOptions {
            max_generations: Some(1),
            ..ServeOptions::default()
        },
    )
    .await;
    let ada = server.sign_up("ada").await;
    let bea = server.sign_up("bea").await;
    let bot = persona(&server, json!({"name": "Bot"})).await;
    let first = session(&server, &ada, &[&bot], json!({})).await;
    let second = session(&server, &bea, &[&bot], json!({})).await;
    fake.push(Script::reply(&["slow"; 20]).token_delay(Duration::from_millis(50)));
    post(&server, &ada, &first, "first").await;
    assert!(fake.wait_for_requests(1, Duration::from_secs(5)).await);
    post(&server, &bea, &second, "second").await;
    let refused = finished_replies(&server, &second, 1).await;
    assert_eq!(refused[0]["status"], "failed", "{:?}", refused[0]);
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.contains("too many replies") && error.contains("limit is 1"),
        "{error}"
    );
    let called = server
        .call_as(&bea, "generate", json!({"sessionId": second}))
        .await;
    assert_eq!(called.body["code"], 141, "{:?}", called.body);
    assert!(
        called.body["error"]
            .as_str()
            .unwrap()
            .contains("limit is 1"),
        "{:?}",
        called.body
    );
    let done = finished_replies(&server, &first, 1).await;
    assert_eq!(done[0]["status"], "complete", "{:?}", done[0]);
    assert_eq!(done[0]["content"], "slow".repeat(20));
    assert_eq!(
        fake.requests().len(),
        1,
        "the refused reply never reached the provider"
    );
    // The slot is free again.
    post(&server, &bea, &second, "@bot now").await;
    let replies = finished_replies(&server, &second, 2).await;
    assert_eq!(replies[1]["status"], "complete", "{:?}", replies[1]);
    assert_eq!(fake.requests().len(), 2);
}

/// A persona whose `provider` names a `[[providers]]` entry of `parlor.toml` is answered by
/// that provider, with its model; the default provider is not called.
#[tokio::test]
async fn a_persona_uses_its_named_provider_from_parlor_toml() {
    let default = FakeLlm::start().await;
    let named = FakeLlm::start().await;
    named.set_default(Script::reply(&["From", " the", " second", " one."]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.toml");
    std::fs::write(
        &path,
        format!(
            "[[providers]]\nname = \"second\"\nbase_url = \"{}\"\napi_key = \"sk-second\"\n\
             model = \"second-model\"\n",
            named.base_url
        ),
    )
    .unwrap();
    let server = server_with(
        &default,
        ServeOptions {
            config: Some(path),
            ..ServeOptions::default()
        },
    )
    .await;
    let ada = server.sign_up("ada").await;
    let plain = persona(&server, json!({"name": "Plain"})).await;
    let special = persona(&server, json!({"name": "Special", "provider": "second"})).await;
    let session_id = session(&server, &ada, &[&plain, &special], json!({})).await;
    post(&server, &ada, &session_id, "@special hello").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    assert_eq!(replies[0]["status"], "complete", "{:?}", replies[0]);
    assert_eq!(replies[0]["content"], "From the second one.");
    assert_eq!(replies[0]["model"], "second-model");
    assert_eq!(replies[0]["persona"]["objectId"], special.as_str());
    let requests = named.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], "second-model");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-second")
    );
    assert_eq!(
        default.requests().len(),
        0,
        "the default provider is not used"
    );
    // The other persona still goes to the default provider.
    post(&server, &ada, &session_id, "@plain hi").await;
    let replies = finished_replies(&server, &session_id, 2).await;
    assert_eq!(replies[1]["status"], "complete", "{:?}", replies[1]);
    assert_eq!(replies[1]["model"], "fake-model");
    assert_eq!(default.requests().len(), 1);
    assert_eq!(named.requests().len(), 1);
    // An unknown name fails the reply with an error listing the configured ones.
    let lost = persona(&server, json!({"name": "Lost", "provider": "nowhere"})).await;
    let other = session(&server, &ada, &[&lost], json!({})).await;
    post(&server, &ada, &other, "anyone?").await;
    let replies = finished_replies(&server, &other, 1).await;
    assert_eq!(replies[0]["status"], "failed");
    let error = replies[0]["error"].as_str().unwrap();
    assert!(
        error.contains("nowhere") && error.contains("second"),
        "{error}"
    );
}

/// A live-query subscriber with the user's session token sees the reply created
/// (`streaming`, empty), grow in at least two updates, then end `complete` with usage.
#[tokio::test]
async fn a_live_query_subscriber_sees_the_reply_grow() {
    let fake = FakeLlm::start().await;
    fake.set_default(
        Script::reply(&[
            "One", " two", " three", " four", " five", " six", " seven", " eight",
        ])
        .token_delay(Duration::from_millis(40)),
    );
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({})).await;
    let mut socket = connected(&server, Some(&ada.token)).await;
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 1, "sessionToken": ada.token, "query": {
            "className": "Message",
            "where": {"session": pointer("ChatSession", &session_id)},
        }}),
    )
    .await;
    assert_eq!(next(&mut socket).await["op"], "subscribed");
    post(&server, &ada, &session_id, "count to eight").await;
    let mut seen: Vec<(String, Value)> = Vec::new();
    let mut stream = None;
    loop {
        let frame = next(&mut socket).await;
        let op = frame["op"].as_str().unwrap_or_default().to_owned();
        let object = frame["object"].clone();
        if object["role"] != "assistant" {
            continue;
        }
        if stream.is_none() {
            // Opened on the `create` event, as a client would: the reply is already running.
            let url = stream_url(&server, object["objectId"].as_str().unwrap(), &ada);
            let client = server.client.clone();
            stream = Some(tokio::spawn(async move {
                client.get(url).send().await.unwrap().text().await.unwrap()
            }));
        }
        let finished = object["status"] != "streaming";
        seen.push((op, object));
        if finished {
            break;
        }
    }
    let ops: Vec<&str> = seen.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(ops[0], "create", "{seen:?}");
    assert_eq!(seen[0].1["status"], "streaming");
    assert_eq!(seen[0].1["content"], "");
    let growing: Vec<&str> = seen[1..seen.len() - 1]
        .iter()
        .map(|(op, object)| {
            assert_eq!(op, "update");
            assert_eq!(object["status"], "streaming");
            object["content"].as_str().unwrap()
        })
        .collect();
    assert!(growing.len() >= 2, "{seen:?}");
    let full = "One two three four five six seven eight";
    for pair in growing.windows(2) {
        assert!(pair[0].len() < pair[1].len(), "{growing:?}");
    }
    assert!(
        growing.iter().all(|text| full.starts_with(text)),
        "{growing:?}"
    );
    let (op, last) = seen.last().unwrap();
    assert_eq!(op, "update");
    assert_eq!(last["status"], "complete", "{last}");
    assert_eq!(last["content"], full);
    assert_eq!(last["usage"]["completion_tokens"], 8);
    assert_eq!(last["objectId"], seen[0].1["objectId"]);
    let text = stream.unwrap().await.unwrap();
    let deltas: String = events(&text, "delta")
        .iter()
        .map(|data| data["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, full, "{text}");
    assert_eq!(events(&text, "done"), vec![json!({"status": "complete"})]);
}

/// Two messages posted at once in one session are answered one after the other, in commit
/// order: the second answer's prompt already holds the first answer.
#[tokio::test]
async fn a_sessions_messages_are_answered_in_order() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::echo().token_delay(Duration::from_millis(20)));
    let server = server_with(&fake, ServeOptions::default()).await;
    let user = server.sign_up("ann").await;
    let sage = persona(&server, json!({"name": "Sage"})).await;
    let chat = session(&server, &user, &[&sage], json!({})).await;
    let (_, _) = tokio::join!(
        post(&server, &user, &chat, "first question"),
        post(&server, &user, &chat, "second question")
    );
    let replies = finished_replies(&server, &chat, 2).await;
    assert_eq!(replies.len(), 2);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "one request per message");
    let second_prompt = &requests[1].body["messages"];
    let first_reply = replies
        .iter()
        .min_by_key(|reply| reply["createdAt"].as_str().unwrap_or_default().to_owned())
        .unwrap();
    assert!(
        second_prompt
            .as_array()
            .unwrap()
            .iter()
            .any(|turn| turn["role"] == "assistant" && turn["content"] == first_reply["content"]),
        "the second answer saw the first: {second_prompt}"
    );
}

/// The personas a reply is made from are read once and reused, but an edit (or a deletion)
/// is what the very next message is answered with.
#[tokio::test]
async fn the_next_reply_uses_the_persona_as_edited() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let bot = persona(
        &server,
        json!({"name": "Bot", "systemPrompt": "Speak like a pirate."}),
    )
    .await;
    let chat = session(&server, &ada, &[&bot], json!({})).await;
    let system_prompt =
        |index: usize| fake.requests()[index].body["messages"][0]["content"].clone();
    post(&server, &ada, &chat, "one").await;
    finished_replies(&server, &chat, 1).await;
    post(&server, &ada, &chat, "two").await;
    finished_replies(&server, &chat, 2).await;
    assert!(
        system_prompt(1)
            .to_string()
            .contains("Speak like a pirate."),
        "{}",
        system_prompt(1)
    );
    let edited = server
        .master(
            Method::PUT,
            &format!("/classes/Persona/{bot}"),
            Some(json!({"systemPrompt": "Speak like a poet."})),
        )
        .await;
    assert_eq!(edited.status.as_u16(), 200, "{:?}", edited.body);
    post(&server, &ada, &chat, "three").await;
    finished_replies(&server, &chat, 3).await;
    let prompt = system_prompt(2).to_string();
    assert!(
        prompt.contains("Speak like a poet.") && !prompt.contains("pirate"),
        "{prompt}"
    );
    let deleted = server
        .master(Method::DELETE, &format!("/classes/Persona/{bot}"), None)
        .await;
    assert_eq!(deleted.status.as_u16(), 200, "{:?}", deleted.body);
    post(&server, &ada, &chat, "four").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.requests().len(),
        3,
        "a deleted persona does not answer"
    );
}

/// A user's message answers with `replies`: the objectIds of the persona replies it started,
/// in the order they answer, before any of them is written; each reply appears under its id.
/// Messages posted back to back in a `round_robin` session alternate personas even while
/// the earlier replies are still queued; a session without personas adds no `replies`.
#[tokio::test]
async fn a_message_names_the_replies_it_started() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::default().token_delay(Duration::from_millis(30)));
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let one = persona(&server, json!({"name": "One"})).await;
    let two = persona(&server, json!({"name": "Two"})).await;
    let persona_of = |reply: &Value| reply["persona"]["objectId"].as_str().unwrap().to_owned();
    let post_answer = |session_id: String, content: &'static str| {
        let body = json!({"session": pointer("ChatSession", &session_id), "content": content});
        let server = &server;
        let ada = &ada;
        async move {
            let reply = server
                .as_user(ada, Method::POST, "/classes/Message", Some(body))
                .await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            reply.body
        }
    };

    let all = session(&server, &ada, &[&one, &two], json!({})).await;
    let answer = post_answer(all.clone(), "hi both").await;
    let named: Vec<String> = answer["replies"]
        .as_array()
        .unwrap_or_else(|| panic!("no replies: {answer:?}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(named.len(), 2);
    let replies = finished_replies(&server, &all, 2).await;
    let written: Vec<(String, String)> = replies
        .iter()
        .map(|reply| {
            (
                reply["objectId"].as_str().unwrap().to_owned(),
                persona_of(reply),
            )
        })
        .collect();
    assert_eq!(
        written,
        vec![
            (named[0].clone(), one.clone()),
            (named[1].clone(), two.clone())
        ]
    );

    let rr = session(
        &server,
        &ada,
        &[&one, &two],
        json!({"policy": "round_robin"}),
    )
    .await;
    let mut named = Vec::new();
    for content in ["a", "b", "c"] {
        let answer = post_answer(rr.clone(), content).await;
        assert_eq!(
            answer["replies"].as_array().map(Vec::len),
            Some(1),
            "{answer:?}"
        );
        named.push(answer["replies"][0].as_str().unwrap().to_owned());
    }
    let replies = finished_replies(&server, &rr, 3).await;
    let by_id = |id: &str| {
        replies
            .iter()
            .find(|reply| reply["objectId"] == id)
            .map(persona_of)
            .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"))
    };
    assert_eq!(
        named.iter().map(|id| by_id(id)).collect::<Vec<_>>(),
        vec![one.clone(), two.clone(), one.clone()]
    );

    let quiet = session(&server, &ada, &[], json!({})).await;
    let answer = post_answer(quiet, "anyone?").await;
    assert!(answer.get("replies").is_none(), "{answer:?}");
}

/// `regenerate` asks for a new answer to the same question: the provider sees the history
/// up to the message being answered — not the answer being replaced, not an earlier
/// regeneration of it, and not what was said after it.
#[tokio::test]
async fn regenerate_sees_the_history_up_to_the_question() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let (ada, session_id) = ada_and_bot(&server, json!({})).await;
    fake.push(Script::reply(&["first answer"]));
    post(&server, &ada, &session_id, "question one").await;
    let replies = finished_replies(&server, &session_id, 1).await;
    let first = replies[0]["objectId"].as_str().unwrap().to_owned();
    fake.push(Script::reply(&["second answer"]));
    post(&server, &ada, &session_id, "question two").await;
    finished_replies(&server, &session_id, 2).await;

    fake.push(Script::reply(&["first answer, again"]));
    let again = server
        .call_as(&ada, "regenerate", json!({"messageId": first}))
        .await;
    assert_eq!(again.status.as_u16(), 200, "{:?}", again.body);
    let again = result_message_id(&again);
    finished_replies(&server, &session_id, 3).await;
    fake.push(Script::reply(&["first answer, thrice"]));
    let thrice = server
        .call_as(&ada, "regenerate", json!({"messageId": again}))
        .await;
    assert_eq!(thrice.status.as_u16(), 200, "{:?}", thrice.body);
    finished_replies(&server, &session_id, 4).await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests[2..] {
        let turns: Vec<(String, String)> = request.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|turn| turn["role"] != "system")
            .map(|turn| {
                (
                    turn["role"].as_str().unwrap().to_owned(),
                    turn["content"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            turns,
            vec![("user".to_owned(), "question one".to_owned())],
            "{}",
            request.body
        );
    }
}

/// `previewContext` shows exactly the prompt the persona is sent next: the system prompt's
/// parts (persona prompt, identity, Context data) and the history, with token counts; it
/// calls no provider and changes nothing.
#[tokio::test]
async fn preview_context_shows_the_next_prompt() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let bot = persona(
        &server,
        json!({"name": "Bot", "description": "a terse helper", "systemPrompt": "Answer briefly.", "maxTokens": 200}),
    )
    .await;
    let session_id = session(&server, &ada, &[&bot], json!({})).await;
    let session_object = server.get("ChatSession", &session_id).await;
    let context_id = session_object["context"]["objectId"].as_str().unwrap();
    let saved = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"data": {"city": "Lisbon"}})),
        )
        .await;
    assert_eq!(saved.status.as_u16(), 200, "{:?}", saved.body);
    post(&server, &ada, &session_id, "Where should we eat?").await;
    finished_replies(&server, &session_id, 1).await;
    let before = messages(&server, &session_id).await;

    let preview = server
        .call_as(&ada, "previewContext", json!({"sessionId": session_id}))
        .await;
    assert_eq!(preview.status.as_u16(), 200, "{:?}", preview.body);
    let preview = &preview.body["result"];
    assert_eq!(preview["persona"]["objectId"], bot.as_str());
    assert_eq!(preview["model"], "fake-model");
    assert_eq!(preview["maxOutputTokens"], 200);
    let kinds: Vec<&str> = preview["system"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|part| part["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["persona", "identity", "context"]);
    assert_eq!(
        preview["system"]["parts"][2]["text"],
        r#"Session context (JSON): {"city":"Lisbon"}"#
    );
    assert!(preview["system"]["parts"][0]["tokens"].as_u64().unwrap() > 0);
    let history = preview["messages"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{preview}");
    assert_eq!(history[0]["role"], "user");
    assert_eq!(history[0]["content"], "Where should we eat?");
    assert_eq!(history[1]["role"], "assistant");
    let history_tokens: u64 = history
        .iter()
        .map(|turn| turn["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(preview["historyTokens"], history_tokens);
    assert_eq!(
        preview["totalTokens"].as_u64().unwrap(),
        preview["system"]["tokens"].as_u64().unwrap() + history_tokens
    );
    assert_eq!(preview["leftOut"], 0);
    assert_eq!(fake.requests().len(), 1, "the preview calls no provider");
    assert_eq!(messages(&server, &session_id).await, before, "nor writes");

    // What `generate` then sends is what the preview showed.
    let generated = server
        .call_as(&ada, "generate", json!({"sessionId": session_id}))
        .await;
    assert_eq!(generated.status.as_u16(), 200, "{:?}", generated.body);
    finished_replies(&server, &session_id, 2).await;
    let requests = fake.requests();
    let sent = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(sent[0]["role"], "system");
    assert_eq!(sent[0]["content"], preview["system"]["text"]);
    let sent_history: Vec<(&Value, &Value)> = sent[1..]
        .iter()
        .map(|turn| (&turn["role"], &turn["content"]))
        .collect();
    let shown: Vec<(&Value, &Value)> = history
        .iter()
        .map(|turn| (&turn["role"], &turn["content"]))
        .collect();
    assert_eq!(sent_history, shown);

    // A persona that is not the session's is refused; so is a missing session id.
    let other = persona(&server, json!({"name": "Other"})).await;
    let refused = server
        .call_as(
            &ada,
            "previewContext",
            json!({"sessionId": session_id, "personaId": other}),
        )
        .await;
    assert_eq!(refused.body["code"], 141, "{:?}", refused.body);
    let missing = server.call_as(&ada, "previewContext", json!({})).await;
    assert_eq!(missing.body["code"], 141, "{:?}", missing.body);
}

/// `leaveSession`: a participant leaves (and no longer reads the session or its messages);
/// the owner cannot leave; someone who already left is not a member any more.
#[tokio::test]
async fn a_participant_leaves_a_session() {
    let fake = FakeLlm::start().await;
    let server = server_with(&fake, ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"title": "Trip", "participants": [pointer("_User", &bob.id)]})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let session_id = created.body["objectId"].as_str().unwrap().to_owned();
    post(&server, &ada, &session_id, "hello bob").await;
    let path = format!("/classes/ChatSession/{session_id}");
    assert_eq!(
        server.as_user(&bob, Method::GET, &path, None).await.status,
        200
    );

    let owner = server
        .call_as(&ada, "leaveSession", json!({"sessionId": session_id}))
        .await;
    assert_eq!(owner.body["code"], 141, "{:?}", owner.body);
    assert!(
        owner.body["error"].as_str().unwrap().contains("owner"),
        "{:?}",
        owner.body
    );

    let left = server
        .call_as(&bob, "leaveSession", json!({"sessionId": session_id}))
        .await;
    assert_eq!(left.status.as_u16(), 200, "{:?}", left.body);
    assert_eq!(left.body["result"], json!({"left": true}));
    let stored = server.get("ChatSession", &session_id).await;
    let participants: Vec<&str> = stored["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["objectId"].as_str().unwrap())
        .collect();
    assert_eq!(participants, [ada.id.as_str()]);
    assert_eq!(
        server.as_user(&bob, Method::GET, &path, None).await.body["code"],
        101
    );
    let where_session = json!({"session": pointer("ChatSession", &session_id)}).to_string();
    let history = server
        .as_user(
            &bob,
            Method::GET,
            &format!(
                "/classes/Message?where={}",
                form_urlencoded::byte_serialize(where_session.as_bytes()).collect::<String>()
            ),
            None,
        )
        .await;
    assert_eq!(history.body["results"], json!([]), "{:?}", history.body);
    let again = server
        .call_as(&bob, "leaveSession", json!({"sessionId": session_id}))
        .await;
    assert_eq!(again.body["code"], 101, "{:?}", again.body);
    // Ada still has her session.
    assert_eq!(
        server.as_user(&ada, Method::GET, &path, None).await.status,
        200
    );
}
