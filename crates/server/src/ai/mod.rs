//! AI: providers, token counting; generation lives in `generation` and prompt assembly in
//! `context`, on top of these.
//!
//! - [`provider`]: the operator-configured LLM back-ends (OpenAI-compatible chat completions
//!   and Anthropic Messages), each turned into one stream of [`provider::StreamEvent`]s with
//!   timeouts, retries before the first token, and cancellation by dropping the stream.
//! - [`tokens`]: counting tokens (tiktoken for OpenAI models, an estimate otherwise) and the
//!   known context windows, for fitting history into a model's budget.
//! - [`context`]: assembling a session's prompt (persona, Context, summary, retrieved and
//!   recent turns) within the window, and summarising long histories in the background.
//! - [`search`]: full-text retrieval over a session's messages and context.
//! - [`generation`]: persona replies, from a committed user message to a finished assistant
//!   message, with limits and usage; [`functions`]: the AI cloud functions;
//!   [`reply_stream`]: a reply's growth for whoever follows it (SSE, GraphQL).
//! - [`tools`]: the functions a persona's model may call during a reply (the
//!   [`tools::ToolRunner`] trait that cloud code implements), run with the rights of the
//!   user whose message started the reply, each call stored as a `role: "tool"` Message.

pub mod context;
pub mod functions;
pub mod generation;
pub mod provider;
pub mod reply_stream;
pub mod search;
pub mod tokens;
pub mod tools;
