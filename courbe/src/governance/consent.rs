//! Consent to load-curve collection, per meter, with its history.
//!
//! A meter's consent is a list of decisions in the order recorded, each covering the instants
//! from its `from_utc` on: collection granted (with the step the consumer chose) or revoked.
//! **The latest recorded decision wins for the instants it covers**: the state at `t` is the most
//! recently recorded event with `from_utc <= t`, whatever the instants of earlier events (a
//! revocation from `-infinity` recorded after a grant from 2024 revokes everything). A meter with
//! no event covering `t` is collected: the consent was given before Courbe held the registry (the
//! store's historical behaviour); a registry can flip that with [`ConsentPolicy::required`].
//!
//! [`ConsentRegistry::screen`] is what every ingest path applies (through
//! `Governance::ingest`) before `Store::ingest`: curve points (`consumption`, `production`) of a
//! meter whose collection is revoked now, or at the point's instant, or finer than the chosen
//! step, are dropped and counted (so a re-sent old batch cannot repopulate a revoked curve);
//! `max_power` is always kept.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::engine::Batch;

/// Whether load-curve collection is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Granted,
    Revoked,
}

/// One change of a meter's consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub meter: String,
    /// From this instant on (UTC seconds).
    pub from_utc: i64,
    pub collection: Collection,
    /// The step the consumer chose; curve points with a finer step are refused.
    pub step_min: Option<u16>,
    /// Whether the revocation came with erasure of what was collected.
    pub erase: bool,
    /// When the registry recorded it (UTC seconds).
    pub recorded_utc: i64,
    /// Who recorded it (role and subject, never a token).
    pub by: String,
}

/// What an absent registry entry means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// Refuse the curve of meters with no consent event at all.
    pub required: bool,
}

/// Every meter's consent history, in memory; the durable copy is the registry file.
#[derive(Clone, Debug, Default)]
pub struct ConsentRegistry {
    policy: ConsentPolicy,
    /// Per meter, events in recording order.
    by_meter: HashMap<String, Vec<ConsentEvent>>,
}

/// Why a curve point was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Collection revoked (or never granted under a consent-required policy).
    NoConsent,
    /// A step finer than the one the consumer chose.
    FinerStep,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoConsent => "no_consent",
            Refusal::FinerStep => "finer_step_than_chosen",
        }
    }
}

/// What [`ConsentRegistry::screen`] refused, per meter and reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Screening {
    pub refused_points: u64,
    /// `(meter, reason, points)`, sorted.
    pub refused: Vec<(String, Refusal, u64)>,
}

impl ConsentRegistry {
    pub fn new(policy: ConsentPolicy) -> ConsentRegistry {
        ConsentRegistry {
            policy,
            by_meter: HashMap::new(),
        }
    }

    /// Records `event` as the latest decision of its meter.
    pub fn insert(&mut self, event: ConsentEvent) {
        self.by_meter
            .entry(event.meter.clone())
            .or_default()
            .push(event);
    }

    /// The history of `meter`, in recording order.
    pub fn history(&self, meter: &str) -> &[ConsentEvent] {
        self.by_meter.get(meter).map_or(&[], Vec::as_slice)
    }

    /// The event in force at `ts_utc`: the latest recorded one covering it, if any.
    pub fn in_force(&self, meter: &str, ts_utc: i64) -> Option<&ConsentEvent> {
        self.by_meter
            .get(meter)?
            .iter()
            .rev()
            .find(|e| e.from_utc <= ts_utc)
    }

