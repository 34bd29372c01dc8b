//! The fields every schema has (§12.3): `health`, `node`, `viewer`; the user mutations
//! (`signUp`, `logIn`, `logInWith`, `logOut`, password reset, verification mail);
//! `callCloudCode`; class management; `createFile`. Each calls the operation that the
//! matching REST route calls.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext,
    SchemaBuilder, TypeRef,
};
use parlor_core::schema::ClassSchema;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use super::classes::{input_type, plan_create};
use super::input::{fields_to_parse, fill_nested};
use super::names;
use super::read::get_object;
use super::types::SCHEMA_FIELD_KINDS;
use super::values::{Caller, ParseObject, failure, ready, to_gql, to_json};
use crate::operation::login::LogIn;
use crate::operation::{Auth, OpError, Operations};

/// The `viewer` value: the session token and its user.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session_token: String,
    pub user: ParseObject,
}

/// A field reading one key of a GraphQL object value.
pub fn value_field(name: &'static str, type_ref: TypeRef) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = match ctx.parent_value.as_value() {
            Some(GqlValue::Object(map)) => map.get(name).cloned(),
            _ => None,
        };
        ready(
            value
                .filter(|value| *value != GqlValue::Null)
                .map(FieldValue::value),
        )
    })
}

fn object_value(entries: impl IntoIterator<Item = (&'static str, GqlValue)>) -> GqlValue {
    GqlValue::Object(
        entries
            .into_iter()
            .map(|(key, value)| (async_graphql::Name::new(key), value))
            .collect(),
    )
}

/// A relay mutation: `name(input: <Name>Input!): <Name>Payload`, the payload carrying
/// `clientMutationId` back.
fn relay_mutation<F>(
    name: &str,
    inputs: Vec<InputValue>,
    payload: Object,
    resolve: F,
) -> (Field, InputObject, Object)
where
    F: for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync + 'static,
{
    let type_name = {
        let mut chars = name.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default()
    };
    let input = inputs
        .into_iter()
        .fold(
            InputObject::new(format!("{type_name}Input")),
            InputObject::field,
        )
        .field(InputValue::new(
            "clientMutationId",
            TypeRef::named(TypeRef::STRING),
        ));
    let payload = payload.field(value_field(
        "clientMutationId",
        TypeRef::named(TypeRef::STRING),
    ));
    let field = Field::new(name, TypeRef::named(format!("{type_name}Payload")), resolve).argument(
        InputValue::new("input", TypeRef::named_nn(format!("{type_name}Input"))),
    );
    (field, input, payload)
}

fn client_mutation_id(ctx: &ResolverContext<'_>) -> GqlValue {
    ctx.args
        .get("input")
        .and_then(|input| input.object().ok())
        .and_then(|input| {
            input
                .get("clientMutationId")
                .map(|value| value.as_value().clone())
        })
        .unwrap_or(GqlValue::Null)
}

fn ok_payload(ctx: &ResolverContext<'_>) -> FieldValue<'static> {
    FieldValue::value(object_value([
        ("ok", GqlValue::Boolean(true)),
        ("clientMutationId", client_mutation_id(ctx)),
    ]))
}

fn input_json(ctx: &ResolverContext<'_>) -> Value {
    ctx.args
        .get("input")
        .map(|input| to_json(input.as_value()))
        .unwrap_or(Value::Null)
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The viewer of a session just opened (sign-up, log-in): its user read with its own rights.
async fn viewer_of(
    ctx: &ResolverContext<'_>,
    user_id: &str,
    session_token: String,
) -> async_graphql::Result<Viewer> {
    let operations = ctx.data::<Operations>()?;
    let caller = ctx.data::<Caller>()?;
    let roles = operations.roles_of(user_id).await.map_err(failure)?;
    let as_user = Caller::new(
        Auth {
            user_id: Some(user_id.to_owned()),
            roles,
            session_token: Some(session_token.clone()),
            ..caller.auth.clone()
        },
        caller.client_ip,
        false,
    );
    let selection: Vec<_> = ctx
        .field()
        .selection_set()
        .filter(|field| field.name() == "viewer")
        .flat_map(|viewer| {
            viewer
                .selection_set()
                .filter(|field| field.name() == "user")
                .collect::<Vec<_>>()
        })
        .flat_map(|user| user.selection_set().collect::<Vec<_>>())
        .collect();
    let user = get_object(
        operations,
        &as_user,
        "_User",
        user_id,
        selection.into_iter(),
    )
    .await?;
    Ok(Viewer {
        session_token,
        user,
    })
}

fn viewer_payload(viewer: Viewer, ctx: &ResolverContext<'_>) -> FieldValue<'static> {
    FieldValue::owned_any(ViewerPayload {
        viewer,
        client_mutation_id: client_mutation_id(ctx),
    })
}

#[derive(Debug, Clone)]
struct ViewerPayload {
    viewer: Viewer,
    client_mutation_id: GqlValue,
}

fn viewer_payload_type(name: &str) -> Object {
    Object::new(name).field(Field::new("viewer", TypeRef::named_nn("Viewer"), |ctx| {
        let viewer = ctx
            .parent_value
            .downcast_ref::<ViewerPayload>()
            .map(|payload| payload.viewer.clone());
        ready(viewer.map(FieldValue::owned_any))
    }))
}

fn viewer_payload_client_id(object: Object) -> Object {
    object.field(Field::new(
        "clientMutationId",
        TypeRef::named(TypeRef::STRING),
        |ctx| {
            let id = ctx
                .parent_value
                .downcast_ref::<ViewerPayload>()
                .map(|payload| payload.client_mutation_id.clone())
                .filter(|id| *id != GqlValue::Null);
            ready(id.map(FieldValue::value))
        },
    ))
}

/// Stores an uploaded file for the caller; its `{name, url}`.
pub async fn store_upload(
    ctx: &ResolverContext<'_>,
    upload: async_graphql::Upload,
) -> async_graphql::Result<Value> {
    let operations = ctx.data::<Operations>()?;
    let caller = ctx.data::<Caller>()?;
    let value = upload
        .value(ctx)
        .map_err(|_| failure(OpError::parse(Code::FileSaveError, "Invalid file upload.")))?;
    let stored = operations
        .upload_file(
            &caller.auth,
            &value.filename,
            value.content_type.as_deref(),
            value.content.to_vec(),
        )
        .await
        .map_err(failure)?;
    Ok(stored)
}

/// A class as `Class { name schemaFields }` reads it.
fn class_value(schema_json: &Value) -> GqlValue {
    let fields = schema_json
        .get("fields")
        .and_then(Value::as_object)
        .map(|fields| {
            fields
                .iter()
                .map(|(name, field)| {
                    object_value([
                        ("name", GqlValue::String(name.clone())),
                        (
                            "type",
                            field.get("type").map(to_gql).unwrap_or(GqlValue::Null),
                        ),
                        (
                            "targetClassName",
                            field
                                .get("targetClass")
                                .map(to_gql)
                                .unwrap_or(GqlValue::Null),
                        ),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    object_value([
        (
            "name",
            schema_json
                .get("className")
                .map(to_gql)
                .unwrap_or(GqlValue::Null),
        ),
        ("schemaFields", GqlValue::List(fields)),
    ])
}

/// `SchemaFieldsInput` → the `fields` of a `/schemas` body; `existing` are the class's
/// current fields (for `updateClass`).
fn schema_fields(
    input: &Value,
    existing: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, OpError> {
    let mut fields = Map::new();
    let removed: Vec<String> = input
        .get("remove")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|field| text(field, "name"))
        .collect();
    let additions = SCHEMA_FIELD_KINDS.iter().filter_map(|(kind, _)| {
        let key = match *kind {
            "GeoPoint" => "addGeoPoint",
            "Bytes" => "addBytes",
            "Pointer" => "addPointers",
            "Relation" => "addRelations",
            "ACL" => return None,
            _ => return Some((*kind, format!("add{kind}s"))),
        };
        Some((*kind, key.to_owned()))
    });
    for (kind, key) in additions {
        let entries: Vec<Value> = match input.get(&key) {
            Some(Value::Array(entries)) => entries.clone(),
            Some(entry @ Value::Object(_)) => vec![entry.clone()],
            _ => continue,
        };
        for entry in entries {
            let name = text(&entry, "name");
            if removed.contains(&name) {
                continue;
            }
            if fields.contains_key(&name)
                || existing.is_some_and(|existing| existing.contains_key(&name))
            {
                return Err(OpError::parse(
                    Code::InvalidKeyName,
                    format!("Duplicated field name: {name}"),
                ));
            }
            let mut field = json!({"type": kind});
            if matches!(kind, "Pointer" | "Relation") {
                field["targetClass"] = Value::String(text(&entry, "targetClassName"));
            }
            fields.insert(name, field);
        }
    }
    if let Some(existing) = existing {
        for name in removed {
            if existing.contains_key(&name) {
                fields.insert(name, json!({"__op": "Delete"}));
            }
        }
    }
    Ok(fields)
}

/// The `CloudCodeFunction` names: every function the server has (the template's and the
/// app's Cloud Code), when GraphQL can name it.
fn function_names(operations: &Operations) -> Vec<String> {
    let mut names: Vec<String> = crate::ai::functions::NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    if let Some(cloud) = &operations.cloud {
        for name in cloud.function_names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .filter(|name| {
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect()
}

/// Adds the built-in fields and their types to the schema.
pub fn register(
    mut builder: SchemaBuilder,
    query: Object,
    mut mutation: Object,
    user_schema: Option<&ClassSchema>,
    operations: &Operations,
) -> (SchemaBuilder, Object, Object) {
    let query = query
        .field(Field::new(
            "health",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |_| ready(Some(FieldValue::value(GqlValue::Boolean(true)))),
        ))
        .field(
            Field::new("node", TypeRef::named("Node"), |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let id = ctx.args.try_get("id")?.string()?;
                    let Some((class_name, object_id)) = names::parse_global_id(id)
                        .filter(|(class_name, _)| operations.schemas.get(class_name).is_some())
                    else {
                        return Err(failure(Error::object_not_found()));
                    };
                    let object = get_object(
                        operations,
                        caller,
                        &class_name,
                        &object_id,
                        ctx.field().selection_set(),
                    )
                    .await?;
                    let type_name = names::type_name(&class_name);
                    Ok(Some(FieldValue::owned_any(object).with_type(type_name)))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID))),
        )
        .field(
            Field::new("class", TypeRef::named_nn("Class"), |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let name = ctx.args.try_get("name")?.string()?;
                    let class = operations
                        .get_schema(&caller.auth, name)
                        .await
                        .map_err(failure)?;
                    Ok(Some(FieldValue::value(class_value(&class))))
                })
            })
            .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))),
        )
        .field(Field::new(
            "classes",
            TypeRef::named_nn_list_nn("Class"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let all = operations
                        .all_schemas(&caller.auth)
                        .await
                        .map_err(failure)?;
                    let classes: Vec<GqlValue> = all
                        .get("results")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(class_value)
                        .collect();
                    Ok(Some(FieldValue::value(GqlValue::List(classes))))
                })
            },
        ));

    // Class management.
    let class_payload =
        |name: &str| Object::new(name).field(value_field("class", TypeRef::named_nn("Class")));
    let class_inputs = || {
        vec![
            InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)),
            InputValue::new("schemaFields", TypeRef::named("SchemaFieldsInput")),
        ]
    };
    let mut mutations = vec![
        relay_mutation(
            "createClass",
            class_inputs(),
            class_payload("CreateClassPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = input_json(&ctx);
                    let fields =
                        schema_fields(input.get("schemaFields").unwrap_or(&Value::Null), None)
                            .map_err(failure)?;
                    let name = text(&input, "name");
                    let body = json!({"className": name, "fields": fields});
                    let class = operations
                        .create_schema(&caller.auth, Some(&name), &body)
                        .await
                        .map_err(failure)?;
                    Ok(Some(FieldValue::value(object_value([
                        ("class", class_value(&class)),
                        ("clientMutationId", client_mutation_id(&ctx)),
                    ]))))
                })
            },
        ),
        relay_mutation(
            "updateClass",
            class_inputs(),
            class_payload("UpdateClassPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = input_json(&ctx);
                    let name = text(&input, "name");
                    let existing = operations
                        .get_schema(&caller.auth, &name)
                        .await
                        .map_err(failure)?;
                    let fields = schema_fields(
                        input.get("schemaFields").unwrap_or(&Value::Null),
                        existing.get("fields").and_then(Value::as_object),
                    )
                    .map_err(failure)?;
                    let class = operations
                        .update_schema(&caller.auth, &name, &json!({"fields": fields}))
                        .await
                        .map_err(failure)?;
                    Ok(Some(FieldValue::value(object_value([
                        ("class", class_value(&class)),
                        ("clientMutationId", client_mutation_id(&ctx)),
                    ]))))
                })
            },
        ),
        relay_mutation(
            "deleteClass",
            vec![InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))],
            class_payload("DeleteClassPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let name = text(&input_json(&ctx), "name");
                    let existing = operations
                        .get_schema(&caller.auth, &name)
                        .await
                        .map_err(failure)?;
                    operations
                        .delete_schema(&caller.auth, &name)
                        .await
                        .map_err(failure)?;
                    Ok(Some(FieldValue::value(object_value([
                        ("class", class_value(&existing)),
                        ("clientMutationId", client_mutation_id(&ctx)),
                    ]))))
                })
            },
        ),
        relay_mutation(
            "createFile",
            vec![InputValue::new(
                "upload",
                TypeRef::named_nn(TypeRef::UPLOAD),
            )],
            Object::new("CreateFilePayload")
                .field(value_field("fileInfo", TypeRef::named_nn("FileInfo"))),
            |ctx| {
                FieldFuture::new(async move {
                    let input = ctx.args.try_get("input")?.object()?;
                    let upload = input.try_get("upload")?.upload()?;
                    let stored = store_upload(&ctx, upload).await?;
                    Ok(Some(FieldValue::value(object_value([
                        ("fileInfo", to_gql(&stored)),
                        ("clientMutationId", client_mutation_id(&ctx)),
                    ]))))
                })
            },
        ),
    ];
    let functions = function_names(operations);
    if !functions.is_empty() {
        builder = builder.register(Enum::new("CloudCodeFunction").items(functions));
        mutations.push(relay_mutation(
            "callCloudCode",
            vec![
                InputValue::new("functionName", TypeRef::named_nn("CloudCodeFunction")),
                InputValue::new("params", TypeRef::named("Object")),
            ],
            Object::new("CallCloudCodePayload").field(value_field("result", TypeRef::named("Any"))),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = ctx.args.try_get("input")?.object()?;
                    let name = input.try_get("functionName")?.enum_name()?.to_owned();
                    let params = input
                        .get("params")
                        .map(|params| to_json(params.as_value()))
                        .and_then(|params| params.as_object().cloned())
                        .unwrap_or_default();
                    let result =
                        crate::cloud::call_function(operations, &caller.auth, &name, &params, None)
                            .await
                            .map_err(failure)?
                            .unwrap_or(Value::Null);
                    Ok(Some(FieldValue::value(object_value([
                        ("result", to_gql(&result)),
                        ("clientMutationId", client_mutation_id(&ctx)),
                    ]))))
                })
            },
        ));
    }

    // Users, when the schema has `_User`.
    let mut query = query;
    if let Some(user_schema) = user_schema {
        builder = builder.register(
            Object::new("Viewer")
                .field(Field::new(
                    "sessionToken",
                    TypeRef::named_nn(TypeRef::STRING),
                    |ctx| {
                        let token = ctx
                            .parent_value
                            .downcast_ref::<Viewer>()
                            .map(|viewer| viewer.session_token.clone());
                        ready(token.map(|token| FieldValue::value(GqlValue::String(token))))
                    },
                ))
                .field(Field::new("user", TypeRef::named_nn("User"), |ctx| {
                    let user = ctx
                        .parent_value
                        .downcast_ref::<Viewer>()
                        .map(|viewer| viewer.user.clone());
                    ready(user.map(FieldValue::owned_any))
                })),
        );
        query = query.field(Field::new("viewer", TypeRef::named_nn("Viewer"), |ctx| {
            FieldFuture::new(async move {
                let operations = ctx.data::<Operations>()?;
                let caller = ctx.data::<Caller>()?;
                let (Some(token), Some(user_id)) =
                    (&caller.auth.session_token, &caller.auth.user_id)
                else {
                    return Err(failure(OpError::parse(
                        Code::InvalidSessionToken,
                        "Invalid session token",
                    )));
                };
                let selection: Vec<_> = ctx
                    .field()
                    .selection_set()
                    .filter(|field| field.name() == "user")
                    .flat_map(|user| user.selection_set().collect::<Vec<_>>())
                    .collect();
                let user =
                    get_object(operations, caller, "_User", user_id, selection.into_iter()).await?;
                Ok(Some(FieldValue::owned_any(Viewer {
                    session_token: token.clone(),
                    user,
                })))
            })
        }));
        let mut login_with_fields = InputObject::new("UserLoginWithInput");
        for (name, field) in &user_schema.fields {
            if matches!(name.as_str(), "password" | "username" | "authData")
                || parlor_core::schema::is_internal_field(name)
                || matches!(
                    name.as_str(),
                    "objectId" | "createdAt" | "updatedAt" | "ACL"
                )
            {
                continue;
            }
            if let Some(type_ref) =
                input_type(&field.field_type, &|target| Some(names::type_name(target)))
            {
                login_with_fields =
                    login_with_fields.field(InputValue::new(name.as_str(), type_ref));
            }
        }
        builder = builder
            .register(login_with_fields.field(InputValue::new("ACL", TypeRef::named("ACLInput"))));
        let viewer_mutation =
            |name: &str,
             inputs: Vec<InputValue>,
             resolve: fn(ResolverContext<'_>) -> FieldFuture<'_>| {
                let type_name = {
                    let mut chars = name.chars();
                    chars
                        .next()
                        .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                        .unwrap_or_default()
                };
                let input = inputs
                    .into_iter()
                    .fold(
                        InputObject::new(format!("{type_name}Input")),
                        InputObject::field,
                    )
                    .field(InputValue::new(
                        "clientMutationId",
                        TypeRef::named(TypeRef::STRING),
                    ));
                let payload =
                    viewer_payload_client_id(viewer_payload_type(&format!("{type_name}Payload")));
                let field =
                    Field::new(name, TypeRef::named(format!("{type_name}Payload")), resolve)
                        .argument(InputValue::new(
                            "input",
                            TypeRef::named_nn(format!("{type_name}Input")),
                        ));
                (field, input, payload)
            };
        mutations.push(viewer_mutation(
            "signUp",
            vec![InputValue::new(
                "fields",
                TypeRef::named("CreateUserFieldsInput"),
            )],
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let fields = input_json(&ctx).get("fields").cloned().unwrap_or(json!({}));
                    let response = sign_up(operations, &caller.auth, fields, None).await?;
                    let viewer = viewer_of(&ctx, &response.0, response.1).await?;
                    Ok(Some(viewer_payload(viewer, &ctx)))
                })
            },
        ));
        mutations.push(viewer_mutation(
            "logInWith",
            vec![
                InputValue::new("authData", TypeRef::named_nn("Object")),
                InputValue::new("fields", TypeRef::named("UserLoginWithInput")),
            ],
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = input_json(&ctx);
                    let fields = input.get("fields").cloned().unwrap_or(json!({}));
                    let auth_data = input.get("authData").cloned();
                    let response = sign_up(operations, &caller.auth, fields, auth_data).await?;
                    let viewer = viewer_of(&ctx, &response.0, response.1).await?;
                    Ok(Some(viewer_payload(viewer, &ctx)))
                })
            },
        ));
        mutations.push(viewer_mutation(
            "logIn",
            vec![
                InputValue::new("username", TypeRef::named_nn(TypeRef::STRING)),
                InputValue::new("password", TypeRef::named_nn(TypeRef::STRING)),
                InputValue::new("authData", TypeRef::named("Object")),
            ],
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = input_json(&ctx);
                    let user = operations
                        .log_in(
                            LogIn {
                                username: input.get("username").cloned(),
                                email: None,
                                password: input.get("password").cloned(),
                            },
                            caller.auth.installation_id.as_deref(),
                            caller.client_ip,
                        )
                        .await
                        .map_err(failure)?;
                    let viewer =
                        viewer_of(&ctx, &text(&user, "objectId"), text(&user, "sessionToken"))
                            .await?;
                    Ok(Some(viewer_payload(viewer, &ctx)))
                })
            },
        ));
        let ok = |name: &str| {
            Object::new(name).field(value_field("ok", TypeRef::named_nn(TypeRef::BOOLEAN)))
        };
        mutations.push(relay_mutation(
            "logOut",
            Vec::new(),
            ok("LogOutPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    if caller.auth.session_token.is_some() {
                        operations.log_out(&caller.auth).await.map_err(failure)?;
                    }
                    Ok(Some(ok_payload(&ctx)))
                })
            },
        ));
        mutations.push(relay_mutation(
            "resetPassword",
            vec![InputValue::new("email", TypeRef::named_nn(TypeRef::STRING))],
            ok("ResetPasswordPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let mut body = Map::new();
                    body.insert(
                        "email".into(),
                        Value::String(text(&input_json(&ctx), "email")),
                    );
                    operations
                        .request_password_reset(&body)
                        .await
                        .map_err(failure)?;
                    Ok(Some(ok_payload(&ctx)))
                })
            },
        ));
        mutations.push(relay_mutation(
            "confirmResetPassword",
            vec![
                InputValue::new("username", TypeRef::named_nn(TypeRef::STRING)),
                InputValue::new("password", TypeRef::named_nn(TypeRef::STRING)),
                InputValue::new("token", TypeRef::named_nn(TypeRef::STRING)),
            ],
            ok("ConfirmResetPasswordPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let input = input_json(&ctx);
                    let (username, password, token) = (
                        text(&input, "username"),
                        text(&input, "password"),
                        text(&input, "token"),
                    );
                    if username.is_empty() {
                        return Err(failure(OpError::parse(
                            Code::UsernameMissing,
                            "you must provide a username",
                        )));
                    }
                    if password.is_empty() {
                        return Err(failure(OpError::parse(
                            Code::PasswordMissing,
                            "you must provide a password",
                        )));
                    }
                    if token.is_empty() {
                        return Err(failure(OpError::parse(
                            Code::OtherCause,
                            "you must provide a token",
                        )));
                    }
                    operations
                        .reset_password(crate::operation::account_email::PasswordReset {
                            token: &token,
                            username: &username,
                            new_password: &password,
                            confirmation: None,
                        })
                        .await
                        .map_err(failure)?;
                    Ok(Some(ok_payload(&ctx)))
                })
            },
        ));
        mutations.push(relay_mutation(
            "sendVerificationEmail",
            vec![InputValue::new("email", TypeRef::named_nn(TypeRef::STRING))],
            ok("SendVerificationEmailPayload"),
            |ctx| {
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let mut body = Map::new();
                    body.insert(
                        "email".into(),
                        Value::String(text(&input_json(&ctx), "email")),
                    );
                    operations
                        .request_verification_email(&body)
                        .await
                        .map_err(failure)?;
                    Ok(Some(ok_payload(&ctx)))
                })
            },
        ));
    }
    for (field, input, payload) in mutations {
        builder = builder.register(input).register(payload);
        mutation = mutation.field(field);
    }
    (builder, query, mutation)
}

