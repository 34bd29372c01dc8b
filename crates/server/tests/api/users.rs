//! Users and sessions over real HTTP (§5, §7, §9): sign-up, log-in, log-out, `/users/me`,
//! `/sessions`, password changes, lockout, the log-in rate limit, anonymous `authData`,
//! bcrypt hashes imported from Parse Server, and the rule that no password or hash ever leaves
//! the server. Covers checklist items 41–50 as written, and more.

use std::time::{Duration, Instant};

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

const PASSWORD: &str = "Sup3r-Secret-Pw!";

/// A signed-up user, with the name and address it signed up with.
struct Account {
    id: String,
    token: String,
    username: String,
    email: String,
}

/// `POST /users` with the app id only; panics unless it answers `201`.
async fn sign_up(server: &TestServer, username: &str) -> Account {
    let email = format!("{username}@example.test");
    let User { id, token } = server
        .sign_up_with(json!({"username": username, "password": PASSWORD, "email": email}))
        .await;
    Account {
        id,
        token,
        username: username.to_owned(),
        email,
    }
}

/// `POST /login` with a JSON body.
async fn log_in(server: &TestServer, body: Value) -> Reply {
    server.public(Method::POST, "/login", Some(body)).await
}

/// `POST /login` with username and password; panics unless it answers `200`; returns the token.
async fn log_in_ok(server: &TestServer, username: &str, password: &str) -> String {
    let reply = log_in(server, json!({"username": username, "password": password})).await;
    assert_eq!(reply.status, StatusCode::OK, "log-in: {:?}", reply.body);
    reply.body["sessionToken"]
        .as_str()
        .expect("sessionToken")
        .to_owned()
}

/// A further session for a user through `POST /sessions`; returns its token.
async fn extra_session(server: &TestServer, token: &str) -> String {
    let reply = server
        .as_user(token, Method::POST, "/sessions", Some(json!({})))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "POST /sessions: {:?}",
        reply.body
    );
    reply.body["sessionToken"]
        .as_str()
        .expect("sessionToken")
        .to_owned()
}

fn is_session_token(text: &str) -> bool {
    regex::Regex::new(r"^r:[0-9a-f]{32}$")
        .expect("regex")
        .is_match(text)
}

/// No password and no hash in a response body, whatever its shape.
#[track_caller]
fn assert_no_secrets(reply: &Reply, what: &str) {
    for secret in [
        PASSWORD,
        "_hashed_password",
        "$argon2",
        "$2a$",
        "$2b$",
        "$2y$",
    ] {
        assert!(
            !reply.text.contains(secret),
            "{what}: the response holds {secret:?}: {}",
            reply.text
        );
    }
}

/// The 209 of an unknown (or ended) session token.
#[track_caller]
fn assert_invalid_token(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"code": 209, "error": "Invalid session token"})
    );
}

/// The single answer to every wrong credential.
#[track_caller]
fn assert_invalid_login(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"code": 101, "error": "Invalid username/password."})
    );
}

/// The sessions of a user, read with the master key.
async fn sessions_of(server: &TestServer, user_id: &str) -> Vec<Value> {
    server
        .find(
            "_Session",
            &[("where", json!({"user": pointer("_User", user_id)}))],
        )
        .await
}

fn parse_iso(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let iso = value["iso"].as_str().expect("a Date value");
    chrono::DateTime::parse_from_rfc3339(iso)
        .expect("an ISO date")
        .with_timezone(&chrono::Utc)
}

// ---------------------------------------------------------------------------------------
// Sign-up

/// Item 41: `201`, `Location: …/users/<id>`, `{objectId, createdAt, sessionToken}` plus the
/// template's defaults (`role: "participant"`); the token is `r:` and 32 lowercase hex digits.
#[tokio::test]
async fn sign_up_answers_201_with_location_and_a_session_token() {
    let server = TestServer::new().await;
    let reply = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": PASSWORD, "email": "alice@example.test", "displayName": "Alice"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_no_secrets(&reply, "sign-up");
    let id = reply.body["objectId"].as_str().unwrap().to_owned();
    assert!(is_object_id(&id), "objectId {id}");
    assert!(is_parse_date(reply.body["createdAt"].as_str().unwrap()));
    let token = reply.body["sessionToken"].as_str().unwrap();
    assert!(is_session_token(token), "token {token}");
    assert_eq!(reply.body["role"], "participant", "{:?}", reply.body);
    assert_eq!(
        keys(&reply.body),
        vec!["createdAt", "objectId", "role", "sessionToken"],
        "{:?}",
        reply.body
    );
    let location = reply
        .headers
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap();
    assert!(
        location.ends_with(&format!("/users/{id}")),
        "Location {location}"
    );

    // The token works at once, and `/classes/_User` signs up the same way.
    let me = server.as_user(token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["objectId"], id.as_str());
    let other = server
        .public(
            Method::POST,
            "/classes/_User",
            Some(json!({"username": "bob", "password": PASSWORD})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    assert!(is_session_token(
        other.body["sessionToken"].as_str().unwrap()
    ));
    assert_no_secrets(&other, "sign-up through /classes/_User");
    // The stored user keeps only a hash: master reads show neither password nor hash.
    let stored = server
        .master(Method::GET, &format!("/users/{id}"), None)
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    assert_eq!(stored.body["username"], "alice");
    assert_eq!(stored.body["displayName"], "Alice");
    assert_eq!(
        stored.body["ACL"],
        json!({id.clone(): {"read": true, "write": true}})
    );
    assert_no_secrets(&stored, "master get");
}

/// Item 42: username taken in any letter case → 202; the email too → 203; a missing password
/// → 201; a missing username → 200; a malformed email → 125.
#[tokio::test]
async fn sign_up_refuses_taken_names_and_missing_credentials() {
    let server = TestServer::new().await;
    sign_up(&server, "alice").await;
    let attempt = |body: Value| server.public(Method::POST, "/users", Some(body));

    let reply = attempt(json!({"username": "ALICE", "password": "x"})).await;
    assert_parse_error(
        &reply,
        400,
        202,
        Some("Account already exists for this username."),
    );
    let reply = attempt(json!({"username": "alice", "password": "x"})).await;
    assert_parse_error(&reply, 400, 202, None);
    let reply =
        attempt(json!({"username": "alice2", "password": "x", "email": "Alice@Example.TEST"}))
            .await;
    assert_parse_error(
        &reply,
        400,
        203,
        Some("Account already exists for this email address."),
    );
    let reply = attempt(json!({"username": "carol"})).await;
    assert_parse_error(&reply, 400, 201, None);
    let reply = attempt(json!({"username": "carol", "password": ""})).await;
    assert_parse_error(&reply, 400, 201, None);
    let reply = attempt(json!({"password": "x"})).await;
    assert_parse_error(&reply, 400, 200, None);
    let reply = attempt(json!({"username": "", "password": "x"})).await;
    assert_parse_error(&reply, 400, 200, None);
    for email in ["not-an-email", "@example.test", "carol@"] {
        let reply = attempt(json!({"username": "carol", "password": "x", "email": email})).await;
        assert_parse_error(&reply, 400, 125, Some("Email address format is invalid."));
    }
    // None of the refused attempts created a user.
    assert_eq!(server.count("_User").await, 1);

    // A rename onto a taken name is refused the same way.
    let bob = sign_up(&server, "bob").await;
    let reply = server
        .as_user(
            &bob.token,
            Method::PUT,
            &format!("/users/{}", bob.id),
            Some(json!({"username": "Alice"})),
        )
        .await;
    assert_parse_error(&reply, 400, 202, None);
    let reply = server
        .as_user(
            &bob.token,
            Method::PUT,
            &format!("/users/{}", bob.id),
            Some(json!({"email": "ALICE@example.test"})),
        )
        .await;
    assert_parse_error(&reply, 400, 203, None);
}

/// Item 49: a client may not set `emailVerified`, neither on sign-up nor on update → 119.
#[tokio::test]
async fn clients_cannot_set_email_verified() {
    let server = TestServer::new().await;
    let reply = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "eve", "password": "x", "email": "eve@example.test", "emailVerified": true})),
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        119,
        Some("Clients aren't allowed to manually update email verification."),
    );
    assert_eq!(server.count("_User").await, 0);
    let alice = sign_up(&server, "alice").await;
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &format!("/users/{}", alice.id),
            Some(json!({"emailVerified": true})),
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        119,
        Some("Clients aren't allowed to manually update email verification."),
    );
    assert!(server.get("_User", &alice.id).await["emailVerified"] != json!(true));
}

