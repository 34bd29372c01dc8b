//! Cloud Code (§10): a Parse Server `cloud/main.js` (`tests/fixtures/cloud/main.js`) run by
//! the embedded engine, exercised over REST as a client sees it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/cloud/main.js"
    ))
}

async fn cloud_server(options: ServeOptions) -> TestServer {
    TestServer::with(ServeOptions {
        cloud: Some(options.cloud.clone().unwrap_or_else(fixture)),
        cloud_runtimes: Some(options.cloud_runtimes.unwrap_or(2)),
        ..options
    })
    .await
}

async fn call(server: &TestServer, name: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    server
        .send(
            Method::POST,
            &format!("/functions/{name}"),
            Some(body),
            headers,
        )
        .await
}

#[tokio::test]
async fn functions_answer_their_result_and_the_ai_functions_stay() {
    let server = cloud_server(ServeOptions::default()).await;
    let reply = call(&server, "hello", json!({"name": "Ada"}), &PUBLIC_HEADERS).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"result": "Hello Ada!"}));

    let echo = call(
        &server,
        "echo",
        json!({"when": {"__type": "Date", "iso": "2026-01-02T03:04:05.000Z"}, "n": [1, 2]}),
        &PUBLIC_HEADERS,
    )
    .await;
    assert_eq!(
        echo.body["result"],
        json!({"when": {"__type": "Date", "iso": "2026-01-02T03:04:05.000Z"}, "n": [1, 2]})
    );

    // Nothing returned: `{}`, as Parse Server answers (the SDK then resolves `undefined`);
    // a null is a result.
    let nothing = call(&server, "nothing", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(nothing.body, json!({}));
    let null = call(&server, "nothingAtAll", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(null.body, json!({"result": null}));

    let unknown = call(&server, "nope", json!({}), &PUBLIC_HEADERS).await;
    assert_parse_error(&unknown, 400, 141, Some("Invalid function: \"nope\""));

    // A built-in AI function still answers as before (its own refusal, not "Invalid function").
    let built_in = call(&server, "searchContext", json!({}), &PUBLIC_HEADERS).await;
    assert_ne!(
        built_in.body["error"],
        "Invalid function: \"searchContext\""
    );

    // CommonJS require of a relative .js and .json file.
    let banned = call(&server, "banned", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(banned.body, json!({"result": 102}));
    let log = call(&server, "log", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(log.body, json!({"result": "a **** fine day"}));
    let again = call(&server, "runHello", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(again.body, json!({"result": "Hello again!"}));
}

#[tokio::test]
async fn request_carries_the_user_and_master_flag() {
    let server = cloud_server(ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let reply = server
        .as_user(&ada, Method::POST, "/functions/whoami", Some(json!({})))
        .await;
    assert_eq!(
        reply.body["result"],
        json!({"user": "ada", "master": false, "functionName": "whoami"})
    );
    let master = call(&server, "whoami", json!({}), &MASTER_HEADERS).await;
    assert_eq!(
        master.body["result"],
        json!({"user": null, "master": true, "functionName": "whoami"})
    );
    // `request.user` is the user as stored now: a change shows at the next call.
    let renamed = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/users/{}", ada.id),
            Some(json!({"username": "ada2"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    let reply = server
        .as_user(&ada, Method::POST, "/functions/whoami", Some(json!({})))
        .await;
    assert_eq!(reply.body["result"]["user"], "ada2");
}

#[tokio::test]
async fn thrown_errors_keep_parse_codes() {
    let server = cloud_server(ServeOptions::default()).await;
    for (how, code, message) in [
        ("string", 141, "plain string failure"),
        ("error", 141, "plain Error failure"),
        ("custom", 9001, "custom code failure"),
        ("parse", 102, "a Parse.Error keeps its code"),
    ] {
        let reply = call(&server, "fail", json!({"how": how}), &PUBLIC_HEADERS).await;
        assert_parse_error(&reply, 400, code, Some(message));
    }
    let reply = call(&server, "asyncFail", json!({}), &PUBLIC_HEADERS).await;
    assert_parse_error(&reply, 404, 101, Some("thrown after an await"));
}

#[tokio::test]
async fn validators_answer_142_with_parse_servers_messages() {
    let server = cloud_server(ServeOptions::default()).await;
    let cases = [
        (
            "needsUser",
            json!({}),
            "Validation failed. Please login to continue.",
        ),
        (
            "needsMaster",
            json!({}),
            "Validation failed. Master key is required to complete this request.",
        ),
        (
            "typed",
            json!({}),
            "Validation failed. Please specify data for text.",
        ),
        (
            "typed",
            json!({"text": 5}),
            "Validation failed. Invalid type for text. Expected: string",
        ),
        (
            "typed",
            json!({"text": "far too long text"}),
            "Validation failed. Invalid value for text.",
        ),
        (
            "typed",
            json!({"text": "ok", "role": "robot"}),
            "Validation failed. Invalid option for role. Expected: user, assistant, system",
        ),
        (
            "typed",
            json!({"text": "ok", "short": "long"}),
            "short is too long",
        ),
        (
            "needsRole",
            json!({}),
            "Validation failed. Please login to continue.",
        ),
    ];
    for (name, params, message) in cases {
        let reply = call(&server, name, params, &PUBLIC_HEADERS).await;
        assert_parse_error(&reply, 400, 142, Some(message));
    }
    // A default fills a missing parameter.
    let ok = call(&server, "typed", json!({"text": "hi"}), &PUBLIC_HEADERS).await;
    assert_eq!(ok.body["result"], json!({"text": "hi", "role": "user"}));

    let ada = server.sign_up("ada").await;
    let no_role = server
        .as_user(&ada, Method::POST, "/functions/needsRole", Some(json!({})))
        .await;
    assert_parse_error(
        &no_role,
        400,
        142,
        Some("Validation failed. User does not match the required roles."),
    );
    let no_email = server
        .as_user(&ada, Method::POST, "/functions/needsEmail", Some(json!({})))
        .await;
    assert_parse_error(
        &no_email,
        400,
        142,
        Some("Validation failed. Please set data for email on your account."),
    );
    // The master key skips validators, unless validateMasterKey.
    let master = call(&server, "needsUser", json!({}), &MASTER_HEADERS).await;
    assert_eq!(master.body, json!({"result": "ok"}));
    let strict = call(&server, "strictMaster", json!({}), &MASTER_HEADERS).await;
    assert_parse_error(
        &strict,
        400,
        142,
        Some("Validation failed. Please login to continue."),
    );
}

#[tokio::test]
async fn objects_and_queries_run_with_the_callers_rights() {
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/functions/createNote",
            Some(json!({"text": "secret", "private": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let note = &created.body["result"];
    assert_eq!(note["__type"], "Object");
    assert_eq!(note["className"], "Note");
    assert_eq!(note["text"], "secret");
    assert_eq!(note["tags"], json!(["a", "b"]));
    assert_eq!(note["views"], 2);
    let id = note["objectId"].as_str().unwrap().to_owned();

    // Ada sees her note; Bob's call does not, unless the function uses the master key.
    assert_eq!(count_notes(&server, &ada, false).await, 1);
    assert_eq!(count_notes(&server, &bob, false).await, 0);
    assert_eq!(count_notes(&server, &bob, true).await, 1);
    let found = server
        .as_user(&bob, Method::POST, "/functions/findNotes", Some(json!({})))
        .await;
    assert_eq!(found.body["result"], json!([]));

    let edited = call(&server, "editNote", json!({"id": id}), &PUBLIC_HEADERS).await;
    assert_eq!(
        edited.body["result"],
        json!({"views": 3, "tags": ["a", "b", "edited"], "draft": false})
    );
    let deleted = call(&server, "deleteNote", json!({"id": id}), &PUBLIC_HEADERS).await;
    assert_eq!(deleted.body["result"], true);
    let gone = server
        .master(Method::GET, &format!("/classes/Note/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn count_notes(server: &TestServer, user: &User, master: bool) -> Value {
    server
        .as_user(
            user,
            Method::POST,
            "/functions/countNotes",
            Some(json!({"asMaster": master})),
        )
        .await
        .body["result"]
        .clone()
}

#[tokio::test]
async fn an_endless_loop_and_a_memory_bomb_fail_alone() {
    let server = cloud_server(ServeOptions {
        cloud_timeout: Some(1.5),
        cloud_memory_limit: Some(32),
        ..ServeOptions::default()
    })
    .await;
    let spinning = {
        let client = reqwest::Client::new();
        let url = server.url("/functions/spin");
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-parse-application-id", APP_ID)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile the server answers, cloud functions included.
    let started = Instant::now();
    let health = server.public(Method::GET, "/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    let hello = call(&server, "hello", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(hello.body, json!({"result": "Hello world!"}));
    assert!(started.elapsed() < Duration::from_secs(1));

    let spun = spinning.await.unwrap();
    assert_eq!(spun["code"], 141, "{spun:?}");
    assert!(
        spun["error"].as_str().unwrap().contains("timed out"),
        "{spun:?}"
    );

    let bomb = call(&server, "bomb", json!({}), &PUBLIC_HEADERS).await;
    assert_parse_error(&bomb, 400, 141, None);
    assert!(
        bomb.body["error"].as_str().unwrap().contains("memory"),
        "{:?}",
        bomb.body
    );
    // The runtimes are rebuilt: functions work again.
    for _ in 0..3 {
        let hello = call(&server, "hello", json!({}), &PUBLIC_HEADERS).await;
        assert_eq!(hello.body, json!({"result": "Hello world!"}));
    }
}

fn settings(entry: PathBuf) -> parlor_server::cloud::CloudSettings {
    parlor_server::cloud::CloudSettings {
        entry,
        runtimes: 1,
        timeout: Duration::from_secs(5),
        memory_limit: 64 * 1024 * 1024,
        watch: false,
        http_allow: Vec::new(),
        auth_adapters: Vec::new(),
    }
}

#[tokio::test]
async fn a_syntax_or_load_error_stops_start_up_with_file_line_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.js");
    std::fs::write(
        &main,
        "const helper = require('./helper');\nParse.Cloud.define('a', () => 1);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("helper.js"),
        "module.exports = {\n  ok: true,\n  broken: (,\n};\n",
    )
    .unwrap();
    let error = parlor_server::cloud::Cloud::start(settings(main.clone()))
        .await
        .expect_err("a syntax error stops start-up")
        .to_string();
    assert!(error.contains("helper.js:3"), "{error}");
    assert!(error.contains("SyntaxError"), "{error}");

    std::fs::write(&main, "require('fs');\n").unwrap();
    let error = parlor_server::cloud::Cloud::start(settings(main.clone()))
        .await
        .expect_err("a Node built-in stops start-up")
        .to_string();
    assert!(error.contains("\"fs\""), "{error}");
    assert!(error.contains("main.js:1"), "{error}");

    std::fs::write(&main, "\n\nthrow new Error('boom at load');\n").unwrap();
    let error = parlor_server::cloud::Cloud::start(settings(main))
        .await
        .expect_err("a throw at load stops start-up")
        .to_string();
    assert!(error.contains("main.js:3"), "{error}");
    assert!(error.contains("boom at load"), "{error}");
}

#[tokio::test]
async fn es_modules_import_relative_files_and_commonjs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.js"),
        "import { greet } from './greet.js';\nimport words from './words.cjs';\n\
         Parse.Cloud.define('greet', (request) => greet(request.params.name) + words.suffix);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("greet.js"),
        "export function greet(name) { return `hi ${name}`; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("words.cjs"),
        "module.exports = { suffix: '!' };\n",
    )
    .unwrap();
    let server = cloud_server(ServeOptions {
        cloud: Some(dir.path().join("main.js")),
        ..ServeOptions::default()
    })
    .await;
    let reply = call(&server, "greet", json!({"name": "Ada"}), &PUBLIC_HEADERS).await;
    assert_eq!(reply.body, json!({"result": "hi Ada!"}));
}

#[tokio::test]
async fn watch_reloads_edits_and_keeps_the_last_good_code_on_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.js");
    std::fs::write(&main, "Parse.Cloud.define('version', () => 1);\n").unwrap();
    let server = cloud_server(ServeOptions {
        cloud: Some(main.clone()),
        cloud_watch: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let version = || call(&server, "version", json!({}), &PUBLIC_HEADERS);
    assert_eq!(version().await.body, json!({"result": 1}));

    // Modification times can be coarse: make sure the edit is seen as one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &main,
        "Parse.Cloud.define('version', () => 2);\nParse.Cloud.define('added', () => 'new');\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while version().await.body != json!({"result": 2}) {
        assert!(Instant::now() < deadline, "the edit was not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let added = call(&server, "added", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(added.body, json!({"result": "new"}));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&main, "Parse.Cloud.define('version', () => {\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(version().await.body, json!({"result": 2}));
    let added = call(&server, "added", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(added.body, json!({"result": "new"}));
}

async fn audit(server: &TestServer) -> Vec<String> {
    let found = server
        .master(Method::GET, "/classes/AuditLog?order=createdAt", None)
        .await;
    found.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["what"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn save_and_delete_triggers_run_in_order_and_echo_their_changes() {
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Task",
            Some(json!({"title": "Buy Milk", "n": 1})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    // Only the field the trigger changed is echoed.
    assert_eq!(created.body["slug"], "buy-milk");
    assert!(created.body.get("title").is_none(), "{:?}", created.body);
    let id = created.body["objectId"].as_str().unwrap().to_owned();

    let updated = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Task/{id}"),
            Some(json!({"title": "Buy Oat Milk", "n": {"__op": "Increment", "amount": 2}})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["slug"], "buy-oat-milk");
    assert_eq!(updated.body["edits"], 1);
    let stored = server.get("Task", &id).await;
    assert_eq!(stored["n"], 3);
    assert_eq!(stored["slug"], "buy-oat-milk");

    // Refusals: a Parse.Error keeps its code, a string is 141, a validator 142.
    let reject = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Task",
            Some(json!({"title": "reject"})),
        )
        .await;
    assert_parse_error(&reject, 400, 162, Some("Tasks may not be called reject"));
    let fail = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Task",
            Some(json!({"title": "fail"})),
        )
        .await;
    assert_parse_error(&fail, 400, 141, Some("a plain failure"));
    let untitled = server
        .as_user(&ada, Method::POST, "/classes/Task", Some(json!({"n": 1})))
        .await;
    assert_parse_error(
        &untitled,
        400,
        142,
        Some("Validation failed. Please specify data for title."),
    );

    // A throwing afterSave: the client still succeeds.
    let crash = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Task",
            Some(json!({"title": "crash after"})),
        )
        .await;
    assert_eq!(crash.status, StatusCode::CREATED, "{:?}", crash.body);

    let locked = server
        .create("Task", json!({"title": "keep", "locked": true}))
        .await;
    let refused = server
        .as_user(
            &ada,
            Method::DELETE,
            &format!("/classes/Task/{locked}"),
            None,
        )
        .await;
    assert_parse_error(&refused, 400, 119, Some("This task is locked"));
    let deleted = server
        .as_user(&ada, Method::DELETE, &format!("/classes/Task/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);

    assert_eq!(
        audit(&server).await,
        ["created", "updated", "created", "deleted"]
    );
}

#[tokio::test]
async fn triggers_hold_for_batch_and_find_triggers_shape_results() {
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    // A batch goes through the same seam: the beforeSave refuses its sub-request.
    let batch = server
        .as_user(
            &ada,
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "POST", "path": "/parse/classes/Task", "body": {"title": "One"}},
                {"method": "POST", "path": "/parse/classes/Task", "body": {"title": "reject"}},
                {"method": "POST", "path": "/parse/classes/Task", "body": {"title": "Old", "archived": true}},
            ]})),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{:?}", batch.body);
    assert_eq!(batch.body[0]["success"]["slug"], "one");
    assert_eq!(batch.body[1]["error"]["code"], 162);
    assert!(batch.body[2]["success"]["objectId"].is_string());

    // beforeFind hides archived tasks from clients; afterFind adds a field and className.
    let found = server
        .as_user(&ada, Method::GET, "/classes/Task", None)
        .await;
    let results = found.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{:?}", found.body);
    assert_eq!(results[0]["shout"], "ONE");
    assert_eq!(results[0]["className"], "Task");
    let all = server.master(Method::GET, "/classes/Task", None).await;
    assert_eq!(all.body["results"].as_array().unwrap().len(), 2);
    let id = results[0]["objectId"].as_str().unwrap();
    let one = server
        .as_user(&ada, Method::GET, &format!("/classes/Task/{id}"), None)
        .await;
    assert_eq!(one.body["shout"], "ONE");
}

#[tokio::test]
async fn template_classes_and_users_take_app_rules() {
    let server = cloud_server(ServeOptions::default()).await;
    let ada = server.sign_up("ada").await;
    let session = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    let session = pointer("ChatSession", session.body["objectId"].as_str().unwrap());
    let rude = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "what the heck"})),
        )
        .await;
    assert_parse_error(&rude, 400, 142, Some("Please keep it polite"));
    let polite = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "hello"})),
        )
        .await;
    assert_eq!(polite.status, StatusCode::CREATED, "{:?}", polite.body);
    // The template's own rules still hold (the sender is the caller).
    let message = server
        .get("Message", polite.body["objectId"].as_str().unwrap())
        .await;
    assert_eq!(message["sender"]["objectId"], ada.id.as_str());

    // beforeLogin vetoes a banned user; afterLogin and afterLogout run.
    let login = server
        .public(
            Method::POST,
            "/login",
            Some(json!({"username": "ada", "password": "pw"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let token = login.body["sessionToken"].as_str().unwrap().to_owned();
    let logout = server
        .as_user(&token, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{:?}", logout.body);
    server
        .master(
            Method::PUT,
            &format!("/users/{}", ada.id),
            Some(json!({"banned": true})),
        )
        .await;
    let banned = server
        .public(
            Method::POST,
            "/login",
            Some(json!({"username": "ada", "password": "pw"})),
        )
        .await;
    assert_parse_error(&banned, 404, 101, Some("This account is banned"));
    assert_eq!(audit(&server).await, ["login", "logout"]);
}

async fn job_status(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.get("_JobStatus", id).await;
        if status["status"] != "running" {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jobs_run_in_the_background_and_record_their_status() {
    let server = cloud_server(ServeOptions::default()).await;
    server
        .create("Task", json!({"title": "Old", "archived": true}))
        .await;
    server.create("Task", json!({"title": "New"})).await;

    let refused = server
        .public(Method::POST, "/jobs/cleanup", Some(json!({})))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body["error"],
        "unauthorized: master key is required"
    );
    let unknown = server
        .master(Method::POST, "/jobs/nope", Some(json!({})))
        .await;
    assert_parse_error(&unknown, 400, 141, Some("Invalid job."));

    let started = server
        .master(
            Method::POST,
            "/jobs/cleanup",
            Some(json!({"what": "tasks"})),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    assert_eq!(started.body, json!({}));
    let id = started.headers["x-parse-job-status-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = job_status(&server, &id).await;
    assert_eq!(status["status"], "succeeded", "{status:?}");
    assert_eq!(status["jobName"], "cleanup");
    assert_eq!(status["message"], "removed 1 of tasks");
    assert_eq!(status["params"], json!({"what": "tasks"}));
    assert_eq!(server.count("Task").await, 1);

    let broken = server
        .master(Method::POST, "/jobs/brokenJob", Some(json!({})))
        .await;
    let id = broken.headers["x-parse-job-status-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = job_status(&server, &id).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["message"], "the job broke");
}

#[tokio::test]
async fn graphql_calls_the_apps_functions_and_writes_take_its_triggers() {
    use crate::graphql::{gql_as, gql_with};
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let hello = gql_with(
        &server,
        &[],
        r#"mutation { callCloudCode(input: {functionName: hello, params: {name: "Ada"}}) { result } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        hello.body["data"]["callCloudCode"]["result"], "Hello Ada!",
        "{:?}",
        hello.body
    );
    let who = gql_as(
        &server,
        &ada,
        "mutation { callCloudCode(input: {functionName: whoami}) { result } }",
        json!({}),
    )
    .await;
    assert_eq!(who.body["data"]["callCloudCode"]["result"]["user"], "ada");
    let invalid = gql_with(
        &server,
        &[],
        "mutation { callCloudCode(input: {functionName: typed, params: {}}) { result } }",
        json!({}),
    )
    .await;
    assert_eq!(
        invalid.body["errors"][0]["extensions"]["code"], 142,
        "{:?}",
        invalid.body
    );

    // A GraphQL create goes through the same beforeSave as REST.
    server.create("Task", json!({"title": "Seed"})).await;
    let created = gql_as(
        &server,
        &ada,
        r#"mutation { createTask(input: {fields: {title: "From GraphQL"}}) { task { objectId slug } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        created.body["data"]["createTask"]["task"]["slug"], "from-graphql",
        "{:?}",
        created.body
    );
    let rejected = gql_as(
        &server,
        &ada,
        r#"mutation { createTask(input: {fields: {title: "reject"}}) { task { objectId } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        rejected.body["errors"][0]["extensions"]["code"], 162,
        "{:?}",
        rejected.body
    );
}

#[tokio::test]
async fn live_query_subscriptions_and_events_take_the_apps_triggers() {
    use crate::common::live;
    let server = cloud_server(ServeOptions::default()).await;
    server.create("Task", json!({"title": "seed"})).await;
    let mut socket = live::connected(&server, None).await;
    let refused = live::subscribe(
        &mut socket,
        1,
        json!({"className": "Task", "where": {"forbidden": true}}),
    )
    .await;
    assert_eq!(refused["op"], "error", "{refused}");
    assert_eq!(refused["code"], 119);
    assert_eq!(refused["error"], "No such subscription");
    assert_eq!(refused["requestId"], 1);

    let subscribed =
        live::subscribe(&mut socket, 2, json!({"className": "Task", "where": {}})).await;
    assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
    // beforeSubscribe narrowed the query to the blue team; afterLiveQueryEvent holds back
    // secret tasks and adds a field.
    server
        .create("Task", json!({"title": "red one", "team": "red"}))
        .await;
    server
        .create(
            "Task",
            json!({"title": "hidden", "team": "blue", "secret": true}),
        )
        .await;
    server
        .create("Task", json!({"title": "blue one", "team": "blue"}))
        .await;
    let event = live::next(&mut socket).await;
    assert_eq!(event["op"], "create", "{event}");
    assert_eq!(event["object"]["title"], "blue one");
    assert_eq!(event["object"]["seenLive"], true);
    live::quiet(&mut socket).await;

    // beforeConnect: a refused client gets an error frame with the trigger's code and is not
    // told to reconnect; the others connect.
    for (token, code, message) in [
        ("banned-token", 141, "not allowed to connect"),
        ("", 119, "This account may not connect"),
    ] {
        let token = if token.is_empty() {
            let eve = server
                .sign_up_with(json!({"username": "eve", "password": "pw", "banned": true}))
                .await;
            eve.token
        } else {
            token.to_owned()
        };
        let mut refused = live::open(&server).await;
        live::send(
            &mut refused,
            json!({"op": "connect", "applicationId": APP_ID, "sessionToken": token}),
        )
        .await;
        let frame = live::next(&mut refused).await;
        assert_eq!(frame["op"], "error", "{frame}");
        assert_eq!(frame["code"], code);
        assert_eq!(frame["error"], message);
        assert_eq!(frame["reconnect"], false);
    }
    let ada = server.sign_up("ada").await;
    live::connected(&server, Some(&ada.token)).await;
}

#[tokio::test]
async fn http_requests_reach_only_allowed_hosts() {
    let closed = cloud_server(ServeOptions::default()).await;
    let url = closed.url("/health");
    let refused = call(&closed, "fetch", json!({"url": url}), &PUBLIC_HEADERS).await;
    assert_parse_error(&refused, 400, 141, None);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("\"127.0.0.1\" is not allowed"),
        "{:?}",
        refused.body
    );
    let open = cloud_server(ServeOptions {
        cloud_http_allow: Some(vec!["127.0.0.1".to_owned()]),
        ..ServeOptions::default()
    })
    .await;
    let url = open.url("/health");
    let fetched = call(&open, "fetch", json!({"url": url}), &PUBLIC_HEADERS).await;
    assert_eq!(
        fetched.body["result"],
        json!({"status": 200, "data": {"status": "ok"}})
    );
}

#[tokio::test]
async fn triggers_see_the_request_context_and_headers_and_after_save_shapes_the_answer() {
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let headers = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-session-token", ada.token.as_str()),
        ("x-parse-cloud-context", r#"{"tag":"t1"}"#),
        ("x-note-tag", "hello"),
    ];
    let created = server
        .send(
            Method::POST,
            "/classes/Note",
            Some(json!({"title": "a"})),
            &headers,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    // beforeSave read the header and the context; its changes are echoed.
    assert_eq!(created.body["fromHeader"], "hello");
    assert_eq!(created.body["contextBefore"], "t1");
    // afterSave saw the context as the beforeSave left it; what it set joins the answer,
    // what the client sent does not come back.
    assert_eq!(
        created.body["afterContext"],
        json!({"tag": "t1", "seenBefore": true})
    );
    assert_eq!(created.body["ip"], "set");
    assert!(created.body.get("title").is_none(), "{:?}", created.body);
    // Only the answer: afterSave's own changes are not stored.
    let id = created.body["objectId"].as_str().unwrap();
    let stored = server.get("Note", id).await;
    assert!(stored.get("afterContext").is_none(), "{stored:?}");
    assert_eq!(stored["fromHeader"], "hello");

    // The SDK's body `_context` counts as the header does.
    let via_body = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Note",
            Some(json!({"title": "b", "_context": {"tag": "t2"}})),
        )
        .await;
    assert_eq!(via_body.status, StatusCode::CREATED, "{:?}", via_body.body);
    assert_eq!(via_body.body["contextBefore"], "t2");
    assert!(via_body.body.get("_context").is_none());

    // A plain object an afterSave returns is the answer.
    let replaced = server
        .send(
            Method::POST,
            "/classes/Note",
            Some(json!({"title": "replace"})),
            &headers,
        )
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED, "{:?}", replaced.body);
    assert_eq!(
        replaced.body,
        json!({"custom": "answer", "context": {"tag": "t1", "seenBefore": true}})
    );

    // A context that is not a JSON object: 107, nothing written.
    let before = server.count("Note").await;
    for bad in [r#"[1,2]"#, "not json", r#""text""#] {
        let refused = server
            .send(
                Method::POST,
                "/classes/Note",
                Some(json!({"title": "c"})),
                &[
                    ("x-parse-application-id", APP_ID),
                    ("x-parse-cloud-context", bad),
                ],
            )
            .await;
        assert_parse_error(&refused, 400, 107, Some("Invalid object for context."));
    }
    assert_eq!(server.count("Note").await, before);

    // Functions see the same; a save from cloud code carries the context it passes.
    let who = call(&server, "whoCalls", json!({}), &headers).await;
    assert_eq!(
        who.body["result"],
        json!({"context": {"tag": "t1"}, "tag": "hello"})
    );
    let inner = call(&server, "saveNoteWithContext", json!({}), &headers).await;
    assert_eq!(
        inner.body["result"],
        json!({"tag": "inner", "seenBefore": true}),
        "{:?}",
        inner.body
    );
}

/// Parse Dashboard's job pages: `/cloud_code/jobs` lists, creates, edits and deletes the
/// schedules kept in `_JobSchedule`, only for jobs the code defines, master key only.
#[tokio::test]
async fn job_schedules_are_kept_for_the_dashboard() {
    let server = cloud_server(ServeOptions::default()).await;
    let data = server
        .master(Method::GET, "/cloud_code/jobs/data", None)
        .await;
    assert_eq!(data.status, StatusCode::OK, "{:?}", data.body);
    assert_eq!(data.body["in_use"], json!([]));
    let mut jobs: Vec<String> = data.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job.as_str().unwrap().to_owned())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["brokenJob", "cleanup"]);

    // Attacker's side: without the master key nothing is listed, created or changed.
    for (method, path) in [
        (Method::GET, "/cloud_code/jobs"),
        (Method::GET, "/cloud_code/jobs/data"),
        (Method::POST, "/cloud_code/jobs"),
    ] {
        let refused = server
            .public(
                method,
                path,
                Some(json!({"job_schedule": {"jobName": "cleanup"}})),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    let unknown = server
        .master(
            Method::POST,
            "/cloud_code/jobs",
            Some(json!({"job_schedule": {"jobName": "nope"}})),
        )
        .await;
    assert_parse_error(
        &unknown,
        400,
        141,
        Some("Cannot Schedule a job that is not deployed"),
    );
    let shapeless = server
        .master(
            Method::POST,
            "/cloud_code/jobs",
            Some(json!({"jobName": "cleanup"})),
        )
        .await;
    assert_parse_error(&shapeless, 400, 107, None);

    let created = server
        .master(
            Method::POST,
            "/cloud_code/jobs",
            Some(json!({"job_schedule": {
                "jobName": "cleanup", "description": "nightly", "params": "{\"what\":\"tasks\"}",
                "repeatMinutes": 1440
            }})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["objectId"].as_str().unwrap().to_owned();
    let listed = server.master(Method::GET, "/cloud_code/jobs", None).await;
    let schedules = listed.body.as_array().expect("an array of schedules");
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0]["jobName"], "cleanup");
    assert_eq!(schedules[0]["description"], "nightly");
    // startAfter defaults to the time of the create.
    assert!(schedules[0]["startAfter"].as_str().unwrap().ends_with('Z'));

    let edited = server
        .master(
            Method::PUT,
            &format!("/cloud_code/jobs/{id}"),
            Some(json!({"job_schedule": {"jobName": "cleanup", "description": "weekly"}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let data = server
        .master(Method::GET, "/cloud_code/jobs/data", None)
        .await;
    assert_eq!(data.body["in_use"], json!(["cleanup"]));
    let listed = server.master(Method::GET, "/cloud_code/jobs", None).await;
    assert_eq!(listed.body[0]["description"], "weekly");

    let deleted = server
        .master(Method::DELETE, &format!("/cloud_code/jobs/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let listed = server.master(Method::GET, "/cloud_code/jobs", None).await;
    assert_eq!(listed.body, json!([]));
}

#[tokio::test]
async fn files_users_and_timers_work_inside_cloud_code() {
    let server = cloud_server(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let files = call(&server, "fileRoundTrip", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(files.status, StatusCode::OK, "{:?}", files.body);
    let result = &files.body["result"];
    assert!(
        result["name"].as_str().unwrap().ends_with("_hello.txt"),
        "{result}"
    );
    assert_eq!(result["data"], "aGVsbG8gd29ybGQ=");
    assert_eq!(result["bytes"], "aGk=");
    // The file is served like one a client uploaded.
    let url = result["url"].as_str().unwrap();
    let served = reqwest::get(url).await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.text().await.unwrap(), "hello world");
    // Without the master key or a user, an upload obeys the server's rule (no public uploads).
    let refused = call(&server, "anonymousFile", json!({}), &PUBLIC_HEADERS).await;
    assert_parse_error(
        &refused,
        400,
        130,
        Some("File upload by public is disabled."),
    );

    // Sign-up, log-in and become give real sessions.
    let signed = call(
        &server,
        "signUpUser",
        json!({"username": "eve"}),
        &PUBLIC_HEADERS,
    )
    .await;
    assert_eq!(signed.status, StatusCode::OK, "{:?}", signed.body);
    let token = signed.body["result"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("r:"), "{token}");
    let me = server
        .send(
            Method::GET,
            "/users/me",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", &token),
            ],
        )
        .await;
    assert_eq!(me.body["username"], "eve");
    let logged = call(
        &server,
        "logInAs",
        json!({"username": "eve", "password": "pw"}),
        &PUBLIC_HEADERS,
    )
    .await;
    assert_eq!(logged.body["result"]["same"], true, "{:?}", logged.body);
    assert_eq!(logged.body["result"]["username"], "eve");
    assert_ne!(logged.body["result"]["token"], json!(token));
    let wrong = call(
        &server,
        "logInAs",
        json!({"username": "eve", "password": "nope"}),
        &PUBLIC_HEADERS,
    )
    .await;
    assert_parse_error(&wrong, 404, 101, Some("Invalid username/password."));

    // setTimeout waits; clearTimeout cancels.
    let waited = call(&server, "wait", json!({}), &PUBLIC_HEADERS).await;
    assert_eq!(
        waited.body["result"],
        json!({"waited": true, "cancelledRan": false})
    );
}

/// With idempotency on for them, a repeated `X-Parse-Request-Id` runs a function or a job
/// once: the second request gets `159` and runs nothing.
#[tokio::test]
async fn idempotency_covers_functions_and_jobs() {
    let server = cloud_server(ServeOptions {
        idempotency_paths: Some(vec!["functions/.*".into(), "jobs/.*".into()]),
        ..ServeOptions::default()
    })
    .await;
    let function = |id: &'static str| {
        [
            ("x-parse-application-id", APP_ID),
            ("x-parse-request-id", id),
        ]
    };
    let first = call(&server, "hello", json!({"name": "Ada"}), &function("fn-1")).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let again = call(&server, "hello", json!({"name": "Ada"}), &function("fn-1")).await;
    assert_parse_error(&again, 400, 159, Some("Duplicate request"));
    let other = call(&server, "hello", json!({"name": "Ada"}), &function("fn-2")).await;
    assert_eq!(other.status, StatusCode::OK);

    let job = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-master-key", MASTER_KEY),
        ("x-parse-request-id", "job-1"),
    ];
    let started = server
        .send(Method::POST, "/jobs/cleanup", Some(json!({})), &job)
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let repeated = server
        .send(Method::POST, "/jobs/cleanup", Some(json!({})), &job)
        .await;
    assert_parse_error(&repeated, 400, 159, Some("Duplicate request"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = server
        .master(Method::GET, "/classes/_JobStatus?count=1&limit=0", None)
        .await;
    assert_eq!(runs.body["count"], 1, "{:?}", runs.body);
}

/// An app's auth adapter (`--auth-adapters ticket=…`): sign-up and log-in with its
/// `authData`, links made by an update, string and number ids; from the attacker's side, a
/// refused ticket, another user's account and an unknown provider change nothing.
#[tokio::test]
async fn auth_adapters_validate_log_ins_and_links() {
    let adapter = fixture().parent().unwrap().join("auth/ticket.js");
    let server = cloud_server(ServeOptions {
        auth_adapters: Some(vec![format!("ticket={}", adapter.display())]),
        ..ServeOptions::default()
    })
    .await;
    let log_in = |auth_data: Value| {
        let server = &server;
        async move {
            server
                .public(Method::POST, "/users", Some(json!({"authData": auth_data})))
                .await
        }
    };
    // Sign-up, then log-in, with the adapter's own proof; a number id works as Parse's.
    let first = log_in(json!({"ticket": {"id": "a1", "ticket": "ok-a1"}})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = log_in(json!({"ticket": {"id": "a1", "ticket": "ok-a1"}})).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["objectId"], first.body["objectId"]);
    assert!(
        again.body["sessionToken"]
            .as_str()
            .unwrap()
            .starts_with("r:")
    );
    let number = log_in(json!({"ticket": {"id": 1234, "ticket": "ok-1234"}})).await;
    assert_eq!(number.status, StatusCode::CREATED, "{:?}", number.body);
    let number_again = log_in(json!({"ticket": {"id": 1234, "ticket": "ok-1234"}})).await;
    assert_eq!(number_again.body["objectId"], number.body["objectId"]);

    // A refused ticket: the adapter's error, and no user.
    let users_before = server.count("_User").await;
    let forged = log_in(json!({"ticket": {"id": "a1", "ticket": "guess"}})).await;
    assert_parse_error(
        &forged,
        404,
        101,
        Some("ticket auth is invalid for this user."),
    );
    let unknown = log_in(json!({"facebook": {"id": "a1", "access_token": "x"}})).await;
    assert_parse_error(&unknown, 400, 252, None);
    assert_eq!(server.count("_User").await, users_before);

    // Linking by an update: validated, kept beside the other providers, unlinked by null.
    let bob = server.sign_up("bob").await;
    let bob_headers = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-session-token", bob.token.as_str()),
    ];
    let path = format!("/users/{}", bob.id);
    let link = |auth_data: Value| {
        let (server, path, headers) = (&server, &path, &bob_headers);
        async move {
            server
                .send(
                    Method::PUT,
                    path,
                    Some(json!({"authData": auth_data})),
                    headers,
                )
                .await
        }
    };
    let linked = link(json!({"ticket": {"id": "b1", "ticket": "ok-b1"}})).await;
    assert_eq!(linked.status, StatusCode::OK, "{:?}", linked.body);
    let as_bob = log_in(json!({"ticket": {"id": "b1", "ticket": "ok-b1"}})).await;
    assert_eq!(as_bob.status, StatusCode::OK, "{:?}", as_bob.body);
    assert_eq!(as_bob.body["objectId"], bob.id.as_str());
    let anonymous = link(json!({"anonymous": {"id": "bob-device"}})).await;
    assert_eq!(anonymous.status, StatusCode::OK, "{:?}", anonymous.body);
    let stored = || async { server.get("_User", &bob.id).await["authData"].clone() };
    assert_eq!(
        stored().await,
        json!({"ticket": {"id": "b1", "ticket": "ok-b1"}, "anonymous": {"id": "bob-device"}})
    );

    // The attacker's side: someone else's account, a forged ticket, an unknown provider.
    let taken = link(json!({"ticket": {"id": "a1", "ticket": "ok-a1"}})).await;
    assert_parse_error(&taken, 400, 208, Some("this auth is already used"));
    let forged = link(json!({"ticket": {"id": "b2", "ticket": "nope"}})).await;
    assert_parse_error(&forged, 404, 101, None);
    let unknown = link(json!({"facebook": {"id": "b1"}})).await;
    assert_parse_error(&unknown, 400, 252, None);
    assert_eq!(
        stored().await,
        json!({"ticket": {"id": "b1", "ticket": "ok-b1"}, "anonymous": {"id": "bob-device"}})
    );

    let unlinked = link(json!({"ticket": null})).await;
    assert_eq!(unlinked.status, StatusCode::OK, "{:?}", unlinked.body);
    assert_eq!(stored().await, json!({"anonymous": {"id": "bob-device"}}));
    let gone = log_in(json!({"ticket": {"id": "b1", "ticket": "ok-b1"}})).await;
    assert_eq!(
        gone.status,
        StatusCode::CREATED,
        "a new account: {:?}",
        gone.body
    );
}
