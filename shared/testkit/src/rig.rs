//! Where the test rig's servers are, and the small process helpers every
//! test crate needs (one copy, here).

use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use std::path::{Path, PathBuf};

/// What to do when the rig is missing.
pub const RIG_HINT: &str = "run `just rig-up` and `source target/rig/env`";

/// Where the rig's servers are, from the environment `target/rig/env` sets.
#[derive(Debug, Clone)]
pub struct Rig {
    pub mongodb_uri: String,
    pub redis_url: String,
    pub kubeconfig: PathBuf,
    pub pushgateway_url: String,
    pub prometheus_url: String,
}

impl Rig {
    /// The environment of a reconciler, worker or API process on the rig,
    /// scoped to a store database, a queue prefix and a namespace.
    pub fn role_env(
        &self,
        mongodb_database: &str,
        queue_prefix: &str,
        namespace: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("MONGODB_URI", self.mongodb_uri.clone()),
            ("MONGODB_DATABASE", mongodb_database.to_string()),
            ("REDIS_URL", self.redis_url.clone()),
            ("DBAAS_QUEUE_PREFIX", queue_prefix.to_string()),
            ("KUBECONFIG", self.kubeconfig.to_string_lossy().into_owned()),
            ("DBAAS_NAMESPACE", namespace.to_string()),
            ("RUST_LOG", "info".to_string()),
            ("NO_COLOR", "1".to_string()),
        ]
    }

    /// The rig's Redis as a queue under `prefix`, checked to answer.
    pub async fn queue(&self, prefix: &str) -> RedisQueue {
        let queue = RedisQueue::new(&self.redis_url, prefix).expect("a redis url");
        queue
            .ping()
            .await
            .unwrap_or_else(|e| panic!("redis at {}: {e}; {RIG_HINT}", self.redis_url));
        queue
    }

    /// Reads the rig's variables; says which are unset.
    pub fn try_from_env() -> Result<Rig, String> {
        let names = [
            "MONGODB_URI",
            "REDIS_URL",
            "KUBECONFIG",
            "PUSHGATEWAY_URL",
            "PROMETHEUS_URL",
        ];
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| std::env::var(n).map_or(true, |v| v.trim().is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "this needs the test rig, but {} {} unset: {RIG_HINT}",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
            ));
        }
        let var = |n: &str| std::env::var(n).expect("checked above");
        let kubeconfig = PathBuf::from(var("KUBECONFIG"));
        if !kubeconfig.is_file() {
            return Err(format!(
                "KUBECONFIG={} is not a file: {RIG_HINT}",
                kubeconfig.display()
            ));
        }
        Ok(Rig {
            mongodb_uri: var("MONGODB_URI"),
            redis_url: var("REDIS_URL"),
            kubeconfig,
            pushgateway_url: var("PUSHGATEWAY_URL").trim_end_matches('/').to_string(),
            prometheus_url: var("PROMETHEUS_URL").trim_end_matches('/').to_string(),
        })
    }

    /// Reads the rig's variables; fails the test, never skips it, when one
    /// is unset.
    pub fn from_env() -> Rig {
        Rig::try_from_env().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<unreadable: {e}>"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Drops a MongoDB database (clean-up; errors ignored).
pub async fn drop_mongo_database(uri: &str, name: &str) {
    if let Ok(client) = mongodb::Client::with_uri_str(uri).await {
        let _ = client.database(name).drop().await;
    }
}

/// Deletes the Redis keys under `prefix:` (clean-up; errors ignored).
pub async fn drop_redis_prefix(url: &str, prefix: &str) {
    if let Ok(client) = redis::Client::open(url)
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}
