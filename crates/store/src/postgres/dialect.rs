//! The PostgreSQL [`Dialect`]: numbered, typed placeholders (`$1::jsonb`), JSON as `jsonb`,
//! regexes rewritten for PostgreSQL's engine ([`super::regex`]), ACLs and `_nulls` as
//! `text[]`.
//!
//! - A path descends with `->` and a bound key per level, which reaches only into objects
//!   (a text key on an array gives NULL), as the matcher's paths do. Kinds are
//!   `jsonb_typeof`; numbers and strings compare as jsonb (numbers numerically, strings
//!   exactly), string order is taken on the extracted text in the `"C"` collation.
//! - Whole-JSON equality compares `jsonb` text: jsonb equality would call `1` and `1.0` equal,
//!   which `serde_json` (and so the matcher) does not; jsonb keeps the number's text.
//! - PostgreSQL does not promise to evaluate `AND` left to right, so anything that could fail
//!   on a value of the wrong kind (a cast, `jsonb_array_elements`) sits inside a `CASE`.
//! - ACL checks are array overlap (`&&`), which a GIN index serves.

use parlor_core::object::Acl;
use parlor_core::query::geo::GeoPoint;
use parlor_core::query::pipeline::DatePart;
use parlor_core::query::{Operand, SubQuery};
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value};

use crate::aggregate::{self, AggregateDialect, Kind};
use crate::error::{StoreError, StoreResult};
use crate::postgres::regex::to_postgres;
use crate::postgres::rows::{self, PgBind, PgSql};
use crate::sql::quote_ident;
use crate::translate::{Dialect, JsonLoc, ScalarKind, Translator};

/// The PostgreSQL dialect.
pub(crate) struct PgDialect;

/// The translator of PostgreSQL statements.
pub(crate) type PgTranslator<'a> = Translator<'a, PgDialect>;

