//! Configuration: command-line flags, `PARLOR_*` environment variables and an optional
//! `parlor.toml`, in that order of precedence, then defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use crate::ai::provider::{ProviderConfig, ProviderKind};

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the spans it happened in (a request's
    /// `request_id` among them).
    Json,
}

/// `parlor serve` options. Every flag also reads a `PARLOR_*` environment variable, and
/// every key can be set in `parlor.toml` (same names, with `_` for `-`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServeOptions {
    /// Configuration file [default: ./parlor.toml when it exists].
    #[arg(long, env = "PARLOR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "PARLOR_HOST")]
    pub host: Option<String>,

    /// Port to listen on; 0 picks a free one [default: 1337].
    #[arg(long, env = "PARLOR_PORT")]
    pub port: Option<u16>,

    /// Path the API is mounted at [default: /parse].
    #[arg(long, env = "PARLOR_MOUNT_PATH")]
    pub mount_path: Option<String>,

    /// Public URL of the API, used in `Location` headers [default: http://<host>:<port><mount-path>].
    #[arg(long, env = "PARLOR_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Database URL; the file and its folder are created if missing [default: sqlite://./parlor-data/parlor.db].
    #[arg(long, env = "PARLOR_DATABASE")]
    pub database: Option<String>,

    /// Application id that clients must send [default: parlor].
    #[arg(long, env = "PARLOR_APP_ID")]
    pub app_id: Option<String>,

    /// Master key [default: generated on first start, printed once and kept in the data folder].
    #[arg(long, env = "PARLOR_MASTER_KEY")]
    pub master_key: Option<String>,

    /// Addresses or ranges (comma list, e.g. 10.0.0.0/8) allowed to use the master key [default: 127.0.0.1,::1].
    #[arg(long, env = "PARLOR_MASTER_KEY_IPS", value_delimiter = ',')]
    pub master_key_ips: Option<Vec<String>>,

    /// REST API key; when any client key is set, clients must send one of them.
    #[arg(long, env = "PARLOR_REST_API_KEY")]
    pub rest_api_key: Option<String>,

    /// JavaScript key (see --rest-api-key).
    #[arg(long, env = "PARLOR_JAVASCRIPT_KEY")]
    pub javascript_key: Option<String>,

    /// Client key for the Android, iOS and Flutter SDKs (see --rest-api-key).
    #[arg(long, env = "PARLOR_CLIENT_KEY")]
    pub client_key: Option<String>,

    /// Largest request body accepted, in bytes [default: 20971520 (20 MB)].
    #[arg(long, env = "PARLOR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Seconds a client may take to send a request's headers, counted from the connection's
    /// start or the request's first byte; a slower one is disconnected [default: 10].
    #[arg(long, env = "PARLOR_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,

    /// Seconds a client may take to send a request body, plus one per 16 KiB received; a
    /// slower one is answered `408` [default: 30].
    #[arg(long, env = "PARLOR_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<u64>,

    /// Seconds a keep-alive connection may stay silent between requests before it is closed;
    /// LiveQuery WebSockets and SSE streams are not affected [default: 60].
    #[arg(long, env = "PARLOR_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,

    /// Client connections open at once, WebSockets included; past it the connection waiting
    /// longest without a request is closed, or the newcomer is answered `503` when all are
    /// busy [default: the open-file limit minus a reserve of a quarter, 32 to 1024].
    #[arg(long, env = "PARLOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Largest `limit` a query may use; bigger ones are clamped [default: none].
    #[arg(long, env = "PARLOR_MAX_LIMIT")]
    pub max_limit: Option<u64>,

    /// Let clients create classes by writing to them (otherwise only the master key can) [default: false].
    #[arg(long, env = "PARLOR_ALLOW_CLIENT_CLASS_CREATION")]
    pub allow_client_class_creation: Option<bool>,

    /// Let clients choose objectIds on create [default: false].
    #[arg(long, env = "PARLOR_ALLOW_CUSTOM_OBJECT_ID")]
    pub allow_custom_object_id: Option<bool>,

    /// New fields one write without the master key may add to its class (each is a column,
    /// added while other writes wait); past it the write is refused with `255`; 0: no limit
    /// [default: 20].
    #[arg(long, env = "PARLOR_MAX_NEW_FIELDS_PER_REQUEST")]
    pub max_new_fields_per_request: Option<usize>,

    /// Fields (the default ones included) a class may reach through writes without the master
    /// key; past it such writes may not add fields (`255`); 0: no limit [default: 200].
    #[arg(long, env = "PARLOR_MAX_FIELDS_PER_CLASS")]
    pub max_fields_per_class: Option<usize>,

    /// Paths (regexes below the mount path, comma list, e.g. `classes/.*,functions/.*`) where a
    /// repeated `X-Parse-Request-Id` is refused [default: none: idempotency off].
    #[arg(long, env = "PARLOR_IDEMPOTENCY_PATHS", value_delimiter = ',')]
    pub idempotency_paths: Option<Vec<String>>,

    /// How long a request id is remembered, in seconds [default: 300].
    #[arg(long, env = "PARLOR_IDEMPOTENCY_TTL")]
    pub idempotency_ttl: Option<u64>,

    /// Serve Prometheus metrics at `GET /metrics` on the main port, to the addresses of
    /// --master-key-ips only [default: false].
    #[arg(long, env = "PARLOR_METRICS")]
    pub metrics: Option<bool>,

    /// Serve Prometheus metrics at `GET /metrics` on a port of their own (e.g.
    /// `127.0.0.1:9464`), to anyone who reaches it [default: none].
    #[arg(long, env = "PARLOR_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// Log lines as `text` (for people) or `json` (one JSON object per line, for log
    /// collectors), on stderr [default: text].
    #[arg(long, env = "PARLOR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// How long a session lasts, in seconds [default: 31536000 (1 year)].
    #[arg(long, env = "PARLOR_SESSION_LENGTH")]
    pub session_length: Option<u64>,

    /// Failed log-ins in a row that lock an account; 0 turns the lockout off [default: 5].
    #[arg(long, env = "PARLOR_ACCOUNT_LOCKOUT_THRESHOLD")]
    pub account_lockout_threshold: Option<u32>,

    /// How long a locked account stays locked, in minutes [default: 5].
    #[arg(long, env = "PARLOR_ACCOUNT_LOCKOUT_DURATION")]
    pub account_lockout_duration: Option<u64>,

    /// Log-in attempts allowed per client address per minute; 0: no limit [default: 60].
    #[arg(long, env = "PARLOR_LOGIN_RATE_LIMIT")]
    pub login_rate_limit: Option<u32>,

    /// Whether logged-in users can list and search other users' public profiles (username,
    /// displayName, avatar) [default: true].
    #[arg(long, env = "PARLOR_USER_DIRECTORY")]
    pub user_directory: Option<bool>,

    /// User searches (directory listings) allowed per user per minute; 0: no limit
    /// [default: 120].
    #[arg(long, env = "PARLOR_USER_DIRECTORY_RATE_LIMIT")]
    pub user_directory_rate_limit: Option<u32>,

    /// SMTP relay for account mail, `smtp://[user:password@]host[:port]` (no TLS: use a local
    /// relay) [default: none: mail is written to the log].
    #[arg(long, env = "PARLOR_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Sender address of account mail [default: noreply@localhost].
    #[arg(long, env = "PARLOR_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// Read connections of the SQLite pool [default: 4].
    #[arg(long, env = "PARLOR_DATABASE_READERS")]
    pub database_readers: Option<u32>,

    /// How instances sharing a database tell each other about changes: `postgres`
    /// (LISTEN/NOTIFY on the database), a `redis://host:port[?channel=name]` URL, or `none`
    /// [default: postgres with a PostgreSQL database, none with SQLite].
    #[arg(long, env = "PARLOR_PUBSUB")]
    pub pubsub: Option<String>,

    /// Path of the GraphQL API, beside the REST mount; `none` turns it off [default: /graphql].
    #[arg(long, env = "PARLOR_GRAPHQL_PATH")]
    pub graphql_path: Option<String>,

    /// Deepest selection nesting a GraphQL query may have (the master key is exempt); 0: no
    /// limit [default: 20].
    #[arg(long, env = "PARLOR_GRAPHQL_MAX_DEPTH")]
    pub graphql_max_depth: Option<usize>,

    /// Most fields one GraphQL query may select, fragments expanded; 0: no limit [default: 500].
    #[arg(long, env = "PARLOR_GRAPHQL_MAX_FIELDS")]
    pub graphql_max_fields: Option<usize>,

    /// Most aliased fields one GraphQL query may have; 0: no limit [default: 50].
    #[arg(long, env = "PARLOR_GRAPHQL_MAX_ALIASES")]
    pub graphql_max_aliases: Option<usize>,

    /// Classes that live queries serve (comma list) [default: every class].
    #[arg(long, env = "PARLOR_LIVE_QUERY_CLASSES", value_delimiter = ',')]
    pub live_query_classes: Option<Vec<String>>,

    /// Subscriptions one LiveQuery connection may hold [default: 1000].
    #[arg(long, env = "PARLOR_LIVE_QUERY_MAX_SUBSCRIPTIONS")]
    pub live_query_max_subscriptions: Option<usize>,

    /// LiveQuery connections one user may hold at once [default: 100].
    #[arg(long, env = "PARLOR_LIVE_QUERY_MAX_CONNECTIONS_PER_USER")]
    pub live_query_max_connections_per_user: Option<usize>,

    /// Frames waiting to be sent to one LiveQuery client before it counts as too slow and is
    /// disconnected [default: 1000].
    #[arg(long, env = "PARLOR_LIVE_QUERY_QUEUE")]
    pub live_query_queue: Option<usize>,

    /// The template created on first start and whose rules apply: `chat` (the AI chat
    /// template: ChatSession, Message, Context, Persona) or `none` (plain Parse: classes with
    /// those names get no special rules and no persona replies) [default: chat].
    #[arg(long, env = "PARLOR_TEMPLATE")]
    pub template: Option<String>,

    /// Let clients without a user upload files, as Parse Server's
    /// `fileUpload.enableForPublic` [default: false].
    #[arg(long, env = "PARLOR_FILE_UPLOAD_PUBLIC")]
    pub file_upload_public: Option<bool>,

    /// Base URL of the default LLM provider, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:11434/v1` [default: a local Ollama when one answers, else none].
    #[arg(long, env = "PARLOR_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// API key of the default LLM provider (never sent to clients).
    #[arg(long, env = "PARLOR_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,

    /// Model of the default LLM provider, used by personas that name none.
    #[arg(long, env = "PARLOR_LLM_MODEL")]
    pub llm_model: Option<String>,

    /// Wire format of the default LLM provider: `openai` (any OpenAI-compatible server) or
    /// `anthropic` [default: openai].
    #[arg(long, env = "PARLOR_LLM_KIND")]
    pub llm_kind: Option<String>,

    /// Persona replies generated at once, overall [default: 64].
    #[arg(long, env = "PARLOR_MAX_GENERATIONS")]
    pub max_generations: Option<usize>,

    /// Persona replies generated at once for one user's messages [default: 4].
    #[arg(long, env = "PARLOR_MAX_GENERATIONS_PER_USER")]
    pub max_generations_per_user: Option<usize>,

    /// Tokens (prompt + completion) one user's messages may spend per UTC day [default: none].
    #[arg(long, env = "PARLOR_DAILY_TOKEN_QUOTA")]
    pub daily_token_quota: Option<u64>,

    /// Seconds a streaming reply may stand still before another server (or this one after a
    /// restart) marks it failed: its server died [default: 30].
    #[arg(long, env = "PARLOR_REPLY_STALE_AFTER")]
    pub reply_stale_after: Option<u64>,

    /// Cloud Code entry file, a Parse Server `cloud/main.js` (CommonJS or ES module)
    /// [default: none].
    #[arg(long, env = "PARLOR_CLOUD")]
    pub cloud: Option<PathBuf>,

    /// Reload Cloud Code when one of its files changes; a broken edit keeps the last good
    /// code running [default: false].
    #[arg(long, env = "PARLOR_CLOUD_WATCH")]
    pub cloud_watch: Option<bool>,

    /// Seconds one Cloud Code call (function, trigger, job) may run, its awaited queries
    /// included; past it the call fails with code 141 [default: 15].
    #[arg(long, env = "PARLOR_CLOUD_TIMEOUT")]
    pub cloud_timeout: Option<f64>,

    /// Megabytes of memory one Cloud Code runtime may use; a script that needs more fails
    /// with code 141 [default: 256].
    #[arg(long, env = "PARLOR_CLOUD_MEMORY_LIMIT")]
    pub cloud_memory_limit: Option<usize>,

    /// Cloud Code runtimes (each on its own thread) [default: one per CPU core].
    #[arg(long, env = "PARLOR_CLOUD_RUNTIMES")]
    pub cloud_runtimes: Option<usize>,

    /// Hosts `Parse.Cloud.httpRequest` may reach (comma list; `*` for any) [default: none].
    #[arg(long, env = "PARLOR_CLOUD_HTTP_ALLOW", value_delimiter = ',')]
    pub cloud_http_allow: Option<Vec<String>>,

    /// `authData` providers the app validates with a module of its own, Parse Server's `auth`
    /// adapters: `name=path/to/module.js` (comma list; CommonJS exporting
    /// `validateAuthData(authData, options, request)`, run in Cloud Code) [default: none].
    #[arg(long, env = "PARLOR_AUTH_ADAPTERS", value_delimiter = ',')]
    pub auth_adapters: Option<Vec<String>>,

    /// Times one reply may send tool results back to the model; a reply whose model still
    /// calls tools after that many rounds ends `failed` [default: 5].
    #[arg(long, env = "PARLOR_AI_TOOL_ROUNDS")]
    pub ai_tool_rounds: Option<u32>,

    /// Seconds one tool call may run before the model is told it timed out [default: 15].
    #[arg(long, env = "PARLOR_AI_TOOL_TIMEOUT")]
    pub ai_tool_timeout: Option<u64>,

    /// Named LLM providers, which a persona's `provider` field names (`parlor.toml` only:
    /// `[[providers]]` tables with `name`, `kind`, `base_url`, `api_key`, `model`).
    #[arg(skip)]
    pub providers: Option<Vec<ProviderEntry>>,
}

