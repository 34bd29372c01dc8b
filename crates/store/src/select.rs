//! Whole read statements for every backend: the select list of a projection, WHERE,
//! ORDER BY, LIMIT/OFFSET, written once over a [`Dialect`]. What a selected row is read back
//! as is `selected`; how a column is read, each backend's (`rows.rs`).

use std::borrow::Cow;

use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value};

use crate::error::StoreResult;
use crate::layout::{DEFAULT_COLUMNS, UntypedNulls, field_columns, relation_marker};
use crate::sql::{BindValue, SqlBuilder, quote_ident};
use crate::translate::{Dialect, Translator};

/// What a select returns, in column order after the default columns.
///
/// It owns its names and types (rather than borrowing the schema) so that a read can be
/// sent, with its statement, to a reader thread.
pub(crate) struct Projection {
    /// Field columns selected, with their types.
    pub(crate) columns: Vec<(String, FieldType)>,
    /// The `{"__type":"Relation"}` marker of each selected relation field, added to every
    /// object.
    pub(crate) relations: Vec<(String, Value)>,
    /// The explicit nulls of fields the schema does not know, read from `_nulls`.
    pub(crate) untyped_nulls: UntypedNulls,
}

impl Projection {
    /// Every field, or only `keys` (plus the default fields) when given.
    pub(crate) fn new(schema: &ClassSchema, keys: Option<&[String]>) -> Projection {
        let wanted = |name: &str| keys.is_none_or(|keys| keys.iter().any(|key| key == name));
        let columns = field_columns(schema)
            .filter(|(name, _)| wanted(name))
            .map(|(name, field_type)| (name.to_owned(), field_type.clone()))
            .collect();
        let relations = schema
            .fields
            .iter()
            .filter_map(|(name, field)| match &field.field_type {
                FieldType::Relation(target) if wanted(name) => {
                    Some((name.clone(), relation_marker(target)))
                }
                _ => None,
            })
            .collect();
        Projection {
            columns,
            relations,
            untyped_nulls: UntypedNulls::new(schema, keys),
        }
    }

    /// The default columns, then the projection's field columns.
    pub(crate) fn column_names(&self) -> impl Iterator<Item = &str> {
        let field_columns = self.columns.iter().map(|(name, _)| name.as_str());
        DEFAULT_COLUMNS.into_iter().chain(field_columns)
    }

