//! A site's VAPID keyring: the current key, given to new subscriptions, and the older
//! ones that keep signing pushes to the subscriptions still bound to them, so a rotation
//! loses nobody. Browsers move to the current key on their next visit (the page's and
//! the SDK's re-sync); until then their pushes are signed with the key they subscribed
//! with, which is what push services check.
//!
//! The key an instance is configured with (`CLARION_VAPID_PRIVATE_KEY` or
//! `<data-dir>/vapid_private.pem`) is recorded in the database by fingerprint only. Keys
//! made or imported at run time are stored there sealed under the [`MasterKey`], which
//! is never in the database, so every instance sharing it can sign with them. Each
//! instance reloads the ring every half second ([`RELOAD_EVERY`]) and whenever a
//! subscription names a key it does not hold yet.

use crate::secrets::write_secret_file;
use crate::CoreError;
use anyhow::Context;
use clarion_domain::base64url;
use clarion_push::vapid::{VapidKeyMaterial, VapidKeys};
use clarion_store::{KeyRetired, Store, StoredVapidKey};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use clarion_domain::access::DEFAULT_SITE;

/// How often each instance reloads its keyring, so a rotation made on another instance
/// reaches it within about this long.
pub const RELOAD_EVERY: Duration = Duration::from_millis(500);

/// The master key: AES-256-GCM, sealing the secrets Clarion keeps in its database
/// (private keys made at run time). `CLARION_MASTER_KEY` (base64url of 32 bytes), or
/// `<data-dir>/master_key`, generated (0600) on first start.
pub struct MasterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The file in the data dir that holds a generated master key.
pub const MASTER_KEY_FILE: &str = "master_key";

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(bytes.len() == 32, "a master key is 32 bytes, got {}", bytes.len());
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| anyhow::anyhow!("AES-256-GCM refused the master key"))?;
        Ok(Self { key: LessSafeKey::new(key) })
    }

    /// From `CLARION_MASTER_KEY`, else `<data-dir>/master_key`, made on first start.
    pub fn load_or_create(setting: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(value) = setting.map(str::trim).filter(|v| !v.is_empty()) {
            let bytes = base64url::decode(value).map_err(|e| anyhow::anyhow!("CLARION_MASTER_KEY is not base64url: {e}"))?;
            return Self::from_bytes(&bytes).context("CLARION_MASTER_KEY");
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
            let bytes = base64url::decode(text.trim()).map_err(|e| anyhow::anyhow!("{} is not base64url: {e}", path.display()))?;
            return Self::from_bytes(&bytes).with_context(|| path.display().to_string());
        }
        let bytes: [u8; 32] = clarion_domain::random::bytes();
        write_secret_file(&path, base64url::encode(&bytes).as_bytes())?;
        tracing::info!(path = %path.display(), "generated a master key; instances sharing a database need the same one (CLARION_MASTER_KEY)");
        Self::from_bytes(&bytes)
    }

    /// `plaintext` sealed for `purpose` (bound in as associated data, so a sealed value
    /// copied to another purpose does not open): base64url of nonce, ciphertext and tag.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = clarion_domain::random::bytes();
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.as_bytes()), &mut sealed)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64url::encode(&out)
    }

    /// Opens what [`MasterKey::seal`] sealed for `purpose`; fails with another master key.
    pub fn open(&self, purpose: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let bytes = base64url::decode(sealed).map_err(|e| anyhow::anyhow!("sealed value is not base64url: {e}"))?;
        anyhow::ensure!(bytes.len() > NONCE_LEN, "sealed value is too short");
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("the split is NONCE_LEN long");
        let mut sealed = sealed.to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut sealed)
            .map_err(|_| anyhow::anyhow!("{}", WRONG_MASTER_KEY))?;
        Ok(opened.to_vec())
    }
}

/// Why a sealed key does not open: almost always another instance's master key.
const WRONG_MASTER_KEY: &str =
    "a secret in the database (a site's VAPID key or identity secret) does not open with this instance's master key: it was sealed by an \
    instance with another one. Give every instance sharing the database the same CLARION_MASTER_KEY (the first instance's \
    is in its <data-dir>/master_key unless CLARION_MASTER_KEY was set)";

/// Opens a stored key sealed under `master`, for signing with `subject`.
fn unseal(master: &MasterKey, row: &StoredVapidKey, sealed: &str, subject: &str) -> anyhow::Result<VapidKeys> {
    let private = master.open(&sealed_purpose(&row.fingerprint), sealed)?;
    let material = VapidKeyMaterial::from_raw_base64url(&base64url::encode(&private))?;
    let keys = VapidKeys::new(&material, subject)?;
    anyhow::ensure!(keys.fingerprint() == row.fingerprint, "stored VAPID key {} does not match its fingerprint", row.id);
    Ok(keys)
}

