//! Queries: one AST ([`ast`]), built from Parse `where` JSON by [`parse`], and evaluated two
//! ways: translated to SQL by the store, and matched in memory by [`matcher`] (live queries).
//! A property test keeps the two evaluators in agreement.

pub mod ast;
pub mod geo;
pub mod matcher;
pub mod parse;
pub mod pipeline;
pub mod regex;

pub use ast::{Cond, FieldRef, Filter, FindQuery, Operand, Pattern, SortKey, SubQuery, TextScore};
pub use parse::{QueryContext, parse_where};
