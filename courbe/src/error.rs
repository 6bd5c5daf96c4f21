//! The errors of the product surface, transport-neutral: a code clients branch on and a message.
//!
//! Engine, query and ingest errors are classified into an [`ErrorCode`] by the `From` impls
//! below; [`ErrorCode::is_user_error`] is the only mapping to the command line's exit codes. The
//! only mapping from a code to an HTTP status, and the JSON error body, are the server's
//! (`courbe_server::http::error`).

use crate::engine;
use crate::query::QueryError;

/// What went wrong, as clients branch on it (`error.code` in the JSON body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// An unreadable or inconsistent parameter: a date, a range, a channel, a format...
    InvalidArgument,
    UnknownMeter,
    UnknownZone,
    UnknownPeriod,
    BadTariff,
    /// An ingest body that is not a well-formed document (no CSV header, broken XML).
    MalformedDocument,
    PayloadTooLarge,
    MethodNotAllowed,
    /// No bearer token, or one the server does not know.
    Unauthorized,
    /// The token does not allow the request (never says whether a meter exists).
    Forbidden,
    /// No route at this path.
    NotFound,
    /// The request's headers or body did not arrive within the server's time limits.
    RequestTimeout,
    /// The request target is longer than the server reads.
    UriTooLong,
    /// The request has more header lines, or more header bytes, than the server reads.
    HeadersTooLarge,
    /// The server cannot take the request now: its store refuses writes after an I/O failure,
    /// or it holds as many request bodies as it may. Not the caller's fault.
    Unavailable,
    /// The server's disk is full (or over quota).
    InsufficientStorage,
    /// A failure of the server or of the data under it (I/O, corruption).
    Internal,
    /// The request would redo what is done once only (a release of released months).
    Conflict,
    /// Anonymised aggregates asked outside the released months.
    NotReleased,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::UnknownMeter => "unknown_meter",
            ErrorCode::UnknownZone => "unknown_zone",
            ErrorCode::UnknownPeriod => "unknown_period",
            ErrorCode::BadTariff => "bad_tariff",
            ErrorCode::MalformedDocument => "malformed_document",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::Internal => "internal",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotReleased => "not_released",
        }
    }

    /// Whether the caller can fix it (exit status 1) rather than the server (exit status 2).
    pub fn is_user_error(self) -> bool {
        !self.is_server_side()
    }

    /// Failures of the server or its machine (exit status 2, logged by the server). Their messages
    /// are written by the server, never from a path: internal and disk-full details are replaced
    /// by [`ApiError::client_message`].
    pub fn is_server_side(self) -> bool {
        matches!(
            self,
            ErrorCode::Internal | ErrorCode::InsufficientStorage | ErrorCode::Unavailable
        )
    }
}

/// An error of a question or a request: its code and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// The message a client is sent: the message itself for the caller's errors; for a failure of
    /// the server, a fixed sentence per code (the detail, with its paths, is for the server log).
    pub fn client_message(&self) -> &str {
        match self.code {
            ErrorCode::Internal => "internal error; the server log has the detail",
            ErrorCode::InsufficientStorage => {
                "the server's disk is full: this request was not stored; retry once space is freed"
            }
            _ => &self.message,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let code = match &e {
            QueryError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            QueryError::UnknownZone(_) => ErrorCode::UnknownZone,
            QueryError::UnknownPeriod(_) => ErrorCode::UnknownPeriod,
            QueryError::BadTariff(_) => ErrorCode::BadTariff,
            QueryError::UnknownMeter(_) => ErrorCode::UnknownMeter,
            QueryError::Source(_) => ErrorCode::Internal,
            // A kind added later is a failure we do not know how to blame on the caller.
            #[allow(unreachable_patterns)]
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        let code = match &e {
            engine::Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            engine::Error::Io { source, .. } if is_storage_full(source) => {
                ErrorCode::InsufficientStorage
            }
            engine::Error::Closed => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::governance::Error> for ApiError {
    fn from(e: crate::governance::Error) -> ApiError {
        match e {
            crate::governance::Error::InvalidArgument(m) => ApiError::invalid(m),
            crate::governance::Error::Engine(e) => ApiError::from(e),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> ApiError {
        match e {
            crate::ingest::IngestError::Io(_) => ApiError::new(ErrorCode::Internal, e.to_string()),
            _ => ApiError::new(
                ErrorCode::MalformedDocument,
                format!("not a readable document: {e}"),
            ),
        }
    }
}

/// Whether an I/O error says the disk is full or the quota spent.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}
