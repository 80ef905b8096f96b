//! The web console in headless Chromium against the real `dbaas-local`.
//!
//! What a user does (sign in, declare a database, watch it become ready,
//! resize it and watch desired and current differ then converge, have an
//! invalid edit refused next to its field, delete it), the response headers
//! of the console, and that a wrong or missing key never shows data.
//! Screenshots of each step go to `target/console-screenshots/<test>/`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use dbaas_console_tests::webdriver::Browser;
use dbaas_console_tests::{Local, screenshot_dir};

/// Long enough for a reconciler pass (every 1 s) and an OpsRequest (two
/// 0.5 s phases) on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// For what the page shows after a click or a navigation.
const SHOW: Duration = Duration::from_secs(20);

/// One browser test at a time: each runs Chromium and the whole control
/// plane, and the machines here have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The console's policy, directive by directive.
const CSP_DIRECTIVES: &[&str] = &[
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
];

fn directives(policy: &str) -> Vec<String> {
    policy
        .split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_send_strict_headers() {
    let local = Local::start("headers").await;
    let pages = [
        "/console/",
        "/console/sign-in",
        "/console/databases/new",
        "/console/databases/db-whatever",
    ];
    for path in pages {
        let response = local.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        let got = directives(csp);
        for want in CSP_DIRECTIVES {
            assert!(
                got.iter().any(|d| d == want),
                "{path}: CSP lacks `{want}`: {csp}"
            );
        }
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(h.get("set-cookie").is_none(), "{path}: sets a cookie");
        let html = response.text().await.unwrap();
        // Nothing inline for the policy to refuse, and the one script.
        assert!(!html.contains("<script>"), "{path}: inline script");
        assert!(!html.contains("<style"), "{path}: inline style");
        assert!(
            html.contains(r#"<script type="module" src="/console/assets/console.js"></script>"#),
            "{path}"
        );
    }
    for (path, type_) in [
        ("/console/assets/console.js", "text/javascript"),
        ("/console/assets/console.css", "text/css"),
        ("/console/assets/icon.svg", "image/svg+xml"),
    ] {
        let response = local.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(type_),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("content-security-policy"), "{path}");
        assert!(h.contains_key("etag"), "{path}");
    }
    let bare = local.get("/console").await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/console/");
    // The pages need no key; the data behind them does.
    let (status, _) = local.call("GET", "/databases", None, None).await;
    assert_eq!(status, 401);
    // The API's own answers are unchanged by the console.
    let (status, problem) = local
        .call("GET", "/databases", Some("dbk_wrong"), None)
        .await;
    assert_eq!(status, 401, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_key_never_renders_data() {
    let _one = ONE_BROWSER.lock().await;
    let shots = screenshot_dir("wrong-key");
    let local = Local::start("wrong-key").await;
    // Data that must not show: a database of the dev tenant.
    let db = local.create("secret-orders", "postgres").await;
    let id = db["id"].as_str().unwrap().to_owned();
    let browser = Browser::start(1280, 900).await;
    let base = &local.base;
    let leaks = |html: &str| html.contains("secret-orders") || html.contains(&id);

    // No key: every page sends to the sign-in page, which says why.
    for path in ["/console/", &format!("/console/databases/{id}")] {
        browser.goto(&format!("{base}{path}")).await;
        browser
            .wait_text("#flash", "the sign-in prompt", SHOW, |t| {
                t.contains("Sign in with an API key")
            })
            .await;
        assert!(browser.url().await.ends_with("/console/sign-in"));
        let html = page_html(&browser).await;
        assert!(!leaks(&html), "{path} without a key shows data:\n{html}");
    }

    // A wrong key: refused, said so next to the field, not kept.
    let input = browser.wait_for("#api-key:not([disabled])", SHOW).await;
    input
        .type_text("dbk_thisisnotakey00000000000000000000")
        .await
        .unwrap();
    click(&browser, "#sign-in-form button[type=submit]").await;
    let error = browser
        .wait_text("#sign-in-error", "the refusal", SHOW, |t| !t.is_empty())
        .await;
    assert!(
        error.contains("refused") && error.contains("invalid API key"),
        "{error}"
    );
    assert_eq!(
        browser
            .find("#api-key")
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(browser.url().await.ends_with("/console/sign-in"));
    assert_eq!(stored_key(&browser).await, Value::Null);
    browser
        .screenshot(&shots.join("01-wrong-key-refused.png"))
        .await;

    // A key that stopped working (here: a wrong one put in the session):
    // the list and the database page sign out without showing anything.
    for path in ["/console/", &format!("/console/databases/{id}")] {
        browser.goto(&format!("{base}/console/sign-in")).await;
        browser
            .execute(
                "sessionStorage.setItem('dbaas.apiKey', arguments[0])",
                vec![json!("dbk_revokedkey0000000000000000000000")],
            )
            .await
            .unwrap();
        browser.goto(&format!("{base}{path}")).await;
        browser
            .wait_text("#flash", "the sign-out message", SHOW, |t| {
                t.contains("refused the key")
            })
            .await;
        assert!(browser.url().await.ends_with("/console/sign-in"), "{path}");
        assert_eq!(stored_key(&browser).await, Value::Null);
        let html = page_html(&browser).await;
        assert!(!leaks(&html), "{path} with a wrong key shows data:\n{html}");
        assert!(
            browser
                .find_all("#databases tr[data-id]")
                .await
                .unwrap()
                .is_empty()
        );
    }
    browser
        .screenshot(&shots.join("02-wrong-key-signed-out.png"))
        .await;

    // The right key does show it (so the checks above can fail).
    let input = browser.wait_for("#api-key:not([disabled])", SHOW).await;
    input.type_text(&local.key).await.unwrap();
    click(&browser, "#sign-in-form button[type=submit]").await;
    // Back where the wrong key was refused.
    browser
        .wait_text("#db-name", "the database page", SHOW, |t| {
            t == "secret-orders"
        })
        .await;
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/console/databases/{id}"))
    );

    assert_console_clean(&browser).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_create_watch_resize_reject_and_delete() {
    let _one = ONE_BROWSER.lock().await;
    let shots = screenshot_dir("flow");
    let local = Local::start("flow").await;
    let browser = Browser::start(1280, 1000).await;
    let base = &local.base;
    let shot = |name: &str| shots.join(format!("{name}.png"));

    // Sign in.
    browser.goto(&format!("{base}/console/")).await;
    let input = browser.wait_for("#api-key:not([disabled])", SHOW).await;
    browser.screenshot(&shot("01-sign-in")).await;
    input.type_text(&local.key).await.unwrap();
    click(&browser, "#sign-in-form button[type=submit]").await;
    browser.wait_for("#databases[aria-busy=false]", SHOW).await;
    assert!(browser.url().await.ends_with("/console/"));
    assert!(shown(&browser, "#list-empty").await);
    // The key: in this tab's session storage, nowhere else.
    assert_eq!(stored_key(&browser).await, json!(local.key));
    let cookies = browser
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""));
    let local_storage = browser
        .execute("return localStorage.length", vec![])
        .await
        .unwrap();
    assert_eq!(local_storage, json!(0));
    assert!(!browser.url().await.contains(&local.key));
    browser.screenshot(&shot("02-no-databases")).await;

    // Declare a database with the form.
    click(&browser, "a.button[href='/console/databases/new']").await;
    let name = browser.wait_for("#f-name:not([disabled])", SHOW).await;
    name.type_text("orders").await.unwrap();
    select(&browser, "#f-engine", "postgres").await;
    // The versions come from the catalog (the stand-in installs several).
    browser
        .wait("the version catalog", SHOW, || async {
            let n = browser.find_all("#f-version option").await.ok()?.len();
            (n > 2).then_some(())
        })
        .await;
    select(&browser, "#f-size", "db.t3.small").await;
    set_number(&browser, "#f-replicas", "1").await;
    set_number(&browser, "#f-storage_gb", "20").await;
    assert_labelled(&browser).await;
    browser.screenshot(&shot("03-create-form")).await;
    click(&browser, "#create-form button[type=submit]").await;
    browser
        .wait_text("#db-name", "the new database's page", SHOW, |t| {
            t == "orders"
        })
        .await;
    let id = browser.url().await.rsplit('/').next().unwrap().to_owned();
    assert!(id.starts_with("db-"), "{id}");
    let flash = browser.text("#flash").await;
    assert!(flash.contains("Declared orders"), "{flash}");
    browser.screenshot(&shot("04-provisioning")).await;

    // Watch it become ready, without reloading the page.
    browser
        .execute("window.stillTheSamePage = true", vec![])
        .await
        .unwrap();
    browser
        .wait_text("#db-status", "status ready", CONVERGE, |t| t == "ready")
        .await;
    browser
        .wait_text(
            "tr[data-field=size] td.current",
            "the running size",
            SHOW,
            |t| t == "db.t3.small",
        )
        .await;
    browser
        .wait_text("#connection", "the connection details", SHOW, |t| {
            t.contains("postgresql://")
        })
        .await;
    assert_eq!(
        browser
            .execute("return window.stillTheSamePage === true", vec![])
            .await
            .unwrap(),
        json!(true),
        "the page reloaded instead of refreshing its parts"
    );
    let refreshes = browser
        .execute(
            "return Number(document.body.dataset.refreshes || 0)",
            vec![],
        )
        .await
        .unwrap();
    assert!(refreshes.as_u64().unwrap() >= 1, "{refreshes}");
    browser
        .wait_text("#operations", "the provision operation", SHOW, |t| {
            t.contains("provision") && t.contains("succeeded")
        })
        .await;
    assert_labelled(&browser).await;
    browser.screenshot(&shot("05-ready")).await;

    // Credentials show on an explicit click only.
    assert!(!shown(&browser, "#credentials").await);
    click(&browser, "#reveal").await;
    let user = browser
        .wait_text("#username", "the username", SHOW, |t| !t.is_empty())
        .await;
    assert_eq!(user, "postgres");
    assert!(!browser.text("#password").await.is_empty());
    click(&browser, "#reveal").await;
    browser
        .wait("the credentials hidden again", SHOW, || async {
            let shown = browser
                .find("#credentials")
                .await
                .ok()?
                .displayed()
                .await
                .ok()?;
            (!shown).then_some(())
        })
        .await;

    // Resize: desired changes at once, current follows once KubeDB did it.
    select(&browser, "#f-size", "db.t3.large").await;
    click(&browser, "#edit-form button[type=submit]").await;
    browser
        .wait_for("tr[data-field=size][data-drift=true]", SHOW)
        .await;
    assert_eq!(
        browser.text("tr[data-field=size] td.desired").await,
        "db.t3.large"
    );
    assert_eq!(
        browser.text("tr[data-field=size] td.current").await,
        "db.t3.small"
    );
    assert_eq!(
        browser.text("tr[data-field=size] td.state").await,
        "differs"
    );
    let saved = browser.text("#action-message").await;
    assert!(saved.contains("Saved size"), "{saved}");
    browser.screenshot(&shot("06-size-drifted")).await;
    browser
        .wait_text(
            "tr[data-field=size] td.current",
            "the size to converge",
            CONVERGE,
            |t| t == "db.t3.large",
        )
        .await;
    browser
        .wait_for("tr[data-field=size][data-drift=false]", SHOW)
        .await;
    browser
        .wait_text("#db-status", "status ready again", CONVERGE, |t| {
            t == "ready"
        })
        .await;
    browser
        .wait_text("#operations", "the scaling operation", CONVERGE, |t| {
            t.contains("scale_vertical") && !t.contains("running") && !t.contains("pending")
        })
        .await;
    let op_status = browser
        .text("#operations tr[data-type=scale_vertical] td .status")
        .await;
    assert_eq!(op_status, "succeeded");
    browser
        .wait_text("#plan-summary", "the plan in sync", CONVERGE, |t| {
            t.starts_with("In sync")
        })
        .await;
    browser
        .wait_text("#events", "the history of the change", SHOW, |t| {
            t.contains("size: db.t3.small → db.t3.large")
        })
        .await;
    assert_eq!(
        browser
            .execute("return window.stillTheSamePage === true", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    browser.screenshot(&shot("07-size-converged")).await;

    // No refreshing while the tab is hidden; at once when it shows again.
    browser
        .execute(
            "window.visibility = []; document.addEventListener('visibilitychange', () => \
             window.visibility.push([document.hidden, Number(document.body.dataset.refreshes)]))",
            vec![],
        )
        .await
        .unwrap();
    let console_tab = browser.window().await;
    let other_tab = browser.new_tab().await;
    browser.switch_to(&other_tab).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    browser.close_tab().await;
    browser.switch_to(&console_tab).await;
    let seen = browser
        .execute("return window.visibility", vec![])
        .await
        .unwrap();
    let seen = seen.as_array().unwrap();
    assert!(seen.len() >= 2, "no visibility changes seen: {seen:?}");
    assert_eq!(seen[0][0], json!(true), "{seen:?}");
    assert_eq!(seen[1][0], json!(false), "{seen:?}");
    assert_eq!(
        seen[0][1], seen[1][1],
        "the page refreshed while hidden (refresh counts when hidden, when shown): {seen:?}"
    );
    let shown_at = seen[1][1].as_u64().unwrap();
    browser
        .wait("a refresh once visible again", SHOW, || async {
            let n = browser
                .execute("return Number(document.body.dataset.refreshes)", vec![])
                .await
                .ok()?;
            (n.as_u64()? > shown_at).then_some(())
        })
        .await;
    // The same page on a phone: one column, nothing wider than the screen
    // (tables scroll inside their frames).
    browser.resize(390, 844).await;
    assert_fits_the_width(&browser).await;
    browser.screenshot(&shot("08-phone")).await;
    browser.resize(1280, 1000).await;

    // An invalid edit: storage below the current 20 GiB, refused by the API,
    // the field named next to the field; nothing recorded.
    set_number(&browser, "#f-storage_gb", "10").await;
    click(&browser, "#edit-form button[type=submit]").await;
    let error = browser
        .wait_text("#e-storage_gb", "the storage error", SHOW, |t| {
            !t.is_empty()
        })
        .await;
    assert!(error.contains("storage only grows"), "{error}");
    assert_eq!(
        browser
            .find("#f-storage_gb")
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    let summary = browser.text("#form-error").await;
    assert!(summary.contains("422"), "{summary}");
    assert_eq!(
        browser.text("tr[data-field=storage_gb] td.desired").await,
        "20 GiB"
    );
    // Still there after a refresh or two.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        browser
            .text("#e-storage_gb")
            .await
            .contains("storage only grows")
    );
    browser.screenshot(&shot("09-invalid-edit")).await;
    let (_, stored) = local
        .call("GET", &format!("/databases/{id}"), Some(&local.key), None)
        .await;
    assert_eq!(stored["storage_gb"], 20);
    click(&browser, "#discard").await;
    browser
        .wait("the form back to the desired state", SHOW, || async {
            let v = browser
                .find("#f-storage_gb")
                .await
                .ok()?
                .prop("value")
                .await
                .ok()?;
            (v == json!("20")).then_some(())
        })
        .await;

    // Pause and resume, then a restart: each a desired change the
    // reconciler carries out, shown as it happens.
    click(&browser, "#pause").await;
    browser
        .wait_text("#db-status", "status paused", CONVERGE, |t| t == "paused")
        .await;
    browser
        .wait_text(
            "tr[data-field=paused] td.current",
            "KubeDB halted it",
            CONVERGE,
            |t| t == "yes",
        )
        .await;
    assert_eq!(browser.text("#pause").await, "Resume");
    assert_eq!(
        browser
            .find("#restart")
            .await
            .unwrap()
            .prop("disabled")
            .await
            .unwrap(),
        json!(true),
        "a paused database cannot restart"
    );
    browser.screenshot(&shot("10-paused")).await;
    click(&browser, "#pause").await;
    browser
        .wait_text(
            "tr[data-field=paused] td.current",
            "resumed",
            CONVERGE,
            |t| t == "no",
        )
        .await;
    browser
        .wait_text(
            "#db-status",
            "status ready after the resume",
            CONVERGE,
            |t| t == "ready",
        )
        .await;
    browser
        .wait("the restart button enabled", SHOW, || async {
            let disabled = browser
                .find("#restart")
                .await
                .ok()?
                .prop("disabled")
                .await
                .ok()?;
            (disabled == json!(false)).then_some(())
        })
        .await;
    click(&browser, "#restart").await;
    browser
        .wait_text(
            "tr[data-field=restarts] td.current",
            "the restart done",
            CONVERGE,
            |t| t == "1",
        )
        .await;
    browser
        .wait_text(
            "#operations tr[data-type=restart] .status",
            "the restart operation",
            CONVERGE,
            |t| t == "succeeded",
        )
        .await;
    browser
        .wait_text(
            "#db-status",
            "status ready after the restart",
            CONVERGE,
            |t| t == "ready",
        )
        .await;

    // Protection: the delete is refused, and the field is named.
    click(&browser, "#f-deletion_protection").await;
    click(&browser, "#edit-form button[type=submit]").await;
    browser
        .wait_text("#action-message", "protection saved", SHOW, |t| {
            t.contains("Saved deletion_protection")
        })
        .await;
    click(&browser, "#delete").await;
    browser.wait_for("#delete-dialog[open]", SHOW).await;
    click(&browser, "#delete-confirm").await;
    let refused = browser
        .wait_text("#action-message", "the refusal", SHOW, |t| {
            t.contains("409")
        })
        .await;
    assert!(refused.contains("deletion_protection"), "{refused}");
    assert_eq!(browser.text("#e-deletion_protection").await, "is true");
    assert_eq!(browser.text("#db-status").await, "ready");
    browser
        .screenshot(&shot("11-delete-refused-protected"))
        .await;
    click(&browser, "#f-deletion_protection").await;
    click(&browser, "#edit-form button[type=submit]").await;
    browser
        .wait_text("#action-message", "protection off", SHOW, |t| {
            t.contains("Saved deletion_protection")
        })
        .await;

    // Delete, confirmed in the dialog; cancelling first changes nothing.
    click(&browser, "#delete").await;
    browser.wait_for("#delete-dialog[open]", SHOW).await;
    click(&browser, "#delete-cancel").await;
    assert!(
        browser
            .find_all("#delete-dialog[open]")
            .await
            .unwrap()
            .is_empty()
    );
    click(&browser, "#delete").await;
    browser.wait_for("#delete-dialog[open]", SHOW).await;
    let asks = browser.text("#delete-dialog").await;
    assert!(asks.contains("Delete orders?"), "{asks}");
    browser.screenshot(&shot("12-delete-confirm")).await;
    click(&browser, "#delete-confirm").await;
    browser
        .wait_text("#flash", "the deletion notice", SHOW, |t| {
            t.contains("Deletion of orders requested")
        })
        .await;
    assert!(browser.url().await.ends_with("/console/"));
    browser.screenshot(&shot("13-deletion-requested")).await;
    // Gone from the list (deleted databases are left out) once it is done.
    browser
        .wait("the database to leave the list", CONVERGE, || async {
            let rows = browser
                .find_all(&format!("#databases tr[data-id='{id}']"))
                .await
                .ok()?;
            rows.is_empty().then_some(())
        })
        .await;
    let (_, gone) = local
        .call("GET", &format!("/databases/{id}"), Some(&local.key), None)
        .await;
    assert_eq!(gone["status"], "deleted", "{gone}");
    select(&browser, "#filter-status", "deleted").await;
    click(&browser, "#filters button[type=submit]").await;
    browser
        .wait_text(
            &format!("#databases tr[data-id='{id}']"),
            "the deleted record",
            SHOW,
            |t| t.contains("deleted"),
        )
        .await;
    browser.screenshot(&shot("14-deleted")).await;
    browser.resize(390, 844).await;
    assert_fits_the_width(&browser).await;
    browser.resize(1280, 1000).await;

    // Sign out: the key is forgotten.
    click(&browser, "#sign-out").await;
    browser
        .wait_text("#flash", "the sign-out notice", SHOW, |t| {
            t.contains("Signed out")
        })
        .await;
    assert_eq!(stored_key(&browser).await, Value::Null);

    assert_console_clean(&browser).await;
    browser.close().await;
    report(&shots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_and_pages() {
    let _one = ONE_BROWSER.lock().await;
    let shots = screenshot_dir("list");
    let local = Local::start("list").await;
    let mut ids = Vec::new();
    for (name, engine) in [
        ("alpha", "postgres"),
        ("bravo", "postgres"),
        ("charlie", "postgres"),
        ("delta", "mysql"),
    ] {
        ids.push(
            local.create(name, engine).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let browser = Browser::start(1280, 900).await;
    let base = &local.base;
    let rows = || async {
        let mut names = Vec::new();
        for row in browser
            .find_all("#databases tbody tr[data-id] th a")
            .await
            .unwrap()
        {
            names.push(row.text().await.unwrap_or_default());
        }
        names.sort();
        names
    };

    // Signing in with the keyboard only: the key, then Enter; back to the
    // page asked for.
    browser.goto(&format!("{base}/console/?limit=3")).await;
    let input = browser.wait_for("#api-key:not([disabled])", SHOW).await;
    assert_labelled(&browser).await;
    let focused = browser
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("api-key"), "the key field has the focus");
    input
        .type_text(&format!("{}\u{E007}", local.key))
        .await
        .unwrap();
    browser.wait_for("#databases[aria-busy=false]", SHOW).await;
    assert!(browser.url().await.ends_with("/console/?limit=3"));
    assert_labelled(&browser).await;

    // Pages of three, by the API's cursor (in id order): then the fourth.
    let first = rows().await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(!shown(&browser, "#first-page").await);
    browser.screenshot(&shots.join("01-first-page.png")).await;
    click(&browser, "#next-page").await;
    let second = browser
        .wait("the second page", SHOW, || async {
            let names = rows().await;
            (browser.url().await.contains("cursor=") && names.len() == 1).then_some(names)
        })
        .await;
    let mut all = [first, second].concat();
    all.sort();
    assert_eq!(all, ["alpha", "bravo", "charlie", "delta"]);
    assert!(!shown(&browser, "#next-page").await);
    browser.screenshot(&shots.join("02-second-page.png")).await;
    click(&browser, "#first-page").await;
    browser
        .wait("the first page again", SHOW, || async {
            (rows().await.len() == 3).then_some(())
        })
        .await;

    // Filters: by engine, by status; an empty result says so.
    select(&browser, "#filter-engine", "mysql").await;
    click(&browser, "#filters button[type=submit]").await;
    browser
        .wait("only the MySQL database", SHOW, || async {
            (rows().await == ["delta"]).then_some(())
        })
        .await;
    assert!(browser.url().await.contains("engine=mysql"));
    browser
        .screenshot(&shots.join("03-engine-filter.png"))
        .await;
    select(&browser, "#filter-engine", "").await;
    select(&browser, "#filter-status", "failed").await;
    click(&browser, "#filters button[type=submit]").await;
    browser
        .wait("the failed filter applied", SHOW, || async {
            browser.url().await.contains("status=failed").then_some(())
        })
        .await;
    browser.wait_for("#databases[aria-busy=false]", SHOW).await;
    assert!(rows().await.is_empty());
    assert!(shown(&browser, "#list-empty").await);
    // All four become ready, in sync.
    browser.goto(&format!("{base}/console/?status=ready")).await;
    browser
        .wait("all four ready", CONVERGE, || async {
            (rows().await.len() == 4).then_some(())
        })
        .await;
    for cell in browser
        .find_all("#databases tbody td[data-drift]")
        .await
        .unwrap()
    {
        assert_eq!(
            cell.attr("data-drift").await.unwrap().as_deref(),
            Some("false")
        );
    }
    browser
        .screenshot(&shots.join("04-status-filter.png"))
        .await;

    // Drift marked in the list: a paused database keeps a resize for
    // after its resume, so desired and current differ until then.
    let alpha = &ids[0];
    let (status, body) = local
        .call(
            "PATCH",
            &format!("/databases/{alpha}"),
            Some(&local.key),
            Some(json!({"paused": true, "size": "db.t3.large"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    browser.goto(&format!("{base}/console/")).await;
    let row = format!("#databases tr[data-id='{alpha}']");
    browser
        .wait_text(&row, "alpha paused", CONVERGE, |t| t.contains("paused"))
        .await;
    let size = browser
        .wait_text(
            &format!("{row} td[data-drift=true]"),
            "alpha's size marked",
            SHOW,
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(size, "db.t3.large\ndiffers: runs db.t3.small");
    let marked = browser
        .find_all(&format!("{row} td[data-drift=true]"))
        .await
        .unwrap()
        .len();
    assert_eq!(marked, 1, "only the size differs");
    for other in &ids[1..] {
        let cells = format!("#databases tr[data-id='{other}'] td[data-drift=true]");
        assert!(
            browser.find_all(&cells).await.unwrap().is_empty(),
            "{other}"
        );
    }
    browser.screenshot(&shots.join("05-drift.png")).await;

    assert_console_clean(&browser).await;
    browser.close().await;
}

/// Clicks the element at `css`.
async fn click(browser: &Browser, css: &str) {
    let element = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
}

/// Whether the element at `css` is displayed.
async fn shown(browser: &Browser, css: &str) -> bool {
    let element = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
    element.displayed().await.unwrap()
}

/// Chooses `value` in the `<select>` at `css`, as a user clicking it would.
async fn select(browser: &Browser, css: &str, value: &str) {
    browser
        .find(&format!("{css} option[value='{value}']"))
        .await
        .unwrap_or_else(|e| panic!("{css} has no option {value}: {e}"))
        .click()
        .await
        .unwrap();
    let chosen = browser
        .find(css)
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen, json!(value), "{css}");
}

/// Replaces the text of the input at `css` by typing `value`.
async fn set_number(browser: &Browser, css: &str, value: &str) {
    let input = browser.find(css).await.unwrap();
    input.clear().await.unwrap();
    input.type_text(value).await.unwrap();
}

/// Every form control has a label (or an ARIA name).
async fn assert_labelled(browser: &Browser) {
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input, select, textarea')] \
               .filter((e) => e.type !== 'hidden' && !e.labels.length \
                 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')) \
               .map((e) => e.outerHTML)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "controls without a label");
}

/// The page does not scroll sideways.
async fn assert_fits_the_width(browser: &Browser) {
    let widths = browser
        .execute(
            "const e = document.documentElement; \
             const wide = [...document.querySelectorAll('body *')] \
               .filter((n) => n.getBoundingClientRect().right > e.clientWidth + 1) \
               .filter((n) => !n.closest('.table-wrap, dialog:not([open])')) \
               .map((n) => n.tagName + (n.id ? '#' + n.id : '') + '.' + n.className + ' ' + n.textContent.slice(0, 60)); \
             return [e.scrollWidth, e.clientWidth, wide.slice(0, 10)]",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page is wider than the window (scroll, client, widest elements): {widths}"
    );
}

async fn stored_key(browser: &Browser) -> Value {
    browser
        .execute("return sessionStorage.getItem('dbaas.apiKey')", vec![])
        .await
        .unwrap()
}

async fn page_html(browser: &Browser) -> String {
    browser
        .execute("return document.documentElement.outerHTML", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// No script error and no policy violation in the browser's console. The
/// API's expected refusals (401, 404, 409, 422) are logged by Chromium as
/// failed loads; anything else fails the test.
async fn assert_console_clean(browser: &Browser) {
    let bad: Vec<_> = browser
        .console_log()
        .await
        .into_iter()
        .filter(|(level, message)| {
            let expected_refusal = message.contains("Failed to load resource")
                && ["401", "404", "409", "422"]
                    .iter()
                    .any(|s| message.contains(&format!("status of {s}")));
            (level == "SEVERE" && !expected_refusal)
                || message.contains("Content Security Policy")
                || message.contains("Trusted Type")
        })
        .collect();
    assert!(bad.is_empty(), "the browser console has errors: {bad:#?}");
}

fn report(dir: &Path) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    eprintln!("screenshots:");
    for f in files {
        eprintln!("  {}", f.display());
    }
}
