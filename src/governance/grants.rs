//! Grants to third parties (suppliers): access to one meter's data for a validity period of at
//! most three years, created and revoked by operators.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Longest validity of a grant: three years of 366 days.
pub const MAX_GRANT_S: i64 = 3 * 366 * 86_400;

/// A change of the grant registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrantEvent {
    Created(Grant),
    Revoked { id: u64, at_utc: i64, by: String },
}

/// Access of `supplier` to `meter` over `[from_utc, to_utc)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: u64,
    pub meter: String,
    pub supplier: String,
    pub from_utc: i64,
    pub to_utc: i64,
    pub created_utc: i64,
    pub by: String,
    /// When it was revoked; a revoked grant is out of force from then on.
    #[serde(default)]
    pub revoked_utc: Option<i64>,
}

impl Grant {
    /// Whether the grant is in force at `now_utc`.
    pub fn in_force(&self, now_utc: i64) -> bool {
        self.from_utc <= now_utc
            && now_utc < self.to_utc
            && self.revoked_utc.is_none_or(|r| now_utc < r)
    }
}

/// Every grant, indexed by meter (creation order within a meter) and by id.
#[derive(Clone, Debug, Default)]
pub struct GrantRegistry {
    by_meter: HashMap<String, Vec<Grant>>,
    meter_of: HashMap<u64, String>,
    max_id: u64,
}

impl GrantRegistry {
    pub fn apply(&mut self, event: GrantEvent) {
        match event {
            GrantEvent::Created(g) => {
                self.max_id = self.max_id.max(g.id);
                self.meter_of.insert(g.id, g.meter.clone());
                self.by_meter.entry(g.meter.clone()).or_default().push(g);
            }
            GrantEvent::Revoked { id, at_utc, .. } => {
                if let Some(g) = self.get_mut(id) {
                    g.revoked_utc.get_or_insert(at_utc);
                }
            }
        }
    }

    pub fn next_id(&self) -> u64 {
        self.max_id + 1
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Grant> {
        let meter = self.meter_of.get(&id)?;
        self.by_meter
            .get_mut(meter)?
            .iter_mut()
            .find(|g| g.id == id)
    }

    pub fn get(&self, id: u64) -> Option<&Grant> {
        let meter = self.meter_of.get(&id)?;
        self.by_meter.get(meter)?.iter().find(|g| g.id == id)
    }

    /// The grants of `meter`, revoked and expired ones included.
    pub fn of_meter<'a>(&'a self, meter: &str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.by_meter.get(meter).into_iter().flatten()
    }

    /// The grants of `supplier` on `meter` in force at `now_utc`.
    pub fn in_force<'a>(
        &'a self,
        supplier: &'a str,
        meter: &str,
        now_utc: i64,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        self.of_meter(meter)
            .filter(move |g| g.supplier == supplier && g.in_force(now_utc))
    }
}

/// Checks a grant's period: non-empty and at most [`MAX_GRANT_S`].
pub fn check_period(from_utc: i64, to_utc: i64) -> Result<(), String> {
    if from_utc >= to_utc {
        return Err("a grant's `from` must be before its `to`".into());
    }
    if to_utc - from_utc > MAX_GRANT_S {
        return Err("a grant lasts at most three years".into());
    }
    Ok(())
}
