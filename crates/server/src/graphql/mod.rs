//! Parse Server's GraphQL API (parse-protocol.md §12), generated from the live schema.
//!
//! The schema is built from the schema cache with async-graphql's dynamic schema and kept
//! behind a lock-free read of an `Arc`: a request whose schema version is stale builds the
//! next one (one builder at a time) while requests already running keep the schema they
//! started with. Schema changes made here, through REST, or by another instance (the relay
//! adopts them into the cache) all move the cache's version, so the next request sees them.
//!
//! Resolvers call the operation layer with the caller's [`values::Caller`] rights, exactly
//! as the REST handlers do; nothing here decides who may read or write what. Errors leave
//! resolvers as the operation layer's `OpError` and are mapped to Parse codes at the edge
//! (`http/graphql.rs`).
//!
//! - [`names`]: type and field names, relay ids, cursors.
//! - [`types`]: the class-independent types; [`classes`]: one class's types and fields;
//!   [`builtins`]: health, node, viewer, users, functions, class management, files.
//! - [`input`]: GraphQL inputs → Parse JSON; [`values`]: what resolvers pass around.
//! - [`read`]: selections → one batched find; [`limits`]: what a query may cost.
//! - [`live`]: subscriptions fed by the live-query bus, and persona reply streams.

pub mod builtins;
pub mod classes;
pub mod input;
pub mod limits;
pub mod live;
pub mod names;
pub mod read;
pub mod types;
pub mod values;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use async_graphql::dynamic::{Object, Schema, Subscription, Union};

use self::classes::{ClassNames, class_types};
pub use self::limits::Limits;
pub use self::values::Caller;
use crate::operation::Operations;

/// Root fields of the built-ins: a class whose queries or mutations would take one of these
/// names loses that field.
const RESERVED_FIELDS: [&str; 20] = [
    "health",
    "viewer",
    "class",
    "classes",
    "node",
    "signUp",
    "logIn",
    "logInWith",
    "logOut",
    "resetPassword",
    "confirmResetPassword",
    "sendVerificationEmail",
    "createFile",
    "callCloudCode",
    "createClass",
    "updateClass",
    "deleteClass",
    "messageStream",
    "challenge",
    "__typename",
];

/// A built schema and the versions it was built from: the schema cache's and the Cloud
/// Code's (whose functions `callCloudCode` names).
pub struct Built {
    pub version: (u64, u64),
    pub schema: Schema,
}

/// The GraphQL API of one server.
pub struct GraphQl {
    operations: Operations,
    /// Live-query settings (which classes subscriptions may follow).
    live: Arc<crate::live::Hub>,
    limits: Limits,
    /// The schema requests start with; replaced whole when the classes change.
    current: RwLock<Arc<Built>>,
    /// Serialises rebuilds, so a burst of requests after a change builds once.
    rebuilding: tokio::sync::Mutex<()>,
}

impl GraphQl {
    pub fn new(
        operations: Operations,
        live: Arc<crate::live::Hub>,
        limits: Limits,
    ) -> anyhow::Result<GraphQl> {
        let version = versions(&operations);
        let schema = build(&operations, &live, limits)?;
        Ok(GraphQl {
            operations,
            live,
            limits,
            current: RwLock::new(Arc::new(Built { version, schema })),
            rebuilding: tokio::sync::Mutex::new(()),
        })
    }

    fn current(&self) -> Option<Arc<Built>> {
        self.current.read().ok().map(|built| Arc::clone(&built))
    }

    /// The schema for a request starting now: rebuilt first if the classes changed.
    pub async fn schema(&self) -> anyhow::Result<Arc<Built>> {
        let version = versions(&self.operations);
        if let Some(built) = self.current().filter(|built| built.version == version) {
            return Ok(built);
        }
        let _guard = self.rebuilding.lock().await;
        // Read the version before the classes: a change during the build leaves the new
        // schema marked stale, so the next request builds again.
        let version = versions(&self.operations);
        if let Some(built) = self.current().filter(|built| built.version == version) {
            return Ok(built);
        }
        let schema = build(&self.operations, &self.live, self.limits)?;
        let built = Arc::new(Built { version, schema });
        if let Ok(mut current) = self.current.write() {
            *current = Arc::clone(&built);
        }
        Ok(built)
    }
}

fn versions(operations: &Operations) -> (u64, u64) {
    let cloud = operations
        .cloud
        .as_ref()
        .map_or(0, |cloud| cloud.code_version());
    (operations.schemas.version(), cloud)
}

/// Builds the schema of the classes the cache holds now.
pub fn build(
    operations: &Operations,
    live: &Arc<crate::live::Hub>,
    limits: Limits,
) -> anyhow::Result<Schema> {
    let mut taken: HashSet<String> = types::RESERVED
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut included = Vec::new();
    for schema in operations.schemas.all_visible() {
        let names = ClassNames::of(&schema.class_name);
        let class_types = names.types();
        let collides = names.type_name.is_empty()
            || !names
                .type_name
                .starts_with(|c: char| c.is_ascii_alphabetic())
            || class_types.iter().any(|name| taken.contains(name));
        if collides {
            tracing::warn!(class = %schema.class_name, "class left out of the GraphQL schema: its type names collide with existing ones");
            continue;
        }
        taken.extend(class_types);
        included.push((schema, names));
    }
    let type_names: Vec<(String, String)> = included
        .iter()
        .map(|(schema, names)| (schema.class_name.clone(), names.type_name.clone()))
        .collect();
    let known = |class_name: &str| {
        type_names
            .iter()
            .find(|(name, _)| name == class_name)
            .map(|(_, type_name)| type_name.clone())
    };
    let has_subscriptions = !included.is_empty();
    let mut builder = Schema::build(
        "Query",
        Some("Mutation"),
        has_subscriptions.then_some("Subscription"),
    );
    builder = types::register(builder);
    builder = types::register_schema_types(builder);
    let mut query = Object::new("Query");
    let mut mutation = Object::new("Mutation");
    let mut subscription = Subscription::new("Subscription");
    let mut array_result = Union::new("ArrayResult").possible_type("Element");
    let mut user_schema = None;
    for (schema, names) in &included {
        let class = class_types(schema, names, &known);
        for object in class.objects {
            builder = builder.register(object);
        }
        for input in class.inputs {
            builder = builder.register(input);
        }
        builder = builder.register(class.order);
        for (name, field) in class.queries {
            if !RESERVED_FIELDS.contains(&name.as_str()) {
                query = query.field(field);
            }
        }
        for (name, field) in class.mutations {
            if !RESERVED_FIELDS.contains(&name.as_str()) {
                mutation = mutation.field(field);
            }
        }
        let (event, field) = live::class_subscription(names);
        builder = builder.register(event);
        subscription = subscription.field(field);
        array_result = array_result.possible_type(&names.type_name);
        if schema.class_name == "_User" {
            user_schema = Some(Arc::clone(schema));
        }
    }
    builder = builder.register(array_result);
    let (next, query, mutation) =
        builtins::register(builder, query, mutation, user_schema.as_deref(), operations);
    builder = next;
    if has_subscriptions {
        let (next, subscription) = live::register(builder, subscription, &known);
        builder = next.register(subscription);
    }
    builder
        .register(query)
        .register(mutation)
        .data(operations.clone())
        .data(Arc::clone(live))
        .enable_uploading()
        .disable_suggestions()
        .extension(limits::Guard(limits))
        .finish()
        .map_err(|error| anyhow::anyhow!("building the GraphQL schema: {error}"))
}
