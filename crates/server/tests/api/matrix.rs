//! Access control from the attacker's side (issue 3): the chat template's classes × every
//! operation × every kind of caller, over real HTTP, against one table of expectations; then
//! token tampering, revoked tokens, forged senders, ACL edits by non-owners and attempts to
//! read other users' secrets.
//!
//! The cast, all signed up through `POST /users`: the owner `O` of a ChatSession, a
//! participant `P` of it, a stranger `S`, a member `R` of the role "Moderators" (which may
//! read one Persona), `V` a user nobody else knows, the anonymous public (`-`) and the master
//! key.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// The table.

/// What a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The ChatSession `X`: owner O, participants P (and O).
    Session,
    /// The Message `M` that P sent in X.
    Message,
    /// The Context `C` of X, made by O.
    Context,
    /// A Persona of O's with the default ACL (public read, owner write).
    PublicPersona,
    /// A Persona readable by O and the role "Moderators" only (`ACL` set by the master key).
    RolePersona,
    /// `V`'s `_User`: someone else's user for everyone in the cast (writes: a fresh user).
    OtherUser,
    /// Each caller's own `_User`.
    OwnUser,
}

/// What is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `GET /classes/C/:id`.
    Get,
    /// `GET /classes/C?where={"objectId":{"$in":[id]}}`.
    Find,
    /// The same with `count=1&limit=0`.
    Count,
    /// `POST /classes/C` with a valid body (`_User`: `POST /users`).
    Create,
    /// `PUT` of a harmless field on a fresh object.
    Update,
    /// `DELETE` of a fresh object.
    Delete,
    /// `GET /classes/<outer>?include=<field>` on the one outer object pointing at the target.
    Include(&'static str, &'static str),
    /// `GET /classes/<outer>?where={<field>:{"$inQuery":{"className":C,"where":{objectId}}}}`.
    Subquery(&'static str, &'static str),
}

/// What the caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// `200` (`201` for a create).
    Ok,
    /// A find answering `200` with this many results.
    Rows(usize),
    /// A count answering `200` with this count.
    Count(u64),
    /// An include answering one result whose pointer is expanded (`true`) or dropped (`false`).
    Incl(bool),
    /// A Parse error with this code.
    Deny(i64),
    /// Does not apply.
    Skip,
    /// (actual outcomes only) A status or shape the table has no word for.
    Other(u16),
}

use Expect::{Count as N, Deny as D, Incl as I, Ok as OK, Rows as R, Skip as NA};

