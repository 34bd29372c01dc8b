//! `GET /metrics` (issue 14): the Prometheus exposition, its counters moving as requests
//! run, labelled by route template (the JS SDK's tunnelled reads under the route they run).

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::json;

use crate::common::TestServer;

/// The value of the first sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// `GET /metrics` beside the mount path.
async fn get_metrics(server: &TestServer) -> reqwest::Response {
    server
        .client
        .get(server.url("/metrics").replace("/parse/metrics", "/metrics"))
        .send()
        .await
        .unwrap()
}

async fn scrape(server: &TestServer) -> String {
    let response = get_metrics(server).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    response.text().await.unwrap()
}

/// Scrapes until a sample starting with `prefix` appears (a reply ends in its own task).
async fn scrape_until(server: &TestServer, prefix: &str) -> String {
    for _ in 0..200 {
        let text = scrape(server).await;
        if sample(&text, prefix).is_some() {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no {prefix} in {}", scrape(server).await);
}

/// Requests are counted by route template, method and status, timed, and the store's,
/// process's and LiveQuery's figures are there.
#[tokio::test]
async fn counters_move_as_requests_run() {
    let server = TestServer::with(ServeOptions {
        metrics: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let before = scrape(&server).await;
    let find =
        "parlor_http_requests_total{route=\"/classes/:className\",method=\"GET\",status=\"200\"}";
    let created =
        "parlor_http_requests_total{route=\"/classes/:className\",method=\"POST\",status=\"201\"}";
    assert_eq!(sample(&before, find), None);
    for n in 0..3 {
        server.create("Note", json!({"n": n})).await;
    }
    server.find("Note", &[]).await;
    // The JS SDK's envelope: a POST that runs a find.
    let tunnelled = server
        .js_sdk(
            "/classes/Note",
            json!({"_method": "GET", "_ApplicationId": crate::common::APP_ID}),
        )
        .await;
    assert_eq!(tunnelled.status.as_u16(), 200, "{:?}", tunnelled.body);
    let missing = server.master(Method::GET, "/classes/Note/nope", None).await;
    assert_eq!(missing.status.as_u16(), 404);

    let after = scrape(&server).await;
    assert_eq!(sample(&after, created), Some(3.0), "{after}");
    assert_eq!(sample(&after, find), Some(2.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "parlor_http_requests_total{route=\"/classes/:className/:objectId\",method=\"GET\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &after,
            "parlor_http_request_duration_seconds_count{route=\"/classes/:className\",method=\"POST\"}"
        )
        .is_some_and(|count| count >= 3.0),
        "{after}"
    );
    assert!(
        sample(
            &after,
            "parlor_store_operation_duration_seconds_count{kind=\"write\"}"
        )
        .is_some_and(|count| count >= 3.0),
        "{after}"
    );
    assert!(sample(&after, "parlor_store_pool_connections ").is_some_and(|n| n >= 1.0));
    assert!(sample(&after, "parlor_process_resident_memory_bytes").is_some_and(|n| n > 0.0));
    assert!(sample(&after, "parlor_livequery_connections ").is_some());
    // Nothing per raw path: an id never becomes a label.
    assert!(!after.contains("nope"), "{after}");
}

/// Without `--metrics`, `/metrics` is not there (and nothing is counted).
#[tokio::test]
async fn metrics_are_off_by_default() {
    let server = TestServer::new().await;
    assert_eq!(get_metrics(&server).await.status().as_u16(), 404);
}

/// `--metrics-addr` serves them on a port of their own.
#[tokio::test]
async fn metrics_on_their_own_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::with(ServeOptions {
        metrics_addr: Some(format!("127.0.0.1:{port}")),
        ..ServeOptions::default()
    })
    .await;
    server.create("Note", json!({"n": 1})).await;
    let text = server
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("parlor_http_requests_total"), "{text}");
}

/// A persona reply moves the token counters and the time-to-first-token histogram; a
/// provider failure is counted by kind.
#[tokio::test]
async fn replies_count_tokens_and_failures() {
    use crate::common::fake_llm::{FakeLlm, Script};
    use crate::common::pointer;
    let fake = FakeLlm::start().await;
    let server = TestServer::with(ServeOptions {
        metrics: Some(true),
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".to_owned()),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let bot = server.create("Persona", json!({"name": "Bot"})).await;
    let session = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "personas": [pointer("Persona", &bot)]})),
        )
        .await;
    let session = pointer("ChatSession", session.body["objectId"].as_str().unwrap());
    fake.push(Script::reply(&["Hello", " there"]));
    let posted = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "hi"})),
        )
        .await;
    let reply_id = posted.body["replies"][0].as_str().unwrap().to_owned();
    let completion = "parlor_llm_tokens_total{provider=\"default\",model=\"fake-model\",direction=\"completion\"}";
    let text = scrape_until(&server, completion).await;
    assert!(sample(&text, completion).is_some_and(|n| n > 0.0), "{text}");
    assert!(
        sample(
            &text,
            "parlor_llm_time_to_first_token_seconds_count{provider=\"default\",model=\"fake-model\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let stored = server.get("Message", &reply_id).await;
    assert_eq!(stored["status"], "complete");

    fake.push(Script::http_error(
        400,
        "invalid_request_error",
        None,
        "no such thing",
    ));
    server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "again"})),
        )
        .await;
    let failures = "parlor_llm_provider_errors_total{provider=\"default\",kind=\"http_status\"}";
    let text = scrape_until(&server, failures).await;
    assert_eq!(sample(&text, failures), Some(1.0), "{text}");
    assert_eq!(sample(&text, "parlor_generations_running "), Some(0.0));
}

