//! The types every Parse GraphQL schema has, whatever its classes: scalars (`Date`,
//! `Object`, `Any`, `Bytes`, `File`), files, geo points, ACLs, paging, the constraint inputs
//! of each field type, and the schema-management types.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Interface, InterfaceField,
    Object, Scalar, SchemaBuilder, TypeRef,
};

use super::values::PageInfo;

/// Type names the generated schema uses itself: a class whose GraphQL name is one of them
/// (or derives one of them) is left out, as Parse Server does.
pub const RESERVED: &[&str] = &[
    "String",
    "Boolean",
    "Int",
    "Float",
    "ID",
    "Upload",
    "Query",
    "Mutation",
    "Subscription",
    "Date",
    "Object",
    "Any",
    "Bytes",
    "File",
    "FileInfo",
    "FileInput",
    "GeoPoint",
    "GeoPointInput",
    "ACL",
    "UserACL",
    "RoleACL",
    "PublicACL",
    "ACLInput",
    "UserACLInput",
    "RoleACLInput",
    "PublicACLInput",
    "Element",
    "ArrayResult",
    "PageInfo",
    "ParseObject",
    "Node",
    "ReadPreference",
    "ReadOptionsInput",
    "SearchInput",
    "TextInput",
    "BoxInput",
    "WithinInput",
    "CenterSphereInput",
    "GeoWithinInput",
    "GeoIntersectsInput",
    "SubqueryInput",
    "SelectInput",
    "KeyValueInput",
    "Viewer",
    "Class",
    "SchemaField",
    "SchemaFieldInput",
    "SchemaFieldsInput",
    "PointerFieldInput",
    "RelationFieldInput",
    "CloudCodeFunction",
    "IdWhereInput",
    "StringWhereInput",
    "NumberWhereInput",
    "BooleanWhereInput",
    "ArrayWhereInput",
    "ObjectWhereInput",
    "DateWhereInput",
    "BytesWhereInput",
    "FileWhereInput",
    "GeoPointWhereInput",
    "PolygonWhereInput",
    "SchemaStringField",
    "SchemaNumberField",
    "SchemaBooleanField",
    "SchemaArrayField",
    "SchemaObjectField",
    "SchemaDateField",
    "SchemaFileField",
    "SchemaGeoPointField",
    "SchemaPolygonField",
    "SchemaBytesField",
    "SchemaPointerField",
    "SchemaRelationField",
    "SchemaACLField",
    "SchemaStringFieldInput",
    "SchemaNumberFieldInput",
    "SchemaBooleanFieldInput",
    "SchemaArrayFieldInput",
    "SchemaObjectFieldInput",
    "SchemaDateFieldInput",
    "SchemaFileFieldInput",
    "SchemaGeoPointFieldInput",
    "SchemaPolygonFieldInput",
    "SchemaBytesFieldInput",
    "MessageDelta",
    "ObjectEvent",
];

/// The Parse field types with a schema field output type and an `add…` input.
pub const SCHEMA_FIELD_KINDS: [(&str, &str); 13] = [
    ("String", "SchemaStringField"),
    ("Number", "SchemaNumberField"),
    ("Boolean", "SchemaBooleanField"),
    ("Array", "SchemaArrayField"),
    ("Object", "SchemaObjectField"),
    ("Date", "SchemaDateField"),
    ("File", "SchemaFileField"),
    ("GeoPoint", "SchemaGeoPointField"),
    ("Polygon", "SchemaPolygonField"),
    ("Bytes", "SchemaBytesField"),
    ("Pointer", "SchemaPointerField"),
    ("Relation", "SchemaRelationField"),
    ("ACL", "SchemaACLField"),
];

fn is_date_like(value: &GqlValue) -> bool {
    match value {
        GqlValue::String(iso) => chrono::DateTime::parse_from_rfc3339(iso).is_ok(),
        GqlValue::Object(map) => map
            .get("iso")
            .is_some_and(|iso| matches!(iso, GqlValue::String(_))),
        _ => false,
    }
}

