//! Sites: one Clarion serves many, each with its own VAPID keys and subject, the origins
//! whose pages may call its public endpoints, its identity secret, its topics and its
//! quotas. Every subscription, topic and send belongs to one site; a site's pushes are
//! signed with its own keys.
//!
//! The site `default` is every deployment's: the `CLARION_*` settings configure it (its
//! origins are `CLARION_CORS_ORIGINS`, its identity secret `CLARION_IDENTITY_SECRET`), and
//! it can be neither changed through the API nor removed. Sites made at run time keep
//! their settings in the database, their private keys and identity secret sealed under
//! the [`MasterKey`], so every instance serves them. Each instance reloads the sites with
//! their keyrings every [`RELOAD_EVERY`], so a site made, changed or removed on one
//! instance reaches the others within about that long.

use crate::identity::IdentitySecret;
use crate::keyring::{Keyring, MasterKey, RELOAD_EVERY};
use crate::{Clarion, CoreError};
use clarion_push::vapid::VapidKeyMaterial;
use clarion_store::{SiteRemoved, Store, StoredSite};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use clarion_domain::access::{DEFAULT_SITE, MAX_SITE_NAME};

/// A site as this instance serves it: its settings, resolved, and its keyring.
#[derive(Debug)]
pub struct Site {
    pub name: String,
    pub vapid_subject: String,
    /// The origins whose pages may call this site's public endpoints, as browsers send
    /// them (see [`parse_origin`]).
    pub origins: Vec<String>,
    /// Checks identity tokens; `None` refuses them.
    pub identity: Option<IdentitySecret>,
    /// At most this many subscriptions (`None`: the server's `CLARION_MAX_SUBSCRIPTIONS`).
    pub max_subscriptions: Option<u64>,
    /// At most this many subscriptions made from one client address (`None`: the
    /// server's `CLARION_MAX_SUBSCRIPTIONS_PER_IP`).
    pub max_subscriptions_per_client: Option<u64>,
    pub keyring: Arc<Keyring>,
    /// The row it was read from (`None` for `default`, which its configuration makes).
    stored: Option<StoredSite>,
    created_at: String,
}

impl Site {
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_SITE
    }

    /// Whether a page of `origin` (as a browser sent it) may call this site's public
    /// endpoints.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = normalize_origin(origin);
        self.origins.contains(&origin)
    }
}

/// What configures the site `default`: the instance's own settings.
#[derive(Debug, Default)]
pub struct DefaultSite {
    /// `CLARION_CORS_ORIGINS`, parsed.
    pub origins: Vec<String>,
    /// `CLARION_IDENTITY_SECRET` with `CLARION_IDENTITY_AUDIENCE`.
    pub identity: Option<IdentitySecret>,
}

impl DefaultSite {
    /// The site `default` with these settings: its quotas are the server's own.
    fn site(self, subject: &str, keyring: Arc<Keyring>, created_at: String) -> Site {
        Site {
            name: DEFAULT_SITE.to_string(),
            vapid_subject: subject.to_string(),
            origins: self.origins,
            identity: self.identity,
            max_subscriptions: None,
            max_subscriptions_per_client: None,
            keyring,
            stored: None,
            created_at,
        }
    }
}

