//! Whole read statements: the select list of a projection, WHERE, ORDER BY, LIMIT/OFFSET.

use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;

use crate::sql::{Bind, SqlBuilder};
use crate::sqlite::rows::{DEFAULT_COLUMNS, Projection};
use crate::sqlite::translate::Translator;

/// `SELECT <projection> FROM "class" AS t0`, leaving the builder ready for a WHERE.
fn select_from(out: &mut SqlBuilder, class_name: &str, projection: &Projection) -> String {
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
) -> (SqlBuilder, Projection) {
    let projection = Projection::new(schema, query.keys.as_deref());
    let mut out = SqlBuilder::new();
    let alias = select_from(&mut out, &schema.class_name, &projection);
    out.push(" WHERE ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(&query.filter, &schema.class_name, &alias);
    translator.order(&query.order, &alias);
    let mut out = translator.out;
    // SQLite reads a negative LIMIT as "no limit", which is the only way to give an
    // OFFSET alone.
    let limit = query
        .limit
        .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    if limit >= 0 || query.skip > 0 {
        out.push(" LIMIT ");
        out.param(Bind::Integer(limit));
    }
    if query.skip > 0 {
        out.push(" OFFSET ");
        out.param(Bind::Integer(i64::try_from(query.skip).unwrap_or(i64::MAX)));
    }
    (out, projection)
}

/// `SELECT COUNT(*)` of the objects matching `filter`.
pub(crate) fn count(
    schema: &ClassSchema,
    filter: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
) -> SqlBuilder {
    let mut out = SqlBuilder::new();
    let alias = out.alias("t");
    out.push("SELECT COUNT(*) FROM ");
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&alias);
    out.push(" WHERE ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(filter, &schema.class_name, &alias);
    translator.out
}

/// The whole object with this id, if it satisfies `guard`.
pub(crate) fn by_id(
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
) -> (SqlBuilder, Projection) {
    let projection = Projection::new(schema, None);
    let mut out = SqlBuilder::new();
    let alias = select_from(&mut out, &schema.class_name, &projection);
    out.push(" WHERE ");
    out.column(&alias, "objectId");
    out.push(" = ");
    out.text(object_id);
    out.push(" AND ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(guard, &schema.class_name, &alias);
    (translator.out, projection)
}
