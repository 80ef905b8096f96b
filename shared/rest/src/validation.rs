//! Pre-checks: the rules a request must pass before desired state changes.
//!
//! Every check returns all the fields at fault at once, so a client fixes
//! its request in one round trip.

use std::ops::RangeInclusive;

use super::databases::{CreateDatabase, PatchDatabase};
use super::error::{ApiError, FieldError};
use dbaas_core::catalog::MAX_VERSION_NAME;
use dbaas_core::domain::Database;
use dbaas_core::engine::Engine;

/// Longest database name: the name is a label in Kubernetes object names
/// built from it, which must leave room for prefixes and suffixes.
pub const NAME_MAX_LEN: usize = 40;

/// Accepted storage sizes in GiB.
pub const STORAGE_GB: RangeInclusive<u32> = 10..=10_000;

/// Longest tenant name.
pub const TENANT_NAME_MAX_LEN: usize = 100;

/// Page size when a listing does not ask for one, and the largest allowed.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
pub const MAX_PAGE_LIMIT: usize = 200;

/// Why `name` is not a DNS-1123 label of at most [`NAME_MAX_LEN`] characters.
pub fn name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > NAME_MAX_LEN {
        return Some(format!("must be at most {NAME_MAX_LEN} characters"));
    }
    let label_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(label_char) || name.starts_with('-') || name.ends_with('-') {
        return Some(
            "must be a DNS-1123 label: lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    None
}

/// Why `version` cannot be an engine version. Versions are checked against
/// KubeDB's catalog by the cluster; this keeps out what can never be one.
pub fn version_error(version: &str) -> Option<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+');
    if version.is_empty() || version.len() > MAX_VERSION_NAME || !version.chars().all(ok) {
        return Some(format!(
            "must be 1 to {MAX_VERSION_NAME} letters, digits, '.', '-', '_' or '+'"
        ));
    }
    None
}

/// Why `gb` is outside [`STORAGE_GB`].
pub fn storage_error(gb: u32) -> Option<String> {
    (!STORAGE_GB.contains(&gb)).then(|| {
        format!(
            "must be between {} and {}",
            STORAGE_GB.start(),
            STORAGE_GB.end()
        )
    })
}

/// Why `name` cannot name a tenant.
pub fn tenant_name_error(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.chars().count() > TENANT_NAME_MAX_LEN {
        return Some(format!("must be at most {TENANT_NAME_MAX_LEN} characters"));
    }
    name.chars()
        .any(char::is_control)
        .then(|| "must not contain control characters".to_owned())
}

/// Collected field errors: `Ok` when there are none, 422 otherwise.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn check(&mut self, field: &str, error: Option<String>) {
        if let Some(message) = error {
            self.0.push(FieldError::new(field, message));
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.0))
        }
    }
}

/// Pre-checks of a new database. Engine and size were already checked by
/// deserialization (unknown values name the field there).
pub fn check_create(req: &CreateDatabase) -> Result<(), ApiError> {
    let mut errors = Errors::default();
    errors.check("name", name_error(&req.name));
    errors.check("version", req.version.as_deref().and_then(version_error));
    errors.check("replicas", req.engine.replicas_error(req.replicas));
    errors.check("storage_gb", storage_error(req.storage_gb));
    errors.finish()
}

/// Pre-checks of a change to `db`, as last read.
pub fn check_patch(db: &Database, patch: &PatchDatabase) -> Result<(), ApiError> {
    if patch.is_empty() {
        return Err(ApiError::bad_request(
            "",
            "the patch is empty: give at least one of size, replicas, storage_gb, version, paused, deletion_protection, deletion_policy",
        ));
    }
    let mut errors = Errors::default();
    if let Some(replicas) = patch.replicas {
        errors.check(
            "replicas",
            db.engine
                .replicas_error(replicas)
                .or_else(|| db.engine.replica_change_error(db.replicas, replicas)),
        );
    }
    errors.check("version", patch.version.as_deref().and_then(version_error));
    if let Some(gb) = patch.storage_gb {
        // Volumes only expand: the floor is the larger of what was asked
        // for and what the cluster already has.
        let floor = db.storage_gb.max(db.current_storage_gb.unwrap_or(0));
        errors.check(
            "storage_gb",
            storage_error(gb).or_else(|| {
                (gb < floor).then(|| {
                    format!("storage only grows: {gb} GiB is less than the current {floor} GiB")
                })
            }),
        );
    }
    errors.finish()
}

/// The `engine` query parameter.
pub fn engine_param(raw: Option<String>) -> Result<Option<Engine>, ApiError> {
    raw.map(|e| {
        Engine::parse(&e)
            .ok_or_else(|| ApiError::bad_request("engine", format!("unknown engine {e}")))
    })
    .transpose()
}