/// Every site this instance serves, by name, reloaded from the database.
#[derive(Debug)]
pub struct Sites {
    master: Arc<MasterKey>,
    /// `CLARION_VAPID_SUBJECT`: the subject of `default`, and of sites that set none.
    subject: String,
    default: Arc<Site>,
    by_name: RwLock<Arc<HashMap<String, Arc<Site>>>>,
    /// Sites that did not open here (logged once).
    unloadable: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Sites {
    /// Opens `default` (recording its configured key) and every stored site. Fails when a
    /// stored key or identity secret does not open with `master`: the message names
    /// `CLARION_MASTER_KEY`, the setting to align.
    pub async fn open(
        store: &Store,
        subject: &str,
        configured: &VapidKeyMaterial,
        master: MasterKey,
        default: DefaultSite,
    ) -> anyhow::Result<Self> {
        let master = Arc::new(master);
        let keyring = Arc::new(Keyring::open(store, DEFAULT_SITE, subject, Some(configured), master.clone()).await?);
        let created_at =
            store.sites().await?.into_iter().find(|row| row.name == DEFAULT_SITE).map(|row| row.created_at).unwrap_or_default();
        let default = Arc::new(default.site(subject, keyring, created_at));
        let sites = Self { master, subject: subject.to_string(), default, by_name: RwLock::default(), unloadable: Default::default() };
        let failed = sites.reload(store).await?;
        sites.unloadable.lock().expect("sites lock").clear();
        if let Some((name, error)) = failed.into_iter().next() {
            anyhow::bail!("site {name:?}: {error:#}");
        }
        Ok(sites)
    }

    /// Rebuilds `default` with other settings of its own (the server's, which only
    /// `clarion serve` reads), keeping its keyring. Only before the sites are shared.
    pub fn configure_default(&mut self, default: DefaultSite) {
        let site = Arc::new(default.site(&self.subject, self.default.keyring.clone(), self.default.created_at.clone()));
        let mut by_name = (**self.by_name.read().expect("sites lock")).clone();
        by_name.insert(DEFAULT_SITE.to_string(), site.clone());
        self.default = site;
        *self.by_name.write().expect("sites lock") = Arc::new(by_name);
    }

    /// The site named `name`, or `NotFound` naming it.
    pub fn get(&self, name: &str) -> Result<Arc<Site>, CoreError> {
        self.find(name).ok_or_else(|| CoreError::NotFound(format!("no site named {name:?}")))
    }

    /// The site named `name`, if this instance serves it.
    pub fn find(&self, name: &str) -> Option<Arc<Site>> {
        if name == DEFAULT_SITE {
            return Some(self.default.clone());
        }
        self.by_name.read().expect("sites lock").get(name).cloned()
    }

    /// Every site, by name.
    pub fn all(&self) -> Vec<Arc<Site>> {
        let mut sites: Vec<_> = self.by_name.read().expect("sites lock").values().cloned().collect();
        sites.sort_by(|a, b| a.name.cmp(&b.name));
        sites
    }

    /// Whether a site of this name exists (known to this instance).
    pub fn exists(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Reads the sites from the database and reloads each keyring. A site unchanged since
    /// the last reload keeps its keyring (and its cached JWTs); one whose subject changed
    /// gets a new one. Answers the sites that did not open (another master key, say):
    /// they are logged and left out, the others load.
    pub async fn reload(&self, store: &Store) -> anyhow::Result<Vec<(String, anyhow::Error)>> {
        let stored = store.sites().await?;
        let before = self.by_name.read().expect("sites lock").clone();
        let mut by_name = HashMap::with_capacity(stored.len());
        let mut failed = Vec::new();
        for row in stored {
            if row.name == DEFAULT_SITE {
                by_name.insert(row.name.clone(), self.default.clone());
                continue;
            }
            let known = before.get(&row.name);
            let site = match known {
                Some(site) if site.stored.as_ref() == Some(&row) => Ok(site.clone()),
                _ => self.open_site(store, &row, known.map(|s| s.as_ref())).await.map(Arc::new),
            };
            match site {
                Ok(site) => {
                    by_name.insert(row.name.clone(), site);
                }
                Err(error) => {
                    // Logged once, not at every reload.
                    if self.unloadable.lock().expect("sites lock").insert(row.name.clone()) {
                        tracing::error!(site = %row.name, error = %format!("{error:#}"), "site not loaded");
                    }
                    failed.push((row.name.clone(), error));
                }
            }
        }
        by_name.entry(DEFAULT_SITE.to_string()).or_insert_with(|| self.default.clone());
        *self.by_name.write().expect("sites lock") = Arc::new(by_name.clone());
        for site in by_name.values() {
            if let Err(e) = site.keyring.reload(store).await {
                tracing::error!(site = %site.name, error = %format!("{e:#}"), "VAPID keyring not reloaded");
            }
        }
        Ok(failed)
    }

    /// A stored site as this instance serves it; `known` is the same site as loaded
    /// before, whose keyring is kept when the subject did not change.
    async fn open_site(&self, store: &Store, row: &StoredSite, known: Option<&Site>) -> anyhow::Result<Site> {
        let subject = row.vapid_subject.clone().unwrap_or_else(|| self.subject.clone());
        let keyring = match known {
            Some(site) if site.vapid_subject == subject => site.keyring.clone(),
            _ => Arc::new(Keyring::open(store, &row.name, &subject, None, self.master.clone()).await?),
        };
        let identity = match &row.sealed_identity_secret {
            Some(sealed) => {
                let secret = self.master.open(&identity_purpose(&row.name), sealed)?;
                let secret = String::from_utf8(secret).map_err(|_| anyhow::anyhow!("the stored identity secret is not text"))?;
                Some(IdentitySecret::new(&secret, &[]).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let origins: Vec<String> = serde_json::from_str(&row.origins)?;
        Ok(Site {
            name: row.name.clone(),
            vapid_subject: subject,
            origins,
            identity,
            max_subscriptions: row.max_subscriptions.map(|n| n as u64),
            max_subscriptions_per_client: row.max_subscriptions_per_client.map(|n| n as u64),
            keyring,
            stored: Some(row.clone()),
            created_at: row.created_at.clone(),
        })
    }
}

/// What a sealed identity secret is bound to.
fn identity_purpose(site: &str) -> String {
    format!("clarion identity secret {site}")
}

/// `POST /api/v1/sites`: a new site. Unknown members are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub name: String,
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default)]
    pub vapid_subject: Option<String>,
    #[serde(default)]
    pub identity_secret: Option<String>,
    #[serde(default)]
    pub max_subscriptions: Option<u64>,
    #[serde(default)]
    pub max_subscriptions_per_client: Option<u64>,
}

/// `PATCH /api/v1/sites/{site}`: what changes. A member left out keeps its value; `null`
/// clears it (the subject falls back to `CLARION_VAPID_SUBJECT`, no identity secret, no
/// quota).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteChange {
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub vapid_subject: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub identity_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub max_subscriptions: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub max_subscriptions_per_client: Option<Option<u64>>,
}

/// A member that is present, `null` or not: `Some(None)` for `null`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A site as the API shows it: never a secret (whether it has an identity secret only).
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    pub origins: Vec<String>,
    pub vapid_subject: String,
    pub vapid_public_key: String,
    /// Whether it takes identity tokens.
    pub identity_tokens: bool,
    pub max_subscriptions: Option<u64>,
    pub max_subscriptions_per_client: Option<u64>,
    /// Its subscriptions now (the kept count).
    pub subscriptions: i64,
    /// Whether the `CLARION_*` settings configure it (`default`).
    pub configured: bool,
    pub created_at: String,
}

