//! One [`Write`] executed on the writer's connection, inside the writer's transaction; the
//! statements come from `crate::writes`.
//!
//! Updates read the current row inside the transaction and apply the field ops to it, so
//! concurrent increments and array ops compose; the writer runs one job at a time, so the
//! read and the write cannot interleave with another job.
//!
//! The `match` over [`Write`] mirrors PostgreSQL's (`crate::postgres::writes`) on purpose:
//! everything both compute (statements, update plans, outcomes) is already `crate::writes`'s;
//! what remains is running them, synchronously here and asynchronously there, plus what
//! really differs (relation rows one prepared statement per id here, one `unnest` array there;
//! the duplicate-key mapping of rusqlite's errors). A shared driver would need an executor
//! abstraction over sync and async code for a dozen lines, so the dispatch stays per backend.

use parlor_core::object::Object;
use parlor_core::ops::FieldUpdate;
use parlor_core::query::Filter;
use parlor_core::schema::ClassSchema;
use rusqlite::Connection;

use crate::ddl::TableChanges;
use crate::error::{StoreError, StoreResult};
use crate::select;
use crate::sql::SqlBuilder;
use crate::sql::quote_ident;
use crate::sqlite::ddl::ensure_join_table;
use crate::sqlite::dialect::SqliteDialect;
use crate::sqlite::{execute as run, select_objects};
use crate::writes::{self, relation_change};
use crate::{Write, WriteOutcome};

/// A create's statement and outcome, worked out on the caller's thread before its job is
/// queued: every commit waits for the one writer thread, so that thread only runs them.
pub(crate) struct PreparedCreate {
    statement: SqlBuilder,
    outcome: WriteOutcome,
}

/// For each of `writes`, its [`PreparedCreate`] if it is a create whose statement builds
/// (`None` otherwise: the writer builds it, and reports its error in the job's order).
pub(crate) fn prepare(writes: &[Write]) -> Vec<Option<PreparedCreate>> {
    writes
        .iter()
        .map(|write| match write {
            Write::Create { schema, object, .. } => {
                let statement = writes::insert::<SqliteDialect>(schema, object).ok()?;
                Some(PreparedCreate {
                    statement,
                    outcome: writes::created(schema, object),
                })
            }
            _ => None,
        })
        .collect()
}

/// What the writes of a job may consult: which tables exist (for guards with subqueries).
pub(crate) struct WriteContext<'a> {
    pub(crate) table_exists: &'a (dyn Fn(&str) -> bool + Sync),
}

pub(crate) fn execute(
    conn: &Connection,
    write: &Write,
    prepared: Option<PreparedCreate>,
    context: &WriteContext<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    match write {
        Write::Create {
            schema,
            object,
            relations,
        } => {
            let prepared = match prepared {
                Some(prepared) => prepared,
                None => PreparedCreate {
                    statement: writes::insert::<SqliteDialect>(schema, object)?,
                    outcome: writes::created(schema, object),
                },
            };
            run(conn, &prepared.statement).map_err(on_duplicate)?;
            for relation in relations {
                apply_relation(conn, schema, &object.object_id, relation, context, changes)?;
            }
            Ok(prepared.outcome)
        }
        Write::Update {
            schema,
            object_id,
            guard,
            updates,
            updated_at,
        } => {
            let before = current(conn, schema, object_id, guard, context)?;
            let plan = writes::plan_update::<SqliteDialect>(schema, &before, updates, updated_at)?;
            for relation in plan.relations {
                apply_relation(conn, schema, object_id, relation, context, changes)?;
            }
            run(conn, &plan.statement).map_err(on_duplicate)?;
            Ok(WriteOutcome::Updated {
                before,
                after: plan.after,
            })
        }
        Write::Delete {
            schema,
            object_id,
            guard,
        } => {
            let before = current(conn, schema, object_id, guard, context)?;
            for out in writes::delete_statements(schema, object_id, context.table_exists) {
                run(conn, &out)?;
            }
            Ok(WriteOutcome::Deleted(before))
        }
    }
}

/// Maps a unique-index (or primary-key) violation to [`StoreError::DuplicateValue`].
fn on_duplicate(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            StoreError::DuplicateValue
        }
        _ => StoreError::from(error),
    }
}

/// Inserts or deletes the join rows of a relation op; other ops are refused.
fn apply_relation(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    update: &FieldUpdate,
    context: &WriteContext<'_>,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let change = relation_change(schema, update)?;
    if !(context.table_exists)(&change.table) {
        ensure_join_table(conn, &update.field, &schema.class_name, changes)?;
    }
    let table = quote_ident(&change.table);
    if !change.add.is_empty() {
        let mut insert = conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table} (\"owningId\", \"relatedId\") VALUES (?, ?)"
        ))?;
        for related_id in change.add {
            insert.execute([object_id, related_id.as_str()])?;
        }
    }
    if !change.remove.is_empty() {
        let mut delete = conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE \"owningId\" = ? AND \"relatedId\" = ?"
        ))?;
        for related_id in change.remove {
            delete.execute([object_id, related_id.as_str()])?;
        }
    }
    Ok(())
}

/// The object with this id if it passes `guard`, else `ObjectNotFound`.
fn current(
    conn: &Connection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    context: &WriteContext<'_>,
) -> StoreResult<Object> {
    if !(context.table_exists)(&schema.class_name) {
        return Err(StoreError::ObjectNotFound);
    }
    let (out, projection) =
        select::by_id::<SqliteDialect>(schema, object_id, guard, context.table_exists, false)?;
    select_objects(conn, &out, &projection)?
        .pop()
        .ok_or(StoreError::ObjectNotFound)
}
