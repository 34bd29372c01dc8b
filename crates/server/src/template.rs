//! The AI chat template (parse-protocol.md §14): `_User`, `ChatSession`, `Message`,
//! `Context` and `Persona`, kept as a `/schemas`-shaped JSON file in the repository and
//! created on first start.

use anyhow::Context;
use serde_json::Value;

/// The template file, compiled into the binary so that a release binary needs nothing else.
pub const CHAT_TEMPLATE_JSON: &str = include_str!("../../../template/chat-template.json");

pub fn chat_template() -> anyhow::Result<Value> {
    serde_json::from_str(CHAT_TEMPLATE_JSON).context("parsing template/chat-template.json")
}
