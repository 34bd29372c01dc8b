//! The operation layer: the one place where a request's rules are applied.
//!
//! REST handlers (and later GraphQL, LiveQuery and cloud code) call these operations with an
//! [`Auth`]; the operations check class-level permissions, fold ACLs into the store's
//! filters, validate writes against the schema, and call the store. No handler checks
//! access by itself.
//!
//! - [`access`]: CLP and ACL evaluation → allow, deny, or extra filter conditions.
//! - [`schema`]: the schema cache, schema-on-write and the schemas API.
//! - [`read`]: find, get, count, `include`, `keys`, `explain`.
//! - [`aggregate`]: aggregation pipelines and `distinct` (master key).
//! - [`write`]: create, update, delete, batches of writes in one transaction.
//! - [`users`]: sign-up and one's own user; [`login`]: log-in, lockout, rate limit;
//!   [`sessions`]: session tokens; [`password`] hashes; [`auth_data`] checks third-party and
//!   anonymous log-ins; [`account_email`]: password-reset and verification mail.
//! - [`files`], [`global_config`], [`installations`], [`idempotency`]: the rest of §13.
//! - [`roles`]: the roles a user holds (hierarchy, cache) and the rules of role writes.
//! - [`push`]: `POST /push`, recorded in `_PushStatus` (no delivery adapter).
//! - [`class_cache`]: answers read from one class (roles, sessions), reused until it changes.
//! - [`template_rules`]: the chat template's own rules (owners, participants, senders, ACLs).
//! - [`user_directory`]: logged-in users find each other and see public profiles only.
//! - [`rate_limit`]: per-minute limits (log-ins per address, directory searches per user).
//! - [`operator`]: the master key's views of the running server (status, replies running).
//! - [`hooks`]: the seam where an app's Cloud Code (functions, triggers) plugs in.

pub mod access;
pub mod account_email;
pub mod aggregate;
pub mod auth;
pub mod auth_data;
pub mod class_cache;
pub mod error;
pub mod events;
pub mod files;
pub mod global_config;
pub mod hooks;
pub mod idempotency;
pub mod installations;
pub mod jobs;
pub mod login;
pub mod operator;
pub mod password;
pub mod push;
pub mod rate_limit;
pub mod read;
pub mod roles;
pub mod schema;
pub mod sessions;
pub mod template_rules;
pub mod user_directory;
pub mod users;
pub mod write;

use std::sync::Arc;

use parlor_store::Store;

pub use auth::Auth;
pub use error::{OpError, OpResult};
pub use read::{FindPage, FindRequest, FindResponse, Found, GetRequest, results_body};
pub use schema::SchemaCache;
pub use write::{PlannedWrite, WriteResponse};

/// Settings that change how operations behave.
#[derive(Debug, Clone)]
pub struct OperationConfig {
    /// Clamp for `limit`; `None`: no maximum (Parse Server's default).
    pub max_limit: Option<u64>,
    /// Whether non-master clients may create classes by writing to them.
    pub allow_client_class_creation: bool,
    /// Whether clients may choose an `objectId` on create.
    pub allow_custom_object_id: bool,
    /// How many fields clients may add to a class by writing to it.
    pub schema_growth: schema::SchemaGrowth,
    /// The public URL prefix (`http://host:port/parse`), for `Location` headers and file URLs.
    pub server_url: String,
    /// Sessions, lockout and log-in limits.
    pub accounts: users::AccountConfig,
    /// The application id, which account links (`/apps/<id>/…`) carry.
    pub app_id: String,
    /// Whether the chat template's rules apply (`--template chat`); off, classes named
    /// `Message`, `ChatSession`, `Context` or `Persona` behave as any Parse class.
    pub chat_template: bool,
    /// Whether clients without a user may upload files (`--file-upload-public`).
    pub file_upload_public: bool,
}

