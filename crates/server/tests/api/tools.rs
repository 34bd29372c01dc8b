//! Personas that act: a persona's model calls tools during a reply, over both wire formats,
//! against a real server and the fake LLM over real HTTP. The tools are a `ToolSet` of Rust
//! closures registered at start-up (cloud code registers its own the same way); they read
//! with the rights of the user whose message started the reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parlor_server::ai::provider::ProviderKind;
use parlor_server::ai::tools::{ToolRunner, ToolSet};
use parlor_server::config::ServeOptions;
use parlor_server::operation::GetRequest;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::fake_llm::{FakeLlm, RecordedRequest};
use crate::common::live::{connected, next, subscribe};
use crate::common::{TestServer, User, assert_parse_error, pointer};

/// The tools of these tests: `lookupOrder` reads an `Order` with the caller's rights,
/// `dropOrders` counts its calls (personas never list it), `slow` outlives any limit, `boom`
/// panics and `fails` answers an error.
fn tool_set(dropped: Arc<AtomicUsize>) -> ToolSet {
    let order_schema = json!({
        "type": "object",
        "properties": {"orderId": {"type": "string", "description": "The order's id"}},
        "required": ["orderId"],
    });
    ToolSet::new()
        .with(
            "lookupOrder",
            "Finds an order by its id and tells its status",
            order_schema,
            |operations, call| async move {
                let id = call.arguments["orderId"]
                    .as_str()
                    .ok_or("orderId is required")?
                    .to_owned();
                let order = operations
                    .get(&call.caller, "Order", &id, GetRequest::default())
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(json!({
                    "status": order["status"],
                    "askedBy": call.caller.user_id,
                    "master": call.caller.master,
                }))
            },
        )
        .with(
            "dropOrders",
            "Deletes every order",
            json!({"type": "object"}),
            move |_, _| {
                let dropped = Arc::clone(&dropped);
                async move {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    Ok(json!({"dropped": true}))
                }
            },
        )
        .with(
            "slow",
            "Takes its time",
            json!({"type": "object"}),
            |_, _| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(json!("late"))
            },
        )
        .with("boom", "Panics", json!({"type": "object"}), |_, _| async {
            panic!("a tool that panics");
        })
        .with("fails", "Fails", json!({"type": "object"}), |_, _| async {
            Err("the warehouse is closed".to_owned())
        })
}

/// A server whose default provider is the fake one in `kind`'s format, with the tools.
async fn server(
    fake: &FakeLlm,
    kind: ProviderKind,
    options: ServeOptions,
    dropped: Arc<AtomicUsize>,
) -> TestServer {
    let base_url = match kind {
        ProviderKind::OpenAi => fake.base_url.clone(),
        ProviderKind::Anthropic => fake.anthropic_base_url.clone(),
    };
    let tools: Arc<dyn ToolRunner> = Arc::new(tool_set(dropped));
    TestServer::with_tools(
        ServeOptions {
            llm_base_url: Some(base_url),
            llm_model: Some("fake-model".to_owned()),
            llm_kind: Some(kind.as_str().to_owned()),
            ..options
        },
        Some(tools),
    )
    .await
}

async fn persona(server: &TestServer, tools: Value) -> String {
    server
        .create("Persona", json!({"name": "Clerk", "tools": tools}))
        .await
}

