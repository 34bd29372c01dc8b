//! The native half of the shim: each `Parse.*` call a script makes becomes one operation of
//! the operation layer, with the rights of the request that started the call — the master
//! key's only with `useMasterKey: true`, a given user's with `sessionToken` — so every rule,
//! trigger and LiveQuery event applies as it would to a client's request.

use serde_json::{Map, Value, json};

use super::{CallContext, CloudFailure};
use crate::operation::class_cache::ClassCache;
use crate::operation::{Auth, GetRequest, OpError, OpResult, Operations, results_body};

/// Runs the operation `name` with `args` (from the shim) for `context`'s call.
pub async fn run(context: &CallContext, name: &str, args: Value) -> Result<Value, CloudFailure> {
    let result = async {
        let auth = rights(context, &args).await?;
        let operations = &context.operations;
        let class_name = args.get("className").and_then(Value::as_str).unwrap_or("");
        let object_id = args.get("objectId").and_then(Value::as_str).unwrap_or("");
        let object = |key: &str| -> Map<String, Value> {
            args.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        match name {
            "find" => {
                let find = crate::http::params::find_request(&object("query"))?;
                let response = operations.find(&auth, class_name, find).await?;
                let mut body = results_body(response.results);
                if let Some(count) = response.count {
                    body["count"] = count.into();
                }
                Ok(body)
            }
            "aggregate" => {
                // The key order of the pipeline as the script wrote it (`$sort` keys).
                let orders = args
                    .get("raw")
                    .and_then(Value::as_str)
                    .map(parlor_core::query::pipeline::key_orders)
                    .unwrap_or_default();
                let results = operations
                    .aggregate(&auth, class_name, &object("query"), &orders)
                    .await?;
                Ok(results_body(results))
            }
            "get" => {
                let get = crate::http::params::get_request(&object("query"))?;
                operations.get(&auth, class_name, object_id, get).await
            }
            "create" => {
                let planned = operations
                    .plan_create(&auth, class_name, &object("body"))
                    .await?;
                Ok(operations.commit_one(planned).await?.body)
            }
            "update" => {
                let planned = operations
                    .plan_update(&auth, class_name, object_id, &object("body"))
                    .await?;
                Ok(operations.commit_one(planned).await?.body)
            }
            "delete" => {
                let planned = operations.plan_delete(&auth, class_name, object_id).await?;
                operations.commit_one(planned).await?;
                Ok(json!({}))
            }
            "signUp" => Ok(operations.sign_up(&auth, &object("body")).await?.body),
            "logIn" => {
                let request = crate::operation::login::LogIn {
                    username: args.get("username").cloned(),
                    email: None,
                    password: args.get("password").cloned(),
                };
                operations
                    .log_in(request, None, client_ip(&context.auth))
                    .await
            }
            "become" => {
                let token = args
                    .get("sessionToken")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let user_id = operations.resolve_session(token).await?;
                let caller = Auth {
                    roles: operations.roles_of(&user_id).await?,
                    user_id: Some(user_id),
                    session_token: Some(token.to_owned()),
                    ..Auth::default()
                };
                operations.current_user(&caller).await
            }
            "requestPasswordReset" => {
                let mut body = Map::new();
                body.insert(
                    "email".into(),
                    args.get("email").cloned().unwrap_or(Value::Null),
                );
                operations.request_password_reset(&body).await
            }
            "saveFile" => {
                use base64::Engine as _;
                let name = args.get("name").and_then(Value::as_str).unwrap_or("");
                let data = base64::engine::general_purpose::STANDARD
                    .decode(args.get("base64").and_then(Value::as_str).unwrap_or(""))
                    .map_err(|_| {
                        OpError::parse(
                            parlor_core::Code::FileSaveError,
                            "Parse.File: the data is not valid base64.",
                        )
                    })?;
                let content_type = args.get("type").and_then(Value::as_str);
                operations
                    .upload_file(&auth, name, content_type, data)
                    .await
            }
            "readFile" => {
                use base64::Engine as _;
                let name = args.get("name").and_then(Value::as_str).unwrap_or("");
                let Some((_, data)) = operations.read_file(name).await? else {
                    return Err(OpError::parse(
                        parlor_core::Code::ObjectNotFound,
                        "Parse.File: no such file.",
                    ));
                };
                Ok(json!({"base64": base64::engine::general_purpose::STANDARD.encode(data)}))
            }
            "deleteFile" => {
                let name = args.get("name").and_then(Value::as_str).unwrap_or("");
                operations.delete_file(&auth, name).await
            }
            "sleep" => {
                // setTimeout: bounded by the call's own time limit, which interrupts it.
                let ms = args.get("ms").and_then(Value::as_f64).unwrap_or(0.0);
                let ms = if ms.is_finite() {
                    ms.clamp(0.0, 3_600_000.0)
                } else {
                    0.0
                };
                tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
                Ok(Value::Null)
            }
            "config" => operations.get_config(&auth).await,
            "httpRequest" => http_request(&context.http_allow, &args).await,
            "jobMessage" => {
                let job_id = args.get("jobId").and_then(Value::as_str).unwrap_or("");
                let message = args.get("message").cloned().unwrap_or(Value::Null);
                operations
                    .update_job_status(job_id, json!({"message": message}))
                    .await?;
                Ok(Value::Null)
            }
            "run" => {
                let function = args.get("name").and_then(Value::as_str).unwrap_or("");
                let params = object("params");
                let result =
                    super::call_function(operations, &auth, function, &params, None).await?;
                Ok(result.unwrap_or(Value::Null))
            }
            other => Err(CloudFailure::script(format!(
                "Parse operation \"{other}\" is not supported in Cloud Code"
            ))
            .into()),
        }
    }
    .await;
    result.map_err(|error| CloudFailure::from_op_error(&error))
}

/// The address of the request that started the call (log-in limits count per address).
fn client_ip(auth: &Auth) -> std::net::IpAddr {
    auth.request
        .as_ref()
        .and_then(|meta| meta.ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// The rights an operation runs with: the call's own, the master key's, or a session's;
/// with the request's headers and the `context` the script passed (`save(…, {context})`).
async fn rights(context: &CallContext, args: &Value) -> OpResult<Auth> {
    let mut auth = if args.get("useMasterKey").and_then(Value::as_bool) == Some(true) {
        Auth::master()
    } else if let Some(token) = args.get("sessionToken").and_then(Value::as_str) {
        let operations = &context.operations;
        let user_id = operations.resolve_session(token).await?;
        Auth {
            roles: operations.roles_of(&user_id).await?,
            user_id: Some(user_id),
            session_token: Some(token.to_owned()),
            ..Auth::default()
        }
    } else {
        context.auth.clone()
    };
    // A save from cloud code is a request of its own: its context is the one it passes.
    let mut meta = context.auth.request.as_deref().cloned().unwrap_or_default();
    meta.context = match args.get("context") {
        Some(Value::Object(passed)) => passed.clone(),
        _ => Map::new(),
    };
    auth.request = Some(std::sync::Arc::new(meta));
    Ok(auth)
}

/// The `_User` objects handed to cloud code as `request.user`, by user id.
pub type UserCache = ClassCache<Value>;

/// Entries live a few seconds at most: another instance's change to a user is seen within
/// that (this instance's own changes end them at once: the cache is stamped with `_User`'s
/// generation).
pub fn user_cache() -> UserCache {
    ClassCache::new(std::time::Duration::from_secs(5), 10_000)
}

/// `request.user`: the caller's `_User` in full (with its session token), or `null`.
pub async fn user_json(operations: &Operations, auth: &Auth, cache: &UserCache) -> OpResult<Value> {
    let Some(user_id) = &auth.user_id else {
        return Ok(Value::Null);
    };
    let stamp = cache.stamp(operations.store.class_generation("_User"));
    let mut user = match cache.get(user_id, stamp) {
        Some(user) => user,
        None => {
            let mut user = operations
                .get(&Auth::master(), "_User", user_id, GetRequest::default())
                .await?;
            if let Value::Object(fields) = &mut user {
                fields.insert("__type".into(), "Object".into());
                fields.insert("className".into(), "_User".into());
            }
            cache.insert(user_id, user.clone(), stamp);
            user
        }
    };
    if let Value::Object(fields) = &mut user
        && let Some(token) = &auth.session_token
    {
        fields.insert("sessionToken".into(), token.clone().into());
    }
    Ok(user)
}

/// `Parse.Cloud.httpRequest`: only to the hosts of `--cloud-http-allow` (none by default), so
/// cloud code cannot reach the server's internal network unless the operator says so.
async fn http_request(allow: &[String], args: &Value) -> OpResult<Value> {
    let failed = |message: String| OpError::from(CloudFailure::script(message));
    let url = args.get("url").and_then(Value::as_str).unwrap_or("");
    let mut parsed = reqwest::Url::parse(url)
        .map_err(|error| failed(format!("Parse.Cloud.httpRequest: bad url {url:?}: {error}")))?;
    let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    if !matches!(parsed.scheme(), "http" | "https")
        || !allow
            .iter()
            .any(|allowed| allowed == "*" || *allowed == host)
    {
        return Err(failed(format!(
            "Parse.Cloud.httpRequest: host \"{host}\" is not allowed (see --cloud-http-allow)"
        )));
    }
    if let Some(Value::Object(params)) = args.get("params") {
        let mut pairs = parsed.query_pairs_mut();
        for (key, value) in params {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            pairs.append_pair(key, &text);
        }
    }
    let method = args
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| failed(format!("Parse.Cloud.httpRequest: bad method {method}")))?;
    let redirects = if args.get("followRedirects") == Some(&Value::Bool(true)) {
        reqwest::redirect::Policy::limited(5)
    } else {
        reqwest::redirect::Policy::none()
    };
    let client = reqwest::Client::builder()
        .redirect(redirects)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|error| failed(format!("Parse.Cloud.httpRequest: {error}")))?;
    let mut request = client.request(method, parsed);
    if let Some(Value::Object(headers)) = args.get("headers") {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                request = request.header(name.as_str(), value);
            }
        }
    }
    if let Some(body) = args.get("body").and_then(Value::as_str) {
        request = request.body(body.to_owned());
    }
    let response = request
        .send()
        .await
        .map_err(|error| failed(format!("Parse.Cloud.httpRequest: {error}")))?;
    let status = response.status().as_u16();
    let headers: Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_owned(),
                Value::String(value.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let text = response
        .text()
        .await
        .map_err(|error| failed(format!("Parse.Cloud.httpRequest: {error}")))?;
    Ok(json!({"status": status, "headers": headers, "text": text}))
}
