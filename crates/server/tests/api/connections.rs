//! Client connections over raw sockets: slow or silent clients are timed out phase by phase
//! (headers, body, idle keep-alive), long-lived LiveQuery WebSockets and SSE streams are not,
//! and the cap on open connections makes room for newcomers or answers them `503`.

use std::time::{Duration, Instant};

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::fake_llm::{FakeLlm, Script};
use crate::common::live::{connected, subscribe};
use crate::common::{APP_ID, MASTER_KEY, TestServer, pointer};

/// A raw TCP connection to the server.
async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (EOF or reset); panics if it is still open
/// after `within`. Answers what was read and how long the close took.
async fn read_until_closed(
    reader: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(
            within.saturating_sub(started.elapsed()),
            reader.read(&mut buffer),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection is still open after {within:?}; received {:?}",
                String::from_utf8_lossy(&received)
            )
        });
        match read {
            Ok(0) | Err(_) => return (received, started.elapsed()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one HTTP answer (headers and a `Content-Length` body) within `within`.
async fn read_answer(
    reader: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (u16, String, Value) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|code| code.parse().ok())
                    .expect("status code");
                let body = serde_json::from_slice(&received[end + 4..end + 4 + length])
                    .unwrap_or(Value::Null);
                return (status, head, body);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, reader.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no complete answer within {within:?}: {:?}",
                    String::from_utf8_lossy(&received)
                )
            })
            .expect("read");
        assert!(
            read > 0,
            "closed before a complete answer: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
}

/// `/health` answers `{"status":"ok"}` on a fresh connection, within 5 s.
async fn assert_healthy(server: &TestServer) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health: Value = client
        .get(server.url("/health"))
        .send()
        .await
        .expect("/health answers")
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
}

