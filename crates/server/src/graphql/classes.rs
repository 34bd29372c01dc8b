//! The types, queries and mutations of one class (§12.2): `<Class>` with a field per schema
//! field, its connection and edge, where and order inputs, field inputs, pointer and
//! relation inputs, the get and find queries, and the create, update and delete mutations.
//! Every resolver calls the operation layer with the caller's rights.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use parlor_core::schema::{ClassSchema, FieldType, is_internal_field};
use serde_json::{Map, Value, json};

use super::input::{NestedCreate, fields_to_parse, fill_nested};
use super::names;
use super::read::{find_connection, get_object, needs_read, where_arg};
use super::values::{
    Caller, Connection, Edge, PageInfo, ParseObject, acl_output, failure, field_output, parent,
    pointed_object, ready, to_gql, to_json,
};
use crate::operation::{Auth, OpError, Operations, PlannedWrite};

/// The names of one class's types and root fields.
#[derive(Debug, Clone)]
pub struct ClassNames {
    pub class_name: String,
    pub type_name: String,
    /// `chatSession`: the get query and the payload field.
    pub single: String,
    /// `chatSessions`: the find query (`None` when the plural is the word itself).
    pub plural: Option<String>,
}

impl ClassNames {
    pub fn of(class_name: &str) -> ClassNames {
        let single = names::field_name(class_name);
        let plural = names::plural(&single);
        ClassNames {
            class_name: class_name.to_owned(),
            type_name: names::type_name(class_name),
            plural: (plural != single).then_some(plural),
            single,
        }
    }

    /// Every type this class adds to the schema.
    pub fn types(&self) -> Vec<String> {
        let name = &self.type_name;
        [
            "",
            "Connection",
            "Edge",
            "WhereInput",
            "RelationWhereInput",
            "Order",
            "PointerInput",
            "RelationInput",
        ]
        .iter()
        .map(|suffix| format!("{name}{suffix}"))
        .chain(
            [
                "Create{}FieldsInput",
                "Update{}FieldsInput",
                "Create{}Input",
                "Create{}Payload",
                "Update{}Input",
                "Update{}Payload",
                "Delete{}Input",
                "Delete{}Payload",
                "{}Event",
            ]
            .iter()
            .map(|pattern| pattern.replace("{}", name)),
        )
        .collect()
    }
}

/// A valid GraphQL name that does not collide with the fields every object has.
fn exposed(field: &str) -> bool {
    !is_internal_field(field)
        && !matches!(field, "id" | "objectId" | "createdAt" | "updatedAt" | "ACL")
        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !field.starts_with(|c: char| c.is_ascii_digit())
}

/// The GraphQL type a field reads as, or `None` for a type GraphQL does not show.
fn output_type(field_type: &FieldType, known: &dyn Fn(&str) -> Option<String>) -> Option<TypeRef> {
    Some(match field_type {
        FieldType::String => TypeRef::named(TypeRef::STRING),
        FieldType::Number => TypeRef::named(TypeRef::FLOAT),
        FieldType::Boolean => TypeRef::named(TypeRef::BOOLEAN),
        FieldType::Date => TypeRef::named("Date"),
        FieldType::Object => TypeRef::named("Object"),
        FieldType::Array => TypeRef::named_list("ArrayResult"),
        FieldType::GeoPoint => TypeRef::named("GeoPoint"),
        FieldType::File => TypeRef::named("FileInfo"),
        FieldType::Bytes => TypeRef::named("Bytes"),
        FieldType::Polygon => TypeRef::named_nn_list("GeoPoint"),
        FieldType::Acl => return None,
        FieldType::Pointer(target) => {
            TypeRef::named(known(target).unwrap_or_else(|| "Object".into()))
        }
        FieldType::Relation(target) => TypeRef::named_nn(format!("{}Connection", known(target)?)),
    })
}

