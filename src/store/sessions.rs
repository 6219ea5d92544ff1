//! Logins and sessions for the manager's pages. A login checks the password against its
//! argon2id hash (off the async workers) and counts failures: past [`MAX_FAILURES`] in a row
//! the account is locked for [`LOCKOUT`]. A session is a random cookie whose SHA-256 is the
//! row's key, with an idle expiry (from its last use) and an absolute one, and the CSRF token
//! every form of the session must carry.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::keys::{hash_key, random_hex};
use super::users::{password_matches, user_of, User};
use super::{Store, StoreError};
use crate::clock::text;

/// Failed logins in a row before the account locks.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked (or until `users set-password`).
pub const LOCKOUT: Duration = Duration::minutes(15);
/// How stale a session's last use may be written: saves a write per page view.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Login {
    Accepted(User),
    /// Unknown email, wrong password, no password set or a disabled account: said alike.
    Refused {
        user_id: Option<String>,
        locked_now: bool,
    },
    /// Locked after repeated failures, until then.
    Locked {
        user_id: String,
        until: String,
    },
}

/// A live session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

/// A hash to verify against when the email is unknown, so an unknown email takes as long to
/// refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        super::users::hash_password("decoy password never used").unwrap_or_default()
    })
}

impl Store {
    /// Checks a login at `now`, counting failures and locking the account past the limit.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Login, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, email, roles, created_at, disabled_at, password_hash, \
             failed_logins, locked_until FROM users WHERE email = $1",
        )
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        let now_text = text(now);
        let (user, hash, failures, locked_until) = match &row {
            Some(r) => {
                let user = user_of(r)?;
                let hash: Option<String> = r.try_get("password_hash")?;
                let failures: i64 = r.try_get("failed_logins")?;
                let locked: Option<String> = r.try_get("locked_until")?;
                (Some(user), hash, failures, locked)
            }
            None => (None, None, 0, None),
        };
        if let (Some(u), Some(until)) = (&user, &locked_until) {
            if until.as_str() > now_text.as_str() {
                return Ok(Login::Locked {
                    user_id: u.id.clone(),
                    until: until.clone(),
                });
            }
        }
        let (password, stored) = (password.to_string(), hash.clone());
        let matches = tokio::task::spawn_blocking(move || match stored {
            Some(h) => password_matches(&password, &h),
            None => {
                let _ = password_matches(&password, decoy_hash());
                false
            }
        })
        .await
        .unwrap_or(false);
        let Some(user) = user else {
            return Ok(Login::Refused {
                user_id: None,
                locked_now: false,
            });
        };
        if matches && user.disabled_at.is_none() {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(&user.id)
                .execute(&self.pool)
                .await?;
            return Ok(Login::Accepted(user));
        }
        let failures = failures + 1;
        let locked_now = failures >= MAX_FAILURES;
        sqlx::query("UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3")
            .bind(if locked_now { 0 } else { failures })
            .bind(locked_now.then(|| text(now + LOCKOUT)))
            .bind(&user.id)
            .execute(&self.pool)
            .await?;
        Ok(Login::Refused {
            user_id: Some(user.id),
            locked_now,
        })
    }

    /// Opens a session for `user`: (the cookie's value, the session's CSRF token).
    pub async fn create_session(
        &self,
        user: &User,
        now: DateTime<Utc>,
        absolute: Duration,
    ) -> Result<(String, String), StoreError> {
        let token = random_hex(32);
        let csrf = random_hex(16);
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(hash_key(&token))
        .bind(&user.id)
        .bind(&csrf)
        .bind(text(now))
        .bind(text(now + absolute))
        .execute(&self.pool)
        .await?;
        Ok((token, csrf))
    }

    /// The live session of this cookie at `now`: not ended, used within `idle`, before its
    /// absolute expiry, its user active.
    pub async fn session(
        &self,
        token: &str,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT s.csrf, s.last_seen_at, s.expires_at, u.id, u.name, u.email, u.roles, \
             u.created_at, u.disabled_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.ended_at IS NULL",
        )
        .bind(hash_key(token))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let now_text = text(now);
        let last_seen: String = r.try_get("last_seen_at")?;
        let expires: String = r.try_get("expires_at")?;
        let user = user_of(&r)?;
        if expires <= now_text || last_seen < text(now - idle) || user.disabled_at.is_some() {
            return Ok(None);
        }
        if last_seen < text(now - TOUCH_EVERY) {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(&now_text)
                .bind(hash_key(token))
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(Session {
            csrf: r.try_get("csrf")?,
            user,
        }))
    }

    pub async fn end_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL")
            .bind(text(now))
            .bind(hash_key(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