/// The policy. Columns: anonymous, stranger, participant, owner, role member, master.
/// `D(101)` is "object not found" (also Parse's answer to `requiresAuthentication` for the
/// anonymous), `D(119)` a refusal by CLP or by the template's rules, `D(206)` a `_User`
/// write without its session.
#[rustfmt::skip]
pub(crate) const MATRIX: &[(Target, Op, [Expect; 6])] = &[
    //                                                    anonymous  stranger  participant owner     role      master
    (Target::Session,       Op::Get,                        [D(101),   D(101),   OK,        OK,       D(101),   OK]),
    (Target::Session,       Op::Find,                       [R(0),     R(0),     R(1),      R(1),     R(0),     R(1)]),
    (Target::Session,       Op::Count,                      [N(0),     N(0),     N(1),      N(1),     N(0),     N(1)]),
    (Target::Session,       Op::Create,                     [D(101),   OK,       OK,        OK,       OK,       OK]),
    (Target::Session,       Op::Update,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::Session,       Op::Delete,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::Session,       Op::Include("Message", "session"), [D(101), R(0),    I(true),   I(true),  R(0),     I(true)]),
    (Target::Session,       Op::Include("Probe", "session"),   [I(false), I(false), I(true), I(true),  I(false), I(true)]),
    (Target::Session,       Op::Subquery("Message", "session"), [D(101), R(0),    R(1),      R(1),     R(0),     R(1)]),
    (Target::Session,       Op::Subquery("Probe", "session"),  [R(0),   R(0),     R(1),      R(1),     R(0),     R(1)]),

    (Target::Message,       Op::Get,                        [D(101),   D(101),   OK,        OK,       D(101),   OK]),
    (Target::Message,       Op::Find,                       [D(101),   R(0),     R(1),      R(1),     R(0),     R(1)]),
    (Target::Message,       Op::Count,                      [D(101),   N(0),     N(1),      N(1),     N(0),     N(1)]),
    (Target::Message,       Op::Create,                     [D(101),   D(119),   OK,        OK,       D(119),   OK]),
    (Target::Message,       Op::Update,                     [D(101),   D(101),   OK,        D(101),   D(101),   OK]),
    (Target::Message,       Op::Delete,                     [D(101),   D(101),   OK,        D(101),   D(101),   OK]),
    (Target::Message,       Op::Include("Probe", "message"),   [I(false), I(false), I(true), I(true),  I(false), I(true)]),
    (Target::Message,       Op::Subquery("Probe", "message"),  [D(101), R(0),     R(1),      R(1),     R(0),     R(1)]),

    (Target::Context,       Op::Get,                        [D(101),   D(101),   OK,        OK,       D(101),   OK]),
    (Target::Context,       Op::Find,                       [D(101),   R(0),     R(1),      R(1),     R(0),     R(1)]),
    (Target::Context,       Op::Count,                      [D(101),   N(0),     N(1),      N(1),     N(0),     N(1)]),
    (Target::Context,       Op::Create,                     [D(101),   D(119),   OK,        OK,       D(119),   OK]),
    (Target::Context,       Op::Update,                     [D(101),   D(101),   OK,        OK,       D(101),   OK]),
    (Target::Context,       Op::Delete,                     [D(101),   D(101),   OK,        OK,       D(101),   OK]),
    (Target::Context,       Op::Include("Probe", "context"),   [I(false), I(false), I(true), I(true),  I(false), I(true)]),
    (Target::Context,       Op::Subquery("Probe", "context"),  [D(101), R(0),     R(1),      R(1),     R(0),     R(1)]),

    (Target::PublicPersona, Op::Get,                        [OK,       OK,       OK,        OK,       OK,       OK]),
    (Target::PublicPersona, Op::Find,                       [R(1),     R(1),     R(1),      R(1),     R(1),     R(1)]),
    (Target::PublicPersona, Op::Count,                      [N(1),     N(1),     N(1),      N(1),     N(1),     N(1)]),
    (Target::PublicPersona, Op::Create,                     [D(101),   OK,       OK,        OK,       OK,       OK]),
    (Target::PublicPersona, Op::Update,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::PublicPersona, Op::Delete,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::PublicPersona, Op::Include("Probe", "persona"),   [I(true), I(true),  I(true),   I(true),  I(true),  I(true)]),
    (Target::PublicPersona, Op::Subquery("Probe", "persona"),  [R(1),   R(1),     R(1),      R(1),     R(1),     R(1)]),

    (Target::RolePersona,   Op::Get,                        [D(101),   D(101),   D(101),    OK,       OK,       OK]),
    (Target::RolePersona,   Op::Find,                       [R(0),     R(0),     R(0),      R(1),     R(1),     R(1)]),
    (Target::RolePersona,   Op::Count,                      [N(0),     N(0),     N(0),      N(1),     N(1),     N(1)]),
    (Target::RolePersona,   Op::Update,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::RolePersona,   Op::Delete,                     [D(101),   D(101),   D(101),    OK,       D(101),   OK]),
    (Target::RolePersona,   Op::Include("Probe", "rolePersona"), [I(false), I(false), I(false), I(true), I(true), I(true)]),
    (Target::RolePersona,   Op::Subquery("Probe", "rolePersona"), [R(0), R(0),     R(0),      R(1),     R(1),     R(1)]),

    // The user directory: a logged-in caller finds other users (their public profile only,
    // see users::the_directory_shows_public_profiles_only); subqueries stay on the ACL.
    (Target::OtherUser,     Op::Get,                        [D(101),   OK,       OK,        OK,       OK,       OK]),
    (Target::OtherUser,     Op::Find,                       [R(0),     R(1),     R(1),      R(1),     R(1),     R(1)]),
    (Target::OtherUser,     Op::Count,                      [N(0),     N(1),     N(1),      N(1),     N(1),     N(1)]),
    (Target::OtherUser,     Op::Create,                     [OK,       OK,       OK,        OK,       OK,       OK]),
    (Target::OtherUser,     Op::Update,                     [D(206),   D(206),   D(206),    D(206),   D(206),   OK]),
    (Target::OtherUser,     Op::Delete,                     [D(206),   D(206),   D(206),    D(206),   D(206),   OK]),
    (Target::OtherUser,     Op::Include("Probe", "user"),      [I(false), I(true), I(true),   I(true),  I(true),  I(true)]),
    (Target::OtherUser,     Op::Subquery("Probe", "user"),     [R(0),   R(0),     R(0),      R(0),     R(0),     R(1)]),
    // P sent M: every member sees who sent it.
    (Target::OtherUser,     Op::Include("Message", "sender"),  [D(101), R(0),     I(true),   I(true),  R(0),     I(true)]),

    (Target::OwnUser,       Op::Get,                        [NA,       OK,       OK,        OK,       OK,       NA]),
    (Target::OwnUser,       Op::Find,                       [NA,       R(1),     R(1),      R(1),     R(1),     NA]),
    (Target::OwnUser,       Op::Count,                      [NA,       N(1),     N(1),      N(1),     N(1),     NA]),
    (Target::OwnUser,       Op::Update,                     [NA,       OK,       OK,        OK,       OK,       NA]),
];

