//! Parse regular expressions (`$regex` + `$options`, PCRE-style `\Q…\E`) → the `regex` crate's syntax.
//!
//! Parse passes `$regex` to the database as PCRE. We translate it once, here, into a source
//! string in the `regex` crate's syntax ([`Pattern::source`]); the in-memory matcher uses the
//! compiled [`Pattern::regex`] and the SQLite store hands the very same source to `REGEXP`
//! (which is the `regex` crate too), so both evaluators agree.
//!
//! The translation:
//! - `\Q…\E` quotes literally (an unterminated `\Q` quotes to the end of the pattern, and a
//!   stray `\E` is ignored, as in PCRE). The JS SDK's `startsWith`/`endsWith`/`contains` always
//!   send it.
//! - `$options` letters `i m x s` become one leading inline group, `(?imsx)`; any other letter
//!   is `102 "Bad $options value for query: <opts>"`.
//! - Everything else is passed through; what the `regex` crate rejects (look-around,
//!   back-references, …) is `102`.
//!
//! Compiled regexes are bounded ([`REGEX_SIZE_LIMIT`], [`REGEX_DFA_SIZE_LIMIT`]), so a
//! hostile pattern is refused instead of exhausting memory.

pub use regex::Regex;
use regex::RegexBuilder;

use crate::error::{Error, Result};
use crate::query::ast::Pattern;

/// The largest compiled program we accept for one pattern, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// The lazy-DFA cache of one compiled pattern, in bytes.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// Translates `$regex` + `$options` and compiles the result.
///
/// Errors are `102`: an option letter outside `imsx`, or a pattern the `regex` crate refuses
/// (bad syntax, unsupported PCRE feature, too big once compiled).
pub fn compile(pattern: &str, options: &str) -> Result<Pattern> {
    let source = translate(pattern, options)?;
    let regex = build(&source).map_err(|error| {
        Error::invalid_query(format!(
            "Invalid regular expression: {}",
            short_reason(&error)
        ))
    })?;
    Ok(Pattern { source, regex })
}

/// The `regex`-crate source for `$regex` + `$options`, without compiling it.
pub fn translate(pattern: &str, options: &str) -> Result<String> {
    let flags = option_flags(options)?;
    let body = expand_quotes(pattern);
    if flags.is_empty() {
        return Ok(body);
    }
    Ok(format!("(?{flags}){body}"))
}

/// Expands PCRE `\Q…\E` literal quoting into escaped characters.
///
/// Quoted whitespace becomes `\x{…}` so that it stays literal under the `x` flag.
pub fn expand_quotes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut quoting = false;
    while let Some(c) = chars.next() {
        if quoting {
            if c == '\\' && chars.peek() == Some(&'E') {
                chars.next();
                quoting = false;
            } else {
                push_literal(&mut out, c);
            }
            continue;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Q') => quoting = true,
            // PCRE ignores an `\E` that ends no quote.
            Some('E') => {}
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            // A trailing backslash: left for the regex crate to refuse.
            None => out.push('\\'),
        }
    }
    out
}

/// The regex source for one `$text` term: the term as a whole word, case-insensitively.
///
/// Both evaluators use exactly this string, so they agree on what a "word" is.
pub fn text_term_pattern(term: &str) -> String {
    format!(r"(?i)\b{}\b", regex::escape(term))
}

/// The regex source for one `$text` term under the search's options: case-sensitive or
/// not, and with `fold_diacritics` each Latin letter also matching its accented forms
/// (`cafe` finds `café`, `CAFÉ` with case folding), as MongoDB's `$diacriticSensitive:
/// false` does. With neither option it is [`text_term_pattern`].
pub fn text_term_pattern_with(term: &str, case_sensitive: bool, fold_diacritics: bool) -> String {
    let flags = if case_sensitive { "" } else { "(?i)" };
    if !fold_diacritics {
        return format!(r"{flags}\b{}\b", regex::escape(term));
    }
    let mut body = String::new();
    for letter in term.chars() {
        match diacritic_class(letter) {
            Some(class) => body.push_str(&class),
            None => body.push_str(&regex::escape(letter.encode_utf8(&mut [0; 4]))),
        }
    }
    format!(r"{flags}\b{body}\b")
}

