//! A persona reply's text as it grows, for whoever follows it (SSE at
//! `{mount}/messages/:id/stream`, GraphQL's `messageStream`): deltas from an offset, then the
//! final status.
//!
//! A reply generated on this instance is followed through its in-memory view; one that runs
//! on another instance (or has ended) through the Message's updates on the change bus. The
//! caller must be able to read the message through the ordinary read path; the reply belongs
//! to the server, so a follower leaving only stops its own events.

use std::sync::Arc;

use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::ai::generation::StreamView;
use crate::operation::events::ChangeEvent;
use crate::operation::{Auth, GetRequest, OpResult, Operations};

/// One step of a followed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// Text from `offset` (in bytes of UTF-8) on.
    Delta { offset: usize, text: String },
    /// The reply ended (`complete`, `failed`, `cancelled`).
    Done {
        status: String,
        error: Option<String>,
    },
}

/// The events of message `message_id`'s reply from `offset`, once `auth` may read it.
pub async fn reply_events(
    operations: &Operations,
    auth: &Auth,
    message_id: &str,
    offset: usize,
) -> OpResult<impl Stream<Item = ReplyEvent> + Send + use<>> {
    // The read path decides: a caller who cannot GET the message gets no stream either.
    operations
        .get(auth, "Message", message_id, GetRequest::default())
        .await?;
    let running = crate::ai::generation::generator(operations)
        .and_then(|generator| generator.running(message_id));
    if let Some(running) = running {
        return Ok(futures::future::Either::Left(live_events(
            running.view.subscribe(),
            offset,
        )));
    }
    // Listening before reading, so no change between the two is missed. The reply may
    // also have finished since the check above, or run on another server.
    let events = operations.events.subscribe();
    let message = operations
        .get(auth, "Message", message_id, GetRequest::default())
        .await?;
    let field = |name: &str| message.get(name).and_then(Value::as_str);
    let state = Followed {
        text: field("content").unwrap_or_default().to_owned(),
        status: field("status").unwrap_or("complete").to_owned(),
        error: field("error").map(str::to_owned),
    };
    Ok(futures::future::Either::Right(followed_events(
        events,
        message_id.to_owned(),
        state,
        offset,
    )))
}

/// The events of a running reply from `offset`: each change of its text, then its end.
fn live_events(
    view: watch::Receiver<StreamView>,
    offset: usize,
) -> impl Stream<Item = ReplyEvent> + Send + 'static {
    futures::stream::unfold(Some((view, offset)), |state| async move {
        let (mut view, mut offset) = state?;
        loop {
            // The borrow ends before any await: the generator must never wait for us.
            let (chunk, end) = {
                let current = view.borrow_and_update();
                let start = floor_boundary(&current.text, offset);
                let chunk =
                    (start < current.text.len()).then(|| (start, current.text[start..].to_owned()));
                (chunk, current.end.clone())
            };
            if let Some((start, text)) = chunk {
                offset = start + text.len();
                return Some((
                    ReplyEvent::Delta {
                        offset: start,
                        text,
                    },
                    Some((view, offset)),
                ));
            }
            if let Some(end) = end {
                let done = ReplyEvent::Done {
                    status: end.status.as_str().to_owned(),
                    error: end.error,
                };
                return Some((done, None));
            }
            if view.changed().await.is_err() {
                // The reply task is gone without an end (it cannot be, short of a panic).
                let done = ReplyEvent::Done {
                    status: "failed".to_owned(),
                    error: Some("the reply stopped unexpectedly".to_owned()),
                };
                return Some((done, None));
            }
        }
    })
}

/// A reply as its message shows it.
struct Followed {
    text: String,
    status: String,
    error: Option<String>,
}

/// The events of a reply that runs on another server (or ended): its text as the message's
/// updates bring it (at the pace that server writes them), until its status is no longer
/// `streaming`.
fn followed_events(
    events: broadcast::Receiver<Arc<ChangeEvent>>,
    message_id: String,
    state: Followed,
    offset: usize,
) -> impl Stream<Item = ReplyEvent> + Send + 'static {
    futures::stream::unfold(
        Some((events, message_id, state, offset)),
        |progress| async move {
            let (mut events, message_id, mut state, mut offset) = progress?;
            loop {
                let start = floor_boundary(&state.text, offset);
                if start < state.text.len() {
                    let text = state.text[start..].to_owned();
                    offset = state.text.len();
                    return Some((
                        ReplyEvent::Delta {
                            offset: start,
                            text,
                        },
                        Some((events, message_id, state, offset)),
                    ));
                }
                if state.status != "streaming" {
                    let done = ReplyEvent::Done {
                        status: state.status,
                        error: state.error,
                    };
                    return Some((done, None));
                }
                let change = match events.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                let Some(after) = &change.after else {
                    continue;
                };
                if change.class_name != "Message" || after.object_id != message_id {
                    continue;
                }
                let field = |name: &str| after.fields.get(name).and_then(Value::as_str);
                state.text = field("content").unwrap_or_default().to_owned();
                state.status = field("status").unwrap_or("complete").to_owned();
                state.error = field("error").map(str::to_owned);
            }
        },
    )
}

/// `offset` moved back onto a character boundary of `text` (and into it).
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
