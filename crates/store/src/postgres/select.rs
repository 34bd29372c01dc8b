//! Whole read statements: the select list of a projection, WHERE, ORDER BY, LIMIT/OFFSET.

use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;

use crate::error::StoreResult;
use crate::layout::DEFAULT_COLUMNS;
use crate::postgres::rows::{PgBind, PgSql, Projection};
use crate::postgres::translate::Translator;

/// `SELECT <projection> FROM "class" AS t0`, leaving the builder ready for a WHERE.
fn select_from(out: &mut PgSql, class_name: &str, projection: &Projection) -> String {
    let alias = out.alias("t");
    out.push("SELECT ");
    let field_columns = projection.columns.iter().map(|(name, _)| name.as_str());
    for (index, column) in DEFAULT_COLUMNS.into_iter().chain(field_columns).enumerate() {
        if index > 0 {
            out.push(", ");
        }
        out.column(&alias, column);
    }
    out.push(" FROM ");
    out.ident(class_name);
    out.push(" AS ");
    out.push(&alias);
    alias
}

/// The statement of a find, and the projection that decodes its rows.
pub(crate) fn find(
    schema: &ClassSchema,
    query: &FindQuery,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<(PgSql, Projection)> {
    let projection = Projection::new(schema, query.keys.as_deref());
    let mut out = PgSql::new();
    let alias = select_from(&mut out, &schema.class_name, &projection);
    out.push(" WHERE ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(&query.filter, &schema.class_name, &alias);
    translator.order(&query.order, &alias);
    let mut out = translator.finish()?;
    if let Some(limit) = query.limit {
        out.push(" LIMIT ");
        out.param(PgBind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    if query.skip > 0 {
        out.push(" OFFSET ");
        out.param(PgBind::Int(i64::try_from(query.skip).unwrap_or(i64::MAX)));
    }
    Ok((out, projection))
}

/// `SELECT COUNT(*)` of the objects matching `filter`.
pub(crate) fn count(
    schema: &ClassSchema,
    filter: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<PgSql> {
    let mut out = PgSql::new();
    let alias = out.alias("t");
    out.push("SELECT COUNT(*) FROM ");
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&alias);
    out.push(" WHERE ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(filter, &schema.class_name, &alias);
    translator.finish()
}

/// The whole object with this id if it satisfies `guard`, its row locked until the
/// transaction ends so that concurrent updates apply one after the other.
pub(crate) fn by_id_for_update(
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<(PgSql, Projection)> {
    let projection = Projection::new(schema, None);
    let mut out = PgSql::new();
    let alias = select_from(&mut out, &schema.class_name, &projection);
    out.push(" WHERE ");
    out.column(&alias, "objectId");
    out.push(" = ");
    out.text(object_id);
    out.push(" AND ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(guard, &schema.class_name, &alias);
    let mut out = translator.finish()?;
    // A waiting transaction re-checks the WHERE (the guard too) on the row as committed by
    // the one it waited for.
    out.push(" FOR UPDATE OF ");
    out.push(&alias);
    Ok((out, projection))
}
