//! The bearer-token check in front of every data route: with `api.token` set, a request
//! without `Authorization: Bearer <token>` gets 401 before any handler runs.
//!
//! Open without a token: `/healthz` (a supervisor polls it and learns nothing from it)
//! and the web page's static files (`/`, `/assets/*`), which hold no data — the page
//! itself asks for the token and sends it with every request it makes.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.config.api.token.as_deref() else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    match presented(req.headers()) {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => refuse("the bearer token is wrong"),
        None => refuse("this daemon needs a token: send Authorization: Bearer <api.token> (the CLI reads LOGAGG_TOKEN or api.token)"),
    }
}

fn is_open(path: &str) -> bool {
    path == "/healthz" || path == "/" || path.starts_with("/assets/")
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares in time that depends only on the lengths, so response times do not tell an
/// attacker how many leading bytes of a guess were right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(why: &str) -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, Json(json!({ "error": why }))).into_response();
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"logagg\""),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(presented(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(presented(&h), None);
    }

    #[test]
    fn comparison() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
