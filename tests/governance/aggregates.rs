//! Anonymised aggregates: thresholds, secondary suppression, time consistency, erasure.

use courbe::engine::Batch;
use serde_json::{json, Value};

use super::support::*;

/// Energy of one `day_batch` day with base `base`: sum of (base + i) W over 48 half-hours.
fn day_energy_wh(base: i32) -> f64 {
    f64::from(24 * base + 564)
}

fn meter(i: u32) -> String {
    format!("0911164262{i:04}")
}

/// Commune 75056 with IRIS I1 (12 meters), I2 (11 meters) and I3 (3 meters), every meter with
/// day -2 (base 100 + index); meter 0 of I1 also has day -3, where it is alone.
fn communes(dir: &std::path::Path) -> (Server, Vec<(String, String, i32)>) {
    let server = Server::start(dir);
    let mut batch = Batch::new();
    let mut meters = Vec::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    let mut n = 0;
    for (iris, count) in [("I1", 12), ("I2", 11), ("I3", 3)] {
        for _ in 0..count {
            let m = meter(n);
            let base = 100 + n as i32;
            day_batch(&mut batch, &m, -2, base);
            groups.push_str(&format!("{m},75056,{iris}\n"));
            meters.push((m, iris.to_string(), base));
            n += 1;
        }
    }
    day_batch(&mut batch, &meter(0), -3, 5_000);
    server.store.ingest(&batch).unwrap();
    let reply = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/groups",
        Some(("text/csv", &groups)),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["loaded"], 26);
    (server, meters)
}

fn aggregates(server: &Server, token: &str, query: &str) -> Value {
    let reply = server.get(token, &format!("/v1/aggregates?{query}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn cell<'a>(body: &'a Value, group: &str) -> &'a Value {
    body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
        .map(|g| &g["cells"][0])
        .unwrap_or_else(|| panic!("no group {group}: {body}"))
}

fn assert_suppressed(c: &Value) {
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["end", "start", "suppressed"],
        "a suppressed cell says only so: {c}"
    );
    assert_eq!(c["suppressed"], true);
}

#[test]
fn a_suppressed_cell_never_leaks_its_value_in_any_field_or_through_an_overlapping_request() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    server.release_days(-2, -1);
    let d = day_utc(-2);
    let day = format!("from={}&to={}&period=day&tz=UTC", rfc(d), rfc(d + 86_400));
    let energy_of = |iris: &str| -> f64 {
        meters
            .iter()
            .filter(|(_, i, _)| i == iris)
            .map(|(_, _, b)| day_energy_wh(*b))
            .sum()
    };
    let by_iris = aggregates(&server, PUBLIC, &format!("level=iris&{day}"));
    let by_commune = aggregates(&server, PUBLIC, &format!("level=commune&{day}"));
    let all = aggregates(&server, PUBLIC, &format!("level=all&{day}"));

    // I1 is published; I3 (3 meters) is suppressed, and so is I2, else commune - I1 - I2 = I3.
    let i1 = cell(&by_iris, "I1");
    assert_eq!(i1["meters"], 12);
    assert_eq!(i1["energy_wh"].as_f64(), Some(energy_of("I1")));
    assert_suppressed(cell(&by_iris, "I3"));
    assert_suppressed(cell(&by_iris, "I2"));
    let commune = cell(&by_commune, "75056");
    assert_eq!(commune["meters"], 26);
    let total = commune["energy_wh"].as_f64().unwrap();
    assert_eq!(
        all["groups"][0]["cells"][0]["energy_wh"].as_f64(),
        Some(total)
    );
    // What the overlapping answers give away is I2 + I3 together: 14 meters, not 3.
    assert_eq!(total - energy_of("I1"), energy_of("I2") + energy_of("I3"));

    // No field of any answer, in any kind, carries I3's value or its meters' values.
    let curve = server.get(
        PUBLIC,
        &format!("/v1/aggregates?level=iris&kind=curve&{day}"),
    );
    assert_eq!(curve.status, 200);
    assert_suppressed(cell(&curve.json(), "I3"));
    let i3 = format!("{}", energy_of("I3"));
    for body in [
        by_iris.to_string(),
        by_commune.to_string(),
        all.to_string(),
        curve.body,
    ] {
        assert!(!body.contains(&i3), "I3's energy {i3} leaks: {body}");
    }
}

/// One day of half-hours from `day_utc(days)`, value `value(i)` at half-hour `i` (0 is a
/// reading of zero, stored like any other).
fn curve_batch(batch: &mut Batch, meter: &str, days: i64, value: impl Fn(i64) -> i32) {
    let start = day_utc(days);
    for i in 0..48 {
        batch
            .push(
                meter,
                courbe::Channel::CONSUMPTION,
                courbe::Point {
                    ts_utc: start + i * 1_800,
                    value: value(i),
                    step_min: 30,
                    quality: courbe::Quality::Measured,
                },
            )
            .unwrap();
    }
}

