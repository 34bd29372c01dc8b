//! `POST /functions/:name`: cloud functions, answered as `{"result": …}` as Parse does.

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
    let params = body_object(request)?;
    let result = crate::ai::functions::call(operations, auth, name, &params).await?;
    Ok(ApiResponse::ok(json!({"result": result})))
}
