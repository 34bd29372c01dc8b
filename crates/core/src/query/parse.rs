//! Parse `where` JSON → [`Filter`], and the `order`/`keys` parameters (parse-protocol.md §3).
//!
//! The parser validates everything a client can get wrong, resolves each key against the
//! class schema (so both evaluators know a field's type), and normalises operands (dates to
//! Parse's ISO text, pointers to their parts, `$relativeTime` to a date). It never panics and
//! bounds its work: a `where` deeper than [`MAX_DEPTH`] or an operator list longer than
//! [`MAX_LIST_ITEMS`] is refused before anything recurses over it.
//!
//! Choices where Parse Server gives no clear answer:
//! - `{"a":{"x":1,"$exists":true}}` (plain keys next to operators): the plain part is an
//!   `$eq` on the object made of the plain keys, ANDed with the operators (§3.2).
//! - A subquery (`$inQuery`, `$select`, …) on a class that does not exist is a subquery that
//!   returns nothing: its filter is [`Filter::False`]. Its `where` is still validated, and
//!   [`QueryContext::restrict_subquery`] is still asked (it may refuse the class).
//! - `$relatedTo` on an owner class that does not exist, on a relation field the owner class
//!   does not have (yet), or on a relation whose target is not the queried class matches
//!   nothing; a key that names a field which is not a Relation is `102`.
//! - Operand values that are malformed typed values (a Date without a valid `iso`, a GeoPoint out
//!   of range, …) are `102`.
//! - `$text` terms are split on whitespace and kept as written; each must compile, as a whole word
//!   pattern, within the regex size limit (else `107`).
//! - Regexes per query (`$regex` and `$all` regex items, subqueries included) are capped at
//!   [`MAX_PATTERNS`], so a query cannot pin down an unbounded amount of compiled regex.
//! - `order`: unknown fields, `$score`, ACL and Relation fields are dropped silently; a key
//!   given twice is kept once; more than [`MAX_SORT_KEYS`] keys is `102`.
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::query::ast::{Cond, FieldRef, Filter, Operand, Pattern, SortKey, SubQuery};
use crate::query::{geo, regex};
use crate::schema::{ClassSchema, FieldType, is_valid_class_name, is_valid_field_name};
use crate::value;

/// The deepest `where` accepted, counted as [`value::depth`] counts (`{"a":1}` is 1).
pub const MAX_DEPTH: usize = 16;

/// The most items an operator list (`$in`, `$all`, `$or`, `$text` terms, …) may hold.
pub const MAX_LIST_ITEMS: usize = 1000;

/// The most regular expressions one `where` may compile.
pub const MAX_PATTERNS: usize = 100;

/// The most keys an `order` may hold.
pub const MAX_SORT_KEYS: usize = 64;

/// Operators of the geo family, read together by [`geo::parse_geo`].
const GEO_OPERATORS: [&str; 13] = [
    "$near",
    "$nearSphere",
    "$within",
    "$geoWithin",
    "$geoIntersects",
    "$maxDistance",
    "$maxDistanceInRadians",
    "$maxDistanceInMiles",
    "$maxDistanceInKilometers",
    "$box",
    "$polygon",
    "$centerSphere",
    "$point",
];

/// What the parser needs from outside: other classes' schemas (for subqueries) and the
/// caller's restrictions on a subquery's class (ACL, CLP).
pub trait QueryContext {
    fn schema(&self, class_name: &str) -> Option<Arc<ClassSchema>>;
    /// Conditions to AND into a subquery over `class_name`; an error refuses the subquery.
    fn restrict_subquery(&self, class_name: &str) -> Result<Filter>;
}

/// Parses a `where` object against the class schema.
pub fn parse_where(
    where_json: &Value,
    schema: &ClassSchema,
    ctx: &dyn QueryContext,
) -> Result<Filter> {
    let Some(map) = where_json.as_object() else {
        return Err(Error::invalid_query("Invalid where: must be a JSON object"));
    };
    if value::depth(where_json) > MAX_DEPTH {
        return Err(Error::invalid_query(format!(
            "Invalid where: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut parser = Parser { ctx, n_patterns: 0 };
    parser.where_map(map, schema)
}

/// Parses `order` (`-score,name`): a comma list, `-` for descending.
///
/// `_created_at` and `_updated_at` stand for `createdAt` and `updatedAt`, as in Parse Server.
/// Fields the schema does not have, `$score`, and ACL/Relation fields are dropped; a name that
/// is not a valid field name is `105 "Invalid field name: x."`.
pub fn parse_order(order: &str, schema: &ClassSchema) -> Result<Vec<SortKey>> {
    let mut sort_keys: Vec<SortKey> = Vec::new();
    let mut seen: BTreeSet<(&str, Vec<String>)> = BTreeSet::new();
    for item in order.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, descending) = match item.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (item, false),
        };
        if name == "$score" {
            continue;
        }
        // Parse Server accepts the storage names of the timestamps as aliases.
        let name = match name {
            "_created_at" => "createdAt",
            "_updated_at" => "updatedAt",
            other => other,
        };
        let invalid = || Error::invalid_key_name(format!("Invalid field name: {}.", clip(name)));
        let Some((root, path)) = split_key(name) else {
            return Err(invalid());
        };
        let sortable = match schema.field_type(root) {
            None | Some(FieldType::Acl) | Some(FieldType::Relation(_)) => None,
            Some(field_type) => Some(field_type),
        };
        let Some(field_type) = sortable else {
            continue;
        };
        if !seen.insert((root, path.clone())) {
            continue;
        }
        if sort_keys.len() >= MAX_SORT_KEYS {
            return Err(Error::invalid_query(format!(
                "Too many order keys: at most {MAX_SORT_KEYS}"
            )));
        }
        sort_keys.push(SortKey {
            field: FieldRef {
                field: root.to_owned(),
                path,
                field_type: Some(field_type.clone()),
            },
            descending,
            near: None,
        });
    }
    Ok(sort_keys)
}

/// Parses `keys` (`title,author.name`) into the top-level fields to load, in order, each once.
/// Dotted keys select their top-level field; names that are not valid field names are dropped.
pub fn parse_keys(keys: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for item in keys.split(',') {
        let root = item.trim().split('.').next().unwrap_or_default();
        if is_valid_field_name(root) && seen.insert(root) {
            fields.push(root.to_owned());
        }
    }
    fields
}

/// Resolves `$relativeTime` text (`"in 2 days"`, `"3 hours ago"`, `"now"`, also several
/// pairs: `"in 1 day 2 hours"`) against `now`, to Parse's ISO text.
///
/// Units: sec(s)/second(s), min(s)/minute(s), hr(s)/hour(s), d/day(s), wk(s)/week(s),
/// month(s) (30 days), yr(s)/year(s) (365 days). Numbers may be decimals.
pub fn relative_time(text: &str, now: DateTime<Utc>) -> std::result::Result<String, String> {
    let lower = text.to_lowercase();
    let parts: Vec<&str> = lower.split_whitespace().collect();
    if parts == ["now"] {
        return Ok(value::format_date(now));
    }
    let future = parts.first() == Some(&"in");
    let past = parts.last() == Some(&"ago");
    let amounts = match (future, past) {
        (true, true) => return Err("Time cannot have both 'in' and 'ago'".to_owned()),
        (false, false) => {
            return Err("Time should either start with 'in' or end with 'ago'".to_owned());
        }
        (true, false) => parts.get(1..),
        (false, true) => parts.get(..parts.len().saturating_sub(1)),
    };
    let amounts = amounts.unwrap_or_default();
    if amounts.is_empty() || amounts.len() % 2 != 0 {
        return Err("Invalid time string. Dangling unit or number.".to_owned());
    }
    let mut seconds = 0.0_f64;
    for pair in amounts.chunks_exact(2) {
        let [number, unit] = pair else {
            return Err("Invalid time string. Dangling unit or number.".to_owned());
        };
        let amount: f64 = number
            .parse()
            .ok()
            .filter(|amount: &f64| amount.is_finite())
            .ok_or_else(|| format!("'{}' is not a valid number.", clip(number)))?;
        let unit_seconds = match *unit {
            "sec" | "secs" | "second" | "seconds" => 1.0,
            "min" | "mins" | "minute" | "minutes" => 60.0,
            "hr" | "hrs" | "hour" | "hours" => 3_600.0,
            "d" | "day" | "days" => 86_400.0,
            "wk" | "wks" | "week" | "weeks" => 604_800.0,
            "month" | "months" => 2_592_000.0,
            "yr" | "yrs" | "year" | "years" => 31_536_000.0,
            other => return Err(format!("Invalid interval: '{}'", clip(other))),
        };
        seconds += amount * unit_seconds;
    }
    if past {
        seconds = -seconds;
    }
    let out_of_range = || "Time is out of range".to_owned();
    // 10^12 s is about 31,700 years: beyond it no date is representable anyway.
    if !seconds.is_finite() || seconds.abs() > 1e12 {
        return Err(out_of_range());
    }
    // Bounded to ±10^15 ms just above, so the cast is exact enough and cannot saturate.
    let millis = (seconds * 1000.0).round() as i64;
    let date = Duration::try_milliseconds(millis)
        .and_then(|offset| now.checked_add_signed(offset))
        .ok_or_else(out_of_range)?;
    // Outside years 0-9999 the ISO text no longer orders like the instant.
    if !(0..=9999).contains(&date.year()) {
        return Err(out_of_range());
    }
    Ok(value::format_date(date))
}

/// One `where` being parsed; counts compiled regexes across subqueries.
struct Parser<'a> {
    ctx: &'a dyn QueryContext,
    n_patterns: usize,
}