// ---------------------------------------------------------------------------------------
// Log-in

/// Item 43: `POST /login` (by username or by email) and `GET /login?username=&password=` all
/// return the full user plus a new session token.
#[tokio::test]
async fn log_in_by_username_or_email_with_post_or_get() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;

    let by_name = log_in(&server, json!({"username": "alice", "password": PASSWORD})).await;
    let by_email_as_username = log_in(
        &server,
        json!({"username": alice.email, "password": PASSWORD}),
    )
    .await;
    let by_email = log_in(&server, json!({"email": alice.email, "password": PASSWORD})).await;
    let by_get = server
        .public(
            Method::GET,
            &format!(
                "/login{}",
                query_string(&[("username", json!("alice")), ("password", json!(PASSWORD))])
            ),
            None,
        )
        .await;
    let mut tokens = vec![alice.token.clone()];
    for (what, reply) in [
        ("POST username", &by_name),
        ("POST username=email", &by_email_as_username),
        ("POST email", &by_email),
        ("GET", &by_get),
    ] {
        assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
        assert_no_secrets(reply, what);
        let body = &reply.body;
        assert_eq!(body["objectId"], alice.id.as_str(), "{what}");
        assert_eq!(body["username"], "alice", "{what}");
        assert_eq!(body["email"], alice.email.as_str(), "{what}");
        assert_eq!(body["role"], "participant", "{what}");
        assert!(is_parse_date(body["createdAt"].as_str().unwrap()), "{what}");
        assert!(is_parse_date(body["updatedAt"].as_str().unwrap()), "{what}");
        assert_eq!(
            body["ACL"],
            json!({alice.id.clone(): {"read": true, "write": true}}),
            "{what}"
        );
        assert!(body.get("password").is_none(), "{what}: {body:?}");
        let token = body["sessionToken"].as_str().expect("sessionToken");
        assert!(is_session_token(token), "{what}: {token}");
        assert!(
            !tokens.contains(&token.to_owned()),
            "{what}: a reused token"
        );
        tokens.push(token.to_owned());
    }
    let last = tokens.last().unwrap();
    let me = server.as_user(last, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
}

/// §5.3: each log-in creates a new `_Session`; only sessions with the *same* installationId
/// are deleted. A log-in without an installation id (what plain REST clients and a second
/// browser tab do) leaves the user's other sessions alive.
#[tokio::test]
async fn log_ins_without_an_installation_id_keep_the_other_sessions() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let second = log_in_ok(&server, "alice", PASSWORD).await;
    let third = log_in_ok(&server, "alice", PASSWORD).await;
    let login_session = server
        .as_user(&third, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(
        login_session.body["createdWith"],
        json!({"action": "login", "authProvider": "password"}),
        "{:?}",
        login_session.body
    );
    assert_eq!(sessions_of(&server, &alice.id).await.len(), 3);
    for token in [&alice.token, &second, &third] {
        let me = server.as_user(token, Method::GET, "/users/me", None).await;
        assert_eq!(me.status, StatusCode::OK, "token {token}: {:?}", me.body);
    }
}

/// Item 43: a wrong password and an unknown user get the very same `404` answer; missing
/// fields are 200/201.
#[tokio::test]
async fn wrong_credentials_give_one_identical_error() {
    let server = TestServer::new().await;
    sign_up(&server, "alice").await;
    let wrong_password = log_in(&server, json!({"username": "alice", "password": "nope"})).await;
    let unknown_user = log_in(&server, json!({"username": "nobody", "password": "nope"})).await;
    let wrong_case = log_in(
        &server,
        json!({"username": "alice", "password": PASSWORD.to_uppercase()}),
    )
    .await;
    let by_get = server
        .public(
            Method::GET,
            &format!(
                "/login{}",
                query_string(&[("username", json!("alice")), ("password", json!("nope"))])
            ),
            None,
        )
        .await;
    let not_a_string = log_in(&server, json!({"username": "alice", "password": 12345})).await;
    for reply in [
        &wrong_password,
        &unknown_user,
        &wrong_case,
        &by_get,
        &not_a_string,
    ] {
        assert_invalid_login(reply);
    }
    assert_eq!(wrong_password.text, unknown_user.text);

    let reply = log_in(&server, json!({"password": PASSWORD})).await;
    assert_parse_error(&reply, 400, 200, Some("username/email is required."));
    let reply = log_in(&server, json!({"username": "alice"})).await;
    assert_parse_error(&reply, 400, 201, Some("password is required."));
    // No failed attempt made a session.
    assert_eq!(server.count("_Session").await, 1);
}

