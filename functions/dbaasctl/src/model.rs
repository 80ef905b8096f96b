//! What the tables and the waits read from the API's JSON. Only the fields
//! they show; `-o json` passes the answers on untouched.

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub struct Database {
    pub id: String,
    pub name: String,
    pub engine: String,
    pub version: String,
    pub current_version: Option<String>,
    pub size: String,
    pub current_size: Option<String>,
    pub replicas: u32,
    pub current_replicas: Option<u32>,
    pub storage_gb: u32,
    pub current_storage_gb: Option<u32>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub current_paused: bool,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default)]
    pub deletion_policy: String,
    #[serde(default)]
    pub connection: Option<Connection>,
    pub generation: u64,
    pub observed_generation: u64,
    pub status: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub active_operation_id: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
pub struct Connection {
    pub uri: String,
}

#[derive(Debug, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// One desired field against its current value.
pub struct Field {
    pub name: &'static str,
    pub desired: String,
    /// `None` until the reconciler has observed the cluster.
    pub current: Option<String>,
}

impl Field {
    pub fn drifted(&self) -> bool {
        self.current.as_deref() != Some(self.desired.as_str())
    }
}

impl Database {
    /// The fields shown desired against current, in the API's order.
    pub fn fields(&self) -> [Field; 5] {
        let field = |name, desired: String, current: Option<String>| Field {
            name,
            desired,
            current,
        };
        [
            field("size", self.size.clone(), self.current_size.clone()),
            field(
                "replicas",
                self.replicas.to_string(),
                self.current_replicas.map(|r| r.to_string()),
            ),
            field(
                "storage_gb",
                self.storage_gb.to_string(),
                self.current_storage_gb.map(|g| g.to_string()),
            ),
            field(
                "version",
                self.version.clone(),
                self.current_version.clone(),
            ),
            field(
                "paused",
                self.paused.to_string(),
                Some(self.current_paused.to_string()),
            ),
        ]
    }

    /// The message of the `Failed` condition, which says which operation
    /// failed and why.
    pub fn failure(&self) -> Option<&str> {
        self.conditions
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .map(|c| c.message.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub id: String,
    pub database_id: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub desired_state: Map<String, Value>,
    pub status: String,
    pub attempts: u32,
    pub error: Option<String>,
    pub ops_request_name: Option<String>,
    pub ops_request_phase: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl Operation {
    /// `scale_vertical running, OpsRequest phase Progressing`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", self.type_, self.status);
        if let Some(phase) = &self.ops_request_phase {
            s.push_str(&format!(", OpsRequest phase {phase}"));
        }
        s
    }
}

#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
    pub at: String,
}

#[derive(Debug, Deserialize)]
pub struct Version {
    pub engine: String,
    pub name: String,
    pub version: String,
    pub deprecated: bool,
    #[serde(default)]
    pub upgrades: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct Plan {
    pub database_id: Option<String>,
    pub in_sync: bool,
    pub waiting: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub target: Map<String, Value>,
    pub ops_request_type: Option<String>,
    pub disruption: String,
    pub reason: String,
    #[serde(default)]
    pub running: bool,
    pub operation_id: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
}

/// `size=db.t3.large, storage_gb=40`: an operation's or a step's target.
pub fn target_text(target: &Map<String, Value>) -> String {
    target
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
