//! The REST API's error type and JSON extractor. Every 4xx has the body
//! `{"error": "...", "field": "..."}` (`field` only when one input is at fault); a 5xx
//! says only "internal error" and the cause goes to the log.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clarion_core::CoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An API failure and the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or JSON of the wrong shape.
    #[error("{reason}")]
    BadRequest { reason: String, field: Option<String> },
    /// 422: the body has a member this request does not know (a misspelt `users`, say):
    /// refused rather than ignored, so a typo never changes what a request means.
    #[error("{reason}")]
    UnknownMember { name: String, reason: String },
    /// 404: no API route has this path.
    #[error("no API route is {method} {path}; see docs/api.md")]
    NoSuchRoute { method: String, path: String },
    /// 405: the path exists, the method does not (`Allow` names those that do).
    #[error("{method} is not allowed on {path}; the Allow header lists the methods that are")]
    MethodNotAllowed { method: String, path: String },
    /// 401: no admin token, or a wrong one.
    #[error("a valid admin token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// 413: the body is over the route's limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415: not `Content-Type: application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 403: a browser on another site tried to write here (cross-site request forgery).
    #[error("requests from origin {0} are not allowed here: other sites may call only the public endpoints, and only when CLARION_CORS_ORIGINS lists them")]
    CrossSite(String),
    /// 403: the browser's `Origin` names this host under another scheme than the request
    /// came by: usually a TLS proxy that is not trusted, so its `X-Forwarded-Proto` does
    /// not count.
    #[error("origin {origin} is this host under another scheme than the request reached Clarion by ({scheme}); behind a proxy that terminates TLS, list it in CLARION_TRUSTED_PROXIES so its X-Forwarded-Proto counts")]
    OtherScheme { origin: String, scheme: &'static str },
    /// 431: the request's headers are larger than the server accepts.
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// 404, 403, 409, 422, 429, 503 and 500, from the core operation.
    #[error(transparent)]
    Core(#[from] CoreError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::BadRequest { reason: reason.into(), field: field.map(str::to_string) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownMember { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NoSuchRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::CrossSite(_) | ApiError::OtherScheme { .. } => StatusCode::FORBIDDEN,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Core(CoreError::Invalid { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Core(CoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Core(CoreError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Core(CoreError::Conflict { .. }) => StatusCode::CONFLICT,
            ApiError::Core(CoreError::RateLimited { .. } | CoreError::TooManyFromAddress) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Core(CoreError::Full) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Core(CoreError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// Whole seconds to wait, for `Retry-After`.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ApiError::Core(CoreError::RateLimited { retry_after, .. }) => Some(retry_after.as_secs_f64().ceil() as u64),
            _ => None,
        }
    }
}