// ---------------------------------------------------------------------------------------
// The cast and its objects.

pub(crate) struct World {
    pub(crate) server: TestServer,
    pub(crate) owner: User,
    pub(crate) participant: User,
    pub(crate) stranger: User,
    pub(crate) role_member: User,
    /// A user nobody else in the cast knows.
    pub(crate) other: User,
    pub(crate) session: String,
    pub(crate) message: String,
    pub(crate) context: String,
    pub(crate) public_persona: String,
    pub(crate) role_persona: String,
    /// A public `Probe` object pointing at every target.
    pub(crate) probe: String,
}

fn headers(auth: Option<&str>, master: bool) -> Vec<(&'static str, &str)> {
    let mut headers = vec![("x-parse-application-id", APP_ID)];
    if master {
        headers.push(("x-parse-master-key", MASTER_KEY));
    }
    if let Some(token) = auth {
        headers.push(("x-parse-session-token", token));
    }
    headers
}

/// Signs up through `POST /users` with a password and an address of its own.
async fn sign_up(server: &TestServer, username: &str) -> User {
    server
        .sign_up_with(json!({"username": username, "password": format!("pw-{username}"), "email": format!("{username}@example.test")}))
        .await
}

impl World {
    pub(crate) async fn new() -> World {
        let server = TestServer::new().await;
        let owner = sign_up(&server, "olga").await;
        let participant = sign_up(&server, "piet").await;
        let stranger = sign_up(&server, "sam").await;
        let role_member = sign_up(&server, "rita").await;
        let other = sign_up(&server, "vera").await;
        let role = server
            .master(
                Method::POST,
                "/roles",
                Some(json!({
                    "name": "Moderators",
                    "ACL": {"*": {"read": true}},
                    "users": {"__op": "AddRelation", "objects": [pointer("_User", &role_member.id)]},
                })),
            )
            .await;
        assert_eq!(role.status, StatusCode::CREATED, "role: {:?}", role.body);
        let mut world = World {
            server,
            owner,
            participant,
            stranger,
            role_member,
            other,
            session: String::new(),
            message: String::new(),
            context: String::new(),
            public_persona: String::new(),
            role_persona: String::new(),
            probe: String::new(),
        };
        world.session = world.fresh(Target::Session).await;
        world.message = world.fresh(Target::Message).await;
        world.context = world.fresh(Target::Context).await;
        world.public_persona = world.fresh(Target::PublicPersona).await;
        world.role_persona = world.fresh(Target::RolePersona).await;
        world.probe = world
            .server
            .create(
                "Probe",
                json!({
                    "session": pointer("ChatSession", &world.session),
                    "message": pointer("Message", &world.message),
                    "context": pointer("Context", &world.context),
                    "persona": pointer("Persona", &world.public_persona),
                    "rolePersona": pointer("Persona", &world.role_persona),
                    "user": pointer("_User", &world.other.id),
                }),
            )
            .await;
        world
    }

    pub(crate) fn member(&self, caller: Caller) -> Option<&User> {
        match caller {
            Caller::Anonymous | Caller::Master => None,
            Caller::Stranger => Some(&self.stranger),
            Caller::Participant => Some(&self.participant),
            Caller::Owner => Some(&self.owner),
            Caller::RoleMember => Some(&self.role_member),
        }
    }

