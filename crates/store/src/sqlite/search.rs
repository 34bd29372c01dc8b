//! Full-text search on SQLite: an FTS5 index per searched field, kept by triggers.
//!
//! The index of `Class.field` is the FTS5 table `_Fts:field:Class` (the `:` keeps it out
//! of the class namespace, like the `_Join:` tables), an *external-content* table over the
//! class table: it stores only the index, reading the text back from the class's row (by
//! `rowid`) for `snippet()`. Three triggers on the class table keep it in step with every
//! insert, update of the field and delete, inside the writing transaction, so no write path
//! in the store has to know about it.
//!
//! The index is created on the first search of the field (a DDL job on the writer), and
//! filled then from the rows already stored (`rebuild`). Dropping the class or the field
//! drops it too (`drop_indexes`), so a class created again gets a fresh one.
//!
//! The same index narrows a find's `$text` condition to the rows holding each term's words
//! ([`phrase_query`]), before the exact regex test runs on them. That is only sound if every
//! row the regex matches is among them, so the tokenizer ([`TOKENIZER`]) treats as part of a
//! word only characters the regex's `\w` also counts (letters, marks, decimal and letter
//! numbers, connectors); everything else separates words, as `\b` does. Its case folding
//! covers the regex's (`σ`/`ς`, `ſ`, the Kelvin sign… fold alike), and its removal of
//! diacritics only widens what is found. Accented forms the regex folds and the tokenizer
//! does not (`ł` → `l`) are why a `$diacriticSensitive: false` search is not narrowed.
//!
//! Class tables have no `INTEGER PRIMARY KEY`, so their rowids are only stable as long as
//! nobody runs `VACUUM` on the database; the store never does. After a manual `VACUUM`,
//! `INSERT INTO "_Fts:field:Class"("_Fts:field:Class") VALUES ('rebuild')` repairs it.

use parlor_core::query::Filter;
use parlor_core::schema::ClassSchema;
use rusqlite::{Connection, params_from_iter};

use crate::SearchHit;
use crate::ddl::TableChanges;
use crate::error::StoreResult;
use crate::layout::DEFAULT_COLUMNS;
use crate::select::Projection;
use crate::sql::{Bind, SqlBuilder, quote_ident};
use crate::sqlite::dialect::SqliteTranslator as Translator;
use crate::text_search;

/// Words of context on each side of the match in a snippet (FTS5 counts tokens).
const SNIPPET_TOKENS: i64 = 24;

/// How every index splits and folds words (see the module's doc for why these categories).
const TOKENIZER: &str = "unicode61 remove_diacritics 2 categories ''L* M* Nd Nl Pc''";

/// The FTS5 table indexing `class_name.field`.
pub(crate) fn index_table(class_name: &str, field: &str) -> String {
    format!("_Fts:{field}:{class_name}")
}

/// Creates the index of `class_name.field` and its triggers, filled from the existing rows,
/// unless it exists.
pub(crate) fn ensure_index(
    conn: &Connection,
    class_name: &str,
    field: &str,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let table = index_table(class_name, field);
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?)")?
        .query_row([&table], |row| row.get(0))?;
    if exists {
        return Ok(());
    }
    let fts = quote_ident(&table);
    let class = quote_ident(class_name);
    let column = quote_ident(field);
    // `content=` takes a string; class names are identifiers, but quote it all the same.
    let content = class_name.replace('\'', "''");
    let trigger = |suffix: &str| quote_ident(&format!("{table}:{suffix}"));
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{content}', \
         content_rowid='rowid', tokenize='{TOKENIZER}');
         CREATE TRIGGER {insert} AFTER INSERT ON {class} BEGIN
           INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column});
         END;
         CREATE TRIGGER {delete} AFTER DELETE ON {class} BEGIN
           INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.rowid, old.{column});
         END;
         CREATE TRIGGER {update} AFTER UPDATE OF {column} ON {class} BEGIN
           INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.rowid, old.{column});
           INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column});
         END;
         INSERT INTO {fts}({fts}) VALUES ('rebuild');",
        insert = trigger("insert"),
        delete = trigger("delete"),
        update = trigger("update"),
    ))?;
    changes.created.push(table);
    Ok(())
}

