//! Parse error codes and the domain error.
//!
//! Every client-visible failure carries a [`Code`]; the HTTP edge maps a code to a status
//! once (`101 → 404`, `1 → 500`, every other code → `400`).

use std::borrow::Cow;

/// Declares [`Code`] from its `Name = number` list, with the conversions both ways.
macro_rules! parse_codes {
    ($($name:ident = $value:literal,)*) => {
        /// Parse's numbered error codes (parse-protocol.md §9) that Parlor produces, and
        /// `Custom` for any other number (cloud code may throw `new Parse.Error(9001, …)`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($name,)*
            Custom(i32),
        }

        impl Code {
            /// The numeric code sent on the wire.
            pub fn as_i32(self) -> i32 {
                match self {
                    $(Code::$name => $value,)*
                    Code::Custom(value) => value,
                }
            }

            /// The code with this number (a named one when Parlor knows it).
            pub fn from_i32(value: i32) -> Code {
                match value {
                    $($value => Code::$name,)*
                    other => Code::Custom(other),
                }
            }
        }
    };
}

parse_codes! {
    OtherCause = -1,
    InternalServerError = 1,
    ConnectionFailed = 100,
    ObjectNotFound = 101,
    InvalidQuery = 102,
    InvalidClassName = 103,
    MissingObjectId = 104,
    InvalidKeyName = 105,
    InvalidPointer = 106,
    InvalidJson = 107,
    CommandUnavailable = 108,
    IncorrectType = 111,
    ObjectTooLarge = 116,
    OperationForbidden = 119,
    InvalidNestedKey = 121,
    InvalidFileName = 122,
    InvalidAcl = 123,
    Timeout = 124,
    InvalidEmailAddress = 125,
    ClassNameMissing = 135,
    ChangedImmutableField = 136,
    DuplicateValue = 137,
    InvalidRoleName = 139,
    FileSaveError = 130,
    ScriptFailed = 141,
    ValidationError = 142,
    FileDeleteError = 153,
    DuplicateRequest = 159,
    InvalidValue = 162,
    UsernameMissing = 200,
    PasswordMissing = 201,
    UsernameTaken = 202,
    EmailTaken = 203,
    EmailMissing = 204,
    EmailNotFound = 205,
    SessionMissing = 206,
    InvalidSessionToken = 209,
    AccountAlreadyLinked = 208,
    UnsupportedService = 252,
    InvalidSchemaOperation = 255,
}

impl Code {
    /// The HTTP status Parse Server answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::ObjectNotFound => 404,
            Code::InternalServerError => 500,
            Code::ConnectionFailed => 429,
            _ => 400,
        }
    }
}

/// A failure with a Parse code and a message safe to show a client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {})", code.as_i32())]
pub struct Error {
    pub code: Code,
    pub message: Cow<'static, str>,
}

impl Error {
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// `101 Object not found.`: missing, unreadable and unwritable objects all look alike.
    pub fn object_not_found() -> Error {
        Error::new(Code::ObjectNotFound, "Object not found.")
    }

    pub fn invalid_query(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(Code::InvalidQuery, message)
    }

    pub fn invalid_json(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(Code::InvalidJson, message)
    }

    pub fn incorrect_type(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(Code::IncorrectType, message)
    }

    pub fn invalid_key_name(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(Code::InvalidKeyName, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(Code::OperationForbidden, message)
    }

    pub fn internal() -> Error {
        Error::new(Code::InternalServerError, "Internal server error.")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
