//! Drift: what differs between desired and current state, and what to do
//! about it. Pure functions, no I/O, so every rule is property-tested.
//!
//! KubeDB writes a new value into the database CR only after its
//! OpsRequest succeeds, so while a request is in flight the CR still shows
//! the old value. Comparing desired state with the CR alone would then see
//! drift again and plan a second, duplicate request. [`assess`] therefore
//! compares desired state with the *effective* state: the CR's values with
//! every in-flight request's target laid over them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::VersionName;
use crate::domain::{Action, OnDelete, OperationType, Size, Spec};
use crate::kubedb::DeletionPolicy;

/// The fields that can drift, in the order they are fixed: pause or
/// resume first (nothing else can change on a halted database, and a pause
/// should not wait behind other changes), then the deletion policy (KubeDB
/// forces `Halt` while halted; resuming puts the user's back), then storage
/// (it can only grow, and a resize may need the space), then the instance
/// class, then the replica count (on the version that runs), then the
/// version (an upgrade then moves the final topology once), then a
/// requested credential rotation and a requested restart (last: they change
/// nothing the others depend on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Paused,
    DeletionPolicy,
    Storage,
    Size,
    Replicas,
    Version,
    AuthRotation,
    Restart,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Paused,
        Field::DeletionPolicy,
        Field::Storage,
        Field::Size,
        Field::Replicas,
        Field::Version,
        Field::AuthRotation,
        Field::Restart,
    ];

    /// The label used in metrics (`dbaas_drift_detected_total{type}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Storage => "storage",
            Field::Size => "size",
            Field::Replicas => "replicas",
            Field::Version => "version",
            Field::AuthRotation => "auth_rotation",
            Field::Paused => "paused",
            Field::DeletionPolicy => "deletion_policy",
            Field::Restart => "restart",
        }
    }
}

/// What the user declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    pub size: Size,
    pub replicas: u32,
    pub storage_gb: u32,
    pub version: VersionName,
    pub auth_rotation: u64,
    pub paused: bool,
    pub deletion_policy: OnDelete,
    pub restarts: u64,
    pub deletion_requested: bool,
}

/// What the database CR shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// `None` when the CR's resources match no known size (edited by hand).
    pub size: Option<Size>,
    pub replicas: u32,
    pub storage_gb: u32,
    /// `None` when the CR's version is not one we could have asked for.
    pub version: Option<VersionName>,
    /// Rotations carried out: KubeDB keeps no count, so this one is the
    /// control plane's record of the RotateAuth requests that succeeded.
    pub auth_rotation: u64,
    /// `spec.halted`.
    pub halted: bool,
    /// `spec.deletionPolicy`; `None` when unreadable.
    pub deletion_policy: Option<DeletionPolicy>,
    /// Restarts carried out, as the control plane recorded them (like
    /// rotations, KubeDB keeps no count).
    pub restarts: u64,
    /// KubeDB reports the database Ready (or Critical: reachable).
    pub ready: bool,
    /// The CR carries a deletionTimestamp.
    pub deleting: bool,
}

impl Observed {
    /// The CR as KubeDB leaves it once `action` succeeded from `current`
    /// (`None`: there is no CR).
    pub fn after(current: Option<Observed>, desired: &Desired, action: Action) -> Option<Observed> {
        match action {
            Action::Provision(spec) => Some(Observed {
                size: Some(spec.size),
                replicas: spec.replicas,
                storage_gb: spec.storage_gb,
                version: Some(desired.version),
                auth_rotation: 0,
                halted: false,
                deletion_policy: Some(desired.deletion_policy.kubedb()),
                restarts: 0,
                ready: true,
                deleting: false,
            }),
            Action::Deprovision => None,
            Action::Change(change) => current.map(|o| {
                let mut o = effective(&o, &[change]);
                // A halted database is never Ready, and KubeDB forces Halt.
                match change {
                    Change::Paused(true) => {
                        o.deletion_policy = Some(DeletionPolicy::Halt);
                        o.ready = false;
                    }
                    Change::Paused(false) => o.ready = true,
                    _ => {}
                }
                o
            }),
        }
    }
}