/// One `[[providers]]` table of `parlor.toml`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub name: String,
    /// `openai` or `anthropic` [default: openai].
    pub kind: Option<String>,
    /// [default: the vendor's own endpoint for the kind].
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    /// Overrides the model's known context window, for servers started with another one.
    pub context_window: Option<u32>,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must not reach logs through a debug print of the configuration.
        f.debug_struct("ProviderEntry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("context_window", &self.context_window)
            .finish()
    }
}

/// The LLM settings: providers and the limits on generation.
#[derive(Debug, Clone, Default)]
pub struct LlmConfig {
    /// From `--llm-*`; `None` with no named providers either: probe a local Ollama at start.
    pub default: Option<ProviderConfig>,
    pub named: Vec<ProviderConfig>,
    pub limits: GenerationLimits,
}

/// Limits on persona replies, enforced before a provider is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationLimits {
    pub max_concurrent: usize,
    pub max_per_user: usize,
    /// Tokens per user per UTC day; `None`: unlimited.
    pub daily_token_quota: Option<u64>,
    /// How long a streaming reply may stand still before it counts as orphaned.
    pub stale_after: std::time::Duration,
    /// Rounds of tool results one reply may send back to its model.
    pub tool_rounds: u32,
    /// How long one tool call may run.
    pub tool_timeout: std::time::Duration,
}

