//! The dashboard page: one HTML file, one script, one stylesheet, compiled
//! into the binary (no CDN, works offline). The script builds every element
//! with `textContent`, never HTML from data.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiConfigError, Shared};

const INDEX: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The page's policy: only its own script, style and API; embeddable only by `frame_ancestors`.
pub(super) fn content_security_policy(
    frame_ancestors: &[String],
) -> Result<HeaderValue, ApiConfigError> {
    for a in frame_ancestors {
        // A source expression is one token: no separators, quotes only around keywords.
        let keyword = matches!(a.as_str(), "'self'" | "'none'");
        let plain = !a.is_empty()
            && a.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'\''));
        if !(keyword || plain) {
            return Err(ApiConfigError::FrameAncestor { value: a.clone() });
        }
    }
    let ancestors =
        if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    );
    HeaderValue::from_str(&policy).map_err(|_| ApiConfigError::FrameAncestor { value: ancestors })
}

pub(super) async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = asset(INDEX, "text/html; charset=utf-8");
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, shared.csp.clone());
    r
}

pub(super) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(super) async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_cannot_inject_directives() {
        assert!(content_security_policy(&["https://a.example; script-src *".into()]).is_err());
        assert!(content_security_policy(&["'unsafe-inline'".into()]).is_err());
        let ok =
            content_security_policy(&["'self'".into(), "https://explorer.livepeer.org".into()]);
        let ok = ok.map(|v| v.to_str().map(str::to_owned).unwrap_or_default()).unwrap_or_default();
        assert!(ok.ends_with("frame-ancestors 'self' https://explorer.livepeer.org"), "{ok}");
    }
}