/// What a sealed private key is bound to.
fn sealed_purpose(fingerprint: &str) -> String {
    format!("clarion vapid private key {fingerprint}")
}

/// The keys one instance holds for a site.
#[derive(Debug)]
struct Ring {
    current: Arc<VapidKeys>,
    by_fingerprint: HashMap<String, Arc<VapidKeys>>,
    /// Stored keys this instance cannot open (sealed under another master key): a push
    /// to their subscriptions is not signed with another key, which a push service would
    /// refuse and so remove a subscription that is fine.
    unopenable: HashSet<String>,
}

/// A site's keys, shared by every request and broadcast of this process.
#[derive(Debug)]
pub struct Keyring {
    site: String,
    subject: String,
    /// The key this instance is configured with (`default`'s); sites made at run time
    /// have none, only stored keys.
    configured: Option<Arc<VapidKeys>>,
    master: Arc<MasterKey>,
    ring: RwLock<Arc<Ring>>,
    /// Fingerprints that a reload did not find (keys of earlier deployments that were
    /// never stored): they do not make every push reload the ring.
    unknown: Mutex<HashSet<String>>,
}

/// A key the ring holds, as the REST API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: i64,
    pub public_key: String,
    pub current: bool,
    /// Subscriptions still bound to it.
    pub subscriptions: i64,
    pub created_at: String,
}

/// A subscription's key is stored, but sealed under another master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUnavailable;

/// The signing key for one subscription.
pub struct Signer {
    pub keys: Arc<VapidKeys>,
    /// Whether the subscription's own key signs: `false` when the key it was made with is
    /// not in the ring (a key replaced before keys were kept), so the current one signs
    /// and a refusal means the subscription is stale.
    pub own_key: bool,
}

