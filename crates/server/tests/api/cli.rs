//! The `parlor` binary's commands, run as a user runs them.

use std::process::Command;

use serde_json::Value;

fn parlor(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .output()
        .expect("run parlor");
    assert!(
        output.status.success(),
        "parlor {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn fresh_database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/data/parlor.db", dir.path().display());
    (dir, url)
}

/// `parlor schema --format json` prints the live schema of a new database as `GET /schemas`
/// lists it: the chat template's classes with their fixed field names, in its response shape.
#[test]
fn schema_json_lists_the_chat_template() {
    let (_dir, database) = fresh_database();
    let output = parlor(&["schema", "--database", &database, "--format", "json"]);
    let schema: Value = serde_json::from_str(&output).expect("JSON");
    let classes: Vec<&str> = schema["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["className"].as_str().unwrap())
        .collect();
    for class_name in ["ChatSession", "Context", "Message", "Persona", "_User"] {
        assert!(
            classes.contains(&class_name),
            "{class_name} missing from {classes:?}"
        );
    }
    // As `GET /schemas`: built-in classes nothing has used yet are not listed.
    for class_name in ["_Role", "_Installation"] {
        assert!(
            !classes.contains(&class_name),
            "{class_name} listed in {classes:?}"
        );
    }
    let message = schema["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["className"] == "Message")
        .unwrap();
    assert_eq!(
        message["fields"]["session"],
        serde_json::json!({"type": "Pointer", "targetClass": "ChatSession", "required": true})
    );
    assert_eq!(
        message["fields"]["content"],
        serde_json::json!({"type": "String", "required": true})
    );
    let session = schema["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["className"] == "ChatSession")
        .unwrap();
    assert_eq!(session["fields"]["participants"]["type"], "Array");
    assert_eq!(
        session["classLevelPermissions"]["create"],
        serde_json::json!({"requiresAuthentication": true})
    );
}

/// The Mermaid form is an ER diagram whose relationships follow the pointers; the Markdown
/// form is a data dictionary with one table per class.
#[test]
fn schema_mermaid_and_markdown() {
    let (_dir, database) = fresh_database();
    let mermaid = parlor(&["schema", "--database", &database, "--format", "mermaid"]);
    assert!(mermaid.starts_with("erDiagram\n"));
    assert!(
        mermaid.contains("    Message }o--|| ChatSession : session\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("    ChatSession }o--o| User_ : owner\n"),
        "{mermaid}"
    );
    let markdown = parlor(&["schema", "--database", &database, "--format", "markdown"]);
    assert!(markdown.contains("\n## Message\n"));
    assert!(
        markdown.contains("| content | String | yes |  | The text (Markdown). |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| session | Pointer<ChatSession> | yes |  | The ChatSession it belongs to. |\n"
        ),
        "{markdown}"
    );
    // What the schemas API shows: not the server's internal fields.
    assert!(!markdown.contains("_hashed_password"), "{markdown}");
    assert!(!mermaid.contains("_hashed_password"), "{mermaid}");
}

/// `parlor schema` shows what the schemas API shows: not the server's bookkeeping classes
/// (`/config`'s `_GlobalConfig`), which exist once a config parameter is written.
#[tokio::test]
async fn schema_leaves_out_bookkeeping_classes() {
    let (_dir, database) = fresh_database();
    let server = crate::common::TestServer::with(parlor_server::config::ServeOptions {
        database: Some(database.clone()),
        ..Default::default()
    })
    .await;
    let written = server
        .master(
            reqwest::Method::PUT,
            "/config",
            Some(serde_json::json!({"params": {"welcome": "hi"}})),
        )
        .await;
    assert_eq!(written.body, serde_json::json!({"result": true}));
    server.stop().await;
    let output = parlor(&["schema", "--database", &database, "--format", "json"]);
    let schema: Value = serde_json::from_str(&output).expect("JSON");
    let classes: Vec<&str> = schema["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["className"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"_User"), "{classes:?}");
    assert!(!classes.contains(&"_GlobalConfig"), "{classes:?}");
    let markdown = parlor(&["schema", "--database", &database, "--format", "markdown"]);
    assert!(!markdown.contains("_GlobalConfig"), "{markdown}");
}

/// `parlor serve --help` documents every setting with its environment variable.
#[test]
fn serve_help_documents_every_flag() {
    let help = parlor(&["serve", "--help"]);
    for flag in [
        "--host",
        "--port",
        "--mount-path",
        "--database",
        "--app-id",
        "--master-key",
        "--master-key-ips",
        "--rest-api-key",
        "--javascript-key",
        "--client-key",
        "--max-body-bytes",
        "--max-limit",
        "--idempotency-paths",
        "--header-read-timeout",
        "--body-read-timeout",
        "--idle-timeout",
        "--max-connections",
        "--config",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("PARLOR_DATABASE"));
    assert!(help.contains("sqlite://./parlor-data/parlor.db"));
}

/// Starts `parlor serve` on a free port; returns the child and the URL it printed.
fn start_server(
    database: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
    Vec<String>,
) {
    start_command(serve_command(database))
}

/// `parlor serve` on a free port with a database, its stdout piped.
fn serve_command(database: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parlor"));
    command
        .args(["serve", "--port", "0", "--database", database])
        .stdout(std::process::Stdio::piped());
    command
}

/// Spawns a `serve` command and waits for its "listening on" line.
fn start_command(
    mut command: Command,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
    Vec<String>,
) {
    use std::io::BufRead;
    let mut child = command.spawn().expect("spawn parlor");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no stdout");
    };
    let mut reader = std::io::BufReader::new(stdout);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server exited early: {lines:?}");
        }
        lines.push(line.trim_end().to_owned());
        if let Some(url) = line
            .trim_end()
            .strip_prefix("Parlor ")
            .and_then(|rest| rest.split(" listening on ").nth(1))
        {
            return (child, reader, url.to_owned(), lines);
        }
    }
}

/// The master key is generated, printed and kept on first start only; SIGTERM stops the
/// server cleanly (exit code 0, "Parlor stopped") and the data survives a restart.
#[tokio::test]
async fn first_start_generates_a_master_key_and_sigterm_stops_cleanly() {
    use std::io::Read;
    let (dir, database) = fresh_database();
    let (mut child, mut reader, url, lines) = start_server(&database);
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/parse"),
        "{url}"
    );
    let key_path = dir.path().join("data/master.key");
    let key = std::fs::read_to_string(&key_path).expect("master.key kept in the data folder");
    assert_eq!(key.len(), 40);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("Generated a master key") && line.ends_with(&key)),
        "{lines:?}"
    );
    parlor_server::ai::provider::install_crypto_provider();
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url}/classes/Note"))
        .header("X-Parse-Application-Id", "parlor")
        .header("X-Parse-Master-Key", &key)
        .body(r#"{"text":"kept"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("Parlor stopped"), "{rest}");

    let (mut child, _reader, url, lines) = start_server(&database);
    assert!(
        !lines.iter().any(|line| line.contains("Generated")),
        "{lines:?}"
    );
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    let found: Value = client
        .get(format!("{url}/classes/Note"))
        .header("X-Parse-Application-Id", "parlor")
        .header("X-Parse-Master-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["results"][0]["text"], "kept");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Stops a server with SIGTERM and waits for it.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

/// Logs written to a pipe (a file, `docker logs`, a log collector) carry no ANSI colour codes,
/// and they go to stderr, leaving stdout to the server's own lines.
#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::Read;
    let (_dir, database) = fresh_database();
    let mut command = serve_command(&database);
    command
        .args(["--master-key", "cli-master"])
        .env_remove("NO_COLOR")
        .env_remove("PARLOR_LOG")
        .stderr(std::process::Stdio::piped());
    let (mut child, mut reader, url, _) = start_command(command);
    let mut stderr = child.stderr.take().unwrap();
    // Drained on a thread, so a full pipe can never stall the server.
    let stderr_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).map(|_| bytes)
    });
    parlor_server::ai::provider::install_crypto_provider();
    let client = reqwest::Client::new();
    let signed_up = client
        .post(format!("{url}/users"))
        .header("X-Parse-Application-Id", "parlor")
        .body(r#"{"username":"colour","password":"s3cret","email":"colour@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    // The log-only mailer writes the reset mail as an INFO log line.
    let reset = client
        .post(format!("{url}/requestPasswordReset"))
        .header("X-Parse-Application-Id", "parlor")
        .body(r#"{"email":"colour@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let exit = terminate(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let mut stdout = Vec::new();
    reader.read_to_end(&mut stdout).unwrap();
    let stderr = stderr_reader.join().unwrap().unwrap();
    let logs = String::from_utf8_lossy(&stderr);
    assert!(
        logs.contains("mail (log-only mailer)") && logs.contains("INFO"),
        "the mail log line is on stderr: {logs}"
    );
    assert!(!stderr.contains(&0x1b), "ESC in the logs: {logs:?}");
    assert!(
        !stdout.contains(&0x1b),
        "ESC on stdout: {:?}",
        String::from_utf8_lossy(&stdout)
    );
}

/// `parlor serve` under `bash -c 'ulimit …; exec parlor serve …'`, stdout and stderr piped;
/// stderr is drained on a thread (answered by the returned handle once the server exits).
fn serve_with_ulimit(
    ulimit: &str,
    database: &str,
    extra: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
    std::thread::JoinHandle<String>,
) {
    use std::io::Read;
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "{ulimit} && exec \"$0\" serve --port 0 --database \"$1\" \"${{@:2}}\""
        ))
        .arg(env!("CARGO_BIN_EXE_parlor"))
        .arg(database)
        .args(extra)
        .env("PARLOR_LOG", "warn,parlor_server=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (mut child, reader, url, _) = start_command(command);
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (child, reader, url, logs)
}

