//! The route table: one matcher for every API path, used by the HTTP entry point and by
//! `/batch` alike, so a sub-request goes exactly where the same request would.

use axum::http::Method;
use serde_json::Value;

use super::body::Body;
use super::envelope::ApiRequest;
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use super::{batch, classes, functions, info, openapi, schemas, users};
use crate::operation::{Auth, results_body};

/// A handler's answer before it becomes an HTTP response.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Body,
    pub location: Option<String>,
    /// Further headers (`X-Parse-Job-Status-Id`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiResponse {
    pub fn ok(body: Value) -> ApiResponse {
        ApiResponse::ok_body(Body::Value(body))
    }

    pub fn ok_body(body: Body) -> ApiResponse {
        ApiResponse {
            status: 200,
            body,
            location: None,
            headers: Vec::new(),
        }
    }
}

/// Every API route, with its path parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    SignUp,
    LogIn,
    LogOut,
    CurrentUser,
    UpdateUser {
        user_id: String,
    },
    DeleteUser {
        user_id: String,
    },
    CurrentSession,
    CreateSession,
    LogInAs,
    VerifyPassword,
    UpgradeToRevocableSession,
    RequestPasswordReset,
    VerificationEmailRequest,
    SaveInstallation,
    GetConfig,
    UpdateConfig,
    Health,
    ServerInfo,
    /// `GET /openapi.json`: the API's OpenAPI description (master key, or an admin user).
    OpenApi,
    /// `GET /serverStatus`: health, load, LiveQuery clients, replies running (master key).
    ServerStatus,
    /// `GET /generations`: the persona replies being generated (master key).
    Generations,
    FindObjects {
        class_name: String,
    },
    CreateObject {
        class_name: String,
    },
    GetObject {
        class_name: String,
        object_id: String,
    },
    UpdateObject {
        class_name: String,
        object_id: String,
    },
    DeleteObject {
        class_name: String,
        object_id: String,
    },
    Batch,
    /// `GET /aggregate/:className`: a pipeline or `distinct` (master key).
    Aggregate {
        class_name: String,
    },
    AllSchemas,
    GetSchema {
        class_name: String,
    },
    CreateSchema {
        class_name: Option<String>,
    },
    UpdateSchema {
        class_name: String,
    },
    DeleteSchema {
        class_name: String,
    },
    PurgeClass {
        class_name: String,
    },
    TrackEvent,
    /// `POST /push` (master key).
    SendPush,
    /// `POST /functions/:name`: a cloud function.
    CallFunction {
        name: String,
    },
    /// `POST /jobs/:name`: starts a cloud job (master key).
    RunJob {
        name: String,
    },
    /// `GET /cloud_code/jobs`: the job schedules (master key).
    JobSchedules,
    /// `GET /cloud_code/jobs/data`: the jobs defined and those scheduled (master key).
    JobsData,
    /// `POST /cloud_code/jobs`: a new job schedule (master key).
    CreateJobSchedule,
    /// `PUT /cloud_code/jobs/:objectId` (master key).
    UpdateJobSchedule {
        object_id: String,
    },
    /// `DELETE /cloud_code/jobs/:objectId` (master key).
    DeleteJobSchedule {
        object_id: String,
    },
    /// `GET /messages/:objectId/stream`: a reply's tokens as Server-Sent Events; answered
    /// by `http/stream.rs` before the JSON dispatch, since its body is a stream.
    MessageStream {
        object_id: String,
    },
}

