//! The web console under `/console/`, served by the API binary itself.
//!
//! # What it is
//!
//! Four plain HTML pages (sign-in, the databases list, one database, the
//! create form), one vanilla JavaScript module and one CSS file, all
//! compiled into the binary with `include_str!`. The pages are static
//! shells: every piece of data comes from the JSON API, fetched by
//! `console.js` with the API key as the Bearer header. There is no second
//! server, no build step and no npm: the console scales to zero with the
//! API and ships with every binary that mounts [`crate::router`] (the API
//! and the one-command local mode alike).
//!
//! # Why this shape
//!
//! - **The key stays in the tab.** It is kept in `sessionStorage` (per tab
//!   and per origin, gone when the tab closes) and sent only as
//!   `Authorization: Bearer`, never in a URL or a cookie. A server-rendered
//!   console would need the key on every page load, hence a cookie session:
//!   a session store (which an API that scales to zero does not have) and
//!   CSRF defences for every form. With the key out of cookies, a page of
//!   another origin cannot act with it, and the routes here need no
//!   authentication: they serve the same bytes to everyone, and the data
//!   behind them answers 401 without the key.
//! - **A Rust team can own it.** The pages are HTML with no templating
//!   beyond the layout around them and the choices of the forms (engines,
//!   sizes, policies, statuses: filled from the domain types once, at first
//!   use); the script is one module of plain DOM code without
//!   dependencies, readable top to bottom; the API stays the only source of
//!   validation (the forms are `novalidate`, and each problem+json
//!   `errors[].field` is shown next to its field). Nothing to install,
//!   upgrade or audit besides this directory.
//! - **Strict by default.** Every answer here carries a Content-Security-
//!   Policy that allows only this origin's script and style (no inline
//!   code, no `eval`, Trusted Types required so no HTML string can reach
//!   the DOM), no framing, no plugins; pages are `no-store`, so a page shown
//!   with credentials revealed is never kept in a cache. That policy is what
//!   keeps the key safe: `sessionStorage` is readable by any script running
//!   on this origin, and the policy lets only `console.js` run, which
//!   writes API data to the page as text only.
//!
//! The browser tests in `tests/console` drive these pages in headless
//! Chromium against the real `dbaas-local` binary.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use dbaas_core::domain::{DatabaseStatus, OnDelete, Size};
use dbaas_core::engine::Engine;

/// The policy of every console answer. `connect-src 'self'` limits the
/// script's `fetch` to this API; `form-action 'self'` keeps a form from
/// posting elsewhere; Trusted Types make any HTML-string sink throw.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'none'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

const LAYOUT: &str = include_str!("layout.html");

/// A page laid out once, at first use: its `data-page` name (which part
/// of `console.js` runs), its title and its `<main>` content.
macro_rules! page {
    ($name:literal, $title:literal, $file:literal) => {
        LazyLock::new(|| render($name, $title, include_str!($file)))
    };
}

static SIGN_IN: LazyLock<String> = page!("sign-in", "Sign in", "pages/sign-in.html");
static DATABASES: LazyLock<String> = page!("databases", "Databases", "pages/databases.html");
static NEW_DATABASE: LazyLock<String> =
    page!("new-database", "New database", "pages/new-database.html");
static DATABASE: LazyLock<String> = page!("database", "Database", "pages/database.html");

/// A page in the layout, with the choices the API accepts filled in from
/// the domain types (so a new size or engine shows up by itself).
fn render(name: &str, title: &str, main: &str) -> String {
    LAYOUT
        .replace("{{name}}", name)
        .replace("{{title}}", title)
        .replace("{{main}}", main)
        .replace(
            "{{engine_options}}",
            &options(
                Engine::ALL.map(|e| (e.as_str(), e.spec().kind.to_owned())),
                "postgres",
            ),
        )
        .replace(
            "{{size_options}}",
            &options(
                Size::ALL.map(|s| {
                    let (cpu, memory) = s.resources();
                    (s.as_str(), format!("{s} · {cpu} CPU · {memory}"))
                }),
                Size::Small.as_str(),
            ),
        )
        .replace(
            "{{policy_options}}",
            &options(
                OnDelete::ALL.map(|p| (p.as_str(), p.as_str().to_owned())),
                OnDelete::default().as_str(),
            ),
        )
        .replace(
            "{{policy_help}}",
            &OnDelete::ALL
                .map(|p| format!("{}: {}.", p.as_str(), policy_effect(p)))
                .join(" "),
        )
        .replace(
            "{{status_options}}",
            &options(STATUSES.map(|s| (s.as_str(), s.as_str().to_owned())), ""),
        )
}

/// Every status, for the list's filter.
const STATUSES: [DatabaseStatus; 7] = [
    DatabaseStatus::Provisioning,
    DatabaseStatus::Ready,
    DatabaseStatus::Updating,
    DatabaseStatus::Failed,
    DatabaseStatus::Paused,
    DatabaseStatus::Deleting,
    DatabaseStatus::Deleted,
];

/// Does not compile once a status is added: add it to [`STATUSES`] too.
#[allow(dead_code)]
fn every_status_is_listed(s: DatabaseStatus) {
    match s {
        DatabaseStatus::Provisioning
        | DatabaseStatus::Ready
        | DatabaseStatus::Updating
        | DatabaseStatus::Failed
        | DatabaseStatus::Paused
        | DatabaseStatus::Deleting
        | DatabaseStatus::Deleted => {}
    }
}

