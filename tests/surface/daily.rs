//! A fleet without curves end to end: the R151 flow `courbe gen --kind r151` writes, ingested over
//! HTTP, answers energy, indexes and the year's summary from the indexes, equal to what the
//! meters' curves give.

use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe::query::{self, Calendar, Period};
use courbe::{point_of, Channel};
use courbe_server::cli::daily::{
    day_colours, meter_daily, tempo_colours, write_r151_footer, write_r151_header, write_r151_meter,
};
use courbe_server::http::ServerConfig;
use courbe_workload::{Fleet, FleetConfig};

use crate::util::{get, post, Server};

#[test]
fn indexes_ingested_from_r151_answer_the_curves_monthly_energy_indexes_and_year() {
    let fleet = Fleet::new(FleetConfig {
        meters: 10,
        start: jiff::civil::date(2024, 1, 1),
        days: 100,
        ..FleetConfig::default()
    });
    let colours = day_colours(&tempo_colours(&fleet));
    let mut xml = Vec::new();
    write_r151_header(&mut xml).unwrap();
    let mut derived = Vec::new();
    for index in [0, 6, 9] {
        let series = fleet.meter(index);
        let daily = meter_daily(&fleet, index, &series, &colours).unwrap();
        write_r151_meter(&mut xml, &series, &daily).unwrap();
        derived.push((series, daily));
    }
    write_r151_footer(&mut xml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let server = Server::start(store.clone(), ServerConfig::default());
    let reply = post(
        &server.url("/v1/ingest"),
        "application/xml",
        std::str::from_utf8(&xml).unwrap(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.json()["rejected"].as_array().unwrap().is_empty(),
        "{}",
        reply.body
    );
    store.flush().unwrap();

    // The reference: each meter's curve in another store, its monthly energy exact in W·min.
    let curve_dir = tempfile::tempdir().unwrap();
    let curves = Store::open(curve_dir.path(), Options::default()).unwrap();
    let mut batch = courbe::engine::Batch::new();
    for (series, _) in &derived {
        for r in &series.consumption {
            batch
                .push(&series.meter_id, Channel::CONSUMPTION, point_of(r))
                .unwrap();
        }
    }
    curves.ingest(&batch).unwrap();
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let at = |d: jiff::civil::Date| d.to_zoned(tz.clone()).unwrap().timestamp().as_second();
    let calendar = Calendar {
        from_utc: at(jiff::civil::date(2024, 1, 1)),
        to_utc: at(jiff::civil::date(2024, 4, 1)),
        period: Period::Month,
        tz: tz.clone(),
    };
    for (series, daily) in &derived {
        let meter = &series.meter_id;
        let want = query::energy(
            &*curves.snapshot(),
            meter,
            Channel::CONSUMPTION,
            &calendar,
            None,
        )
        .unwrap();
        let reply = get(&server.url(&format!(
            "/v1/meters/{meter}/energy?from=2024-01-01&to=2024-04-01&period=month"
        )));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let periods = reply.json()["periods"].as_array().unwrap().clone();
        assert_eq!(periods.len(), 3);
        for (p, w) in periods.iter().zip(&want) {
            assert_eq!(p["source"], "index", "{meter}: {p}");
            // Counters hold whole Wh: each register's difference is within 1 Wh of its exact
            // share of the curve.
            let got = p["energy_wh"].as_f64().unwrap();
            let registers = daily.supplier.registers.len() as f64;
            assert!(
                (got - w.energy_wh()).abs() <= registers,
                "{meter}: {got} against the curve's {}",
                w.energy_wh()
            );
        }

        // Monthly indexes: the derived counters at each month's first instant.
        let reply = get(&server.url(&format!(
            "/v1/meters/{meter}/index?from=2024-01-01&to=2024-04-01&period=month"
        )));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let v = reply.json();
        let names: Vec<String> = daily
            .supplier
            .registers
            .iter()
            .chain(&daily.distributor.registers)
            .cloned()
            .collect();
        let mut listed: Vec<String> = v["registers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        for row in v["readings"].as_array().unwrap() {
            let t = row["at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap();
            for (name, column) in daily.supplier.registers.iter().zip(&daily.supplier.indexes) {
                let want = column.iter().find(|p| p.ts_utc == t.as_second()).unwrap();
                assert_eq!(
                    row["indexes"][name]["wh"], want.value,
                    "{meter} {name} at {t}"
                );
            }
        }

        // The year: three months answered from the indexes, the rest empty; peaks from R151.
        let reply = get(&server.url(&format!("/v1/meters/{meter}/summary?year=2024")));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let v = reply.json();
        let months = v["months"].as_array().unwrap();
        assert_eq!(months.len(), 12);
        for (i, m) in months.iter().enumerate() {
            let source = if i < 3 { "index" } else { "none" };
            assert_eq!(m["source"], source, "{meter} month {i}: {m}");
            if i < 3 {
                assert_eq!(m["max_power"]["source"], "max_power");
                let sum: i64 = daily
                    .supplier
                    .registers
                    .iter()
                    .map(|r| m["by_register"][r].as_i64().unwrap())
                    .sum();
                assert_eq!(sum as f64, m["energy_wh"].as_f64().unwrap());
            }
        }
    }
}
