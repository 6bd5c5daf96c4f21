//! The audit trail: every read of a meter's curve by a supplier (who, when, which range).

use serde::{Deserialize, Serialize};

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
}
