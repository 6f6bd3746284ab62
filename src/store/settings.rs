//! The `[store]` section: which database, and how it is opened. It lives with the store
//! (the configuration only embeds it), so the store needs nothing from `config`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// SQLite only: `full` fsyncs every commit (a 2xx survives power loss), `normal`
    /// survives a crash of sift but not of the machine.
    pub sqlite_synchronous: SqliteSync,
}

/// `store.sqlite_synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://sift.db".into(),
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Full,
        }
    }
}
