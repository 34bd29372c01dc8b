//! Patterns in the `regex` crate's syntax (Parse's dialect, see `parlor_core::query::regex`)
//! rewritten for PostgreSQL's regex engine (ARE), so that `~` matches exactly what the
//! in-memory matcher matches.
//!
//! The source is parsed with `regex-syntax`, the `regex` crate's own parser, with the same
//! defaults, into its high-level form, where every flag is already applied: `(?i)` has become
//! explicit case-folded classes, `.` a class without `\n`, `(?m)^` a line-start assertion.
//! That form is then written back in ARE syntax, which never depends on PostgreSQL's flags,
//! locale or collation:
//! - classes are bracket expressions of code-point ranges written as `\uXXXX` escapes;
//! - `\b` and friends become look-arounds over the explicit word class (PostgreSQL's own
//!   `\y` follows the database locale, which need not be Unicode's `\w`);
//! - `^`/`$` become `\A`/`\Z`, multi-line anchors look-arounds on `\n` (and `\r` for `R`);
//! - repetition counts above PostgreSQL's limit of 255 are split into several repetitions;
//! - groups are non-capturing (matching never needs captures).
//!
//! PostgreSQL text cannot hold NUL, so a NUL in a pattern matches nothing.

use std::fmt::Write as _;
use std::sync::OnceLock;

use parlor_core::Error;
use regex_syntax::hir::{Class, Hir, HirKind, Look, Repetition};

/// The largest repetition count PostgreSQL accepts (`DUPMAX`).
const MAX_REPEAT: u32 = 255;

/// An expression that matches nothing (an empty class): `b` where `a` is required.
const NOTHING: &str = "(?=a)b";

/// The PostgreSQL (ARE) form of a `regex`-crate pattern, or the `102` error the pattern is
/// (it compiled for the matcher, so this only happens for what PostgreSQL cannot express).
pub(crate) fn to_postgres(source: &str) -> Result<String, Error> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(source)
        .map_err(|error| Error::invalid_query(format!("Invalid regular expression: {error}")))?;
    let mut out = String::with_capacity(source.len() * 2);
    write_hir(&mut out, &hir)?;
    Ok(out)
}

fn write_hir(out: &mut String, hir: &Hir) -> Result<(), Error> {
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0)
                .map_err(|_| Error::invalid_query("Invalid regular expression: not UTF-8"))?;
            for c in text.chars() {
                write_char(out, c);
            }
        }
        HirKind::Class(class) => write_class(out, &class_ranges(class)?),
        HirKind::Look(look) => write_look(out, *look)?,
        HirKind::Repetition(repetition) => write_repetition(out, repetition)?,
        HirKind::Capture(capture) => {
            out.push_str("(?:");
            write_hir(out, &capture.sub)?;
            out.push(')');
        }
        HirKind::Concat(items) => {
            for item in items {
                write_hir(out, item)?;
            }
        }
        HirKind::Alternation(items) => {
            out.push_str("(?:");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push('|');
                }
                write_hir(out, item)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// A literal character: ASCII letters and digits as themselves, any other ASCII character
/// backslash-escaped (in an ARE, `\` before a non-alphanumeric is that character), the rest
/// as a `\u` escape.
fn write_char(out: &mut String, c: char) {
    if c == '\0' {
        out.push_str(NOTHING);
    } else if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if c.is_ascii_graphic() {
        out.push('\\');
        out.push(c);
    } else {
        write_escape(out, c);
    }
}

/// `\uXXXX`, or `\UXXXXXXXX` beyond the Basic Multilingual Plane.
fn write_escape(out: &mut String, c: char) {
    let code = u32::from(c);
    // Writing to a String cannot fail.
    let _ = if code <= 0xFFFF {
        write!(out, "\\u{code:04x}")
    } else {
        write!(out, "\\U{code:08x}")
    };
}

/// The class's code-point ranges (byte classes only arise for ASCII in a UTF-8 pattern).
fn class_ranges(class: &Class) -> Result<Vec<(char, char)>, Error> {
    match class {
        Class::Unicode(class) => Ok(class
            .ranges()
            .iter()
            .map(|range| (range.start(), range.end()))
            .collect()),
        Class::Bytes(class) => class
            .ranges()
            .iter()
            .map(|range| {
                if range.end() > 0x7F {
                    return Err(Error::invalid_query(
                        "Invalid regular expression: byte class beyond ASCII",
                    ));
                }
                Ok((char::from(range.start()), char::from(range.end())))
            })
            .collect(),
    }
}

/// A bracket expression of the ranges, without NUL (which no stored text holds).
fn write_class(out: &mut String, ranges: &[(char, char)]) {
    let ranges: Vec<(char, char)> = ranges
        .iter()
        .filter_map(|&(start, end)| match (start, end) {
            ('\0', '\0') => None,
            ('\0', end) => Some(('\u{1}', end)),
            range => Some(range),
        })
        .collect();
    if ranges.is_empty() {
        out.push_str(NOTHING);
        return;
    }
    out.push('[');
    for (start, end) in ranges {
        write_class_char(out, start);
        if end != start {
            out.push('-');
            write_class_char(out, end);
        }
    }
    out.push(']');
}