/// At start the server raises its soft open-file limit to the hard limit, and says so.
#[tokio::test]
async fn the_open_file_limit_is_raised_at_start() {
    let hard = Command::new("bash")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard = String::from_utf8(hard.stdout).unwrap().trim().to_owned();
    if hard == "unlimited" || hard.parse::<u64>().unwrap() <= 256 {
        println!("skipped: the hard open-file limit ({hard}) leaves nothing to raise from 256");
        return;
    }
    let (_dir, database) = fresh_database();
    let (mut child, _reader, _url, logs) = serve_with_ulimit("ulimit -Sn 256", &database, &[]);
    let exit = terminate(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let logs = logs.join().unwrap();
    assert!(
        logs.contains(&format!("raised the open-file limit from 256 to {hard}")),
        "{logs}"
    );
    assert!(logs.contains("client connections at once"), "{logs}");
}

/// With the open-file limit nearly used up by idle clients (a cap above the limit, so
/// `accept` itself fails with EMFILE), the server closes the longest-waiting idle connections
/// instead of spinning or stopping, and a new client's `/health` is answered.
#[tokio::test]
async fn new_clients_are_answered_when_descriptors_run_out() {
    use tokio::io::AsyncWriteExt;
    let (_dir, database) = fresh_database();
    let (mut child, _reader, url, logs) = serve_with_ulimit(
        "ulimit -n 64",
        &database,
        &["--max-connections", "1000", "--header-read-timeout", "60"],
    );
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches("/parse")
        .to_owned();
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /parse/health HTTP/1.1\r\nHost: lo")
            .await
            .unwrap();
        idle.push(stream);
    }
    parlor_server::ai::provider::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let health = client.get(format!("{url}/health")).send().await;
    let elapsed = started.elapsed();
    let health: Value = health.expect("/health answers").json().await.unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok"}));
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
    drop(idle);
    let exit = terminate(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let logs = logs.join().unwrap();
    assert!(logs.contains("accepting a connection failed"), "{logs}");
    assert!(logs.contains("Too many open files"), "{logs}");
}

/// `parlor serve --log-format json`: every log line on stderr is one JSON object; a
/// request's id (a sane `X-Request-Id` it sent, or a new one) comes back as the
/// `X-Request-Id` header and is on the log lines of that request, and of the persona reply
/// it started, which runs on after the answer.
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let (_dir, database) = fresh_database();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["serve", "--port", "0", "--database", &database])
        .args(["--master-key", "json-logs-master", "--log-format", "json"])
        .args([
            "--cloud",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/cloud/main.js"
            ),
        ])
        .env("PARLOR_LOG", "warn,parlor_server=info")
        .env_remove("PARLOR_LLM_BASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn parlor");
    let stderr = child.stderr.take().expect("stderr");
    let logged = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&logged);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let url = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(url) = line.trim_end().split(" listening on ").nth(1) {
            break url.to_owned();
        }
    };
    parlor_server::ai::provider::install_crypto_provider();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value, id: Option<&str>| {
        let mut request = client
            .post(format!("{url}{path}"))
            .header("X-Parse-Application-Id", "parlor")
            .json(&body);
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request
    };
    let answer_id = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let alice: Value = post(
        "/users",
        serde_json::json!({"username": "alice", "password": "pw", "email": "alice@example.com"}),
        None,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = alice["sessionToken"].as_str().unwrap().to_owned();
    // A sane incoming id is kept and answered; a new one is made for a request without
    // one, or with one that could forge a log line.
    let reset = post(
        "/requestPasswordReset",
        serde_json::json!({"email": "alice@example.com"}),
        Some("reset-7f3a"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(answer_id(&reset), "reset-7f3a");
    let made = post("/functions/nope", serde_json::json!({}), None)
        .send()
        .await
        .unwrap();
    let made = answer_id(&made);
    assert!(
        made.len() == 32 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    let odd = post(
        "/functions/nope",
        serde_json::json!({}),
        Some("two words\"}"),
    )
    .send()
    .await
    .unwrap();
    assert_ne!(answer_id(&odd), "two words\"}");

    // Cloud Code runs on its own threads; its console lines still name the request.
    let logged_by_cloud = post("/functions/log", serde_json::json!({}), Some("cloud-9"))
        .send()
        .await
        .unwrap();
    assert_eq!(logged_by_cloud.status(), 200);

    // A persona reply (it fails: no provider is configured) runs after its request.
    let persona: Value = client
        .post(format!("{url}/classes/Persona"))
        .header("X-Parse-Application-Id", "parlor")
        .header("X-Parse-Master-Key", "json-logs-master")
        .json(&serde_json::json!({"name": "Bot"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session: Value = post(
        "/classes/ChatSession",
        serde_json::json!({"participants": [], "personas": [
            {"__type": "Pointer", "className": "Persona", "objectId": persona["objectId"]}
        ]}),
        None,
    )
    .header("X-Parse-Session-Token", &token)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let message = post(
        "/classes/Message",
        serde_json::json!({"content": "hello", "session":
            {"__type": "Pointer", "className": "ChatSession", "objectId": session["objectId"]}}),
        Some("message-42"),
    )
    .header("X-Parse-Session-Token", &token)
    .send()
    .await
    .unwrap();
    assert_eq!(message.status(), 201);

    // The lines of a request: its span (or one inside it) holds its id.
    let in_request = |line: &Value, id: &str| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["request_id"] == id))
    };
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..200 {
        lines = logged
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        if lines
            .iter()
            .any(|line| line["message"] == "persona reply ended")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = lines
        .iter()
        .find(|line| line["message"] == "mail (log-only mailer)")
        .unwrap_or_else(|| panic!("no mail line in {lines:?}"));
    assert!(in_request(mail, "reset-7f3a"), "{mail}");
    assert_eq!(mail["level"], "INFO");
    let reply = lines
        .iter()
        .find(|line| line["message"] == "persona reply ended")
        .unwrap_or_else(|| panic!("no reply line in {lines:?}"));
    assert!(in_request(reply, "message-42"), "{reply}");
    assert_eq!(reply["status"], "failed", "{reply}");
    assert!(reply["span"]["message_id"].is_string(), "{reply}");
    for text in ["console.log from a function", "request.log from a function"] {
        let line = lines
            .iter()
            .find(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with(text))
            })
            .unwrap_or_else(|| panic!("no {text:?} line in {lines:?}"));
        assert!(in_request(line, "cloud-9"), "{line}");
        assert_eq!(line["function"], "log", "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
