//! `parlor export` / `parlor import`: the whole database as JSON lines, so a deployment can
//! move between stores (SQLite ↔ PostgreSQL) losing nothing.
//!
//! # The folder
//! - `schemas.jsonl`: one class schema per line, in the `/schemas` shape plus the internal
//!   (`_`-prefixed) fields, which `/schemas` hides but the store needs columns for.
//! - `classes/<className>.jsonl`: one object per line: its REST shape *with* the internal
//!   fields (password hashes, session tokens, …), explicit `null`s kept, and the members of its
//!   relations under `"$relations": {field: [objectId, …]}` (`$` cannot start a field name).
//! - `files.jsonl`: one stored file per line: `name`, `contentType`, `data` (base64).
//!
//! Everything goes through the [`Store`] trait, so any store exports to and imports from any
//! other. Both directions work in pages ([`PAGE`] objects, one file at a time), so a database
//! larger than memory moves too; an import writes each page in one transaction.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use parlor_core::object::Object;
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand, SortKey};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_store::{Store, Write};
use serde_json::{Map, Value, json};

/// Objects read per find on export and written per transaction on import: large enough
/// that round trips do not dominate, small enough to keep memory flat.
pub const PAGE: usize = 500;

/// The key under which an exported object lists its relations' members.
const RELATIONS_KEY: &str = "$relations";

const SCHEMAS_FILE: &str = "schemas.jsonl";
const FILES_FILE: &str = "files.jsonl";
const CLASSES_DIR: &str = "classes";

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub classes: usize,
    pub objects: usize,
    pub files: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} classes, {} objects, {} files",
            self.classes, self.objects, self.files
        )
    }
}

/// Writes every schema, object and file of `store` into the folder `dir` (created if missing).
pub async fn export(store: &dyn Store, dir: &Path) -> anyhow::Result<Summary> {
    let classes_dir = dir.join(CLASSES_DIR);
    std::fs::create_dir_all(&classes_dir)
        .with_context(|| format!("creating {}", classes_dir.display()))?;
    let mut schemas = store.load_schemas().await.context("loading schemas")?;
    schemas.sort_by(|a, b| a.class_name.cmp(&b.class_name));
    let by_name: HashMap<&str, &ClassSchema> = schemas
        .iter()
        .map(|schema| (schema.class_name.as_str(), schema))
        .collect();
    let mut summary = Summary::default();

    let mut out = create(&dir.join(SCHEMAS_FILE))?;
    for schema in &schemas {
        writeln!(out, "{}", schema_json(schema))?;
    }
    out.flush()?;
    summary.classes = schemas.len();

    for schema in &schemas {
        let path = classes_dir.join(format!("{}.jsonl", schema.class_name));
        let mut out = create(&path)?;
        let mut after: Option<String> = None;
        loop {
            let page = store
                .find(schema, &page_query(schema, after.as_deref(), PAGE))
                .await
                .with_context(|| format!("reading {}", schema.class_name))?;
            for object in &page {
                let line = object_json(store, schema, &by_name, object).await?;
                writeln!(out, "{line}")?;
            }
            summary.objects += page.len();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.object_id.clone()),
                _ => break,
            }
        }
        out.flush()?;
    }

    let mut out = create(&dir.join(FILES_FILE))?;
    let mut after: Option<String> = None;
    loop {
        let names = store
            .list_files(after.as_deref(), PAGE)
            .await
            .context("listing files")?;
        for name in &names {
            // A file deleted since it was listed is simply not part of the export.
            let Some((content_type, data)) = store.get_file(name).await? else {
                continue;
            };
            let line = json!({
                "name": name,
                "contentType": content_type,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            });
            writeln!(out, "{line}")?;
            summary.files += 1;
        }
        match names.last() {
            Some(last) if names.len() == PAGE => after = Some(last.clone()),
            _ => break,
        }
    }
    out.flush()?;
    Ok(summary)
}

/// Loads an export folder into `store`, which must hold no objects (classes that exist
/// already, e.g. from an earlier start, are brought in line with the exported schemas).
pub async fn import(store: &dyn Store, dir: &Path) -> anyhow::Result<Summary> {
    let existing: HashMap<String, ClassSchema> = store
        .load_schemas()
        .await
        .context("loading schemas")?
        .into_iter()
        .map(|schema| (schema.class_name.clone(), schema))
        .collect();
    // Merging into live data would mix two histories (and clash on ids): refuse instead.
    for schema in existing.values() {
        if store.count(schema, &Filter::True).await? > 0 {
            bail!(
                "the target database is not empty ({} has objects): import into an empty database",
                schema.class_name
            );
        }
    }

    let mut summary = Summary::default();
    let mut schemas = Vec::new();
    for line in lines(&dir.join(SCHEMAS_FILE))? {
        let line = line?;
        let value: Value = serde_json::from_str(&line).context("a line of schemas.jsonl")?;
        let schema = ClassSchema::from_json(&value).map_err(|error| anyhow::anyhow!("{error}"))?;
        match existing.get(&schema.class_name) {
            Some(before) => store.update_class(before, &schema).await,
            None => store.create_class(&schema).await,
        }
        .with_context(|| format!("creating class {}", schema.class_name))?;
        schemas.push(Arc::new(schema));
    }
    summary.classes = schemas.len();

    for schema in &schemas {
        let path = dir
            .join(CLASSES_DIR)
            .join(format!("{}.jsonl", schema.class_name));
        if !path.exists() {
            continue;
        }
        let mut writes = Vec::with_capacity(PAGE);
        for (number, line) in lines(&path)?.enumerate() {
            let line = line?;
            let write = create_write(schema, &line)
                .with_context(|| format!("{} line {}", path.display(), number + 1))?;
            writes.push(write);
            if writes.len() == PAGE {
                summary.objects += flush(store, &mut writes, &schema.class_name).await?;
            }
        }
        summary.objects += flush(store, &mut writes, &schema.class_name).await?;
    }

    let files = dir.join(FILES_FILE);
    if files.exists() {
        for line in lines(&files)? {
            let line = line?;
            let value: Value = serde_json::from_str(&line).context("a line of files.jsonl")?;
            let text = |key: &str| {
                value[key]
                    .as_str()
                    .with_context(|| format!("a file without {key}"))
            };
            let data = base64::engine::general_purpose::STANDARD
                .decode(text("data")?)
                .context("a file's data")?;
            store
                .put_file(text("name")?, text("contentType")?, data)
                .await?;
            summary.files += 1;
        }
    }
    Ok(summary)
}

