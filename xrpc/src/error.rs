//! XRPC answers: JSON `{"error", "message"}` with the right status.

use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

/// An XRPC error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrpcError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error name.
    pub error: &'static str,
    /// A human-readable message.
    pub message: String,
}

/// A refused credential: `401` with the token error's name (`500` when the spent tokens could
/// not be checked).
impl From<crate::auth::AuthError> for XrpcError {
    fn from(error: crate::auth::AuthError) -> Self {
        Self::new(error.status(), error.name(), error.to_string())
    }
}

impl XrpcError {
    /// An error with this status, name and message.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
        }
    }

    /// `400 InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// `401 AuthRequired`.
    pub fn auth_required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthRequired", message)
    }

    /// The JSON response.
    pub fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"error": self.error, "message": self.message}),
        )
    }
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}
