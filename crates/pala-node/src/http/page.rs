//! `GET /ui`: the live chain page, one HTML file with its script and style sheet, all
//! embedded in the binary (no CDN, no build step). The page polls `GET /chain` and draws
//! the block tree as the slides draw PaLa; see `ui/ui.js`.
//!
//! Everything the script shows comes from JSON and is set as text, never as markup; the
//! content security policy allows only these three files and requests to this origin,
//! so even a bug there could not load or run anything else.

use super::reply::full;
use super::service::Body;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::Response;

/// The page.
pub const INDEX_HTML: &str = include_str!("ui/index.html");
/// Its script.
pub const UI_JS: &str = include_str!("ui/ui.js");
/// Its style sheet.
pub const UI_CSS: &str = include_str!("ui/ui.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The asset at `path` (`/ui`, `/ui/ui.js`, `/ui/ui.css`), if it is one.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let (body, kind) = match path {
        "/ui" => (INDEX_HTML, "text/html; charset=utf-8"),
        "/ui/ui.js" => (UI_JS, "text/javascript; charset=utf-8"),
        "/ui/ui.css" => (UI_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = full(200, body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // A new binary may bring a new page: never serve a stale copy.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}
