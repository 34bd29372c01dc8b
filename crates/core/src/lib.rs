//! `parlor_core`: the domain of a Parse-compatible backend, with no I/O.
//!
//! # Layout
//! - [`error`]: Parse error codes and the one error type of the domain.
//! - [`value`]: the Parse JSON encoding of typed values (Date, Pointer, File, …).
//! - [`schema`]: class and field definitions, names, class-level permissions as stored.
//! - [`object`]: a stored object and its ACL.
//! - [`ops`]: field operators (`Increment`, `Add`, …) parsed from a write and applied to a state.
//! - [`query`]: the query AST, the parser from Parse `where` JSON, and the in-memory matcher.
//!
//! **Invariant:** nothing here knows about HTTP, SQL or async runtimes. The store translates
//! [`query::Filter`] to SQL; the live-query hub evaluates it with [`query::matcher`].

pub mod error;
pub mod object;
pub mod ops;
pub mod query;
pub mod schema;
pub mod value;

pub use error::{Code, Error, Result};
