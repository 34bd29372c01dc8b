//! Aggregation pipelines and `distinct`, translated to SQL once for every backend.
//!
//! Each stage is one level of nested `SELECT`: a level reads the previous one as a subquery
//! (`FROM (…) AS sN`) and outputs named columns. The first level reads the class table under
//! the pipeline's filter (a Parse `where`, translated by [`Translator`]); a later `$match`
//! is a `WHERE` on its level, through the same translator while the rows still have the
//! class's fields, else by [`simple_match`] on the computed ones. `$sort` is carried up
//! through the levels that keep row order (a subquery's order is not kept by SQL), so the
//! outermost statement sorts as the pipeline asked.
//!
//! What is stored how is the layout's: every output column keeps a [`Kind`], and rows are
//! turned into Parse JSON by kind ([`to_parse_json`]) — a Date field becomes `{"__type":
//! "Date"}`, a pointer a `{"__type":"Pointer"}` (but a group key of pointers the bare id, as
//! Parse Server answers), numbers integers when integral.
//!
//! **Invariant:** as for finds, everything runs in the database; Rust only shapes values.

use parlor_core::query::Filter;
use parlor_core::query::pipeline::{
    Accumulator, Aggregate, DatePart, Expr, GroupId, Match, Projected, Projection, Stage,
    api_field_name,
};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::{Error, value};
use serde_json::{Map, Value};

use crate::error::{StoreError, StoreResult};
use crate::layout::{NULLS_COLUMN, field_columns, is_json_column};
use crate::sql::{BindValue, SqlBuilder, quote_ident};
use crate::translate::{Dialect, Translator};

/// A NULL of the [`Kind::Number`] it stands for (a field the rows lack): typed, so that
/// PostgreSQL compares it with numbers in a later `$match` (an untyped NULL in a subquery
/// becomes `text`). SQLite reads the same cast.
const NULL_NUMBER: &str = "CAST(NULL AS double precision)";

/// What an output column holds, as the database stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A column of the class, stored as its type is.
    Field(FieldType),
    /// A number the statement computed (sums, counts, date parts).
    Number,
    /// JSON (an item of an unwound array): JSON text on SQLite, `jsonb` on PostgreSQL.
    Json,
    /// The bare id of a pointer (a group key).
    Id,
    /// A column the statement needs but no object shows: `_nulls` (carried while the rows
    /// have the class's fields), a group's row count.
    Hidden,
}

impl Kind {
    fn is_number(&self) -> bool {
        matches!(self, Kind::Number | Kind::Field(FieldType::Number))
    }
}

/// An output column: its name and kind.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: Kind,
}

/// What a backend writes differently for pipelines.
pub(crate) trait AggregateDialect: Dialect {
    /// The integer `part` of the Date column `expr` (ISO text), in UTC; no bound values.
    fn date_part(part: DatePart, expr: &str) -> String;
    /// Appends the join of each row of `alias` with the items of its Array column `column`
    /// (` JOIN …`, or a ` LEFT JOIN …` keeping rows without items when `keep_empty`), the
    /// items aliased `items`.
    fn join_items(
        out: &mut SqlBuilder<Self::Bind>,
        alias: &str,
        column: &str,
        keep_empty: bool,
        items: &str,
    );
    /// The SQL of an item of [`AggregateDialect::join_items`] (as [`Kind::Json`], NULL
    /// for a row without items) and of its index from 0; no bound values.
    fn item_exprs(items: &str) -> (String, String);
    /// Appends the JSON value at `path` inside the Object column `expr`, as [`Kind::Json`].
    fn json_at(out: &mut SqlBuilder<Self::Bind>, expr: &str, path: &[String]);
    /// Whether MIN and MAX apply to a column of this kind (PostgreSQL has them neither on
    /// `jsonb` nor on `boolean`).
    fn orders_kind(kind: &Kind) -> bool;
    /// Reads the JSON value a [`Kind::Json`] column holds once it came back as JSON.
    fn json_column(value: Value) -> Value;
}

