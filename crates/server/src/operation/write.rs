//! Writes: create, update and delete, planned (validated, schema extended, access guard
//! attached) and then committed, one or many in a single store transaction.
//!
//! Planning and committing are separate so that a batch with `transaction: true` plans
//! every sub-request first and commits them all at once: all or nothing.

use std::sync::Arc;

use parlor_core::object::{Acl, Object};
use parlor_core::ops::{FieldOp, FieldUpdate, apply_at_path, parse_op};
use parlor_core::query::{Cond, FieldRef, Filter, Operand};
use parlor_core::schema::{ClassSchema, FieldType, is_valid_field_name};
use parlor_core::value::{infer_type, now_iso};
use parlor_core::{Code, Error};
use parlor_store::{Write, WriteOutcome};
use rand::RngExt;
use serde_json::{Map, Value};

use super::access::{ClassOperation, check_class_permission, refuse_internal_class, write_filter};
use super::hooks::{AfterSaveAnswer, AfterTrigger, BeforeSaveAnswer, Committed, Trigger};
use super::{Auth, GetRequest, OpError, OpResult, Operations};

/// A validated write, ready to commit.
#[derive(Debug, Clone)]
pub struct PlannedWrite {
    write: Write,
    /// Body keys whose resulting values the response echoes (`Increment`, `Add`, …).
    echoed: Vec<FieldUpdate>,
    /// Values the response carries whatever happens (defaults applied on create).
    extra: Map<String, Value>,
    /// A `_User` write that sets a new password (its sessions must end).
    password_changed: bool,
    /// Fields a `beforeSave` trigger changed: the response echoes their stored values.
    trigger_echo: Vec<String>,
    /// Kept when an `afterSave`/`afterDelete` trigger must run after the commit.
    after_trigger: Option<AfterTrigger>,
    /// What the write rules read to allow it ([`Committed::read`]).
    read_by_rules: Option<Object>,
}

impl PlannedWrite {
    /// Narrows a planned update or delete to objects that also match `condition` (it fails
    /// with "object not found" otherwise): a compare-and-set for the server's own writes.
    pub fn only_if(mut self, condition: Filter) -> PlannedWrite {
        if let Write::Update { guard, .. } | Write::Delete { guard, .. } = &mut self.write {
            *guard = std::mem::replace(guard, Filter::True).and(condition);
        }
        self
    }

    /// Adds updates of server-only fields (`_`-prefixed, which no request body may name) to a
    /// planned update, so they commit in the same transaction as the rest.
    pub fn with_server_updates(mut self, extra: Vec<FieldUpdate>) -> PlannedWrite {
        if let Write::Update { updates, .. } = &mut self.write {
            updates.extend(extra);
        }
        self
    }

    /// The object a planned create will insert.
    pub fn created_object_mut(&mut self) -> Option<&mut Object> {
        match &mut self.write {
            Write::Create { object, .. } => Some(object),
            _ => None,
        }
    }

    pub fn password_changed(&self) -> bool {
        self.password_changed
    }

    pub fn class_name(&self) -> &str {
        self.write.class_name()
    }
}

/// What a committed write answers, and what it did.
#[derive(Debug, Clone)]
pub struct WriteResponse {
    /// 201 for a create, 200 otherwise.
    pub status: u16,
    pub body: Value,
    /// `Location` of a created object.
    pub location: Option<String>,
    pub outcome: WriteOutcome,
}

const OBJECT_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new random objectId: 10 characters of `[A-Za-z0-9]`.
pub fn new_object_id() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| OBJECT_ID_ALPHABET[rng.random_range(0..OBJECT_ID_ALPHABET.len())] as char)
        .collect()
}

/// The body of a write, split into ops per field, with the ACL and objectId taken out.
struct ParsedBody {
    updates: Vec<FieldUpdate>,
    acl: Option<Option<Acl>>,
    object_id: Option<String>,
}

