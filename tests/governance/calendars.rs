//! Day-colour series and tariff contracts over the real server: who may write and read them,
//! that they survive a restart, and energy split by a meter's contracts, attacked by callers
//! without curve rights choosing their own windows.

use serde_json::{json, Value};

use super::access::fleet_server;
use super::support::*;
use crate::util::Reply;

fn date(days: i64) -> String {
    rfc(day_utc(days))[..10].to_string()
}

fn put(server: &Server, token: &str, path: &str, content_type: &str, body: &str) -> Reply {
    server.call(Some(token), "PUT", path, Some((content_type, body)))
}

/// Tempo colours for days -5 to 0: blue, then red from day -2.
fn tempo_csv() -> String {
    let mut csv = String::from("date,colour\n");
    for d in -5..=0 {
        csv.push_str(&format!(
            "{},{}\n",
            date(d),
            if d < -2 { "BLUE" } else { "RED" }
        ));
    }
    csv
}

#[test]
fn colours_are_written_by_operators_listed_to_every_token_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = fleet_server(&data);
    let body = "date,colour\n2024-01-08,RED\n2024-01-09,PURPLE\n\n2024-1-10,BLUE\n2024-01-08,BLUE\n2024-01-11,WHITE\n";
    for token in [ACME, CONSUMER_A, PUBLIC_BODY, PUBLIC] {
        put(
            &server,
            token,
            "/v1/calendars/tempo/colours",
            "text/csv",
            body,
        )
        .assert_error(403, "forbidden");
    }
    let reply = put(
        &server,
        OPERATOR,
        "/v1/calendars/tempo/colours",
        "text/csv",
        body,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["stored"], 2, "{v}");
    let lines: Vec<&Value> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["line"])
        .collect();
    assert_eq!(lines, vec![&json!(3), &json!(5), &json!(6)], "{v}");
    put(
        &server,
        OPERATOR,
        "/v1/calendars/Bad!/colours",
        "text/csv",
        body,
    )
    .assert_error(400, "invalid_argument");
    drop(server);
    let server = super::support::Server::start(&data);
    for token in [
        OPERATOR,
        ACME,
        OTHER_SUPPLIER,
        CONSUMER_B,
        PUBLIC_BODY,
        PUBLIC,
    ] {
        let reply = server.get(
            token,
            "/v1/calendars/tempo/colours?from=2024-01-01&to=2024-01-11",
        );
        assert_eq!(reply.status, 200, "{token}: {}", reply.body);
        assert_eq!(
            reply.json()["days"],
            json!([{ "date": "2024-01-08", "colour": "RED" }]),
            "{token}"
        );
    }
    server
        .get(PUBLIC, "/v1/calendars/tempo/colours?from=2024-01-01&tz=UTC")
        .assert_error(400, "invalid_argument");
    server
        .get(PUBLIC, "/v1/calendars/tempo/colours?from=yesterday")
        .assert_error(400, "invalid_argument");
    server
        .call(None, "GET", "/v1/calendars/tempo/colours", None)
        .assert_error(401, "unauthorized");
}

#[test]
fn contracts_are_set_by_operators_and_read_by_the_meter_s_consumer_and_a_granted_supplier() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let path = format!("/v1/meters/{A}/contracts");
    let contracts = json!([
        { "option": "HPHC", "from": "2023-01-01", "to": "2024-06-01", "hc": "22:00-06:00" },
        { "option": "TEMPO", "from": "2024-06-01", "to": null },
    ])
    .to_string();
    for token in [ACME, CONSUMER_A, PUBLIC] {
        put(&server, token, &path, "application/json", &contracts).assert_error(403, "forbidden");
    }
    let reply = put(&server, OPERATOR, &path, "application/json", &contracts);
    assert_eq!(reply.status, 200, "{}", reply.body);
    for token in [OPERATOR, CONSUMER_A, ACME] {
        let reply = server.get(token, &path);
        assert_eq!(reply.status, 200, "{token}: {}", reply.body);
        let v = reply.json();
        assert_eq!(v["contracts"][1]["option"], "TEMPO", "{v}");
        assert_eq!(v["contracts"][0]["hc"], "22:00-06:00", "{v}");
    }
    for token in [CONSUMER_B, OTHER_SUPPLIER, PUBLIC_BODY, PUBLIC] {
        server.get(token, &path).assert_error(403, "forbidden");
    }
    for bad in [
        json!([{ "option": "BASE", "from": "2024-01-01", "to": null },
               { "option": "TEMPO", "from": "2024-06-01", "to": null }]),
        json!([{ "option": "HPHC", "from": "2024-01-01", "to": null }]),
        json!([{ "option": "TEMPO", "from": "2024-01-01", "to": null, "hc": "01:00-07:00" }]),
        json!([{ "option": "GAS", "from": "2024-01-01", "to": null }]),
    ] {
        put(
            &server,
            OPERATOR,
            &path,
            "application/json",
            &bad.to_string(),
        )
        .assert_error(400, "invalid_argument");
    }
    put(
        &server,
        OPERATOR,
        &path,
        "application/json",
        "[{\"option\":",
    )
    .assert_error(400, "malformed_document");
}