/// The refusal of a stage's use this translation does not support.
fn unsupported(what: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(Error::invalid_query(format!("{what} is not supported")))
}

/// One level of the statement.
struct Level {
    /// The columns of the level below (the rows this level reads, as `sN`).
    input: Vec<Column>,
    /// `(expression, output name)`; expressions read the level below as `sN`.
    select: Vec<(String, String)>,
    /// Unwinding: the Array column whose items are joined, and whether rows without
    /// items stay.
    unwind: Option<(String, bool)>,
    filter: Option<Match>,
    group_by: Vec<String>,
    /// Aggregating without GROUP BY: no row at all when there is no input row (as MongoDB).
    only_if_rows: bool,
    order: Vec<(String, bool)>,
    limit: Option<u64>,
    skip: u64,
    /// The output columns of this level.
    columns: Vec<Column>,
}

impl Level {
    fn passing(columns: &[Column], alias: &str) -> Level {
        Level {
            input: columns.to_vec(),
            select: columns
                .iter()
                .map(|column| {
                    (
                        format!("{alias}.{}", quote_ident(&column.name)),
                        column.name.clone(),
                    )
                })
                .collect(),
            unwind: None,
            filter: None,
            group_by: Vec::new(),
            only_if_rows: false,
            order: Vec::new(),
            limit: None,
            skip: 0,
            columns: columns.to_vec(),
        }
    }
}

/// The statement of a pipeline and the columns of its rows.
pub(crate) struct Statement<B> {
    pub(crate) out: SqlBuilder<B>,
    pub(crate) columns: Vec<Column>,
}

/// The columns of the class's rows, as the first level reads them.
fn class_columns(schema: &ClassSchema) -> Vec<Column> {
    let mut columns = vec![
        Column {
            name: "objectId".into(),
            kind: Kind::Field(FieldType::String),
        },
        Column {
            name: "createdAt".into(),
            kind: Kind::Field(FieldType::Date),
        },
        Column {
            name: "updatedAt".into(),
            kind: Kind::Field(FieldType::Date),
        },
    ];
    columns.extend(field_columns(schema).map(|(name, field_type)| Column {
        name: name.to_owned(),
        kind: Kind::Field(field_type.clone()),
    }));
    columns.push(Column {
        name: NULLS_COLUMN.into(),
        kind: Kind::Hidden,
    });
    columns
}

fn find<'c>(columns: &'c [Column], name: &str) -> Option<&'c Column> {
    columns.iter().find(|column| column.name == name)
}

