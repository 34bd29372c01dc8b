//! `/classes/:className[/:objectId]`: the object API (§2, §3).

use parlor_core::Error;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::envelope::ApiRequest;
use super::error::ApiResult;
use super::params::{find_request, get_request};
use super::routes::ApiResponse;
use crate::operation::{Auth, Found, Operations, WriteResponse, results_body};

/// A write's body must be a JSON object.
pub fn body_object(request: &ApiRequest) -> ApiResult<Map<String, Value>> {
    match &request.body {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(Error::invalid_json("The body must be a JSON object.").into()),
    }
}

impl From<WriteResponse> for ApiResponse {
    fn from(response: WriteResponse) -> ApiResponse {
        ApiResponse {
            status: response.status,
            body: Body::Value(response.body),
            location: response.location,
            headers: Vec::new(),
        }
    }
}

/// `GET /classes/:className`
pub async fn find_objects(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let find = find_request(&request.params)?;
    let page = operations.find_text(auth, class_name, find).await?;
    let body = match page.results {
        Found::Values(results) => {
            let mut body = results_body(results);
            if let Some(count) = page.count {
                body["count"] = count.into();
            }
            if let Some(redirected) = page.redirected_class_name {
                body["className"] = redirected.into();
            }
            Body::Value(body)
        }
        // The store's page, wrapped as it is: no redirect comes this way.
        Found::Text(rows) => {
            let tail = match page.count {
                Some(count) => format!(",\"count\":{count}}}"),
                None => "}".to_owned(),
            };
            Body::Text(vec!["{\"results\":".to_owned(), rows.json, tail])
        }
    };
    Ok(ApiResponse::ok_body(body))
}

/// `GET /classes/:className/:objectId`
pub async fn get_object(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    object_id: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let get = get_request(&request.params)?;
    let body = match operations
        .get_text(auth, class_name, object_id, get)
        .await?
    {
        Found::Text(rows) => rows.single_object().map(|object| Body::Text(vec![object])),
        Found::Values(mut values) => values.pop().map(Body::Value),
    };
    let body = body.ok_or_else(Error::object_not_found)?;
    Ok(ApiResponse::ok_body(body))
}

/// `POST /classes/:className`
pub async fn create_object(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let body = body_object(request)?;
    let planned = operations.plan_create(auth, class_name, &body).await?;
    Ok(operations.commit_one(planned).await?.into())
}

/// `PUT /classes/:className/:objectId`
pub async fn update_object(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    object_id: &str,
    request: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let body = body_object(request)?;
    let planned = operations
        .plan_update(auth, class_name, object_id, &body)
        .await?;
    Ok(operations.commit_one(planned).await?.into())
}

/// `DELETE /classes/:className/:objectId`
pub async fn delete_object(
    operations: &Operations,
    auth: &Auth,
    class_name: &str,
    object_id: &str,
) -> ApiResult<ApiResponse> {
    let planned = operations.plan_delete(auth, class_name, object_id).await?;
    operations.commit_one(planned).await?;
    Ok(ApiResponse::ok(json!({})))
}