impl ApiError {
    /// The input at fault, when one is: the body's `field`.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            ApiError::UnknownMember { name, .. } => Some(name.as_str()),
            ApiError::Core(CoreError::Invalid { field, .. } | CoreError::Conflict { field, .. }) => Some(*field),
            _ => None,
        }
    }

    /// The message safe to show to a client: the body's `error` (an internal error's
    /// details stay in the log).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Core(core) => core.public_message(),
            other => other.to_string(),
        }
    }

    /// Logs an internal error's cause, which the client never sees.
    pub fn log_if_internal(&self) {
        if let ApiError::Core(CoreError::Internal(cause)) = self {
            tracing::error!(error = ?cause, "internal error");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log_if_internal();
        let error = self.public_message();
        let mut response = (status, axum::Json(ErrorBody { error, field: self.field() })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="clarion""#));
        }
        if let Some(seconds) = self.retry_after_seconds() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON body whose rejections are [`ApiError`]s that name the offending field.
pub struct AppJson<T>(pub T);

/// Largest JSON body any route accepts.
pub const JSON_BODY_LIMIT: usize = 8 * 1024;

/// The REST API's fallback: a JSON 404 naming the request, never the page's HTML one.
pub async fn no_such_route(request: Request) -> ApiError {
    ApiError::NoSuchRoute { method: request.method().to_string(), path: full_path(&request) }
}

/// The request's path as the client sent it (a nested router sees it shortened).
fn full_path(request: &Request) -> String {
    match request.extensions().get::<axum::extract::OriginalUri>() {
        Some(original) => original.path().to_string(),
        None => request.uri().path().to_string(),
    }
}

/// Largest body of `POST /api/v1/notifications`: room for 10,000 user ids of 128 characters.
pub const SEND_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The largest body any `/api/v1` route takes (a send's).
pub const LARGEST_BODY_LIMIT: usize = SEND_BODY_LIMIT;

/// Middleware for `/api/v1`: an error answer that is not JSON yet (a 405 from the router,
/// a rejection by one of axum's extractors) becomes the API's JSON error body, keeping its
/// status and headers (`Allow` among them).
///
/// A body declared larger than any route takes ([`LARGEST_BODY_LIMIT`]) is refused here,
/// on every route, before a handler runs; each route's own, smaller limit is its
/// extractor's.
pub async fn json_errors(request: Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (request.method().to_string(), full_path(&request));
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > LARGEST_BODY_LIMIT as u64) {
        return ApiError::PayloadTooLarge { limit: LARGEST_BODY_LIMIT }.into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        ApiError::MethodNotAllowed { method, path }.public_message()
    } else {
        let text = axum::body::to_bytes(body, 16 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
        match text.is_empty() {
            true => status.canonical_reason().unwrap_or("error").to_lowercase(),
            false => text,
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&ErrorBody { error, field: None }).expect("a string serialises");
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Largest body of a server function call (the console's composer sends the most).
pub const SERVER_FN_BODY_LIMIT: usize = 64 * 1024;

/// Middleware for server functions (`/api/fn/...`): reads the body up to
/// [`SERVER_FN_BODY_LIMIT`] first, so a larger one gets the API's 413 JSON instead of
/// failing inside the function as a 500.
pub async fn limit_server_fn_body(request: Request, next: axum::middleware::Next) -> Response {
    if !request.uri().path().starts_with("/api/fn/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, SERVER_FN_BODY_LIMIT).await {
        Ok(bytes) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(e) if is_length_limit(&e) => ApiError::PayloadTooLarge { limit: SERVER_FN_BODY_LIMIT }.into_response(),
        Err(e) => ApiError::bad_request(format!("could not read the request body: {e}"), None).into_response(),
    }
}

/// True when reading a body failed because it is over the limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: JSON_BODY_LIMIT }
            } else {
                ApiError::bad_request(rejection.body_text(), None)
            }
        })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Deserializes JSON, reporting the path of the field at fault (`keys.p256dh`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if let Some(name) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
            // The path already ends with the unknown member.
            let name = if path == "." || path == "?" { name.to_string() } else { path.clone() };
            let reason = format!("unknown member {name:?}: {}", message.split_once(", ").map_or("", |(_, expected)| expected));
            return ApiError::UnknownMember { name, reason };
        }
        // serde reports a missing member at its parent's path; name the member itself.
        let field = match message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(missing) if path == "." => missing.to_string(),
            Some(missing) => format!("{path}.{missing}"),
            None => path,
        };
        let reason = if inner.is_syntax() || inner.is_eof() { format!("the body is not valid JSON: {message}") } else { message };
        // "." is the root and "?" an unknown position (a syntax error): no single field.
        let field = (field != "." && field != "?").then_some(field.as_str());
        ApiError::bad_request(reason, field)
    })?;
    // Anything after the JSON value (besides white space) makes the body invalid.
    deserializer.end().map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubscriptionJson;

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<SubscriptionJson>(json.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        assert_eq!(field_of(r#"{"keys":{"p256dh":"a","auth":"b"}}"#).as_deref(), Some("endpoint"));
        assert_eq!(field_of(r#"{"endpoint":"x","keys":{"p256dh":"a"}}"#).as_deref(), Some("keys.auth"));
        assert_eq!(field_of(r#"{"endpoint":5,"keys":{"p256dh":"a","auth":"b"}}"#).as_deref(), Some("endpoint"));
        assert_eq!(field_of("{not json"), None);
        assert_eq!(field_of(r#"{"endpoint":"x","keys":{"p256dh":"a","auth":"b"}} trailing"#), None);
    }

    #[test]
    fn an_unknown_member_is_named_in_a_422() {
        let refused = parse_json::<crate::domain::NotificationRequest>(br#"{"title":"t","userz":["42"]}"#).map(|_| ()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let ApiError::UnknownMember { name, reason } = refused else { panic!("expected an unknown member") };
        assert_eq!(name, "userz");
        assert!(reason.contains("users"), "{reason}");
    }
}
