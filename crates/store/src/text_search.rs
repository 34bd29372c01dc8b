//! What both backends' full-text search share: turning a user's query into plain words.
//!
//! Search queries come from users (the `searchContext` function, the latest chat message),
//! so they are never handed to the database's query syntax as typed: FTS5 would read `"`,
//! `*`, `NEAR(`, `-` or `OR` as operators (and fail on unbalanced ones), PostgreSQL's
//! `to_tsquery` likewise. Both backends instead search for *any* of these words, each quoted
//! as a literal, and rank the objects containing more (and rarer) of them first.
//!
//! The same indexes also speed up a find's `$text` condition (the regex per term stays the
//! exact test; the index only narrows the rows it runs on): [`text_conditions`] names the
//! fields a filter searches so that the store can create their index first.

use parlor_core::query::{Cond, Filter};
use parlor_core::schema::FieldType;

/// The most words a query is reduced to: enough for a long chat message, small enough that
/// a pasted essay does not become a query with thousands of terms.
pub const MAX_TERMS: usize = 32;

/// The distinct words of `query`, lower-cased, in order: runs of letters and digits (any
/// script); everything else separates words. At most [`MAX_TERMS`].
pub fn terms(query: &str) -> Vec<String> {
    words(query, MAX_TERMS)
}

/// Every distinct word of `text`, as [`terms`] splits them, however many.
pub fn terms_unbounded(text: &str) -> Vec<String> {
    words(text, usize::MAX)
}

fn words(query: &str, most: usize) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
            if terms.len() == most {
                break;
            }
        }
    }
    terms
}

/// The String fields of the queried class that `filter` puts a `$text` condition on, where
/// every object must meet it (not under `$or`/`$nor`, where an index would not narrow the
/// rows). Those are the fields worth an index.
pub fn text_fields(filter: &Filter) -> Vec<&str> {
    let mut fields = Vec::new();
    collect_text_fields(filter, &mut fields);
    fields
}

fn collect_text_fields<'f>(filter: &'f Filter, fields: &mut Vec<&'f str>) {
    match filter {
        Filter::And(items) => {
            for item in items {
                collect_text_fields(item, fields);
            }
        }
        Filter::Cond {
            field,
            cond: Cond::Text(terms),
        } if is_indexable(field, terms) && !fields.contains(&field.field.as_str()) => {
            fields.push(&field.field);
        }
        _ => {}
    }
}

/// A `$text` condition on a top-level String column with at least one term.
pub(crate) fn is_indexable(field: &parlor_core::query::FieldRef, terms: &[String]) -> bool {
    field.path.is_empty() && field.field_type == Some(FieldType::String) && !terms.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operators and quotes vanish; words stay, once each, lower-cased.
    #[test]
    fn hostile_syntax_becomes_words() {
        assert_eq!(
            terms("\"unbalanced * NEAR( a -b OR a"),
            ["unbalanced", "near", "a", "b", "or"]
        );
        assert!(terms("\" * ( ) - ^ :").is_empty());
        assert_eq!(terms("Zürich naïve 東京"), ["zürich", "naïve", "東京"]);
        assert_eq!(terms(&"w ".repeat(100)).len(), 1);
    }
}
