//! Group memberships: each meter's commune, IRIS code and building, loaded by operators.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::auth::Level;

/// Where a meter lies. A later membership of a meter replaces the earlier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub meter: String,
    /// INSEE code of the commune.
    pub commune: String,
    /// INSEE IRIS code (a sub-commune statistical area).
    pub iris: String,
    /// A building identifier; `None` for an individual house not grouped by building.
    pub building: Option<String>,
}

impl Membership {
    /// The group of this meter at `level` (`All` is the empty code).
    pub fn code(&self, level: Level) -> Option<&str> {
        match level {
            Level::All => Some(""),
            Level::Commune => Some(&self.commune),
            Level::Iris => Some(&self.iris),
            Level::Building => self.building.as_deref(),
        }
    }
}

/// Every meter's membership.
#[derive(Clone, Debug, Default)]
pub struct GroupRegistry {
    by_meter: HashMap<String, Membership>,
}

impl GroupRegistry {
    pub fn insert(&mut self, m: Membership) {
        self.by_meter.insert(m.meter.clone(), m);
    }

    pub fn get(&self, meter: &str) -> Option<&Membership> {
        self.by_meter.get(meter)
    }

    pub fn len(&self) -> usize {
        self.by_meter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_meter.is_empty()
    }

    /// The groups at `level`: code to member meters (sorted), codes sorted.
    pub fn groups(&self, level: Level) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for m in self.by_meter.values() {
            if let Some(code) = m.code(level) {
                out.entry(code.to_string())
                    .or_default()
                    .push(m.meter.clone());
            }
        }
        for members in out.values_mut() {
            members.sort_unstable();
        }
        out
    }
}

/// Reads memberships from CSV `meter_id,commune,iris[,building]` with a header line.
pub fn parse_csv(text: &str) -> Result<Vec<Membership>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (meter, commune, iris, building) = match fields.as_slice() {
            [m, c, r] => (*m, *c, *r, None),
            [m, c, r, b] => (*m, *c, *r, (!b.is_empty()).then(|| b.to_string())),
            _ => {
                return Err(format!(
                    "line {n}: expected meter_id,commune,iris[,building]"
                ))
            }
        };
        if !crate::engine::valid_meter_id(meter) {
            return Err(format!("line {n}: {meter:?} is not a meter id"));
        }
        if commune.is_empty() || iris.is_empty() {
            return Err(format!("line {n}: commune and iris are required"));
        }
        out.push(Membership {
            meter: meter.to_string(),
            commune: commune.to_string(),
            iris: iris.to_string(),
            building,
        });
    }
    Ok(out)
}