/// A schema with its internal fields, which [`ClassSchema::to_json`] leaves out.
fn schema_json(schema: &ClassSchema) -> Value {
    let mut value = schema.to_json();
    let fields: Map<String, Value> = schema
        .fields
        .iter()
        .map(|(name, field)| (name.clone(), field.to_json()))
        .collect();
    value["fields"] = Value::Object(fields);
    value
}

/// One page of a class in `objectId` order, after `after`: keyset paging, so a page costs
/// the same however deep into the class it is.
fn page_query(schema: &ClassSchema, after: Option<&str>, limit: usize) -> FindQuery {
    let object_id = FieldRef {
        field: "objectId".to_owned(),
        path: Vec::new(),
        field_type: schema.field_type("objectId").cloned(),
    };
    let filter = match after {
        Some(after) => Filter::Cond {
            field: object_id.clone(),
            cond: Cond::Gt(Operand::String(after.to_owned())),
        },
        None => Filter::True,
    };
    FindQuery {
        filter,
        order: vec![SortKey {
            field: object_id,
            descending: false,
            near: None,
        }],
        skip: 0,
        limit: Some(limit as u64),
        keys: None,
        score: None,
    }
}

/// An object's export line: its fields without the relation markers reads add, and the
/// members of each relation.
async fn object_json(
    store: &dyn Store,
    schema: &ClassSchema,
    by_name: &HashMap<&str, &ClassSchema>,
    object: &Object,
) -> anyhow::Result<Value> {
    let mut map = object.to_json();
    let mut relations = Map::new();
    for (field, definition) in &schema.fields {
        let FieldType::Relation(target) = &definition.field_type else {
            continue;
        };
        map.remove(field);
        let Some(target_schema) = by_name.get(target.as_str()) else {
            continue;
        };
        let query = FindQuery {
            filter: Filter::RelatedTo {
                owner_class: schema.class_name.clone(),
                owner_id: object.object_id.clone(),
                key: field.clone(),
            },
            order: Vec::new(),
            skip: 0,
            limit: None,
            keys: Some(Vec::new()),
            score: None,
        };
        let members = store
            .find(target_schema, &query)
            .await
            .with_context(|| format!("reading {}.{field}", schema.class_name))?;
        if !members.is_empty() {
            let ids = members
                .into_iter()
                .map(|member| Value::String(member.object_id))
                .collect();
            relations.insert(field.clone(), Value::Array(ids));
        }
    }
    if !relations.is_empty() {
        map.insert(RELATIONS_KEY.to_owned(), Value::Object(relations));
    }
    Ok(Value::Object(map))
}

/// The create that puts an exported object back, relation members included.
fn create_write(schema: &Arc<ClassSchema>, line: &str) -> anyhow::Result<Write> {
    let Value::Object(mut map) = serde_json::from_str(line)? else {
        bail!("an object line must be a JSON object");
    };
    let mut relations = Vec::new();
    if let Some(Value::Object(members)) = map.remove(RELATIONS_KEY) {
        for (field, ids) in members {
            let Some(FieldType::Relation(target)) = schema.field_type(&field) else {
                bail!("{field} is not a relation of {}", schema.class_name);
            };
            let add = ids
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect();
            relations.push(FieldUpdate {
                field,
                path: Vec::new(),
                op: FieldOp::Relation {
                    target_class: target.clone(),
                    add,
                    remove: Vec::new(),
                },
            });
        }
    }
    let object = Object::from_json(map).map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(Write::Create {
        schema: Arc::clone(schema),
        object,
        relations,
    })
}

/// Writes the pending creates in one transaction; how many there were.
async fn flush(
    store: &dyn Store,
    writes: &mut Vec<Write>,
    class_name: &str,
) -> anyhow::Result<usize> {
    if writes.is_empty() {
        return Ok(0);
    }
    let count = writes.len();
    store
        .write(std::mem::take(writes))
        .await
        .with_context(|| format!("writing {class_name}"))?;
    Ok(count)
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::new(file))
}

fn lines(path: &Path) -> anyhow::Result<std::io::Lines<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::new(file).lines())
}