    pub(crate) async fn call(
        &self,
        caller: Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let token = self.member(caller).map(|member| member.token.as_str());
        self.server
            .send(
                method,
                path,
                body,
                &headers(token, caller == Caller::Master),
            )
            .await
    }

    /// As a member of the cast, by its token.
    async fn as_member(
        &self,
        member: &User,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.server
            .send(method, path, body, &headers(Some(&member.token), false))
            .await
    }

    pub(crate) fn class_of(target: Target) -> &'static str {
        match target {
            Target::Session => "ChatSession",
            Target::Message => "Message",
            Target::Context => "Context",
            Target::PublicPersona | Target::RolePersona => "Persona",
            Target::OtherUser | Target::OwnUser => "_User",
        }
    }

    pub(crate) fn path(class_name: &str) -> String {
        match class_name {
            "_User" => "/users".to_owned(),
            _ => format!("/classes/{class_name}"),
        }
    }

    /// The body that creates a target (as its natural creator).
    pub(crate) fn create_body(&self, target: Target) -> Value {
        let session = pointer("ChatSession", &self.session);
        match target {
            Target::Session => {
                json!({"title": "Trip", "participants": [pointer("_User", &self.participant.id)]})
            }
            Target::Message => json!({"session": session, "content": "hello"}),
            Target::Context => {
                json!({"session": session, "sessionId": self.session, "data": {"topic": "trip"}})
            }
            Target::PublicPersona => json!({"name": "Guide"}),
            Target::RolePersona => json!({
                "name": "Moderator's helper",
                "owner": pointer("_User", &self.owner.id),
                "ACL": {(self.owner.id.clone()): {"read": true, "write": true}, "role:Moderators": {"read": true}},
            }),
            Target::OtherUser | Target::OwnUser => {
                json!({"username": format!("u{}", rand_suffix()), "password": "pw"})
            }
        }
    }

    /// A new object of the target's kind, made by its natural creator: sessions, contexts
    /// and public personas by O, messages by P, the role persona by the master key.
    pub(crate) async fn fresh(&self, target: Target) -> String {
        let class_name = Self::class_of(target);
        let body = Some(self.create_body(target));
        let path = Self::path(class_name);
        if target == Target::Context {
            // The server gives each session its Context: a fresh Context is that of a fresh
            // session.
            let body = Some(self.create_body(Target::Session));
            let path = Self::path("ChatSession");
            let reply = self.as_member(&self.owner, Method::POST, &path, body).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            return reply.body["context"]["objectId"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        let reply = match target {
            Target::Session | Target::Context | Target::PublicPersona => {
                self.as_member(&self.owner, Method::POST, &path, body).await
            }
            Target::Message => {
                self.as_member(&self.participant, Method::POST, &path, body)
                    .await
            }
            Target::RolePersona => self.server.master(Method::POST, &path, body).await,
            Target::OtherUser | Target::OwnUser => {
                self.server.public(Method::POST, &path, body).await
            }
        };
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "fresh {target:?}: {:?}",
            reply.body
        );
        reply.body["objectId"].as_str().unwrap().to_owned()
    }

    /// The object a read row is about, for this caller.
    pub(crate) fn target_id(&self, target: Target, caller: Caller) -> String {
        match target {
            Target::Session => self.session.clone(),
            Target::Message => self.message.clone(),
            Target::Context => self.context.clone(),
            Target::PublicPersona => self.public_persona.clone(),
            Target::RolePersona => self.role_persona.clone(),
            Target::OtherUser => self.other.id.clone(),
            Target::OwnUser => self
                .member(caller)
                .map(|member| member.id.clone())
                .unwrap_or_default(),
        }
    }

    /// A harmless change for an update row.
    pub(crate) fn update_body(target: Target) -> Value {
        match target {
            Target::Session => json!({"title": "renamed"}),
            Target::Message => json!({"content": "edited"}),
            Target::Context => json!({"data": {"topic": "edited"}}),
            Target::PublicPersona | Target::RolePersona => json!({"description": "edited"}),
            Target::OtherUser | Target::OwnUser => json!({"displayName": "edited"}),
        }
    }

    /// Runs one cell of the table and says what happened, in the table's words.
    pub(crate) async fn run(&self, target: Target, op: Op, caller: Caller) -> (Expect, String) {
        let class_name = Self::class_of(target);
        let base = Self::path(class_name);
        let id = self.target_id(target, caller);
        let by_id = json!({"objectId": {"$in": [id]}});
        let (reply, shape) = match op {
            Op::Get => (
                self.call(caller, Method::GET, &format!("{base}/{id}"), None)
                    .await,
                "ok",
            ),
            Op::Find => {
                let path = format!("{base}{}", query_string(&[("where", by_id)]));
                (self.call(caller, Method::GET, &path, None).await, "rows")
            }
            Op::Count => {
                let params = [("where", by_id), ("count", json!(1)), ("limit", json!(0))];
                let path = format!("{base}{}", query_string(&params));
                (self.call(caller, Method::GET, &path, None).await, "count")
            }
            Op::Create => {
                let mut body = self.create_body(target);
                if target == Target::Context {
                    // A session has one Context, made by the server: the create is tried on
                    // a fresh session whose Context the master removed first.
                    let context = self.fresh(Target::Context).await;
                    let stored = self.server.get("Context", &context).await;
                    let path = format!("{}/{context}", Self::path("Context"));
                    self.server.master(Method::DELETE, &path, None).await;
                    body = json!({"session": stored["session"], "sessionId": stored["sessionId"], "data": {"topic": "trip"}});
                }
                let body = Some(body);
                (
                    self.call(caller, Method::POST, &base, body).await,
                    "created",
                )
            }
            Op::Update | Op::Delete => {
                let id = match target {
                    Target::OwnUser => id,
                    _ => self.fresh(target).await,
                };
                let path = format!("{base}/{id}");
                let reply = if op == Op::Update {
                    let body = Some(Self::update_body(target));
                    self.call(caller, Method::PUT, &path, body).await
                } else {
                    self.call(caller, Method::DELETE, &path, None).await
                };
                if !reply.status.is_success() {
                    // A refused write leaves the object as it was.
                    let after = self
                        .server
                        .master(
                            Method::GET,
                            &format!("{}/{id}", Self::path(class_name)),
                            None,
                        )
                        .await;
                    let unchanged = after.status == StatusCode::OK
                        && Self::update_body(target)
                            .as_object()
                            .unwrap()
                            .iter()
                            .all(|(key, value)| after.body.get(key) != Some(value));
                    if !unchanged {
                        return (
                            Expect::Other(0),
                            format!("refused, yet changed: {:?}", after.body),
                        );
                    }
                }
                (reply, "ok")
            }
            Op::Include(outer, field) => {
                let outer_id = if outer == "Probe" {
                    &self.probe
                } else {
                    &self.message
                };
                let params = [
                    ("where", json!({"objectId": {"$in": [outer_id]}})),
                    ("include", json!(field)),
                ];
                let path = format!("/classes/{outer}{}", query_string(&params));
                let reply = self.call(caller, Method::GET, &path, None).await;
                if reply.status == StatusCode::OK
                    && let Some([result]) = reply.body["results"].as_array().map(Vec::as_slice)
                {
                    let expanded = result.get(field).map(|value| value["__type"].clone());
                    let outcome = match expanded {
                        Some(kind) if kind == "Object" => Expect::Incl(true),
                        None => Expect::Incl(false),
                        Some(_) => Expect::Other(200),
                    };
                    return (outcome, reply.text);
                }
                (reply, "rows")
            }
            Op::Subquery(outer, field) => {
                let subquery =
                    json!({"$inQuery": {"className": class_name, "where": {"objectId": id}}});
                let params = [("where", json!({ field: subquery }))];
                let path = format!("/classes/{outer}{}", query_string(&params));
                (self.call(caller, Method::GET, &path, None).await, "rows")
            }
        };
        let outcome = if reply.status.is_success() {
            match shape {
                "rows" => reply.body["results"]
                    .as_array()
                    .map_or(Expect::Other(reply.status.as_u16()), |rows| {
                        Expect::Rows(rows.len())
                    }),
                "count" => reply.body["count"]
                    .as_u64()
                    .map_or(Expect::Other(reply.status.as_u16()), Expect::Count),
                "created" if reply.status == StatusCode::CREATED => Expect::Ok,
                "ok" if reply.status == StatusCode::OK => Expect::Ok,
                _ => Expect::Other(reply.status.as_u16()),
            }
        } else {
            match reply.body["code"].as_i64() {
                Some(code) => Expect::Deny(code),
                None => Expect::Other(reply.status.as_u16()),
            }
        };
        (outcome, reply.text)
    }
}