fn load_groups(server: &Server, csv: &str) {
    let reply = server.call(Some(OPERATOR), "PUT", "/v1/groups", Some(("text/csv", csv)));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// `(value, meters)` of the published curve point at `ts` of `group`, `None` when the cell
/// holding it is suppressed or has no such point.
fn curve_point(body: &Value, group: &str, ts: i64) -> Option<(i64, u64)> {
    let at = rfc(ts);
    let g = body["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == group)?;
    g["cells"].as_array()?.iter().find_map(|c| {
        c["points"].as_array()?.iter().find_map(|p| {
            (p["ts"] == at.as_str())
                .then(|| (p["value"].as_i64().unwrap(), p["meters"].as_u64().unwrap()))
        })
    })
}

#[test]
fn a_commune_minus_its_published_iris_never_isolates_the_one_meter_of_an_interval() {
    // Commune C1: IRIS I1 of 12 meters, all non-zero all day; IRIS I2 of 10 meters, of which
    // only the lone meter L is non-zero at 03:00Z (the 9 others read 0 then, non-zero else).
    // At 03:00Z the commune has 13 contributing meters and I1 12: C1 - I1 would be L.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    for n in 0..12 {
        curve_batch(&mut batch, &meter(n), -2, |i| 100 + n as i32 + i as i32);
        groups.push_str(&format!("{},C1,I1\n", meter(n)));
    }
    let lone = meter(12);
    let lone_w = 4_321;
    curve_batch(&mut batch, &lone, -2, |_| lone_w);
    groups.push_str(&format!("{lone},C1,I2\n"));
    for n in 13..22 {
        curve_batch(&mut batch, &meter(n), -2, |i| {
            if i == 6 {
                0
            } else {
                200 + i as i32
            }
        });
        groups.push_str(&format!("{},C1,I2\n", meter(n)));
    }
    server.store.ingest(&batch).unwrap();
    load_groups(&server, &groups);
    server.release_days(-2, -1);

    let d = day_utc(-2);
    let at = d + 3 * 3_600;
    let day = format!("kind=curve&tz=UTC&from={}&to={}", rfc(d), rfc(d + 86_400));
    let communes = aggregates(&server, PUBLIC, &format!("level=commune&{day}"));
    let iris = aggregates(&server, PUBLIC, &format!("level=iris&{day}"));
    let c1 = curve_point(&communes, "C1", at);
    let i1 = curve_point(&iris, "I1", at);
    assert_eq!(
        curve_point(&iris, "I2", at),
        None,
        "I2 has one contributor at 03:00Z"
    );
    assert!(c1.is_some(), "the commune's 13 contributors are published");
    if let (Some((c1_w, c1_n)), Some((i1_w, i1_n))) = (c1, i1) {
        assert_ne!(
            c1_w - i1_w,
            i64::from(lone_w),
            "C1 - I1 at 03:00Z is L: {c1_w} - {i1_w}"
        );
        let hidden = c1_n - i1_n;
        assert!(
            hidden == 0 || hidden >= 10,
            "C1 - I1 at 03:00Z covers {hidden} meters"
        );
    }
}

/// The UTC instant of the Paris midnight that falls inside UTC day `day_utc(days)`.
fn paris_midnight_in_utc_day(days: i64) -> i64 {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let noon = jiff::Timestamp::from_second(day_utc(days) + 12 * 3_600).unwrap();
    let next_day = noon.to_zoned(tz).date().tomorrow().unwrap();
    next_day
        .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap())
        .unwrap()
        .timestamp()
        .as_second()
}

