//! Prices and costs over HTTP: the price registry (operators write, every token reads), the
//! cost, estimate and comparison answers, and their access rule (a cost is an energy question
//! over whole Paris days: a supplier needs the kinds its figures use), attacked.

use courbe::engine::Batch;
use courbe::governance::auth::token_hash;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::prices::{demo_grids, demo_taxes, grids_csv, taxes_csv};
use serde_json::Value;

use super::support::*;

const DAILY: &str = "tok-supplier-daily";
const POWER: &str = "tok-supplier-power";
const CURVE: &str = "tok-supplier-curve";

/// The Europe/Paris date holding `day_utc(days)` (UTC midnight is 01:00 or 02:00 in Paris).
fn paris_date(days: i64) -> String {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    jiff::Timestamp::from_second(day_utc(days))
        .unwrap()
        .to_zoned(paris)
        .date()
        .to_string()
}

/// A has a curve on days -40..-1 (B on days -3..-1, ten others on days -10..-1), suppliers holding
/// one kind each on A over days -400..300, the demo grids and taxes loaded.
fn prices_server(dir: &std::path::Path) -> Server {
    let server = Server::start(dir);
    let mut tokens = tokens_file_text();
    for (token, name) in [
        (DAILY, "daily_co"),
        (POWER, "power_co"),
        (CURVE, "curve_co"),
    ] {
        tokens.push_str(&format!("{} supplier {name}\n", token_hash(token)));
    }
    std::fs::write(&server.tokens_path, tokens).unwrap();
    let mut batch = Batch::new();
    for d in -40..0 {
        day_batch(&mut batch, A, d, 400 + (d as i32 % 7) * 30);
    }
    for d in -3..0 {
        day_batch(&mut batch, B, d, 200);
    }
    for k in 0..10 {
        for d in -10..0 {
            day_batch(
                &mut batch,
                &format!("0911164261{:04}", 7000 + k),
                d,
                300 + k,
            );
        }
    }
    server.store.ingest(&batch).unwrap();
    for (supplier, kind) in [
        ("daily_co", DataKind::Daily),
        ("power_co", DataKind::MaxPower),
        ("curve_co", DataKind::Curve),
    ] {
        server
            .gov
            .create_grant_of(
                A,
                supplier,
                day_utc(-400),
                day_utc(300),
                Kinds::of(kind),
                "operator:setup",
            )
            .unwrap();
    }
    let put = |path: &str, body: &str| {
        let r = server.call(Some(OPERATOR), "PUT", path, Some(("text/csv", body)));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    put("/v1/prices/grids", &grids_csv(&demo_grids()));
    put("/v1/prices/taxes", &taxes_csv(&demo_taxes()));
    server
}

fn cost_path(meter: &str, from: i64, to: i64, period: &str, offer: &str) -> String {
    format!(
        "/v1/meters/{meter}/cost?from={}&to={}&period={period}&offer={offer}",
        paris_date(from),
        paris_date(to)
    )
}

fn cents(v: &Value) -> i64 {
    v["cents"].as_i64().unwrap()
}

#[test]
fn prices_are_written_by_operators_only_and_read_by_every_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    for token in [OPERATOR, ACME, CONSUMER_A, PUBLIC_BODY, PUBLIC] {
        let r = server.get(token, "/v1/prices/grids");
        assert_eq!(r.status, 200, "{token}: {}", r.body);
        assert_eq!(r.json()["grids"].as_array().unwrap().len(), 4);
        assert_eq!(server.get(token, "/v1/prices/taxes").status, 200);
    }
    let csv = server.get(PUBLIC, "/v1/prices/grids?format=csv");
    assert_eq!(csv.body, grids_csv(&demo_grids()));
    let taxes = server.get(PUBLIC, "/v1/prices/taxes?format=csv");
    assert_eq!(taxes.body, taxes_csv(&demo_taxes()));
    let body = "grid,option,kva,from,to,item,eur\nx,BASE,6,2024-01-01,,subscription,10\nx,BASE,6,2024-01-01,,BASE,0.1\n";
    for token in [ACME, CONSUMER_A, PUBLIC_BODY, PUBLIC] {
        for path in ["/v1/prices/grids", "/v1/prices/taxes"] {
            let r = server.call(Some(token), "PUT", path, Some(("text/csv", body)));
            assert_eq!(r.status, 403, "{token} {path}: {}", r.body);
        }
    }
    assert_eq!(
        server.call(None, "GET", "/v1/prices/grids", None).status,
        401
    );
    // A bad line refuses the whole upload, naming the line.
    let bad = format!("{body}y,BASE,6,2024-01-01,,BASE,0.123456\n");
    let r = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/prices/grids",
        Some(("text/csv", &bad)),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("line 4") && r.body.contains("5 decimals"),
        "{}",
        r.body
    );
    assert_eq!(server.gov.prices().grids().len(), 4);
    // Unknown or repeated parameters are refused.
    for path in [
        "/v1/prices/grids?format=csv&format=json",
        "/v1/prices/grids?meter=1",
        "/v1/prices/grids?format=xml",
    ] {
        assert_eq!(server.get(PUBLIC, path).status, 400, "{path}");
    }
}