/// Item 50: two log-ins with the same `X-Parse-Installation-Id` leave one session for that
/// (user, installation); sessions of other installations stay.
#[tokio::test]
async fn one_session_per_user_and_installation() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    let server = &server;
    let log_in_on = |username: &'static str, installation: &'static str| async move {
        server
            .send(
                Method::POST,
                "/login",
                Some(json!({"username": username, "password": PASSWORD})),
                &[
                    ("x-parse-application-id", APP_ID),
                    ("x-parse-installation-id", installation),
                ],
            )
            .await
    };
    let first = log_in_on("alice", "install-1").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let other_device = log_in_on("alice", "install-2").await;
    let bobs = log_in_on("bob", "install-1").await;
    let second = log_in_on("alice", "install-1").await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);

    let on_install_1 = server
        .find(
            "_Session",
            &[(
                "where",
                json!({"user": pointer("_User", &alice.id), "installationId": "install-1"}),
            )],
        )
        .await;
    assert_eq!(on_install_1.len(), 1, "{on_install_1:?}");
    assert_eq!(on_install_1[0]["sessionToken"], second.body["sessionToken"]);
    // The replaced session is gone; the others (sign-up, other device, other user) stay.
    let old = first.body["sessionToken"].as_str().unwrap();
    assert_invalid_token(&server.as_user(old, Method::GET, "/users/me", None).await);
    for token in [
        second.body["sessionToken"].as_str().unwrap(),
        other_device.body["sessionToken"].as_str().unwrap(),
        bobs.body["sessionToken"].as_str().unwrap(),
        &alice.token,
        &bob.token,
    ] {
        let me = server.as_user(token, Method::GET, "/users/me", None).await;
        assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    }
    assert_eq!(sessions_of(server, &alice.id).await.len(), 3);
    assert_eq!(sessions_of(server, &bob.id).await.len(), 2);
}

/// Lockout: with a threshold of 3, three wrong passwords lock the account, so the right
/// password is refused (101 with a lockout message); other users are not affected.
#[tokio::test]
async fn failed_log_ins_lock_the_account() {
    let server = TestServer::with(ServeOptions {
        account_lockout_threshold: Some(3),
        account_lockout_duration: Some(1),
        ..ServeOptions::default()
    })
    .await;
    sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    for _ in 0..3 {
        let reply = log_in(&server, json!({"username": "alice", "password": "guess"})).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
        assert_eq!(reply.body["code"], 101);
    }
    let reply = log_in(&server, json!({"username": "alice", "password": PASSWORD})).await;
    assert_parse_error(&reply, 404, 101, None);
    let message = reply.body["error"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains("locked"),
        "a lockout message: {message}"
    );
    assert!(reply.body.get("sessionToken").is_none());
    // By email too: the account is locked, not the name.
    let reply = log_in(
        &server,
        json!({"email": "alice@example.test", "password": PASSWORD}),
    )
    .await;
    assert_parse_error(&reply, 404, 101, None);
    assert!(reply.body["error"].as_str().unwrap().contains("locked"));
    // Bob is not affected, and his failures count on their own.
    log_in_ok(&server, &bob.username, PASSWORD).await;
    let reply = log_in(&server, json!({"username": "bob", "password": "guess"})).await;
    assert_invalid_login(&reply);
    log_in_ok(&server, &bob.username, PASSWORD).await;
}

/// Fewer failures than the threshold, then the right password: the count starts again.
#[tokio::test]
async fn a_good_log_in_resets_the_failure_count() {
    let server = TestServer::with(ServeOptions {
        account_lockout_threshold: Some(3),
        account_lockout_duration: Some(1),
        ..ServeOptions::default()
    })
    .await;
    sign_up(&server, "alice").await;
    for _ in 0..2 {
        assert_invalid_login(
            &log_in(&server, json!({"username": "alice", "password": "guess"})).await,
        );
    }
    log_in_ok(&server, "alice", PASSWORD).await;
    for _ in 0..2 {
        assert_invalid_login(
            &log_in(&server, json!({"username": "alice", "password": "guess"})).await,
        );
    }
    log_in_ok(&server, "alice", PASSWORD).await;
}

/// Rate limit: with 5 log-ins per address and minute, the 6th gets `429` with code 100,
/// even with the right password and through `GET /login`.
#[tokio::test]
async fn log_ins_are_rate_limited_per_address() {
    let server = TestServer::with(ServeOptions {
        login_rate_limit: Some(5),
        ..ServeOptions::default()
    })
    .await;
    sign_up(&server, "alice").await;
    let mut token = String::new();
    for _ in 0..5 {
        token = log_in_ok(&server, "alice", PASSWORD).await;
    }
    let reply = log_in(&server, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["code"], 100, "{:?}", reply.body);
    assert!(reply.body["error"].is_string());
    assert!(reply.body.get("sessionToken").is_none());
    let reply = server
        .public(
            Method::GET,
            &format!(
                "/login{}",
                query_string(&[("username", json!("alice")), ("password", json!(PASSWORD))])
            ),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["code"], 100);
    // Other requests are not limited.
    let me = server.as_user(&token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
}

/// A failed log-in costs about the same for an existing user (wrong password) and for a
/// user that does not exist: argon2 dominates both.
#[tokio::test]
async fn failed_log_ins_take_comparable_time_whether_the_user_exists_or_not() {
    let server = TestServer::with(ServeOptions {
        account_lockout_threshold: Some(100),
        ..ServeOptions::default()
    })
    .await;
    sign_up(&server, "alice").await;
    let server = &server;
    let attempt = |username: &'static str| async move {
        let started = Instant::now();
        let reply = log_in(server, json!({"username": username, "password": "wrong"})).await;
        let elapsed = started.elapsed();
        assert_invalid_login(&reply);
        elapsed
    };
    // Warm up both paths once.
    attempt("alice").await;
    attempt("nobody").await;
    let mut existing = Duration::ZERO;
    let mut missing = Duration::ZERO;
    for _ in 0..5 {
        existing += attempt("alice").await;
        missing += attempt("nobody").await;
    }
    let (existing, missing) = (existing.as_secs_f64() / 5.0, missing.as_secs_f64() / 5.0);
    let ratio = existing.max(missing) / existing.min(missing);
    assert!(
        ratio < 3.0,
        "mean wrong-password log-in {:.1} ms for an existing user, {:.1} ms for a missing one",
        existing * 1000.0,
        missing * 1000.0
    );
}

