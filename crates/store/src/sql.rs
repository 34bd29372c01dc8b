//! A dialect-neutral SQL text builder: statement text plus the values bound to it.
//!
//! Translators append SQL fragments and push every client-supplied value as a bound value,
//! so no value is ever spliced into SQL text. Identifiers (class and field names) are quoted
//! with [`quote_ident`] even though they are validated upstream. The bound-value type decides
//! how its placeholder is written ([`BindValue`]): SQLite's [`Bind`] writes a positional `?`,
//! PostgreSQL's `PgBind` a numbered, typed `$n::type`.

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl Bind {
    /// A JSON number as SQL would compare it exactly: integral values bind as integers,
    /// so `NUMERIC` columns (which store `5.0` as `5`) compare without float rounding.
    pub(crate) fn number(value: f64) -> Bind {
        // i64::MAX as f64 rounds up to 2^63, which is outside i64; the strict bound keeps
        // the conversion lossless.
        if value.fract() == 0.0
            && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value)
        {
            Bind::Integer(value as i64)
        } else {
            Bind::Real(value)
        }
    }

    /// Binds a `serde_json::Number` without going through `f64` when it is an integer.
    pub(crate) fn json_number(number: &serde_json::Number) -> Bind {
        match number.as_i64() {
            Some(integer) => Bind::Integer(integer),
            None => Bind::number(number.as_f64().unwrap_or(0.0)),
        }
    }
}

/// A value a [`SqlBuilder`] binds: it knows how its dialect writes a placeholder for it.
pub(crate) trait BindValue: Sized {
    /// Appends the placeholder of `value`, which would be bound value number `position`
    /// (1-based); returns whether `value` must be bound (a dialect may write a constant such
    /// as `NULL` instead).
    fn placeholder(sql: &mut String, position: usize, value: &Self) -> bool;

    /// A text value.
    fn text(value: String) -> Self;
}

impl BindValue for Bind {
    fn placeholder(sql: &mut String, _position: usize, _value: &Bind) -> bool {
        sql.push('?');
        true
    }

    fn text(value: String) -> Bind {
        Bind::Text(value)
    }
}

/// SQL text under construction and its bound values, in placeholder order.
#[derive(Debug)]
pub(crate) struct SqlBuilder<B = Bind> {
    pub(crate) sql: String,
    pub(crate) binds: Vec<B>,
    /// Table aliases (`t0`, `j3`) must be unique across nested subqueries, so that a
    /// column reference never binds to an outer table by accident.
    next_alias: usize,
}

impl<B> Default for SqlBuilder<B> {
    fn default() -> SqlBuilder<B> {
        SqlBuilder {
            sql: String::new(),
            binds: Vec::new(),
            next_alias: 0,
        }
    }
}

impl<B: BindValue> SqlBuilder<B> {
    pub(crate) fn new() -> SqlBuilder<B> {
        SqlBuilder::default()
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut SqlBuilder<B> {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn param(&mut self, value: B) -> &mut SqlBuilder<B> {
        if B::placeholder(&mut self.sql, self.binds.len() + 1, &value) {
            self.binds.push(value);
        }
        self
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut SqlBuilder<B> {
        self.param(B::text(value.to_owned()))
    }

    /// Appends a quoted identifier.
    pub(crate) fn ident(&mut self, name: &str) -> &mut SqlBuilder<B> {
        self.sql.push_str(&quote_ident(name));
        self
    }

    /// Appends `alias."column"`.
    pub(crate) fn column(&mut self, alias: &str, name: &str) -> &mut SqlBuilder<B> {
        self.sql.push_str(alias);
        self.sql.push('.');
        self.ident(name)
    }

    /// A fresh alias with the given prefix.
    pub(crate) fn alias(&mut self, prefix: &str) -> String {
        let alias = format!("{prefix}{}", self.next_alias);
        self.next_alias += 1;
        alias
    }

    /// Appends a comma-separated list of placeholders.
    pub(crate) fn param_list(&mut self, values: impl IntoIterator<Item = B>) -> &mut SqlBuilder<B> {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.param(value);
        }
        self
    }
}

/// `"name"`, with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
