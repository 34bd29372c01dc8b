//! The PostgreSQL dialect of [`Filter`] and [`SortKey`]: SQL text with bound parameters.
//!
//! **Invariant:** the SQL agrees exactly with `parlor_core::query::matcher`; the agreement
//! property test runs against PostgreSQL too.
//!
//! It follows the SQLite translator node for node (see `sqlite::translate` for the reasoning
//! on three-valued logic: a predicate is true, or false-or-NULL, and every `NOT` is written
//! `NOT COALESCE((…), FALSE)`). What differs is the dialect:
//! - JSON values are `jsonb`. A path descends with `->` and a bound key per level, which
//!   reaches only into objects (a text key on an array gives NULL), as the matcher's paths do.
//!   Kinds are `jsonb_typeof`; numbers and strings compare as jsonb (numbers numerically,
//!   strings exactly), string order is taken on the extracted text in the `"C"` collation.
//! - Whole-JSON equality compares `jsonb` text: jsonb equality would call `1` and `1.0` equal,
//!   which `serde_json` (and so the matcher) does not; jsonb keeps the number's text.
//! - PostgreSQL does not promise to evaluate `AND` left to right, so anything that could fail
//!   on a value of the wrong kind (a cast, `jsonb_array_elements`) sits inside a `CASE`.
//! - Regexes are rewritten for PostgreSQL's engine ([`super::regex`]).
//! - ACLs are `text[]`: `Readable`/`Writable` are array overlap (`&&`), which a GIN index serves.

use parlor_core::query::regex::text_term_pattern;
use parlor_core::query::{Cond, FieldRef, Filter, Operand, SortKey, SubQuery};
use parlor_core::schema::FieldType;
use serde_json::Value;

use crate::error::StoreError;
use crate::layout::{NULLS_COLUMN, has_column, is_default_field, is_json_column, join_table};
use crate::postgres::regex::to_postgres;
use crate::postgres::rows::{PgBind, PgSql};
use crate::sql::quote_ident;

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

/// A JSON value whose type is only known at run time: at a path inside a column, or an
/// item of `jsonb_array_elements`.
#[derive(Clone, Copy)]
enum JsonLoc<'a> {
    Path { column: &'a str, path: &'a [String] },
    Item { alias: &'a str },
}

/// Translates filters and orders into one statement under construction.
pub(crate) struct Translator<'a> {
    pub(crate) out: PgSql,
    /// Whether a table exists: subqueries and relations over missing tables are empty.
    table_exists: &'a dyn Fn(&str) -> bool,
    /// The first pattern PostgreSQL cannot take; the statement is not run.
    error: Option<StoreError>,
}