async fn session(server: &TestServer, owner: &User, others: &[&User], persona: &str) -> String {
    let mut participants = vec![pointer("_User", &owner.id)];
    participants.extend(others.iter().map(|user| pointer("_User", &user.id)));
    let body = json!({
        "participants": participants,
        "personas": [pointer("Persona", persona)],
    });
    let reply = server
        .as_user(owner, Method::POST, "/classes/ChatSession", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["objectId"].as_str().unwrap().to_owned()
}

/// Posts a message and answers the id of the reply it started.
async fn ask(server: &TestServer, user: &User, session_id: &str, content: &str) -> String {
    let body = json!({"session": pointer("ChatSession", session_id), "content": content});
    let reply = server
        .as_user(user, Method::POST, "/classes/Message", Some(body))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["replies"][0].as_str().unwrap().to_owned()
}

/// The reply once it is no longer streaming (it is created when its turn comes, so it may
/// not exist yet).
async fn finished(server: &TestServer, message_id: &str) -> Value {
    for _ in 0..500 {
        let found = server
            .find("Message", &[("where", json!({"objectId": message_id}))])
            .await;
        if let Some(message) = found.into_iter().next()
            && message["status"] != "streaming"
        {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("reply {message_id} did not finish");
}

/// The tool messages a reply made, oldest first, as the master key reads them.
async fn tool_messages(server: &TestServer, reply_id: &str) -> Vec<Value> {
    server
        .find(
            "Message",
            &[
                (
                    "where",
                    json!({"role": "tool", "reply": pointer("Message", reply_id)}),
                ),
                ("order", json!("createdAt")),
            ],
        )
        .await
}

async fn order(server: &TestServer, reader: &User, status: &str) -> String {
    server
        .create(
            "Order",
            json!({"status": status, "ACL": {reader.id.clone(): {"read": true}}}),
        )
        .await
}

/// The tool results the model was sent in one request, in each format's shape:
/// `(call id, content, is_error)`.
fn results_sent(request: &RecordedRequest) -> Vec<(String, String, bool)> {
    let mut results = Vec::new();
    for message in request.body["messages"].as_array().unwrap() {
        if message["role"] == "tool" {
            let content = message["content"].as_str().unwrap().to_owned();
            let is_error = serde_json::from_str::<Value>(&content)
                .is_ok_and(|value| value.get("error").is_some());
            results.push((
                message["tool_call_id"].as_str().unwrap().to_owned(),
                content,
                is_error,
            ));
        }
        if let Some(blocks) = message["content"].as_array() {
            for block in blocks.iter().filter(|block| block["type"] == "tool_result") {
                results.push((
                    block["tool_use_id"].as_str().unwrap().to_owned(),
                    block["content"].as_str().unwrap().to_owned(),
                    block["is_error"] == true,
                ));
            }
        }
    }
    results
}

const KINDS: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

/// In both wire formats: the model calls `lookupOrder`, Parlor runs it with the asking
/// user's rights, sends the result back in the format's shape, and the model's answer uses
/// it; the call is stored as a `tool` Message beside the reply.
#[tokio::test]
async fn a_persona_calls_a_tool_and_answers_with_its_result() {
    for kind in KINDS {
        let fake = FakeLlm::start().await;
        let server = server(&fake, kind, ServeOptions::default(), Arc::default()).await;
        let ada = server.sign_up("ada").await;
        let order_id = order(&server, &ada, "shipped").await;
        let clerk = persona(&server, json!(["lookupOrder"])).await;
        let session_id = session(&server, &ada, &[], &clerk).await;
        fake.on_asked("where is", "lookupOrder", json!({"orderId": order_id}), 1);
        let reply_id = ask(&server, &ada, &session_id, "where is my order?").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "complete", "{kind}: {reply}");
        let content = reply["content"].as_str().unwrap();
        assert!(content.starts_with("Tool said: "), "{kind}: {content}");
        assert!(content.contains("shipped"), "{kind}: {content}");
        // The tool ran with ada's rights, not the master key's.
        assert!(content.contains(&ada.id), "{kind}: {content}");
        assert!(content.contains("\"master\":false"), "{kind}: {content}");
        // Usage sums both rounds.
        assert_eq!(reply["usage"]["completion_tokens"], 2, "{kind}: {reply}");

        let requests = fake.requests();
        assert_eq!(
            requests.len(),
            2,
            "{kind}: one round of tools, then the answer"
        );
        let offered = &requests[0].body["tools"];
        let (name, parameters) = match kind {
            ProviderKind::OpenAi => (
                &offered[0]["function"]["name"],
                &offered[0]["function"]["parameters"],
            ),
            ProviderKind::Anthropic => (&offered[0]["name"], &offered[0]["input_schema"]),
        };
        assert_eq!(name, "lookupOrder", "{kind}: {offered}");
        assert_eq!(parameters["required"], json!(["orderId"]), "{kind}");
        assert_eq!(
            offered.as_array().unwrap().len(),
            1,
            "only the listed tools"
        );
        let sent = results_sent(&requests[1]);
        let call_id = match kind {
            ProviderKind::OpenAi => "call_0",
            ProviderKind::Anthropic => "toolu_0",
        };
        assert_eq!(sent.len(), 1, "{kind}: {sent:?}");
        assert_eq!(sent[0].0, call_id);
        assert!(
            sent[0].1.contains("shipped") && !sent[0].2,
            "{kind}: {sent:?}"
        );

        let stored = tool_messages(&server, &reply_id).await;
        assert_eq!(stored.len(), 1, "{kind}: {stored:?}");
        let record = &stored[0];
        assert_eq!(record["persona"]["objectId"], clerk.as_str());
        assert_eq!(record["session"]["objectId"], session_id.as_str());
        assert_eq!(record["status"], "complete");
        assert_eq!(record["toolCall"]["id"], call_id);
        assert_eq!(record["toolCall"]["name"], "lookupOrder");
        assert_eq!(
            record["toolCall"]["arguments"],
            json!({"orderId": order_id})
        );
        assert_eq!(record["toolCall"]["result"]["status"], "shipped");
        assert_eq!(record["toolCall"]["round"], 1);
        assert!(record["toolCall"].get("error").is_none());
        assert!(record.get("sender").is_none());

        // `previewContext` names the tools the model is offered.
        let preview = server
            .as_user(
                &ada,
                Method::POST,
                "/functions/previewContext",
                Some(json!({"sessionId": session_id})),
            )
            .await;
        assert_eq!(
            preview.body["result"]["tools"],
            json!([{"name": "lookupOrder", "description": "Finds an order by its id and tells its status"}]),
            "{:?}",
            preview.body
        );
    }
}

/// What the caller may not do is refused to the model as the tool's result, and the reply
/// goes on: an order the ACL hides from the asking user (the tool reads with her rights), and
/// a tool the persona does not list (never run, though the server defines it).
#[tokio::test]
async fn refused_calls_go_back_to_the_model_as_errors() {
    for kind in KINDS {
        let fake = FakeLlm::start().await;
        let dropped = Arc::new(AtomicUsize::new(0));
        let server = server(&fake, kind, ServeOptions::default(), Arc::clone(&dropped)).await;
        let ada = server.sign_up("ada").await;
        let bob = server.sign_up("bob").await;
        let bobs_order = order(&server, &bob, "secret").await;
        let clerk = persona(&server, json!(["lookupOrder"])).await;
        let session_id = session(&server, &ada, &[], &clerk).await;

        fake.on_asked(
            "bob's order",
            "lookupOrder",
            json!({"orderId": bobs_order}),
            1,
        );
        let reply_id = ask(&server, &ada, &session_id, "what about bob's order?").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "complete", "{kind}: {reply}");
        let content = reply["content"].as_str().unwrap();
        assert!(content.contains("Object not found"), "{kind}: {content}");
        assert!(!content.contains("secret"), "{kind}: {content}");
        let stored = tool_messages(&server, &reply_id).await;
        assert_eq!(stored.len(), 1);
        assert!(
            stored[0]["toolCall"]["error"]
                .as_str()
                .unwrap()
                .contains("not found")
        );
        assert!(stored[0]["toolCall"].get("result").is_none());
        let sent = results_sent(&fake.requests()[1]);
        assert!(sent[0].2, "{kind}: marked as an error: {sent:?}");

        fake.on_asked("drop them", "dropOrders", json!({}), 1);
        let reply_id = ask(&server, &ada, &session_id, "drop them all").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "complete", "{kind}: {reply}");
        assert!(
            reply["content"]
                .as_str()
                .unwrap()
                .contains("not available to this persona"),
            "{kind}: {reply}"
        );
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            0,
            "an unlisted tool never runs"
        );
        let stored = tool_messages(&server, &reply_id).await;
        assert_eq!(stored[0]["toolCall"]["name"], "dropOrders");
        assert!(stored[0]["toolCall"]["error"].is_string());
    }
}