pub(crate) fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos}x{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Every cell of [`MATRIX`], run over HTTP; all mismatches are reported together.
#[tokio::test]
async fn the_access_control_matrix_holds() {
    let world = World::new().await;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for (target, op, expectations) in MATRIX {
        for (caller, expected) in CALLERS.iter().zip(expectations) {
            if *expected == Expect::Skip {
                continue;
            }
            cells += 1;
            let (actual, body) = world.run(*target, *op, *caller).await;
            if actual != *expected {
                let body: String = body.chars().take(160).collect();
                mismatches.push(format!(
                    "{target:?} {op:?} as {caller:?}: expected {expected:?}, got {actual:?} ({body})"
                ));
            }
        }
    }
    assert!(cells > 250, "only {cells} cells ran");
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ from the policy:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Attacks.

fn assert_code(reply: &Reply, code: i64, what: &str) {
    assert_eq!(
        reply.body["code"], code,
        "{what}: {} {:?}",
        reply.status, reply.body
    );
}

/// A token with one hex digit changed is no token: `209` on every route, never a fallback
/// to anonymous access.
#[tokio::test]
async fn a_tampered_token_is_209() {
    let world = World::new().await;
    let token = &world.owner.token;
    let last = token.chars().last().unwrap();
    let swapped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{swapped}", &token[..token.len() - 1]);
    let tampered = User {
        id: world.owner.id.clone(),
        token: tampered,
    };
    for path in [
        format!("/classes/ChatSession/{}", world.session),
        "/classes/Persona".to_owned(),
        "/users/me".to_owned(),
    ] {
        let reply = world.as_member(&tampered, Method::GET, &path, None).await;
        assert_code(&reply, 209, &path);
    }
    let reply = world
        .as_member(
            &tampered,
            Method::PUT,
            &format!("/classes/ChatSession/{}", world.session),
            Some(json!({"title": "hijacked"})),
        )
        .await;
    assert_code(&reply, 209, "PUT with a tampered token");
    assert_eq!(
        world.server.get("ChatSession", &world.session).await["title"],
        "Trip"
    );
}

/// After log-out the token answers `209`, even for reads the public may make.
#[tokio::test]
async fn a_revoked_token_is_209() {
    let world = World::new().await;
    let reply = world
        .as_member(&world.stranger, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    for path in [
        "/users/me".to_owned(),
        "/classes/Persona".to_owned(),
        format!("/classes/Persona/{}", world.public_persona),
    ] {
        let reply = world
            .as_member(&world.stranger, Method::GET, &path, None)
            .await;
        assert_code(&reply, 209, &path);
    }
    let reply = world
        .as_member(
            &world.stranger,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    assert_code(&reply, 209, "create with a revoked token");
}

/// A Message whose `sender` is someone else is refused (`119`) and nothing is stored; an
/// absent sender becomes the caller.
#[tokio::test]
async fn a_forged_sender_is_refused() {
    let world = World::new().await;
    let before = world.server.count("Message").await;
    let session = pointer("ChatSession", &world.session);
    let forged = world
        .as_member(
            &world.participant,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "I am Olga", "sender": pointer("_User", &world.owner.id)})),
        )
        .await;
    assert_code(&forged, 119, "forged sender");
    assert_eq!(world.server.count("Message").await, before);
    let honest = world
        .as_member(
            &world.participant,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "hi", "sender": pointer("_User", &world.participant.id)})),
        )
        .await;
    assert_eq!(honest.status, StatusCode::CREATED, "{:?}", honest.body);
    // Nor may the sender change afterwards.
    let id = honest.body["objectId"].as_str().unwrap();
    let moved = world
        .as_member(
            &world.participant,
            Method::PUT,
            &format!("/classes/Message/{id}"),
            Some(json!({"sender": pointer("_User", &world.owner.id)})),
        )
        .await;
    assert_code(&moved, 119, "changing the sender");
    let stored = world.server.get("Message", id).await;
    assert_eq!(stored["sender"], pointer("_User", &world.participant.id));
}

