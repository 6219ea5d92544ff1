//! API keys as stored: an id, a name, a role and the SHA-256 of the key. The key itself is
//! shown once, when created, and never stored; keys are 256 random bits, so a plain hash is
//! enough (a slow password hash guards guessable secrets, which these are not).

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_text, Store, StoreError};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Dispatch workflows: score, recommend, classify, report outcomes.
    Workflow,
    /// Approvals (the approval queue).
    Manager,
    /// Reads models and records, reloads models and policies.
    Analyst,
    /// Everything, including keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Workflow, Role::Manager, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Workflow => "workflow",
            Role::Manager => "manager",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may call a route that requires `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// Requests per second this key may send (none: no limit).
    pub rate_limit: Option<u32>,
    /// The person a personal token belongs to ([`super::users`]); none for a machine's key.
    #[serde(skip)]
    pub person: Option<super::users::User>,
}

/// The prefix every key starts with, so leaked keys are recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "drk_";

pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `bytes` random bytes from the OS, in hex: ids, secrets, tokens.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex(&buf)
}

impl Store {
    /// Creates a key without a rate limit; returns its record and the secret, which is not
    /// stored.
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(KeyInfo, String), StoreError> {
        self.create_key_with(name, role, None).await
    }

    /// Creates a key that may send at most `rate_limit` requests per second.
    pub async fn create_key_with(
        &self,
        name: &str,
        role: Role,
        rate_limit: Option<u32>,
    ) -> Result<(KeyInfo, String), StoreError> {
        let id = format!("key_{}", random_hex(6));
        let secret = format!("{KEY_PREFIX}{}", random_hex(32));
        let created_at = now_text();
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, created_at, rate_limit) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(name.to_string())
        .bind(role.as_str())
        .bind(hash_key(&secret))
        .bind(created_at.clone())
        .bind(rate_limit.map(i64::from))
        .execute(&self.pool)
        .await?;
        Ok((
            KeyInfo {
                id,
                name: name.to_string(),
                role,
                created_at,
                revoked_at: None,
                rate_limit,
                person: None,
            },
            secret,
        ))
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at, rate_limit FROM api_keys \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_info).collect()
    }

    /// Revokes a key by id; `false` when no such key is active.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_text())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The active key with this secret, or the active person's token, if any. A person acts
    /// with the manager role ([`Role::Manager`]); their approver roles ride along.
    pub async fn find_key(&self, secret: &str) -> Result<Option<KeyInfo>, StoreError> {
        if secret.starts_with(super::users::TOKEN_PREFIX) {
            return Ok(self
                .find_user_token(secret)
                .await?
                .map(|(token, user)| KeyInfo {
                    id: token,
                    name: user.name.clone(),
                    role: Role::Manager,
                    created_at: user.created_at.clone(),
                    revoked_at: None,
                    rate_limit: None,
                    person: Some(user),
                }));
        }
        let row = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at, rate_limit FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.map(key_info).transpose()
    }
}

fn key_info(row: sqlx::any::AnyRow) -> Result<KeyInfo, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(KeyInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| {
            StoreError::Sql(sqlx::Error::Protocol(format!(
                "unknown role `{role}` in api_keys"
            )))
        })?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        rate_limit: row
            .try_get::<Option<i64>, _>("rate_limit")?
            .and_then(|r| u32::try_from(r).ok()),
        person: None,
    })
}
