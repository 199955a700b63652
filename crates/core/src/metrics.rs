//! Prometheus metrics (served as `GET /metrics` by the web layer, text format): pushes by outcome, push latency per
//! push-service vendor, broadcasts claimed, idle subscriptions removed, HTTP requests by route and status, the stored
//! subscriptions and the build.
//!
//! Every series is this process's own (a counter restarts at zero with it), except
//! `clarion_subscriptions_stored` (all sites) and `clarion_site_subscriptions{site}`,
//! which are read from the database at scrape time. Label values come from closed sets
//! only (outcomes, push-service vendors, route patterns, status codes, and site names,
//! which only admins make), never from endpoints, push hosts or anything else a visitor
//! chooses, so the number of series stays bounded however many push hosts subscribers
//! name.

use crate::error::CoreError;
use crate::Clarion;
use clarion_domain::subscription::PushVendor;
use clarion_push::{DeliveryOutcome, PushObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    /// [`DeliveryOutcome::reason`]: `delivered`, `gone`, `rate_limited`, ...
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorLabels {
    /// [`PushVendor::label`]: `fcm`, `mozilla`, `apple`, `wns` or `other`.
    vendor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route pattern (`/api/v1/subscriptions`), or `other` for what no route matched.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    database: &'static str,
}

/// The process's metrics; shared by the sender, the worker and the HTTP layer.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pushes: Family<PushLabels, Counter>,
    push_latency: Family<VendorLabels, Histogram>,
    broadcasts_claimed: Counter,
    ranges_claimed: Counter,
    http_requests: Family<RequestLabels, Counter>,
    subscriptions_stored: Gauge,
    site_subscriptions: Family<SiteLabels, Gauge>,
    idle_removed: Counter,
}

/// Push latency buckets: 5 ms to about 20 s (the push timeout's order).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Metrics {
    /// `database` names the backend in `clarion_build_info`.
    pub fn new(database: &'static str) -> Self {
        let mut registry = Registry::with_prefix("clarion");
        let pushes = Family::<PushLabels, Counter>::default();
        registry.register("pushes", "Pushes sent to push services, by outcome", pushes.clone());
        let push_latency = Family::<VendorLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "push_duration",
            "Time from sending a push to the push service's answer, by push-service vendor (fcm, mozilla, apple, wns, other)",
            Unit::Seconds,
            push_latency.clone(),
        );
        let broadcasts_claimed = Counter::default();
        registry.register(
            "broadcasts_claimed",
            "Broadcasts this instance started (fixed their scope and split them into ranges)",
            broadcasts_claimed.clone(),
        );
        let ranges_claimed = Counter::default();
        registry.register("ranges_claimed", "Ranges of broadcasts this instance claimed to send", ranges_claimed.clone());
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", http_requests.clone());
        let subscriptions_stored = Gauge::default();
        registry.register("subscriptions_stored", "Subscriptions stored in the database, of every site", subscriptions_stored.clone());
        let site_subscriptions = Family::<SiteLabels, Gauge>::default();
        registry.register("site_subscriptions", "Subscriptions stored in the database, by site", site_subscriptions.clone());
        let idle_removed = Counter::default();
        registry.register(
            "subscriptions_idle_removed",
            "Subscriptions this instance removed because nobody had seen them for CLARION_IDLE_EXPIRY_DAYS",
            idle_removed.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION"), database }).set(1);
        registry.register("build_info", "The version of this Clarion and its database backend (always 1)", build);
        Self {
            registry,
            pushes,
            push_latency,
            broadcasts_claimed,
            ranges_claimed,
            http_requests,
            subscriptions_stored,
            site_subscriptions,
            idle_removed,
        }
    }

    /// Subscriptions removed by the idle sweep.
    pub fn idle_removed(&self, removed: u64) {
        self.idle_removed.inc_by(removed);
    }

    /// One push's answer, and how long the push service took to give it.
    pub fn push_settled(&self, origin: &str, outcome: &DeliveryOutcome, took: Duration) {
        self.pushes.get_or_create(&PushLabels { outcome: outcome.reason() }).inc();
        self.push_latency.get_or_create(&VendorLabels { vendor: PushVendor::of(origin).label() }).observe(took.as_secs_f64());
    }

    /// One HTTP request answered: `route` is the matched route pattern (or `other`).
    pub fn request_answered(&self, route: String, status: u16) {
        self.http_requests.get_or_create(&RequestLabels { route, status }).inc();
    }

    pub fn broadcast_claimed(&self) {
        self.broadcasts_claimed.inc();
    }

    pub fn range_claimed(&self) {
        self.ranges_claimed.inc();
    }

    /// The text exposition, with each site's stored-subscription count read just before
    /// (a removed site's series goes).
    pub fn render(&self, by_site: &[(String, i64)]) -> String {
        self.subscriptions_stored.set(by_site.iter().map(|(_, n)| n).sum());
        self.site_subscriptions.clear();
        for (site, stored) in by_site {
            self.site_subscriptions.get_or_create(&SiteLabels { site: site.clone() }).set(*stored);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The text exposition as a scraper reads it; each site's stored count is one row read
/// (it is kept by the database, not counted).
pub async fn scrape(core: &Clarion) -> Result<String, CoreError> {
    let mut by_site = Vec::new();
    for site in core.sites.all() {
        by_site.push((site.name.clone(), core.store.count_subscriptions(&site.name).await?));
    }
    Ok(core.metrics.render(&by_site))
}

impl PushObserver for Metrics {
    fn push_settled(&self, origin: &str, outcome: &DeliveryOutcome, took: Duration) {
        Metrics::push_settled(self, origin, outcome, took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_hosts_a_visitor_makes_up_add_no_series() {
        let metrics = Metrics::new("sqlite");
        let delivered = DeliveryOutcome::Delivered { location: None };
        for i in 0..2_000 {
            metrics.push_settled(&format!("https://made-up-{i}.notify.windows.com"), &delivered, Duration::from_millis(5));
        }
        metrics.push_settled("https://fcm.googleapis.com", &delivered, Duration::from_millis(5));
        metrics.push_settled("http://127.0.0.1:8090", &delivered, Duration::from_millis(5));
        let text = metrics.render(&[("default".into(), 0)]);
        let series = text.lines().filter(|l| l.starts_with("clarion_push_duration_seconds_count")).collect::<Vec<_>>();
        assert_eq!(series.len(), 3, "{series:?}");
        assert!(text.contains(r#"clarion_push_duration_seconds_count{vendor="wns"} 2000"#), "{text}");
        assert!(!text.contains("made-up"), "no host reaches a label");
        assert!(text.len() < 16 * 1024, "the exposition stays small: {} bytes", text.len());
    }

    #[test]
    fn vendors_are_told_by_their_push_hosts() {
        for (origin, vendor) in [
            ("https://fcm.googleapis.com", "fcm"),
            ("https://updates.push.services.mozilla.com", "mozilla"),
            ("https://web.push.apple.com", "apple"),
            ("https://wns2-par02p.notify.windows.com", "wns"),
            ("https://evilgoogleapis.com", "other"),
            ("http://127.0.0.1:8090", "other"),
        ] {
            assert_eq!(PushVendor::of(origin).label(), vendor, "{origin}");
        }
    }
}
