//! `/schemas`: the schemas API (§8.2, master key only; the check is the operation layer's).

use super::envelope::ApiRequest;
use super::error::ApiResult;
use super::routes::ApiResponse;
use crate::operation::{Auth, Operations};

/// `POST /schemas[/:className]`
pub async fn create_schema(
    operations: &Operations,
    auth: &Auth,
    class_name: Option<&str>,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    Ok(ApiResponse::ok(
        operations
            .create_schema(auth, class_name, &request.body)
            .await?,
    ))
}

/// `PUT /schemas/:className`
pub async fn update_schema(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    Ok(ApiResponse::ok(
        operations
            .update_schema(auth, class_name, &request.body)
            .await?,
    ))
}