    /// The fields of a selected row: each field column's value as `column` decodes it (given
    /// the column's index in the row and the field's type), an explicit null where the
    /// column is NULL and `nulls` (the row's `_nulls`) names the field, the untyped nulls,
    /// and the relation markers. Reading a column is the backend's; what the columns add up
    /// to is the same for both, so it is written once here.
    pub(crate) fn fields(
        &self,
        nulls: &[Cow<'_, str>],
        mut column: impl FnMut(usize, &FieldType) -> StoreResult<Option<Value>>,
    ) -> StoreResult<Map<String, Value>> {
        let mut fields = Map::new();
        for (index, (name, field_type)) in self.columns.iter().enumerate() {
            if let Some(value) = column(DEFAULT_COLUMNS.len() + index, field_type)? {
                fields.insert(name.clone(), value);
            } else if nulls.iter().any(|null| null == name) {
                fields.insert(name.clone(), Value::Null);
            }
        }
        self.untyped_nulls.add(nulls, &mut fields);
        for (name, marker) in &self.relations {
            fields.insert(name.clone(), marker.clone());
        }
        Ok(fields)
    }
}

/// Appends `SELECT <projection> FROM "class" AS t0`, leaving the builder ready for a WHERE;
/// returns the alias.
pub(crate) fn select_from<B: BindValue>(
    out: &mut SqlBuilder<B>,
    class_name: &str,
    projection: &Projection,
) -> String {
    select_from_with(out, class_name, projection, |_, _| {})
}

/// [`select_from`], with `more` appending further select items (reading the table as the
/// alias it is given) after the projection's columns.
pub(crate) fn select_from_with<B: BindValue>(
    out: &mut SqlBuilder<B>,
    class_name: &str,
    projection: &Projection,
    more: impl FnOnce(&mut SqlBuilder<B>, &str),
) -> String {
    let alias = out.alias("t");
    out.push("SELECT ");
    for (index, column) in projection.column_names().enumerate() {
        if index > 0 {
            out.push(", ");
        }
        out.column(&alias, column);
    }
    more(out, &alias);
    out.push(" FROM ");
    out.ident(class_name);
    out.push(" AS ");
    out.push(&alias);
    alias
}

/// The statement of a find, and the projection that decodes its rows.
pub(crate) fn find<D: Dialect>(
    schema: &ClassSchema,
    query: &FindQuery,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<(SqlBuilder<D::Bind>, Projection)> {
    let mut projection = Projection::new(schema, query.keys.as_deref());
    let mut out = SqlBuilder::new();
    let mut scored = Ok(());
    let alias = select_from_with(&mut out, &schema.class_name, &projection, |out, alias| {
        if let Some(score) = &query.score {
            // The relevance, read back as the Number field `score`, as Parse answers it.
            out.push(", ");
            match &score.field.field_type {
                Some(FieldType::String) if score.field.path.is_empty() => {
                    let text = format!("{alias}.{}", quote_ident(&score.field.field));
                    scored =
                        D::text_score(out, &text, &score.patterns, score.stop_words.as_deref());
                }
                _ => {
                    out.push("0.0");
                }
            }
            out.push(" AS \"$score\"");
        }
    });
    scored?;
    // Read back only when asked for: an order by it needs the column, not the field.
    if query.score.as_ref().is_some_and(|score| score.keep) {
        projection
            .columns
            .push(("score".to_owned(), FieldType::Number));
    }
    out.push(" WHERE ");
    let mut translator = Translator::<D>::new(out, table_exists);
    translator.filter(&query.filter, &schema.class_name, &alias);
    let by_score = query.score.as_ref().is_some_and(|score| score.sort);
    translator.order(&query.order, &alias, by_score);
    let mut out = translator.finish()?;
    D::limit_offset(&mut out, query.limit, query.skip);
    Ok((out, projection))
}

/// `SELECT COUNT(*)` of the objects matching `filter`.
pub(crate) fn count<D: Dialect>(
    schema: &ClassSchema,
    filter: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<SqlBuilder<D::Bind>> {
    let mut out = SqlBuilder::new();
    let alias = out.alias("t");
    out.push("SELECT COUNT(*) FROM ");
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&alias);
    out.push(" WHERE ");
    let mut translator = Translator::<D>::new(out, table_exists);
    translator.filter(filter, &schema.class_name, &alias);
    translator.finish()
}

/// The whole object with this id, if it satisfies `guard`. With `for_update`, its row is
/// locked until the transaction ends (PostgreSQL: concurrent updates then apply one after
/// the other, and a waiting transaction re-checks the guard on the row as committed by the
/// one it waited for); SQLite's single writer needs no lock.
pub(crate) fn by_id<D: Dialect>(
    schema: &ClassSchema,
    object_id: &str,
    guard: &Filter,
    table_exists: &dyn Fn(&str) -> bool,
    for_update: bool,
) -> StoreResult<(SqlBuilder<D::Bind>, Projection)> {
    let projection = Projection::new(schema, None);
    let mut out = SqlBuilder::new();
    let alias = select_from(&mut out, &schema.class_name, &projection);
    out.push(" WHERE ");
    out.column(&alias, "objectId");
    out.push(" = ");
    out.text(object_id);
    out.push(" AND ");
    let mut translator = Translator::<D>::new(out, table_exists);
    translator.filter(guard, &schema.class_name, &alias);
    let mut out = translator.finish()?;
    if for_update {
        out.push(" FOR UPDATE OF ");
        out.push(&alias);
    }
    Ok((out, projection))
}
