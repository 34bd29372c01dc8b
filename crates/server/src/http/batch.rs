//! `POST /batch` (§4): sub-requests routed like top-level requests, with the outer auth.
//!
//! Without `transaction` each item succeeds or fails alone. With `transaction: true` every
//! item must be an object write; all are planned, then committed in one store transaction,
//! and the first failure fails the whole request with nothing kept.

use axum::http::Method;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use super::classes::body_object;
use super::envelope::ApiRequest;
use super::error::{ApiError, ApiResult};
use super::routes::{ApiResponse, Route, dispatch};
use super::state::AppState;
use crate::operation::{Auth, PlannedWrite};

/// More than the JS SDK's chunks of 20, small enough to bound one request's work.
pub const MAX_BATCH_REQUESTS: usize = 1000;

struct BatchItem {
    request: ApiRequest,
}

fn parse_items(
    state: &AppState,
    body: &Value,
    client_ip: std::net::IpAddr,
) -> ApiResult<Vec<Result<BatchItem, ApiError>>> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::Parse(Error::invalid_json("requests must be an array")))?;
    if requests.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::Parse(Error::invalid_json(format!(
            "too many requests in one batch: at most {MAX_BATCH_REQUESTS}"
        ))));
    }
    let mount = &state.config.mount_path;
    Ok(requests
        .iter()
        .map(|item| {
            let method = item
                .get("method")
                .and_then(Value::as_str)
                .and_then(|method| Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok())
                .ok_or_else(|| {
                    ApiError::Parse(Error::invalid_json("batch request needs a method"))
                })?;
            let path = item.get("path").and_then(Value::as_str).unwrap_or_default();
            let Some(relative) = path
                .strip_prefix(mount.as_str())
                .filter(|rest| rest.starts_with('/'))
            else {
                return Err(ApiError::Parse(Error::invalid_json(format!(
                    "cannot route batch path {path}"
                ))));
            };
            let body = item.get("body").cloned().unwrap_or(Value::Null);
            let mut params = Map::new();
            if method == Method::GET
                && let Value::Object(map) = &body
            {
                params.extend(map.clone());
            }
            let (relative, query) = relative.split_once('?').unwrap_or((relative, ""));
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                let parsed = serde_json::from_str(&value)
                    .unwrap_or_else(|_| Value::String(value.into_owned()));
                params.insert(key.into_owned(), parsed);
            }
            Ok(BatchItem {
                request: ApiRequest {
                    method,
                    path: relative.trim_end_matches('/').to_owned(),
                    params,
                    body,
                    client_ip,
                    raw_json: Vec::new(),
                },
            })
        })
        .collect())
}

/// `POST /batch`
pub async fn run_batch(
    state: &AppState,
    auth: &Auth,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let items = parse_items(state, &request.body, request.client_ip)?;
    let transaction = request
        .body
        .get("transaction")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if transaction {
        return run_transaction(state, auth, items)
            .await
            .map_err(|error| match error {
                ApiError::Parse(error) => ApiError::Transaction(error),
                other => other,
            });
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let outcome = match item {
            Ok(item) => match Route::resolve(&item.request.method, &item.request.path) {
                Some(Route::Batch) => Err(ApiError::Parse(Error::invalid_json(
                    "a batch cannot contain a batch",
                ))),
                _ => Box::pin(dispatch(state, auth, item.request)).await,
            },
            Err(error) => Err(error),
        };
        results.push(
            match outcome.and_then(|response| response.body.into_value()) {
                Ok(body) => json!({ "success": body }),
                Err(error) => json!({ "error": error.to_batch_error() }),
            },
        );
    }
    Ok(ApiResponse::ok(Value::Array(results)))
}

async fn run_transaction(
    state: &AppState,
    auth: &Auth,
    items: Vec<Result<BatchItem, ApiError>>,
) -> ApiResult<ApiResponse> {
    let operations = &state.operations;
    let mut planned: Vec<PlannedWrite> = Vec::with_capacity(items.len());
    for item in items {
        let item = item?;
        let request = &item.request;
        let plan = match Route::resolve(&request.method, &request.path) {
            Some(Route::CreateObject { class_name }) => {
                operations
                    .plan_create(auth, &class_name, &body_object(request)?)
                    .await?
            }
            Some(Route::UpdateObject {
                class_name,
                object_id,
            }) => {
                operations
                    .plan_update(auth, &class_name, &object_id, &body_object(request)?)
                    .await?
            }
            Some(Route::DeleteObject {
                class_name,
                object_id,
            }) => {
                operations
                    .plan_delete(auth, &class_name, &object_id)
                    .await?
            }
            _ => {
                return Err(ApiError::Parse(Error::new(
                    Code::InvalidJson,
                    format!(
                        "only object writes can be batched in a transaction: {} {}",
                        request.method, request.path
                    ),
                )));
            }
        };
        planned.push(plan);
    }
    let responses = operations.commit(planned).await?;
    let results: Vec<Value> = responses
        .into_iter()
        .map(|response| json!({ "success": response.body }))
        .collect();
    Ok(ApiResponse::ok(Value::Array(results)))
}