/// A model that keeps calling tools is stopped at `--ai-tool-rounds`: the reply ends
/// `failed` with an error naming the limit, keeping what it said; each call that ran is
/// stored.
#[tokio::test]
async fn a_tool_loop_stops_at_the_round_limit() {
    for kind in KINDS {
        let fake = FakeLlm::start().await;
        let options = ServeOptions {
            ai_tool_rounds: Some(2),
            ..ServeOptions::default()
        };
        let server = server(&fake, kind, options, Arc::default()).await;
        let ada = server.sign_up("ada").await;
        let order_id = order(&server, &ada, "shipped").await;
        let clerk = persona(&server, json!(["lookupOrder"])).await;
        let session_id = session(&server, &ada, &[], &clerk).await;
        fake.add_rule(crate::common::fake_llm::ToolRule {
            asked: "again".to_owned(),
            tool: "lookupOrder".to_owned(),
            arguments: json!({"orderId": order_id}),
            rounds: usize::MAX,
            preface: Some("Checking.".to_owned()),
        });
        let reply_id = ask(&server, &ada, &session_id, "again and again").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "failed", "{kind}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains("--ai-tool-rounds"), "{kind}: {error}");
        assert!(error.contains("2 rounds"), "{kind}: {error}");
        // Each round's text is kept, one paragraph per round.
        assert_eq!(
            reply["content"], "Checking.\n\nChecking.\n\nChecking.",
            "{kind}"
        );
        assert_eq!(
            fake.requests().len(),
            3,
            "{kind}: two rounds of results, then stop"
        );
        assert_eq!(tool_messages(&server, &reply_id).await.len(), 2, "{kind}");
    }
}

