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

    /// Whether the groups nest: each IRIS in one commune, each building in one IRIS. The
    /// suppression of aggregates rests on it (a published group minus its published children
    /// is a union of whole parts); without it a commune minus one of its IRIS can be one meter
    /// whose IRIS lies mostly in another commune. The error names both memberships.
    pub fn check_nesting(&self) -> Result<(), String> {
        let mut meters: Vec<&Membership> = self.by_meter.values().collect();
        meters.sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        let mut iris_in: HashMap<&str, &Membership> = HashMap::new();
        let mut building_in: HashMap<&str, &Membership> = HashMap::new();
        for m in meters {
            let first = *iris_in.entry(&m.iris).or_insert(m);
            if first.commune != m.commune {
                return Err(format!(
                    "groups must nest: IRIS {:?} is in commune {:?} (meter {}) and in commune \
                     {:?} (meter {})",
                    m.iris, first.commune, first.meter, m.commune, m.meter
                ));
            }
            if let Some(building) = m.building.as_deref() {
                let first = *building_in.entry(building).or_insert(m);
                if first.iris != m.iris {
                    return Err(format!(
                        "groups must nest: building {building:?} is in IRIS {:?} (meter {}) and \
                         in IRIS {:?} (meter {})",
                        first.iris, first.meter, m.iris, m.meter
                    ));
                }
            }
        }
        Ok(())
    }

    /// The groups at `level`: code to member meters (sorted), codes sorted.
    /// SHA-256 of every membership in meter order (hex): equal on two nodes exactly when they
    /// hold the same registry, so a cluster's nodes can check they group meters alike.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut sorted: Vec<&Membership> = self.by_meter.values().collect();
        sorted.sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        let mut h = sha2::Sha256::new();
        for m in sorted {
            for field in [&m.meter, &m.commune, &m.iris] {
                h.update(field.as_bytes());
                h.update([0]);
            }
            match &m.building {
                Some(b) => {
                    h.update([1]);
                    h.update(b.as_bytes());
                }
                None => h.update([2]),
            }
            h.update([0xff]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

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
    // The header is required, so that a first line of data is never taken for it.
    let header = text.lines().next().unwrap_or_default().trim();
    if !matches!(
        header.replace(' ', "").as_str(),
        "meter_id,commune,iris" | "meter_id,commune,iris,building"
    ) {
        return Err(format!(
            "line 1: expected the header meter_id,commune,iris[,building], not {:?}",
            header.chars().take(80).collect::<String>()
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(meter: &str, commune: &str, iris: &str, building: Option<&str>) -> Membership {
        Membership {
            meter: meter.into(),
            commune: commune.into(),
            iris: iris.into(),
            building: building.map(str::to_string),
        }
    }

    #[test]
    fn groups_nest_when_each_iris_has_one_commune_and_each_building_one_iris() {
        let mut groups = GroupRegistry::default();
        groups.insert(member("a", "X", "P", Some("B1")));
        groups.insert(member("b", "X", "P", Some("B1")));
        groups.insert(member("c", "Z", "Q", None));
        assert_eq!(groups.check_nesting(), Ok(()));
        let mut two_communes = groups.clone();
        two_communes.insert(member("d", "Z", "P", None));
        let error = two_communes.check_nesting().unwrap_err();
        assert!(
            error.contains("IRIS \"P\"") && error.contains("meter d"),
            "{error}"
        );
        let mut two_iris = groups.clone();
        two_iris.insert(member("d", "Z", "Q", Some("B1")));
        let error = two_iris.check_nesting().unwrap_err();
        assert!(error.contains("building \"B1\""), "{error}");
        // A later membership of a meter replaces the earlier: moving every member is nesting.
        groups.insert(member("c", "X", "P", None));
        assert_eq!(groups.check_nesting(), Ok(()));
    }
}
