//! One subscription: its query (parsed once), its caller's rights, and the event it yields
//! for a change (§11.4).

use std::sync::Arc;

use parlor_core::object::Object;
use parlor_core::query::matcher::matches;
use parlor_core::query::{Filter, parse_where};
use parlor_core::schema::ClassSchema;
use parlor_core::{Code, Error};
use serde_json::Value;

use super::hub::Registration;
use crate::operation::access::{check_class_permission, read_filter, read_operation};
use crate::operation::{Auth, Operations, user_directory};

/// A live query of one client.
pub struct Subscription {
    pub request_id: i64,
    pub schema: Arc<ClassSchema>,
    /// The schema cache's version when `schema` was read.
    pub schema_version: u64,
    pub auth: Auth,
    /// When the subscriber's session expires (ISO date); its events stop then.
    pub expires_at: Option<String>,
    /// The query and rights, held once for every subscription of the same shape (one chat's
    /// thousands of subscribers hold one copy).
    pub shape: Arc<Shape>,
}

/// What a subscription's events depend on besides its own session: the query, the
/// subscriber's rights and `keys`, the schema. Subscriptions of equal `key` see the same events
/// the same way, so they share one match and one rendering per change.
pub struct Shape {
    pub key: Arc<str>,
    /// The `where` AND the subscriber's CLP pointer permissions AND its ACL read rights.
    pub visible: Filter,
    /// The subscriber's read rights alone (CLP pointer permissions AND ACL).
    pub rights: Filter,
    pub keys: Option<Vec<String>>,
    pub watch: Option<Vec<String>>,
    /// Keys of this subscriber's renderings of an event's before and after states: equal for
    /// subscribers with equal rights and `keys`, so they share one rendering.
    pub render_keys: [String; 2],
    /// The query as the client sent it, to rebuild the subscription when the subscriber's
    /// roles or the class's schema change.
    pub query: Value,
}

/// Which event a change is for this subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Update,
    Enter,
    Leave,
    Delete,
}

impl EventKind {
    pub fn op(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Update => "update",
            EventKind::Enter => "enter",
            EventKind::Leave => "leave",
            EventKind::Delete => "delete",
        }
    }
}

fn string_list(value: Option<&Value>, name: &str) -> Result<Option<Vec<String>>, Error> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Ok(Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ))
        }
        Some(_) => Err(Error::new(
            Code::InternalServerError,
            format!("{name} must be a non-empty array of strings"),
        )),
    }
}

impl Subscription {
    /// Parses and authorises a `subscribe`/`update` query for `auth`.
    pub fn new(
        operations: &Operations,
        request_id: i64,
        query_json: &Value,
        auth: Auth,
        expires_at: Option<String>,
    ) -> Result<Subscription, Error> {
        let invalid = |message: &str| Error::new(Code::InternalServerError, message.to_owned());
        let query = query_json
            .as_object()
            .ok_or_else(|| invalid("query must be an object"))?;
        if let Some(extra) = query
            .keys()
            .find(|key| !matches!(key.as_str(), "className" | "where" | "keys" | "watch"))
        {
            return Err(invalid(&format!(
                "Additional properties not allowed: {extra}"
            )));
        }
        let class_name = query
            .get("className")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("query.className is required"))?;
        let where_json = query
            .get("where")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let keys = string_list(query.get("keys"), "keys")?;
        let watch = string_list(query.get("watch"), "watch")?;
        let schema_version = operations.schemas.version();
        let schema = operations
            .schemas
            .get(class_name)
            .unwrap_or_else(|| Arc::new(ClassSchema::new(class_name)));
        let operation = read_operation(&where_json, false);
        let clp = check_class_permission(&schema, operation, &auth)?;
        let context = NoSubqueries;
        let filter = parse_where(&where_json, &schema, &context)?;
        if !filter.is_matchable() {
            return Err(Error::invalid_query(
                "This query uses an operator live queries do not support ($relatedTo, $inQuery, $notInQuery, $select, $dontSelect, $text, relations)",
            ));
        }
        // The user directory reaches live queries as it reaches REST: a name search on
        // `_User` sees every user, each rendered as REST renders it for this subscriber.
        let directory = user_directory::applies(operations, &schema, &auth)
            && user_directory::searchable(&where_json, None);
        let rights = if directory {
            clp
        } else {
            clp.and(read_filter(&auth))
        };
        let rights_key = format!(
            "{}|{}|{}|{}",
            auth.master,
            auth.user_id.as_deref().unwrap_or_default(),
            auth.roles.join(","),
            keys.as_deref()
                .map(|keys| keys.join(","))
                .unwrap_or_default(),
        );
        let visible = filter.and(rights.clone());
        let shape = Shape {
            key: Arc::from(format!("{schema_version}|{rights_key}|{query_json}")),
            visible,
            rights,
            keys,
            watch,
            render_keys: [
                format!("before|{rights_key}"),
                format!("after|{rights_key}"),
            ],
            query: query_json.clone(),
        };
        Ok(Subscription {
            request_id,
            schema,
            schema_version,
            auth,
            expires_at,
            shape: Arc::new(shape),
        })
    }

    /// The same subscription under `auth` and the class's current schema; an error when
    /// the subscriber may no longer read the class.
    pub fn rebuild(&self, operations: &Operations, auth: Auth) -> Result<Subscription, Error> {
        Subscription::new(
            operations,
            self.request_id,
            &self.shape.query,
            auth,
            self.expires_at.clone(),
        )
    }

    /// Whether the subscriber may read this state of an object at all.
    pub fn may_read(&self, object: &Object) -> bool {
        matches(&self.shape.rights, object)
    }

    /// The event a change gives this subscriber, if any (§11.4).
    pub fn event_for(&self, before: Option<&Object>, after: Option<&Object>) -> Option<EventKind> {
        let seen_before = before.is_some_and(|object| matches(&self.shape.visible, object));
        let seen_after = after.is_some_and(|object| matches(&self.shape.visible, object));
        let kind = match (before.is_some(), after.is_some(), seen_before, seen_after) {
            (false, true, _, true) => EventKind::Create,
            (true, false, true, _) => EventKind::Delete,
            (true, true, true, true) => EventKind::Update,
            (true, true, true, false) => EventKind::Leave,
            (true, true, false, true) => EventKind::Enter,
            _ => return None,
        };
        let watched_changed = || {
            let Some(watch) = &self.shape.watch else {
                return true;
            };
            watch.iter().any(|field| {
                before.and_then(|object| object.get(field))
                    != after.and_then(|object| object.get(field))
            })
        };
        match kind {
            EventKind::Create | EventKind::Update if !watched_changed() => None,
            kind => Some(kind),
        }
    }
}

