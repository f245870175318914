//! Grants in the store: what the operator gave each plugin, and every change to it with who made
//! it and when. A grant and its event are written in one transaction.

use super::db::{Dialect, Get, on, writing};
use super::{Store, StoreError, read_time};
use crate::capability::{Grant, GrantId, GrantSpec};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One change to a plugin's grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GrantEvent {
    /// Its sequence number.
    pub id: i64,
    /// The plugin.
    pub plugin: String,
    /// `granted`, `changed` or `revoked`.
    pub action: String,
    /// `http`, `directory`, `config` or `secret`.
    pub kind: String,
    /// The destination, directory name or key.
    pub name: String,
    /// What was granted (a secret's reference, never its value); none for a revocation.
    pub detail: Option<String>,
    /// Who made the change.
    pub actor: String,
    /// When.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
}

fn corrupt(message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "grants",
        message: message.to_string(),
    }
}

/// Records a change to a plugin's grants, in the transaction `$tx` of the change.
macro_rules! event {
    ($tx:expr, $plugin:expr, $action:expr, $id:expr, $detail:expr, $actor:expr, $at_us:expr) => {
        sqlx::query(
            "INSERT INTO grant_events (plugin, action, kind, name, detail, actor, at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($plugin)
        .bind($action)
        .bind(&$id.kind)
        .bind(&$id.name)
        .bind($detail)
        .bind($actor)
        .bind($at_us)
        .execute($tx)
        .await?
    };
}

impl Store {
    /// The grants of `plugin` (every plugin's when none), by plugin, kind and name.
    pub async fn grants(&self, plugin: Option<&str>) -> Result<Vec<(String, Grant)>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT plugin, spec, granted_by, granted_us FROM grants \
             WHERE ($1 IS NULL OR plugin = $1) ORDER BY plugin, kind, name",
        )
        .bind(plugin)
        .fetch_all(pool)
        .await?
        .iter()
            .map(|row| {
                let spec: GrantSpec =
                    serde_json::from_str(&row.col::<String>("spec")?).map_err(corrupt)?;
                Ok((
                    row.col("plugin")?,
                    Grant {
                        spec,
                        granted_by: row.col("granted_by")?,
                        granted_at: read_time("grants", row.col("granted_us")?)?,
                    },
                ))
            })
            .collect())
    }

    /// Writes a grant of `plugin` (replacing one with the same id) and its event. Returns whether
    /// it changed anything (granting the same thing again records nothing). Committed on return.
    pub async fn put_grant(&self, plugin: &str, grant: &Grant) -> Result<bool, StoreError> {
        let id = grant.spec.id();
        let spec = serde_json::to_string(&grant.spec).map_err(corrupt)?;
        let mut turn = self.write_turn().await?;
        writing!(&mut turn, conn, DB => {
        let mut tx = conn.begin_with(<DB as Dialect>::BEGIN_WRITE).await?;
        let before: Option<String> = sqlx::query_scalar(
            "SELECT spec FROM grants WHERE plugin = $1 AND kind = $2 AND name = $3",
        )
        .bind(plugin)
        .bind(&id.kind)
        .bind(&id.name)
        .fetch_optional(&mut *tx)
        .await?;
        if before.as_deref() == Some(spec.as_str()) {
            return Ok(false);
        }
        let at = grant.granted_at.timestamp_micros();
        sqlx::query(
            "INSERT INTO grants (plugin, kind, name, spec, granted_by, granted_us) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (plugin, kind, name) DO UPDATE SET spec = excluded.spec, \
             granted_by = excluded.granted_by, granted_us = excluded.granted_us",
        )
        .bind(plugin)
        .bind(&id.kind)
        .bind(&id.name)
        .bind(&spec)
        .bind(&grant.granted_by)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let action = if before.is_some() {
            "changed"
        } else {
            "granted"
        };
        event!(
            &mut *tx,
            plugin,
            action,
            &id,
            grant.spec.shown(),
            &grant.granted_by,
            at
        );
        tx.commit().await?;
        Ok(true)
        })
    }

    /// Removes a grant of `plugin` and records who did. Returns whether there was one. Committed
    /// on return.
    pub async fn revoke_grant(
        &self,
        plugin: &str,
        id: &GrantId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        writing!(&mut turn, conn, DB => {
        let mut tx = conn.begin_with(<DB as Dialect>::BEGIN_WRITE).await?;
        let done = sqlx::query("DELETE FROM grants WHERE plugin = $1 AND kind = $2 AND name = $3")
            .bind(plugin)
            .bind(&id.kind)
            .bind(&id.name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        event!(
            &mut *tx,
            plugin,
            "revoked",
            id,
            None::<String>,
            actor,
            at.timestamp_micros()
        );
        tx.commit().await?;
        Ok(true)
        })
    }

    /// The latest changes to the grants of `plugin` (every plugin's when none), newest first.
    pub async fn grant_events(
        &self,
        plugin: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantEvent>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, plugin, action, kind, name, detail, actor, at_us FROM grant_events \
             WHERE ($1 IS NULL OR plugin = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(plugin)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
            .map(|row| {
                Ok(GrantEvent {
                    id: row.col("id")?,
                    plugin: row.col("plugin")?,
                    action: row.col("action")?,
                    kind: row.col("kind")?,
                    name: row.col("name")?,
                    detail: row.col("detail")?,
                    actor: row.col("actor")?,
                    at: read_time("grant_events", row.col("at_us")?)?,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;

    fn grant(json: &str, by: &str) -> Grant {
        Grant {
            spec: serde_json::from_str(json).unwrap(),
            granted_by: by.into(),
            granted_at: Utc::now(),
        }
    }

    on_both! {
    #[tokio::test]
    async fn grants_are_kept_with_their_history(db) {
        let http = grant(
            r#"{"kind":"http","destination":"https://api.example.com"}"#,
            "alice",
        );
        let secret = grant(
            r#"{"kind":"secret","key":"api_key","reference":"env:KEY"}"#,
            "bob",
        );
        assert!(db.put_grant("cp", &http).await.unwrap());
        assert!(
            !db.put_grant("cp", &http).await.unwrap(),
            "the same grant again changes nothing"
        );
        assert!(db.put_grant("cp", &secret).await.unwrap());
        let moved = grant(
            r#"{"kind":"secret","key":"api_key","reference":"file:/run/key"}"#,
            "carol",
        );
        assert!(db.put_grant("cp", &moved).await.unwrap());
        db.put_grant("other", &http).await.unwrap();
        let cp = db.grants(Some("cp")).await.unwrap();
        assert_eq!(cp.len(), 2);
        assert_eq!(cp[1].1.spec, moved.spec);
        assert_eq!(db.grants(None).await.unwrap().len(), 3);
        assert!(
            db.revoke_grant("cp", &http.spec.id(), "dave", Utc::now())
                .await
                .unwrap()
        );
        assert!(
            !db.revoke_grant("cp", &http.spec.id(), "dave", Utc::now())
                .await
                .unwrap()
        );
        let events = db.grant_events(Some("cp"), 10).await.unwrap();
        let seen: Vec<(&str, &str, Option<&str>)> = events
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.detail.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("revoked", "dave", None),
                ("changed", "carol", Some("file:/run/key")),
                ("granted", "bob", Some("env:KEY")),
                ("granted", "alice", None),
            ]
        );
    }
    }
}