/// Only the owner writes a session, and not even the owner writes its ACL: a stranger's or a
/// participant's `PUT` with an `ACL` is `101` and changes nothing; the owner's is replaced by
/// the ACL the server computes.
#[tokio::test]
async fn non_owners_cannot_edit_a_sessions_acl() {
    let world = World::new().await;
    let path = format!("/classes/ChatSession/{}", world.session);
    let before = world.server.get("ChatSession", &world.session).await;
    for member in [&world.stranger, &world.participant, &world.role_member] {
        let grab = json!({"ACL": {"*": {"read": true, "write": true}, (member.id.clone()): {"read": true, "write": true}}});
        let reply = world
            .as_member(member, Method::PUT, &path, Some(grab))
            .await;
        assert_code(&reply, 101, "ACL edit by a non-owner");
        let after = world.server.get("ChatSession", &world.session).await;
        assert_eq!(after["ACL"], before["ACL"]);
        assert_eq!(after["updatedAt"], before["updatedAt"]);
    }
    let open = json!({"ACL": {"*": {"read": true, "write": true}}});
    let reply = world
        .as_member(&world.owner, Method::PUT, &path, Some(open))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let after = world.server.get("ChatSession", &world.session).await;
    assert_eq!(
        after["ACL"], before["ACL"],
        "the server keeps the session's ACL"
    );
    let anonymous = world.server.public(Method::GET, &path, None).await;
    assert_code(
        &anonymous,
        101,
        "anonymous read after the owner's ACL attempt",
    );
}

