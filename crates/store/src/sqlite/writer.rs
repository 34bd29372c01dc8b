//! The writer task: the only connection that writes, with group commit.
//!
//! SQLite commits about 7k single transactions per second but inserts tens of thousands of
//! rows per second inside one, so the writer takes a job, drains whatever else is already
//! queued (up to `max_group`), and runs them all in one `BEGIN IMMEDIATE … COMMIT`. In a group
//! of several, each job runs under its own savepoint: a failing job is rolled back alone and
//! the others commit.
//! Every job is answered only after the commit, so a caller never sees a write that could
//! still be lost. DDL goes through the same queue, serialised with writes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use parlor_core::schema::ClassSchema;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreResult};
use crate::sqlite::ddl::{self, TableChanges};
use crate::sqlite::writes::{self, WriteContext};
use crate::{Write, WriteOutcome};

/// A schema change, run by the writer like a write.
#[derive(Debug)]
pub(crate) enum Ddl {
    Create(ClassSchema),
    Update {
        before: ClassSchema,
        after: ClassSchema,
    },
    Drop(String),
    Purge(String),
}

/// A unit of work for the writer; each is all-or-nothing.
#[derive(Debug)]
pub(crate) enum Job {
    Write {
        writes: Vec<Write>,
        reply: oneshot::Sender<StoreResult<Vec<WriteOutcome>>>,
    },
    Ddl {
        ddl: Ddl,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    /// Finishes the jobs queued before it, closes the connection and stops the task.
    Close { reply: oneshot::Sender<()> },
}

/// What a job produced, before it is sent back.
enum Output {
    Outcomes(Vec<WriteOutcome>),
    Done,
}

/// The state of the writer task.
pub(crate) struct Writer {
    pub(crate) pool: SqlitePool,
    pub(crate) jobs: mpsc::Receiver<Job>,
    pub(crate) max_group: usize,
    /// Tables as of the last commit; the writer is the only one changing them, so its copy
    /// is authoritative and needs no lock.
    pub(crate) committed: HashSet<String>,
    /// The copy readers consult, refreshed after each commit that changed tables.
    pub(crate) shared: Arc<RwLock<HashSet<String>>>,
}

/// A failure that hits every job of a group, given to each of them.
fn group_error(what: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("{what}: {error}")))
}

impl Writer {
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.jobs.recv().await {
            let mut group = vec![first];
            while group.len() < self.max_group {
                match self.jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let mut close_replies = Vec::new();
            let work: Vec<Job> = group
                .into_iter()
                .filter_map(|job| match job {
                    Job::Close { reply } => {
                        close_replies.push(reply);
                        None
                    }
                    job => Some(job),
                })
                .collect();
            if !work.is_empty() {
                self.run_group(work).await;
            }
            if !close_replies.is_empty() {
                self.pool.close().await;
                for reply in close_replies {
                    let _ = reply.send(());
                }
                return;
            }
        }
        self.pool.close().await;
    }

    async fn run_group(&mut self, jobs: Vec<Job>) {
        let results = match self.pool.acquire().await {
            Ok(mut conn) => self.run_in_transaction(&mut conn, &jobs).await,
            Err(error) => jobs
                .iter()
                .map(|_| Err(group_error("no writer connection", &error)))
                .collect(),
        };
        for (job, result) in jobs.into_iter().zip(results) {
            // A caller that gave up waiting has dropped its receiver; nothing to tell it.
            match job {
                Job::Write { reply, .. } => {
                    let _ = reply.send(result.map(|output| match output {
                        Output::Outcomes(outcomes) => outcomes,
                        Output::Done => Vec::new(),
                    }));
                }
                Job::Ddl { reply, .. } => {
                    let _ = reply.send(result.map(|_| ()));
                }
                Job::Close { .. } => {}
            }
        }
    }

    /// Runs the jobs in one transaction, each under a savepoint when there are several.
    /// Savepoint and commit statements are sent together with their neighbours (one round
    /// trip to the connection's thread instead of two or three), which matters at thousands
    /// of jobs per second.
    async fn run_in_transaction(
        &mut self,
        conn: &mut SqliteConnection,
        jobs: &[Job],
    ) -> Vec<StoreResult<Output>> {
        let several = jobs.len() > 1;
        let begin = if several {
            "BEGIN IMMEDIATE; SAVEPOINT job"
        } else {
            "BEGIN IMMEDIATE"
        };
        if let Err(error) = sqlx::raw_sql(begin).execute(&mut *conn).await {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return jobs
                .iter()
                .map(|_| Err(group_error("begin failed", &error)))
                .collect();
        }
        // Tables created or dropped by the jobs of this group that succeeded so far.
        let mut overlay: HashMap<String, bool> = HashMap::new();
        let mut results = Vec::with_capacity(jobs.len());
        let mut broken: Option<String> = None;
        for (index, job) in jobs.iter().enumerate() {
            let mut changes = TableChanges::default();
            let result = {
                let committed = &self.committed;
                let overlay = &overlay;
                let table_exists = move |name: &str| {
                    overlay
                        .get(name)
                        .copied()
                        .unwrap_or_else(|| committed.contains(name))
                };
                run_job(conn, job, &table_exists, &mut changes).await
            };
            let last = index + 1 == jobs.len();
            let end = match (several, result.is_ok(), last) {
                (false, true, _) => "COMMIT",
                (false, false, _) => "ROLLBACK",
                (true, true, false) => "RELEASE job; SAVEPOINT job",
                (true, false, false) => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
                (true, true, true) => "RELEASE job; COMMIT",
                (true, false, true) => "ROLLBACK TO job; RELEASE job; COMMIT",
            };
            if let Err(error) = sqlx::raw_sql(end).execute(&mut *conn).await {
                // A failed commit, or an error (disk full, I/O) that rolled back the whole
                // transaction and took the savepoint with it: nothing of this group is kept.
                broken = Some(error.to_string());
                break;
            }
            if result.is_ok() {
                for table in changes.created {
                    overlay.insert(table, true);
                }
                for table in changes.dropped {
                    overlay.insert(table, false);
                }
            }
            results.push(result);
        }
        if let Some(reason) = broken {
            tracing::error!(jobs = jobs.len(), %reason, "write group rolled back");
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return jobs
                .iter()
                .map(|_| Err(group_error("transaction failed", &reason)))
                .collect();
        }
        if !overlay.is_empty() {
            for (table, exists) in overlay {
                if exists {
                    self.committed.insert(table);
                } else {
                    self.committed.remove(&table);
                }
            }
            if let Ok(mut shared) = self.shared.write() {
                shared.clone_from(&self.committed);
            }
        }
        results
    }
}

async fn run_job(
    conn: &mut SqliteConnection,
    job: &Job,
    table_exists: &(dyn Fn(&str) -> bool + Sync),
    changes: &mut TableChanges,
) -> StoreResult<Output> {
    match job {
        Job::Write { writes, .. } => {
            let context = WriteContext { table_exists };
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                outcomes.push(writes::execute(conn, write, &context, changes).await?);
            }
            Ok(Output::Outcomes(outcomes))
        }
        Job::Ddl { ddl, .. } => {
            match ddl {
                Ddl::Create(schema) => ddl::create_class(conn, schema, changes).await?,
                Ddl::Update { before, after } => {
                    ddl::update_class(conn, before, after, changes).await?;
                }
                Ddl::Drop(class_name) => ddl::drop_class(conn, class_name, changes).await?,
                Ddl::Purge(class_name) => ddl::purge_class(conn, class_name).await?,
            }
            Ok(Output::Done)
        }
        Job::Close { .. } => Ok(Output::Done),
    }
}
