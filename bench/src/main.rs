//! `parlor-bench`: starts `parlor serve` on a fresh SQLite database (or a fresh schema of a
//! PostgreSQL database, one or several instances: see `topology`) as a separate process, seeds
//! it through the REST API (100,000 messages, 10,000 of them in one session), then measures
//! request rate and latency of its scenarios (reads, writes, log-in, sign-up, and history
//! queries while log-ins run) with a fixed number of keep-alive connections. The `live_fanout`
//! scenario (not in the default list; see `fanout`) measures LiveQuery fan-out instead, and
//! `ai_generation` (see `generation`) the latency added to persona replies streamed from an
//! in-process fake LLM provider.
//!
//! stdout: one JSON object per line (`start`, `memory`, `seed`, one per scenario run, `summary`);
//! stderr: progress for humans.

mod fanout;
mod generation;
mod growth;
mod load;
mod report;
mod seed;
mod server;
mod topology;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::{Client, Method};
use serde_json::{Value, json};

use load::{Auth, Keys, Target};
use seed::{SeedOptions, api_as, encode, pointer, text, truncate};
use server::{
    Server, StartOptions, cpu_seconds, loadavg, machine_busy_seconds, machine_info, round1, round2,
};

/// Load-test harness for Parlor (see bench/README.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The `parlor` binary to start [default: target/release/parlor].
    #[arg(long, env = "PARLOR_BIN")]
    parlor_bin: Option<PathBuf>,
    /// Measure a server that is already running at this URL (e.g. http://127.0.0.1:1337/parse)
    /// instead of starting one; its database should be empty.
    #[arg(long, env = "PARLOR_BENCH_URL")]
    url: Option<String>,
    /// With --url: the PID of that server, for its memory and CPU figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the server under test, copied into every line. The default `parlor` gets the
    /// backend added unless it is SQLite with one instance: `parlor (postgres x2)`.
    #[arg(long, default_value = "parlor")]
    label: String,
    #[arg(long, default_value = "bench")]
    app_id: String,
    #[arg(long, default_value = "bench-master")]
    master_key: String,
    /// Extra arguments for `parlor serve` (repeat the flag for each); the harness adds
    /// `--login-rate-limit 0` unless one is given.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Keep the temporary database folder after the run.
    #[arg(long)]
    keep_db: bool,
    /// A PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run on instead of a
    /// fresh SQLite file: the servers get a fresh `schema=bench_<pid>_<time>` in it, dropped
    /// afterwards with `psql` unless --keep-db.
    #[arg(long, conflicts_with = "url")]
    database: Option<String>,
    /// Servers started on the same database (2 or more need --database): HTTP workers are
    /// spread over them round-robin; live_fanout subscribes on the first and writes on the second.
    #[arg(long, default_value_t = 1, conflicts_with = "url")]
    instances: usize,
    /// `sqlite`, `postgres`, `postgres x2`, …, `external` (set by `run`, copied into the lines).
    #[arg(skip)]
    backend: String,

    /// Scenarios to run, in order. `live_fanout` (LiveQuery fan-out, not in the default list)
    /// runs first, on the fresh server before seeding; without other scenarios nothing is seeded.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create_message,create_message_master,query_history,query_history_master,graphql_history,graphql_history_master,get_by_id,get_by_id_master,health,log_in,sign_up,history_during_log_ins"
    )]
    scenarios: Vec<String>,
    /// Concurrent connections (a comma list runs each in turn). `history_during_log_ins` splits
    /// them: a fifth (at least 1) log in, the rest query the history.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    connections: Vec<usize>,
    /// live_fanout: subscriber counts (a comma list runs each in turn).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    subscribers: Vec<usize>,
    /// live_fanout: messages created.
    #[arg(long, default_value_t = 200)]
    fanout_messages: usize,
    /// live_fanout: messages created per second.
    #[arg(long, default_value_t = 10.0)]
    fanout_rate: f64,
    /// live_fanout: connections set up at once.
    #[arg(long, default_value_t = 200)]
    fanout_connect_batch: usize,
    /// live_fanout: users the subscribers are spread over (each a participant of the session).
    #[arg(long, default_value_t = 1)]
    fanout_users: usize,
    /// live_fanout: seconds to wait after the last message for missing events.
    #[arg(long, default_value_t = 30.0)]
    fanout_drain: f64,
    /// ai_generation: concurrent streams (a comma list runs each in turn).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    gen_streams: Vec<usize>,
    /// ai_generation: tokens the fake provider sends per stream.
    #[arg(long, default_value_t = 100)]
    gen_tokens: usize,
    /// ai_generation: tokens per second per stream.
    #[arg(long, default_value_t = 20.0)]
    gen_rate: f64,
    /// ai_generation: users the sessions are spread over (each with its own persona).
    #[arg(long, default_value_t = 10)]
    gen_users: usize,
    /// ai_generation: streams that also have a LiveQuery subscriber on their session.
    #[arg(long, default_value_t = 50)]
    gen_live_query: usize,
    /// ai_generation: seconds over which the user messages are posted.
    #[arg(long, default_value_t = 2.0)]
    gen_ramp: f64,
    /// ai_generation: port of the in-process fake provider (0: any free one; set it to point
    /// a server started with --url at it).
    #[arg(long, default_value_t = 0)]
    gen_provider_port: u16,
    /// Print a markdown table from the `summary` lines of a results file (one per server) and exit.
    #[arg(long)]
    report: Option<PathBuf>,

    /// Seconds measured per scenario run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured load before each measured run.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Repetitions of the whole scenario list.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,

    /// Messages in the queried session.
    #[arg(long, default_value_t = 10_000)]
    seed_history: usize,
    /// Messages in all (history session included).
    #[arg(long, default_value_t = 100_000)]
    seed_total: usize,
    /// Sessions holding the seeded messages (a further one receives the created messages).
    #[arg(long, default_value_t = 100)]
    seed_sessions: usize,
    /// Requests per `POST /batch`.
    #[arg(long, default_value_t = 500)]
    seed_batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4)]
    seed_parallel: usize,
    /// geo_near: `Place` objects seeded (random GeoPoints over Europe, roughly).
    #[arg(long, default_value_t = 1_000_000)]
    geo_points: usize,
    /// Message counts to grow the database to, in turn (e.g. 100000,1000000,10000000): before
    /// each, messages are copied straight into the database (see `growth`), then the
    /// scenarios run; each line carries the size and the database's size.
    #[arg(long, value_delimiter = ',')]
    growth: Vec<u64>,
    /// geo_near: the `$maxDistanceInKilometers` of each query (5 km holds ~9 of a million
    /// places on average).
    #[arg(long, default_value_t = 5.0)]
    geo_radius_km: f64,
}

