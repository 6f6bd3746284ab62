//! What the shared SQL needs of a database, stated once, and the store and transaction
//! types generic over it.
//!
//! The SQL is the same text on SQLite and PostgreSQL (`$N` placeholders and `ON CONFLICT`
//! work on both), so each statement is written once, in the file of its aggregate, as plain
//! generic code over `B: Backend`. sqlx can run such code, but only with a where-clause per
//! value type bound or read and one for the executor, and Rust does not carry a trait's
//! where-clauses to its users: each function would repeat a dozen lines of bounds. Instead
//! `Backend` lists those capabilities as supertraits (which Rust does carry), each a small
//! trait implemented for every database that has it (`Bind`, `Get`, `Exec`), and the
//! extension traits below give statements the methods to use them: `arg` where sqlx has
//! `bind`, `push_arg` for `push_bind`, `col` for `try_get`, and `run` / `all` / `one` /
//! `optional` / `stream` for `execute` / `fetch_all` / … on a connection.
//!
//! What differs between the databases (how a connection is opened, how the write lock is
//! taken, the odd statement) is in `sqlite.rs` and `postgres.rs`: the constants and
//! functions of `Backend`, and `connect`. This module must not hold SQL of an aggregate.

use std::fmt::Display;

use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::{
    Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Transaction, Type,
};

use async_trait::async_trait;

use super::{StateRow, Store, StoreError, WriteTx};

/// A database the store runs on: sqlx's capabilities for the values sift stores, and what
/// the two databases do differently.
pub trait Backend:
    Database
    + Exec
    + Bind<i64>
    + Bind<Option<i64>>
    + Bind<f64>
    + Bind<String>
    + Bind<Option<String>>
    + Bind<Vec<u8>>
    + Bind<&'static str>
    + Bind<Option<&'static str>>
    + Get<i64>
    + Get<Option<i64>>
    + Get<String>
    + Get<Option<String>>
    + Get<Vec<u8>>
{
    /// `Store::backend`: `sqlite` or `postgres`.
    const NAME: &'static str;
    /// Which text of each migration applies (both are embedded).
    const POSTGRES: bool;
    /// How a write transaction begins (`None`: sqlx's plain `BEGIN`).
    const BEGIN_LOCKED: Option<&'static str>;
    /// Appended to the `sift_state` read that begins a write transaction.
    const LOCK_SUFFIX: &'static str;
    /// How a read transaction that sees one snapshot begins (`None`: plain `BEGIN`).
    const BEGIN_SNAPSHOT: Option<&'static str>;
    /// Run first in the migrations' transaction, so daemons starting at once migrate one
    /// after the other.
    const MIGRATION_LOCK: Option<&'static str>;
    /// The column that orders `alerts` rows by arrival (kept by upserts).
    const ARRIVAL: &'static str;
    /// Appended to the outbox claim, so concurrent claims take different rows.
    const SKIP_LOCKED: &'static str;
    /// Whether `refresh_alerts` updates the document in place (cheaper than the upsert)
    /// or upserts (as cheap, where every update rewrites the row anyway).
    const REFRESH_IN_PLACE: bool;
    /// Rows a statement changed (sqlx has no trait for it).
    fn rows_affected(r: &Self::QueryResult) -> u64;

    /// A statement of this backend (`sqlx::query` with the database named).
    fn query<'q>(sql: impl sqlx::SqlSafeStr) -> Query<'q, Self, Self::Arguments> {
        sqlx::query(sql)
    }
}

/// A value of type `T` can be bound to a statement of this database.
pub trait Bind<T>: Database {
    fn bind_query<'q>(
        q: Query<'q, Self, Self::Arguments>,
        v: T,
    ) -> Query<'q, Self, Self::Arguments>;
    fn bind_builder(b: &mut QueryBuilder<Self>, v: T);
    fn bind_separated<S: Display>(b: &mut Separated<'_, Self, S>, v: T);
}

impl<DB: Database, T> Bind<T> for DB
where
    T: for<'t> Encode<'t, DB> + Type<DB>,
{
    fn bind_query<'q>(
        q: Query<'q, Self, Self::Arguments>,
        v: T,
    ) -> Query<'q, Self, Self::Arguments> {
        q.bind(v)
    }
    fn bind_builder(b: &mut QueryBuilder<Self>, v: T) {
        b.push_bind(v);
    }
    fn bind_separated<S: Display>(b: &mut Separated<'_, Self, S>, v: T) {
        b.push_bind(v);
    }
}

/// A column of this database can be read as a `T`.
pub trait Get<T>: Database {
    fn get(row: &Self::Row, i: usize) -> Result<T, sqlx::Error>;
}

impl<DB: Database, T> Get<T> for DB
where
    usize: sqlx::ColumnIndex<DB::Row>,
    T: for<'r> Decode<'r, DB> + Type<DB>,
{
    fn get(row: &Self::Row, i: usize) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(row, i)
    }
}