/// The statement of `pipeline` over the class of `schema`.
pub(crate) fn statement<D: AggregateDialect>(
    schema: &ClassSchema,
    pipeline: &Aggregate,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<Statement<D::Bind>> {
    let mut levels: Vec<Level> = Vec::new();
    let mut columns = class_columns(schema);
    // The order the rows are in, by output column, carried up through the levels.
    let mut order: Vec<(String, bool)> = Vec::new();
    for (index, stage) in pipeline.stages.iter().enumerate() {
        let alias = format!("s{}", index + 1);
        let mut level = Level::passing(&columns, &alias);
        match stage {
            Stage::Match(matching) => level.filter = Some(matching.clone()),
            Stage::Sort(keys) => {
                order = keys
                    .iter()
                    .filter(|(name, _)| find(&columns, name).is_some())
                    .cloned()
                    .collect();
            }
            Stage::Limit(limit) => level.limit = Some(*limit),
            Stage::Skip(skip) => level.skip = *skip,
            Stage::Project(projection) => {
                project::<D>(&mut level, &columns, projection, &alias);
                order.retain(|(name, _)| find(&level.columns, name).is_some());
            }
            Stage::Group { id, fields } => {
                group::<D>(&mut level, &columns, id, fields, &alias)?;
                order.clear();
            }
            Stage::Count(name) => {
                level.select = vec![("COUNT(*)".into(), name.clone())];
                level.columns = vec![Column {
                    name: name.clone(),
                    kind: Kind::Number,
                }];
                level.only_if_rows = true;
                order.clear();
            }
            Stage::Unwind {
                field,
                preserve_empty,
                index_field,
            } => {
                let Some(column) = find(&columns, field) else {
                    // MongoDB: no object has the field, so nothing is output.
                    level.filter = Some(Match::Where(Filter::False));
                    levels.push(level);
                    continue;
                };
                if column.kind != Kind::Field(FieldType::Array) {
                    return Err(unsupported(format!(
                        "$unwind of the non-Array field {field}"
                    )));
                }
                let (item, position) = D::item_exprs(&format!("{alias}i"));
                level.select.retain(|(_, name)| name != field);
                level.columns.retain(|column| &column.name != field);
                level.select.push((item, field.clone()));
                level.columns.push(Column {
                    name: field.clone(),
                    kind: Kind::Json,
                });
                if let Some(index_field) = index_field {
                    level.select.retain(|(_, name)| name != index_field);
                    level.columns.retain(|column| &column.name != index_field);
                    level.select.push((position, index_field.clone()));
                    level.columns.push(Column {
                        name: index_field.clone(),
                        kind: Kind::Number,
                    });
                }
                level.unwind = Some((field.clone(), *preserve_empty));
                order.retain(|(name, _)| find(&level.columns, name).is_some());
            }
        }
        level.order = order.clone();
        columns = level.columns.clone();
        levels.push(level);
    }
    let mut out = SqlBuilder::new();
    emit::<D>(&mut out, schema, pipeline, &levels, table_exists)?;
    // Every selected column, in select order (`_nulls` included: rows are read by
    // position); `shape_row` leaves `_nulls` out of the objects.
    Ok(Statement { out, columns })
}

fn project<D: AggregateDialect>(
    level: &mut Level,
    columns: &[Column],
    projection: &Projection,
    alias: &str,
) {
    let source = |name: &str| format!("{alias}.{}", quote_ident(name));
    match projection {
        Projection::Exclude(names) => {
            level.select.retain(|(_, name)| !names.contains(name));
            level.columns.retain(|column| !names.contains(&column.name));
        }
        Projection::Include { fields, keep_id } => {
            let mut select = Vec::new();
            let mut output = Vec::new();
            let mut add = |from: &str, to: &str| {
                if let Some(column) = find(columns, from)
                    && !output.iter().any(|c: &Column| c.name == to)
                {
                    select.push((source(from), to.to_owned()));
                    output.push(Column {
                        name: to.to_owned(),
                        kind: column.kind.clone(),
                    });
                }
            };
            if *keep_id {
                add("objectId", "objectId");
            }
            for (name, projected) in fields {
                match projected {
                    Projected::Keep => add(name, name),
                    Projected::Rename(from) => add(from, name),
                }
            }
            // While the rows keep the class's fields, a later `$match` may test a dropped
            // one for existence through `_nulls`.
            if fields.iter().all(|(_, p)| *p == Projected::Keep) {
                add(NULLS_COLUMN, NULLS_COLUMN);
            }
            level.select = select;
            level.columns = output;
        }
    }
}

/// The SQL of an expression over the level below, and its kind.
fn expression<D: AggregateDialect>(columns: &[Column], expr: &Expr, alias: &str) -> (String, Kind) {
    let (name, part) = match expr {
        Expr::Field(name) => (name, None),
        Expr::DatePart(part, name) => (name, Some(*part)),
    };
    let Some(column) = find(columns, name) else {
        return (NULL_NUMBER.into(), Kind::Number);
    };
    let sql = format!("{alias}.{}", quote_ident(&column.name));
    match part {
        None => (sql, column.kind.clone()),
        Some(part) if column.kind == Kind::Field(FieldType::Date) => {
            (D::date_part(part, &sql), Kind::Number)
        }
        Some(_) => (NULL_NUMBER.into(), Kind::Number),
    }
}

/// A literal for a JSON number constant (from the client, so written from the parsed
/// `f64`, never from its text).
fn number_literal(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        format!("{}", number as i64)
    } else {
        format!("{number:?}")
    }
}

