//! One translator of [`Filter`] and [`SortKey`] into SQL with bound parameters, for every
//! backend: the structure of each operator is written once here, and what differs between
//! databases (placeholders, JSON access, array enumeration, regex, ACL columns, ordering of
//! JSON values) is a [`Dialect`] (`sqlite::dialect`, `postgres::dialect`).
//!
//! **Invariant:** the SQL agrees exactly with `parlor_core::query::matcher`; the agreement
//! property test compares the two on random objects and filters, on both backends.
//!
//! Three-valued logic: a translated predicate is *true*, or *false or NULL*, and NULL only
//! ever stands for false (an absent value). `AND` and `OR` preserve that reading, and a WHERE
//! clause drops NULL rows, so positive comparisons stay plain `col = ?` (which the planner
//! can serve from an index). Only negation needs care: every `NOT` is written as
//! `NOT COALESCE((…), FALSE)`.
//!
//! Values are never spliced into SQL: operands, JSON paths and patterns are all bound.
//! Identifiers are quoted, and every column is qualified with its table alias so a
//! subquery's columns can never resolve to an outer table.

use parlor_core::object::Acl;
use parlor_core::query::geo::{GeoCond, GeoPoint};
use parlor_core::query::regex::text_term_pattern;
use parlor_core::query::{Cond, FieldRef, Filter, Operand, SortKey, SubQuery};
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value};

use crate::error::{StoreError, StoreResult};
use crate::layout::{NULLS_COLUMN, has_column, is_default_field, is_json_column, join_table};
use crate::sql::{BindValue, SqlBuilder, quote_ident};
use crate::text_search;

/// What a column's values compare as in `$select`: equal kinds compare by stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarKind<'t> {
    String,
    Number,
    Boolean,
    Date,
    Pointer(&'t str),
}

/// A JSON value whose type is only known at run time: at a path inside a column (an empty
/// path is the column itself), or an item of an enumerated array.
#[derive(Clone, Copy)]
pub(crate) enum JsonLoc<'a> {
    Path { column: &'a str, path: &'a [String] },
    Item { alias: &'a str },
}

/// What one database writes differently. Each function appends to the statement of the
/// translator it is given; anything structural (which operand meets which kind of source,
/// negation, subqueries, relations) stays in [`Translator`].
pub(crate) trait Dialect: Sized {
    type Bind: BindValue;
    /// The SQL constants for true and false.
    const TRUE: &'static str;
    const FALSE: &'static str;