/// One change to one field: what the reconciler plans, what an operation
/// targets and what the worker turns into one OpsRequest or one patch of
/// the CR (and what an unfinished OpsRequest in the cluster is read back
/// as).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Size(Size),
    Replicas(u32),
    StorageGb(u32),
    /// Move to this catalog version.
    Version(VersionName),
    /// New credentials, bringing the rotation count to this number.
    AuthRotation(u64),
    /// Halt (true) or resume (false): the CR's `spec.halted`.
    Paused(bool),
    /// The CR's `spec.deletionPolicy`.
    DeletionPolicy(OnDelete),
    /// Restart the pods, bringing the restart count to this number.
    Restart(u64),
}

impl Change {
    /// The OpsRequest `spec.type` that makes this change; `None` for the
    /// changes KubeDB takes as an edit of the database CR itself.
    pub fn ops_type(self) -> Option<&'static str> {
        Some(match self {
            Change::Size(_) => "VerticalScaling",
            Change::Replicas(_) => "HorizontalScaling",
            Change::StorageGb(_) => "VolumeExpansion",
            Change::Version(_) => "UpdateVersion",
            Change::AuthRotation(_) => "RotateAuth",
            Change::Restart(_) => "Restart",
            Change::Paused(_) | Change::DeletionPolicy(_) => return None,
        })
    }

    /// The operation that makes this change.
    pub fn operation_type(self) -> OperationType {
        match self {
            Change::StorageGb(_) => OperationType::ExpandStorage,
            Change::Size(_) => OperationType::ScaleVertical,
            Change::Replicas(_) => OperationType::ScaleHorizontal,
            Change::Version(_) => OperationType::UpdateVersion,
            Change::AuthRotation(_) => OperationType::RotateAuth,
            Change::Paused(true) => OperationType::Pause,
            Change::Paused(false) => OperationType::Resume,
            Change::DeletionPolicy(_) => OperationType::SetDeletionPolicy,
            Change::Restart(_) => OperationType::Restart,
        }
    }

    pub fn field(self) -> Field {
        match self {
            Change::Size(_) => Field::Size,
            Change::Replicas(_) => Field::Replicas,
            Change::StorageGb(_) => Field::Storage,
            Change::Version(_) => Field::Version,
            Change::AuthRotation(_) => Field::AuthRotation,
            Change::Paused(_) => Field::Paused,
            Change::DeletionPolicy(_) => Field::DeletionPolicy,
            Change::Restart(_) => Field::Restart,
        }
    }
}

/// One field whose effective value differs from the desired one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    pub field: Field,
    /// The change that would fix it.
    pub fix: Change,
    /// It cannot be fixed by an operation (storage cannot shrink).
    pub blocked: bool,
}

/// What the reconciler should do for one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Desired and effective state agree.
    InSync,
    /// Something is already under way (provisioning, an in-flight request,
    /// a deletion): wait for it.
    Wait,
    /// Only blocked drift remains: report it, plan nothing.
    Blocked,
    /// Paused as desired: other drift waits for the resume.
    Paused,
    /// The CR is missing: create it.
    Provision,
    /// Deletion is desired and the CR still exists: delete it.
    Deprovision,
    /// Deletion is desired and the CR is gone: finalize the record.
    Finalize,
    /// Fix one field with one operation.
    Fix(Change),
}

impl Plan {
    /// The action of the operation this plan needs, if any.
    pub fn action(self, desired: &Desired) -> Option<Action> {
        match self {
            Plan::Provision => Some(Action::Provision(Spec {
                size: desired.size,
                replicas: desired.replicas,
                storage_gb: desired.storage_gb,
            })),
            Plan::Deprovision => Some(Action::Deprovision),
            Plan::Fix(c) => Some(Action::Change(c)),
            Plan::InSync | Plan::Wait | Plan::Blocked | Plan::Paused | Plan::Finalize => None,
        }
    }
}