impl Route {
    /// Matches a method and a path below the mount path.
    pub fn resolve(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(percent_decode)
            .collect();
        let mut segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        // `/users…` ≡ `/classes/_User…`, and likewise for the other system classes (§13).
        // Routes with user and session semantics come first; the rest of `/users…` and
        // `/sessions…` are the plain object routes of their classes.
        let special = match (method.as_str(), segments.as_slice()) {
            ("POST", ["users"]) | ("POST", ["classes", "_User"]) => Some(Route::SignUp),
            ("GET", ["users", "me"]) => Some(Route::CurrentUser),
            ("PUT", ["users", user_id]) | ("PUT", ["classes", "_User", user_id]) => {
                Some(Route::UpdateUser {
                    user_id: (*user_id).to_owned(),
                })
            }
            ("DELETE", ["users", user_id]) | ("DELETE", ["classes", "_User", user_id]) => {
                Some(Route::DeleteUser {
                    user_id: (*user_id).to_owned(),
                })
            }
            ("GET", ["login"]) | ("POST", ["login"]) => Some(Route::LogIn),
            ("POST", ["logout"]) => Some(Route::LogOut),
            ("GET", ["sessions", "me"]) => Some(Route::CurrentSession),
            ("POST", ["sessions"]) | ("POST", ["classes", "_Session"]) => {
                Some(Route::CreateSession)
            }
            ("POST", ["loginAs"]) => Some(Route::LogInAs),
            ("GET", ["verifyPassword"]) | ("POST", ["verifyPassword"]) => {
                Some(Route::VerifyPassword)
            }
            ("POST", ["upgradeToRevocableSession"]) => Some(Route::UpgradeToRevocableSession),
            ("POST", ["requestPasswordReset"]) => Some(Route::RequestPasswordReset),
            ("GET", ["config"]) => Some(Route::GetConfig),
            ("PUT", ["config"]) => Some(Route::UpdateConfig),
            ("POST", ["installations"]) | ("POST", ["classes", "_Installation"]) => {
                Some(Route::SaveInstallation)
            }
            ("POST", ["verificationEmailRequest"]) => Some(Route::VerificationEmailRequest),
            _ => None,
        };
        if special.is_some() {
            return special;
        }
        let alias = match segments.first() {
            Some(&"users") => Some("_User"),
            Some(&"sessions") => Some("_Session"),
            Some(&"roles") => Some("_Role"),
            Some(&"installations") => Some("_Installation"),
            _ => None,
        };
        if let Some(class_name) = alias {
            segments.splice(0..1, ["classes", class_name]);
        }
        let owned = |text: &str| text.to_owned();
        Some(match (method.as_str(), segments.as_slice()) {
            ("GET", ["health"]) => Route::Health,
            ("GET", ["serverInfo"]) => Route::ServerInfo,
            ("GET", ["openapi.json"]) => Route::OpenApi,
            ("GET", ["serverStatus"]) => Route::ServerStatus,
            ("GET", ["generations"]) => Route::Generations,
            ("GET", ["classes", class_name]) => Route::FindObjects {
                class_name: owned(class_name),
            },
            ("POST", ["classes", class_name]) => Route::CreateObject {
                class_name: owned(class_name),
            },
            ("GET", ["classes", class_name, object_id]) => Route::GetObject {
                class_name: owned(class_name),
                object_id: owned(object_id),
            },
            ("PUT", ["classes", class_name, object_id]) => Route::UpdateObject {
                class_name: owned(class_name),
                object_id: owned(object_id),
            },
            ("DELETE", ["classes", class_name, object_id]) => Route::DeleteObject {
                class_name: owned(class_name),
                object_id: owned(object_id),
            },
            ("POST", ["batch"]) => Route::Batch,
            ("GET", ["aggregate", class_name]) => Route::Aggregate {
                class_name: owned(class_name),
            },
            ("GET", ["schemas"]) => Route::AllSchemas,
            ("POST", ["schemas"]) => Route::CreateSchema { class_name: None },
            ("GET", ["schemas", class_name]) => Route::GetSchema {
                class_name: owned(class_name),
            },
            ("POST", ["schemas", class_name]) => Route::CreateSchema {
                class_name: Some(owned(class_name)),
            },
            ("PUT", ["schemas", class_name]) => Route::UpdateSchema {
                class_name: owned(class_name),
            },
            ("DELETE", ["schemas", class_name]) => Route::DeleteSchema {
                class_name: owned(class_name),
            },
            ("DELETE", ["purge", class_name]) => Route::PurgeClass {
                class_name: owned(class_name),
            },
            ("POST", ["events", _]) => Route::TrackEvent,
            ("POST", ["push"]) => Route::SendPush,
            ("POST", ["functions", name]) => Route::CallFunction { name: owned(name) },
            ("POST", ["jobs", name]) => Route::RunJob { name: owned(name) },
            ("GET", ["cloud_code", "jobs"]) => Route::JobSchedules,
            ("GET", ["cloud_code", "jobs", "data"]) => Route::JobsData,
            ("POST", ["cloud_code", "jobs"]) => Route::CreateJobSchedule,
            ("PUT", ["cloud_code", "jobs", object_id]) => Route::UpdateJobSchedule {
                object_id: owned(object_id),
            },
            ("DELETE", ["cloud_code", "jobs", object_id]) => Route::DeleteJobSchedule {
                object_id: owned(object_id),
            },
            ("GET", ["messages", object_id, "stream"]) => Route::MessageStream {
                object_id: owned(object_id),
            },
            _ => return None,
        })
    }

