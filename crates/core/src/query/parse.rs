//! Parse `where` JSON → [`Filter`]. (Being written.)
use std::sync::Arc;

use serde_json::Value;

use crate::error::Result;
use crate::query::ast::Filter;
use crate::schema::ClassSchema;

/// What the parser needs from outside: other classes' schemas (for subqueries) and the
/// caller's restrictions on a subquery's class (ACL, CLP).
pub trait QueryContext {
    fn schema(&self, class_name: &str) -> Option<Arc<ClassSchema>>;
    /// Conditions to AND into a subquery over `class_name`; an error refuses the subquery.
    fn restrict_subquery(&self, class_name: &str) -> Result<Filter>;
}

/// Parses a `where` object against the class schema.
pub fn parse_where(
    _where_json: &Value,
    _schema: &ClassSchema,
    _ctx: &dyn QueryContext,
) -> Result<Filter> {
    Ok(Filter::True)
}
