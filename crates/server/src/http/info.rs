//! `/health` and `/serverInfo` (§13).

use serde_json::json;

use super::error::ApiResult;
use super::routes::ApiResponse;
use crate::operation::Auth;

/// The Parse Server version Parlor answers as: dashboards and SDKs read it.
pub const PARSE_SERVER_VERSION: &str = "7.4.0";

/// `GET /health`: no application id needed.
pub fn health() -> ApiResponse {
    ApiResponse::ok(json!({"status": "ok"}))
}

/// `GET /serverInfo` (master key): what Parlor really serves, in the shape of Parse Server's
/// `FeaturesRouter`. Parse Dashboard hides a page whose feature is `false` ("Feature
/// unavailable"), so each flag must match a route that works: `/config` (read, write and
/// delete a parameter), the schemas API, `/purge` and `/cloud_code/jobs` (the job pages). There
/// are no hooks or log routes, and `POST /push` only records a `_PushStatus` (nothing is
/// delivered, as Parse Server without a push adapter), so those stay `false`.
pub fn server_info(auth: &Auth) -> ApiResult<ApiResponse> {
    crate::operation::schema::require_master(auth)?;
    Ok(ApiResponse::ok(json!({
        "parseServerVersion": PARSE_SERVER_VERSION,
        "parlorVersion": env!("CARGO_PKG_VERSION"),
        "features": {
            "globalConfig": {"create": true, "read": true, "update": true, "delete": true},
            "hooks": {"create": false, "read": false, "update": false, "delete": false},
            "cloudCode": {"jobs": true},
            "logs": {"level": false, "size": false, "order": false, "until": false, "from": false},
            "push": {"immediatePush": false, "scheduledPush": false, "storedPushData": false, "pushAudiences": false, "localization": false},
            "schemas": {
                "addField": true, "removeField": true, "addClass": true, "removeClass": true,
                "clearAllDataFromClass": true, "exportClass": false,
                "editClassLevelPermissions": true, "editPointerPermissions": true
            },
            "settings": {"securityCheck": false}
        }
    })))
}
