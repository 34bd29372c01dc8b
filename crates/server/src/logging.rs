//! Log output, on stderr (stdout carries the server's own lines and `parlor schema`'s
//! document): text for people (coloured when the binary says so: on a terminal, without
//! `NO_COLOR`), or one JSON object per line for log collectors (`--log-format json`).
//! `PARLOR_LOG` sets the filter.
//!
//! Each JSON line carries the fields of the spans it happened in: a request's span
//! (`http/request_id.rs`) holds its `request_id`, and the tasks a request starts (persona
//! replies, summaries) run inside it, so their lines name the request that caused them.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `PARLOR_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,parlor_server=info";

/// Installs the global subscriber; call once, before anything logs. `colour`: ANSI colours in
/// text lines.
pub fn init(format: LogFormat, colour: bool) {
    let filter = EnvFilter::try_from_env("PARLOR_LOG").unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