impl Default for GenerationLimits {
    fn default() -> GenerationLimits {
        GenerationLimits {
            max_concurrent: 64,
            max_per_user: 4,
            daily_token_quota: None,
            stale_after: std::time::Duration::from_secs(30),
            tool_rounds: 5,
            tool_timeout: std::time::Duration::from_secs(15),
        }
    }
}

/// The resolved configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub mount_path: String,
    pub public_url: Option<String>,
    pub database: String,
    pub app_id: String,
    /// `None`: generate or load one from the data folder at start-up.
    pub master_key: Option<String>,
    pub master_key_ips: Vec<String>,
    pub client_keys: Vec<String>,
    /// The JavaScript key, which the web app sends: like any browser client's, it is public.
    pub javascript_key: Option<String>,
    pub max_body_bytes: usize,
    /// Timeouts of client connections and the cap on how many are open.
    pub connections: crate::http::serve::ConnectionLimits,
    pub max_limit: Option<u64>,
    pub allow_client_class_creation: bool,
    pub allow_custom_object_id: bool,
    /// How many fields clients may add to a class by writing to it.
    pub schema_growth: crate::operation::schema::SchemaGrowth,
    pub idempotency_paths: Vec<String>,
    pub idempotency_ttl: u64,
    pub metrics: bool,
    pub metrics_addr: Option<String>,
    pub log_format: LogFormat,
    pub database_readers: u32,
    pub session_length: u64,
    pub account_lockout_threshold: u32,
    pub account_lockout_duration: u64,
    pub login_rate_limit: u32,
    pub user_directory: bool,
    pub user_directory_rate_limit: u32,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub live: crate::live::LiveConfig,
    /// `None`: no GraphQL API.
    pub graphql_path: Option<String>,
    pub graphql_limits: crate::graphql::Limits,
    pub llm: LlmConfig,
    /// What runs the tools personas call ([`crate::ai::tools`]); `None`: personas have no
    /// tools. Set by code, not by flags (tests, embedders); cloud code registers its own.
    pub tools: Option<std::sync::Arc<dyn crate::ai::tools::ToolRunner>>,
    /// The PostgreSQL or Redis URL whose pub/sub carries changes between instances.
    pub pubsub: Option<String>,
    /// Whether the chat template is on (`--template chat`, the default) or off (`none`).
    pub chat_template: bool,
    pub file_upload_public: bool,
    /// `None`: no Cloud Code.
    pub cloud: Option<crate::cloud::CloudSettings>,
}

