//! Output: tables for people, the API's JSON or YAML for scripts.

use std::io::{self, Write};

use comfy_table::{Table, presets};
use serde::Serialize;

use crate::cli::Output;
use crate::error::Error;
use crate::model::{Credentials, Database, Event, Field, Operation, Plan, Version, target_text};

/// Marks a desired value the cluster does not have yet.
const DRIFT: &str = "≠";

/// Writes `value` as pretty JSON or as YAML (a table is drawn by the
/// caller; were one asked for here, JSON is what it gets).
pub fn structured(
    out: &mut dyn Write,
    format: Output,
    value: &impl Serialize,
) -> Result<(), Error> {
    match format {
        Output::Yaml => {
            let text = serde_saphyr::to_string(value)
                .map_err(|e| Error::Output(io::Error::other(e.to_string())))?;
            out.write_all(text.as_bytes())?;
        }
        Output::Json | Output::Table => {
            serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// A borderless table, columns two spaces apart.
fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    if !header.is_empty() {
        t.set_header(header.iter().copied());
    }
    t
}

fn print(out: &mut dyn Write, mut t: Table) -> io::Result<()> {
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    writeln!(out, "{}", t.trim_fmt())
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// `desired`, or `desired ≠ current` when they differ.
fn drift_cell(f: &Field) -> String {
    if f.drifted() {
        format!("{} {DRIFT} {}", f.desired, or_dash(f.current.as_deref()))
    } else {
        f.desired.clone()
    }
}

/// One database: what it is, desired against current, its conditions.
pub fn database(out: &mut dyn Write, db: &Database, op: Option<&Operation>) -> io::Result<()> {
    let operation = match (&db.active_operation_id, op) {
        (Some(id), Some(op)) => format!("{id}: {}", op.summary()),
        (Some(id), None) => id.clone(),
        (None, _) => "-".to_string(),
    };
    let mut about = table(&[]);
    for (k, v) in [
        ("id", db.id.clone()),
        ("name", db.name.clone()),
        ("engine", db.engine.clone()),
        ("status", db.status.clone()),
        ("operation", operation),
        (
            "generation",
            format!("{}, observed {}", db.generation, db.observed_generation),
        ),
        (
            "deletion",
            format!(
                "protection {}, policy {}",
                if db.deletion_protection { "on" } else { "off" },
                db.deletion_policy
            ),
        ),
        (
            "connection",
            or_dash(db.connection.as_ref().map(|c| c.uri.as_str())).to_string(),
        ),
        ("created", db.created_at.clone()),
    ] {
        about.add_row([k.to_string(), v]);
    }
    print(out, about)?;
    writeln!(out)?;
    let mut fields = table(&["FIELD", "DESIRED", "", "CURRENT"]);
    for f in db.fields() {
        fields.add_row([
            f.name.to_string(),
            f.desired.clone(),
            if f.drifted() { DRIFT } else { "" }.to_string(),
            or_dash(f.current.as_deref()).to_string(),
        ]);
    }
    print(out, fields)?;
    if !db.conditions.is_empty() {
        writeln!(out)?;
        let mut conditions = table(&["CONDITION", "STATUS", "REASON", "MESSAGE"]);
        for c in &db.conditions {
            conditions.add_row([&c.type_, &c.status, &c.reason, &c.message]);
        }
        print(out, conditions)?;
    }
    Ok(())
}

/// Databases one a row; a drifted field shows `desired ≠ current`.
pub fn databases(out: &mut dyn Write, dbs: &[Database]) -> io::Result<()> {
    let mut t = table(&[
        "ID",
        "NAME",
        "ENGINE",
        "STATUS",
        "SIZE",
        "REPLICAS",
        "STORAGE_GB",
        "VERSION",
        "PAUSED",
        "OPERATION",
    ]);
    for db in dbs {
        let mut row = vec![
            db.id.clone(),
            db.name.clone(),
            db.engine.clone(),
            db.status.clone(),
        ];
        row.extend(db.fields().iter().map(drift_cell));
        row.push(or_dash(db.active_operation_id.as_deref()).to_string());
        t.add_row(row);
    }
    print(out, t)
}

/// A plan as numbered steps; running ones marked.
pub fn plan(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    let subject = plan.database_id.as_deref().unwrap_or("the new database");
    let summary = match (plan.in_sync, plan.steps.len()) {
        (true, 0) => "in sync, nothing to do".to_string(),
        (in_sync, n) => format!(
            "{}, {n} step{}",
            if in_sync { "in sync" } else { "not in sync" },
            if n == 1 { "" } else { "s" }
        ),
    };
    writeln!(out, "{subject}: {summary}")?;
    if let Some(waiting) = &plan.waiting {
        writeln!(out, "waiting: {waiting}")?;
    }
    if plan.steps.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t = table(&[
        "STEP",
        "TYPE",
        "TARGET",
        "OPSREQUEST",
        "DISRUPTION",
        "STATE",
        "REASON",
    ]);
    for (n, s) in plan.steps.iter().enumerate() {
        let state = match (s.running, &s.operation_id) {
            (true, Some(id)) => format!("running {id}"),
            (true, None) => "running".to_string(),
            (false, _) => "-".to_string(),
        };
        t.add_row([
            (n + 1).to_string(),
            s.type_.clone(),
            target_text(&s.target),
            or_dash(s.ops_request_type.as_deref()).to_string(),
            s.disruption.clone(),
            state,
            s.reason.clone(),
        ]);
    }
    print(out, t)
}

pub fn events(out: &mut dyn Write, events: &[Event]) -> io::Result<()> {
    let mut t = table(&["AT", "TYPE", "MESSAGE"]);
    for e in events {
        t.add_row([&e.at, &e.type_, &e.message]);
    }
    print(out, t)
}

pub fn operations(out: &mut dyn Write, ops: &[Operation]) -> io::Result<()> {
    let mut t = table(&[
        "ID", "DATABASE", "TYPE", "TARGET", "STATUS", "ATTEMPTS", "PHASE", "CREATED",
    ]);
    for op in ops {
        t.add_row([
            op.id.clone(),
            op.database_id.clone(),
            op.type_.clone(),
            target_text(&op.desired_state),
            op.status.clone(),
            op.attempts.to_string(),
            or_dash(op.ops_request_phase.as_deref()).to_string(),
            op.created_at.clone(),
        ]);
    }
    print(out, t)
}

pub fn operation(out: &mut dyn Write, op: &Operation) -> io::Result<()> {
    let mut t = table(&[]);
    for (k, v) in [
        ("id", op.id.as_str()),
        ("database", op.database_id.as_str()),
        ("type", op.type_.as_str()),
        ("target", &target_text(&op.desired_state)),
        ("status", op.status.as_str()),
        ("attempts", &op.attempts.to_string()),
        ("opsrequest", or_dash(op.ops_request_name.as_deref())),
        ("phase", or_dash(op.ops_request_phase.as_deref())),
        ("error", or_dash(op.error.as_deref())),
        ("created", op.created_at.as_str()),
        ("finished", or_dash(op.finished_at.as_deref())),
    ] {
        t.add_row([k, v]);
    }
    print(out, t)
}

pub fn versions(out: &mut dyn Write, versions: &[Version]) -> io::Result<()> {
    let mut t = table(&["ENGINE", "NAME", "VERSION", "DEPRECATED", "UPGRADES"]);
    for v in versions {
        t.add_row([
            v.engine.clone(),
            v.name.clone(),
            v.version.clone(),
            v.deprecated.to_string(),
            if v.upgrades.is_empty() {
                "-".to_string()
            } else {
                v.upgrades.join(", ")
            },
        ]);
    }
    print(out, t)
}

pub fn credentials(out: &mut dyn Write, c: &Credentials) -> io::Result<()> {
    let mut t = table(&[]);
    t.add_row(["username", &c.username]);
    t.add_row(["password", &c.password]);
    print(out, t)
}

/// One saved profile as `config list` shows it.
#[derive(Debug, Serialize)]
pub struct ProfileRow {
    pub name: String,
    pub current: bool,
    pub url: Option<String>,
    pub api_key_prefix: Option<String>,
}

pub fn profiles(out: &mut dyn Write, rows: &[ProfileRow]) -> io::Result<()> {
    let mut t = table(&["CURRENT", "PROFILE", "URL", "API_KEY"]);
    for r in rows {
        t.add_row([
            if r.current { "*" } else { "" },
            &r.name,
            or_dash(r.url.as_deref()),
            or_dash(r.api_key_prefix.as_deref()),
        ]);
    }
    print(out, t)
}
