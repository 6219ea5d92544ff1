//! API keys at the door: `Authorization: Bearer <key>` (or `X-API-Key`), looked up by hash and
//! cached for a few seconds so a score costs no database read; a revoked key stops working
//! within [`CACHE_TTL`] on every instance. While the database cannot be reached, a key
//! already known to be valid keeps working.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::store::keys::{hash_key, KeyInfo, Role};
use crate::store::{Store, StoreError};

/// How long a lookup is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most (random wrong keys must not grow the cache without bound).
const CACHE_CAP: usize = 10_000;
/// Lookups of keys not in the cache one client address may cause per second (and at once):
/// a flood of made-up keys is refused before it reaches the database.
const MISSES_PER_SECOND: f64 = 10.0;
const MISSES_BURST: f64 = 20.0;
/// Clients (addresses, keys) whose buckets are kept at most.
const BUCKETS_CAP: usize = 100_000;

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
    /// Over the key's rate, or too many unknown keys from this address: 429, retry after
    /// this many seconds.
    RateLimited { retry_after: u32, why: &'static str },
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<KeyInfo>, Instant)>>,
    /// Per client address: lookups of keys the cache does not hold.
    misses: Buckets<IpAddr>,
    /// Per key id: requests, for keys with a rate limit.
    rates: Buckets<String>,
}

/// Token buckets by client: each holds up to `burst` tokens and refills at `rate` per second.
struct Buckets<K> {
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Takes a token from `key`'s bucket; `Err(seconds)` until one is there.
    fn take(&self, key: &K, rate: f64, burst: f64) -> Result<(), u32> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= BUCKETS_CAP && !buckets.contains_key(key) {
            // Full buckets say nothing: dropping them forgets only who was idle.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u32)
        }
    }
}

impl KeyCache {
    /// Checks the request's key against `needed` (`None`: any valid key will do) and its rate
    /// limit; `client` is the caller's address, whose lookups of uncached keys are limited.
    pub async fn authorize(
        &self,
        store: &Store,
        headers: &HeaderMap,
        needed: Option<Role>,
        client: Option<IpAddr>,
    ) -> Result<Result<Caller, Denied>, StoreError> {
        let Some(secret) = presented_key(headers) else {
            return Ok(Err(Denied::Unauthenticated(
                "send an API key as `Authorization: Bearer <key>`",
            )));
        };
        let key = match self.lookup(store, secret, client).await? {
            Ok(key) => key,
            Err(denied) => return Ok(Err(denied)),
        };
        if let Some(k) = &key {
            if let Some(rate) = k.rate_limit {
                let rate = f64::from(rate);
                if let Err(retry_after) = self.rates.take(&k.id, rate, rate) {
                    return Ok(Err(Denied::RateLimited {
                        retry_after,
                        why: "this key is over its rate limit",
                    }));
                }
            }
        }
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

    async fn lookup(
        &self,
        store: &Store,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Result<Option<KeyInfo>, Denied>, StoreError> {
        let hash = hash_key(secret);
        if let Some((info, at)) = self.lock().get(&hash) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Ok(info.clone()));
            }
        }
        if let Some(ip) = client {
            if let Err(retry_after) = self.misses.take(&ip, MISSES_PER_SECOND, MISSES_BURST) {
                return Ok(Err(Denied::RateLimited {
                    retry_after,
                    why: "too many unknown API keys from this address",
                }));
            }
        }
        let info = match store.find_key(secret).await {
            Ok(info) => info,
            Err(e) => {
                // The database is away: a key known to be valid stays valid (dispatch must not
                // stop), until the database can say otherwise.
                if let Some((Some(info), _)) = self.lock().get(&hash) {
                    tracing::warn!(error = %e, "key lookup failed; trusting the cached key");
                    return Ok(Ok(Some(info.clone())));
                }
                return Err(e);
            }
        };
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAP {
            // Unknown keys go first, and valid ones only once their time is up: a flood of
            // random keys must not evict the keys of the workflows that are really calling.
            entries.retain(|_, (info, at)| info.is_some() && at.elapsed() < CACHE_TTL);
        }
        entries.insert(hash, (info.clone(), Instant::now()));
        Ok(Ok(info))
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
