//! What resolvers hand each other: objects as the read path rendered them, connections, and
//! the conversion of Parse's JSON encodings into GraphQL output values.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use parlor_core::schema::FieldType;
use serde_json::{Map, Value};

use super::names;
use crate::operation::{Auth, OpError};

/// Who asks, for every resolver of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth: Auth,
    pub client_ip: std::net::IpAddr,
    /// A `GET` request: queries only, no mutation.
    pub read_only: bool,
    /// The response keys of the request's root fields, and whether each may be null (every
    /// mutation payload, `node`): where a failed root field leaves a `null` rather than
    /// nulling all of `data`. Filled when the query is parsed.
    pub nullable_roots: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl Caller {
    pub fn new(auth: Auth, client_ip: std::net::IpAddr, read_only: bool) -> Caller {
        Caller {
            auth,
            client_ip,
            read_only,
            nullable_roots: Default::default(),
        }
    }

    /// Whether the root field answered under `key` may be null.
    pub fn root_is_nullable(&self, key: &str) -> bool {
        self.nullable_roots
            .lock()
            .map(|roots| {
                roots
                    .iter()
                    .any(|(name, nullable)| name == key && *nullable)
            })
            .unwrap_or(false)
    }
}

/// An object as the caller may read it (the read path's JSON), with its class.
#[derive(Debug, Clone)]
pub struct ParseObject {
    pub class_name: String,
    pub json: Map<String, Value>,
}

/// A page of a find: the `…Connection` value.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The page, built once; resolvers lend its edges and nodes rather than copy them.
    pub edges: Vec<Edge>,
    /// The offset of the first node (cursors count from the start of the whole result).
    pub skip: u64,
    pub count: Option<u64>,
    pub has_next_page: bool,
}

/// One edge of a connection.
#[derive(Debug, Clone)]
pub struct Edge {
    pub cursor: String,
    pub node: ParseObject,
}

/// The `pageInfo` of a connection.
#[derive(Debug, Clone)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A resolver failure: the operation layer's error, mapped to Parse's code at the edge.
pub fn failure(error: impl Into<OpError>) -> async_graphql::Error {
    async_graphql::Error::new_with_source(error.into())
}

/// JSON → a GraphQL value (JSON scalars keep their shape).
pub fn to_gql(value: &Value) -> GqlValue {
    GqlValue::from_json(value.clone()).unwrap_or(GqlValue::Null)
}

/// A GraphQL input value → JSON.
pub fn to_json(value: &GqlValue) -> Value {
    value.clone().into_json().unwrap_or(Value::Null)
}

/// The parent object of a field resolver.
pub fn parent<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a ParseObject> {
    ctx.parent_value.try_downcast_ref::<ParseObject>()
}

/// A value known without waiting.
pub fn ready<'a>(value: Option<FieldValue<'a>>) -> FieldFuture<'a> {
    FieldFuture::Value(value)
}

/// An ISO date from `createdAt`-style strings or `{"__type":"Date","iso":…}`.
pub fn date_output(value: &Value) -> Option<GqlValue> {
    match value {
        Value::String(iso) => Some(GqlValue::String(iso.clone())),
        Value::Object(map) => map.get("iso").map(to_gql),
        _ => None,
    }
}

/// The ACL output of an object: the object's ACL, or public read and write without one.
pub fn acl_output(object: &Map<String, Value>) -> FieldValue<'static> {
    let acl = object
        .get("ACL")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| {
            let mut public = Map::new();
            public.insert("*".into(), serde_json::json!({"read": true, "write": true}));
            public
        });
    let rights = |rule: &Value| {
        let flag = |right: &str| rule.get(right).and_then(Value::as_bool).unwrap_or(false);
        (flag("read"), flag("write"))
    };
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut public = GqlValue::Null;
    for (entry, rule) in &acl {
        let (read, write) = rights(rule);
        let mut item = async_graphql::indexmap::IndexMap::new();
        if entry == "*" {
            item.insert(async_graphql::Name::new("read"), GqlValue::Boolean(read));
            item.insert(async_graphql::Name::new("write"), GqlValue::Boolean(write));
            public = GqlValue::Object(item);
        } else if let Some(role) = entry.strip_prefix("role:") {
            item.insert(
                async_graphql::Name::new("roleName"),
                GqlValue::String(role.to_owned()),
            );
            item.insert(async_graphql::Name::new("read"), GqlValue::Boolean(read));
            item.insert(async_graphql::Name::new("write"), GqlValue::Boolean(write));
            roles.push(GqlValue::Object(item));
        } else {
            item.insert(
                async_graphql::Name::new("userId"),
                GqlValue::String(names::global_id("_User", entry)),
            );
            item.insert(async_graphql::Name::new("read"), GqlValue::Boolean(read));
            item.insert(async_graphql::Name::new("write"), GqlValue::Boolean(write));
            users.push(GqlValue::Object(item));
        }
    }
    let list = |items: Vec<GqlValue>| {
        if items.is_empty() {
            GqlValue::Null
        } else {
            GqlValue::List(items)
        }
    };
    let mut output = async_graphql::indexmap::IndexMap::new();
    output.insert(async_graphql::Name::new("users"), list(users));
    output.insert(async_graphql::Name::new("roles"), list(roles));
    output.insert(async_graphql::Name::new("public"), public);
    FieldValue::value(GqlValue::Object(output))
}

/// The GraphQL value of a stored field (everything but pointers, relations and arrays,
/// which the builder resolves as objects).
pub fn field_output(field_type: &FieldType, value: &Value) -> Option<GqlValue> {
    if value.is_null() {
        return None;
    }
    match field_type {
        FieldType::Date => date_output(value),
        FieldType::Bytes => match value {
            Value::Object(map) => map.get("base64").map(to_gql),
            other => Some(to_gql(other)),
        },
        FieldType::File => {
            let mut info = async_graphql::indexmap::IndexMap::new();
            for key in ["name", "url"] {
                info.insert(
                    async_graphql::Name::new(key),
                    value.get(key).map(to_gql).unwrap_or(GqlValue::Null),
                );
            }
            Some(GqlValue::Object(info))
        }
        FieldType::GeoPoint => {
            let mut point = async_graphql::indexmap::IndexMap::new();
            for key in ["latitude", "longitude"] {
                point.insert(
                    async_graphql::Name::new(key),
                    value.get(key).map(to_gql).unwrap_or(GqlValue::Null),
                );
            }
            Some(GqlValue::Object(point))
        }
        FieldType::Polygon => {
            let points = value
                .get("coordinates")
                .and_then(Value::as_array)?
                .iter()
                .map(|pair| {
                    let mut point = async_graphql::indexmap::IndexMap::new();
                    point.insert(
                        async_graphql::Name::new("latitude"),
                        pair.get(0).map(to_gql).unwrap_or(GqlValue::Null),
                    );
                    point.insert(
                        async_graphql::Name::new("longitude"),
                        pair.get(1).map(to_gql).unwrap_or(GqlValue::Null),
                    );
                    GqlValue::Object(point)
                })
                .collect();
            Some(GqlValue::List(points))
        }
        _ => Some(to_gql(value)),
    }
}

/// A pointer field's value as an object: the included object, or (when nothing beyond its id
/// was asked) the bare pointer.
pub fn pointed_object(value: &Value) -> Option<ParseObject> {
    let map = value.as_object()?;
    let class_name = map.get("className")?.as_str()?.to_owned();
    let mut json = map.clone();
    json.remove("__type");
    json.remove("className");
    Some(ParseObject { class_name, json })
}
