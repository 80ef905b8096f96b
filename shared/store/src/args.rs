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
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("mongodb_uri", &"<redacted>")
            .field("mongodb_database", &self.mongodb_database)
            .finish()
    }
}

#[cfg(feature = "mongo")]
impl StoreArgs {
    /// Connects lazily: nothing is contacted before the first call.
    pub async fn connect(&self) -> dbaas_core::Result<crate::mongo::MongoStore> {
        crate::mongo::MongoStore::new(&self.mongodb_uri, &self.mongodb_database).await
    }
}
