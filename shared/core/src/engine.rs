//! The engine table: how each database engine maps onto KubeDB.
//!
//! KubeDB uses one custom resource kind and one OpsRequest kind per engine,
//! and the field paths inside OpsRequests differ per engine (MongoDB
//! `verticalScaling.replicaSet` against Postgres `verticalScaling.postgres`,
//! `horizontalScaling.replicas` against MySQL `horizontalScaling.member`).
//! Everything engine-specific lives in [`EngineSpec`], checked against the
//! CRDs in `../shared/crds/kubedb` by the rig's strict-validation tests.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A database engine offered by the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Mongodb,
    Postgres,
    Mysql,
    Mariadb,
    Redis,
}

/// Which replica counts an engine's topology allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRule {
    /// Any count in 1..=9.
    Any,
    /// One server, or a cluster of three or more (group replication, Galera):
    /// a two-member cluster cannot keep quorum, and KubeDB cannot turn a
    /// standalone server into a cluster or back.
    StandaloneOrCluster,
    /// Standalone only (Redis in Standalone mode cannot scale horizontally).
    StandaloneOnly,
}

/// KubeDB names and OpsRequest field paths for one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSpec {
    pub engine: Engine,
    /// Database kind in `kubedb.com/v1`.
    pub kind: &'static str,
    pub plural: &'static str,
    /// OpsRequest kind in `ops.kubedb.com/v1alpha1`.
    pub ops_kind: &'static str,
    pub ops_plural: &'static str,
    /// Catalog kind in `catalog.kubedb.com/v1alpha1` (cluster-scoped).
    pub version_kind: &'static str,
    pub version_plural: &'static str,
    /// Name of the database container in `spec.podTemplate.spec.containers`.
    pub container: &'static str,
    /// Key under `verticalScaling` that takes `resources`.
    pub vertical_key: &'static str,
    /// Integer field under `horizontalScaling` holding the new replica count.
    pub horizontal_key: &'static str,
    /// Key under `volumeExpansion` that takes the new storage quantity.
    pub volume_key: &'static str,
    pub replica_rule: ReplicaRule,
    /// The version a database gets where no catalog can be read (an API
    /// without cluster access); the newest of the catalog the stand-in
    /// installs.
    pub default_version: &'static str,
    /// The port KubeDB's Services expose.
    pub port: u16,
    /// The admin user KubeDB puts in the auth Secret it generates.
    pub user: &'static str,
    /// A client URI without the password: `{user}`, `{host}` and `{port}`
    /// are filled in.
    pub uri_template: &'static str,
}

/// The supported engines, one row each.
pub const ENGINES: [EngineSpec; 5] = [
    EngineSpec {
        engine: Engine::Mongodb,
        kind: "MongoDB",
        plural: "mongodbs",
        ops_kind: "MongoDBOpsRequest",
        ops_plural: "mongodbopsrequests",
        version_kind: "MongoDBVersion",
        version_plural: "mongodbversions",
        container: "mongodb",
        // Every MongoDB we create is a replica set (even with one member),
        // so scaling never has to change topology.
        vertical_key: "replicaSet",
        horizontal_key: "replicas",
        volume_key: "replicaSet",
        replica_rule: ReplicaRule::Any,
        default_version: "8.0.4",
        port: 27017,
        user: "root",
        uri_template: "mongodb://{user}@{host}:{port}/?authSource=admin",
    },
    EngineSpec {
        engine: Engine::Postgres,
        kind: "Postgres",
        plural: "postgreses",
        ops_kind: "PostgresOpsRequest",
        ops_plural: "postgresopsrequests",
        version_kind: "PostgresVersion",
        version_plural: "postgresversions",
        container: "postgres",
        vertical_key: "postgres",
        horizontal_key: "replicas",
        volume_key: "postgres",
        replica_rule: ReplicaRule::Any,
        default_version: "17.2",
        port: 5432,
        user: "postgres",
        uri_template: "postgresql://{user}@{host}:{port}/postgres",
    },
    EngineSpec {
        engine: Engine::Mysql,
        kind: "MySQL",
        plural: "mysqls",
        ops_kind: "MySQLOpsRequest",
        ops_plural: "mysqlopsrequests",
        version_kind: "MySQLVersion",
        version_plural: "mysqlversions",
        container: "mysql",
        vertical_key: "mysql",
        horizontal_key: "member",
        volume_key: "mysql",
        replica_rule: ReplicaRule::StandaloneOrCluster,
        default_version: "8.4.3",
        port: 3306,
        user: "root",
        uri_template: "mysql://{user}@{host}:{port}/",
    },
    EngineSpec {
        engine: Engine::Mariadb,
        kind: "MariaDB",
        plural: "mariadbs",
        ops_kind: "MariaDBOpsRequest",
        ops_plural: "mariadbopsrequests",
        version_kind: "MariaDBVersion",
        version_plural: "mariadbversions",
        container: "mariadb",
        vertical_key: "mariadb",
        horizontal_key: "member",
        volume_key: "mariadb",
        replica_rule: ReplicaRule::StandaloneOrCluster,
        default_version: "11.5.2",
        port: 3306,
        user: "root",
        uri_template: "mysql://{user}@{host}:{port}/",
    },
    EngineSpec {
        engine: Engine::Redis,
        kind: "Redis",
        plural: "redises",
        ops_kind: "RedisOpsRequest",
        ops_plural: "redisopsrequests",
        version_kind: "RedisVersion",
        version_plural: "redisversions",
        container: "redis",
        vertical_key: "redis",
        horizontal_key: "replicas",
        volume_key: "redis",
        replica_rule: ReplicaRule::StandaloneOnly,
        default_version: "7.4.1",
        port: 6379,
        user: "default",
        uri_template: "redis://{user}@{host}:{port}/0",
    },
];

