//! The SQLite [`Dialect`]: JSON through `json_extract`/`json_type`/`json_each` with bound
//! JSON paths, positional `?` placeholders, `REGEXP` (the `regex` crate, registered on each
//! connection), ACLs and `_nulls` as JSON arrays, ASCII case folding with `NOCASE`.
//!
//! SQLite evaluates a predicate on any value without failing, so unlike PostgreSQL no guard
//! needs a `CASE`; but an item of `json_each` is plain SQL text for a string, which
//! `json_extract` would reject as malformed JSON, so a member of an item is read under one.

use parlor_core::object::Acl;
use parlor_core::query::geo::GeoPoint;
use parlor_core::query::pipeline::DatePart;
use parlor_core::query::{Operand, SubQuery};
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value};

use crate::aggregate::{self, AggregateDialect, Kind};
use crate::error::StoreResult;
use crate::sql::quote_ident;
use crate::sql::{Bind, SqlBuilder};
use crate::sqlite::rows::{self, canonical_json};
use crate::sqlite::search;
use crate::translate::{Dialect, JsonLoc, ScalarKind, Translator};

/// The SQLite dialect.
pub(crate) struct SqliteDialect;

/// The translator of SQLite statements.
pub(crate) type SqliteTranslator<'a> = Translator<'a, SqliteDialect>;

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

/// `json_type(…)` of the value at `loc` (never NULL for an item; NULL for a missing path).
fn json_type(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
    match loc {
        JsonLoc::Path { column, path } => {
            t.push("json_type(");
            t.push(column);
            t.push(", ");
            t.out.text(&json_path(path));
            t.push(")");
        }
        JsonLoc::Item { alias } => {
            t.push(alias);
            t.push(".type");
        }
    }
}

/// The `json_type` at `loc` is one of `names`.
fn type_named(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, names: &[&str]) {
    json_type(t, loc);
    t.is_one_of(names);
}

/// The SQL value at `loc`: text, number, 1/0 for booleans, JSON text for containers.
fn json_value(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
    match loc {
        JsonLoc::Path { column, path } => {
            t.push("json_extract(");
            t.push(column);
            t.push(", ");
            t.out.text(&json_path(path));
            t.push(")");
        }
        JsonLoc::Item { alias } => {
            t.push(alias);
            t.push(".value");
        }
    }
}

/// The member `key` of the JSON object at `loc` (NULL when there is none).
fn json_member(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, key: &str) {
    match loc {
        JsonLoc::Path { column, path } => {
            t.push("json_extract(");
            t.push(column);
            t.push(", ");
            let mut member_path = path.to_vec();
            member_path.push(key.to_owned());
            t.out.text(&json_path(&member_path));
            t.push(")");
        }
        JsonLoc::Item { alias } => {
            // An item's value is plain SQL text for strings, which json_extract would
            // reject as malformed JSON; only CASE is guaranteed not to evaluate it.
            t.push("CASE WHEN ");
            t.push(alias);
            t.push(".type = 'object' THEN json_extract(");
            t.push(alias);
            t.push(".value, ");
            t.out.text(&json_path(&[key.to_owned()]));
            t.push(") END");
        }
    }
}

/// The value at `loc` is a `{"__type":"Date"}` object.
fn json_date_guard(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
    type_named(t, loc, &["object"]);
    t.push(" AND ");
    json_member(t, loc, "__type");
    t.push(" = 'Date'");
}

/// The value at `loc` is a pointer (`__type` Pointer, or Object for an included one).
fn pointer_guard(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
    type_named(t, loc, &["object"]);
    t.push(" AND ");
    json_member(t, loc, "__type");
    t.push(" IN ('Pointer', 'Object')");
}

impl Dialect for SqliteDialect {
    type Bind = Bind;
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";

    fn encode_value(name: &str, field_type: &FieldType, value: &Value) -> StoreResult<Bind> {
        rows::encode_value(name, field_type, value)
    }

    fn encode_acl(acl: Option<&Acl>) -> (Bind, Bind) {
        rows::encode_acl(acl)
    }

    fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> Bind {
        rows::encode_nulls(schema, fields)
    }

    fn number(number: f64) -> Bind {
        Bind::number(number)
    }