/// The page size of a listing from its `limit` parameter.
pub fn page_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("must be an integer between 1 and {MAX_PAGE_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use dbaas_core::domain::Size;
    use dbaas_core::engine::Engine;

    fn create(engine: Engine, replicas: u32, storage_gb: u32) -> CreateDatabase {
        CreateDatabase {
            name: "orders".into(),
            engine,
            version: None,
            size: Size::Small,
            replicas,
            storage_gb,
            deletion_protection: false,
            deletion_policy: Default::default(),
        }
    }

    fn database(engine: Engine, replicas: u32, storage_gb: u32) -> Database {
        let now = Utc::now();
        Database {
            id: "db-1".into(),
            ..Database::declared(
                "tn-1",
                "orders",
                engine,
                Size::Small,
                replicas,
                storage_gb,
                now,
            )
        }
    }

    fn fields(result: Result<(), ApiError>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(ApiError::Unprocessable(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "orders", "orders-2", "0db", &"a".repeat(40)] {
            assert_eq!(name_error(ok), None, "{ok}");
        }
        for bad in ["", "Orders", "-a", "a-", "a_b", "a.b", "ä", &"a".repeat(41)] {
            assert!(name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn versions_and_tenant_names() {
        assert_eq!(version_error("8.4.3"), None);
        assert_eq!(version_error("16.4-bookworm"), None);
        assert!(version_error("").is_some());
        assert!(version_error("8.0; rm -rf").is_some());
        assert_eq!(tenant_name_error("Acme Corp"), None);
        assert!(tenant_name_error("  ").is_some());
        assert!(tenant_name_error("a\nb").is_some());
        assert!(tenant_name_error(&"x".repeat(101)).is_some());
    }

    #[test]
    fn create_checks_every_field() {
        assert!(fields(check_create(&create(Engine::Postgres, 3, 50))).is_empty());
        assert_eq!(
            fields(check_create(&create(Engine::Postgres, 0, 50))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_create(&create(Engine::Postgres, 10, 50))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_create(&create(Engine::Mysql, 2, 50))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_create(&create(Engine::Redis, 3, 50))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_create(&create(Engine::Postgres, 1, 9))),
            ["storage_gb"]
        );
        assert_eq!(
            fields(check_create(&create(Engine::Postgres, 1, 10_001))),
            ["storage_gb"]
        );
        assert!(fields(check_create(&create(Engine::Postgres, 1, 10))).is_empty());
        assert!(fields(check_create(&create(Engine::Postgres, 1, 10_000))).is_empty());
        let mut bad = create(Engine::Mysql, 2, 5);
        bad.name = "Bad_Name".into();
        bad.version = Some(String::new());
        assert_eq!(
            fields(check_create(&bad)),
            ["name", "version", "replicas", "storage_gb"]
        );
    }

    #[test]
    fn patch_checks_against_the_record() {
        let db = database(Engine::Mysql, 3, 50);
        let patch = |size, replicas, storage_gb| PatchDatabase {
            size,
            replicas,
            storage_gb,
            ..Default::default()
        };
        assert!(matches!(
            check_patch(&db, &patch(None, None, None)),
            Err(ApiError::BadRequest { .. })
        ));
        assert!(
            fields(check_patch(
                &db,
                &patch(Some(Size::Large), Some(5), Some(60))
            ))
            .is_empty()
        );
        assert_eq!(
            fields(check_patch(&db, &patch(None, Some(1), None))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_patch(&db, &patch(None, Some(2), None))),
            ["replicas"]
        );
        assert_eq!(
            fields(check_patch(&db, &patch(None, None, Some(40)))),
            ["storage_gb"]
        );
        assert!(fields(check_patch(&db, &patch(None, None, Some(50)))).is_empty());
        let mut grown = db.clone();
        grown.current_storage_gb = Some(80);
        assert_eq!(
            fields(check_patch(&grown, &patch(None, None, Some(60)))),
            ["storage_gb"]
        );
        assert_eq!(
            fields(check_patch(&db, &patch(None, None, Some(20_000)))),
            ["storage_gb"]
        );
        let pg = database(Engine::Postgres, 1, 50);
        assert!(fields(check_patch(&pg, &patch(None, Some(3), None))).is_empty());
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT);
        assert_eq!(page_limit(Some("200")).unwrap(), 200);
        for bad in ["0", "201", "-1", "ten", "1.5"] {
            assert!(
                matches!(page_limit(Some(bad)), Err(ApiError::BadRequest { .. })),
                "{bad}"
            );
        }
    }
}
