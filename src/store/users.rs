//! People who decide approvals: a name, an email, the approver roles they hold, an argon2id
//! password hash for the page and personal tokens for API calls. Tokens are 256 random bits
//! shown once and stored as SHA-256, like keys; passwords are guessable, so they get a slow
//! hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sqlx::Row;

use super::keys::{hash_key, random_hex};
use super::{now_text, Store, StoreError};

/// The prefix of a person's token (a key's is `drk_`).
pub const TOKEN_PREFIX: &str = "dru_";
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A person, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// Why a user could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with email `{0}` exists already")]
    Exists(String),
    #[error("no user has email `{0}`")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The argon2id hash of `password` in PHC form (parameters and salt inside).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Invalid(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(e.to_string()))
}

/// Whether `password` matches the stored PHC hash.
pub fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Roles as given on the command line: lower-case words, at least one.
pub fn parse_roles(text: &str) -> Result<Vec<String>, UserError> {
    let roles: Vec<String> = text
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if roles.is_empty() {
        return Err(UserError::Invalid("name at least one role".into()));
    }
    for r in &roles {
        if !r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(UserError::Invalid(format!(
                "role `{r}`: expected lower-case letters and underscores (dispatch_manager)"
            )));
        }
    }
    Ok(roles)
}

pub(super) fn user_of(r: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let roles: String = r.try_get("roles")?;
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        roles: roles.split(',').map(str::to_string).collect(),
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

const USER_COLUMNS: &str = "id, name, email, roles, created_at, disabled_at";

impl Store {
    /// Creates a user; `password` may be set later.
    pub async fn create_user(
        &self,
        name: &str,
        email: &str,
        roles: &[String],
        password: Option<&str>,
    ) -> Result<User, UserError> {
        let email = email.trim().to_lowercase();
        if name.trim().is_empty() {
            return Err(UserError::Invalid("a user needs a name".into()));
        }
        if !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(UserError::Invalid(format!(
                "`{email}` is not an email address"
            )));
        }
        if self.user_by_email(&email).await?.is_some() {
            return Err(UserError::Exists(email));
        }
        let hash = password.map(hash_password).transpose()?;
        let user = User {
            id: format!("usr_{}", random_hex(6)),
            name: name.trim().to_string(),
            email,
            roles: roles.to_vec(),
            created_at: now_text(),
            disabled_at: None,
        };
        sqlx::query(
            "INSERT INTO users (id, name, email, roles, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.roles.join(","))
        .bind(hash)
        .bind(&user.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"));
        let row = sqlx::query(sql)
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_of).transpose()?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(user_of).collect::<Result<_, _>>()?)
    }

    /// Disables a user and revokes their tokens.
    pub async fn disable_user(&self, email: &str) -> Result<User, UserError> {
        let user = self
            .user_by_email(email)
            .await?
            .ok_or_else(|| UserError::Unknown(email.to_string()))?;
        let now = now_text();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(&now)
            .bind(&user.id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        sqlx::query(
            "UPDATE user_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(&now)
        .bind(&user.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(User {
            disabled_at: Some(now),
            ..user
        })
    }

    pub async fn set_password(&self, email: &str, password: &str) -> Result<User, UserError> {
        let user = self
            .user_by_email(email)
            .await?
            .ok_or_else(|| UserError::Unknown(email.to_string()))?;
        let hash = hash_password(password)?;
        sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2")
            .bind(hash)
            .bind(&user.id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(user)
    }

    /// A new personal token for an active user: (token id, the token, shown once).
    pub async fn create_user_token(
        &self,
        email: &str,
    ) -> Result<(User, String, String), UserError> {
        let user = self
            .user_by_email(email)
            .await?
            .ok_or_else(|| UserError::Unknown(email.to_string()))?;
        if user.disabled_at.is_some() {
            return Err(UserError::Invalid(format!(
                "user `{}` is disabled",
                user.email
            )));
        }
        let id = format!("tok_{}", random_hex(6));
        let secret = format!("{TOKEN_PREFIX}{}", random_hex(32));
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&user.id)
        .bind(hash_key(&secret))
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok((user, id, secret))
    }

    /// Revokes a token by id; `false` when no such token is active.
    pub async fn revoke_user_token(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The active user holding this token, with the token's id.
    pub async fn find_user_token(
        &self,
        secret: &str,
    ) -> Result<Option<(String, User)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, u.id, u.name, u.email, u.roles, u.created_at, u.disabled_at \
             FROM user_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL",
        )
        .bind(hash_key(secret))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get("token_id")?, user_of(&r)?))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("correct horse batterz", &h));
        assert!(!password_matches("anything", "not a hash"));
        assert!(matches!(hash_password("short"), Err(UserError::Invalid(_))));
    }

    #[test]
    fn roles_are_words() {
        assert_eq!(
            parse_roles("dispatch_manager, compliance_manager").unwrap(),
            vec!["dispatch_manager", "compliance_manager"]
        );
        assert!(parse_roles("").is_err());
        assert!(parse_roles("Dispatch Manager").is_err());
    }
}