/// A tool that outlives `--ai-tool-timeout`, one that panics and one that fails: each is
/// an error result the model answers from, and the reply completes.
#[tokio::test]
async fn failing_and_slow_tools_do_not_break_the_reply() {
    for kind in KINDS {
        let fake = FakeLlm::start().await;
        let options = ServeOptions {
            ai_tool_timeout: Some(1),
            ..ServeOptions::default()
        };
        let server = server(&fake, kind, options, Arc::default()).await;
        let ada = server.sign_up("ada").await;
        let clerk = persona(&server, json!(["slow", "boom", "fails"])).await;
        let session_id = session(&server, &ada, &[], &clerk).await;
        for (asked, tool, expected) in [
            ("be slow", "slow", "did not answer within 1 s"),
            ("explode", "boom", "failed unexpectedly"),
            ("just fail", "fails", "the warehouse is closed"),
        ] {
            fake.on_asked(asked, tool, json!({}), 1);
            let reply_id = ask(&server, &ada, &session_id, asked).await;
            let reply = finished(&server, &reply_id).await;
            assert_eq!(reply["status"], "complete", "{kind} {tool}: {reply}");
            assert!(
                reply["content"].as_str().unwrap().contains(expected),
                "{kind} {tool}: {reply}"
            );
            let stored = tool_messages(&server, &reply_id).await;
            assert!(
                stored[0]["toolCall"]["error"]
                    .as_str()
                    .unwrap()
                    .contains(expected)
            );
        }
    }
}