/// Statements of this database run on one of its connections.
pub trait Exec: Database {
    fn run<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>>;
    fn all<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
    fn optional<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;
    fn stream<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;
    /// Several statements in one text, unprepared (the migrations).
    fn raw<'c>(
        c: &'c mut Self::Connection,
        sql: &'static str,
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>>;
}

impl<DB: Database> Exec for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    fn run<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>> {
        c.execute(q)
    }
    fn all<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        c.fetch_all(q)
    }
    fn optional<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        c.fetch_optional(q)
    }
    fn stream<'c, 'q: 'c>(
        c: &'c mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>> {
        c.fetch(q)
    }
    fn raw<'c>(
        c: &'c mut Self::Connection,
        sql: &'static str,
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>> {
        c.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
    }
}

/// `arg` and the runners on a statement of a `Backend`.
pub trait QueryExt<'q, B: Backend>: Sized {
    /// Binds the next `$N` (sqlx's `bind`).
    fn arg<T>(self, v: T) -> Self
    where
        B: Bind<T>;
    /// Runs it; the rows it changed.
    fn run<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<u64, sqlx::Error>>
    where
        'q: 'c;
    fn all<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<Vec<B::Row>, sqlx::Error>>
    where
        'q: 'c;
    fn optional<'c>(
        self,
        c: &'c mut B::Connection,
    ) -> BoxFuture<'c, Result<Option<B::Row>, sqlx::Error>>
    where
        'q: 'c;
    /// The one row it returns (an error when there is none).
    fn one<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<B::Row, sqlx::Error>>
    where
        'q: 'c;
    fn stream<'c>(self, c: &'c mut B::Connection) -> BoxStream<'c, Result<B::Row, sqlx::Error>>
    where
        'q: 'c;
}

impl<'q, B: Backend> QueryExt<'q, B> for Query<'q, B, B::Arguments> {
    fn arg<T>(self, v: T) -> Self
    where
        B: Bind<T>,
    {
        B::bind_query(self, v)
    }
    fn run<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<u64, sqlx::Error>>
    where
        'q: 'c,
    {
        let f = <B as Exec>::run(c, self);
        Box::pin(async move { f.await.map(|r| B::rows_affected(&r)) })
    }
    fn all<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<Vec<B::Row>, sqlx::Error>>
    where
        'q: 'c,
    {
        <B as Exec>::all(c, self)
    }
    fn optional<'c>(
        self,
        c: &'c mut B::Connection,
    ) -> BoxFuture<'c, Result<Option<B::Row>, sqlx::Error>>
    where
        'q: 'c,
    {
        <B as Exec>::optional(c, self)
    }
    fn one<'c>(self, c: &'c mut B::Connection) -> BoxFuture<'c, Result<B::Row, sqlx::Error>>
    where
        'q: 'c,
    {
        let f = <B as Exec>::optional(c, self);
        Box::pin(async move { f.await?.ok_or(sqlx::Error::RowNotFound) })
    }
    fn stream<'c>(self, c: &'c mut B::Connection) -> BoxStream<'c, Result<B::Row, sqlx::Error>>
    where
        'q: 'c,
    {
        <B as Exec>::stream(c, self)
    }
}

/// `push_arg` on a statement being built (sqlx's `push_bind`).
pub trait PushArg<B: Backend> {
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        B: Bind<T>;
}

impl<B: Backend> PushArg<B> for QueryBuilder<B> {
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        B: Bind<T>,
    {
        B::bind_builder(self, v);
        self
    }
}

impl<B: Backend, S: Display> PushArg<B> for Separated<'_, B, S> {
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        B: Bind<T>,
    {
        B::bind_separated(self, v);
        self
    }
}

/// `col` on a row (sqlx's `try_get` by position).
pub trait Col<B: Backend> {
    fn col<T>(&self, i: usize) -> Result<T, sqlx::Error>
    where
        B: Get<T>;
}

impl<B: Backend<Row = R>, R: sqlx::Row<Database = B>> Col<B> for R {
    fn col<T>(&self, i: usize) -> Result<T, sqlx::Error>
    where
        B: Get<T>,
    {
        B::get(self, i)
    }
}

/// The store on one backend: a pool for reads and the connection(s) writes queue on (the
/// same pool on PostgreSQL; see `sqlite.rs` for why SQLite has its own writer).
pub struct SqlStore<B: Backend> {
    pub(super) pool: Pool<B>,
    pub(super) writer: Pool<B>,
}