/// A participant cannot read `password`, `_hashed_password`, `sessionToken`, `authData` or
/// `email` of another user, through `keys`, `include` or `where`, even when that user's
/// object is public; and a `where` on a hidden field answers the same whatever the value.
#[tokio::test]
async fn secrets_of_other_users_stay_hidden() {
    let world = World::new().await;
    let victim = &world.owner;
    // The victim makes its user public, so that only field rules stand between P and it.
    let reply = world
        .as_member(
            victim,
            Method::PUT,
            &format!("/users/{}", victim.id),
            Some(json!({"ACL": {"*": {"read": true}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let secrets = [
        "password",
        "_hashed_password",
        "sessionToken",
        "authData",
        "email",
    ];
    let check = |what: &str, object: &Value| {
        assert_eq!(object["objectId"], victim.id.as_str(), "{what}: {object}");
        for secret in secrets {
            assert!(
                object.get(secret).is_none(),
                "{what} shows {secret}: {object}"
            );
        }
        let text = object.to_string();
        assert!(!text.contains(&victim.token), "{what} shows the token");
        assert!(!text.contains("argon2"), "{what} shows a hash");
    };
    let keys = secrets.join(",");
    let get = world
        .as_member(
            &world.participant,
            Method::GET,
            &format!(
                "/users/{}{}",
                victim.id,
                query_string(&[("keys", json!(keys))])
            ),
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::OK, "{:?}", get.body);
    check("get with keys", &get.body);
    let find = world
        .as_member(
            &world.participant,
            Method::GET,
            &format!(
                "/classes/_User{}",
                query_string(&[
                    ("where", json!({"objectId": victim.id})),
                    ("keys", json!(keys))
                ])
            ),
            None,
        )
        .await;
    check("find with keys", &find.body["results"][0]);
    // Through include: a Message of the owner's, with its sender included.
    let mine = world
        .as_member(
            victim,
            Method::POST,
            "/classes/Message",
            Some(
                json!({"session": pointer("ChatSession", &world.session), "content": "from olga"}),
            ),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{:?}", mine.body);
    let included = world
        .as_member(
            &world.participant,
            Method::GET,
            &format!(
                "/classes/Message/{}{}",
                mine.body["objectId"].as_str().unwrap(),
                query_string(&[("include", json!("sender")), ("keys", json!("sender.email,sender.password,sender.sessionToken,sender._hashed_password"))])
            ),
            None,
        )
        .await;
    assert_eq!(included.status, StatusCode::OK, "{:?}", included.body);
    assert_eq!(
        included.body["sender"]["__type"], "Object",
        "{:?}",
        included.body
    );
    check("include", &included.body["sender"]);
    // Through where: refused (119) alike for the true and a false value; no oracle.
    let email = "olga@example.test";
    let world = &world;
    let ask = |constraint: Value| {
        let path = format!("/classes/_User{}", query_string(&[("where", constraint)]));
        async move {
            world
                .as_member(&world.participant, Method::GET, &path, None)
                .await
        }
    };
    for (right, wrong) in [
        (
            json!({"email": email}),
            json!({"email": "nobody@example.test"}),
        ),
        (
            json!({"email": {"$regex": "^olga"}}),
            json!({"email": {"$regex": "^zzz"}}),
        ),
        (
            json!({"$or": [{"email": email}]}),
            json!({"$or": [{"email": "nobody@example.test"}]}),
        ),
        (
            json!({"objectId": victim.id, "email": {"$exists": true}}),
            json!({"objectId": victim.id, "email": {"$exists": false}}),
        ),
    ] {
        let yes = ask(right.clone()).await;
        let no = ask(wrong).await;
        assert_code(&yes, 119, &format!("where {right}"));
        assert_eq!(
            (yes.status, &yes.body),
            (no.status, &no.body),
            "oracle on {right}"
        );
    }
    // Secrets that are never stored in the clear, or only server-side: a query on them
    // answers the same for the right and a wrong value, and never finds the victim.
    for (field, right, wrong) in [
        ("password", json!("pw-olga"), json!("wrong")),
        (
            "_hashed_password",
            json!({"$regex": "^\\$argon2"}),
            json!({"$regex": "^zzz"}),
        ),
        (
            "_hashed_password",
            json!({"$exists": true}),
            json!({"$exists": false}),
        ),
        (
            "sessionToken",
            json!(victim.token),
            json!("r:00000000000000000000000000000000"),
        ),
    ] {
        let yes = ask(json!({"objectId": victim.id, field: right})).await;
        let no = ask(json!({"objectId": victim.id, field: wrong})).await;
        let answer = |reply: &Reply| {
            (
                reply.status,
                reply.body["code"].clone(),
                reply.body["results"].as_array().map(Vec::len),
            )
        };
        assert_eq!(
            answer(&yes),
            answer(&no),
            "oracle on {field}: {:?} vs {:?}",
            yes.body,
            no.body
        );
        assert_ne!(
            yes.body["results"].as_array().map(Vec::len),
            Some(1),
            "{field} found the victim"
        );
    }
}

/// The session's owner reads its participants' messages but cannot edit or delete them.
#[tokio::test]
async fn the_owner_cannot_edit_a_participants_message() {
    let world = World::new().await;
    let path = format!("/classes/Message/{}", world.message);
    let read = world
        .as_member(&world.owner, Method::GET, &path, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    let edit = world
        .as_member(
            &world.owner,
            Method::PUT,
            &path,
            Some(json!({"content": "censored"})),
        )
        .await;
    assert_code(&edit, 101, "owner edits P's message");
    let delete = world
        .as_member(&world.owner, Method::DELETE, &path, None)
        .await;
    assert_code(&delete, 101, "owner deletes P's message");
    assert_eq!(
        world.server.get("Message", &world.message).await["content"],
        "hello"
    );
}

/// A stranger cannot post in a session, nor see or count its messages.
#[tokio::test]
async fn a_non_participant_cannot_post_read_or_count() {
    let world = World::new().await;
    let session = pointer("ChatSession", &world.session);
    let post = world
        .as_member(
            &world.stranger,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "let me in"})),
        )
        .await;
    assert_code(&post, 119, "stranger posts");
    // A session that does not exist answers the same.
    let ghost = world
        .as_member(
            &world.stranger,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer("ChatSession", "doesNotExist"), "content": "x"})),
        )
        .await;
    assert_eq!((post.status, &post.body), (ghost.status, &ghost.body));
    let where_session = json!({"session": session});
    let find = world
        .as_member(
            &world.stranger,
            Method::GET,
            &format!(
                "/classes/Message{}",
                query_string(&[("where", where_session.clone())])
            ),
            None,
        )
        .await;
    assert_eq!(find.status, StatusCode::OK, "{:?}", find.body);
    assert_eq!(find.body["results"], json!([]));
    let count = world
        .as_member(
            &world.stranger,
            Method::GET,
            &format!(
                "/classes/Message{}",
                query_string(&[
                    ("where", where_session),
                    ("count", json!(1)),
                    ("limit", json!(0))
                ])
            ),
            None,
        )
        .await;
    assert_eq!(count.body["count"], 0, "{:?}", count.body);
    assert_eq!(world.server.count("Message").await, 1);
}