/// Smallest and largest replica count any engine accepts.
pub const REPLICAS_RANGE: std::ops::RangeInclusive<u32> = 1..=9;

impl Engine {
    pub const ALL: [Engine; 5] = [
        Engine::Mongodb,
        Engine::Postgres,
        Engine::Mysql,
        Engine::Mariadb,
        Engine::Redis,
    ];

    /// This engine's row of the table.
    pub fn spec(self) -> &'static EngineSpec {
        ENGINES
            .iter()
            .find(|s| s.engine == self)
            .expect("every engine has a row in ENGINES")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Mongodb => "mongodb",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Mariadb => "mariadb",
            Engine::Redis => "redis",
        }
    }

    pub fn parse(s: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The engine whose database kind is `kind`.
    pub fn from_kind(kind: &str) -> Option<Engine> {
        ENGINES.iter().find(|s| s.kind == kind).map(|s| s.engine)
    }

    /// The engine whose OpsRequest kind is `kind`.
    pub fn from_version_kind(kind: &str) -> Option<Engine> {
        ENGINES
            .iter()
            .find(|s| s.version_kind == kind)
            .map(|s| s.engine)
    }

    pub fn from_ops_kind(kind: &str) -> Option<Engine> {
        ENGINES
            .iter()
            .find(|s| s.ops_kind == kind)
            .map(|s| s.engine)
    }

    /// Why `replicas` is not allowed for this engine, if it is not.
    pub fn replicas_error(self, replicas: u32) -> Option<String> {
        if !REPLICAS_RANGE.contains(&replicas) {
            return Some(format!(
                "must be between {} and {}",
                REPLICAS_RANGE.start(),
                REPLICAS_RANGE.end()
            ));
        }
        match self.spec().replica_rule {
            ReplicaRule::Any => None,
            ReplicaRule::StandaloneOrCluster if replicas == 2 => Some(format!(
                "{} runs as 1 server or a cluster of 3 to 9; 2 cannot keep quorum",
                self.as_str()
            )),
            ReplicaRule::StandaloneOrCluster => None,
            ReplicaRule::StandaloneOnly if replicas != 1 => Some(format!(
                "{} runs in standalone mode: replicas must be 1",
                self.as_str()
            )),
            ReplicaRule::StandaloneOnly => None,
        }
    }

    /// Why a change from `from` to `to` replicas is not allowed, if it is not.
    pub fn replica_change_error(self, from: u32, to: u32) -> Option<String> {
        if self.spec().replica_rule == ReplicaRule::StandaloneOrCluster && (from == 1) != (to == 1)
        {
            return Some(format!(
                "{} cannot change between a standalone server and a cluster ({from} -> {to})",
                self.as_str()
            ));
        }
        None
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_has_one_row_and_round_trips() {
        for e in Engine::ALL {
            assert_eq!(ENGINES.iter().filter(|s| s.engine == e).count(), 1);
            assert_eq!(Engine::parse(e.as_str()), Some(e));
            assert_eq!(Engine::from_kind(e.spec().kind), Some(e));
            assert_eq!(Engine::from_ops_kind(e.spec().ops_kind), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        assert_eq!(Engine::parse("oracle"), None);
    }

    #[test]
    fn field_paths_differ_where_kubedb_differs() {
        assert_eq!(Engine::Mongodb.spec().vertical_key, "replicaSet");
        assert_eq!(Engine::Postgres.spec().vertical_key, "postgres");
        assert_eq!(Engine::Mysql.spec().horizontal_key, "member");
        assert_eq!(Engine::Mariadb.spec().horizontal_key, "member");
        assert_eq!(Engine::Postgres.spec().horizontal_key, "replicas");
    }

    #[test]
    fn replica_rules() {
        for e in Engine::ALL {
            assert!(e.replicas_error(0).is_some());
            assert!(e.replicas_error(10).is_some());
            assert!(e.replicas_error(1).is_none());
        }
        assert!(Engine::Mongodb.replicas_error(2).is_none());
        assert!(Engine::Mysql.replicas_error(2).is_some());
        assert!(Engine::Mariadb.replicas_error(3).is_none());
        assert!(Engine::Redis.replicas_error(3).is_some());
        assert!(Engine::Mysql.replica_change_error(1, 3).is_some());
        assert!(Engine::Mysql.replica_change_error(3, 5).is_none());
        assert!(Engine::Postgres.replica_change_error(1, 3).is_none());
    }
}
