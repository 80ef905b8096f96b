//! Bearer authentication: tenant API keys and the bootstrap admin token.
//!
//! Secrets never reach a log: keys are hashed on arrival and only the hash
//! is looked up, rate-limited on, or kept. A key found in the store is
//! trusted for `Limits::api_key_cache_ttl` without asking again, so a
//! request costs one store read, not two.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use dbaas_core::domain::{ApiKeyRecord, hash_api_key};
use dbaas_store::Store;

/// The tenant a request acts for, authenticated by its API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    /// The key's prefix: names the key in audit records without the secret.
    pub api_key: String,
}

/// Proof that a request carries the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// The token of `Authorization: Bearer <token>`.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer header".to_owned()))?;
    let malformed =
        || ApiError::Unauthorized("the Authorization header is not Bearer <key>".to_owned());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key_hash = hash_api_key(bearer(parts)?);
        let Some(record) = state.api_keys.find(&*state.store, &key_hash).await? else {
            return Err(ApiError::Unauthorized("invalid API key".to_owned()));
        };
        // Limited only after the lookup, so the limiter holds state for
        // real keys only and random tokens cannot grow it.
        state.rate_limiter.check(&key_hash)?;
        Ok(Caller {
            tenant_id: record.tenant_id,
            api_key: record.prefix,
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let Some(expected) = state.admin_token.as_deref() else {
            return Err(ApiError::Unauthorized(
                "the admin API is disabled: DBAAS_ADMIN_TOKEN is not set".to_owned(),
            ));
        };
        if constant_time_eq(token, expected) {
            return Ok(Admin);
        }
        if state
            .api_keys
            .find(&*state.store, &hash_api_key(token))
            .await?
            .is_some()
        {
            return Err(ApiError::Forbidden(
                "tenant API keys cannot call admin routes".to_owned(),
            ));
        }
        Err(ApiError::Unauthorized("invalid admin token".to_owned()))
    }
}

/// Compares digests rather than the strings, so the time taken reveals
/// neither the length nor a matching prefix of the expected token.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// API keys found in the store, kept for a while so most requests need no
/// lookup. Only keys that exist are kept: a new key works at once, and
/// random tokens cannot fill the cache.
#[derive(Clone)]
pub(crate) struct ApiKeyCache(Option<moka::sync::Cache<String, ApiKeyRecord>>);

impl ApiKeyCache {
    /// Bounded: past this many keys the least used are dropped.
    const CAPACITY: u64 = 10_000;

    pub(crate) fn new(ttl: Duration) -> Self {
        ApiKeyCache((!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build()
        }))
    }

    /// The key with this hash, from the cache or else the store.
    pub(crate) async fn find(
        &self,
        store: &dyn Store,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, ApiError> {
        if let Some(hit) = self.0.as_ref().and_then(|c| c.get(key_hash)) {
            return Ok(Some(hit));
        }
        let found = store.find_api_key(key_hash).await?;
        if let (Some(cache), Some(record)) = (&self.0, &found) {
            cache.insert(key_hash.to_owned(), record.clone());
        }
        Ok(found)
    }
}

/// Requests per second per API key, with a burst allowance.
pub struct RateLimiter(DefaultKeyedRateLimiter<String>);

impl RateLimiter {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        RateLimiter(DefaultKeyedRateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ))
    }

    /// 429 with the wait until the key may call again.
    fn check(&self, key_hash: &str) -> Result<(), ApiError> {
        self.0
            .check_key(&key_hash.to_owned())
            .map_err(|not_until| ApiError::TooManyRequests {
                retry_after: not_until.wait_time_from(self.0.clock().now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq("secret-token", "secret-token"));
        assert!(!constant_time_eq("secret-token", "secret-tokem"));
        assert!(!constant_time_eq("secret", "secret-token"));
    }

    #[test]
    fn bearer_parsing() {
        let parts = |value: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .header(header::AUTHORIZATION, value)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        assert_eq!(bearer(&parts("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(&parts("bearer  abc ")).unwrap(), "abc");
        assert!(bearer(&parts("Basic abc")).is_err());
        assert!(bearer(&parts("Bearer ")).is_err());
        assert!(bearer(&parts("Bearer")).is_err());
        let (none, ()) = axum::http::Request::new(()).into_parts();
        assert!(matches!(bearer(&none), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn rate_limiter_allows_the_burst_then_asks_to_wait() {
        let limiter = RateLimiter::new(NonZeroU32::MIN, NonZeroU32::new(2).unwrap());
        assert!(limiter.check("k").is_ok());
        assert!(limiter.check("k").is_ok());
        assert!(matches!(
            limiter.check("k"),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(limiter.check("other").is_ok());
    }
}
