//! `parlor_server`: the Parlor binary's library: configuration, start-up, the operation
//! layer and the HTTP edge.
//!
//! # Layout
//! - [`config`]: flags, environment, `parlor.toml` → [`config::Config`].
//! - [`operation`]: the one layer that applies access rules and schema checks; every
//!   surface (REST now; GraphQL, LiveQuery and cloud code later) calls it.
//! - [`http`]: the Parse REST wire protocol on axum; nothing else knows about HTTP.
//! - [`graphql`]: the GraphQL API generated from the live schema (its HTTP and WebSocket
//!   edge is `http/graphql.rs`).
//! - [`template`]: the AI chat template's classes, loaded on first start.
//! - [`schema_doc`]: the live schema as JSON, a Mermaid ER diagram or a data dictionary.
//! - [`logging`]: text or JSON log lines on stderr.
//!
//! [`run`] is the single entry point: the binary and the tests both call it with a bound
//! listener and a shutdown future.

pub mod ai;
pub mod cloud;
pub mod config;
pub mod graphql;
pub mod http;
pub mod live;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod operation;
pub mod relay;
pub mod schema_doc;
pub mod template;
pub mod transfer;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use parlor_store::Store;
use parlor_store::sqlite::{SqliteOptions, SqliteStore};
use rand::RngExt;
use regex::Regex;
use tokio::net::TcpListener;

use crate::config::{Config, data_dir};
use crate::http::{AppState, HttpConfig};
use crate::operation::users::AccountConfig;
use crate::operation::{OperationConfig, Operations, SchemaCache};
use std::time::Duration;

/// Opens the store named by a database URL.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let database = config.database.as_str();
    if database.starts_with("sqlite:") {
        let store = SqliteStore::open_with(
            database,
            SqliteOptions {
                readers: config.database_readers,
                ..SqliteOptions::default()
            },
        )
        .await
        .with_context(|| format!("opening {database}"))?;
        return Ok(Arc::new(store));
    }
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let (url, max_connections) = take_max_connections(database)?;
        let mut options = parlor_store::postgres::PostgresOptions::default();
        if let Some(max_connections) = max_connections {
            options.max_connections = max_connections;
        }
        let store = parlor_store::postgres::PostgresStore::connect(&url, options)
            .await
            .map_err(|error| anyhow::anyhow!("opening {database}: {error}"))?;
        return Ok(Arc::new(store));
    }
    bail!(
        "unsupported database URL {database}: use sqlite://path/to/file.db or postgres://user@host/db"
    )
}

/// Removes `max_connections=N` from a PostgreSQL URL's query string and returns it: the pool
/// size is Parlor's setting, not a libpq parameter, so the driver must not see it.
fn take_max_connections(url: &str) -> anyhow::Result<(String, Option<u32>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut max_connections = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("max_connections=") {
            Some(value) => {
                let value: u32 = value
                    .parse()
                    .ok()
                    .filter(|value| *value > 0)
                    .with_context(|| format!("max_connections={value}: expected a number > 0"))?;
                max_connections = Some(value);
            }
            None if !pair.is_empty() => kept.push(pair),
            None => {}
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, max_connections))
}

