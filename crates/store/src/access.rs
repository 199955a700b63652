//! API keys (by the hash of their secret; never the secret) and the audit log, which
//! Clarion only appends to and prunes by age.

use crate::{now_rfc3339, on_pool, Store};
use clarion_domain::{ApiKeyInfo, AuditEntry, Scope};
use sqlx::FromRow;

#[derive(FromRow)]
struct ApiKeyRow {
    id: i64,
    name: String,
    site: Option<String>,
    scopes: String,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyInfo {
            id: row.id,
            name: row.name,
            site: row.site,
            scopes: row.scopes.split(',').filter_map(Scope::parse).collect(),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: String,
    key_id: Option<i64>,
    key_name: String,
    site: String,
    action: String,
    target: String,
    audience: Option<i64>,
    client: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        let AuditRow { id, at, key_id, key_name, site, action, target, audience, client } = row;
        AuditEntry { id, at, key_id, key_name, site, action, target, audience, client }
    }
}

const KEY_COLUMNS: &str = "id, name, site, scopes, created_at, last_used_at, expires_at";

/// An entry to append to the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub key_id: Option<i64>,
    pub key_name: &'a str,
    pub site: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub audience: Option<i64>,
    pub client: &'a str,
}

impl Store {
    /// Stores a new key by the hash of its secret; answers its id.
    pub async fn create_api_key(
        &self,
        name: &str,
        site: Option<&str>,
        scopes: &[Scope],
        secret_hash: &str,
        expires_at: Option<&str>,
    ) -> anyhow::Result<ApiKeyInfo> {
        let scopes = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let sql = format!(
            "INSERT INTO api_keys (name, site, scopes, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING {KEY_COLUMNS}"
        );
        let row: ApiKeyRow = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(name).bind(site).bind(&scopes).bind(secret_hash).bind(now_rfc3339()).bind(expires_at).fetch_one(pool).await?
        });
        Ok(row.into())
    }

    /// The keys not revoked, oldest first.
    pub async fn api_keys(&self) -> anyhow::Result<Vec<ApiKeyInfo>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY id");
        let rows: Vec<ApiKeyRow> = on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The key whose secret hashes to `secret_hash`, unless revoked (expiry is the
    /// caller's to judge).
    pub async fn api_key_by_hash(&self, secret_hash: &str) -> anyhow::Result<Option<ApiKeyInfo>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL");
        let row: Option<ApiKeyRow> = on_pool!(self, pool => sqlx::query_as(&sql).bind(secret_hash).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }

    /// Key `id`, unless revoked (expiry is the caller's to judge).
    pub async fn api_key_by_id(&self, id: i64) -> anyhow::Result<Option<ApiKeyInfo>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND revoked_at IS NULL");
        let row: Option<ApiKeyRow> = on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }

    /// Records that key `id` was used, at most once a minute per key (a write per request
    /// would make every API call a database write).
    pub async fn touch_api_key(&self, id: i64) -> anyhow::Result<()> {
        let now = now_rfc3339();
        let a_minute_ago = clarion_domain::clock::rfc3339_at(clarion_domain::clock::unix_seconds() - 60);
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
                .bind(&now)
                .bind(id)
                .bind(&a_minute_ago)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revokes key `id`; `None` when there is no such key (or it was revoked before).
    pub async fn revoke_api_key(&self, id: i64) -> anyhow::Result<Option<ApiKeyInfo>> {
        let sql = format!("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING {KEY_COLUMNS}");
        let row: Option<ApiKeyRow> = on_pool!(self, pool => sqlx::query_as(&sql).bind(now_rfc3339()).bind(id).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }

    /// Appends one entry to the audit log.
    pub async fn append_audit(&self, entry: &AuditRecord<'_>) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_log (at, key_id, key_name, site, action, target, audience, client) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(now_rfc3339())
            .bind(entry.key_id)
            .bind(entry.key_name)
            .bind(entry.site)
            .bind(entry.action)
            .bind(entry.target)
            .bind(entry.audience)
            .bind(entry.client)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Up to `limit` entries after id `after` (of `site`, when given), oldest first.
    pub async fn audit_entries(&self, site: Option<&str>, after: i64, limit: i64) -> anyhow::Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, at, key_id, key_name, site, action, target, audience, client FROM audit_log
                 WHERE id > $1 AND ($2 IS NULL OR site = $2) ORDER BY id LIMIT $3",
            )
            .bind(after)
            .bind(site)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The `limit` newest entries, newest first.
    pub async fn latest_audit(&self, limit: i64) -> anyhow::Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, at, key_id, key_name, site, action, target, audience, client FROM audit_log ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes the entries older than `before` (RFC 3339); answers how many.
    pub async fn prune_audit(&self, before: &str) -> anyhow::Result<u64> {
        Ok(on_pool!(self, pool => sqlx::query("DELETE FROM audit_log WHERE at < $1").bind(before).execute(pool).await?.rows_affected()))
    }
}
