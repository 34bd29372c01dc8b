//! The live schema as documentation: JSON (the `/schemas` shape), a Mermaid ER diagram,
//! or a Markdown data dictionary (`parlor schema --format …`). The console's Schema screen
//! (`web/app/console/schema-doc.js`) renders the same two texts from `/schemas`; both show
//! what the schemas API shows, never the server's internal `_` fields.
//!
//! The dictionary's descriptions of the built-in and template fields come from
//! `template/descriptions.json`, which the console reads too.

use std::fmt::Write;

use parlor_core::schema::{ClassSchema, FieldSchema, FieldType, is_internal_field};
use serde_json::{Value, json};

/// Descriptions of fields: `{"*": {field: text}, "<Class>": {field: text}}`.
pub const DESCRIPTIONS: &str = include_str!("../../../template/descriptions.json");

/// The description of a class's field, if one is written.
fn description(descriptions: &Value, class_name: &str, field: &str) -> String {
    descriptions
        .get(class_name)
        .and_then(|fields| fields.get(field))
        .or_else(|| descriptions.get("*").and_then(|fields| fields.get(field)))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .replace('|', "\\|")
}

/// The fields the schemas API shows, by name.
fn visible_fields(schema: &ClassSchema) -> impl Iterator<Item = (&String, &FieldSchema)> {
    schema
        .fields
        .iter()
        .filter(|(name, _)| !is_internal_field(name))
}

/// Output formats of `parlor schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaFormat {
    Json,
    Mermaid,
    Markdown,
}

pub fn render(schemas: &[&ClassSchema], format: SchemaFormat) -> String {
    match format {
        SchemaFormat::Json => {
            let results: Vec<Value> = schemas.iter().map(|schema| schema.to_json()).collect();
            serde_json::to_string_pretty(&json!({ "results": results })).unwrap_or_default()
        }
        SchemaFormat::Mermaid => mermaid(schemas),
        SchemaFormat::Markdown => markdown(schemas),
    }
}

/// Mermaid entity names cannot start with `_`.
fn entity(class_name: &str) -> String {
    match class_name.strip_prefix('_') {
        Some(rest) => format!("{rest}_"),
        None => class_name.to_owned(),
    }
}

fn mermaid(schemas: &[&ClassSchema]) -> String {
    let mut out = String::from("erDiagram\n");
    for schema in schemas {
        let _ = writeln!(out, "    {} {{", entity(&schema.class_name));
        for (name, field) in visible_fields(schema) {
            let type_name = match &field.field_type {
                FieldType::Pointer(_) => "Pointer".to_owned(),
                FieldType::Relation(_) => "Relation".to_owned(),
                other => other.name().to_owned(),
            };
            let key = match (name.as_str(), &field.field_type) {
                ("objectId", _) => " PK",
                (_, FieldType::Pointer(_)) => " FK",
                _ => "",
            };
            let note = if field.required { " \"required\"" } else { "" };
            let _ = writeln!(out, "        {type_name} {name}{key}{note}");
        }
        out.push_str("    }\n");
    }
    for schema in schemas {
        for (name, field) in visible_fields(schema) {
            let (target, shape) = match &field.field_type {
                FieldType::Pointer(target) => {
                    (target, if field.required { "}o--||" } else { "}o--o|" })
                }
                FieldType::Relation(target) => (target, "}o--o{"),
                _ => continue,
            };
            let _ = writeln!(
                out,
                "    {} {shape} {} : {name}",
                entity(&schema.class_name),
                entity(target)
            );
        }
    }
    out
}

fn markdown(schemas: &[&ClassSchema]) -> String {
    let descriptions: Value = serde_json::from_str(DESCRIPTIONS).unwrap_or_default();
    let mut out = String::from("# Data dictionary\n");
    for schema in schemas {
        let _ = write!(
            out,
            "\n## {}\n\n| field | type | required | default | description |\n|---|---|---|---|---|\n",
            schema.class_name
        );
        for (name, field) in visible_fields(schema) {
            let default_value = field
                .default_value
                .as_ref()
                .map(|value| format!("`{value}`"))
                .unwrap_or_default();
            let required = if field.required { "yes" } else { "" };
            let _ = writeln!(
                out,
                "| {name} | {} | {required} | {default_value} | {} |",
                field.field_type.describe(),
                description(&descriptions, &schema.class_name, name)
            );
        }
        let clp = Value::Object(schema.class_level_permissions.clone());
        let _ = writeln!(out, "\nClass-level permissions: `{clp}`");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mermaid_draws_pointers_as_relationships() {
        let mut message = ClassSchema::new("Message");
        message.fields.insert(
            "session".into(),
            FieldSchema {
                field_type: FieldType::Pointer("ChatSession".into()),
                required: true,
                default_value: None,
            },
        );
        let session = ClassSchema::new("ChatSession");
        let out = render(&[&session, &message], SchemaFormat::Mermaid);
        assert!(out.starts_with("erDiagram\n"));
        assert!(out.contains("        Pointer session FK \"required\"\n"));
        assert!(out.contains("    Message }o--|| ChatSession : session\n"));
    }
}