#[test]
fn a_utc_day_minus_a_paris_day_never_isolates_the_hour_between_them() {
    // Commune C1: I1 of 12 meters non-zero always; I2 of 10 meters zero from 22:00Z to 24:00Z
    // every day (other values changing from day to day), and a lone meter L of I2 non-zero only
    // in the hour after the Paris midnight that falls in UTC day -2. That UTC day and the Paris
    // day ending at that midnight differ by the hour, so their (C1 - I1) differ by L's energy
    // of the hour, unless one of them is withheld.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    let lone = meter(12);
    let midnight = paris_midnight_in_utc_day(-2);
    let lone_w = 4_321;
    for days in -3..=-1 {
        for n in 0..12 {
            curve_batch(&mut batch, &meter(n), days, |i| 100 + n as i32 + i as i32);
        }
        for n in 13..23 {
            curve_batch(&mut batch, &meter(n), days, |i| {
                if i >= 44 {
                    0
                } else {
                    200 + i as i32 + 7 * days as i32
                }
            });
        }
        let start = day_utc(days);
        curve_batch(&mut batch, &lone, days, |i| {
            let ts = start + i * 1_800;
            if (midnight..midnight + 3_600).contains(&ts) {
                lone_w
            } else {
                0
            }
        });
    }
    for n in 0..12 {
        groups.push_str(&format!("{},C1,I1\n", meter(n)));
    }
    for n in 12..23 {
        groups.push_str(&format!("{},C1,I2\n", meter(n)));
    }
    server.store.ingest(&batch).unwrap();
    load_groups(&server, &groups);
    server.release_days(-3, 0);

    let lone_hour_wh = f64::from(lone_w);
    let range = format!(
        "from={}&to={}&period=day",
        rfc(day_utc(-3)),
        rfc(day_utc(0))
    );
    let mut differences = Vec::new();
    for tz in ["UTC", "Europe/Paris"] {
        let communes = aggregates(&server, PUBLIC, &format!("level=commune&tz={tz}&{range}"));
        let iris = aggregates(&server, PUBLIC, &format!("level=iris&tz={tz}&{range}"));
        let cells = |body: &Value, group: &str| -> Vec<Value> {
            body["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["group"] == group)
                .map(|g| g["cells"].as_array().unwrap().clone())
                .unwrap()
        };
        for (c, i) in cells(&communes, "C1").iter().zip(cells(&iris, "I1")) {
            if let (Some(c_wh), Some(i_wh)) = (c["energy_wh"].as_f64(), i["energy_wh"].as_f64()) {
                differences.push((tz, c["start"].to_string(), c_wh - i_wh));
            }
        }
    }
    for (tz_a, start_a, a) in &differences {
        for (tz_b, start_b, b) in &differences {
            assert_ne!(
                a - b,
                lone_hour_wh,
                "(C1 - I1) of {tz_a} day {start_a} minus that of {tz_b} day {start_b} is L's hour"
            );
        }
    }
}

#[test]
fn an_aggregate_whose_bounds_are_off_the_half_hour_grid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = communes(&dir.path().join("data"));
    let d = day_utc(-2);
    for query in [
        format!("from={}&to={}&tz=UTC", rfc(d + 600), rfc(d + 86_400)),
        format!("from={}&to={}&tz=UTC&kind=curve", rfc(d), rfc(d + 3_000)),
        // Nepal is UTC+05:45: its days begin at 18:15Z.
        format!(
            "from={}&to={}&tz=Asia/Kathmandu&period=day",
            rfc(d),
            rfc(d + 86_400)
        ),
    ] {
        let reply = server.get(PUBLIC, &format!("/v1/aggregates?level=commune&{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.body.contains("half-hour"), "{}", reply.body);
    }
}

#[test]
fn a_longer_period_is_suppressed_when_one_of_its_days_is() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = communes(&dir.path().join("data"));
    server.release_days(-3, -1);
    // Day -3 holds one meter of the commune: suppressed. Day -2 holds 26: published. The two
    // days together would give day -3 by subtraction, so their sum is suppressed too.
    let two_days = format!(
        "level=commune&from={}&to={}&tz=UTC",
        rfc(day_utc(-3)),
        rfc(day_utc(-1))
    );
    let daily = aggregates(&server, PUBLIC, &format!("{two_days}&period=day"));
    let cells = daily["groups"][0]["cells"].as_array().unwrap();
    assert_suppressed(&cells[0]);
    assert_eq!(cells[1]["meters"], 26);
    let weekly = aggregates(&server, OPERATOR, &format!("{two_days}&period=year"));
    assert_suppressed(&weekly["groups"][0]["cells"][0]);
}

#[test]
fn an_erased_meter_is_gone_from_live_aggregates_and_stays_inside_released_sums() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    server.release_days(-2, -1);
    let d = day_utc(-2);
    let query = format!(
        "level=commune&from={}&to={}&period=day&tz=UTC",
        rfc(d),
        rfc(d + 86_400)
    );
    let before = aggregates(&server, OPERATOR, &query);
    let released = aggregates(&server, PUBLIC, &query);
    assert_eq!(released, before, "released as the store was");
    let before_wh = cell(&before, "75056")["energy_wh"].as_f64().unwrap();
    let (gone, _, base) = &meters[1];
    let reply = server.post_json(
        OPERATOR,
        &format!("/v1/meters/{gone}/consent"),
        &json!({"collection": "revoked", "erase": true}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let after = aggregates(&server, OPERATOR, &query);
    let c = cell(&after, "75056");
    assert_eq!(c["meters"], 25);
    assert_eq!(
        c["energy_wh"].as_f64(),
        Some(before_wh - day_energy_wh(*base))
    );
    // A released sum of 26 meters is aggregated data: it does not change, so no reader
    // subtracts the erased meter's day from it.
    assert_eq!(aggregates(&server, PUBLIC, &query), released);
}

#[test]
fn building_cells_of_two_to_nine_meters_go_only_to_public_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    // Four meters of I1 in building B4, one alone in building B1.
    let mut groups = String::from("meter_id,commune,iris,building\n");
    for (m, _, _) in meters.iter().take(4) {
        groups.push_str(&format!("{m},75056,I1,B4\n"));
    }
    groups.push_str(&format!("{},75056,I1,B1\n", meters[4].0));
    let reply = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/groups",
        Some(("text/csv", &groups)),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.release_days(-2, -1);
    let d = day_utc(-2);
    let query = format!(
        "/v1/aggregates?level=building&from={}&to={}&period=day&tz=UTC",
        rfc(d),
        rfc(d + 86_400)
    );
    assert_eq!(server.get(PUBLIC, &query).status, 403);
    let reply = server.get(PUBLIC_BODY, &query);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let b4 = cell(&body, "B4");
    assert_eq!(b4["meters"], 4);
    let expected: f64 = meters
        .iter()
        .take(4)
        .map(|(_, _, b)| day_energy_wh(*b))
        .sum();
    assert_eq!(b4["energy_wh"].as_f64(), Some(expected));
    assert_suppressed(cell(&body, "B1"));
}

#[test]
fn a_consumer_sees_its_monthly_energy_next_to_its_groups_quartiles() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    let (m, _, base) = &meters[5];
    let tokens = format!(
        "{}{} consumer {m}\n",
        tokens_file_text(),
        courbe::governance::auth::token_hash("tok-m5")
    );
    std::fs::write(&server.tokens_path, tokens).unwrap();
    // Meter 0's lone day -3 would withhold I1's month when it falls in it: erased first.
    let d3 = day_utc(-3);
    let erase = format!(
        "/v1/meters/{}/curve?from={}&to={}",
        meters[0].0,
        rfc(d3),
        rfc(d3 + 86_400)
    );
    let reply = server.call(Some(OPERATOR), "DELETE", &erase, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let range = paris_month(-2);
    let path = format!("/v1/meters/{m}/compare?{range}");
    server.release_days(-2, -1);
    let reply = server.get("tok-m5", &path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let month = &body["months"][0];
    assert_eq!(month["energy_wh"].as_f64(), Some(day_energy_wh(*base)));
    let groups = month["groups"].as_array().unwrap();
    // I1 (12 meters, bases 100..=111) is published: median of 24 * base + 564 over them.
    assert_eq!(groups[0]["group"], "I1");
    assert_eq!(groups[0]["meters"], 12);
    assert_eq!(groups[0]["median_wh"].as_f64(), Some(24.0 * 105.5 + 564.0));
    assert_eq!(groups[0]["q1_wh"].as_f64(), Some(24.0 * 102.75 + 564.0));
    assert_eq!(groups[1]["group"], "75056");
    assert_eq!(groups[1]["meters"], 26);
    // Another consumer's meter is not theirs to compare.
    let other = server.get(
        "tok-m5",
        &format!("/v1/meters/{}/compare?{range}", meters[6].0),
    );
    assert_eq!(other.status, 403);
}

#[test]
fn a_comparison_of_a_month_not_released_is_refused_to_all_but_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    let m = &meters[5].0;
    let tokens = format!(
        "{}{} consumer {m}\n",
        tokens_file_text(),
        courbe::governance::auth::token_hash("tok-m5")
    );
    std::fs::write(&server.tokens_path, tokens).unwrap();
    let path = format!("/v1/meters/{m}/compare?{}", paris_month(-2));
    let message = server
        .get("tok-m5", &path)
        .assert_error(404, "not_released");
    assert!(message.contains("nothing is released"), "{message}");
    let reply = server.get(OPERATOR, &path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Released, the month is answered; a range reaching a month outside the release is not.
    server.release_days(-2, -1);
    let reply = server.get("tok-m5", &path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (from, _) = paris_months_holding(day_utc(-2), day_utc(-1));
    let (_, to) = paris_months_holding(day_utc(31), day_utc(32));
    let two = format!("/v1/meters/{m}/compare?from={from}&to={to}&tz=Europe/Paris");
    let message = server.get("tok-m5", &two).assert_error(404, "not_released");
    assert!(
        message.contains(&format!("released: from {from}")),
        "{message}"
    );
    // Production is released apart from consumption.
    server
        .get("tok-m5", &format!("{path}&channel=production"))
        .assert_error(404, "not_released");
}

/// Random fleets attacked with every answer the endpoint gives over a few ranges, released
/// first (the answers are built from the frozen slots of a release, as every reader but an
/// operator gets them).
///
/// What is proven, per generated fleet: let the unknowns be each meter's energy in each
/// half-hour where a non-zero reading of it falls, and let every published number (a curve
/// point, an energy of any level, range, time zone and period asked) be a row covering the
/// unknowns of its group's members in its half-hours (a curve point is its half-hour's energy
/// / 1800 s rounded to the watt, a function of that one sum). The test first checks that each
/// published number is exactly its row applied to the fleet, and that a published curve
/// leaves no half-hour out, so the rows are the true content of the answers. It then groups
/// the unknowns by their column (the set of rows covering them): every linear combination of
/// published numbers weighs all unknowns of a class alike, so what it isolates is a union of
/// whole classes. Checked: in the public's view (levels all, commune, IRIS) every class holds
/// at least `min_meters` (10) distinct meters; with buildings (public bodies' view), a class
/// of fewer than 10 meters lies inside one IRIS and holds at least `building_min_meters` (2).
/// In particular parent − Σ published children, in any half-hour or over any period, covers
/// 0 or at least the minimum, and so does any difference of overlapping periods (day, week,
/// month, curve against energy, UTC against Paris days, meters of 10, 15, 30 or 60 min). The
/// condition is sufficient, not necessary; counts of active meters are not covered (see the
/// module doc of `courbe::governance::aggregates`).
mod properties {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use courbe::engine::{Batch, Options, Store};
    use courbe::governance::aggregates::{self, Params};
    use courbe::governance::auth::{Principal, Role};
    use courbe::governance::groups::Membership;
    use courbe::governance::{Governance, GovernanceConfig};
    use courbe::{Channel, Point, Quality};
    use courbe_server::governance::bodies::AggregatesBody;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use serde_json::Value;

    use super::super::support::{day_utc, rfc};

    const DAYS: usize = 3;
    const MIN: usize = 10;
    const BUILDING_MIN: usize = 2;

    /// When a meter of the model reads non-zero.
    #[derive(Clone, Debug)]
    enum Pattern {
        /// Every reading of the days set.
        Days([bool; DAYS]),
        /// One reading only; the rest of that day reads zero.
        Single { day: usize, at: usize },
        /// Every day, except the readings `k` whose bit `k % 16` is set (they read zero).
        Gaps(u16),
    }

    #[derive(Clone, Debug)]
    struct M {
        commune: u8,
        iris: u8,
        building: Option<u8>,
        step_min: u16,
        base: i32,
        pattern: Pattern,
    }

    impl M {
        /// The reading at index `k` of day `day` (`None`: no reading).
        fn reading(&self, day: usize, k: usize) -> Option<i32> {
            let v = self.base + (k + day) as i32;
            match self.pattern {
                Pattern::Days(days) => days.get(day).copied()?.then_some(v),
                Pattern::Single { day: d, at } => {
                    let n = 1_440 / usize::from(self.step_min);
                    (day == d).then_some(if k == at % n { self.base } else { 0 })
                }
                Pattern::Gaps(bits) => Some(if bits >> (k % 16) & 1 == 1 { 0 } else { v }),
            }
        }

        fn codes(&self) -> [Option<String>; 4] {
            let commune = format!("C{}", self.commune);
            let iris = format!("{commune}I{}", self.iris);
            let building = self.building.map(|b| format!("{iris}B{b}"));
            [Some(String::new()), Some(commune), Some(iris), building]
        }
    }

    fn meter_strategy() -> impl Strategy<Value = M> {
        let pattern = prop_oneof![
            4 => any::<[bool; DAYS]>().prop_map(Pattern::Days),
            1 => (0..DAYS, 0..48usize).prop_map(|(day, at)| Pattern::Single { day, at }),
            2 => any::<u16>().prop_map(Pattern::Gaps),
        ];
        (
            0..2u8,
            0..2u8,
            prop::option::of(0..3u8),
            prop_oneof![6 => Just(30u16), 1 => Just(10u16), 1 => Just(15u16), 2 => Just(60u16)],
            1..1_000i32,
            pattern,
        )
            .prop_map(|(commune, iris, building, step_min, base, pattern)| M {
                commune,
                iris,
                building,
                step_min,
                base,
                pattern,
            })
    }

    /// A fleet: for each of the four IRIS, 0 to 13 half-hourly meters on every day (so that
    /// some groups are published), then 0 to 23 meters of any step and pattern.
    fn fleet_strategy() -> impl Strategy<Value = Vec<M>> {
        (
            prop::array::uniform4(0..14usize),
            prop::collection::vec(meter_strategy(), 0..24),
        )
            .prop_map(|(per_iris, random)| {
                let mut fleet = Vec::new();
                for (i, &n) in per_iris.iter().enumerate() {
                    for j in 0..n {
                        fleet.push(M {
                            commune: (i / 2) as u8,
                            iris: (i % 2) as u8,
                            building: (j % 4 != 3).then_some((j % 3) as u8),
                            step_min: 30,
                            base: 100 + (10 * i + j) as i32,
                            pattern: Pattern::Days([true; DAYS]),
                        });
                    }
                }
                fleet.extend(random);
                fleet
            })
    }

    const LEVELS: [&str; 4] = ["all", "commune", "iris", "building"];

    fn ask(store: &Store, gov: &Governance, query: &str) -> Value {
        let uri: axum::http::Uri = format!("/v1/aggregates?{query}").parse().unwrap();
        let params = Params::from_query(uri.query().unwrap_or_default()).unwrap();
        let who = Principal {
            role: Role::PublicBody,
            subject: None,
        };
        let answer = aggregates::answer(&*store.snapshot(), gov, &who, &params).unwrap();
        serde_json::to_value(AggregatesBody::from(answer)).unwrap()
    }

    /// The Europe/Paris months holding `[from_utc, to_utc)`, as UTC instants.
    fn months_holding(from_utc: i64, to_utc: i64) -> (i64, i64) {
        let (first, end) = super::super::support::paris_months_holding(from_utc, to_utc);
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let at = |d: &str| {
            let date: jiff::civil::Date = d.parse().unwrap();
            date.to_zoned(paris.clone())
                .unwrap()
                .timestamp()
                .as_second()
        };
        (at(&first), at(&end))
    }

    fn ts_of(v: &Value) -> i64 {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    }

    /// A published number: level, group, and either one curve start or an energy span.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Row {
        Curve(usize, String, i64),
        Energy(usize, String, i64, i64),
    }

    impl Row {
        fn span(&self) -> (usize, &str, i64, i64) {
            match self {
                Row::Curve(l, code, ts) => (*l, code, *ts, ts + 1),
                Row::Energy(l, code, start, end) => (*l, code, *start, *end),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 16,
            rng_seed: RngSeed::Fixed(0x0011_0003),
            ..ProptestConfig::default()
        })]

        #[test]
        fn no_linear_combination_of_published_values_isolates_fewer_than_the_minimum(
            meters in fleet_strategy()
        ) {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let store = Store::open(&data, Options::default()).unwrap();
            let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
            let ids: Vec<String> =
                (0..meters.len()).map(|i| format!("0911164263{i:04}")).collect();
            let first = day_utc(-4);
            // (meter, half-hour) -> energy in W·s, where a non-zero reading overlaps it.
            let mut truth: BTreeMap<(usize, i64), i64> = BTreeMap::new();
            let mut batch = Batch::new();
            let mut memberships = Vec::new();
            for (j, (id, m)) in ids.iter().zip(&meters).enumerate() {
                let step_s = i64::from(m.step_min) * 60;
                let per_day = 1_440 / usize::from(m.step_min);
                for day in 0..DAYS {
                    for k in 0..per_day {
                        let Some(value) = m.reading(day, k) else { continue };
                        let ts_utc = first + day as i64 * 86_400 + k as i64 * step_s;
                        let point = Point {
                            ts_utc,
                            value,
                            step_min: m.step_min,
                            quality: Quality::Measured,
                        };
                        batch.push(id, Channel::CONSUMPTION, point).unwrap();
                        if value == 0 {
                            continue;
                        }
                        let mut slot = ts_utc - ts_utc.rem_euclid(1_800);
                        while slot < ts_utc + step_s {
                            let overlap_s = (ts_utc + step_s).min(slot + 1_800) - ts_utc.max(slot);
                            *truth.entry((j, slot)).or_default() += i64::from(value) * overlap_s;
                            slot += 1_800;
                        }
                    }
                }
                let [_, commune, iris, building] = m.codes();
                memberships.push(Membership {
                    meter: id.clone(),
                    commune: commune.unwrap(),
                    iris: iris.unwrap(),
                    building,
                });
            }
            store.ingest(&batch).unwrap();
            gov.load_groups(memberships).unwrap();
            // Every answer below comes from this release (the reader is a public body).
            let (from, to) = months_holding(first, first + DAYS as i64 * 86_400);
            gov.release(&store, from, to, Channel::CONSUMPTION).unwrap();
            let members = |l: usize, code: &str| -> Vec<usize> {
                (0..meters.len())
                    .filter(|&i| meters[i].codes()[l].as_deref() == Some(code))
                    .collect()
            };
            let inside = |ms: &[usize], start: i64, end: i64| -> Vec<(usize, i64, i64)> {
                ms.iter()
                    .flat_map(|&m| {
                        truth
                            .range((m, start)..(m, end))
                            .map(|(&(m, ts), &ws)| (m, ts, ws))
                    })
                    .collect()
            };

            let ranges = [
                (first, first + DAYS as i64 * 86_400),
                (first + 86_400 + 3 * 3_600, first + 86_400 + 5 * 3_600 + 1_800),
                (first + 12 * 3_600, first + 2 * 86_400 + 12 * 3_600),
            ];
            let mut rows: BTreeSet<Row> = BTreeSet::new();
            for (l, level) in LEVELS.iter().enumerate() {
                for (from, to) in ranges {
                    for tz in ["UTC", "Europe/Paris"] {
                        for what in ["kind=curve", "period=day", "period=week", "period=month"] {
                            let query = format!(
                                "level={level}&{what}&tz={tz}&from={}&to={}",
                                rfc(from),
                                rfc(to)
                            );
                            let body = ask(&store, &gov, &query);
                            for group in body["groups"].as_array().unwrap() {
                                let code = group["group"].as_str().unwrap().to_string();
                                let ms = members(l, &code);
                                for cell in group["cells"].as_array().unwrap() {
                                    if cell["suppressed"] == true {
                                        let keys: Vec<&String> =
                                            cell.as_object().unwrap().keys().collect();
                                        prop_assert_eq!(keys, ["end", "start", "suppressed"]);
                                        continue;
                                    }
                                    let (start, end) = (ts_of(&cell["start"]), ts_of(&cell["end"]));
                                    let values = inside(&ms, start, end);
                                    let active: BTreeSet<usize> =
                                        values.iter().map(|v| v.0).collect();
                                    prop_assert_eq!(cell["meters"].as_u64(), Some(active.len() as u64));
                                    if what == "kind=curve" {
                                        let mut sums: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
                                        for &(_, ts, ws) in &values {
                                            let e = sums.entry(ts).or_default();
                                            e.0 += ws;
                                            e.1 += 1;
                                        }
                                        // The mean power over the half-hour, to the watt.
                                        let expected: BTreeMap<i64, (i64, u64)> = sums
                                            .into_iter()
                                            .map(|(ts, (ws, n))| (ts, ((ws + 900).div_euclid(1_800), n)))
                                            .collect();
                                        let got: BTreeMap<i64, (i64, u64)> = cell["points"]
                                            .as_array()
                                            .unwrap()
                                            .iter()
                                            .map(|p| {
                                                (
                                                    ts_of(&p["ts"]),
                                                    (p["value"].as_i64().unwrap(), p["meters"].as_u64().unwrap()),
                                                )
                                            })
                                            .collect();
                                        prop_assert_eq!(&got, &expected, "{} {}", query, code);
                                        for ts in got.keys() {
                                            rows.insert(Row::Curve(l, code.clone(), *ts));
                                        }
                                    } else {
                                        let ws: i64 = values.iter().map(|v| v.2).sum();
                                        prop_assert_eq!(
                                            cell["energy_wh"].as_f64(),
                                            Some(ws as f64 / 3_600.0),
                                            "{} {}", query, code
                                        );
                                        rows.insert(Row::Energy(l, code.clone(), start, end));
                                    }
                                }
                            }
                        }
                    }
                }
            }

            // Columns, in the public's view (no building row) and the public bodies' view.
            // Every row gives each unknown it covers the coefficient 1: a curve point is the
            // half-hour's energy / 1800 s, rounded, a function of that sum alone.
            let mut public: HashMap<(usize, i64), Vec<u32>> = HashMap::new();
            let mut bodies: HashMap<(usize, i64), Vec<u32>> = HashMap::new();
            for (r, row) in rows.iter().enumerate() {
                let (l, code, start, end) = row.span();
                for (m, ts, _) in inside(&members(l, code), start, end) {
                    bodies.entry((m, ts)).or_default().push(r as u32);
                    if l < 3 {
                        public.entry((m, ts)).or_default().push(r as u32);
                    }
                }
            }
            for (view, columns) in [("public", public), ("public body", bodies)] {
                let mut classes: HashMap<Vec<u32>, Vec<(usize, i64)>> = HashMap::new();
                for (unknown, column) in columns {
                    classes.entry(column).or_default().push(unknown);
                }
                for (column, unknowns) in classes {
                    let distinct: BTreeSet<usize> = unknowns.iter().map(|u| u.0).collect();
                    let irises: BTreeSet<Option<String>> =
                        distinct.iter().map(|&m| meters[m].codes()[2].clone()).collect();
                    let allowed = distinct.len() >= MIN
                        || (view == "public body"
                            && distinct.len() >= BUILDING_MIN
                            && irises.len() == 1);
                    let rows_of: Vec<&Row> = column
                        .iter()
                        .filter_map(|r| rows.iter().nth(*r as usize))
                        .take(6)
                        .collect();
                    prop_assert!(
                        allowed,
                        "{view}: the values {unknowns:?} of {} meters are isolated by rows {rows_of:?}...",
                        distinct.len()
                    );
                }
            }
        }
    }
}

#[test]
fn a_range_across_two_releases_is_answered_as_live_with_each_meter_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    // 2024-01-31 and 2024-02-01, Paris days (UTC+1): every meter reads on both.
    let jan31 = 1_706_655_600;
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    for n in 0..12 {
        for i in 0..96 {
            let point = courbe::Point {
                ts_utc: jan31 + i * 1_800,
                value: 100 + n + i as i32,
                step_min: 30,
                quality: courbe::Quality::Measured,
            };
            batch
                .push(&meter(n as u32), courbe::Channel::CONSUMPTION, point)
                .unwrap();
        }
        groups.push_str(&format!("{},C1,I1\n", meter(n as u32)));
    }
    server.store.ingest(&batch).unwrap();
    load_groups(&server, &groups);
    server.release("2024-01-01", "2024-02-01");
    server.release("2024-02-01", "2024-03-01");
    for query in [
        "level=iris&from=2024-01-31&to=2024-02-02&period=year",
        "level=commune&from=2024-01-01&to=2024-03-01&period=week",
        "level=all&from=2024-01-31&to=2024-02-02&kind=curve&tz=UTC",
    ] {
        let live = aggregates(&server, OPERATOR, query);
        let released = aggregates(&server, PUBLIC, query);
        assert_eq!(released, live, "{query}");
    }
    let two_days = aggregates(
        &server,
        PUBLIC,
        "level=iris&from=2024-01-31&to=2024-02-02&period=year",
    );
    assert_eq!(cell(&two_days, "I1")["meters"], 12, "{two_days}");
}

