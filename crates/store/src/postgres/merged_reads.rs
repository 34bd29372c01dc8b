//! Reads of one object by id that arrive together, sent as one statement.
//!
//! A get by id is one small statement, and on PostgreSQL most of its cost is the statement
//! itself, not the row: PostgreSQL's work for it and a round trip over the socket on both
//! sides. So the gets waiting for the database go together, as `merged_creates` does for
//! creates: the first one starts a drain task at once (a get alone waits for nothing), and
//! those that arrive while a statement runs go in the next one ([`Gathering`]).
//!
//! Gets of one class and projection share a statement: the ids are joined to the table
//! `WITH ORDINALITY`, so each asked position comes back as its own row (an id asked twice,
//! twice). Each caller's rows are then checked against the rest of its own filter, which
//! [`PointRead::of`] only accepts when it is the ACL's read check (or nothing, for the
//! master key): `_rperm IS NULL OR _rperm && group`, the very condition the SQL of
//! `Filter::Readable` states, evaluated here on the row's `_rperm`. Any other filter (CLP
//! pointer permissions, conditions beside the id) takes the statement of its own.

use std::sync::Arc;

use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use sqlx_postgres::PgRow;
use tokio::sync::oneshot;

use crate::error::{StoreError, StoreResult};
use crate::gathering::Gathering;
use crate::postgres::Inner;
use crate::postgres::rows::{PgBind, PgSql};
use crate::select::{Projection, select_from_with};
use crate::selected::{READERS, SelectedRow};
use crate::sql::SqlBuilder;

/// Statements sent at the same time. One: the next statement's gets gather while the last
/// one runs (a point read by primary key, well under a millisecond). Two or four made
/// statements smaller and each get dearer, in the server and in PostgreSQL (bench/README,
/// "eighth sitting").
const MAX_RUNNING: usize = 1;

/// The most gets one statement carries.
const MAX_GETS: usize = 128;

/// A find that asks for one object by id, readable by `readers` (`None`: by anyone).
#[derive(Debug, PartialEq)]
pub(crate) struct PointRead {
    pub(crate) object_id: String,
    pub(crate) readers: Option<Vec<String>>,
}

impl PointRead {
    /// `query` as a point read, when it is one: the filter is `objectId = <text>`, alone or
    /// with the ACL's read check, and nothing skips, scores or joins.
    pub(crate) fn of(query: &FindQuery) -> Option<PointRead> {
        if query.skip != 0 || query.score.is_some() || query.limit == Some(0) {
            return None;
        }
        let (id, readers) = match &query.filter {
            condition @ Filter::Cond { .. } => (condition, None),
            Filter::And(items) => match items.as_slice() {
                [condition, Filter::Readable(group)] | [Filter::Readable(group), condition] => {
                    (condition, Some(group.clone()))
                }
                _ => return None,
            },
            _ => return None,
        };
        let Filter::Cond {
            field: FieldRef { field, path, .. },
            cond: Cond::Eq(Operand::String(object_id)),
        } = id
        else {
            return None;
        };
        // PostgreSQL refuses text with NUL, and would refuse the whole statement for it: such
        // an id takes its own statement (and its own error), never its neighbours'.
        (field == "objectId" && path.is_empty() && !object_id.contains('\0')).then(|| PointRead {
            object_id: object_id.clone(),
            readers,
        })
    }

    /// Whether the row passes the read check: `_rperm IS NULL OR _rperm && readers`.
    fn admits(&self, row: &PgRow) -> StoreResult<bool> {
        let Some(readers) = &self.readers else {
            return Ok(true);
        };
        Ok(row
            .names(READERS)?
            .is_none_or(|names| names.iter().any(|name| readers.iter().any(|r| r == name))))
    }
}

/// The gets waiting, and the drains sending them.
pub(crate) struct ReadMerger(Gathering<Pending>);

impl Default for ReadMerger {
    fn default() -> ReadMerger {
        ReadMerger(Gathering::new(MAX_RUNNING))
    }
}

/// A get waiting: its table, what it selects, and where its row goes.
struct Pending {
    class_name: String,
    projection: Arc<Projection>,
    read: PointRead,
    reply: oneshot::Sender<StoreResult<Option<PgRow>>>,
}