fn write_class_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        write_escape(out, c);
    }
}

/// Unicode's `\w` as a bracket expression, computed once.
fn unicode_word_class() -> &'static str {
    static CLASS: OnceLock<String> = OnceLock::new();
    CLASS.get_or_init(|| {
        let mut out = String::new();
        let ranges = regex_syntax::ParserBuilder::new()
            .build()
            .parse(r"\w")
            .ok()
            .and_then(|hir| match hir.kind() {
                HirKind::Class(class) => class_ranges(class).ok(),
                _ => None,
            })
            .unwrap_or_else(|| vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]);
        write_class(&mut out, &ranges);
        out
    })
}

const ASCII_WORD_CLASS: &str = "[0-9A-Z_a-z]";

fn write_look(out: &mut String, look: Look) -> Result<(), Error> {
    let word = |unicode: bool| {
        if unicode {
            unicode_word_class()
        } else {
            ASCII_WORD_CLASS
        }
    };
    let after = |class: &str| format!("(?<={class})");
    let not_after = |class: &str| format!("(?<!{class})");
    let before = |class: &str| format!("(?={class})");
    let not_before = |class: &str| format!("(?!{class})");
    let text = match look {
        Look::Start => r"\A".to_owned(),
        Look::End => r"\Z".to_owned(),
        Look::StartLF => r"(?:\A|(?<=\n))".to_owned(),
        Look::EndLF => r"(?:\Z|(?=\n))".to_owned(),
        Look::StartCRLF => r"(?:\A|(?<=\n)|(?<=\r)(?!\n))".to_owned(),
        Look::EndCRLF => r"(?:\Z|(?=\r)|(?<!\r)(?=\n))".to_owned(),
        Look::WordAscii | Look::WordUnicode => {
            let class = word(look == Look::WordUnicode);
            format!(
                "(?:{}{}|{}{})",
                after(class),
                not_before(class),
                not_after(class),
                before(class)
            )
        }
        Look::WordAsciiNegate | Look::WordUnicodeNegate => {
            let class = word(look == Look::WordUnicodeNegate);
            format!(
                "(?:{}{}|{}{})",
                after(class),
                before(class),
                not_after(class),
                not_before(class)
            )
        }
        Look::WordStartAscii | Look::WordStartUnicode => {
            let class = word(look == Look::WordStartUnicode);
            format!("{}{}", not_after(class), before(class))
        }
        Look::WordEndAscii | Look::WordEndUnicode => {
            let class = word(look == Look::WordEndUnicode);
            format!("{}{}", after(class), not_before(class))
        }
        Look::WordStartHalfAscii | Look::WordStartHalfUnicode => {
            not_after(word(look == Look::WordStartHalfUnicode))
        }
        Look::WordEndHalfAscii | Look::WordEndHalfUnicode => {
            not_before(word(look == Look::WordEndHalfUnicode))
        }
    };
    out.push_str(&text);
    Ok(())
}

/// `sub{min,max}`, split into repetitions PostgreSQL accepts: `x{600}` is `x{255}x{255}x{90}`
/// and `x{0,600}` is `x{0,255}x{0,255}x{0,90}`, which match the same counts.
fn write_repetition(out: &mut String, repetition: &Repetition) -> Result<(), Error> {
    let mut atom = String::from("(?:");
    write_hir(&mut atom, &repetition.sub)?;
    atom.push(')');
    let mut exact = repetition.min;
    while exact > 0 {
        let count = exact.min(MAX_REPEAT);
        let _ = write!(out, "{atom}{{{count}}}");
        exact -= count;
    }
    match repetition.max {
        None => {
            out.push_str(&atom);
            out.push('*');
        }
        Some(max) => {
            let mut optional = max.saturating_sub(repetition.min);
            while optional > 0 {
                let count = optional.min(MAX_REPEAT);
                let _ = write!(out, "{atom}{{0,{count}}}");
                optional -= count;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations() {
        let check = |source: &str, expected: &str| {
            assert_eq!(
                to_postgres(source).ok().as_deref(),
                Some(expected),
                "{source}"
            );
        };
        check("^a.b$", r"\Aa[\u0001-\u0009\u000b-\U0010ffff]b\Z");
        check("(?i)ab", "[Aa][Bb]");
        check("a|b(c)", "(?:a|b(?:c))");
        check("a{2,300}", "(?:a){2}(?:a){0,255}(?:a){0,43}");
        check("a+", "(?:a){1}(?:a)*");
        check(r"\.\[", r"\.\[");
        check("(?m)^a", r"(?:\A|(?<=\n))a");
        check("[^\\x00-\\x{10FFFF}]", NOTHING);
        assert!(to_postgres("(").is_err());
    }
}