pub const DEFAULT_DATABASE: &str = "sqlite://./parlor-data/parlor.db";

impl ServeOptions {
    /// Fills what flags and environment left unset from the config file, then defaults.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => Some(read_file(path)?),
            None if Path::new("parlor.toml").exists() => Some(read_file(Path::new("parlor.toml"))?),
            None => None,
        };
        let options = match file {
            Some(file) => self.or(file),
            None => self,
        };
        let mount_path = normalize_mount(options.mount_path.as_deref().unwrap_or("/parse"))?;
        let client_keys = [
            &options.rest_api_key,
            &options.javascript_key,
            &options.client_key,
        ]
        .into_iter()
        .flatten()
        .filter(|key| !key.is_empty())
        .cloned()
        .collect();
        let database = options
            .database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let llm = resolve_llm(&options)?;
        let connections = resolve_connections(&options)?;
        let chat_template = match options.template.as_deref().map(str::trim) {
            None | Some("chat") => true,
            Some("none") => false,
            Some(other) => bail!("unsupported --template {other}: use chat or none"),
        };
        let cloud = resolve_cloud(&options)?;
        Ok(Config {
            chat_template,
            file_upload_public: options.file_upload_public.unwrap_or(false),
            cloud,
            host: options.host.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: options.port.unwrap_or(1337),
            mount_path,
            public_url: options.public_url,
            app_id: options.app_id.unwrap_or_else(|| "parlor".to_owned()),
            master_key: options.master_key.filter(|key| !key.is_empty()),
            master_key_ips: options
                .master_key_ips
                .unwrap_or_else(|| vec!["127.0.0.1".to_owned(), "::1".to_owned()]),
            client_keys,
            javascript_key: options.javascript_key.clone().filter(|key| !key.is_empty()),
            max_body_bytes: options.max_body_bytes.unwrap_or(20 * 1024 * 1024),
            connections,
            max_limit: options.max_limit,
            allow_client_class_creation: options.allow_client_class_creation.unwrap_or(false),
            allow_custom_object_id: options.allow_custom_object_id.unwrap_or(false),
            schema_growth: {
                let defaults = crate::operation::schema::SchemaGrowth::default();
                let limit = |value: Option<usize>, default: Option<usize>| match value {
                    Some(0) => None,
                    Some(limit) => Some(limit),
                    None => default,
                };
                crate::operation::schema::SchemaGrowth {
                    new_fields_per_request: limit(
                        options.max_new_fields_per_request,
                        defaults.new_fields_per_request,
                    ),
                    fields_per_class: limit(
                        options.max_fields_per_class,
                        defaults.fields_per_class,
                    ),
                }
            },
            idempotency_paths: options.idempotency_paths.unwrap_or_default(),
            idempotency_ttl: options.idempotency_ttl.unwrap_or(300),
            metrics: options.metrics.unwrap_or(false),
            metrics_addr: options.metrics_addr.filter(|addr| !addr.trim().is_empty()),
            log_format: options.log_format.unwrap_or_default(),
            database_readers: options.database_readers.unwrap_or(4).max(1),
            session_length: options.session_length.unwrap_or(31_536_000).max(1),
            account_lockout_threshold: options.account_lockout_threshold.unwrap_or(5),
            account_lockout_duration: options.account_lockout_duration.unwrap_or(5),
            login_rate_limit: options.login_rate_limit.unwrap_or(60),
            user_directory: options.user_directory.unwrap_or(true),
            user_directory_rate_limit: options.user_directory_rate_limit.unwrap_or(120),
            smtp_url: options.smtp_url.filter(|url| !url.is_empty()),
            mail_from: options
                .mail_from
                .unwrap_or_else(|| "noreply@localhost".to_owned()),
            pubsub: match options.pubsub.as_deref().map(str::trim) {
                Some("none") => None,
                Some("postgres") | None if is_postgres(&database) => Some(database.clone()),
                None => None,
                Some(url) if is_postgres(url) || url.starts_with("redis://") => {
                    Some(url.to_owned())
                }
                Some(other) => bail!(
                    "unsupported --pubsub {other}: use postgres (with a PostgreSQL database), a postgres:// or redis:// URL, or none"
                ),
            },
            database,
            llm,
            tools: None,
            graphql_path: match options.graphql_path.as_deref().map(str::trim) {
                Some("none") | Some("") => None,
                Some(path) => Some(normalize_mount(path)?).filter(|path| !path.is_empty()),
                None => Some("/graphql".to_owned()),
            },
            graphql_limits: {
                let limit = |value: Option<usize>, default: usize| match value {
                    Some(0) => None,
                    Some(limit) => Some(limit),
                    None => Some(default),
                };
                crate::graphql::Limits {
                    max_depth: limit(options.graphql_max_depth, 20),
                    max_fields: limit(options.graphql_max_fields, 500),
                    max_aliases: limit(options.graphql_max_aliases, 50),
                }
            },
            live: crate::live::LiveConfig {
                classes: options
                    .live_query_classes
                    .map(|classes| {
                        classes
                            .into_iter()
                            .map(|class| class.trim().to_owned())
                            .filter(|class| !class.is_empty())
                            .collect()
                    })
                    .filter(|classes: &Vec<String>| !classes.is_empty()),
                max_subscriptions: options.live_query_max_subscriptions.unwrap_or(1000).max(1),
                max_connections_per_user: options
                    .live_query_max_connections_per_user
                    .unwrap_or(100)
                    .max(1),
                queue: options.live_query_queue.unwrap_or(1000).max(1),
            },
        })
    }

    /// `self`'s values, with `other`'s where `self` has none.
    fn or(self, other: ServeOptions) -> ServeOptions {
        ServeOptions {
            config: self.config,
            host: self.host.or(other.host),
            port: self.port.or(other.port),
            mount_path: self.mount_path.or(other.mount_path),
            public_url: self.public_url.or(other.public_url),
            database: self.database.or(other.database),
            app_id: self.app_id.or(other.app_id),
            master_key: self.master_key.or(other.master_key),
            master_key_ips: self.master_key_ips.or(other.master_key_ips),
            rest_api_key: self.rest_api_key.or(other.rest_api_key),
            javascript_key: self.javascript_key.or(other.javascript_key),
            client_key: self.client_key.or(other.client_key),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            header_read_timeout: self.header_read_timeout.or(other.header_read_timeout),
            body_read_timeout: self.body_read_timeout.or(other.body_read_timeout),
            idle_timeout: self.idle_timeout.or(other.idle_timeout),
            max_connections: self.max_connections.or(other.max_connections),
            max_limit: self.max_limit.or(other.max_limit),
            allow_client_class_creation: self
                .allow_client_class_creation
                .or(other.allow_client_class_creation),
            allow_custom_object_id: self.allow_custom_object_id.or(other.allow_custom_object_id),
            max_new_fields_per_request: self
                .max_new_fields_per_request
                .or(other.max_new_fields_per_request),
            max_fields_per_class: self.max_fields_per_class.or(other.max_fields_per_class),
            idempotency_paths: self.idempotency_paths.or(other.idempotency_paths),
            idempotency_ttl: self.idempotency_ttl.or(other.idempotency_ttl),
            metrics: self.metrics.or(other.metrics),
            metrics_addr: self.metrics_addr.or(other.metrics_addr),
            log_format: self.log_format.or(other.log_format),
            database_readers: self.database_readers.or(other.database_readers),
            pubsub: self.pubsub.or(other.pubsub),
            graphql_path: self.graphql_path.or(other.graphql_path),
            graphql_max_depth: self.graphql_max_depth.or(other.graphql_max_depth),
            graphql_max_fields: self.graphql_max_fields.or(other.graphql_max_fields),
            graphql_max_aliases: self.graphql_max_aliases.or(other.graphql_max_aliases),
            live_query_classes: self.live_query_classes.or(other.live_query_classes),
            live_query_max_subscriptions: self
                .live_query_max_subscriptions
                .or(other.live_query_max_subscriptions),
            live_query_max_connections_per_user: self
                .live_query_max_connections_per_user
                .or(other.live_query_max_connections_per_user),
            live_query_queue: self.live_query_queue.or(other.live_query_queue),
            template: self.template.or(other.template),
            file_upload_public: self.file_upload_public.or(other.file_upload_public),
            llm_base_url: self.llm_base_url.or(other.llm_base_url),
            llm_api_key: self.llm_api_key.or(other.llm_api_key),
            llm_model: self.llm_model.or(other.llm_model),
            llm_kind: self.llm_kind.or(other.llm_kind),
            max_generations: self.max_generations.or(other.max_generations),
            max_generations_per_user: self
                .max_generations_per_user
                .or(other.max_generations_per_user),
            daily_token_quota: self.daily_token_quota.or(other.daily_token_quota),
            reply_stale_after: self.reply_stale_after.or(other.reply_stale_after),
            ai_tool_rounds: self.ai_tool_rounds.or(other.ai_tool_rounds),
            ai_tool_timeout: self.ai_tool_timeout.or(other.ai_tool_timeout),
            providers: self.providers.or(other.providers),
            cloud: self.cloud.or(other.cloud),
            cloud_watch: self.cloud_watch.or(other.cloud_watch),
            cloud_timeout: self.cloud_timeout.or(other.cloud_timeout),
            cloud_memory_limit: self.cloud_memory_limit.or(other.cloud_memory_limit),
            cloud_runtimes: self.cloud_runtimes.or(other.cloud_runtimes),
            cloud_http_allow: self.cloud_http_allow.or(other.cloud_http_allow),
            auth_adapters: self.auth_adapters.or(other.auth_adapters),
            session_length: self.session_length.or(other.session_length),
            account_lockout_threshold: self
                .account_lockout_threshold
                .or(other.account_lockout_threshold),
            account_lockout_duration: self
                .account_lockout_duration
                .or(other.account_lockout_duration),
            login_rate_limit: self.login_rate_limit.or(other.login_rate_limit),
            user_directory: self.user_directory.or(other.user_directory),
            user_directory_rate_limit: self
                .user_directory_rate_limit
                .or(other.user_directory_rate_limit),
            smtp_url: self.smtp_url.or(other.smtp_url),
            mail_from: self.mail_from.or(other.mail_from),
        }
    }
}