    /// The bound value a Number column is compared with.
    fn number(number: f64) -> Self::Bind;
    /// The bound value that stores `value` in the column of a field of `field_type`.
    fn encode_value(name: &str, field_type: &FieldType, value: &Value) -> StoreResult<Self::Bind>;
    /// The `_rperm` and `_wperm` values of an ACL (NULL for none: public).
    fn encode_acl(acl: Option<&Acl>) -> (Self::Bind, Self::Bind);
    /// The `_nulls` value: the fields of `fields` that are explicitly null.
    fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> Self::Bind;
    /// Appends ` LIMIT … OFFSET …` (nothing when there is neither).
    fn limit_offset(out: &mut SqlBuilder<Self::Bind>, limit: Option<u64>, skip: u64);
    /// ` = <flag>` as a Boolean column stores it.
    fn bool_eq(flag: bool) -> &'static str;
    /// `expr <flag>` for a list of texts: ` IN (?, ?)` or ` = ANY($1)`.
    fn text_in(t: &mut Translator<'_, Self>, values: Vec<String>);

    /// ORDER BY terms on a JSON value, in the order the matcher's comparison gives.
    fn order_json(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, descending: bool);

    /// The JSON value at `loc` is an array (NULL, i.e. false, for a missing path).
    fn json_is_array(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>);
    /// The path is missing or holds JSON null.
    fn json_absent(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>);
    /// The path exists (an explicit JSON null counts), or with `exists` false, does not.
    fn json_exists(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, exists: bool);
    /// The JSON value at `loc` (not its items) equals `op`.
    fn scalar_eq(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, op: &Operand);
    /// A JSON column `expr` equals `value` as a whole (same canonical text).
    fn whole_json_eq(t: &mut Translator<'_, Self>, expr: &str, value: &Value);
    /// The JSON value at `loc` is of `op`'s kind and compares to it with `operator`
    /// (`op` is a Number, String or Date).
    fn json_compare(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, op: &Operand, operator: &str);
    /// `alias(value)` enumerating the items of the array at `array`, over nothing when the
    /// value there is not an array.
    fn array_elements(t: &mut Translator<'_, Self>, array: &JsonLoc<'_>, item_alias: &str);
    /// The value at `loc` as the SQL scalar of `kind` (as the column of that kind stores it),
    /// NULL when it is of another kind. `kind` is String, Number or Boolean.
    fn json_scalar(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, kind: ScalarKind<'_>);
    /// The JSON pointer at `loc` targets the subquery's class and one of its results.
    fn pointer_in(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, query: &SubQuery);

    /// The String column `expr` matches `pattern` (Parse's regex dialect).
    fn column_matches(t: &mut Translator<'_, Self>, expr: &str, pattern: &str);
    /// The JSON value at `loc` is a string matching `pattern`.
    fn string_matches(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, pattern: &str);
    /// The String column `expr` equals `text` with ASCII letters folded.
    fn column_eq_ignore_case(t: &mut Translator<'_, Self>, expr: &str, text: &str);
    /// The JSON value at `loc` is a string equal to `text` with ASCII letters folded.
    fn json_eq_ignore_case(t: &mut Translator<'_, Self>, loc: &JsonLoc<'_>, text: &str);

    /// A bound float.
    fn float(value: f64) -> Self::Bind;
    /// The SQL expression of a coordinate (`"latitude"` or `"longitude"`) of the GeoPoint
    /// column `expr`, which holds the value's Parse JSON; constants only, no bound value.
    fn coordinate(expr: &str, name: &str) -> String;
    /// The great-circle distance in radians between the GeoPoint column `expr` and `point`,
    /// as `parlor_core::query::geo::distance` computes it.
    fn distance(t: &mut Translator<'_, Self>, expr: &str, point: GeoPoint);
    /// The GeoPoint column `expr` is inside `polygon` (edges included).
    fn in_polygon(t: &mut Translator<'_, Self>, expr: &str, polygon: &[GeoPoint]);
    /// The Polygon column `expr` contains `point` (edges included).
    fn polygon_contains(t: &mut Translator<'_, Self>, expr: &str, point: GeoPoint);
    /// ` NULLS …` after an ORDER BY term on a nullable expression, where the database's
    /// default does not already put NULL first ascending and last descending.
    fn nulls_order(descending: bool) -> &'static str;

    /// The list column `column` (an ACL or `_nulls`) holds one of `entries`.
    fn list_has_any(t: &mut Translator<'_, Self>, column: &str, entries: &[String]);

    /// Appends a condition that holds for every row of `class_name` (as `alias`) whose
    /// String column `field` contains each `$text` term as a word, and for few others,
    /// served by an index; the exact test is written beside it. False when the database
    /// has no such index for the field (nothing appended).
    fn text_prefilter(
        t: &mut Translator<'_, Self>,
        class_name: &str,
        alias: &str,
        field: &str,
        terms: &[String],
    ) -> bool;

    /// Appends the `$text` relevance of the String column `expr` to a search whose terms
    /// are the regex sources `patterns` (stop words matched by `stop`), as
    /// `parlor_core::query::regex::text_score` computes it (a float; 0 for NULL).
    fn text_score(
        out: &mut SqlBuilder<Self::Bind>,
        expr: &str,
        patterns: &[String],
        stop: Option<&str>,
    ) -> StoreResult<()>;
}

/// Where a condition's value comes from.
enum Source {
    /// The field does not exist (or has no column): absent on every object.
    Absent,
    /// A top-level column, `alias."name"`, of a known schema type.
    Column {
        expr: String,
        field_type: FieldType,
        /// For fields that can be stored as an explicit null: the row's `_nulls` column
        /// and the field's name, as `Exists` must tell that null from absent.
        nulls: Option<(String, String)>,
    },
    /// A value inside a JSON column at a path, typed only at run time.
    Json { column: String, path: Vec<String> },
}

/// Translates filters and orders into one statement under construction.
pub(crate) struct Translator<'a, D: Dialect> {
    pub(crate) out: SqlBuilder<D::Bind>,
    /// Whether a table exists: subqueries and relations over missing tables are empty.
    table_exists: &'a dyn Fn(&str) -> bool,
    /// The first part of the filter the database cannot take (a regex its engine refuses);
    /// the statement is then not run.
    error: Option<StoreError>,
}

impl<'a, D: Dialect> Translator<'a, D> {
    pub(crate) fn new(
        out: SqlBuilder<D::Bind>,
        table_exists: &'a dyn Fn(&str) -> bool,
    ) -> Translator<'a, D> {
        Translator {
            out,
            table_exists,
            error: None,
        }
    }

    /// The statement, or the error a part of the filter is.
    pub(crate) fn finish(self) -> Result<SqlBuilder<D::Bind>, StoreError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.out),
        }
    }

    /// Whether the table `name` exists.
    pub(crate) fn has_table(&self, name: &str) -> bool {
        (self.table_exists)(name)
    }

    /// Records why a part of the filter cannot be translated; the first one wins.
    pub(crate) fn fail(&mut self, error: StoreError) {
        self.error.get_or_insert(error);
    }

    /// Appends the predicate of `filter` over the table of `class_name` aliased `alias`.
    pub(crate) fn filter(&mut self, filter: &Filter, class_name: &str, alias: &str) {
        match filter {
            Filter::True => self.push(D::TRUE),
            Filter::False => self.push(D::FALSE),
            Filter::And(items) => self.join(items, " AND ", D::TRUE, class_name, alias),
            Filter::Or(items) => self.join(items, " OR ", D::FALSE, class_name, alias),
            Filter::Nor(items) => self.not(|t| t.join(items, " OR ", D::FALSE, class_name, alias)),
            Filter::Cond { field, cond } if field.is_relation() && field.path.is_empty() => {
                self.relation_cond(field, cond, class_name, alias);
            }
            // A field the schema does not know has no column, but an explicit null of it
            // may be listed in `_nulls` (`layout::explicit_nulls`), which `Exists` finds.
            Filter::Cond {
                field,
                cond: Cond::Exists(exists),
            } if field.field_type.is_none() && field.path.is_empty() => {
                let nulls = format!("{alias}.{}", quote_ident(NULLS_COLUMN));
                if *exists {
                    self.column_present("NULL", &nulls, &field.field);
                } else {
                    self.not(|t| t.column_present("NULL", &nulls, &field.field));
                }
            }
            Filter::Cond {
                field,
                cond: cond @ Cond::Text(terms),
            } if text_search::is_indexable(field, terms) => {
                let source = source(field, alias);
                self.push("(");
                if D::text_prefilter(self, class_name, alias, &field.field, terms) {
                    self.push(" AND ");
                }
                self.cond(&source, cond);
                self.push(")");
            }
            Filter::Cond { field, cond } => {
                let source = source(field, alias);
                self.cond(&source, cond);
            }
            Filter::RelatedTo {
                owner_class,
                owner_id,
                key,
            } => self.related_to(owner_class, owner_id, key, alias),
            Filter::InQuery {
                field,
                query,
                negate,
            } => {
                let source = source(field, alias);
                if *negate {
                    self.not(|t| t.in_query(&source, query));
                } else {
                    self.in_query(&source, query);
                }
            }
            Filter::Select {
                field,
                query,
                key,
                negate,
            } => {
                let source = source(field, alias);
                if *negate {
                    self.not(|t| t.select(&source, query, key));
                } else {
                    self.select(&source, query, key);
                }
            }
            Filter::Readable(group) => self.acl_check("_rperm", group, alias),
            Filter::Writable(group) => self.acl_check("_wperm", group, alias),
        }
    }

    /// Appends `ORDER BY …`: each key, then `objectId` as the tie-breaker in the direction
    /// of the last key, so that an index ending in `(…, createdAt, objectId)` serves it.
    ///
    /// With `by_score`, the select list's `"$score"` (a `$text` relevance) comes first,
    /// highest first.
    pub(crate) fn order(&mut self, order: &[SortKey], alias: &str, by_score: bool) {
        self.push(" ORDER BY ");
        let mut last_descending = false;
        let mut wrote_any = false;
        if by_score {
            self.push("\"$score\" DESC");
            last_descending = true;
            wrote_any = true;
        }
        let mut ends_with_object_id = false;
        for key in order {
            let source = source(&key.field, alias);
            match &source {
                Source::Absent => continue,
                Source::Column {
                    expr, field_type, ..
                } if key.near.is_some() => {
                    let (FieldType::GeoPoint, Some(point)) = (field_type, key.near) else {
                        continue;
                    };
                    if wrote_any {
                        self.push(", ");
                    }
                    D::distance(self, expr, point);
                    self.push(if key.descending { " DESC" } else { " ASC" });
                    self.push(D::nulls_order(key.descending));
                }
                Source::Column { expr, nulls, .. } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    self.push(expr);
                    self.push(if key.descending { " DESC" } else { " ASC" });
                    // The default columns are never NULL and keep the database's default
                    // NULLS placement, which a plain index scanned either way provides.
                    if nulls.is_some() {
                        self.push(D::nulls_order(key.descending));
                    }
                }
                Source::Json { .. } if key.near.is_some() => continue,
                Source::Json { column, path } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    D::order_json(self, &JsonLoc::Path { column, path }, key.descending);
                }
            }
            wrote_any = true;
            last_descending = key.descending;
            ends_with_object_id = key.field.field == "objectId" && key.field.path.is_empty();
        }
        if !wrote_any {
            self.out.column(alias, "createdAt");
            self.push(" ASC");
            wrote_any = true;
        }
        if !ends_with_object_id {
            if wrote_any {
                self.push(", ");
            }
            self.out.column(alias, "objectId");
            self.push(if last_descending { " DESC" } else { " ASC" });
        }
    }

    pub(crate) fn push(&mut self, text: &str) {
        self.out.push(text);
    }

    /// ` = 'name'` or ` IN ('a', 'b')` over constant names (never client data).
    pub(crate) fn is_one_of(&mut self, names: &[&str]) {
        if let [only] = names {
            self.push(" = '");
            self.push(only);
            self.push("'");
            return;
        }
        self.push(" IN (");
        for (index, name) in names.iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.push("'");
            self.push(name);
            self.push("'");
        }
        self.push(")");
    }

    /// `NOT COALESCE((inner), FALSE)`: a NULL (absent) inner value counts as false.
    pub(crate) fn not(&mut self, inner: impl FnOnce(&mut Translator<'a, D>)) {
        self.push("NOT COALESCE((");
        inner(self);
        self.push("), ");
        self.push(D::FALSE);
        self.push(")");
    }

    fn join(
        &mut self,
        items: &[Filter],
        separator: &str,
        empty: &str,
        class_name: &str,
        alias: &str,
    ) {
        if items.is_empty() {
            self.push(empty);
            return;
        }
        self.push("(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.push(separator);
            }
            self.filter(item, class_name, alias);
        }
        self.push(")");
    }

    /// Appends `(p1 <separator> p2 …)` over `items`, or false when there are none.
    fn each<T>(
        &mut self,
        items: &[T],
        separator: &str,
        mut each: impl FnMut(&mut Translator<'a, D>, &T),
    ) {
        if items.is_empty() {
            self.push(D::FALSE);
            return;
        }
        self.push("(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.push(separator);
            }
            each(self, item);
        }
        self.push(")");
    }

    /// `(p1 OR p2 …)`, or false when there are none.
    pub(crate) fn any<T>(&mut self, items: &[T], each: impl FnMut(&mut Translator<'a, D>, &T)) {
        self.each(items, " OR ", each);
    }

    /// `(p1 AND p2 …)`, or false when there are none (an empty `$all` matches nothing).
    pub(crate) fn all<T>(&mut self, items: &[T], each: impl FnMut(&mut Translator<'a, D>, &T)) {
        self.each(items, " AND ", each);
    }

    fn cond(&mut self, source: &Source, cond: &Cond) {
        match cond {
            Cond::Eq(op) => self.eq(source, op),
            Cond::Ne(op) => self.not(|t| t.eq(source, op)),
            Cond::Lt(op) => self.compare(source, op, "<"),
            Cond::Lte(op) => self.compare(source, op, "<="),
            Cond::Gt(op) => self.compare(source, op, ">"),
            Cond::Gte(op) => self.compare(source, op, ">="),
            Cond::In(ops) => self.any(ops, |t, op| t.eq(source, op)),
            Cond::Nin(ops) => self.not(|t| t.any(ops, |t, op| t.eq(source, op))),
            Cond::All(ops) => self.with_array(source, |t, array| {
                t.all(ops, |t, op| {
                    t.array_contains(array, |t, item| D::scalar_eq(t, item, op));
                });
            }),
            Cond::AllMatch(patterns) => self.with_array(source, |t, array| {
                t.all(patterns, |t, pattern| {
                    t.array_contains(array, |t, item| {
                        D::string_matches(t, item, &pattern.source);
                    });
                });
            }),
            Cond::ContainedBy(ops) => self.with_array(source, |t, array| {
                t.push("NOT EXISTS (SELECT 1 FROM ");
                let item_alias = t.out.alias("je");
                D::array_elements(t, array, &item_alias);
                t.push(" WHERE ");
                let item = JsonLoc::Item { alias: &item_alias };
                t.not(|t| t.any(ops, |t, op| D::scalar_eq(t, &item, op)));
                t.push(")");
            }),
            Cond::Exists(exists) => self.exists(source, *exists),
            Cond::Geo(geo) => match source {
                Source::Column {
                    expr,
                    field_type: FieldType::GeoPoint,
                    ..
                } if !geo.on_polygon() => self.geo(expr, geo),
                Source::Column {
                    expr,
                    field_type: FieldType::Polygon,
                    ..
                } if geo.on_polygon() => self.geo(expr, geo),
                _ => self.push(D::FALSE),
            },
            Cond::EqIgnoreCase(text) => self.eq_ignore_case(source, text),
            Cond::Regex(pattern) => self.regex(source, std::slice::from_ref(&pattern.source)),
            Cond::Text(terms) => {
                let patterns: Vec<String> =
                    terms.iter().map(|term| text_term_pattern(term)).collect();
                self.regex(source, &patterns);
            }
        }
    }

    /// Equality as the matcher defines it: same kind and value; on arrays, containment
    /// (or whole equality for an array operand); `Null` matches absent.
    fn eq(&mut self, source: &Source, op: &Operand) {
        match source {
            Source::Absent => self.push(if matches!(op, Operand::Null) {
                D::TRUE
            } else {
                D::FALSE
            }),
            Source::Column {
                expr, field_type, ..
            } => {
                if matches!(op, Operand::Null) {
                    self.push(expr);
                    self.push(" IS NULL");
                    return;
                }
                match (field_type, op) {
                    (FieldType::String, Operand::String(text))
                    | (FieldType::Date, Operand::Date(text)) => {
                        self.push(expr);
                        self.push(" = ");
                        self.out.text(text);
                    }
                    (FieldType::Number, Operand::Number(number)) => {
                        self.push(expr);
                        self.push(" = ");
                        self.out.param(D::number(*number));
                    }
                    (FieldType::Boolean, Operand::Bool(flag)) => {
                        self.push(expr);
                        self.push(D::bool_eq(*flag));
                    }
                    (
                        FieldType::Pointer(target),
                        Operand::Pointer {
                            class_name,
                            object_id,
                        },
                    ) if target == class_name => {
                        self.push(expr);
                        self.push(" = ");
                        self.out.text(object_id);
                    }
                    (FieldType::Array, Operand::Json(value @ Value::Array(_))) => {
                        D::whole_json_eq(self, expr, value);
                    }
                    (FieldType::Array, _) => {
                        let array = JsonLoc::Path {
                            column: expr,
                            path: &[],
                        };
                        self.array_contains(&array, |t, item| D::scalar_eq(t, item, op));
                    }
                    (field_type, Operand::Json(value)) if is_json_column(field_type) => {
                        D::whole_json_eq(self, expr, value);
                    }
                    _ => self.push(D::FALSE),
                }
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                match op {
                    Operand::Null => D::json_absent(self, &here),
                    Operand::Json(Value::Array(_)) => D::scalar_eq(self, &here, op),
                    _ => {
                        self.push("(");
                        D::scalar_eq(self, &here, op);
                        self.push(" OR ");
                        self.json_array_contains(&here, |t, item| D::scalar_eq(t, item, op));
                        self.push(")");
                    }
                }
            }
        }
    }

    /// `<`, `<=`, `>`, `>=` between scalars of the operand's kind; anything else is false.
    fn compare(&mut self, source: &Source, op: &Operand, operator: &str) {
        if !matches!(
            op,
            Operand::Number(_) | Operand::String(_) | Operand::Date(_)
        ) {
            self.push(D::FALSE);
            return;
        }
        match source {
            Source::Absent => self.push(D::FALSE),
            Source::Column {
                expr, field_type, ..
            } => {
                let bind = match (field_type, op) {
                    (FieldType::Number, Operand::Number(number)) => D::number(*number),
                    (FieldType::String, Operand::String(text))
                    | (FieldType::Date, Operand::Date(text)) => D::Bind::text(text.clone()),
                    _ => {
                        self.push(D::FALSE);
                        return;
                    }
                };
                self.push(expr);
                self.push(" ");
                self.push(operator);
                self.push(" ");
                self.out.param(bind);
            }
            Source::Json { column, path } => {
                self.push("(");
                D::json_compare(self, &JsonLoc::Path { column, path }, op, operator);
                self.push(")");
            }
        }
    }

    fn exists(&mut self, source: &Source, exists: bool) {
        match source {
            Source::Absent => self.push(if exists { D::FALSE } else { D::TRUE }),
            Source::Column {
                expr, nulls: None, ..
            } => {
                self.push(expr);
                self.push(if exists { " IS NOT NULL" } else { " IS NULL" });
            }
            Source::Column {
                expr,
                nulls: Some((nulls, name)),
                ..
            } => {
                if exists {
                    self.column_present(expr, nulls, name);
                } else {
                    self.not(|t| t.column_present(expr, nulls, name));
                }
            }
            Source::Json { column, path } => {
                D::json_exists(self, &JsonLoc::Path { column, path }, exists);
            }
        }
    }

    /// The column holds a value, or the field is listed in `_nulls` as an explicit null.
    fn column_present(&mut self, expr: &str, nulls: &str, name: &str) {
        self.push("(");
        self.push(expr);
        self.push(" IS NOT NULL OR ");
        D::list_has_any(self, nulls, &[name.to_owned()]);
        self.push(")");
    }

    /// The value is a string matching every pattern.
    fn regex(&mut self, source: &Source, patterns: &[String]) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::String,
                ..
            } => self.all(patterns, |t, pattern| D::column_matches(t, expr, pattern)),
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.all(patterns, |t, pattern| D::string_matches(t, &here, pattern));
            }
            _ => self.push(D::FALSE),
        }
    }

    /// Runs `inner` with the array the source holds, guarded by "is an array";
    /// a source that cannot hold an array gives false.
    fn with_array(
        &mut self,
        source: &Source,
        inner: impl FnOnce(&mut Translator<'a, D>, &JsonLoc<'_>),
    ) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::Array,
                ..
            } => {
                self.push("(");
                self.push(expr);
                self.push(" IS NOT NULL AND ");
                inner(
                    self,
                    &JsonLoc::Path {
                        column: expr,
                        path: &[],
                    },
                );
                self.push(")");
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                D::json_is_array(self, &here);
                self.push(" AND ");
                inner(self, &here);
                self.push(")");
            }
            _ => self.push(D::FALSE),
        }
    }

    /// A geo condition on a GeoPoint column (a Polygon column for `PolygonContains`). A
    /// latitude band (exact: a point within `d` radians is within `d` of latitude) comes
    /// before the distance, so an index on the latitude narrows the rows.
    fn geo(&mut self, expr: &str, geo: &GeoCond) {
        let latitude = D::coordinate(expr, "latitude");
        let longitude = D::coordinate(expr, "longitude");
        let between = |t: &mut Translator<'a, D>, what: &str, a: f64, b: f64| {
            t.push(what);
            t.push(" BETWEEN ");
            t.out.param(D::float(a.min(b)));
            t.push(" AND ");
            t.out.param(D::float(a.max(b)));
        };
        let within = |t: &mut Translator<'a, D>, center: GeoPoint, radius: f64| {
            let (low, high) = latitude_band(center, radius);
            t.push("(");
            between(t, &latitude, low, high);
            t.push(" AND ");
            if let Some((west, east)) = longitude_band(center, radius) {
                between(t, &longitude, west, east);
                t.push(" AND ");
            }
            D::distance(t, expr, center);
            t.push(" <= ");
            t.out.param(D::float(radius));
            t.push(")");
        };
        match geo {
            GeoCond::Near {
                point,
                max_distance: Some(max),
            } => within(self, *point, *max),
            GeoCond::Near {
                max_distance: None, ..
            } => {
                self.push(expr);
                self.push(" IS NOT NULL");
            }
            GeoCond::WithinSphere { center, radius } => within(self, *center, *radius),
            GeoCond::WithinBox {
                south_west,
                north_east,
            } => {
                self.push("(");
                between(self, &latitude, south_west.latitude, north_east.latitude);
                self.push(" AND ");
                between(self, &longitude, south_west.longitude, north_east.longitude);
                self.push(")");
            }
            GeoCond::WithinPolygon(polygon) => D::in_polygon(self, expr, polygon),
            GeoCond::PolygonContains(point) => D::polygon_contains(self, expr, *point),
        }
    }

    /// `EXISTS (SELECT 1 FROM <items of array> WHERE item_matches)`.
    fn array_contains(
        &mut self,
        array: &JsonLoc<'_>,
        item_matches: impl FnOnce(&mut Translator<'a, D>, &JsonLoc<'_>),
    ) {
        self.push("EXISTS (SELECT 1 FROM ");
        let item_alias = self.out.alias("je");
        D::array_elements(self, array, &item_alias);
        self.push(" WHERE ");
        item_matches(self, &JsonLoc::Item { alias: &item_alias });
        self.push(")");
    }

    /// The value at `loc` is an array with an item that matches.
    fn json_array_contains(
        &mut self,
        loc: &JsonLoc<'_>,
        item_matches: impl FnOnce(&mut Translator<'a, D>, &JsonLoc<'_>),
    ) {
        self.push("(");
        D::json_is_array(self, loc);
        self.push(" AND ");
        self.array_contains(loc, item_matches);
        self.push(")");
    }

    /// No ACL, or one of `group` is among the entries of `column`.
    fn acl_check(&mut self, column: &str, group: &[String], alias: &str) {
        self.push("(");
        self.out.column(alias, column);
        self.push(" IS NULL");
        if !group.is_empty() {
            self.push(" OR ");
            let expr = format!("{alias}.{}", quote_ident(column));
            D::list_has_any(self, &expr, group);
        }
        self.push(")");
    }

    /// A string equal to `text` with ASCII letters folded, as `str::eq_ignore_ascii_case`.
    fn eq_ignore_case(&mut self, source: &Source, text: &str) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::String,
                ..
            } => D::column_eq_ignore_case(self, expr, text),
            Source::Json { column, path } => {
                D::json_eq_ignore_case(self, &JsonLoc::Path { column, path }, text);
            }
            _ => self.push(D::FALSE),
        }
    }

    /// A condition on a Relation field of `class_name`: `Eq`/`In` of pointers are membership
    /// in the field's join table, `Ne`/`Nin` their negation. A pointer to another class than
    /// the relation's target, any other operand, and a missing join table hold nothing.
    /// Other conditions read the field as absent (it has no column).
    fn relation_cond(&mut self, field: &FieldRef, cond: &Cond, class_name: &str, alias: &str) {
        let Some(FieldType::Relation(target)) = &field.field_type else {
            self.cond(&Source::Absent, cond);
            return;
        };
        let member_ids = |operands: &[Operand]| -> Vec<String> {
            operands
                .iter()
                .filter_map(|operand| match operand {
                    Operand::Pointer {
                        class_name,
                        object_id,
                    } if class_name == target => Some(object_id.clone()),
                    _ => None,
                })
                .collect()
        };
        let table = join_table(&field.field, class_name);
        let (ids, negate) = match cond {
            Cond::Eq(operand) => (member_ids(std::slice::from_ref(operand)), false),
            Cond::Ne(operand) => (member_ids(std::slice::from_ref(operand)), true),
            Cond::In(operands) => (member_ids(operands), false),
            Cond::Nin(operands) => (member_ids(operands), true),
            _ => {
                self.cond(&Source::Absent, cond);
                return;
            }
        };
        if ids.is_empty() || !(self.table_exists)(&table) {
            self.push(if negate { D::TRUE } else { D::FALSE });
            return;
        }
        if negate {
            self.push("NOT ");
        }
        // `objectId IN (SELECT owningId …)` rather than a correlated EXISTS: the join table's
        // `relatedId` index finds the few owners, whose rows are then looked up by key,
        // instead of probing the join table once per row of the class. Neither column is
        // ever NULL, so the IN is exactly true or false.
        let join_alias = self.out.alias("j");
        self.out.column(alias, "objectId");
        self.push(" IN (SELECT ");
        self.out.column(&join_alias, "owningId");
        self.push(" FROM ");
        self.out.ident(&table);
        self.push(" AS ");
        self.push(&join_alias);
        self.push(" WHERE ");
        self.out.column(&join_alias, "relatedId");
        if let [id] = ids.as_slice() {
            self.push(" = ");
            self.out.text(id);
        } else {
            D::text_in(self, ids);
        }
        self.push(")");
    }

    fn related_to(&mut self, owner_class: &str, owner_id: &str, key: &str, alias: &str) {
        let table = join_table(key, owner_class);
        if !(self.table_exists)(&table) {
            self.push(D::FALSE);
            return;
        }
        let join_alias = self.out.alias("j");
        self.out.column(alias, "objectId");
        self.push(" IN (SELECT ");
        self.out.column(&join_alias, "relatedId");
        self.push(" FROM ");
        self.out.ident(&table);
        self.push(" AS ");
        self.push(&join_alias);
        self.push(" WHERE ");
        self.out.column(&join_alias, "owningId");
        self.push(" = ");
        self.out.text(owner_id);
        self.push(")");
    }

    /// Appends `(SELECT alias."column" FROM "class" AS alias WHERE <filter>)`, keeping only
    /// rows where the column is set when `require_value`.
    pub(crate) fn subquery(&mut self, query: &SubQuery, column: &str, require_value: bool) {
        let sub_alias = self.out.alias("t");
        self.push("(SELECT ");
        self.out.column(&sub_alias, column);
        self.push(" FROM ");
        self.out.ident(&query.class_name);
        self.push(" AS ");
        self.push(&sub_alias);
        self.push(" WHERE (");
        self.filter(&query.filter, &query.class_name, &sub_alias);
        self.push(")");
        if require_value {
            // `x IN (…)` over a set holding NULL is NULL rather than false when x is not
            // found; leaving NULLs out keeps `$dontSelect` exact.
            self.push(" AND ");
            self.out.column(&sub_alias, column);
            self.push(" IS NOT NULL");
        }
        self.push(")");
    }

    /// The pointer (or an item of the array of pointers) at `source` is among the objects
    /// the subquery returns.
    fn in_query(&mut self, source: &Source, query: &SubQuery) {
        if !(self.table_exists)(&query.class_name) {
            self.push(D::FALSE);
            return;
        }
        match source {
            Source::Column {
                expr,
                field_type: FieldType::Pointer(target),
                ..
            } => {
                if *target != query.class_name {
                    self.push(D::FALSE);
                    return;
                }
                self.push(expr);
                self.push(" IN ");
                self.subquery(query, "objectId", false);
            }
            Source::Column {
                expr,
                field_type: FieldType::Array,
                ..
            } => {
                let array = JsonLoc::Path {
                    column: expr,
                    path: &[],
                };
                self.array_contains(&array, |t, item| D::pointer_in(t, item, query));
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                D::pointer_in(self, &here, query);
                self.push(" OR ");
                self.json_array_contains(&here, |t, item| D::pointer_in(t, item, query));
                self.push(")");
            }
            _ => self.push(D::FALSE),
        }
    }

    /// The value at `source` is among the set `key` values of the subquery's results.
    /// Both sides must be of the same scalar kind; anything else is false.
    fn select(&mut self, source: &Source, query: &SubQuery, key: &FieldRef) {
        let key_kind = match (&key.field_type, key.path.is_empty()) {
            (Some(key_type), true) => scalar_kind(key_type),
            _ => None,
        };
        let Some(key_kind) = key_kind else {
            self.push(D::FALSE);
            return;
        };
        if !(self.table_exists)(&query.class_name) {
            self.push(D::FALSE);
            return;
        }
        match source {
            Source::Column {
                expr, field_type, ..
            } if scalar_kind(field_type) == Some(key_kind) => {
                self.push(expr);
            }
            Source::Json { column, path }
                if matches!(
                    key_kind,
                    ScalarKind::String | ScalarKind::Number | ScalarKind::Boolean
                ) =>
            {
                D::json_scalar(self, &JsonLoc::Path { column, path }, key_kind);
            }
            _ => {
                self.push(D::FALSE);
                return;
            }
        }
        self.push(" IN ");
        self.subquery(query, &key.field, true);
    }
}

