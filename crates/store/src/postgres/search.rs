//! Full-text search on PostgreSQL: `to_tsvector` over the field, with a GIN expression index.
//!
//! The `simple` configuration (lower-casing, no stemming, no stop words) is used on both
//! sides, so a search finds the words as written in any language, like SQLite's
//! `unicode61` tokenizer. The query is the user's words joined by `or` and handed to
//! `websearch_to_tsquery`, which never fails on syntax; ranking is `ts_rank`, the excerpt
//! `ts_headline`.
//!
//! The index (`<class>_<field>_fts`, a GIN index on the same expression the search uses,
//! so the planner can use it) is created on the first search of a field that lacks it.
//! Dropping the field or the class drops it with the column or the table.
//!
//! A find's `$text` condition uses another index, a trigram one ([`ensure_trigram_index`]).

use std::sync::atomic::{AtomicBool, Ordering};

use parlor_core::query::Filter;
use parlor_core::schema::ClassSchema;
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgPool;

use crate::SearchHit;
use crate::error::StoreResult;
use crate::layout::DEFAULT_COLUMNS;
use crate::postgres::dialect::PgTranslator as Translator;
use crate::postgres::rows::{PgBind, PgSql};
use crate::select::Projection;
use crate::sql::quote_ident;
use crate::text_search;

/// The longest identifier PostgreSQL keeps (longer ones are truncated).
const MAX_IDENTIFIER: usize = 63;

/// How `ts_headline` cuts the excerpt: plain text, a window of words around the match (as
/// `ts_headline` reads them; quoted as an SQL literal where used).
const HEADLINE_OPTIONS: &str = "StartSel='', StopSel='', MaxWords=35, MinWords=15, ShortWord=2";

/// The name of the GIN index on `class_name.field` (`kind`: `fts` or `trgm`); long names
/// are shortened with a hash so that two fields never share one.
fn index_name(class_name: &str, field: &str, kind: &str) -> String {
    let name = format!("{class_name}_{field}_{kind}");
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    // FNV-1a: stable across runs and versions, unlike `DefaultHasher`.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut prefix: String = name.chars().take(40).collect();
    while prefix.len() > 40 {
        prefix.pop();
    }
    format!("{prefix}_{hash:016x}_{kind}")
}

/// The indexed expression; the search repeats it verbatim so that the index applies.
fn document(alias: Option<&str>, field: &str) -> String {
    let column = match alias {
        Some(alias) => format!("{alias}.{}", quote_ident(field)),
        None => quote_ident(field),
    };
    format!("to_tsvector('simple'::regconfig, coalesce({column}, ''))")
}

/// Creates the field's GIN index unless it exists. Two instances racing to create it both
/// succeed (`IF NOT EXISTS`, and a duplicate-name error from the loser is ignored).
pub(crate) async fn ensure_index(pool: &PgPool, class_name: &str, field: &str) -> StoreResult<()> {
    let name = index_name(class_name, field, "fts");
    create_gin_index(pool, &name, class_name, &document(None, field)).await
}

/// A find's `$text` condition is a regex per term (the exact test both backends share); a
/// trigram GIN index on the column (`pg_trgm`) lets PostgreSQL run it on the rows whose
/// trigrams fit, instead of on every row. Created on the first `$text` of a field that
/// lacks it. `pg_trgm` ships with PostgreSQL but must be created in the database: where
/// this role may not, `$text` still answers, by a scan (`unavailable` remembers it, so
/// later searches do not try again).
pub(crate) async fn ensure_trigram_index(
    pool: &PgPool,
    class_name: &str,
    field: &str,
    unavailable: &AtomicBool,
) -> StoreResult<()> {
    if unavailable.load(Ordering::Relaxed) {
        return Ok(());
    }
    let name = index_name(class_name, field, "trgm");
    // Checked first: the extension's `CREATE` takes a lock even when it exists.
    if index_exists(pool, &name).await? {
        return Ok(());
    }
    let created = async {
        // In `public`, not in this instance's schema: the extension is one per database, and
        // made inside a schema it would vanish with it (and be out of the other instances'
        // search path). Where it already lives elsewhere, its operator class is named there.
        raw_sql(AssertSqlSafe(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public",
        ))
        .execute(pool)
        .await
        .map(drop)
        .or_else(ignore_race)?;
        let home: String = sqlx_core::query_scalar::query_scalar(
            "SELECT n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'",
        )
        .fetch_one(pool)
        .await?;
        let column = format!("{} {}.gin_trgm_ops", quote_ident(field), quote_ident(&home));
        create_gin_index(pool, &name, class_name, &column).await
    };
    if let Err(error) = created.await {
        tracing::warn!(%error, "no trigram index for $text (pg_trgm unavailable): searches scan");
        unavailable.store(true, Ordering::Relaxed);
    }
    Ok(())
}

