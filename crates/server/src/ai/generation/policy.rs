//! Which personas answer a user's message.
//!
//! A persona `@mentioned` by name (case-insensitive) answers under every policy; with no
//! mention, the session's `policy` decides: `all` (the default: each persona in the
//! session's order), `round_robin` (the one after the persona that answered last), `first`,
//! or `manual` (nobody: only a mention or the `generate` function starts a reply).

use parlor_core::object::Object;
use serde_json::{Value, json};

use super::pointer_id;
use crate::operation::{Auth, FindRequest, OpResult, Operations};

/// The personas that answer `content`, in the order they answer. `chosen_last` is the
/// persona chosen last for replies not created yet, if the caller knows one.
pub async fn choose(
    operations: &Operations,
    session: &Object,
    personas: Vec<Object>,
    content: &str,
    chosen_last: Option<String>,
) -> OpResult<Vec<Object>> {
    let mentioned: Vec<Object> = personas
        .iter()
        .filter(|persona| is_mentioned(content, persona_name(persona)))
        .cloned()
        .collect();
    if !mentioned.is_empty() {
        return Ok(mentioned);
    }
    let policy = session
        .fields
        .get("policy")
        .and_then(Value::as_str)
        .unwrap_or("all");
    Ok(match policy {
        "manual" => Vec::new(),
        "first" => personas.into_iter().take(1).collect(),
        "round_robin" => next_in_turn(operations, session, personas, chosen_last)
            .await?
            .into_iter()
            .collect(),
        _ => personas,
    })
}

/// The persona whose turn it is under `round_robin`: the one after the last persona that
/// answered in the session (the first when none has), or after `chosen_last` when replies
/// chosen already are not written yet.
pub async fn next_in_turn(
    operations: &Operations,
    session: &Object,
    personas: Vec<Object>,
    chosen_last: Option<String>,
) -> OpResult<Option<Object>> {
    let last_id = match chosen_last {
        Some(last_id) => Some(last_id),
        None => last_to_answer(operations, session).await?,
    };
    let position = last_id.and_then(|id| personas.iter().position(|p| p.object_id == id));
    let next = position.map_or(0, |index| (index + 1) % personas.len().max(1));
    Ok(personas.into_iter().nth(next))
}

/// The persona whose reply is the newest in the session.
async fn last_to_answer(operations: &Operations, session: &Object) -> OpResult<Option<String>> {
    let request = FindRequest {
        where_json: json!({
            "session": super::pointer("ChatSession", &session.object_id),
            "role": "assistant",
            "persona": {"$exists": true},
        }),
        order: Some("-createdAt".to_owned()),
        limit: Some(1),
        keys: Some(vec!["persona".to_owned()]),
        ..FindRequest::default()
    };
    let last = operations
        .find(&Auth::master(), "Message", request)
        .await?
        .results
        .into_iter()
        .next();
    Ok(last
        .as_ref()
        .and_then(|message| pointer_id(message.get("persona"), "Persona"))
        .map(str::to_owned))
}

fn persona_name(persona: &Object) -> &str {
    persona
        .fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether `content` holds `@name` (any case), not as the start of a longer word.
pub fn is_mentioned(content: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    let content = content.to_lowercase();
    let needle = format!("@{}", name.to_lowercase());
    let mut from = 0;
    while let Some(found) = content[from..].find(&needle) {
        let end = from + found + needle.len();
        let boundary = content[end..]
            .chars()
            .next()
            .is_none_or(|next| !(next.is_alphanumeric() || next == '_'));
        if boundary {
            return true;
        }
        from = from + found + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_mentioned;

    #[test]
    fn mentions_are_case_insensitive_whole_names() {
        assert!(is_mentioned("hey @ada, what now?", "Ada"));
        assert!(is_mentioned("@ADA", "Ada"));
        assert!(is_mentioned("ask @Dr Who please", "Dr Who"));
        assert!(!is_mentioned("hey @adam", "Ada"));
        assert!(!is_mentioned("hey ada", "Ada"));
        assert!(!is_mentioned("@", ""));
    }
}
