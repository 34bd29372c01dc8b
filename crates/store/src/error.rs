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
    /// The database failed; the details are for logs, never for clients.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;
