//! Token counting and context windows, for fitting a conversation into a model's budget.
//!
//! OpenAI-family models (`gpt-*`, `o1`/`o3`/`o4*`, `chatgpt-*`, `text-embedding-*`) are
//! counted exactly with tiktoken (`cl100k_base` or `o200k_base`, as `tiktoken-rs` maps the
//! name; unknown `gpt-*` names get `o200k_base`, the newest encoding). Every other model is
//! estimated, because its tokenizer is not available offline; see [`estimate_tokens`].
//!
//! Encoding is CPU work proportional to the text: callers counting large inputs (whole
//! histories) on the async runtime should do so in `spawn_blocking`.

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

/// The window assumed for a model this module does not know: small enough to fit every model
/// an operator is likely to serve (local servers often run with 4–8 k), so that an unknown
/// model is never sent more than it can read. Operators can set a provider's window instead.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 8192;

/// Tokens a chat API adds around each message (role, separators), counted on top of the
/// content when budgeting a prompt. OpenAI documents 3 for its current chat models and 4
/// for the oldest; the larger keeps the budget on the safe side for every server.
pub const TOKENS_PER_MESSAGE: usize = 4;

/// Tokens the API adds to prime the assistant's reply.
pub const TOKENS_PER_REPLY: usize = 3;

/// The number of tokens `text` takes for `model`: exact for OpenAI-family models, an
/// estimate otherwise.
pub fn count_tokens(model: &str, text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    match openai_encoding(model) {
        Some(bpe) => bpe.count_ordinary(text),
        None => estimate_tokens(text),
    }
}

/// A deliberately generous estimate for models whose tokenizer Parlor does not have: the
/// larger of a quarter of the ASCII characters plus one per non-ASCII character (CJK and
/// other scripts take about one token per character in most open tokenizers), and four
/// tokens per three whitespace-separated words (English averages about 1.3 tokens a word).
/// Over-counting only shortens the history sent; under-counting overflows the window.
pub fn estimate_tokens(text: &str) -> usize {
    let mut ascii = 0usize;
    let mut other = 0usize;
    for ch in text.chars() {
        if ch.is_ascii() {
            ascii += 1;
        } else {
            other += 1;
        }
    }
    let by_chars = ascii.div_ceil(4) + other;
    let by_words = (text.split_whitespace().count() * 4).div_ceil(3);
    by_chars.max(by_words)
}

/// The context window of `model` in tokens, or [`DEFAULT_CONTEXT_WINDOW`] when unknown.
///
/// Only hosted models whose window is fixed by the vendor are listed: an open model's
/// window depends on how its server was started (Ollama's default is 4096 whatever the
/// model supports), so it gets the conservative default unless the operator configures one.
pub fn context_window(model: &str) -> u32 {
    let name = base_name(model).to_ascii_lowercase();
    let name = name.as_str();
    // Most specific prefixes first: `gpt-4-32k` before `gpt-4`, `gpt-4o` before `gpt-4`.
    const WINDOWS: &[(&str, u32)] = &[
        ("gpt-5", 400_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-4.5", 128_000),
        ("gpt-4o", 128_000),
        ("chatgpt-4o", 128_000),
        ("gpt-4-turbo", 128_000),
        ("gpt-4-1106", 128_000),
        ("gpt-4-0125", 128_000),
        ("gpt-4-32k", 32_768),
        ("gpt-4", 8_192),
        ("gpt-3.5-turbo-instruct", 4_096),
        ("gpt-3.5-turbo", 16_385),
        ("gpt-35-turbo", 16_385),
        ("gpt-oss", 131_072),
        ("o1-mini", 128_000),
        ("o1-preview", 128_000),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4-mini", 200_000),
        ("claude-", 200_000),
        ("gemini-1.5", 1_048_576),
        ("gemini-2", 1_048_576),
    ];
    WINDOWS
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or(DEFAULT_CONTEXT_WINDOW, |(_, window)| *window)
}

/// The tiktoken encoding for an OpenAI-family model, or `None` for other models.
///
/// `tiktoken-rs` keeps each encoding in a process-wide `LazyLock`, so after the first call
/// per encoding this is a table lookup, not a load.
fn openai_encoding(model: &str) -> Option<&'static CoreBPE> {
    let name = base_name(model).to_ascii_lowercase();
    let tokenizer = match get_tokenizer(&name) {
        Some(tokenizer) => tokenizer,
        None if is_openai_family(&name) => Tokenizer::O200kBase,
        None => return None,
    };
    tiktoken_rs::bpe_for_tokenizer(tokenizer).ok()
}