impl Parser<'_> {
    fn where_map(&mut self, map: &Map<String, Value>, schema: &ClassSchema) -> Result<Filter> {
        let mut filter = Filter::True;
        for (key, value) in map {
            let item = match key.as_str() {
                "$or" => Filter::Or(self.where_list("$or", value, schema)?),
                "$and" => Filter::And(self.where_list("$and", value, schema)?),
                "$nor" => Filter::Nor(self.where_list("$nor", value, schema)?),
                "$relatedTo" => self.related_to(value, schema)?,
                // Parse Server checks top-level keys against its key-name pattern first,
                // so an unknown `$operator` here is an invalid key name (105), not 102.
                other if other.starts_with('$') => {
                    return Err(Error::invalid_key_name(format!(
                        "Invalid key name: {}",
                        clip(other)
                    )));
                }
                _ => {
                    let field = field_ref(key, schema)?;
                    self.constraint(field, value)?
                }
            };
            filter = filter.and(item);
        }
        Ok(filter)
    }

    /// The items of `$or`/`$and`/`$nor`: a non-empty array of where objects.
    fn where_list(
        &mut self,
        operator: &str,
        value: &Value,
        schema: &ClassSchema,
    ) -> Result<Vec<Filter>> {
        let Some(items) = value.as_array() else {
            return Err(Error::invalid_query(format!(
                "Bad {operator} format - use an array value."
            )));
        };
        if items.is_empty() {
            return Err(Error::invalid_query(format!(
                "Bad {operator} format - use an array of at least 1 value."
            )));
        }
        check_list_len(operator, items)?;
        let mut filters = Vec::with_capacity(items.len());
        for item in items {
            let Some(map) = item.as_object() else {
                return Err(Error::invalid_query(format!(
                    "Bad {operator} format - use an array of objects."
                )));
            };
            filters.push(self.where_map(map, schema)?);
        }
        Ok(filters)
    }

    /// `{"$relatedTo":{"object":Pointer,"key":"users"}}`.
    fn related_to(&mut self, value: &Value, schema: &ClassSchema) -> Result<Filter> {
        let improper = || Error::invalid_query("improper usage of $relatedTo");
        let Some(map) = value.as_object() else {
            return Err(improper());
        };
        let owner = map.get("object").and_then(value::as_pointer);
        let key = map.get("key").and_then(Value::as_str);
        // A pointer to an object never saved (the SDK's relation on a clone): nothing is
        // related to it, as Parse Server answers.
        let unsaved = map.get("object").is_some_and(|object| {
            object.get("__type").and_then(Value::as_str) == Some("Pointer")
                && object.get("className").is_some_and(Value::is_string)
                && object.get("objectId").is_none_or(Value::is_null)
        });
        if unsaved && key.is_some() {
            return Ok(Filter::False);
        }
        let (Some((owner_class, owner_id)), Some(key)) = (owner, key) else {
            return Err(improper());
        };
        let Some(owner_schema) = self.ctx.schema(owner_class) else {
            return Ok(Filter::False);
        };
        match owner_schema.field_type(key) {
            None => Ok(Filter::False),
            Some(FieldType::Relation(target)) if *target != schema.class_name => Ok(Filter::False),
            Some(FieldType::Relation(_)) => Ok(Filter::RelatedTo {
                owner_class: owner_class.to_owned(),
                owner_id: owner_id.to_owned(),
                key: key.to_owned(),
            }),
            Some(_) => Err(improper()),
        }
    }

    /// The value of a field key: a plain value (equality) or an object of operators.
    fn constraint(&mut self, field: FieldRef, value: &Value) -> Result<Filter> {
        match value {
            Value::Object(map)
                if !map.contains_key("__type") && map.keys().any(|key| key.starts_with('$')) =>
            {
                self.operators(field, map)
            }
            _ => Ok(Filter::Cond {
                field,
                cond: Cond::Eq(operand(value)?),
            }),
        }
    }

    fn operators(&mut self, field: FieldRef, map: &Map<String, Value>) -> Result<Filter> {
        let mut filter = Filter::True;
        let plain: Map<String, Value> = map
            .iter()
            .filter(|(key, _)| !key.starts_with('$'))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if !plain.is_empty() {
            filter = filter.and(Filter::Cond {
                field: field.clone(),
                cond: Cond::Eq(operand(&Value::Object(plain))?),
            });
        }
        for geo in geo::parse_geo(map)? {
            filter = filter.and(Filter::Cond {
                field: field.clone(),
                cond: Cond::Geo(geo),
            });
        }
        for (operator, value) in map {
            let name = operator.as_str();
            let cond = match name {
                _ if !name.starts_with('$') => continue,
                "$eq" => Cond::Eq(operand(value)?),
                "$ne" => Cond::Ne(operand(value)?),
                "$lt" => Cond::Lt(comparison_operand(&field, name, value)?),
                "$lte" => Cond::Lte(comparison_operand(&field, name, value)?),
                "$gt" => Cond::Gt(comparison_operand(&field, name, value)?),
                "$gte" => Cond::Gte(comparison_operand(&field, name, value)?),
                "$in" => Cond::In(operand_list(name, value, "bad $in value")?),
                "$nin" => Cond::Nin(operand_list(name, value, "bad $nin value")?),
                "$containedBy" => Cond::ContainedBy(operand_list(
                    name,
                    value,
                    "bad $containedBy: should be an array",
                )?),
                "$all" => self.all(value)?,
                "$exists" => match value {
                    Value::Bool(exists) => Cond::Exists(*exists),
                    _ => return Err(Error::invalid_json("bad $exists")),
                },
                "$regex" => Cond::Regex(self.regex(value, map.get("$options"))?),
                "$options" if map.contains_key("$regex") => continue,
                "$options" => {
                    return Err(Error::invalid_query(
                        "Bad $options value for query: $options is only valid with $regex",
                    ));
                }
                "$text" => {
                    let search = text_search(value)?;
                    if search.is_plain() {
                        Cond::Text(search.terms)
                    } else if search.terms.is_empty() {
                        Cond::Text(Vec::new())
                    } else {
                        // Options change each term's pattern: a regex per term, which
                        // both evaluators already agree on.
                        for source in search.patterns() {
                            let regex = regex::build(&source).map_err(|_| {
                                Error::invalid_json("bad $text: $term, a term is too long")
                            })?;
                            filter = filter.and(Filter::Cond {
                                field: field.clone(),
                                cond: Cond::Regex(Pattern { source, regex }),
                            });
                        }
                        continue;
                    }
                }
                "$select" | "$dontSelect" => {
                    let select = self.select(field.clone(), name, value)?;
                    filter = filter.and(select);
                    continue;
                }
                "$inQuery" | "$notInQuery" => {
                    let in_query = self.in_query(field.clone(), name, value)?;
                    filter = filter.and(in_query);
                    continue;
                }
                geo if GEO_OPERATORS.contains(&geo) => continue,
                other => {
                    return Err(Error::invalid_query(format!(
                        "Invalid query operator: {}",
                        clip(other)
                    )));
                }
            };
            filter = filter.and(Filter::Cond {
                field: field.clone(),
                cond,
            });
        }
        Ok(filter)
    }

    /// `$all`: plain values, or only `{"$regex":…}` items (`containsAllStartingWith`).
    fn all(&mut self, value: &Value) -> Result<Cond> {
        let Some(items) = value.as_array() else {
            return Err(Error::invalid_json("bad $all value"));
        };
        check_list_len("$all", items)?;
        let is_regex = |item: &Value| item.as_object().is_some_and(|m| m.contains_key("$regex"));
        let n_regex = items.iter().filter(|item| is_regex(item)).count();
        if n_regex == 0 {
            return items
                .iter()
                .map(operand)
                .collect::<Result<_>>()
                .map(Cond::All);
        }
        if n_regex != items.len() {
            return Err(Error::invalid_json(
                "All $all values must be of regex type or none",
            ));
        }
        let mut patterns = Vec::with_capacity(items.len());
        for item in items {
            let Some(map) = item.as_object() else {
                return Err(Error::invalid_json(
                    "All $all values must be of regex type or none",
                ));
            };
            if map.keys().any(|key| key != "$regex" && key != "$options") {
                return Err(Error::invalid_json(
                    "All $all values must be of regex type or none",
                ));
            }
            let pattern = map.get("$regex").unwrap_or(&Value::Null);
            patterns.push(self.regex(pattern, map.get("$options"))?);
        }
        Ok(Cond::AllMatch(patterns))
    }

    fn regex(&mut self, pattern: &Value, options: Option<&Value>) -> Result<Pattern> {
        let Some(pattern) = pattern.as_str() else {
            return Err(Error::invalid_query(format!(
                "bad $regex: {}",
                clip(&pattern.to_string())
            )));
        };
        let options = match options {
            None => "",
            Some(Value::String(options)) => options.as_str(),
            Some(other) => {
                return Err(Error::invalid_query(format!(
                    "Bad $options value for query: {}",
                    clip(&other.to_string())
                )));
            }
        };
        if self.n_patterns >= MAX_PATTERNS {
            return Err(Error::invalid_query(format!(
                "Too many regular expressions in one query: at most {MAX_PATTERNS}"
            )));
        }
        self.n_patterns += 1;
        regex::compile(pattern, options)
    }

    /// `$select`/`$dontSelect`: `{"query":{"className","where",…},"key"}`, exactly those two keys.
    fn select(&mut self, field: FieldRef, operator: &str, value: &Value) -> Result<Filter> {
        let improper = || Error::invalid_query(format!("improper usage of {operator}"));
        let Some(map) = value.as_object().filter(|map| map.len() == 2) else {
            return Err(improper());
        };
        let query = map.get("query").and_then(Value::as_object);
        let key = map.get("key").and_then(Value::as_str);
        let (Some(query), Some(key)) = (query, key) else {
            return Err(improper());
        };
        let Some(class_name) = query
            .get("className")
            .and_then(Value::as_str)
            .filter(|class_name| is_valid_class_name(class_name))
        else {
            return Err(improper());
        };
        let empty = Map::new();
        let where_map = match query.get("where") {
            None => &empty,
            Some(Value::Object(where_map)) => where_map,
            Some(_) => return Err(improper()),
        };
        let schema = self.ctx.schema(class_name);
        let query = self.subquery(class_name, schema.as_deref(), where_map)?;
        let key = match schema.as_deref() {
            Some(schema) => field_ref(key, schema)?,
            None => field_ref(key, &ClassSchema::new(class_name))?,
        };
        Ok(Filter::Select {
            field,
            query: Box::new(query),
            key,
            negate: operator == "$dontSelect",
        })
    }

    /// `$inQuery`/`$notInQuery`: `{"className","where"}`, both required.
    fn in_query(&mut self, field: FieldRef, operator: &str, value: &Value) -> Result<Filter> {
        let improper = || Error::invalid_query(format!("improper usage of {operator}"));
        let Some(map) = value.as_object() else {
            return Err(improper());
        };
        let class_name = map
            .get("className")
            .and_then(Value::as_str)
            .filter(|class_name| is_valid_class_name(class_name));
        let where_map = map.get("where").and_then(Value::as_object);
        let (Some(class_name), Some(where_map)) = (class_name, where_map) else {
            return Err(improper());
        };
        let schema = self.ctx.schema(class_name);
        let query = self.subquery(class_name, schema.as_deref(), where_map)?;
        Ok(Filter::InQuery {
            field,
            query: Box::new(query),
            negate: operator == "$notInQuery",
        })
    }

    /// A subquery's filter with the caller's restrictions on its class. A class that does not
    /// exist returns nothing, but its `where` is still validated.
    fn subquery(
        &mut self,
        class_name: &str,
        schema: Option<&ClassSchema>,
        where_map: &Map<String, Value>,
    ) -> Result<SubQuery> {
        let filter = match schema {
            Some(schema) => self.where_map(where_map, schema)?,
            None => {
                self.where_map(where_map, &ClassSchema::new(class_name))?;
                Filter::False
            }
        };
        let restriction = self.ctx.restrict_subquery(class_name)?;
        Ok(SubQuery {
            class_name: class_name.to_owned(),
            filter: filter.and(restriction),
        })
    }
}