/// The Cloud Code settings of `options`; `None` without `--cloud`.
fn resolve_cloud(options: &ServeOptions) -> anyhow::Result<Option<crate::cloud::CloudSettings>> {
    let mut auth_adapters = Vec::new();
    for adapter in options.auth_adapters.iter().flatten() {
        let adapter = adapter.trim();
        if adapter.is_empty() {
            continue;
        }
        match adapter.split_once('=') {
            Some((name, module)) if !name.trim().is_empty() && !module.trim().is_empty() => {
                auth_adapters.push((name.trim().to_owned(), PathBuf::from(module.trim())));
            }
            _ => bail!("--auth-adapters: {adapter} should be name=path/to/module.js"),
        }
    }
    let Some(entry) = options
        .cloud
        .clone()
        .filter(|path| !path.as_os_str().is_empty())
    else {
        if !auth_adapters.is_empty() {
            bail!("--auth-adapters runs the modules in Cloud Code: set --cloud too");
        }
        return Ok(None);
    };
    let timeout = options.cloud_timeout.unwrap_or(15.0);
    if !(timeout.is_finite() && timeout > 0.0) {
        bail!("--cloud-timeout must be a number of seconds above 0");
    }
    let runtimes = options.cloud_runtimes.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    Ok(Some(crate::cloud::CloudSettings {
        entry,
        runtimes: runtimes.max(1),
        timeout: Duration::from_secs_f64(timeout),
        memory_limit: options.cloud_memory_limit.unwrap_or(256).max(8) * 1024 * 1024,
        watch: options.cloud_watch.unwrap_or(false),
        http_allow: options
            .cloud_http_allow
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|host| host.trim().to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect(),
        auth_adapters,
    }))
}