#[test]
fn a_cost_gives_each_period_its_lines_sources_and_a_total_that_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    let r = server.get(OPERATOR, &cost_path(A, -30, -2, "day", "bleu-hphc-6"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let periods = v["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 28);
    let mut total = 0;
    for p in periods {
        assert_eq!(p["source"], "curve", "{p}");
        let lines: i64 = p["registers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| cents(&r["cost"]))
            .sum::<i64>()
            + cents(&p["subscription"])
            + p["taxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| cents(&t["amount"]))
                .sum::<i64>();
        assert_eq!(lines, cents(&p["total"]), "{p}");
        assert!(cents(&p["total"]) > 0);
        total += lines;
    }
    assert_eq!(cents(&v["total"]), total);
    let names: Vec<&str> = periods[0]["taxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accise", "cta", "vat_subscription", "vat_energy"]);
    let csv = server.get(
        OPERATOR,
        &format!(
            "{}&format=csv",
            cost_path(A, -30, -2, "month", "bleu-base-6")
        ),
    );
    assert_eq!(csv.status, 200);
    assert!(csv
        .body
        .starts_with("offer,from,to,source,item,name,energy_wh,eur\n"));
    assert!(csv.body.contains(",energy,BASE,"), "{}", csv.body);
    // Bad parameters are named.
    for (path, what) in [
        (cost_path(A, -2, -30, "day", "bleu-base-6"), "before"),
        (cost_path(A, -30, -2, "hour", "bleu-base-6"), "period"),
        (cost_path(A, -30, -2, "day", "nope"), "unknown offer"),
        (
            format!("/v1/meters/{A}/cost?from=2025-1-01&to=2025-02-01&offer=bleu-base-6"),
            "from",
        ),
        (
            format!("/v1/meters/{A}/cost?to=2025-02-01&offer=bleu-base-6"),
            "from",
        ),
    ] {
        let r = server.get(OPERATOR, &path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains(what), "{path}: {}", r.body);
    }
}

#[test]
fn a_supplier_needs_the_kinds_its_cost_figures_use_whatever_route_it_asks() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    let base = cost_path(A, -30, -2, "month", "bleu-base-6");
    let hphc = cost_path(A, -30, -2, "month", "bleu-hphc-6");
    // Whole Paris days without a chosen split: daily data or the curve. The energy of
    // estimated curve points is a sub-day figure: shown with curve rights only.
    let daily = server.get(DAILY, &base);
    assert_eq!(daily.status, 200);
    assert!(
        daily.json()["periods"][0]["estimated_wh"].is_null(),
        "{}",
        daily.body
    );
    let curve = server.get(CURVE, &base);
    assert_eq!(curve.status, 200);
    assert_eq!(
        curve.json()["periods"][0]["estimated_wh"],
        0,
        "{}",
        curve.body
    );
    assert_eq!(server.get(POWER, &base).status, 403, "max_power only");
    // Splitting days into HP/HC or Tempo registers is finer than days: the curve.
    assert_eq!(server.get(CURVE, &hphc).status, 200);
    assert_eq!(server.get(DAILY, &hphc).status, 403);
    let tempo = cost_path(A, -30, -2, "month", "bleu-tempo-6");
    assert_eq!(server.get(DAILY, &tempo).status, 403);
    // A range running outside the grant.
    assert_eq!(
        server
            .get(DAILY, &cost_path(A, -450, -2, "month", "bleu-base-6"))
            .status,
        403
    );
    // Another meter, one nobody holds, another supplier: the same 403.
    for (token, meter) in [(DAILY, B), (DAILY, NOBODY), (OTHER_SUPPLIER, A), (ACME, A)] {
        let r = server.get(token, &cost_path(meter, -30, -2, "month", "bleu-base-6"));
        assert_eq!(r.status, 403, "{token} {meter}: {}", r.body);
    }
    // The comparison and the estimate are the same question: no way around. Twelve months of
    // two whole-day offers with daily data; any split offer among them needs the curve.
    let second = "grid,option,kva,from,to,item,eur\nbase-9,BASE,9,2024-01-01,,subscription,14\nbase-9,BASE,9,2024-01-01,,BASE,0.2\n";
    let r = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/prices/grids",
        Some(("text/csv", second)),
    );
    assert_eq!(r.status, 200);
    let bases = format!("/v1/meters/{A}/offers?offers=bleu-base-6,base-9");
    assert_eq!(server.get(DAILY, &bases).status, 200);
    assert_eq!(server.get(POWER, &bases).status, 403);
    let offers = format!("/v1/meters/{A}/offers?offers=bleu-base-6,bleu-hphc-6");
    assert_eq!(server.get(DAILY, &offers).status, 403);
    assert_eq!(server.get(CURVE, &offers).status, 200);
    assert_eq!(server.get(POWER, &offers).status, 403);
    let later = format!("{bases}&to=2099-01-01");
    assert_eq!(
        server.get(DAILY, &later).status,
        403,
        "a year past the grant"
    );
    let estimate = format!(
        "/v1/meters/{A}/estimate?since={}&offer=bleu-hphc-6",
        paris_date(-20)
    );
    assert_eq!(server.get(DAILY, &estimate).status, 403);
    assert_eq!(server.get(CURVE, &estimate).status, 200);
    let early = format!(
        "/v1/meters/{A}/estimate?since={}&offer=bleu-base-6",
        paris_date(-450)
    );
    assert_eq!(server.get(DAILY, &early).status, 403);
    // The consumer reads its own meter only; public bodies and the public no meter.
    assert_eq!(server.get(CONSUMER_A, &hphc).status, 200);
    assert_eq!(
        server
            .get(CONSUMER_A, &cost_path(B, -3, -1, "day", "bleu-base-6"))
            .status,
        403
    );
    for token in [PUBLIC_BODY, PUBLIC] {
        assert_eq!(server.get(token, &base).status, 403, "{token}");
        assert_eq!(server.get(token, &offers).status, 403, "{token}");
    }
    // Odd parameters: repeated, unknown (a zone, a tariff), or finer than days.
    for path in [
        format!("{base}&offer=bleu-base-6"),
        format!("{base}&tz=UTC"),
        format!("{base}&tariff=option:HPHC:02:00-10:00"),
        format!(
            "/v1/meters/{A}/cost?from={}T12:00:00Z&to={}&offer=bleu-base-6",
            paris_date(-30),
            paris_date(-2)
        ),
        format!("{offers},bleu-base-6"),
        format!("{offers}&offers=bleu-tempo-6"),
    ] {
        let r = server.get(DAILY, &path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
    }
    // A supplier's cost reads are audited with their range.
    let audited = server
        .gov
        .audit_records(|r| r.what == "/v1/meters/:id/cost" && r.who.contains("daily_co"));
    assert!(!audited.is_empty());
}

#[test]
fn the_estimate_makes_the_four_statements_and_says_what_rests_on_estimated_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    let path = format!(
        "/v1/meters/{A}/estimate?since={}&offer=bleu-base-6",
        paris_date(-20)
    );
    let r = server.get(OPERATOR, &path);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let statements: Vec<&str> = v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(statements.len(), 4);
    assert!(statements[0].contains("information"));
    assert!(statements[1].contains("not yet invoiced"));
    assert!(statements[2].contains("not a request for payment"));
    assert!(statements[3].contains("measured"));
    assert_eq!(v["since"], paris_date(-20));
    assert_eq!(v["basis"], serde_json::json!(["measured"]));
    assert_eq!(cents(&v["estimated"]["amount"]), 0);
    assert!(cents(&v["total"]) > 0);
    // A since that is today.
    let r = server.get(
        OPERATOR,
        &format!(
            "/v1/meters/{A}/estimate?since={}&offer=bleu-base-6",
            paris_date(0)
        ),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn offers_are_compared_side_by_side_and_contract_needs_one_grid_of_its_option() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    let r = server.get(
        OPERATOR,
        &format!("/v1/meters/{A}/offers?offers=bleu-base-6,bleu-hphc-6,bleu-tempo-6"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let offers = v["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 3);
    for o in offers {
        assert_eq!(o["months"].as_array().unwrap().len(), 12);
    }
    // No Tempo colours are loaded: Tempo cannot be priced, so nothing is called cheapest.
    assert_eq!(offers[2]["complete"], false);
    assert!(v["cheapest"].is_null(), "{v}");
    let r = server.get(
        OPERATOR,
        &format!("/v1/meters/{A}/offers?offers=bleu-base-6,bleu-hphc-6"),
    );
    let v = r.json();
    let offers = v["offers"].as_array().unwrap();
    let cheapest = offers.iter().min_by_key(|o| cents(&o["total"])).unwrap()["offer"].clone();
    assert_eq!(v["cheapest"], cheapest, "{v}");
    // offer=contract: the meter's contract option priced by the one grid of that option.
    let contracts = serde_json::json!([{ "option": "BASE", "from": "2020-01-01", "to": null }]);
    let r = server.call(
        Some(OPERATOR),
        "PUT",
        &format!("/v1/meters/{A}/contracts"),
        Some(("application/json", &contracts.to_string())),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let contract = cost_path(A, -30, -2, "month", "contract");
    let r = server.get(DAILY, &contract);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["offer"], "bleu-base-6");
    let second = "grid,option,kva,from,to,item,eur\nbase-9,BASE,9,2024-01-01,,subscription,14\nbase-9,BASE,9,2024-01-01,,BASE,0.2\n";
    let r = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/prices/grids",
        Some(("text/csv", second)),
    );
    assert_eq!(r.status, 200);
    let r = server.get(DAILY, &contract);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("base-9") && r.body.contains("bleu-base-6"),
        "{}",
        r.body
    );
    // A dynamic offer is priced at the spot series of its area: none here, so its energy
    // line is not priced (never guessed).
    let dynamic =
        "grid,option,kva,from,to,item,eur\ndyn,DYNAMIC:FR,6,2024-01-01,,subscription,12\n";
    let r = server.call(
        Some(OPERATOR),
        "PUT",
        "/v1/prices/grids",
        Some(("text/csv", dynamic)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = server.get(OPERATOR, &cost_path(A, -30, -2, "month", "dyn"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""register":"SPOT""#), "{}", r.body);
    assert!(r.body.contains(r#""priced":false"#), "{}", r.body);
    // A dynamic offer needs the curve even for a whole-day cost.
    assert_eq!(
        server
            .get(DAILY, &cost_path(A, -30, -2, "month", "dyn"))
            .status,
        403
    );
}

#[test]
fn the_fleet_comparison_is_a_distribution_for_operators_and_public_bodies_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = prices_server(dir.path());
    let path = format!(
        "/v1/fleet/offers?offers=bleu-base-6,bleu-hphc-6&from={}&to={}",
        paris_date(-9),
        paris_date(-2)
    );
    for token in [OPERATOR, PUBLIC_BODY] {
        let r = server.get(token, &path);
        assert_eq!(r.status, 200, "{token}: {}", r.body);
        let v = r.json();
        assert!(v["meters"].as_u64().unwrap() >= 10, "{}", r.body);
        // Every meter took one path under each offer.
        let all = v["meters"].as_u64().unwrap() + v["skipped"].as_u64().unwrap();
        for offer in ["a", "b"] {
            let p = &v["paths"][offer];
            let each = p["summaries"].as_u64().unwrap() + p["curve"].as_u64().unwrap();
            assert_eq!(each, all, "{}", r.body);
        }
        let d = &v["distribution"];
        assert!(cents(&d["q1"]) <= cents(&d["median"]) && cents(&d["median"]) <= cents(&d["q3"]));
    }
    for token in [ACME, DAILY, CONSUMER_A, PUBLIC] {
        assert_eq!(server.get(token, &path).status, 403, "{token}");
    }
    // Fewer meters than the floor (A alone has data then): no distribution for a public body.
    let short = format!(
        "/v1/fleet/offers?offers=bleu-base-6,bleu-hphc-6&from={}&to={}",
        paris_date(-40),
        paris_date(-20)
    );
    let v = server.get(PUBLIC_BODY, &short).json();
    assert!(
        v["distribution"].is_null() && v["suppressed"] == true,
        "{v}"
    );
    assert!(server.get(OPERATOR, &short).json()["distribution"].is_object());
}
