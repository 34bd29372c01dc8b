//! A handler's response body before it is sent: a JSON value to serialise, or JSON text
//! already written, in parts. A page of objects the store wrote straight from its rows goes
//! out between its `{"results":` and its `}` as separate parts of one body with a known
//! length, so the page is never copied to join them (that copy was ~4% of a history page's
//! CPU).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `null`: no body.
    Value(Value),
    /// JSON text: the parts, one after the other.
    Text(Vec<String>),
}

impl Body {
    /// The body as a value, for a caller that nests it in another answer (`/batch`).
    pub fn into_value(self) -> Result<Value, ApiError> {
        match self {
            Body::Value(value) => Ok(value),
            Body::Text(parts) => serde_json::from_str(&parts.concat())
                .map_err(|error| ApiError::Internal(format!("a written body: {error}"))),
        }
    }
}

/// Parts of JSON text sent as one body of known length.
pub struct TextParts {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl TextParts {
    pub fn new(parts: Vec<String>) -> TextParts {
        let parts: VecDeque<Bytes> = parts.into_iter().map(Bytes::from).collect();
        let remaining = parts.iter().map(|part| part.len() as u64).sum();
        TextParts { parts, remaining }
    }
}

impl HttpBody for TextParts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let part = this.parts.pop_front();
        if let Some(part) = &part {
            this.remaining -= part.len() as u64;
        }
        Poll::Ready(part.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_go_out_in_order_with_their_length_known() {
        let parts = vec![
            "{\"results\":".to_owned(),
            "[1,2]".to_owned(),
            "}".to_owned(),
        ];
        let body = TextParts::new(parts.clone());
        assert_eq!(body.size_hint().exact(), Some(17));
        let sent = axum::body::to_bytes(axum::body::Body::new(body), 1024)
            .await
            .unwrap();
        assert_eq!(sent, parts.concat().as_bytes());
        assert_eq!(
            Body::Text(parts).into_value().unwrap(),
            serde_json::json!({"results": [1, 2]})
        );
    }
}
