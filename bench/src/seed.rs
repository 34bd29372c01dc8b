//! Seeding through the public REST API with the master key: one user, the chat sessions, and
//! the messages through `POST /batch` with `"transaction": true`, several batches in flight.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use reqwest::{Client, Method};
use serde_json::{Value, json};

use crate::load::{Auth, Keys, Rng};
use crate::server::round1;

/// A JSON request with the master key; returns the status and the decoded body.
pub async fn api(
    client: &Client,
    keys: &Keys,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    api_as(client, keys, &Auth::Master, method, url, body).await
}

/// A JSON request sent as `auth`; returns the status and the decoded body.
pub async fn api_as(
    client: &Client,
    keys: &Keys,
    auth: &Auth,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = auth.apply(
        client
            .request(method.clone(), url)
            .header("X-Parse-Application-Id", &keys.app_id),
        keys,
    );
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("{method} {url}: reading the body"))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// Like [`api`], but a non-2xx answer is an error.
pub async fn api_ok(
    client: &Client,
    keys: &Keys,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let (status, value) = api(client, keys, method.clone(), url, body).await?;
    if !(200..300).contains(&status) {
        bail!(
            "{method} {url} -> {status} {}",
            truncate(&value.to_string(), 400)
        );
    }
    Ok(value)
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub fn pointer(class_name: &str, object_id: &str) -> Value {
    json!({ "__type": "Pointer", "className": class_name, "objectId": object_id })
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub struct SeedOptions {
    pub history: usize,
    pub total: usize,
    pub sessions: usize,
    pub batch: usize,
    pub parallel: usize,
}

pub struct Seeded {
    /// The session holding `history` messages (queried by the history scenario).
    pub history_session: String,
    /// A session that receives the messages of the create scenario.
    pub write_session: String,
    pub user_id: Option<String>,
    /// The seeded user's session token from its sign-up: the identity of the client scenarios.
    pub session_token: Option<String>,
    /// The seeded user's credentials (log-in scenarios); the user exists only if `user_id` is set.
    pub username: String,
    pub password: String,
    /// Every seeded message id.
    pub message_ids: Vec<String>,
    pub report: Value,
    /// `geo_near`'s `where` objects (URL-encoded), once [`seed_places`] has run.
    pub geo_queries: Vec<String>,
}

const LOREM: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ";

pub fn text(len: usize) -> String {
    LOREM.repeat(len / LOREM.len() + 1)[..len].to_owned()
}

/// `POST /batch` with `transaction: true`; returns the objectIds of the created objects.
async fn batch_create(
    client: &Client,
    keys: &Keys,
    base: &str,
    mount: &str,
    class_name: &str,
    bodies: Vec<Value>,
) -> anyhow::Result<Vec<String>> {
    let requests: Vec<Value> = bodies
        .into_iter()
        .map(|body| json!({ "method": "POST", "path": format!("{mount}/classes/{class_name}"), "body": body }))
        .collect();
    let count = requests.len();
    let result = api_ok(
        client,
        keys,
        Method::POST,
        &format!("{base}/batch"),
        Some(&json!({ "requests": requests, "transaction": true })),
    )
    .await?;
    let items = result.as_array().context("batch answer is not an array")?;
    if items.len() != count {
        bail!("batch answered {} items for {count} requests", items.len());
    }
    items
        .iter()
        .map(|item| {
            item.pointer("/success/objectId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("batch item failed: {}", truncate(&item.to_string(), 300)))
        })
        .collect()
}

/// Creates `chunks` (each one `/batch` in a transaction) with `parallel` requests at a time;
/// the objectIds in the order of the bodies.
async fn create_in_batches(
    client: &Client,
    keys: &Keys,
    base: &str,
    mount: &str,
    class_name: &'static str,
    chunks: Vec<Vec<Value>>,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let chunk_count = chunks.len();
    let mut queue: Vec<(usize, Vec<Value>)> = chunks.into_iter().enumerate().collect();
    queue.reverse();
    let queue = Arc::new(Mutex::new(queue));
    let ids: Arc<Mutex<Vec<Option<Vec<String>>>>> = Arc::new(Mutex::new(vec![None; chunk_count]));
    let mut tasks = Vec::new();
    for _ in 0..parallel.max(1) {
        let (client, keys, base, mount, queue, ids) = (
            client.clone(),
            keys.clone(),
            base.to_owned(),
            mount.to_owned(),
            queue.clone(),
            ids.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some((index, bodies)) = next else {
                    return anyhow::Ok(());
                };
                let created =
                    batch_create(&client, &keys, &base, &mount, class_name, bodies).await?;
                let mut ids = ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                ids[index] = Some(created);
                let done = ids.iter().filter(|c| c.is_some()).count();
                if done % 200 == 0 || done == chunk_count {
                    eprintln!("[seed] {class_name}: {done}/{chunk_count} batches");
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("seed task panicked")??;
    }
    let ids = ids
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .drain(..)
        .flatten()
        .flatten()
        .collect();
    Ok(ids)
}

/// The region `geo_near`'s places are spread over, uniformly: Europe, roughly (latitude 35–60°,
/// longitude −10–30°), so that a query's neighbourhood holds a realistic number of places.
const GEO_REGION: ((f64, f64), (f64, f64)) = ((35.0, 60.0), (-10.0, 30.0));

/// Seeds `count` `Place` objects (`location`: a GeoPoint, public read) for `geo_near`; the
/// queries it sends: `where` objects with `$nearSphere` around random centres of the region,
/// within `radius_km`, URL-encoded.
pub async fn seed_places(
    client: &Client,
    keys: &Keys,
    base: &str,
    count: usize,
    batch: usize,
    parallel: usize,
    radius_km: f64,
) -> anyhow::Result<(Vec<String>, Value)> {
    let mount = reqwest::Url::parse(base)?
        .path()
        .trim_end_matches('/')
        .to_owned();
    let ((lat_low, lat_high), (lng_low, lng_high)) = GEO_REGION;
    let mut rng = Rng::new(7);
    let mut point = move || {
        let unit = |rng: &mut Rng| rng.below(1_000_000_000) as f64 / 1e9;
        (
            lat_low + (lat_high - lat_low) * unit(&mut rng),
            lng_low + (lng_high - lng_low) * unit(&mut rng),
        )
    };
    let bodies: Vec<Value> = (0..count)
        .map(|i| {
            let (latitude, longitude) = point();
            json!({
                "name": format!("place {i}"),
                "location": {"__type": "GeoPoint", "latitude": latitude, "longitude": longitude},
            })
        })
        .collect();
    let chunks: Vec<Vec<Value>> = bodies.chunks(batch.max(1)).map(<[Value]>::to_vec).collect();
    let started = Instant::now();
    create_in_batches(client, keys, base, &mount, "Place", chunks, parallel)
        .await
        .context("seeding places")?;
    let seconds = started.elapsed().as_secs_f64();
    let queries = (0..10_000)
        .map(|_| {
            let (latitude, longitude) = point();
            let filter = json!({"location": {
                "$nearSphere": {"__type": "GeoPoint", "latitude": latitude, "longitude": longitude},
                "$maxDistanceInKilometers": radius_km,
            }});
            encode(&filter.to_string())
        })
        .collect();
    let report = json!({
        "event": "seed_places", "places": count, "seconds": (seconds * 10.0).round() / 10.0,
        "per_second": (count as f64 / seconds.max(1e-9)).round(), "radius_km": radius_km,
    });
    Ok((queries, report))
}

pub async fn seed(
    client: &Client,
    keys: &Keys,
    base: &str,
    options: &SeedOptions,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let mount = reqwest::Url::parse(base)?
        .path()
        .trim_end_matches('/')
        .to_owned();

    // One user: owner and participant of every session, sender of every message.
    let username = format!("bench_{}", std::process::id());
    let password = "bench-pass-1".to_owned();
    // Signed up as a client does (application id only): Parse Server answers a sign-up made
    // with the master key without a session token.
    let signed_up = match api_as(
        client,
        keys,
        &Auth::Anonymous,
        Method::POST,
        &format!("{base}/users"),
        Some(&json!({ "username": username, "password": password })),
    )
    .await
    {
        Ok((status, value)) if (200..300).contains(&status) => {
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            field("objectId").zip(field("sessionToken"))
        }
        Ok((status, value)) => {
            eprintln!(
                "[seed] sign-up failed ({status} {}); sessions get no participants",
                truncate(&value.to_string(), 200)
            );
            None
        }
        Err(error) => {
            eprintln!("[seed] sign-up failed ({error:#}); sessions get no participants");
            None
        }
    };
    let (user_id, session_token) = signed_up.unzip();
    let acl = user_id
        .as_ref()
        .map(|id| json!({ id.as_str(): { "read": true, "write": true } }));

    // Sessions bench-0 .. bench-(n-1) plus bench-write.
    let mut session_bodies = Vec::new();
    for i in 0..=options.sessions {
        let title = if i == options.sessions {
            "bench-write".to_owned()
        } else {
            format!("bench-{i}")
        };
        let mut body = json!({ "title": title, "participants": [] });
        if let Some(id) = &user_id {
            body["participants"] = json!([pointer("_User", id)]);
            body["owner"] = pointer("_User", id);
            body["ACL"] = acl.clone().unwrap_or(Value::Null);
        }
        session_bodies.push(body);
    }
    let session_ids = batch_create(client, keys, base, &mount, "ChatSession", session_bodies)
        .await
        .context("creating the chat sessions")?;
    let history_session = session_ids[0].clone();
    let write_session = session_ids[options.sessions].clone();

    // Messages: `history` in bench-0, the rest spread evenly over the others, in a shuffled order
    // so that the history session's rows are interleaved with the others'.
    let others = options.sessions.saturating_sub(1);
    let rest = options.total.saturating_sub(options.history);
    let mut jobs: Vec<(usize, usize)> = (0..options.history).map(|k| (0, k)).collect();
    for s in 1..options.sessions {
        let count = rest / others + usize::from(s - 1 < rest % others);
        jobs.extend((0..count).map(|k| (s, k)));
    }
    let mut rng = Rng::new(42);
    for i in (1..jobs.len()).rev() {
        let j = rng.below(i + 1);
        jobs.swap(i, j);
    }
    let filler = text(120);
    let chunks: Vec<Vec<Value>> = jobs
        .chunks(options.batch.max(1))
        .map(|chunk| {
            chunk
                .iter()
                .map(|&(s, k)| {
                    let mut body = json!({
                        "content": format!("seed message {k}: {filler}"),
                        "role": if k % 2 == 1 { "assistant" } else { "user" },
                        "session": pointer("ChatSession", &session_ids[s]),
                    });
                    if let Some(id) = &user_id {
                        body["sender"] = pointer("_User", id);
                        body["ACL"] = acl.clone().unwrap_or(Value::Null);
                    }
                    body
                })
                .collect()
        })
        .collect();
    let messages_started = Instant::now();
    let message_ids = create_in_batches(
        client,
        keys,
        base,
        &mount,
        "Message",
        chunks,
        options.parallel,
    )
    .await
    .context("seeding messages")?;
    let messages_seconds = messages_started.elapsed().as_secs_f64();

    // Check the counts the scenarios rely on.
    let count = |filter: Value| {
        let url = format!(
            "{base}/classes/Message?where={}&count=1&limit=0",
            encode(&filter.to_string())
        );
        async move {
            api_ok(client, keys, Method::GET, &url, None)
                .await
                .ok()
                .and_then(|v| v.get("count").and_then(Value::as_u64))
        }
    };
    let history_count = count(json!({ "session": pointer("ChatSession", &history_session) })).await;
    let total_count = count(json!({ "createdAt": { "$exists": true } })).await;
    let report = json!({
        "event": "seed",
        "sessions": session_ids.len(),
        "messages_seeded": message_ids.len(),
        "messages_seconds": round1(messages_seconds),
        "messages_per_s": round1(message_ids.len() as f64 / messages_seconds),
        "batch_size": options.batch,
        "batches_in_flight": options.parallel,
        "history_session_messages": history_count,
        "total_messages": total_count,
        "total_seconds": round1(started.elapsed().as_secs_f64()),
    });
    Ok(Seeded {
        history_session,
        write_session,
        user_id,
        session_token,
        username,
        password,
        message_ids,
        report,
        geo_queries: Vec::new(),
    })
}
