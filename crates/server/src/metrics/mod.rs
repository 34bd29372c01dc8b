//! Prometheus metrics: what the server counts and measures, and its text encoding for
//! `GET /metrics`.
//!
//! One [`Metrics`] per server, held by the operation layer (`Operations::metrics`) so that
//! the HTTP edge, the store, LiveQuery, the AI and cloud code all reach the same one. It is
//! `None` unless metrics are turned on (`--metrics` or `--metrics-addr`): a server that
//! does not export them does not pay for them. Each update is an atomic add or a lookup in
//! a small label map; nothing here waits for I/O.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub mod store;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/classes/:className`), never the raw path: bounded cardinality.
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `read` (find, count, search) or `write` (a transaction).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    /// `prompt` (in) or `completion` (out).
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    pub provider: String,
    /// A short class of the failure (`timeout`, `rate_limited`, `http`, `stream`, …).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    /// `function`, `trigger` or `job`.
    pub kind: &'static str,
    pub name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~26 s: from a cached read to a slow provider.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> HistogramFamily<L> {
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

/// What one finished persona reply adds to the metrics.
pub struct ReplyFigures<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub first_token: Option<Duration>,
    /// The kind of provider failure that ended it, if one did.
    pub failure: Option<&'static str>,
}

/// Counts a reply as running while it lives.
pub struct RunningReply(std::sync::Arc<Metrics>);

impl RunningReply {
    pub fn start(metrics: std::sync::Arc<Metrics>) -> RunningReply {
        metrics.generations_running.inc();
        RunningReply(metrics)
    }
}