async fn view(core: &Clarion, site: &Site) -> Result<SiteView, CoreError> {
    Ok(SiteView {
        name: site.name.clone(),
        origins: site.origins.clone(),
        vapid_subject: site.vapid_subject.clone(),
        vapid_public_key: site.keyring.current().public_key_b64().to_string(),
        identity_tokens: site.identity.is_some(),
        max_subscriptions: site.max_subscriptions,
        max_subscriptions_per_client: site.max_subscriptions_per_client,
        subscriptions: core.store.count_subscriptions(&site.name).await?,
        configured: site.is_default(),
        created_at: site.created_at.clone(),
    })
}

/// Checks a site name: `[a-z0-9-]{1,40}`.
pub fn check_site_name(name: &str) -> Result<(), CoreError> {
    if clarion_domain::access::is_site_name(name) {
        Ok(())
    } else {
        Err(CoreError::Invalid { field: "name", reason: format!("a site's name is 1 to {MAX_SITE_NAME} of a-z, 0-9 and '-'") })
    }
}

/// An origin as browsers send it in `Origin`: lower case, punycode, without a default
/// port or a trailing slash. What a browser would never send (`null`, a wildcard, a
/// path, another scheme) is an error saying why, never an entry that silently matches
/// nothing or everything.
pub fn parse_origin(entry: &str) -> Result<String, &'static str> {
    if entry.eq_ignore_ascii_case("null") {
        return Err("`null` is the origin of sandboxed frames and local files, which any page can make; list real sites");
    }
    if entry.contains('*') {
        return Err("wildcards are not supported; list each site");
    }
    let url = url::Url::parse(entry).map_err(|_| "write it as scheme://host[:port], e.g. https://www.example.com")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("a site is served over http or https");
    }
    if url.host().is_none() {
        return Err("it names no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an origin has no user or password");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("an origin has no path, query or fragment (browsers send scheme://host[:port] only)");
    }
    Ok(url.origin().ascii_serialization())
}