fn scalar_kind(field_type: &FieldType) -> Option<ScalarKind<'_>> {
    match field_type {
        FieldType::String => Some(ScalarKind::String),
        FieldType::Number => Some(ScalarKind::Number),
        FieldType::Boolean => Some(ScalarKind::Boolean),
        FieldType::Date => Some(ScalarKind::Date),
        FieldType::Pointer(target) => Some(ScalarKind::Pointer(target)),
        _ => None,
    }
}

/// The latitudes (degrees) a point within `radius` radians of `center` can have, widened by
/// a hair so that rounding never drops a point the exact distance keeps.
pub(crate) fn latitude_band(center: GeoPoint, radius: f64) -> (f64, f64) {
    let reach = radius.to_degrees() + 1e-9;
    (
        (center.latitude - reach).max(-90.0),
        (center.latitude + reach).min(90.0),
    )
}

/// The longitudes (degrees) a point within `radius` radians of `center` can have — the
/// spherical bounding box's, exact: the widest reach east or west is `asin(sin r / cos φ)` —
/// widened by a hair; `None` when the circle reaches a pole or crosses the ±180° meridian
/// (every longitude may then be in).
pub(crate) fn longitude_band(center: GeoPoint, radius: f64) -> Option<(f64, f64)> {
    let latitude = center.latitude.to_radians();
    if radius <= 0.0 {
        return Some((center.longitude - 1e-9, center.longitude + 1e-9));
    }
    if latitude.abs() + radius >= std::f64::consts::FRAC_PI_2 {
        return None;
    }
    let reach = (radius.sin() / latitude.cos()).asin().to_degrees() + 1e-9;
    let (west, east) = (center.longitude - reach, center.longitude + reach);
    (west >= -180.0 && east <= 180.0).then_some((west, east))
}

