//! The schema: the embedded migrations (`migrations/sqlite/` and `migrations/postgres/`,
//! one file per version in each) and applying those a store lacks.
//!
//! A store written by a newer sift is refused, never changed. A migration that moves data
//! does it here in Rust (not with the databases' JSON functions), so anything sift wrote
//! can be read back.

use chrono::Utc;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, ms};

/// Embedded migrations: (version, name, SQLite text, PostgreSQL text).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "changes",
        include_str!("../../migrations/sqlite/0002_changes.sql"),
        include_str!("../../migrations/postgres/0002_changes.sql"),
    ),
    (
        3,
        "problems",
        include_str!("../../migrations/sqlite/0003_problems.sql"),
        include_str!("../../migrations/postgres/0003_problems.sql"),
    ),
    (
        4,
        "outbox",
        include_str!("../../migrations/sqlite/0004_outbox.sql"),
        include_str!("../../migrations/postgres/0004_outbox.sql"),
    ),
    (
        5,
        "incident_alerts",
        include_str!("../../migrations/sqlite/0005_incident_alerts.sql"),
        include_str!("../../migrations/postgres/0005_incident_alerts.sql"),
    ),
    (
        6,
        "alert_journal",
        include_str!("../../migrations/sqlite/0006_alert_journal.sql"),
        include_str!("../../migrations/postgres/0006_alert_journal.sql"),
    ),
    (
        7,
        "append_keys",
        include_str!("../../migrations/sqlite/0007_append_keys.sql"),
        include_str!("../../migrations/postgres/0007_append_keys.sql"),
    ),
    (
        8,
        "feedback",
        include_str!("../../migrations/sqlite/0008_feedback.sql"),
        include_str!("../../migrations/postgres/0008_feedback.sql"),
    ),
    (
        9,
        "causality",
        include_str!("../../migrations/sqlite/0009_causality.sql"),
        include_str!("../../migrations/postgres/0009_causality.sql"),
    ),
];

/// Applies the migrations `store` lacks, in one transaction under the write lock.
pub(super) async fn migrate<B: Backend>(store: &SqlStore<B>) -> Result<(), StoreError> {
    let mut tx = store.begin_locked().await?;
    if let Some(sql) = B::MIGRATION_LOCK {
        B::query(sql).run(&mut *tx).await?;
    }
    B::query(
        "CREATE TABLE IF NOT EXISTS sift_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .run(&mut *tx)
    .await?;
    let done: Vec<i64> = B::query("SELECT version FROM sift_migrations")
        .all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.col::<i64>(0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
        return Err(StoreError::Migration {
            version: newer,
            err: format!(
                "the store has schema version {newer}, written by a newer sift; this \
                 binary knows up to {known} and would damage it: upgrade this daemon"
            ),
        });
    }
    for (version, name, lite, pg) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let text = if B::POSTGRES { *pg } else { *lite };
        B::raw(&mut tx, text)
            .await
            .map_err(|e| StoreError::Migration {
                version: *version,
                err: e.to_string(),
            })?;
        if *version == 5 {
            move_members_out_of_docs::<B>(&mut tx)
                .await
                .map_err(|e| StoreError::Migration {
                    version: 5,
                    err: e.to_string(),
                })?;
        }
        B::query("INSERT INTO sift_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .arg(*version)
            .arg(*name)
            .arg(ms(Utc::now()))
            .run(&mut *tx)
            .await?;
        tracing::info!(
            version,
            name,
            backend = <B as Backend>::NAME,
            "applied migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Schema v5: incidents stored before it keep their member list in the document; each
/// list becomes `incident_alerts` rows and the document is rewritten without it. Done in
/// Rust with serde (not with the databases' JSON functions), so any document sift wrote
/// can be read back, and in pages so memory stays bounded on a large store.
async fn move_members_out_of_docs<B: Backend>(conn: &mut B::Connection) -> Result<(), StoreError> {
    let mut after: i64 = -1;
    loop {
        let page: Vec<(i64, String, String)> = B::query(
            "SELECT number, id, doc FROM incidents WHERE number > $1 ORDER BY number LIMIT 1000",
        )
        .arg(after)
        .all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.col(0)?, r.col(1)?, r.col(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (_, id, doc) in page {
            let mut v: serde_json::Value =
                serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt {
                    what: format!("incident {id}"),
                    err: e.to_string(),
                })?;
            let Some(list) = v
                .as_object_mut()
                .and_then(|m| m.remove("alert_fingerprints"))
            else {
                continue;
            };
            let fps: Vec<String> = list
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for (pos, chunk) in fps.chunks(CHUNK).enumerate() {
                let mut qb = QueryBuilder::<B>::new(
                    "INSERT INTO incident_alerts (incident_id, fingerprint, pos) ",
                );
                qb.push_values(chunk.iter().enumerate(), |mut b, (k, f)| {
                    b.push_arg(id.clone())
                        .push_arg(f.clone())
                        .push_arg((pos * CHUNK + k) as i64);
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().run(&mut *conn).await?;
            }
            B::query("UPDATE incidents SET doc = $1 WHERE id = $2")
                .arg(v.to_string())
                .arg(id)
                .run(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
