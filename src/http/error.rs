//! The errors of the product surface, and the one place where they become HTTP statuses.
//!
//! Engine, query and ingest errors are classified into an [`ErrorCode`] by the `From` impls
//! below; [`ErrorCode::status`] is the only mapping from a code to an HTTP status, and
//! [`ErrorCode::is_user_error`] the only mapping to the command line's exit codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
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
    /// A failure of the server or of the data under it (I/O, corruption).
    Internal,
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
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of every error with this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument
            | ErrorCode::UnknownZone
            | ErrorCode::UnknownPeriod
            | ErrorCode::BadTariff
            | ErrorCode::MalformedDocument => StatusCode::BAD_REQUEST,
            ErrorCode::UnknownMeter | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the caller can fix it (exit status 1) rather than the server (exit status 2).
    pub fn is_user_error(self) -> bool {
        self != ErrorCode::Internal
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

    /// The JSON body, as the HTTP API sends it.
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
                message: &self.message,
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
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code == ErrorCode::Internal {
            tracing::error!(message = %self.message, "internal error");
        }
        let mut response = (self.code.status(), self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
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
}