pub(super) fn input_type(
    field_type: &FieldType,
    known: &dyn Fn(&str) -> Option<String>,
) -> Option<TypeRef> {
    Some(match field_type {
        FieldType::String => TypeRef::named(TypeRef::STRING),
        FieldType::Number => TypeRef::named(TypeRef::FLOAT),
        FieldType::Boolean => TypeRef::named(TypeRef::BOOLEAN),
        FieldType::Date => TypeRef::named("Date"),
        FieldType::Object => TypeRef::named("Object"),
        FieldType::Array => TypeRef::named_list("Any"),
        FieldType::GeoPoint => TypeRef::named("GeoPointInput"),
        FieldType::File => TypeRef::named("FileInput"),
        FieldType::Bytes => TypeRef::named("Bytes"),
        FieldType::Polygon => TypeRef::named_nn_list("GeoPointInput"),
        FieldType::Acl => return None,
        FieldType::Pointer(target) => TypeRef::named(format!("{}PointerInput", known(target)?)),
        FieldType::Relation(target) => TypeRef::named(format!("{}RelationInput", known(target)?)),
    })
}

fn constraint_type(
    field_type: &FieldType,
    known: &dyn Fn(&str) -> Option<String>,
) -> Option<TypeRef> {
    Some(TypeRef::named(match field_type {
        FieldType::String => "StringWhereInput".to_owned(),
        FieldType::Number => "NumberWhereInput".to_owned(),
        FieldType::Boolean => "BooleanWhereInput".to_owned(),
        FieldType::Date => "DateWhereInput".to_owned(),
        FieldType::Object | FieldType::Acl => "ObjectWhereInput".to_owned(),
        FieldType::Array => "ArrayWhereInput".to_owned(),
        FieldType::GeoPoint => "GeoPointWhereInput".to_owned(),
        FieldType::File => "FileWhereInput".to_owned(),
        FieldType::Bytes => "BytesWhereInput".to_owned(),
        FieldType::Polygon => "PolygonWhereInput".to_owned(),
        FieldType::Pointer(target) | FieldType::Relation(target) => {
            format!("{}RelationWhereInput", known(target)?)
        }
    }))
}

