//! The one mapping from the library's error codes ([`ErrorCode`]) to HTTP statuses, and the
//! JSON error body: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Handlers return [`HttpError`], the library's [`ApiError`] as an HTTP answer; `?` turns every
//! error the library classifies into one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use courbe::error::{is_storage_full, ApiError, ErrorCode};

/// The HTTP status of every error with `code`.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
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

/// The JSON body of `error`, as the HTTP API sends it (with [`ApiError::client_message`]).
pub fn to_json(error: &ApiError) -> String {
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
            code: error.code.as_str(),
            message: error.client_message(),
        },
    };
    serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"unprintable error"}}"#.to_string()
    })
}

/// The library's error as an HTTP answer: its status and its JSON body. A failure of the server
/// is logged with its detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError(pub ApiError);

impl<E> From<E> for HttpError
where
    ApiError: From<E>,
{
    fn from(e: E) -> HttpError {
        HttpError(ApiError::from(e))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(error) = self;
        if error.code.is_server_side() {
            tracing::error!(code = error.code.as_str(), message = %error.message, "server error");
        }
        let mut response = (status(error.code), to_json(&error)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if error.code == ErrorCode::RequestTimeout {
            // The rest of the body is not waited for.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courbe::engine;
    use courbe::query::QueryError;

    #[test]
    fn an_error_body_has_the_code_and_the_message() {
        let e = ApiError::new(ErrorCode::UnknownMeter, "unknown meter \"x\"");
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
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
        for (e, expected, code) in cases {
            let api = ApiError::from(e);
            assert_eq!(status(api.code).as_u16(), expected);
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
        assert_eq!(status(ErrorCode::Internal).as_u16(), 500);
        assert!(!ErrorCode::Internal.is_user_error());
        let bad = engine::Error::InvalidArgument("meter id".into());
        assert_eq!(status(ApiError::from(bad).code).as_u16(), 400);
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
            assert_eq!(status(e.code).as_u16(), 507);
            assert!(
                e.message.contains("/srv/courbe"),
                "the log keeps the detail"
            );
            assert!(!to_json(&e).contains("/srv"), "{}", to_json(&e));
            assert!(!e.code.is_user_error());
        }
        let other = ApiError::from(full(std::io::Error::other("bad sector")));
        assert_eq!(other.code, ErrorCode::Internal);
        assert!(!to_json(&other).contains("/srv"), "{}", to_json(&other));
        let closed = ApiError::from(engine::Error::Closed);
        assert_eq!(status(closed.code).as_u16(), 503);
        assert!(!closed.code.is_user_error());
    }
}