/// The stored tool messages belong to the session: members read them and see them arrive
/// by LiveQuery, an outsider reads nothing, and no client can write one (`role: "tool"`,
/// `toolCall` and `reply` are the server's).
#[tokio::test]
async fn tool_messages_are_the_sessions_and_the_servers() {
    let fake = FakeLlm::start().await;
    let server = server(
        &fake,
        ProviderKind::OpenAi,
        ServeOptions::default(),
        Arc::default(),
    )
    .await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let order_id = order(&server, &ada, "packed").await;
    let clerk = persona(&server, json!(["lookupOrder"])).await;
    let session_id = session(&server, &ada, &[&bob], &clerk).await;
    let mut socket = connected(&server, Some(&bob.token)).await;
    let subscribed = subscribe(
        &mut socket,
        1,
        json!({"className": "Message", "where": {"session": pointer("ChatSession", &session_id), "role": "tool"}}),
    )
    .await;
    assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
    fake.on_asked("status", "lookupOrder", json!({"orderId": order_id}), 1);
    let reply_id = ask(&server, &ada, &session_id, "status of my order?").await;
    let event = next(&mut socket).await;
    assert_eq!(event["op"], "create", "{event}");
    assert_eq!(event["object"]["role"], "tool");
    assert_eq!(event["object"]["toolCall"]["name"], "lookupOrder");
    assert_eq!(event["object"]["reply"]["objectId"], reply_id.as_str());
    finished(&server, &reply_id).await;

    let stored = tool_messages(&server, &reply_id).await;
    let tool_id = stored[0]["objectId"].as_str().unwrap();
    let path = format!("/classes/Message/{tool_id}");
    assert_eq!(
        stored[0]["ACL"],
        json!({ada.id.clone(): {"read": true}, bob.id.clone(): {"read": true}}),
        "the session members read it, nobody writes it"
    );
    let read = server.as_user(&bob, Method::GET, &path, None).await;
    assert_eq!(read.status.as_u16(), 200, "{:?}", read.body);
    let outsider = server.as_user(&eve, Method::GET, &path, None).await;
    assert_parse_error(&outsider, 404, 101, None);
    let found = server
        .as_user(
            &eve,
            Method::GET,
            &format!(
                "/classes/Message?where={}",
                crate::common::encode(&json!({"role": "tool"}).to_string())
            ),
            None,
        )
        .await;
    assert_eq!(found.body["results"], json!([]), "{:?}", found.body);
    let changed = server
        .as_user(&ada, Method::PUT, &path, Some(json!({"content": "forged"})))
        .await;
    assert_parse_error(&changed, 404, 101, None);

    // No client forges a tool record: not as a new message, not on its own message.
    let session = pointer("ChatSession", &session_id);
    let forged = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "{}", "role": "tool"})),
        )
        .await;
    assert_parse_error(&forged, 400, 119, None);
    for field in [
        json!({"toolCall": {"name": "lookupOrder", "result": {"status": "refunded"}}}),
        json!({"reply": pointer("Message", &reply_id)}),
    ] {
        let mut body = json!({"session": session, "content": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(field.as_object().unwrap().clone());
        let forged = server
            .as_user(&ada, Method::POST, "/classes/Message", Some(body))
            .await;
        assert_parse_error(&forged, 400, 119, None);
    }
    let own = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "@nobody mine"})),
        )
        .await;
    let own_path = format!(
        "/classes/Message/{}",
        own.body["objectId"].as_str().unwrap()
    );
    let forged = server
        .as_user(
            &ada,
            Method::PUT,
            &own_path,
            Some(json!({"toolCall.result": "refunded"})),
        )
        .await;
    assert_parse_error(&forged, 400, 119, None);
}