/// An origin as a browser sent it, as the lists keep it: lower case, no trailing slash.
pub fn normalize_origin(origin: &str) -> String {
    origin.trim_end_matches('/').to_ascii_lowercase()
}

fn checked_origins(origins: &[String]) -> Result<Vec<String>, CoreError> {
    let mut checked = Vec::with_capacity(origins.len());
    for entry in origins {
        let origin = parse_origin(entry.trim())
            .map_err(|why| CoreError::Invalid { field: "origins", reason: format!("{entry:?} is not a site's origin: {why}") })?;
        if !checked.contains(&origin) {
            checked.push(origin);
        }
    }
    Ok(checked)
}

fn checked_subject(subject: &str) -> Result<String, CoreError> {
    let subject = subject.trim();
    let lower = subject.to_ascii_lowercase();
    if !(lower.starts_with("mailto:") || lower.starts_with("https:")) || subject.len() > 200 {
        return Err(CoreError::Invalid { field: "vapid_subject", reason: "is a mailto: or https: URL of at most 200 characters".into() });
    }
    Ok(subject.to_string())
}

fn checked_quota(field: &'static str, quota: Option<u64>) -> Result<Option<i64>, CoreError> {
    match quota {
        None => Ok(None),
        Some(n) if (1..=i64::MAX as u64).contains(&n) => Ok(Some(n as i64)),
        Some(_) => Err(CoreError::Invalid { field, reason: "is a positive number, or null for no limit".into() }),
    }
}

impl Sites {
    fn sealed_identity(&self, site: &str, secret: &str) -> Result<String, CoreError> {
        IdentitySecret::new(secret, &[]).map_err(|reason| CoreError::Invalid {
            field: "identity_secret",
            reason: reason.replace("CLARION_IDENTITY_SECRET", "identity_secret"),
        })?;
        Ok(self.master.seal(&identity_purpose(site), secret.as_bytes()))
    }
}