fn group<D: AggregateDialect>(
    level: &mut Level,
    columns: &[Column],
    id: &GroupId,
    fields: &[(String, Accumulator)],
    alias: &str,
) -> StoreResult<()> {
    let mut select = Vec::new();
    let mut output = Vec::new();
    let mut group_by = Vec::new();
    let key_kind = |kind: Kind| match kind {
        Kind::Field(FieldType::Pointer(_)) => Kind::Id,
        other => other,
    };
    match id {
        GroupId::All => {
            select.push((NULL_NUMBER.into(), "objectId".into()));
            output.push(Column {
                name: "objectId".into(),
                kind: Kind::Number,
            });
            level.only_if_rows = true;
        }
        GroupId::Key(expr) => {
            let (sql, kind) = expression::<D>(columns, expr, alias);
            if sql != NULL_NUMBER {
                group_by.push(sql.clone());
            }
            select.push((sql, "objectId".into()));
            output.push(Column {
                name: "objectId".into(),
                kind: key_kind(kind),
            });
        }
        GroupId::Keys(keys) => {
            for (name, expr) in keys {
                let (sql, kind) = expression::<D>(columns, expr, alias);
                let output_name = format!("objectId.{name}");
                // A constant key (a field the rows lack) groups nothing apart, and
                // PostgreSQL refuses a constant in GROUP BY.
                if sql != NULL_NUMBER {
                    group_by.push(sql.clone());
                }
                select.push((sql, output_name.clone()));
                output.push(Column {
                    name: output_name,
                    kind: key_kind(kind),
                });
            }
        }
    }
    for (name, accumulator) in fields {
        let column = |field: &str| find(columns, field);
        let source = |field: &str| format!("{alias}.{}", quote_ident(field));
        let (sql, kind) = match accumulator {
            Accumulator::Count => ("COUNT(*)".to_owned(), Kind::Number),
            Accumulator::SumConstant(number) => (
                format!("(COUNT(*) * {})", number_literal(*number)),
                Kind::Number,
            ),
            Accumulator::Sum(field) => match column(field) {
                Some(c) if c.kind.is_number() => {
                    (format!("COALESCE(SUM({}), 0)", source(field)), Kind::Number)
                }
                _ => ("0".to_owned(), Kind::Number),
            },
            Accumulator::Avg(field) => match column(field) {
                Some(c) if c.kind.is_number() => (format!("AVG({})", source(field)), Kind::Number),
                _ => (NULL_NUMBER.to_owned(), Kind::Number),
            },
            Accumulator::Min(field) | Accumulator::Max(field) => {
                let function = if matches!(accumulator, Accumulator::Min(_)) {
                    "MIN"
                } else {
                    "MAX"
                };
                match column(field) {
                    Some(c) if D::orders_kind(&c.kind) => (
                        format!("{function}({})", source(field)),
                        key_kind(c.kind.clone()),
                    ),
                    Some(_) => {
                        return Err(unsupported(format!(
                            "${} of the field {field} (of this type)",
                            function.to_lowercase()
                        )));
                    }
                    None => (NULL_NUMBER.to_owned(), Kind::Number),
                }
            }
        };
        select.push((sql, name.clone()));
        output.push(Column {
            name: name.clone(),
            kind,
        });
    }
    level.only_if_rows = group_by.is_empty();
    if level.only_if_rows {
        // `HAVING` needs an aggregate query, which a group of constants alone is not.
        select.push(("COUNT(*)".into(), "$rows".into()));
        output.push(Column {
            name: "$rows".into(),
            kind: Kind::Hidden,
        });
    }
    level.select = select;
    level.columns = output;
    level.group_by = group_by;
    Ok(())
}

