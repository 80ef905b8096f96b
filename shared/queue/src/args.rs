//! Where the queue is: the flags every binary that uses Redis flattens.

/// Redis connection settings. Every flag has an environment equivalent.
#[derive(Clone, clap::Args)]
pub struct QueueArgs {
    /// Redis URL (the operation queue); it may hold a password, so its
    /// value is never shown.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Prefix of the Redis keys; KEDA's ScaledJob watches `<prefix>:pending`.
    #[arg(long, env = "DBAAS_QUEUE_PREFIX", default_value = "dbaas:operations")]
    pub queue_prefix: String,
}

impl std::fmt::Debug for QueueArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueArgs")
            .field("redis_url", &"<redacted>")
            .field("queue_prefix", &self.queue_prefix)
            .finish()
    }
}

#[cfg(feature = "redis")]
impl QueueArgs {
    /// Connects lazily: nothing is contacted before the first call.
    pub fn connect(&self) -> dbaas_core::Result<crate::redis::RedisQueue> {
        crate::redis::RedisQueue::new(&self.redis_url, &self.queue_prefix)
    }
}