/// Resolves a field key (`title`, `meta.model`) against the schema.
fn field_ref(key: &str, schema: &ClassSchema) -> Result<FieldRef> {
    if key == "ACL" || key.starts_with("ACL.") {
        return Err(Error::invalid_query("Cannot query on ACL."));
    }
    let Some((root, path)) = split_key(key) else {
        return Err(Error::invalid_key_name(format!(
            "Invalid key name: {}",
            clip(key)
        )));
    };
    Ok(FieldRef {
        field: root.to_owned(),
        path,
        field_type: schema.field_type(root).cloned(),
    })
}

/// `root.a.b` → (`root`, [`a`, `b`]) when `root` is a valid field name and every path segment
/// is a non-empty run of ASCII letters, digits and `_` (Parse's key pattern).
fn split_key(key: &str) -> Option<(&str, Vec<String>)> {
    let mut segments = key.split('.');
    let root = segments.next()?;
    if !is_valid_field_name(root) {
        return None;
    }
    let mut path = Vec::new();
    for segment in segments {
        let valid = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        path.push(segment.to_owned());
    }
    Some((root, path))
}

/// A value → [`Operand`]: scalars as themselves, Date and Pointer forms to their parts, and
/// everything else (arrays, objects, other typed values) as normalised JSON.
fn operand(value: &Value) -> Result<Operand> {
    match value {
        Value::Null => Ok(Operand::Null),
        Value::Bool(flag) => Ok(Operand::Bool(*flag)),
        Value::Number(number) => number
            .as_f64()
            .map(Operand::Number)
            .ok_or_else(|| Error::invalid_query("bad number")),
        Value::String(text) => Ok(Operand::String(text.clone())),
        Value::Array(_) => Ok(Operand::Json(normalize_json(value))),
        Value::Object(map) => {
            if map.contains_key("$relativeTime") {
                return Err(Error::invalid_query(
                    "$relativeTime can only be used with the $lt, $lte, $gt, and $gte operators",
                ));
            }
            match value::type_tag(value) {
                Some("Date") => value::as_date(value).map(Operand::Date).ok_or_else(|| {
                    Error::invalid_query("bad Date value: iso must be an ISO-8601 date")
                }),
                Some("Pointer" | "Object") => value::as_pointer(value)
                    .map(|(class_name, object_id)| Operand::Pointer {
                        class_name: class_name.to_owned(),
                        object_id: object_id.to_owned(),
                    })
                    .ok_or_else(|| {
                        Error::invalid_query(
                            "bad Pointer value: className and objectId are required",
                        )
                    }),
                Some(_) => value::validate_typed(value)
                    .map(Operand::Json)
                    .map_err(|error| Error::invalid_query(error.message)),
                None => Ok(Operand::Json(normalize_json(value))),
            }
        }
    }
}

/// The operand of `$lt`/`$lte`/`$gt`/`$gte`, where `{"$relativeTime":…}` is allowed on Date fields.
fn comparison_operand(field: &FieldRef, operator: &str, value: &Value) -> Result<Operand> {
    let Some(relative) = value.as_object().and_then(|map| map.get("$relativeTime")) else {
        return operand(value);
    };
    let bad = |reason: &str| {
        Error::invalid_query(format!("bad $relativeTime ({operator}) value. {reason}"))
    };
    if field.field_type != Some(FieldType::Date) || !field.path.is_empty() {
        return Err(bad("$relativeTime can only be used on Date fields"));
    }
    let Some(text) = relative.as_str() else {
        return Err(bad("$relativeTime should be a string"));
    };
    relative_time(text, Utc::now())
        .map(Operand::Date)
        .map_err(|reason| bad(&reason))
}

/// The items of `$in`/`$nin`/`$containedBy`: an array (else 107 with `message`).
fn operand_list(operator: &str, value: &Value, message: &'static str) -> Result<Vec<Operand>> {
    let Some(items) = value.as_array() else {
        return Err(Error::invalid_json(message));
    };
    check_list_len(operator, items)?;
    items.iter().map(operand).collect()
}

