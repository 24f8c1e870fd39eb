//! CORS with an exact allowlist of origins. Reads only (GET/HEAD); the one
//! request header allowed is `authorization` (bearer tokens, never cookies,
//! so credentials mode is never enabled).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiConfigError, Shared};

/// The configured allowlist.
#[derive(Debug)]
pub(super) struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    pub(super) fn new(origins: &[String]) -> Result<Self, ApiConfigError> {
        let mut out = Vec::new();
        let mut any = false;
        for o in origins {
            if o == "*" {
                any = true;
                continue;
            }
            let valid = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.ends_with('/')
                && o.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty()
                        && !rest.contains('/')
                        && rest.bytes().all(|b| b.is_ascii_graphic())
                });
            if !valid {
                return Err(ApiConfigError::CorsOrigin { origin: o.clone() });
            }
            out.push(o.to_ascii_lowercase());
        }
        Ok(Self { any, origins: out })
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Answers preflights and adds CORS headers for allowed origins.
pub(super) async fn layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| shared.cors.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if origin.is_some() {
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        r
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_at_configuration() {
        for bad in [
            "explorer.livepeer.org",
            "https://x.org/",
            "https://x.org/path",
            "https://",
            "https://a b",
        ] {
            assert!(Cors::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
        let c = Cors::new(&["https://Explorer.Livepeer.org".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.allows("https://explorer.livepeer.org"));
        assert!(!c.allows("https://explorer.livepeer.org.evil.example"));
        assert!(!c.allows("null"));
    }
}
