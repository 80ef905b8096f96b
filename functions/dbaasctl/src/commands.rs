//! Each command: the request it makes and what it prints.

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::{
    Cli, Command, ConfigCommand, CreateArgs, DbCommand, DeletionPolicy, Engine, GlobalArgs,
    ListArgs, OpCommand, Output, PatchFields, PlanArgs, Until,
};
use crate::client::{Client, NO_QUERY, db_path, op_path};
use crate::config::{self, ConfigFile};
use crate::error::Error;
use crate::model::{Credentials, Database, Event, Operation, Page, Plan, Version};
use crate::render::{self, ProfileRow};
use crate::wait;

/// What `db credentials` prints instead of the password.
const MASK: &str = "********";

/// Runs one command, printing its result to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let Cli { global, command } = cli;
    match command {
        Command::Completions { shell } => {
            // Generated into memory first: clap_complete panics when its
            // writer fails, e.g. on a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dbaasctl", &mut script);
            out.write_all(&script)?;
            Ok(())
        }
        Command::Config(c) => config_command(c, &global, out),
        Command::Db(c) => Session::open(&global, out)?.db(c).await,
        Command::Op(c) => Session::open(&global, out)?.op(c).await,
        Command::Versions { engine } => {
            let mut s = Session::open(&global, out)?;
            let value = s.client.get("/versions", &[("engine", engine)]).await?;
            s.show(&value, |out, page: Page<Version>| {
                render::versions(out, &page.items)
            })
        }
    }
}

/// The body of `POST /databases`, and of a plan for a new database.
#[derive(Debug, Serialize)]
struct NewDatabase<'a> {
    name: &'a str,
    engine: Engine,
    size: &'a str,
    replicas: u32,
    storage_gb: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    deletion_protection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_policy: Option<DeletionPolicy>,
}

/// The body of a plan for a change: the database and the PATCH fields.
#[derive(Debug, Serialize)]
struct PlannedPatch<'a> {
    id: &'a str,
    #[serde(flatten)]
    fields: &'a PatchFields,
}

#[derive(Debug, Serialize)]
struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<Engine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<crate::cli::Status>,
}

/// A connected command: the client and where its output goes.
struct Session<'a> {
    client: Client,
    format: Output,
    out: &'a mut dyn Write,
}

