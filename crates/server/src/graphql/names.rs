//! The names Parse Server's GraphQL API gives a class's types and fields (§12.2), and relay
//! global ids.

use base64::Engine;

/// The GraphQL type of a class: the leading `_` dropped, the first letter upper-cased
/// (`_User` → `User`, `chatSession` → `ChatSession`).
pub fn type_name(class_name: &str) -> String {
    let name = class_name.strip_prefix('_').unwrap_or(class_name);
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The get query and the mutation payload's field: the type name with a lower-case first
/// letter (`ChatSession` → `chatSession`).
pub fn field_name(class_name: &str) -> String {
    let name = type_name(class_name);
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Words whose plural is irregular or the word itself, as English pluralisation has them.
const IRREGULAR: [(&str, &str); 9] = [
    ("person", "people"),
    ("child", "children"),
    ("man", "men"),
    ("woman", "women"),
    ("mouse", "mice"),
    ("goose", "geese"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("ox", "oxen"),
];
const UNCOUNTABLE: [&str; 10] = [
    "data",
    "information",
    "equipment",
    "news",
    "series",
    "species",
    "sheep",
    "fish",
    "media",
    "metadata",
];

/// The find query's name: the plural of [`field_name`] by English rules (`chatSessions`,
/// `people`, `categories`). The last word of a camel-case name is what changes.
pub fn plural(name: &str) -> String {
    let split = name
        .char_indices()
        .filter(|(_, c)| c.is_uppercase())
        .map(|(index, _)| index)
        .next_back()
        .unwrap_or(0);
    let (head, word) = name.split_at(split);
    let lower = word.to_lowercase();
    let keep_case = |plural: &str| {
        let mut out = String::with_capacity(head.len() + plural.len());
        out.push_str(head);
        if word.starts_with(char::is_uppercase) {
            let mut chars = plural.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.extend(chars);
            }
        } else {
            out.push_str(plural);
        }
        out
    };
    if UNCOUNTABLE.contains(&lower.as_str()) {
        return name.to_owned();
    }
    if let Some((_, plural)) = IRREGULAR.iter().find(|(single, _)| lower == *single) {
        return keep_case(plural);
    }
    let stem = &word[..word.len().saturating_sub(1)];
    let ends = |suffix: &str| lower.ends_with(suffix);
    let vowel_before_last = lower
        .chars()
        .rev()
        .nth(1)
        .is_some_and(|c| "aeiou".contains(c));
    let plural_word = if ends("s") || ends("x") || ends("z") || ends("ch") || ends("sh") {
        format!("{word}es")
    } else if ends("y") && !vowel_before_last {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    };
    format!("{head}{plural_word}")
}

/// The relay global id of an object: `base64("<ParseClassName>:<objectId>")`.
pub fn global_id(class_name: &str, object_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{class_name}:{object_id}"))
}

/// A global id taken apart: its Parse class name and objectId.
pub fn parse_global_id(id: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(id).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (class_name, object_id) = text.split_once(':')?;
    (!class_name.is_empty() && !object_id.is_empty())
        .then(|| (class_name.to_owned(), object_id.to_owned()))
}

/// The objectId an `id:` argument or a `link` names: a global id of `class_name`, or the
/// objectId itself.
pub fn object_id_of(class_name: &str, id: &str) -> String {
    match parse_global_id(id) {
        Some((class, object_id)) if class == class_name => object_id,
        _ => id.to_owned(),
    }
}

/// The cursor of the item at `offset` in a connection (`base64("arrayconnection:N")`).
pub fn cursor(offset: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("arrayconnection:{offset}"))
}

/// The offset a cursor stands for.
pub fn cursor_offset(cursor: &str) -> Option<u64> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(decoded)
        .ok()?
        .strip_prefix("arrayconnection:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_type_and_field_names() {
        assert_eq!(type_name("_User"), "User");
        assert_eq!(type_name("chatSession"), "ChatSession");
        assert_eq!(field_name("ChatSession"), "chatSession");
        assert_eq!(field_name("_Session"), "session");
    }

    #[test]
    fn plurals_follow_english_rules() {
        assert_eq!(plural("chatSession"), "chatSessions");
        assert_eq!(plural("message"), "messages");
        assert_eq!(plural("persona"), "personas");
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("salesPerson"), "salesPeople");
        assert_eq!(plural("data"), "data");
        assert_eq!(plural("aiUsage"), "aiUsages");
    }

    #[test]
    fn ids_and_cursors_round_trip() {
        assert_eq!(
            global_id("ChatSession", "xWMyZ4YEGZ"),
            "Q2hhdFNlc3Npb246eFdNeVo0WUVHWg=="
        );
        assert_eq!(
            object_id_of("ChatSession", "Q2hhdFNlc3Npb246eFdNeVo0WUVHWg=="),
            "xWMyZ4YEGZ"
        );
        assert_eq!(object_id_of("ChatSession", "xWMyZ4YEGZ"), "xWMyZ4YEGZ");
        assert_eq!(
            object_id_of("Message", &global_id("_User", "a")),
            global_id("_User", "a")
        );
        assert_eq!(cursor(29), "YXJyYXljb25uZWN0aW9uOjI5");
        assert_eq!(cursor_offset("YXJyYXljb25uZWN0aW9uOjI5"), Some(29));
        assert_eq!(cursor_offset("nonsense"), None);
    }
}
