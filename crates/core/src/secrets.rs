//! Secrets on disk (the VAPID key, the client-hash key) and the admin token.
//!
//! The data dir is created 0700 and secret files 0600. The admin token is kept only as a
//! SHA-256 digest in memory and compared in constant time; it is never logged.

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

/// Makes an SQLite database file private before SQLite opens it: creates it empty with
/// mode 0600 if missing, and narrows an existing one (and its `-wal`/`-shm`) to 0600.
/// SQLite creates `-wal` and `-shm` with the database file's mode, so they follow,
/// whatever the data dir's mode or the umask.
pub fn private_database_files(database: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(database).with_context(|| format!("Failed to create {}", database.display()))?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let path = std::path::PathBuf::from(format!("{}{suffix}", database.display()));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("Failed to make {} private", path.display()))?;
        }
    }
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

/// The admin bearer token, held as a digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    /// See [`AdminToken::session_tag`]; fixed with the token, so derived once.
    session_tag: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut hasher = Sha256::new();
        hasher.update(b"clarion admin session tag\0");
        hasher.update(digest);
        Self { digest, session_tag: base64url::encode(&hasher.finalize()[..16]) }
    }

    /// Identifies this token among instances sharing a database, without revealing it: a
    /// digest of its digest under a label of its own (not the session tag's).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"clarion admin token fingerprint\0");
        hasher.update(self.digest);
        base64url::encode(&hasher.finalize()[..12])
    }

    /// Identifies this token to the sessions opened with it, without revealing it: a
    /// digest of its digest, under a label of its own.
    pub fn session_tag(&self) -> &str {
        &self.session_tag
    }

    /// Constant-time check of a presented token (digests have equal length whatever the input).
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }

    /// From the setting, or `<data-dir>/admin_token`, generating that file on first start.
    /// A configured token must have at least [`MIN_ADMIN_TOKEN_CHARS`] characters. Logs
    /// only the file's path.
    pub fn load_or_create(setting: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(token) = setting.map(str::trim).filter(|t| !t.is_empty()) {
            let chars = token.chars().count();
            if chars < MIN_ADMIN_TOKEN_CHARS {
                anyhow::bail!(
                    "CLARION_ADMIN_TOKEN has {chars} characters; use at least {MIN_ADMIN_TOKEN_CHARS} random ones (for example `openssl rand -base64 32`), or unset it to have one generated into <data-dir>/admin_token"
                );
            }
            return Ok(Self::new(token));
        }
        let path = data_dir.join("admin_token");
        if path.exists() {
            let token = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
            return Ok(Self::new(token.trim()));
        }
        let mut bytes = [0u8; 32];
        random::fill(&mut bytes)?;
        let token = base64url::encode(&bytes);
        write_secret_file(&path, format!("{token}\n").as_bytes())?;
        tracing::info!(path = %path.display(), "generated an admin token; read it from this file");
        Ok(Self::new(&token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_exact_token() {
        let token = AdminToken::new("s3cret");
        assert!(token.verify("s3cret"));
        assert!(!token.verify("s3cret "));
        assert!(!token.verify(""));
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn generated_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ensure_data_dir(&data).unwrap();
        let token = AdminToken::load_or_create(None, &data).unwrap();
        let written = std::fs::read_to_string(data.join("admin_token")).unwrap();
        assert!(token.verify(written.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(data.join("admin_token")).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // A second start reads the same token back.
        let again = AdminToken::load_or_create(None, &data).unwrap();
        assert!(again.verify(written.trim()));
    }
}
