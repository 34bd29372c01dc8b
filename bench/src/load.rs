//! The load generator: N workers sharing one keep-alive HTTP/1.1 client, each sending its next
//! request as soon as the previous answer has been read, for a fixed time. Every latency is kept.
//! With several server instances the workers are spread over them ([`Target::Spread`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

use crate::server::round2;

/// What one scenario sends.
pub enum Target {
    /// The same request every time.
    Fixed {
        method: Method,
        url: String,
        body: Option<&'static str>,
        auth: Auth,
    },
    /// `GET <prefix><id>` with an id drawn at random from `ids`.
    RandomId {
        prefix: String,
        ids: Arc<Vec<String>>,
        auth: Auth,
    },
    /// `POST <url>` with the body `parts` joined by `n`, a counter shared by every worker (and
    /// every run of the scenario), so each request carries values never sent before (sign-up's
    /// fresh username, a flood's new field names). Application id only, no master key.
    Unique {
        url: String,
        parts: Vec<String>,
        counter: AtomicU64,
    },
    /// One target per server instance: worker `i` sends to instance `i mod n` (see
    /// [`Target::spread`]).
    Spread(Vec<Arc<Target>>),
}

/// Headers sent with every request (application id) or with the master key.
#[derive(Clone)]
pub struct Keys {
    pub app_id: String,
    pub master_key: String,
}

/// Who a request is sent as. Clients send a user's session token, which makes the server resolve
/// the session, the user's roles, the CLP, the ACL and the chat template's rules; the master key
/// skips all of that, so its figures only stand beside the session-token ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The application id alone.
    Anonymous,
    Master,
    /// `X-Parse-Session-Token`.
    Session(String),
}

impl Auth {
    /// The name printed in the result lines.
    pub fn label(&self) -> &'static str {
        match self {
            Auth::Anonymous => "anonymous",
            Auth::Master => "master",
            Auth::Session(_) => "session",
        }
    }

    /// Adds this identity's header (if any) to `request`.
    pub fn apply(&self, request: RequestBuilder, keys: &Keys) -> RequestBuilder {
        match self {
            Auth::Anonymous => request,
            Auth::Master => request.header("X-Parse-Master-Key", &keys.master_key),
            Auth::Session(token) => request.header("X-Parse-Session-Token", token),
        }
    }
}

impl Target {
    /// One target per instance, the same request to each: a single one as it is, several as a
    /// [`Target::Spread`]. A [`Target::Unique`]'s values get the instance's number (`i1_`, …)
    /// before each counter, so that the instances' counters never send the same value.
    pub fn spread(targets: Vec<Target>) -> Target {
        let mut targets = targets;
        if targets.len() == 1
            && let Some(target) = targets.pop()
        {
            return target;
        }
        let targets = targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| match target {
                Target::Unique {
                    url,
                    mut parts,
                    counter,
                } if i > 0 => {
                    let last = parts.len().saturating_sub(1);
                    for part in &mut parts[..last] {
                        part.push_str(&format!("i{i}_"));
                    }
                    Target::Unique {
                        url,
                        parts,
                        counter,
                    }
                }
                other => other,
            })
            .map(Arc::new)
            .collect();
        Target::Spread(targets)
    }

    /// The targets of each instance (this one alone unless it is a [`Target::Spread`]).
    pub fn parts(&self) -> Vec<&Target> {
        match self {
            Target::Spread(targets) => targets.iter().map(|t| t.as_ref()).collect(),
            other => vec![other],
        }
    }

    /// What worker `i` sends to.
    fn for_worker(self: &Arc<Self>, i: usize) -> Arc<Target> {
        match self.as_ref() {
            Target::Spread(targets) if !targets.is_empty() => targets[i % targets.len()].clone(),
            _ => self.clone(),
        }
    }

    /// Who this target's requests are sent as (a spread's first part speaks for all).
    pub fn auth(&self) -> Auth {
        match self {
            Target::Fixed { auth, .. } | Target::RandomId { auth, .. } => auth.clone(),
            Target::Unique { .. } => Auth::Anonymous,
            Target::Spread(targets) => targets.first().map_or(Auth::Anonymous, |t| t.auth()),
        }
    }

    /// The next body of a [`Target::Unique`] (`None` for the other kinds).
    pub fn next_body(&self) -> Option<String> {
        match self {
            Target::Unique { parts, counter, .. } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                Some(parts.join(&n.to_string()))
            }
            _ => None,
        }
    }

    fn request(&self, client: &Client, keys: &Keys, rng: &mut Rng) -> RequestBuilder {
        match self {
            Target::Fixed {
                method,
                url,
                body,
                auth,
            } => {
                let mut request = auth.apply(
                    client
                        .request(method.clone(), url)
                        .header("X-Parse-Application-Id", &keys.app_id),
                    keys,
                );
                if let Some(body) = body {
                    request = request
                        .header("Content-Type", "application/json")
                        .body(*body);
                }
                request
            }
            Target::RandomId { prefix, ids, auth } => {
                let id = &ids[rng.below(ids.len())];
                auth.apply(
                    client
                        .get(format!("{prefix}{id}"))
                        .header("X-Parse-Application-Id", &keys.app_id),
                    keys,
                )
            }
            Target::Unique { url, .. } => client
                .post(url)
                .header("X-Parse-Application-Id", &keys.app_id)
                .header("Content-Type", "application/json")
                .body(self.next_body().unwrap_or_default()),
            // Workers take their instance's target (`for_worker`); this is only a fallback.
            Target::Spread(targets) => match targets.get(rng.below(targets.len())) {
                Some(target) => target.request(client, keys, rng),
                None => client.get("http://127.0.0.1:0/"),
            },
        }
    }
}