/// The drift of one database and the plan for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Drifted fields in fixing order (empty when in sync or not observed).
    pub drifts: Vec<Drift>,
    pub plan: Plan,
}

/// The CR's values with every in-flight request's target laid over them.
pub fn effective(observed: &Observed, in_flight: &[Change]) -> Observed {
    in_flight.iter().fold(*observed, |mut e, change| {
        match *change {
            Change::Size(s) => e.size = Some(s),
            Change::Replicas(r) => e.replicas = r,
            Change::StorageGb(g) => e.storage_gb = g,
            Change::Version(v) => e.version = Some(v),
            Change::AuthRotation(n) => e.auth_rotation = e.auth_rotation.max(n),
            Change::Paused(p) => e.halted = p,
            Change::DeletionPolicy(p) => e.deletion_policy = Some(p.kubedb()),
            Change::Restart(n) => e.restarts = e.restarts.max(n),
        }
        e
    })
}

/// Drifted fields between `desired` and `effective`, in fixing order.
pub fn drifts(desired: &Desired, effective: &Observed) -> Vec<Drift> {
    Field::ALL
        .into_iter()
        .filter_map(|field| match field {
            Field::Paused if effective.halted != desired.paused => Some(Drift {
                field,
                fix: Change::Paused(desired.paused),
                blocked: false,
            }),
            // KubeDB forces `Halt` on a halted database and refuses any
            // other: the user's policy is put back after the resume.
            Field::DeletionPolicy
                if !desired.paused
                    && !effective.halted
                    && effective.deletion_policy != Some(desired.deletion_policy.kubedb()) =>
            {
                Some(Drift {
                    field,
                    fix: Change::DeletionPolicy(desired.deletion_policy),
                    blocked: false,
                })
            }
            Field::Storage if effective.storage_gb != desired.storage_gb => Some(Drift {
                field,
                fix: Change::StorageGb(desired.storage_gb),
                blocked: desired.storage_gb < effective.storage_gb,
            }),
            Field::Size if effective.size != Some(desired.size) => Some(Drift {
                field,
                fix: Change::Size(desired.size),
                blocked: false,
            }),
            Field::Replicas if effective.replicas != desired.replicas => Some(Drift {
                field,
                fix: Change::Replicas(desired.replicas),
                blocked: false,
            }),
            Field::Version if effective.version != Some(desired.version) => Some(Drift {
                field,
                fix: Change::Version(desired.version),
                blocked: false,
            }),
            // A count: only a rotation still owed is drift.
            Field::AuthRotation if effective.auth_rotation < desired.auth_rotation => Some(Drift {
                field,
                fix: Change::AuthRotation(desired.auth_rotation),
                blocked: false,
            }),
            Field::Restart if effective.restarts < desired.restarts => Some(Drift {
                field,
                fix: Change::Restart(desired.restarts),
                blocked: false,
            }),
            _ => None,
        })
        .collect()
}

/// Compares desired state with the CR (`None`: absent) and the targets of
/// its in-flight OpsRequests, and plans at most one operation.
pub fn assess(desired: &Desired, observed: Option<&Observed>, in_flight: &[Change]) -> Assessment {
    let nothing = |plan| Assessment {
        drifts: Vec::new(),
        plan,
    };
    let Some(observed) = observed else {
        return nothing(if desired.deletion_requested {
            Plan::Finalize
        } else {
            Plan::Provision
        });
    };
    if desired.deletion_requested {
        return nothing(if observed.deleting {
            Plan::Wait
        } else {
            Plan::Deprovision
        });
    }
    let drifts = drifts(desired, &effective(observed, in_flight));
    let plan = if observed.deleting || !in_flight.is_empty() {
        // One change at a time per database.
        Plan::Wait
    } else if observed.halted != desired.paused {
        // Halting and resuming are edits of the CR that KubeDB takes in any
        // phase (a halted database is never Ready).
        Plan::Fix(Change::Paused(desired.paused))
    } else if desired.paused {
        Plan::Paused
    } else if !observed.ready {
        // KubeDB would not start a request on a database that is not Ready.
        Plan::Wait
    } else {
        match drifts.iter().find(|d| !d.blocked) {
            Some(d) => Plan::Fix(d.fix),
            None if drifts.is_empty() => Plan::InSync,
            None => Plan::Blocked,
        }
    };
    Assessment { drifts, plan }
}

