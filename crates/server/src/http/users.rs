//! `/users`, `/login`, `/logout`, `/sessions…`: the user and session routes (§5). Each parses
//! the request and calls one operation; the rules are in `operation::users`.

use serde_json::{Map, Value};

use super::classes::body_object;
use super::envelope::ApiRequest;
use super::error::ApiResult;
use super::routes::ApiResponse;
use crate::operation::login::LogIn;
use crate::operation::{Auth, Operations};

/// `POST /users` (and `POST /classes/_User`): sign-up, or `authData` log-in.
pub async fn sign_up(
    operations: &Operations,
    auth: &Auth,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let body = body_object(request)?;
    Ok(operations.sign_up(auth, &body).await?.into())
}

/// Credentials from the query string (`GET`) or the body (`POST`).
fn credentials(request: &ApiRequest) -> LogIn {
    let source: &Map<String, Value> = match &request.body {
        Value::Object(body) if !body.is_empty() => body,
        _ => &request.params,
    };
    LogIn {
        username: source.get("username").cloned(),
        email: source.get("email").cloned(),
        password: source.get("password").cloned(),
    }
}

/// `GET /login` and `POST /login`.
pub async fn log_in(
    operations: &Operations,
    auth: &Auth,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let user = operations
        .log_in(
            credentials(request),
            auth.installation_id.as_deref(),
            request.client_ip,
        )
        .await?;
    Ok(ApiResponse::ok(user))
}

/// `GET`/`POST /verifyPassword`.
pub async fn verify_password(
    operations: &Operations,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    Ok(ApiResponse::ok(
        operations
            .verify_password(credentials(request), request.client_ip)
            .await?,
    ))
}

/// `PUT /users/:id`.
pub async fn update_user(
    operations: &Operations,
    auth: &Auth,
    user_id: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let body = body_object(request)?;
    Ok(operations.update_user(auth, user_id, &body).await?.into())
}

/// `POST /sessions`.
pub async fn create_session(
    operations: &Operations,
    auth: &Auth,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let body = body_object(request)?;
    Ok(operations.create_session(auth, &body).await?.into())
}

/// `POST /upgradeToRevocableSession`: Parlor never issues legacy tokens, so a caller with an
/// `r:` token simply gets a fresh session.
pub async fn upgrade_session(operations: &Operations, auth: &Auth) -> ApiResult<ApiResponse> {
    let mut response: ApiResponse = operations.create_session(auth, &Map::new()).await?.into();
    response.status = 200;
    Ok(response)
}

/// `POST /loginAs` (master key).
pub async fn log_in_as(
    operations: &Operations,
    auth: &Auth,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let user_id = request
        .body
        .get("userId")
        .or_else(|| request.params.get("userId"))
        .and_then(Value::as_str);
    Ok(ApiResponse::ok(operations.log_in_as(auth, user_id).await?))
}
