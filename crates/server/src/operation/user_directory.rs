//! The user directory: a logged-in user finds other users by `username` or `displayName` and
//! sees their public profile only.
//!
//! A chat app must find people to add to a session, and show who wrote a message. A user's
//! own ACL keeps its record private, so the directory widens reads of `_User` for logged-in
//! callers in one narrow way: a user whose record the caller's ACL rights do not reach is
//! still found, rendered as [`PUBLIC_PROFILE`] and nothing else. Three things keep the rest
//! out of reach:
//!
//! - a query that tests or sorts by anything but the searchable fields gets no directory
//!   rows at all (only what the ACL allows, as before), so `email` or any other field cannot
//!   be probed one query at a time;
//! - listing pages hold at most [`MAX_PAGE`] profiles, and each user may list at most
//!   `directory_searches_per_minute` pages a minute (`100`, HTTP 429, past that), which
//!   bounds how fast the whole directory can be scraped;
//! - anonymous callers, and the directory when the operator turns it off, get nothing new.

use parlor_core::Code;
use parlor_core::object::Object;
use parlor_core::schema::ClassSchema;
use serde_json::{Map, Value};

use super::{Auth, OpError, OpResult, Operations};

/// What another user sees of a user through the directory.
pub const PUBLIC_PROFILE: [&str; 4] = ["objectId", "username", "displayName", "avatar"];

/// The fields a directory query may test or sort by.
const SEARCHABLE: [&str; 3] = ["objectId", "username", "displayName"];

/// The most profiles one directory page holds.
pub const MAX_PAGE: u64 = 100;

/// Whether `auth` reads `schema` through the directory at all: a logged-in, non-master
/// caller reading `_User`, with the directory on.
pub fn applies(operations: &Operations, schema: &ClassSchema, auth: &Auth) -> bool {
    schema.class_name == "_User"
        && !auth.master
        && auth.user_id.is_some()
        && operations.config.accounts.user_directory
}

/// Whether a find may list directory rows: only searchable fields in `where` (also inside
/// `$or`/`$and`/`$nor`) and in `order`.
pub fn searchable(where_json: &Value, order: Option<&str>) -> bool {
    let order_ok = order.is_none_or(|order| {
        order
            .split(',')
            .map(|key| key.trim().trim_start_matches('-'))
            .filter(|key| !key.is_empty())
            .all(|key| SEARCHABLE.contains(&key))
    });
    order_ok && where_searchable(where_json)
}

fn where_searchable(where_json: &Value) -> bool {
    let Some(map) = where_json.as_object() else {
        return where_json.is_null();
    };
    map.iter().all(|(key, value)| match key.as_str() {
        "$or" | "$and" | "$nor" => value
            .as_array()
            .is_some_and(|branches| branches.iter().all(where_searchable)),
        // Operators that reach into other classes or all fields are not a name search.
        _ if key.starts_with('$') => false,
        _ => SEARCHABLE.contains(&key.as_str()) && constraint_is_plain(value),
    })
}

/// A constraint on a searchable field that only compares its value (no `$inQuery`,
/// `$select` or the like, which would join other data in).
fn constraint_is_plain(value: &Value) -> bool {
    let Some(map) = value.as_object() else {
        return true;
    };
    map.keys().all(|op| {
        matches!(
            op.as_str(),
            "$eq"
                | "$ne"
                | "$in"
                | "$nin"
                | "$lt"
                | "$lte"
                | "$gt"
                | "$gte"
                | "$exists"
                | "$regex"
                | "$options"
        )
    })
}

/// Whether the caller's own ACL rights reach `object` (its full rendering then applies).
pub fn readable(object: &Object, auth: &Auth) -> bool {
    object
        .acl
        .as_ref()
        .is_none_or(|acl| acl.can_read(&auth.acl_group()))
}

/// Cuts a rendered user down to its public profile.
pub fn to_public_profile(user: &mut Map<String, Value>) {
    user.retain(|key, _| {
        PUBLIC_PROFILE.contains(&key.as_str()) || key == "__type" || key == "className"
    });
}

impl Operations {
    /// Counts one directory listing against the caller's per-minute allowance.
    pub(super) fn admit_directory_search(&self, auth: &Auth) -> OpResult<()> {
        let Some(user_id) = &auth.user_id else {
            return Ok(());
        };
        let per_minute = self.config.accounts.directory_searches_per_minute;
        if self.directory_limiter.admit(user_id.clone(), per_minute) {
            return Ok(());
        }
        Err(OpError::parse(
            Code::ConnectionFailed,
            "Too many user searches; try again in a minute.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_name_searches_list_the_directory() {
        assert!(searchable(&json!({}), None));
        assert!(searchable(&Value::Null, Some("username,-displayName")));
        assert!(searchable(
            &json!({"username": {"$regex": "^al", "$options": "i"}}),
            None
        ));
        assert!(searchable(
            &json!({"$or": [{"username": "a"}, {"displayName": {"$in": ["A"]}}]}),
            Some("username")
        ));
        assert!(!searchable(&json!({"email": "a@example.com"}), None));
        assert!(!searchable(&json!({}), Some("email")));
        assert!(!searchable(&json!({}), Some("-createdAt")));
        assert!(!searchable(
            &json!({"$or": [{"username": "a"}, {"role": "admin"}]}),
            None
        ));
        assert!(!searchable(
            &json!({"username": {"$select": {"query": {}, "key": "x"}}}),
            None
        ));
        assert!(!searchable(&json!({"$relatedTo": {}}), None));
        assert!(!searchable(&json!({"$or": "nope"}), None));
    }

    #[test]
    fn public_profiles_keep_only_public_fields() {
        let mut user = json!({
            "objectId": "a", "username": "ada", "displayName": "Ada", "email": "ada@example.com",
            "role": "admin", "createdAt": "x", "ACL": {}, "avatar": {"__type": "File"},
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        to_public_profile(&mut user);
        let mut keys: Vec<&str> = user.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["avatar", "displayName", "objectId", "username"]);
    }
}