/// A request header sent one byte at a time is cut off at the header-read timeout, without an
/// answer, and the server goes on serving.
#[tokio::test]
async fn a_header_trickled_byte_by_byte_is_dropped_at_the_header_timeout() {
    let server = TestServer::with(ServeOptions {
        header_read_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let started = Instant::now();
    // 45 bytes at 5 a second: the whole header would take 9 s.
    let trickle = tokio::spawn(async move {
        for byte in b"GET /parse/health HTTP/1.1\r\nHost: localhost\r\n\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (answer, _) = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
    assert_healthy(&server).await;
}

/// A body trickled slower than the body-read timeout allows is answered `408` with a Parse
/// error (code 124), the connection is closed, and nothing is written.
#[tokio::test]
async fn a_trickled_body_is_answered_408_and_nothing_is_written() {
    let server = TestServer::with(ServeOptions {
        body_read_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let body = br#"{"text":"this arrives far too slowly to be accepted"}"#;
    let head = format!(
        "POST /parse/classes/Note HTTP/1.1\r\nHost: localhost\r\nX-Parse-Application-Id: {APP_ID}\r\nX-Parse-Master-Key: {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (status, head, answer) = read_answer(&mut reader, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 408, "{head}");
    assert_eq!(answer["code"], 124, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    read_until_closed(&mut reader, Duration::from_secs(3)).await;
    trickle.abort();
    let notes = server.find_as(true, "Note", &[]).await;
    assert_eq!(notes.body["results"], json!([]), "{:?}", notes.body);
}

/// `Content-Length: 1099511627776` with a 2-byte body is refused at once (`413`), and a
/// `Content-Length` within the limit whose body never comes is answered when the body-read
/// timeout expires: neither waits for ever.
#[tokio::test]
async fn a_body_that_never_arrives_is_not_waited_on_for_ever() {
    let server = TestServer::with(ServeOptions {
        body_read_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    for (length, status, code) in [("1099511627776", 413, 116), ("1000", 408, 124)] {
        let (mut reader, mut writer) = connect(&server).await.into_split();
        let request = format!(
            "POST /parse/classes/Note HTTP/1.1\r\nHost: localhost\r\nX-Parse-Application-Id: {APP_ID}\r\nX-Parse-Master-Key: {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
        );
        writer.write_all(request.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (answered, head, answer) = read_answer(&mut reader, Duration::from_secs(5)).await;
        assert_eq!(answered, status, "Content-Length {length}: {head}");
        assert_eq!(answer["code"], code, "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "Content-Length {length} answered after {:?}",
            started.elapsed()
        );
    }
    let notes = server.find_as(true, "Note", &[]).await;
    assert_eq!(notes.body["results"], json!([]), "{:?}", notes.body);
}

/// A keep-alive connection serves several requests, then is closed once it has been idle for
/// the idle timeout.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::with(ServeOptions {
        idle_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    for _ in 0..3 {
        writer
            .write_all(b"GET /parse/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (status, head, _) = read_answer(&mut reader, Duration::from_secs(5)).await;
        assert_eq!(status, 200, "{head}");
        // Pauses shorter than the idle timeout keep the connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (rest, closed_after) = read_until_closed(&mut reader, Duration::from_secs(4)).await;
    assert!(rest.is_empty());
    // 500 ms of the second have passed already.
    assert!(
        closed_after >= Duration::from_millis(400) && closed_after < Duration::from_secs(3),
        "closed {closed_after:?} after the last pause"
    );
}

/// A LiveQuery WebSocket silent for longer than the idle and header timeouts stays open and
/// keeps working: its own ping rules apply, not the HTTP timeouts.
#[tokio::test]
async fn a_live_query_websocket_outlives_the_idle_timeout() {
    let server = TestServer::with(ServeOptions {
        idle_timeout: Some(1),
        header_read_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let mut socket = connected(&server, None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let subscribed = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let created = server
        .master(Method::POST, "/classes/Note", Some(json!({"text": "hi"})))
        .await;
    assert_eq!(created.status, 201);
    let event = crate::common::live::next(&mut socket).await;
    assert_eq!(event["op"], "create", "{event}");
    assert_eq!(event["object"]["text"], "hi");
}

/// An SSE token stream whose events are further apart than the idle timeout is not cut: the
/// answer is still being written.
#[tokio::test]
async fn an_sse_stream_outlives_the_idle_timeout() {
    let fake = FakeLlm::start().await;
    let server = TestServer::with(ServeOptions {
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".to_owned()),
        idle_timeout: Some(1),
        header_read_timeout: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let persona = server
        .master(
            Method::POST,
            "/classes/Persona",
            Some(json!({"name": "Bot"})),
        )
        .await;
    assert_eq!(persona.status, 201, "{:?}", persona.body);
    let session = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({
                "participants": [pointer("_User", &ada.id)],
                "personas": [pointer("Persona", persona.body["objectId"].as_str().unwrap())],
                "policy": "manual",
            })),
        )
        .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    fake.push(
        Script::reply(&["one", " two", " three"])
            .first_token_delay(Duration::from_millis(1500))
            .token_delay(Duration::from_millis(1500)),
    );
    let generated = server
        .call_as(
            &ada,
            "generate",
            json!({"sessionId": session.body["objectId"]}),
        )
        .await;
    let message_id = generated.body["result"]["messageId"].as_str().unwrap();
    let stream = server
        .client
        .get(server.url(&format!("/messages/{message_id}/stream")))
        .header("x-parse-application-id", APP_ID)
        .header("x-parse-session-token", &ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let text = stream.text().await.expect("the whole stream");
    assert!(text.contains("\"text\":\" three\""), "{text}");
    assert!(
        text.contains("event: done\ndata: {\"status\":\"complete\"}"),
        "{text}"
    );
}

/// At the connection cap, slow clients that have not finished a request make room for new
/// ones, oldest first: `/health` answers while many are open.
#[tokio::test]
async fn health_answers_while_many_slow_connections_are_open() {
    let server = TestServer::with(ServeOptions {
        max_connections: Some(20),
        ..ServeOptions::default()
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..60 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /parse/health HTTP/1.1\r\nHost: lo")
            .await
            .unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    assert_healthy(&server).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // The 40 oldest were closed to make room; the newest are still open.
    let mut closed = 0;
    for stream in &mut slow {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        (40..=42).contains(&closed),
        "{closed} slow connections closed"
    );
}

/// When every connection is busy (WebSockets are never displaced), a newcomer is answered
/// `503` with a Parse error (code 100) and `Retry-After`, before its request is read; once a
/// connection closes, requests are served again.
#[tokio::test]
async fn a_newcomer_gets_503_when_every_connection_is_busy() {
    let server = TestServer::with(ServeOptions {
        max_connections: Some(3),
        ..ServeOptions::default()
    })
    .await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(connected(&server, None).await);
    }
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let _ = writer
        .write_all(b"GET /parse/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let (status, head, answer) = read_answer(&mut reader, Duration::from_secs(5)).await;
    assert_eq!(status, 503, "{head}");
    assert_eq!(answer["code"], 100, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    read_until_closed(&mut reader, Duration::from_secs(3)).await;
    drop(sockets.pop());
    let mut healthy = false;
    for _ in 0..50 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if let Ok(response) = client.get(server.url("/health")).send().await
            && response.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "a closed WebSocket makes room again");
}

/// A graceful stop does not wait for clients that have no request in progress: a half-sent
/// header and an idle keep-alive connection are closed at once.
#[tokio::test]
async fn stopping_closes_waiting_connections_at_once() {
    let server = TestServer::new().await;
    let mut half_sent = connect(&server).await;
    half_sent
        .write_all(b"GET /parse/health HTTP/1.1\r\nHost: lo")
        .await
        .unwrap();
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /parse/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_answer(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{head}");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("the server stops without waiting for the header timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    read_until_closed(&mut half_sent, Duration::from_secs(1)).await;
    read_until_closed(&mut idle, Duration::from_secs(1)).await;
}
