//! What the servers under test stand on: `--database` and `--instances`.
//!
//! - [`Database`]: SQLite in each server's temporary folder (the default), or a PostgreSQL URL
//!   that gets a fresh schema for the run (`?schema=bench_<pid>_<unix time>`), dropped
//!   afterwards with `psql` (best effort, unless `--keep-db`). A fresh schema isolates the run
//!   from other data in the database and from other runs.
//! - Several instances (`--instances N`, PostgreSQL only) share that schema and relay live
//!   events to each other (LISTEN/NOTIFY by default). HTTP workers are spread over them
//!   round-robin ([`crate::load::Target::spread`]); CPU and memory are summed over them, with
//!   each instance's figures beside ([`cpu_seconds`], [`memory`]).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use serde_json::{Value, json};

use crate::server::{self, Server, round1};

/// The database of a run. Dropping it drops a PostgreSQL schema it created (unless kept).
pub enum Database {
    /// A fresh SQLite file per server, in the server's temporary folder.
    Sqlite,
    Postgres {
        /// What the servers get: the given URL with `schema=<schema>`.
        url: String,
        /// The given URL without the parameters only the server knows (`schema`,
        /// `max_connections`), for `psql`.
        admin_url: String,
        schema: String,
        keep: bool,
    },
}

impl Database {
    /// `None`: SQLite. A `postgres://` or `postgresql://` URL: a fresh schema in it (a
    /// `schema=` already in the URL is replaced).
    pub fn new(url: Option<&str>, keep: bool) -> anyhow::Result<Database> {
        let Some(url) = url else {
            return Ok(Database::Sqlite);
        };
        if url.starts_with("sqlite:") {
            bail!(
                "--database: SQLite is the default (a fresh file per run); give a postgres:// URL or nothing"
            );
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--database {url}: expected a postgres:// URL");
        }
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let schema = format!("bench_{}_{unix}", std::process::id());
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let kept = |drop: &[&str]| -> Vec<&str> {
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
                    !drop.contains(&key)
                })
                .collect()
        };
        let with_query = |pairs: Vec<&str>| {
            if pairs.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", pairs.join("&"))
            }
        };
        let schema_pair = format!("schema={schema}");
        let mut server_pairs = kept(&["schema"]);
        server_pairs.push(&schema_pair);
        Ok(Database::Postgres {
            url: with_query(server_pairs),
            admin_url: with_query(kept(&["schema", "max_connections"])),
            schema,
            keep,
        })
    }

    /// The `--database` of `parlor serve`; `None`: a fresh SQLite file per server.
    pub fn server_url(&self) -> Option<&str> {
        match self {
            Database::Sqlite => None,
            Database::Postgres { url, .. } => Some(url),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    /// Whether several servers can share it.
    pub fn shared(&self) -> bool {
        matches!(self, Database::Postgres { .. })
    }

    /// For the `start` line: the schema and the URL the servers were given.
    pub fn describe(&self) -> Value {
        match self {
            Database::Sqlite => json!({ "backend": "sqlite" }),
            Database::Postgres { url, schema, .. } => {
                json!({ "backend": "postgres", "url": url, "schema": schema })
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Database::Postgres {
            admin_url,
            schema,
            keep,
            ..
        } = self
        else {
            return;
        };
        if *keep {
            eprintln!("[bench] PostgreSQL schema {schema} kept");
            return;
        }
        let statement = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        let outcome = Command::new("psql")
            .args([admin_url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(&statement)
            .output();
        match outcome {
            Ok(output) if output.status.success() => {
                eprintln!("[bench] dropped PostgreSQL schema {schema}");
            }
            Ok(output) => eprintln!(
                "[bench] warning: could not drop schema {schema}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => {
                eprintln!("[bench] warning: could not run psql to drop {schema}: {error}")
            }
        }
    }
}

/// The tag of the output lines: `sqlite`, `postgres`, `postgres x2`, …; `external` for `--url`.
pub fn backend_tag(database: Option<&Database>, instances: usize) -> String {
    match database {
        None => "external".to_owned(),
        Some(database) if instances > 1 => format!("{} x{instances}", database.backend()),
        Some(database) => database.backend().to_owned(),
    }
}

/// CPU seconds used so far by each process (`None` where unknown).
pub fn cpu_each(pids: &[u32]) -> Vec<Option<f64>> {
    pids.iter().map(|&pid| server::cpu_seconds(pid)).collect()
}

/// CPU seconds used so far by all the processes; `None` if any is unknown (or none given).
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    cpu_each(pids).into_iter().sum()
}

/// CPU seconds used so far by every process named `postgres` on this machine (the local
/// PostgreSQL server and its backends; those that exited meanwhile are not counted).
pub fn postgres_cpu_seconds() -> Option<f64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut total = 0.0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            total += server::cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// Memory of the servers, in MB: one server's `{rss_mb, peak_rss_mb}` as
/// [`server::memory`] gives it; for several, the sums, the largest instance
/// (`max_instance_rss_mb`) and each instance (`instances`); `null` for none.
pub fn memory(pids: &[u32]) -> Value {
    match pids {
        [] => Value::Null,
        [pid] => server::memory(*pid),
        _ => {
            let each: Vec<Value> = pids
                .iter()
                .map(|&pid| {
                    let mut value = server::memory(pid);
                    value["pid"] = json!(pid);
                    value
                })
                .collect();
            let sum = |field: &str| -> Option<f64> {
                each.iter()
                    .map(|value| value[field].as_f64())
                    .sum::<Option<f64>>()
                    .map(round1)
            };
            let largest = each
                .iter()
                .filter_map(|value| value["rss_mb"].as_f64())
                .fold(None, |most: Option<f64>, rss| {
                    Some(most.map_or(rss, |m| m.max(rss)))
                });
            json!({
                "rss_mb": sum("rss_mb"),
                "peak_rss_mb": sum("peak_rss_mb"),
                "max_instance_rss_mb": largest,
                "instances": each,
            })
        }
    }
}

/// The resident memory of the largest instance in a [`memory`] value (the only one's for one).
pub fn largest_rss(memory: &Value) -> Option<f64> {
    memory["max_instance_rss_mb"]
        .as_f64()
        .or_else(|| memory["rss_mb"].as_f64())
}

/// The last lines of every server's log, each under its URL, for error messages.
pub fn log_tails(servers: &[Server], lines: usize) -> String {
    match servers {
        [server] => server.log_tail(lines),
        _ => servers
            .iter()
            .map(|server| format!("--- {} ---\n{}", server.base_url, server.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_url_gets_a_fresh_schema() {
        let database = Database::new(
            Some("postgres://u@h:5432/db?schema=old&max_connections=8&sslmode=disable"),
            true,
        )
        .expect("a postgres URL");
        let Database::Postgres {
            url,
            admin_url,
            schema,
            ..
        } = &database
        else {
            panic!("not postgres");
        };
        assert!(schema.starts_with("bench_"));
        assert_eq!(
            url,
            &format!("postgres://u@h:5432/db?max_connections=8&sslmode=disable&schema={schema}")
        );
        assert_eq!(admin_url, "postgres://u@h:5432/db?sslmode=disable");
        let plain = Database::new(Some("postgres://u@h/db"), true).expect("a postgres URL");
        assert_eq!(
            plain.server_url().map(|u| u.contains("?schema=bench_")),
            Some(true)
        );
    }

    #[test]
    fn tags() {
        assert_eq!(backend_tag(Some(&Database::Sqlite), 1), "sqlite");
        let pg = Database::new(Some("postgres://u@h/db"), true).expect("a postgres URL");
        assert_eq!(backend_tag(Some(&pg), 2), "postgres x2");
        assert_eq!(backend_tag(None, 1), "external");
    }
}