/// A write transaction: holds the `sift_state` row lock from `begin` to `commit`.
pub struct SqlTx<B: Backend> {
    pub(super) tx: Transaction<'static, B>,
    pub(super) state: StateRow,
    /// What `commit` writes: see `Written`.
    pub(super) written: Written,
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn begin_locked(&self) -> Result<Transaction<'static, B>, StoreError> {
        Ok(match B::BEGIN_LOCKED {
            Some(sql) => self.writer.begin_with(sql).await?,
            None => self.writer.begin().await?,
        })
    }

    /// A read transaction: one snapshot for all its statements.
    pub(super) async fn begin_snapshot(&self) -> Result<Transaction<'static, B>, StoreError> {
        Ok(match B::BEGIN_SNAPSHOT {
            Some(sql) => self.pool.begin_with(sql).await?,
            None => self.pool.begin().await?,
        })
    }

    /// A connection for a read.
    pub(super) async fn read(&self) -> Result<sqlx::pool::PoolConnection<B>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// A connection for an autocommit write: the writer's (they queue with the write
    /// transactions there rather than retrying on SQLite's busy timeout).
    pub(super) async fn write(&self) -> Result<sqlx::pool::PoolConnection<B>, StoreError> {
        Ok(self.writer.acquire().await?)
    }
}

impl<B: Backend> SqlTx<B> {
    /// The `seq` this transaction stamps on the rows it writes.
    pub(super) fn seq(&self) -> i64 {
        self.state.seq + 1
    }

    pub(super) fn conn(&mut self) -> &mut B::Connection {
        &mut self.tx
    }
}

/// What a write transaction wrote that the shared counters follow: whether the CMDB
/// changed (every CMDB write bumps `cmdb_version`, which tells other daemons to reload
/// their topology) and the highest incident number written (`next_incident` stays above
/// every stored incident's number, so no daemon hands out a number that is taken).
#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) cmdb: bool,
    pub(super) next_incident: i64,
}

impl Written {
    pub(super) fn incident(&mut self, number: u64) {
        self.next_incident = self.next_incident.max(number as i64 + 1);
    }

    /// The counters as this transaction leaves them (`seq` always moves).
    pub(super) fn state_after(&self, before: StateRow) -> StateRow {
        StateRow {
            seq: before.seq + 1,
            cmdb_version: before.cmdb_version + i64::from(self.cmdb),
            next_incident: self.next_incident.max(before.next_incident),
        }
    }
}

/// Whether a connection given back to its pool may be used again. A failed write can leave
/// a connection that still counts itself inside a transaction: SQLite rolls a transaction
/// back by itself on some errors (a full disk among them), and the ROLLBACK sent when the
/// transaction is dropped then fails, so every later BEGIN on that connection would fail
/// too. Such a connection is closed and the pool opens a fresh one. The ping first lets a
/// rollback still queued on the connection run, so a healthy one is never closed.
pub(super) fn reusable<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>>
where
    DB::Connection: sqlx::Connection,
{
    use sqlx::Connection;
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        conn.ping().await?;
        if conn.is_in_transaction() {
            tracing::warn!(
                "a store connection was left inside a failed transaction; opening a new one"
            );
            return Ok(false);
        }
        Ok(true)
    })
}

/// Rows per multi-row INSERT (well under both databases' bind-parameter limits).
pub(super) const CHUNK: usize = 500;

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    doc: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        err: e.to_string(),
    })
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> String {
    // Our own types always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

/// Documents read as the first column of each row.
pub(super) fn decode_docs<B: Backend, T: serde::de::DeserializeOwned>(
    what: &str,
    rows: Vec<B::Row>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| decode(what, &r.col::<String>(0)?))
        .collect()
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        <B as Backend>::NAME
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        super::migrations::migrate(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        B::query("SELECT seq FROM sift_state WHERE id = 1")
            .one(&mut *self.read().await?)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        // The writer first: a write in flight finishes before the readers go.
        self.writer.close().await;
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let mut tx = self.begin_locked().await?;
        let sql = format!(
            "SELECT seq, cmdb_version, next_incident FROM sift_state WHERE id = 1{}",
            B::LOCK_SUFFIX
        );
        let row = B::query(sqlx::AssertSqlSafe(sql)).one(&mut tx).await?;
        let state = StateRow {
            seq: row.col(0)?,
            cmdb_version: row.col(1)?,
            next_incident: row.col(2)?,
        };
        Ok(Box::new(SqlTx {
            tx,
            state,
            written: Written::default(),
        }))
    }
}

#[async_trait]
impl<B: Backend> WriteTx for SqlTx<B> {
    fn state(&self) -> StateRow {
        self.state
    }

    async fn commit(mut self: Box<Self>) -> Result<StateRow, StoreError> {
        let new = self.written.state_after(self.state);
        B::query(
            "UPDATE sift_state SET seq = $1, cmdb_version = $2, next_incident = $3 WHERE id = 1",
        )
        .arg(new.seq)
        .arg(new.cmdb_version)
        .arg(new.next_incident)
        .run(self.conn())
        .await?;
        self.tx.commit().await?;
        Ok(new)
    }
}
