//! Handlers in the store: what the host can run jobs on. WebAssembly plugins are written from the
//! plugins folder at start; remote handlers are written when they register, and read back at
//! start so a restarted host still knows them.

use super::db::{Db, Get, on, writing};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, read_time};

/// What kind of handler a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// A WebAssembly component from the plugins folder.
    Wasm,
    /// A native process reached over ZeroMQ.
    Remote,
}

impl HandlerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Wasm => "wasm",
            Self::Remote => "remote",
        }
    }
}

/// A handler as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerRecord {
    /// Its id: a plugin's name, or the id a remote handler registered with.
    pub id: String,
    /// Plugin or remote.
    pub kind: HandlerKind,
    /// A plugin's file, or a remote handler's endpoint.
    pub address: Option<String>,
    /// The version it reports.
    pub version: Option<String>,
    /// The methods it exposes.
    pub methods: Vec<String>,
    /// `available` or `missing` for plugins; the remote status for remote handlers.
    pub status: String,
    /// When it was first recorded.
    pub registered_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn read(row: &impl Get) -> Result<HandlerRecord, StoreError> {
    let kind = match row.col::<String>("kind")?.as_str() {
        "wasm" => HandlerKind::Wasm,
        "remote" => HandlerKind::Remote,
        other => {
            return Err(StoreError::Corrupt {
                table: "handlers",
                message: format!("unknown kind `{other}`"),
            });
        }
    };
    Ok(HandlerRecord {
        id: row.col("id")?,
        kind,
        address: row.col("address")?,
        version: row.col("version")?,
        methods: serde_json::from_str(&row.col::<String>("methods")?).map_err(|e| {
            StoreError::Corrupt {
                table: "handlers",
                message: e.to_string(),
            }
        })?,
        status: row.col("status")?,
        registered_at: read_time("handlers", row.col("registered_us")?)?,
        updated_at: read_time("handlers", row.col("updated_us")?)?,
    })
}

impl Store {
    /// Records a handler, keeping its first registration time when it was known. Committed on
    /// return.
    pub async fn upsert_handler(&self, h: &HandlerRecord) -> Result<(), StoreError> {
        let mut turn = self.write_turn().await?;
        let methods = serde_json::to_string(&h.methods).map_err(|e| StoreError::Corrupt {
            table: "handlers",
            message: e.to_string(),
        })?;
        writing!(&mut turn, conn => sqlx::query(
            "INSERT INTO handlers (id, kind, address, version, methods, status, registered_us, updated_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, address = excluded.address, \
             version = excluded.version, methods = excluded.methods, status = excluded.status, \
             updated_us = excluded.updated_us",
        )
        .bind(&h.id)
        .bind(h.kind.as_str())
        .bind(h.address.as_deref())
        .bind(h.version.as_deref())
        .bind(methods)
        .bind(&h.status)
        .bind(h.registered_at.timestamp_micros())
        .bind(h.updated_at.timestamp_micros())
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Forgets a remote handler. Returns whether one was recorded. Committed on return.
    pub async fn delete_remote_handler(&self, id: &str) -> Result<bool, StoreError> {
        let mut turn = self.write_turn().await?;
        let done = writing!(&mut turn, conn => sqlx::query(
            "DELETE FROM handlers WHERE id = $1 AND kind = 'remote'",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// Every handler recorded, by id.
    pub async fn handlers(&self) -> Result<Vec<HandlerRecord>, StoreError> {
        on!(&self.db, pool => sqlx::query(
            "SELECT id, kind, address, version, methods, status, registered_us, updated_us FROM handlers ORDER BY id",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(read)
        .collect())
    }

    /// Marks the plugins recorded but not in `present` as missing. Returns how many changed.
    pub async fn mark_missing_plugins(
        &self,
        present: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if self.is_shared() {
            // Hosts on a shared store may have different plugins: one host's folder does not
            // say what is missing (the nodes list says which host has which).
            return Ok(0);
        }
        let mut turn = self.write_turn().await?;
        let present = serde_json::to_string(present).unwrap_or_else(|_| "[]".into());
        let sql = match self.db {
            Db::Sqlite(_) => {
                "UPDATE handlers SET status = 'missing', updated_us = $1 WHERE kind = 'wasm' \
                 AND status <> 'missing' AND id NOT IN (SELECT value FROM json_each($2))"
            }
            Db::Postgres(_) => {
                "UPDATE handlers SET status = 'missing', updated_us = $1 WHERE kind = 'wasm' \
                 AND status <> 'missing' AND id NOT IN (SELECT jsonb_array_elements_text($2::jsonb))"
            }
        };
        Ok(writing!(&mut turn, conn => sqlx::query(sql)
            .bind(now.timestamp_micros())
            .bind(present)
            .execute(&mut *conn)
            .await?
            .rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;

    on_both! {
    #[tokio::test]
    async fn handlers_are_upserted_and_marked_missing(db) {
        let t0 = Utc::now();
        let record = |id: &str, at| HandlerRecord {
            id: id.into(),
            kind: HandlerKind::Wasm,
            address: Some(format!("/plugins/{id}.wasm")),
            version: Some("1.0.0".into()),
            methods: vec!["ping".into()],
            status: "available".into(),
            registered_at: at,
            updated_at: at,
        };
        db.upsert_handler(&record("a", t0)).await.unwrap();
        db.upsert_handler(&record("b", t0)).await.unwrap();
        let later = t0 + chrono::TimeDelta::seconds(5);
        db.upsert_handler(&record("a", later)).await.unwrap();
        // One host's folder says what is missing only when the host is alone on its store.
        let marked = u64::from(!db.is_shared());
        assert_eq!(
            db.mark_missing_plugins(&["a".into()], later).await.unwrap(),
            marked
        );
        let all = db.handlers().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].registered_at.timestamp_micros(),
            t0.timestamp_micros(),
            "first registration kept"
        );
        let b = if db.is_shared() { "available" } else { "missing" };
        assert_eq!(all[1].status, b);
    }
    }
}
