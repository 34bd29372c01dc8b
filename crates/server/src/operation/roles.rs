//! Roles (§6): which roles a user holds, the cache of that answer, and the rules of role
//! writes.
//!
//! A user holds the roles whose `users` relation contains it, and, through the hierarchy,
//! every role whose `roles` relation contains a role it holds (Admins ∈ Moderators.roles ⇒
//! an admin passes `role:Moderators`). The lookups are the server's own: no ACL or CLP
//! applies to them, as Parse resolves roles with the master key.
//!
//! **Invariant:** a committed change to `_Role` (a create, an update including relation ops,
//! a delete, a purge or drop of the class) is seen by the next role lookup. The cache checks
//! the store's generation of `_Role` on every hit ([`super::class_cache`]), so no write path
//! has to remember to clear it; [`Operations::invalidate_roles`]
//! clears it explicitly as well.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::FieldType;
use parlor_core::{Code, Error};
use serde_json::{Map, Value};

use super::class_cache::ClassCache;
use super::{OpResult, Operations};

/// How long a user's roles are reused without looking again, at most. Changes made through
/// this server are seen at once whatever the age; the limit bounds how long a change made by
/// another process (a second server on the same database) goes unseen.
const ROLE_CACHE_TTL: Duration = Duration::from_secs(30);

/// The most users whose roles are kept; past it, stale entries are dropped, then all.
const ROLE_CACHE_USERS: usize = 10_000;

/// The most hierarchy levels followed above a user's direct roles.
const MAX_ROLE_DEPTH: usize = 16;

/// The most roles one user is found to hold; the lookup stops there (and logs it).
const MAX_ROLES: usize = 1_000;

/// The roles each user holds (by user id), shared by all requests.
pub type RoleCache = ClassCache<Vec<String>>;

/// A role cache with this module's limits.
pub fn role_cache() -> RoleCache {
    ClassCache::new(ROLE_CACHE_TTL, ROLE_CACHE_USERS)
}

impl Operations {
    /// The names of the roles `user_id` holds, the hierarchy resolved (sorted).
    ///
    /// Direct roles are those whose `users` relation holds the user; then each level adds the
    /// roles whose `roles` relation holds a role already found, one query per level, until a
    /// level finds nothing new (a cycle ends there), [`MAX_ROLE_DEPTH`] levels or
    /// [`MAX_ROLES`] roles.
    pub async fn roles_of(&self, user_id: &str) -> OpResult<Vec<String>> {
        let stamp = self.roles.stamp(self.store.class_generation("_Role"));
        if let Some(names) = self.roles.get(user_id, stamp) {
            return Ok(names);
        }
        let names = self.load_roles(user_id).await?;
        self.roles.insert(user_id, names.clone(), stamp);
        Ok(names)
    }

    /// Forgets every user's roles; the next lookups read `_Role` again.
    pub fn invalidate_roles(&self) {
        self.roles.clear();
    }

    async fn load_roles(&self, user_id: &str) -> OpResult<Vec<String>> {
        let Some(schema) = self.schemas.get("_Role") else {
            return Ok(Vec::new());
        };
        let membership = |relation: &str, operands: Vec<Operand>| -> Option<Filter> {
            let field_type = schema.field_type(relation)?;
            matches!(field_type, FieldType::Relation(_)).then(|| Filter::Cond {
                field: FieldRef {
                    field: relation.to_owned(),
                    path: Vec::new(),
                    field_type: Some(field_type.clone()),
                },
                cond: Cond::In(operands),
            })
        };
        let user = Operand::Pointer {
            class_name: "_User".to_owned(),
            object_id: user_id.to_owned(),
        };
        let mut filter = membership("users", vec![user]);
        let mut seen: HashSet<String> = HashSet::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for _level in 0..=MAX_ROLE_DEPTH {
            let Some(level_filter) = filter.take() else {
                break;
            };
            let query = FindQuery {
                keys: Some(vec!["name".to_owned()]),
                limit: Some((MAX_ROLES + 1) as u64),
                ..FindQuery::filter(level_filter)
            };
            let found = self.store.find(&schema, &query).await?;
            let mut new_ids: Vec<String> = Vec::new();
            for role in found {
                if seen.len() >= MAX_ROLES {
                    tracing::warn!(
                        user_id,
                        "a user holds more than {MAX_ROLES} roles; the rest are ignored"
                    );
                    break;
                }
                if !seen.insert(role.object_id.clone()) {
                    continue;
                }
                if let Some(Value::String(name)) = role.fields.get("name") {
                    names.insert(name.clone());
                }
                new_ids.push(role.object_id);
            }
            if new_ids.is_empty() || seen.len() >= MAX_ROLES {
                break;
            }
            let parents_of: Vec<Operand> = new_ids
                .into_iter()
                .map(|object_id| Operand::Pointer {
                    class_name: "_Role".to_owned(),
                    object_id,
                })
                .collect();
            filter = membership("roles", parents_of);
        }
        Ok(names.into_iter().collect())
    }
}

