//! Request ids: every request gets one, taken from a sane incoming `X-Request-Id` (a load
//! balancer's or a client's) or made here, returned as the `X-Request-Id` response header
//! and held as the `request_id` field of the request's tracing span. Everything the request
//! runs, and the tasks it starts (persona replies, summaries), log inside that span, so a
//! log line names the request behind it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngExt;
use tracing::Instrument;

/// The header, in requests and answers.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept; a longer one is replaced by a new id.
const MAX_LENGTH: usize = 128;

/// The middleware.
pub async fn tag(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_sane(value))
        .map_or_else(new_id, str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Whether an incoming id may be kept as it is: short, and made of characters that cannot
/// forge a log line or a header (letters, digits and `-_.:/+=@`).
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LENGTH
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&byte))
}

/// 16 random bytes as hex.
fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_incoming_ids_are_kept() {
        assert!(is_sane("3f0d1c2e-5b1a-4c7e-9d2a-8e6f4b3c2a10"));
        assert!(is_sane("lb:1234/abc=="));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("line\nbreak"));
        assert!(!is_sane("\"quoted\""));
        assert!(!is_sane(&"a".repeat(MAX_LENGTH + 1)));
        let made = new_id();
        assert_eq!(made.len(), 32);
        assert!(is_sane(&made));
    }
}