/// Appends the statement of `levels` (the last one outermost).
fn emit<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    schema: &ClassSchema,
    pipeline: &Aggregate,
    levels: &[Level],
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<()> {
    let Some((level, below)) = levels.split_last() else {
        // The first level: the class's rows under the pipeline's filter.
        let base = out.alias("t");
        out.push("SELECT ");
        for (index, column) in class_columns(schema).iter().enumerate() {
            if index > 0 {
                out.push(", ");
            }
            out.column(&base, &column.name);
        }
        out.push(" FROM ");
        out.ident(&schema.class_name);
        out.push(" AS ");
        out.push(&base);
        out.push(" WHERE ");
        return translate_filter::<D>(out, &pipeline.filter, schema, &base, table_exists);
    };
    let alias = format!("s{}", levels.len());
    out.push("SELECT ");
    for (index, (expr, name)) in level.select.iter().enumerate() {
        if index > 0 {
            out.push(", ");
        }
        out.push(expr);
        out.push(" AS ");
        out.ident(name);
    }
    if level.select.is_empty() {
        out.push("NULL AS \"objectId\"");
    }
    out.push(" FROM (");
    emit::<D>(out, schema, pipeline, below, table_exists)?;
    out.push(") AS ");
    out.push(&alias);
    if let Some((column, keep_empty)) = &level.unwind {
        D::join_items(out, &alias, column, *keep_empty, &format!("{alias}i"));
    }
    out.push(" WHERE ");
    match &level.filter {
        None => {
            out.push(D::TRUE);
        }
        Some(Match::Where(filter)) => {
            translate_filter::<D>(out, filter, schema, &alias, table_exists)?;
        }
        Some(Match::Raw(conditions)) => {
            simple_match::<D>(out, &level.input, conditions, &alias)?;
        }
    }
    if !level.group_by.is_empty() {
        out.push(" GROUP BY ");
        out.push(&level.group_by.join(", "));
    }
    if level.only_if_rows {
        out.push(" HAVING COUNT(*) > 0");
    }
    if !level.order.is_empty() {
        out.push(" ORDER BY ");
        for (index, (name, descending)) in level.order.iter().enumerate() {
            if index > 0 {
                out.push(", ");
            }
            // The column as this level outputs it (a select alias).
            out.ident(name);
            out.push(if *descending { " DESC" } else { " ASC" });
            out.push(D::nulls_order(*descending));
        }
    }
    D::limit_offset(out, level.limit, level.skip);
    Ok(())
}

/// Appends the predicate of `filter` over the rows aliased `alias`, which have the class's
/// columns.
fn translate_filter<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    filter: &Filter,
    schema: &ClassSchema,
    alias: &str,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<()> {
    let mut translator = Translator::<D>::new(std::mem::take(out), table_exists);
    translator.filter(filter, &schema.class_name, alias);
    *out = translator.finish()?;
    Ok(())
}

