//! Serves the built site from `LEPTOS_SITE_ROOT`, as `scripts/build-site.sh` lays it out:
//! - `/pkg/*`: the bundles and the stylesheet, named by their content
//!   (`clarion.<hash>.wasm`), so cached for a year (`immutable`). Their brotli and gzip
//!   copies were made at build time; `Accept-Encoding` picks one (`Vary: Accept-Encoding`).
//! - everything else in the site root (icons, the web manifest): stable names, so
//!   revalidated on each use (`no-cache`, with `Last-Modified`), precompressed alike.
//! - a path that is no file: the page's 404, rendered by the caller's fallback.
//!
//! Which bundle a page loads and which stylesheet it links come from `pkg/site.json`, which
//! the build writes ([`SiteAssets`]). The console's bundle is loaded only under `/admin`.

use crate::server::state::AppState;
use anyhow::Context;
use axum::http::{header, HeaderValue};
use axum::Router;
use serde::Deserialize;
use std::convert::Infallible;
use std::path::Path;
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The file in the site root that names the built bundles. It lives in `pkg/`, which
/// cargo-leptos replaces on every build, so a development build never finds a release
/// manifest naming bundles that are gone.
pub const MANIFEST: &str = "pkg/site.json";
/// Where bundles and the stylesheet are served from (cargo-leptos's `site-pkg-dir`).
pub const PKG_DIR: &str = "pkg";
/// The base name of a site built by cargo-leptos, whose one bundle carries both islands.
const DEV_BUNDLE: &str = "clarion";

/// The served names of the site's bundles and stylesheet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteAssets {
    /// The page's bundle (`/pkg/<page>.js` and `.wasm`): the push control's island.
    page: String,
    /// The console's bundle: both islands, loaded only under `/admin`.
    console: String,
    /// The stylesheet's file name in `/pkg`.
    stylesheet: String,
}

impl Default for SiteAssets {
    /// A site built by `cargo leptos build` or `watch`: one bundle, `clarion`, for every page.
    fn default() -> Self {
        Self { page: DEV_BUNDLE.into(), console: DEV_BUNDLE.into(), stylesheet: format!("{DEV_BUNDLE}.css") }
    }
}

impl SiteAssets {
    /// Reads `site.json` from the site root. Without one (a cargo-leptos build) every page
    /// loads the one bundle; a manifest that does not parse, or names a file the root lacks,
    /// stops the start: pages would load nothing.
    pub fn load(site_root: &Path) -> anyhow::Result<Self> {
        let path = site_root.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("Failed to read {}", path.display())),
        };
        let assets: Self = serde_json::from_str(&text).with_context(|| format!("{} is not a site manifest", path.display()))?;
        let pkg = site_root.join(PKG_DIR);
        let bundles = [&assets.page, &assets.console];
        let names = bundles.iter().flat_map(|b| [format!("{b}.js"), format!("{b}.wasm")]).chain([assets.stylesheet.clone()]);
        for name in names {
            anyhow::ensure!(
                !name.contains('/') && pkg.join(&name).is_file(),
                "{} names {name}, which is not in {}: run scripts/build-site.sh again",
                path.display(),
                pkg.display()
            );
        }
        Ok(assets)
    }

    /// The bundle a page at `path` loads: the console's under `/admin`, the page's elsewhere.
    pub fn bundle_for(&self, path: &str) -> &str {
        let console = path == "/admin" || path.starts_with("/admin/");
        if console {
            &self.console
        } else {
            &self.page
        }
    }

    /// The stylesheet's URL path.
    pub fn stylesheet_href(&self) -> String {
        format!("/{PKG_DIR}/{}", self.stylesheet)
    }
}

/// `Cache-Control` for a file named by its content: cached for a year, never revalidated.
/// Only when it was found: a 404 for such a name (a page of a newer deploy, say) must not
/// be kept for a year.
pub fn immutable_when_found<B>(response: &axum::http::Response<B>) -> Option<HeaderValue> {
    response.status().is_success().then(|| HeaderValue::from_static("public, max-age=31536000, immutable"))
}

/// `Vary: Accept-Encoding`, for files served from their precompressed copies.
pub fn vary_on_encoding() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::appending(header::VARY, HeaderValue::from_static("accept-encoding"))
}

/// The files under `dir`, each sent as its brotli or gzip copy (made at build time,
/// `scripts/precompress.mjs`) when the browser accepts it and the copy exists.
pub fn precompressed(dir: &Path) -> ServeDir {
    ServeDir::new(dir).precompressed_br().precompressed_gzip()
}

/// The site's files under `site_root`, with `not_found` for any path that is none.
pub fn files<F>(site_root: &Path, not_found: F) -> Router<AppState>
where
    F: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = Infallible> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
{
    Router::new()
        .nest_service(
            &format!("/{PKG_DIR}"),
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, immutable_when_found))
                .layer(vary_on_encoding())
                .service(precompressed(&site_root.join(PKG_DIR)).fallback(not_found.clone())),
        )
        .fallback_service(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
                .layer(vary_on_encoding())
                .service(precompressed(site_root).append_index_html_on_directories(false).fallback(not_found)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_bundle_is_only_for_admin_paths() {
        let assets = SiteAssets { page: "clarion.aa".into(), console: "clarion-console.bb".into(), stylesheet: "clarion.cc.css".into() };
        assert_eq!(assets.bundle_for("/"), "clarion.aa");
        assert_eq!(assets.bundle_for("/administrator"), "clarion.aa");
        assert_eq!(assets.bundle_for("/admin"), "clarion-console.bb");
        assert_eq!(assets.bundle_for("/admin/history"), "clarion-console.bb");
        assert_eq!(assets.stylesheet_href(), "/pkg/clarion.cc.css");
    }

    #[test]
    fn a_site_without_a_manifest_loads_the_development_bundle_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let assets = SiteAssets::load(dir.path()).unwrap();
        assert_eq!(assets, SiteAssets::default());
        assert_eq!(assets.bundle_for("/admin"), "clarion");
    }

    #[test]
    fn a_manifest_naming_a_missing_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(PKG_DIR)).unwrap();
        assert!(MANIFEST.starts_with(PKG_DIR));
        std::fs::write(dir.path().join(MANIFEST), r#"{"page":"clarion.aa","console":"clarion-console.bb","stylesheet":"clarion.cc.css"}"#)
            .unwrap();
        let e = SiteAssets::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("clarion.aa.js") && e.contains("build-site.sh"), "{e}");
    }
}
