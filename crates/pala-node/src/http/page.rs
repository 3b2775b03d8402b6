//! `GET /ui`: the live chain page, one HTML file with its script and style sheet, all
//! embedded in the binary (no CDN, no build step). The page polls `GET /chain` and draws
//! the block tree as the slides draw PaLa; see `ui/ui.js`.
//!
//! Everything the script shows comes from JSON and is set as text, never as markup; the
//! content security policy allows only these three files, requests to this origin and
//! the page's empty `data:` icon (which spares the browser a `/favicon.ico` 404), so even
//! a bug there could not load or run anything else.

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
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_sets_text_never_markup() {
        // What JSON carries (peer names, causes) must never be parsed as HTML.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!UI_JS.contains(sink), "ui.js uses {sink}");
        }
        assert!(UI_JS.contains("textContent"));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX_HTML.contains("src=\"/ui/ui.js\""));
        assert!(INDEX_HTML.contains("href=\"/ui/ui.css\""));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        // The SVG namespace is a name, not a request.
        let script = UI_JS.replace("http://www.w3.org/2000/svg", "");
        assert!(!script.contains("http:") && !script.contains("https:"));
        let r = asset("/ui").unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(asset("/ui/other.js").is_none());
    }
}