impl<'a> Translator<'a> {
    pub(crate) fn new(out: PgSql, table_exists: &'a dyn Fn(&str) -> bool) -> Translator<'a> {
        Translator {
            out,
            table_exists,
            error: None,
        }
    }

    /// The statement, or the error a part of the filter is.
    pub(crate) fn finish(self) -> Result<PgSql, StoreError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.out),
        }
    }

    /// Appends the predicate of `filter` over the table of `class_name` aliased `alias`.
    pub(crate) fn filter(&mut self, filter: &Filter, class_name: &str, alias: &str) {
        match filter {
            Filter::True => self.push("TRUE"),
            Filter::False => self.push("FALSE"),
            Filter::And(items) => self.join(items, " AND ", "TRUE", class_name, alias),
            Filter::Or(items) => self.join(items, " OR ", "FALSE", class_name, alias),
            Filter::Nor(items) => self.not(|t| t.join(items, " OR ", "FALSE", class_name, alias)),
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
    /// NULL (absent) sorts first ascending and last descending, as in SQLite. The default
    /// columns are never NULL and keep PostgreSQL's default NULLS placement, which is what
    /// a plain index scanned either way provides.
    pub(crate) fn order(&mut self, order: &[SortKey], alias: &str) {
        self.push(" ORDER BY ");
        let mut last_descending = false;
        let mut wrote_any = false;
        let mut ends_with_object_id = false;
        for key in order {
            let source = source(&key.field, alias);
            let direction = if key.descending { " DESC" } else { " ASC" };
            match &source {
                Source::Absent => continue,
                Source::Column { expr, nulls, .. } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    self.push(expr);
                    self.push(direction);
                    if nulls.is_some() {
                        self.push(if key.descending {
                            " NULLS LAST"
                        } else {
                            " NULLS FIRST"
                        });
                    }
                }
                Source::Json { column, path } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    self.json_order(&JsonLoc::Path { column, path }, direction);
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

    /// Orders by a JSON value as SQLite orders `json_extract`: absent and null first, then
    /// numbers (booleans as 0 and 1), then strings and containers by their text.
    fn json_order(&mut self, loc: &JsonLoc<'_>, direction: &str) {
        self.push("CASE jsonb_typeof(");
        self.loc(loc);
        self.push(") WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END");
        self.push(direction);
        self.push(", CASE jsonb_typeof(");
        self.loc(loc);
        self.push(") WHEN 'number' THEN (");
        self.loc(loc);
        self.push(" #>> '{}')::float8 WHEN 'boolean' THEN CASE WHEN ");
        self.loc(loc);
        self.push(" = 'true'::jsonb THEN 1 ELSE 0 END END");
        self.push(direction);
        self.push(", CASE jsonb_typeof(");
        self.loc(loc);
        self.push(") WHEN 'string' THEN ");
        self.loc(loc);
        self.push(" #>> '{}' WHEN 'object' THEN ");
        self.loc(loc);
        self.push("::text WHEN 'array' THEN ");
        self.loc(loc);
        self.push("::text END COLLATE \"C\"");
        self.push(direction);
    }

    fn push(&mut self, text: &str) {
        self.out.push(text);
    }

    /// `NOT COALESCE((inner), FALSE)`: a NULL (absent) inner value counts as false.
    fn not(&mut self, inner: impl FnOnce(&mut Translator<'a>)) {
        self.push("NOT COALESCE((");
        inner(self);
        self.push("), FALSE)");
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

    /// Appends `(p1 <separator> p2 …)` over `items`, or `FALSE` when there are none.
    fn each<T>(
        &mut self,
        items: &[T],
        separator: &str,
        mut each: impl FnMut(&mut Translator<'a>, &T),
    ) {
        if items.is_empty() {
            self.push("FALSE");
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

    /// `(p1 OR p2 …)`, or `FALSE` when there are none.
    fn any<T>(&mut self, items: &[T], each: impl FnMut(&mut Translator<'a>, &T)) {
        self.each(items, " OR ", each);
    }

    /// `(p1 AND p2 …)`, or `FALSE` when there are none (an empty `$all` matches nothing).
    fn all<T>(&mut self, items: &[T], each: impl FnMut(&mut Translator<'a>, &T)) {
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
                    t.array_contains(array, |t, item| t.scalar_eq(item, op));
                });
            }),
            Cond::AllMatch(patterns) => self.with_array(source, |t, array| {
                t.all(patterns, |t, pattern| {
                    t.array_contains(array, |t, item| {
                        t.string_matches(item, &pattern.source);
                    });
                });
            }),
            Cond::ContainedBy(ops) => self.with_array(source, |t, array| {
                t.push("NOT EXISTS (SELECT 1 FROM ");
                let item_alias = t.out.alias("je");
                t.array_elements(array, &item_alias);
                t.push(" WHERE ");
                let item = JsonLoc::Item { alias: &item_alias };
                t.not(|t| t.any(ops, |t, op| t.scalar_eq(&item, op)));
                t.push(")");
            }),
            Cond::Exists(exists) => self.exists(source, *exists),
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
                "TRUE"
            } else {
                "FALSE"
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
                        self.out.param(PgBind::Float(*number));
                    }
                    (FieldType::Boolean, Operand::Bool(flag)) => {
                        self.push(expr);
                        self.push(if *flag { " = TRUE" } else { " = FALSE" });
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
                    (FieldType::Array, Operand::Json(Value::Array(_))) => {
                        self.whole_json_eq(expr, op);
                    }
                    (FieldType::Array, _) => {
                        let array = JsonLoc::Path {
                            column: expr,
                            path: &[],
                        };
                        self.array_contains(&array, |t, item| t.scalar_eq(item, op));
                    }
                    (field_type, Operand::Json(_)) if is_json_column(field_type) => {
                        self.whole_json_eq(expr, op);
                    }
                    _ => self.push("FALSE"),
                }
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                match op {
                    Operand::Null => self.json_absent(&here),
                    Operand::Json(Value::Array(_)) => self.scalar_eq(&here, op),
                    _ => {
                        self.push("(");
                        self.scalar_eq(&here, op);
                        self.push(" OR ");
                        self.array_contains(&here, |t, item| t.scalar_eq(item, op));
                        self.push(")");
                    }
                }
            }
        }
    }

    /// The jsonb text of `expr` equals that of the operand (see the module docs).
    fn whole_json_eq(&mut self, expr: &str, op: &Operand) {
        let Operand::Json(value) = op else {
            self.push("FALSE");
            return;
        };
        self.push(expr);
        self.push("::text = ");
        self.out.param(PgBind::Json(value.clone()));
        self.push("::text");
    }

    /// The JSON value at `loc` (not its items) equals `op`.
    fn scalar_eq(&mut self, loc: &JsonLoc<'_>, op: &Operand) {
        self.push("(");
        match op {
            Operand::Null => self.json_type_is(loc, &["null"]),
            Operand::Bool(flag) => {
                self.loc(loc);
                self.push(if *flag {
                    " = 'true'::jsonb"
                } else {
                    " = 'false'::jsonb"
                });
            }
            // jsonb equality is exact on strings and numeric on numbers (`1` = `1.0`, as
            // the matcher compares `f64`s), and false between kinds.
            Operand::Number(number) => {
                self.loc(loc);
                self.push(" = ");
                self.out.param(PgBind::Json(json_number(*number)));
            }
            Operand::String(text) => {
                self.loc(loc);
                self.push(" = ");
                self.out.param(PgBind::Json(Value::from(text.as_str())));
            }
            Operand::Date(iso) => {
                self.member(loc, "__type");
                self.push(" = '\"Date\"'::jsonb AND ");
                self.member(loc, "iso");
                self.push(" = ");
                self.out.param(PgBind::Json(Value::from(iso.as_str())));
            }
            Operand::Pointer {
                class_name,
                object_id,
            } => {
                self.pointer_type(loc);
                self.push(" AND ");
                self.member(loc, "className");
                self.push(" = ");
                self.out
                    .param(PgBind::Json(Value::from(class_name.as_str())));
                self.push(" AND ");
                self.member(loc, "objectId");
                self.push(" = ");
                self.out
                    .param(PgBind::Json(Value::from(object_id.as_str())));
            }
            Operand::Json(value) => {
                self.json_type_is(loc, &["object", "array"]);
                self.push(" AND ");
                self.loc(loc);
                self.push("::text = ");
                self.out.param(PgBind::Json(value.clone()));
                self.push("::text");
            }
        }
        self.push(")");
    }

    /// `<`, `<=`, `>`, `>=` between scalars of the operand's kind; anything else is false.
    fn compare(&mut self, source: &Source, op: &Operand, operator: &str) {
        if !matches!(
            op,
            Operand::Number(_) | Operand::String(_) | Operand::Date(_)
        ) {
            self.push("FALSE");
            return;
        }
        match source {
            Source::Absent => self.push("FALSE"),
            Source::Column {
                expr, field_type, ..
            } => {
                let bind = match (field_type, op) {
                    (FieldType::Number, Operand::Number(number)) => PgBind::Float(*number),
                    (FieldType::String, Operand::String(text))
                    | (FieldType::Date, Operand::Date(text)) => PgBind::Text(text.clone()),
                    _ => {
                        self.push("FALSE");
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
                let here = JsonLoc::Path { column, path };
                self.push("(");
                match op {
                    Operand::Number(number) => {
                        // jsonb orders numbers numerically.
                        self.json_type_is(&here, &["number"]);
                        self.push(" AND ");
                        self.loc(&here);
                        self.push(" ");
                        self.push(operator);
                        self.push(" ");
                        self.out.param(PgBind::Json(json_number(*number)));
                    }
                    Operand::Date(iso) => {
                        self.member(&here, "__type");
                        self.push(" = '\"Date\"'::jsonb AND jsonb_typeof(");
                        self.member(&here, "iso");
                        self.push(") = 'string' AND (");
                        self.loc(&here);
                        self.push(" ->> 'iso') COLLATE \"C\" ");
                        self.push(operator);
                        self.push(" ");
                        self.out.text(iso);
                    }
                    Operand::String(text) => {
                        self.json_type_is(&here, &["string"]);
                        self.push(" AND ");
                        self.json_text(&here);
                        self.push(" COLLATE \"C\" ");
                        self.push(operator);
                        self.push(" ");
                        self.out.text(text);
                    }
                    _ => self.push("FALSE"),
                }
                self.push(")");
            }
        }
    }

    fn exists(&mut self, source: &Source, exists: bool) {
        match source {
            Source::Absent => self.push(if exists { "FALSE" } else { "TRUE" }),
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
            // `->` gives SQL NULL for a missing key and jsonb `null` for an explicit one.
            Source::Json { column, path } => {
                self.loc(&JsonLoc::Path { column, path });
                self.push(if exists { " IS NOT NULL" } else { " IS NULL" });
            }
        }
    }

    /// The column holds a value, or the field is listed in `_nulls` as an explicit null.
    fn column_present(&mut self, expr: &str, nulls: &str, name: &str) {
        self.push("(");
        self.push(expr);
        self.push(" IS NOT NULL OR ");
        self.push(nulls);
        self.push(" @> ARRAY[");
        self.out.text(name);
        self.push("])");
    }

    /// The value is a string matching every pattern.
    fn regex(&mut self, source: &Source, patterns: &[String]) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::String,
                ..
            } => self.all(patterns, |t, pattern| {
                t.push(expr);
                t.push(" ~ ");
                t.pattern(pattern);
            }),
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.all(patterns, |t, pattern| t.string_matches(&here, pattern));
            }
            _ => self.push("FALSE"),
        }
    }

    /// The JSON value at `loc` is a string matching `pattern`.
    fn string_matches(&mut self, loc: &JsonLoc<'_>, pattern: &str) {
        self.push("(");
        self.json_type_is(loc, &["string"]);
        self.push(" AND ");
        self.json_text(loc);
        self.push(" ~ ");
        self.pattern(pattern);
        self.push(")");
    }

    /// Binds a pattern in PostgreSQL's syntax, or records why it cannot be.
    fn pattern(&mut self, source: &str) {
        match to_postgres(source) {
            Ok(pattern) => {
                self.out.param(PgBind::Text(pattern));
            }
            Err(error) => {
                self.push("FALSE");
                self.error.get_or_insert(StoreError::Invalid(error));
            }
        }
    }

    /// Runs `inner` with the array the source holds, guarded by "is an array";
    /// a source that cannot hold an array gives false.
    fn with_array(
        &mut self,
        source: &Source,
        inner: impl FnOnce(&mut Translator<'a>, &JsonLoc<'_>),
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
                self.json_type_is(&here, &["array"]);
                self.push(" AND ");
                inner(self, &here);
                self.push(")");
            }
            _ => self.push("FALSE"),
        }
    }

    /// `EXISTS (SELECT 1 FROM jsonb_array_elements(…) WHERE item_matches)`; false when the
    /// value at `array` is not an array.
    fn array_contains(
        &mut self,
        array: &JsonLoc<'_>,
        item_matches: impl FnOnce(&mut Translator<'a>, &JsonLoc<'_>),
    ) {
        self.push("EXISTS (SELECT 1 FROM ");
        let item_alias = self.out.alias("je");
        self.array_elements(array, &item_alias);
        self.push(" WHERE ");
        item_matches(self, &JsonLoc::Item { alias: &item_alias });
        self.push(")");
    }

    /// `jsonb_array_elements(…) AS alias(value)`, over nothing when the value is not an
    /// array (the function would fail on it).
    fn array_elements(&mut self, array: &JsonLoc<'_>, item_alias: &str) {
        self.push("jsonb_array_elements(CASE WHEN jsonb_typeof(");
        self.loc(array);
        self.push(") = 'array' THEN ");
        self.loc(array);
        self.push(" END) AS ");
        self.push(item_alias);
        self.push("(value)");
    }

    /// The jsonb expression of `loc`: `(column -> $1::text -> $2::text)` or `alias.value`.
    fn loc(&mut self, loc: &JsonLoc<'_>) {
        match loc {
            JsonLoc::Path { column, path: [] } => self.push(column),
            JsonLoc::Path { column, path } => {
                self.push("(");
                self.push(column);
                for key in *path {
                    self.push(" -> ");
                    self.out.text(key);
                }
                self.push(")");
            }
            JsonLoc::Item { alias } => {
                self.push(alias);
                self.push(".value");
            }
        }
    }

    /// The member `key` of the JSON object at `loc` (NULL when there is none, or when the
    /// value is not an object).
    fn member(&mut self, loc: &JsonLoc<'_>, key: &str) {
        self.push("(");
        self.loc(loc);
        self.push(" -> '");
        // Keys given here are constants of this module, never client data.
        self.push(key);
        self.push("')");
    }

    /// The value at `loc` is a pointer (`__type` Pointer, or Object for an included one).
    fn pointer_type(&mut self, loc: &JsonLoc<'_>) {
        self.member(loc, "__type");
        self.push(" IN ('\"Pointer\"'::jsonb, '\"Object\"'::jsonb)");
    }

    /// The text of the (string) value at `loc`.
    fn json_text(&mut self, loc: &JsonLoc<'_>) {
        self.push("(");
        self.loc(loc);
        self.push(" #>> '{}')");
    }

    /// The JSON type at `loc` is one of `types` (NULL, i.e. false, for a missing path).
    fn json_type_is(&mut self, loc: &JsonLoc<'_>, types: &[&str]) {
        self.push("jsonb_typeof(");
        self.loc(loc);
        self.push(")");
        if let [only] = types {
            self.push(" = '");
            self.push(only);
            self.push("'");
        } else {
            self.push(" IN (");
            for (index, json_type) in types.iter().enumerate() {
                if index > 0 {
                    self.push(", ");
                }
                self.push("'");
                self.push(json_type);
                self.push("'");
            }
            self.push(")");
        }
    }

    /// The path is missing or holds JSON null.
    fn json_absent(&mut self, loc: &JsonLoc<'_>) {
        self.push("COALESCE(jsonb_typeof(");
        self.loc(loc);
        self.push("), 'null') = 'null'");
    }

    /// No ACL, or one of `group` is among the entries of `column`.
    fn acl_check(&mut self, column: &str, group: &[String], alias: &str) {
        self.push("(");
        self.out.column(alias, column);
        self.push(" IS NULL");
        if !group.is_empty() {
            self.push(" OR ");
            self.out.column(alias, column);
            self.push(" && ");
            self.out.param(PgBind::TextArray(group.to_vec()));
        }
        self.push(")");
    }

    /// A string equal to `text` with ASCII letters folded: `lower` in the `"C"` collation
    /// folds ASCII only, like SQLite's `NOCASE`. On a String column this is
    /// `lower(col) = lower(?)`, which the `lower(col)` unique indexes serve.
    fn eq_ignore_case(&mut self, source: &Source, text: &str) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::String,
                ..
            } => {
                self.push("lower(");
                self.push(expr);
                self.push(") = lower(");
                self.out.text(text);
                self.push(" COLLATE \"C\")");
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                self.json_type_is(&here, &["string"]);
                self.push(" AND lower(");
                self.json_text(&here);
                self.push(" COLLATE \"C\") = lower(");
                self.out.text(text);
                self.push(" COLLATE \"C\"))");
            }
            _ => self.push("FALSE"),
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
            self.push(if negate { "TRUE" } else { "FALSE" });
            return;
        }
        if negate {
            self.push("NOT ");
        }
        // `objectId IN (SELECT owningId …)`: the join table's `relatedId` index finds the few
        // owners. Neither column is ever NULL, so the IN is exactly true or false.
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
            self.push(" = ANY(");
            self.out.param(PgBind::TextArray(ids));
            self.push(")");
        }
        self.push(")");
    }

    fn related_to(&mut self, owner_class: &str, owner_id: &str, key: &str, alias: &str) {
        let table = join_table(key, owner_class);
        if !(self.table_exists)(&table) {
            self.push("FALSE");
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
    fn subquery(&mut self, query: &SubQuery, column: &str, require_value: bool) {
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
            self.push("FALSE");
            return;
        }
        match source {
            Source::Column {
                expr,
                field_type: FieldType::Pointer(target),
                ..
            } => {
                if *target != query.class_name {
                    self.push("FALSE");
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
                self.array_contains(&array, |t, item| t.pointer_in(item, query));
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                self.pointer_in(&here, query);
                self.push(" OR ");
                self.array_contains(&here, |t, item| t.pointer_in(item, query));
                self.push(")");
            }
            _ => self.push("FALSE"),
        }
    }

    /// The JSON pointer at `loc` targets the subquery's class and one of its results.
    fn pointer_in(&mut self, loc: &JsonLoc<'_>, query: &SubQuery) {
        self.push("(");
        self.pointer_type(loc);
        self.push(" AND ");
        self.member(loc, "className");
        self.push(" = ");
        self.out
            .param(PgBind::Json(Value::from(query.class_name.as_str())));
        self.push(" AND jsonb_typeof(");
        self.member(loc, "objectId");
        self.push(") = 'string' AND (");
        self.loc(loc);
        self.push(" ->> 'objectId') IN ");
        self.subquery(query, "objectId", false);
        self.push(")");
    }

    /// The value at `source` is among the set `key` values of the subquery's results.
    /// Both sides must be of the same scalar kind; anything else is false.
    fn select(&mut self, source: &Source, query: &SubQuery, key: &FieldRef) {
        let key_kind = match (&key.field_type, key.path.is_empty()) {
            (Some(key_type), true) => scalar_kind(key_type),
            _ => None,
        };
        let Some(key_kind) = key_kind else {
            self.push("FALSE");
            return;
        };
        if !(self.table_exists)(&query.class_name) {
            self.push("FALSE");
            return;
        }
        match source {
            Source::Column {
                expr, field_type, ..
            } if scalar_kind(field_type) == Some(key_kind) => {
                self.push(expr);
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                // The cast only runs on a value of the right kind.
                let (json_type, cast) = match key_kind {
                    ScalarKind::String => ("string", ""),
                    ScalarKind::Number => ("number", "::float8"),
                    ScalarKind::Boolean => ("boolean", "::boolean"),
                    _ => {
                        self.push("FALSE");
                        return;
                    }
                };
                self.push("CASE WHEN ");
                self.json_type_is(&here, &[json_type]);
                self.push(" THEN ");
                self.json_text(&here);
                self.push(cast);
                self.push(" END");
            }
            _ => {
                self.push("FALSE");
                return;
            }
        }
        self.push(" IN ");
        self.subquery(query, &key.field, true);
    }
}

/// A JSON number for an `f64` operand.
fn json_number(number: f64) -> Value {
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// What a column's values compare as in `$select`: equal kinds compare by stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarKind<'t> {
    String,
    Number,
    Boolean,
    Date,
    Pointer(&'t str),
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