/// xorshift64*: enough to spread ids, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    ok: u64,
    non2xx: BTreeMap<u16, u64>,
    transport_errors: u64,
    samples: Vec<String>,
}

async fn worker(
    client: Client,
    keys: Keys,
    target: Arc<Target>,
    deadline: Instant,
    seed: u64,
    record: bool,
) -> WorkerResult {
    let mut rng = Rng::new(seed);
    let mut out = WorkerResult::default();
    if record {
        out.latencies_us.reserve(1 << 14);
    }
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        let outcome = match target.request(&client, &keys, &mut rng).send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(body) => Ok((status, body)),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let elapsed = start.elapsed();
        if !record {
            continue;
        }
        out.latencies_us
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        match outcome {
            Ok((status, _)) if status.is_success() => out.ok += 1,
            Ok((status, body)) => {
                *out.non2xx.entry(status.as_u16()).or_default() += 1;
                if out.samples.len() < 3 {
                    out.samples.push(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Err(error) => {
                out.transport_errors += 1;
                if out.samples.len() < 3 {
                    out.samples.push(format!("transport: {error}"));
                }
            }
        }
    }
    out
}

/// Runs `connections` workers for `duration` and returns the figures as JSON
/// (`requests`, `rps`, `rps_ok`, `latency_ms.{avg,p50,p90,p99,p999,max}`, `errors`).
pub async fn run(
    client: &Client,
    keys: &Keys,
    target: Arc<Target>,
    connections: usize,
    duration: Duration,
    record: bool,
) -> Value {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(worker(
                client.clone(),
                keys.clone(),
                target.for_worker(i),
                deadline,
                i as u64 + 1,
                record,
            ))
        })
        .collect();
    let mut latencies: Vec<u32> = Vec::new();
    let mut ok = 0u64;
    let mut non2xx: BTreeMap<u16, u64> = BTreeMap::new();
    let mut transport = 0u64;
    let mut samples: Vec<String> = Vec::new();
    for handle in handles {
        let Ok(result) = handle.await else {
            transport += 1;
            continue;
        };
        latencies.extend_from_slice(&result.latencies_us);
        ok += result.ok;
        for (status, count) in result.non2xx {
            *non2xx.entry(status).or_default() += count;
        }
        transport += result.transport_errors;
        for sample in result.samples {
            if samples.len() < 5 {
                samples.push(sample);
            }
        }
    }
    // Requests started before the deadline are all counted, so the window is until the last one ended.
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let total = latencies.len() as u64;
    let pct = |p: f64| -> Option<f64> {
        if latencies.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, latencies.len()) - 1;
        Some(round2(f64::from(latencies[index]) / 1000.0))
    };
    let avg = if latencies.is_empty() {
        None
    } else {
        Some(round2(
            latencies.iter().map(|&v| f64::from(v)).sum::<f64>() / latencies.len() as f64 / 1000.0,
        ))
    };
    let non2xx_total: u64 = non2xx.values().sum();
    json!({
        "connections": connections,
        "duration_s": round2(elapsed),
        "requests": total,
        "rps": round2(total as f64 / elapsed),
        "rps_ok": round2(ok as f64 / elapsed),
        "latency_ms": {
            "avg": avg, "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "p999": pct(99.9), "max": pct(100.0),
        },
        "errors": non2xx_total + transport,
        "non2xx": non2xx_total,
        "non2xx_by_status": non2xx.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "transport_errors": transport,
        "error_samples": samples,
    })
}