fn parse_body(
    body: &Map<String, Value>,
    creating: bool,
    allow_custom_id: bool,
) -> Result<ParsedBody, Error> {
    let mut parsed = ParsedBody {
        updates: Vec::new(),
        acl: None,
        object_id: None,
    };
    for (key, raw) in body {
        match key.as_str() {
            "createdAt" | "updatedAt" | "className" => continue,
            "objectId" | "id" if creating => {
                if !allow_custom_id {
                    return Err(Error::invalid_key_name(format!(
                        "{key} is an invalid field name."
                    )));
                }
                match raw.as_str() {
                    Some(id) if !id.is_empty() && is_valid_field_name(&format!("x{id}")) => {
                        parsed.object_id = Some(id.to_owned());
                    }
                    _ => {
                        return Err(Error::new(
                            Code::MissingObjectId,
                            "objectId must not be empty, null or undefined",
                        ));
                    }
                }
                continue;
            }
            "objectId" => continue,
            "ACL" => {
                let is_delete = raw.get("__op").and_then(Value::as_str) == Some("Delete");
                parsed.acl = Some(if raw.is_null() || is_delete {
                    None
                } else {
                    Some(Acl::from_json(raw)?)
                });
                continue;
            }
            _ => {}
        }
        let mut segments = key.split('.');
        let field = segments.next().unwrap_or_default();
        let path: Vec<String> = segments.map(str::to_owned).collect();
        if !is_valid_field_name(field)
            || path
                .iter()
                .any(|segment| segment.is_empty() || segment.contains('$'))
        {
            return Err(Error::invalid_key_name(format!(
                "Invalid field name: {key}."
            )));
        }
        let op = parse_op(raw)?;
        if !path.is_empty() && matches!(op, FieldOp::Relation { .. }) {
            return Err(Error::invalid_key_name(format!(
                "Invalid field name: {key}."
            )));
        }
        parsed.updates.push(FieldUpdate {
            field: field.to_owned(),
            path,
            op,
        });
    }
    Ok(parsed)
}

/// The field types a write implies, for schema-on-write and type checks.
fn implied_types(updates: &[FieldUpdate]) -> Vec<(String, FieldType)> {
    updates
        .iter()
        .filter_map(|update| {
            let field_type = if !update.path.is_empty() {
                Some(FieldType::Object)
            } else {
                match &update.op {
                    FieldOp::Set(value) => match infer_type(value) {
                        // The Relation marker is read-only: writing it back changes nothing.
                        Some(FieldType::Relation(_)) => None,
                        other => other,
                    },
                    FieldOp::Increment(_) => Some(FieldType::Number),
                    FieldOp::Add(_) | FieldOp::AddUnique(_) | FieldOp::Remove(_) => {
                        Some(FieldType::Array)
                    }
                    FieldOp::Relation { target_class, .. } => {
                        Some(FieldType::Relation(target_class.clone()))
                    }
                    FieldOp::Delete => None,
                }
            };
            field_type.map(|field_type| (update.field.clone(), field_type))
        })
        .collect()
}