/// The partial sums of disjoint sets of meters, merged, decide every cell as the sums of the
/// whole fleet do: a cluster's router (which merges its readers' partials) answers as one node.
#[test]
fn partials_of_disjoint_meters_merged_decide_every_cell_as_the_whole_fleet_does() {
    use courbe::engine::{Options, Store};
    use courbe::governance::aggregates::{self, Params, Partials};
    use courbe::governance::auth::{Principal, Role};
    use courbe::governance::groups::Membership;
    use courbe::governance::{Governance, GovernanceConfig};

    let dir = tempfile::tempdir().unwrap();
    let whole = Store::open(dir.path().join("whole"), Options::default()).unwrap();
    let parts: Vec<Store> = (0..3)
        .map(|i| Store::open(dir.path().join(format!("part{i}")), Options::default()).unwrap())
        .collect();
    let gov = Governance::open(&dir.path().join("gov"), GovernanceConfig::default()).unwrap();
    let fleet = courbe_workload::Fleet::new(courbe_workload::FleetConfig {
        meters: 60,
        days: 3,
        seed: 29,
        start: jiff::civil::date(2024, 3, 1),
        ..courbe_workload::FleetConfig::default()
    });
    let mut memberships = Vec::new();
    let mut all = Batch::new();
    let mut split: Vec<Batch> = (0..3).map(|_| Batch::new()).collect();
    for i in 0..60u32 {
        let m = fleet.meter(i);
        for r in &m.consumption {
            let p = courbe::point_of(r);
            all.push(&m.meter_id, courbe::Channel::CONSUMPTION, p)
                .unwrap();
            split[(i % 3) as usize]
                .push(&m.meter_id, courbe::Channel::CONSUMPTION, p)
                .unwrap();
        }
        // IRIS A: 16 meters (under 10 in every part, over it in all); B and C: 7 each
        // (suppressed, their hidden part 14); D: the rest, in buildings and some houses.
        let iris = match i {
            0..=15 => "A",
            16..=22 => "B",
            23..=29 => "C",
            _ => "D",
        };
        memberships.push(Membership {
            meter: m.meter_id.clone(),
            commune: "75056".into(),
            iris: iris.into(),
            building: (i >= 30 && i % 5 != 0).then(|| format!("b{}", i % 4)),
        });
    }
    whole.ingest(&all).unwrap();
    for (store, batch) in parts.iter().zip(&split) {
        store.ingest(batch).unwrap();
    }
    gov.load_groups(memberships.clone()).unwrap();
    let operator = Principal {
        role: Role::Operator,
        subject: None,
    };
    let range = "from=2024-03-01&to=2024-03-04&tz=Europe/Paris";
    let ad_hoc: Vec<String> = (0..16).map(|i| fleet.meter(i).meter_id).collect();
    let ad_hoc = format!("kind=energy&period=day&meters={}", ad_hoc.join(","));
    for q in [
        "level=all&kind=energy&period=day",
        "level=commune&kind=curve",
        "level=iris&kind=energy&period=day",
        "level=iris&kind=energy&period=week",
        "level=building&kind=curve",
        "level=iris&code=A&kind=curve",
        ad_hoc.as_str(),
    ] {
        let params = Params::from_query(&format!("{range}&{q}")).unwrap();
        let one = aggregates::answer(&*whole.snapshot(), &gov, &operator, &params).unwrap();
        let merged = aggregates::answer_with(&gov, &operator, &params, &|params| {
            let mut merged: Option<Partials> = None;
            for store in &parts {
                let p = Partials::load(
                    &*store.snapshot(),
                    &gov.groups(),
                    params,
                    &gov.config().aggregates,
                )?;
                match &mut merged {
                    None => merged = Some(p),
                    Some(m) => m.merge(p).map_err(courbe::error::ApiError::internal)?,
                }
            }
            Ok(merged.expect("three parts"))
        })
        .unwrap();
        assert_eq!(merged, one, "{q}");
        if q.starts_with("level=iris&kind=energy&period=day") {
            let cells = |code: &str| {
                one.groups
                    .iter()
                    .find(|g| g.group == code)
                    .map(|g| g.cells.iter().filter(|c| c.figures.is_some()).count())
                    .unwrap_or(0)
            };
            assert!(cells("A") > 0, "A is published on the whole fleet: {one:?}");
            assert_eq!((cells("B"), cells("C")), (0, 0));
            // Each part alone holds too few of A to publish it.
            for store in &parts {
                let alone =
                    aggregates::answer(&*store.snapshot(), &gov, &operator, &params).unwrap();
                let a = alone.groups.iter().find(|g| g.group == "A").unwrap();
                assert!(a.cells.iter().all(|c| c.figures.is_none()));
            }
        }
    }

    // By attack: partials that do not hold what the rule decides with are refused, never
    // answered from. A reader summing for another question (fewer groups: no siblings of the
    // asked IRIS), or under a laxer rule (no largest member, so no dominance check), or two
    // readers disagreeing on either, would let the router publish a cell one node suppresses.
    let strict = Governance::open(
        &dir.path().join("gov-dominance"),
        GovernanceConfig {
            aggregates: aggregates::Suppression {
                max_share: Some(0.5),
                ..aggregates::Suppression::default()
            },
            ..GovernanceConfig::default()
        },
    )
    .unwrap();
    strict.load_groups(memberships).unwrap();
    let iris = Params::from_query(&format!("{range}&level=iris&kind=energy&period=day")).unwrap();
    let all = Params::from_query(&format!("{range}&level=all&kind=energy&period=day")).unwrap();
    let load = |params: &Params, rule: &aggregates::Suppression| {
        Partials::load(&*parts[0].snapshot(), &gov.groups(), params, rule).unwrap()
    };
    let lax = aggregates::Suppression::default();
    let refused = |gov: &Governance, params: &Params, partials: Partials, what: &str| {
        let e = aggregates::answer_with(gov, &operator, params, &|_| Ok(partials.clone()))
            .expect_err(what);
        assert_eq!(e.code, courbe::error::ErrorCode::Internal, "{what}: {e:?}");
    };
    refused(
        &gov,
        &iris,
        load(&all, &lax),
        "the partials of level=all for an IRIS question",
    );
    refused(
        &strict,
        &iris,
        load(&iris, &lax),
        "partials without the largest member under a dominance rule",
    );
    // The same partials under the rule they were loaded for are answered (the refusals above
    // are about coverage, not about the partials themselves).
    aggregates::answer_with(&gov, &operator, &iris, &|_| Ok(load(&iris, &lax))).unwrap();
    aggregates::answer_with(&strict, &operator, &iris, &|_| {
        Ok(load(&iris, &strict.config().aggregates))
    })
    .unwrap();
    let mut narrow = load(&iris, &lax);
    assert!(narrow.merge(load(&all, &lax)).is_err(), "merged coverages");
    let mut lax_part = load(&iris, &lax);
    assert!(
        lax_part
            .merge(load(&iris, &strict.config().aggregates))
            .is_err(),
        "merged dominance flags"
    );
}