    /// Every event, meter by meter, each meter's in recording order (what the registry file
    /// must hold).
    pub fn events(&self) -> impl Iterator<Item = &ConsentEvent> + '_ {
        self.by_meter.values().flatten()
    }

    /// After an erasure, the registry keeps of a meter only what still means something: its
    /// erasing revocations, everything recorded after the latest one, and the earlier events
    /// that still decide some instant. An earlier event decides nothing once a later-recorded
    /// one covers its instant, so dropping it changes no state at any instant (after a
    /// revocation with erasure from `-infinity`, that revocation is all that is left). Returns
    /// the events dropped.
    pub fn forget_superseded_before_erasure(&mut self) -> usize {
        let mut dropped = 0;
        for events in self.by_meter.values_mut() {
            let is_erasure = |e: &ConsentEvent| e.erase && e.collection == Collection::Revoked;
            let Some(last) = events.iter().rposition(is_erasure) else {
                continue;
            };
            // Per position, the smallest `from_utc` recorded after it.
            let mut later_min = vec![i64::MAX; events.len()];
            for i in (0..events.len().saturating_sub(1)).rev() {
                later_min[i] = later_min[i + 1].min(events[i + 1].from_utc);
            }
            let mut i = 0;
            let before = events.len();
            events.retain(|e| {
                let superseded = i < last && !is_erasure(e) && later_min[i] <= e.from_utc;
                i += 1;
                !superseded
            });
            dropped += before - events.len();
        }
        self.by_meter.retain(|_, events| !events.is_empty());
        dropped
    }

    /// Whether a curve point of `meter` at `ts_utc` with this step may be collected.
    pub fn check(&self, meter: &str, ts_utc: i64, step_min: u16) -> Result<(), Refusal> {
        match self.in_force(meter, ts_utc) {
            None if self.policy.required => Err(Refusal::NoConsent),
            None => Ok(()),
            Some(e) if e.collection == Collection::Revoked => Err(Refusal::NoConsent),
            Some(e) => match e.step_min {
                Some(chosen) if step_min < chosen => Err(Refusal::FinerStep),
                _ => Ok(()),
            },
        }
    }

    /// Whether collection is granted at `ts_utc`.
    pub fn collecting(&self, meter: &str, ts_utc: i64) -> bool {
        match self.in_force(meter, ts_utc) {
            None => !self.policy.required,
            Some(e) => e.collection == Collection::Granted,
        }
    }

    /// Whether collection holds over all of `[from_utc, to_utc)`. The state changes only at
    /// the instants of events, so it is checked at `from_utc` and at each of those inside.
    pub fn holds_over(&self, meter: &str, from_utc: i64, to_utc: i64) -> bool {
        self.collecting(meter, from_utc)
            && self
                .history(meter)
                .iter()
                .filter(|e| e.from_utc > from_utc && e.from_utc < to_utc)
                .all(|e| self.collecting(meter, e.from_utc))
    }

    /// Splits `batch`, received at `now_utc`, into what may be stored and what consent
    /// refuses: while collection is revoked now, every curve point of the meter is refused,
    /// whatever its instant.
    pub fn screen(&self, batch: &Batch, now_utc: i64) -> (Batch, Screening) {
        let mut kept = Batch::new();
        let mut counts: HashMap<(String, Refusal), u64> = HashMap::new();
        let mut refused_points = 0u64;
        for (meter, channel, point) in batch.iter() {
            let verdict = if !channel.is_curve() {
                Ok(())
            } else if self.collecting(meter, now_utc) {
                self.check(meter, point.ts_utc, point.step_min)
            } else {
                Err(Refusal::NoConsent)
            };
            match verdict {
                // The point already passed `Batch::push` once: it cannot fail again.
                Ok(()) => {
                    let _ = kept.push(meter, channel, point);
                }
                Err(reason) => {
                    refused_points += 1;
                    *counts.entry((meter.to_string(), reason)).or_default() += 1;
                }
            }
        }
        let mut refused: Vec<(String, Refusal, u64)> =
            counts.into_iter().map(|((m, r), n)| (m, r, n)).collect();
        refused.sort();
        (
            kept,
            Screening {
                refused_points,
                refused,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Point, Quality};

    fn event(from_utc: i64, collection: Collection, step_min: Option<u16>) -> ConsentEvent {
        ConsentEvent {
            meter: "m".into(),
            from_utc,
            collection,
            step_min,
            erase: false,
            recorded_utc: 0,
            by: "operator".into(),
        }
    }

    fn point(ts_utc: i64, step_min: u16) -> Point {
        Point {
            ts_utc,
            value: 100,
            step_min,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn a_past_revocation_refuses_curve_points_from_its_instant_but_keeps_max_power() {
        let mut reg = ConsentRegistry::default();
        reg.insert(event(1_000, Collection::Revoked, None));
        let mut batch = Batch::new();
        batch.push("m", Channel::CONSUMPTION, point(0, 30)).unwrap();
        batch
            .push("m", Channel::CONSUMPTION, point(1_000, 30))
            .unwrap();
        batch
            .push("m", Channel::PRODUCTION, point(2_800, 30))
            .unwrap();
        batch
            .push("m", Channel::MAX_POWER, point(1_800, 1440))
            .unwrap();
        batch
            .push("other", Channel::CONSUMPTION, point(1_800, 30))
            .unwrap();
        reg.insert(event(5_000, Collection::Granted, None));
        let (kept, screening) = reg.screen(&batch, 6_000);
        let kept: Vec<_> = kept
            .iter()
            .map(|(m, c, p)| (m.to_string(), c, p.ts_utc))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("m".to_string(), Channel::CONSUMPTION, 0),
                ("m".to_string(), Channel::MAX_POWER, 1_800),
                ("other".to_string(), Channel::CONSUMPTION, 1_800),
            ]
        );
        assert_eq!(screening.refused_points, 2);
        assert_eq!(
            screening.refused,
            vec![("m".to_string(), Refusal::NoConsent, 2)]
        );
    }

    #[test]
    fn a_new_grant_after_a_revocation_collects_again_at_its_step() {
        let mut reg = ConsentRegistry::default();
        reg.insert(event(1_000, Collection::Revoked, None));
        reg.insert(event(2_000, Collection::Granted, Some(30)));
        assert_eq!(reg.check("m", 1_500, 30), Err(Refusal::NoConsent));
        assert_eq!(reg.check("m", 2_000, 30), Ok(()));
        assert_eq!(reg.check("m", 2_000, 60), Ok(()));
        assert_eq!(reg.check("m", 2_000, 10), Err(Refusal::FinerStep));
        assert!(reg.holds_over("m", 2_000, 9_000));
        assert!(!reg.holds_over("m", 0, 9_000));
        assert!(reg.holds_over("m", 0, 1_000));
    }

    #[test]
    fn the_latest_recorded_decision_wins_whatever_the_instants_of_earlier_ones() {
        let mut reg = ConsentRegistry::default();
        reg.insert(event(2_000, Collection::Granted, None));
        reg.insert(event(i64::MIN, Collection::Revoked, None));
        assert!(!reg.collecting("m", 3_000));
        assert!(!reg.collecting("m", i64::MIN));
        reg.insert(event(4_000, Collection::Granted, Some(30)));
        assert!(!reg.collecting("m", 3_999));
        assert!(reg.collecting("m", 4_000));
        assert!(reg.holds_over("m", 4_000, 9_000));
        assert!(!reg.holds_over("m", 3_000, 9_000));
    }

    #[test]
    fn while_revoked_now_every_curve_point_is_refused_even_an_old_one() {
        let mut reg = ConsentRegistry::default();
        reg.insert(event(1_000, Collection::Revoked, None));
        let mut batch = Batch::new();
        batch.push("m", Channel::CONSUMPTION, point(0, 30)).unwrap();
        batch.push("m", Channel::MAX_POWER, point(0, 1440)).unwrap();
        let (kept, screening) = reg.screen(&batch, 2_000);
        assert_eq!(kept.len(), 1);
        assert_eq!(screening.refused, vec![("m".into(), Refusal::NoConsent, 1)]);
        // Before the revocation's instant the same point was collected.
        assert_eq!(reg.screen(&batch, 999).0.len(), 2);
    }

    #[test]
    fn after_an_erasure_from_minus_infinity_only_the_erasing_revocation_is_kept() {
        let mut reg = ConsentRegistry::default();
        reg.insert(event(2_000, Collection::Granted, Some(30)));
        reg.insert(event(5_000, Collection::Revoked, None));
        let mut erasure = event(i64::MIN, Collection::Revoked, None);
        erasure.erase = true;
        reg.insert(erasure.clone());
        assert_eq!(reg.forget_superseded_before_erasure(), 2);
        assert_eq!(reg.history("m"), std::slice::from_ref(&erasure));
        assert_eq!(reg.forget_superseded_before_erasure(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Forgetting after an erasure keeps the state at every instant.
        #[test]
        fn forgetting_after_an_erasure_changes_no_state_at_any_instant(
            history in proptest::collection::vec(
                (proptest::sample::select(vec![i64::MIN, 0, 10, 20, 30]),
                 proptest::prelude::any::<bool>(),
                 proptest::prelude::any::<bool>()),
                0..8,
            ),
        ) {
            let mut reg = ConsentRegistry::default();
            for (from, granted, erase) in &history {
                let collection = if *granted { Collection::Granted } else { Collection::Revoked };
                let mut e = event(*from, collection, None);
                e.erase = *erase && !*granted;
                reg.insert(e);
            }
            let probes = [i64::MIN, -1, 0, 5, 10, 15, 20, 25, 30, 40];
            let before: Vec<bool> = probes.iter().map(|t| reg.collecting("m", *t)).collect();
            let erasures = reg.history("m").iter().filter(|e| e.erase).count();
            reg.forget_superseded_before_erasure();
            let after: Vec<bool> = probes.iter().map(|t| reg.collecting("m", *t)).collect();
            proptest::prop_assert_eq!(before, after);
            proptest::prop_assert_eq!(reg.history("m").iter().filter(|e| e.erase).count(), erasures);
        }
    }

    #[test]
    fn a_required_policy_refuses_meters_without_consent() {
        let reg = ConsentRegistry::new(ConsentPolicy { required: true });
        assert_eq!(reg.check("m", 0, 30), Err(Refusal::NoConsent));
        assert!(!reg.holds_over("m", 0, 10));
    }
}