/// The operations, with the store and schema cache they share.
#[derive(Clone)]
pub struct Operations {
    pub store: Arc<dyn Store>,
    pub schemas: SchemaCache,
    pub config: Arc<OperationConfig>,
    /// Log-in attempts per client address, shared by every request.
    pub login_limiter: Arc<rate_limit::PerMinute<std::net::IpAddr>>,
    /// Directory searches per user, shared by every request ([`user_directory`]).
    pub directory_limiter: Arc<rate_limit::PerMinute<String>>,
    /// The `authData` providers sign-up and log-in accept.
    pub auth_providers: Arc<auth_data::AuthProviders>,
    /// The roles each user holds, shared by every request ([`roles`]).
    pub roles: Arc<roles::RoleCache>,
    /// The session each token names, shared by every request ([`sessions`]).
    pub sessions: Arc<sessions::SessionCache>,
    /// Personas by id, as the server reads them to answer (`ai::generation::load_persona`):
    /// every user message reads its session's personas, which rarely change.
    pub personas: Arc<class_cache::ClassCache<Option<parlor_core::object::Object>>>,
    /// ChatSessions by id, as the chat template's rules read them to check that the sender of
    /// a message belongs to its session: every message asks, and sessions change seldom.
    pub chat_sessions: Arc<class_cache::ClassCache<Option<parlor_core::object::Object>>>,
    /// Where password-reset and verification mails go.
    pub mailer: Arc<dyn crate::mail::Mailer>,
    /// Committed changes, for live queries.
    pub events: events::EventBus,
    /// Persona replies: told about committed Messages and ChatSessions after each commit
    /// ([`write`]), so that a user's message starts a reply without waiting for it. `None`
    /// until [`Operations::with_generation`] (tools that only read or migrate need none).
    pub generation: Option<Arc<dyn hooks::CommitHook>>,
    /// What the server counts for `/metrics`; `None` when metrics are off (nothing counted).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The app's Cloud Code (`--cloud`), if any.
    pub cloud: Option<Arc<dyn hooks::CloudHooks>>,
    /// The server's own rules on writes (the chat template's), if any.
    pub rules: Option<Arc<dyn hooks::WriteRules>>,
}

/// How long a persona read for an answer is reused at most (another instance's change is
/// also heard through the relay, which clears the cache).
const PERSONA_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The most personas kept.
const PERSONA_CACHE_ENTRIES: usize = 10_000;

/// How long a ChatSession read for a membership check is reused at most: it decides who may
/// post, so another instance's change that the relay failed to carry is seen as soon as a
/// session token's would be.
const CHAT_SESSION_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The most ChatSessions kept.
const CHAT_SESSION_CACHE_ENTRIES: usize = 10_000;

impl Operations {
    pub fn new(store: Arc<dyn Store>, schemas: SchemaCache, config: OperationConfig) -> Operations {
        let events = events::EventBus::default();
        store.set_change_sink(Arc::new(events.clone()));
        Operations {
            store,
            schemas,
            config: Arc::new(config),
            login_limiter: Arc::default(),
            directory_limiter: Arc::default(),
            auth_providers: Arc::default(),
            roles: Arc::new(roles::role_cache()),
            sessions: Arc::new(sessions::session_cache()),
            personas: Arc::new(class_cache::ClassCache::new(
                PERSONA_CACHE_TTL,
                PERSONA_CACHE_ENTRIES,
            )),
            chat_sessions: Arc::new(class_cache::ClassCache::new(
                CHAT_SESSION_CACHE_TTL,
                CHAT_SESSION_CACHE_ENTRIES,
            )),
            mailer: Arc::new(crate::mail::LogMailer),
            events,
            generation: None,
            metrics: None,
            cloud: None,
            rules: None,
        }
    }

    /// Counts what happens for `/metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Operations {
        self.metrics = Some(metrics);
        self
    }

    /// Starts persona replies after commits, through `generator`.
    pub fn with_generation(mut self, generator: Arc<dyn hooks::CommitHook>) -> Operations {
        self.generation = Some(generator);
        self
    }

    /// Sends account mail through `mailer` instead of the log.
    pub fn with_mailer(mut self, mailer: Arc<dyn crate::mail::Mailer>) -> Operations {
        self.mailer = mailer;
        self
    }
}
