//! Built-in rules of the AI chat template (parse-protocol.md §14, issue 3 "The chat
//! template's rules"), applied to the template classes by name when they are written.
//!
//! The template's CLPs say who may touch a class at all; these rules say what a write may
//! contain and set the values and ACLs the server owns:
//!
//! - `_User.role` is set or changed only by the master key or an admin (`role: "admin"`).
//! - `ChatSession`: the creator becomes `owner` and a participant; the ACL is owner
//!   read+write, each participant read; listed `personas` must be readable by the owner.
//!   When `participants` change, the session's ACL and those of its Messages and Context
//!   objects follow, in the same transaction ([`TemplateRules::follow_ups`]).
//!   The server gives each new session its `Context` (`sessionId`, `data: {}`, `session`,
//!   the members' ACL) in the same transaction and sets the session's `context` pointer;
//!   clients cannot choose `context` themselves.
//! - `Message`: created, updated and deleted only by a member of its session, with `sender` =
//!   the caller and `role: "user"`; ACL: read for the session's members, write for the sender
//!   only (while a member); `session`, `sender`, `role` and `ACL` cannot be changed afterwards,
//!   and the fields that describe a generation ([`SERVER_OWNED_MESSAGE_FIELDS`]) are the
//!   server's alone.
//! - `Context`: created, updated and deleted only by a member of its session; ACL read+write
//!   for the session's members; one per session (a second one is refused with `137`);
//!   `session`, `sessionId` and `ACL` cannot be changed afterwards.
//! - `Persona`: `owner` defaults to the creator; the default ACL is public read, owner write.
//!   `tools` is an array of tool names (`111` otherwise), for every caller, the master key
//!   included: replies read it.
//!
//! The master key (the server, the operator) may set any field, but what it creates gets the
//! same protective defaults: a ChatSession, Message or Context it creates without an explicit
//! ACL gets the ACL a user's create would get, a Message or Context must name a session that
//! exists, a session keeps one Context, and a new session's `context` pointer is in the answer.
//! A refusal is `119`; a session that does not exist and one the caller cannot read are
//! refused alike.

use std::collections::BTreeSet;
use std::sync::Arc;

use parlor_core::object::{Acl, Object, Permission};
use parlor_core::ops::{FieldOp, FieldUpdate, apply_at_path};
use parlor_core::query::matcher::matches;
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::value::{as_pointer, date_value};
use parlor_core::{Code, Error};
use parlor_store::Write;
use serde_json::{Map, Value, json};

use super::access::{ClassOperation, check_class_permission, read_filter, write_filter};
use super::hooks::{CheckedCreate, WriteRules};
use super::{Auth, OpError, OpResult, Operations};

/// The fields of a Message that describe a generation and its cost: only the server (the
/// master key, the reply task) writes them, so a client cannot forge a persona's answer or
/// its usage.
pub const SERVER_OWNED_MESSAGE_FIELDS: [&str; 8] = [
    "persona",
    "status",
    "usage",
    "model",
    "firstTokenMs",
    "error",
    // A persona's tool calls (`role: "tool"` messages): what it ran and what it got back.
    "toolCall",
    "reply",
];

/// The server-owned field a client's write touches, if any (`usage.total_tokens` touches
/// `usage`).
fn server_owned_field<'a>(mut fields: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fields.find(|field| {
        let top = field.split('.').next().unwrap_or_default();
        SERVER_OWNED_MESSAGE_FIELDS.contains(&top)
    })
}

fn server_owned_error(field: &str) -> OpError {
    let top = field.split('.').next().unwrap_or_default();
    forbidden(format!(
        "{top} of a Message is set by the server only (it describes a persona's reply)."
    ))
}

/// Fills template values on a new object; what it fills is also returned, for the response.
fn fill_defaults(schema: &ClassSchema, object: &mut Object) -> Map<String, Value> {
    let mut filled = Map::new();
    // A Message's `timestamp` defaults to its creation time, so clients can order by a field
    // they may also set themselves (imported history keeps its original times).
    let has_timestamp = matches!(schema.field_type("timestamp"), Some(FieldType::Date));
    if schema.class_name == "Message"
        && has_timestamp
        && object.fields.get("timestamp").is_none_or(Value::is_null)
    {
        let timestamp = date_value(&object.created_at);
        object
            .fields
            .insert("timestamp".to_owned(), timestamp.clone());
        filled.insert("timestamp".to_owned(), timestamp);
    }
    filled
}

fn forbidden(message: impl Into<std::borrow::Cow<'static, str>>) -> OpError {
    Error::forbidden(message).into()
}

fn not_a_participant() -> OpError {
    forbidden("Permission denied: the caller is not a participant of this session.")
}