/// Fields of `_User` that only the server manages: a client never sets `emailVerified` or a
/// session token, and a password is replaced by its hash before anything is stored.
fn check_user_fields(class_name: &str, auth: &Auth, updates: &[FieldUpdate]) -> Result<(), Error> {
    if class_name != "_User" {
        return Ok(());
    }
    for update in updates {
        match update.field.as_str() {
            "password" => {
                let valid = update.path.is_empty()
                    && matches!(&update.op, FieldOp::Set(Value::String(password)) if !password.is_empty());
                if !valid {
                    return Err(Error::new(Code::PasswordMissing, "password is required."));
                }
            }
            "emailVerified" if !auth.master => {
                return Err(Error::forbidden(
                    "Clients aren't allowed to manually update email verification.",
                ));
            }
            "sessionToken" => {
                return Err(Error::invalid_key_name("Invalid field name: sessionToken."));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A session belongs to the server: clients may not attach an ACL or move it to another
/// user, installation or token (§5.7).
fn check_session_fields(
    class_name: &str,
    auth: &Auth,
    updates: &[FieldUpdate],
    sets_acl: bool,
) -> Result<(), Error> {
    if class_name != "_Session" || auth.master {
        return Ok(());
    }
    if sets_acl {
        return Err(Error::invalid_key_name("Cannot set ACL on a Session."));
    }
    for update in updates {
        if matches!(
            update.field.as_str(),
            "user" | "installationId" | "sessionToken" | "createdWith" | "expiresAt"
        ) {
            return Err(Error::invalid_key_name(format!(
                "Cannot modify {} of a Session.",
                update.field
            )));
        }
    }
    Ok(())
}

/// Replaces a `password` update by the update of its argon2id hash; says whether there was one.
async fn hash_password_update(updates: &mut [FieldUpdate]) -> Result<bool, Error> {
    let Some(update) = updates.iter_mut().find(|update| update.field == "password") else {
        return Ok(false);
    };
    let FieldOp::Set(Value::String(password)) = &update.op else {
        return Err(Error::new(Code::PasswordMissing, "password is required."));
    };
    let hashed = super::password::hash(password.clone()).await?;
    *update = FieldUpdate {
        field: "_hashed_password".to_owned(),
        path: Vec::new(),
        op: FieldOp::Set(Value::String(hashed)),
    };
    Ok(true)
}

fn is_relation_marker(update: &FieldUpdate) -> bool {
    matches!(&update.op, FieldOp::Set(value) if matches!(infer_type(value), Some(FieldType::Relation(_))))
}

fn required_error(field: &str) -> OpError {
    OpError::parse(Code::ValidationError, format!("{field} is required"))
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        _ => false,
    }
}

impl Operations {
    /// Plans `POST /classes/:className`.
    pub async fn plan_create(
        &self,
        auth: &Auth,
        class_name: &str,
        body: &Map<String, Value>,
    ) -> OpResult<PlannedWrite> {
        refuse_internal_class(class_name, ClassOperation::Create)?;
        let schema = self.class_for_write(auth, class_name).await?;
        if check_class_permission(&schema, ClassOperation::Create, auth)? != Filter::True {
            return Err(Error::forbidden(format!(
                "Permission denied for action create on class {class_name}."
            ))
            .into());
        }
        // The app's beforeSave runs after the permission check and before validation (§10.3).
        let triggered = self.before_save(auth, class_name, None, body).await?;
        let (body, trigger_echo, after_trigger) =
            self.after_save_plan(auth, class_name, body, triggered.as_ref());
        let mut parsed = parse_body(body, true, self.config.allow_custom_object_id)?;
        check_user_fields(class_name, auth, &parsed.updates)?;
        check_session_fields(class_name, auth, &parsed.updates, parsed.acl.is_some())?;
        if class_name == "_Role" {
            super::roles::check_role_write(true, body)?;
        }
        let password_changed =
            class_name == "_User" && hash_password_update(&mut parsed.updates).await?;
        let schema = self
            .ensure_fields(auth, schema, &implied_types(&parsed.updates))
            .await?;
        let mut fields = Map::new();
        let mut relations = Vec::new();
        for update in &parsed.updates {
            if is_relation_marker(update) {
                continue;
            }
            if matches!(update.op, FieldOp::Relation { .. }) {
                relations.push(update.clone());
                continue;
            }
            let current = fields.get(&update.field);
            // An explicit null is kept (it reads back as null, and `$exists` finds it), also
            // for a field the schema does not know: a null carries no type, so it adds no
            // field, and the store keeps it in its list of nulls (MongoDB's behaviour).
            match apply_at_path(current, &update.path, &update.op)? {
                Some(value) => fields.insert(update.field.clone(), value),
                None => fields.remove(&update.field),
            };
        }
        let mut extra = Map::new();
        for (name, field) in &schema.fields {
            if let Some(default_value) = &field.default_value
                && fields.get(name).is_none_or(Value::is_null)
            {
                // Stored as a written value would be (a polygon closed, …); the schema keeps
                // the default as it was given, as Parse Server does.
                let value = match default_value.get("__type") {
                    Some(_) => parlor_core::value::validate_typed(default_value)?,
                    None => default_value.clone(),
                };
                fields.insert(name.clone(), value.clone());
                extra.insert(name.clone(), value);
            }
        }
        for (name, field) in &schema.fields {
            if field.required && is_blank(fields.get(name)) {
                return Err(required_error(name));
            }
        }
        let now = now_iso();
        let mut object = Object {
            object_id: parsed.object_id.unwrap_or_else(new_object_id),
            created_at: now.clone(),
            updated_at: now,
            acl: parsed.acl.flatten(),
            fields,
        };
        let mut read_by_rules = None;
        if let Some(rules) = &self.rules {
            let checked = rules
                .on_create(self, auth, &schema, body, &mut object)
                .await?;
            extra.extend(checked.filled);
            read_by_rules = checked.read;
        }
        let echoed = parsed
            .updates
            .iter()
            .filter(|update| update.echoes_result())
            .cloned()
            .collect();
        Ok(PlannedWrite {
            write: Write::Create {
                schema,
                object,
                relations,
            },
            echoed,
            extra,
            password_changed,
            trigger_echo,
            after_trigger,
            read_by_rules,
        })
    }

    /// The body to write after a beforeSave, the fields it changed, and what an afterSave
    /// will need.
    fn after_save_plan<'a>(
        &self,
        auth: &Auth,
        class_name: &str,
        body: &'a Map<String, Value>,
        triggered: Option<&'a BeforeSaveAnswer>,
    ) -> (&'a Map<String, Value>, Vec<String>, Option<AfterTrigger>) {
        let (body, echo, context) = match triggered {
            Some(answer) => (&answer.body, answer.echo.clone(), answer.context.clone()),
            None => (body, Vec::new(), None),
        };
        let after = self
            .has_trigger(Trigger::AfterSave, class_name)
            .then(|| AfterTrigger {
                auth: auth.clone(),
                context,
                sent: body.clone(),
            });
        (body, echo, after)
    }

    /// Plans `PUT /classes/:className/:objectId`.
    pub async fn plan_update(
        &self,
        auth: &Auth,
        class_name: &str,
        object_id: &str,
        body: &Map<String, Value>,
    ) -> OpResult<PlannedWrite> {
        refuse_internal_class(class_name, ClassOperation::Update)?;
        let schema = self
            .schemas
            .get(class_name)
            .ok_or_else(Error::object_not_found)?;
        let clp_filter = check_class_permission(&schema, ClassOperation::Update, auth)?;
        let triggered = if self.has_trigger(Trigger::BeforeSave, class_name) {
            // The trigger sees the stored object (`request.original`); whether the caller may
            // write it is still decided by the write's guard, as without a trigger.
            let by_id = equals(&schema, "objectId", Operand::String(object_id.to_owned()));
            let original = self
                .find_first(&schema, by_id)
                .await?
                .ok_or_else(Error::object_not_found)?;
            self.before_save(auth, class_name, Some(original.into_json()), body)
                .await?
        } else {
            None
        };
        let (body, trigger_echo, after_trigger) =
            self.after_save_plan(auth, class_name, body, triggered.as_ref());
        let mut parsed = parse_body(body, false, false)?;
        check_user_fields(class_name, auth, &parsed.updates)?;
        check_session_fields(class_name, auth, &parsed.updates, parsed.acl.is_some())?;
        if class_name == "_Role" {
            super::roles::check_role_write(false, body)?;
        }
        let password_changed =
            class_name == "_User" && hash_password_update(&mut parsed.updates).await?;
        let schema = self
            .ensure_fields(auth, schema, &implied_types(&parsed.updates))
            .await?;
        // A null (or a Delete) of a field the class does not have adds no field: the store
        // records (or forgets) the explicit null alone.
        let mut updates: Vec<FieldUpdate> = parsed
            .updates
            .into_iter()
            .filter(|update| !is_relation_marker(update))
            .collect();
        for update in &updates {
            let required = schema
                .field(&update.field)
                .is_some_and(|field| field.required);
            let clears = match &update.op {
                FieldOp::Delete => update.path.is_empty(),
                FieldOp::Set(value) => update.path.is_empty() && is_blank(Some(value)),
                _ => false,
            };
            if required && clears {
                return Err(required_error(&update.field));
            }
        }
        if let Some(acl) = parsed.acl {
            let op = match acl {
                Some(acl) => FieldOp::Set(acl.to_json()),
                None => FieldOp::Delete,
            };
            updates.push(FieldUpdate {
                field: "ACL".to_owned(),
                path: Vec::new(),
                op,
            });
        }
        let echoed = updates
            .iter()
            .filter(|update| update.echoes_result())
            .cloned()
            .collect();
        if let Some(rules) = &self.rules {
            rules
                .on_update(self, auth, &schema, object_id, &mut updates)
                .await?;
        }
        let guard = clp_filter.and(write_filter(auth));
        let write = Write::Update {
            schema,
            object_id: object_id.to_owned(),
            guard,
            updates,
            updated_at: now_iso(),
        };
        Ok(PlannedWrite {
            write,
            echoed,
            extra: Map::new(),
            password_changed,
            trigger_echo,
            after_trigger,
            read_by_rules: None,
        })
    }

    /// Plans `DELETE /classes/:className/:objectId`.
    pub async fn plan_delete(
        &self,
        auth: &Auth,
        class_name: &str,
        object_id: &str,
    ) -> OpResult<PlannedWrite> {
        refuse_internal_class(class_name, ClassOperation::Delete)?;
        let schema = self
            .schemas
            .get(class_name)
            .ok_or_else(Error::object_not_found)?;
        let clp_filter = check_class_permission(&schema, ClassOperation::Delete, auth)?;
        if self.has_trigger(Trigger::BeforeDelete, class_name) {
            // Loaded with the caller's rights first: an object it cannot read is not found.
            let object = self
                .get(auth, class_name, object_id, GetRequest::default())
                .await?;
            self.run_trigger(
                auth,
                Trigger::BeforeDelete,
                class_name,
                serde_json::json!({"object": object}),
            )
            .await?;
        }
        let after_trigger =
            self.has_trigger(Trigger::AfterDelete, class_name)
                .then(|| AfterTrigger {
                    auth: auth.clone(),
                    context: None,
                    sent: Map::new(),
                });
        if let Some(rules) = &self.rules {
            rules.on_delete(self, auth, &schema, object_id).await?;
        }
        let guard = clp_filter.and(write_filter(auth));
        let write = Write::Delete {
            schema,
            object_id: object_id.to_owned(),
            guard,
        };
        Ok(PlannedWrite {
            write,
            echoed: Vec::new(),
            extra: Map::new(),
            password_changed: false,
            trigger_echo: Vec::new(),
            after_trigger,
            read_by_rules: None,
        })
    }

    /// Commits planned writes in one transaction and builds each one's response.
    pub async fn commit(&self, mut planned: Vec<PlannedWrite>) -> OpResult<Vec<WriteResponse>> {
        let writes: Vec<Write> = planned.iter().map(|plan| plan.write.clone()).collect();
        let writes = match &self.rules {
            Some(rules) => rules.follow_ups(self, writes).await?,
            None => writes,
        };
        // The store reports the commit to the event bus itself, in commit order.
        let outcomes = self.store.write(writes).await?;
        // afterSave / afterDelete, in the order of the writes, before the client is answered.
        let mut after_answers: Vec<Option<AfterSaveAnswer>> = vec![None; planned.len()];
        for ((plan, outcome), answer) in planned.iter().zip(&outcomes).zip(&mut after_answers) {
            if let Some(after) = &plan.after_trigger {
                *answer = self.after_write(after, plan.class_name(), outcome).await;
            }
        }
        let mut replies: Vec<Vec<String>> = vec![Vec::new(); planned.len()];
        if let Some(generator) = &self.generation {
            // Told directly rather than through the live-query bus, which may drop events
            // under load; the generator only chooses who answers and spawns the replies, so
            // the caller is not delayed by them.
            let (indexes, committed): (Vec<usize>, Vec<_>) = planned
                .iter_mut()
                .zip(&outcomes)
                .enumerate()
                .filter(|(_, (plan, _))| generator.watches(plan.class_name()))
                .map(|(index, (plan, outcome))| {
                    let committed = Committed {
                        class_name: plan.class_name().to_owned(),
                        outcome: outcome.clone(),
                        read: plan.read_by_rules.take(),
                    };
                    (index, committed)
                })
                .unzip();
            if !committed.is_empty() {
                let started = Arc::clone(generator).after_commit(self, committed).await;
                for (index, ids) in indexes.into_iter().zip(started) {
                    replies[index] = ids;
                }
            }
        }
        Ok(planned
            .into_iter()
            .zip(outcomes)
            .zip(replies)
            .zip(after_answers)
            .map(|(((plan, outcome), replies), after_answer)| {
                let mut response = self.respond(plan, outcome);
                match after_answer {
                    Some(AfterSaveAnswer::Replace(json)) => response.body = json,
                    Some(AfterSaveAnswer::Changed(fields)) => {
                        if let Value::Object(body) = &mut response.body {
                            body.extend(fields);
                        }
                    }
                    None => {}
                }
                // A user's message names the persona replies it started (README "AI
                // personas"), so a client can follow them at once.
                if !replies.is_empty()
                    && let Value::Object(body) = &mut response.body
                {
                    body.insert("replies".into(), replies.into());
                }
                response
            })
            .collect())
    }

    /// Plans and commits one write.
    pub async fn commit_one(&self, planned: PlannedWrite) -> OpResult<WriteResponse> {
        self.commit(vec![planned])
            .await?
            .pop()
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    fn respond(&self, plan: PlannedWrite, outcome: WriteOutcome) -> WriteResponse {
        let mut body = Map::new();
        let (status, location, state) = match &outcome {
            WriteOutcome::Created(object) => {
                body.insert("objectId".into(), object.object_id.clone().into());
                body.insert("createdAt".into(), object.created_at.clone().into());
                let class_name = match &plan.write {
                    Write::Create { schema, .. } => schema.class_name.clone(),
                    _ => String::new(),
                };
                (
                    201,
                    Some(self.object_url(&class_name, &object.object_id)),
                    Some(object),
                )
            }
            WriteOutcome::Updated { after, .. } => {
                body.insert("updatedAt".into(), after.updated_at.clone().into());
                (200, None, Some(after))
            }
            WriteOutcome::Deleted(_) => (200, None, None),
        };
        if let Some(state) = state {
            for field in &plan.trigger_echo {
                let value = match field.as_str() {
                    "ACL" => state.acl.as_ref().map(|acl| acl.to_json()),
                    _ => state.fields.get(field).cloned(),
                };
                body.insert(field.clone(), value.unwrap_or(Value::Null));
            }
            for update in &plan.echoed {
                let mut value = state.fields.get(&update.field);
                for segment in &update.path {
                    value = value.and_then(|inner| inner.get(segment));
                }
                let key = std::iter::once(update.field.as_str())
                    .chain(update.path.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(".");
                body.insert(key, value.cloned().unwrap_or(Value::Null));
            }
        }
        body.extend(plan.extra);
        WriteResponse {
            status,
            body: Value::Object(body),
            location,
            outcome,
        }
    }

    /// The URL of an object, as `Location` gives it.
    pub fn object_url(&self, class_name: &str, object_id: &str) -> String {
        match class_name {
            "_User" => format!("{}/users/{object_id}", self.config.server_url),
            _ => format!(
                "{}/classes/{class_name}/{object_id}",
                self.config.server_url
            ),
        }
    }
}

/// `field = value` as a filter, for lookups the server makes itself.
pub fn equals(schema: &Arc<ClassSchema>, field: &str, value: Operand) -> Filter {
    Filter::Cond {
        field: FieldRef {
            field: field.to_owned(),
            path: Vec::new(),
            field_type: schema.field_type(field).cloned(),
        },
        cond: Cond::Eq(value),
    }
}
