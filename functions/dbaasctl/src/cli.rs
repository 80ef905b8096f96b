//! The command line: every command, flag and environment variable.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Command-line client of the DBaaS control plane for KubeDB: declare
/// databases, see desired against current state, wait for them to converge.
#[derive(Debug, Parser)]
#[command(name = "dbaasctl", version)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments, exiting with clap's code 2 on a usage
    /// error, and notes which connection values were typed rather than taken
    /// from the environment: `config set-profile` saves only those.
    pub fn parse_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let typed = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        cli.global.typed = Typed {
            url: typed("url"),
            api_key: typed("api_key"),
        };
        cli
    }
}

/// Options every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Base URL of the API [default: the profile's, else http://127.0.0.1:8000]
    #[arg(long, env = "DBAAS_URL", global = true)]
    pub url: Option<String>,
    /// API key, sent as a bearer token [default: the profile's]
    #[arg(long, env = "DBAAS_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Profile of the config file to use [default: the one `config use-profile` chose]
    #[arg(long, env = "DBAAS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// Output: a table for people, or the API's JSON or YAML for scripts
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[arg(skip)]
    pub typed: Typed,
}

/// Which connection values came from the command line itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct Typed {
    pub url: bool,
    pub api_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Databases: declare, inspect, change, wait for and delete them
    #[command(subcommand)]
    Db(DbCommand),
    /// Operations the reconciler planned: list, inspect, cancel
    #[command(subcommand)]
    Op(OpCommand),
    /// The versions the cluster offers, and where each may be upgraded to
    Versions {
        /// Only this engine's versions
        #[arg(long, value_enum)]
        engine: Option<Engine>,
    },
    /// Profiles: which API and which key to use
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script, e.g. `dbaasctl completions bash > /etc/bash_completion.d/dbaasctl`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Declare a database (status `provisioning` until it is ready)
    Create(CreateArgs),
    /// List databases (deleted ones only with `--status deleted`)
    List(ListArgs),
    /// Show a database: desired against current state, status, operation
    Get {
        /// Database id (db-…)
        id: String,
    },
    /// Change desired state; the reconciler carries it out
    #[command(
        override_usage = "dbaasctl db patch <ID> <--size|--replicas|--storage-gb|--version|--paused|--deletion-protection|--deletion-policy>... [--wait [--timeout D]]",
        group(
            ArgGroup::new("change").required(true).multiple(true).args([
                "size",
                "replicas",
                "storage_gb",
                "version",
                "paused",
                "deletion_protection",
                "deletion_policy",
            ])
        )
    )]
    Patch {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        fields: PatchFields,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Request deletion (refused while deletion protection is on)
    Delete {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Halt a database: its pods go, its volumes and Secret stay
    Pause {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Resume a paused database
    Resume {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Restart a database's pods
    Restart {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// What the reconciler would do, step by step; nothing is saved
    Plan(PlanArgs),
    /// Wait until a database is ready, in sync or deleted
    Wait {
        /// Database id (db-…)
        id: String,
        /// What to wait for
        #[arg(long = "for", value_enum)]
        until: Until,
        /// How long to wait, e.g. 90s or 10m
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Show the login (the password only with --show-password)
    Credentials {
        /// Database id (db-…)
        id: String,
        /// Print the password instead of a mask
        #[arg(long)]
        show_password: bool,
    },
    /// Ask for new credentials; a RotateAuth OpsRequest follows
    RotateCredentials {
        /// Database id (db-…)
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// A database's history, newest first
    Events {
        /// Database id (db-…)
        id: String,
        /// How many events (the API's default: 50)
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The versions a database may be upgraded to
    Upgrades {
        /// Database id (db-…)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A DNS-1123 label of at most 40 characters, unique among your databases
    pub name: String,
    #[arg(long, value_enum)]
    pub engine: Engine,
    /// Instance class, db.t3.micro to db.t3.2xlarge
    #[arg(long)]
    pub size: String,
    /// Replicas, 1 to 9 within the engine's rules
    #[arg(long)]
    pub replicas: u32,
    /// Storage in GiB, 10 to 10000
    #[arg(long)]
    pub storage_gb: u32,
    /// A catalog version (`dbaasctl versions`) [default: the newest one]
    #[arg(long)]
    pub version: Option<String>,
    /// Refuse deletion until this is turned off
    #[arg(long)]
    pub deletion_protection: bool,
    /// What a deletion keeps [default: wipeout]
    #[arg(long, value_enum)]
    pub deletion_policy: Option<DeletionPolicy>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this engine
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// Only this status
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// Page size, 1 to 200 (the API's default: 50)
    #[arg(long)]
    pub limit: Option<u32>,
    /// Follow the pages to the end
    #[arg(long)]
    pub all: bool,
}

/// Desired fields to change; the API's PATCH body as it is.
#[derive(Debug, Args, Serialize)]
pub struct PatchFields {
    /// Instance class, db.t3.micro to db.t3.2xlarge
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Replicas, 1 to 9 within the engine's rules
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Storage in GiB; it only grows
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<u32>,
    /// Upgrade to this version (`dbaasctl db upgrades ID` lists them)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Halt (true) or resume (false)
    #[arg(long, value_name = "true|false")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Refuse deletion while true
    #[arg(long, value_name = "true|false")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// What a deletion keeps
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl PatchFields {
    pub fn is_empty(&self) -> bool {
        self.size.is_none()
            && self.replicas.is_none()
            && self.storage_gb.is_none()
            && self.version.is_none()
            && self.paused.is_none()
            && self.deletion_protection.is_none()
            && self.deletion_policy.is_none()
    }
}

/// `db plan ID` shows the plan as it stands; with changes, or with
/// `--create`, the plan such a request would get.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["id", "create"])))]
pub struct PlanArgs {
    /// The database to plan for
    pub id: Option<String>,
    /// Plan a new database of this name (with --engine, --size, --replicas, --storage-gb)
    #[arg(
        long,
        value_name = "NAME",
        requires = "engine",
        requires = "size",
        requires = "replicas",
        requires = "storage_gb",
        conflicts_with = "paused"
    )]
    pub create: Option<String>,
    /// Engine of the new database (with --create)
    #[arg(long, value_enum, requires = "create")]
    pub engine: Option<Engine>,
    #[command(flatten)]
    pub fields: PatchFields,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Then wait until it is carried out (in sync; deleted after `delete`)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 90s or 10m
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl WaitArgs {
    /// The timeout, when waiting was asked for.
    pub fn timeout(&self) -> Option<Duration> {
        self.wait.then_some(self.timeout)
    }
}

#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// List operations, newest first
    List {
        /// Only this database's
        #[arg(long)]
        database: Option<String>,
        /// How many (the API's default: 50)
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show an operation: target, status, attempts, OpsRequest
    Get {
        /// Operation id (op-…)
        id: String,
    },
    /// Take an operation's change back while its OpsRequest does not exist yet
    Cancel {
        /// Operation id (op-…)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create or update a profile with the --url and --api-key typed (not
    /// those of the environment); the first profile becomes the current one
    #[command(override_usage = "dbaasctl config set-profile <NAME> [--url URL] [--api-key KEY]")]
    SetProfile {
        /// Profile name, e.g. local or prod
        name: String,
    },
    /// Make a profile the one used when --profile is not given
    UseProfile {
        /// Profile name
        name: String,
    },
    /// List the profiles (keys shown by their first characters only)
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Mongodb,
    Postgres,
    Mysql,
    Mariadb,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    Delete,
    Wipeout,
    Halt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Provisioning,
    Ready,
    Updating,
    Failed,
    Paused,
    Deleting,
    Deleted,
}

/// What `db wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Until {
    /// Status `ready`
    Ready,
    /// Ready (or paused as asked) with every change carried out
    InSync,
    /// Gone: status `deleted`, or no longer found
    Deleted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