/// Opens the store, loads the schema cache and creates the template's classes on first start.
pub async fn open_operations(config: &Config, server_url: String) -> anyhow::Result<Operations> {
    let mut store = open_store(config).await?;
    let metrics = (config.metrics || config.metrics_addr.is_some())
        .then(|| Arc::new(metrics::Metrics::new()));
    if let Some(metrics) = &metrics {
        store = metrics::store::MeteredStore::wrap(store, Arc::clone(metrics));
    }
    let schemas = store.load_schemas().await.context("loading schemas")?;
    let operation_config = OperationConfig {
        max_limit: config.max_limit,
        allow_client_class_creation: config.allow_client_class_creation,
        allow_custom_object_id: config.allow_custom_object_id,
        schema_growth: config.schema_growth,
        server_url,
        app_id: config.app_id.clone(),
        chat_template: config.chat_template,
        file_upload_public: config.file_upload_public,
        accounts: AccountConfig {
            session_length: Duration::from_secs(config.session_length),
            lockout_threshold: config.account_lockout_threshold,
            lockout_duration: Duration::from_secs(
                config.account_lockout_duration.saturating_mul(60),
            ),
            login_attempts_per_minute: config.login_rate_limit,
            user_directory: config.user_directory,
            directory_searches_per_minute: config.user_directory_rate_limit,
        },
    };
    let mut operations = Operations::new(store, SchemaCache::new(schemas), operation_config);
    if config.chat_template {
        operations = operations.with_rules(Arc::new(operation::template_rules::TemplateRules));
    }
    if let Some(metrics) = metrics {
        operations = operations.with_metrics(metrics);
    }
    if let Some(url) = &config.smtp_url {
        let mailer = mail::SmtpMailer::from_url(url, &config.mail_from)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        operations = operations.with_mailer(Arc::new(mailer));
    }
    // `--template none`: the built-in classes only, no persona replies (plain Parse).
    let template = match config.chat_template {
        true => template::chat_template()?,
        false => serde_json::json!({"results": []}),
    };
    operations
        .bootstrap(&template)
        .await
        .map_err(|error| anyhow::anyhow!("creating the template's classes: {error}"))?;
    if !config.chat_template {
        return Ok(operations);
    }
    operations
        .bootstrap(&ai::generation::usage_class_schema())
        .await
        .map_err(|error| anyhow::anyhow!("creating the AI usage class: {error}"))?;
    let providers = llm_providers(config).await;
    let generator = ai::generation::Generator::new(providers, config.llm.limits);
    if let Some(tools) = &config.tools
        && generator.set_tools(Arc::clone(tools)).is_err()
    {
        bail!("a tool runner is registered twice");
    }
    Ok(operations.with_generation(Arc::new(generator)))
}

/// The configured LLM providers; with none configured, a local Ollama if one answers.
async fn llm_providers(config: &Config) -> ai::provider::Providers {
    let llm = &config.llm;
    let mut default = llm.default.clone();
    if default.is_none() && llm.named.is_empty() {
        default = ai::provider::Providers::discover_local_ollama().await;
        // Logged (on stderr), not printed: `parlor schema` prints its document on stdout.
        match &default {
            Some(found) => tracing::info!(
                "LLM: using the local Ollama at {} (model {})",
                found.base_url,
                found.model.as_deref().unwrap_or("none")
            ),
            None => {
                tracing::warn!(
                    "LLM: no provider configured; persona replies will fail until one is"
                )
            }
        }
    }
    ai::provider::Providers::new(default, llm.named.clone())
}

/// The master key: configured, or kept in the data folder (generated and printed once).
pub fn master_key(config: &Config) -> anyhow::Result<String> {
    if let Some(key) = &config.master_key {
        return Ok(key.clone());
    }
    let generate = || -> String {
        let mut rng = rand::rng();
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..40)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let Some(dir) = data_dir(&config.database) else {
        let key = generate();
        println!("Master key (in-memory database, not kept): {key}");
        return Ok(key);
    };
    let path = dir.join("master.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = generate();
    write_private(&path, &key)?;
    println!(
        "Generated a master key (shown once; kept in {}): {key}",
        path.display()
    );
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Raises the open-file limit as far as allowed and answers how many client connections
/// may be open at once: the configured cap, else one the limit leaves room for.
fn connection_cap(config: &Config) -> usize {
    let open_files = match http::serve::raise_open_file_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!("raised the open-file limit from {before} to {after}");
            }
            Some(after)
        }
        Err(error) => {
            tracing::warn!(%error, "could not read or raise the open-file limit");
            None
        }
    };
    let cap = config.connections.max_connections.unwrap_or_else(|| {
        // Without a known limit, the common default of 1,024.
        http::serve::default_max_connections(open_files.unwrap_or(1024))
    });
    match open_files {
        Some(limit) if u64::try_from(cap).unwrap_or(u64::MAX) >= limit => tracing::warn!(
            "--max-connections {cap} is not below the open-file limit {limit}: when descriptors \
             run out, idle connections are closed to make room"
        ),
        Some(limit) => {
            tracing::info!("open-file limit {limit}: up to {cap} client connections at once")
        }
        None => tracing::info!("up to {cap} client connections at once"),
    }
    cap
}