/// Live queries refuse subqueries: the parser sees no other class.
struct NoSubqueries;

impl parlor_core::query::QueryContext for NoSubqueries {
    fn schema(&self, _class_name: &str) -> Option<Arc<ClassSchema>> {
        None
    }

    fn restrict_subquery(&self, _class_name: &str) -> Result<Filter, Error> {
        Err(Error::invalid_query(
            "live queries do not support subqueries",
        ))
    }
}

/// Keeps the keys a subscription asked for (plus the ones every event carries).
pub fn project(object: &mut serde_json::Map<String, Value>, keys: Option<&[String]>) {
    if let Some(keys) = keys {
        object.retain(|key, _| {
            matches!(
                key.as_str(),
                "objectId" | "createdAt" | "updatedAt" | "ACL" | "className" | "__type"
            ) || keys.iter().any(|wanted| wanted == key)
        });
    }
}

/// A connection's subscriptions by request id. Most connections hold one or two, so a
/// vector searched in order beats a hash map, in memory above all (×10,000 connections).
/// Every change is reported to the connection's place in the hub's register.
pub struct Subscriptions {
    held: Vec<Subscription>,
    registration: Registration,
}

impl Subscriptions {
    pub fn new(registration: Registration) -> Subscriptions {
        Subscriptions {
            held: Vec::new(),
            registration,
        }
    }

    /// The connection's place in the hub's register.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    pub fn get(&self, request_id: &i64) -> Option<&Subscription> {
        self.held.iter().find(|held| held.request_id == *request_id)
    }

    pub fn contains_key(&self, request_id: &i64) -> bool {
        self.get(request_id).is_some()
    }

    /// Adds the subscription, replacing the one with the same request id.
    pub fn insert(&mut self, request_id: i64, mut subscription: Subscription) {
        subscription.shape = self.registration.intern(subscription.shape);
        self.registration
            .subscribed(request_id, &subscription.schema.class_name);
        match self
            .held
            .iter_mut()
            .find(|held| held.request_id == request_id)
        {
            Some(held) => *held = subscription,
            None => {
                // Room for one first: a vector's first growth makes room for four, and a
                // subscription is ~650 bytes (10,000 connections of one subscription each:
                // 20 MB of empty room). Later ones grow it as usual.
                if self.held.capacity() == 0 {
                    self.held.reserve_exact(1);
                }
                self.held.push(subscription);
            }
        }
    }

    pub fn remove(&mut self, request_id: &i64) -> Option<Subscription> {
        let index = self
            .held
            .iter()
            .position(|held| held.request_id == *request_id)?;
        self.registration.unsubscribed(*request_id);
        Some(self.held.swap_remove(index))
    }

    pub fn values(&self) -> impl Iterator<Item = &Subscription> {
        self.held.iter()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
