//! Access rules: class-level permissions (§8.1), object ACLs (§7) and protectedFields.
//!
//! Every rule turns into one of three things: a refusal (a Parse error), nothing (allowed),
//! or a [`Filter`] that the caller ANDs into its store query, so that reads, counts, skips and
//! limits only ever see rows the caller may see.

use std::collections::BTreeSet;

use parlor_core::object::Object;
use parlor_core::query::{Cond, FieldRef, Filter, Operand};
use parlor_core::schema::{ClassSchema, FieldType, is_internal_class};
use parlor_core::value::as_pointer;
use parlor_core::{Code, Error};
use serde_json::Value;

use super::auth::Auth;

/// The operations a CLP governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassOperation {
    Get,
    Find,
    Count,
    Create,
    Update,
    Delete,
    AddField,
}

impl ClassOperation {
    fn key(self) -> &'static str {
        match self {
            ClassOperation::Get => "get",
            ClassOperation::Find => "find",
            ClassOperation::Count => "count",
            ClassOperation::Create => "create",
            ClassOperation::Update => "update",
            ClassOperation::Delete => "delete",
            ClassOperation::AddField => "addField",
        }
    }

    fn reads(self) -> bool {
        matches!(
            self,
            ClassOperation::Get | ClassOperation::Find | ClassOperation::Count
        )
    }
}

/// Refuses the object API on the server's bookkeeping classes to every caller, master key
/// included (Parse Server refuses them to clients with the same words): they are reached only
/// through the endpoints that own them, so nobody can read or forge their rows. Checked by
/// name, so the answer does not depend on whether the class has been created yet.
pub fn refuse_internal_class(class_name: &str, operation: ClassOperation) -> Result<(), Error> {
    if is_internal_class(class_name) {
        return Err(Error::forbidden(format!(
            "Clients aren't allowed to perform the {} operation on the {class_name} collection.",
            operation.key()
        )));
    }
    Ok(())
}

