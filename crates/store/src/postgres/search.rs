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
use crate::select::{DecodeRow, Projection};
use crate::sql::quote_ident;
use crate::text_search;

/// The longest identifier PostgreSQL keeps (longer ones are truncated).
const MAX_IDENTIFIER: usize = 63;

/// How `ts_headline` cuts the excerpt: plain text, a window of words around the match (as
/// `ts_headline` reads them; quoted as an SQL literal where used).
const HEADLINE_OPTIONS: &str = "StartSel='', StopSel='', MaxWords=35, MinWords=15, ShortWord=2";

/// The name of the GIN index on `class_name.field`; long names are shortened with a hash
/// so that two fields never share one.
fn index_name(class_name: &str, field: &str) -> String {
    let name = format!("{class_name}_{field}_fts");
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
    format!("{prefix}_{hash:016x}_fts")
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
    let name = index_name(class_name, field);
    let exists: bool = sqlx_core::query_scalar::query_scalar(
        "SELECT to_regclass(quote_ident($1::text)) IS NOT NULL",
    )
    .bind(&name)
    .fetch_one(pool)
    .await?;
    if exists {
        return Ok(());
    }
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING GIN ({})",
        quote_ident(&name),
        quote_ident(class_name),
        document(None, field)
    );
    match raw_sql(AssertSqlSafe(sql)).execute(pool).await {
        Ok(_) => Ok(()),
        // 23505/42P07: another connection created it between our check and our create.
        Err(sqlx_core::Error::Database(error))
            if matches!(error.code().as_deref(), Some("23505") | Some("42P07")) =>
        {
            Ok(())
        }
        Err(error) => Err(error.into()),
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
        assert_eq!(index_name("Message", "content"), "Message_content_fts");
        let long = "C".repeat(80);
        let a = index_name(&long, "a");
        let b = index_name(&long, "b");
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
