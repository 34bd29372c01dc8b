//! `GET {mount}/openapi.json`: an OpenAPI 3.1 description of the API as it is now, generated
//! from the live schema (the same classes `/schemas` lists, so bookkeeping classes stay
//! out), for tools that import one and for the console's REST playground.
//!
//! The description is the wire's (Parse's JSON encodings, headers and error shape), so it
//! lives in `http/`; the schemas it is drawn from come from the operation layer with the
//! caller's rights (the master key, as for `/schemas`).

use serde_json::{Map, Value, json};

/// Path prefix of a class's object routes: the system classes have their own (§13).
fn class_path(class_name: &str) -> String {
    match class_name {
        "_User" => "/users".to_owned(),
        "_Role" => "/roles".to_owned(),
        "_Session" => "/sessions".to_owned(),
        "_Installation" => "/installations".to_owned(),
        _ => format!("/classes/{class_name}"),
    }
}

/// A component name for a class (`_User` → `User`, as GraphQL names them).
fn component_name(class_name: &str) -> String {
    class_name.trim_start_matches('_').to_owned()
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The JSON Schema of a stored value of a Parse field type.
fn field_schema(field: &Value) -> Value {
    let field_type = field.get("type").and_then(Value::as_str).unwrap_or("");
    let target = field.get("targetClass").and_then(Value::as_str);
    let mut schema = match field_type {
        "String" => json!({"type": "string"}),
        "Number" => json!({"type": "number"}),
        "Boolean" => json!({"type": "boolean"}),
        "Object" => json!({"type": "object"}),
        "Array" => json!({"type": "array"}),
        "Date" => reference("Date"),
        "File" => reference("File"),
        "GeoPoint" => reference("GeoPoint"),
        "Polygon" => reference("Polygon"),
        "Bytes" => reference("Bytes"),
        "ACL" => reference("ACL"),
        "Pointer" => json!({
            "allOf": [reference("Pointer")],
            "properties": {"className": {"const": target.unwrap_or_default()}},
        }),
        "Relation" => json!({
            "allOf": [reference("Relation")],
            "properties": {"className": {"const": target.unwrap_or_default()}},
        }),
        _ => json!({}),
    };
    if let Some(default) = field.get("defaultValue")
        && let Some(map) = schema.as_object_mut()
    {
        map.insert("default".into(), default.clone());
    }
    schema
}

/// A class as it is read back, and as it is written (a value or a field operator per field).
fn class_components(schema: &Value) -> (Value, Value) {
    let fields = schema
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut read = Map::new();
    let mut write = Map::new();
    let mut required = Vec::new();
    for (name, field) in &fields {
        let value = field_schema(field);
        read.insert(name.clone(), value.clone());
        match name.as_str() {
            "objectId" | "createdAt" | "updatedAt" => continue,
            _ => {}
        }
        let writable = match field.get("type").and_then(Value::as_str) {
            Some("Relation") => reference("RelationOp"),
            Some("ACL") => value,
            _ => json!({"oneOf": [value, reference("FieldOp")]}),
        };
        write.insert(name.clone(), writable);
        let is_required = field.get("required").and_then(Value::as_bool) == Some(true)
            && field.get("defaultValue").is_none();
        if is_required {
            required.push(Value::from(name.clone()));
        }
    }
    for (name, value) in [
        ("objectId", json!({"type": "string", "readOnly": true})),
        (
            "createdAt",
            json!({"type": "string", "format": "date-time", "readOnly": true}),
        ),
        (
            "updatedAt",
            json!({"type": "string", "format": "date-time", "readOnly": true}),
        ),
    ] {
        read.insert(name.into(), value);
    }
    if schema.get("className").and_then(Value::as_str) == Some("_User") {
        write.insert(
            "password".into(),
            json!({"type": "string", "writeOnly": true}),
        );
    }
    (
        json!({"type": "object", "properties": read}),
        json!({"type": "object", "properties": write, "required": required}),
    )
}

fn parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn query_parameters() -> Value {
    json!([
        parameter(
            "where",
            "Constraints, as JSON (`{\"field\": value}`, `$lt`, `$in`, `$regex`, `$or`, …)",
            json!({"type": "string"})
        ),
        parameter(
            "order",
            "Comma-separated fields, `-` for descending",
            json!({"type": "string"})
        ),
        parameter(
            "limit",
            "At most this many results (default 100)",
            json!({"type": "integer", "minimum": 0})
        ),
        parameter(
            "skip",
            "Results to skip",
            json!({"type": "integer", "minimum": 0})
        ),
        parameter(
            "keys",
            "Comma-separated fields to return",
            json!({"type": "string"})
        ),
        parameter(
            "excludeKeys",
            "Comma-separated fields to leave out",
            json!({"type": "string"})
        ),
        parameter(
            "include",
            "Comma-separated pointer fields to expand (`a.b`, `*`)",
            json!({"type": "string"})
        ),
        parameter(
            "count",
            "`1`: add the total count",
            json!({"type": "integer", "enum": [0, 1]})
        ),
    ])
}

fn object_id_parameter() -> Value {
    json!({"name": "objectId", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The responses every operation may give besides its own: a Parse error.
fn with_errors(mut responses: Map<String, Value>) -> Value {
    responses.insert(
        "default".into(),
        answer("A Parse error (`code` says which)", reference("Error")),
    );
    Value::Object(responses)
}

fn operation(summary: &str, tag: &str, responses: Map<String, Value>) -> Map<String, Value> {
    let mut operation = Map::new();
    operation.insert("summary".into(), summary.into());
    operation.insert("tags".into(), json!([tag]));
    operation.insert("responses".into(), with_errors(responses));
    operation
}

fn responses(entries: &[(&str, Value)]) -> Map<String, Value> {
    entries
        .iter()
        .map(|(status, value)| ((*status).to_owned(), value.clone()))
        .collect()
}

/// The object routes of one class.
fn class_paths(paths: &mut Map<String, Value>, class_name: &str) {
    let name = component_name(class_name);
    let base = class_path(class_name);
    let created = json!({"type": "object", "properties": {
        "objectId": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"}}});
    let updated = json!({"type": "object", "properties": {
        "updatedAt": {"type": "string", "format": "date-time"}}});
    let list = json!({"type": "object", "properties": {
        "results": {"type": "array", "items": reference(&name)}, "count": {"type": "integer"}}});

    let mut find = operation(
        &format!("Find {class_name} objects"),
        &name,
        responses(&[("200", answer("The matching objects", list))]),
    );
    find.insert("operationId".into(), format!("find{name}").into());
    find.insert("parameters".into(), query_parameters());
    let mut create = operation(
        &format!("Create a {class_name}"),
        &name,
        responses(&[("201", answer("Created", created))]),
    );
    create.insert("operationId".into(), format!("create{name}").into());
    create.insert(
        "requestBody".into(),
        json_body(reference(&format!("{name}Input"))),
    );
    paths.insert(base.clone(), json!({"get": find, "post": create}));

    let mut get = operation(
        &format!("Get a {class_name}"),
        &name,
        responses(&[("200", answer("The object", reference(&name)))]),
    );
    get.insert("operationId".into(), format!("get{name}").into());
    get.insert(
        "parameters".into(),
        json!([
            parameter(
                "keys",
                "Comma-separated fields to return",
                json!({"type": "string"})
            ),
            parameter(
                "include",
                "Comma-separated pointer fields to expand",
                json!({"type": "string"})
            )
        ]),
    );
    let mut update = operation(
        &format!("Update a {class_name}"),
        &name,
        responses(&[("200", answer("Updated", updated))]),
    );
    update.insert("operationId".into(), format!("update{name}").into());
    update.insert(
        "requestBody".into(),
        json_body(json!({"allOf": [reference(&format!("{name}Input"))], "required": []})),
    );
    let mut delete = operation(
        &format!("Delete a {class_name}"),
        &name,
        responses(&[("200", answer("Deleted", json!({"type": "object"})))]),
    );
    delete.insert("operationId".into(), format!("delete{name}").into());
    paths.insert(
        format!("{base}/{{objectId}}"),
        json!({"parameters": [object_id_parameter()], "get": get, "put": update, "delete": delete}),
    );
}

/// The routes that are not a class's object routes: users, sessions, functions, batch,
/// files, config, schemas, health.
fn builtin_paths(paths: &mut Map<String, Value>, functions: &[String]) {
    let session_user =
        json!({"allOf": [reference("User")], "properties": {"sessionToken": {"type": "string"}}});
    let credentials = json!({"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string"}, "password": {"type": "string"}}});
    let empty = json!({"type": "object"});
    let ok = |description: &str, schema: &Value| {
        responses(&[("200", answer(description, schema.clone()))])
    };

    let mut sign_up = operation(
        "Sign up",
        "Users",
        responses(&[(
            "201",
            answer("The new user with its session token", session_user.clone()),
        )]),
    );
    sign_up.insert("operationId".into(), "signUp".into());
    sign_up.insert("requestBody".into(), json_body(reference("UserInput")));
    // `POST /users` is a sign-up: it answers with a session token.
    if let Some(users) = paths
        .entry("/users")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        users.insert("post".into(), Value::Object(sign_up));
    }

    let mut log_in = operation(
        "Log in",
        "Users",
        ok("The user with a new session token", &session_user),
    );
    log_in.insert("operationId".into(), "logIn".into());
    log_in.insert("requestBody".into(), json_body(credentials));
    paths.insert("/login".into(), json!({"post": log_in}));
    let mut log_out = operation(
        "Log out (ends the session of the token sent)",
        "Users",
        ok("Done", &empty),
    );
    log_out.insert("operationId".into(), "logOut".into());
    paths.insert("/logout".into(), json!({"post": log_out}));
    let mut me = operation(
        "The current user",
        "Users",
        ok("The user of the session token", &session_user),
    );
    me.insert("operationId".into(), "currentUser".into());
    paths.insert("/users/me".into(), json!({"get": me}));
    let mut session = operation(
        "The current session",
        "Users",
        ok("The session of the token", &reference("Session")),
    );
    session.insert("operationId".into(), "currentSession".into());
    paths.insert("/sessions/me".into(), json!({"get": session}));
    let email = json!({"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}});
    for (path, id, summary) in [
        (
            "/requestPasswordReset",
            "requestPasswordReset",
            "Mail a password-reset link",
        ),
        (
            "/verificationEmailRequest",
            "verificationEmailRequest",
            "Mail an email-verification link",
        ),
    ] {
        let mut mail = operation(summary, "Users", ok("Sent (or nothing to send)", &empty));
        mail.insert("operationId".into(), id.into());
        mail.insert("requestBody".into(), json_body(email.clone()));
        paths.insert(path.into(), json!({"post": mail}));
    }

    for name in functions {
        let mut call = operation(
            &format!("Cloud function {name}"),
            "Functions",
            ok(
                "The function's result",
                &json!({"type": "object", "properties": {"result": {}}}),
            ),
        );
        call.insert("operationId".into(), format!("function_{name}").into());
        call.insert("requestBody".into(), json_body(json!({"type": "object"})));
        paths.insert(format!("/functions/{name}"), json!({"post": call}));
    }

    let batch_item = json!({"type": "object", "required": ["method", "path"], "properties": {
        "method": {"enum": ["GET", "POST", "PUT", "DELETE"]},
        "path": {"type": "string", "description": "With the mount path, e.g. /parse/classes/X"},
        "body": {"type": "object"}}});
    let mut batch = operation(
        "Several requests in one (all or nothing with `transaction: true`)",
        "Batch",
        ok(
            "One `{success}` or `{error}` per request, in order",
            &json!({"type": "array", "items": {"type": "object"}}),
        ),
    );
    batch.insert("operationId".into(), "batch".into());
    batch.insert(
        "requestBody".into(),
        json_body(json!({"type": "object", "required": ["requests"], "properties": {
            "requests": {"type": "array", "items": batch_item}, "transaction": {"type": "boolean"}}})),
    );
    paths.insert("/batch".into(), json!({"post": batch}));

    let mut upload = operation(
        "Upload a file (logged-in users)",
        "Files",
        responses(&[(
            "201",
            answer(
                "Where the file is",
                json!({"type": "object", "properties": {
            "url": {"type": "string"}, "name": {"type": "string"}}}),
            ),
        )]),
    );
    upload.insert("operationId".into(), "uploadFile".into());
    upload.insert(
        "requestBody".into(),
        json!({"required": true, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}),
    );
    paths.insert(
        "/files/{filename}".into(),
        json!({"parameters": [{"name": "filename", "in": "path", "required": true, "schema": {"type": "string"}}],
               "post": upload}),
    );

    let mut get_config = operation(
        "Parse.Config parameters",
        "Config",
        ok(
            "The parameters",
            &json!({"type": "object", "properties": {"params": {"type": "object"}}}),
        ),
    );
    get_config.insert("operationId".into(), "getConfig".into());
    let mut put_config = operation(
        "Change Parse.Config parameters (master key)",
        "Config",
        ok(
            "Done",
            &json!({"type": "object", "properties": {"result": {"type": "boolean"}}}),
        ),
    );
    put_config.insert("operationId".into(), "updateConfig".into());
    put_config.insert(
        "requestBody".into(),
        json_body(json!({"type": "object", "properties": {"params": {"type": "object"}}})),
    );
    paths.insert(
        "/config".into(),
        json!({"get": get_config, "put": put_config}),
    );

    let mut schemas = operation(
        "Every class's schema (master key)",
        "Schemas",
        ok("The schemas", &json!({"type": "object"})),
    );
    schemas.insert("operationId".into(), "allSchemas".into());
    paths.insert("/schemas".into(), json!({"get": schemas}));

    let mut health = operation(
        "Health",
        "Server",
        ok(
            "Serving",
            &json!({"type": "object", "properties": {"status": {"type": "string"}}}),
        ),
    );
    health.insert("operationId".into(), "health".into());
    health.insert("security".into(), json!([]));
    paths.insert("/health".into(), json!({"get": health}));
}

/// The components every description has: Parse's encodings of typed values and errors.
fn shared_components() -> Map<String, Value> {
    let typed = |name: &str, properties: Value, required: &[&str]| {
        let mut properties = properties.as_object().cloned().unwrap_or_default();
        properties.insert("__type".into(), json!({"const": name}));
        let mut required: Vec<&str> = required.to_vec();
        required.push("__type");
        json!({"type": "object", "properties": properties, "required": required})
    };
    let mut components = Map::new();
    components.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "error"], "properties": {
            "code": {"type": "integer", "description": "The Parse error code"},
            "error": {"type": "string"}}}),
    );
    components.insert(
        "Date".into(),
        typed(
            "Date",
            json!({"iso": {"type": "string", "format": "date-time"}}),
            &["iso"],
        ),
    );
    components.insert(
        "Pointer".into(),
        typed(
            "Pointer",
            json!({"className": {"type": "string"}, "objectId": {"type": "string"}}),
            &["className", "objectId"],
        ),
    );
    components.insert(
        "Relation".into(),
        typed(
            "Relation",
            json!({"className": {"type": "string"}}),
            &["className"],
        ),
    );
    components.insert(
        "File".into(),
        typed(
            "File",
            json!({"name": {"type": "string"}, "url": {"type": "string"}}),
            &["name"],
        ),
    );
    components.insert(
        "GeoPoint".into(),
        typed(
            "GeoPoint",
            json!({"latitude": {"type": "number"}, "longitude": {"type": "number"}}),
            &["latitude", "longitude"],
        ),
    );
    components.insert("Polygon".into(), typed("Polygon", json!({"coordinates": {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}}), &["coordinates"]));
    components.insert(
        "Bytes".into(),
        typed("Bytes", json!({"base64": {"type": "string"}}), &["base64"]),
    );
    components.insert(
        "ACL".into(),
        json!({"type": "object", "description": "`*`, a user objectId or `role:<name>` → its rights",
               "additionalProperties": {"type": "object", "properties": {
                   "read": {"type": "boolean"}, "write": {"type": "boolean"}}}}),
    );
    components.insert(
        "FieldOp".into(),
        json!({"type": "object", "required": ["__op"], "properties": {
            "__op": {"enum": ["Increment", "Add", "AddUnique", "Remove", "Delete"]},
            "amount": {"type": "number"}, "objects": {"type": "array"}}}),
    );
    components.insert(
        "RelationOp".into(),
        json!({"type": "object", "required": ["__op"], "properties": {
            "__op": {"enum": ["AddRelation", "RemoveRelation", "Batch"]},
            "objects": {"type": "array", "items": reference("Pointer")}, "ops": {"type": "array"}}}),
    );
    components
}

/// The OpenAPI 3.1 document for `schemas` (the `results` of `GET /schemas`), the cloud
/// `functions` that exist, served at `server_url` (the mount's public URL).
pub fn document(schemas: &[Value], functions: &[String], server_url: &str) -> Value {
    let mut paths = Map::new();
    let mut components = shared_components();
    for schema in schemas {
        let Some(class_name) = schema.get("className").and_then(Value::as_str) else {
            continue;
        };
        let name = component_name(class_name);
        let (read, write) = class_components(schema);
        components.insert(name.clone(), read);
        components.insert(format!("{name}Input"), write);
        class_paths(&mut paths, class_name);
    }
    // The user routes refer to these even when the schema lists no such class.
    for name in ["User", "Session"] {
        components
            .entry(name)
            .or_insert_with(|| json!({"type": "object"}));
        components
            .entry(format!("{name}Input"))
            .or_insert_with(|| json!({"type": "object"}));
    }
    builtin_paths(&mut paths, functions);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Parlor API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Parse-compatible REST API of this Parlor server, generated from its live schema.",
        },
        "servers": [{"url": server_url}],
        "security": [
            {"applicationId": [], "sessionToken": []},
            {"applicationId": [], "masterKey": []},
            {"applicationId": []},
        ],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "applicationId": {"type": "apiKey", "in": "header", "name": "X-Parse-Application-Id"},
                "sessionToken": {"type": "apiKey", "in": "header", "name": "X-Parse-Session-Token"},
                "masterKey": {"type": "apiKey", "in": "header", "name": "X-Parse-Master-Key"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_get_paths_and_typed_components() {
        let schemas = [json!({
            "className": "Message",
            "fields": {
                "objectId": {"type": "String"}, "createdAt": {"type": "Date"},
                "updatedAt": {"type": "Date"}, "ACL": {"type": "ACL"},
                "content": {"type": "String", "required": true},
                "session": {"type": "Pointer", "targetClass": "ChatSession", "required": true},
                "status": {"type": "String", "defaultValue": "complete"},
            },
        })];
        let document = document(&schemas, &["generate".to_owned()], "http://h/parse");
        assert!(document["paths"]["/classes/Message"]["get"].is_object());
        assert!(document["paths"]["/classes/Message/{objectId}"]["delete"].is_object());
        assert!(document["paths"]["/functions/generate"]["post"].is_object());
        let input = &document["components"]["schemas"]["MessageInput"];
        assert_eq!(input["required"], json!(["content", "session"]));
        assert_eq!(
            document["components"]["schemas"]["Message"]["properties"]["session"]["properties"]["className"],
            json!({"const": "ChatSession"})
        );
        assert_eq!(
            document["components"]["schemas"]["Message"]["properties"]["status"]["default"],
            "complete"
        );
    }
}