/// Whether a model name belongs to OpenAI's families, which all use a tiktoken encoding.
fn is_openai_family(name: &str) -> bool {
    let o_series = ["o1", "o3", "o4"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    });
    o_series
        || name.starts_with("gpt-")
        || name.starts_with("chatgpt-")
        || name.starts_with("text-embedding-")
        || name.starts_with("ft:gpt-")
}

/// The model name without a router's vendor prefix (`openai/gpt-4o` on OpenRouter).
fn base_name(model: &str) -> &str {
    if model.starts_with("ft:") {
        return model;
    }
    model.rsplit('/').next().unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_are_counted_with_tiktoken() {
        // "hello world" is two tokens in both cl100k_base and o200k_base.
        assert_eq!(count_tokens("gpt-4", "hello world"), 2);
        assert_eq!(count_tokens("gpt-4o-mini", "hello world"), 2);
        assert_eq!(count_tokens("openai/gpt-4o", "hello world"), 2);
        assert_eq!(count_tokens("o3-mini", "hello world"), 2);
        // An unknown future gpt-* name still counts with tiktoken rather than estimating.
        assert_eq!(count_tokens("gpt-9-turbo", "hello world"), 2);
        // Special-token text in user content is ordinary text, not a control token.
        assert!(count_tokens("gpt-4o", "<|endoftext|>") > 1);
        assert_eq!(count_tokens("gpt-4o", ""), 0);
    }

    #[test]
    fn the_two_encodings_differ_where_they_should() {
        let text = "Привет, как дела? 你好世界";
        let cl100k = count_tokens("gpt-4", text);
        let o200k = count_tokens("gpt-4o", text);
        assert!(o200k < cl100k, "o200k {o200k} should beat cl100k {cl100k}");
    }

    #[test]
    fn other_models_are_estimated() {
        assert!(!is_openai_family("llama3.1:8b"));
        assert!(!is_openai_family("o1x"));
        assert!(is_openai_family("o1"));
        // 11 ASCII characters → 3; 2 words → 3.
        assert_eq!(count_tokens("llama3.1:8b", "hello world"), 3);
        // One 4-character word: 1 by characters, 2 by words (4/3 rounded up).
        assert_eq!(count_tokens("claude-sonnet-4-5", "abcd"), 2);
        // Non-ASCII characters count one each.
        assert_eq!(estimate_tokens("你好世界"), 4);
        // Many short words: the word rule wins (9 words → 12 tokens; 17 chars → 5).
        assert_eq!(estimate_tokens("a b c d e f g h i"), 12);
        // The estimate is never below tiktoken's count for ordinary English.
        let text = "The quick brown fox jumps over the lazy dog, twice, and then rests.";
        assert!(estimate_tokens(text) >= count_tokens("gpt-4", text));
    }

    #[test]
    fn known_context_windows() {
        assert_eq!(context_window("gpt-4o"), 128_000);
        assert_eq!(context_window("gpt-4o-mini-2024-07-18"), 128_000);
        assert_eq!(context_window("gpt-4"), 8_192);
        assert_eq!(context_window("gpt-4-32k"), 32_768);
        assert_eq!(context_window("gpt-4-turbo-preview"), 128_000);
        assert_eq!(context_window("openai/gpt-4.1-mini"), 1_047_576);
        assert_eq!(context_window("claude-3-5-haiku-latest"), 200_000);
        assert_eq!(context_window("o1-mini"), 128_000);
        assert_eq!(context_window("o3"), 200_000);
        assert_eq!(context_window("llama3.2"), DEFAULT_CONTEXT_WINDOW);
    }
}