/// Every operation the reconciler will plan, in order, from `observed`
/// and the in-flight requests' targets: [`assess`] again over the state
/// each step leaves (as KubeDB leaves it on success), with in-flight
/// requests landed, a CR being deleted gone and a database not ready yet
/// ready. The first step is what [`assess`] plans now whenever it plans
/// anything. Also returns the plan that ends the sequence (`InSync`,
/// `Blocked`, `Paused` or `Finalize`).
pub fn steps(
    desired: &Desired,
    observed: Option<&Observed>,
    in_flight: &[Change],
) -> (Vec<Action>, Plan) {
    let mut current = observed.filter(|o| !o.deleting).map(|o| {
        let mut e = effective(o, in_flight);
        e.ready = !e.halted;
        e
    });
    let mut steps = Vec::new();
    // Provision, then at most one operation per field, then a deletion.
    for _ in 0..Field::ALL.len() + 3 {
        let plan = assess(desired, current.as_ref(), &[]).plan;
        match plan.action(desired) {
            Some(action) => {
                steps.push(action);
                current = Observed::after(current, desired, action);
            }
            None => return (steps, plan),
        }
    }
    (steps, Plan::Wait)
}

/// How much an operation disturbs the database's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disruption {
    /// Clients keep being served.
    Online,
    /// Pods restart one at a time; with replicas, the database stays up.
    RollingRestart,
    /// Every pod starts again.
    FullRestart,
    /// The database is unavailable for a while (or for good).
    Downtime,
}

