//! The SQLite dialect of [`Filter`] and [`SortKey`]: SQL text with bound parameters.
//!
//! **Invariant:** the SQL agrees exactly with `parlor_core::query::matcher`; a property test
//! compares the two on random objects and filters.
//!
//! Three-valued logic: a translated predicate is *true*, or *false or NULL*, and NULL only
//! ever stands for false (an absent value). `AND` and `OR` preserve that reading, and a WHERE
//! clause drops NULL rows, so positive comparisons stay plain `col = ?` (which the planner
//! can serve from an index). Only negation needs care: every `NOT` is written as
//! `NOT COALESCE((…), 0)`.
//!
//! Values are never spliced into SQL: operands, JSON paths and patterns are all bound.
//! Identifiers are quoted, and every column is qualified with its table alias so a
//! subquery's columns can never resolve to an outer table.

use parlor_core::query::regex::text_term_pattern;
use parlor_core::query::{Cond, FieldRef, Filter, Operand, SortKey, SubQuery};
use parlor_core::schema::FieldType;
use serde_json::Value;

pub(crate) use crate::layout::join_table;
use crate::sql::{Bind, SqlBuilder, quote_ident};
use crate::sqlite::rows::{
    NULLS_COLUMN, canonical_json, column_decl, is_default_field, is_json_column,
};

/// A JSON path (`$."a"."b"`) that addresses `keys` literally, whatever they contain:
/// each key is written as a JSON string, whose escapes SQLite decodes before comparing.
pub(crate) fn json_path(keys: &[String]) -> String {
    let mut path = String::from("$");
    for key in keys {
        path.push('.');
        path.push_str(&Value::from(key.as_str()).to_string());
    }
    path
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

/// A JSON value whose type is only known at run time: at a path inside a column, or an
/// item of `json_each`.
enum JsonLoc<'a> {
    Path { column: &'a str, path: &'a [String] },
    Item { alias: &'a str },
}

/// Where an array's items can be enumerated from.
struct ArrayLoc<'a> {
    column: &'a str,
    /// `None`: the column itself is the array; else a path inside it.
    path: Option<&'a [String]>,
}

/// Translates filters and orders into one statement under construction.
pub(crate) struct Translator<'a> {
    pub(crate) out: SqlBuilder,
    /// Whether a table exists: subqueries and relations over missing tables are empty.
    table_exists: &'a dyn Fn(&str) -> bool,
}