    fn limit_offset(out: &mut SqlBuilder, limit: Option<u64>, skip: u64) {
        // SQLite reads a negative LIMIT as "no limit", which is the only way to give an
        // OFFSET alone.
        let limit = limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        if limit >= 0 || skip > 0 {
            out.push(" LIMIT ");
            out.param(Bind::Integer(limit));
        }
        if skip > 0 {
            out.push(" OFFSET ");
            out.param(Bind::Integer(i64::try_from(skip).unwrap_or(i64::MAX)));
        }
    }

    fn bool_eq(flag: bool) -> &'static str {
        if flag { " = 1" } else { " = 0" }
    }

    fn text_in(t: &mut SqliteTranslator<'_>, values: Vec<String>) {
        t.push(" IN (");
        t.out.param_list(values.into_iter().map(Bind::Text));
        t.push(")");
    }

    /// `json_extract` orders absent and null first, then numbers (booleans as 0 and 1),
    /// then strings, then containers by their text.
    fn order_json(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, descending: bool) {
        json_value(t, loc);
        t.push(if descending { " DESC" } else { " ASC" });
    }

    fn json_is_array(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
        type_named(t, loc, &["array"]);
    }

    fn json_absent(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>) {
        let JsonLoc::Path { column, path } = loc else {
            type_named(t, loc, &["null"]);
            return;
        };
        t.push("COALESCE(json_type(");
        t.push(column);
        t.push(", ");
        t.out.text(&json_path(path));
        t.push("), 'null') = 'null'");
    }

    /// `json_type` is NULL for a missing path and 'null' for an explicit JSON null.
    fn json_exists(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, exists: bool) {
        json_type(t, loc);
        t.push(if exists { " IS NOT NULL" } else { " IS NULL" });
    }

    fn scalar_eq(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, op: &Operand) {
        t.push("(");
        match op {
            Operand::Null => type_named(t, loc, &["null"]),
            Operand::Bool(flag) => type_named(t, loc, &[if *flag { "true" } else { "false" }]),
            Operand::Number(number) => {
                type_named(t, loc, &["integer", "real"]);
                t.push(" AND ");
                json_value(t, loc);
                t.push(" = ");
                t.out.param(Bind::number(*number));
            }
            Operand::String(text) => {
                type_named(t, loc, &["text"]);
                t.push(" AND ");
                json_value(t, loc);
                t.push(" = ");
                t.out.text(text);
            }
            Operand::Date(iso) => {
                json_date_guard(t, loc);
                t.push(" AND ");
                json_member(t, loc, "iso");
                t.push(" = ");
                t.out.text(iso);
            }
            Operand::Pointer {
                class_name,
                object_id,
            } => {
                pointer_guard(t, loc);
                t.push(" AND ");
                json_member(t, loc, "className");
                t.push(" = ");
                t.out.text(class_name);
                t.push(" AND ");
                json_member(t, loc, "objectId");
                t.push(" = ");
                t.out.text(object_id);
            }
            Operand::Json(value) => {
                type_named(t, loc, &["object", "array"]);
                t.push(" AND ");
                json_value(t, loc);
                t.push(" = ");
                t.out.text(&canonical_json(value));
            }
        }
        t.push(")");
    }

    /// `expr = ?` against the canonical JSON text of the value.
    fn whole_json_eq(t: &mut SqliteTranslator<'_>, expr: &str, value: &Value) {
        t.push(expr);
        t.push(" = ");
        t.out.text(&canonical_json(value));
    }

    fn json_compare(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, op: &Operand, operator: &str) {
        let bind = match op {
            Operand::Date(iso) => {
                json_date_guard(t, loc);
                t.push(" AND ");
                json_member(t, loc, "iso");
                Bind::Text(iso.clone())
            }
            Operand::Number(number) => {
                type_named(t, loc, &["integer", "real"]);
                t.push(" AND ");
                json_value(t, loc);
                Bind::number(*number)
            }
            Operand::String(text) => {
                type_named(t, loc, &["text"]);
                t.push(" AND ");
                json_value(t, loc);
                Bind::Text(text.clone())
            }
            _ => {
                t.push("0");
                return;
            }
        };
        t.push(" ");
        t.push(operator);
        t.push(" ");
        t.out.param(bind);
    }

    /// `json_each(column[, path]) AS alias`; the caller guards that the value is an array
    /// (`json_each` would enumerate a scalar as itself).
    fn array_elements(t: &mut SqliteTranslator<'_>, array: &JsonLoc<'_>, item_alias: &str) {
        t.push("json_each(");
        match array {
            JsonLoc::Path { column, path } => {
                t.push(column);
                if !path.is_empty() {
                    t.push(", ");
                    t.out.text(&json_path(path));
                }
            }
            JsonLoc::Item { alias } => {
                t.push(alias);
                t.push(".value");
            }
        }
        t.push(") AS ");
        t.push(item_alias);
    }

    /// JSON booleans extract as 1/0, as Boolean columns store them.
    fn json_scalar(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, kind: ScalarKind<'_>) {
        let names: &[&str] = match kind {
            ScalarKind::String => &["text"],
            ScalarKind::Number => &["integer", "real"],
            ScalarKind::Boolean => &["true", "false"],
            _ => {
                t.push("NULL");
                return;
            }
        };
        t.push("CASE WHEN ");
        type_named(t, loc, names);
        t.push(" THEN ");
        json_value(t, loc);
        t.push(" END");
    }

    fn pointer_in(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, query: &SubQuery) {
        t.push("(");
        pointer_guard(t, loc);
        t.push(" AND ");
        json_member(t, loc, "className");
        t.push(" = ");
        t.out.text(&query.class_name);
        t.push(" AND ");
        json_member(t, loc, "objectId");
        t.push(" IN ");
        t.subquery(query, "objectId", false);
        t.push(")");
    }

    /// The field's FTS5 index (`search`), when it exists: the rows whose tokens hold each
    /// term's tokens as a phrase.
    fn text_prefilter(
        t: &mut SqliteTranslator<'_>,
        class_name: &str,
        alias: &str,
        field: &str,
        terms: &[String],
    ) -> bool {
        let index = search::index_table(class_name, field);
        if !t.has_table(&index) {
            return false;
        }
        let Some(phrases) = search::phrase_query(terms) else {
            return false;
        };
        t.push(alias);
        t.push(".rowid IN (SELECT rowid FROM ");
        t.out.ident(&index);
        t.push(" WHERE ");
        t.out.ident(&index);
        t.push(" MATCH ");
        t.out.text(&phrases);
        t.push(")");
        true
    }

    fn column_matches(t: &mut SqliteTranslator<'_>, expr: &str, pattern: &str) {
        t.push(expr);
        t.push(" REGEXP ");
        t.out.text(pattern);
    }

    fn string_matches(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, pattern: &str) {
        t.push("(");
        type_named(t, loc, &["text"]);
        t.push(" AND ");
        json_value(t, loc);
        t.push(" REGEXP ");
        t.out.text(pattern);
        t.push(")");
    }

    /// `NOCASE` folds ASCII letters only, as `str::eq_ignore_ascii_case` does; on a String
    /// column `col = ? COLLATE NOCASE` is served by a `NOCASE` index on it.
    fn column_eq_ignore_case(t: &mut SqliteTranslator<'_>, expr: &str, text: &str) {
        t.push(expr);
        t.push(" = ");
        t.out.text(text);
        t.push(" COLLATE NOCASE");
    }

    fn json_eq_ignore_case(t: &mut SqliteTranslator<'_>, loc: &JsonLoc<'_>, text: &str) {
        t.push("(");
        type_named(t, loc, &["text"]);
        t.push(" AND ");
        json_value(t, loc);
        t.push(" = ");
        t.out.text(text);
        t.push(" COLLATE NOCASE)");
    }

    fn float(value: f64) -> Bind {
        Bind::Real(value)
    }

    /// With the literal path: the expression of the index the DDL makes on every GeoPoint
    /// field's latitude, which a bound path would not match.
    fn coordinate(expr: &str, name: &str) -> String {
        format!("json_extract({expr}, '$.{name}')")
    }

    /// `parlor_geo_distance`, registered on each connection (`sqlite::add_geo_functions`).
    fn distance(t: &mut SqliteTranslator<'_>, expr: &str, point: GeoPoint) {
        t.push("parlor_geo_distance(");
        t.push(&Self::coordinate(expr, "latitude"));
        t.push(", ");
        t.push(&Self::coordinate(expr, "longitude"));
        t.push(", ");
        t.out.param(Bind::Real(point.latitude));
        t.push(", ");
        t.out.param(Bind::Real(point.longitude));
        t.push(")");
    }

    fn in_polygon(t: &mut SqliteTranslator<'_>, expr: &str, polygon: &[GeoPoint]) {
        let pairs: Vec<[f64; 2]> = polygon
            .iter()
            .map(|point| [point.latitude, point.longitude])
            .collect();
        t.push("parlor_geo_in_polygon(");
        t.push(&Self::coordinate(expr, "latitude"));
        t.push(", ");
        t.push(&Self::coordinate(expr, "longitude"));
        t.push(", ");
        t.out.text(&serde_json::json!(pairs).to_string());
        t.push(")");
    }

    fn polygon_contains(t: &mut SqliteTranslator<'_>, expr: &str, point: GeoPoint) {
        t.push("parlor_polygon_contains(");
        t.push(expr);
        t.push(", ");
        t.out.param(Bind::Real(point.latitude));
        t.push(", ");
        t.out.param(Bind::Real(point.longitude));
        t.push(")");
    }

    /// SQLite already sorts NULL first ascending and last descending.
    fn nulls_order(_descending: bool) -> &'static str {
        ""
    }

    /// Lists are JSON arrays of strings.
    /// `parlor_text_score`, registered on each connection, over the patterns as JSON (and
    /// the stop words' pattern, empty for none).
    fn text_score(
        out: &mut SqlBuilder,
        expr: &str,
        patterns: &[String],
        stop: Option<&str>,
    ) -> StoreResult<()> {
        out.push("COALESCE(parlor_text_score(");
        out.push(expr);
        out.push(", ");
        out.param(Bind::Text(canonical_json(&Value::from(patterns.to_vec()))));
        out.push(", ");
        out.param(Bind::Text(stop.unwrap_or_default().to_owned()));
        out.push("), 0.0)");
        Ok(())
    }

    fn list_has_any(t: &mut SqliteTranslator<'_>, column: &str, entries: &[String]) {
        t.push("EXISTS (SELECT 1 FROM json_each(");
        t.push(column);
        let item_alias = t.out.alias("je");
        t.push(") AS ");
        t.push(&item_alias);
        t.push(" WHERE ");
        t.push(&item_alias);
        if let [entry] = entries {
            t.push(".value = ");
            t.out.text(entry);
        } else {
            t.push(".value IN (");
            t.out
                .param_list(entries.iter().map(|entry| Bind::Text(entry.clone())));
            t.push(")");
        }
        t.push(")");
    }
}