/// The rules of a `_Role` write beyond its schema (§6), checked on the request body:
/// - on create, `name` and `ACL` are required (`111 "name is required."`, `"ACL is
///   required."`), and `name` must match `^[0-9a-zA-Z\-_ ]+$` (`139`);
/// - on update, `name` cannot change (`136`), and `ACL` cannot be removed (`111`).
///
/// A duplicate name is the store's unique index (`137`).
pub fn check_role_write(creating: bool, body: &Map<String, Value>) -> Result<(), Error> {
    let is_delete_op = |value: &Value| value.get("__op").and_then(Value::as_str) == Some("Delete");
    let name = body.get("name");
    let acl = body.get("ACL");
    if !creating {
        if name.is_some() {
            return Err(Error::new(
                Code::ChangedImmutableField,
                "A role's name can only be set before it has been saved.",
            ));
        }
        if acl.is_some_and(|acl| acl.is_null() || is_delete_op(acl)) {
            return Err(Error::incorrect_type("ACL is required."));
        }
        return Ok(());
    }
    match name {
        None | Some(Value::Null) => return Err(Error::incorrect_type("name is required.")),
        Some(Value::String(text)) if text.is_empty() => {
            return Err(Error::incorrect_type("name is required."));
        }
        Some(Value::String(text)) => {
            if !is_valid_role_name(text) {
                let shown: String = text.chars().take(100).collect();
                return Err(Error::new(
                    Code::InvalidRoleName,
                    format!("Invalid role name: {shown}"),
                ));
            }
        }
        Some(value) if is_delete_op(value) => {
            return Err(Error::incorrect_type("name is required."));
        }
        Some(_) => {
            return Err(Error::incorrect_type(
                "schema mismatch for _Role.name; expected String",
            ));
        }
    }
    match acl {
        None | Some(Value::Null) => Err(Error::incorrect_type("ACL is required.")),
        Some(acl) if is_delete_op(acl) => Err(Error::incorrect_type("ACL is required.")),
        Some(_) => Ok(()),
    }
}

/// `^[0-9a-zA-Z\-_ ]+$`, the SDKs' rule for role names.
pub fn is_valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(creating: bool, body: Value) -> Result<(), (i32, String)> {
        let body = body.as_object().cloned().unwrap_or_default();
        check_role_write(creating, &body)
            .map_err(|error| (error.code.as_i32(), error.message.to_string()))
    }

    fn refused(code: i32, message: &str) -> Result<(), (i32, String)> {
        Err((code, message.to_owned()))
    }

    /// §6: required name and ACL on create, valid names, no rename, no ACL removal.
    #[test]
    fn role_write_rules() {
        let acl = json!({"*": {"read": true}});
        assert_eq!(check(true, json!({"name": "Mods", "ACL": acl})), Ok(()));
        assert_eq!(
            check(true, json!({"name": "Mod-erators_2 x", "ACL": {}})),
            Ok(())
        );
        assert_eq!(
            check(true, json!({"ACL": acl})),
            refused(111, "name is required.")
        );
        assert_eq!(
            check(true, json!({"name": null, "ACL": acl})),
            refused(111, "name is required.")
        );
        assert_eq!(
            check(true, json!({"name": "", "ACL": acl})),
            refused(111, "name is required.")
        );
        assert_eq!(
            check(true, json!({"name": {"__op": "Delete"}, "ACL": acl})),
            refused(111, "name is required.")
        );
        assert_eq!(check(true, json!({})), refused(111, "name is required."));
        assert_eq!(
            check(true, json!({"name": "Mods"})),
            refused(111, "ACL is required.")
        );
        assert_eq!(
            check(true, json!({"name": "Mods", "ACL": null})),
            refused(111, "ACL is required.")
        );
        for bad in ["Mods!", "é", "a.b", "role:x", "tab\there"] {
            assert_eq!(
                check(true, json!({"name": bad, "ACL": acl})),
                refused(139, &format!("Invalid role name: {bad}")),
                "{bad}"
            );
        }
        assert!(matches!(
            check(true, json!({"name": 5, "ACL": acl})),
            Err((111, _))
        ));
        assert_eq!(
            check(false, json!({"name": "Other"})),
            refused(
                136,
                "A role's name can only be set before it has been saved."
            )
        );
        assert_eq!(
            check(false, json!({"name": {"__op": "Delete"}})),
            refused(
                136,
                "A role's name can only be set before it has been saved."
            )
        );
        assert_eq!(
            check(false, json!({"ACL": {"__op": "Delete"}})),
            refused(111, "ACL is required.")
        );
        assert_eq!(
            check(
                false,
                json!({"ACL": acl, "users": {"__op": "AddRelation", "objects": []}})
            ),
            Ok(())
        );
    }
}