impl Drop for RunningReply {
    fn drop(&mut self) {
        self.0.generations_running.dec();
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RouteLabels>,
    pub requests_in_flight: Gauge,
    pub store_duration: HistogramFamily<StoreLabels>,
    /// Set by the store's own report at scrape time.
    pub store_writer_queue: Gauge,
    pub store_pool_in_use: Gauge,
    pub store_pool_size: Gauge,
    pub live_connections: Gauge,
    pub live_subscriptions: Gauge,
    pub live_events: Counter,
    pub live_slow_consumers_dropped: Counter,
    pub generations_running: Gauge,
    pub tokens: Family<TokenLabels, Counter>,
    pub provider_errors: Family<ProviderErrorLabels, Counter>,
    pub first_token: HistogramFamily<ModelLabels>,
    pub cloud_calls: Family<CloudLabels, Counter>,
    pub cloud_failures: Family<CloudLabels, Counter>,
    pub resident_memory: Gauge,
    pub cpu_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("parlor");
        let metrics = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: histograms(),
            requests_in_flight: Gauge::default(),
            store_duration: histograms(),
            store_writer_queue: Gauge::default(),
            store_pool_in_use: Gauge::default(),
            store_pool_size: Gauge::default(),
            live_connections: Gauge::default(),
            live_subscriptions: Gauge::default(),
            live_events: Counter::default(),
            live_slow_consumers_dropped: Counter::default(),
            generations_running: Gauge::default(),
            tokens: Family::default(),
            provider_errors: Family::default(),
            first_token: histograms(),
            cloud_calls: Family::default(),
            cloud_failures: Family::default(),
            resident_memory: Gauge::default(),
            cpu_seconds: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (headers sent), by route template and method",
            Unit::Seconds,
            metrics.request_duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered",
            metrics.requests_in_flight.clone(),
        );
        registry.register_with_unit(
            "store_operation_duration",
            "Time of a store read (find, count, search) or write (one transaction)",
            Unit::Seconds,
            metrics.store_duration.clone(),
        );
        registry.register(
            "store_writer_queue_depth",
            "Transactions waiting for the database writer",
            metrics.store_writer_queue.clone(),
        );
        registry.register(
            "store_pool_connections_in_use",
            "Database connections busy",
            metrics.store_pool_in_use.clone(),
        );
        registry.register(
            "store_pool_connections",
            "Database connections open",
            metrics.store_pool_size.clone(),
        );
        registry.register(
            "livequery_connections",
            "Open LiveQuery WebSocket connections",
            metrics.live_connections.clone(),
        );
        registry.register(
            "livequery_subscriptions",
            "LiveQuery subscriptions held",
            metrics.live_subscriptions.clone(),
        );
        registry.register(
            "livequery_events",
            "LiveQuery events sent to subscribers",
            metrics.live_events.clone(),
        );
        registry.register(
            "livequery_slow_consumers_dropped",
            "LiveQuery connections closed because they did not read fast enough",
            metrics.live_slow_consumers_dropped.clone(),
        );
        registry.register(
            "generations_running",
            "Persona replies being generated",
            metrics.generations_running.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens sent to (prompt) and received from (completion) LLM providers",
            metrics.tokens.clone(),
        );
        registry.register(
            "llm_provider_errors",
            "Failed LLM provider requests, by provider and kind of failure",
            metrics.provider_errors.clone(),
        );
        registry.register_with_unit(
            "llm_time_to_first_token",
            "Time from a provider request to its first token",
            Unit::Seconds,
            metrics.first_token.clone(),
        );
        registry.register(
            "cloud_code_calls",
            "Cloud code functions, triggers and jobs run",
            metrics.cloud_calls.clone(),
        );
        registry.register(
            "cloud_code_failures",
            "Cloud code runs that failed (an error, a timeout, a memory limit)",
            metrics.cloud_failures.clone(),
        );
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the server process",
            Unit::Bytes,
            metrics.resident_memory.clone(),
        );
        registry.register_with_unit(
            "process_cpu",
            "CPU time the server process used (user + system)",
            Unit::Seconds,
            metrics.cpu_seconds.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Records an answered request.
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a finished persona reply: its tokens, its time to first token, its failure.
    pub fn record_reply(&self, reply: &ReplyFigures<'_>) {
        let model = || ModelLabels {
            provider: reply.provider.to_owned(),
            model: reply.model.to_owned(),
        };
        for (direction, tokens) in [
            ("prompt", reply.prompt_tokens),
            ("completion", reply.completion_tokens),
        ] {
            if tokens > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        provider: reply.provider.to_owned(),
                        model: reply.model.to_owned(),
                        direction,
                    })
                    .inc_by(tokens);
            }
        }
        if let Some(first_token) = reply.first_token {
            self.first_token
                .get_or_create(&model())
                .observe(first_token.as_secs_f64());
        }
        if let Some(kind) = reply.failure {
            self.provider_errors
                .get_or_create(&ProviderErrorLabels {
                    provider: reply.provider.to_owned(),
                    kind,
                })
                .inc();
        }
    }

    /// Records one store operation's time.
    pub fn record_store(&self, kind: &'static str, elapsed: Duration) {
        self.store_duration
            .get_or_create(&StoreLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition, with the process figures and the store's `stats` read now.
    pub fn encode(&self, store: parlor_store::StoreStats) -> String {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.store_writer_queue.set(gauge(store.writer_queue));
        self.store_pool_in_use.set(gauge(store.connections_in_use));
        self.store_pool_size.set(gauge(store.connections));
        if let Some((resident, cpu)) = process_figures() {
            self.resident_memory
                .set(i64::try_from(resident).unwrap_or(i64::MAX));
            self.cpu_seconds.set(cpu);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Resident bytes and CPU seconds of this process, from `/proc/self` (Linux); `None`
/// elsewhere.
fn process_figures() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    // SAFETY: as above.
    let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    let cpu = (user + system) as f64 / ticks.max(1) as f64;
    Some((resident_pages * page_size, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_recorded_figures() {
        let metrics = Metrics::new();
        metrics.record_request("/classes/:className", "GET", 200, Duration::from_millis(3));
        metrics.record_request("/classes/:className", "GET", 200, Duration::from_millis(5));
        metrics.live_events.inc();
        let text = metrics.encode(parlor_store::StoreStats {
            writer_queue: 3,
            ..Default::default()
        });
        assert!(
            text.contains(
                "parlor_http_requests_total{route=\"/classes/:className\",method=\"GET\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("parlor_http_request_duration_seconds_count"),
            "{text}"
        );
        assert!(text.contains("parlor_livequery_events_total 1"), "{text}");
        assert!(
            text.contains("parlor_process_resident_memory_bytes"),
            "{text}"
        );
        assert!(text.contains("parlor_store_writer_queue_depth 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