fn pointer(class_name: &str, object_id: &str) -> Value {
    json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

/// The objectId of a pointer to `class_name` (`None` for anything else, null included).
fn pointer_id<'a>(value: Option<&'a Value>, class_name: &str) -> Option<&'a str> {
    let (target, object_id) = as_pointer(value?)?;
    (target == class_name).then_some(object_id)
}

fn is_unset(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}

/// The user ids of a `participants` value a client wrote: an array of `_User` pointers.
fn participant_ids(value: Option<&Value>) -> OpResult<Vec<String>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(participants_type_error()),
    };
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let id = pointer_id(Some(item), "_User").ok_or_else(participants_type_error)?;
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

fn participants_type_error() -> OpError {
    OpError::parse(
        Code::IncorrectType,
        "participants must be an array of _User pointers \
         ({\"__type\":\"Pointer\",\"className\":\"_User\",\"objectId\":…})",
    )
}

/// Whether the user is the session's owner or one of its participants: the one membership
/// rule, for the AI functions that only members may call.
pub fn is_session_member(session: &Object, user_id: &str) -> bool {
    Members::of(session).includes(user_id)
}

/// Who belongs to a session: its owner and its participants.
#[derive(Debug, Clone, Default)]
struct Members {
    owner: Option<String>,
    participants: Vec<String>,
}

impl Members {
    /// The members of a stored session (items that are not `_User` pointers are ignored).
    fn of(session: &Object) -> Members {
        let participants = match session.fields.get("participants") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| pointer_id(Some(item), "_User"))
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Members {
            owner: pointer_id(session.fields.get("owner"), "_User").map(str::to_owned),
            participants,
        }
    }

    fn includes(&self, user_id: &str) -> bool {
        self.owner.as_deref() == Some(user_id) || self.participants.iter().any(|p| p == user_id)
    }

    /// The owner and the participants, each once.
    fn everyone(&self) -> BTreeSet<&str> {
        self.owner
            .iter()
            .chain(&self.participants)
            .map(String::as_str)
            .collect()
    }

    /// A ChatSession's ACL: owner read+write, each participant read.
    fn session_acl(&self) -> Acl {
        let mut acl = self.acl(false);
        if let Some(owner) = &self.owner {
            acl.entries.insert(
                owner.clone(),
                Permission {
                    read: true,
                    write: true,
                },
            );
        }
        acl
    }

    /// A Message's ACL: read for every member, write for its sender while it is a member
    /// (one who left keeps neither).
    fn message_acl(&self, sender: Option<&str>) -> Acl {
        let mut acl = self.acl(false);
        if let Some(entry) = sender.and_then(|sender| acl.entries.get_mut(sender)) {
            entry.write = true;
        }
        acl
    }

    /// A Context's ACL: read+write for every member.
    fn context_acl(&self) -> Acl {
        self.acl(true)
    }

    fn acl(&self, write: bool) -> Acl {
        let mut acl = Acl::default();
        for member in self.everyone() {
            acl.entries
                .insert(member.to_owned(), Permission { read: true, write });
        }
        acl
    }
}

fn field_ref(schema: &ClassSchema, field: &str) -> FieldRef {
    FieldRef {
        field: field.to_owned(),
        path: Vec::new(),
        field_type: match field {
            "objectId" => Some(FieldType::String),
            _ => schema.field_type(field).cloned(),
        },
    }
}

fn equals(schema: &ClassSchema, field: &str, value: Operand) -> Filter {
    Filter::Cond {
        field: field_ref(schema, field),
        cond: Cond::Eq(value),
    }
}

fn id_is(schema: &ClassSchema, object_id: &str) -> Filter {
    equals(schema, "objectId", Operand::String(object_id.to_owned()))
}

fn touches(updates: &[FieldUpdate], field: &str) -> bool {
    updates.iter().any(|update| update.field == field)
}

impl Operations {
    /// Whether the caller is a template admin (its own `_User.role` is `"admin"`).
    pub(super) async fn caller_is_admin(&self, auth: &Auth) -> OpResult<bool> {
        if !self.config.chat_template {
            return Ok(false);
        }
        Rules { ops: self }.caller_is_admin(auth).await
    }
}

/// The chat template's rules, registered on the write seam ([`WriteRules`]) when the
/// template is on (`--template chat`, the default).
pub struct TemplateRules;