/// Checks the class-level permission for `operation`. `Ok(Filter::True)`: allowed for every
/// object; `Ok(filter)`: allowed for the objects matching `filter` (pointer permissions);
/// `Err`: refused.
pub fn check_class_permission(
    schema: &ClassSchema,
    operation: ClassOperation,
    auth: &Auth,
) -> Result<Filter, Error> {
    refuse_internal_class(&schema.class_name, operation)?;
    if auth.master {
        return Ok(Filter::True);
    }
    if schema.class_name == "_Session" {
        return own_sessions(schema, operation, auth);
    }
    let clp = &schema.class_level_permissions;
    let empty = serde_json::Map::new();
    let perms = clp
        .get(operation.key())
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let group = auth.acl_group();
    if group
        .iter()
        .any(|entry| perms.get(entry) == Some(&Value::Bool(true)))
    {
        return Ok(Filter::True);
    }
    if perms.get("requiresAuthentication") == Some(&Value::Bool(true)) {
        if auth.user_id.is_some() {
            return Ok(Filter::True);
        }
        return Err(Error::new(
            Code::ObjectNotFound,
            "Permission denied, user needs to be authenticated.",
        ));
    }
    let denied = || {
        Error::forbidden(format!(
            "Permission denied for action {} on class {}.",
            operation.key(),
            schema.class_name
        ))
    };
    if operation == ClassOperation::Create {
        return Err(denied());
    }
    let user_fields_key = if operation.reads() {
        "readUserFields"
    } else {
        "writeUserFields"
    };
    let mut pointer_fields: Vec<&str> = Vec::new();
    for source in [clp.get(user_fields_key), perms.get("pointerFields")]
        .into_iter()
        .flatten()
    {
        pointer_fields.extend(
            source
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
    }
    if pointer_fields.is_empty() {
        return Err(denied());
    }
    let Some(user_id) = &auth.user_id else {
        return Ok(Filter::False);
    };
    Ok(points_to_user(schema, &pointer_fields, user_id))
}

/// Sessions carry no ACL: a caller sees and changes only its own (§5.7), and a caller
/// without a user has no sessions at all.
fn own_sessions(
    schema: &ClassSchema,
    operation: ClassOperation,
    auth: &Auth,
) -> Result<Filter, Error> {
    let Some(user_id) = &auth.user_id else {
        return Err(Error::new(
            Code::InvalidSessionToken,
            "Invalid session token",
        ));
    };
    if operation == ClassOperation::AddField {
        return Err(Error::forbidden(
            "Permission denied for action addField on class _Session.",
        ));
    }
    Ok(points_to_user(schema, &["user"], user_id))
}

/// Objects whose pointer (or array-of-pointers) fields name the user.
fn points_to_user(schema: &ClassSchema, fields: &[&str], user_id: &str) -> Filter {
    let user = Operand::Pointer {
        class_name: "_User".to_owned(),
        object_id: user_id.to_owned(),
    };
    let conditions: Vec<Filter> = fields
        .iter()
        .filter_map(|field| {
            let field_type = schema.field_type(field)?;
            matches!(field_type, FieldType::Pointer(_) | FieldType::Array).then(|| Filter::Cond {
                field: FieldRef {
                    field: (*field).to_owned(),
                    path: Vec::new(),
                    field_type: Some(field_type.clone()),
                },
                cond: Cond::Eq(user.clone()),
            })
        })
        .collect();
    Filter::Or(conditions)
}

/// The filter that keeps only the objects the caller may read (ACL), for non-master callers.
pub fn read_filter(auth: &Auth) -> Filter {
    if auth.master {
        Filter::True
    } else {
        Filter::Readable(auth.acl_group())
    }
}

/// The filter that keeps only the objects the caller may write (ACL).
pub fn write_filter(auth: &Auth) -> Filter {
    if auth.master {
        Filter::True
    } else {
        Filter::Writable(auth.acl_group())
    }
}

/// The CLP that applies to a query: `get` for a lookup by id alone, `count` for counts,
/// `find` otherwise (§8.1).
pub fn read_operation(where_json: &Value, counting: bool) -> ClassOperation {
    if counting {
        return ClassOperation::Count;
    }
    let by_id_only = where_json
        .as_object()
        .is_some_and(|map| map.len() == 1 && map.get("objectId").is_some_and(Value::is_string));
    if by_id_only {
        ClassOperation::Get
    } else {
        ClassOperation::Find
    }
}

/// The protectedFields that apply to one reader, resolved per object for `userField:` keys.
pub struct ProtectedFields {
    /// Lists that apply whatever the object: `*`, `authenticated`, the user, its roles.
    fixed: Vec<BTreeSet<String>>,
    /// `userField:<f>` lists, which apply to objects whose `f` points to the reader.
    by_user_field: Vec<(String, BTreeSet<String>)>,
    user_id: Option<String>,
    /// A `_User` reading itself sees everything.
    own_user_class: bool,
}

impl ProtectedFields {
    pub fn for_reader(schema: &ClassSchema, auth: &Auth) -> Option<ProtectedFields> {
        if auth.master {
            return None;
        }
        let entries = schema
            .class_level_permissions
            .get("protectedFields")?
            .as_object()?;
        let as_set = |fields: &Value| -> BTreeSet<String> {
            fields
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let mut fixed = Vec::new();
        let mut by_user_field = Vec::new();
        let group = auth.acl_group();
        for (key, fields) in entries {
            if let Some(field) = key.strip_prefix("userField:") {
                if auth.user_id.is_some() {
                    by_user_field.push((field.to_owned(), as_set(fields)));
                }
                continue;
            }
            let applies = group.contains(key) || (key == "authenticated" && auth.user_id.is_some());
            if applies {
                fixed.push(as_set(fields));
            }
        }
        if fixed.is_empty() && by_user_field.is_empty() {
            return None;
        }
        Some(ProtectedFields {
            fixed,
            by_user_field,
            user_id: auth.user_id.clone(),
            own_user_class: schema.class_name == "_User",
        })
    }

    /// Fields hidden from the reader whatever the object: a query on one of them is refused.
    pub fn always_hidden(&self) -> BTreeSet<String> {
        intersect(self.fixed.iter())
    }

    /// Whether no object has a field hidden from the reader: the lists that apply whatever
    /// the object already intersect to nothing (a `userField:` list can only narrow that),
    /// or no list applies but `userField:` lists that are empty.
    pub fn hides_nothing(&self) -> bool {
        if self.fixed.is_empty() {
            self.by_user_field
                .iter()
                .all(|(_, fields)| fields.is_empty())
        } else {
            self.always_hidden().is_empty()
        }
    }

    /// Fields hidden from the reader in this object (the intersection of every list that applies).
    pub fn hidden_in(&self, object: &Object) -> BTreeSet<String> {
        if self.own_user_class && self.user_id.as_deref() == Some(object.object_id.as_str()) {
            return BTreeSet::new();
        }
        let user_lists = self.by_user_field.iter().filter(|(field, _)| {
            let points_to_reader = |value: &Value| {
                as_pointer(value).is_some_and(|(_, id)| Some(id) == self.user_id.as_deref())
            };
            match object.fields.get(field) {
                Some(Value::Array(items)) => items.iter().any(points_to_reader),
                Some(value) => points_to_reader(value),
                None => false,
            }
        });
        intersect(self.fixed.iter().chain(user_lists.map(|(_, set)| set)))
    }
}

fn intersect<'a>(mut lists: impl Iterator<Item = &'a BTreeSet<String>>) -> BTreeSet<String> {
    let Some(first) = lists.next() else {
        return BTreeSet::new();
    };
    lists.fold(first.clone(), |acc, list| {
        acc.intersection(list).cloned().collect()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema_with_clp(clp: Value) -> ClassSchema {
        let mut schema = ClassSchema::new("Thing");
        schema.fields.insert(
            "owner".into(),
            parlor_core::schema::FieldSchema::of(FieldType::Pointer("_User".into())),
        );
        schema.class_level_permissions = clp.as_object().cloned().unwrap_or_default();
        schema
    }

    fn user(id: &str) -> Auth {
        Auth {
            user_id: Some(id.into()),
            ..Auth::default()
        }
    }

    #[test]
    fn public_and_missing_operations() {
        let schema = schema_with_clp(json!({"find": {"*": true}}));
        assert_eq!(
            check_class_permission(&schema, ClassOperation::Find, &Auth::default()),
            Ok(Filter::True)
        );
        let denied =
            check_class_permission(&schema, ClassOperation::Get, &Auth::default()).unwrap_err();
        assert_eq!(denied.code, Code::OperationForbidden);
        assert_eq!(
            denied.message,
            "Permission denied for action get on class Thing."
        );
        assert_eq!(
            check_class_permission(&schema, ClassOperation::Get, &Auth::master()),
            Ok(Filter::True)
        );
    }

    #[test]
    fn requires_authentication_is_101_for_anonymous() {
        let schema = schema_with_clp(json!({"create": {"requiresAuthentication": true}}));
        let denied =
            check_class_permission(&schema, ClassOperation::Create, &Auth::default()).unwrap_err();
        assert_eq!(denied.code, Code::ObjectNotFound);
        assert_eq!(
            check_class_permission(&schema, ClassOperation::Create, &user("u1")),
            Ok(Filter::True)
        );
    }

    #[test]
    fn pointer_permissions_filter_and_never_grant_create() {
        let schema = schema_with_clp(
            json!({"readUserFields": ["owner"], "find": {}, "create": {"pointerFields": ["owner"]}}),
        );
        let filter = check_class_permission(&schema, ClassOperation::Find, &user("u1")).unwrap();
        assert!(matches!(filter, Filter::Or(ref items) if items.len() == 1));
        assert_eq!(
            check_class_permission(&schema, ClassOperation::Find, &Auth::default()),
            Ok(Filter::False)
        );
        assert!(check_class_permission(&schema, ClassOperation::Create, &user("u1")).is_err());
    }

    #[test]
    fn protected_fields_intersect() {
        let schema = schema_with_clp(
            json!({"protectedFields": {"*": ["secret", "other"], "role:Admin": ["other"]}}),
        );
        let public = ProtectedFields::for_reader(&schema, &Auth::default()).unwrap();
        assert_eq!(
            public.always_hidden(),
            BTreeSet::from(["other".to_owned(), "secret".to_owned()])
        );
        let admin = Auth {
            user_id: Some("a".into()),
            roles: vec!["Admin".into()],
            ..Auth::default()
        };
        let admin = ProtectedFields::for_reader(&schema, &admin).unwrap();
        assert_eq!(admin.always_hidden(), BTreeSet::from(["other".to_owned()]));
    }

    /// What lets a read answer the store's rows as they are: a field hidden from this reader
    /// in any object, or only in objects that point to the reader, is something hidden.
    #[test]
    fn hides_nothing_only_when_no_object_can_lose_a_field() {
        let hides_nothing = |clp: Value, auth: &Auth| {
            ProtectedFields::for_reader(&schema_with_clp(json!({ "protectedFields": clp })), auth)
                .is_none_or(|protected| protected.hides_nothing())
        };
        let reader = user("u1");
        let admin = Auth {
            roles: vec!["Admin".into()],
            ..user("a")
        };
        // The chat template's `{"*": []}`.
        assert!(hides_nothing(json!({"*": []}), &reader));
        assert!(hides_nothing(json!({}), &reader));
        assert!(!hides_nothing(json!({"*": ["secret"]}), &reader));
        // Lists that apply intersect: an Admin sees what `*` hides.
        assert!(hides_nothing(
            json!({"*": ["secret"], "role:Admin": []}),
            &admin
        ));
        assert!(!hides_nothing(
            json!({"*": ["secret"], "role:Admin": ["secret"]}),
            &admin
        ));
        // A list for another reader does not apply.
        assert!(hides_nothing(json!({"u2": ["secret"]}), &reader));
        assert!(!hides_nothing(json!({"u1": ["secret"]}), &reader));
        // Hidden only in objects whose `owner` is the reader: still something hidden.
        assert!(!hides_nothing(
            json!({"userField:owner": ["secret"]}),
            &reader
        ));
        assert!(hides_nothing(json!({"userField:owner": []}), &reader));
        // With `*` hiding nothing, a `userField:` list can only narrow that further.
        assert!(hides_nothing(
            json!({"*": [], "userField:owner": ["secret"]}),
            &reader
        ));
    }
}