/// Makes a site, with a fresh VAPID key (sealed) as its current one. `409` when the name
/// is taken.
pub async fn create_site(core: &Clarion, new: &NewSite) -> Result<SiteView, CoreError> {
    check_site_name(&new.name)?;
    let row = StoredSite {
        name: new.name.clone(),
        vapid_subject: new.vapid_subject.as_deref().map(checked_subject).transpose()?,
        origins: serde_json::to_string(&checked_origins(&new.origins)?).expect("strings serialise"),
        sealed_identity_secret: new.identity_secret.as_deref().map(|s| core.sites.sealed_identity(&new.name, s)).transpose()?,
        max_subscriptions: checked_quota("max_subscriptions", new.max_subscriptions)?,
        max_subscriptions_per_client: checked_quota("max_subscriptions_per_client", new.max_subscriptions_per_client)?,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let key = VapidKeyMaterial::generate();
    let subject = row.vapid_subject.clone().unwrap_or_else(|| core.sites.subject.clone());
    let (fingerprint, public_key, sealed) = Keyring::seal_new(&core.sites.master, &key, &subject)?;
    if !core.store.create_site(&row, (&fingerprint, &public_key, &sealed)).await? {
        return Err(CoreError::Conflict { field: "name", reason: format!("a site named {:?} exists", new.name) });
    }
    reload(core).await?;
    let site = core.sites.get(&new.name)?;
    tracing::info!(site = %site.name, public_key = %public_key, "site created");
    view(core, &site).await
}

/// Every site, by name.
pub async fn list_sites(core: &Clarion) -> Result<Vec<SiteView>, CoreError> {
    let mut views = Vec::new();
    for site in core.sites.all() {
        views.push(view(core, &site).await?);
    }
    Ok(views)
}

pub async fn show_site(core: &Clarion, name: &str) -> Result<SiteView, CoreError> {
    view(core, &*core.sites.get(name)?).await
}

/// Changes a site's settings. `default` is configured by the `CLARION_*` settings, so it
/// is refused (409) here.
pub async fn change_site(core: &Clarion, name: &str, change: &SiteChange) -> Result<SiteView, CoreError> {
    let site = core.sites.get(name)?;
    let Some(stored) = site.stored.clone() else { return Err(configured_by_settings()) };
    let mut row = stored;
    if let Some(origins) = &change.origins {
        row.origins = serde_json::to_string(&checked_origins(origins)?).expect("strings serialise");
    }
    if let Some(subject) = &change.vapid_subject {
        row.vapid_subject = subject.as_deref().map(checked_subject).transpose()?;
    }
    if let Some(secret) = &change.identity_secret {
        row.sealed_identity_secret = secret.as_deref().map(|s| core.sites.sealed_identity(name, s)).transpose()?;
    }
    if let Some(quota) = change.max_subscriptions {
        row.max_subscriptions = checked_quota("max_subscriptions", quota)?;
    }
    if let Some(quota) = change.max_subscriptions_per_client {
        row.max_subscriptions_per_client = checked_quota("max_subscriptions_per_client", quota)?;
    }
    if !core.store.update_site(&row).await? {
        return Err(CoreError::NotFound(format!("no site named {name:?}")));
    }
    reload(core).await?;
    tracing::info!(site = name, "site changed");
    view(core, &*core.sites.get(name)?).await
}

/// Removes a site with its topics, sends and keys; refused (409) while it has
/// subscriptions unless `purge`, which removes them too (their number is returned).
pub async fn remove_site(core: &Clarion, name: &str, purge: bool) -> Result<i64, CoreError> {
    let site = core.sites.get(name)?;
    if site.is_default() {
        return Err(configured_by_settings());
    }
    match core.store.remove_site(name, purge).await? {
        SiteRemoved::Removed { subscriptions } => {
            reload(core).await?;
            tracing::info!(site = name, subscriptions, "site removed");
            Ok(subscriptions)
        }
        SiteRemoved::HasSubscriptions(n) => Err(CoreError::Conflict {
            field: "purge",
            reason: format!("site {name:?} has {n} subscriptions; remove it with purge=true to remove them too"),
        }),
        SiteRemoved::NotFound => Err(CoreError::NotFound(format!("no site named {name:?}"))),
    }
}

fn configured_by_settings() -> CoreError {
    CoreError::Conflict {
        field: "site",
        reason: "the site \"default\" is configured by the CLARION_* settings (CLARION_CORS_ORIGINS, CLARION_VAPID_SUBJECT, \
                 CLARION_IDENTITY_SECRET, CLARION_MAX_SUBSCRIPTIONS) and cannot be changed or removed here"
            .into(),
    }
}

/// Reloads at once after a change, so this instance serves it from its answer on (the
/// others within [`RELOAD_EVERY`]). Sites that do not open are logged by the reload.
async fn reload(core: &Clarion) -> Result<(), CoreError> {
    core.sites.reload(&core.store).await?;
    Ok(())
}

/// Reloads the sites and their keyrings every [`RELOAD_EVERY`] until `stop`, so sites,
/// rotations and retirements made on other instances reach this one. A failed reload is
/// logged and what was loaded is kept.
pub async fn keep_loaded(core: Clarion, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(RELOAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = core.sites.reload(&core.store).await {
            tracing::error!(error = %format!("{e:#}"), "sites not reloaded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_are_lower_case_digits_and_dashes() {
        for good in ["default", "shop", "a", "shop-2", &"x".repeat(40)] {
            assert!(check_site_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Shop", "shop_2", "shop.example", "a/b", &"x".repeat(41), "ünï"] {
            assert!(check_site_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_change_tells_null_from_absent() {
        let change: SiteChange = serde_json::from_str(r#"{"vapid_subject": null, "max_subscriptions": 5}"#).unwrap();
        assert_eq!(change.vapid_subject, Some(None));
        assert_eq!(change.identity_secret, None);
        assert_eq!(change.max_subscriptions, Some(Some(5)));
        assert!(serde_json::from_str::<SiteChange>(r#"{"nme": 1}"#).is_err());
    }
}