impl<'a> Session<'a> {
    fn open(global: &GlobalArgs, out: &'a mut dyn Write) -> Result<Session<'a>, Error> {
        let path = config::path()?;
        let target = ConfigFile::load(&path)?.target(global, &path)?;
        Ok(Session {
            client: Client::new(&target.url, target.api_key)?,
            format: global.output,
            out,
        })
    }

    /// Prints `value` as the API sent it, or as a table drawn from it.
    fn show<T: DeserializeOwned>(
        &mut self,
        value: &Value,
        table: impl FnOnce(&mut dyn Write, T) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        if self.format != Output::Table {
            return render::structured(self.out, self.format, value);
        }
        table(self.out, decode(value)?)?;
        Ok(())
    }

    /// Prints a database; its table names what the active operation does.
    async fn show_database(&mut self, value: &Value) -> Result<(), Error> {
        if self.format != Output::Table {
            return render::structured(self.out, self.format, value);
        }
        let db: Database = decode(value)?;
        let op = self.client.active_operation(&db).await;
        render::database(self.out, &db, op.as_ref())?;
        Ok(())
    }

    /// Prints the database a request answered with, after waiting for
    /// `until` when asked to.
    async fn changed(
        &mut self,
        value: Value,
        until: Until,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        let Some(timeout) = timeout else {
            return self.show_database(&value).await;
        };
        let db: Database = decode(&value)?;
        let last = wait::wait(&self.client, &db.id, until, timeout).await?;
        self.waited(&db.id, until, &last).await
    }

    /// Prints the end of a wait: the database as it was last read.
    async fn waited(&mut self, id: &str, until: Until, last: &Value) -> Result<(), Error> {
        if self.format == Output::Table && last.is_null() {
            writeln!(self.out, "{id} is {}", until.describe())?;
            return Ok(());
        }
        self.show_database(last).await
    }

    async fn db(mut self, command: DbCommand) -> Result<(), Error> {
        match command {
            DbCommand::Create(args) => self.create(args).await,
            DbCommand::List(args) => self.list(args).await,
            DbCommand::Get { id } => {
                let value = self.client.get(&db_path(&id), NO_QUERY).await?;
                self.show_database(&value).await
            }
            DbCommand::Patch { id, fields, wait } => {
                let value = self.client.patch(&db_path(&id), &fields).await?;
                self.changed(value, Until::InSync, wait.timeout()).await
            }
            DbCommand::Delete { id, wait } => {
                let value = self.client.delete(&db_path(&id)).await?;
                self.changed(value, Until::Deleted, wait.timeout()).await
            }
            DbCommand::Pause { id, wait } => {
                let value = self
                    .client
                    .patch(&db_path(&id), &serde_json::json!({"paused": true}))
                    .await?;
                self.changed(value, Until::InSync, wait.timeout()).await
            }
            DbCommand::Resume { id, wait } => {
                let value = self
                    .client
                    .patch(&db_path(&id), &serde_json::json!({"paused": false}))
                    .await?;
                self.changed(value, Until::InSync, wait.timeout()).await
            }
            DbCommand::Restart { id, wait } => {
                let value = self
                    .client
                    .post(&format!("{}/restart", db_path(&id)), None::<&()>)
                    .await?;
                self.changed(value, Until::InSync, wait.timeout()).await
            }
            DbCommand::RotateCredentials { id, wait } => {
                let value = self
                    .client
                    .post(&format!("{}/credentials/rotate", db_path(&id)), None::<&()>)
                    .await?;
                self.changed(value, Until::InSync, wait.timeout()).await
            }
            DbCommand::Plan(args) => self.plan(args).await,
            DbCommand::Wait { id, until, timeout } => {
                let last = wait::wait(&self.client, &id, until, timeout).await?;
                if self.format == Output::Table {
                    writeln!(self.out, "{id} is {}", until.describe())?;
                    return Ok(());
                }
                render::structured(self.out, self.format, &last)
            }
            DbCommand::Credentials { id, show_password } => {
                let mut value = self
                    .client
                    .get(&format!("{}/credentials", db_path(&id)), NO_QUERY)
                    .await?;
                if !show_password && let Some(p) = value.get_mut("password") {
                    *p = Value::String(MASK.to_string());
                }
                self.show(&value, |out, c: Credentials| render::credentials(out, &c))
            }
            DbCommand::Events { id, limit } => {
                let value = self
                    .client
                    .get(&format!("{}/events", db_path(&id)), &[("limit", limit)])
                    .await?;
                self.show(&value, |out, page: Page<Event>| {
                    render::events(out, &page.items)
                })
            }
            DbCommand::Upgrades { id } => {
                let value = self
                    .client
                    .get(&format!("{}/upgrades", db_path(&id)), NO_QUERY)
                    .await?;
                self.show(&value, |out, page: Page<Version>| {
                    render::versions(out, &page.items)
                })
            }
        }
    }

    async fn create(&mut self, args: CreateArgs) -> Result<(), Error> {
        let body = NewDatabase {
            name: &args.name,
            engine: args.engine,
            size: &args.size,
            replicas: args.replicas,
            storage_gb: args.storage_gb,
            version: args.version.as_deref(),
            deletion_protection: args.deletion_protection,
            deletion_policy: args.deletion_policy,
        };
        let value = self.client.post("/databases", Some(&body)).await?;
        self.changed(value, Until::InSync, args.wait.timeout())
            .await
    }

    /// One page, or with `--all` every page joined into one listing.
    async fn list(&mut self, args: ListArgs) -> Result<(), Error> {
        let mut query = ListQuery {
            limit: args.limit,
            cursor: None,
            engine: args.engine,
            status: args.status,
        };
        let mut value = self.client.get("/databases", &query).await?;
        if args.all {
            let mut items = Vec::new();
            loop {
                if let Some(Value::Array(page)) = value.get_mut("items").map(Value::take) {
                    items.extend(page);
                }
                query.cursor = value["next_cursor"].as_str().map(str::to_string);
                if query.cursor.is_none() {
                    break;
                }
                value = self.client.get("/databases", &query).await?;
            }
            value = serde_json::json!({"items": items, "next_cursor": null});
        } else if self.format == Output::Table && !value["next_cursor"].is_null() {
            eprintln!("(more databases: --all lists them all)");
        }
        self.show(&value, |out, page: Page<Database>| {
            render::databases(out, &page.items)
        })
    }

    /// `GET .../plan` for a database as it stands; `POST /databases/plan`
    /// for a new database or a change.
    async fn plan(&mut self, args: PlanArgs) -> Result<(), Error> {
        let value = match (&args.id, &args.create) {
            (_, Some(name)) => {
                let missing = || {
                    Error::Usage(
                        "--create needs --engine, --size, --replicas and --storage-gb".to_string(),
                    )
                };
                let f = &args.fields;
                let body = NewDatabase {
                    name,
                    engine: args.engine.ok_or_else(missing)?,
                    size: f.size.as_deref().ok_or_else(missing)?,
                    replicas: f.replicas.ok_or_else(missing)?,
                    storage_gb: f.storage_gb.ok_or_else(missing)?,
                    version: f.version.as_deref(),
                    deletion_protection: f.deletion_protection.unwrap_or(false),
                    deletion_policy: f.deletion_policy,
                };
                self.client.post("/databases/plan", Some(&body)).await?
            }
            (Some(id), None) if args.fields.is_empty() => {
                self.client
                    .get(&format!("{}/plan", db_path(id)), NO_QUERY)
                    .await?
            }
            (Some(id), None) => {
                let body = PlannedPatch {
                    id,
                    fields: &args.fields,
                };
                self.client.post("/databases/plan", Some(&body)).await?
            }
            (None, None) => {
                return Err(Error::Usage(
                    "db plan needs a database ID or --create NAME".to_string(),
                ));
            }
        };
        self.show(&value, |out, plan: Plan| render::plan(out, &plan))
    }

    async fn op(mut self, command: OpCommand) -> Result<(), Error> {
        match command {
            OpCommand::List { database, limit } => {
                #[derive(Serialize)]
                struct Query {
                    #[serde(skip_serializing_if = "Option::is_none")]
                    database_id: Option<String>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    limit: Option<u32>,
                }
                let query = Query {
                    database_id: database,
                    limit,
                };
                let value = self.client.get("/operations", &query).await?;
                self.show(&value, |out, page: Page<Operation>| {
                    render::operations(out, &page.items)
                })
            }
            OpCommand::Get { id } => {
                let value = self.client.get(&op_path(&id), NO_QUERY).await?;
                self.show(&value, |out, op: Operation| render::operation(out, &op))
            }
            OpCommand::Cancel { id } => {
                let value = self
                    .client
                    .post(&format!("{}/cancel", op_path(&id)), None::<&()>)
                    .await?;
                self.show(&value, |out, op: Operation| render::operation(out, &op))
            }
        }
    }
}

fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    T::deserialize(value).map_err(|e| Error::Decode {
        url: "the API".to_string(),
        reason: e.to_string(),
    })
}