/// The providers and limits of `options`.
fn resolve_llm(options: &ServeOptions) -> anyhow::Result<LlmConfig> {
    let non_empty = |value: &Option<String>| value.clone().filter(|text| !text.trim().is_empty());
    let kind = match non_empty(&options.llm_kind) {
        Some(kind) => kind.parse::<ProviderKind>().map_err(anyhow::Error::msg)?,
        None => ProviderKind::OpenAi,
    };
    let api_key = non_empty(&options.llm_api_key);
    let model = non_empty(&options.llm_model);
    // A key or a model without a URL means the vendor's own endpoint (`--llm-kind anthropic
    // --llm-api-key …`); nothing at all leaves room for the Ollama probe.
    let base_url = non_empty(&options.llm_base_url).or_else(|| {
        (api_key.is_some() || model.is_some()).then(|| kind.default_base_url().to_owned())
    });
    let default = base_url.map(|base_url| {
        let mut config = ProviderConfig::new("default", kind, base_url);
        config.api_key = api_key;
        config.model = model;
        config
    });
    let mut named = Vec::new();
    for entry in options.providers.iter().flatten() {
        if entry.name.trim().is_empty() {
            bail!("a [[providers]] entry in parlor.toml has no name");
        }
        let kind = match &entry.kind {
            Some(kind) => kind.parse::<ProviderKind>().map_err(anyhow::Error::msg)?,
            None => ProviderKind::OpenAi,
        };
        let base_url = entry
            .base_url
            .clone()
            .unwrap_or_else(|| kind.default_base_url().to_owned());
        let mut config = ProviderConfig::new(entry.name.trim(), kind, base_url);
        config.api_key = entry.api_key.clone().filter(|key| !key.is_empty());
        config.model = entry.model.clone().filter(|model| !model.is_empty());
        config.context_window = entry.context_window;
        named.push(config);
    }
    let defaults = GenerationLimits::default();
    Ok(LlmConfig {
        default,
        named,
        limits: GenerationLimits {
            max_concurrent: options
                .max_generations
                .unwrap_or(defaults.max_concurrent)
                .max(1),
            max_per_user: options
                .max_generations_per_user
                .unwrap_or(defaults.max_per_user)
                .max(1),
            daily_token_quota: options.daily_token_quota.filter(|quota| *quota > 0),
            stale_after: options
                .reply_stale_after
                .map_or(defaults.stale_after, |seconds| {
                    std::time::Duration::from_secs(seconds.max(3))
                }),
            tool_rounds: options.ai_tool_rounds.unwrap_or(defaults.tool_rounds),
            tool_timeout: match options.ai_tool_timeout {
                Some(0) => bail!("--ai-tool-timeout must be at least 1 second"),
                Some(seconds) => std::time::Duration::from_secs(seconds),
                None => defaults.tool_timeout,
            },
        },
    })
}

