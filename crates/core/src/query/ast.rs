//! The query AST shared by the SQL translator and the in-memory matcher.
//!
//! The parser resolves every key against the class schema, so each evaluator knows a field's
//! type: equality on an Array field means "contains", a pointer compares class and id, a Date
//! compares instants. Operands are normalised (dates to Parse's ISO text, pointers to their
//! parts), so both evaluators compare the same things.

use serde_json::Value;

use crate::query::geo::{GeoCond, GeoPoint};
use crate::schema::FieldType;

/// A field a condition applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    /// The top-level field (`objectId`, `createdAt`, `updatedAt` included).
    pub field: String,
    /// Keys inside an Object field, for dotted keys (`meta.model` → `["model"]`).
    pub path: Vec<String>,
    /// The schema type of the top-level field; `None` when the class has no such field,
    /// in which case the field is missing on every object but those that store it as an
    /// explicit `null` (which adds no field), where only `Exists` sees it.
    pub field_type: Option<FieldType>,
}

impl FieldRef {
    /// Whether this names a Relation field itself (whose "value" lives in a join table).
    pub fn is_relation(&self) -> bool {
        matches!(self.field_type, Some(FieldType::Relation(_)))
    }
}

/// A comparable value, normalised from its Parse JSON form.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// Normalised ISO text (`2024-05-01T12:34:56.789Z`), which orders like the instant.
    Date(String),
    Pointer {
        class_name: String,
        object_id: String,
    },
    /// Objects, arrays and other typed values (File, GeoPoint, Bytes, Polygon): compared whole.
    Json(Value),
}

/// A regular expression in the syntax of the `regex` crate (which SQLite's `REGEXP` also
/// uses), with Parse's `$options` already folded in as inline flags and `\Q…\E` expanded.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Equality; on an Array field, "the array contains the value" (or, for an array
    /// operand, the whole array is equal). `Eq(Null)` matches null and missing.
    ///
    /// On a Relation field, `Eq`, `Ne`, `In` and `Nin` test membership instead: `Eq(Pointer)`
    /// holds when the object's relation contains that pointer (its class must be the
    /// relation's target). Only the database can answer that ([`Filter::is_matchable`]).
    Eq(Operand),
    /// Negation of `Eq`: also matches a missing field.
    Ne(Operand),
    Lt(Operand),
    Lte(Operand),
    Gt(Operand),
    Gte(Operand),
    /// Any listed value is equal (contained, on Array fields). An empty list matches nothing.
    In(Vec<Operand>),
    /// No listed value is equal; matches a missing field.
    Nin(Vec<Operand>),
    /// The Array field contains every listed value.
    All(Vec<Operand>),
    /// The Array field has, for every pattern, an item that is a string matching it
    /// (the JS SDK's `containsAllStartingWith`).
    AllMatch(Vec<Pattern>),
    /// Every item of the Array field is in the list.
    ContainedBy(Vec<Operand>),
    /// `true`: present and not null; `false`: missing or null.
    Exists(bool),
    /// The field is a string matching the pattern.
    Regex(Pattern),
    /// Full-text search: the string field contains every term, as a whole word, case-insensitively
    /// (see [`crate::query::parse`] for how a search is split into terms).
    Text(Vec<String>),
    /// The field is a string equal to the operand when ASCII letters are folded to one case
    /// (other characters compare exactly). The parser never produces it: it is for the
    /// server's own lookups (unique username and email, log-in by email).
    EqIgnoreCase(String),
    /// A geo condition on a GeoPoint field (a Polygon field for `PolygonContains`); false on
    /// a field of another type or a dotted key.
    Geo(GeoCond),
}

