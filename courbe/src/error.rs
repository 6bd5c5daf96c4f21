//! The errors of the product surface, and the one place where they become HTTP statuses.
//!
//! Engine, query and ingest errors are classified into an [`ErrorCode`] by the `From` impls
//! below; `ErrorCode::status` (feature `http`, the server's) is the only mapping from a code to an
//! HTTP status, and [`ErrorCode::is_user_error`] the only mapping to the command line's exit codes.

#[cfg(feature = "http")]
use axum_core::response::{IntoResponse, Response};
#[cfg(feature = "http")]
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

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

    /// The HTTP status of every error with this code.
    #[cfg(feature = "http")]
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument
            | ErrorCode::UnknownZone
            | ErrorCode::UnknownPeriod
            | ErrorCode::BadTariff
            | ErrorCode::MalformedDocument => StatusCode::BAD_REQUEST,
            ErrorCode::UnknownMeter | ErrorCode::NotFound | ErrorCode::NotReleased => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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

/// An error answer: `{"error": {"code": "...", "message": "..."}}` with [`ErrorCode::status`].
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

    /// The JSON body, as the HTTP API sends it (with [`ApiError::client_message`]).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body = Body {
            error: Inner {
                code: self.code.as_str(),
                message: self.client_message(),
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal","message":"unprintable error"}}"#.to_string()
        })
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

#[cfg(feature = "http")]
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code.is_server_side() {
            tracing::error!(code = self.code.as_str(), message = %self.message, "server error");
        }
        let mut response = (self.code.status(), self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.code == ErrorCode::RequestTimeout {
            // The rest of the body is not waited for.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_has_the_code_and_the_message() {
        let e = ApiError::new(ErrorCode::UnknownMeter, "unknown meter \"x\"");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "unknown_meter");
        assert_eq!(v["error"]["message"], "unknown meter \"x\"");
    }

    #[test]
    fn query_errors_map_to_the_contract_statuses() {
        let cases = [
            (
                QueryError::InvalidArgument("x".into()),
                400,
                "invalid_argument",
            ),
            (
                QueryError::UnknownZone("Mars/Olympus".into()),
                400,
                "unknown_zone",
            ),
            (
                QueryError::UnknownPeriod("fortnight".into()),
                400,
                "unknown_period",
            ),
            (QueryError::BadTariff("x".into()), 400, "bad_tariff"),
            (QueryError::UnknownMeter("m".into()), 404, "unknown_meter"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.code.status().as_u16(), status);
            assert_eq!(api.code.as_str(), code);
            assert!(api.code.is_user_error());
        }
    }

    #[test]
    fn engine_failures_are_internal_but_bad_arguments_are_not() {
        let io = engine::Error::Io {
            path: "/x".into(),
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(ApiError::from(io).code, ErrorCode::Internal);
        assert_eq!(ErrorCode::Internal.status().as_u16(), 500);
        assert!(!ErrorCode::Internal.is_user_error());
        let bad = engine::Error::InvalidArgument("meter id".into());
        assert_eq!(ApiError::from(bad).code.status().as_u16(), 400);
    }

    #[test]
    fn a_full_disk_is_507_and_no_server_failure_sends_a_path() {
        let full = |source| engine::Error::Io {
            path: "/srv/courbe/data/wal-00000000000000000007.log".into(),
            source,
        };
        for source in [
            std::io::Error::from_raw_os_error(libc::ENOSPC),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
            std::io::Error::from_raw_os_error(libc::EDQUOT),
        ] {
            let e = ApiError::from(full(source));
            assert_eq!(e.code, ErrorCode::InsufficientStorage);
            assert_eq!(e.code.status().as_u16(), 507);
            assert!(
                e.message.contains("/srv/courbe"),
                "the log keeps the detail"
            );
            assert!(!e.to_json().contains("/srv"), "{}", e.to_json());
            assert!(!e.code.is_user_error());
        }
        let other = ApiError::from(full(std::io::Error::other("bad sector")));
        assert_eq!(other.code, ErrorCode::Internal);
        assert!(!other.to_json().contains("/srv"), "{}", other.to_json());
        let closed = ApiError::from(engine::Error::Closed);
        assert_eq!(closed.code.status().as_u16(), 503);
        assert!(!closed.code.is_user_error());
    }
}
