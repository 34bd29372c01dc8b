//! `--growth`: how the cost of a request grows with the data. Messages are added straight
//! into the server's database — not through HTTP — by copying the seeded messages of the
//! other sessions (`INSERT … SELECT` with new objectIds, in rounds that at most double the
//! class), so 10,000,000 messages take minutes rather than hours. The history session keeps
//! its 10,000 messages: the history page reads the same rows at every size, and only the
//! indexes around them grow.
//!
//! The server keeps running meanwhile (SQLite in WAL mode, PostgreSQL): nothing it caches
//! describes messages, so it sees the new rows at once.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where the messages live.
#[derive(Clone)]
pub enum GrowthDb {
    /// The SQLite file.
    Sqlite(String),
    /// `psql`'s URL and the schema the servers use.
    Postgres { admin_url: String, schema: String },
}

impl GrowthDb {
    /// From a server's `--database` and the run's PostgreSQL schema, if any.
    pub fn new(server_database: &str, postgres: Option<(String, String)>) -> anyhow::Result<Self> {
        if let Some(path) = server_database.strip_prefix("sqlite://") {
            return Ok(GrowthDb::Sqlite(path.to_owned()));
        }
        let Some((admin_url, schema)) = postgres else {
            bail!(
                "--growth needs a database the harness started (SQLite or --database postgres://…)"
            );
        };
        Ok(GrowthDb::Postgres { admin_url, schema })
    }

    /// Adds messages until the class holds `target`, copying those not in the session of
    /// `history_message` (an objectId). What it did, as a JSON line's fields.
    pub fn grow(&self, target: u64, history_message: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        let before = self.count()?;
        let mut count = before;
        while count < target {
            let round = (target - count).min(count.max(1));
            self.copy_round(round, history_message)?;
            count = self.count()?;
            eprintln!("[growth] {count} messages");
            if count < before + 1 {
                bail!("a growth round added nothing (no messages outside the history session?)");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(json!({
            "messages": count,
            "added": count - before,
            "growth_seconds": (seconds * 10.0).round() / 10.0,
            "db_mb": (self.size_bytes()? as f64 / 1e6 * 10.0).round() / 10.0,
        }))
    }

    /// `limit` objectIds drawn at random among all the messages (for `get_by_id`).
    pub fn sample_ids(&self, limit: usize) -> anyhow::Result<Vec<String>> {
        let sql = format!(
            "SELECT \"objectId\" FROM {} ORDER BY random() LIMIT {limit}",
            self.table()
        );
        Ok(self
            .query(&sql)?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn table(&self) -> String {
        match self {
            GrowthDb::Sqlite(_) => "\"Message\"".to_owned(),
            GrowthDb::Postgres { schema, .. } => format!("\"{schema}\".\"Message\""),
        }
    }

    fn count(&self) -> anyhow::Result<u64> {
        let text = self.query(&format!("SELECT count(*) FROM {}", self.table()))?;
        text.trim()
            .parse()
            .with_context(|| format!("counting messages: {text:?}"))
    }

    fn copy_round(&self, limit: u64, history_message: &str) -> anyhow::Result<()> {
        let columns = self.columns()?;
        // A new objectId (10 lowercase hex characters, valid for Parse); the rest as it was.
        // 12 hex characters: a clash among millions is rare, and skipped when it happens.
        let new_id = match self {
            GrowthDb::Sqlite(_) => "lower(hex(randomblob(6)))",
            GrowthDb::Postgres { .. } => "substr(md5(random()::text), 1, 12)",
        };
        let list: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "objectId" => new_id.to_owned(),
                other => format!("\"{other}\""),
            })
            .collect();
        let table = self.table();
        let quoted_id = history_message.replace('\'', "''");
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE \"session\" IS DISTINCT FROM \
             (SELECT \"session\" FROM {table} WHERE \"objectId\" = '{quoted_id}') LIMIT {limit}",
            list.join(", "),
            select.join(", ")
        );
        let sql = match self {
            // SQLite spells IS DISTINCT FROM as IS NOT.
            GrowthDb::Sqlite(_) => sql.replace("IS DISTINCT FROM", "IS NOT").replacen(
                "INSERT INTO",
                "INSERT OR IGNORE INTO",
                1,
            ),
            GrowthDb::Postgres { .. } => format!("{sql} ON CONFLICT DO NOTHING"),
        };
        self.execute(&sql)
    }

    fn columns(&self) -> anyhow::Result<Vec<String>> {
        let sql = match self {
            GrowthDb::Sqlite(_) => "SELECT name FROM pragma_table_info('Message')".to_owned(),
            GrowthDb::Postgres { schema, .. } => format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = 'Message' ORDER BY ordinal_position"
            ),
        };
        let columns: Vec<String> = self
            .query(&sql)?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        if !columns.iter().any(|c| c == "objectId") {
            bail!("the Message table has no objectId column: {columns:?}");
        }
        Ok(columns)
    }

    fn size_bytes(&self) -> anyhow::Result<u64> {
        match self {
            GrowthDb::Sqlite(path) => Ok(["", "-wal"]
                .iter()
                .filter_map(|suffix| std::fs::metadata(format!("{path}{suffix}")).ok())
                .map(|meta| meta.len())
                .sum()),
            GrowthDb::Postgres { schema, .. } => {
                let text = self.query(&format!(
                    "SELECT sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))) FROM pg_tables WHERE schemaname = '{schema}'"
                ))?;
                Ok(text.trim().parse().unwrap_or(0))
            }
        }
    }

    fn execute(&self, sql: &str) -> anyhow::Result<()> {
        self.query(sql).map(|_| ())
    }

    /// Runs `sql`; its rows, one per line, columns separated by `|`.
    fn query(&self, sql: &str) -> anyhow::Result<String> {
        match self {
            GrowthDb::Sqlite(path) => {
                let connection =
                    rusqlite::Connection::open(path).with_context(|| format!("opening {path}"))?;
                connection.busy_timeout(std::time::Duration::from_secs(60))?;
                let mut statement = connection.prepare(sql).with_context(|| sql.to_owned())?;
                let width = statement.column_count();
                let mut rows = statement.query([])?;
                let mut out = String::new();
                while let Some(row) = rows.next()? {
                    let cells: Vec<String> = (0..width)
                        .map(|i| match row.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Integer(n)) => n.to_string(),
                            Ok(rusqlite::types::ValueRef::Real(x)) => x.to_string(),
                            Ok(rusqlite::types::ValueRef::Text(t)) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            _ => String::new(),
                        })
                        .collect();
                    out.push_str(&cells.join("|"));
                    out.push('\n');
                }
                Ok(out)
            }
            GrowthDb::Postgres { admin_url, .. } => {
                let output = Command::new("psql")
                    .args([
                        admin_url.as_str(),
                        "-X",
                        "-q",
                        "-A",
                        "-t",
                        "-v",
                        "ON_ERROR_STOP=1",
                    ])
                    .args(["-c", sql])
                    .output()
                    .context("running psql")?;
                if !output.status.success() {
                    bail!(
                        "psql failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            }
        }
    }
}
