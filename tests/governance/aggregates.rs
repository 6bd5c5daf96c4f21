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
                courbe::Channel::Consumption,
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
fn a_longer_period_is_suppressed_when_one_of_its_days_is() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = communes(&dir.path().join("data"));
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
fn an_erased_meter_is_gone_from_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let (server, meters) = communes(&dir.path().join("data"));
    let d = day_utc(-2);
    let query = format!(
        "level=commune&from={}&to={}&period=day&tz=UTC",
        rfc(d),
        rfc(d + 86_400)
    );
    let before = aggregates(&server, OPERATOR, &query);
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
    let d = day_utc(-2);
    let path = format!(
        "/v1/meters/{m}/compare?from={}&to={}&tz=UTC",
        rfc(d),
        rfc(d + 86_400)
    );
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
        &format!(
            "/v1/meters/{}/compare?from={}&to={}",
            meters[6].0,
            rfc(d),
            rfc(d + 86_400)
        ),
    );
    assert_eq!(other.status, 403);
}

mod properties {
    use std::collections::BTreeMap;

    use courbe::engine::{Batch, Options, Store};
    use courbe::governance::aggregates::{self, Params};
    use courbe::governance::auth::{Principal, Role};
    use courbe::governance::groups::Membership;
    use courbe::governance::{Governance, GovernanceConfig};
    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::support::{day_batch, day_utc, rfc};

    /// A meter of the model: where it lies, on which of two days it has data, its base value.
    #[derive(Clone, Debug)]
    struct M {
        commune: u8,
        iris: u8,
        building: Option<u8>,
        days: [bool; 2],
        base: i32,
    }

    fn meter_strategy() -> impl Strategy<Value = M> {
        (
            0..2u8,
            0..3u8,
            prop::option::of(0..3u8),
            any::<[bool; 2]>(),
            1..1_000i32,
        )
            .prop_map(|(commune, iris, building, days, base)| M {
                commune,
                iris,
                building,
                days,
                base,
            })
    }

    fn codes(m: &M) -> [Option<String>; 4] {
        let commune = format!("C{}", m.commune);
        let iris = format!("{commune}I{}", m.iris);
        let building = m.building.map(|b| format!("{iris}B{b}"));
        [Some(String::new()), Some(commune), Some(iris), building]
    }

    const LEVELS: [&str; 4] = ["all", "commune", "iris", "building"];

    fn ask(store: &Store, gov: &Governance, query: &str) -> Value {
        let uri: axum::http::Uri = format!("/v1/aggregates?{query}").parse().unwrap();
        let params = Params::from_uri(&uri).unwrap();
        let who = Principal {
            role: Role::PublicBody,
            subject: None,
        };
        serde_json::to_value(aggregates::answer(store, gov, &who, &params).unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn published_cells_are_exact_and_no_subtraction_isolates_fewer_than_the_minimum(
            meters in prop::collection::vec(meter_strategy(), 10..40)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let store = Store::open(&data, Options::default()).unwrap();
            let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
            let ids: Vec<String> = (0..meters.len()).map(|i| format!("0911164263{i:04}")).collect();
            let mut batch = Batch::new();
            let mut memberships = Vec::new();
            for (id, m) in ids.iter().zip(&meters) {
                for (d, on) in m.days.iter().enumerate() {
                    if *on {
                        day_batch(&mut batch, id, d as i64 - 3, m.base);
                    }
                }
                let [_, commune, iris, building] = codes(m);
                memberships.push(Membership {
                    meter: id.clone(),
                    commune: commune.unwrap(),
                    iris: iris.unwrap(),
                    building,
                });
            }
            store.ingest(&batch).unwrap();
            gov.load_groups(memberships).unwrap();
            let range = format!("from={}&to={}&tz=UTC", rfc(day_utc(-3)), rfc(day_utc(-1)));
            // Published day cells: (level, code, day) -> (meters, energy).
            let mut published: BTreeMap<(usize, String, usize), (u64, f64)> = BTreeMap::new();
            for (l, level) in LEVELS.iter().enumerate() {
                let days = ask(&store, &gov, &format!("level={level}&period=day&{range}"));
                let total = ask(&store, &gov, &format!("level={level}&period=year&{range}"));
                let min = if *level == "building" { 2 } else { 10 };
                for (g, group) in days["groups"].as_array().unwrap().iter().enumerate() {
                    let code = group["group"].as_str().unwrap().to_string();
                    let members: Vec<usize> = (0..meters.len())
                        .filter(|&i| codes(&meters[i])[l].as_deref() == Some(code.as_str()))
                        .collect();
                    let mut all_days = true;
                    for (d, cell) in group["cells"].as_array().unwrap().iter().enumerate() {
                        if cell["suppressed"] == true {
                            all_days = false;
                            continue;
                        }
                        let active: Vec<usize> =
                            members.iter().copied().filter(|&i| meters[i].days[d]).collect();
                        let energy: f64 = active
                            .iter()
                            .map(|&i| f64::from(24 * meters[i].base + 564))
                            .sum();
                        prop_assert_eq!(cell["meters"].as_u64(), Some(active.len() as u64));
                        prop_assert!(active.len() >= min, "{cell}");
                        prop_assert_eq!(cell["energy_wh"].as_f64(), Some(energy));
                        published.insert((l, code.clone(), d), (active.len() as u64, energy));
                    }
                    // A longer period is published only when all its days are.
                    let whole = &total["groups"][g]["cells"][0];
                    prop_assert_eq!(whole["suppressed"] == true, !all_days, "{}", whole);
                }
            }
            // Inside a published parent, what published children leave over is 0 or >= min.
            for ((l, code, d), (parent_meters, _)) in &published {
                let Some(child) = l.checked_add(1).filter(|&c| c < LEVELS.len()) else {
                    continue;
                };
                let min = if child == 3 { 2 } else { 10 };
                let covered: u64 = published
                    .iter()
                    .filter(|((cl, cc, cd), _)| {
                        *cl == child
                            && cd == d
                            && (0..meters.len()).any(|i| {
                                codes(&meters[i])[child].as_deref() == Some(cc.as_str())
                                    && codes(&meters[i])[*l].as_deref() == Some(code.as_str())
                            })
                    })
                    .map(|(_, (n, _))| *n)
                    .sum();
                let left = parent_meters - covered;
                prop_assert!(left == 0 || left >= min, "{code} day {d}: {left} meters left over");
            }
        }
    }
}
