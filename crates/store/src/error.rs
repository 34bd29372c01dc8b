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
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::Database(Box::new(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