/// Serves the API on `listener` until `shutdown` resolves; in-flight requests finish, then
/// the store flushes and closes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    ai::provider::install_crypto_provider();
    let address = listener.local_addr()?;
    let server_url = config
        .public_url
        .clone()
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{address}{}", config.mount_path));
    let master_key = master_key(&config)?;
    let mut operations = open_operations(&config, server_url.clone()).await?;
    let cloud = match &config.cloud {
        Some(settings) => Some(cloud::Cloud::start(settings.clone()).await?),
        None => None,
    };
    if let Some(cloud) = &cloud {
        operations =
            operations.with_cloud(Arc::clone(cloud) as Arc<dyn operation::hooks::CloudHooks>);
        // Functions defined with `{tool: …}` become the personas' tools, unless code
        // registered its own runner (`Config::tools`).
        if let Some(generator) = ai::generation::generator(&operations)
            && generator
                .set_tools(Arc::new(cloud::tools::CloudTools(Arc::clone(cloud))))
                .is_err()
        {
            tracing::warn!(
                "Cloud Code tools are not offered to personas: another tool runner is registered"
            );
        }
    }
    if let Some(url) = &config.pubsub {
        relay::start(&operations, url)
            .await
            .context("starting the pub/sub relay between instances")?;
    }
    // Replies whose server died (this one before a restart, or another instance) are
    // marked failed instead of streaming forever.
    let sweeper = ai::generation::generator(&operations).map(|generator| {
        tokio::spawn(ai::generation::recovery::sweep_forever(
            operations.clone(),
            Arc::downgrade(&generator),
        ))
    });
    let idempotency_paths = config
        .idempotency_paths
        .iter()
        .map(|pattern| {
            Regex::new(&format!("^(?:{pattern})"))
                .with_context(|| format!("idempotency path {pattern}"))
        })
        .collect::<anyhow::Result<Vec<Regex>>>()?;
    let http_config = HttpConfig {
        app_id: config.app_id.clone(),
        master_key,
        master_key_ips: config.master_key_ips.clone(),
        client_keys: config.client_keys.clone(),
        javascript_key: config.javascript_key.clone(),
        mount_path: config.mount_path.clone(),
        max_body_bytes: config.max_body_bytes,
        idempotency_paths,
        idempotency_ttl_seconds: config.idempotency_ttl,
        graphql_path: config.graphql_path.clone(),
        metrics_route: config.metrics,
    };
    let store = operations.store.clone();
    let live = Arc::new(live::Hub::new(
        config.live.clone(),
        operations.metrics.clone(),
    ));
    let graphql = match &config.graphql_path {
        Some(_) => Some(Arc::new(graphql::GraphQl::new(
            operations.clone(),
            Arc::clone(&live),
            config.graphql_limits,
        )?)),
        None => None,
    };
    let state = AppState::new(http::Served {
        operations,
        config: Arc::new(http_config),
        live,
        graphql,
    });
    let metrics_server = match &config.metrics_addr {
        Some(address) => Some(
            http::observe::serve_on(address, state.clone(), config.connections)
                .await
                .with_context(|| format!("serving metrics on {address}"))?,
        ),
        None => None,
    };
    let app = http::router(state);
    let max_connections = connection_cap(&config);
    operation::operator::mark_started();
    println!(
        "Parlor {} listening on {server_url}",
        env!("CARGO_PKG_VERSION")
    );
    println!("Data: {}", config.database);
    http::serve::serve(listener, app, config.connections, max_connections, shutdown).await;
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    if let Some(cloud) = cloud {
        cloud.shutdown();
    }
    store.close().await;
    println!("Parlor stopped");
    Ok(())
}