/// The sum of a period's registers, Wh.
fn register_sum(period: &Value) -> f64 {
    period["by_register"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum()
}

#[test]
fn energy_by_contract_splits_each_day_by_the_option_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    let reply = put(
        &server,
        OPERATOR,
        "/v1/calendars/tempo/colours",
        "text/csv",
        &tempo_csv(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let contracts = json!([
        { "option": "BASE", "from": date(-40), "to": date(-2) },
        { "option": "TEMPO", "from": date(-2), "to": null },
    ]);
    let path = format!("/v1/meters/{A}/contracts");
    let reply = put(
        &server,
        OPERATOR,
        &path,
        "application/json",
        &contracts.to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let energy = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day&tariff=contract",
        date(-3),
        date(-1)
    );
    let v = server.get(CONSUMER_A, &energy).json();
    let periods = v["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2, "{v}");
    let base = &periods[0]["by_register"];
    assert_eq!(base["BASE"], periods[0]["energy_wh"], "{v}");
    let tempo = &periods[1]["by_register"];
    assert!(tempo["HPJR"].as_f64().unwrap() > 0.0, "{v}");
    assert!(tempo["HCJR"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(tempo["HPJB"], 0.0, "{v}");
    assert_eq!(tempo["BASE"], 0.0, "{v}");
    for p in periods {
        let total = p["energy_wh"].as_f64().unwrap();
        assert!((register_sum(p) - total).abs() < 1e-6, "{p}");
    }
    // The same day by an explicit option agrees with the contract; HC: keeps by_tariff.
    let option = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day&tariff=option:TEMPO",
        date(-2),
        date(-1)
    );
    let o = server.get(OPERATOR, &option).json();
    let by_option = o["periods"][0]["by_register"].as_object().unwrap();
    assert_eq!(by_option.len(), 6, "{o}");
    for (register, wh) in by_option {
        assert_eq!(&tempo[register], wh, "{register}: {o} {v}");
    }
    // The night before a red day's 06:00 belongs to the blue day before it.
    assert!(tempo["HCJB"].as_f64().unwrap() > 0.0, "{v}");
    let hc = format!(
        "/v1/meters/{A}/energy?from={}&to={}&period=day&tariff=HC:22:00-06:00",
        date(-2),
        date(-1)
    );
    let h = server.get(OPERATOR, &hc).json();
    assert!(h["periods"][0]["by_tariff"]["HC"].is_number(), "{h}");
    assert!(h["periods"][0].get("by_register").is_none(), "{h}");
    // CSV names one column per register.
    let csv = server.get(OPERATOR, &format!("{energy}&format=csv")).body;
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(",BASE_wh,") && header.contains("HPJR_wh"),
        "{header}"
    );
    // Without contracts, every instant is NO_CONTRACT; an unknown option is a bad tariff.
    let b = format!(
        "/v1/meters/{B}/energy?from={}&to={}&period=day&tariff=contract",
        date(-3),
        date(-1)
    );
    let b = server.get(OPERATOR, &b).json();
    assert_eq!(
        b["periods"][0]["by_register"]["NO_CONTRACT"],
        b["periods"][0]["energy_wh"]
    );
    server
        .get(OPERATOR, &format!("{option}X"))
        .assert_error(400, "bad_tariff");
}

#[test]
fn without_curve_rights_only_the_meter_s_own_contract_splits_energy() {
    let dir = tempfile::tempdir().unwrap();
    let server = fleet_server(&dir.path().join("data"));
    // `other` is granted A's daily data: no curve rights over days -3 and -2.
    let daily = courbe::governance::grants::Kinds::of(courbe::governance::grants::DataKind::Daily);
    server
        .gov
        .create_grant_of(
            A,
            "other",
            day_utc(-10),
            day_utc(300),
            daily,
            "operator:setup",
        )
        .unwrap();
    let contracts =
        json!([{ "option": "HPHC", "from": date(-40), "to": null, "hc": "22:00-06:00" }]);
    let reply = put(
        &server,
        OPERATOR,
        &format!("/v1/meters/{A}/contracts"),
        "application/json",
        &contracts.to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let days = format!("from={}&to={}&period=day", date(-3), date(-1));
    let energy = |query: &str| {
        server.get(
            OTHER_SUPPLIER,
            &format!("/v1/meters/{A}/energy?{days}&{query}"),
        )
    };
    let reply = energy("tariff=contract");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert!(v["periods"][0]["by_register"]["HC"].is_number(), "{v}");
    // A chosen window or option isolates what the caller picks: a half-hour a day, or the
    // difference of two options.
    for query in [
        "tariff=option:HPHC:03:00-03:30",
        "tariff=option:SEASONAL:03:00-03:30",
        "tariff=option:TEMPO",
        "tariff=option:BASE",
        "tariff=HC:03:00-03:30",
        "tariff=contract&tz=UTC",
        "tariff=contract&tariff=option:TEMPO",
    ] {
        let reply = energy(query);
        assert!(
            reply.status == 403 || reply.status == 400,
            "{query}: {} {}",
            reply.status,
            reply.body
        );
        assert_ne!(reply.status, 200, "{query}");
    }
    energy("tariff=option:HPHC:03:00-03:30").assert_error(403, "forbidden");
    // The meter's consumer and a supplier with curve rights choose freely.
    for token in [CONSUMER_A, ACME] {
        let reply = server.get(
            token,
            &format!("/v1/meters/{A}/energy?{days}&tariff=option:HPHC:03:00-03:30"),
        );
        assert_eq!(reply.status, 200, "{token}: {}", reply.body);
    }
}