/// A `$match` on computed fields: comparisons of a column with constants of its kind, as
/// MongoDB compares them (a missing field equals `null`; a constant of another kind matches
/// nothing but `$ne`/`$nin`).
fn simple_match<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    columns: &[Column],
    conditions: &Map<String, Value>,
    alias: &str,
) -> StoreResult<()> {
    if conditions.is_empty() {
        out.push(D::TRUE);
        return Ok(());
    }
    out.push("(");
    for (index, (key, value)) in conditions.iter().enumerate() {
        if index > 0 {
            out.push(" AND ");
        }
        match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let Some(branches) = value.as_array().filter(|items| !items.is_empty()) else {
                    return Err(StoreError::Invalid(Error::invalid_query(format!(
                        "{key} should be a non-empty array."
                    ))));
                };
                if key == "$nor" {
                    out.push("NOT ");
                }
                out.push("COALESCE((");
                for (index, branch) in branches.iter().enumerate() {
                    if index > 0 {
                        out.push(if key == "$and" { " AND " } else { " OR " });
                    }
                    let Some(branch) = branch.as_object() else {
                        return Err(StoreError::Invalid(Error::invalid_query(format!(
                            "{key} should hold objects."
                        ))));
                    };
                    simple_match::<D>(out, columns, branch, alias)?;
                }
                out.push("), ");
                out.push(D::FALSE);
                out.push(")");
            }
            other if other.starts_with('$') => {
                return Err(unsupported(format!("{other} in $match after $group")));
            }
            _ => {
                let name = api_field_name(key);
                let column = find(columns, &name).filter(|column| column.kind != Kind::Hidden);
                let expr = column.map(|column| format!("{alias}.{}", quote_ident(&column.name)));
                let kind = column.map(|column| column.kind.clone());
                condition::<D>(out, expr.as_deref(), kind.as_ref(), value)?;
            }
        }
    }
    out.push(")");
    Ok(())
}

/// The bound value a column of `kind` compares with `value`, `None` when they cannot be
/// equal (another kind), or the error of a kind this comparison does not support.
fn operand<D: AggregateDialect>(kind: &Kind, value: &Value) -> StoreResult<Option<D::Bind>> {
    Ok(match kind {
        Kind::Number | Kind::Field(FieldType::Number) => value.as_f64().map(D::number),
        Kind::Id | Kind::Field(FieldType::String) => {
            value.as_str().map(|text| D::Bind::text(text.to_owned()))
        }
        Kind::Field(FieldType::Pointer(_)) => value::as_pointer(value)
            .map(|(_, id)| id)
            .or_else(|| value.as_str())
            .map(|id| D::Bind::text(id.to_owned())),
        Kind::Field(FieldType::Date) => value::as_date(value)
            .or_else(|| value.as_str().and_then(value::normalize_iso))
            .map(D::Bind::text),
        _ => return Err(unsupported("$match on this kind of field after $group")),
    })
}

/// One field's condition: a constant (equality) or an object of operators.
fn condition<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    expr: Option<&str>,
    kind: Option<&Kind>,
    value: &Value,
) -> StoreResult<()> {
    let operators = value
        .as_object()
        .filter(|map| map.keys().all(|key| key.starts_with('$')) && !map.is_empty());
    let Some(operators) = operators else {
        return equals::<D>(out, expr, kind, value);
    };
    out.push("(");
    for (index, (operator, operand_value)) in operators.iter().enumerate() {
        if index > 0 {
            out.push(" AND ");
        }
        match operator.as_str() {
            "$eq" => equals::<D>(out, expr, kind, operand_value)?,
            "$ne" => negate::<D>(out, |out| equals::<D>(out, expr, kind, operand_value))?,
            "$in" | "$nin" => {
                let Some(items) = operand_value.as_array() else {
                    return Err(StoreError::Invalid(Error::invalid_query(format!(
                        "{operator} should be an array."
                    ))));
                };
                let any = |out: &mut SqlBuilder<D::Bind>| -> StoreResult<()> {
                    out.push("(");
                    out.push(D::FALSE);
                    for item in items {
                        out.push(" OR ");
                        equals::<D>(out, expr, kind, item)?;
                    }
                    out.push(")");
                    Ok(())
                };
                if operator == "$in" {
                    any(out)?;
                } else {
                    negate::<D>(out, any)?;
                }
            }
            "$lt" | "$lte" | "$gt" | "$gte" => {
                let sql_operator = match operator.as_str() {
                    "$lt" => "<",
                    "$lte" => "<=",
                    "$gt" => ">",
                    _ => ">=",
                };
                match (expr, kind) {
                    (Some(expr), Some(kind)) => match operand::<D>(kind, operand_value)? {
                        Some(bind) => {
                            out.push(expr);
                            out.push(" ");
                            out.push(sql_operator);
                            out.push(" ");
                            out.param(bind);
                        }
                        None => {
                            out.push(D::FALSE);
                        }
                    },
                    _ => {
                        out.push(D::FALSE);
                    }
                }
            }
            "$exists" => {
                let Some(exists) = operand_value.as_bool() else {
                    return Err(StoreError::Invalid(Error::invalid_query(
                        "$exists should be a boolean.",
                    )));
                };
                match expr {
                    Some(expr) => {
                        out.push(expr);
                        out.push(if exists { " IS NOT NULL" } else { " IS NULL" });
                    }
                    None => {
                        out.push(if exists { D::FALSE } else { D::TRUE });
                    }
                }
            }
            other => return Err(unsupported(format!("{other} in $match after $group"))),
        }
    }
    out.push(")");
    Ok(())
}