/// A JSON number for an `f64` operand.
fn json_number(number: f64) -> Value {
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// The jsonb expression of `loc`: `(column -> $1::text -> $2::text)` or `alias.value`.
fn loc_expr(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>) {
    match loc {
        JsonLoc::Path { column, path: [] } => t.push(column),
        JsonLoc::Path { column, path } => {
            t.push("(");
            t.push(column);
            for key in *path {
                t.push(" -> ");
                t.out.text(key);
            }
            t.push(")");
        }
        JsonLoc::Item { alias } => {
            t.push(alias);
            t.push(".value");
        }
    }
}

/// The member `key` of the JSON object at `loc` (NULL when there is none, or when the
/// value is not an object).
fn member(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, key: &str) {
    t.push("(");
    loc_expr(t, loc);
    t.push(" -> '");
    // Keys given here are constants of this module, never client data.
    t.push(key);
    t.push("')");
}

/// The value at `loc` is a pointer (`__type` Pointer, or Object for an included one).
fn pointer_type(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>) {
    member(t, loc, "__type");
    t.push(" IN ('\"Pointer\"'::jsonb, '\"Object\"'::jsonb)");
}

/// The text of the (string) value at `loc`.
fn json_text(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>) {
    t.push("(");
    loc_expr(t, loc);
    t.push(" #>> '{}')");
}

/// `jsonb_typeof` at `loc` is one of `names`.
fn type_named(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, names: &[&str]) {
    t.push("jsonb_typeof(");
    loc_expr(t, loc);
    t.push(")");
    t.is_one_of(names);
}

/// The haversine distance in radians between the GeoPoint column `expr` and `point`, in
/// plain SQL (no PostGIS): the formula of `parlor_core::query::geo::distance`, term for term.
fn distance_sql(t: &mut PgTranslator<'_>, expr: &str, point: GeoPoint) {
    let latitude = format!("(({expr} ->> 'latitude')::float8)");
    let longitude = format!("(({expr} ->> 'longitude')::float8)");
    t.push("(2 * asin(least(sqrt(power(sin((radians(");
    t.push(&latitude);
    t.push(") - radians(");
    t.out.param(PgBind::Float(point.latitude));
    t.push(")) / 2), 2) + cos(radians(");
    t.out.param(PgBind::Float(point.latitude));
    t.push(")) * cos(radians(");
    t.push(&latitude);
    t.push(")) * power(sin(radians(");
    t.push(&longitude);
    t.push(" - ");
    t.out.param(PgBind::Float(point.longitude));
    t.push(") / 2), 2)), 1)))");
}

/// Binds a pattern in PostgreSQL's syntax, or records why it cannot be.
fn pattern(t: &mut PgTranslator<'_>, source: &str) {
    match to_postgres(source) {
        Ok(pattern) => {
            t.out.param(PgBind::Text(pattern));
        }
        Err(error) => {
            t.push("NULL");
            t.fail(StoreError::Invalid(error));
        }
    }
}

impl Dialect for PgDialect {
    type Bind = PgBind;
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";

    fn encode_value(name: &str, field_type: &FieldType, value: &Value) -> StoreResult<PgBind> {
        rows::encode_value(name, field_type, value)
    }

    fn encode_acl(acl: Option<&Acl>) -> (PgBind, PgBind) {
        rows::encode_acl(acl)
    }

    fn encode_nulls(schema: &ClassSchema, fields: &Map<String, Value>) -> PgBind {
        rows::encode_nulls(schema, fields)
    }

    fn number(number: f64) -> PgBind {
        PgBind::Float(number)
    }

    fn limit_offset(out: &mut PgSql, limit: Option<u64>, skip: u64) {
        if let Some(limit) = limit {
            out.push(" LIMIT ");
            out.param(PgBind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        if skip > 0 {
            out.push(" OFFSET ");
            out.param(PgBind::Int(i64::try_from(skip).unwrap_or(i64::MAX)));
        }
    }

    fn bool_eq(flag: bool) -> &'static str {
        if flag { " = TRUE" } else { " = FALSE" }
    }

    fn text_in(t: &mut PgTranslator<'_>, values: Vec<String>) {
        t.push(" = ANY(");
        t.out.param(PgBind::TextArray(values));
        t.push(")");
    }

    /// Orders by a JSON value as SQLite orders `json_extract`: absent and null first, then
    /// numbers (booleans as 0 and 1), then strings and containers by their text.
    fn order_json(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, descending: bool) {
        let direction = if descending { " DESC" } else { " ASC" };
        t.push("CASE jsonb_typeof(");
        loc_expr(t, loc);
        t.push(") WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END");
        t.push(direction);
        t.push(", CASE jsonb_typeof(");
        loc_expr(t, loc);
        t.push(") WHEN 'number' THEN (");
        loc_expr(t, loc);
        t.push(" #>> '{}')::float8 WHEN 'boolean' THEN CASE WHEN ");
        loc_expr(t, loc);
        t.push(" = 'true'::jsonb THEN 1 ELSE 0 END END");
        t.push(direction);
        t.push(", CASE jsonb_typeof(");
        loc_expr(t, loc);
        t.push(") WHEN 'string' THEN ");
        loc_expr(t, loc);
        t.push(" #>> '{}' WHEN 'object' THEN ");
        loc_expr(t, loc);
        t.push("::text WHEN 'array' THEN ");
        loc_expr(t, loc);
        t.push("::text END COLLATE \"C\"");
        t.push(direction);
    }

    fn json_is_array(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>) {
        type_named(t, loc, &["array"]);
    }

    fn json_absent(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>) {
        t.push("COALESCE(jsonb_typeof(");
        loc_expr(t, loc);
        t.push("), 'null') = 'null'");
    }

    /// `->` gives SQL NULL for a missing key and jsonb `null` for an explicit one.
    fn json_exists(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, exists: bool) {
        loc_expr(t, loc);
        t.push(if exists { " IS NOT NULL" } else { " IS NULL" });
    }

    fn scalar_eq(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, op: &Operand) {
        t.push("(");
        match op {
            Operand::Null => type_named(t, loc, &["null"]),
            Operand::Bool(flag) => {
                loc_expr(t, loc);
                t.push(if *flag {
                    " = 'true'::jsonb"
                } else {
                    " = 'false'::jsonb"
                });
            }
            // jsonb equality is exact on strings and numeric on numbers (`1` = `1.0`, as
            // the matcher compares `f64`s), and false between kinds.
            Operand::Number(number) => {
                loc_expr(t, loc);
                t.push(" = ");
                t.out.param(PgBind::Json(json_number(*number)));
            }
            Operand::String(text) => {
                loc_expr(t, loc);
                t.push(" = ");
                t.out.param(PgBind::Json(Value::from(text.as_str())));
            }
            Operand::Date(iso) => {
                member(t, loc, "__type");
                t.push(" = '\"Date\"'::jsonb AND ");
                member(t, loc, "iso");
                t.push(" = ");
                t.out.param(PgBind::Json(Value::from(iso.as_str())));
            }
            Operand::Pointer {
                class_name,
                object_id,
            } => {
                pointer_type(t, loc);
                t.push(" AND ");
                member(t, loc, "className");
                t.push(" = ");
                t.out.param(PgBind::Json(Value::from(class_name.as_str())));
                t.push(" AND ");
                member(t, loc, "objectId");
                t.push(" = ");
                t.out.param(PgBind::Json(Value::from(object_id.as_str())));
            }
            Operand::Json(value) => {
                type_named(t, loc, &["object", "array"]);
                t.push(" AND ");
                loc_expr(t, loc);
                t.push("::text = ");
                t.out.param(PgBind::Json(value.clone()));
                t.push("::text");
            }
        }
        t.push(")");
    }

    /// The jsonb text of `expr` equals that of the value (see the module docs).
    fn whole_json_eq(t: &mut PgTranslator<'_>, expr: &str, value: &Value) {
        t.push(expr);
        t.push("::text = ");
        t.out.param(PgBind::Json(value.clone()));
        t.push("::text");
    }

    fn json_compare(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, op: &Operand, operator: &str) {
        match op {
            Operand::Number(number) => {
                // jsonb orders numbers numerically.
                type_named(t, loc, &["number"]);
                t.push(" AND ");
                loc_expr(t, loc);
                t.push(" ");
                t.push(operator);
                t.push(" ");
                t.out.param(PgBind::Json(json_number(*number)));
            }
            Operand::Date(iso) => {
                member(t, loc, "__type");
                t.push(" = '\"Date\"'::jsonb AND jsonb_typeof(");
                member(t, loc, "iso");
                t.push(") = 'string' AND (");
                loc_expr(t, loc);
                t.push(" ->> 'iso') COLLATE \"C\" ");
                t.push(operator);
                t.push(" ");
                t.out.text(iso);
            }
            Operand::String(text) => {
                type_named(t, loc, &["string"]);
                t.push(" AND ");
                json_text(t, loc);
                t.push(" COLLATE \"C\" ");
                t.push(operator);
                t.push(" ");
                t.out.text(text);
            }
            _ => t.push("FALSE"),
        }
    }

    /// `jsonb_array_elements(…) AS alias(value)`, over nothing when the value is not an
    /// array (the function would fail on it).
    fn array_elements(t: &mut PgTranslator<'_>, array: &JsonLoc<'_>, item_alias: &str) {
        t.push("jsonb_array_elements(CASE WHEN jsonb_typeof(");
        loc_expr(t, array);
        t.push(") = 'array' THEN ");
        loc_expr(t, array);
        t.push(" END) AS ");
        t.push(item_alias);
        t.push("(value)");
    }

    /// The cast only runs on a value of the right kind.
    fn json_scalar(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, kind: ScalarKind<'_>) {
        let (json_type, cast) = match kind {
            ScalarKind::String => ("string", ""),
            ScalarKind::Number => ("number", "::float8"),
            ScalarKind::Boolean => ("boolean", "::boolean"),
            _ => {
                t.push("NULL");
                return;
            }
        };
        t.push("CASE WHEN ");
        type_named(t, loc, &[json_type]);
        t.push(" THEN ");
        json_text(t, loc);
        t.push(cast);
        t.push(" END");
    }

    fn pointer_in(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, query: &SubQuery) {
        t.push("(");
        pointer_type(t, loc);
        t.push(" AND ");
        member(t, loc, "className");
        t.push(" = ");
        t.out
            .param(PgBind::Json(Value::from(query.class_name.as_str())));
        t.push(" AND jsonb_typeof(");
        member(t, loc, "objectId");
        t.push(") = 'string' AND (");
        loc_expr(t, loc);
        t.push(" ->> 'objectId') IN ");
        t.subquery(query, "objectId", false);
        t.push(")");
    }

    /// The trigram index (`search::ensure_trigram_index`) serves the regex itself.
    fn text_prefilter(
        _t: &mut PgTranslator<'_>,
        _class_name: &str,
        _alias: &str,
        _field: &str,
        _terms: &[String],
    ) -> bool {
        false
    }

    fn column_matches(t: &mut PgTranslator<'_>, expr: &str, source: &str) {
        t.push(expr);
        t.push(" ~ ");
        pattern(t, source);
    }

    fn string_matches(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, source: &str) {
        t.push("(");
        type_named(t, loc, &["string"]);
        t.push(" AND ");
        json_text(t, loc);
        t.push(" ~ ");
        pattern(t, source);
        t.push(")");
    }

    /// `lower` in the `"C"` collation folds ASCII only, like SQLite's `NOCASE`. On a String
    /// column this is `lower(col) = lower(?)`, which the `lower(col)` unique indexes serve.
    fn column_eq_ignore_case(t: &mut PgTranslator<'_>, expr: &str, text: &str) {
        t.push("lower(");
        t.push(expr);
        t.push(") = lower(");
        t.out.text(text);
        t.push(" COLLATE \"C\")");
    }

    fn json_eq_ignore_case(t: &mut PgTranslator<'_>, loc: &JsonLoc<'_>, text: &str) {
        t.push("(");
        type_named(t, loc, &["string"]);
        t.push(" AND lower(");
        json_text(t, loc);
        t.push(" COLLATE \"C\") = lower(");
        t.out.text(text);
        t.push(" COLLATE \"C\"))");
    }

    fn float(value: f64) -> PgBind {
        PgBind::Float(value)
    }

    fn coordinate(expr: &str, name: &str) -> String {
        format!("(({expr} ->> '{name}')::float8)")
    }

    /// In plain SQL (no PostGIS), term for term the formula of the matcher.
    fn distance(t: &mut PgTranslator<'_>, expr: &str, point: GeoPoint) {
        distance_sql(t, expr, point);
    }

    /// PostgreSQL's `point <@ polygon` in the plane of (longitude, latitude), as Parse
    /// Server's adapter: edges and vertices are inside.
    fn in_polygon(t: &mut PgTranslator<'_>, expr: &str, polygon: &[GeoPoint]) {
        let points: Vec<String> = polygon
            .iter()
            .map(|point| format!("({},{})", point.longitude, point.latitude))
            .collect();
        t.push("(point(");
        t.push(&Self::coordinate(expr, "longitude"));
        t.push(", ");
        t.push(&Self::coordinate(expr, "latitude"));
        t.push(") <@ polygon(");
        t.out.text(&format!("({})", points.join(",")));
        t.push("))");
    }

    /// The field's `[[lat, lon], …]` as a `polygon` of (lon, lat), in order.
    fn polygon_contains(t: &mut PgTranslator<'_>, expr: &str, point: GeoPoint) {
        t.push("((SELECT polygon('(' || string_agg('(' || (c.value ->> 1) || ',' || (c.value ->> 0) || ')', ',' ORDER BY c.ordinality) || ')') FROM jsonb_array_elements(CASE WHEN jsonb_typeof(");
        t.push(expr);
        t.push(" -> 'coordinates') = 'array' THEN ");
        t.push(expr);
        t.push(" -> 'coordinates' END) WITH ORDINALITY AS c(value, ordinality)) @> point(");
        t.out.param(PgBind::Float(point.longitude));
        t.push(", ");
        t.out.param(PgBind::Float(point.latitude));
        t.push("))");
    }

    /// NULL sorts first ascending and last descending, as in SQLite.
    fn nulls_order(descending: bool) -> &'static str {
        if descending {
            " NULLS LAST"
        } else {
            " NULLS FIRST"
        }
    }

    /// Lists are `text[]`; overlap is served by the ACL columns' GIN indexes.
    /// The formula in SQL: `regexp_count` of each term's pattern and of words, the patterns
    /// rewritten for PostgreSQL as `~` uses them.
    fn text_score(
        out: &mut PgSql,
        expr: &str,
        patterns: &[String],
        stop: Option<&str>,
    ) -> StoreResult<()> {
        let word = to_postgres(parlor_core::query::regex::WORD_PATTERN)?;
        let stop = stop.map(to_postgres).transpose()?;
        let count = |out: &mut PgSql, pattern: &str| {
            out.push("regexp_count(");
            out.push(expr);
            out.push(", ");
            out.param(PgBind::Text(pattern.to_owned()));
            out.push(")::float8");
        };
        out.push("COALESCE((0.0");
        for source in patterns {
            let term = to_postgres(source)?;
            out.push(" + (0.5 * ");
            count(out, &term);
            out.push(" / greatest(");
            count(out, &word);
            if let Some(stop) = &stop {
                out.push(" - ");
                count(out, stop);
            }
            out.push(", 1.0) + 0.5) * (2.0 - power(2.0::float8, 1.0 - ");
            count(out, &term);
            out.push("))");
        }
        out.push("), 0.0)");
        Ok(())
    }

    fn list_has_any(t: &mut PgTranslator<'_>, column: &str, entries: &[String]) {
        t.push(column);
        t.push(" && ");
        t.out.param(PgBind::TextArray(entries.to_vec()));
    }
}

impl AggregateDialect for PgDialect {
    /// The stored ISO text as a UTC timestamp; `floor` so that seconds do not round up.
    fn date_part(part: DatePart, expr: &str) -> String {
        let utc = format!("(({expr})::timestamptz AT TIME ZONE 'UTC')");
        let (field, offset) = match part {
            DatePart::Year => ("YEAR", 0),
            DatePart::Month => ("MONTH", 0),
            DatePart::DayOfMonth => ("DAY", 0),
            DatePart::Hour => ("HOUR", 0),
            DatePart::Minute => ("MINUTE", 0),
            DatePart::Second => ("SECOND", 0),
            // `DOW` counts from Sunday = 0; MongoDB's `$dayOfWeek` from Sunday = 1.
            DatePart::DayOfWeek => ("DOW", 1),
            DatePart::DayOfYear => ("DOY", 0),
            DatePart::Millisecond => {
                return format!("(floor(EXTRACT(MILLISECONDS FROM {utc}))::integer % 1000)");
            }
        };
        format!("(floor(EXTRACT({field} FROM {utc}))::integer + {offset})")
    }

    fn join_items(out: &mut PgSql, alias: &str, column: &str, keep_empty: bool, items: &str) {
        let array = format!("{alias}.{}", quote_ident(column));
        out.push(if keep_empty {
            " LEFT JOIN LATERAL "
        } else {
            " CROSS JOIN LATERAL "
        });
        out.push(&format!(
            "jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} END) \
             WITH ORDINALITY AS {items}(value, position)"
        ));
        if keep_empty {
            out.push(" ON TRUE");
        }
    }

    fn item_exprs(items: &str) -> (String, String) {
        (format!("{items}.value"), format!("({items}.position - 1)"))
    }

    fn json_at(out: &mut PgSql, expr: &str, path: &[String]) {
        out.push("(");
        out.push(expr);
        for key in path {
            out.push(" -> ");
            out.text(key);
        }
        out.push(")");
    }

    fn orders_kind(kind: &Kind) -> bool {
        aggregate::orders_kind(kind)
    }

    fn json_column(value: Value) -> Value {
        value
    }
}