/// A `$2a$10$…` bcrypt hash imported from Parse Server: the password logs in, and the stored
/// hash becomes argon2id.
#[tokio::test]
async fn imported_bcrypt_hashes_log_in_and_are_rehashed_with_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.db");
    let options = || ServeOptions {
        database: Some(format!("sqlite://{}", path.display())),
        ..ServeOptions::default()
    };
    let first = TestServer::with(options()).await;
    let alice = sign_up(&first, "alice").await;
    first.stop().await;

    let imported = bcrypt::hash_with_salt("from-parse-server", 10, *b"0123456789abcdef")
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    assert!(imported.starts_with("$2a$10$"));
    let read_hash = || {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .query_row(
                "SELECT \"_hashed_password\" FROM \"_User\" WHERE \"objectId\" = ?1",
                [&alice.id],
                |row| row.get::<_, String>(0),
            )
            .unwrap()
    };
    assert!(read_hash().starts_with("$argon2id$"), "a new user's hash");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        let changed = connection
            .execute(
                "UPDATE \"_User\" SET \"_hashed_password\" = ?1 WHERE \"objectId\" = ?2",
                [&imported, &alice.id],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    let second = TestServer::with(options()).await;
    assert_invalid_login(
        &log_in(&second, json!({"username": "alice", "password": PASSWORD})).await,
    );
    let reply = log_in(
        &second,
        json!({"username": "alice", "password": "from-parse-server"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["objectId"], alice.id.as_str());
    assert_no_secrets(&reply, "bcrypt log-in");
    second.stop().await;

    let rehashed = read_hash();
    assert!(rehashed.starts_with("$argon2id$"), "stored: {rehashed}");

    // The rehashed password still works, the old bcrypt text is gone.
    let third = TestServer::with(options()).await;
    log_in_ok(&third, "alice", "from-parse-server").await;
    third.stop().await;
}

// ---------------------------------------------------------------------------------------
// Current user, log-out, sessions

/// Item 44: `GET /users/me` with the token → the user with `email` and `sessionToken`; with
/// no token, or an unknown one → 209.
#[tokio::test]
async fn users_me_needs_a_valid_token() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let me = server
        .as_user(&alice.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_no_secrets(&me, "/users/me");
    assert_eq!(me.body["objectId"], alice.id.as_str());
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["email"], alice.email.as_str());
    assert_eq!(me.body["sessionToken"], alice.token.as_str());
    assert_eq!(me.body["role"], "participant");
    assert!(me.body.get("password").is_none());

    let anonymous = server.public(Method::GET, "/users/me", None).await;
    assert_parse_error(&anonymous, 400, 209, Some("Invalid session token"));
    let unknown = server
        .as_user(
            "r:00000000000000000000000000000000",
            Method::GET,
            "/users/me",
            None,
        )
        .await;
    assert_invalid_token(&unknown);
    // The master key is not a user.
    let master = server.master(Method::GET, "/users/me", None).await;
    assert_parse_error(&master, 400, 209, None);
}

/// Item 45: `POST /logout` → `{}`; the token then fails with 209 everywhere, even on a public
/// class; other sessions of the same user live on.
#[tokio::test]
async fn log_out_ends_the_session_everywhere() {
    let server = TestServer::new().await;
    server
        .create(
            "Item",
            json!({"title": "public", "ACL": {"*": {"read": true}}}),
        )
        .await;
    let alice = sign_up(&server, "alice").await;
    let second = extra_session(&server, &alice.token).await;

    let reply = server
        .as_user(&alice.token, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({}));

    for (method, path) in [
        (Method::GET, "/users/me"),
        (Method::GET, "/classes/Item"),
        (Method::GET, "/users"),
        (Method::POST, "/logout"),
    ] {
        let reply = server
            .as_user(&alice.token, method.clone(), path, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {:?}",
            reply.body
        );
        assert_eq!(
            reply.body,
            json!({"code": 209, "error": "Invalid session token"}),
            "{method} {path}"
        );
    }
    // `/sessions/me` looks the token up itself (§5.7).
    let reply = server
        .as_user(&alice.token, Method::GET, "/sessions/me", None)
        .await;
    assert_parse_error(&reply, 400, 209, None);
    let create = server
        .as_user(
            &alice.token,
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_invalid_token(&create);
    // The body form of the token is refused the same way.
    let body = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_SessionToken": alice.token}),
        )
        .await;
    assert_invalid_token(&body);

    let me = server
        .as_user(&second, Method::GET, "/users/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(sessions_of(&server, &alice.id).await.len(), 1);
    // Without a token, log-out is a no-op.
    let reply = server
        .public(Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({}));
}

/// Item 7 through the users API: a session planted with a past `expiresAt` → 209
/// "Session token is expired." on every route.
#[tokio::test]
async fn expired_sessions_fail_with_209() {
    let server = TestServer::new().await;
    server
        .create(
            "Item",
            json!({"title": "public", "ACL": {"*": {"read": true}}}),
        )
        .await;
    let alice = sign_up(&server, "alice").await;
    let token = "r:0123456789abcdef0123456789abcdef";
    let past = chrono::Utc::now() - chrono::Duration::minutes(5);
    let planted = server
        .master(
            Method::POST,
            "/classes/_Session",
            Some(json!({
                "user": pointer("_User", &alice.id),
                "sessionToken": token,
                "createdWith": {"action": "login", "authProvider": "password"},
                "expiresAt": {"__type": "Date", "iso": past.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()},
            })),
        )
        .await;
    assert_eq!(planted.status, StatusCode::CREATED, "{:?}", planted.body);
    for path in ["/users/me", "/classes/Item", "/sessions"] {
        let reply = server.as_user(token, Method::GET, path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(
            reply.body,
            json!({"code": 209, "error": "Session token is expired."}),
            "{path}"
        );
    }
    // The user's live session is not affected.
    let me = server
        .as_user(&alice.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
}

/// Sessions are cached per token (every request resolves one): a session already used is still
/// refused at once when it is logged out, deleted or made to expire, never served stale.
#[tokio::test]
async fn a_used_session_is_refused_at_once_when_it_ends() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let me = |token: String| {
        let server = &server;
        async move { server.as_user(&token, Method::GET, "/users/me", None).await }
    };
    // Expired by an update of its `expiresAt`.
    let expiring = extra_session(&server, &alice.token).await;
    assert_eq!(me(expiring.clone()).await.status, StatusCode::OK);
    let session = server
        .as_user(&expiring, Method::GET, "/sessions/me", None)
        .await;
    let session_id = session.body["objectId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let expired = server
        .master(
            Method::PUT,
            &format!("/classes/_Session/{session_id}"),
            Some(json!({"expiresAt": {"__type": "Date", "iso": past.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}})),
        )
        .await;
    assert_eq!(expired.status, StatusCode::OK, "{:?}", expired.body);
    assert_eq!(
        me(expiring).await.body,
        json!({"code": 209, "error": "Session token is expired."})
    );
    // Deleted with the master key.
    let deleted = extra_session(&server, &alice.token).await;
    assert_eq!(me(deleted.clone()).await.status, StatusCode::OK);
    let session = server
        .as_user(&deleted, Method::GET, "/sessions/me", None)
        .await;
    let session_id = session.body["objectId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gone = server
        .master(
            Method::DELETE,
            &format!("/classes/_Session/{session_id}"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert_invalid_token(&me(deleted).await);
    // Logged out.
    assert_eq!(me(alice.token.clone()).await.status, StatusCode::OK);
    server
        .as_user(&alice.token, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_invalid_token(&me(alice.token.clone()).await);
}

/// A short `session_length` gives sessions that expire by themselves.
#[tokio::test]
async fn session_length_sets_the_expiry() {
    let server = TestServer::with(ServeOptions {
        session_length: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let alice = sign_up(&server, "alice").await;
    let session = server
        .as_user(&alice.token, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(session.status, StatusCode::OK, "{:?}", session.body);
    let expires = parse_iso(&session.body["expiresAt"]);
    let now = chrono::Utc::now();
    assert!(
        (expires - now).num_milliseconds() <= 2_000 && expires > now,
        "expiresAt {expires} vs now {now}"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reply = server
        .as_user(&alice.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(
        reply.body,
        json!({"code": 209, "error": "Session token is expired."})
    );
    // A fresh log-in works again.
    let token = log_in_ok(&server, "alice", PASSWORD).await;
    let me = server.as_user(&token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
}

/// Item 48: `GET /sessions/me` → the session with `user`, `createdWith`, `expiresAt` ≈ now +
/// 1 year; `GET /sessions` lists only the caller's sessions; another user's session is
/// invisible (101) to get and delete.
#[tokio::test]
async fn sessions_are_visible_to_their_user_only() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    let alice_login = extra_session(&server, &alice.token).await;

    let me = server
        .as_user(&alice.token, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_no_secrets(&me, "/sessions/me");
    assert_eq!(me.body["user"], pointer("_User", &alice.id));
    assert_eq!(me.body["sessionToken"], alice.token.as_str());
    assert_eq!(
        me.body["createdWith"],
        json!({"action": "signup", "authProvider": "password"})
    );
    assert!(is_object_id(me.body["objectId"].as_str().unwrap()));
    let expires = parse_iso(&me.body["expiresAt"]);
    let year = chrono::Utc::now() + chrono::Duration::seconds(31_536_000);
    assert!(
        (expires - year).num_seconds().abs() < 120,
        "expiresAt {expires}, expected about {year}"
    );
    let created = server
        .as_user(&alice_login, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(
        created.body["createdWith"]["action"], "create",
        "{:?}",
        created.body
    );
    let anonymous = server.public(Method::GET, "/sessions/me", None).await;
    assert_parse_error(&anonymous, 400, 209, None);

    let listed = server
        .as_user(&alice.token, Method::GET, "/sessions", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_no_secrets(&listed, "GET /sessions");
    let results = listed.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    for session in results {
        assert_eq!(session["user"], pointer("_User", &alice.id));
    }
    let counted = server
        .as_user(&alice.token, Method::GET, "/sessions?count=1&limit=0", None)
        .await;
    assert_eq!(counted.body["count"], 2, "{:?}", counted.body);
    let via_classes = server
        .as_user(&alice.token, Method::GET, "/classes/_Session", None)
        .await;
    assert_eq!(via_classes.body["results"].as_array().unwrap().len(), 2);
    let anonymous = server.public(Method::GET, "/sessions", None).await;
    assert_parse_error(&anonymous, 400, 209, None);

    let bobs = server
        .as_user(&bob.token, Method::GET, "/sessions/me", None)
        .await;
    let bob_session = bobs.body["objectId"].as_str().unwrap().to_owned();
    let reply = server
        .as_user(
            &alice.token,
            Method::GET,
            &format!("/sessions/{bob_session}"),
            None,
        )
        .await;
    assert_parse_error(&reply, 404, 101, None);
    let reply = server
        .as_user(
            &alice.token,
            Method::DELETE,
            &format!("/sessions/{bob_session}"),
            None,
        )
        .await;
    assert_parse_error(&reply, 404, 101, None);
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &format!("/sessions/{bob_session}"),
            Some(json!({"installationId": "stolen"})),
        )
        .await;
    // PS checks the restricted fields first (§5.7): 105, whoever owns the session.
    assert_parse_error(&reply, 400, 105, None);
    let field = server
        .master(
            Method::PUT,
            "/schemas/_Session",
            Some(json!({"fields": {"deviceName": {"type": "String"}}})),
        )
        .await;
    assert_eq!(field.status, StatusCode::OK, "{:?}", field.body);
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &format!("/sessions/{bob_session}"),
            Some(json!({"deviceName": "stolen"})),
        )
        .await;
    assert_parse_error(&reply, 404, 101, None);
    let unchanged = server.get("_Session", &bob_session).await;
    assert_eq!(unchanged["expiresAt"], bobs.body["expiresAt"]);
    assert!(unchanged.get("installationId").is_none(), "{unchanged:?}");
    assert!(unchanged.get("deviceName").is_none(), "{unchanged:?}");
    let still = server
        .as_user(&bob.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(still.status, StatusCode::OK, "{:?}", still.body);

    // A user may end its own session by id.
    let own = server
        .as_user(&alice_login, Method::GET, "/sessions/me", None)
        .await;
    let own_id = own.body["objectId"].as_str().unwrap();
    let reply = server
        .as_user(
            &alice.token,
            Method::GET,
            &format!("/sessions/{own_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = server
        .as_user(
            &alice.token,
            Method::DELETE,
            &format!("/sessions/{own_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_invalid_token(
        &server
            .as_user(&alice_login, Method::GET, "/users/me", None)
            .await,
    );
    // The master key sees every session.
    assert_eq!(server.count("_Session").await, 2);
}

/// `POST /sessions` by a user → `201`, `createdWith.action: "create"`, a working token; a
/// client `ACL` → 105.
#[tokio::test]
async fn users_create_further_sessions() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let reply = server
        .as_user(&alice.token, Method::POST, "/sessions", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_no_secrets(&reply, "POST /sessions");
    assert_eq!(
        reply.body["createdWith"]["action"], "create",
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["user"], pointer("_User", &alice.id));
    assert!(
        reply.body["expiresAt"]["iso"].is_string(),
        "{:?}",
        reply.body
    );
    assert!(is_object_id(reply.body["objectId"].as_str().unwrap()));
    let token = reply.body["sessionToken"].as_str().unwrap();
    assert!(is_session_token(token));
    assert_ne!(token, alice.token);
    let me = server.as_user(token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["objectId"], alice.id.as_str());

    let reply = server
        .as_user(
            &alice.token,
            Method::POST,
            "/sessions",
            Some(json!({"ACL": {"*": {"read": true}}})),
        )
        .await;
    assert_parse_error(&reply, 400, 105, Some("Cannot set ACL on a Session."));
    assert_eq!(sessions_of(&server, &alice.id).await.len(), 2);
    // Without a user there is nothing to make a session for.
    let anonymous = server
        .public(Method::POST, "/sessions", Some(json!({})))
        .await;
    assert_ne!(
        anonymous.status,
        StatusCode::CREATED,
        "{:?}",
        anonymous.body
    );
    assert_eq!(sessions_of(&server, &alice.id).await.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Updates, password changes, deletion

/// Item 46: A's token on `PUT /users/<B>` → 206 "Insufficient auth."; no token → 206
/// "Cannot modify user <id>."; `DELETE /users/<B>` with A's token → 206; A updates itself.
#[tokio::test]
async fn users_modify_only_themselves() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    let bob_path = format!("/users/{}", bob.id);
    let alice_path = format!("/users/{}", alice.id);

    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &bob_path,
            Some(json!({"displayName": "hacked"})),
        )
        .await;
    assert_parse_error(&reply, 400, 206, Some("Insufficient auth."));
    let reply = server
        .public(
            Method::PUT,
            &alice_path,
            Some(json!({"displayName": "hacked"})),
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        206,
        Some(&format!("Cannot modify user {}.", alice.id)),
    );
    let reply = server
        .as_user(&alice.token, Method::DELETE, &bob_path, None)
        .await;
    assert_parse_error(&reply, 400, 206, None);
    let reply = server.public(Method::DELETE, &bob_path, None).await;
    assert_parse_error(&reply, 400, 206, None);
    // The same through `/classes/_User/<id>`.
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &format!("/classes/_User/{}", bob.id),
            Some(json!({"displayName": "hacked"})),
        )
        .await;
    assert_parse_error(&reply, 400, 206, None);
    // Nor can A take B's password.
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &bob_path,
            Some(json!({"password": "taken-over"})),
        )
        .await;
    assert_parse_error(&reply, 400, 206, None);
    log_in_ok(&server, "bob", PASSWORD).await;
    let stored = server.get("_User", &bob.id).await;
    assert!(stored.get("displayName").is_none(), "{stored:?}");

    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &alice_path,
            Some(json!({"displayName": "Alice"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(is_parse_date(reply.body["updatedAt"].as_str().unwrap()));
    assert!(reply.body.get("sessionToken").is_none());
    assert_eq!(server.get("_User", &alice.id).await["displayName"], "Alice");
    // The master key modifies anyone.
    let reply = server
        .master(Method::PUT, &bob_path, Some(json!({"displayName": "Bob"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

/// Item 47: A changes its own password: the answer holds a new token, all of A's older
/// sessions fail with 209, and only the new password logs in.
#[tokio::test]
async fn a_password_change_ends_the_old_sessions() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    let second = extra_session(&server, &alice.token).await;
    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &format!("/users/{}", alice.id),
            Some(json!({"password": "n3w-Passw0rd"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(!reply.text.contains("n3w-Passw0rd"), "{}", reply.text);
    assert_no_secrets(&reply, "password change");
    let token = reply.body["sessionToken"]
        .as_str()
        .expect("a new sessionToken")
        .to_owned();
    assert!(is_session_token(&token));
    assert_ne!(token, alice.token);
    assert_ne!(token, second);
    for old in [&alice.token, &second] {
        assert_invalid_token(&server.as_user(old, Method::GET, "/users/me", None).await);
    }
    let me = server.as_user(&token, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(sessions_of(&server, &alice.id).await.len(), 1);
    // Bob's session is not touched.
    let other = server
        .as_user(&bob.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);

    log_in_ok(&server, "alice", "n3w-Passw0rd").await;
    assert_invalid_login(
        &log_in(&server, json!({"username": "alice", "password": PASSWORD})).await,
    );
}

/// A password change with the master key ends the user's sessions and gives no token.
#[tokio::test]
async fn a_master_password_change_ends_sessions_without_a_token() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let second = extra_session(&server, &alice.token).await;
    let reply = server
        .master(
            Method::PUT,
            &format!("/users/{}", alice.id),
            Some(json!({"password": "reset-by-admin"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.body.get("sessionToken").is_none(), "{:?}", reply.body);
    assert!(!reply.text.contains("reset-by-admin"));
    assert_no_secrets(&reply, "master password change");
    for old in [&alice.token, &second] {
        assert_invalid_token(&server.as_user(old, Method::GET, "/users/me", None).await);
    }
    assert!(sessions_of(&server, &alice.id).await.is_empty());
    log_in_ok(&server, "alice", "reset-by-admin").await;
    assert_invalid_login(
        &log_in(&server, json!({"username": "alice", "password": PASSWORD})).await,
    );
}

/// A user deletes itself: `{}`, its sessions die, it can no longer log in.
#[tokio::test]
async fn a_user_deletes_itself() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let second = extra_session(&server, &alice.token).await;
    let bob = sign_up(&server, "bob").await;
    let reply = server
        .as_user(
            &alice.token,
            Method::DELETE,
            &format!("/users/{}", alice.id),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({}));
    for old in [&alice.token, &second] {
        assert_invalid_token(&server.as_user(old, Method::GET, "/users/me", None).await);
    }
    assert!(sessions_of(&server, &alice.id).await.is_empty());
    let gone = server
        .master(Method::GET, &format!("/users/{}", alice.id), None)
        .await;
    assert_parse_error(&gone, 404, 101, None);
    assert_invalid_login(
        &log_in(&server, json!({"username": "alice", "password": PASSWORD})).await,
    );
    // The name is free again; Bob is untouched.
    sign_up(&server, "alice").await;
    let me = server
        .as_user(&bob.token, Method::GET, "/users/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
}

// ---------------------------------------------------------------------------------------
// Reading users: private by default, email protected

/// Item 41 and §5.2: users are private (owner-only ACL): the public cannot read A, and B
/// reads only A's public profile through the user directory (no email, no other field);
/// master sees A with `email`. Once A makes itself publicly readable, B sees A without
/// `email` (protectedFields default), and A still sees its own email.
#[tokio::test]
async fn users_are_private_and_email_is_protected() {
    let server = TestServer::new().await;
    let alice = sign_up(&server, "alice").await;
    let bob = sign_up(&server, "bob").await;
    let alice_path = format!("/users/{}", alice.id);

    let reply = server
        .as_user(&bob.token, Method::GET, &alice_path, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"objectId": alice.id.clone(), "username": "alice"})
    );
    let reply = server.public(Method::GET, &alice_path, None).await;
    assert_parse_error(&reply, 404, 101, None);
    let listed = server
        .as_user(
            &bob.token,
            Method::GET,
            &format!("/users{}", query_string(&[("order", json!("username"))])),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(
        listed.body["results"],
        json!([{"objectId": alice.id.clone(), "username": "alice"}, listed.body["results"][1].clone()])
    );
    assert_eq!(listed.body["results"][1]["objectId"], bob.id.as_str());
    assert_eq!(
        listed.body["results"][1]["email"],
        bob.email.as_str(),
        "a user reads its own email"
    );
    let master = server.master(Method::GET, &alice_path, None).await;
    assert_eq!(master.status, StatusCode::OK, "{:?}", master.body);
    assert_eq!(master.body["email"], alice.email.as_str());
    assert_no_secrets(&master, "master get");

    let reply = server
        .as_user(
            &alice.token,
            Method::PUT,
            &alice_path,
            Some(json!({"ACL": {"*": {"read": true}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // The owner keeps its own read and write.
    assert_eq!(
        server.get("_User", &alice.id).await["ACL"],
        json!({"*": {"read": true}, alice.id.clone(): {"read": true, "write": true}})
    );

    let seen = server
        .as_user(&bob.token, Method::GET, &alice_path, None)
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.body);
    assert_eq!(seen.body["username"], "alice");
    assert!(
        seen.body.get("email").is_none(),
        "email leaked: {:?}",
        seen.body
    );
    assert!(!seen.text.contains(&alice.email), "{}", seen.text);
    assert!(seen.body.get("sessionToken").is_none());
    assert_no_secrets(&seen, "B reads A");
    let public = server.public(Method::GET, &alice_path, None).await;
    assert_eq!(public.status, StatusCode::OK, "{:?}", public.body);
    assert!(public.body.get("email").is_none(), "{:?}", public.body);
    let found = server
        .as_user(&bob.token, Method::GET, "/users", None)
        .await;
    assert_eq!(found.body["results"].as_array().unwrap().len(), 2);
    assert!(!found.text.contains(&alice.email), "{}", found.text);
    let own = server
        .as_user(&alice.token, Method::GET, &alice_path, None)
        .await;
    assert_eq!(own.body["email"], alice.email.as_str());
    // No oracle: a query on the protected field is refused for B.
    let probe = server
        .as_user(
            &bob.token,
            Method::GET,
            &format!(
                "/users{}",
                query_string(&[("where", json!({"email": alice.email}))])
            ),
            None,
        )
        .await;
    assert_parse_error(&probe, 400, 119, None);
    // B still cannot write A.
    let reply = server
        .as_user(
            &bob.token,
            Method::PUT,
            &alice_path,
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_parse_error(&reply, 400, 206, Some("Insufficient auth."));
}

/// Neither the password nor any hash appears in any response: sign-up, log-in, `/users/me`,
/// find/get with `keys=password,_hashed_password`, an `include`d `_User` pointer, batch
/// results and the schemas API.
#[tokio::test]
async fn passwords_and_hashes_never_leave_the_server() {
    let server = TestServer::new().await;
    let signed_up = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": PASSWORD, "email": "alice@example.test"})),
        )
        .await;
    assert_eq!(
        signed_up.status,
        StatusCode::CREATED,
        "{:?}",
        signed_up.body
    );
    assert_no_secrets(&signed_up, "sign-up");
    let alice_id = signed_up.body["objectId"].as_str().unwrap().to_owned();
    let token = signed_up.body["sessionToken"].as_str().unwrap().to_owned();
    let note = server
        .create(
            "Note",
            json!({"owner": pointer("_User", &alice_id), "ACL": {"*": {"read": true}}}),
        )
        .await;
    let secret_keys = query_string(&[("keys", json!("password,_hashed_password,username"))]);
    let post_login = log_in(&server, json!({"username": "alice", "password": PASSWORD})).await;
    let get_login = server
        .public(
            Method::GET,
            &format!(
                "/login{}",
                query_string(&[("username", json!("alice")), ("password", json!(PASSWORD))]),
            ),
            None,
        )
        .await;
    // The newest session, whatever a log-in does to the older ones.
    let token = get_login.body["sessionToken"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or(token);
    let mut replies = vec![
        ("sign-up", signed_up),
        ("POST /login", post_login),
        ("GET /login", get_login),
        (
            "verifyPassword",
            server
                .public(
                    Method::POST,
                    "/verifyPassword",
                    Some(json!({"username": "alice", "password": PASSWORD})),
                )
                .await,
        ),
        (
            "/users/me",
            server.as_user(&token, Method::GET, "/users/me", None).await,
        ),
        (
            "get as master with keys",
            server
                .master(Method::GET, &format!("/users/{alice_id}{secret_keys}"), None)
                .await,
        ),
        (
            "get as self with keys",
            server.as_user(&token,
                Method::GET,
                &format!("/users/{alice_id}{secret_keys}"),
                None,
            )
            .await,
        ),
        (
            "find as master with keys",
            server
                .master(Method::GET, &format!("/users{secret_keys}"), None)
                .await,
        ),
        (
            "find through /classes/_User",
            server
                .master(Method::GET, &format!("/classes/_User{secret_keys}"), None)
                .await,
        ),
        (
            "find as self with keys",
            server.as_user(&token,
                Method::GET,
                &format!("/users{secret_keys}"),
                None,
            )
            .await,
        ),
        (
            "include as master",
            server
                .master(Method::GET, "/classes/Note?include=owner", None)
                .await,
        ),
        (
            "get with include as self",
            server.as_user(&token,
                Method::GET,
                &format!("/classes/Note/{note}?include=owner"),
                None,
            )
            .await,
        ),
        (
            "include with keys",
            server
                .master(
                    Method::GET,
                    &format!(
                        "/classes/Note{}",
                        query_string(&[
                            ("include", json!("owner")),
                            ("keys", json!("owner.password,owner._hashed_password,owner"))
                        ])
                    ),
                    None,
                )
                .await,
        ),
        (
            "batch",
            server
                .master(
                    Method::POST,
                    "/batch",
                    Some(json!({"requests": [
                        {"method": "GET", "path": format!("/parse/users/{alice_id}")},
                        {"method": "GET", "path": "/parse/users", "body": {"keys": "password,_hashed_password"}},
                        {"method": "POST", "path": "/parse/users", "body": {"username": "bob", "password": PASSWORD}},
                        {"method": "PUT", "path": format!("/parse/users/{alice_id}"), "body": {"displayName": "A"}},
                        {"method": "GET", "path": "/parse/classes/Note", "body": {"include": "owner"}},
                    ]})),
                )
                .await,
        ),
        (
            "schemas",
            server.master(Method::GET, "/schemas", None).await,
        ),
        (
            "schema of _User",
            server.master(Method::GET, "/schemas/_User", None).await,
        ),
    ];
    // A password change answers without the new password or its hash.
    replies.push((
        "password change",
        server
            .as_user(
                &token,
                Method::PUT,
                &format!("/users/{alice_id}"),
                Some(json!({"password": PASSWORD})),
            )
            .await,
    ));
    for (what, reply) in &replies {
        assert!(
            reply.status.is_success(),
            "{what}: {} {:?}",
            reply.status,
            reply.body
        );
        assert_no_secrets(reply, what);
    }
    // The batch worked item by item (the sign-up inside it too).
    let batch = &replies.iter().find(|(what, _)| *what == "batch").unwrap().1;
    for item in batch.body.as_array().unwrap() {
        assert!(item.get("success").is_some(), "{item:?}");
    }
    // `where` on the hidden fields is refused, not answered.
    for field in ["_hashed_password"] {
        let probe = server
            .as_user(
                &token,
                Method::GET,
                &format!(
                    "/users{}",
                    query_string(&[("where", json!({field: {"$exists": true}}))])
                ),
                None,
            )
            .await;
        assert!(
            probe.status == StatusCode::BAD_REQUEST,
            "where on {field}: {} {:?}",
            probe.status,
            probe.body
        );
        assert_no_secrets(&probe, "where probe");
    }
}

// ---------------------------------------------------------------------------------------
// authData

/// Anonymous `authData`: a new id signs up (`201`, a random 25-character username), the
/// same id again logs in (`200`, same objectId, new token); an unknown provider → 252.
#[tokio::test]
async fn anonymous_auth_data_signs_up_then_logs_in() {
    let server = TestServer::new().await;
    let auth_data =
        json!({"authData": {"anonymous": {"id": "0b6f7a8e-8a53-4f8e-9a59-0d5c4f3d2e1a"}}});
    let first = server
        .public(Method::POST, "/users", Some(auth_data.clone()))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let id = first.body["objectId"].as_str().unwrap().to_owned();
    assert!(is_object_id(&id));
    let username = first.body["username"]
        .as_str()
        .expect("a generated username");
    assert_eq!(username.chars().count(), 25, "{username}");
    let token = first.body["sessionToken"].as_str().unwrap().to_owned();
    assert!(is_session_token(&token));
    assert!(first.headers.get("location").is_some());

    let again = server.public(Method::POST, "/users", Some(auth_data)).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["objectId"], id.as_str());
    assert_eq!(again.body["username"], username);
    let second = again.body["sessionToken"].as_str().unwrap();
    assert!(is_session_token(second));
    assert_ne!(second, token);
    assert_no_secrets(&again, "authData log-in");
    assert_eq!(server.count("_User").await, 1);

    let me = server.as_user(second, Method::GET, "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["objectId"], id.as_str());
    assert_eq!(
        me.body["authData"]["anonymous"]["id"],
        "0b6f7a8e-8a53-4f8e-9a59-0d5c4f3d2e1a"
    );
    let session = server
        .as_user(second, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(
        session.body["createdWith"]["authProvider"], "anonymous",
        "{:?}",
        session.body
    );
    // Another anonymous id is another user.
    let other = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"authData": {"anonymous": {"id": "another-device"}}})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    assert_ne!(other.body["objectId"], id.as_str());
    // The other user sees this one's public profile only, never its authData.
    let reply = server
        .as_user(
            other.body["sessionToken"].as_str().unwrap(),
            Method::GET,
            &format!("/users/{id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.body.get("authData").is_none(), "{:?}", reply.body);

    let unknown = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"authData": {"myspace": {"id": "x", "access_token": "y"}}})),
        )
        .await;
    assert_parse_error(&unknown, 400, 252, None);
    assert_eq!(server.count("_User").await, 2);
}

/// Item 50 for `authData` log-ins: logging in twice with the same anonymous id from the same
/// installation leaves one session for that (user, installation) (§5.3: sessions with the same
/// installationId for the same user are deleted when the new session is created).
#[tokio::test]
async fn auth_data_log_ins_keep_one_session_per_installation() {
    let server = TestServer::new().await;
    let body = json!({"authData": {"anonymous": {"id": "device-1"}}});
    let headers = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-installation-id", "install-a"),
    ];
    let first = server
        .send(Method::POST, "/users", Some(body.clone()), &headers)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let id = first.body["objectId"].as_str().unwrap().to_owned();
    let second = server
        .send(Method::POST, "/users", Some(body), &headers)
        .await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let sessions = server
        .find(
            "_Session",
            &[(
                "where",
                json!({"user": pointer("_User", &id), "installationId": "install-a"}),
            )],
        )
        .await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["sessionToken"], second.body["sessionToken"]);
    let old = first.body["sessionToken"].as_str().unwrap();
    assert_invalid_token(&server.as_user(old, Method::GET, "/users/me", None).await);
}

/// Sorting by a field protectedFields hide (another user's `email`) is refused like a query
/// on it: the order would reveal the hidden values.
#[tokio::test]
async fn sorting_by_a_hidden_field_is_refused() {
    let server = TestServer::new().await;
    let signed_up = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "zed", "password": "pw", "email": "zed@example.com"})),
        )
        .await;
    let token = signed_up.body["sessionToken"].as_str().unwrap().to_owned();
    let headers = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-session-token", token.as_str()),
    ];
    for order in ["email", "-email", "username,email"] {
        let reply = server
            .send(
                Method::GET,
                &format!("/classes/_User?order={order}"),
                None,
                &headers,
            )
            .await;
        assert_parse_error(
            &reply,
            400,
            119,
            Some("This user is not allowed to query email on class _User"),
        );
    }
    let master = server
        .master(Method::GET, "/classes/_User?order=email", None)
        .await;
    assert_eq!(master.status.as_u16(), 200);
}
