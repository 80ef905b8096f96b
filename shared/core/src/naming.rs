//! Names of the Kubernetes objects the control plane creates.
//!
//! All database CRs live in one namespace (configurable, default
//! `dbaas-databases`). A CR is named `<name>-<id suffix>`: the user's name
//! keeps it readable for `kubectl`, the database id's random part keeps two
//! tenants' `orders` databases apart. KubeDB derives more names from the CR
//! (`<name>-auth`, StatefulSet pods `<name>-0`, PVCs `data-<name>-0`), so CR
//! names are kept to [`MAX_CR_NAME`] characters; a longer one is shortened
//! with a hash suffix of the full name, never by plain truncation, so two
//! long names that share a prefix still differ.

use sha2::{Digest, Sha256};

/// Longest CR name: leaves room for KubeDB's suffixes within 63 characters.
pub const MAX_CR_NAME: usize = 45;

/// The default namespace that holds every database CR and OpsRequest.
pub const DEFAULT_NAMESPACE: &str = "dbaas-databases";

/// The KubeDB CR name of the database `id` called `name`.
pub fn cr_name(name: &str, id: &str) -> String {
    let suffix = id.strip_prefix("db-").unwrap_or(id);
    shorten(&format!("{name}-{suffix}"), MAX_CR_NAME)
}

/// The auth Secret KubeDB makes for the CR `cr` when the CR names none.
pub fn auth_secret(cr: &str) -> String {
    format!("{cr}-auth")
}

/// `full` if it fits in `max`, else a prefix of it, a dash and 8 hex
/// characters of its hash; never ends in a dash.
pub fn shorten(full: &str, max: usize) -> String {
    if full.len() <= max {
        return full.to_string();
    }
    let hash = &hex::encode(Sha256::digest(full.as_bytes()))[..8];
    let keep = max - hash.len() - 1;
    let prefix = full[..keep].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

/// Whether `s` is a DNS-1123 label of at most `max` characters.
pub fn is_dns1123_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_kept_readable() {
        assert_eq!(cr_name("orders", "db-abc123def456"), "orders-abc123def456");
    }

    proptest! {
        #[test]
        fn names_are_valid_bounded_and_distinct(
            a in "[a-z]([a-z0-9-]{0,38}[a-z0-9])?",
            b in "[a-z]([a-z0-9-]{0,38}[a-z0-9])?",
            ida in "[a-z0-9]{12}",
            idb in "[a-z0-9]{12}",
        ) {
            let na = cr_name(&a, &format!("db-{ida}"));
            let nb = cr_name(&b, &format!("db-{idb}"));
            prop_assert!(is_dns1123_label(&na, MAX_CR_NAME));
            prop_assert!(na.len() + "-auth".len() <= 63);
            if (a.as_str(), ida.as_str()) != (b.as_str(), idb.as_str()) {
                prop_assert_ne!(na, nb);
            }
        }
    }

    #[test]
    fn long_names_get_a_hash_not_a_cut() {
        let long = "a".repeat(40);
        let x = cr_name(&long, "db-aaaaaaaaaaaa");
        let y = cr_name(&long, "db-aaaaaaaaaaab");
        assert_eq!(x.len(), MAX_CR_NAME);
        assert_ne!(x, y);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("orders-1", 40));
        assert!(!is_dns1123_label("Orders", 40));
        assert!(!is_dns1123_label("-x", 40));
        assert!(!is_dns1123_label("x-", 40));
        assert!(!is_dns1123_label("", 40));
        assert!(!is_dns1123_label(&"a".repeat(41), 40));
    }
}