fn equals<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    expr: Option<&str>,
    kind: Option<&Kind>,
    value: &Value,
) -> StoreResult<()> {
    let (Some(expr), Some(kind)) = (expr, kind) else {
        out.push(if value.is_null() { D::TRUE } else { D::FALSE });
        return Ok(());
    };
    if value.is_null() {
        out.push(expr);
        out.push(" IS NULL");
        return Ok(());
    }
    if let (Kind::Field(FieldType::Boolean), Some(flag)) = (kind, value.as_bool()) {
        out.push(expr);
        out.push(D::bool_eq(flag));
        return Ok(());
    }
    match operand::<D>(kind, value)? {
        Some(bind) => {
            out.push(expr);
            out.push(" = ");
            out.param(bind);
        }
        None => {
            out.push(D::FALSE);
        }
    }
    Ok(())
}

/// `NOT COALESCE((inner), FALSE)`: a NULL (absent) inner value counts as false.
fn negate<D: AggregateDialect>(
    out: &mut SqlBuilder<D::Bind>,
    inner: impl FnOnce(&mut SqlBuilder<D::Bind>) -> StoreResult<()>,
) -> StoreResult<()> {
    out.push("NOT COALESCE((");
    inner(out)?;
    out.push("), ");
    out.push(D::FALSE);
    out.push(")");
    Ok(())
}

/// A stored value of `kind` (as the backend read it into JSON: text, number, boolean or
/// 0/1, or JSON) as Parse JSON. `name` is the output field: `createdAt` and `updatedAt` are
/// ISO strings at the top of an object, other dates `{"__type":"Date"}`.
pub(crate) fn to_parse_json<D: AggregateDialect>(name: &str, kind: &Kind, raw: Value) -> Value {
    if raw.is_null() {
        return Value::Null;
    }
    match kind {
        Kind::Number | Kind::Field(FieldType::Number) => match raw.as_f64() {
            Some(number) => number_json(number),
            None => raw,
        },
        Kind::Field(FieldType::Boolean) => match raw {
            Value::Number(number) => Value::Bool(number.as_i64() != Some(0)),
            other => other,
        },
        Kind::Field(FieldType::Date) => match raw.as_str() {
            Some(iso) if matches!(name, "createdAt" | "updatedAt") => Value::from(iso),
            Some(iso) => value::date_value(iso),
            None => raw,
        },
        Kind::Field(FieldType::Pointer(target)) => match raw.as_str() {
            Some(id) => value::pointer_value(target, id),
            None => raw,
        },
        Kind::Field(FieldType::String) | Kind::Id | Kind::Hidden => raw,
        Kind::Field(_) | Kind::Json => D::json_column(raw),
    }
}

