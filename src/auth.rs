//! API keys at the door: `Authorization: Bearer <key>` (or `X-API-Key`), looked up by hash and
//! cached for a few seconds so a score costs no database read; a revoked key stops working
//! within [`CACHE_TTL`] on every instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::store::keys::{hash_key, KeyInfo, Role};
use crate::store::{Store, StoreError};

/// How long a lookup is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most (random wrong keys must not grow the cache without bound).
const CACHE_CAP: usize = 10_000;

/// Who is calling, once authorised; handlers read it from the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No key, or not one we know: 401.
    Unauthenticated(&'static str),
    /// A valid key without the role: 403.
    Forbidden { role: Role, needed: Role },
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<KeyInfo>, Instant)>>,
}

impl KeyCache {
    /// Checks the request's key against `needed` (`None`: any valid key will do).
    pub async fn authorize(
        &self,
        store: &Store,
        headers: &HeaderMap,
        needed: Option<Role>,
    ) -> Result<Result<Caller, Denied>, StoreError> {
        let Some(secret) = presented_key(headers) else {
            return Ok(Err(Denied::Unauthenticated(
                "send an API key as `Authorization: Bearer <key>`",
            )));
        };
        let key = self.lookup(store, secret).await?;
        Ok(match key {
            None => Err(Denied::Unauthenticated(
                "the API key is not valid (unknown or revoked)",
            )),
            Some(k) => match needed {
                Some(needed) if !k.role.allows(needed) => Err(Denied::Forbidden {
                    role: k.role,
                    needed,
                }),
                _ => Ok(Caller {
                    key_id: k.id,
                    role: k.role,
                }),
            },
        })
    }

    async fn lookup(&self, store: &Store, secret: &str) -> Result<Option<KeyInfo>, StoreError> {
        let hash = hash_key(secret);
        if let Some((info, at)) = self.lock().get(&hash) {
            if at.elapsed() < CACHE_TTL {
                return Ok(info.clone());
            }
        }
        let info = store.find_key(secret).await?;
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAP {
            entries.clear();
        }
        entries.insert(hash, (info.clone(), Instant::now()));
        Ok(info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<KeyInfo>, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim())
            .filter(|k| !k.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}
