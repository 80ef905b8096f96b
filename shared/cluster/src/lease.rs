//! The pure rules of a `coordination.k8s.io` Lease, shared by both
//! adapters so the embedded cluster grants and expires leases exactly as
//! the real adapter's compare-and-swap does.

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// Whether `holder` may take a lease in this state at `now`: it is free
/// (no holder), already `holder`'s, or expired (last renewal plus duration
/// is not after `now`).
pub fn lease_is_free_for(spec: &LeaseSpec, holder: &str, now: DateTime<Utc>) -> bool {
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == holder => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            let (Some(renewed), Some(secs)) = (renewed, spec.lease_duration_seconds) else {
                // A lease without times never expires on its own account;
                // treat it as abandoned rather than blocking forever.
                return true;
            };
            let expires = renewed.0.as_microsecond() + i64::from(secs) * 1_000_000;
            expires <= now.timestamp_micros()
        }
    }
}

/// The lease after `holder` takes or renews it at `now` for `ttl_seconds`.
pub fn lease_taken(
    old: &LeaseSpec,
    holder: &str,
    ttl_seconds: u32,
    now: DateTime<Utc>,
) -> LeaseSpec {
    let t = micro_time(now);
    let renewal = old.holder_identity.as_deref() == Some(holder);
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(i32::try_from(ttl_seconds).unwrap_or(i32::MAX)),
        acquire_time: if renewal {
            old.acquire_time.clone()
        } else {
            Some(t.clone())
        },
        renew_time: Some(t),
        lease_transitions: Some(
            old.lease_transitions.unwrap_or(0)
                + i32::from(
                    !renewal
                        && old
                            .holder_identity
                            .as_deref()
                            .is_some_and(|h| !h.is_empty()),
                ),
        ),
        ..old.clone()
    }
}

/// The lease after its holder gives it up.
pub fn lease_released(old: &LeaseSpec) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        renew_time: None,
        acquire_time: None,
        ..old.clone()
    }
}

fn micro_time(t: DateTime<Utc>) -> MicroTime {
    // Out-of-range times cannot come from a clock; fall back to the epoch.
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn lease_rules() {
        let t0 = Utc::now();
        let free = LeaseSpec::default();
        assert!(lease_is_free_for(&free, "a", t0));
        let held = lease_taken(&free, "a", 10, t0);
        assert_eq!(held.lease_transitions, Some(0));
        assert!(lease_is_free_for(&held, "a", t0));
        assert!(!lease_is_free_for(&held, "b", t0 + Duration::seconds(9)));
        assert!(lease_is_free_for(&held, "b", t0 + Duration::seconds(10)));
        let renewed = lease_taken(&held, "a", 10, t0 + Duration::seconds(5));
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert!(!lease_is_free_for(
            &renewed,
            "b",
            t0 + Duration::seconds(14)
        ));
        let taken = lease_taken(&renewed, "b", 10, t0 + Duration::seconds(20));
        assert_eq!(taken.lease_transitions, Some(1));
        assert!(lease_is_free_for(
            &lease_released(&taken),
            "a",
            t0 + Duration::seconds(21)
        ));
    }
}
