//! The API's one error type and its JSON body (`{"error": {"code", "message"}}`).

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error every endpoint may answer with; `code()` is stable, the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or path segment is unusable (400 `bad_request`).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is known under this path or address (404 `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not for this method (405 `method_not_allowed`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request line's target (path and query) is longer than the server
    /// reads (414 `uri_too_long`).
    #[error("request target longer than {max_bytes} bytes")]
    UriTooLong {
        /// The limit in force.
        max_bytes: usize,
    },
    /// The request's header fields are larger than the server reads
    /// (431 `headers_too_large`).
    #[error("request header fields larger than {max_bytes} bytes")]
    HeadersTooLarge {
        /// The limit in force.
        max_bytes: usize,
    },
    /// The client spent its request budget (429 `rate_limited`).
    #[error("rate limit exceeded; retry in {retry_after_s} s")]
    RateLimited {
        /// Whole seconds until one more request is allowed.
        retry_after_s: u64,
    },
    /// The SLA state is not ready yet (503 `unavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side (500 `internal`); the message must not carry secrets.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable snake_case code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": {"code": …, "message": …}}`.
    pub fn body(&self) -> Bytes {
        let value =
            serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        Bytes::from(value.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            self.body(),
        )
            .into_response();
        if let Self::RateLimited { retry_after_s } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_documented_shape() {
        let body = ApiError::BadRequest("window must be one of 1m, 5m".into()).body();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request");
        assert_eq!(v["error"]["message"], "window must be one of 1m, 5m");
    }
}
