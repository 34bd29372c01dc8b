//! The writer thread: the only connection that writes, with group commit.
//!
//! SQLite commits about 7k single transactions per second but inserts tens of thousands of
//! rows per second inside one, so the writer takes a job, drains whatever else is already
//! queued (up to `max_group`), and runs them all in one `BEGIN IMMEDIATE … COMMIT`. In a group
//! of several, each job runs under its own savepoint: a failing job is rolled back alone and
//! the others commit.
//! Every job is answered only after the commit, so a caller never sees a write that could
//! still be lost. DDL goes through the same queue, serialised with writes.
//!
//! The writer is an OS thread with a synchronous connection: a statement costs the SQLite
//! call and nothing else (no hop to a driver thread per statement).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::ddl::{SchemaChange, TableChanges};
use crate::error::{StoreError, StoreResult};
use crate::sqlite::ReadJob;
use crate::sqlite::checkpointer::Checkpointer;
use crate::sqlite::ddl;
use crate::sqlite::writes::{self, PreparedCreate, WriteContext};
use crate::state::Generations;
use crate::{Change, ChangeSink, Write, WriteOutcome};

/// The change sink, set once the server has wired its event bus.
pub(crate) type SharedSink = Arc<RwLock<Option<Arc<dyn ChangeSink>>>>;

/// A schema change, run by the writer like a write.
#[derive(Debug)]
pub(crate) enum Ddl {
    Schema(SchemaChange),
    /// Not a schema change, but a write outside any class: an uploaded file.
    PutFile {
        name: String,
        content_type: String,
        data: Vec<u8>,
    },
    DeleteFile(String),
    /// Creates the full-text index of a field if it is missing (`search.rs`).
    TextIndex {
        class_name: String,
        field: String,
    },
}

/// A unit of work for the writer; each write or DDL job is all-or-nothing.
pub(crate) enum Job {
    Write {
        writes: Vec<Write>,
        /// Beside each write, what its caller already worked out ([`writes::prepare`]);
        /// taken when the write runs.
        prepared: Vec<Option<PreparedCreate>>,
        reply: oneshot::Sender<StoreResult<Vec<WriteOutcome>>>,
    },
    Ddl {
        ddl: Ddl,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    /// A read, for an in-memory database, whose only connection is the writer's. It runs
    /// outside any transaction, as soon as the writer takes it from the queue.
    Read(ReadJob),
    /// Finishes the jobs queued before it, closes the connection and stops the thread.
    Close { reply: oneshot::Sender<()> },
}

/// What a job produced, before it is sent back.
enum Output {
    Outcomes(Vec<WriteOutcome>),
    Done,
}

/// The state of the writer thread.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) jobs: flume::Receiver<Job>,
    pub(crate) max_group: usize,
    /// Tables as of the last commit; the writer is the only one changing them, so its copy
    /// is authoritative and needs no lock.
    pub(crate) committed: HashSet<String>,
    /// The copy readers consult, refreshed after each commit that changed tables.
    pub(crate) shared: Arc<RwLock<HashSet<String>>>,
    /// Per class, the number of committed jobs that touched it (`Store::class_generation`).
    pub(crate) generations: Arc<Generations>,
    pub(crate) sink: SharedSink,
    /// Checkpoints the WAL off this thread; `None` for an in-memory database.
    pub(crate) checkpointer: Option<Checkpointer>,
}

/// A failure that hits every job of a group, given to each of them.
fn group_error(what: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::database(format!("{what}: {error}"))
}

/// Runs `;`-separated transaction-control statements, each from the statement cache.
fn control(conn: &Connection, statements: &str) -> rusqlite::Result<()> {
    for statement in statements.split("; ") {
        conn.prepare_cached(statement)?.execute([])?;
    }
    Ok(())
}