    /// Whether the route writes (or runs code that may), for `X-Parse-Request-Id`
    /// idempotency: the routes Parse Server guards (objects, users, installations, cloud
    /// functions and jobs).
    pub fn is_idempotent_write(&self) -> bool {
        matches!(
            self,
            Route::CreateObject { .. }
                | Route::UpdateObject { .. }
                | Route::SignUp
                | Route::UpdateUser { .. }
                | Route::SaveInstallation
                | Route::CallFunction { .. }
                | Route::RunJob { .. }
        )
    }
}

/// A percent-encoded path segment, decoded (`+` stays a plus, as in paths).
pub(super) fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

/// Runs a request that already passed authentication.
pub async fn dispatch(
    state: &AppState,
    auth: &Auth,
    request: ApiRequest,
) -> ApiResult<ApiResponse> {
    let Some(route) = Route::resolve(&request.method, &request.path) else {
        return Err(ApiError::NotRouted {
            method: request.method.to_string(),
            path: request.path.clone(),
        });
    };
    let operations = &state.operations;
    match route {
        Route::SignUp => users::sign_up(operations, auth, &request).await,
        Route::LogIn => users::log_in(operations, auth, &request).await,
        Route::LogOut => Ok(ApiResponse::ok(operations.log_out(auth).await?)),
        Route::CurrentUser => Ok(ApiResponse::ok(operations.current_user(auth).await?)),
        Route::UpdateUser { user_id } => {
            users::update_user(operations, auth, &user_id, &request).await
        }
        Route::DeleteUser { user_id } => Ok(ApiResponse::ok(
            operations.delete_user(auth, &user_id).await?,
        )),
        Route::CurrentSession => Ok(ApiResponse::ok(operations.current_session(auth).await?)),
        Route::CreateSession => users::create_session(operations, auth, &request).await,
        Route::LogInAs => users::log_in_as(operations, auth, &request).await,
        Route::VerifyPassword => users::verify_password(operations, &request).await,
        Route::UpgradeToRevocableSession => users::upgrade_session(operations, auth).await,
        Route::GetConfig => Ok(ApiResponse::ok(operations.get_config(auth).await?)),
        Route::UpdateConfig => Ok(ApiResponse::ok(
            operations
                .update_config(auth, &classes::body_object(&request)?)
                .await?,
        )),
        Route::SaveInstallation => Ok(operations
            .save_installation(auth, &classes::body_object(&request)?)
            .await?
            .into()),
        Route::RequestPasswordReset => Ok(ApiResponse::ok(
            operations
                .request_password_reset(&classes::body_object(&request)?)
                .await?,
        )),
        Route::VerificationEmailRequest => Ok(ApiResponse::ok(
            operations
                .request_verification_email(&classes::body_object(&request)?)
                .await?,
        )),
        Route::Health => Ok(info::health()),
        Route::ServerInfo => info::server_info(auth),
        Route::OpenApi => {
            let schemas = operations.all_schemas(auth).await?;
            let classes = schemas["results"].as_array().cloned().unwrap_or_default();
            let mut functions: Vec<String> = crate::ai::functions::NAMES
                .iter()
                .map(|name| (*name).to_owned())
                .collect();
            if let Some(cloud) = &operations.cloud {
                functions.extend(cloud.function_names());
            }
            Ok(ApiResponse::ok(openapi::document(
                &classes,
                &functions,
                &operations.config.server_url,
            )))
        }
        Route::ServerStatus => Ok(ApiResponse::ok(
            operations.server_status(auth, &state.live)?,
        )),
        Route::Generations => Ok(ApiResponse::ok(operations.running_generations(auth).await?)),
        Route::FindObjects { class_name } => {
            classes::find_objects(operations, auth, &class_name, &request).await
        }
        Route::CreateObject { class_name } => {
            classes::create_object(operations, auth, &class_name, &request).await
        }
        Route::GetObject {
            class_name,
            object_id,
        } => classes::get_object(operations, auth, &class_name, &object_id, &request).await,
        Route::UpdateObject {
            class_name,
            object_id,
        } => classes::update_object(operations, auth, &class_name, &object_id, &request).await,
        Route::DeleteObject {
            class_name,
            object_id,
        } => classes::delete_object(operations, auth, &class_name, &object_id).await,
        Route::Batch => batch::run_batch(state, auth, &request).await,
        Route::Aggregate { class_name } => {
            let orders: Vec<Vec<String>> = request
                .raw_json
                .iter()
                .flat_map(|text| parlor_core::query::pipeline::key_orders(text))
                .collect();
            let results = operations
                .aggregate(auth, &class_name, &request.params, &orders)
                .await?;
            Ok(ApiResponse::ok(results_body(results)))
        }
        Route::AllSchemas => Ok(ApiResponse::ok(operations.all_schemas(auth).await?)),
        Route::GetSchema { class_name } => Ok(ApiResponse::ok(
            operations.get_schema(auth, &class_name).await?,
        )),
        Route::CreateSchema { class_name } => {
            schemas::create_schema(operations, auth, class_name.as_deref(), &request).await
        }
        Route::UpdateSchema { class_name } => {
            schemas::update_schema(operations, auth, &class_name, &request).await
        }
        Route::DeleteSchema { class_name } => Ok(ApiResponse::ok(
            operations.delete_schema(auth, &class_name).await?,
        )),
        Route::PurgeClass { class_name } => Ok(ApiResponse::ok(
            operations.purge_class(auth, &class_name).await?,
        )),
        Route::TrackEvent => Ok(ApiResponse::ok(serde_json::json!({}))),
        Route::SendPush => {
            let body = classes::body_object(&request)?;
            let status_id = operations.send_push(auth, &body).await?;
            Ok(ApiResponse {
                headers: vec![("x-parse-push-status-id", status_id)],
                ..ApiResponse::ok(serde_json::json!({"result": true}))
            })
        }
        Route::CallFunction { name } => functions::call(operations, auth, &name, &request).await,
        Route::RunJob { name } => functions::run_job(operations, auth, &name, &request).await,
        Route::JobSchedules => Ok(ApiResponse::ok(serde_json::Value::Array(
            operations.job_schedules(auth).await?,
        ))),
        Route::JobsData => Ok(ApiResponse::ok(operations.jobs_data(auth).await?)),
        Route::CreateJobSchedule => {
            let body = classes::body_object(&request)?;
            Ok(operations.create_job_schedule(auth, &body).await?.into())
        }
        Route::UpdateJobSchedule { object_id } => {
            let body = classes::body_object(&request)?;
            let updated = operations
                .update_job_schedule(auth, &object_id, &body)
                .await?;
            Ok(ApiResponse::ok(updated.body))
        }
        Route::DeleteJobSchedule { object_id } => {
            operations.delete_job_schedule(auth, &object_id).await?;
            Ok(ApiResponse::ok(serde_json::json!({})))
        }
        // Only reachable from `/batch`, whose answers are JSON.
        Route::MessageStream { .. } => Err(ApiError::NotRouted {
            method: request.method.to_string(),
            path: request.path.clone(),
        }),
    }
}
