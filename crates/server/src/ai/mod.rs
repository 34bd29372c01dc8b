//! AI: providers, token counting; generation lives in `generation` and prompt assembly in
//! `context`, on top of these.
//!
//! - [`provider`]: the operator-configured LLM back-ends (OpenAI-compatible chat completions
//!   and Anthropic Messages), each turned into one stream of [`provider::StreamEvent`]s with
//!   timeouts, retries before the first token, and cancellation by dropping the stream.
//! - [`tokens`]: counting tokens (tiktoken for OpenAI models, an estimate otherwise) and the
//!   known context windows, for fitting history into a model's budget.

pub mod provider;
pub mod tokens;