impl<'a> Translator<'a> {
    pub(crate) fn new(out: SqlBuilder, table_exists: &'a dyn Fn(&str) -> bool) -> Translator<'a> {
        Translator { out, table_exists }
    }

    /// Appends the predicate of `filter` over the table of `class_name` aliased `alias`.
    pub(crate) fn filter(&mut self, filter: &Filter, class_name: &str, alias: &str) {
        match filter {
            Filter::True => self.push("1"),
            Filter::False => self.push("0"),
            Filter::And(items) => self.join(items, " AND ", "1", class_name, alias),
            Filter::Or(items) => self.join(items, " OR ", "0", class_name, alias),
            Filter::Nor(items) => self.not(|t| t.join(items, " OR ", "0", class_name, alias)),
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
    pub(crate) fn order(&mut self, order: &[SortKey], alias: &str) {
        self.push(" ORDER BY ");
        let mut last_descending = false;
        let mut wrote_any = false;
        let mut ends_with_object_id = false;
        for key in order {
            let source = source(&key.field, alias);
            match &source {
                Source::Absent => continue,
                Source::Column { expr, .. } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    self.push(expr);
                }
                Source::Json { column, path } => {
                    if wrote_any {
                        self.push(", ");
                    }
                    self.push("json_extract(");
                    self.push(column);
                    self.push(", ");
                    self.out.text(&json_path(path));
                    self.push(")");
                }
            }
            self.push(if key.descending { " DESC" } else { " ASC" });
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

    fn push(&mut self, text: &str) {
        self.out.push(text);
    }

    /// `NOT COALESCE((inner), 0)`: a NULL (absent) inner value counts as false.
    fn not(&mut self, inner: impl FnOnce(&mut Translator<'a>)) {
        self.push("NOT COALESCE((");
        inner(self);
        self.push("), 0)");
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

    /// Appends `(p1 OR p2 …)` over `items`, or `0` when there are none.
    fn any<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Translator<'a>, &T)) {
        if items.is_empty() {
            self.push("0");
            return;
        }
        self.push("(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.push(" OR ");
            }
            each(self, item);
        }
        self.push(")");
    }

    /// Appends `(p1 AND p2 …)` over `items`, or `0` when there are none (an empty `$all`
    /// matches nothing).
    fn all<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Translator<'a>, &T)) {
        if items.is_empty() {
            self.push("0");
            return;
        }
        self.push("(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.push(" AND ");
            }
            each(self, item);
        }
        self.push(")");
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
                    t.array_contains(array, |t, item| t.scalar_eq(item, op))
                });
            }),
            Cond::AllMatch(patterns) => self.with_array(source, |t, array| {
                t.all(patterns, |t, pattern| {
                    t.array_contains(array, |t, item| {
                        t.json_type_is(item, &["text"]);
                        t.push(" AND ");
                        t.json_value(item);
                        t.push(" REGEXP ");
                        t.out.text(&pattern.source);
                    });
                });
            }),
            Cond::ContainedBy(ops) => self.with_array(source, |t, array| {
                t.push("NOT EXISTS (SELECT 1 FROM ");
                let item_alias = t.out.alias("je");
                t.json_each(array, &item_alias);
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
                "1"
            } else {
                "0"
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
                        self.out.param(Bind::number(*number));
                    }
                    (FieldType::Boolean, Operand::Bool(flag)) => {
                        self.push(expr);
                        self.push(if *flag { " = 1" } else { " = 0" });
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
                        let array = ArrayLoc {
                            column: expr,
                            path: None,
                        };
                        self.array_contains(&array, |t, item| t.scalar_eq(item, op));
                    }
                    (field_type, Operand::Json(_)) if is_json_column(field_type) => {
                        self.whole_json_eq(expr, op);
                    }
                    _ => self.push("0"),
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
                        self.push(" OR (");
                        self.json_type_is(&here, &["array"]);
                        self.push(" AND ");
                        let array = ArrayLoc {
                            column,
                            path: Some(path),
                        };
                        self.array_contains(&array, |t, item| t.scalar_eq(item, op));
                        self.push("))");
                    }
                }
            }
        }
    }

    /// `expr = ?` against the canonical JSON text of the operand.
    fn whole_json_eq(&mut self, expr: &str, op: &Operand) {
        let Operand::Json(value) = op else {
            self.push("0");
            return;
        };
        self.push(expr);
        self.push(" = ");
        self.out.text(&canonical_json(value));
    }

    /// The JSON value at `loc` (not its items) equals `op`.
    fn scalar_eq(&mut self, loc: &JsonLoc<'_>, op: &Operand) {
        self.push("(");
        match op {
            Operand::Null => self.json_type_is(loc, &["null"]),
            Operand::Bool(flag) => self.json_type_is(loc, &[if *flag { "true" } else { "false" }]),
            Operand::Number(number) => {
                self.json_type_is(loc, &["integer", "real"]);
                self.push(" AND ");
                self.json_value(loc);
                self.push(" = ");
                self.out.param(Bind::number(*number));
            }
            Operand::String(text) => {
                self.json_type_is(loc, &["text"]);
                self.push(" AND ");
                self.json_value(loc);
                self.push(" = ");
                self.out.text(text);
            }
            Operand::Date(iso) => {
                self.json_date_guard(loc);
                self.push(" AND ");
                self.json_member(loc, "iso");
                self.push(" = ");
                self.out.text(iso);
            }
            Operand::Pointer {
                class_name,
                object_id,
            } => {
                self.json_type_is(loc, &["object"]);
                self.push(" AND ");
                self.json_member(loc, "__type");
                self.push(" IN ('Pointer', 'Object') AND ");
                self.json_member(loc, "className");
                self.push(" = ");
                self.out.text(class_name);
                self.push(" AND ");
                self.json_member(loc, "objectId");
                self.push(" = ");
                self.out.text(object_id);
            }
            Operand::Json(value) => {
                self.json_type_is(loc, &["object", "array"]);
                self.push(" AND ");
                self.json_value(loc);
                self.push(" = ");
                self.out.text(&canonical_json(value));
            }
        }
        self.push(")");
    }

    /// `<`, `<=`, `>`, `>=` between scalars of the operand's kind; anything else is false.
    fn compare(&mut self, source: &Source, op: &Operand, operator: &str) {
        let bind = match op {
            Operand::Number(number) => Bind::number(*number),
            Operand::String(text) | Operand::Date(text) => Bind::Text(text.clone()),
            _ => {
                self.push("0");
                return;
            }
        };
        match source {
            Source::Absent => self.push("0"),
            Source::Column {
                expr, field_type, ..
            } => {
                let same_kind = matches!(
                    (field_type, op),
                    (FieldType::Number, Operand::Number(_))
                        | (FieldType::String, Operand::String(_))
                        | (FieldType::Date, Operand::Date(_))
                );
                if !same_kind {
                    self.push("0");
                    return;
                }
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
                    Operand::Date(_) => {
                        self.json_date_guard(&here);
                        self.push(" AND ");
                        self.json_member(&here, "iso");
                    }
                    Operand::Number(_) => {
                        self.json_type_is(&here, &["integer", "real"]);
                        self.push(" AND ");
                        self.json_value(&here);
                    }
                    _ => {
                        self.json_type_is(&here, &["text"]);
                        self.push(" AND ");
                        self.json_value(&here);
                    }
                }
                self.push(" ");
                self.push(operator);
                self.push(" ");
                self.out.param(bind);
                self.push(")");
            }
        }
    }

    fn exists(&mut self, source: &Source, exists: bool) {
        match source {
            Source::Absent => self.push(if exists { "0" } else { "1" }),
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
            // `json_type` is NULL for a missing path and 'null' for an explicit JSON null.
            Source::Json { column, path } => {
                self.push("json_type(");
                self.push(column);
                self.push(", ");
                self.out.text(&json_path(path));
                self.push(if exists { ") IS NOT NULL" } else { ") IS NULL" });
            }
        }
    }

    /// The column holds a value, or the field is listed in `_nulls` as an explicit null.
    fn column_present(&mut self, expr: &str, nulls: &str, name: &str) {
        self.push("(");
        self.push(expr);
        self.push(" IS NOT NULL OR EXISTS (SELECT 1 FROM json_each(");
        self.push(nulls);
        let item_alias = self.out.alias("je");
        self.push(") AS ");
        self.push(&item_alias);
        self.push(" WHERE ");
        self.push(&item_alias);
        self.push(".value = ");
        self.out.text(name);
        self.push("))");
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
                t.push(" REGEXP ");
                t.out.text(pattern);
            }),
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.all(patterns, |t, pattern| {
                    t.push("(");
                    t.json_type_is(&here, &["text"]);
                    t.push(" AND ");
                    t.json_value(&here);
                    t.push(" REGEXP ");
                    t.out.text(pattern);
                    t.push(")");
                });
            }
            _ => self.push("0"),
        }
    }

    /// Runs `inner` with the array the source holds, guarded by "is an array";
    /// a source that cannot hold an array gives false.
    fn with_array(
        &mut self,
        source: &Source,
        inner: impl FnOnce(&mut Translator<'a>, &ArrayLoc<'_>),
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
                    &ArrayLoc {
                        column: expr,
                        path: None,
                    },
                );
                self.push(")");
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                self.json_type_is(&here, &["array"]);
                self.push(" AND ");
                inner(
                    self,
                    &ArrayLoc {
                        column,
                        path: Some(path),
                    },
                );
                self.push(")");
            }
            _ => self.push("0"),
        }
    }

    /// `EXISTS (SELECT 1 FROM json_each(…) WHERE item_matches)`.
    fn array_contains(
        &mut self,
        array: &ArrayLoc<'_>,
        item_matches: impl FnOnce(&mut Translator<'a>, &JsonLoc<'_>),
    ) {
        self.push("EXISTS (SELECT 1 FROM ");
        let item_alias = self.out.alias("je");
        self.json_each(array, &item_alias);
        self.push(" WHERE ");
        item_matches(self, &JsonLoc::Item { alias: &item_alias });
        self.push(")");
    }

    fn json_each(&mut self, array: &ArrayLoc<'_>, item_alias: &str) {
        self.push("json_each(");
        self.push(array.column);
        if let Some(path) = array.path {
            self.push(", ");
            self.out.text(&json_path(path));
        }
        self.push(") AS ");
        self.push(item_alias);
    }

    /// The JSON type at `loc` is one of `types` (never NULL for an item; NULL, i.e. false,
    /// for a missing path).
    fn json_type_is(&mut self, loc: &JsonLoc<'_>, types: &[&str]) {
        match loc {
            JsonLoc::Path { column, path } => {
                self.push("json_type(");
                self.push(column);
                self.push(", ");
                self.out.text(&json_path(path));
                self.push(")");
            }
            JsonLoc::Item { alias } => {
                self.push(alias);
                self.push(".type");
            }
        }
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
        let JsonLoc::Path { column, path } = loc else {
            self.json_type_is(loc, &["null"]);
            return;
        };
        self.push("COALESCE(json_type(");
        self.push(column);
        self.push(", ");
        self.out.text(&json_path(path));
        self.push("), 'null') = 'null'");
    }

    /// The SQL value at `loc`: text, number, 1/0 for booleans, JSON text for containers.
    fn json_value(&mut self, loc: &JsonLoc<'_>) {
        match loc {
            JsonLoc::Path { column, path } => {
                self.push("json_extract(");
                self.push(column);
                self.push(", ");
                self.out.text(&json_path(path));
                self.push(")");
            }
            JsonLoc::Item { alias } => {
                self.push(alias);
                self.push(".value");
            }
        }
    }

    /// The member `key` of the JSON object at `loc` (NULL when there is none).
    fn json_member(&mut self, loc: &JsonLoc<'_>, key: &str) {
        match loc {
            JsonLoc::Path { column, path } => {
                self.push("json_extract(");
                self.push(column);
                self.push(", ");
                let mut member_path = path.to_vec();
                member_path.push(key.to_owned());
                self.out.text(&json_path(&member_path));
                self.push(")");
            }
            JsonLoc::Item { alias } => {
                // An item's value is plain SQL text for strings, which json_extract would
                // reject as malformed JSON; only CASE is guaranteed not to evaluate it.
                self.push("CASE WHEN ");
                self.push(alias);
                self.push(".type = 'object' THEN json_extract(");
                self.push(alias);
                self.push(".value, ");
                self.out.text(&json_path(&[key.to_owned()]));
                self.push(") END");
            }
        }
    }

    /// The value at `loc` is a `{"__type":"Date"}` object.
    fn json_date_guard(&mut self, loc: &JsonLoc<'_>) {
        self.json_type_is(loc, &["object"]);
        self.push(" AND ");
        self.json_member(loc, "__type");
        self.push(" = 'Date'");
    }

    /// No ACL, or one of `group` is among the entries of `column`.
    fn acl_check(&mut self, column: &str, group: &[String], alias: &str) {
        self.push("(");
        self.out.column(alias, column);
        self.push(" IS NULL");
        if !group.is_empty() {
            self.push(" OR EXISTS (SELECT 1 FROM json_each(");
            self.out.column(alias, column);
            let item_alias = self.out.alias("je");
            self.push(") AS ");
            self.push(&item_alias);
            self.push(" WHERE ");
            self.push(&item_alias);
            self.push(".value IN (");
            self.out
                .param_list(group.iter().map(|entry| Bind::Text(entry.clone())));
            self.push("))");
        }
        self.push(")");
    }

    /// A string equal to `text` under SQLite's `NOCASE`, which folds ASCII letters only, as
    /// `str::eq_ignore_ascii_case` does. On a String column this is `col = ? COLLATE NOCASE`,
    /// which a `NOCASE` index on the column serves.
    fn eq_ignore_case(&mut self, source: &Source, text: &str) {
        match source {
            Source::Column {
                expr,
                field_type: FieldType::String,
                ..
            } => {
                self.push(expr);
                self.push(" = ");
                self.out.text(text);
                self.push(" COLLATE NOCASE");
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                self.push("(");
                self.json_type_is(&here, &["text"]);
                self.push(" AND ");
                self.json_value(&here);
                self.push(" = ");
                self.out.text(text);
                self.push(" COLLATE NOCASE)");
            }
            _ => self.push("0"),
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
            self.push(if negate { "1" } else { "0" });
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
            self.push(" IN (");
            self.out.param_list(ids.into_iter().map(Bind::Text));
            self.push(")");
        }
        self.push(")");
    }

    fn related_to(&mut self, owner_class: &str, owner_id: &str, key: &str, alias: &str) {
        let table = join_table(key, owner_class);
        if !(self.table_exists)(&table) {
            self.push("0");
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
            self.push("0");
            return;
        }
        match source {
            Source::Column {
                expr,
                field_type: FieldType::Pointer(target),
                ..
            } => {
                if *target != query.class_name {
                    self.push("0");
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
                let array = ArrayLoc {
                    column: expr,
                    path: None,
                };
                self.array_contains(&array, |t, item| t.pointer_in(item, query));
            }
            Source::Json { column, path } => {
                let here = JsonLoc::Path { column, path };
                let array = ArrayLoc {
                    column,
                    path: Some(path),
                };
                self.push("(");
                self.pointer_in(&here, query);
                self.push(" OR (");
                self.json_type_is(&here, &["array"]);
                self.push(" AND ");
                self.array_contains(&array, |t, item| t.pointer_in(item, query));
                self.push("))");
            }
            _ => self.push("0"),
        }
    }

    /// The JSON pointer at `loc` targets the subquery's class and one of its results.
    fn pointer_in(&mut self, loc: &JsonLoc<'_>, query: &SubQuery) {
        self.push("(");
        self.json_type_is(loc, &["object"]);
        self.push(" AND ");
        self.json_member(loc, "__type");
        self.push(" IN ('Pointer', 'Object') AND ");
        self.json_member(loc, "className");
        self.push(" = ");
        self.out.text(&query.class_name);
        self.push(" AND ");
        self.json_member(loc, "objectId");
        self.push(" IN ");
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
            self.push("0");
            return;
        };
        if !(self.table_exists)(&query.class_name) {
            self.push("0");
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
                let json_types: &[&str] = match key_kind {
                    ScalarKind::String => &["text"],
                    ScalarKind::Number => &["integer", "real"],
                    ScalarKind::Boolean => &["true", "false"],
                    _ => {
                        self.push("0");
                        return;
                    }
                };
                self.push("(");
                self.json_type_is(&here, json_types);
                self.push(" AND ");
                // JSON booleans extract as 1/0, as Boolean columns store them.
                self.json_value(&here);
            }
            _ => {
                self.push("0");
                return;
            }
        }
        self.push(" IN ");
        self.subquery(query, &key.field, true);
        if matches!(source, Source::Json { .. }) {
            self.push(")");
        }
    }
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
    if column_decl(field_type).is_none() {
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
