//! `POST /functions/:name`: cloud functions, answered as `{"result": …}` as Parse does;
//! `POST /jobs/:name`: cloud jobs, answered at once with the `_JobStatus` id in a header.

use serde_json::json;

use super::classes::body_object;
use super::envelope::ApiRequest;
use super::error::ApiResult;
use super::routes::ApiResponse;
use crate::operation::{Auth, Operations};

/// Runs one cloud function with the request body as its parameters.
pub async fn call(
    operations: &Operations,
    auth: &Auth,
    name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let params = params_of(request)?;
    let answer = match crate::cloud::call_function(operations, auth, name, &params, None).await? {
        Some(result) => json!({"result": result}),
        // A function that returns nothing: `{}`, as Parse Server answers.
        None => json!({}),
    };
    Ok(ApiResponse::ok(answer))
}

/// Starts the cloud job `name` (master key only): `200 {}` and `X-Parse-Job-Status-Id`.
pub async fn run_job(
    operations: &Operations,
    auth: &Auth,
    name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let params = params_of(request)?;
    let job_id = operations.start_job(auth, name, &params).await?;
    let mut response = ApiResponse::ok(json!({}));
    response.headers.push(("x-parse-job-status-id", job_id));
    Ok(response)
}

/// A function's or job's parameters: the body's fields, and the query string's where the body
/// does not name them (§10.1).
fn params_of(request: &ApiRequest) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    let mut params = body_object(request)?;
    for (key, value) in &request.params {
        params.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Ok(params)
}