impl AggregateDialect for SqliteDialect {
    /// `strftime` reads the stored ISO text (`…T…Z`) as UTC.
    fn date_part(part: DatePart, expr: &str) -> String {
        let (format, offset) = match part {
            DatePart::Year => ("%Y", 0),
            DatePart::Month => ("%m", 0),
            DatePart::DayOfMonth => ("%d", 0),
            DatePart::Hour => ("%H", 0),
            DatePart::Minute => ("%M", 0),
            DatePart::Second => ("%S", 0),
            // `%w` counts from Sunday = 0; MongoDB's `$dayOfWeek` from Sunday = 1.
            DatePart::DayOfWeek => ("%w", 1),
            DatePart::DayOfYear => ("%j", 0),
            DatePart::Millisecond => {
                return format!("(CAST(round(strftime('%f', {expr}) * 1000) AS INTEGER) % 1000)");
            }
        };
        format!("(CAST(strftime('{format}', {expr}) AS INTEGER) + {offset})")
    }

    fn join_items(out: &mut SqlBuilder, alias: &str, column: &str, keep_empty: bool, items: &str) {
        let array = format!("{alias}.{}", quote_ident(column));
        out.push(if keep_empty { " LEFT JOIN " } else { " JOIN " });
        out.push(&format!(
            "json_each(CASE WHEN json_type({array}) = 'array' THEN {array} END) AS {items} ON 1"
        ));
    }

    /// An item as JSON text: `json_each` gives strings as plain text and booleans as 1/0,
    /// so the item's type says how to write it.
    fn item_exprs(items: &str) -> (String, String) {
        (
            format!(
                "CASE WHEN {items}.type IS NULL THEN NULL \
                 WHEN {items}.type IN ('object', 'array') THEN {items}.value \
                 WHEN {items}.type IN ('true', 'false', 'null') THEN {items}.type \
                 ELSE json_quote({items}.value) END"
            ),
            format!("{items}.key"),
        )
    }

    fn json_at(out: &mut SqlBuilder, expr: &str, path: &[String]) {
        out.push("(");
        out.push(expr);
        out.push(" -> ");
        out.text(&json_path(path));
        out.push(")");
    }

    fn orders_kind(kind: &Kind) -> bool {
        aggregate::orders_kind(kind)
    }

    fn json_column(value: Value) -> Value {
        match value {
            Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            other => other,
        }
    }
}