/// What a deletion with `policy` keeps, for the forms' help text.
fn policy_effect(policy: OnDelete) -> &'static str {
    match policy {
        OnDelete::Wipeout => "everything goes, the credentials Secret too",
        OnDelete::Delete => "pods and volumes go, the Secret stays",
        OnDelete::Halt => "volumes and the Secret stay",
    }
}

/// `<option>`s of `(value, label)`; the values and labels are ours, text
/// without markup, so nothing needs escaping (a test checks).
fn options<const N: usize>(choices: [(&str, String); N], selected: &str) -> String {
    choices
        .iter()
        .map(|(value, label)| {
            let mark = if *value == selected { " selected" } else { "" };
            format!("<option value=\"{value}\"{mark}>{label}</option>")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A static file and its entity tag (a digest of its bytes, so a new
/// binary with a changed file never matches an old cached copy).
struct Asset {
    content_type: &'static str,
    body: &'static str,
    etag: LazyLock<String>,
}

macro_rules! asset {
    ($file:literal, $type:literal) => {
        Asset {
            content_type: $type,
            body: include_str!($file),
            etag: LazyLock::new(|| {
                let digest = Sha256::digest(include_str!($file).as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            }),
        }
    };
}

static SCRIPT: Asset = asset!("assets/console.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("assets/console.css", "text/css; charset=utf-8");
static ICON: Asset = asset!("assets/icon.svg", "image/svg+xml");

/// The console's routes, to merge into the API router. None needs the key.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| html(&DATABASES)))
        .route("/console/sign-in", get(|| html(&SIGN_IN)))
        .route("/console/databases/new", get(|| html(&NEW_DATABASE)))
        // Any id: the page asks the API, which answers 404 or 401.
        .route("/console/databases/{id}", get(|| html(&DATABASE)))
        .route(
            "/console/assets/console.js",
            get(|h: HeaderMap| async move { SCRIPT.serve(&h) }),
        )
        .route(
            "/console/assets/console.css",
            get(|h: HeaderMap| async move { STYLE.serve(&h) }),
        )
        .route(
            "/console/assets/icon.svg",
            get(|h: HeaderMap| async move { ICON.serve(&h) }),
        )
        .layer(middleware::map_response(security_headers))
}

/// A page: never stored, since what it shows (credentials included) is
/// the signed-in tenant's.
async fn html(page: &'static LazyLock<String>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page.as_str(),
    )
        .into_response()
}

impl Asset {
    /// The file, or 304 when the client's copy is this one. Revalidated on
    /// each use (`no-cache`): a few hundred bytes of answer at most.
    fn serve(&self, headers: &HeaderMap) -> Response {
        let etag = self.etag.as_str();
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().trim_start_matches("W/") == etag);
        let common = [(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache")];
        if fresh {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

/// Headers on every console answer, the redirect and the 304s included.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let store = dbaas_store::embedded::SqliteStore::in_memory().expect("in-memory store");
        crate::router(AppState::new(
            Arc::new(store),
            None,
            crate::Limits::default(),
        ))
    }

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_are_complete_strict_and_not_stored() {
        for (uri, name) in [
            ("/console/", "databases"),
            ("/console/sign-in", "sign-in"),
            ("/console/databases/new", "new-database"),
            ("/console/databases/db-anything", "database"),
        ] {
            let response = get(uri, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            let h = response.headers().clone();
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{uri}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
            assert!(
                h[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            let html = text(response).await;
            assert!(html.contains(&format!("data-page=\"{name}\"")), "{uri}");
            assert!(!html.contains("{{"), "{uri}: a placeholder is left");
            // Nothing inline the policy would refuse.
            assert!(
                !html.contains("<script>") && !html.contains(" style="),
                "{uri}"
            );
            assert!(!has_inline_handler(&html), "{uri}: inline event handler");
        }
    }

    #[test]
    fn option_labels_need_no_escaping() {
        for page in [&SIGN_IN, &DATABASES, &NEW_DATABASE, &DATABASE] {
            for option in page.split("<option").skip(1) {
                let text = option.split("</option>").next().unwrap();
                let label = text.split_once('>').unwrap().1;
                assert!(!label.contains(['<', '&', '"']), "{label}");
            }
        }
    }

    /// ` onclick=`-like attributes.
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[tokio::test]
    async fn assets_are_revalidated_by_etag() {
        for (uri, type_) in [
            ("/console/assets/console.js", "text/javascript"),
            ("/console/assets/console.css", "text/css"),
            ("/console/assets/icon.svg", "image/svg+xml"),
        ] {
            let response = get(uri, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            let h = response.headers().clone();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(type_));
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let etag = h[header::ETAG].to_str().unwrap().to_owned();
            let again = get(uri, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{uri}");
            assert!(text(again).await.is_empty());
            let other = get(uri, Some("\"other\"")).await;
            assert_eq!(other.status(), StatusCode::OK, "{uri}");
        }
    }

    #[tokio::test]
    async fn the_bare_path_redirects_and_unknown_paths_stay_api_404s() {
        let response = get("/console", None).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "/console/");
        let missing = get("/console/nope", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            missing.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