/// A Parse Server figure to compare with, and the goal set against it.
pub struct Reference {
    pub scenario: &'static str,
    /// req/s, lowest and highest of the reference runs.
    pub rps: (f64, f64),
    /// p99 in ms, lowest and highest; `None`: not known.
    pub p99_ms: Option<(f64, f64)>,
    /// The goal: this many times the highest reference req/s.
    pub goal_factor: f64,
    /// The goal includes p99 < [`GOAL_P99_MS`] (not for the password scenarios, whose requests
    /// queue for the hashing permits by design).
    pub goal_p99: bool,
    pub note: &'static str,
}

/// Parse Server 9.10 on PostgreSQL 15, 2 cores, 50 connections (shared/peer-bench/RESULTS.md),
/// and for log-in the figure of the issue (bcrypt in JavaScript).
pub const PARSE_REFERENCE: &[Reference] = &[
    Reference {
        scenario: "create_message",
        rps: (589.0, 697.0),
        p99_ms: Some((136.0, 168.0)),
        goal_factor: 10.0,
        goal_p99: true,
        note: "",
    },
    Reference {
        scenario: "query_history",
        rps: (575.0, 581.0),
        p99_ms: Some((143.0, 144.0)),
        goal_factor: 10.0,
        goal_p99: true,
        note: "",
    },
    Reference {
        scenario: "get_by_id",
        rps: (778.0, 873.0),
        p99_ms: Some((108.0, 118.0)),
        goal_factor: 10.0,
        goal_p99: true,
        note: "",
    },
    Reference {
        scenario: "health",
        rps: (2740.0, 2745.0),
        p99_ms: Some((33.0, 35.0)),
        goal_factor: 10.0,
        goal_p99: true,
        note: "",
    },
    Reference {
        scenario: "log_in",
        rps: (9.0, 26.0),
        p99_ms: None,
        goal_factor: 5.0,
        goal_p99: false,
        note: "bcrypt in JavaScript; p99 unknown",
    },
    Reference {
        scenario: "sign_up",
        rps: (9.0, 26.0),
        p99_ms: None,
        goal_factor: 5.0,
        goal_p99: false,
        note: "log-in's figure (same bcrypt cost); no sign-up reference; p99 unknown",
    },
];
const GOAL_P99_MS: f64 = 50.0;

pub fn reference(scenario: &str) -> Option<&'static Reference> {
    PARSE_REFERENCE.iter().find(|r| r.scenario == scenario)
}

/// Server flags the harness adds unless `--server-arg` sets them: no log-in rate limit (every
/// log-in of the benchmark comes from 127.0.0.1).
const DEFAULT_SERVER_ARGS: &[(&str, &str)] = &[("--login-rate-limit", "0")];

const FANOUT: &str = "live_fanout";
const GENERATION: &str = "ai_generation";

/// The default flags not already given, then the given ones. `live_fanout` adds
/// `--live-query-max-connections-per-user` high enough for its subscribers; `ai_generation`
/// the fake provider (`provider`'s URL) and generation limits above its stream count.
fn server_args(cli: &Cli, provider: Option<&str>) -> Vec<String> {
    let given = &cli.server_args;
    let mut defaults: Vec<(String, String)> = DEFAULT_SERVER_ARGS
        .iter()
        .map(|(flag, value)| ((*flag).to_owned(), (*value).to_owned()))
        .collect();
    if cli.scenarios.iter().any(|s| s == FANOUT) {
        let most = cli.subscribers.iter().copied().max().unwrap_or(0);
        let per_user = most.div_ceil(cli.fanout_users.max(1)) + 100;
        defaults.push((
            "--live-query-max-connections-per-user".to_owned(),
            per_user.to_string(),
        ));
    }
    if let Some(url) = provider {
        let most = cli.gen_streams.iter().copied().max().unwrap_or(1);
        let users = cli.gen_users.clamp(1, most.max(1));
        for (flag, value) in [
            ("--llm-base-url", url.to_owned()),
            ("--llm-model", generation::MODEL.to_owned()),
            ("--max-generations", (most + 16).to_string()),
            (
                "--max-generations-per-user",
                (most.div_ceil(users) + 4).to_string(),
            ),
        ] {
            defaults.push((flag.to_owned(), value));
        }
    }
    let mut args = Vec::new();
    for (flag, value) in &defaults {
        let set = given
            .iter()
            .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
        if !set {
            args.push(flag.clone());
            args.push(value.clone());
        }
    }
    args.extend(given.iter().cloned());
    args
}

fn emit(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn default_bin() -> PathBuf {
    let local = PathBuf::from("target/release/parlor");
    if local.exists() {
        return local;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/parlor"
    ))
}

fn main() -> anyhow::Result<()> {
    // The workspace builds reqwest with rustls but no crypto provider of its own choosing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Some(path) = &cli.report {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        print!("{}", report::markdown(&text));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(run(cli))
}