/// Latin letters and their accented forms (Latin-1 and Latin Extended-A), by base letter.
const DIACRITICS: [(char, &str); 38] = [
    ('a', "àáâãäåāăą"),
    ('c', "çćĉċč"),
    ('d', "ďđ"),
    ('e', "èéêëēĕėęě"),
    ('g', "ĝğġģ"),
    ('h', "ĥħ"),
    ('i', "ìíîïĩīĭįı"),
    ('j', "ĵ"),
    ('k', "ķ"),
    ('l', "ĺļľŀł"),
    ('n', "ñńņňŉ"),
    ('o', "òóôõöøōŏő"),
    ('r', "ŕŗř"),
    ('s', "śŝşš"),
    ('t', "ţťŧ"),
    ('u', "ùúûüũūŭůűų"),
    ('w', "ŵ"),
    ('y', "ýÿŷ"),
    ('z', "źżž"),
    ('A', "ÀÁÂÃÄÅĀĂĄ"),
    ('C', "ÇĆĈĊČ"),
    ('D', "ĎĐ"),
    ('E', "ÈÉÊËĒĔĖĘĚ"),
    ('G', "ĜĞĠĢ"),
    ('H', "ĤĦ"),
    ('I', "ÌÍÎÏĨĪĬĮİ"),
    ('J', "Ĵ"),
    ('K', "Ķ"),
    ('L', "ĹĻĽĿŁ"),
    ('N', "ÑŃŅŇ"),
    ('O', "ÒÓÔÕÖØŌŎŐ"),
    ('R', "ŔŖŘ"),
    ('S', "ŚŜŞŠ"),
    ('T', "ŢŤŦ"),
    ('U', "ÙÚÛÜŨŪŬŮŰŲ"),
    ('W', "Ŵ"),
    ('Y', "ÝŸŶ"),
    ('Z', "ŹŻŽ"),
];

/// `[eéè…]` for a letter with accented forms (whether the term's letter is the plain or an
/// accented one), `None` for any other character.
fn diacritic_class(letter: char) -> Option<String> {
    let (base, accented) = DIACRITICS
        .iter()
        .find(|(base, accented)| *base == letter || accented.contains(letter))?;
    Some(format!("[{base}{accented}]"))
}

/// The regex source of a word, as [`text_score`] counts them.
pub const WORD_PATTERN: &str = r"\w+";

/// English stop words, which MongoDB's text index (and so its text score) leaves out of a
/// text's word count for the default language.
const ENGLISH_STOP_WORDS: &str = "a about above after again against all am an and any are as at be because been before \
     being below between both but by cannot could did do does doing down during each few for \
     from further had has have having he her here hers herself him himself his how i if in \
     into is it its itself me more most my myself no nor not of off on once only or other \
     ought our ours ourselves out over own same she should so some such than that the their \
     theirs them themselves then there these they this those through to too under until up \
     very was we were what when where which while who whom why with would";

/// The regex source matching the stop words of a `$text` search's `$language` (English
/// when none is given, as MongoDB's default), or `None` for a language without a list here
/// (`none`, or any other).
pub fn stop_word_pattern(language: Option<&str>) -> Option<String> {
    match language.map(str::to_ascii_lowercase).as_deref() {
        None | Some("english") | Some("en") => {
            let words: Vec<&str> = ENGLISH_STOP_WORDS.split_whitespace().collect();
            Some(format!(r"(?i)\b(?:{})\b", words.join("|")))
        }
        _ => None,
    }
}

/// The relevance of `text` to a search whose terms' patterns are `terms`, as MongoDB's
/// `textScore` weighs it (without stemming): for each term found `n` times in a text of
/// `words` words (stop words, matched by `stop`, left out), `(0.5 · n / words + 0.5) ·
/// (1 + 1/2 + … + 1/2ⁿ⁻¹)`, summed. A text that is exactly one term scores 1, a two-word
/// text holding it once 0.75. Both backends compute the same formula in SQL.
pub fn text_score(text: &str, terms: &[Regex], word: &Regex, stop: Option<&Regex>) -> f64 {
    let all = word.find_iter(text).count();
    let stopped = stop.map_or(0, |stop| stop.find_iter(text).count());
    let words = all.saturating_sub(stopped).max(1) as f64;
    terms
        .iter()
        .map(|term| {
            let found = term.find_iter(text).count() as f64;
            (0.5 * found / words + 0.5) * (2.0 - 2f64.powf(1.0 - found))
        })
        .sum()
}

/// Compiles a source with Parlor's size limits; every regex built from client input goes
/// through here.
pub fn build(source: &str) -> std::result::Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// `imsx` letters in a canonical order; anything else is refused.
fn option_flags(options: &str) -> Result<String> {
    let mut flags = String::new();
    for letter in ['i', 'm', 's', 'x'] {
        if options.contains(letter) {
            flags.push(letter);
        }
    }
    if options.chars().any(|c| !matches!(c, 'i' | 'm' | 's' | 'x')) {
        return Err(Error::invalid_query(format!(
            "Bad $options value for query: {options}"
        )));
    }
    Ok(flags)
}