/// The relevance of the `$text` search in `where_json` (a top-level key, or one inside a
/// top-level `$and`), for `keys=$score` and `order=$score` (`sort`); `None` when the where
/// has no `$text`. `keep`: the objects carry it (`keys=$score`).
pub fn text_score(
    where_json: &Value,
    schema: &ClassSchema,
    sort: bool,
    keep: bool,
) -> Result<Option<crate::query::ast::TextScore>> {
    let Some(map) = where_json.as_object() else {
        return Ok(None);
    };
    for (key, value) in map {
        if key == "$and" {
            for item in value.as_array().into_iter().flatten() {
                if let Some(score) = text_score(item, schema, sort, keep)? {
                    return Ok(Some(score));
                }
            }
            continue;
        }
        let Some(text) = value.as_object().and_then(|map| map.get("$text")) else {
            continue;
        };
        let search = text_search(text)?;
        let field = FieldRef {
            field: key.clone(),
            path: Vec::new(),
            field_type: schema.field_type(key).cloned(),
        };
        return Ok(Some(crate::query::ast::TextScore {
            field,
            patterns: search.patterns(),
            stop_words: regex::stop_word_pattern(search.language.as_deref()),
            sort,
            keep,
        }));
    }
    Ok(None)
}

/// A `$text` search: its terms and options.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSearch {
    /// The terms, split on whitespace, as written; every one must be found as a word.
    pub terms: Vec<String>,
    /// `$caseSensitive: true`.
    pub case_sensitive: bool,
    /// `$diacriticSensitive: false`: letters also match their accented forms. Absent, the
    /// search is diacritic-sensitive, as on Parse Server's PostgreSQL adapter.
    pub fold_diacritics: bool,
    /// `$language`.
    pub language: Option<String>,
}

impl TextSearch {
    /// Without options: [`Cond::Text`].
    pub fn is_plain(&self) -> bool {
        !self.case_sensitive && !self.fold_diacritics
    }

    /// Each term's regex source, options folded in.
    pub fn patterns(&self) -> Vec<String> {
        self.terms
            .iter()
            .map(|term| {
                regex::text_term_pattern_with(term, self.case_sensitive, self.fold_diacritics)
            })
            .collect()
    }
}

/// `{"$search":{"$term":"a b","$language":"en","$caseSensitive":false,"$diacriticSensitive":false}}`.
/// `$language` does not change matching (terms are matched as written, without stemming); it
/// picks the stop words the relevance score leaves out.
pub fn text_search(value: &Value) -> Result<TextSearch> {
    let Some(search) = value
        .as_object()
        .and_then(|map| map.get("$search"))
        .and_then(Value::as_object)
    else {
        return Err(Error::invalid_json("bad $text: $search, should be object"));
    };
    let Some(term) = search.get("$term").and_then(Value::as_str) else {
        return Err(Error::invalid_json("bad $text: $term, should be string"));
    };
    if search
        .get("$language")
        .is_some_and(|language| !language.is_string())
    {
        return Err(Error::invalid_json(
            "bad $text: $language, should be string",
        ));
    }
    if let Some(unknown) = search.keys().find(|key| {
        !matches!(
            key.as_str(),
            "$term" | "$language" | "$caseSensitive" | "$diacriticSensitive"
        )
    }) {
        return Err(Error::invalid_json(format!(
            "bad $text: {} not supported",
            clip(unknown)
        )));
    }
    let mut flags = [false, true];
    for (flag, name) in flags
        .iter_mut()
        .zip(["$caseSensitive", "$diacriticSensitive"])
    {
        match search.get(name) {
            None => {}
            Some(Value::Bool(set)) => *flag = *set,
            Some(_) => {
                return Err(Error::invalid_json(format!(
                    "bad $text: {name}, should be boolean"
                )));
            }
        }
    }
    let terms: Vec<String> = term.split_whitespace().map(str::to_owned).collect();
    if terms.len() > MAX_LIST_ITEMS {
        return Err(too_many("$text"));
    }
    let search = TextSearch {
        terms,
        case_sensitive: flags[0],
        fold_diacritics: !flags[1],
        language: search
            .get("$language")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    for source in search.patterns() {
        if regex::build(&source).is_err() {
            return Err(Error::invalid_json("bad $text: $term, a term is too long"));
        }
    }
    Ok(search)
}

/// Typed values nested in an array or object operand, in their stored form (dates normalised,
/// included objects as pointers), so whole-value equality compares like with like. Typed
/// values that do not validate are kept as written: they simply match nothing.
fn normalize_json(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(normalize_json).collect()),
        Value::Object(map) if value::type_tag(value).is_some() => {
            value::validate_typed(value).unwrap_or_else(|_| Value::Object(map.clone()))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), normalize_json(item)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

fn check_list_len(operator: &str, items: &[Value]) -> Result<()> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(too_many(operator));
    }
    Ok(())
}

fn too_many(operator: &str) -> Error {
    Error::new(
        Code::InvalidQuery,
        format!("too many values in {operator}: at most {MAX_LIST_ITEMS}"),
    )
}

