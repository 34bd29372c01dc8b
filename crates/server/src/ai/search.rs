//! Retrieval: full-text search over a session's messages and its Context, for the
//! `searchContext` function and for bringing older turns back into a prompt.
//!
//! Messages are searched by the store ([`parlor_store::Store::search`]: SQLite FTS5 or
//! PostgreSQL text search), with the caller's ACL folded into the filter, so a message the
//! caller cannot read is never a hit. A session has one Context, which is matched here
//! against the same words (its `summary` and its `data` as compact JSON).

use parlor_core::object::Object;
use parlor_core::query::{Cond, FieldRef, Filter, Operand};
use parlor_core::schema::FieldType;
use parlor_store::text_search;
use serde_json::{Value, json};

use crate::operation::access::read_filter;
use crate::operation::{Auth, OpResult, Operations};

/// Hits returned when the caller gives no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
/// The most hits one search returns.
pub const MAX_LIMIT: usize = 50;
/// Characters of context around a match in a Context's snippet.
const SNIPPET_CHARS: usize = 120;

/// `field = value` on `class_name`'s schema.
pub(crate) fn equals(
    operations: &Operations,
    class_name: &str,
    field: &str,
    value: Operand,
) -> Filter {
    let field_type = operations
        .schemas
        .get(class_name)
        .and_then(|schema| schema.field_type(field).cloned());
    Filter::Cond {
        field: FieldRef {
            field: field.to_owned(),
            path: Vec::new(),
            field_type,
        },
        cond: Cond::Eq(value),
    }
}

/// `session` points at the ChatSession `session_id`.
pub(crate) fn in_session(operations: &Operations, class_name: &str, session_id: &str) -> Filter {
    equals(
        operations,
        class_name,
        "session",
        Operand::Pointer {
            class_name: "ChatSession".to_owned(),
            object_id: session_id.to_owned(),
        },
    )
}

/// Searches `session`'s messages and Context for `query` as `auth` may read them, best
/// first: hits `{objectId, className, snippet, createdAt}`. `limit` defaults to
/// [`DEFAULT_LIMIT`] and is capped at [`MAX_LIMIT`]. The caller has been checked to be a
/// member of `session` (the cloud functions' `member_session`).
pub async fn search_context(
    operations: &Operations,
    auth: &Auth,
    session: &Object,
    query: &str,
    limit: Option<usize>,
) -> OpResult<Vec<Value>> {
    let session_id = session.object_id.as_str();
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let terms = text_search::terms(query);
    if limit == 0 || terms.is_empty() {
        return Ok(Vec::new());
    }
    let mut hits = Vec::new();
    let context = match operations.schemas.get("Context") {
        Some(schema) => {
            let filter = Filter::And(vec![
                in_session(operations, "Context", session_id),
                read_filter(auth),
            ]);
            first_match(operations, &schema, filter).await?
        }
        None => None,
    };
    // The Context leads when it has every word (it is the session's own state), and
    // follows the messages when it has only some.
    let context_hit = context.as_ref().and_then(|context| {
        let (matched, snippet) = match_context(context, &terms)?;
        Some((matched == terms.len(), hit(context, "Context", snippet)))
    });
    if let Some((true, hit)) = &context_hit {
        hits.push(hit.clone());
    }
    let messages = search_messages(operations, session_id, read_filter(auth), query, limit).await?;
    hits.extend(
        messages
            .into_iter()
            .map(|found| hit(&found.object, "Message", found.snippet)),
    );
    if let Some((false, hit)) = context_hit {
        hits.push(hit);
    }
    hits.truncate(limit);
    Ok(hits)
}

/// Messages of the session matching `query` under `access` (a read filter, plus any
/// restriction such as "older than"), best first.
pub(crate) async fn search_messages(
    operations: &Operations,
    session_id: &str,
    access: Filter,
    query: &str,
    limit: usize,
) -> OpResult<Vec<parlor_store::SearchHit>> {
    let Some(schema) = operations.schemas.get("Message") else {
        return Ok(Vec::new());
    };
    if !matches!(schema.field_type("content"), Some(FieldType::String)) {
        return Ok(Vec::new());
    }
    let filter = Filter::And(vec![in_session(operations, "Message", session_id), access]);
    Ok(operations
        .store
        .search(&schema, "content", &filter, query, limit)
        .await?)
}

/// The first object of `schema` matching `filter`, read by the server (the filter carries
/// whatever access applies).
pub(crate) async fn first_match(
    operations: &Operations,
    schema: &parlor_core::schema::ClassSchema,
    filter: Filter,
) -> OpResult<Option<Object>> {
    let query = parlor_core::query::FindQuery {
        limit: Some(1),
        ..parlor_core::query::FindQuery::filter(filter)
    };
    Ok(operations
        .store
        .find(schema, &query)
        .await?
        .into_iter()
        .next())
}

fn hit(object: &Object, class_name: &str, snippet: String) -> Value {
    json!({
        "objectId": object.object_id,
        "className": class_name,
        "snippet": snippet,
        "createdAt": object.created_at,
    })
}

/// How many of `terms` the Context's summary and data contain (as words, case-folded), and
/// an excerpt around the first one found; `None` when it contains none.
fn match_context(context: &Object, terms: &[String]) -> Option<(usize, String)> {
    let summary = context
        .fields
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let data = context
        .fields
        .get("data")
        .filter(|data| !data.is_null())
        .map(Value::to_string)
        .unwrap_or_default();
    let text = format!("{summary}\n{data}");
    let words = text_search::terms_unbounded(&text);
    let matched = terms.iter().filter(|term| words.contains(term)).count();
    if matched == 0 {
        return None;
    }
    let lower = text.to_lowercase();
    let first = terms
        .iter()
        .filter_map(|term| lower.find(term.as_str()))
        .min()
        .unwrap_or(0);
    Some((matched, excerpt(&text, &lower, first)))
}

/// About [`SNIPPET_CHARS`] characters of `text` around byte `at` of its lower-cased form
/// (mapped back by character count, since lower-casing can change byte lengths).
fn excerpt(text: &str, lower: &str, at: usize) -> String {
    let at_char = lower
        .char_indices()
        .take_while(|(index, _)| *index < at)
        .count();
    let start = at_char.saturating_sub(SNIPPET_CHARS / 2);
    let total = text.chars().count();
    let piece: String = text.chars().skip(start).take(SNIPPET_CHARS).collect();
    let mut snippet = piece.trim().replace('\n', " ");
    if start > 0 {
        snippet.insert(0, '…');
    }
    if start + SNIPPET_CHARS < total {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(summary: &str, data: Value) -> Object {
        Object {
            object_id: "c1".to_owned(),
            created_at: "2024-01-01T00:00:00.000Z".to_owned(),
            updated_at: "2024-01-01T00:00:00.000Z".to_owned(),
            acl: None,
            fields: json!({"summary": summary, "data": data})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The Context matches on words of its summary and data, with an excerpt.
    #[test]
    fn context_matches_words() {
        let context = context("They chose the blue theme.", json!({"city": "Lyon"}));
        let terms = text_search::terms("lyon blue green");
        let (matched, snippet) = match_context(&context, &terms).expect("a match");
        assert_eq!(matched, 2);
        assert!(snippet.contains("blue theme"), "{snippet}");
        assert!(match_context(&context, &text_search::terms("green")).is_none());
        // Words, not substrings.
        assert!(match_context(&context, &text_search::terms("lue")).is_none());
    }
}