async fn index_exists(pool: &PgPool, name: &str) -> StoreResult<bool> {
    Ok(sqlx_core::query_scalar::query_scalar(
        "SELECT to_regclass(quote_ident($1::text)) IS NOT NULL",
    )
    .bind(name)
    .fetch_one(pool)
    .await?)
}

/// Creates the GIN index `name` on `expression` unless it exists. Two instances racing to
/// create it both succeed.
async fn create_gin_index(
    pool: &PgPool,
    name: &str,
    class_name: &str,
    expression: &str,
) -> StoreResult<()> {
    if index_exists(pool, name).await? {
        return Ok(());
    }
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING GIN ({expression})",
        quote_ident(name),
        quote_ident(class_name),
    );
    raw_sql(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(drop)
        .or_else(ignore_race)?;
    Ok(())
}

/// 23505/42P07: another connection created the same object between our check and ours.
fn ignore_race(error: sqlx_core::Error) -> Result<(), sqlx_core::Error> {
    match &error {
        sqlx_core::Error::Database(database)
            if matches!(database.code().as_deref(), Some("23505") | Some("42P07")) =>
        {
            Ok(())
        }
        _ => Err(error),
    }
}

/// The `websearch_to_tsquery` text for `query`: its words joined by `or`. `None` when it
/// has no words.
pub(crate) fn websearch_text(query: &str) -> Option<String> {
    let terms = text_search::terms(query);
    // `or` itself is websearch syntax; as a word it is too common to be worth finding.
    let terms: Vec<String> = terms.into_iter().filter(|term| term != "or").collect();
    (!terms.is_empty()).then(|| terms.join(" or "))
}

/// The statement of a search: the projection's columns plus the headline, ordered by rank.
pub(crate) fn statement(
    schema: &ClassSchema,
    field: &str,
    filter: &Filter,
    text: String,
    limit: usize,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<(PgSql, Projection)> {
    let projection = Projection::new(schema, None);
    let mut out = PgSql::new();
    let alias = out.alias("t");
    let document = document(Some(&alias), field);
    out.push("SELECT ");
    let field_columns = projection.columns.iter().map(|(name, _)| name.as_str());
    for column in DEFAULT_COLUMNS.into_iter().chain(field_columns) {
        out.column(&alias, column);
        out.push(", ");
    }
    out.push("ts_headline('simple'::regconfig, coalesce(");
    out.column(&alias, field);
    // The options go inside an SQL string literal, where each `'` must be doubled: written
    // as they are, `StartSel=''` would read as `StartSel='` and swallow what follows.
    let options = HEADLINE_OPTIONS.replace('\'', "''");
    out.push(&format!(", ''), q.q, '{options}') FROM "));
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&alias);
    out.push(" CROSS JOIN (SELECT websearch_to_tsquery('simple'::regconfig, ");
    out.param(PgBind::Text(text));
    out.push(") AS q) AS q WHERE ");
    out.push(&document);
    out.push(" @@ q.q AND ");
    let mut translator = Translator::new(out, table_exists);
    translator.filter(filter, &schema.class_name, &alias);
    let mut out = translator.finish()?;
    out.push(" ORDER BY ts_rank(");
    out.push(&document);
    out.push(", q.q) DESC, ");
    out.column(&alias, "createdAt");
    out.push(" DESC LIMIT ");
    out.param(PgBind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    Ok((out, projection))
}

/// Runs a search statement and decodes its rows.
pub(crate) async fn run(
    pool: &PgPool,
    out: &PgSql,
    projection: &Projection,
) -> StoreResult<Vec<SearchHit>> {
    let snippet_column = DEFAULT_COLUMNS.len() + projection.columns.len();
    let rows = super::bound(out).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let snippet: Option<String> = sqlx_core::row::Row::try_get(row, snippet_column)?;
            Ok(SearchHit {
                object: projection.decode(row)?,
                snippet: snippet.unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long index names stay within PostgreSQL's limit and stay distinct.
    #[test]
    fn index_names_fit() {
        assert_eq!(
            index_name("Message", "content", "fts"),
            "Message_content_fts"
        );
        let long = "C".repeat(80);
        let a = index_name(&long, "a", "fts");
        let b = index_name(&long, "b", "fts");
        assert!(a.len() <= MAX_IDENTIFIER && b.len() <= MAX_IDENTIFIER);
        assert_ne!(a, b);
    }

    /// Operators in the user's query never reach `websearch_to_tsquery`.
    #[test]
    fn queries_are_words() {
        assert_eq!(
            websearch_text("a -b OR \"c"),
            Some("a or b or c".to_owned())
        );
        assert_eq!(websearch_text("\" - * ("), None);
    }
}
