//! Grants to third parties (suppliers): access to one meter's data of the kinds the consumer
//! chose (Code de la consommation D.224-27 3°: daily indexes and energy, daily maximum power,
//! the load curve) for a validity period of at most three years, created and revoked by
//! operators.
//!
//! A grant's `[from_utc, to_utc)` is both when it is in force and the instants of data it
//! covers. The kinds a supplier may read at an instant are the union of the kinds of its grants
//! in force now whose period holds that instant; a question needs its kind at every instant of
//! its range ([`GrantRegistry::covers`]).

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest validity of a grant: three years of 366 days.
pub const MAX_GRANT_S: i64 = 3 * 366 * 86_400;

/// A kind of data a grant may allow (D.224-27 3°).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataKind {
    /// Daily indexes per register and daily energy (whole Europe/Paris days).
    Daily,
    /// Daily maximum power (the `max_power` channel).
    MaxPower,
    /// The load curve, and whatever is finer than whole Paris days.
    Curve,
}

impl DataKind {
    pub const ALL: [DataKind; 3] = [DataKind::Daily, DataKind::MaxPower, DataKind::Curve];

    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Daily => "daily",
            DataKind::MaxPower => "max_power",
            DataKind::Curve => "curve",
        }
    }

    pub fn parse(text: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    const fn bit(self) -> u8 {
        match self {
            DataKind::Daily => 1,
            DataKind::MaxPower => 2,
            DataKind::Curve => 4,
        }
    }
}

/// A set of [`DataKind`]s. A grant's is never empty; it is written as a JSON list of names in
/// the order of [`DataKind::ALL`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Kinds(u8);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    pub const ALL: Kinds = Kinds(7);

    /// What a grant recorded before grants had kinds allows: every kind, which is what such a
    /// grant allowed when it was recorded (kinds did not restrict anything then).
    pub const LEGACY: Kinds = Kinds::ALL;

    pub const fn of(kind: DataKind) -> Kinds {
        Kinds(kind.bit())
    }

    pub fn contains(self, kind: DataKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn with(self, kind: DataKind) -> Kinds {
        Kinds(self.0 | kind.bit())
    }

    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = DataKind> {
        DataKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// The names, comma-separated (`daily,max_power`).
    pub fn names(self) -> String {
        self.iter()
            .map(DataKind::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a list of kind names: refused, naming the fault, when it is empty, names an
    /// unknown kind or names one twice.
    pub fn parse_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Kinds, String> {
        let mut kinds = Kinds::NONE;
        for name in names {
            let kind = DataKind::parse(name).ok_or_else(|| {
                format!("unknown kind {name:?} in `kinds` (daily, max_power or curve)")
            })?;
            if kinds.contains(kind) {
                return Err(format!("kind {name:?} is given twice in `kinds`"));
            }
            kinds = kinds.with(kind);
        }
        if kinds.is_empty() {
            return Err("`kinds` is empty: give at least one of daily, max_power, curve".into());
        }
        Ok(kinds)
    }
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kinds[{}]", self.names())
    }
}

impl Serialize for Kinds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(DataKind::as_str))
    }
}

impl<'de> Deserialize<'de> for Kinds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kinds, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Kinds::parse_list(names.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

fn legacy_kinds() -> Kinds {
    Kinds::LEGACY
}

/// A change of the grant registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrantEvent {
    Created(Grant),
    Revoked { id: u64, at_utc: i64, by: String },
}

/// Access of `supplier` to `meter`'s data of `kinds` over `[from_utc, to_utc)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: u64,
    pub meter: String,
    pub supplier: String,
    pub from_utc: i64,
    pub to_utc: i64,
    /// What it allows. A record written before grants had kinds has none and reads as
    /// [`Kinds::LEGACY`] (every kind): what it allowed when it was recorded.
    #[serde(default = "legacy_kinds")]
    pub kinds: Kinds,
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

impl GrantRegistry {
    /// Whether `supplier`'s grants on `meter` in force at `now_utc` that allow `kind` together
    /// hold every instant of `[from, to)` (the union of their periods; one grant need not hold
    /// it all). An empty range is held by nothing.
    pub fn covers(
        &self,
        supplier: &str,
        meter: &str,
        now_utc: i64,
        kind: DataKind,
        range: (i64, i64),
    ) -> bool {
        self.covers_any(supplier, meter, now_utc, Kinds::of(kind), range)
    }