/// Drops the indexes of `class_name` (of one field, or all of them), with their triggers.
/// Runs before the class table or the field's column is dropped: SQLite refuses to drop a
/// column that a trigger uses.
pub(crate) fn drop_indexes(
    conn: &Connection,
    class_name: &str,
    field: Option<&str>,
    changes: &mut TableChanges,
) -> StoreResult<()> {
    let suffix = format!(":{class_name}");
    let tables: Vec<String> = conn
        .prepare_cached("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_Fts:%' ESCAPE '\\'")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for table in tables {
        let Some(indexed) = table
            .strip_prefix("_Fts:")
            .and_then(|rest| rest.strip_suffix(&suffix))
        else {
            continue;
        };
        if indexed.contains(':') || field.is_some_and(|field| field != indexed) {
            continue;
        }
        for suffix in ["insert", "delete", "update"] {
            conn.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS {}",
                quote_ident(&format!("{table}:{suffix}"))
            ))?;
        }
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote_ident(&table)))?;
        changes.dropped.push(table);
    }
    Ok(())
}

/// Indexes made before `$text` used them split words on FTS5's default categories (which
/// count `²` or private-use characters as letters): they are made again, once, at start.
pub(crate) fn upgrade_indexes(conn: &Connection) -> StoreResult<()> {
    let outdated: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name LIKE '\\_Fts:%' ESCAPE '\\' AND sql LIKE 'CREATE VIRTUAL TABLE%' \
             AND sql NOT LIKE '%categories%'",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut changes = TableChanges::default();
    for table in outdated {
        let Some((field, class_name)) = table
            .strip_prefix("_Fts:")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        tracing::info!(class = class_name, field, "rebuilding a full-text index");
        drop_indexes(conn, class_name, Some(field), &mut changes)?;
        ensure_index(conn, class_name, field, &mut changes)?;
    }
    Ok(())
}

/// The FTS5 query a row must match to possibly meet the `$text` `terms`: each term (with
/// at least one letter or digit) as a quoted phrase, all of them required. `None` when no
/// term has one (an empty phrase would match nothing).
pub(crate) fn phrase_query(terms: &[String]) -> Option<String> {
    let phrases: Vec<String> = terms
        .iter()
        .filter(|term| {
            term.chars()
                .any(|c| c.is_alphabetic() || c.is_ascii_digit())
        })
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" AND "))
}

/// The FTS5 query for `query`: any of its words, each a quoted string (FTS5's literal
/// syntax: `"` doubled inside), so that nothing in it is an operator. `None` when it has no
/// words.
pub(crate) fn match_expression(query: &str) -> Option<String> {
    let terms = text_search::terms(query);
    if terms.is_empty() {
        return None;
    }
    let quoted: Vec<String> = terms
        .iter()
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect();
    Some(quoted.join(" OR "))
}

/// The statement of a search: the projection's columns plus the snippet, from the index
/// joined to the class table, filtered by `filter`, ordered by BM25 (lower is better).
pub(crate) fn statement(
    schema: &ClassSchema,
    field: &str,
    filter: &Filter,
    expression: String,
    limit: usize,
    table_exists: &dyn Fn(&str) -> bool,
) -> (SqlBuilder, Projection) {
    let projection = Projection::new(schema, None);
    let index = index_table(&schema.class_name, field);
    let mut out = SqlBuilder::new();
    let alias = out.alias("t");
    out.push("SELECT ");
    let field_columns = projection.columns.iter().map(|(name, _)| name.as_str());
    for column in DEFAULT_COLUMNS.into_iter().chain(field_columns) {
        out.column(&alias, column);
        out.push(", ");
    }
    // FTS5's auxiliary functions take the table's hidden column of the same name.
    let hidden = format!("fts.{}", quote_ident(&index));
    out.push(&format!(
        "snippet({hidden}, 0, '', '', '…', {SNIPPET_TOKENS}) FROM "
    ));
    out.ident(&index);
    out.push(" AS fts JOIN ");
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&alias);
    out.push(" ON ");
    out.column(&alias, "rowid");
    out.push(" = fts.rowid WHERE ");
    out.push(&hidden);
    out.push(" MATCH ");
    out.param(Bind::Text(expression));
    out.push(" AND ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(filter, &schema.class_name, &alias);
    let mut out = translator.out;
    out.push(&format!(" ORDER BY bm25({hidden}), "));
    out.column(&alias, "createdAt");
    out.push(" DESC LIMIT ");
    out.param(Bind::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    (out, projection)
}

/// Runs a search statement and decodes its rows.
pub(crate) fn run(
    conn: &Connection,
    out: &SqlBuilder,
    projection: &Projection,
) -> StoreResult<Vec<SearchHit>> {
    let snippet_column = DEFAULT_COLUMNS.len() + projection.columns.len();
    let mut statement = conn.prepare_cached(&out.sql)?;
    let mut rows = statement.query(params_from_iter(&out.binds))?;
    let mut hits = Vec::new();
    while let Some(row) = rows.next()? {
        let snippet: Option<String> = row.get(snippet_column)?;
        hits.push(SearchHit {
            object: projection.decode(row)?,
            snippet: snippet.unwrap_or_default(),
        });
    }
    Ok(hits)
}