/// A field that reads one key of a GraphQL object value.
fn value_field(name: &'static str, type_ref: TypeRef) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = match ctx.parent_value.as_value() {
            Some(GqlValue::Object(map)) => map.get(name).cloned(),
            _ => None,
        };
        FieldFuture::Value(
            value
                .filter(|value| *value != GqlValue::Null)
                .map(FieldValue::value),
        )
    })
}

fn page_info_field(
    name: &'static str,
    type_ref: TypeRef,
    read: fn(&PageInfo) -> GqlValue,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .downcast_ref::<PageInfo>()
            .map(read)
            .filter(|value| *value != GqlValue::Null);
        FieldFuture::Value(value.map(FieldValue::value))
    })
}

fn inputs(name: &str, fields: &[(&'static str, TypeRef)]) -> InputObject {
    fields
        .iter()
        .fold(InputObject::new(name), |input, (field, type_ref)| {
            input.field(InputValue::new(*field, type_ref.clone()))
        })
}

/// A `<Type>WhereInput` for a value type: the comparison operators on `operand`, list
/// operators, `exists`, the subquery operators, and `extra`.
fn constraint_input(
    name: &str,
    operand: &str,
    comparisons: bool,
    extra: &[(&'static str, TypeRef)],
) -> InputObject {
    let mut input = InputObject::new(name)
        .field(InputValue::new("equalTo", TypeRef::named(operand)))
        .field(InputValue::new("notEqualTo", TypeRef::named(operand)));
    if comparisons {
        for op in [
            "lessThan",
            "lessThanOrEqualTo",
            "greaterThan",
            "greaterThanOrEqualTo",
        ] {
            input = input.field(InputValue::new(op, TypeRef::named(operand)));
        }
        input = input
            .field(InputValue::new("in", TypeRef::named_list(operand)))
            .field(InputValue::new("notIn", TypeRef::named_list(operand)));
    }
    input = input.field(InputValue::new("exists", TypeRef::named(TypeRef::BOOLEAN)));
    for (field, type_ref) in extra {
        input = input.field(InputValue::new(*field, type_ref.clone()));
    }
    input
        .field(InputValue::new("inQueryKey", TypeRef::named("SelectInput")))
        .field(InputValue::new(
            "notInQueryKey",
            TypeRef::named("SelectInput"),
        ))
}

/// Registers every class-independent type.
pub fn register(mut builder: SchemaBuilder) -> SchemaBuilder {
    let scalars = [
        Scalar::new("Date")
            .description("The Date scalar type is used in operations and types that involve dates.")
            .validator(is_date_like),
        Scalar::new("Object")
            .description("The Object scalar type is used in operations and types that involve objects.")
            .validator(|value| matches!(value, GqlValue::Object(_))),
        Scalar::new("Any").description(
            "The Any scalar type is used in operations and types that involve any type of value.",
        ),
        Scalar::new("Bytes")
            .description("The Bytes scalar type is used in operations and types that involve base 64 binary data.")
            .validator(|value| matches!(value, GqlValue::String(_) | GqlValue::Object(_))),
        Scalar::new("File")
            .description("The File scalar type is used in operations and types that involve files.")
            .validator(|value| matches!(value, GqlValue::String(_) | GqlValue::Object(_))),
    ];
    for scalar in scalars {
        builder = builder.register(scalar);
    }
    let string_nn = || TypeRef::named_nn(TypeRef::STRING);
    let float_nn = || TypeRef::named_nn(TypeRef::FLOAT);
    let bool_nn = || TypeRef::named_nn(TypeRef::BOOLEAN);
    builder = builder
        .register(
            Object::new("FileInfo")
                .field(value_field("name", string_nn()))
                .field(value_field("url", string_nn())),
        )
        .register(inputs(
            "FileInput",
            &[
                ("file", TypeRef::named("File")),
                ("upload", TypeRef::named(TypeRef::UPLOAD)),
            ],
        ))
        .register(
            Object::new("GeoPoint")
                .field(value_field("latitude", float_nn()))
                .field(value_field("longitude", float_nn())),
        )
        .register(inputs(
            "GeoPointInput",
            &[("latitude", float_nn()), ("longitude", float_nn())],
        ))
        .register(
            Object::new("UserACL")
                .field(value_field("userId", TypeRef::named_nn(TypeRef::ID)))
                .field(value_field("read", bool_nn()))
                .field(value_field("write", bool_nn())),
        )
        .register(
            Object::new("RoleACL")
                .field(value_field("roleName", TypeRef::named_nn(TypeRef::ID)))
                .field(value_field("read", bool_nn()))
                .field(value_field("write", bool_nn())),
        )
        .register(
            Object::new("PublicACL")
                .field(value_field("read", TypeRef::named(TypeRef::BOOLEAN)))
                .field(value_field("write", TypeRef::named(TypeRef::BOOLEAN))),
        )
        .register(
            Object::new("ACL")
                .field(value_field("users", TypeRef::named_nn_list("UserACL")))
                .field(value_field("roles", TypeRef::named_nn_list("RoleACL")))
                .field(value_field("public", TypeRef::named("PublicACL"))),
        )
        .register(inputs(
            "UserACLInput",
            &[
                ("userId", TypeRef::named_nn(TypeRef::ID)),
                ("read", bool_nn()),
                ("write", bool_nn()),
            ],
        ))
        .register(inputs(
            "RoleACLInput",
            &[
                ("roleName", string_nn()),
                ("read", bool_nn()),
                ("write", bool_nn()),
            ],
        ))
        .register(inputs(
            "PublicACLInput",
            &[("read", bool_nn()), ("write", bool_nn())],
        ))
        .register(inputs(
            "ACLInput",
            &[
                ("users", TypeRef::named_nn_list("UserACLInput")),
                ("roles", TypeRef::named_nn_list("RoleACLInput")),
                ("public", TypeRef::named("PublicACLInput")),
            ],
        ))
        .register(Object::new("Element").field(value_field("value", TypeRef::named_nn("Any"))))
        .register(
            Object::new("PageInfo")
                .field(page_info_field("hasNextPage", bool_nn(), |info| {
                    GqlValue::Boolean(info.has_next_page)
                }))
                .field(page_info_field("hasPreviousPage", bool_nn(), |info| {
                    GqlValue::Boolean(info.has_previous_page)
                }))
                .field(page_info_field(
                    "startCursor",
                    TypeRef::named(TypeRef::STRING),
                    |info| {
                        info.start_cursor
                            .clone()
                            .map_or(GqlValue::Null, GqlValue::String)
                    },
                ))
                .field(page_info_field(
                    "endCursor",
                    TypeRef::named(TypeRef::STRING),
                    |info| {
                        info.end_cursor
                            .clone()
                            .map_or(GqlValue::Null, GqlValue::String)
                    },
                )),
        )
        .register(
            Interface::new("Node").field(InterfaceField::new("id", TypeRef::named_nn(TypeRef::ID))),
        )
        .register(
            Interface::new("ParseObject")
                .field(InterfaceField::new(
                    "objectId",
                    TypeRef::named_nn(TypeRef::ID),
                ))
                .field(InterfaceField::new("createdAt", TypeRef::named("Date")))
                .field(InterfaceField::new("updatedAt", TypeRef::named("Date")))
                .field(InterfaceField::new("ACL", TypeRef::named_nn("ACL"))),
        )
        .register(Enum::new("ReadPreference").items([
            "PRIMARY",
            "PRIMARY_PREFERRED",
            "SECONDARY",
            "SECONDARY_PREFERRED",
            "NEAREST",
        ]))
        .register(inputs(
            "ReadOptionsInput",
            &[
                ("readPreference", TypeRef::named("ReadPreference")),
                ("includeReadPreference", TypeRef::named("ReadPreference")),
                ("subqueryReadPreference", TypeRef::named("ReadPreference")),
            ],
        ))
        .register(inputs(
            "SearchInput",
            &[
                ("term", string_nn()),
                ("language", TypeRef::named(TypeRef::STRING)),
                ("caseSensitive", TypeRef::named(TypeRef::BOOLEAN)),
                ("diacriticSensitive", TypeRef::named(TypeRef::BOOLEAN)),
            ],
        ))
        .register(inputs(
            "TextInput",
            &[("search", TypeRef::named_nn("SearchInput"))],
        ))
        .register(inputs(
            "BoxInput",
            &[
                ("bottomLeft", TypeRef::named_nn("GeoPointInput")),
                ("upperRight", TypeRef::named_nn("GeoPointInput")),
            ],
        ))
        .register(inputs(
            "WithinInput",
            &[("box", TypeRef::named_nn("BoxInput"))],
        ))
        .register(inputs(
            "CenterSphereInput",
            &[
                ("center", TypeRef::named_nn("GeoPointInput")),
                ("distance", float_nn()),
            ],
        ))
        .register(inputs(
            "GeoWithinInput",
            &[
                ("polygon", TypeRef::named_nn_list("GeoPointInput")),
                ("centerSphere", TypeRef::named("CenterSphereInput")),
            ],
        ))
        .register(inputs(
            "GeoIntersectsInput",
            &[("point", TypeRef::named("GeoPointInput"))],
        ))
        .register(inputs(
            "SubqueryInput",
            &[
                ("className", string_nn()),
                ("where", TypeRef::named_nn("Object")),
            ],
        ))
        .register(inputs(
            "SelectInput",
            &[
                ("query", TypeRef::named_nn("SubqueryInput")),
                ("key", string_nn()),
            ],
        ))
        .register(inputs(
            "KeyValueInput",
            &[("key", string_nn()), ("value", TypeRef::named_nn("Any"))],
        ));
    let regex = [
        ("matchesRegex", TypeRef::named(TypeRef::STRING)),
        ("options", TypeRef::named(TypeRef::STRING)),
    ];
    let constraint_inputs = [
        constraint_input("IdWhereInput", TypeRef::ID, true, &[]),
        constraint_input(
            "StringWhereInput",
            TypeRef::STRING,
            true,
            &[
                regex[0].clone(),
                regex[1].clone(),
                ("text", TypeRef::named("TextInput")),
            ],
        ),
        constraint_input("NumberWhereInput", TypeRef::FLOAT, true, &[]),
        constraint_input("BooleanWhereInput", TypeRef::BOOLEAN, false, &[]),
        constraint_input(
            "ArrayWhereInput",
            "Any",
            true,
            &[
                ("containedBy", TypeRef::named_list("Any")),
                ("contains", TypeRef::named_list("Any")),
            ],
        ),
        constraint_input("ObjectWhereInput", "KeyValueInput", true, &[]),
        constraint_input("DateWhereInput", "Date", true, &[]),
        constraint_input("BytesWhereInput", "Bytes", true, &[]),
        constraint_input("FileWhereInput", "File", true, &regex),
    ];
    for input in constraint_inputs {
        builder = builder.register(input);
    }
    builder
        .register(inputs(
            "GeoPointWhereInput",
            &[
                ("exists", TypeRef::named(TypeRef::BOOLEAN)),
                ("nearSphere", TypeRef::named("GeoPointInput")),
                ("maxDistance", TypeRef::named(TypeRef::FLOAT)),
                ("maxDistanceInRadians", TypeRef::named(TypeRef::FLOAT)),
                ("maxDistanceInMiles", TypeRef::named(TypeRef::FLOAT)),
                ("maxDistanceInKilometers", TypeRef::named(TypeRef::FLOAT)),
                ("within", TypeRef::named("WithinInput")),
                ("geoWithin", TypeRef::named("GeoWithinInput")),
            ],
        ))
        .register(inputs(
            "PolygonWhereInput",
            &[
                ("exists", TypeRef::named(TypeRef::BOOLEAN)),
                ("geoIntersects", TypeRef::named("GeoIntersectsInput")),
            ],
        ))
}

/// The schema-management types: `Class`, its `SchemaField`s, and `SchemaFieldsInput`.
pub fn register_schema_types(mut builder: SchemaBuilder) -> SchemaBuilder {
    let name_nn = || TypeRef::named_nn(TypeRef::STRING);
    builder = builder
        .register(Interface::new("SchemaField").field(InterfaceField::new("name", name_nn())));
    for (kind, type_name) in SCHEMA_FIELD_KINDS {
        let mut object = Object::new(type_name)
            .implement("SchemaField")
            .field(value_field("name", name_nn()));
        if matches!(kind, "Pointer" | "Relation") {
            object = object.field(value_field("targetClassName", name_nn()));
        }
        builder = builder.register(object);
        if !matches!(kind, "Pointer" | "Relation" | "ACL") {
            builder =
                builder.register(inputs(&format!("{type_name}Input"), &[("name", name_nn())]));
        }
    }
    builder
        .register(inputs("SchemaFieldInput", &[("name", name_nn())]))
        .register(inputs(
            "PointerFieldInput",
            &[("name", name_nn()), ("targetClassName", name_nn())],
        ))
        .register(inputs(
            "RelationFieldInput",
            &[("name", name_nn()), ("targetClassName", name_nn())],
        ))
        .register(inputs(
            "SchemaFieldsInput",
            &[
                (
                    "addStrings",
                    TypeRef::named_nn_list("SchemaStringFieldInput"),
                ),
                (
                    "addNumbers",
                    TypeRef::named_nn_list("SchemaNumberFieldInput"),
                ),
                (
                    "addBooleans",
                    TypeRef::named_nn_list("SchemaBooleanFieldInput"),
                ),
                ("addArrays", TypeRef::named_nn_list("SchemaArrayFieldInput")),
                (
                    "addObjects",
                    TypeRef::named_nn_list("SchemaObjectFieldInput"),
                ),
                ("addDates", TypeRef::named_nn_list("SchemaDateFieldInput")),
                ("addFiles", TypeRef::named_nn_list("SchemaFileFieldInput")),
                ("addGeoPoint", TypeRef::named("SchemaGeoPointFieldInput")),
                (
                    "addPolygons",
                    TypeRef::named_nn_list("SchemaPolygonFieldInput"),
                ),
                ("addBytes", TypeRef::named_nn_list("SchemaBytesFieldInput")),
                ("addPointers", TypeRef::named_nn_list("PointerFieldInput")),
                ("addRelations", TypeRef::named_nn_list("RelationFieldInput")),
                ("remove", TypeRef::named_nn_list("SchemaFieldInput")),
            ],
        ))
        .register(
            Object::new("Class")
                .field(value_field("name", name_nn()))
                .field(Field::new(
                    "schemaFields",
                    TypeRef::named_nn_list_nn("SchemaField"),
                    |ctx| {
                        let fields = match ctx.parent_value.as_value() {
                            Some(GqlValue::Object(map)) => match map.get("schemaFields") {
                                Some(GqlValue::List(items)) => items.clone(),
                                _ => Vec::new(),
                            },
                            _ => Vec::new(),
                        };
                        let typed = fields.into_iter().map(|field| {
                            let kind = match &field {
                                GqlValue::Object(map) => match map.get("type") {
                                    Some(GqlValue::String(kind)) => kind.clone(),
                                    _ => String::new(),
                                },
                                _ => String::new(),
                            };
                            let type_name = SCHEMA_FIELD_KINDS
                                .iter()
                                .find(|(name, _)| *name == kind)
                                .map_or("SchemaStringField", |(_, type_name)| type_name);
                            FieldValue::value(field).with_type(type_name)
                        });
                        FieldFuture::Value(Some(FieldValue::list(typed)))
                    },
                )),
        )
}
