//! A realistic KubeDB version catalog, installed the way KubeDB's catalog
//! chart installs it: cluster-scoped `*Version` objects, several versions
//! per engine, old ones deprecated, and update constraints that forbid
//! some jumps (a major version at a time).

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::catalog::CatalogVersion;
use dbaas_core::engine::Engine;
use dbaas_core::error::{Error, Result};
use serde_json::{Value, json};

/// `(name, deprecated, allowlist, denylist)` per engine, oldest first.
type Row = (
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
);

const POSTGRES: &[Row] = &[
    ("13.13", true, &[], &[]),
    ("14.13", false, &[">= 14.13, < 16.0"], &[]),
    ("15.8", false, &[">= 15.8, < 17.0"], &[]),
    ("16.1", false, &[], &["< 16.1"]),
    ("16.4", false, &[], &[]),
    ("17.2", false, &[], &[]),
];
const MONGODB: &[Row] = &[
    ("5.0.26", true, &[], &[]),
    ("6.0.12", false, &[">= 6.0.12, < 7.1"], &[]),
    ("7.0.16", false, &[], &[]),
    ("8.0.4", false, &[], &[]),
];
const MYSQL: &[Row] = &[
    ("5.7.44", true, &[], &[]),
    ("8.0.36", false, &[">= 8.0.36, < 8.1"], &[]),
    ("8.0.40", false, &[">= 8.0.40, < 8.5"], &[]),
    ("8.4.3", false, &[], &[]),
];
const MARIADB: &[Row] = &[
    ("10.6.16", true, &[], &[]),
    ("10.11.9", false, &[">= 10.11.9, < 11.5"], &[]),
    ("11.4.3", false, &[], &[]),
    ("11.5.2", false, &[], &[]),
];
const REDIS: &[Row] = &[
    ("6.2.14", true, &[], &[]),
    ("7.2.4", false, &[">= 7.2.4, < 7.5"], &[]),
    ("7.4.1", false, &[], &[]),
];

/// Every entry of the catalog.
pub fn entries() -> Vec<CatalogVersion> {
    Engine::ALL
        .into_iter()
        .flat_map(|engine| {
            let rows = match engine {
                Engine::Postgres => POSTGRES,
                Engine::Mongodb => MONGODB,
                Engine::Mysql => MYSQL,
                Engine::Mariadb => MARIADB,
                Engine::Redis => REDIS,
            };
            rows.iter().map(move |(name, deprecated, allow, deny)| {
                CatalogVersion::new(engine, name, name, *deprecated).constrained(allow, deny)
            })
        })
        .collect()
}

/// The `*Version` object of `entry`, with the images its CRD requires.
pub fn object(entry: &CatalogVersion) -> Value {
    let engine = entry.engine;
    let image =
        |what: &str| json!({"image": format!("kubedb/{}-{what}:{}", engine.as_str(), entry.name)});
    let mut spec = json!({
        "version": entry.version,
        "deprecated": entry.deprecated,
        "db": image("db"),
        "exporter": image("exporter"),
        "podSecurityPolicies": {"databasePolicyName": "kubedb-db"},
        "updateConstraints": entry.constraints_value(),
    });
    let extra: &[&str] = match engine {
        Engine::Mongodb => &["initContainer", "replicationModeDetector"],
        Engine::Mysql => &["coordinator", "initContainer", "replicationModeDetector"],
        Engine::Mariadb | Engine::Postgres | Engine::Redis => &["coordinator", "initContainer"],
    };
    for key in extra {
        spec[*key] = image(key);
    }
    json!({
        "apiVersion": "catalog.kubedb.com/v1alpha1",
        "kind": engine.spec().version_kind,
        "metadata": {"name": entry.name},
        "spec": spec,
    })
}

/// Creates the catalog objects that are missing (idempotent).
pub async fn install(cluster: &dyn Cluster) -> Result<()> {
    for entry in entries() {
        let kind = Kind::catalog(entry.engine);
        match cluster.create(&kind, "", &object(&entry)).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