/// The find arguments of a connection of `type_name`.
pub fn find_arguments(field: Field, type_name: &str) -> Field {
    field
        .argument(InputValue::new(
            "where",
            TypeRef::named(format!("{type_name}WhereInput")),
        ))
        .argument(InputValue::new(
            "order",
            TypeRef::named_nn_list(format!("{type_name}Order")),
        ))
        .argument(InputValue::new("skip", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new(
            "options",
            TypeRef::named("ReadOptionsInput"),
        ))
}

fn object_id(object: &ParseObject) -> &str {
    object
        .json
        .get("objectId")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The output type of a class.
fn object_type(
    schema: &ClassSchema,
    names: &ClassNames,
    known: &dyn Fn(&str) -> Option<String>,
) -> Object {
    let mut object = Object::new(&names.type_name)
        .implement("ParseObject")
        .implement("Node")
        .field(Field::new("id", TypeRef::named_nn(TypeRef::ID), |ctx| {
            let id = ctx
                .parent_value
                .downcast_ref::<ParseObject>()
                .map(|object| names::global_id(&object.class_name, object_id(object)));
            ready(id.map(|id| FieldValue::value(GqlValue::String(id))))
        }))
        .field(Field::new(
            "objectId",
            TypeRef::named_nn(TypeRef::ID),
            |ctx| {
                let id = ctx
                    .parent_value
                    .downcast_ref::<ParseObject>()
                    .map(object_id);
                ready(id.map(|id| FieldValue::value(GqlValue::String(id.to_owned()))))
            },
        ))
        .field(date_field("createdAt"))
        .field(date_field("updatedAt"))
        .field(Field::new("ACL", TypeRef::named_nn("ACL"), |ctx| {
            ready(
                ctx.parent_value
                    .downcast_ref::<ParseObject>()
                    .map(|object| acl_output(&object.json)),
            )
        }));
    for (name, field) in &schema.fields {
        if !exposed(name) || (schema.class_name == "_User" && name == "password") {
            continue;
        }
        let Some(mut type_ref) = output_type(&field.field_type, known) else {
            continue;
        };
        if field.required && !matches!(field.field_type, FieldType::Relation(_)) {
            type_ref = TypeRef::NonNull(Box::new(type_ref));
        }
        object = object.field(custom_field(name, &field.field_type, type_ref, known));
    }
    object
}

/// `createdAt`/`updatedAt`: nullable (unlike Parse Server's `Date!`), since another user's
/// public profile shows neither.
fn date_field(name: &'static str) -> Field {
    Field::new(name, TypeRef::named("Date"), move |ctx| {
        let value = ctx
            .parent_value
            .downcast_ref::<ParseObject>()
            .and_then(|object| object.json.get(name))
            .and_then(super::values::date_output);
        ready(value.map(FieldValue::value))
    })
}

/// One schema field of an object type.
fn custom_field(
    name: &str,
    field_type: &FieldType,
    type_ref: TypeRef,
    known: &dyn Fn(&str) -> Option<String>,
) -> Field {
    let key = name.to_owned();
    match field_type.clone() {
        FieldType::Pointer(target) => {
            // A pointer to a class the schema leaves out reads as a JSON `Object`.
            let typed = known(&target).is_some();
            Field::new(name, type_ref, move |ctx| {
                let value = ctx
                    .parent_value
                    .downcast_ref::<ParseObject>()
                    .and_then(|object| object.json.get(&key));
                let field_value = match value {
                    Some(value) if typed => pointed_object(value).map(FieldValue::owned_any),
                    Some(value) if !value.is_null() => Some(FieldValue::value(to_gql(value))),
                    _ => None,
                };
                ready(field_value)
            })
        }
        FieldType::Relation(target) => {
            let target_type = known(&target).unwrap_or_default();
            let field = Field::new(name, type_ref, move |ctx| {
                let key = key.clone();
                let target = target.clone();
                FieldFuture::new(async move {
                    let object = parent(&ctx)?;
                    let operations = ctx.data::<Operations>()?;
                    let mut where_json = where_arg(operations, &target, ctx.args.get("where"));
                    if let Some(map) = where_json.as_object_mut() {
                        map.insert(
                            "$relatedTo".into(),
                            json!({"object": {"__type": "Pointer", "className": object.class_name, "objectId": object_id(object)}, "key": key}),
                        );
                    }
                    let connection = find_connection(&ctx, &target, where_json).await?;
                    Ok(Some(FieldValue::owned_any(connection)))
                })
            });
            find_arguments(field, &target_type)
        }
        FieldType::Array => Field::new(name, type_ref, move |ctx| {
            let items = ctx
                .parent_value
                .downcast_ref::<ParseObject>()
                .and_then(|object| object.json.get(&key))
                .and_then(Value::as_array)
                .cloned();
            ready(items.map(|items| {
                FieldValue::list(items.into_iter().map(|item| {
                    let is_object = item.get("__type").and_then(Value::as_str) == Some("Object");
                    match pointed_object(&item).filter(|_| is_object) {
                        Some(object) => {
                            let type_name = names::type_name(&object.class_name);
                            FieldValue::owned_any(object).with_type(type_name)
                        }
                        None => {
                            let mut element = async_graphql::indexmap::IndexMap::new();
                            element.insert(async_graphql::Name::new("value"), to_gql(&item));
                            FieldValue::value(GqlValue::Object(element)).with_type("Element")
                        }
                    }
                }))
            }))
        }),
        field_type => Field::new(name, type_ref, move |ctx| {
            let value = ctx
                .parent_value
                .downcast_ref::<ParseObject>()
                .and_then(|object| object.json.get(&key))
                .and_then(|value| field_output(&field_type, value));
            ready(value.map(FieldValue::value))
        }),
    }
}

fn connection_types(names: &ClassNames) -> [Object; 2] {
    let type_name = names.type_name.clone();
    let edge = Object::new(format!("{type_name}Edge"))
        .field(Field::new(
            "cursor",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| {
                let cursor = ctx
                    .parent_value
                    .downcast_ref::<Edge>()
                    .map(|edge| edge.cursor.clone());
                ready(cursor.map(|cursor| FieldValue::value(GqlValue::String(cursor))))
            },
        ))
        .field(Field::new("node", TypeRef::named(&type_name), |ctx| {
            let node = ctx
                .parent_value
                .downcast_ref::<Edge>()
                .map(|edge| FieldValue::borrowed_any(&edge.node));
            ready(node)
        }));
    let connection = Object::new(format!("{type_name}Connection"))
        .field(Field::new(
            "count",
            TypeRef::named_nn(TypeRef::INT),
            |ctx| {
                let count = ctx
                    .parent_value
                    .downcast_ref::<Connection>()
                    .and_then(|c| c.count);
                ready(count.map(|count| FieldValue::value(GqlValue::from(count))))
            },
        ))
        .field(Field::new(
            "edges",
            TypeRef::named_list(format!("{type_name}Edge")),
            |ctx| {
                let edges = ctx
                    .parent_value
                    .downcast_ref::<Connection>()
                    .map(|connection| {
                        FieldValue::list(
                            connection
                                .edges
                                .iter()
                                .map(|edge| FieldValue::borrowed_any(edge)),
                        )
                    });
                ready(edges)
            },
        ))
        .field(Field::new(
            "pageInfo",
            TypeRef::named_nn("PageInfo"),
            |ctx| {
                let info = ctx
                    .parent_value
                    .downcast_ref::<Connection>()
                    .map(|connection| {
                        let len = connection.edges.len() as u64;
                        FieldValue::owned_any(PageInfo {
                            has_next_page: connection.has_next_page,
                            has_previous_page: connection.skip > 0,
                            start_cursor: Some(names::cursor(connection.skip)),
                            end_cursor: Some(names::cursor(connection.skip + len.max(1) - 1)),
                        })
                    });
                ready(info)
            },
        ));
    [edge, connection]
}

/// Everything one class contributes; `known` tells the type name of another class (or
/// `None` when that class is not in the schema).
pub struct ClassTypes {
    pub objects: Vec<Object>,
    pub inputs: Vec<InputObject>,
    pub order: Enum,
    /// Root fields, with their names (a class's field may yield to a built-in of that name).
    pub queries: Vec<(String, Field)>,
    pub mutations: Vec<(String, Field)>,
}

pub fn class_types(
    schema: &ClassSchema,
    names: &ClassNames,
    known: &dyn Fn(&str) -> Option<String>,
) -> ClassTypes {
    let type_name = &names.type_name;
    let mut objects = vec![object_type(schema, names, known)];
    objects.extend(connection_types(names));
    let visible: Vec<(&String, &parlor_core::schema::FieldSchema)> = schema
        .fields
        .iter()
        .filter(|(name, _)| exposed(name))
        .collect();

    // Where, order.
    let mut where_input = InputObject::new(format!("{type_name}WhereInput"))
        .field(InputValue::new("id", TypeRef::named("IdWhereInput")))
        .field(InputValue::new("objectId", TypeRef::named("IdWhereInput")))
        .field(InputValue::new(
            "createdAt",
            TypeRef::named("DateWhereInput"),
        ))
        .field(InputValue::new(
            "updatedAt",
            TypeRef::named("DateWhereInput"),
        ))
        .field(InputValue::new("ACL", TypeRef::named("ObjectWhereInput")));
    let mut order = Enum::new(format!("{type_name}Order"));
    for field in ["id", "objectId", "createdAt", "updatedAt"] {
        order = order
            .item(format!("{field}_ASC"))
            .item(format!("{field}_DESC"));
    }
    for (name, field) in &visible {
        if matches!(name.as_str(), "AND" | "OR" | "NOR") {
            continue;
        }
        if let Some(type_ref) = constraint_type(&field.field_type, known) {
            where_input = where_input.field(InputValue::new(name.as_str(), type_ref));
        }
        if !matches!(field.field_type, FieldType::Relation(_)) {
            order = order
                .item(format!("{name}_ASC"))
                .item(format!("{name}_DESC"));
        }
    }
    for combinator in ["AND", "OR", "NOR"] {
        where_input = where_input.field(InputValue::new(
            combinator,
            TypeRef::named_nn_list(format!("{type_name}WhereInput")),
        ));
    }
    let relation_where = InputObject::new(format!("{type_name}RelationWhereInput"))
        .field(InputValue::new(
            "have",
            TypeRef::named(format!("{type_name}WhereInput")),
        ))
        .field(InputValue::new(
            "haveNot",
            TypeRef::named(format!("{type_name}WhereInput")),
        ))
        .field(InputValue::new("exists", TypeRef::named(TypeRef::BOOLEAN)));

    // Field inputs.
    let mut create_fields = InputObject::new(format!("Create{type_name}FieldsInput"))
        .field(InputValue::new("ACL", TypeRef::named("ACLInput")));
    let mut update_fields = InputObject::new(format!("Update{type_name}FieldsInput"))
        .field(InputValue::new("ACL", TypeRef::named("ACLInput")));
    for (name, field) in &visible {
        let Some(type_ref) = input_type(&field.field_type, known) else {
            continue;
        };
        let create_type = if field.required && field.default_value.is_none() {
            TypeRef::NonNull(Box::new(type_ref.clone()))
        } else {
            type_ref.clone()
        };
        create_fields = create_fields.field(InputValue::new(name.as_str(), create_type));
        update_fields = update_fields.field(InputValue::new(name.as_str(), type_ref));
    }
    let pointer_input = InputObject::new(format!("{type_name}PointerInput"))
        .field(InputValue::new("link", TypeRef::named(TypeRef::ID)))
        .field(InputValue::new(
            "createAndLink",
            TypeRef::named(format!("Create{type_name}FieldsInput")),
        ));
    let relation_input = InputObject::new(format!("{type_name}RelationInput"))
        .field(InputValue::new("add", TypeRef::named_nn_list(TypeRef::ID)))
        .field(InputValue::new(
            "remove",
            TypeRef::named_nn_list(TypeRef::ID),
        ))
        .field(InputValue::new(
            "createAndAdd",
            TypeRef::named_nn_list(format!("Create{type_name}FieldsInput")),
        ));

    // Mutation inputs and payloads.
    let client_mutation_id =
        || InputValue::new("clientMutationId", TypeRef::named(TypeRef::STRING));
    let create_input = InputObject::new(format!("Create{type_name}Input"))
        .field(InputValue::new(
            "fields",
            TypeRef::named(format!("Create{type_name}FieldsInput")),
        ))
        .field(client_mutation_id());
    let update_input = InputObject::new(format!("Update{type_name}Input"))
        .field(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .field(InputValue::new(
            "fields",
            TypeRef::named(format!("Update{type_name}FieldsInput")),
        ))
        .field(client_mutation_id());
    let delete_input = InputObject::new(format!("Delete{type_name}Input"))
        .field(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .field(client_mutation_id());
    for verb in ["Create", "Update", "Delete"] {
        objects.push(payload_type(
            &format!("{verb}{type_name}Payload"),
            &names.single,
            type_name,
        ));
    }

    ClassTypes {
        objects,
        inputs: vec![
            where_input,
            relation_where,
            create_fields,
            update_fields,
            pointer_input,
            relation_input,
            create_input,
            update_input,
            delete_input,
        ],
        order,
        queries: queries(names),
        mutations: mutations(names),
    }
}

/// A mutation payload: the object under the class's field name, and `clientMutationId`.
fn payload_type(name: &str, single: &str, type_name: &str) -> Object {
    let single = single.to_owned();
    Object::new(name)
        .field(Field::new(
            single.clone(),
            TypeRef::named_nn(type_name),
            move |ctx| {
                let object = ctx
                    .parent_value
                    .downcast_ref::<Payload>()
                    .map(|payload| payload.object.clone());
                ready(object.map(FieldValue::owned_any))
            },
        ))
        .field(Field::new(
            "clientMutationId",
            TypeRef::named(TypeRef::STRING),
            |ctx| {
                let id = ctx
                    .parent_value
                    .downcast_ref::<Payload>()
                    .and_then(|payload| payload.client_mutation_id.clone());
                ready(id.map(|id| FieldValue::value(GqlValue::String(id))))
            },
        ))
}

/// A mutation's answer.
#[derive(Debug, Clone)]
pub struct Payload {
    pub object: ParseObject,
    pub client_mutation_id: Option<String>,
}

fn queries(names: &ClassNames) -> Vec<(String, Field)> {
    let class_name = names.class_name.clone();
    let get = Field::new(
        &names.single,
        TypeRef::named_nn(&names.type_name),
        move |ctx| {
            let class_name = class_name.clone();
            FieldFuture::new(async move {
                let operations = ctx.data::<Operations>()?;
                let caller = ctx.data::<Caller>()?;
                let id = names::object_id_of(&class_name, ctx.args.try_get("id")?.string()?);
                let object = get_object(
                    operations,
                    caller,
                    &class_name,
                    &id,
                    ctx.field().selection_set(),
                )
                .await?;
                Ok(Some(FieldValue::owned_any(object)))
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(
        "options",
        TypeRef::named("ReadOptionsInput"),
    ));
    let mut fields = vec![(names.single.clone(), get)];
    if let Some(plural) = &names.plural {
        let class_name = names.class_name.clone();
        let find = Field::new(
            plural,
            TypeRef::named_nn(format!("{}Connection", names.type_name)),
            move |ctx| {
                let class_name = class_name.clone();
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let where_json = where_arg(operations, &class_name, ctx.args.get("where"));
                    let connection = find_connection(&ctx, &class_name, where_json).await?;
                    Ok(Some(FieldValue::owned_any(connection)))
                })
            },
        );
        fields.push((plural.clone(), find_arguments(find, &names.type_name)));
    }
    fields
}

/// The selection of the payload's object (`createX { x { … } }`).
fn payload_selection<'a>(
    ctx: &'a ResolverContext<'a>,
    single: &str,
) -> Vec<async_graphql::SelectionField<'a>> {
    ctx.field()
        .selection_set()
        .filter(|field| field.name() == single)
        .flat_map(|field| field.selection_set().collect::<Vec<_>>())
        .collect()
}

fn client_mutation_id(input: &async_graphql::dynamic::ObjectAccessor<'_>) -> Option<String> {
    input
        .get("clientMutationId")
        .and_then(|value| value.string().ok().map(str::to_owned))
}

/// Plans a create of `class_name` from a fields input, its nested creates first; every
/// planned write is returned in commit order (nested objects before the object).
pub fn plan_create<'a>(
    operations: &'a Operations,
    auth: &'a Auth,
    class_name: &'a str,
    fields: Value,
) -> futures::future::BoxFuture<'a, Result<Vec<PlannedWrite>, OpError>> {
    Box::pin(async move {
        let schema = operations
            .schemas
            .get(class_name)
            .unwrap_or_else(|| std::sync::Arc::new(ClassSchema::new(class_name)));
        let (mut body, nested) =
            fields_to_parse(&schema, &fields, false).map_err(invalid_pointer)?;
        let mut planned = plan_nested(operations, auth, &mut body, &nested).await?;
        planned.push(operations.plan_create(auth, class_name, &body).await?);
        Ok(planned)
    })
}

fn invalid_pointer(message: String) -> OpError {
    OpError::parse(parlor_core::Code::InvalidPointer, message)
}

async fn plan_nested(
    operations: &Operations,
    auth: &Auth,
    body: &mut Map<String, Value>,
    nested: &[NestedCreate],
) -> Result<Vec<PlannedWrite>, OpError> {
    let mut planned = Vec::new();
    for create in nested {
        let mut writes =
            plan_create(operations, auth, &create.class_name, create.fields.clone()).await?;
        let object_id = writes
            .last_mut()
            .and_then(PlannedWrite::created_object_mut)
            .map(|object| object.object_id.clone())
            .unwrap_or_default();
        fill_nested(body, create, &object_id);
        planned.append(&mut writes);
    }
    Ok(planned)
}

/// Replaces `upload`s in a fields input by stored files (`{file: {name, url}}`).
async fn store_uploads(
    ctx: &ResolverContext<'_>,
    schema: Option<&ClassSchema>,
    fields: Option<async_graphql::dynamic::ValueAccessor<'_>>,
) -> async_graphql::Result<Value> {
    let Some(fields) = fields.filter(|fields| !fields.is_null()) else {
        return Ok(Value::Object(Map::new()));
    };
    let mut json = to_json(fields.as_value());
    let Some(schema) = schema else {
        return Ok(json);
    };
    let object = fields.object()?;
    for (name, value) in object.iter() {
        if !matches!(schema.field_type(name.as_str()), Some(FieldType::File)) || value.is_null() {
            continue;
        }
        let file_input = value.object()?;
        let Some(upload) = file_input.get("upload").filter(|upload| !upload.is_null()) else {
            continue;
        };
        let stored = super::builtins::store_upload(ctx, upload.upload()?).await?;
        if let Some(map) = json.as_object_mut() {
            map.insert(name.to_string(), json!({"file": stored}));
        }
    }
    Ok(json)
}

fn mutations(names: &ClassNames) -> Vec<(String, Field)> {
    let type_name = &names.type_name;
    let create = {
        let class_name = names.class_name.clone();
        let single = names.single.clone();
        Field::new(
            format!("create{type_name}"),
            TypeRef::named(format!("Create{type_name}Payload")),
            move |ctx| {
                let class_name = class_name.clone();
                let single = single.clone();
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = ctx.args.try_get("input")?.object()?;
                    let schema = operations.schemas.get(&class_name);
                    let fields =
                        store_uploads(&ctx, schema.as_deref(), input.get("fields")).await?;
                    let created = if class_name == "_User" {
                        // As `POST /classes/_User`: a sign-up.
                        let (object_id, _) =
                            super::builtins::sign_up(operations, &caller.auth, fields, None)
                                .await?;
                        json!({"objectId": object_id})
                    } else {
                        let planned = plan_create(operations, &caller.auth, &class_name, fields)
                            .await
                            .map_err(failure)?;
                        let responses = operations.commit(planned).await.map_err(failure)?;
                        responses
                            .last()
                            .map(|response| response.body.clone())
                            .unwrap_or_default()
                    };
                    let object_id = created
                        .get("objectId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let selection = payload_selection(&ctx, &single);
                    // A sign-up answers only the id: anything else is read.
                    let answered: &[&str] = if class_name == "_User" {
                        &[]
                    } else {
                        &["createdAt", "updatedAt"]
                    };
                    let object = if needs_read(selection.iter().copied(), answered) {
                        get_object(
                            operations,
                            caller,
                            &class_name,
                            &object_id,
                            selection.into_iter(),
                        )
                        .await?
                    } else {
                        let mut json = created.as_object().cloned().unwrap_or_default();
                        if let Some(created_at) = json.get("createdAt").cloned() {
                            json.insert("updatedAt".into(), created_at);
                        }
                        ParseObject {
                            class_name: class_name.clone(),
                            json,
                        }
                    };
                    Ok(Some(FieldValue::owned_any(Payload {
                        object,
                        client_mutation_id: client_mutation_id(&input),
                    })))
                })
            },
        )
        .argument(InputValue::new(
            "input",
            TypeRef::named_nn(format!("Create{type_name}Input")),
        ))
    };
    let update = {
        let class_name = names.class_name.clone();
        let single = names.single.clone();
        Field::new(
            format!("update{type_name}"),
            TypeRef::named(format!("Update{type_name}Payload")),
            move |ctx| {
                let class_name = class_name.clone();
                let single = single.clone();
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = ctx.args.try_get("input")?.object()?;
                    let object_id =
                        names::object_id_of(&class_name, input.try_get("id")?.string()?);
                    let schema = operations
                        .schemas
                        .get(&class_name)
                        .unwrap_or_else(|| std::sync::Arc::new(ClassSchema::new(&class_name)));
                    let fields = store_uploads(&ctx, Some(&schema), input.get("fields")).await?;
                    let (mut body, nested) = fields_to_parse(&schema, &fields, true)
                        .map_err(|message| failure(invalid_pointer(message)))?;
                    let mut planned = plan_nested(operations, &caller.auth, &mut body, &nested)
                        .await
                        .map_err(failure)?;
                    let updated = if class_name == "_User" {
                        // As `PUT /users/:id`: the user's own rules (password, sessions).
                        if !planned.is_empty() {
                            operations.commit(planned).await.map_err(failure)?;
                        }
                        operations
                            .update_user(&caller.auth, &object_id, &body)
                            .await
                            .map_err(failure)?
                            .body
                    } else {
                        planned.push(
                            operations
                                .plan_update(&caller.auth, &class_name, &object_id, &body)
                                .await
                                .map_err(failure)?,
                        );
                        let responses = operations.commit(planned).await.map_err(failure)?;
                        responses
                            .last()
                            .map(|response| response.body.clone())
                            .unwrap_or_default()
                    };
                    let selection = payload_selection(&ctx, &single);
                    let object = if needs_read(selection.iter().copied(), &["updatedAt"]) {
                        get_object(
                            operations,
                            caller,
                            &class_name,
                            &object_id,
                            selection.into_iter(),
                        )
                        .await?
                    } else {
                        let mut json = updated.as_object().cloned().unwrap_or_default();
                        json.insert("objectId".into(), object_id.clone().into());
                        ParseObject {
                            class_name: class_name.clone(),
                            json,
                        }
                    };
                    Ok(Some(FieldValue::owned_any(Payload {
                        object,
                        client_mutation_id: client_mutation_id(&input),
                    })))
                })
            },
        )
        .argument(InputValue::new(
            "input",
            TypeRef::named_nn(format!("Update{type_name}Input")),
        ))
    };
    let delete = {
        let class_name = names.class_name.clone();
        let single = names.single.clone();
        Field::new(
            format!("delete{type_name}"),
            TypeRef::named(format!("Delete{type_name}Payload")),
            move |ctx| {
                let class_name = class_name.clone();
                let single = single.clone();
                FieldFuture::new(async move {
                    let operations = ctx.data::<Operations>()?;
                    let caller = ctx.data::<Caller>()?;
                    let input = ctx.args.try_get("input")?.object()?;
                    let object_id =
                        names::object_id_of(&class_name, input.try_get("id")?.string()?);
                    let selection = payload_selection(&ctx, &single);
                    // The answer is the object as it was: read it (with the caller's rights) first.
                    let object = if needs_read(selection.iter().copied(), &[]) {
                        get_object(
                            operations,
                            caller,
                            &class_name,
                            &object_id,
                            selection.into_iter(),
                        )
                        .await?
                    } else {
                        let mut json = Map::new();
                        json.insert("objectId".into(), object_id.clone().into());
                        ParseObject {
                            class_name: class_name.clone(),
                            json,
                        }
                    };
                    if class_name == "_User" {
                        // As `DELETE /users/:id`.
                        operations
                            .delete_user(&caller.auth, &object_id)
                            .await
                            .map_err(failure)?;
                    } else {
                        let planned = operations
                            .plan_delete(&caller.auth, &class_name, &object_id)
                            .await
                            .map_err(failure)?;
                        operations.commit_one(planned).await.map_err(failure)?;
                    }
                    Ok(Some(FieldValue::owned_any(Payload {
                        object,
                        client_mutation_id: client_mutation_id(&input),
                    })))
                })
            },
        )
        .argument(InputValue::new(
            "input",
            TypeRef::named_nn(format!("Delete{type_name}Input")),
        ))
    };
    vec![
        (format!("create{type_name}"), create),
        (format!("update{type_name}"), update),
        (format!("delete{type_name}"), delete),
    ]
}