/// Scrapes until the sample starting with `prefix` has `value` (connections close in their
/// own tasks).
async fn scrape_until_value(server: &TestServer, prefix: &str, value: f64) -> String {
    for _ in 0..200 {
        let text = scrape(server).await;
        if sample(&text, prefix) == Some(value) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{prefix} never reached {value}: {}", scrape(server).await);
}

/// LiveQuery connections and subscriptions are gauges that follow clients in and out
/// (an unsubscribe, a closed socket), events sent are counted, and a client cut off for
/// reading too slowly is counted as dropped.
#[tokio::test]
async fn livequery_series_follow_clients() {
    use crate::common::live::{connected, next, send, subscribe, subscribe_all};
    let server = TestServer::with(ServeOptions {
        metrics: Some(true),
        live_query_queue: Some(4),
        ..ServeOptions::default()
    })
    .await;
    let connections = "parlor_livequery_connections ";
    let subscriptions = "parlor_livequery_subscriptions ";
    let events = "parlor_livequery_events_total ";
    let dropped = "parlor_livequery_slow_consumers_dropped_total ";
    let text = scrape(&server).await;
    assert_eq!(sample(&text, connections), Some(0.0), "{text}");
    assert_eq!(sample(&text, subscriptions), Some(0.0), "{text}");

    let mut first = connected(&server, None).await;
    subscribe_all(&mut first, 1, "Note").await;
    subscribe_all(&mut first, 2, "Note").await;
    // An `update` of a held request id replaces it: still two.
    let replaced = subscribe(
        &mut first,
        2,
        json!({"className": "Note", "where": {"n": 1}}),
    )
    .await;
    assert_eq!(replaced["op"], "subscribed");
    let mut second = connected(&server, None).await;
    subscribe_all(&mut second, 1, "Note").await;
    let text = scrape(&server).await;
    assert_eq!(sample(&text, connections), Some(2.0), "{text}");
    assert_eq!(sample(&text, subscriptions), Some(3.0), "{text}");

    // One create: the first client's two subscriptions match it (n = 1), the second's one.
    server.create("Note", json!({"n": 1})).await;
    for _ in 0..2 {
        assert_eq!(next(&mut first).await["op"], "create");
    }
    assert_eq!(next(&mut second).await["op"], "create");
    scrape_until_value(&server, events, 3.0).await;

    send(&mut first, json!({"op": "unsubscribe", "requestId": 1})).await;
    assert_eq!(next(&mut first).await["op"], "unsubscribed");
    scrape_until_value(&server, subscriptions, 2.0).await;
    // Closing a socket takes its connection and its subscription away.
    second.close(None).await.unwrap();
    drop(second);
    scrape_until_value(&server, connections, 1.0).await;
    scrape_until_value(&server, subscriptions, 1.0).await;

    // A client that does not read while events pile up is cut off, and counted.
    let mut slow = connected(&server, None).await;
    subscribe_all(&mut slow, 1, "Blob").await;
    let big = "x".repeat(64 * 1024);
    for chunk in 0..6 {
        let bodies = (0..50)
            .map(|index| json!({"n": chunk * 50 + index, "data": big}))
            .collect();
        server.create_many("Blob", bodies).await;
    }
    scrape_until_value(&server, dropped, 1.0).await;
    // Its connection is gone once its socket is (the server may still be trying to send it
    // the error until then).
    drop(slow);
    scrape_until_value(&server, connections, 1.0).await;
    scrape_until_value(&server, subscriptions, 1.0).await;
    drop(first);
}

/// Cloud Code calls are counted by kind and name, failures apart.
#[tokio::test]
async fn cloud_code_calls_and_failures_are_counted() {
    let server = TestServer::with(ServeOptions {
        metrics: Some(true),
        cloud: Some(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/cloud/main.js"
        ))),
        cloud_runtimes: Some(1),
        ..ServeOptions::default()
    })
    .await;
    for name in ["hello", "hello", "fail"] {
        server
            .master(Method::POST, &format!("/functions/{name}"), Some(json!({})))
            .await;
    }
    let text = scrape(&server).await;
    let calls = |name: &str| {
        sample(
            &text,
            &format!("parlor_cloud_code_calls_total{{kind=\"function\",name=\"{name}\"}}"),
        )
    };
    assert_eq!(calls("hello"), Some(2.0), "{text}");
    assert_eq!(calls("fail"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "parlor_cloud_code_failures_total{kind=\"function\",name=\"fail\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "parlor_cloud_code_failures_total{kind=\"function\",name=\"hello\"}"
        ),
        None,
        "{text}"
    );
}
