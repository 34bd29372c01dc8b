//! Class and field definitions, in memory and in the `/schemas` JSON shape (§8.2).
//!
//! A [`ClassSchema`] is what the store keeps in its schema table and what the schema cache
//! hands to every operation. Class-level permissions are kept as the JSON the client wrote
//! (validated here); evaluating them is the operation layer's job.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{Code, Error, Result};

/// A field's type. Pointer and Relation carry their target class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Date,
    Object,
    Array,
    GeoPoint,
    File,
    Bytes,
    Polygon,
    Acl,
    Pointer(String),
    Relation(String),
}

impl FieldType {
    /// The Parse type name (`"Pointer"`, `"ACL"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String => "String",
            FieldType::Number => "Number",
            FieldType::Boolean => "Boolean",
            FieldType::Date => "Date",
            FieldType::Object => "Object",
            FieldType::Array => "Array",
            FieldType::GeoPoint => "GeoPoint",
            FieldType::File => "File",
            FieldType::Bytes => "Bytes",
            FieldType::Polygon => "Polygon",
            FieldType::Acl => "ACL",
            FieldType::Pointer(_) => "Pointer",
            FieldType::Relation(_) => "Relation",
        }
    }

    /// The target class of a Pointer or Relation.
    pub fn target_class(&self) -> Option<&str> {
        match self {
            FieldType::Pointer(target) | FieldType::Relation(target) => Some(target),
            _ => None,
        }
    }

    /// How the type reads in a mismatch message: `Pointer<_User>`, `String`.
    pub fn describe(&self) -> String {
        match self.target_class() {
            Some(target) => format!("{}<{target}>", self.name()),
            None => self.name().to_owned(),
        }
    }

    /// Parses `{"type":"Pointer","targetClass":"_User"}`'s type part.
    pub fn from_json(field: &Map<String, Value>) -> Result<FieldType> {
        let type_name = field
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::incorrect_type("invalid field type: missing"))?;
        let target = field.get("targetClass").and_then(Value::as_str);
        let needs_target = |target: Option<&str>| match target {
            Some(target) if is_valid_class_name(target) => Ok(target.to_owned()),
            Some(target) => Err(Error::new(
                Code::InvalidClassName,
                format!("Invalid class name: {target}"),
            )),
            None => Err(Error::new(
                Code::ClassNameMissing,
                format!("type {type_name} needs a class name"),
            )),
        };
        Ok(match type_name {
            "String" => FieldType::String,
            "Number" => FieldType::Number,
            "Boolean" => FieldType::Boolean,
            "Date" => FieldType::Date,
            "Object" => FieldType::Object,
            "Array" => FieldType::Array,
            "GeoPoint" => FieldType::GeoPoint,
            "File" => FieldType::File,
            "Bytes" => FieldType::Bytes,
            "Polygon" => FieldType::Polygon,
            "ACL" => FieldType::Acl,
            "Pointer" => FieldType::Pointer(needs_target(target)?),
            "Relation" => FieldType::Relation(needs_target(target)?),
            other => {
                return Err(Error::incorrect_type(format!(
                    "invalid field type: {other}"
                )));
            }
        })
    }
}

/// One field of a class.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSchema {
    pub field_type: FieldType,
    pub required: bool,
    pub default_value: Option<Value>,
}

impl FieldSchema {
    pub fn of(field_type: FieldType) -> FieldSchema {
        FieldSchema {
            field_type,
            required: false,
            default_value: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut field = Map::new();
        field.insert("type".into(), self.field_type.name().into());
        if let Some(target) = self.field_type.target_class() {
            field.insert("targetClass".into(), target.into());
        }
        if self.required {
            field.insert("required".into(), true.into());
        }
        if let Some(default_value) = &self.default_value {
            field.insert("defaultValue".into(), default_value.clone());
        }
        Value::Object(field)
    }
}

/// A class: its fields (including the defaults `objectId createdAt updatedAt ACL`),
/// its class-level permissions and its indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSchema {
    pub class_name: String,
    pub fields: BTreeMap<String, FieldSchema>,
    /// Class-level permissions as validated JSON (§8.1).
    pub class_level_permissions: Map<String, Value>,
    /// Index name → `{field: 1 | -1}`.
    pub indexes: Map<String, Value>,
}

/// Fields every class has, which clients cannot add, remove or change.
pub const DEFAULT_FIELDS: [&str; 4] = ["objectId", "createdAt", "updatedAt", "ACL"];

/// CLP operations that take a permission map.
pub const CLP_OPERATIONS: [&str; 7] = [
    "get", "find", "count", "create", "update", "delete", "addField",
];

