//! The operation layer's error type: a Parse error, a store failure, or a refusal that the
//! HTTP edge answers outside Parse's `{code,error}` shape.

use parlor_core::{Code, Error};
use parlor_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A client-visible failure with a Parse code.
    #[error(transparent)]
    Parse(#[from] Error),
    /// A store failure: client-caused ones carry a code, the rest are internal.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operation needs the master key (`403 unauthorized: master key is required`).
    #[error("unauthorized: master key is required")]
    MasterKeyRequired,
}

impl OpError {
    pub fn parse(code: Code, message: impl Into<std::borrow::Cow<'static, str>>) -> OpError {
        OpError::Parse(Error::new(code, message))
    }

    /// The Parse error a client sees, or `None` for failures that are not Parse errors.
    pub fn to_parse_error(&self) -> Option<Error> {
        match self {
            OpError::Parse(error) => Some(error.clone()),
            OpError::Store(StoreError::ObjectNotFound) => Some(Error::object_not_found()),
            OpError::Store(StoreError::DuplicateValue) => Some(Error::new(
                Code::DuplicateValue,
                "A duplicate value for a field with unique values was provided",
            )),
            OpError::Store(StoreError::Invalid(error)) => Some(error.clone()),
            OpError::Store(StoreError::Database(_)) => Some(Error::internal()),
            OpError::MasterKeyRequired => None,
        }
    }
}

pub type OpResult<T> = Result<T, OpError>;
