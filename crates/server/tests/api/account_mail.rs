//! Password reset and email verification, end to end: the mail goes through a fake SMTP
//! server on loopback, and the link it carries finishes the flow.

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::{APP_ID, TestServer, assert_parse_error};

/// A minimal SMTP server: accepts every message and hands its DATA section to the test.
async fn fake_smtp() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let _ = write.write_all(b"220 fake\r\n").await;
                let mut data: Option<String> = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(body) = &mut data {
                        if line == ".\r\n" {
                            let _ = sender.send(std::mem::take(body));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                        }
                        continue;
                    }
                    let reply: &[u8] = match line.get(..4) {
                        Some("EHLO") => b"250 fake\r\n",
                        Some("DATA") => {
                            data = Some(String::new());
                            b"354 go\r\n"
                        }
                        Some("QUIT") => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, receiver)
}

/// The link in a mail, split into its path (below the server) and its query fields.
fn link_in(mail: &str, base: &str) -> (String, Vec<(String, String)>) {
    let start = mail.find(base).expect("a link to the server");
    let link: String = mail[start + base.len()..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let (path, query) = link.split_once('?').expect("a query");
    let fields = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (path.to_owned(), fields)
}

/// `requestPasswordReset` mails a one-time link; posting a new password to it changes the
/// password, ends every session, and the link cannot be used twice. Unknown addresses answer
/// the same `{}` (no account discovery) and send nothing.
#[tokio::test]
async fn password_reset_by_mail() {
    let (port, mut mails) = fake_smtp().await;
    let server = TestServer::with(ServeOptions {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        ..ServeOptions::default()
    })
    .await;
    let signed_up = server
        .public(
            Method::POST,
            "/users",
            Some(
                json!({"username": "alice", "password": "old-pass", "email": "alice@example.com"}),
            ),
        )
        .await;
    assert_eq!(signed_up.status.as_u16(), 201, "{:?}", signed_up.body);
    let old_token = signed_up.body["sessionToken"].as_str().unwrap().to_owned();

    let unknown = server
        .public(
            Method::POST,
            "/requestPasswordReset",
            Some(json!({"email": "nobody@example.com"})),
        )
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.body.clone()),
        (200, json!({}))
    );
    let missing = server
        .public(Method::POST, "/requestPasswordReset", Some(json!({})))
        .await;
    assert_parse_error(&missing, 400, 204, Some("you must provide an email"));

    let requested = server
        .public(
            Method::POST,
            "/requestPasswordReset",
            Some(json!({"email": "ALICE@example.com"})),
        )
        .await;
    assert_eq!(
        (requested.status.as_u16(), requested.body.clone()),
        (200, json!({}))
    );
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        mail.contains("To: ALICE@example.com") || mail.contains("To: alice@example.com"),
        "{mail}"
    );
    assert!(mails.try_recv().is_err(), "the unknown address got no mail");
    let (path, fields) = link_in(&mail, &format!("{}/parse", server.base));
    assert_eq!(path, format!("/apps/{APP_ID}/request_password_reset"));
    let mut form: Vec<(String, String)> = fields.clone();
    form.push(("new_password".into(), "new-pass".into()));
    let url = format!("{}/parse{path}", server.base);
    let reset = server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.clone())
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);

    let stale = server
        .send(
            Method::GET,
            "/users/me",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", &old_token),
            ],
        )
        .await;
    assert_parse_error(&stale, 400, 209, None);
    let old = server
        .public(
            Method::POST,
            "/login",
            Some(json!({"username": "alice", "password": "old-pass"})),
        )
        .await;
    assert_parse_error(&old, 404, 101, Some("Invalid username/password."));
    let new = server
        .public(
            Method::POST,
            "/login",
            Some(json!({"username": "alice", "password": "new-pass"})),
        )
        .await;
    assert_eq!(new.status.as_u16(), 200, "{:?}", new.body);

    let again = server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.clone())
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "a reset link works once");
    let reply: Value = again.json().await.unwrap();
    assert_eq!(reply["code"], -1);
}

/// `verificationEmailRequest` mails a link that marks the email verified; unknown addresses
/// are `205`, verified ones `-1`.
#[tokio::test]
async fn email_verification_by_mail() {
    let (port, mut mails) = fake_smtp().await;
    let server = TestServer::with(ServeOptions {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        ..ServeOptions::default()
    })
    .await;
    let signed_up = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "bob", "password": "pw", "email": "bob@example.com"})),
        )
        .await;
    let user_id = signed_up.body["objectId"].as_str().unwrap().to_owned();
    let unknown = server
        .public(
            Method::POST,
            "/verificationEmailRequest",
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_parse_error(
        &unknown,
        400,
        205,
        Some("No user found with email x@example.com"),
    );
    let requested = server
        .public(
            Method::POST,
            "/verificationEmailRequest",
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(requested.status.as_u16(), 200, "{:?}", requested.body);
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    let (path, fields) = link_in(&mail, &format!("{}/parse", server.base));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let verified = server
        .client
        .get(format!("{}/parse{path}?{query}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let user = server
        .master(Method::GET, &format!("/users/{user_id}"), None)
        .await;
    assert_eq!(user.body["emailVerified"], true);
    let again = server
        .public(
            Method::POST,
            "/verificationEmailRequest",
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_parse_error(
        &again,
        400,
        -1,
        Some("Email bob@example.com is already verified."),
    );
}
