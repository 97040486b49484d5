//! The web timeline at `/`: one page, its script and its style sheet, compiled into the
//! binary so that the daemon serves them itself (no web server, no CDN, nothing to build
//! on the user's machine). The page is plain JavaScript that reads the same API as the
//! CLI, with the token when one is set; these routes need none, so a browser can load the
//! page before it knows the token.

use axum::http::header::{self, HeaderName};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// Log lines are whatever the apps wrote: the page only ever puts them in the DOM as
/// text, and this policy keeps any script but our own from running should that slip.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `no-cache`: the browser revalidates each load, so a daemon upgraded in place never
/// runs an old script against a new API.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (HeaderName::from_static("content-security-policy"), CSP),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::api::router;
    use crate::api::testing::state_with;

    /// (status, content type, cache control, body) of `GET path`.
    async fn get(path: &str) -> (StatusCode, String, String, String) {
        let (_dir, state) = state_with(vec![]);
        let resp = router(state)
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let header = |name| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (ct, cc) = (header("content-type"), header("cache-control"));
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, ct, cc, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types() {
        let (status, ct, cc, body) = get("/").await;
        assert_eq!(
            (status, ct.as_str(), cc.as_str()),
            (StatusCode::OK, "text/html; charset=utf-8", "no-cache")
        );
        assert!(body.starts_with("<!doctype html>"), "{body}");
        // Relative to the page, so the daemon works behind a path prefix too.
        assert!(body.contains(r#"src="assets/app.js""#), "{body}");
        assert!(body.contains(r#"href="assets/style.css""#), "{body}");

        let (status, ct, cc, body) = get("/assets/app.js").await;
        assert_eq!(
            (status, ct.as_str(), cc.as_str()),
            (StatusCode::OK, "text/javascript; charset=utf-8", "no-cache")
        );
        assert_eq!(body, super::APP_JS);

        let (status, ct, cc, body) = get("/assets/style.css").await;
        assert_eq!(
            (status, ct.as_str(), cc.as_str()),
            (StatusCode::OK, "text/css; charset=utf-8", "no-cache")
        );
        assert_eq!(body, super::STYLE_CSS);
    }

    #[tokio::test]
    async fn an_unknown_asset_is_the_api_404() {
        let (status, ct, _, body) = get("/assets/nope.js").await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::NOT_FOUND, "application/json")
        );
        assert_eq!(body, r#"{"error":"no such route: /assets/nope.js"}"#);
    }
}