impl Keyring {
    /// Records the configured key for `site` (if any) and loads the ring. Fails when a
    /// stored key does not open with `master` (the message names the setting to align),
    /// and for a site without a configured key, when it has no current key this instance
    /// can open.
    pub async fn open(
        store: &Store,
        site: &str,
        subject: &str,
        configured: Option<&VapidKeyMaterial>,
        master: Arc<MasterKey>,
    ) -> anyhow::Result<Self> {
        let configured = configured.map(|material| VapidKeys::new(material, subject)).transpose()?.map(Arc::new);
        if let Some(configured) = &configured {
            store.record_configured_vapid_key(site, configured.fingerprint(), configured.public_key_b64()).await?;
        }
        let current = match &configured {
            Some(configured) => configured.clone(),
            None => Self::stored_current(store, site, subject, &master).await?,
        };
        let ring = Ring { current, by_fingerprint: HashMap::new(), unopenable: HashSet::new() };
        let keyring = Self {
            site: site.to_string(),
            subject: subject.to_string(),
            configured,
            master,
            ring: RwLock::new(Arc::new(ring)),
            unknown: Mutex::default(),
        };
        keyring.reload(store).await?;
        if let Some(fingerprint) = keyring.ring.read().expect("keyring lock").unopenable.iter().next() {
            anyhow::bail!("VAPID key {fingerprint}: {WRONG_MASTER_KEY}");
        }
        Ok(keyring)
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    /// The current key of a site that has no configured one, opened.
    async fn stored_current(store: &Store, site: &str, subject: &str, master: &MasterKey) -> anyhow::Result<Arc<VapidKeys>> {
        let stored = store.vapid_keys(site).await?;
        let row = stored.iter().find(|row| row.is_current).with_context(|| format!("site {site:?} has no current VAPID key"))?;
        let sealed = row.sealed_private_key.as_deref().with_context(|| format!("site {site:?}'s current VAPID key is not stored"))?;
        Ok(Arc::new(unseal(master, row, sealed, subject).map_err(|e| anyhow::anyhow!("VAPID key {}: {e:#}", row.fingerprint))?))
    }

    /// A fresh key for a new site, sealed: `(fingerprint, public key, sealed private key)`,
    /// as [`Store::create_site`] stores it.
    pub fn seal_new(master: &MasterKey, material: &VapidKeyMaterial, subject: &str) -> anyhow::Result<(String, String, String)> {
        let keys = VapidKeys::new(material, subject)?;
        let private = base64url::decode(&material.private_raw_base64url()).expect("our own base64url");
        let sealed = master.seal(&sealed_purpose(keys.fingerprint()), &private);
        Ok((keys.fingerprint().to_string(), keys.public_key_b64().to_string(), sealed))
    }

    /// The key new subscriptions are made with.
    pub fn current(&self) -> Arc<VapidKeys> {
        self.ring.read().expect("keyring lock").current.clone()
    }

    fn held(&self, fingerprint: &str) -> Option<Arc<VapidKeys>> {
        self.ring.read().expect("keyring lock").by_fingerprint.get(fingerprint).cloned()
    }

    fn unopenable(&self, fingerprint: &str) -> bool {
        self.ring.read().expect("keyring lock").unopenable.contains(fingerprint)
    }

    /// The key to sign a push to a subscription bound to `fingerprint`. A fingerprint
    /// this instance does not hold yet (a rotation on another instance within the last
    /// [`RELOAD_EVERY`]) reloads the ring first; one that no reload finds (a key replaced
    /// before keys were kept) is signed with the current key. A stored key this instance
    /// cannot open is [`KeyUnavailable`].
    pub async fn signer(&self, store: &Store, fingerprint: &str) -> Result<Signer, KeyUnavailable> {
        if let Some(keys) = self.held(fingerprint) {
            return Ok(Signer { keys, own_key: true });
        }
        // Known not to open: no reload per push (the periodic one notices any change).
        if self.unopenable(fingerprint) {
            return Err(KeyUnavailable);
        }
        let seen_unknown = self.unknown.lock().expect("keyring lock").contains(fingerprint);
        if !seen_unknown {
            if let Err(e) = self.reload(store).await {
                tracing::error!(error = %format!("{e:#}"), "VAPID keyring not reloaded");
            }
            if let Some(keys) = self.held(fingerprint) {
                return Ok(Signer { keys, own_key: true });
            }
            if self.unopenable(fingerprint) {
                return Err(KeyUnavailable);
            }
            self.unknown.lock().expect("keyring lock").insert(fingerprint.to_string());
        }
        Ok(Signer { keys: self.current(), own_key: false })
    }

    /// Reads the site's keys from the database, opening the ones this instance does not
    /// hold yet. Keys already held are kept as they are (with their cached JWTs). A key
    /// that does not open is logged (once) and listed as unopenable; the others load.
    pub async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let stored = store.vapid_keys(&self.site).await?;
        let before = self.ring.read().expect("keyring lock").clone();
        let mut by_fingerprint = HashMap::with_capacity(stored.len());
        let mut unopenable = HashSet::new();
        let mut current = None;
        for row in &stored {
            let keys = match (before.by_fingerprint.get(&row.fingerprint), &row.sealed_private_key) {
                (Some(held), _) => held.clone(),
                (None, _) if self.configured.as_ref().is_some_and(|c| c.fingerprint() == row.fingerprint) => {
                    self.configured.clone().expect("just checked")
                }
                (None, Some(sealed)) => match unseal(&self.master, row, sealed, &self.subject) {
                    Ok(keys) => Arc::new(keys),
                    Err(e) => {
                        if !before.unopenable.contains(&row.fingerprint) {
                            tracing::error!(site = %self.site, fingerprint = %row.fingerprint, error = %format!("{e:#}"), "VAPID key not opened");
                        }
                        unopenable.insert(row.fingerprint.clone());
                        continue;
                    }
                },
                // Another configured key, which only the instances configured with it hold.
                (None, None) => continue,
            };
            if row.is_current {
                current = Some(keys.clone());
            }
            by_fingerprint.insert(row.fingerprint.clone(), keys);
        }
        let changed = by_fingerprint.len() != before.by_fingerprint.len()
            || by_fingerprint.keys().any(|f| !before.by_fingerprint.contains_key(f))
            || current.as_ref().is_some_and(|c| c.fingerprint() != before.current.fingerprint());
        let current = current.unwrap_or_else(|| {
            tracing::warn!(site = %self.site, "the site's current VAPID key is not one this instance holds; new subscriptions keep the key before it");
            self.configured.clone().unwrap_or_else(|| before.current.clone())
        });
        *self.ring.write().expect("keyring lock") = Arc::new(Ring { current, by_fingerprint, unopenable });
        if changed {
            self.unknown.lock().expect("keyring lock").clear();
        }
        Ok(())
    }

    /// Makes a fresh key the site's current one; the keys before keep signing for their
    /// subscriptions.
    pub async fn rotate(&self, store: &Store) -> anyhow::Result<KeyInfo> {
        self.add_current(store, &VapidKeyMaterial::generate()).await
    }

    /// Makes `material` (a key another sender used) the site's current key, so the
    /// subscriptions made with it elsewhere can be imported and reached.
    pub async fn import(&self, store: &Store, material: &VapidKeyMaterial) -> anyhow::Result<KeyInfo> {
        self.add_current(store, material).await
    }

