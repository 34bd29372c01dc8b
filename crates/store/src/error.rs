//! The store's error type; the server maps it to Parse codes once, at the HTTP edge.

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist or its guard (write rights) failed.
    #[error("object not found")]
    ObjectNotFound,
    /// A unique index was violated.
    #[error("duplicate value")]
    DuplicateValue,
    /// A write was refused for a reason a client caused (e.g. incrementing a string).
    #[error(transparent)]
    Invalid(#[from] parlor_core::Error),
    /// The database failed; the details are for logs, never for clients. Boxed so that the
    /// type does not depend on a driver (each backend converts its own errors).
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A database failure described by a message (a closed store, a corrupt value).
    pub(crate) fn database(message: impl Into<String>) -> StoreError {
        StoreError::Database(message.into().into())
    }
}

impl From<rusqlite::Error> for StoreError {
    /// A limit of SQLite's that a client's request reached is the client's error
    /// ([`sqlite_limit`]); every other failure is the database's.
    fn from(error: rusqlite::Error) -> StoreError {
        match sqlite_limit(&error) {
            Some(limit) => StoreError::Invalid(limit),
            None => StoreError::Database(Box::new(error)),
        }
    }
}

/// The Parse error for a failure that is one of SQLite's compiled-in limits, which a client
/// can reach with an ordinary request: a class with more than 2,000 columns, a value over the
/// size limit, a query with too many bound values or too deep an expression. The statement
/// failed, so its transaction (or savepoint) is rolled back and nothing changed. SQLite tells
/// these apart only by message (they share `SQLITE_ERROR`, but for `SQLITE_TOOBIG`).
fn sqlite_limit(error: &rusqlite::Error) -> Option<parlor_core::Error> {
    use parlor_core::{Code, Error};
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return None;
    };
    if failure.code == rusqlite::ErrorCode::TooBig {
        return Some(Error::new(
            Code::ObjectTooLarge,
            "The object is too large for the database.",
        ));
    }
    let message = message.as_deref()?;
    if message.starts_with("too many columns") {
        return Some(crate::layout::too_many_columns(crate::sqlite::MAX_COLUMNS));
    }
    const QUERY_LIMITS: [&str; 8] = [
        "too many SQL variables",
        "Expression tree is too large",
        "too many FROM clause terms",
        "tables in a join",
        "parser stack overflow",
        "too many arguments on function",
        "pattern too complex",
        "too many terms in",
    ];
    QUERY_LIMITS
        .iter()
        .any(|limit| message.contains(limit))
        .then(|| {
            Error::invalid_query(format!(
                "The query is too large or too deeply nested for the database ({message})."
            ))
        })
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use parlor_core::Code;

    use super::*;

    fn failure(code: i32, message: &str) -> StoreError {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
            .into()
    }

    fn code_of(error: &StoreError) -> Option<Code> {
        match error {
            StoreError::Invalid(error) => Some(error.code),
            _ => None,
        }
    }

    /// SQLite's limits a request can reach are the client's errors, with a Parse code; other
    /// failures stay the database's.
    #[test]
    fn sqlite_limits_are_client_errors() {
        let cases = [
            (
                failure(1, "too many columns on sqlite_altertab__Installation"),
                Some(Code::InvalidSchemaOperation),
            ),
            (
                failure(1, "too many columns in result set"),
                Some(Code::InvalidSchemaOperation),
            ),
            (
                failure(18, "string or blob too big"),
                Some(Code::ObjectTooLarge),
            ),
            (
                failure(1, "too many SQL variables"),
                Some(Code::InvalidQuery),
            ),
            (
                failure(1, "Expression tree is too large (maximum depth 1000)"),
                Some(Code::InvalidQuery),
            ),
            (failure(1, "no such table: Foo"), None),
            (failure(5, "database is locked"), None),
        ];
        for (error, expected) in cases {
            assert_eq!(code_of(&error), expected, "{error}");
        }
    }
}