impl Writer {
    /// Serves jobs until a `Close` job or until every sender is gone; the connection is
    /// closed when this returns, before a `Close` is answered.
    pub(crate) fn run(mut self) {
        let mut close_replies = Vec::new();
        while let Ok(first) = self.jobs.recv() {
            let mut group = Vec::new();
            let mut pending = Some(first);
            while let Some(job) = pending.take() {
                match job {
                    Job::Read(read) => read(&self.conn),
                    Job::Close { reply } => close_replies.push(reply),
                    job => group.push(job),
                }
                if group.len() < self.max_group {
                    pending = self.jobs.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.run_group(group);
            }
            if !close_replies.is_empty() {
                break;
            }
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop(&mut self.conn);
        }
        if let Err((_, error)) = self.conn.close() {
            tracing::error!(%error, "closing the writer connection failed");
        }
        for reply in close_replies {
            let _ = reply.send(());
        }
    }

    fn run_group(&mut self, mut jobs: Vec<Job>) {
        let results = self.run_in_transaction(&mut jobs);
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
                Job::Read(_) | Job::Close { .. } => {}
            }
        }
    }

    /// Runs the jobs in one transaction, each under a savepoint when there are several.
    fn run_in_transaction(&mut self, jobs: &mut [Job]) -> Vec<StoreResult<Output>> {
        let conn = &self.conn;
        let several = jobs.len() > 1;
        let begin = if several {
            "BEGIN IMMEDIATE; SAVEPOINT job"
        } else {
            "BEGIN IMMEDIATE"
        };
        if let Err(error) = control(conn, begin) {
            let _ = conn.execute_batch("ROLLBACK");
            return jobs
                .iter()
                .map(|_| Err(group_error("begin failed", &error)))
                .collect();
        }
        // Tables created or dropped by the jobs of this group that succeeded so far.
        let mut overlay: HashMap<String, bool> = HashMap::new();
        let mut results = Vec::with_capacity(jobs.len());
        let mut broken: Option<String> = None;
        let count = jobs.len();
        for (index, job) in jobs.iter_mut().enumerate() {
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
                run_job(conn, job, &table_exists, &mut changes)
            };
            let last = index + 1 == count;
            let end = match (several, result.is_ok(), last) {
                (false, true, _) => "COMMIT",
                (false, false, _) => "ROLLBACK",
                (true, true, false) => "RELEASE job; SAVEPOINT job",
                (true, false, false) => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
                (true, true, true) => "RELEASE job; COMMIT",
                (true, false, true) => "ROLLBACK TO job; RELEASE job; COMMIT",
            };
            if let Err(error) = control(conn, end) {
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
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return jobs
                .iter()
                .map(|_| Err(group_error("transaction failed", &reason)))
                .collect();
        }
        // Committed: the classes of the jobs that succeeded have moved on, and their callers
        // are answered only after this.
        self.generations.bump(
            jobs.iter()
                .zip(&results)
                .filter(|(_, result)| result.is_ok())
                .flat_map(|(job, _)| touched_classes(job)),
        );
        self.report_changes(jobs, &results);
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

impl Writer {
    /// Tells the change sink what the group's successful writes did. Only this thread
    /// commits, so calling it here, before any caller is answered, keeps commit order.
    fn report_changes(&self, jobs: &[Job], results: &[StoreResult<Output>]) {
        let Ok(slot) = self.sink.read() else {
            return;
        };
        let Some(sink) = slot.as_ref() else {
            return;
        };
        let mut changes = Vec::new();
        for (job, result) in jobs.iter().zip(results) {
            if let (Job::Write { writes, .. }, Ok(Output::Outcomes(outcomes))) = (job, result) {
                for (write, outcome) in writes.iter().zip(outcomes) {
                    changes.push(Change {
                        class_name: write.class_name(),
                        outcome,
                    });
                }
            }
        }
        if !changes.is_empty() {
            sink.committed(&changes);
        }
    }
}

/// The classes whose rows or tables a job changes.
fn touched_classes(job: &Job) -> Vec<&str> {
    match job {
        Job::Write { writes, .. } => writes.iter().map(Write::class_name).collect(),
        Job::Ddl { ddl, .. } => match ddl {
            Ddl::Schema(change) => vec![change.class_name()],
            Ddl::TextIndex { class_name, .. } => vec![class_name.as_str()],
            Ddl::PutFile { .. } | Ddl::DeleteFile(_) => Vec::new(),
        },
        Job::Read(_) | Job::Close { .. } => Vec::new(),
    }
}

fn run_job(
    conn: &Connection,
    job: &mut Job,
    table_exists: &(dyn Fn(&str) -> bool + Sync),
    changes: &mut TableChanges,
) -> StoreResult<Output> {
    match job {
        Job::Write {
            writes, prepared, ..
        } => {
            let context = WriteContext { table_exists };
            let mut outcomes = Vec::with_capacity(writes.len());
            for (index, write) in writes.iter().enumerate() {
                let prepared = prepared.get_mut(index).and_then(Option::take);
                outcomes.push(writes::execute(conn, write, prepared, &context, changes)?);
            }
            Ok(Output::Outcomes(outcomes))
        }
        Job::Ddl { ddl, .. } => {
            match &*ddl {
                Ddl::Schema(change) => ddl::apply(conn, change, changes)?,
                Ddl::PutFile {
                    name,
                    content_type,
                    data,
                } => {
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO \"_Files\" (\"name\", \"contentType\", \"data\") VALUES (?, ?, ?)",
                    )?
                    .execute(rusqlite::params![name, content_type, data])?;
                }
                Ddl::TextIndex { class_name, field } => {
                    crate::sqlite::search::ensure_index(conn, class_name, field, changes)?;
                }
                Ddl::DeleteFile(name) => {
                    conn.prepare_cached("DELETE FROM \"_Files\" WHERE \"name\" = ?")?
                        .execute([name])?;
                }
            }
            Ok(Output::Done)
        }
        Job::Read(_) | Job::Close { .. } => Ok(Output::Done),
    }
}
