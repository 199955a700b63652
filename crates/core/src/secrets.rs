//! Secrets on disk (the VAPID key, the client-hash key) and the admin token.
//!
//! The data dir is created 0700 and secret files 0600. The admin token is kept only as a
//! SHA-256 digest in memory and compared in constant time; it is never logged, and what
//! of it is stored (see [`AdminToken`]) is keyed with Argon2id under a deployment salt.

use anyhow::Context;
use clarion_domain::{base64url, random};
use clarion_push::vapid::VapidKeyMaterial;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Creates the data dir (0700) if it does not exist.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create data dir {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Writes a new file readable only by its owner; fails if it exists.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("Failed to create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// Loads the key from the setting, or from `<data-dir>/vapid_private.pem`, creating that
/// file (mode 0600) on first start.
pub fn load_or_create_vapid_key(setting: Option<&str>, data_dir: &Path) -> anyhow::Result<VapidKeyMaterial> {
    if let Some(value) = setting.filter(|v| !v.trim().is_empty()) {
        return VapidKeyMaterial::from_setting(value).context("CLARION_VAPID_PRIVATE_KEY is not a usable key");
    }
    let path = data_dir.join("vapid_private.pem");
    if path.exists() {
        let pem = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
        return VapidKeyMaterial::from_pem(&pem).with_context(|| format!("{} is not a P-256 private key", path.display()));
    }
    let material = VapidKeyMaterial::generate();
    write_secret_file(&path, material.to_pkcs8_pem().as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new VAPID key");
    Ok(material)
}

/// The key for hashing client addresses (`<data-dir>/client_hash_key`, 0600, created on
/// first start). It stays with the data, so caps survive restarts.
pub fn client_hash_key(data_dir: &Path) -> anyhow::Result<ring::hmac::Key> {
    let path = data_dir.join("client_hash_key");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        Ok(_) => anyhow::bail!("{} is not a 32-byte key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut fresh = [0u8; 32];
            random::fill(&mut fresh)?;
            write_secret_file(&path, &fresh)?;
            fresh.to_vec()
        }
        Err(e) => return Err(e).with_context(|| format!("Failed to read {}", path.display())),
    };
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

/// The shortest admin token accepted from the configuration.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The name of the admin token's salt among the deployment's salts.
pub const ADMIN_TOKEN_SALT: &str = "admin_token";

/// The admin bearer token, held as a digest for checking presented tokens, and as two
/// keyed digests for what is stored in the database.
///
/// What reaches the database (the fingerprint instances agree on, the tag of each console
/// session) is derived from Argon2id of the token under the deployment's random salt, so
/// a copy of the database gives a guesser one costly Argon2id per guess and nothing to
/// share between deployments. The plain digest never leaves memory.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    /// See [`AdminToken::fingerprint`].
    fingerprint: String,
    /// See [`AdminToken::session_tag`].
    session_tag: String,
    /// See [`AdminToken::unsalted_fingerprint`].
    unsalted_fingerprint: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Argon2id with OWASP's first recommended setting (19 MiB, two passes, one lane): tens of
/// milliseconds once at start, the same for each guess at a stolen digest.
fn stretch(token: &str, salt: &[u8]) -> anyhow::Result<[u8; 32]> {
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    hasher.hash_password_into(token.as_bytes(), salt, &mut key).map_err(|e| anyhow::anyhow!("Argon2: {e}"))?;
    Ok(key)
}

fn labelled(key: &ring::hmac::Key, label: &str, bytes: usize) -> String {
    base64url::encode(&ring::hmac::sign(key, label.as_bytes()).as_ref()[..bytes])
}

impl AdminToken {
    /// The token, keyed with the deployment's `salt` (at least 8 bytes; see
    /// [`ADMIN_TOKEN_SALT`]).
    pub fn new(token: &str, salt: &[u8]) -> anyhow::Result<Self> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let stretched = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &stretch(token, salt)?);
        let mut legacy = Sha256::new();
        legacy.update(b"clarion admin token fingerprint\0");
        legacy.update(digest);
        Ok(Self {
            digest,
            fingerprint: format!("argon2id:{}", labelled(&stretched, "clarion admin token fingerprint", 18)),
            session_tag: labelled(&stretched, "clarion admin session tag", 16),
            unsalted_fingerprint: base64url::encode(&legacy.finalize()[..12]),
        })
    }

    /// Identifies this token among instances sharing a database, without revealing it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// What versions before the salt recorded as the fingerprint (a plain digest of the
    /// token's digest). Used once, to recognise such a record and replace it with
    /// [`AdminToken::fingerprint`]; never stored anew.
    pub fn unsalted_fingerprint(&self) -> &str {
        &self.unsalted_fingerprint
    }

    /// Identifies this token to the sessions opened with it, without revealing it:
    /// changing the token ends every session.
    pub fn session_tag(&self) -> &str {
        &self.session_tag
    }

    /// Constant-time check of a presented token (digests have equal length whatever the input).
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }

    /// From the setting, or `<data-dir>/admin_token`, generating that file on first start;
    /// keyed with the deployment's `salt`. A configured token must have at least
    /// [`MIN_ADMIN_TOKEN_CHARS`] characters. Logs only the file's path.
    pub fn load_or_create(setting: Option<&str>, data_dir: &Path, salt: &[u8]) -> anyhow::Result<Self> {
        if let Some(token) = setting.map(str::trim).filter(|t| !t.is_empty()) {
            let chars = token.chars().count();
            if chars < MIN_ADMIN_TOKEN_CHARS {
                anyhow::bail!(
                    "CLARION_ADMIN_TOKEN has {chars} characters; use at least {MIN_ADMIN_TOKEN_CHARS} random ones (for example `openssl rand -base64 32`), or unset it to have one generated into <data-dir>/admin_token"
                );
            }
            return Self::new(token, salt);
        }
        let path = data_dir.join("admin_token");
        if path.exists() {
            let token = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
            return Self::new(token.trim(), salt);
        }
        let mut bytes = [0u8; 32];
        random::fill(&mut bytes)?;
        let token = base64url::encode(&bytes);
        write_secret_file(&path, format!("{token}\n").as_bytes())?;
        tracing::info!(path = %path.display(), "generated an admin token; read it from this file");
        Self::new(&token, salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_exact_token() {
        let token = AdminToken::new("s3cret", b"0123456789abcdef").unwrap();
        assert!(token.verify("s3cret"));
        assert!(!token.verify("s3cret "));
        assert!(!token.verify(""));
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn stored_digests_depend_on_the_salt_and_differ_from_each_other() {
        let one = AdminToken::new("s3cret", b"salt-of-deployment-one").unwrap();
        let two = AdminToken::new("s3cret", b"salt-of-deployment-two").unwrap();
        let again = AdminToken::new("s3cret", b"salt-of-deployment-one").unwrap();
        assert_eq!(one.fingerprint(), again.fingerprint(), "instances sharing a salt agree");
        assert_eq!(one.session_tag(), again.session_tag());
        assert_ne!(one.fingerprint(), two.fingerprint(), "each deployment's are its own");
        assert_ne!(one.session_tag(), two.session_tag());
        assert!(one.fingerprint().starts_with("argon2id:"));
        assert!(!one.fingerprint().contains(one.session_tag()));
        assert_eq!(one.unsalted_fingerprint(), two.unsalted_fingerprint(), "the old record is recognisable");
    }

    #[test]
    fn generated_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ensure_data_dir(&data).unwrap();
        let token = AdminToken::load_or_create(None, &data, b"0123456789abcdef").unwrap();
        let written = std::fs::read_to_string(data.join("admin_token")).unwrap();
        assert!(token.verify(written.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(data.join("admin_token")).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // A second start reads the same token back.
        let again = AdminToken::load_or_create(None, &data, b"0123456789abcdef").unwrap();
        assert!(again.verify(written.trim()));
    }
}