    async fn add_current(&self, store: &Store, material: &VapidKeyMaterial) -> anyhow::Result<KeyInfo> {
        let keys = VapidKeys::new(material, &self.subject)?;
        let private = base64url::decode(&material.private_raw_base64url()).expect("our own base64url");
        let sealed = self.master.seal(&sealed_purpose(keys.fingerprint()), &private);
        let id = store.add_current_vapid_key(&self.site, keys.fingerprint(), keys.public_key_b64(), &sealed).await?;
        self.reload(store).await?;
        let listed = self.list(store).await?;
        listed.into_iter().find(|key| key.id == id).context("the key just stored is not listed")
    }

    /// The site's keys, oldest first, each with the subscriptions bound to it.
    pub async fn list(&self, store: &Store) -> anyhow::Result<Vec<KeyInfo>> {
        let keys = store.vapid_keys(&self.site).await?;
        let counts = store.vapid_key_subscriptions(&keys).await?;
        Ok(keys
            .into_iter()
            .zip(counts)
            .map(|(key, subscriptions)| KeyInfo {
                id: key.id,
                public_key: key.public_key,
                current: key.is_current,
                subscriptions,
                created_at: key.created_at,
            })
            .collect())
    }

    /// Retires an older key (see [`Store::retire_vapid_key`]), then reloads.
    pub async fn retire(&self, store: &Store, id: i64, force: bool) -> anyhow::Result<KeyRetired> {
        let retired = store.retire_vapid_key(&self.site, id, force).await?;
        self.reload(store).await?;
        Ok(retired)
    }
}

/// The keyring of `site`, or `NotFound` naming it.
fn site_keyring(core: &crate::Clarion, site: &str) -> Result<Arc<Keyring>, CoreError> {
    Ok(core.sites.get(site)?.keyring.clone())
}

/// `site`'s current public key (base64url), the pages' `applicationServerKey`: from
/// memory, so this public read costs the same however many subscriptions are stored.
pub fn current_public_key(core: &crate::Clarion, site: &str) -> Result<String, CoreError> {
    Ok(site_keyring(core, site)?.current().public_key_b64().to_string())
}

/// `site`'s keys, oldest first, each with the number of subscriptions bound to it.
pub async fn list_keys(core: &crate::Clarion, site: &str) -> Result<Vec<KeyInfo>, CoreError> {
    Ok(site_keyring(core, site)?.list(&core.store).await?)
}

/// Makes a fresh key `site`'s current one (REST `POST …/vapid-keys`, `clarion sites
/// rotate-key`).
pub async fn rotate_key(core: &crate::Clarion, site: &str) -> Result<KeyInfo, CoreError> {
    let keyring = site_keyring(core, site)?;
    let key = keyring.rotate(&core.store).await?;
    tracing::info!(site, id = key.id, public_key = %key.public_key, "VAPID key rotated");
    Ok(key)
}

/// Makes a key another sender used `site`'s current one (`clarion sites import-key`).
pub async fn import_key(core: &crate::Clarion, site: &str, material: &VapidKeyMaterial) -> Result<KeyInfo, CoreError> {
    let keyring = site_keyring(core, site)?;
    let key = keyring.import(&core.store, material).await?;
    tracing::info!(site, id = key.id, public_key = %key.public_key, "VAPID key imported");
    Ok(key)
}

/// Retires an older key of `site`: refused while subscriptions are bound to it, unless
/// `force` removes them (their number is returned); the current key is never retired.
pub async fn retire_key(core: &crate::Clarion, site: &str, id: i64, force: bool) -> Result<u64, CoreError> {
    match site_keyring(core, site)?.retire(&core.store, id, force).await? {
        KeyRetired::Retired { removed } => {
            tracing::info!(site, id, removed, "VAPID key retired");
            Ok(removed)
        }
        KeyRetired::NotFound => Err(CoreError::NotFound(format!("site {site:?} has no VAPID key {id}"))),
        KeyRetired::Current => Err(CoreError::Conflict {
            field: "id",
            reason: format!("key {id} is the current key of site {site:?}; rotate to a new key before retiring it"),
        }),
        KeyRetired::StillBound { subscriptions } => Err(CoreError::Conflict {
            field: "id",
            reason: format!(
                "{subscriptions} subscriptions are still bound to key {id}; they move to the current key on their next visit. \
                 Retire it once none are left, or with force=true to remove them"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_purpose() {
        let master = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = master.seal("a", b"secret");
        assert_eq!(master.open("a", &sealed).unwrap(), b"secret");
        assert!(master.open("b", &sealed).is_err());
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open("a", &sealed).unwrap_err().to_string().contains("CLARION_MASTER_KEY"));
        // A fresh nonce each time.
        assert_ne!(master.seal("a", b"secret"), sealed);
    }

    #[test]
    fn a_generated_master_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal("p", b"x");
        let again = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again.open("p", &sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::load_or_create(Some("short"), dir.path()).is_err());
    }
}