    /// [`GrantRegistry::covers`] where a grant allowing any one of `kinds` holds an instant.
    pub fn covers_any(
        &self,
        supplier: &str,
        meter: &str,
        now_utc: i64,
        kinds: Kinds,
        (from, to): (i64, i64),
    ) -> bool {
        if from >= to {
            return false;
        }
        // Most often one grant holds the whole range.
        if self
            .in_force(supplier, meter, now_utc)
            .any(|g| g.kinds.0 & kinds.0 != 0 && g.from_utc <= from && to <= g.to_utc)
        {
            return true;
        }
        let mut spans: Vec<(i64, i64)> = self
            .in_force(supplier, meter, now_utc)
            .filter(|g| g.kinds.0 & kinds.0 != 0 && g.from_utc < to && from < g.to_utc)
            .map(|g| (g.from_utc, g.to_utc))
            .collect();
        spans.sort_unstable();
        let mut held_to = from;
        for (start, end) in spans {
            if start > held_to {
                return false;
            }
            held_to = held_to.max(end);
            if held_to >= to {
                return true;
            }
        }
        false
    }

    /// The kinds of `supplier`'s grants on `meter` in force at `now_utc`, whatever their periods.
    pub fn kinds_in_force(&self, supplier: &str, meter: &str, now_utc: i64) -> Kinds {
        self.in_force(supplier, meter, now_utc)
            .fold(Kinds::NONE, |k, g| k.union(g.kinds))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grant(id: u64, supplier: &str, (from, to): (i64, i64), kinds: Kinds) -> Grant {
        Grant {
            id,
            meter: "m".into(),
            supplier: supplier.into(),
            from_utc: from,
            to_utc: to,
            kinds,
            created_utc: 0,
            by: "operator".into(),
            revoked_utc: None,
        }
    }

    #[test]
    fn a_grant_record_written_before_kinds_reads_as_every_kind() {
        let old = r#"{"kind":"created","id":3,"meter":"m","supplier":"acme","from_utc":0,
            "to_utc":10,"created_utc":0,"by":"operator:ops","revoked_utc":null}"#;
        let GrantEvent::Created(g) = serde_json::from_str(old).unwrap() else {
            panic!("not a creation")
        };
        assert_eq!(g.kinds, Kinds::ALL);
        // A new record names its kinds, in one order.
        let new = GrantEvent::Created(grant(
            4,
            "acme",
            (0, 10),
            Kinds::of(DataKind::Curve).with(DataKind::Daily),
        ));
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""kinds":["daily","curve"]"#), "{text}");
        assert_eq!(serde_json::from_str::<GrantEvent>(&text).unwrap(), new);
    }

    #[test]
    fn a_kinds_list_that_is_empty_unknown_or_repeated_is_refused_naming_it() {
        assert_eq!(
            Kinds::parse_list(["max_power", "daily"]),
            Ok(Kinds::of(DataKind::Daily).with(DataKind::MaxPower))
        );
        for (list, names) in [
            (vec![], "empty"),
            (vec!["daily", "weekly"], "\"weekly\""),
            (vec!["curve", "curve"], "\"curve\" is given twice"),
            (vec!["CURVE"], "\"CURVE\""),
            (vec![""], "\"\""),
        ] {
            let why = Kinds::parse_list(list.iter().copied()).unwrap_err();
            assert!(why.contains(names), "{list:?}: {why}");
        }
        // A record is read by the same rule: a registry never holds a grant of nothing.
        let empty = r#"{"kind":"created","id":1,"meter":"m","supplier":"a","from_utc":0,
            "to_utc":1,"kinds":[],"created_utc":0,"by":"o"}"#;
        assert!(serde_json::from_str::<GrantEvent>(empty).is_err());
    }

    /// Whether every second of `[from, to)` is inside some grant of `kind` in force at `now`.
    fn naive_covers(grants: &[Grant], now: i64, kind: DataKind, (from, to): (i64, i64)) -> bool {
        from < to
            && (from..to).all(|t| {
                grants.iter().any(|g| {
                    g.in_force(now) && g.kinds.contains(kind) && g.from_utc <= t && t < g.to_utc
                })
            })
    }

    proptest! {
        #[test]
        fn a_range_is_covered_when_each_instant_is_in_a_grant_of_the_kind_in_force(
            spans in proptest::collection::vec((0i64..60, 1i64..40, 1u8..8, any::<bool>()), 0..6),
            now in 0i64..100,
            from in 0i64..100,
            len in 0i64..50,
            kind in 0usize..3,
        ) {
            let kind = DataKind::ALL[kind];
            let mut registry = GrantRegistry::default();
            let mut grants = Vec::new();
            for (i, (start, length, bits, revoked)) in spans.into_iter().enumerate() {
                let mut g = grant(i as u64 + 1, "acme", (start, start + length), Kinds(bits));
                registry.apply(GrantEvent::Created(g.clone()));
                if revoked {
                    registry.apply(GrantEvent::Revoked { id: g.id, at_utc: now, by: "o".into() });
                    g.revoked_utc = Some(now);
                }
                grants.push(g);
            }
            // Another supplier's grant of everything never counts.
            registry.apply(GrantEvent::Created(grant(99, "other", (0, 200), Kinds::ALL)));
            let range = (from, from + len);
            prop_assert_eq!(
                registry.covers("acme", "m", now, kind, range),
                naive_covers(&grants, now, kind, range)
            );
        }
    }
}