#[async_trait::async_trait]
impl WriteRules for TemplateRules {
    /// What it fills is returned for the response.
    async fn on_create(
        &self,
        ops: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        body: &Map<String, Value>,
        object: &mut Object,
    ) -> OpResult<CheckedCreate> {
        let mut filled = fill_defaults(schema, object);
        let rules = Rules { ops };
        if schema.class_name == "Persona"
            && let Some(tools) = object.fields.get("tools").filter(|tools| !tools.is_null())
        {
            check_tools(tools)?;
        }
        let checked: CheckedCreate = if auth.master {
            match schema.class_name.as_str() {
                "ChatSession" => rules.master_create_session(object)?.into(),
                "Message" => rules.master_create_message(object).await?,
                "Context" => rules.master_create_context(object).await?.into(),
                _ => CheckedCreate::default(),
            }
        } else {
            match schema.class_name.as_str() {
                "_User" => {
                    if body.contains_key("role") {
                        rules.check_role_change(auth).await?;
                    }
                    CheckedCreate::default()
                }
                "ChatSession" => rules.create_session(auth, object).await?.into(),
                "Message" => {
                    if let Some(field) = server_owned_field(body.keys().map(String::as_str)) {
                        return Err(server_owned_error(field));
                    }
                    rules.create_message(auth, object).await?
                }
                "Context" => rules.create_context(auth, object).await?.into(),
                "Persona" => create_persona(auth, object)?.into(),
                _ => CheckedCreate::default(),
            }
        };
        filled.extend(checked.filled);
        Ok(CheckedCreate {
            filled,
            read: checked.read,
        })
    }