impl Inner {
    /// The row `read` asks for in `class_name`'s table (whose existence the caller checked),
    /// selected as `projection`, read together with the gets waiting beside it. `None`: no
    /// such object, or the caller may not read it.
    pub(crate) async fn read_merged(
        self: &Arc<Self>,
        class_name: &str,
        projection: Arc<Projection>,
        read: PointRead,
    ) -> StoreResult<Option<PgRow>> {
        let (reply, answer) = oneshot::channel();
        let start = self.read_merger.0.push(Pending {
            class_name: class_name.to_owned(),
            projection,
            read,
            reply,
        });
        if start {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.drain_reads().await });
        }
        answer
            .await
            .map_err(|_| StoreError::database("a merged read was dropped"))?
    }

    /// Sends what is waiting, a statement per table and projection, until nothing is.
    async fn drain_reads(self: Arc<Self>) {
        while let Some(batch) = self.read_merger.0.take(MAX_GETS) {
            for group in groups(batch) {
                self.send_reads(group).await;
            }
        }
    }

    async fn send_reads(&self, group: Vec<Pending>) {
        let Some(first) = group.first() else {
            return;
        };
        let statement = statement(&first.class_name, &first.projection, &group);
        let rows = match self.fetch_rows(&statement).await {
            Ok(rows) => rows,
            Err(error) => {
                let message = error.to_string();
                for pending in group {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::database(message.clone())));
                }
                return;
            }
        };
        let position = group
            .first()
            .map_or(0, |first| first.projection.column_names().count());
        let mut answers: Vec<Option<PgRow>> = group.iter().map(|_| None).collect();
        for row in rows {
            let asked = sqlx_core::row::Row::try_get::<i64, _>(&row, position)
                .ok()
                .and_then(|ordinal| usize::try_from(ordinal - 1).ok());
            if let Some(slot) = asked.and_then(|index| answers.get_mut(index)) {
                *slot = Some(row);
            }
        }
        for (pending, row) in group.into_iter().zip(answers) {
            let answer = match row {
                Some(row) => pending
                    .read
                    .admits(&row)
                    .map(|admitted| admitted.then_some(row)),
                None => Ok(None),
            };
            let _ = pending.reply.send(answer);
        }
    }
}

/// `batch` cut into groups of one table and one select list, each in arrival order.
fn groups(batch: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for pending in batch {
        let same = groups.iter_mut().find(|group| {
            group.first().is_some_and(|first| {
                first.class_name == pending.class_name
                    && first.projection.columns == pending.projection.columns
            })
        });
        match same {
            Some(group) => group.push(pending),
            None => groups.push(vec![pending]),
        }
    }
    groups
}

/// `SELECT <projection>, r.n FROM "class" AS t0 JOIN unnest($1) WITH ORDINALITY AS r(id, n)
/// ON t0."objectId" = r.id`: one row per asked position (1-based `n`), when the object exists.
fn statement(class_name: &str, projection: &Projection, group: &[Pending]) -> PgSql {
    let mut out: SqlBuilder<PgBind> = SqlBuilder::new();
    let alias = select_from_with(&mut out, class_name, projection, |out, _| {
        out.push(", r.n");
    });
    out.push(" JOIN unnest(");
    let ids = group
        .iter()
        .map(|pending| pending.read.object_id.clone())
        .collect();
    out.param(PgBind::TextArray(ids));
    out.push("::text[]) WITH ORDINALITY AS r(id, n) ON ");
    out.column(&alias, "objectId");
    out.push(" = r.id");
    out
}

#[cfg(test)]
mod tests {
    use parlor_core::schema::FieldType;

    use super::*;

    fn by_id(field: &str, id: &str) -> Filter {
        Filter::Cond {
            field: FieldRef {
                field: field.to_owned(),
                path: Vec::new(),
                field_type: Some(FieldType::String),
            },
            cond: Cond::Eq(Operand::String(id.to_owned())),
        }
    }

    fn query(filter: Filter) -> FindQuery {
        FindQuery {
            limit: Some(1),
            ..FindQuery::filter(filter)
        }
    }

    #[test]
    fn only_an_id_with_at_most_the_read_check_is_a_point_read() {
        let group = vec!["*".to_owned(), "u1".to_owned()];
        let readable = Filter::Readable(group.clone());
        assert_eq!(
            PointRead::of(&query(by_id("objectId", "a"))),
            Some(PointRead {
                object_id: "a".into(),
                readers: None
            })
        );
        assert_eq!(
            PointRead::of(&query(by_id("objectId", "a").and(readable.clone()))),
            Some(PointRead {
                object_id: "a".into(),
                readers: Some(group.clone())
            })
        );
        let refused = [
            // Another field, or a condition beside the read check (a CLP pointer permission).
            query(by_id("owner", "a")),
            // An id PostgreSQL cannot take would fail every get of the statement.
            query(by_id("objectId", "a\0b")),
            query(
                by_id("objectId", "a")
                    .and(by_id("owner", "u1"))
                    .and(readable.clone()),
            ),
            query(by_id("objectId", "a").and(Filter::Writable(group.clone()))),
            query(Filter::Readable(group)),
            FindQuery {
                skip: 1,
                ..query(by_id("objectId", "a"))
            },
            FindQuery {
                limit: Some(0),
                ..query(by_id("objectId", "a"))
            },
        ];
        for query in refused {
            assert_eq!(PointRead::of(&query), None, "{:?}", query.filter);
        }
    }
}
