//! Password reset and email verification, end to end: the mail goes through a fake SMTP
//! server on loopback, and the link it carries finishes the flow, for API clients (JSON) and
//! in a browser (the pages).

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::{APP_ID, TestServer, assert_parse_error, encode};

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
    assert!(mail.contains("open this link within 2 hours"), "{mail}");
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

/// What a browser sends when it opens a link or posts a form.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A server that sends account mail to a fake SMTP server, and that server's inbox.
async fn server_with_mail() -> (TestServer, mpsc::UnboundedReceiver<String>) {
    let (port, mails) = fake_smtp().await;
    let server = TestServer::with(ServeOptions {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        ..ServeOptions::default()
    })
    .await;
    (server, mails)
}

async fn next_mail(mails: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), mails.recv())
        .await
        .expect("a mail in time")
        .expect("the mail server is running")
}

/// The link a mail carries, as a URL.
fn mailed_link(server: &TestServer, mail: &str) -> reqwest::Url {
    let (path, fields) = link_in(mail, &format!("{}/parse", server.base));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    reqwest::Url::parse(&format!("{}/parse{path}?{query}", server.base)).unwrap()
}

/// Signs `username` up with the password `old-pass` and `email`, and asks for a password
/// reset: the user, and the link the mail carries.
async fn reset_link_for(
    server: &TestServer,
    mails: &mut mpsc::UnboundedReceiver<String>,
    username: &str,
    email: &str,
) -> (crate::common::User, reqwest::Url) {
    let user = server
        .sign_up_with(json!({"username": username, "password": "old-pass", "email": email}))
        .await;
    let requested = server
        .public(
            Method::POST,
            "/requestPasswordReset",
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(requested.status.as_u16(), 200, "{:?}", requested.body);
    (user, mailed_link(server, &next_mail(mails).await))
}

/// A reset link's token, and where an API client posts the new password (the link without
/// its query).
fn token_and_action(link: &reqwest::Url) -> (String, reqwest::Url) {
    let token = link
        .query_pairs()
        .find(|(name, _)| name == "token")
        .expect("a token")
        .1
        .into_owned();
    let mut action = link.clone();
    action.set_query(None);
    (token, action)
}

/// A page as a browser got it (redirects are not followed, so they can be checked).
struct Page {
    url: reqwest::Url,
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    /// An attribute's value in the first tag that has it, unescaped as a browser would.
    fn attribute(&self, marker: &str, name: &str) -> String {
        let start = self.text.find(marker).unwrap_or_else(|| {
            panic!("{marker} not in the page: {}", self.text);
        });
        let tag_end = start + self.text[start..].find('>').unwrap();
        let tag = &self.text[start..tag_end];
        let needle = format!("{name}=\"");
        let value_start = tag.find(&needle).expect("attribute") + needle.len();
        let value = &tag[value_start..];
        let value = &value[..value.find('"').unwrap()];
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// Where the page's form posts to.
    fn form_action(&self) -> reqwest::Url {
        self.url.join(&self.attribute("<form", "action")).unwrap()
    }

    /// Where a redirect sends the browser.
    fn location(&self) -> reqwest::Url {
        let location = self.headers["location"].to_str().unwrap();
        self.url.join(location).unwrap()
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn browse(request: reqwest::RequestBuilder) -> Page {
    let response = request
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    Page {
        url: response.url().clone(),
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

async fn open_page(url: reqwest::Url) -> Page {
    browse(browser().get(url)).await
}

async fn post_form(url: reqwest::Url, fields: &[(&str, &str)]) -> Page {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    browse(
        browser()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// An HTML page of ours: UTF-8 HTML, no script anywhere, and headers that forbid scripts,
/// anything from another origin, sniffing, framing and leaking the URL.
fn assert_safe_html(page: &Page) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} on {}", page.url))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let policy = header("content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("style-src 'self'"), "{policy}");
    assert!(policy.contains("form-action 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(!policy.contains("script-src"), "{policy}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    if page.status != 303 {
        assert!(page.text.starts_with("<!DOCTYPE html>"), "{}", page.text);
        assert!(
            !page.text.to_lowercase().contains("<script"),
            "{}",
            page.text
        );
        assert!(!page.text.contains(" style="), "{}", page.text);
        assert!(!page.text.contains("http://"), "{}", page.text);
    }
}

/// A page of ours ([`assert_safe_html`]) with this status that says `text`.
fn assert_page(page: &Page, status: u16, text: &str) {
    assert_eq!(page.status, status, "{}: {}", page.url, page.text);
    assert_safe_html(page);
    assert!(page.text.contains(text), "{text} not in {}", page.text);
}

async fn log_in(server: &TestServer, username: &str, password: &str) -> crate::common::Reply {
    server
        .public(
            Method::POST,
            "/login",
            Some(json!({"username": username, "password": password})),
        )
        .await
}

/// The reset link opens, in a browser, a page with a form for the new password (labelled
/// fields, its stylesheet served by Parlor); a mismatched confirmation or an empty password
/// shows the form again with the reason and changes nothing; a good one redirects (`303`) to
/// the success page, the new password logs in (a locked account is unlocked), every old
/// session has ended, and the used link — like a bogus one — opens the invalid-link page.
#[tokio::test]
async fn reset_link_opens_a_page_to_choose_the_new_password() {
    let (server, mut mails) = server_with_mail().await;
    let (user, link) = reset_link_for(&server, &mut mails, "alice", "alice@example.com").await;
    let other_device = log_in(&server, "alice", "old-pass").await;
    let other_token = other_device.body["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        log_in(&server, "alice", "wrong").await;
    }
    let locked = log_in(&server, "alice", "old-pass").await;
    assert!(
        locked.body["error"].as_str().unwrap().contains("locked"),
        "{:?}",
        locked.body
    );

    let form = open_page(link.clone()).await;
    assert_page(&form, 200, "<strong>alice</strong>");
    for field in ["new_password", "confirm_new_password"] {
        assert!(
            form.text.contains(&format!("<label for=\"{field}\">")),
            "{field}"
        );
        assert_eq!(
            form.attribute(&format!("id=\"{field}\""), "type"),
            "password"
        );
    }
    let token = form.attribute("name=\"token\"", "value");
    assert_eq!(form.attribute("name=\"username\"", "value"), "alice");
    assert!(link.as_str().contains(&token));
    let stylesheet = form.url.join(&form.attribute("<link", "href")).unwrap();
    let css = browser().get(stylesheet).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
    assert!(
        css.text()
            .await
            .unwrap()
            .contains("prefers-color-scheme: dark")
    );

    let action = form.form_action();
    let fields = |password: &'static str, again: &'static str| {
        [
            ("username", "alice".to_owned()),
            ("token", token.clone()),
            ("new_password", password.to_owned()),
            ("confirm_new_password", again.to_owned()),
        ]
    };
    let as_pairs = |fields: &[(&'static str, String)]| {
        fields
            .iter()
            .map(|(name, value)| (*name, value.clone()))
            .collect::<Vec<_>>()
    };
    let post = |password: &'static str, again: &'static str| {
        let pairs = as_pairs(&fields(password, again));
        let action = action.clone();
        async move {
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            post_form(action, &borrowed).await
        }
    };

    let mismatch = post("new-pass", "new-pazz").await;
    assert_page(
        &mismatch,
        400,
        "role=\"alert\">The two passwords do not match.",
    );
    assert_eq!(mismatch.attribute("name=\"token\"", "value"), token);
    let empty = post("", "").await;
    assert_page(&empty, 400, "Enter a new password.");
    let still_old = server
        .as_user(&other_token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(
        still_old.status.as_u16(),
        200,
        "a refused form ended no session"
    );
    assert_eq!(
        open_page(link.clone()).await.status,
        200,
        "the link still works"
    );

    let done = post("new-pass", "new-pass").await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_safe_html(&done);
    let success = open_page(done.location()).await;
    assert_page(&success, 200, "Password changed");
    assert_eq!(
        success.url.path(),
        "/parse/apps/password_reset_success.html"
    );

    let new = log_in(&server, "alice", "new-pass").await;
    assert_eq!(
        new.status.as_u16(),
        200,
        "unlocked, new password: {:?}",
        new.body
    );
    assert_parse_error(&log_in(&server, "alice", "old-pass").await, 404, 101, None);
    for token in [user.token.as_str(), other_token.as_str()] {
        let stale = server.as_user(token, Method::GET, "/users/me", None).await;
        assert_parse_error(&stale, 400, 209, None);
    }

    for page in [
        open_page(link.clone()).await,
        post("other-pass", "other-pass").await,
    ] {
        assert_page(&page, 400, "This link does not work");
        assert!(!page.text.contains("<form"), "{}", page.text);
    }
    let mut bogus = link.clone();
    bogus.set_query(Some(
        "token=0123456789abcdef0123456789abcdef&username=alice",
    ));
    let invalid = open_page(bogus).await;
    assert_eq!(invalid.status, 400);
    assert!(
        invalid.text.contains("This link does not work"),
        "{}",
        invalid.text
    );
    assert_parse_error(
        &log_in(&server, "alice", "other-pass").await,
        404,
        101,
        None,
    );
}

/// API clients keep the JSON answers on the same links: a request that does not ask for HTML,
/// or an XHR, gets `{}` or a Parse error; a form post of an API client still sets the password.
#[tokio::test]
async fn reset_link_answers_json_to_api_clients() {
    let (server, mut mails) = server_with_mail().await;
    let (_, link) = reset_link_for(&server, &mut mails, "carol", "carol@example.com").await;
    let checked = server
        .client
        .get(link.clone())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    assert_eq!(checked.json::<Value>().await.unwrap(), json!({}));
    let (token, action) = token_and_action(&link);
    let xhr = server
        .client
        .post(action.clone())
        .header("accept", BROWSER_ACCEPT)
        .header("x-requested-with", "XMLHttpRequest")
        .json(&json!({"username": "carol", "token": token, "new_password": "a", "confirm_new_password": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), 400);
    assert_eq!(
        xhr.json::<Value>().await.unwrap(),
        json!({"code": 142, "error": "The two passwords do not match."})
    );
    let reset = server
        .client
        .post(action)
        .json(&json!({"username": "carol", "token": token, "new_password": "new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(reset.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        log_in(&server, "carol", "new-pass").await.status.as_u16(),
        200
    );
}

/// A reset link works once even when it is used several times at the same moment: exactly
/// one use sets its password.
#[tokio::test]
async fn reset_link_works_once_under_concurrent_use() {
    // Which of the six passwords won is found by logging in with each: five wrong ones in a
    // row must not lock the account (the default threshold is 5) before the right one.
    let (port, mut mails) = fake_smtp().await;
    let server = TestServer::with(ServeOptions {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        account_lockout_threshold: Some(100),
        ..ServeOptions::default()
    })
    .await;
    let (_, link) = reset_link_for(&server, &mut mails, "dave", "dave@example.com").await;
    let (token, action) = token_and_action(&link);
    let attempts = (0..6).map(|n| {
        let request = server.client.post(action.clone()).json(
            &json!({"username": "dave", "token": token, "new_password": format!("pass-{n}")}),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|status| *status == 200 || *status == 400),
        "{statuses:?}"
    );
    let mut logged_in = 0;
    for n in 0..6 {
        if log_in(&server, "dave", &format!("pass-{n}"))
            .await
            .status
            .as_u16()
            == 200
        {
            logged_in += 1;
        }
    }
    assert_eq!(logged_in, 1);
}

/// The verification link opens a success page in a browser and verifies the address; opened
/// again it still says so. A link that does not work shows a page with a button for a new link,
/// which mails one that works.
#[tokio::test]
async fn verify_link_opens_a_page() {
    let (server, mut mails) = server_with_mail().await;
    let bob = server
        .sign_up_with(json!({"username": "bob", "password": "pw", "email": "bob@example.com"}))
        .await;
    server
        .public(
            Method::POST,
            "/verificationEmailRequest",
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    let link = mailed_link(&server, &next_mail(&mut mails).await);
    for _ in 0..2 {
        let page = open_page(link.clone()).await;
        assert_page(&page, 200, "Email verified");
    }
    let user = server
        .master(Method::GET, &format!("/users/{}", bob.id), None)
        .await;
    assert_eq!(user.body["emailVerified"], true);

    let erin = server
        .sign_up_with(json!({"username": "erin", "password": "pw", "email": "erin@example.com"}))
        .await;
    let mut bogus = link.clone();
    bogus.set_query(Some("token=0123456789abcdef0123456789abcdef&username=erin"));
    let invalid = open_page(bogus).await;
    assert_page(&invalid, 400, "This link does not work");
    assert!(mails.try_recv().is_err(), "no mail yet");
    let sent = post_form(
        invalid.form_action(),
        &[("username", &invalid.attribute("name=\"username\"", "value"))],
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.text);
    let sent_page = open_page(sent.location()).await;
    assert_page(&sent_page, 200, "Check your mail");
    let mail = next_mail(&mut mails).await;
    assert!(mail.contains("To: erin@example.com"), "{mail}");
    let verified = open_page(mailed_link(&server, &mail)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let user = server
        .master(Method::GET, &format!("/users/{}", erin.id), None)
        .await;
    assert_eq!(user.body["emailVerified"], true);

    // The button answers the same for an account that does not exist or is verified already,
    // and sends nothing.
    for username in ["nobody", "bob"] {
        let sent = post_form(invalid.form_action(), &[("username", username)]).await;
        assert_eq!(sent.status, 303, "{}", sent.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        mails.try_recv().is_err(),
        "no mail for nobody or a verified address"
    );
}

/// Every value a page shows is escaped: a username made of markup appears as text, in the
/// form, its hidden fields and the resend button alike.
#[tokio::test]
async fn pages_escape_what_they_show() {
    let (server, mut mails) = server_with_mail().await;
    let username = "<script>alert(1)</script>\"'&{{token}}";
    let (_, link) = reset_link_for(&server, &mut mails, username, "x@example.com").await;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;{{token}}";
    let form = open_page(link.clone()).await;
    assert_page(&form, 200, &format!("<strong>{escaped}</strong>"));
    assert!(
        form.text
            .contains(&format!("name=\"username\" value=\"{escaped}\"")),
        "{}",
        form.text
    );
    assert_eq!(form.attribute("name=\"username\"", "value"), username);
    let mismatch = post_form(
        form.form_action(),
        &[
            ("username", username),
            ("token", &form.attribute("name=\"token\"", "value")),
            ("new_password", "a"),
            ("confirm_new_password", "b"),
        ],
    )
    .await;
    assert_page(&mismatch, 400, &format!("<strong>{escaped}</strong>"));

    let verify = link
        .join(&format!(
            "verify_email?token=bogus&username={}",
            encode(username)
        ))
        .unwrap();
    let invalid = open_page(verify).await;
    assert_page(&invalid, 400, &format!("value=\"{escaped}\""));
}