    /// It may rewrite the planned updates: a ChatSession's participants and ACL.
    async fn on_update(
        &self,
        ops: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        object_id: &str,
        updates: &mut Vec<FieldUpdate>,
    ) -> OpResult<()> {
        if schema.class_name == "Persona" {
            check_tool_updates(updates)?;
        }
        if auth.master {
            return Ok(());
        }
        let rules = Rules { ops };
        match schema.class_name.as_str() {
            "_User" if touches(updates, "role") => rules.check_role_change(auth).await,
            "ChatSession" => rules.update_session(auth, schema, object_id, updates).await,
            "Message" => {
                if let Some(field) =
                    server_owned_field(updates.iter().map(|update| update.field.as_str()))
                {
                    return Err(server_owned_error(field));
                }
                rules
                    .member_write(auth, schema, ClassOperation::Update, object_id, updates)
                    .await
            }
            "Context" => {
                rules
                    .member_write(auth, schema, ClassOperation::Update, object_id, updates)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// A Message or Context is deleted only by a member of its session (its ACL says which
    /// member).
    async fn on_delete(
        &self,
        ops: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        object_id: &str,
    ) -> OpResult<()> {
        if auth.master || !matches!(schema.class_name.as_str(), "Message" | "Context") {
            return Ok(());
        }
        Rules { ops }
            .member_write(auth, schema, ClassOperation::Delete, object_id, &[])
            .await
    }

    /// A new ChatSession's Context; when a ChatSession's participants were set together
    /// with its ACL (what [`TemplateRules::on_update`] plans), the ACLs of its Messages and
    /// Context objects.
    async fn follow_ups(&self, ops: &Operations, mut writes: Vec<Write>) -> OpResult<Vec<Write>> {
        let rules = Rules { ops };
        let mut follow_ups = rules.session_contexts(&mut writes).await?;
        for write in &writes {
            let Write::Update {
                schema,
                object_id,
                updates,
                updated_at,
                ..
            } = write
            else {
                continue;
            };
            let sets = |field: &str| {
                updates.iter().find_map(|update| match &update.op {
                    FieldOp::Set(value) if update.field == field && update.path.is_empty() => {
                        Some(value)
                    }
                    _ => None,
                })
            };
            if schema.class_name != "ChatSession" || sets("ACL").is_none() {
                continue;
            }
            let Some(participants) = sets("participants") else {
                continue;
            };
            let Some(session) = rules.load_one(schema, id_is(schema, object_id)).await? else {
                continue;
            };
            let members = Members {
                participants: participant_ids(Some(participants)).unwrap_or_default(),
                ..Members::of(&session)
            };
            follow_ups.extend(
                rules
                    .follow_ups_for(object_id, &members, updated_at)
                    .await?,
            );
        }
        writes.extend(follow_ups);
        Ok(writes)
    }
}

/// The rules' helpers, apart from [`Operations`]' own methods.
struct Rules<'a> {
    ops: &'a Operations,
}

impl Rules<'_> {
    fn template_schema(&self, class_name: &str) -> OpResult<Arc<ClassSchema>> {
        self.ops
            .schemas
            .get(class_name)
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    /// Whether sessions can point at a Context: both template classes exist, with the
    /// `context` pointer field.
    fn context_pointer_fits(&self, sessions: &ClassSchema) -> bool {
        matches!(
            sessions.field_type("context"),
            Some(FieldType::Pointer(target)) if target == "Context"
        ) && self.ops.schemas.get("Context").is_some()
    }

    /// The Context of each ChatSession created in `writes`: the session's `context`
    /// pointer is set where it is missing (master creates), and a Context is created
    /// wherever the pointer names one that does not exist yet (so a master that points a
    /// session at an existing Context keeps it). Returned as follow-up writes, committed in
    /// the same transaction as the session.
    async fn session_contexts(&self, writes: &mut [Write]) -> OpResult<Vec<Write>> {
        let mut contexts = Vec::new();
        for write in writes.iter_mut() {
            let Write::Create { schema, object, .. } = write else {
                continue;
            };
            if schema.class_name != "ChatSession" || !self.context_pointer_fits(schema) {
                continue;
            }
            let context_schema = self.template_schema("Context")?;
            let context_id = match pointer_id(object.fields.get("context"), "Context") {
                Some(id) => {
                    let existing = self
                        .load_one(&context_schema, id_is(&context_schema, id))
                        .await?;
                    if existing.is_some() {
                        continue;
                    }
                    id.to_owned()
                }
                None if is_unset(object.fields.get("context")) => {
                    let id = super::write::new_object_id();
                    object
                        .fields
                        .insert("context".into(), pointer("Context", &id));
                    id
                }
                // A master's malformed value: left for the schema check to judge.
                None => continue,
            };
            let members = Members::of(object);
            let mut fields = Map::new();
            let session_id = object.object_id.clone();
            for (name, value) in [
                ("sessionId", Value::from(session_id.clone())),
                ("data", json!({})),
                ("session", pointer("ChatSession", &session_id)),
            ] {
                if context_schema.fields.contains_key(name) {
                    fields.insert(name.to_owned(), value);
                }
            }
            contexts.push(Write::Create {
                schema: context_schema,
                object: Object {
                    object_id: context_id,
                    created_at: object.created_at.clone(),
                    updated_at: object.created_at.clone(),
                    acl: Some(members.context_acl()),
                    fields,
                },
                relations: Vec::new(),
            });
        }
        Ok(contexts)
    }

    /// The first object of `schema` matching `filter`, read by the server itself.
    async fn load_one(&self, schema: &ClassSchema, filter: Filter) -> OpResult<Option<Object>> {
        self.ops.find_first(schema, filter).await
    }

    /// Whether the caller is an admin: a user whose own `_User.role` is `"admin"`.
    async fn caller_is_admin(&self, auth: &Auth) -> OpResult<bool> {
        let Some(user_id) = &auth.user_id else {
            return Ok(false);
        };
        let users = self.template_schema("_User")?;
        let user = self.load_one(&users, id_is(&users, user_id)).await?;
        Ok(user.is_some_and(|user| user.fields.get("role") == Some(&json!("admin"))))
    }

    async fn check_role_change(&self, auth: &Auth) -> OpResult<()> {
        if self.caller_is_admin(auth).await? {
            return Ok(());
        }
        Err(forbidden(
            "Only an admin or the master key may set the role of a user.",
        ))
    }

    /// The members of the session `session_id` if the caller may read it and belongs to
    /// it; otherwise `119`, the same whether the session exists or not.
    async fn members_for(&self, auth: &Auth, session_id: &str) -> OpResult<Members> {
        Ok(self.session_for(auth, session_id).await?.0)
    }

    /// [`Rules::members_for`], with the session as read.
    async fn session_for(&self, auth: &Auth, session_id: &str) -> OpResult<(Members, Object)> {
        let user_id = auth.user_id.as_deref().ok_or_else(not_a_participant)?;
        let sessions = self.template_schema("ChatSession")?;
        let clp = check_class_permission(&sessions, ClassOperation::Get, auth)
            .map_err(|_| not_a_participant())?;
        let filter = id_is(&sessions, session_id).and(clp).and(read_filter(auth));
        // Every message asks this, so the session comes from the cache and the same filter
        // (CLP and ACL) is evaluated here; one the matcher cannot decide goes to the store.
        let session = if filter.is_matchable() {
            self.ops
                .load_cached(&self.ops.chat_sessions, "ChatSession", session_id)
                .await?
                .filter(|session| matches(&filter, session))
        } else {
            self.load_one(&sessions, filter).await?
        };
        let session = session.ok_or_else(not_a_participant)?;
        let members = Members::of(&session);
        if members.includes(user_id) {
            Ok((members, session))
        } else {
            Err(not_a_participant())
        }
    }

    /// The credentials of a session's owner, for "personas its owner can read".
    async fn owner_auth(&self, auth: &Auth, owner: Option<&str>) -> OpResult<Auth> {
        match owner {
            Some(owner) if auth.user_id.as_deref() != Some(owner) => Ok(Auth {
                user_id: Some(owner.to_owned()),
                roles: self.ops.roles_of(owner).await?,
                ..Auth::default()
            }),
            _ => Ok(auth.clone()),
        }
    }

    /// Every item must be a pointer to a Persona that `reader` may find.
    async fn check_personas(&self, reader: &Auth, items: &[Value]) -> OpResult<()> {
        let refused = || forbidden("A session can only list personas its owner can read.");
        let mut ids = BTreeSet::new();
        for item in items {
            ids.insert(pointer_id(Some(item), "Persona").ok_or_else(|| {
                OpError::parse(
                    Code::IncorrectType,
                    "personas must be an array of Persona pointers \
                     ({\"__type\":\"Pointer\",\"className\":\"Persona\",\"objectId\":…})",
                )
            })?);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let personas = self.template_schema("Persona")?;
        let clp = check_class_permission(&personas, ClassOperation::Find, reader)
            .map_err(|_| refused())?;
        let filter = Filter::Cond {
            field: field_ref(&personas, "objectId"),
            cond: Cond::In(
                ids.iter()
                    .map(|id| Operand::String((*id).to_owned()))
                    .collect(),
            ),
        }
        .and(clp)
        .and(read_filter(reader));
        let query = FindQuery {
            keys: Some(Vec::new()),
            ..FindQuery::filter(filter)
        };
        let readable = self.ops.store.find(&personas, &query).await?.len();
        if readable == ids.len() {
            Ok(())
        } else {
            Err(refused())
        }
    }

    async fn create_session(
        &self,
        auth: &Auth,
        object: &mut Object,
    ) -> OpResult<Map<String, Value>> {
        let user_id = auth
            .user_id
            .clone()
            .ok_or_else(|| forbidden("Creating a ChatSession needs a logged-in user."))?;
        let owner = object.fields.get("owner");
        if !is_unset(owner) && pointer_id(owner, "_User") != Some(user_id.as_str()) {
            return Err(forbidden("The owner of a new ChatSession is its creator."));
        }
        let mut participants = participant_ids(object.fields.get("participants"))?;
        if !participants.contains(&user_id) {
            participants.push(user_id.clone());
        }
        if let Some(Value::Array(personas)) = object.fields.get("personas") {
            self.check_personas(auth, personas).await?;
        }
        if !is_unset(object.fields.get("context")) {
            return Err(forbidden("The server sets a ChatSession's context."));
        }
        let members = Members {
            owner: Some(user_id.clone()),
            participants,
        };
        let mut filled = Map::new();
        // The Context itself is created with the session ([`Rules::session_contexts`]); its
        // id is chosen here so that the create response can carry the pointer.
        if self.context_pointer_fits(&*self.template_schema("ChatSession")?) {
            filled.insert(
                "context".into(),
                pointer("Context", &super::write::new_object_id()),
            );
        }
        filled.insert("owner".into(), pointer("_User", &user_id));
        filled.insert(
            "participants".into(),
            members
                .participants
                .iter()
                .map(|id| pointer("_User", id))
                .collect(),
        );
        let acl = members.session_acl();
        filled.insert("ACL".into(), acl.to_json());
        object.acl = Some(acl);
        for (key, value) in &filled {
            if key != "ACL" {
                object.fields.insert(key.clone(), value.clone());
            }
        }
        Ok(filled)
    }

    async fn create_message(&self, auth: &Auth, object: &mut Object) -> OpResult<CheckedCreate> {
        let user_id = auth.user_id.clone().ok_or_else(not_a_participant)?;
        let session_id = pointer_id(object.fields.get("session"), "ChatSession")
            .ok_or_else(not_a_participant)?
            .to_owned();
        let (members, session) = self.session_for(auth, &session_id).await?;
        let sender = object.fields.get("sender");
        if !is_unset(sender) && pointer_id(sender, "_User") != Some(user_id.as_str()) {
            return Err(forbidden("The sender of a Message must be the caller."));
        }
        let role = object.fields.get("role");
        if !is_unset(role) && role != Some(&json!("user")) {
            return Err(forbidden(
                "Only the server may create assistant or system messages.",
            ));
        }
        let mut filled = Map::new();
        let sender = pointer("_User", &user_id);
        object.fields.insert("sender".into(), sender.clone());
        filled.insert("sender".into(), sender);
        let acl = members.message_acl(Some(&user_id));
        filled.insert("ACL".into(), acl.to_json());
        object.acl = Some(acl);
        Ok(CheckedCreate {
            filled,
            read: Some(session),
        })
    }

    async fn create_context(
        &self,
        auth: &Auth,
        object: &mut Object,
    ) -> OpResult<Map<String, Value>> {
        let session_id = context_session_id(object)?.ok_or_else(not_a_participant)?;
        let members = self.members_for(auth, &session_id).await?;
        self.fill_context(object, &session_id, members).await
    }

    /// The rest of a new Context's rules once its session is known: one per session, its
    /// `session` pointer, and its ACL unless the master gave one.
    async fn fill_context(
        &self,
        object: &mut Object,
        session_id: &str,
        members: Members,
    ) -> OpResult<Map<String, Value>> {
        // One Context per session: the server made it with the session.
        let schema = self.template_schema("Context")?;
        let session = Operand::Pointer {
            class_name: "ChatSession".to_owned(),
            object_id: session_id.to_owned(),
        };
        if self
            .load_one(&schema, equals(&schema, "session", session))
            .await?
            .is_some()
        {
            return Err(OpError::parse(
                Code::DuplicateValue,
                "This session already has its Context.",
            ));
        }
        let mut filled = Map::new();
        if is_unset(object.fields.get("session")) {
            let session = pointer("ChatSession", session_id);
            object.fields.insert("session".into(), session.clone());
            filled.insert("session".into(), session);
        }
        if object.acl.is_none() {
            let acl = members.context_acl();
            filled.insert("ACL".into(), acl.to_json());
            object.acl = Some(acl);
        }
        Ok(filled)
    }

    /// A ChatSession the master creates: its Context pointer (the Context itself follows in
    /// the same transaction) and, unless the master gave one, the ACL a user's session gets.
    fn master_create_session(&self, object: &mut Object) -> OpResult<Map<String, Value>> {
        let mut filled = Map::new();
        if is_unset(object.fields.get("context"))
            && self.context_pointer_fits(&*self.template_schema("ChatSession")?)
        {
            let context = pointer("Context", &super::write::new_object_id());
            object.fields.insert("context".into(), context.clone());
            filled.insert("context".into(), context);
        }
        if object.acl.is_none() {
            let acl = Members::of(object).session_acl();
            filled.insert("ACL".into(), acl.to_json());
            object.acl = Some(acl);
        }
        Ok(filled)
    }

    /// A Message the master (or a persona's reply) creates: its session must exist, and
    /// unless the master gave an ACL it gets the one a member's message gets.
    async fn master_create_message(&self, object: &mut Object) -> OpResult<CheckedCreate> {
        let session_id = pointer_id(object.fields.get("session"), "ChatSession")
            .ok_or_else(|| missing_session("session"))?
            .to_owned();
        let session = self.stored_session(&session_id).await?;
        let mut filled = Map::new();
        if object.acl.is_none() {
            let sender = pointer_id(object.fields.get("sender"), "_User");
            let acl = Members::of(&session).message_acl(sender);
            filled.insert("ACL".into(), acl.to_json());
            object.acl = Some(acl);
        }
        Ok(CheckedCreate {
            filled,
            read: Some(session),
        })
    }

    /// A Context the master creates: the same rules as a member's, but no membership.
    async fn master_create_context(&self, object: &mut Object) -> OpResult<Map<String, Value>> {
        let session_id = context_session_id(object)?.ok_or_else(|| missing_session("sessionId"))?;
        let members = self.stored_members(&session_id).await?;
        self.fill_context(object, &session_id, members).await
    }

    /// The members of a stored session, read by the server; `142` if it does not exist.
    async fn stored_members(&self, session_id: &str) -> OpResult<Members> {
        Ok(Members::of(&self.stored_session(session_id).await?))
    }

    /// A stored session, read by the server; `142` if it does not exist.
    async fn stored_session(&self, session_id: &str) -> OpResult<Object> {
        let sessions = self.template_schema("ChatSession")?;
        self.load_one(&sessions, id_is(&sessions, session_id))
            .await?
            .ok_or_else(|| missing_session("session"))
    }

    /// The object as it stands if the caller may `operation` it (update or delete); `None`
    /// lets the write's own guard answer `101`, so no rule here reveals an object the caller
    /// cannot write.
    async fn writable(
        &self,
        auth: &Auth,
        schema: &ClassSchema,
        operation: ClassOperation,
        object_id: &str,
    ) -> OpResult<Option<Object>> {
        let Ok(clp) = check_class_permission(schema, operation, auth) else {
            return Ok(None);
        };
        let filter = id_is(schema, object_id).and(clp).and(write_filter(auth));
        self.load_one(schema, filter).await
    }

    /// A member's update or delete of a Message or Context: the caller must still belong to
    /// the object's session, and an update must keep the fields that tie it to the session.
    async fn member_write(
        &self,
        auth: &Auth,
        schema: &ClassSchema,
        operation: ClassOperation,
        object_id: &str,
        updates: &[FieldUpdate],
    ) -> OpResult<()> {
        let Some(current) = self.writable(auth, schema, operation, object_id).await? else {
            return Ok(());
        };
        let session_id = match schema.class_name.as_str() {
            "Message" => pointer_id(current.fields.get("session"), "ChatSession"),
            _ => pointer_id(current.fields.get("session"), "ChatSession")
                .or_else(|| current.fields.get("sessionId").and_then(Value::as_str)),
        };
        self.members_for(auth, session_id.ok_or_else(not_a_participant)?)
            .await?;
        let kept: &[&str] = match schema.class_name.as_str() {
            "Message" => &["session", "sender", "role", "ACL"],
            _ => &["session", "sessionId", "ACL"],
        };
        keep_fields(&current, schema, updates, kept)
    }

    async fn update_session(
        &self,
        auth: &Auth,
        schema: &ClassSchema,
        object_id: &str,
        updates: &mut Vec<FieldUpdate>,
    ) -> OpResult<()> {
        let relevant = ["owner", "participants", "personas", "ACL"];
        if !relevant.iter().any(|field| touches(updates, field)) {
            return Ok(());
        }
        let Some(current) = self
            .writable(auth, schema, ClassOperation::Update, object_id)
            .await?
        else {
            return Ok(());
        };
        let mut members = Members::of(&current);
        // The owner stays the owner.
        let mut owner_value = current.fields.get("owner").cloned();
        for update in updates.iter().filter(|update| update.field == "owner") {
            owner_value = apply_at_path(owner_value.as_ref(), &update.path, &update.op)?;
        }
        if pointer_id(owner_value.as_ref(), "_User") != members.owner.as_deref() {
            return Err(forbidden("The owner of a ChatSession cannot be changed."));
        }
        // Added personas must be readable by the owner.
        let added: Vec<Value> = updates
            .iter()
            .filter(|update| update.field == "personas")
            .flat_map(|update| match &update.op {
                FieldOp::Set(Value::Array(items))
                | FieldOp::Add(items)
                | FieldOp::AddUnique(items) => items.clone(),
                FieldOp::Set(value) if !value.is_null() => vec![value.clone()],
                _ => Vec::new(),
            })
            .collect();
        if !added.is_empty() {
            let reader = self.owner_auth(auth, members.owner.as_deref()).await?;
            self.check_personas(&reader, &added).await?;
        }
        // Participants: the ops become one Set of the resulting list, so that the list and
        // the ACLs computed from it agree; the client's ACL gives way to the computed one.
        let participants_changed = touches(updates, "participants");
        if participants_changed {
            let mut value = current.fields.get("participants").cloned();
            for update in updates
                .iter()
                .filter(|update| update.field == "participants")
            {
                value = apply_at_path(value.as_ref(), &update.path, &update.op)?;
            }
            members.participants = participant_ids(value.as_ref())?;
        }
        if participants_changed || touches(updates, "ACL") {
            updates.retain(|update| update.field != "participants" && update.field != "ACL");
            if participants_changed {
                updates.push(FieldUpdate {
                    field: "participants".to_owned(),
                    path: Vec::new(),
                    op: FieldOp::Set(
                        members
                            .participants
                            .iter()
                            .map(|id| pointer("_User", id))
                            .collect(),
                    ),
                });
            }
            updates.push(FieldUpdate {
                field: "ACL".to_owned(),
                path: Vec::new(),
                op: FieldOp::Set(members.session_acl().to_json()),
            });
        }
        Ok(())
    }

    async fn follow_ups_for(
        &self,
        session_id: &str,
        members: &Members,
        updated_at: &str,
    ) -> OpResult<Vec<Write>> {
        let session = Operand::Pointer {
            class_name: "ChatSession".to_owned(),
            object_id: session_id.to_owned(),
        };
        let set_acl = |schema: &Arc<ClassSchema>, object_id: String, acl: Acl| Write::Update {
            schema: schema.clone(),
            object_id,
            guard: Filter::True,
            updates: vec![FieldUpdate {
                field: "ACL".to_owned(),
                path: Vec::new(),
                op: FieldOp::Set(acl.to_json()),
            }],
            updated_at: updated_at.to_owned(),
        };
        let mut writes = Vec::new();
        if let Some(messages) = self.ops.schemas.get("Message") {
            let query = FindQuery {
                keys: Some(vec!["sender".to_owned()]),
                ..FindQuery::filter(equals(&messages, "session", session.clone()))
            };
            for message in self.ops.store.find(&messages, &query).await? {
                let sender = pointer_id(message.fields.get("sender"), "_User");
                let acl = members.message_acl(sender);
                writes.push(set_acl(&messages, message.object_id, acl));
            }
        }
        if let Some(contexts) = self.ops.schemas.get("Context") {
            let filter = Filter::Or(vec![
                equals(&contexts, "session", session),
                equals(
                    &contexts,
                    "sessionId",
                    Operand::String(session_id.to_owned()),
                ),
            ]);
            let query = FindQuery {
                keys: Some(Vec::new()),
                ..FindQuery::filter(filter)
            };
            for context in self.ops.store.find(&contexts, &query).await? {
                writes.push(set_acl(&contexts, context.object_id, members.context_acl()));
            }
        }
        Ok(writes)
    }
}

/// The session a new Context names, by its `session` pointer or its `sessionId` (which must
/// agree when both are given).
fn context_session_id(object: &Object) -> OpResult<Option<String>> {
    let session_id = pointer_id(object.fields.get("session"), "ChatSession");
    let given_id = object.fields.get("sessionId").and_then(Value::as_str);
    if let (Some(session_id), Some(given_id)) = (session_id, given_id)
        && session_id != given_id
    {
        return Err(OpError::parse(
            Code::ValidationError,
            "sessionId must be the objectId of session",
        ));
    }
    Ok(session_id.or(given_id).map(str::to_owned))
}

/// What the master hears when a Message or Context names a session that does not exist
/// (a member hears `119`, which does not reveal whether it exists).
fn missing_session(field: &str) -> OpError {
    OpError::parse(
        Code::ValidationError,
        format!("{field} must name an existing ChatSession."),
    )
}

/// Refuses (`119`) an update that would change one of `fields` of `current`.
fn keep_fields(
    current: &Object,
    schema: &ClassSchema,
    updates: &[FieldUpdate],
    fields: &[&str],
) -> OpResult<()> {
    for update in updates {
        if !fields.contains(&update.field.as_str()) {
            continue;
        }
        let before = current.get(&update.field);
        let after = apply_at_path(before.as_ref(), &update.path, &update.op)?;
        if after.filter(|value| !value.is_null()) != before.filter(|value| !value.is_null()) {
            return Err(forbidden(format!(
                "{} of a {} cannot be changed.",
                update.field, schema.class_name
            )));
        }
    }
    Ok(())
}

/// The most tools one persona may list (OpenAI's own limit on one request is 128).
pub const MAX_PERSONA_TOOLS: usize = 128;

/// Whether `name` can be a tool's name on both wire formats.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// Checks a Persona's `tools` value: an array of tool names. The message of a refusal
/// (which the template's rules answer with `111`).
pub fn check_persona_tools(value: &Value) -> Result<(), String> {
    const SHAPE: &str = "tools must be an array of tool names (strings of letters, digits, _ and -, at most 64 characters each)";
    let Value::Array(items) = value else {
        return Err(SHAPE.to_owned());
    };
    if items.len() > MAX_PERSONA_TOOLS {
        return Err(format!(
            "a persona may list at most {MAX_PERSONA_TOOLS} tools"
        ));
    }
    match items
        .iter()
        .find(|item| !item.as_str().is_some_and(is_valid_tool_name))
    {
        Some(bad) => Err(format!("{SHAPE}; {bad} is not one")),
        None => Ok(()),
    }
}

/// A Persona's `tools`: an array of tool names.
fn check_tools(tools: &Value) -> OpResult<()> {
    check_persona_tools(tools).map_err(|message| OpError::parse(Code::IncorrectType, message))
}

/// The updates of a Persona's `tools`: a new array of tool names, or names added or removed.
fn check_tool_updates(updates: &[FieldUpdate]) -> OpResult<()> {
    for update in updates.iter().filter(|update| update.field == "tools") {
        match &update.op {
            FieldOp::Set(Value::Null) | FieldOp::Delete => {}
            FieldOp::Set(value) if update.path.is_empty() => check_tools(value)?,
            FieldOp::Add(items) | FieldOp::AddUnique(items) | FieldOp::Remove(items)
                if update.path.is_empty() =>
            {
                check_tools(&Value::Array(items.clone()))?;
            }
            _ => check_tools(&Value::Null)?,
        }
    }
    Ok(())
}

/// A Persona made by a user: `owner` is the creator (another owner is refused); without an
/// ACL of its own it is public read, owner write.
fn create_persona(auth: &Auth, object: &mut Object) -> OpResult<Map<String, Value>> {
    let mut filled = Map::new();
    if let Some(user_id) = &auth.user_id {
        let owner = object.fields.get("owner");
        if is_unset(owner) {
            let owner = pointer("_User", user_id);
            object.fields.insert("owner".into(), owner.clone());
            filled.insert("owner".into(), owner);
        } else if pointer_id(owner, "_User") != Some(user_id.as_str()) {
            return Err(forbidden("The owner of a new Persona is its creator."));
        }
    }
    if object.acl.is_none() {
        let mut acl = Acl::default();
        acl.entries.insert(
            "*".to_owned(),
            Permission {
                read: true,
                write: false,
            },
        );
        if let Some(owner) = pointer_id(object.fields.get("owner"), "_User") {
            acl.entries.insert(
                owner.to_owned(),
                Permission {
                    read: true,
                    write: true,
                },
            );
        }
        filled.insert("ACL".into(), acl.to_json());
        object.acl = Some(acl);
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persona_tools_are_an_array_of_names() {
        assert!(check_persona_tools(&json!([])).is_ok());
        assert!(check_persona_tools(&json!(["lookupOrder", "get_weather-2"])).is_ok());
        assert!(check_persona_tools(&json!("lookupOrder")).is_err());
        assert!(check_persona_tools(&json!([1])).is_err());
        assert!(check_persona_tools(&json!(["has space"])).is_err());
        assert!(check_persona_tools(&json!(["x".repeat(65)])).is_err());
        let many: Vec<String> = (0..=MAX_PERSONA_TOOLS).map(|i| format!("t{i}")).collect();
        assert!(check_persona_tools(&json!(many)).is_err());
    }
}
