//! Where the store is: the flags every binary that uses MongoDB flattens.

/// MongoDB connection settings. Every flag has an environment equivalent.
#[derive(Clone, clap::Args)]
pub struct StoreArgs {
    /// MongoDB connection string (FerretDB works too). It may hold a
    /// password, so its value is never shown.
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/",
        hide_env_values = true
    )]
    pub mongodb_uri: String,
    /// Database that holds the control plane's collections.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "dbaas")]
    pub mongodb_database: String,
    /// Whether updates take a per-record write lock first. `auto` asks the
    /// server once: FerretDB 1.x (which reads, changes and writes back a
    /// whole document, so concurrent conditional updates can all succeed)
    /// gets locks; MongoDB, whose single-document updates are atomic, none.
    #[arg(long, env = "DBAAS_MONGODB_WRITE_LOCKS", value_enum, default_value_t = WriteLocks::Auto)]
    pub mongodb_write_locks: WriteLocks,
}

/// Whether the MongoDB adapter locks a record around each update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteLocks {
    /// Locks on FerretDB, none on MongoDB (asked at the first write).
    #[default]
    Auto,
    Always,
    Never,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("mongodb_uri", &"<redacted>")
            .field("mongodb_database", &self.mongodb_database)
            .field("mongodb_write_locks", &self.mongodb_write_locks)
            .finish()
    }
}

#[cfg(feature = "mongo")]
impl StoreArgs {
    /// Connects lazily: nothing is contacted before the first call.
    pub async fn connect(&self) -> dbaas_core::Result<crate::mongo::MongoStore> {
        Ok(
            crate::mongo::MongoStore::new(&self.mongodb_uri, &self.mongodb_database)
                .await?
                .with_write_locks(self.mongodb_write_locks),
        )
    }
}
