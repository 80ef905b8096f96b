//! The version catalog: which versions of an engine the cluster offers
//! (KubeDB's `*Version` objects, `catalog.kubedb.com/v1alpha1`), and the
//! rules for choosing one and for moving between them. Pure: the objects
//! are read elsewhere.
//!
//! A catalog object is named after the version users ask for (`16.4`) and
//! carries the engine version (`spec.version`), `spec.deprecated`, and
//! `spec.updateConstraints`: an `allowlist` and a `denylist` of semver
//! requirements (`">= 16.0, < 17.0"`, `"16.4"`) on the target's version.

use std::cmp::Ordering;
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::engine::Engine;

/// The longest version name accepted (KubeDB's are far shorter).
pub const MAX_VERSION_NAME: usize = 32;

/// A version name that fits in [`MAX_VERSION_NAME`] bytes, kept inline so
/// that the changes and plans that carry it stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionName {
    bytes: [u8; MAX_VERSION_NAME],
    len: u8,
}

impl VersionName {
    /// `None` when `name` is empty or longer than [`MAX_VERSION_NAME`].
    pub fn new(name: &str) -> Option<VersionName> {
        if name.is_empty() || name.len() > MAX_VERSION_NAME {
            return None;
        }
        let mut bytes = [0; MAX_VERSION_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(VersionName {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("built from a str")
    }
}

impl fmt::Debug for VersionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for VersionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogVersion {
    pub engine: Engine,
    /// What a database's `version` names.
    #[schema(example = "16.4")]
    pub name: String,
    /// The engine's own version.
    pub version: String,
    /// Deprecated versions cannot be chosen for new databases or upgrades.
    pub deprecated: bool,
    #[serde(skip)]
    allowlist: Vec<String>,
    #[serde(skip)]
    denylist: Vec<String>,
}

impl CatalogVersion {
    pub fn new(engine: Engine, name: &str, version: &str, deprecated: bool) -> Self {
        CatalogVersion {
            engine,
            name: name.to_string(),
            version: version.to_string(),
            deprecated,
            allowlist: Vec::new(),
            denylist: Vec::new(),
        }
    }

    /// With upgrade constraints (semver requirements on the target).
    pub fn constrained(mut self, allowlist: &[&str], denylist: &[&str]) -> Self {
        self.allowlist = allowlist.iter().map(|s| s.to_string()).collect();
        self.denylist = denylist.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Reads a `*Version` object; `None` if it is not one of a known engine.
    pub fn from_value(obj: &Value) -> Option<Self> {
        let engine = Engine::from_version_kind(obj.get("kind")?.as_str()?)?;
        let spec = &obj["spec"];
        // A list, or (MySQL) a list per topology: taken together.
        let list = |key: &str| -> Vec<String> {
            let value = &spec["updateConstraints"][key];
            let lists: Vec<&Value> = match value.as_object() {
                Some(per_topology) => per_topology.values().collect(),
                None => vec![value],
            };
            lists
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        Some(CatalogVersion {
            engine,
            name: obj["metadata"]["name"].as_str()?.to_string(),
            version: spec["version"].as_str()?.to_string(),
            deprecated: spec["deprecated"].as_bool().unwrap_or(false),
            allowlist: list("allowlist"),
            denylist: list("denylist"),
        })
    }

    /// The `updateConstraints` block of the object (MySQL's has a list per
    /// topology; the same one serves both).
    pub fn constraints_value(&self) -> Value {
        let (allow, deny) = match self.engine {
            Engine::Mysql => (
                serde_json::json!({"standalone": self.allowlist, "groupReplication": self.allowlist}),
                serde_json::json!({"standalone": self.denylist, "groupReplication": self.denylist}),
            ),
            _ => (
                serde_json::json!(self.allowlist),
                serde_json::json!(self.denylist),
            ),
        };
        serde_json::json!({"allowlist": allow, "denylist": deny})
    }

    fn semver(&self) -> Option<Version> {
        semver_of(&self.version)
    }

    /// Whether this version's constraints let a database move to `target`.
    fn allows(&self, target: &CatalogVersion) -> bool {
        let Some(v) = target.semver() else {
            return false;
        };
        let matches = |req: &String| requirement(req).is_some_and(|r| r.matches(&v));
        (self.allowlist.is_empty() || self.allowlist.iter().any(matches))
            && !self.denylist.iter().any(matches)
    }
}

/// A constraint as KubeDB reads it: a bare version means that version
/// exactly (not Cargo's caret).
fn requirement(text: &str) -> Option<VersionReq> {
    let parts: Vec<String> = text
        .split(',')
        .map(str::trim)
        .map(|p| {
            if p.starts_with(|c: char| c.is_ascii_digit()) {
                format!("={p}")
            } else {
                p.to_string()
            }
        })
        .collect();
    VersionReq::parse(&parts.join(", ")).ok()
}

/// `16.4` as `16.4.0`; a suffix after `-` or `+` is dropped.
fn semver_of(version: &str) -> Option<Version> {
    let core = version.split(['-', '+']).next()?;
    let mut parts: Vec<&str> = core.split('.').collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    Version::parse(&parts[..3].join(".")).ok()
}

/// Orders by engine version, then name.
fn newer(a: &CatalogVersion, b: &CatalogVersion) -> Ordering {
    a.semver()
        .cmp(&b.semver())
        .then_with(|| a.name.cmp(&b.name))
}

/// Why a version cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The versions of one engine the cluster offers.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    versions: Vec<CatalogVersion>,
}

impl Catalog {
    /// The entries of `engine` among `versions`, oldest first.
    pub fn new(engine: Engine, versions: impl IntoIterator<Item = CatalogVersion>) -> Self {
        let mut versions: Vec<_> = versions
            .into_iter()
            .filter(|v| v.engine == engine)
            .collect();
        versions.sort_by(newer);
        Catalog { versions }
    }

    pub fn versions(&self) -> &[CatalogVersion] {
        &self.versions
    }

    pub fn get(&self, name: &str) -> Option<&CatalogVersion> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// The newest version that is not deprecated.
    pub fn default_version(&self) -> Option<&CatalogVersion> {
        self.versions.iter().rev().find(|v| !v.deprecated)
    }

    /// Whether a new database may run `name`.
    pub fn check_new(&self, name: &str) -> Result<&CatalogVersion, Refusal> {
        match self.get(name) {
            None => Err(Refusal(format!(
                "{name} is not in the version catalog; offered: {}",
                self.offered()
            ))),
            Some(v) if v.deprecated => Err(Refusal(format!(
                "{name} is deprecated; offered: {}",
                self.offered()
            ))),
            Some(v) => Ok(v),
        }
    }

    /// Whether a database running `from` may move to `to`: `to` exists, is
    /// not deprecated, is newer, and `from`'s constraints allow it.
    pub fn check_upgrade(&self, from: &str, to: &str) -> Result<&CatalogVersion, Refusal> {
        let target = self.check_new(to)?;
        let Some(current) = self.get(from) else {
            return Err(Refusal(format!(
                "the current version {from} is not in the catalog, so no upgrade path is known"
            )));
        };
        if newer(target, current) != Ordering::Greater {
            return Err(Refusal(format!(
                "{to} is not newer than the current version {from}: downgrades are not supported"
            )));
        }
        if !current.allows(target) {
            return Err(Refusal(format!(
                "{from} cannot be upgraded to {to} directly; allowed: {}",
                names(&self.upgrades(from))
            )));
        }
        Ok(target)
    }

    /// The versions a database running `from` may move to, oldest first.
    pub fn upgrades(&self, from: &str) -> Vec<&CatalogVersion> {
        self.versions
            .iter()
            .filter(|v| self.check_upgrade_quiet(from, v))
            .collect()
    }

    fn check_upgrade_quiet(&self, from: &str, to: &CatalogVersion) -> bool {
        let Some(current) = self.get(from) else {
            return false;
        };
        !to.deprecated && newer(to, current) == Ordering::Greater && current.allows(to)
    }

    fn offered(&self) -> String {
        let usable: Vec<&CatalogVersion> = self.versions.iter().filter(|v| !v.deprecated).collect();
        names(&usable)
    }
}

fn names(versions: &[&CatalogVersion]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(|v| v.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> Catalog {
        Catalog::new(
            Engine::Postgres,
            [
                CatalogVersion::new(Engine::Postgres, "14.13", "14.13", true),
                CatalogVersion::new(Engine::Postgres, "15.8", "15.8", false)
                    .constrained(&[">= 15.8, < 17.0"], &[]),
                CatalogVersion::new(Engine::Postgres, "16.1", "16.1", false)
                    .constrained(&[], &["< 16.1"]),
                CatalogVersion::new(Engine::Postgres, "16.4", "16.4", false),
                CatalogVersion::new(Engine::Postgres, "17.2", "17.2", false),
                CatalogVersion::new(Engine::Mysql, "8.4.3", "8.4.3", false),
            ],
        )
    }

    #[test]
    fn the_default_is_the_newest_usable_version() {
        assert_eq!(pg().default_version().unwrap().name, "17.2");
        assert!(Catalog::new(Engine::Redis, []).default_version().is_none());
    }

    #[test]
    fn new_databases_take_listed_usable_versions() {
        let c = pg();
        assert!(c.check_new("16.4").is_ok());
        assert!(c.check_new("14.13").unwrap_err().0.contains("deprecated"));
        assert!(
            c.check_new("9.6")
                .unwrap_err()
                .0
                .contains("not in the version catalog")
        );
        assert!(c.check_new("8.4.3").is_err(), "another engine's version");
    }

    #[test]
    fn upgrades_go_forward_within_the_constraints() {
        let c = pg();
        let targets =
            |from| -> Vec<String> { c.upgrades(from).iter().map(|v| v.name.clone()).collect() };
        assert_eq!(
            targets("15.8"),
            ["16.1", "16.4"],
            "the allowlist stops at 17"
        );
        assert_eq!(targets("16.1"), ["16.4", "17.2"]);
        assert_eq!(targets("17.2"), Vec::<String>::new());
        assert!(c.check_upgrade("15.8", "16.4").is_ok());
        let refused = |from, to| c.check_upgrade(from, to).unwrap_err().0;
        assert!(refused("15.8", "17.2").contains("cannot be upgraded to 17.2 directly"));
        assert!(refused("16.4", "16.1").contains("downgrades"));
        assert!(refused("16.4", "16.4").contains("not newer"));
        assert!(refused("16.4", "14.13").contains("deprecated"));
        assert!(refused("16.4", "99.0").contains("not in the version catalog"));
    }

    #[test]
    fn version_names_stay_inline() {
        let v = VersionName::new("8.4.3-innodb").unwrap();
        assert_eq!(v.as_str(), "8.4.3-innodb");
        assert_eq!(format!("{v}"), "8.4.3-innodb");
        assert!(VersionName::new("").is_none());
        assert!(VersionName::new(&"9".repeat(MAX_VERSION_NAME + 1)).is_none());
        assert_eq!(semver_of("16.4"), Some(Version::new(16, 4, 0)));
        assert_eq!(semver_of("8.4.3-innodb"), Some(Version::new(8, 4, 3)));
    }

    #[test]
    fn objects_read_back() {
        let obj = serde_json::json!({
            "kind": "PostgresVersion",
            "metadata": {"name": "15.8"},
            "spec": {"version": "15.8", "deprecated": false,
                     "updateConstraints": {"allowlist": [">= 15.8, < 17.0"]}},
        });
        let v = CatalogVersion::from_value(&obj).unwrap();
        assert_eq!(
            v,
            CatalogVersion::new(Engine::Postgres, "15.8", "15.8", false)
                .constrained(&[">= 15.8, < 17.0"], &[])
        );
        let mysql = CatalogVersion::new(Engine::Mysql, "8.0.40", "8.0.40", false)
            .constrained(&[">= 8.0.40, < 8.5"], &["8.1.0"]);
        let obj = serde_json::json!({
            "kind": "MySQLVersion",
            "metadata": {"name": "8.0.40"},
            "spec": {"version": "8.0.40", "updateConstraints": mysql.constraints_value()},
        });
        let back = CatalogVersion::from_value(&obj).unwrap();
        assert_eq!(
            (back.allowlist.len(), back.denylist.len()),
            (2, 2),
            "both topologies"
        );
        assert!(back.allows(&CatalogVersion::new(Engine::Mysql, "8.4.3", "8.4.3", false)));
        assert!(!back.allows(&CatalogVersion::new(Engine::Mysql, "8.1.0", "8.1.0", false)));
    }
}
