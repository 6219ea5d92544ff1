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
    /// The key's id, or the personal token's.
    pub key_id: String,
    pub role: Role,
    /// The person behind a personal token.
    pub person: Option<crate::store::users::User>,
}

/// The approver role that also lets a person score through their own token, as a dispatch
/// coordinator does.
pub const DISPATCHER: &str = "dispatcher";

impl Caller {
    /// Who this caller is, as the audit trail names them.
    pub fn actor(&self) -> crate::store::audit::Actor {
        match &self.person {
            Some(p) => crate::store::audit::Actor::user(&p.id, &p.name),
            None => crate::store::audit::Actor::key(&self.key_id),
        }
    }
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
        self.update(key, rate, burst, true)
    }

    /// Whether `key`'s bucket holds a token, without taking it.
    fn holds(&self, key: &K, rate: f64, burst: f64) -> Result<(), u32> {
        self.update(key, rate, burst, false)
    }

    fn update(&self, key: &K, rate: f64, burst: f64, take: bool) -> Result<(), u32> {
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
            if take {
                *tokens -= 1.0;
            }
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
            Some(k) => {
                let dispatcher = k
                    .person
                    .as_ref()
                    .is_some_and(|p| p.roles.iter().any(|r| r == DISPATCHER));
                match needed {
                    Some(Role::Workflow) if dispatcher => Ok(()),
                    Some(needed) if !k.role.allows(needed) => Err(Denied::Forbidden {
                        role: k.role,
                        needed,
                    }),
                    _ => Ok(()),
                }
                .map(|()| Caller {
                    key_id: k.id,
                    role: k.role,
                    person: k.person,
                })
            }
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
        // An address that sent too many unknown keys is refused before the database is asked;
        // only a key found unknown costs a token, so a burst of requests with one valid key
        // not yet cached (the first second after a restart) is never refused.
        if let Some(ip) = client {
            if let Err(retry_after) = self.misses.holds(&ip, MISSES_PER_SECOND, MISSES_BURST) {
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
        if let (None, Some(ip)) = (&info, client) {
            let _ = self.misses.take(&ip, MISSES_PER_SECOND, MISSES_BURST);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        h
    }

    /// Every request gets as far as the database before the first answer comes back (one
    /// thread): with the unknown-key limit charged before the lookup, the 21st was refused.
    #[tokio::test(flavor = "current_thread")]
    async fn only_keys_found_unknown_count_against_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("keys.sqlite3").display());
        let store = Store::connect(&url).await.unwrap();
        let (_, key) = store
            .create_key_with("cold", Role::Workflow, None)
            .await
            .unwrap();
        let cache = Arc::new(KeyCache::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ask = |secret: String| {
            let (cache, store) = (cache.clone(), store.clone());
            tokio::spawn(async move {
                cache
                    .authorize(&store, &bearer(&secret), Some(Role::Workflow), Some(ip))
                    .await
                    .unwrap()
                    .is_ok()
            })
        };
        let valid: Vec<_> = (0..3 * MISSES_BURST as usize)
            .map(|_| ask(key.clone()))
            .collect();
        for t in valid {
            assert!(t.await.unwrap(), "a valid key was refused");
        }
        // Made-up keys are refused, and past the burst before the database is asked.
        let mut limited = 0;
        for i in 0..2 * MISSES_BURST as usize {
            let r = cache
                .authorize(&store, &bearer(&format!("made-up-{i}")), None, Some(ip))
                .await
                .unwrap();
            match r {
                Err(Denied::RateLimited { .. }) => limited += 1,
                Err(_) => {}
                Ok(_) => panic!("a made-up key was accepted"),
            }
        }
        assert!(
            limited >= MISSES_BURST as usize - 1,
            "{limited} rate-limited"
        );
    }
}