/// `config set-profile`, `use-profile` and `list`: the file only, no API.
fn config_command(
    command: ConfigCommand,
    global: &GlobalArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let path = config::path()?;
    let mut file = ConfigFile::load(&path)?;
    match command {
        ConfigCommand::SetProfile { name } => {
            // Only what was typed: a key exported in DBAAS_API_KEY for one
            // API must not land silently in another API's profile.
            let url = global.url.clone().filter(|_| global.typed.url);
            let api_key = global.api_key.clone().filter(|_| global.typed.api_key);
            if url.is_none() && api_key.is_none() {
                return Err(Error::Usage(
                    "config set-profile needs --url, --api-key or both".to_string(),
                ));
            }
            if let Some(url) = &url {
                reqwest::Url::parse(url)
                    .map_err(|e| Error::Usage(format!("invalid --url {url}: {e}")))?;
            }
            let profile = file.profiles.entry(name.clone()).or_default();
            if url.is_some() {
                profile.url = url;
            }
            if api_key.is_some() {
                profile.api_key = api_key;
            }
            if file.current_profile.is_none() {
                file.current_profile = Some(name.clone());
            }
            file.save(&path)?;
            writeln!(out, "saved profile {name} in {}", path.display())?;
        }
        ConfigCommand::UseProfile { name } => {
            if !file.profiles.contains_key(&name) {
                return Err(Error::Usage(format!(
                    "no profile {name} in {}: `dbaasctl config set-profile {name} --url URL --api-key KEY` makes it",
                    path.display()
                )));
            }
            file.current_profile = Some(name.clone());
            file.save(&path)?;
            writeln!(out, "using profile {name}")?;
        }
        ConfigCommand::List => {
            let selected = file.selected(global);
            let rows: Vec<ProfileRow> = file
                .profiles
                .iter()
                .map(|(name, p)| ProfileRow {
                    name: name.clone(),
                    current: selected == Some(name.as_str()),
                    url: p.url.clone(),
                    api_key_prefix: p.api_key.as_deref().map(config::key_prefix),
                })
                .collect();
            match global.output {
                Output::Table if rows.is_empty() => {
                    writeln!(out, "no profiles in {}", path.display())?;
                }
                Output::Table => render::profiles(out, &rows)?,
                format => render::structured(out, format, &rows)?,
            }
        }
    }
    Ok(())
}