impl ClassSchema {
    /// A new class with the default fields, the system defaults for `_` classes, and open CLPs.
    pub fn new(class_name: &str) -> ClassSchema {
        let mut fields = BTreeMap::new();
        fields.insert("objectId".to_owned(), FieldSchema::of(FieldType::String));
        fields.insert("createdAt".to_owned(), FieldSchema::of(FieldType::Date));
        fields.insert("updatedAt".to_owned(), FieldSchema::of(FieldType::Date));
        fields.insert("ACL".to_owned(), FieldSchema::of(FieldType::Acl));
        for (name, field_type) in system_fields(class_name) {
            fields.insert(name.to_owned(), FieldSchema::of(field_type));
        }
        ClassSchema {
            class_name: class_name.to_owned(),
            fields,
            class_level_permissions: default_clp(class_name),
            indexes: Map::new(),
        }
    }

    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.get(name)
    }

    pub fn field_type(&self, name: &str) -> Option<&FieldType> {
        self.fields.get(name).map(|field| &field.field_type)
    }

    /// The `/schemas` response shape, as Parse Server's PostgreSQL adapter gives it: every CLP
    /// operation listed (`{}` where the stored CLP has none: nobody but master) and `indexes`
    /// even when there are none (SDKs read `schema.indexes.x`).
    pub fn to_json(&self) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .filter(|(name, _)| !is_internal_field(name))
            .map(|(name, field)| (name.clone(), field.to_json()))
            .collect();
        let mut clp = self.class_level_permissions.clone();
        for operation in CLP_OPERATIONS.into_iter().chain(["protectedFields"]) {
            clp.entry(operation).or_insert_with(|| json!({}));
        }
        json!({
            "className": self.class_name,
            "fields": fields,
            "classLevelPermissions": clp,
            "indexes": self.indexes,
        })
    }

    /// Reads a stored schema back (the inverse of [`ClassSchema::to_json`]).
    pub fn from_json(value: &Value) -> Result<ClassSchema> {
        let class_name = value
            .get("className")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::new(Code::ClassNameMissing, "schema needs a class name"))?;
        let mut schema = ClassSchema::new(class_name);
        if let Some(fields) = value.get("fields").and_then(Value::as_object) {
            for (name, field) in fields {
                let field = parse_field(field)?;
                schema.fields.insert(name.clone(), field);
            }
        }
        if let Some(clp) = value
            .get("classLevelPermissions")
            .and_then(Value::as_object)
        {
            schema.class_level_permissions = validate_clp(clp)?;
        }
        if let Some(indexes) = value.get("indexes").and_then(Value::as_object) {
            schema.indexes = indexes.clone();
        }
        Ok(schema)
    }
}

/// Parses one field definition `{"type":…,"targetClass":…,"required":…,"defaultValue":…}`.
pub fn parse_field(field: &Value) -> Result<FieldSchema> {
    let map = field
        .as_object()
        .ok_or_else(|| Error::incorrect_type("invalid field type: not an object"))?;
    let field_type = FieldType::from_json(map)?;
    let required = map
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let default_value = map
        .get("defaultValue")
        .filter(|value| !value.is_null())
        .cloned();
    if matches!(field_type, FieldType::Relation(_)) && (required || default_value.is_some()) {
        return Err(Error::incorrect_type(
            "Relation fields cannot be required or have a default value",
        ));
    }
    Ok(FieldSchema {
        field_type,
        required,
        default_value,
    })
}

/// `^[A-Za-z][A-Za-z0-9_]*$`, or a known system class.
pub fn is_valid_class_name(name: &str) -> bool {
    SYSTEM_CLASSES.contains(&name) || is_valid_field_name(name)
}

/// `^[A-Za-z][A-Za-z0-9_]*$`, and neither `className` nor `length` (Parse Server refuses
/// `length`: JavaScript SDKs would read it as the length of an array-like object).
pub fn is_valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_with_letter = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic());
    starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "className"
        && name != "length"
        && name.len() <= 128
}

/// Classes whose names start with `_` and which clients may name.
pub const SYSTEM_CLASSES: [&str; 9] = [
    "_User",
    "_Role",
    "_Session",
    "_Installation",
    "_Product",
    "_PushStatus",
    "_JobStatus",
    "_JobSchedule",
    "_Audience",
];

/// The server's own bookkeeping (`/config`'s parameters, `X-Parse-Request-Id` claims): stored
/// as classes so that every instance sharing the database and `parlor export` see them, but
/// not valid class names for clients, so no client (master key included) can create, list,
/// read or write them except through the endpoints that own them.
pub const INTERNAL_CLASSES: [&str; 2] = ["_GlobalConfig", "_Idempotency"];

pub fn is_internal_class(name: &str) -> bool {
    INTERNAL_CLASSES.contains(&name)
}

