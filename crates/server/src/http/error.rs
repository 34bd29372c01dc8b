//! The HTTP edge's error: every failure of a request, mapped once to Parse's wire shape.
//!
//! Parse errors answer `{"code":…,"error":…}` with the status Parse gives their code;
//! key and master-key refusals answer `403 {"error":…}` without a code, as Parse Server
//! does; internal failures are logged here and reach the client only as code 1.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parlor_core::{Code, Error};
use serde_json::{Value, json};

use crate::operation::OpError;

#[derive(Debug)]
pub enum ApiError {
    Parse(Error),
    /// Missing or wrong application id or client key.
    Unauthorized,
    MasterKeyRequired,
    /// No route for this method and path.
    NotRouted {
        method: String,
        path: String,
    },
    /// The body is over the configured limit.
    TooLarge {
        limit: usize,
    },
    /// The body did not arrive within the body-read timeout (`--body-read-timeout`).
    BodyTimeout {
        seconds: u64,
    },
    /// Every connection the server may hold is answering a request (`--max-connections`):
    /// the newcomer is answered this before its request is read.
    TooManyConnections,
    /// A batch with `transaction: true` failed: `400` with the first failing item's error,
    /// whatever its code (§4).
    Transaction(Error),
    /// A server-side failure; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// The status and JSON body this error answers with.
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        match self {
            ApiError::Parse(error) if error.code == Code::InternalServerError => internal_body(),
            ApiError::Parse(error) => {
                let status = StatusCode::from_u16(error.code.http_status())
                    .unwrap_or(StatusCode::BAD_REQUEST);
                (
                    status,
                    json!({"code": error.code.as_i32(), "error": error.message}),
                )
            }
            ApiError::Transaction(error) if error.code != Code::InternalServerError => (
                StatusCode::BAD_REQUEST,
                json!({"code": error.code.as_i32(), "error": error.message}),
            ),
            ApiError::Transaction(_) => internal_body(),
            ApiError::Unauthorized => (StatusCode::FORBIDDEN, json!({"error": "unauthorized"})),
            ApiError::MasterKeyRequired => (
                StatusCode::FORBIDDEN,
                json!({"error": "unauthorized: master key is required"}),
            ),
            ApiError::NotRouted { method, path } => (
                StatusCode::NOT_FOUND,
                json!({"code": Code::InvalidJson.as_i32(), "error": format!("cannot route {method} {path}")}),
            ),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"code": Code::ObjectTooLarge.as_i32(), "error": format!("Request body is larger than the limit of {limit} bytes.")}),
            ),
            ApiError::BodyTimeout { seconds } => (
                StatusCode::REQUEST_TIMEOUT,
                json!({"code": Code::Timeout.as_i32(), "error": format!("The request body did not arrive in time (body-read timeout: {seconds} s).")}),
            ),
            // Code 100 (CONNECTION_FAILED), as for a rate limit: the SDKs retry a 5xx.
            ApiError::TooManyConnections => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"code": Code::ConnectionFailed.as_i32(), "error": "The server has too many open connections; try again shortly."}),
            ),
            ApiError::Internal(_) => internal_body(),
        }
    }

    /// Logs a server-side failure, whose detail the client never sees.
    pub fn log(&self) {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "request failed");
        }
    }

    /// The Parse error an item of a batch reports.
    pub fn to_batch_error(&self) -> Value {
        let (_, body) = self.status_and_body();
        match body.get("code") {
            Some(_) => json!({"code": body["code"], "error": body["error"]}),
            None => json!({"code": Code::OperationForbidden.as_i32(), "error": body["error"]}),
        }
    }
}

fn internal_body() -> (StatusCode, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"code": 1, "error": "Internal server error.", "message": "Internal server error."}),
    )
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        ApiError::Parse(error)
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> ApiError {
        match error {
            OpError::MasterKeyRequired => ApiError::MasterKeyRequired,
            OpError::Store(parlor_store::StoreError::Database(db_error)) => {
                ApiError::Internal(db_error.to_string())
            }
            other => match other.to_parse_error() {
                Some(parse_error) => ApiError::Parse(parse_error),
                None => ApiError::Internal(other.to_string()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let (status, body) = self.status_and_body();
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::BodyTimeout { .. } = self {
            // The rest of the body is still on its way: the connection cannot carry another
            // request.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