/// A `where` clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    True,
    False,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
    Cond {
        field: FieldRef,
        cond: Cond,
    },
    /// The object is in `owner_class/owner_id`'s relation `key`.
    RelatedTo {
        owner_class: String,
        owner_id: String,
        key: String,
    },
    /// The pointer field points at an object that the subquery returns (`$inQuery`),
    /// or does not (`$notInQuery`, `negate`).
    InQuery {
        field: FieldRef,
        query: Box<SubQuery>,
        negate: bool,
    },
    /// The field's value is among the subquery results' `key` values (`$select`), or is
    /// not (`$dontSelect`, `negate`).
    Select {
        field: FieldRef,
        query: Box<SubQuery>,
        key: FieldRef,
        negate: bool,
    },
    /// The object's ACL lets one of these entries read it (or the object has no ACL).
    Readable(Vec<String>),
    /// The object's ACL lets one of these entries write it (or the object has no ACL).
    Writable(Vec<String>),
}

/// A query over another class, nested in a `where`. Its filter already carries the
/// caller's access restrictions on that class.
#[derive(Debug, Clone, PartialEq)]
pub struct SubQuery {
    pub class_name: String,
    pub filter: Filter,
}

/// One key of `order`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: FieldRef,
    pub descending: bool,
    /// Orders a GeoPoint field by its distance from this point (`$nearSphere`) instead of
    /// by its value.
    pub near: Option<GeoPoint>,
}

/// What a find asks the store for.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    pub filter: Filter,
    pub order: Vec<SortKey>,
    pub skip: u64,
    /// `None`: no limit.
    pub limit: Option<u64>,
    /// Top-level fields to load; `None` loads all. The default fields always come back.
    pub keys: Option<Vec<String>>,
    /// The relevance of the filter's `$text` search, added to each object as `score`
    /// (`keys=$score`), and with `sort` the first order key (`order=$score`).
    pub score: Option<TextScore>,
}

/// How relevant an object is to a `$text` search ([`crate::query::regex::text_score`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextScore {
    /// The String field searched.
    pub field: FieldRef,
    /// Each term's regex source, the search's options folded in.
    pub patterns: Vec<String>,
    /// The regex source of the search language's stop words, which do not count as words.
    pub stop_words: Option<String>,
    /// Most relevant first, before the query's own order.
    pub sort: bool,
    /// Whether the objects carry it (`keys=$score`); else it only orders them.
    pub keep: bool,
}

impl FindQuery {
    pub fn filter(filter: Filter) -> FindQuery {
        FindQuery {
            filter,
            order: Vec::new(),
            skip: 0,
            limit: None,
            keys: None,
            score: None,
        }
    }
}

impl Filter {
    /// The order `$nearSphere` implies: by distance from its point, nearest first, when the
    /// filter requires it of every result (a top-level condition or one of a top-level AND).
    pub fn near_order(&self) -> Option<SortKey> {
        match self {
            Filter::Cond {
                field,
                cond: Cond::Geo(GeoCond::Near { point, .. }),
            } => Some(SortKey {
                field: field.clone(),
                descending: false,
                near: Some(*point),
            }),
            Filter::And(items) => items.iter().find_map(Filter::near_order),
            _ => None,
        }
    }

    /// `a AND b`, flattening trivial cases.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::True, other) | (other, Filter::True) => other,
            (Filter::False, _) | (_, Filter::False) => Filter::False,
            (Filter::And(mut items), Filter::And(more)) => {
                items.extend(more);
                Filter::And(items)
            }
            (Filter::And(mut items), other) | (other, Filter::And(mut items)) => {
                items.push(other);
                Filter::And(items)
            }
            (left, right) => Filter::And(vec![left, right]),
        }
    }

    /// Whether the in-memory matcher can evaluate this filter: subqueries, relations (also
    /// any condition on a Relation field) and full-text search need the database, so live
    /// queries refuse them.
    pub fn is_matchable(&self) -> bool {
        match self {
            Filter::And(items) | Filter::Or(items) | Filter::Nor(items) => {
                items.iter().all(Filter::is_matchable)
            }
            Filter::RelatedTo { .. } | Filter::InQuery { .. } | Filter::Select { .. } => false,
            Filter::Cond {
                cond: Cond::Text(_),
                ..
            } => false,
            Filter::Cond { field, .. } => !field.is_relation(),
            _ => true,
        }
    }
}
