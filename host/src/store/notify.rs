//! Announcements between hosts on one PostgreSQL store (LISTEN/NOTIFY on one channel): a
//! schedule changed (with its next fire time, so a host that would look later looks then), or
//! runs were let go for another host to take. They only save waiting: a host that misses one
//! (a pooler in transaction mode, a lost connection) still sees the change at its next look.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;

use super::db::Db;
use super::{Store, StoreError};

/// The channel the hosts announce on.
const CHANNEL: &str = "schedulezero";

/// What a host announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// Schedules were created, changed or resumed; the soonest of their next fire times, when
    /// known.
    Due(Option<DateTime<Utc>>),
    /// Runs were let go (or recorded for whichever host can run them): take them over.
    Orphans,
    /// Something was announced that this version does not know, or announcements may have been
    /// missed (the connection was lost): look at the store.
    Look,
}

impl Announcement {
    fn payload(self) -> String {
        match self {
            Self::Due(Some(t)) => format!("due:{}", t.timestamp_micros()),
            Self::Due(None) => "due".into(),
            Self::Orphans => "orphans".into(),
            Self::Look => "look".into(),
        }
    }

    fn parse(payload: &str) -> Self {
        match payload.split_once(':') {
            Some(("due", us)) => us
                .parse()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .map_or(Self::Look, |t| Self::Due(Some(t))),
            _ => match payload {
                "due" => Self::Due(None),
                "orphans" => Self::Orphans,
                _ => Self::Look,
            },
        }
    }
}

/// A host's ear on the announcements.
pub struct Listener(PgListener);

impl Listener {
    /// The next announcement. After a lost connection (made again on the next call) it is
    /// [`Announcement::Look`]: what was said meanwhile was not heard.
    pub async fn next(&mut self) -> Result<Announcement, StoreError> {
        Ok(match self.0.try_recv().await? {
            Some(n) => Announcement::parse(n.payload()),
            None => Announcement::Look,
        })
    }
}

impl Store {
    /// Tells the other hosts on a shared store (nothing to tell on SQLite). Best effort: a
    /// failure is logged, and the others see the change at their next look.
    pub async fn announce(&self, what: Announcement) {
        let Db::Postgres(pool) = &self.db else {
            return;
        };
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(what.payload())
            .execute(pool)
            .await
        {
            tracing::debug!(error = %e, "cannot announce to the other hosts");
        }
    }

    /// Listens for the other hosts' announcements (a connection of its own); `None` on SQLite.
    pub async fn listen(&self) -> Result<Option<Listener>, StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Listener(listener)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_as_said() {
        let t = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        for a in [
            Announcement::Due(Some(t)),
            Announcement::Due(None),
            Announcement::Orphans,
            Announcement::Look,
        ] {
            assert_eq!(Announcement::parse(&a.payload()), a);
        }
        assert_eq!(Announcement::parse("due:x"), Announcement::Look);
        assert_eq!(Announcement::parse("something new"), Announcement::Look);
    }
}