/// A number as JSON: an integer when integral (as stored numbers read back).
fn number_json(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        return Value::from(number as i64);
    }
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A row of the pipeline's statement (values by column, as read) as Parse JSON: group keys
/// `objectId.<key>` gathered into an `objectId` object, other nulls left out.
pub(crate) fn shape_row<D: AggregateDialect>(
    columns: &[Column],
    mut raw: Vec<Value>,
) -> Map<String, Value> {
    let mut object = Map::new();
    let mut keys = Map::new();
    for (column, value) in columns.iter().zip(raw.drain(..)) {
        if column.kind == Kind::Hidden {
            continue;
        }
        let value = to_parse_json::<D>(&column.name, &column.kind, value);
        match column.name.strip_prefix("objectId.") {
            Some(key) => {
                keys.insert(key.to_owned(), value);
            }
            None if value.is_null() && column.name != "objectId" => {}
            None => {
                object.insert(column.name.clone(), value);
            }
        }
    }
    if !keys.is_empty() {
        object.insert("objectId".into(), Value::Object(keys));
    }
    // Every row has an `objectId`, null when the pipeline dropped it (`$project` with
    // `_id: 0`, `$count`), as Parse Server's PostgreSQL adapter answers.
    object.entry("objectId").or_insert(Value::Null);
    object
}

/// The statement of `distinct`: the distinct non-null values of `field` (a top-level field,
/// the items of an Array field, or a dotted path into an Object field) among the objects
/// `filter` selects, and the kind they are read as.
pub(crate) fn distinct<D: AggregateDialect>(
    schema: &ClassSchema,
    filter: &Filter,
    field: &str,
    table_exists: &dyn Fn(&str) -> bool,
) -> StoreResult<Option<(SqlBuilder<D::Bind>, Kind)>> {
    let (top, path) = match field.split_once('.') {
        Some((top, rest)) => (top, rest.split('.').map(str::to_owned).collect::<Vec<_>>()),
        None => (field, Vec::new()),
    };
    let columns = class_columns(schema);
    let Some(column) = find(&columns, top).filter(|column| column.kind != Kind::Hidden) else {
        return Ok(None);
    };
    let mut out = SqlBuilder::new();
    let base = out.alias("t");
    let expr = format!("{base}.{}", quote_ident(top));
    out.push("SELECT DISTINCT ");
    let kind = match (&column.kind, path.is_empty()) {
        (Kind::Field(FieldType::Array), true) => {
            let (item, _) = D::item_exprs("items");
            out.push(&item);
            Kind::Json
        }
        (kind, true) => {
            out.push(&expr);
            kind.clone()
        }
        (Kind::Field(FieldType::Object), false) => {
            D::json_at(&mut out, &expr, &path);
            Kind::Json
        }
        _ => return Ok(None),
    };
    out.push(" AS \"value\" FROM ");
    out.ident(&schema.class_name);
    out.push(" AS ");
    out.push(&base);
    if column.kind == Kind::Field(FieldType::Array) && path.is_empty() {
        D::join_items(&mut out, &base, top, false, "items");
    }
    out.push(" WHERE ");
    translate_filter::<D>(&mut out, filter, schema, &base, table_exists)?;
    Ok(Some((out, kind)))
}

/// The values of a `distinct` statement as Parse JSON, nulls left out. Dates are ISO
/// strings there, as Parse Server answers a distinct (pointers are typed).
pub(crate) fn distinct_values<D: AggregateDialect>(kind: &Kind, raw: Vec<Value>) -> Vec<Value> {
    raw.into_iter()
        .map(|value| match kind {
            Kind::Field(FieldType::Date) => value,
            _ => to_parse_json::<D>("value", kind, value),
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// Whether MIN and MAX apply to a column of `kind` on every backend: not to JSON (no
/// order on PostgreSQL's `jsonb` that matches Parse's) nor to booleans.
pub(crate) fn orders_kind(kind: &Kind) -> bool {
    match kind {
        Kind::Json | Kind::Hidden | Kind::Field(FieldType::Boolean) => false,
        Kind::Field(field_type) => !is_json_column(field_type),
        Kind::Number | Kind::Id => true,
    }
}