impl Action {
    /// How disruptive the action is on a database with `replicas`, and why.
    pub fn disruption(self, replicas: u32) -> (Disruption, &'static str) {
        let rolling = |many: &'static str, one: &'static str| {
            if replicas > 1 {
                (Disruption::RollingRestart, many)
            } else {
                (Disruption::Downtime, one)
            }
        };
        match self {
            Action::Provision(_) => (Disruption::Online, "a new database: nothing runs yet"),
            Action::Deprovision => (Disruption::Downtime, "the database is deleted"),
            Action::Change(change) => match change {
                Change::Size(_) => rolling(
                    "pods restart one at a time with the new resources",
                    "the only pod restarts with the new resources",
                ),
                Change::Version(_) => rolling(
                    "pods restart one at a time on the new version",
                    "the only pod restarts on the new version",
                ),
                Change::Restart(_) => {
                    rolling("pods restart one at a time", "the only pod restarts")
                }
                Change::Replicas(_) => (
                    Disruption::Online,
                    "pods are added or removed; the others keep serving",
                ),
                Change::StorageGb(_) => (
                    Disruption::Online,
                    "volumes grow in place (Online volume expansion)",
                ),
                Change::AuthRotation(_) => (
                    Disruption::Online,
                    "the password changes; clients reconnect with the new one",
                ),
                Change::Paused(true) => (
                    Disruption::Downtime,
                    "KubeDB removes the pods until the resume; volumes stay",
                ),
                Change::Paused(false) => (
                    Disruption::FullRestart,
                    "the pods start again on the kept volumes",
                ),
                Change::DeletionPolicy(_) => (
                    Disruption::Online,
                    "only the deletion policy on the CR changes",
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size() -> impl Strategy<Value = Size> {
        prop::sample::select(Size::ALL.to_vec())
    }

    fn version() -> impl Strategy<Value = VersionName> {
        prop::sample::select(vec!["15.8", "16.1", "16.4", "17.2"])
            .prop_map(|v| VersionName::new(v).expect("short"))
    }

    fn v(name: &str) -> VersionName {
        VersionName::new(name).expect("short")
    }

    fn on_delete() -> impl Strategy<Value = OnDelete> {
        prop::sample::select(OnDelete::ALL.to_vec())
    }

    fn desired() -> impl Strategy<Value = Desired> {
        (
            (size(), 1u32..=9, 10u32..=200, version()),
            (0u64..=3, prop::bool::weighted(0.2), on_delete(), 0u64..=2),
            prop::bool::weighted(0.1),
        )
            .prop_map(
                |(
                    (size, replicas, storage_gb, version),
                    (auth_rotation, paused, deletion_policy, restarts),
                    deletion_requested,
                )| Desired {
                    size,
                    replicas,
                    storage_gb,
                    version,
                    auth_rotation,
                    paused,
                    deletion_policy,
                    restarts,
                    deletion_requested,
                },
            )
    }

    fn deletion_policy() -> impl Strategy<Value = Option<DeletionPolicy>> {
        prop::option::weighted(
            0.9,
            prop::sample::select(vec![
                DeletionPolicy::Delete,
                DeletionPolicy::WipeOut,
                DeletionPolicy::Halt,
            ]),
        )
    }

    fn observed() -> impl Strategy<Value = Observed> {
        (
            (
                prop::option::weighted(0.9, size()),
                1u32..=9,
                10u32..=200,
                prop::option::weighted(0.9, version()),
            ),
            (
                0u64..=3,
                prop::bool::weighted(0.2),
                deletion_policy(),
                0u64..=2,
            ),
            (prop::bool::weighted(0.9), prop::bool::weighted(0.1)),
        )
            .prop_map(
                |(
                    (size, replicas, storage_gb, version),
                    (auth_rotation, halted, deletion_policy, restarts),
                    (ready, deleting),
                )| Observed {
                    size,
                    replicas,
                    storage_gb,
                    version,
                    auth_rotation,
                    halted,
                    deletion_policy,
                    restarts,
                    // KubeDB reports a halted database Halted, never Ready.
                    ready: ready && !halted,
                    deleting,
                },
            )
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            size().prop_map(Change::Size),
            (1u32..=9).prop_map(Change::Replicas),
            (10u32..=200).prop_map(Change::StorageGb),
            version().prop_map(Change::Version),
            (1u64..=3).prop_map(Change::AuthRotation),
            any::<bool>().prop_map(Change::Paused),
            on_delete().prop_map(Change::DeletionPolicy),
            (1u64..=2).prop_map(Change::Restart),
        ]
    }

    proptest! {
        /// An in-flight request never causes a second one.
        #[test]
        fn in_flight_requests_block_new_operations(d in desired(), o in observed(), f in prop::collection::vec(change(), 1..3)) {
            let a = assess(&d, Some(&o), &f);
            prop_assert!(!matches!(a.plan, Plan::Fix(_) | Plan::Provision));
        }

        /// Drift is computed against the effective state: what an in-flight
        /// request will bring is not drift.
        #[test]
        fn in_flight_targets_are_not_drift(d in desired(), o in observed(), c in change()) {
            let covered = match c {
                Change::Size(_) => Change::Size(d.size),
                Change::Replicas(_) => Change::Replicas(d.replicas),
                Change::StorageGb(_) => Change::StorageGb(d.storage_gb),
                Change::Version(_) => Change::Version(d.version),
                Change::AuthRotation(_) => Change::AuthRotation(d.auth_rotation),
                Change::Paused(_) => Change::Paused(d.paused),
                Change::DeletionPolicy(_) => Change::DeletionPolicy(d.deletion_policy),
                Change::Restart(_) => Change::Restart(d.restarts),
            };
            let a = assess(&Desired { deletion_requested: false, ..d }, Some(&o), &[covered]);
            prop_assert!(a.drifts.iter().all(|x| x.field != covered.field()));
        }

        /// The plan fixes the first unblocked drifted field, in the order
        /// of [`Field`], and targets the desired value.
        #[test]
        fn fixes_follow_the_field_order(d in desired(), o in observed()) {
            let d = Desired { deletion_requested: false, ..d };
            let o = Observed { ready: true, deleting: false, ..o };
            let a = assess(&d, Some(&o), &[]);
            let mut fields: Vec<Field> = a.drifts.iter().map(|x| x.field).collect();
            let sorted = { let mut s = fields.clone(); s.sort(); s };
            prop_assert_eq!(&fields, &sorted);
            fields.dedup();
            prop_assert_eq!(fields.len(), a.drifts.len());
            match a.plan {
                Plan::Fix(c) => {
                    let first = a.drifts.iter().find(|x| !x.blocked).expect("a fix has a drift");
                    prop_assert_eq!(first.fix, c);
                    prop_assert_eq!(c, match c.field() {
                        Field::Storage => Change::StorageGb(d.storage_gb),
                        Field::Size => Change::Size(d.size),
                        Field::Replicas => Change::Replicas(d.replicas),
                        Field::Version => Change::Version(d.version),
                        Field::AuthRotation => Change::AuthRotation(d.auth_rotation),
                        Field::Paused => Change::Paused(d.paused),
                        Field::DeletionPolicy => Change::DeletionPolicy(d.deletion_policy),
                        Field::Restart => Change::Restart(d.restarts),
                    });
                }
                Plan::Paused => prop_assert!(d.paused && o.halted),
                Plan::InSync => prop_assert!(a.drifts.is_empty()),
                Plan::Blocked => prop_assert!(!a.drifts.is_empty() && a.drifts.iter().all(|x| x.blocked)),
                other => prop_assert!(false, "unexpected plan {:?}", other),
            }
        }

        /// The plan's first step is what a pass plans now, whenever it
        /// plans anything; its steps end in sync (or blocked, or paused).
        #[test]
        fn steps_begin_with_what_the_pass_plans(d in desired(), o in prop::option::of(observed()), f in prop::collection::vec(change(), 0..2)) {
            let now = assess(&d, o.as_ref(), &f).plan.action(&d);
            let (steps, end) = steps(&d, o.as_ref(), &f);
            if let Some(action) = now {
                prop_assert_eq!(steps.first(), Some(&action));
            }
            prop_assert!(matches!(end, Plan::InSync | Plan::Finalize | Plan::Blocked | Plan::Paused), "{:?}", end);
            prop_assert!(steps.len() <= Field::ALL.len() + 2);
        }

        /// No drift, no operation.
        #[test]
        fn in_sync_plans_nothing(d in desired(), ready in any::<bool>()) {
            let d = Desired { deletion_requested: false, ..d };
            let o = Observed {
                size: Some(d.size),
                replicas: d.replicas,
                storage_gb: d.storage_gb,
                version: Some(d.version),
                auth_rotation: d.auth_rotation,
                halted: d.paused,
                // What KubeDB forces on a halted database.
                deletion_policy: Some(if d.paused { DeletionPolicy::Halt } else { d.deletion_policy.kubedb() }),
                restarts: d.restarts,
                ready: ready && !d.paused,
                deleting: false,
            };
            let a = assess(&d, Some(&o), &[]);
            prop_assert!(a.drifts.is_empty());
            prop_assert!(a.plan.action(&d).is_none());
        }

        /// A pause or a resume comes before any other change, whether or
        /// not the database is ready, and waits only for what is in flight.
        #[test]
        fn pause_and_resume_come_first(d in desired(), o in observed(), f in prop::collection::vec(change(), 0..2)) {
            let d = Desired { deletion_requested: false, ..d };
            let o = Observed { deleting: false, ..o };
            let plan = assess(&d, Some(&o), &f).plan;
            if !f.is_empty() {
                prop_assert_eq!(plan, Plan::Wait);
            } else if d.paused != o.halted {
                prop_assert_eq!(plan, Plan::Fix(Change::Paused(d.paused)));
            } else if d.paused {
                // Halted as desired: every other change waits for the resume.
                prop_assert_eq!(plan, Plan::Paused);
            }
        }

        /// KubeDB forces `Halt` on a halted database: that is never drift,
        /// and once resumed the user's policy is put back.
        #[test]
        fn the_deletion_policy_is_put_back_after_a_resume(d in desired(), o in observed()) {
            let d = Desired { deletion_requested: false, ..d };
            let halted = Observed { halted: true, deletion_policy: Some(DeletionPolicy::Halt), ready: false, deleting: false, ..o };
            let a = assess(&d, Some(&halted), &[]);
            prop_assert!(a.drifts.iter().all(|x| x.field != Field::DeletionPolicy));
            let resumed = Observed { halted: false, ready: true, ..halted };
            let a = assess(&Desired { paused: false, ..d }, Some(&resumed), &[]);
            let fixes_policy = a.drifts.iter().any(|x| x.fix == Change::DeletionPolicy(d.deletion_policy));
            prop_assert_eq!(fixes_policy, d.deletion_policy != OnDelete::Halt);
        }

        /// A CR being deleted (by hand: deletion is not desired) is never in
        /// sync, and nothing is planned until it is gone and can be recreated.
        #[test]
        fn a_cr_being_deleted_is_waited_for(d in desired(), o in observed(), f in prop::collection::vec(change(), 0..2)) {
            let d = Desired { deletion_requested: false, ..d };
            let o = Observed { deleting: true, ..o };
            prop_assert_eq!(assess(&d, Some(&o), &f).plan, Plan::Wait);
        }

        /// Storage never shrinks: a larger CR than desired is blocked drift.
        #[test]
        fn storage_never_shrinks(d in desired(), o in observed(), f in prop::collection::vec(change(), 0..2)) {
            if let Plan::Fix(Change::StorageGb(g)) = assess(&d, Some(&o), &f).plan {
                prop_assert!(g > effective(&o, &f).storage_gb);
            }
        }

        /// Deletion wins over every other drift.
        #[test]
        fn deletion_takes_precedence(d in desired(), o in prop::option::of(observed()), f in prop::collection::vec(change(), 0..2)) {
            let d = Desired { deletion_requested: true, ..d };
            let plan = assess(&d, o.as_ref(), &f).plan;
            let expected = match o {
                None => Plan::Finalize,
                Some(o) if o.deleting => Plan::Wait,
                Some(_) => Plan::Deprovision,
            };
            prop_assert_eq!(plan, expected);
        }

        /// Applying each planned operation converges in at most nine steps
        /// (provision, then one per field) unless storage must shrink; a
        /// paused database ends paused.
        #[test]
        fn plans_converge(d in desired(), o in prop::option::of(observed())) {
            let mut current = o.map(|o| Observed { ready: !o.halted, deleting: false, ..o });
            for _ in 0..10 {
                let plan = assess(&d, current.as_ref(), &[]).plan;
                if plan.action(&d).is_none() {
                    let shrink = current.is_some_and(|c| c.storage_gb > d.storage_gb);
                    prop_assert!(
                        matches!(plan, Plan::InSync | Plan::Finalize)
                            || (plan == Plan::Blocked && shrink)
                            || (plan == Plan::Paused && d.paused)
                    );
                    return Ok(());
                }
                let action = plan.action(&d).expect("an action");
                current = Observed::after(current, &d, action);
            }
            prop_assert!(false, "did not converge");
        }
    }

    #[test]
    fn example_rapid_updates_plan_one_operation_for_the_final_value() {
        // Design example 3: small -> medium -> large before a pass: one
        // operation, for large.
        let o = Observed {
            size: Some(Size::Small),
            replicas: 3,
            storage_gb: 50,
            version: Some(v("16.4")),
            auth_rotation: 0,
            halted: false,
            deletion_policy: Some(DeletionPolicy::WipeOut),
            restarts: 0,
            ready: true,
            deleting: false,
        };
        let d = Desired {
            size: Size::Large,
            replicas: 3,
            storage_gb: 50,
            version: v("16.4"),
            auth_rotation: 0,
            paused: false,
            deletion_policy: OnDelete::Wipeout,
            restarts: 0,
            deletion_requested: false,
        };
        assert_eq!(
            assess(&d, Some(&o), &[]).plan,
            Plan::Fix(Change::Size(Size::Large))
        );
    }

    #[test]
    fn rapid_rotation_requests_plan_one_rotation() {
        // Three rotations asked for before a pass: one RotateAuth, to 3;
        // while it runs, nothing more; once it is recorded, in sync.
        let mut o = Observed {
            size: Some(Size::Small),
            replicas: 1,
            storage_gb: 20,
            version: Some(v("16.4")),
            auth_rotation: 0,
            halted: false,
            deletion_policy: Some(DeletionPolicy::WipeOut),
            restarts: 0,
            ready: true,
            deleting: false,
        };
        let d = Desired {
            size: Size::Small,
            replicas: 1,
            storage_gb: 20,
            version: v("16.4"),
            auth_rotation: 3,
            paused: false,
            deletion_policy: OnDelete::Wipeout,
            restarts: 0,
            deletion_requested: false,
        };
        let plan = assess(&d, Some(&o), &[]).plan;
        assert_eq!(plan, Plan::Fix(Change::AuthRotation(3)));
        let in_flight = assess(&d, Some(&o), &[Change::AuthRotation(3)]);
        assert_eq!((in_flight.plan, in_flight.drifts), (Plan::Wait, vec![]));
        o.auth_rotation = 3;
        assert_eq!(assess(&d, Some(&o), &[]).plan, Plan::InSync);
    }

    #[test]
    fn version_changes_plan_one_update_for_the_final_version() {
        let o = Observed {
            size: Some(Size::Small),
            replicas: 1,
            storage_gb: 20,
            version: Some(v("16.1")),
            auth_rotation: 0,
            halted: false,
            deletion_policy: Some(DeletionPolicy::WipeOut),
            restarts: 0,
            ready: true,
            deleting: false,
        };
        // 16.1 -> 16.4 -> 17.2 asked for before a pass: one update, to 17.2.
        let d = Desired {
            size: Size::Small,
            replicas: 1,
            storage_gb: 20,
            version: v("17.2"),
            auth_rotation: 0,
            paused: false,
            deletion_policy: OnDelete::Wipeout,
            restarts: 0,
            deletion_requested: false,
        };
        let fix = Change::Version(v("17.2"));
        assert_eq!(assess(&d, Some(&o), &[]).plan, Plan::Fix(fix));
        // In flight, KubeDB has not written it into the CR yet: not drift.
        let a = assess(&d, Some(&o), &[fix]);
        assert_eq!((a.plan, a.drifts), (Plan::Wait, vec![]));
        // Set back by hand in the CR: drift, reverted to what is desired.
        let edited = Observed {
            version: Some(v("16.4")),
            ..o
        };
        assert_eq!(assess(&d, Some(&edited), &[]).plan, Plan::Fix(fix));
        let unreadable = Observed { version: None, ..o };
        assert_eq!(assess(&d, Some(&unreadable), &[]).plan, Plan::Fix(fix));
    }

    #[test]
    fn example_manual_change_is_reverted() {
        // Design example 2: kubectl set replicas to 5; desired is 3.
        let o = Observed {
            size: Some(Size::Medium),
            replicas: 5,
            storage_gb: 50,
            version: Some(v("16.4")),
            auth_rotation: 0,
            halted: false,
            deletion_policy: Some(DeletionPolicy::WipeOut),
            restarts: 0,
            ready: true,
            deleting: false,
        };
        let d = Desired {
            size: Size::Medium,
            replicas: 3,
            storage_gb: 50,
            version: v("16.4"),
            auth_rotation: 0,
            paused: false,
            deletion_policy: OnDelete::Wipeout,
            restarts: 0,
            deletion_requested: false,
        };
        assert_eq!(
            assess(&d, Some(&o), &[]).plan,
            Plan::Fix(Change::Replicas(3))
        );
    }
}