fn system_fields(class_name: &str) -> Vec<(&'static str, FieldType)> {
    match class_name {
        "_User" => vec![
            ("username", FieldType::String),
            ("password", FieldType::String),
            ("email", FieldType::String),
            ("emailVerified", FieldType::Boolean),
            ("authData", FieldType::Object),
            // Server-only fields: never returned, never queryable (their names are not valid
            // client field names).
            ("_hashed_password", FieldType::String),
            ("_failed_login_count", FieldType::Number),
            ("_account_lockout_expires_at", FieldType::Date),
            ("_perishable_token", FieldType::String),
            ("_perishable_token_expires_at", FieldType::Date),
            ("_email_verify_token", FieldType::String),
        ],
        "_Role" => vec![
            ("name", FieldType::String),
            ("users", FieldType::Relation("_User".into())),
            ("roles", FieldType::Relation("_Role".into())),
        ],
        "_Session" => vec![
            ("user", FieldType::Pointer("_User".into())),
            ("installationId", FieldType::String),
            ("sessionToken", FieldType::String),
            ("expiresAt", FieldType::Date),
            ("createdWith", FieldType::Object),
        ],
        "_Installation" => vec![
            ("installationId", FieldType::String),
            ("deviceToken", FieldType::String),
            ("channels", FieldType::Array),
            ("deviceType", FieldType::String),
            ("pushType", FieldType::String),
            ("GCMSenderId", FieldType::String),
            ("timeZone", FieldType::String),
            ("localeIdentifier", FieldType::String),
            ("badge", FieldType::Number),
            ("appVersion", FieldType::String),
            ("appName", FieldType::String),
            ("appIdentifier", FieldType::String),
            ("parseVersion", FieldType::String),
        ],
        _ => Vec::new(),
    }
}

/// Server-only fields (`_hashed_password`, …): kept in the schema so the store has columns
/// for them, but never shown to clients.
pub fn is_internal_field(name: &str) -> bool {
    name.starts_with('_')
}

/// The fields a class gets from being a system class.
pub fn system_field_names(class_name: &str) -> Vec<&'static str> {
    system_fields(class_name)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Fields of a class that clients cannot add, delete or retype through the schemas API.
pub fn is_default_field(class_name: &str, field: &str) -> bool {
    DEFAULT_FIELDS.contains(&field)
        || system_fields(class_name)
            .iter()
            .any(|(name, _)| *name == field)
}

/// The CLP of a new class: everyone may do everything, nothing is protected.
pub fn default_clp(class_name: &str) -> Map<String, Value> {
    let mut clp = Map::new();
    // Installations hold device tokens: only the master key may list or delete them.
    // Server bookkeeping classes are for the master key (and the server) only.
    let master_only: &[&str] = match class_name {
        "_Installation" => &["find", "count", "delete"],
        // Pushes say whom the app notified of what: the master key's, as in Parse Server.
        "_Idempotency" | "_GlobalConfig" | "_PushStatus" => &CLP_OPERATIONS,
        _ => &[],
    };
    for operation in CLP_OPERATIONS {
        let perms = if master_only.contains(&operation) {
            json!({})
        } else {
            json!({"*": true})
        };
        clp.insert(operation.to_owned(), perms);
    }
    let protected = if class_name == "_User" {
        json!({"*": ["email"]})
    } else {
        json!({"*": []})
    };
    clp.insert("protectedFields".to_owned(), protected);
    clp
}

/// Validates a CLP object (§8.1): known operations, legal keys, `true` values.
/// Errors are `107` with a "… is not a valid …" message.
pub fn validate_clp(clp: &Map<String, Value>) -> Result<Map<String, Value>> {
    let invalid = |what: String| Error::invalid_json(what);
    for (operation, perms) in clp {
        match operation.as_str() {
            "readUserFields" | "writeUserFields" => {
                let valid = perms
                    .as_array()
                    .is_some_and(|fields| fields.iter().all(Value::is_string));
                if !valid {
                    return Err(invalid(format!(
                        "this perms[{operation}] is not a valid value for class level permissions {operation}"
                    )));
                }
            }
            "protectedFields" => {
                let valid = perms.as_object().is_some_and(|entries| {
                    entries.values().all(|fields| {
                        fields
                            .as_array()
                            .is_some_and(|fields| fields.iter().all(Value::is_string))
                    })
                });
                if !valid {
                    return Err(invalid(format!(
                        "{perms} is not a valid value for class level permissions protectedFields"
                    )));
                }
            }
            op if CLP_OPERATIONS.contains(&op) => {
                let entries = perms.as_object().ok_or_else(|| {
                    invalid(format!(
                        "{perms} is not a valid value for class level permissions {op}"
                    ))
                })?;
                for (key, value) in entries {
                    if key == "pointerFields" {
                        if !value
                            .as_array()
                            .is_some_and(|fields| fields.iter().all(Value::is_string))
                        {
                            return Err(invalid(format!(
                                "{value} is not a valid value for class level permissions {op}:pointerFields"
                            )));
                        }
                        continue;
                    }
                    let key_valid = key == "*"
                        || key == "requiresAuthentication"
                        || key.starts_with("role:")
                        || key.chars().all(|c| c.is_ascii_alphanumeric());
                    if !key_valid {
                        return Err(invalid(format!(
                            "'{key}' is not a valid key for class level permissions"
                        )));
                    }
                    if value != &Value::Bool(true) {
                        return Err(invalid(format!(
                            "'{value}' is not a valid value for class level permissions {op}:{key}:{value}"
                        )));
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "{other} is not a valid operation for class level permissions"
                )));
            }
        }
    }
    Ok(clp.clone())
}
