//! Extractors whose rejections are problem documents, so every malformed request
//! gets a clear 4xx in the same shape as every other error.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json` with problem-document rejections.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("invalid-body", e.body_text())
            }
        })?;
        parse_object(&bytes).map(Json)
    }
}

/// A JSON body read as [`Json`] reads it, for a request whose headers and body
/// were split before the router ([`crate::hot`]): `limit` is the body limit
/// the router's `DefaultBodyLimit` applies.
pub async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(unsupported_media_type());
    }
    let bytes = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(ApiError::payload_too_large()),
        Err(e) => return Err(ApiError::bad_request("invalid-body", format!("Failed to buffer the request body: {e}"))),
    };
    parse_object(&bytes)
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        "Send the body as application/json.",
    )
}

/// A request body parsed as `T`: a JSON object only, integral floats read as integers.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays (fields by position), which
    // a request body must never be: only an object goes on to the schema.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::invalid("invalid-body", "The body must be a JSON object.")),
            Err(e) => Err(ApiError::bad_request("malformed-json", format!("The body is not valid JSON: {e}"))),
        };
    }
    serde_json::from_slice(bytes).or_else(|e| match e.classify() {
        serde_json::error::Category::Data => match whole_numbers(bytes) {
            // `2.0` is the integer 2 to JSON Schema (and to the OpenAPI
            // document): read it as one rather than refuse a valid body.
            Some(value) => serde_json::from_value(value).map_err(|e| schema_mismatch(&e)),
            None => Err(schema_mismatch(&e)),
        },
        _ => Err(ApiError::bad_request("malformed-json", format!("The body is not valid JSON: {e}"))),
    })
}

fn schema_mismatch(e: &serde_json::Error) -> ApiError {
    ApiError::invalid("invalid-body", format!("The body does not match the schema: {e}"))
}

/// The body with every integral float (`2.0`, `1e3`) written as an integer, or
/// `None` when it has none (so nothing else about how a body is read changes).
fn whole_numbers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) => match n.as_f64() {
                // Below 2^53 a float is exactly the integer it spells.
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *v = serde_json::Value::from(i);
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, i| walk(i) | changed),
            serde_json::Value::Object(members) => members.values_mut().fold(false, |changed, m| walk(m) | changed),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut value).then_some(value)
}

/// `application/json` or `application/<anything>+json`, parameters ignored.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Compared without case and without a lowercased copy (every body-carrying request).
    let mime = ct.split(';').next().unwrap_or_default().trim().as_bytes();
    let (json, suffix) = (b"application/json", b"+json");
    mime.eq_ignore_ascii_case(json)
        || (mime.len() >= 12 + suffix.len()
            && mime[..12].eq_ignore_ascii_case(b"application/")
            && mime[mime.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        // Sized for a cart or a product page's first kilobyte at once: axum's
        // own starts at 128 bytes and grows (copying) on most answers.
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                let mut res = Response::new(Body::from(body));
                // Room for the headers every answer gets on its way out (the
                // security headers, cache control, the request id) at once:
                // the map otherwise grows, and rehashes, on the way.
                let mut headers = HeaderMap::with_capacity(16);
                headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *res.headers_mut() = headers;
                res
            }
            Err(e) => ApiError::internal(format!("response did not serialize: {e}")).into_response(),
        }
    }
}

/// `axum::extract::Path` with problem-document rejections.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| ApiError::bad_request("invalid-path", e.body_text()))
    }
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid-query", e.body_text()))
    }
}

/// The `Idempotency-Key` header (required; 1 to 255 visible ASCII characters).
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Err(ApiError::bad_request(
                "idempotency-key-missing",
                "Checkout needs an Idempotency-Key header (e.g. a UUID) so retries never pay twice.",
            ));
        };
        crate::idempotency::parse_key(v).map(IdempotencyKey)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::is_json;

    fn with(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn json_media_types_are_recognized_whatever_their_case_and_parameters() {
        for ct in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/problem+json",
            "APPLICATION/MERGE-PATCH+JSON",
            "application/+json",
        ] {
            assert!(is_json(&with(ct)), "{ct}");
        }
        for ct in
            ["text/json", "application/jsonx", "application/xml", "json", "application/", "+json", "text/plain+json"]
        {
            assert!(!is_json(&with(ct)), "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()), "no content type");
    }
}
