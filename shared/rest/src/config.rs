//! Command-line and environment configuration of the API, shared by the
//! `dbaas-api` binary and the local-mode runner.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use super::Limits;

/// HTTP settings. Every flag has an environment equivalent.
#[derive(Clone, clap::Args)]
pub struct ApiConfig {
    /// Address and port to listen on.
    #[arg(long, env = "DBAAS_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// Bootstrap token for the admin routes (tenants and API keys). Unset,
    /// the admin routes answer 401. Prefer the environment variable: flags
    /// show in process listings.
    #[arg(long, env = "DBAAS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// Per-request bounds, as flags with environment equivalents.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// Longest a request may run, in milliseconds; slower requests are
    /// answered 504.
    #[arg(long, env = "DBAAS_REQUEST_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// Steady requests per second allowed per API key; more are answered 429.
    #[arg(long, env = "DBAAS_RATE_LIMIT_PER_SECOND", default_value = "100")]
    pub rate_limit_per_second: NonZeroU32,

    /// Requests per API key allowed in a burst above the steady rate.
    #[arg(long, env = "DBAAS_RATE_LIMIT_BURST", default_value = "200")]
    pub rate_limit_burst: NonZeroU32,

    /// API requests served at once; more wait up to the admission wait,
    /// then are answered 503 with Retry-After (fast, not after the timeout).
    #[arg(long, env = "DBAAS_MAX_IN_FLIGHT", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,

    /// Longest a request waits for a place among those in flight, in
    /// milliseconds.
    #[arg(long, env = "DBAAS_ADMISSION_WAIT_MS", default_value_t = 100)]
    pub admission_wait_ms: u64,

    /// Of those, list requests (databases, operations, events) served at
    /// once; more are treated like requests past the limit above.
    #[arg(long, env = "DBAAS_MAX_LISTS_IN_FLIGHT", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_lists_in_flight: u64,

    /// How long a verified API key is trusted without a store read, in
    /// seconds (0: read every time). A key removed from the store works at
    /// most this long after.
    #[arg(long, env = "DBAAS_API_KEY_CACHE_SECONDS", default_value_t = 30)]
    pub api_key_cache_seconds: u64,
}

impl LimitsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            rate_limit_per_second: self.rate_limit_per_second,
            rate_limit_burst: self.rate_limit_burst,
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(usize::MAX),
            admission_wait: Duration::from_millis(self.admission_wait_ms),
            max_lists_in_flight: usize::try_from(self.max_lists_in_flight).unwrap_or(usize::MAX),
            api_key_cache_ttl: Duration::from_secs(self.api_key_cache_seconds),
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiConfig,
    }

    #[test]
    fn defaults_and_redaction() {
        let cli = Cli::try_parse_from(["api", "--admin-token", "s3cret"]).unwrap();
        let limits = cli.api.limits.limits();
        assert_eq!(limits.request_timeout, Duration::from_secs(5));
        assert_eq!(limits.rate_limit_per_second.get(), 100);
        assert_eq!(limits.rate_limit_burst.get(), 200);
        assert_eq!(limits.max_in_flight, 64);
        assert_eq!(limits.admission_wait, Duration::from_millis(100));
        assert_eq!(limits.max_lists_in_flight, 4);
        assert_eq!(limits.api_key_cache_ttl, Duration::from_secs(30));
        assert!(!format!("{:?}", cli.api).contains("s3cret"));
        assert!(Cli::try_parse_from(["api", "--request-timeout-ms", "0"]).is_err());
    }
}