/// A Persona's `tools` is an array of tool names, for users and the master key alike.
#[tokio::test]
async fn persona_tools_must_be_tool_names() {
    let fake = FakeLlm::start().await;
    let server = server(
        &fake,
        ProviderKind::OpenAi,
        ServeOptions::default(),
        Arc::default(),
    )
    .await;
    let ada = server.sign_up("ada").await;
    for tools in [json!("lookupOrder"), json!([1]), json!(["two words"])] {
        let reply = server
            .master(
                Method::POST,
                "/classes/Persona",
                Some(json!({"name": "P", "tools": tools})),
            )
            .await;
        assert_parse_error(&reply, 400, 111, None);
    }
    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Persona",
            Some(json!({"name": "P", "tools": ["lookupOrder"]})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let path = format!(
        "/classes/Persona/{}",
        created.body["objectId"].as_str().unwrap()
    );
    let bad = server
        .as_user(
            &ada,
            Method::PUT,
            &path,
            Some(json!({"tools": {"__op": "AddUnique", "objects": [{"x": 1}]}})),
        )
        .await;
    assert_parse_error(&bad, 400, 111, None);
    let error = bad.body["error"].as_str().unwrap();
    assert!(error.contains("array of tool names"), "{error}");
    let good = server
        .as_user(
            &ada,
            Method::PUT,
            &path,
            Some(json!({"tools": {"__op": "AddUnique", "objects": ["fails"]}})),
        )
        .await;
    assert_eq!(good.status.as_u16(), 200, "{:?}", good.body);
    assert_eq!(
        server
            .get("Persona", created.body["objectId"].as_str().unwrap())
            .await["tools"],
        json!(["lookupOrder", "fails"])
    );
}

/// Tool turns of earlier replies stay out of later prompts (the reply that made them says
/// what it learnt), also when a tool-using answer is regenerated: the new answer calls the
/// tool afresh.
#[tokio::test]
async fn earlier_tool_turns_stay_out_of_the_history() {
    let fake = FakeLlm::start().await;
    let server = server(
        &fake,
        ProviderKind::Anthropic,
        ServeOptions::default(),
        Arc::default(),
    )
    .await;
    let ada = server.sign_up("ada").await;
    let order_id = order(&server, &ada, "delivered").await;
    let clerk = persona(&server, json!(["lookupOrder"])).await;
    let session_id = session(&server, &ada, &[], &clerk).await;
    fake.on_asked("where is", "lookupOrder", json!({"orderId": order_id}), 1);
    let first = ask(&server, &ada, &session_id, "where is my order?").await;
    finished(&server, &first).await;
    let second = ask(&server, &ada, &session_id, "thanks").await;
    let second_reply = finished(&server, &second).await;
    assert_eq!(second_reply["status"], "complete");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let prompt = &requests[2].body;
    let text = prompt["messages"].to_string();
    assert!(results_sent(&requests[2]).is_empty(), "{prompt}");
    assert!(!text.contains("tool_use"), "{prompt}");
    assert!(
        text.contains("Tool said:"),
        "the earlier answer is there: {prompt}"
    );
    assert!(text.contains("delivered"), "{prompt}");

    let regenerated = server
        .as_user(
            &ada,
            Method::POST,
            "/functions/regenerate",
            Some(json!({"messageId": first})),
        )
        .await;
    assert_eq!(regenerated.status.as_u16(), 200, "{:?}", regenerated.body);
    let new_id = regenerated.body["result"]["messageId"].as_str().unwrap();
    let new_reply = finished(&server, new_id).await;
    assert_eq!(new_reply["status"], "complete", "{new_reply}");
    assert!(new_reply["content"].as_str().unwrap().contains("delivered"));
    let requests = fake.requests();
    assert_eq!(
        requests.len(),
        5,
        "the regenerated answer called the tool again"
    );
    assert!(
        results_sent(&requests[3]).is_empty(),
        "{}",
        requests[3].body
    );
    assert_eq!(tool_messages(&server, new_id).await.len(), 1);
}

/// A database made before tools existed gets `Persona.tools`, `Message.toolCall` and
/// `Message.reply` at the next start (the template's new fields are added; nothing else
/// changes), so a persona's owner can list tools without the master key.
#[tokio::test]
async fn an_older_database_gains_the_tool_fields() {
    if crate::common::skip_on_postgres("restarts on one SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = || ServeOptions {
        database: Some(format!("sqlite://{}/parlor.db", dir.path().display())),
        ..ServeOptions::default()
    };
    let first = TestServer::with(options()).await;
    for (class_name, fields) in [
        ("Persona", json!({"tools": {"__op": "Delete"}})),
        (
            "Message",
            json!({"toolCall": {"__op": "Delete"}, "reply": {"__op": "Delete"}}),
        ),
    ] {
        let changed = first
            .master(
                Method::PUT,
                &format!("/schemas/{class_name}"),
                Some(json!({"fields": fields})),
            )
            .await;
        assert_eq!(changed.status.as_u16(), 200, "{:?}", changed.body);
    }
    let ada = first.sign_up("ada").await;
    first.stop().await;

    let second = TestServer::with(options()).await;
    let persona = second.master(Method::GET, "/schemas/Persona", None).await;
    assert_eq!(persona.body["fields"]["tools"], json!({"type": "Array"}));
    let message = second.master(Method::GET, "/schemas/Message", None).await;
    assert_eq!(
        message.body["fields"]["toolCall"],
        json!({"type": "Object"})
    );
    assert_eq!(
        message.body["fields"]["reply"],
        json!({"type": "Pointer", "targetClass": "Message"})
    );
    let created = second
        .as_user(
            &ada,
            Method::POST,
            "/classes/Persona",
            Some(json!({"name": "P", "tools": ["lookupOrder"]})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
}

/// End to end with Cloud Code: a `cloud/main.js` as a Parse Server user writes it defines
/// `lookupOrder` with `{tool: {description, parameters}}`; a persona listing it calls it over
/// both wire formats. Inside, `Parse.Query` runs with the asking user's rights (another
/// user's order stays hidden, and the model hears why), `request.user` is that user and
/// `request.context` names the session; a function without `tool` is never offered.
#[tokio::test]
async fn cloud_code_functions_are_tools() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.js");
    std::fs::write(
        &main,
        r#"
Parse.Cloud.define("lookupOrder", async (request) => {
  const order = await new Parse.Query("Order").get(request.params.orderId);
  return {
    status: order.get("status"),
    askedBy: request.user ? request.user.id : null,
    master: request.master,
    session: request.context.sessionId,
  };
}, {
  requireUser: true,
  fields: { orderId: { required: true, type: String } },
  tool: {
    description: "Finds one of the user's orders by its id",
    parameters: {
      type: "object",
      properties: { orderId: { type: "string" } },
      required: ["orderId"],
    },
  },
});

Parse.Cloud.define("secretReport", () => "not a tool");
"#,
    )
    .unwrap();
    for kind in KINDS {
        let fake = FakeLlm::start().await;
        let base_url = match kind {
            ProviderKind::OpenAi => fake.base_url.clone(),
            ProviderKind::Anthropic => fake.anthropic_base_url.clone(),
        };
        let server = TestServer::with(ServeOptions {
            llm_base_url: Some(base_url),
            llm_model: Some("fake-model".to_owned()),
            llm_kind: Some(kind.as_str().to_owned()),
            cloud: Some(main.clone()),
            cloud_runtimes: Some(1),
            ..ServeOptions::default()
        })
        .await;
        let ada = server.sign_up("ada").await;
        let bob = server.sign_up("bob").await;
        let mine = order(&server, &ada, "shipped").await;
        let bobs = order(&server, &bob, "secret").await;
        let clerk = persona(&server, json!(["lookupOrder", "secretReport"])).await;
        let session_id = session(&server, &ada, &[], &clerk).await;

        fake.on_asked("my order", "lookupOrder", json!({"orderId": mine}), 1);
        let reply_id = ask(&server, &ada, &session_id, "where is my order?").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "complete", "{kind}: {reply}");
        let stored = tool_messages(&server, &reply_id).await;
        let result = &stored[0]["toolCall"]["result"];
        assert_eq!(result["status"], "shipped", "{kind}: {stored:?}");
        assert_eq!(result["askedBy"], ada.id.as_str());
        assert_eq!(result["master"], false);
        assert_eq!(result["session"], session_id.as_str());
        assert!(reply["content"].as_str().unwrap().contains("shipped"));
        let offered = fake.requests()[0].body["tools"].to_string();
        assert!(
            offered.contains("Finds one of the user's orders"),
            "{kind}: {offered}"
        );
        assert!(!offered.contains("secretReport"), "{kind}: {offered}");

        fake.on_asked("bob's order", "lookupOrder", json!({"orderId": bobs}), 1);
        let reply_id = ask(&server, &ada, &session_id, "and bob's order?").await;
        let reply = finished(&server, &reply_id).await;
        assert_eq!(reply["status"], "complete", "{kind}: {reply}");
        let content = reply["content"].as_str().unwrap();
        assert!(content.contains("Object not found"), "{kind}: {content}");
        assert!(!content.contains("secret"), "{kind}: {content}");

        // A validator's refusal is the tool's answer too.
        fake.on_asked("no id", "lookupOrder", json!({}), 1);
        let reply_id = ask(&server, &ada, &session_id, "no id at all").await;
        let reply = finished(&server, &reply_id).await;
        assert!(
            reply["content"]
                .as_str()
                .unwrap()
                .contains("Please specify data for orderId"),
            "{kind}: {reply}"
        );
    }
}
