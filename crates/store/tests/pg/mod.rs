//! PostgreSQL test helpers: the database URL from the environment, and a fresh schema per
//! store, dropped when its guard goes out of scope (also when the test fails).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use parlor_store::postgres::{PostgresOptions, PostgresStore};
use sqlx_core::connection::Connection;
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;

/// The environment variable naming the test database.
pub const URL_VARIABLE: &str = "PARLOR_TEST_POSTGRES_URL";

/// The test database's URL, or `None` (after saying so) when it is not configured.
pub fn database_url() -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {URL_VARIABLE} is not set");
            None
        }
    }
}

/// A schema name no other test (or test run) uses.
pub fn unique_schema(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops its schema (and everything in it) when dropped.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    pub fn new(url: &str, prefix: &str) -> TestSchema {
        TestSchema {
            url: url.to_owned(),
            name: unique_schema(prefix),
        }
    }

    /// Connects a store to this schema.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(
            &self.url,
            PostgresOptions {
                max_connections: 8,
                schema: Some(self.name.clone()),
            },
        )
        .await
        .unwrap()
    }

    /// Runs SQL in this schema on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let sql = format!("SET search_path TO \"{}\"; {sql}", self.name);
        raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    /// The first column of the first row of `sql` (run in this schema), as text.
    pub async fn text(&self, sql: &str) -> String {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let search_path = format!("SET search_path TO \"{}\"", self.name);
        raw_sql(AssertSqlSafe(search_path))
            .execute(&mut conn)
            .await
            .unwrap();
        let text: String = sqlx_core::query_scalar::query_scalar(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        text
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the async work.
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}

/// A store in a fresh schema, or `None` when no database is configured.
pub async fn open() -> Option<(TestSchema, PostgresStore)> {
    let url = database_url()?;
    let schema = TestSchema::new(&url, "parlor_test");
    let store = schema.store().await;
    Some((schema, store))
}
