//! Instants on the wire: ISO 8601 in UTC with a `+00:00` offset, to the microsecond when there
//! are any (`2026-11-30T08:00:00+00:00`, `2026-11-30T08:00:00.250+00:00`). Every time the API
//! answers goes through here; any RFC 3339 offset is read back.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// An instant as the API writes it.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// `#[serde(with = "crate::time::rfc3339")]` for a `DateTime<Utc>`.
pub mod rfc3339 {
    use super::*;

    /// Writes it.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// `#[serde(with = "crate::time::rfc3339_opt")]` for an `Option<DateTime<Utc>>`.
pub mod rfc3339_opt {
    use super::*;

    /// Writes it (`null` for none).
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}