/// Resolves a field reference to where its value lives. As in the matcher, a field the
/// schema does not have is absent, and a path reaches only into Object fields.
fn source(field: &FieldRef, alias: &str) -> Source {
    let Some(field_type) = &field.field_type else {
        return Source::Absent;
    };
    if !has_column(field_type) {
        return Source::Absent;
    }
    let expr = format!("{alias}.{}", quote_ident(&field.field));
    if field.path.is_empty() {
        let nulls = (!is_default_field(&field.field)).then(|| {
            (
                format!("{alias}.{}", quote_ident(NULLS_COLUMN)),
                field.field.clone(),
            )
        });
        return Source::Column {
            expr,
            field_type: field_type.clone(),
            nulls,
        };
    }
    if *field_type != FieldType::Object {
        return Source::Absent;
    }
    Source::Json {
        column: expr,
        path: field.path.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every point within the radius lies inside both bands (the SQL prefilter never drops a
    /// point the distance keeps), checked on a grid around centres at many latitudes.
    #[test]
    fn the_bounding_bands_hold_every_point_within_the_radius() {
        let mut checked = 0;
        for center_latitude in [-80.0, -45.0, -10.0, 0.0, 33.3, 60.0, 85.0] {
            for radius in [1e-4, 1e-3, 0.01, 0.1, 0.5] {
                let center = GeoPoint {
                    latitude: center_latitude,
                    longitude: 20.0,
                };
                let (low, high) = latitude_band(center, radius);
                let band = longitude_band(center, radius);
                let reach = radius.to_degrees() * 3.0;
                for i in 0..=200 {
                    for j in 0..=200 {
                        let point = GeoPoint {
                            latitude: (center.latitude - reach
                                + reach * 2.0 * f64::from(i) / 200.0)
                                .clamp(-90.0, 90.0),
                            longitude: center.longitude
                                + (-reach * 20.0 + reach * 40.0 * f64::from(j) / 200.0)
                                    .clamp(-179.0, 179.0),
                        };
                        if parlor_core::query::geo::distance(center, point) > radius {
                            continue;
                        }
                        checked += 1;
                        assert!((low..=high).contains(&point.latitude), "{point:?}");
                        if let Some((west, east)) = band {
                            assert!(
                                (west..=east).contains(&point.longitude),
                                "{point:?} outside {west}..{east} (centre {center:?}, r {radius})"
                            );
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "the grid reached too few points: {checked}");
        // Near a pole, or across the ±180° meridian, no longitude band is used.
        let polar = GeoPoint {
            latitude: 89.0,
            longitude: 0.0,
        };
        assert_eq!(longitude_band(polar, 0.1), None);
        let dateline = GeoPoint {
            latitude: 0.0,
            longitude: 179.9,
        };
        assert_eq!(longitude_band(dateline, 0.01), None);
    }
}