fn push_literal(out: &mut String, c: char) {
    if c.is_whitespace() {
        out.push_str(&format!("\\x{{{:x}}}", u32::from(c)));
    } else {
        let mut buffer = [0u8; 4];
        out.push_str(&regex::escape(c.encode_utf8(&mut buffer)));
    }
}

/// The first line of a regex error: the full message quotes the whole pattern, which may be huge.
fn short_reason(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(_) => "pattern too large".to_owned(),
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|line| line.starts_with("error:"))
            .unwrap_or("syntax error")
            .to_owned(),
        _ => "unsupported pattern".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    /// `Ok(source, [(subject, expected match)])` or `Err(code)`.
    enum Expect<'a> {
        Source(&'a str, &'a [(&'a str, bool)]),
        Fails(Code),
    }

    fn check(pattern: &str, options: &str, expect: Expect<'_>) {
        let res = compile(pattern, options);
        match (res, expect) {
            (Ok(compiled), Expect::Source(source, subjects)) => {
                assert_eq!(compiled.source, source, "pattern {pattern:?}");
                for (subject, expected) in subjects {
                    assert_eq!(
                        compiled.regex.is_match(subject),
                        *expected,
                        "pattern {pattern:?} options {options:?} on {subject:?}"
                    );
                }
            }
            (Err(error), Expect::Fails(code)) => assert_eq!(error.code, code, "{error}"),
            (Ok(compiled), Expect::Fails(code)) => {
                panic!(
                    "{pattern:?} compiled to {:?}, expected {code:?}",
                    compiled.source
                )
            }
            (Err(error), Expect::Source(source, _)) => {
                panic!("{pattern:?} failed with {error}, expected {source:?}")
            }
        }
    }

    #[test]
    fn plain_patterns_pass_through() {
        check(
            "^ab+c$",
            "",
            Expect::Source("^ab+c$", &[("abbc", true), ("ac", false)]),
        );
        check(
            r"a\.b",
            "",
            Expect::Source(r"a\.b", &[("a.b", true), ("axb", false)]),
        );
        check(
            r"\\Q",
            "",
            Expect::Source(r"\\Q", &[(r"\Q", true), ("Q", false)]),
        );
        check("", "", Expect::Source("", &[("", true), ("x", true)]));
    }

    #[test]
    fn quoting_as_the_js_sdk_sends_it() {
        // startsWith("a.b"), endsWith("a.b"), contains("a.b").
        check(
            r"^\Qa.b\E",
            "",
            Expect::Source(r"^a\.b", &[("a.bc", true), ("axb", false), ("xa.b", false)]),
        );
        check(
            r"\Qa.b\E$",
            "",
            Expect::Source(r"a\.b$", &[("xa.b", true), ("a.bx", false)]),
        );
        check(
            r"\Q(x)*\E",
            "",
            Expect::Source(r"\(x\)\*", &[("1(x)*2", true), ("xx", false)]),
        );
        // The SDK's escaping of an embedded `\E`: `\Q` + s.replace('\E', '\E\\E\Q') + `\E`.
        check(
            r"\Qa\E\\E\Qb\E",
            "",
            Expect::Source(r"a\\Eb", &[(r"a\Eb", true)]),
        );
    }

    #[test]
    fn quoting_edge_cases() {
        // Unterminated: quotes to the end.
        check(
            r"^\Q[a",
            "",
            Expect::Source(r"^\[a", &[("[a", true), ("a", false)]),
        );
        // A stray `\E` is ignored.
        check(r"a\Eb", "", Expect::Source("ab", &[("ab", true)]));
        // A backslash inside a quote is literal.
        check(
            r"\Q\d\E",
            "",
            Expect::Source(r"\\d", &[(r"\d", true), ("1", false)]),
        );
        // Quoted whitespace survives the `x` flag; unquoted whitespace does not.
        check(
            r"\Qa b\E c",
            "x",
            Expect::Source(r"(?x)a\x{20}b c", &[("a bc", true), ("abc", false)]),
        );
        check(r"\Q\E", "", Expect::Source("", &[("", true)]));
        check(r"\Qé☃\E", "", Expect::Source("é☃", &[("xé☃", true)]));
        check(
            r"[\Q]\E]",
            "",
            Expect::Source(r"[\]]", &[("]", true), ("[", false)]),
        );
    }

    #[test]
    fn options_become_inline_flags() {
        check("^ab", "i", Expect::Source("(?i)^ab", &[("ABC", true)]));
        check("^b", "m", Expect::Source("(?m)^b", &[("a\nb", true)]));
        check("a.b", "s", Expect::Source("(?s)a.b", &[("a\nb", true)]));
        check(
            "a b",
            "x",
            Expect::Source("(?x)a b", &[("ab", true), ("a b", false)]),
        );
        check("a", "xsmi", Expect::Source("(?imsx)a", &[("A", true)]));
        check("a", "ii", Expect::Source("(?i)a", &[("A", true)]));
        check("a.b", "", Expect::Source("a.b", &[("a\nb", false)]));
    }

    #[test]
    fn errors_are_102() {
        check("a", "z", Expect::Fails(Code::InvalidQuery));
        check("a", "i g", Expect::Fails(Code::InvalidQuery));
        check("a", "I", Expect::Fails(Code::InvalidQuery));
        check("(", "", Expect::Fails(Code::InvalidQuery));
        check(r"a\", "", Expect::Fails(Code::InvalidQuery));
        check(r"(?=a)", "", Expect::Fails(Code::InvalidQuery));
        check(r"(a)\1", "", Expect::Fails(Code::InvalidQuery));
        check(r"\p{Nope}", "", Expect::Fails(Code::InvalidQuery));
    }

    #[test]
    fn hostile_patterns_are_refused_not_compiled() {
        check(r"\w{1000}{1000}", "", Expect::Fails(Code::InvalidQuery));
        check(
            r"(((a{100}){100}){100})",
            "",
            Expect::Fails(Code::InvalidQuery),
        );
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        check(&deep, "", Expect::Fails(Code::InvalidQuery));
        let long = format!(r"\Q{}\E", "é".repeat(200_000));
        check(&long, "i", Expect::Fails(Code::InvalidQuery));
        // The message does not echo the whole pattern.
        let res = compile(&format!("{}(", "a".repeat(100_000)), "");
        assert!(res.is_err_and(|error| error.message.len() < 200));
    }

    /// MongoDB's text score: 1 for the term alone, 0.75 for one of two words, more for
    /// repeats, summed over terms, 0 when absent.
    #[test]
    fn text_scores() {
        let word = build(WORD_PATTERN).unwrap();
        let coffee = [build(&text_term_pattern("coffee")).unwrap()];
        let stop = build(&stop_word_pattern(None).unwrap_or_default()).unwrap();
        let score = |text: &str| text_score(text, &coffee, &word, Some(&stop));
        assert_eq!(score("coffee"), 1.0);
        assert_eq!(score("Coffee Shopping"), 0.75);
        assert_eq!(score("coffee coffee"), 1.5);
        assert_eq!(score("tea"), 0.0);
        assert_eq!(score(""), 0.0);
        let both = [
            coffee[0].clone(),
            build(&text_term_pattern("cream")).unwrap(),
        ];
        assert_eq!(text_score("coffee cream", &both, &word, None), 1.5);
        // Stop words do not count as words: "and" here.
        assert_eq!(score("coffee and cream"), 0.75);
        assert_eq!(
            text_score("coffee and cream", &coffee, &word, None),
            0.5 / 3.0 + 0.5
        );
        assert_eq!(stop_word_pattern(Some("portuguese")), None);
        for word in ["before", "being", "for", "from", "The"] {
            assert!(stop.is_match(word), "{word}");
        }
        assert!(!stop.is_match("beforebeing") && !stop.is_match("coffee"));
    }

    /// Options: case-sensitive terms, accents folded both ways.
    #[test]
    fn text_term_options() {
        let matches = |term: &str, case: bool, fold: bool, text: &str| {
            build(&text_term_pattern_with(term, case, fold))
                .unwrap()
                .is_match(text)
        };
        assert!(matches("cafe", false, true, "Un CAFÉ"));
        assert!(matches("café", false, true, "cafe"));
        assert!(!matches("cafe", false, false, "café"));
        assert!(!matches("Cafe", true, true, "café"));
        assert!(matches("Cafe", true, true, "Café"));
        assert!(!matches("caf", false, true, "café"));
        assert_eq!(
            text_term_pattern_with("a.b", false, false),
            text_term_pattern("a.b")
        );
    }

    #[test]
    fn text_terms_are_whole_words() {
        let cases: &[(&str, &str, bool)] = &[
            ("rust", "I like Rust a lot", true),
            ("rust", "rusty", false),
            ("a.b", "see a.b here", true),
            ("a.b", "see axb here", false),
            ("c++", "c++ rocks", false), // `\b` after `+` needs a word character next.
            ("naïve", "so NAÏVE", true),
        ];
        for (term, subject, expected) in cases {
            let source = text_term_pattern(term);
            let regex = build(&source);
            assert!(
                regex.is_ok_and(|regex| regex.is_match(subject) == *expected),
                "{term:?} on {subject:?}"
            );
        }
        assert_eq!(text_term_pattern("a.b"), r"(?i)\ba\.b\b");
    }
}
