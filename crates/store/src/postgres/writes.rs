//! One [`Write`] executed inside a PostgreSQL transaction; the statements come from
//! `crate::writes`.
//!
//! Updates and deletes first read the row `FOR UPDATE` with the guard in the WHERE clause:
//! the row stays locked until the transaction ends, so a concurrent update of the same
//! object waits, then reads the state this one committed (PostgreSQL re-checks the WHERE on
//! it), and increments and array ops compose. The ops themselves are applied in Rust
//! (`parlor_core::ops`), as in SQLite, so both backends compute the same results.
//!
//! The `match` over [`Write`] mirrors SQLite's (`crate::sqlite::writes`) on purpose: what
//! both compute is `crate::writes`'s; running it (async here, sync there) and the relation
//! rows (one `unnest` array here, a prepared statement per id there) really differ.

use parlor_core::object::Object;
use parlor_core::ops::FieldUpdate;
use parlor_core::query::Filter;
use parlor_core::schema::ClassSchema;
use sqlx_postgres::PgConnection;

use crate::ddl::TableChanges;
use crate::error::{StoreError, StoreResult};
use crate::postgres::ddl::ensure_join_table;
use crate::postgres::dialect::PgDialect;
use crate::postgres::rows::{PgBind, PgSql};
use crate::postgres::{execute, select_objects};
use crate::select;
use crate::writes::{self, relation_change};
use crate::{Write, WriteOutcome};

/// Which tables exist, for guards with subqueries and for join tables.
pub(crate) type TableExists<'a> = &'a (dyn Fn(&str) -> bool + Sync);

pub(crate) async fn apply(
    conn: &mut PgConnection,
    write: &Write,
    table_exists: TableExists<'_>,
    changes: &mut TableChanges,
) -> StoreResult<WriteOutcome> {
    match write {
        Write::Create {
            schema,
            object,
            relations,
        } => {
            execute(conn, &writes::insert::<PgDialect>(schema, object)?).await?;
            for relation in relations {
                let object_id = &object.object_id;
                apply_relation(conn, schema, object_id, relation, table_exists, changes).await?;
            }
            Ok(writes::created(schema, object))
        }
        Write::Update {
            schema,
            object_id,
            guard,
            updates,
            updated_at,
        } => {
            let before = current(conn, schema, object_id, guard, table_exists).await?;
            let plan = writes::plan_update::<PgDialect>(schema, &before, updates, updated_at)?;
            for relation in plan.relations {
                apply_relation(conn, schema, object_id, relation, table_exists, changes).await?;
            }
            execute(conn, &plan.statement).await?;
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
            let before = current(conn, schema, object_id, guard, table_exists).await?;
            for out in writes::delete_statements::<PgBind>(schema, object_id, table_exists) {
                execute(conn, &out).await?;
            }
            Ok(WriteOutcome::Deleted(before))
        }
    }
}

/// Inserts or deletes the join rows of a relation op; other ops are refused.
async fn apply_relation(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object_id: &str,
    update: &FieldUpdate,
    table_exists: TableExists<'_>,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let change = relation_change(schema, update)?;
    if !table_exists(&change.table) {
        ensure_join_table(conn, &update.field, &schema.class_name, changes).await?;
    }
    if !change.add.is_empty() {
        let mut out = PgSql::new();
        out.push("INSERT INTO ");
        out.ident(&change.table);
        out.push(" (\"owningId\", \"relatedId\") SELECT ");
        out.text(object_id);
        out.push(", unnest(");
        out.param(PgBind::TextArray(change.add.to_vec()));
        out.push(") ON CONFLICT DO NOTHING");
        execute(conn, &out).await?;
    }
    if !change.remove.is_empty() {
        let mut out = PgSql::new();
        out.push("DELETE FROM ");
        out.ident(&change.table);
        out.push(" WHERE \"owningId\" = ");
        out.text(object_id);
        out.push(" AND \"relatedId\" = ANY(");
        out.param(PgBind::TextArray(change.remove.to_vec()));
        out.push(")");
        execute(conn, &out).await?;
    }
    Ok(())
}

/// The object with this id if it passes `guard`, its row locked; else `ObjectNotFound`.
async fn current(
    conn: &mut PgConnection,
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: TableExists<'_>,
) -> StoreResult<Object> {
    if !table_exists(&schema.class_name) {
        return Err(StoreError::ObjectNotFound);
    }
    let (out, projection) =
        select::by_id::<PgDialect>(schema, object_id, guard, table_exists, true)?;
    select_objects(conn, &out, &projection)
        .await?
        .pop()
        .ok_or(StoreError::ObjectNotFound)
}