/// Client text quoted in a message, cut to a readable length.
fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 100;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// A schema and a context shared by the query tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use serde_json::Value;

    use super::{QueryContext, parse_where};
    use crate::error::{Error, Result};
    use crate::query::ast::Filter;
    use crate::schema::{ClassSchema, FieldSchema, FieldType};

    /// `Message` with one field of each type, `_User`, `_Role`, `Team`, and `Secret` (whose
    /// subqueries the context refuses).
    pub(crate) struct TestContext;

    fn class(class_name: &str, fields: &[(&str, FieldType)]) -> ClassSchema {
        let mut schema = ClassSchema::new(class_name);
        for (name, field_type) in fields {
            schema
                .fields
                .insert((*name).to_owned(), FieldSchema::of(field_type.clone()));
        }
        schema
    }

    pub(crate) fn message_schema() -> ClassSchema {
        class(
            "Message",
            &[
                ("text", FieldType::String),
                ("n", FieldType::Number),
                ("flag", FieldType::Boolean),
                ("when", FieldType::Date),
                ("tags", FieldType::Array),
                ("meta", FieldType::Object),
                ("author", FieldType::Pointer("_User".into())),
                ("likes", FieldType::Relation("_User".into())),
                ("file", FieldType::File),
                ("loc", FieldType::GeoPoint),
            ],
        )
    }

    impl QueryContext for TestContext {
        fn schema(&self, class_name: &str) -> Option<Arc<ClassSchema>> {
            let schema = match class_name {
                "Message" => message_schema(),
                "_User" => ClassSchema::new("_User"),
                "_Role" => ClassSchema::new("_Role"),
                "Team" => class(
                    "Team",
                    &[
                        ("homeCity", FieldType::String),
                        ("members", FieldType::Relation("Message".into())),
                        ("size", FieldType::Number),
                    ],
                ),
                "Secret" => ClassSchema::new("Secret"),
                _ => return None,
            };
            Some(Arc::new(schema))
        }

        fn restrict_subquery(&self, class_name: &str) -> Result<Filter> {
            if class_name == "Secret" {
                return Err(Error::forbidden("Permission denied"));
            }
            Ok(Filter::Readable(vec!["*".to_owned()]))
        }
    }

    /// Parses `where` text against `Message`.
    pub(crate) fn parse(where_text: &str) -> Result<Filter> {
        let where_json: Value = serde_json::from_str(where_text)
            .map_err(|error| Error::invalid_json(format!("test input: {error}")))?;
        parse_where(&where_json, &message_schema(), &TestContext)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::fixtures::{TestContext, message_schema, parse};
    use super::*;

    /// A compact rendering of a filter, so expectations read like the query.
    fn render(filter: &Filter) -> String {
        let list = |items: &[Filter]| items.iter().map(render).collect::<Vec<_>>().join(" ");
        match filter {
            Filter::True => "true".to_owned(),
            Filter::False => "false".to_owned(),
            Filter::And(items) => format!("(and {})", list(items)),
            Filter::Or(items) => format!("(or {})", list(items)),
            Filter::Nor(items) => format!("(nor {})", list(items)),
            Filter::Cond { field, cond } => {
                format!("{} {}", render_field(field), render_cond(cond))
            }
            Filter::RelatedTo {
                owner_class,
                owner_id,
                key,
            } => format!("(relatedTo {owner_class}/{owner_id} {key})"),
            Filter::InQuery {
                field,
                query,
                negate,
            } => format!(
                "({} {} {} {})",
                if *negate { "notInQuery" } else { "inQuery" },
                render_field(field),
                query.class_name,
                render(&query.filter)
            ),
            Filter::Select {
                field,
                query,
                key,
                negate,
            } => format!(
                "({} {} {}.{} {})",
                if *negate { "dontSelect" } else { "select" },
                render_field(field),
                query.class_name,
                render_field(key),
                render(&query.filter)
            ),
            Filter::Readable(group) => format!("readable{group:?}"),
            Filter::Writable(group) => format!("writable{group:?}"),
        }
    }

    fn render_field(field: &FieldRef) -> String {
        let mut text = field.field.clone();
        for key in &field.path {
            text.push('.');
            text.push_str(key);
        }
        text
    }

    fn render_operand(operand: &Operand) -> String {
        match operand {
            Operand::Null => "null".to_owned(),
            Operand::Bool(flag) => flag.to_string(),
            Operand::Number(number) => number.to_string(),
            Operand::String(text) => format!("{text:?}"),
            Operand::Date(iso) => format!("date:{iso}"),
            Operand::Pointer {
                class_name,
                object_id,
            } => format!("ptr:{class_name}/{object_id}"),
            Operand::Json(json) => format!("json:{json}"),
        }
    }

    fn render_list(operands: &[Operand]) -> String {
        let items: Vec<String> = operands.iter().map(render_operand).collect();
        format!("[{}]", items.join(", "))
    }

    fn render_cond(cond: &Cond) -> String {
        match cond {
            Cond::Eq(operand) => format!("= {}", render_operand(operand)),
            Cond::Ne(operand) => format!("!= {}", render_operand(operand)),
            Cond::Lt(operand) => format!("< {}", render_operand(operand)),
            Cond::Lte(operand) => format!("<= {}", render_operand(operand)),
            Cond::Gt(operand) => format!("> {}", render_operand(operand)),
            Cond::Gte(operand) => format!(">= {}", render_operand(operand)),
            Cond::In(operands) => format!("in {}", render_list(operands)),
            Cond::Nin(operands) => format!("nin {}", render_list(operands)),
            Cond::All(operands) => format!("all {}", render_list(operands)),
            Cond::ContainedBy(operands) => format!("containedBy {}", render_list(operands)),
            Cond::AllMatch(patterns) => {
                let items: Vec<String> = patterns
                    .iter()
                    .map(|pattern| format!("/{}/", pattern.source))
                    .collect();
                format!("allMatch [{}]", items.join(", "))
            }
            Cond::Exists(exists) => format!("exists {exists}"),
            Cond::Regex(pattern) => format!("~ /{}/", pattern.source),
            Cond::Text(terms) => format!("text {terms:?}"),
            Cond::EqIgnoreCase(text) => format!("=i {text:?}"),
            Cond::Geo(geo) => format!("geo {geo:?}"),
        }
    }

    /// `expect` is the rendered filter, or `!<code> <message prefix>` for an error.
    fn check(where_text: &str, expect: &str) {
        let res = parse(where_text);
        let actual = match &res {
            Ok(filter) => render(filter),
            Err(error) => format!("!{} {}", error.code.as_i32(), error.message),
        };
        let ok = match expect.strip_prefix('!') {
            Some(expected_error) => actual.starts_with(&format!("!{expected_error}")),
            None => actual == expect,
        };
        assert!(
            ok,
            "where {where_text}\n  expected {expect}\n  got      {actual}"
        );
    }

    #[test]
    fn equality_and_operands() {
        check("{}", "true");
        check(r#"{"n":1}"#, "n = 1");
        check(r#"{"n":1.5,"text":"hi"}"#, r#"(and n = 1.5 text = "hi")"#);
        check(r#"{"flag":false}"#, "flag = false");
        check(r#"{"text":null}"#, "text = null");
        check(r#"{"tags":"a"}"#, r#"tags = "a""#);
        check(r#"{"tags":["a","b"]}"#, r#"tags = json:["a","b"]"#);
        check(r#"{"meta":{"a":1}}"#, r#"meta = json:{"a":1}"#);
        check(r#"{"meta":{}}"#, "meta = json:{}");
        check(
            r#"{"when":{"__type":"Date","iso":"2024-05-01T12:00:00+02:00"}}"#,
            "when = date:2024-05-01T10:00:00.000Z",
        );
        check(
            r#"{"author":{"__type":"Pointer","className":"_User","objectId":"u1"}}"#,
            "author = ptr:_User/u1",
        );
        check(
            r#"{"author":{"__type":"Object","className":"_User","objectId":"u1","name":"x"}}"#,
            "author = ptr:_User/u1",
        );
        // A bare objectId string stays a string (and will not match a pointer).
        check(r#"{"author":"u1"}"#, r#"author = "u1""#);
        // An ISO string on a Date field stays a string.
        check(
            r#"{"when":"2024-05-01T00:00:00.000Z"}"#,
            r#"when = "2024-05-01T00:00:00.000Z""#,
        );
        check(
            r#"{"loc":{"__type":"GeoPoint","latitude":1,"longitude":2}}"#,
            r#"loc = json:{"__type":"GeoPoint","latitude":1.0,"longitude":2.0}"#,
        );
        check(
            r#"{"file":{"__type":"File","name":"a.png","url":"u","extra":1}}"#,
            r#"file = json:{"__type":"File","name":"a.png","url":"u"}"#,
        );
        // Typed values nested in array operands are normalised to their stored form.
        check(
            r#"{"tags":{"$eq":[{"__type":"Date","iso":"2024-01-01T00:00:00Z"}]}}"#,
            r#"tags = json:[{"__type":"Date","iso":"2024-01-01T00:00:00.000Z"}]"#,
        );
        check(r#"{"objectId":"abc"}"#, r#"objectId = "abc""#);
        check(r#"{"unknown":1}"#, "unknown = 1");
    }

    #[test]
    fn bad_typed_operands() {
        check(
            r#"{"when":{"__type":"Date","iso":"yesterday"}}"#,
            "!102 bad Date",
        );
        check(r#"{"when":{"__type":"Date"}}"#, "!102 bad Date");
        check(
            r#"{"author":{"__type":"Pointer","className":"_User"}}"#,
            "!102 bad Pointer",
        );
        check(
            r#"{"loc":{"__type":"GeoPoint","latitude":100,"longitude":0}}"#,
            "!102 invalid GeoPoint",
        );
        check(r#"{"x":{"__type":"Nope"}}"#, "!102 invalid type: Nope");
        check(
            r#"{"when":{"$eq":{"$relativeTime":"now"}}}"#,
            "!102 $relativeTime can only",
        );
        check(
            r#"{"n":{"$in":[{"$relativeTime":"now"}]}}"#,
            "!102 $relativeTime can only",
        );
    }

    #[test]
    fn field_keys() {
        check(r#"{"meta.model":"gpt"}"#, r#"meta.model = "gpt""#);
        check(r#"{"meta.a.b_2":{"$gt":1}}"#, "meta.a.b_2 > 1");
        check(r#"{"text.x":1}"#, "text.x = 1");
        check(r#"{"ACL":{}}"#, "!102 Cannot query on ACL.");
        check(r#"{"ACL.*":1}"#, "!102 Cannot query on ACL.");
        check(
            r#"{"_rperm":{"$in":["*"]}}"#,
            "!105 Invalid key name: _rperm",
        );
        check(
            r#"{"_hashed_password":"x"}"#,
            "!105 Invalid key name: _hashed_password",
        );
        check(r#"{"":1}"#, "!105 Invalid key name: ");
        check(r#"{"1a":1}"#, "!105");
        check(r#"{"a-b":1}"#, "!105");
        check(r#"{"className":1}"#, "!105");
        check(r#"{"meta.":1}"#, "!105");
        check(r#"{"meta..a":1}"#, "!105");
        check(r#"{".meta":1}"#, "!105");
        check(r#"{"meta.a-b":1}"#, "!105");
        check(r#"{"meta.$a":1}"#, "!105");
        check(r#"{"tést":1}"#, "!105");
        let long = format!(r#"{{"{}":1}}"#, "a".repeat(129));
        check(&long, "!105");
        // The message quotes at most a clipped key.
        let huge = format!(r#"{{"-{}":1}}"#, "a".repeat(100_000));
        assert!(parse(&huge).is_err_and(|error| error.message.len() < 200));
    }

    #[test]
    fn field_types_are_resolved() {
        let res = parse(r#"{"author":1,"createdAt":1,"objectId":1,"meta.a":1,"nope":1}"#);
        let Ok(Filter::And(items)) = res else {
            panic!("expected an And, got {res:?}");
        };
        let types: Vec<(String, Option<FieldType>)> = items
            .iter()
            .filter_map(|item| match item {
                Filter::Cond { field, .. } => Some((render_field(field), field.field_type.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            types,
            vec![
                (
                    "author".to_owned(),
                    Some(FieldType::Pointer("_User".into()))
                ),
                ("createdAt".to_owned(), Some(FieldType::Date)),
                ("meta.a".to_owned(), Some(FieldType::Object)),
                ("nope".to_owned(), None),
                ("objectId".to_owned(), Some(FieldType::String)),
            ]
        );
    }

    #[test]
    fn comparison_operators() {
        check(r#"{"n":{"$eq":1}}"#, "n = 1");
        check(r#"{"n":{"$ne":null}}"#, "n != null");
        check(r#"{"tags":{"$ne":["a"]}}"#, r#"tags != json:["a"]"#);
        check(
            r#"{"n":{"$gt":1,"$lt":5,"$gte":2,"$lte":4}}"#,
            "(and n > 1 n >= 2 n < 5 n <= 4)",
        );
        check(r#"{"text":{"$lt":"b"}}"#, r#"text < "b""#);
        check(
            r#"{"when":{"$gte":{"__type":"Date","iso":"2024-01-01T00:00:00Z"}}}"#,
            "when >= date:2024-01-01T00:00:00.000Z",
        );
        check(
            r#"{"n":{"$exists":true,"$eq":1}}"#,
            "(and n = 1 n exists true)",
        );
        // Plain keys next to operators are an `$eq` on the plain part.
        check(
            r#"{"meta":{"x":1,"$exists":true}}"#,
            r#"(and meta = json:{"x":1} meta exists true)"#,
        );
        // A typed value is a value, even with `$` keys beside it.
        check(
            r#"{"author":{"__type":"Pointer","className":"_User","objectId":"u","$gt":1}}"#,
            "author = ptr:_User/u",
        );
    }

    #[test]
    fn relative_time_operands() {
        let res = parse(r#"{"when":{"$lt":{"$relativeTime":"now"}}}"#);
        assert!(
            matches!(
                &res,
                Ok(Filter::Cond {
                    cond: Cond::Lt(Operand::Date(_)),
                    ..
                })
            ),
            "{res:?}"
        );
        let res = parse(r#"{"createdAt":{"$gte":{"$relativeTime":"2 days ago"}}}"#);
        assert!(matches!(
            &res,
            Ok(Filter::Cond {
                cond: Cond::Gte(Operand::Date(_)),
                ..
            })
        ));
        check(
            r#"{"n":{"$lt":{"$relativeTime":"now"}}}"#,
            "!102 bad $relativeTime ($lt) value.",
        );
        check(
            r#"{"nope":{"$lt":{"$relativeTime":"now"}}}"#,
            "!102 bad $relativeTime",
        );
        check(
            r#"{"when":{"$lt":{"$relativeTime":3}}}"#,
            "!102 bad $relativeTime",
        );
        check(
            r#"{"when":{"$gt":{"$relativeTime":"soon"}}}"#,
            "!102 bad $relativeTime ($gt)",
        );
        check(
            r#"{"when":{"$gt":{"$relativeTime":"in 1e300 years"}}}"#,
            "!102 bad $relativeTime",
        );
    }

    #[test]
    fn relative_time_texts() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single();
        let Some(now) = now else {
            panic!("bad test date");
        };
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("now", Ok("2024-05-01T12:00:00.000Z")),
            ("NOW", Ok("2024-05-01T12:00:00.000Z")),
            ("in 2 days", Ok("2024-05-03T12:00:00.000Z")),
            ("3 hours ago", Ok("2024-05-01T09:00:00.000Z")),
            ("in 1.5 hours", Ok("2024-05-01T13:30:00.000Z")),
            ("in 1 day 2 hrs", Ok("2024-05-02T14:00:00.000Z")),
            ("10 secs ago", Ok("2024-05-01T11:59:50.000Z")),
            ("in 1 sec", Ok("2024-05-01T12:00:01.000Z")),
            ("in 5 mins", Ok("2024-05-01T12:05:00.000Z")),
            ("in 1 minute", Ok("2024-05-01T12:01:00.000Z")),
            ("in 1 wk", Ok("2024-05-08T12:00:00.000Z")),
            ("in 2 weeks", Ok("2024-05-15T12:00:00.000Z")),
            ("1 month ago", Ok("2024-04-01T12:00:00.000Z")),
            ("in 1 year", Ok("2025-05-01T12:00:00.000Z")),
            ("in 1 yr", Ok("2025-05-01T12:00:00.000Z")),
            ("  in   2   d  ", Ok("2024-05-03T12:00:00.000Z")),
            ("in 2 days ago", Err("Time cannot have both")),
            ("2 days", Err("Time should either")),
            ("", Err("Time should either")),
            ("in", Err("Invalid time string")),
            ("ago", Err("Invalid time string")),
            ("in 2", Err("Invalid time string")),
            ("in 2 days 3", Err("Invalid time string")),
            ("in x days", Err("'x' is not a valid number.")),
            ("in nan days", Err("'nan' is not a valid number.")),
            ("in inf days", Err("'inf' is not a valid number.")),
            ("in 2 fortnights", Err("Invalid interval: 'fortnights'")),
            ("in 9000 years", Err("Time is out of range")),
            ("3000 years ago", Err("Time is out of range")),
            ("in 1e300 years", Err("Time is out of range")),
        ];
        for (text, expected) in cases {
            let actual = relative_time(text, now);
            let ok = match (&actual, expected) {
                (Ok(actual), Ok(expected)) => actual == expected,
                (Err(actual), Err(expected)) => actual.starts_with(expected),
                _ => false,
            };
            assert!(ok, "{text:?}: expected {expected:?}, got {actual:?}");
        }
    }

    #[test]
    fn list_operators() {
        check(r#"{"n":{"$in":[1,"a",null]}}"#, r#"n in [1, "a", null]"#);
        check(r#"{"n":{"$in":[]}}"#, "n in []");
        check(r#"{"tags":{"$in":[["a"]]}}"#, r#"tags in [json:["a"]]"#);
        check(
            r#"{"author":{"$nin":[{"__type":"Pointer","className":"_User","objectId":"u"}]}}"#,
            "author nin [ptr:_User/u]",
        );
        check(r#"{"tags":{"$all":["a","b"]}}"#, r#"tags all ["a", "b"]"#);
        check(r#"{"tags":{"$all":[]}}"#, "tags all []");
        check(
            r#"{"tags":{"$containedBy":["a"]}}"#,
            r#"tags containedBy ["a"]"#,
        );
        check(
            r#"{"tags":{"$all":[{"$regex":"^\\Qa\\E"},{"$regex":"b","$options":"i"}]}}"#,
            "tags allMatch [/^a/, /(?i)b/]",
        );
        check(r#"{"n":{"$in":1}}"#, "!107 bad $in value");
        check(r#"{"n":{"$in":{"a":1}}}"#, "!107 bad $in value");
        check(r#"{"n":{"$nin":"x"}}"#, "!107 bad $nin value");
        check(r#"{"n":{"$all":null}}"#, "!107 bad $all value");
        check(
            r#"{"n":{"$containedBy":1}}"#,
            "!107 bad $containedBy: should be an array",
        );
        check(
            r#"{"tags":{"$all":[{"$regex":"a"},"b"]}}"#,
            "!107 All $all values",
        );
        check(
            r#"{"tags":{"$all":["b",{"$regex":"a"}]}}"#,
            "!107 All $all values",
        );
        check(
            r#"{"tags":{"$all":[{"$regex":"a","x":1}]}}"#,
            "!107 All $all values",
        );
        check(r#"{"tags":{"$all":[{"$regex":1}]}}"#, "!102 bad $regex");
        check(
            r#"{"tags":{"$all":[{"$regex":"a","$options":"q"}]}}"#,
            "!102 Bad $options",
        );
    }

    #[test]
    fn exists_regex_text() {
        check(r#"{"n":{"$exists":false}}"#, "n exists false");
        check(r#"{"n":{"$exists":1}}"#, "!107 bad $exists");
        check(r#"{"n":{"$exists":"true"}}"#, "!107 bad $exists");
        check(r#"{"text":{"$regex":"^\\Qa.b\\E"}}"#, r"text ~ /^a\.b/");
        check(
            r#"{"text":{"$regex":"ab","$options":"im"}}"#,
            "text ~ /(?im)ab/",
        );
        check(r#"{"text":{"$regex":"ab","$options":""}}"#, "text ~ /ab/");
        check(
            r#"{"text":{"$regex":"ab","$options":"z"}}"#,
            "!102 Bad $options value for query: z",
        );
        check(
            r#"{"text":{"$regex":"ab","$options":1}}"#,
            "!102 Bad $options value for query: 1",
        );
        check(r#"{"text":{"$options":"i"}}"#, "!102 Bad $options");
        check(r#"{"text":{"$regex":1}}"#, "!102 bad $regex");
        check(r#"{"text":{"$regex":"("}}"#, "!102");
        check(r#"{"text":{"$regex":"(?<=a)b"}}"#, "!102");
        check(
            r#"{"text":{"$text":{"$search":{"$term":"  rust  async ","$language":"en","$caseSensitive":false,"$diacriticSensitive":true}}}}"#,
            r#"text text ["rust", "async"]"#,
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":""}}}}"#,
            "text text []",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a.b"}}}}"#,
            r#"text text ["a.b"]"#,
        );
        check(
            r#"{"text":{"$text":"x"}}"#,
            "!107 bad $text: $search, should be object",
        );
        check(
            r#"{"text":{"$text":{}}}"#,
            "!107 bad $text: $search, should be object",
        );
        check(
            r#"{"text":{"$text":{"$search":"x"}}}"#,
            "!107 bad $text: $search",
        );
        check(
            r#"{"text":{"$text":{"$search":{}}}}"#,
            "!107 bad $text: $term, should be string",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":1}}}}"#,
            "!107 bad $text: $term",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a","$language":1}}}}"#,
            "!107 bad $text: $language, should be string",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a","$caseSensitive":true}}}}"#,
            r"text ~ /\ba\b/",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"Ce","$diacriticSensitive":false}}}}"#,
            r"text ~ /(?i)\b[CÇĆĈĊČ][eèéêëēĕėęě]\b/",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a","$stem":true}}}}"#,
            "!107 bad $text: $stem not supported",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a","$caseSensitive":"no"}}}}"#,
            "!107 bad $text: $caseSensitive, should be boolean",
        );
        check(
            r#"{"text":{"$text":{"$search":{"$term":"a","$diacriticSensitive":true}}}}"#,
            r#"text text ["a"]"#,
        );
    }

    #[test]
    fn unknown_and_geo_operators() {
        check(r#"{"n":{"$foo":1}}"#, "!102 Invalid query operator: $foo");
        check(r#"{"n":{"$or":[]}}"#, "!102 Invalid query operator: $or");
        check(r#"{"n":{"$":1}}"#, "!102 Invalid query operator: $");
        check(
            r#"{"n":{"$relativeTime":"now"}}"#,
            "!102 Invalid query operator",
        );
        // Geo operands are checked (107); alone, the `$maxDistance*` and shape keys are
        // ignored as Parse Server ignores them.
        for geo in ["$nearSphere", "$within", "$geoWithin", "$geoIntersects"] {
            let where_text = format!(r#"{{"loc":{{"{geo}":{{}}}}}}"#);
            check(&where_text, "!107");
        }
        check(
            r#"{"loc":{"$nearSphere":{"__type":"GeoPoint","latitude":1,"longitude":2},"$maxDistanceInKilometers":6371}}"#,
            "loc geo Near { point: GeoPoint { latitude: 1.0, longitude: 2.0 }, max_distance: Some(1.0) }",
        );
    }

    #[test]
    fn boolean_combinators() {
        check(r#"{"$or":[{"n":1},{"n":2}]}"#, "(or n = 1 n = 2)");
        check(
            r#"{"$and":[{"n":1},{"text":"a"}]}"#,
            r#"(and n = 1 text = "a")"#,
        );
        check(r#"{"$nor":[{"n":1}]}"#, "(nor n = 1)");
        check(r#"{"$or":[{}]}"#, "(or true)");
        check(r#"{"n":1,"$or":[{"n":2}]}"#, "(and (or n = 2) n = 1)");
        check(
            r#"{"$or":{"n":1}}"#,
            "!102 Bad $or format - use an array value.",
        );
        check(
            r#"{"$and":"x"}"#,
            "!102 Bad $and format - use an array value.",
        );
        check(
            r#"{"$nor":null}"#,
            "!102 Bad $nor format - use an array value.",
        );
        check(
            r#"{"$or":[]}"#,
            "!102 Bad $or format - use an array of at least 1 value.",
        );
        check(r#"{"$and":[]}"#, "!102 Bad $and format");
        check(
            r#"{"$nor":[]}"#,
            "!102 Bad $nor format - use an array of at least 1 value.",
        );
        check(
            r#"{"$or":[1]}"#,
            "!102 Bad $or format - use an array of objects.",
        );
        check(r#"{"$or":[{"ACL":1}]}"#, "!102 Cannot query on ACL.");
        check(r#"{"$foo":1}"#, "!105 Invalid key name: $foo");
        check(
            r#"{"$text":{"$search":{"$term":"a"}}}"#,
            "!105 Invalid key name: $text",
        );
        check(r#"{"$":1}"#, "!105 Invalid key name: $");
    }

    #[test]
    fn related_to() {
        let pointer = |class: &str| {
            format!(r#"{{"__type":"Pointer","className":"{class}","objectId":"o1"}}"#)
        };
        let where_text = |class: &str, key: &str| {
            format!(
                r#"{{"$relatedTo":{{"object":{},"key":"{key}"}}}}"#,
                pointer(class)
            )
        };
        // Team.members is a Relation<Message>.
        check(
            &where_text("Team", "members"),
            "(relatedTo Team/o1 members)",
        );
        // Owner class missing, relation field missing, or a relation to another class: nothing.
        check(&where_text("Nope", "members"), "false");
        check(&where_text("Team", "fans"), "false");
        check(&where_text("_Role", "users"), "false");
        // Not a relation field.
        check(
            &where_text("Team", "homeCity"),
            "!102 improper usage of $relatedTo",
        );
        check(r#"{"$relatedTo":1}"#, "!102 improper usage of $relatedTo");
        // An owner never saved (no objectId): nothing.
        check(
            r#"{"$relatedTo":{"object":{"__type":"Pointer","className":"Team"},"key":"members"}}"#,
            "false",
        );
        check(
            r#"{"$relatedTo":{"object":"o1","key":"members"}}"#,
            "!102 improper usage",
        );
        check(
            &format!(r#"{{"$relatedTo":{{"object":{}}}}}"#, pointer("Team")),
            "!102 improper usage",
        );
        check(
            &format!(
                r#"{{"$relatedTo":{{"object":{},"key":1}}}}"#,
                pointer("Team")
            ),
            "!102 improper usage",
        );
        // Inside `$or`, as a where object.
        check(
            &format!(r#"{{"$or":[{}]}}"#, where_text("Team", "members")),
            "(or (relatedTo Team/o1 members))",
        );
    }

    #[test]
    fn in_query() {
        check(
            r#"{"author":{"$inQuery":{"className":"_User","where":{"username":"bob"}}}}"#,
            r#"(inQuery author _User (and username = "bob" readable["*"]))"#,
        );
        check(
            r#"{"author":{"$notInQuery":{"className":"_User","where":{},"limit":3}}}"#,
            r#"(notInQuery author _User readable["*"])"#,
        );
        // A class that does not exist returns nothing; its where is still checked.
        check(
            r#"{"author":{"$inQuery":{"className":"Nope","where":{"a":1}}}}"#,
            "(inQuery author Nope false)",
        );
        check(
            r#"{"author":{"$inQuery":{"className":"Nope","where":{"ACL":1}}}}"#,
            "!102 Cannot query on ACL.",
        );
        // The context may refuse the class.
        check(
            r#"{"author":{"$inQuery":{"className":"Secret","where":{}}}}"#,
            "!119 Permission denied",
        );
        // Nested subqueries parse against their own class.
        check(
            r#"{"author":{"$inQuery":{"className":"Message","where":{"author":{"$inQuery":{"className":"_User","where":{"email":"e"}}}}}}}"#,
            r#"(inQuery author Message (and (inQuery author _User (and email = "e" readable["*"])) readable["*"]))"#,
        );
        for bad in [
            r#"{"author":{"$inQuery":1}}"#,
            r#"{"author":{"$inQuery":{"className":"_User"}}}"#,
            r#"{"author":{"$inQuery":{"where":{}}}}"#,
            r#"{"author":{"$inQuery":{"className":"_User","where":1}}}"#,
            r#"{"author":{"$inQuery":{"className":1,"where":{}}}}"#,
            r#"{"author":{"$inQuery":{"className":"bad name","where":{}}}}"#,
        ] {
            check(bad, "!102 improper usage of $inQuery");
        }
        check(
            r#"{"author":{"$notInQuery":{}}}"#,
            "!102 improper usage of $notInQuery",
        );
    }

    #[test]
    fn select() {
        check(
            r#"{"text":{"$select":{"query":{"className":"Team","where":{"size":{"$gt":3}}},"key":"homeCity"}}}"#,
            r#"(select text Team.homeCity (and size > 3 readable["*"]))"#,
        );
        check(
            r#"{"text":{"$dontSelect":{"query":{"className":"Team"},"key":"homeCity"}}}"#,
            r#"(dontSelect text Team.homeCity readable["*"])"#,
        );
        check(
            r#"{"text":{"$select":{"query":{"className":"Nope","where":{}},"key":"x.y"}}}"#,
            "(select text Nope.x.y false)",
        );
        let res = parse(
            r#"{"text":{"$select":{"query":{"className":"Team","where":{}},"key":"homeCity"}}}"#,
        );
        let Ok(Filter::Select { key, .. }) = res else {
            panic!("expected a Select, got {res:?}");
        };
        assert_eq!(key.field_type, Some(FieldType::String));
        for bad in [
            r#"{"text":{"$select":1}}"#,
            r#"{"text":{"$select":{"query":{"className":"Team","where":{}}}}}"#,
            r#"{"text":{"$select":{"key":"homeCity"}}}"#,
            r#"{"text":{"$select":{"query":{"className":"Team"},"key":"homeCity","x":1}}}"#,
            r#"{"text":{"$select":{"query":{"where":{}},"key":"homeCity"}}}"#,
            r#"{"text":{"$select":{"query":{"className":"Team","where":[]},"key":"homeCity"}}}"#,
            r#"{"text":{"$select":{"query":"Team","key":"homeCity"}}}"#,
            r#"{"text":{"$select":{"query":{"className":"Team"},"key":1}}}"#,
        ] {
            check(bad, "!102 improper usage of $select");
        }
        check(
            r#"{"text":{"$dontSelect":{}}}"#,
            "!102 improper usage of $dontSelect",
        );
        check(
            r#"{"text":{"$select":{"query":{"className":"Team"},"key":"_x"}}}"#,
            "!105 Invalid key name: _x",
        );
        check(
            r#"{"text":{"$select":{"query":{"className":"Secret"},"key":"a"}}}"#,
            "!119",
        );
    }

    #[test]
    fn hostile_input() {
        check("[]", "!102 Invalid where");
        check("1", "!102 Invalid where");
        check("null", "!102 Invalid where");
        check(r#""{}""#, "!102 Invalid where");
        // Depth: 16 levels pass, 17 do not.
        let nested = |levels: usize| {
            let mut where_json = json!(1);
            for _ in 0..levels.saturating_sub(1) / 2 {
                where_json = json!({"$or": [where_json]});
            }
            where_json
        };
        let deep = json!({"$and": [{"$or": [{"$nor": [{"n": {"$in": [[[[[[[[1]]]]]]]]}}]}]}]});
        assert_eq!(value::depth(&deep), 16);
        assert!(parse_where(&deep, &message_schema(), &TestContext).is_ok());
        let deeper = json!({"x": deep});
        let res = parse_where(&deeper, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.code == Code::InvalidQuery));
        let very_deep = json!({"n": nested(1_000)});
        let res = parse_where(&very_deep, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.message.contains("nested deeper")));
        // List sizes: 1000 items pass, 1001 do not.
        for operator in ["$in", "$nin", "$all", "$containedBy"] {
            let ok = json!({"n": {operator: vec![1; MAX_LIST_ITEMS]}});
            assert!(parse_where(&ok, &message_schema(), &TestContext).is_ok());
            let too_many = json!({"n": {operator: vec![1; MAX_LIST_ITEMS + 1]}});
            let res = parse_where(&too_many, &message_schema(), &TestContext);
            assert!(
                res.is_err_and(|error| error.code == Code::InvalidQuery),
                "{operator}"
            );
        }
        for operator in ["$or", "$and", "$nor"] {
            let too_many = json!({operator: vec![json!({}); MAX_LIST_ITEMS + 1]});
            let res = parse_where(&too_many, &message_schema(), &TestContext);
            assert!(res.is_err_and(|error| error.message.starts_with("too many")));
        }
        let many_terms = "a ".repeat(MAX_LIST_ITEMS + 1);
        let text = json!({"text": {"$text": {"$search": {"$term": many_terms}}}});
        let res = parse_where(&text, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.code == Code::InvalidQuery));
        // Regex count across the query.
        let regexes = vec![json!({"$regex": "a"}); MAX_PATTERNS];
        let ok = json!({"tags": {"$all": regexes}});
        assert!(parse_where(&ok, &message_schema(), &TestContext).is_ok());
        let too_many = json!({"tags": {"$all": regexes}, "text": {"$regex": "b"}});
        let res = parse_where(&too_many, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.message.starts_with("Too many regular")));
        // A huge regex is refused, not compiled.
        let huge = json!({"text": {"$regex": "\\w{1000}{1000}"}});
        let res = parse_where(&huge, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.code == Code::InvalidQuery));
        // A huge $text term is refused.
        let huge = json!({"text": {"$text": {"$search": {"$term": "é".repeat(100_000)}}}});
        let res = parse_where(&huge, &message_schema(), &TestContext);
        assert!(res.is_err_and(|error| error.code == Code::InvalidJson));
        // Big but flat input is fine.
        let mut wide = Map::new();
        for i in 0..5_000 {
            wide.insert(format!("f{i}"), json!(i));
        }
        let res = parse_where(&Value::Object(wide), &message_schema(), &TestContext);
        assert!(
            res.is_ok_and(|filter| matches!(filter, Filter::And(items) if items.len() == 5_000))
        );
        // Numbers beyond f64 range in JSON are infinities only with arbitrary precision; a
        // big integer is fine.
        check(r#"{"n":18446744073709551615}"#, "n = 18446744073709552000");
    }

    /// `expect` renders the sort keys as `field` / `-field`, or `!<code> <message prefix>`.
    fn check_order(order: &str, expect: &str) {
        let actual = match parse_order(order, &message_schema()) {
            Ok(keys) => keys
                .iter()
                .map(|key| {
                    let sign = if key.descending { "-" } else { "" };
                    format!("{sign}{}", render_field(&key.field))
                })
                .collect::<Vec<_>>()
                .join(","),
            Err(error) => format!("!{} {}", error.code.as_i32(), error.message),
        };
        let ok = match expect.strip_prefix('!') {
            Some(expected_error) => actual.starts_with(&format!("!{expected_error}")),
            None => actual == expect,
        };
        assert!(
            ok,
            "order {order:?}\n  expected {expect}\n  got      {actual}"
        );
    }

    #[test]
    fn order() {
        check_order("", "");
        check_order("n", "n");
        check_order("-createdAt,text", "-createdAt,text");
        check_order(" -n , text ,, ", "-n,text");
        check_order("meta.a,-meta.b", "meta.a,-meta.b");
        check_order("nope,-nope2,n", "n");
        check_order("$score,-$score,n", "n");
        check_order("ACL,likes,n", "n");
        check_order("n,-n,text", "n,text");
        check_order("objectId,updatedAt", "objectId,updatedAt");
        check_order("-_created_at,_updated_at", "-createdAt,updatedAt");
        check_order("_rperm", "!105 Invalid field name: _rperm.");
        check_order("-", "!105 Invalid field name: .");
        check_order("--n", "!105 Invalid field name: -n.");
        check_order("a b", "!105 Invalid field name: a b.");
        check_order("meta..a", "!105");
        check_order("className", "!105");
        let many: Vec<String> = (0..=MAX_SORT_KEYS).map(|i| format!("meta.k{i}")).collect();
        check_order(&many.join(","), "!102 Too many order keys");
        // Duplicates and unknown fields do not count towards the limit.
        check_order(&"nope,n,".repeat(10_000), "n");
        let res = parse_order(&"ab".repeat(100_000), &message_schema());
        assert!(res.is_err_and(|error| error.message.len() < 200));
    }

    #[test]
    fn keys() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("text", &["text"]),
            ("text, n ,text", &["text", "n"]),
            ("author.name,author,meta.a.b", &["author", "meta"]),
            ("_rperm,a b,,$x,ok", &["ok"]),
        ];
        for (keys, expected) in cases {
            assert_eq!(parse_keys(keys), *expected, "keys {keys:?}");
        }
    }
}
