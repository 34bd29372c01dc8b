//! `POST /functions/:name`: cloud functions, answered as `{"result": …}` as Parse does.

use serde_json::json;

use super::classes::body_object;
use super::envelope::ApiRequest;
use super::error::ApiResult;
use super::routes::ApiResponse;
use crate::operation::hooks::RequestMeta;
use crate::operation::{Auth, Operations};

/// Runs one cloud function with the request body as its parameters.
pub async fn call(
    operations: &Operations,
    auth: &Auth,
    name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let mut params = body_object(request)?;
    // Query-string fields are parameters too (§10.1).
    for (key, value) in &request.params {
        params.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let meta = RequestMeta {
        ip: Some(request.client_ip.to_string()),
        ..RequestMeta::default()
    };
    let result = crate::cloud::call_function(operations, auth, name, &params, &meta).await?;
    Ok(ApiResponse::ok(json!({"result": result})))
}