/// The connection timeouts and cap of `options`; a timeout of 0 is refused (it would drop
/// every client), a cap of 0 means the default.
fn resolve_connections(
    options: &ServeOptions,
) -> anyhow::Result<crate::http::serve::ConnectionLimits> {
    let defaults = crate::http::serve::ConnectionLimits::default();
    let seconds = |value: Option<u64>, default: Duration, flag: &str| match value {
        Some(0) => bail!("--{flag} must be at least 1 second"),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Ok(default),
    };
    Ok(crate::http::serve::ConnectionLimits {
        header_read_timeout: seconds(
            options.header_read_timeout,
            defaults.header_read_timeout,
            "header-read-timeout",
        )?,
        body_read_timeout: seconds(
            options.body_read_timeout,
            defaults.body_read_timeout,
            "body-read-timeout",
        )?,
        idle_timeout: seconds(options.idle_timeout, defaults.idle_timeout, "idle-timeout")?,
        max_connections: options.max_connections.filter(|cap| *cap > 0),
    })
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn read_file(path: &Path) -> anyhow::Result<ServeOptions> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `/parse`, `parse/`, `/` → `/parse`, `/parse`, `` (root mount).
fn normalize_mount(mount: &str) -> anyhow::Result<String> {
    let trimmed = mount.trim().trim_matches('/');
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        bail!("invalid mount path: {mount}");
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}

/// The folder holding a SQLite database file (where the master key is kept too).
pub fn data_dir(database: &str) -> Option<PathBuf> {
    let path = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))?;
    if path.starts_with(":memory:") || path.starts_with("memory") {
        return None;
    }
    let path = path.split('?').next().unwrap_or(path);
    Some(
        Path::new(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let flags = ServeOptions {
            port: Some(9000),
            ..ServeOptions::default()
        };
        let file = ServeOptions {
            port: Some(1),
            app_id: Some("from-file".into()),
            ..ServeOptions::default()
        };
        let merged = flags.or(file);
        assert_eq!(merged.port, Some(9000));
        assert_eq!(merged.app_id.as_deref(), Some("from-file"));
    }

    #[test]
    fn a_config_file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("parlor.toml");
        std::fs::write(
            &path,
            "app_id = \"from-file\"\nport = 4000\nmaster_key_ips = [\"10.0.0.0/8\"]\n",
        )
        .expect("write");
        let flags = ServeOptions {
            config: Some(path.clone()),
            port: Some(5000),
            ..ServeOptions::default()
        };
        let config = flags.resolve().expect("resolve");
        assert_eq!(config.app_id, "from-file");
        assert_eq!(config.port, 5000);
        assert_eq!(config.master_key_ips, vec!["10.0.0.0/8".to_owned()]);
        assert_eq!(config.mount_path, "/parse");
        std::fs::write(&path, "no_such_setting = 1\n").expect("write");
        let flags = ServeOptions {
            config: Some(path),
            ..ServeOptions::default()
        };
        assert!(
            flags.resolve().is_err(),
            "unknown keys are refused, not ignored"
        );
    }

    #[test]
    fn schema_growth_limits_default_and_turn_off_with_zero() {
        let defaults = ServeOptions::default().resolve().expect("resolve");
        assert_eq!(
            defaults.schema_growth,
            crate::operation::schema::SchemaGrowth {
                new_fields_per_request: Some(20),
                fields_per_class: Some(200),
            }
        );
        let off = ServeOptions {
            max_new_fields_per_request: Some(0),
            max_fields_per_class: Some(50),
            ..ServeOptions::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(off.schema_growth.new_fields_per_request, None);
        assert_eq!(off.schema_growth.fields_per_class, Some(50));
    }

    #[test]
    fn mount_paths_are_normalised() {
        assert_eq!(normalize_mount("parse/").ok().as_deref(), Some("/parse"));
        assert_eq!(normalize_mount("/").ok().as_deref(), Some(""));
        assert!(normalize_mount("/a b").is_err());
    }

    #[test]
    fn data_dir_is_the_database_folder() {
        assert_eq!(
            data_dir("sqlite://./parlor-data/parlor.db"),
            Some(PathBuf::from("./parlor-data"))
        );
        assert_eq!(data_dir("sqlite::memory:"), None);
    }
}
