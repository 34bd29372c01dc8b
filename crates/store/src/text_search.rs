//! What both backends' full-text search share: turning a user's query into plain words.
//!
//! Search queries come from users (the `searchContext` function, the latest chat message),
//! so they are never handed to the database's query syntax as typed: FTS5 would read `"`,
//! `*`, `NEAR(`, `-` or `OR` as operators (and fail on unbalanced ones), PostgreSQL's
//! `to_tsquery` likewise. Both backends instead search for *any* of these words, each quoted
//! as a literal, and rank the objects containing more (and rarer) of them first.

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