/// Signs up (or, with `authData`, logs in or signs up through a provider) as `POST /users`
/// does; the user's id and session token.
pub(super) async fn sign_up(
    operations: &Operations,
    auth: &Auth,
    fields: Value,
    auth_data: Option<Value>,
) -> async_graphql::Result<(String, String)> {
    let schema = operations
        .schemas
        .get("_User")
        .unwrap_or_else(|| std::sync::Arc::new(ClassSchema::new("_User")));
    let (mut body, nested) = fields_to_parse(&schema, &fields, false)
        .map_err(|message| failure(OpError::parse(Code::InvalidPointer, message)))?;
    // Objects created with the user (`createAndLink`) are committed first: sign-up opens
    // a session, which a planned write cannot carry.
    for create in &nested {
        let planned = plan_create(operations, auth, &create.class_name, create.fields.clone())
            .await
            .map_err(failure)?;
        let responses = operations.commit(planned).await.map_err(failure)?;
        let object_id = responses
            .last()
            .map(|response| text(&response.body, "objectId"))
            .unwrap_or_default();
        fill_nested(&mut body, create, &object_id);
    }
    if let Some(auth_data) = auth_data {
        body.insert("authData".into(), auth_data);
    }
    let response = operations.sign_up(auth, &body).await.map_err(failure)?;
    Ok((
        text(&response.body, "objectId"),
        text(&response.body, "sessionToken"),
    ))
}
