//! A dialect-neutral SQL text builder: statement text plus the values bound to it.
//!
//! Translators append SQL fragments and push every client-supplied value as a [`Bind`],
//! so no value is ever spliced into SQL text. Identifiers (class and field names) are quoted
//! with [`quote_ident`] even though they are validated upstream. A PostgreSQL translator can
//! reuse this with numbered placeholders; SQLite's positional `?` is what [`SqlBuilder::param`]
//! writes today.

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

/// SQL text under construction and its bound values, in placeholder order.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
    /// Table aliases (`t0`, `j3`) must be unique across nested subqueries, so that a
    /// column reference never binds to an outer table by accident.
    next_alias: usize,
}

impl SqlBuilder {
    pub(crate) fn new() -> SqlBuilder {
        SqlBuilder::default()
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut SqlBuilder {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn param(&mut self, value: Bind) -> &mut SqlBuilder {
        self.sql.push('?');
        self.binds.push(value);
        self
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut SqlBuilder {
        self.param(Bind::Text(value.to_owned()))
    }

    /// Appends a quoted identifier.
    pub(crate) fn ident(&mut self, name: &str) -> &mut SqlBuilder {
        self.sql.push_str(&quote_ident(name));
        self
    }

    /// Appends `alias."column"`.
    pub(crate) fn column(&mut self, alias: &str, name: &str) -> &mut SqlBuilder {
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
    pub(crate) fn param_list(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut SqlBuilder {
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