/// Waits until `GET <base>/health` answers 2xx.
async fn wait_healthy(
    client: &Client,
    base: &str,
    server: Option<&mut Server>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut server = server;
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if let Some(server) = server.as_deref_mut()
            && let Some(status) = server.exited()
        {
            bail!(
                "the server exited ({status}) before answering /health; its log:\n{}",
                server.log_tail(40)
            );
        }
        if Instant::now() >= deadline {
            let log = server.map(|s| s.log_tail(40)).unwrap_or_default();
            bail!("no answer from {base}/health after {timeout:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One load: what is sent, and the check its one request by hand must pass.
struct Load {
    /// The name of its result line.
    name: String,
    /// The check of [`sanity`] (a single-load scenario's own name).
    check: &'static str,
    target: Arc<Target>,
}

struct Scenario {
    name: String,
    main: Load,
    /// Run at the same time as `main`, on its own connections (a fifth of them), and reported
    /// on its own line.
    background: Option<Load>,
}

impl Scenario {
    /// Connections of the main load and of the background load.
    fn split(&self, connections: usize) -> (usize, usize) {
        match self.background {
            None => (connections, 0),
            Some(_) => {
                let background = (connections / 5).max(1);
                (connections.saturating_sub(background).max(1), background)
            }
        }
    }
}

const KNOWN_SCENARIOS: &str = "create_message, query_history, graphql_history, get_by_id, health, log_in, sign_up, history_during_log_ins, create_during_field_flood, cloud_function, geo_near";

/// New fields in each body of the `field_flood` load (more than a client may add by default:
/// the load measures what refusing them costs; with `--server-arg
/// --max-new-fields-per-request=0` and `--max-fields-per-class=0` it measures the growth).
const FLOOD_FIELDS: usize = 1000;

/// The suffix of a scenario sent with the master key instead of the seeded user's session token
/// (`query_history_master`): only for the scenarios that take a session token.
const MASTER_SUFFIX: &str = "_master";

/// The scenarios sent as the seeded user (session token), which take a `_master` twin.
const USER_SCENARIOS: [&str; 6] = [
    "create_message",
    "query_history",
    "graphql_history",
    "get_by_id",
    "cloud_function",
    "geo_near",
];

/// The history page by GraphQL: the 50 newest messages of a session with their sender and
/// session expanded (Parse Server's GraphQL API, which Parlor's speaks too).
const GRAPHQL_HISTORY: &str = "query History($s: ID!) { messages(where: {session: {have: {objectId: {equalTo: $s}}}}, order: [createdAt_DESC], first: 50) { edges { node { objectId content role createdAt sender { objectId username } session { objectId title } } } } }";

/// The GraphQL endpoint beside a REST mount (`…/parse` → `…/graphql`).
fn graphql_url(base: &str) -> String {
    let root = base.trim_end_matches('/');
    let root = root.rsplit_once('/').map_or(root, |(root, _)| root);
    format!("{root}/graphql")
}

/// The target of a single-load scenario; the user scenarios are sent as `user` (the seeded
/// user's session token, or the master key for their `_master` twins).
fn target(name: &str, base: &str, seeded: &seed::Seeded, user: &Auth) -> anyhow::Result<Target> {
    let auth = user.clone();
    Ok(match name {
        "create_message" => {
            let mut body = json!({
                "content": format!("bench message: {}", text(160)),
                "role": "user",
                "session": pointer("ChatSession", &seeded.write_session),
            });
            if let Some(id) = &seeded.user_id {
                body["sender"] = pointer("_User", id);
                body["ACL"] = json!({ id.as_str(): { "read": true, "write": true } });
            }
            let body: &'static str = Box::leak(body.to_string().into_boxed_str());
            Target::Fixed {
                method: Method::POST,
                url: format!("{base}/classes/Message"),
                body: Some(body),
                auth,
            }
        }
        "query_history" => {
            let filter =
                json!({ "session": pointer("ChatSession", &seeded.history_session) }).to_string();
            let url = format!(
                "{base}/classes/Message?where={}&order=-createdAt&limit=50",
                encode(&filter)
            );
            Target::Fixed {
                method: Method::GET,
                url,
                body: None,
                auth,
            }
        }
        "graphql_history" => {
            let body =
                json!({"query": GRAPHQL_HISTORY, "variables": {"s": seeded.history_session}});
            let body: &'static str = Box::leak(body.to_string().into_boxed_str());
            Target::Fixed {
                method: Method::POST,
                url: graphql_url(base),
                body: Some(body),
                auth,
            }
        }
        "get_by_id" => {
            if seeded.message_ids.is_empty() {
                bail!("get_by_id needs seeded messages");
            }
            Target::RandomId {
                prefix: format!("{base}/classes/Message/"),
                ids: Arc::new(seeded.message_ids.clone()),
                auth,
            }
        }
        // `POST /functions/latestMessage` of `bench/cloud/main.js` (the server must run it:
        // `--server-arg=--cloud=bench/cloud/main.js`): one Parse.Query in Cloud Code.
        "cloud_function" => {
            let body = json!({ "sessionId": seeded.history_session });
            let body: &'static str = Box::leak(body.to_string().into_boxed_str());
            Target::Fixed {
                method: Method::POST,
                url: format!("{base}/functions/latestMessage"),
                body: Some(body),
                auth,
            }
        }
        // `$nearSphere` within `--geo-radius-km` of a random point, 20 nearest, over the
        // `--geo-points` places seeded for it.
        "geo_near" => {
            if seeded.geo_queries.is_empty() {
                bail!("geo_near needs seeded places");
            }
            Target::RandomId {
                prefix: format!("{base}/classes/Place?limit=20&where="),
                ids: Arc::new(seeded.geo_queries.clone()),
                auth,
            }
        }
        "health" => Target::Fixed {
            method: Method::GET,
            url: format!("{base}/health"),
            body: None,
            auth: Auth::Anonymous,
        },
        "log_in" => {
            let body = json!({ "username": seeded.username, "password": seeded.password });
            let body: &'static str = Box::leak(body.to_string().into_boxed_str());
            Target::Fixed {
                method: Method::POST,
                url: format!("{base}/login"),
                body: Some(body),
                auth: Auth::Anonymous,
            }
        }
        "sign_up" => {
            // `bench_su_<pid>_<n>`: unique within the run, and across runs on a kept database.
            let before = format!("{{\"username\":\"bench_su_{}_", std::process::id());
            let after = format!(
                "\",\"password\":{}}}",
                Value::String(seeded.password.clone())
            );
            Target::Unique {
                url: format!("{base}/users"),
                parts: vec![before, after],
                counter: AtomicU64::new(0),
            }
        }
        "field_flood" => {
            // An anonymous device registration naming FLOOD_FIELDS fields `fl_<pid>_<n>_<k>`
            // that `_Installation` does not have: the hostile probe of issue 10, which held
            // the single writer for seconds per request before schema growth was bounded.
            let prefix = format!("fl_{}_", std::process::id());
            // Each part is followed by `n`, but the last: `…"installationId":"<p><n>",
            // "<p><n>_0":0, …, "<p><n>_K":K}`.
            let mut parts = vec![
                format!("{{\"deviceType\":\"ios\",\"installationId\":\"{prefix}"),
                format!("\",\"{prefix}"),
            ];
            for k in 0..FLOOD_FIELDS - 1 {
                parts.push(format!("_{k}\":{k},\"{prefix}"));
            }
            let last = FLOOD_FIELDS - 1;
            parts.push(format!("_{last}\":{last}}}"));
            Target::Unique {
                url: format!("{base}/installations"),
                parts,
                counter: AtomicU64::new(0),
            }
        }
        other => bail!("unknown scenario {other} (known: {KNOWN_SCENARIOS})"),
    })
}

/// The scenarios, each load's requests spread over the instances at `bases`.
fn build_scenarios(
    cli: &Cli,
    bases: &[String],
    seeded: &seed::Seeded,
) -> anyhow::Result<Vec<Scenario>> {
    let session = seeded.session_token.clone().map(Auth::Session);
    let load_as = |name: &str, check: &'static str, master: bool| -> anyhow::Result<Load> {
        let user = if master {
            Auth::Master
        } else if let Some(session) = &session {
            session.clone()
        } else if USER_SCENARIOS.contains(&check) {
            bail!("{name} is sent with the seeded user's session token, and its sign-up failed");
        } else {
            Auth::Anonymous
        };
        let targets = bases.iter().map(|base| target(check, base, seeded, &user));
        Ok(Load {
            name: name.to_owned(),
            check,
            target: Arc::new(Target::spread(targets.collect::<anyhow::Result<_>>()?)),
        })
    };
    let load = |name: &str, check: &'static str| load_as(name, check, false);
    let mut scenarios = Vec::new();
    for name in cli.scenarios.iter().filter(|name| *name != FANOUT) {
        let scenario = match name.as_str() {
            "history_during_log_ins" => Scenario {
                name: name.clone(),
                main: load("history_during_log_ins", "query_history")?,
                background: Some(load("log_in_background", "log_in")?),
            },
            "create_during_field_flood" => Scenario {
                name: name.clone(),
                main: load("create_during_field_flood", "create_message")?,
                background: Some(load("field_flood_background", "field_flood")?),
            },
            single => {
                let (plain, master) = match single.strip_suffix(MASTER_SUFFIX) {
                    Some(plain) if USER_SCENARIOS.contains(&plain) => (plain, true),
                    _ => (single, false),
                };
                let check = KNOWN_SCENARIOS
                    .split(", ")
                    .find(|known| *known == plain)
                    .with_context(|| {
                        format!("unknown scenario {single} (known: {KNOWN_SCENARIOS}, and {MASTER_SUFFIX} after {})", USER_SCENARIOS.join(", "))
                    })?;
                Scenario {
                    name: name.clone(),
                    main: load_as(single, check, master)?,
                    background: None,
                }
            }
        };
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

/// One request by hand, checked, so that a broken scenario is reported rather than measured.
async fn sanity(client: &Client, keys: &Keys, check: &str, target: &Target) -> Result<(), String> {
    let auth = target.auth();
    let (method, url, body) = match target {
        Target::Fixed {
            method, url, body, ..
        } => (
            method.clone(),
            url.clone(),
            body.map(|b| serde_json::from_str::<Value>(b).unwrap_or(Value::Null)),
        ),
        Target::RandomId { prefix, ids, .. } => {
            (Method::GET, format!("{prefix}{}", ids[ids.len() / 2]), None)
        }
        Target::Unique { url, .. } => (
            Method::POST,
            url.clone(),
            target
                .next_body()
                .map(|b| serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)),
        ),
        Target::Spread(_) => return Err("check each instance's target on its own".to_owned()),
    };
    let (status, value) = api_as(client, keys, &auth, method, &url, body.as_ref())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let shown = || truncate(&value.to_string(), 300);
    if check == "field_flood" {
        // Refused (`255`: past the bounds on schema growth) or registered (bounds off): both
        // are this load's normal answers.
        return match (status, value.get("code").and_then(Value::as_i64)) {
            (201, _) | (400, Some(255)) => Ok(()),
            _ => Err(format!("status {status}: {}", shown())),
        };
    }
    if !(200..300).contains(&status) {
        return Err(format!("status {status}: {}", shown()));
    }
    let has = |field: &str| value.get(field).and_then(Value::as_str).is_some();
    match check {
        "create_message" | "get_by_id" if !has("objectId") => {
            Err(format!("no objectId: {}", shown()))
        }
        "cloud_function" if value.get("result").is_none_or(Value::is_null) => {
            Err(format!("no result: {}", shown()))
        }
        "query_history" => {
            let results = value
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("no results: {}", shown()))?;
            if results.len() != 50 {
                return Err(format!("expected 50 results, got {}", results.len()));
            }
            let dates: Vec<&str> = results
                .iter()
                .filter_map(|r| r.get("createdAt").and_then(Value::as_str))
                .collect();
            if dates.len() != 50 || dates.windows(2).any(|w| w[0] < w[1]) {
                return Err("results not ordered by -createdAt".to_owned());
            }
            Ok(())
        }
        "graphql_history" => {
            if value.get("errors").is_some() {
                return Err(format!("errors: {}", shown()));
            }
            let edges = value
                .pointer("/data/messages/edges")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("no edges: {}", shown()))?;
            if edges.len() != 50 {
                return Err(format!("expected 50 edges, got {}", edges.len()));
            }
            let node =
                |edge: &Value, path: &str| edge.pointer(path).cloned().unwrap_or(Value::Null);
            let dates: Vec<String> = edges
                .iter()
                .filter_map(|edge| node(edge, "/node/createdAt").as_str().map(str::to_owned))
                .collect();
            if dates.len() != 50 || dates.windows(2).any(|w| w[0] < w[1]) {
                return Err("edges not ordered by -createdAt".to_owned());
            }
            if edges
                .iter()
                .any(|edge| !node(edge, "/node/session/objectId").is_string())
            {
                return Err(format!("session not expanded: {}", shown()));
            }
            Ok(())
        }
        "log_in" if !has("sessionToken") || !has("objectId") => {
            Err(format!("no sessionToken or objectId: {}", shown()))
        }
        "sign_up" if status != 201 => Err(format!("status {status}, not 201: {}", shown())),
        "sign_up" if !has("sessionToken") || !has("objectId") => {
            Err(format!("no sessionToken or objectId: {}", shown()))
        }
        _ => Ok(()),
    }
}

/// The scenario-independent fields of a result line, merged into `line`, key order
/// `scenario, run, label, connections` first.
fn finish_line(mut line: Value, fields: Value) -> Value {
    if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
        for (key, value) in fields {
            line.insert(key, value);
        }
    }
    let order = ["scenario", "run", "label", "connections"];
    let mut ordered = serde_json::Map::new();
    if let Value::Object(map) = &line {
        for key in order {
            if let Some(value) = map.get(key) {
                ordered.insert(key.to_owned(), value.clone());
            }
        }
        for (key, value) in map {
            if !ordered.contains_key(key) {
                ordered.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(ordered)
}

/// Server (all instances), load generator and machine CPU seconds so far.
fn cpu_now(pids: &[u32], self_pid: u32) -> [Option<f64>; 3] {
    [
        topology::cpu_seconds(pids),
        cpu_seconds(self_pid),
        machine_busy_seconds(),
    ]
}

/// Runs one scenario (warm-up, then measured) and returns its result lines: one, or two for a
/// scenario with a background load (main first).
async fn measure(
    cli: &Cli,
    client: &Client,
    keys: &Keys,
    scenario: &Scenario,
    connections: usize,
    run: usize,
    pids: &[u32],
) -> Vec<Value> {
    let duration = Duration::from_secs_f64(cli.duration);
    let warmup = Duration::from_secs_f64(cli.warmup);
    let (main_connections, background_connections) = scenario.split(connections);
    let both = |time: Duration, record: bool| {
        let main = load::run(
            client,
            keys,
            scenario.main.target.clone(),
            main_connections,
            time,
            record,
        );
        let background = scenario.background.as_ref().map(|background| {
            load::run(
                client,
                keys,
                background.target.clone(),
                background_connections,
                time,
                record,
            )
        });
        async move {
            match background {
                Some(background) => {
                    let (main, background) = tokio::join!(main, background);
                    (main, Some(background))
                }
                None => (main.await, None),
            }
        }
    };
    if !warmup.is_zero() {
        both(warmup, false).await;
    }
    let self_pid = std::process::id();
    let before = cpu_now(pids, self_pid);
    let before_each = topology::cpu_each(pids);
    let postgres_before = topology::postgres_cpu_seconds();
    let (main, background) = both(duration, true).await;
    let after = cpu_now(pids, self_pid);
    let after_each = topology::cpu_each(pids);
    let postgres = postgres_before.zip(topology::postgres_cpu_seconds());
    let elapsed = main["duration_s"].as_f64().unwrap_or(cli.duration);
    let [server_cpu, bench_cpu, busy] =
        [0, 1, 2].map(|i| before[i].zip(after[i]).map(|(b, a)| a - b));
    let cpu = |requests: Option<f64>| {
        json!({
            "server_cores": server_cpu.map(|s| round2(s / elapsed)),
            "load_generator_cores": bench_cpu.map(|s| round2(s / elapsed)),
            "machine_busy_cores": busy.map(|s| round2(s / elapsed)),
            "server_us_per_request": server_cpu.zip(requests.filter(|&r| r > 0.0)).map(|(s, r)| round1(s * 1e6 / r)),
            "server_cores_by_instance": (pids.len() > 1).then(|| before_each.iter().zip(&after_each)
                .map(|(b, a)| b.zip(*a).map(|(b, a)| round2((a - b) / elapsed))).collect::<Vec<_>>()),
            "postgres_cores": postgres.filter(|_| cli.backend.starts_with("postgres")).map(|(b, a)| round2((a - b) / elapsed)),
        })
    };
    let common = |load: &Load, cpu: Value, with: Option<(&str, usize)>| {
        let name = load.name.as_str();
        let auth = load.target.auth().label();
        let mut fields = json!({
            "scenario": name, "run": run, "label": cli.label, "at": now(),
            "auth": auth,
            "backend": cli.backend, "instances": cli.instances,
            "cpu": cpu,
            "server_memory": topology::memory(pids),
            "loadavg": loadavg(),
        });
        if let Some((other, connections)) = with {
            // The CPU figures cover both loads; CPU per request is left out.
            fields["concurrent_with"] = json!({ "scenario": other, "connections": connections });
        }
        fields
    };
    match (background, &scenario.background) {
        (Some(background), Some(load)) => vec![
            finish_line(
                main,
                common(
                    &scenario.main,
                    cpu(None),
                    Some((&load.name, background_connections)),
                ),
            ),
            finish_line(
                background,
                common(
                    load,
                    cpu(None),
                    Some((&scenario.main.name, main_connections)),
                ),
            ),
        ],
        _ => {
            let requests = main["requests"].as_f64();
            vec![finish_line(
                main,
                common(&scenario.main, cpu(requests), None),
            )]
        }
    }
}

/// A row of the summary: the figures, and the goal when there is one.
fn summary_row(line: &Value) -> Value {
    let name = line["scenario"].as_str().unwrap_or_default();
    let rps = line["rps_ok"].as_f64().unwrap_or(0.0);
    let p99 = line["latency_ms"]["p99"].as_f64();
    let no_errors = line["errors"].as_u64() == Some(0);
    let mut row = json!({
        "scenario": name, "run": line["run"], "connections": line["connections"],
        "rps": line["rps"], "rps_ok": rps, "p50_ms": line["latency_ms"]["p50"], "p99_ms": p99,
        "max_ms": line["latency_ms"]["max"], "errors": line["errors"],
        "server_us_per_request": line["cpu"]["server_us_per_request"],
    });
    if line.get("concurrent_with").is_some() {
        row["concurrent_with"] = line["concurrent_with"].clone();
    }
    if name == "history_during_log_ins" {
        row["goal"] = json!(format!(
            "p99 < {GOAL_P99_MS} ms while log-ins run, no errors"
        ));
        row["meets_goal"] = json!(p99.is_some_and(|p| p < GOAL_P99_MS) && no_errors);
    } else if let Some(reference) = reference(name).filter(|_| line["connections"] == 50) {
        let (_, best) = reference.rps;
        row["parse_reference"] = json!({
            "rps": [reference.rps.0, reference.rps.1],
            "p99_ms": reference.p99_ms.map(|(lo, hi)| json!([lo, hi])),
            "note": reference.note,
        });
        row["x_parse_best"] = json!(round1(rps / best));
        let p99_ok = !reference.goal_p99 || p99.is_some_and(|p| p < GOAL_P99_MS);
        row["goal"] = json!(format!(
            "≥ {}× {best} req/s{}, no errors",
            reference.goal_factor,
            if reference.goal_p99 {
                format!(", p99 < {GOAL_P99_MS} ms")
            } else {
                String::new()
            }
        ));
        row["meets_goal"] = json!(rps >= reference.goal_factor * best && p99_ok && no_errors);
    }
    row
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let database = match &cli.url {
        Some(_) => None,
        None => Some(topology::Database::new(
            cli.database.as_deref(),
            cli.keep_db,
        )?),
    };
    cli.instances = cli.instances.max(1);
    if cli.instances > 1 && !database.as_ref().is_some_and(|d| d.shared()) {
        bail!(
            "--instances {} needs a PostgreSQL --database",
            cli.instances
        );
    }
    cli.backend = topology::backend_tag(database.as_ref(), cli.instances);
    if cli.label == "parlor" && cli.backend != "sqlite" && cli.url.is_none() {
        cli.label = format!("parlor ({})", cli.backend);
    }
    if let Some(unknown) = cli.scenarios.iter().find(|name| {
        name.as_str() != "history_during_log_ins"
            && name.as_str() != FANOUT
            && name.as_str() != GENERATION
            && !KNOWN_SCENARIOS.split(", ").any(|k| k == *name)
            && !name
                .strip_suffix(MASTER_SUFFIX)
                .is_some_and(|plain| USER_SCENARIOS.contains(&plain))
    }) {
        bail!(
            "unknown scenario {unknown} (known: {KNOWN_SCENARIOS}, {FANOUT}, {GENERATION}, and {MASTER_SUFFIX} after {})",
            USER_SCENARIOS.join(", ")
        );
    }
    let fanout = cli.scenarios.iter().any(|s| s == FANOUT);
    let generation = cli.scenarios.iter().any(|s| s == GENERATION);
    let http_scenarios = cli.scenarios.iter().any(|s| s != FANOUT && s != GENERATION);
    // The fake LLM provider of `ai_generation` must listen before the server starts.
    let provider = if generation {
        let provider = generation::FakeProvider::start(
            Instant::now(),
            cli.gen_tokens,
            cli.gen_rate,
            cli.gen_provider_port,
        )?;
        eprintln!("[bench] fake LLM provider at {}", provider.base_url());
        Some(provider)
    } else {
        None
    };
    // Each subscriber is a socket here and one in the server (which inherits the limit).
    let fd_limit = fanout::raise_fd_limit();
    if fanout {
        let most = cli.subscribers.iter().copied().max().unwrap_or(0) as u64;
        if fd_limit.is_some_and(|limit| limit < most + 200) {
            eprintln!(
                "[bench] warning: open-file limit {fd_limit:?} is below {most} subscribers + 200; raise `ulimit -n`"
            );
        }
    }
    let started = now();
    let load_before = loadavg();
    let machine = machine_info();
    let max_connections = cli.connections.iter().copied().max().unwrap_or(50);
    let client = Client::builder()
        .pool_max_idle_per_host(max_connections.max(64))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .http1_only()
        .build()
        .context("building the HTTP client")?;
    let keys = Keys {
        app_id: cli.app_id.clone(),
        master_key: cli.master_key.clone(),
    };

    // Dropped in reverse order: the servers stop before the database's schema is dropped.
    let mut servers: Vec<Server> = Vec::new();
    let (bases, pids, database_shown, bin) = match &database {
        // `--url`: a server already running.
        None => (
            vec![
                cli.url
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned(),
            ],
            cli.server_pid.into_iter().collect::<Vec<u32>>(),
            Value::Null,
            Value::Null,
        ),
        Some(database) => {
            let bin = cli.parlor_bin.clone().unwrap_or_else(default_bin);
            eprintln!(
                "[bench] starting {} ({} instance(s), {})",
                bin.display(),
                cli.instances,
                database.backend()
            );
            let provider_url = provider.as_ref().map(|p| p.base_url());
            let extra_args = server_args(&cli, provider_url.as_deref());
            for i in 0..cli.instances {
                let mut started = Server::start(&StartOptions {
                    bin: &bin,
                    app_id: &cli.app_id,
                    master_key: &cli.master_key,
                    keep_db: cli.keep_db,
                    extra_args: &extra_args,
                    database: database.server_url(),
                })?;
                // The first sets the fresh schema up alone: instances starting at once on an
                // empty schema can fail creating the same classes ("duplicate value").
                if i == 0 && cli.instances > 1 {
                    let base = started.base_url.clone();
                    let timeout = Duration::from_secs(60);
                    wait_healthy(&client, &base, Some(&mut started), timeout).await?;
                }
                servers.push(started);
            }
            let mut shown = database.describe();
            shown["url"] = json!(servers.first().map(|s| s.database.clone()));
            (
                servers.iter().map(|s| s.base_url.clone()).collect(),
                servers.iter().map(|s| s.pid).collect(),
                shown,
                json!(bin.display().to_string()),
            )
        }
    };
    let base = bases.first().cloned().unwrap_or_default();
    let pid = pids.first().copied();
    let self_pid = std::process::id();
    emit(&json!({
        "event": "start", "date": started, "label": cli.label, "backend": cli.backend,
        "instances": cli.instances, "server_url": base, "server_urls": bases, "server_pid": pid,
        "server_pids": pids, "server_bin": bin, "database": database_shown, "machine": machine,
        "loadavg": load_before,
        "load_generator": { "threads": cli.threads, "pid": self_pid, "open_file_limit": fd_limit },
    }));
    let ready = Instant::now();
    for (i, base) in bases.iter().enumerate() {
        wait_healthy(&client, base, servers.get_mut(i), Duration::from_secs(60)).await?;
        eprintln!(
            "[bench] {base} healthy after {:.1} s",
            ready.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem = |phase: &str| {
        let value = json!({ "event": "memory", "phase": phase, "pid": pid, "at": now(), "backend": cli.backend, "memory": topology::memory(&pids) });
        emit(&value);
        value
    };
    let mem_idle = mem("idle");

    let mut fanout_lines = Vec::new();
    if fanout {
        let options = fanout::FanoutOptions {
            subscribers: cli.subscribers.clone(),
            messages: cli.fanout_messages,
            rate: cli.fanout_rate,
            connect_batch: cli.fanout_connect_batch,
            users: cli.fanout_users,
            drain: cli.fanout_drain,
            label: cli.label.clone(),
        };
        // Subscribers on the first instance, the writer on the second (if any).
        let servers_used = fanout::Servers {
            subscribe_base: &base,
            write_base: bases.get(1).unwrap_or(&base),
            pids: &pids,
        };
        match fanout::run(&client, &keys, &servers_used, &options, &emit).await {
            Ok(lines) => fanout_lines = lines,
            Err(error) => {
                let log = topology::log_tails(&servers, 20);
                bail!("live_fanout failed: {error:#}\n{log}");
            }
        }
    }

    let mut generation_lines = Vec::new();
    if let Some(provider) = &provider {
        let options = generation::GenerationOptions {
            streams: cli.gen_streams.clone(),
            tokens: cli.gen_tokens,
            rate: cli.gen_rate,
            users: cli.gen_users,
            live_query: cli.gen_live_query,
            ramp: cli.gen_ramp,
            label: cli.label.clone(),
        };
        match generation::run(&client, &keys, &base, pid, provider, &options, &emit).await {
            Ok(lines) => generation_lines = lines,
            Err(error) => {
                let log = topology::log_tails(&servers, 20);
                bail!("ai_generation failed: {error:#}\n{log}");
            }
        }
    }

    let mut broken: Vec<(String, String)> = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    let mut seed_report = Value::Null;
    let mut mem_seeded = Value::Null;
    if http_scenarios {
        eprintln!(
            "[bench] seeding {} messages ({} in the history session) ...",
            cli.seed_total, cli.seed_history
        );
        let options = SeedOptions {
            history: cli.seed_history,
            total: cli.seed_total,
            sessions: cli.seed_sessions.max(1),
            batch: cli.seed_batch,
            parallel: cli.seed_parallel,
        };
        let seeded = match seed::seed(&client, &keys, &base, &options).await {
            Ok(seeded) => seeded,
            Err(error) => {
                let log = topology::log_tails(&servers, 20);
                bail!("seeding failed: {error:#}\n{log}");
            }
        };
        emit(&seeded.report);
        eprintln!("[bench] seeded: {}", seeded.report);
        seed_report = seeded.report.clone();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut seeded = seeded;
        if cli
            .scenarios
            .iter()
            .any(|name| name.trim_end_matches(MASTER_SUFFIX) == "geo_near")
        {
            eprintln!("[bench] seeding {} places ...", cli.geo_points);
            let (queries, report) = seed::seed_places(
                &client,
                &keys,
                &base,
                cli.geo_points,
                cli.seed_batch,
                cli.seed_parallel,
                cli.geo_radius_km,
            )
            .await?;
            emit(&report);
            eprintln!("[bench] seeded: {report}");
            seeded.geo_queries = queries;
        }
        mem_seeded = mem("after_seed");

        let growth_db = if cli.growth.is_empty() {
            None
        } else {
            let postgres = match &database {
                Some(topology::Database::Postgres {
                    admin_url, schema, ..
                }) => Some((admin_url.clone(), schema.clone())),
                _ => None,
            };
            let server_database = servers
                .first()
                .map(|s| s.database.clone())
                .unwrap_or_default();
            Some(growth::GrowthDb::new(&server_database, postgres)?)
        };
        let history_message = match &growth_db {
            Some(_) => {
                let filter = json!({ "session": pointer("ChatSession", &seeded.history_session) });
                let url = format!(
                    "{base}/classes/Message?where={}&limit=1",
                    encode(&filter.to_string())
                );
                let found = seed::api_ok(&client, &keys, Method::GET, &url, None).await?;
                found
                    .pointer("/results/0/objectId")
                    .and_then(Value::as_str)
                    .context("no message in the history session")?
                    .to_owned()
            }
            None => String::new(),
        };
        let stages: Vec<Option<u64>> = match cli.growth.is_empty() {
            true => vec![None],
            false => cli.growth.iter().copied().map(Some).collect(),
        };
        for stage in stages {
            let mut grown = Value::Null;
            if let (Some(size), Some(db)) = (stage, growth_db.clone()) {
                eprintln!("[bench] growing the database to {size} messages ...");
                let history_message = history_message.clone();
                let (report, ids) = tokio::task::spawn_blocking(move || {
                    let report = db.grow(size, &history_message)?;
                    anyhow::Ok((report, db.sample_ids(10_000)?))
                })
                .await
                .context("growth task")??;
                seeded.message_ids = ids;
                let mut line = json!({ "event": "growth", "label": cli.label, "memory": mem("after_growth")["memory"].clone() });
                if let (Value::Object(line), Value::Object(fields)) = (&mut line, &report) {
                    line.extend(fields.clone());
                }
                emit(&line);
                eprintln!("[bench] grown: {line}");
                grown = report;
            }
            let scenarios = build_scenarios(&cli, &bases, &seeded)?;
            for scenario in &scenarios {
                let loads = std::iter::once(&scenario.main).chain(scenario.background.as_ref());
                let parts =
                    loads.flat_map(|load| load.target.parts().into_iter().map(move |t| (load, t)));
                for (load, target) in parts {
                    if let Err(error) = sanity(&client, &keys, load.check, target).await {
                        let error = format!("{}: {error}", load.name);
                        eprintln!(
                            "[bench] {} fails its check, not measured: {error}",
                            scenario.name
                        );
                        emit(
                            &json!({ "scenario": scenario.name, "label": cli.label, "skipped": true, "error": error }),
                        );
                        broken.push((scenario.name.clone(), error));
                        break;
                    }
                }
            }

            for run in 1..=cli.runs {
                for &connections in &cli.connections {
                    for scenario in &scenarios {
                        if broken.iter().any(|(name, _)| name == &scenario.name) {
                            continue;
                        }
                        eprintln!(
                            "[bench] run {run}: {} with {connections} connections for {:.0} s ...",
                            scenario.name, cli.duration
                        );
                        let lines =
                            measure(&cli, &client, &keys, scenario, connections, run, &pids).await;
                        for mut line in lines {
                            if !grown.is_null() {
                                line["growth"] = grown.clone();
                            }
                            emit(&line);
                            eprintln!(
                                "[bench]   {} ({} conns): {:.0} req/s, p50 {} ms, p99 {} ms, errors {}",
                                line["scenario"].as_str().unwrap_or_default(),
                                line["connections"],
                                line["rps"].as_f64().unwrap_or(0.0),
                                line["latency_ms"]["p50"],
                                line["latency_ms"]["p99"],
                                line["errors"]
                            );
                            results.push(line);
                        }
                    }
                }
            }
        }
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_end = mem("end");
    for server in &mut servers {
        if let Some(status) = server.exited() {
            eprintln!(
                "[bench] the server exited during the run ({status}); log:\n{}",
                server.log_tail(20)
            );
        }
        server.stop(Duration::from_secs(10));
    }

    let table: Vec<Value> = results.iter().map(summary_row).collect();
    let peak = mem_end["memory"]["peak_rss_mb"].clone();
    emit(&json!({
        "event": "summary",
        "date": started,
        "finished": now(),
        "label": cli.label,
        "backend": cli.backend,
        "instances": cli.instances,
        "server_url": base,
        "machine": machine_info(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "settings": {
            "connections": cli.connections, "duration_s": cli.duration, "warmup_s": cli.warmup, "runs": cli.runs,
            "load_generator_threads": cli.threads,
            "ai_generation": generation.then(|| json!({ "streams": cli.gen_streams, "tokens": cli.gen_tokens, "rate_per_s": cli.gen_rate, "users": cli.gen_users, "live_query": cli.gen_live_query, "ramp_s": cli.gen_ramp })),
            "fanout": fanout.then(|| json!({ "subscribers": cli.subscribers, "messages": cli.fanout_messages, "rate_per_s": cli.fanout_rate, "connect_batch": cli.fanout_connect_batch, "users": cli.fanout_users, "drain_s": cli.fanout_drain })),
            "seed": { "history": cli.seed_history, "total": cli.seed_total, "sessions": cli.seed_sessions, "batch": cli.seed_batch, "parallel": cli.seed_parallel },
        },
        "seed": seed_report,
        "memory_mb": {
            "idle_rss": mem_idle["memory"]["rss_mb"],
            "after_seed_rss": mem_seeded["memory"]["rss_mb"],
            "end_rss": mem_end["memory"]["rss_mb"],
            "peak_rss": peak,
        },
        "results": table,
        "live_fanout": fanout_lines.iter().map(fanout::summary_row).collect::<Vec<_>>(),
        "ai_generation": generation_lines.iter().map(generation::summary_row).collect::<Vec<_>>(),
        "skipped": broken.iter().map(|(name, error)| json!({ "scenario": name, "error": error })).collect::<Vec<_>>(),
        "goal": format!("at 50 connections: ≥ 10× Parse Server's best req/s and p99 < {GOAL_P99_MS} ms, no errors; log-in and sign-up ≥ 5× (no p99 goal); history during log-ins p99 < {GOAL_P99_MS} ms"),
    }));
    if cli.keep_db {
        for server in &servers {
            eprintln!("[bench] server folder kept: {}", server.dir_path.display());
        }
    }
    Ok(())
}
