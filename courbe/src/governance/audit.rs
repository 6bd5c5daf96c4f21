//! The audit trail: every read of a meter's data by a supplier (who, when, which range, which
//! kinds of data the answer could draw on).

use serde::{Deserialize, Serialize};

use super::grants::Kinds;

/// One read of a curve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Role and subject of the reader, e.g. `supplier:acme` (never a token).
    pub who: String,
    pub at_utc: i64,
    pub meter: String,
    pub from_utc: i64,
    pub to_utc: i64,
    /// The endpoint read, as its route template.
    pub what: String,
    /// The kinds of data the access rule let the answer draw on (none for a consent read;
    /// absent from records written before grants had kinds).
    #[serde(default, skip_serializing_if = "Kinds::is_empty")]
    pub kinds: Kinds,
}
