//! The built site as a browser gets it: which bundle each page loads, built files sent
//! precompressed and cached for a year, pages and JSON compressed and revalidated, and a
//! 404 page. It reads the site the test command built (`scripts/build-site.sh`, or a
//! cargo-leptos build, whose one bundle every page loads).

use crate::helpers::*;
use clarion::server::http::site::SiteAssets;
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};

fn built_site() -> SiteAssets {
    SiteAssets::load(std::path::Path::new("target/site")).expect("the site is built (scripts/build-site.sh)")
}

#[tokio::test]
async fn the_page_loads_its_own_bundle_and_only_admin_loads_the_consoles() {
    let app = spawn_app("").await;
    let assets = built_site();
    let (page_bundle, console_bundle) = (assets.bundle_for("/"), assets.bundle_for("/admin"));
    let page = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("/pkg/{page_bundle}.wasm")), "{page}");
    assert!(page.contains(&assets.stylesheet_href()));
    // The islands runtime hydrates only the push control.
    assert!(page.contains("<leptos-island"));
    let admin = app.client.get(app.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert!(admin.contains(&format!("/pkg/{console_bundle}.wasm")), "{admin}");
    if page_bundle != console_bundle {
        assert!(!page.contains(console_bundle), "a visitor's page must not load the console");
    }
}

#[tokio::test]
async fn built_files_are_sent_precompressed_and_cached_for_a_year() {
    let app = spawn_app("").await;
    let wasm = app.url(&format!("/pkg/{}.wasm", built_site().bundle_for("/")));
    let raw = app.client.get(&wasm).send().await.unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()[CONTENT_TYPE], "application/wasm");
    assert_eq!(raw.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(raw.headers().get(CONTENT_ENCODING).is_none());
    let raw_len = raw.bytes().await.unwrap().len();
    for encoding in ["br", "gzip"] {
        let sent = app.client.get(&wasm).header(ACCEPT_ENCODING, encoding).send().await.unwrap();
        assert_eq!(sent.status(), 200);
        assert_eq!(sent.headers()[CONTENT_ENCODING], encoding);
        assert_eq!(sent.headers()[CONTENT_TYPE], "application/wasm");
        assert!(sent.headers().get_all(VARY).iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("accept-encoding")));
        assert_eq!(sent.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        let len = sent.bytes().await.unwrap().len();
        assert!(len * 2 < raw_len, "{encoding}: {len} bytes of {raw_len}");
    }
    // Stable names (icons) are revalidated, never cached blind.
    let icon = app.client.get(app.url("/icon.svg")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()[CACHE_CONTROL], "no-cache");
    assert!(icon.headers().get("last-modified").is_some());
}

#[tokio::test]
async fn pages_and_json_are_compressed_and_revalidated() {
    let app = spawn_app("").await;
    let page = app.client.get(app.url("/")).header(ACCEPT_ENCODING, "br").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[CONTENT_ENCODING], "br");
    assert_eq!(page.headers()[CACHE_CONTROL], "no-cache");
    let json = app.client.get(app.url("/api/v1/vapid-public-key")).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()[CONTENT_ENCODING], "gzip");
    // Without Accept-Encoding, the same answer comes as it is.
    let plain = app.client.get(app.url("/api/v1/vapid-public-key")).send().await.unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert!(plain.text().await.unwrap().contains("public_key"));
}

#[tokio::test]
async fn a_path_that_is_neither_a_page_nor_a_file_is_the_pages_404() {
    let app = spawn_app("").await;
    for path in ["/no-such-page", "/pkg/clarion.0000000000000000.wasm"] {
        let missing = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(missing.headers()[CACHE_CONTROL], "no-cache", "{path}: a 404 is not kept");
        assert!(missing.text().await.unwrap().contains("Page not found"), "{path}");
    }
}
