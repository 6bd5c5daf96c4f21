//! Grants by data kind (Code de la consommation D.224-27 3°): a supplier reads daily data,
//! maximum power or the curve only as its grants allow, whatever route or parameters it tries.

use std::sync::Arc;

use courbe::engine::fs::RealFs;
use courbe::governance::auth::token_hash;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::record_log::RecordLog;
use serde_json::{json, Value};

use super::access::fleet_server;
use super::support::*;

/// Suppliers holding one kind each on A, over days -10 to 300: `daily_co`, `power_co`,
/// `curve_co`.
const DAILY: &str = "tok-supplier-daily";
const POWER: &str = "tok-supplier-power";
const CURVE: &str = "tok-supplier-curve";
/// `mixed_co`: daily data from day -10 to day 5, the curve from two hours before day -2 on.
const MIXED: &str = "tok-supplier-mixed";
/// `split_co`: the curve in two grants, from day -10 to day 5 and from day -3 on.
const SPLIT: &str = "tok-supplier-split";

fn kind(k: DataKind) -> Kinds {
    Kinds::of(k)
}

/// [`fleet_server`] (A: curve on days -3 and -2, max power on day -2) with the suppliers above.
fn kinds_server(dir: &std::path::Path) -> Server {
    let server = fleet_server(dir);
    let mut tokens = tokens_file_text();
    for (token, name) in [
        (DAILY, "daily_co"),
        (POWER, "power_co"),
        (CURVE, "curve_co"),
        (MIXED, "mixed_co"),
        (SPLIT, "split_co"),
    ] {
        tokens.push_str(&format!("{} supplier {name}\n", token_hash(token)));
    }
    std::fs::write(&server.tokens_path, tokens).unwrap();
    let grant = |supplier: &str, from: i64, to: i64, kinds: Kinds| {
        server
            .gov
            .create_grant_of(A, supplier, from, to, kinds, "operator:setup")
            .unwrap();
    };
    let (from, to) = (day_utc(-10), day_utc(300));
    grant("daily_co", from, to, kind(DataKind::Daily));
    grant("power_co", from, to, kind(DataKind::MaxPower));
    grant("curve_co", from, to, kind(DataKind::Curve));
    // A grant is in force only inside its period, so grants in force together all hold now;
    // their union differs from each one's period where the range runs past now.
    grant("mixed_co", from, day_utc(5), kind(DataKind::Daily));
    grant("mixed_co", day_utc(-2) - 7_200, to, kind(DataKind::Curve));
    grant("split_co", from, day_utc(5), kind(DataKind::Curve));
    grant("split_co", day_utc(-3), to, kind(DataKind::Curve));
    server
}

/// The Europe/Paris date (`YYYY-MM-DD`) of `day_utc(days)`.
fn date(days: i64) -> String {
    rfc(day_utc(days))[..10].to_string()
}

/// Paths of A: curve of day -2, whole Paris days -3 and -2, the first half-hour of day -2.
struct Paths {
    curve: String,
    whole_days: String,
    half_hour: String,
}

fn paths() -> Paths {
    let d = day_utc(-2);
    Paths {
        curve: format!(
            "/v1/meters/{A}/curve?from={}&to={}",
            rfc(d),
            rfc(d + 86_400)
        ),
        whole_days: format!("from={}&to={}&period=day", date(-3), date(-1)),
        half_hour: format!("from={}&to={}&period=day", rfc(d), rfc(d + 1_800)),
    }
}

fn energy(query: &str) -> String {
    format!("/v1/meters/{A}/energy?{query}")
}

fn peak(query: &str) -> String {
    format!("/v1/meters/{A}/peak?{query}")
}

/// Whole Paris day `days` (`from=..&to=..&period=day`).
fn paris_day(days: i64) -> String {
    format!("from={}&to={}&period=day", date(days), date(days + 1))
}

fn audit_of(server: &Server, who: &str) -> Vec<Value> {
    server
        .get(OPERATOR, &format!("/v1/audit?meter={A}&who=supplier:{who}"))
        .json()["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_supplier_granted_daily_data_gets_whole_paris_days_and_nothing_finer_nor_a_peak() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    let reply = server.get(DAILY, &energy(&p.whole_days));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["periods"].as_array().map(Vec::len), Some(2));
    for week_or_month in ["period=week", "period=month"] {
        let days = p.whole_days.replace("period=day", week_or_month);
        assert_eq!(server.get(DAILY, &energy(&days)).status, 200, "{days}");
    }
    let d = day_utc(-2);
    for path in [
        p.curve.clone(),
        format!("{}&channel=production", p.curve),
        format!("{}&channel=max_power", p.curve),
        format!("{}&format=columns", p.curve),
        energy(&p.half_hour),
        energy(&format!("{}&channel=production", p.half_hour)),
        energy(&format!("{}&tz=UTC", p.whole_days)),
        energy(&format!("{}&tz=Asia/Kathmandu", p.whole_days)),
        energy(&format!("{}&tz=Etc/GMT-1", p.whole_days)),
        energy(&format!("{}&tariff=HC:03:00-03:30", p.whole_days)),
        energy(&format!("{}&tariff=option:TEMPO", p.whole_days)),
        energy(&format!("from={}&to={}&period=day", rfc(d), date(-1))),
        // A peak is maximum power or the curve: neither is daily data.
        peak(&paris_day(-2)),
        peak(&paris_day(-3)),
        peak(&p.half_hour),
    ] {
        server.get(DAILY, &path).assert_error(403, "forbidden");
        let head = server.call(Some(DAILY), "HEAD", &path, None);
        assert_eq!(head.status, 403, "HEAD {path}");
    }
    // Outside its grant's period, not even whole days.
    let before = format!("from={}&to={}&period=day", date(-12), date(-11));
    server
        .get(DAILY, &energy(&before))
        .assert_error(403, "forbidden");
}

#[test]
fn a_supplier_granted_maximum_power_gets_peaks_from_max_power_and_no_energy() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    let reply = server.get(POWER, &peak(&paris_day(-2)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["periods"][0]["source"], "max_power", "{v}");
    assert_eq!(v["periods"][0]["value"], 6_000);
    let reply = server.get(POWER, &format!("{}&channel=max_power", p.curve));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["points"][0]["value"], 6_000);
    for path in [
        // Day -3 has no max_power: its peak would come from the curve.
        peak(&paris_day(-3)),
        peak(&p.whole_days),
        peak(&p.half_hour),
        peak(&format!("{}&tz=UTC", paris_day(-2))),
        energy(&p.whole_days),
        energy(&format!("{}&channel=production", p.whole_days)),
        energy(&format!(
            "{}&period=month",
            p.whole_days.replace("&period=day", "")
        )),
        energy(&format!("{}&tariff=contract", p.whole_days)),
        p.curve.clone(),
        format!("{}&channel=production", p.curve),
    ] {
        server.get(POWER, &path).assert_error(403, "forbidden");
    }
}

#[test]
fn a_supplier_granted_the_curve_gets_peaks_from_the_curve_and_nothing_once_consent_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    for path in [
        p.curve.clone(),
        energy(&p.whole_days),
        energy(&p.half_hour),
        energy(&format!("{}&tz=UTC&tariff=HC:03:00-03:30", p.whole_days)),
    ] {
        let reply = server.get(CURVE, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    // Day -2 has a max_power record; without max_power granted its peak is the curve's
    // (values 100..=147 W on day -2), and max_power is never read.
    let reply = server.get(CURVE, &peak(&paris_day(-2)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["periods"][0]["source"], "curve", "{v}");
    assert_eq!(v["periods"][0]["value"], 147, "{v}");
    server
        .get(CURVE, &format!("{}&channel=max_power", p.curve))
        .assert_error(403, "forbidden");
    // The same peak for a supplier granted both is max_power's.
    let both = server.get(ACME, &peak(&paris_day(-2))).json();
    assert_eq!(both["periods"][0]["source"], "max_power", "{both}");

    let revoked = server.post_json(
        OPERATOR,
        &format!("/v1/meters/{A}/consent"),
        &json!({"collection": "revoked"}),
    );
    assert_eq!(revoked.status, 201, "{}", revoked.body);
    for path in [
        p.curve.clone(),
        energy(&p.whole_days),
        energy(&p.half_hour),
        peak(&paris_day(-2)),
        peak(&paris_day(-3)),
    ] {
        server.get(CURVE, &path).assert_error(403, "forbidden");
    }
    // Daily data and maximum power do not depend on curve consent.
    assert_eq!(server.get(DAILY, &energy(&p.whole_days)).status, 200);
    assert_eq!(server.get(POWER, &peak(&paris_day(-2))).status, 200);
}

#[test]
fn the_kinds_at_an_instant_are_the_union_of_the_grants_in_force_and_a_range_needs_its_kind_throughout(
) {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    let d3 = day_utc(-3);
    // split_co: two curve grants together hold a range that runs past the end of the first
    // and starts before the second.
    let across = format!(
        "/v1/meters/{A}/curve?from={}&to={}",
        rfc(day_utc(-5)),
        rfc(day_utc(10))
    );
    let reply = server.get(SPLIT, &across);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["points"].as_array().map(Vec::len), Some(96));
    // The later one revoked: nothing holds the range after day 5.
    let grants = server
        .get(OPERATOR, &format!("/v1/meters/{A}/grants"))
        .json();
    let later = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["supplier"] == "split_co")
        .map(|g| g["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let revoked = server.call(
        Some(OPERATOR),
        "DELETE",
        &format!("/v1/meters/{A}/grants/{later}"),
        None,
    );
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    server.get(SPLIT, &across).assert_error(403, "forbidden");

    // mixed_co: daily data and the curve over day -2, daily data alone over day -3.
    assert_eq!(server.get(MIXED, &p.curve).status, 200);
    assert_eq!(server.get(MIXED, &energy(&p.half_hour)).status, 200);
    assert_eq!(server.get(MIXED, &energy(&p.whole_days)).status, 200);
    for path in [
        format!(
            "/v1/meters/{A}/curve?from={}&to={}",
            rfc(d3),
            rfc(d3 + 86_400)
        ),
        // Straddling day -3 and day -2: the curve is not granted over its first half.
        format!(
            "/v1/meters/{A}/curve?from={}&to={}",
            rfc(d3 + 43_200),
            rfc(d3 + 129_600)
        ),
        energy(&format!(
            "from={}&to={}&period=day",
            rfc(d3),
            rfc(d3 + 1_800)
        )),
        energy(&format!("{}&tz=UTC", p.whole_days)),
        peak(&paris_day(-3)),
    ] {
        server.get(MIXED, &path).assert_error(403, "forbidden");
    }
    // Whole days from day -3 to day 10: daily data until day 5, the curve (with consent) from
    // day -2; neither grant alone holds the range, together they hold each instant.
    let long = format!("from={}&to={}&period=day", date(-3), date(10));
    let reply = server.get(MIXED, &energy(&long));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["periods"].as_array().map(Vec::len), Some(13));
    // Without consent the curve grant counts for nothing, and the union has a hole.
    let revoked = server.post_json(
        OPERATOR,
        &format!("/v1/meters/{A}/consent"),
        &json!({"collection": "revoked", "from": rfc(day_utc(2))}),
    );
    assert_eq!(revoked.status, 201, "{}", revoked.body);
    server
        .get(MIXED, &energy(&long))
        .assert_error(403, "forbidden");
    assert_eq!(server.get(MIXED, &energy(&p.whole_days)).status, 200);
}

#[test]
fn a_grant_request_with_unknown_empty_repeated_or_missing_kinds_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let path = format!("/v1/meters/{B}/grants");
    let body = |kinds: Option<Value>| {
        let mut b = json!({"supplier": "zeta", "from": rfc(day_utc(-1)), "to": rfc(day_utc(30))});
        if let Some(k) = kinds {
            b["kinds"] = k;
        }
        b
    };
    for (kinds, names) in [
        (Some(json!(["daily", "daily"])), "twice"),
        (Some(json!(["daily", "weekly"])), r#""weekly""#),
        (Some(json!(["Daily"])), r#""Daily""#),
        (Some(json!(["curve "])), r#""curve ""#),
        (Some(json!([])), "empty"),
        (None, "missing `kinds`"),
    ] {
        let reply = server.post_json(OPERATOR, &path, &body(kinds.clone()));
        let message = reply.assert_error(400, "invalid_argument");
        assert!(message.contains(names), "{kinds:?}: {message}");
    }
    for kinds in [
        json!("daily"),
        json!([1]),
        json!({"daily": true}),
        json!(null),
    ] {
        let reply = server.post_json(OPERATOR, &path, &body(Some(kinds.clone())));
        assert_eq!(reply.status, 400, "{kinds}: {}", reply.body);
    }
    // The same key twice: the JSON reader refuses it rather than picking one.
    let twice = format!(
        r#"{{"supplier":"zeta","from":"{}","to":"{}","kinds":["daily"],"kinds":["curve"]}}"#,
        rfc(day_utc(-1)),
        rfc(day_utc(30))
    );
    let reply = server.call(
        Some(OPERATOR),
        "POST",
        &path,
        Some(("application/json", &twice)),
    );
    reply.assert_error(400, "malformed_document");
    let listed = server.get(OPERATOR, &path).json();
    assert_eq!(listed["grants"], json!([]), "nothing refused was recorded");
    // Accepted in any order, answered in one.
    let reply = server.post_json(OPERATOR, &path, &body(Some(json!(["curve", "daily"]))));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["kinds"], json!(["daily", "curve"]));
    let listed = server.get(OPERATOR, &path).json();
    assert_eq!(listed["grants"][0]["kinds"], json!(["daily", "curve"]));
}

#[test]
fn each_audited_read_names_the_kinds_it_drew_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    for (token, path) in [
        (DAILY, energy(&p.whole_days)),
        (POWER, peak(&paris_day(-2))),
        (CURVE, p.curve.clone()),
        (CURVE, peak(&paris_day(-2))),
        (
            MIXED,
            energy(&format!("from={}&to={}&period=day", date(-3), date(10))),
        ),
        (ACME, peak(&paris_day(-2))),
        (ACME, format!("/v1/meters/{A}/consent")),
    ] {
        let reply = server.get(token, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let kinds = |who: &str| -> Vec<Value> {
        audit_of(&server, who)
            .into_iter()
            .map(|r| r["kinds"].clone())
            .collect()
    };
    assert_eq!(kinds("daily_co"), [json!(["daily"])]);
    assert_eq!(kinds("power_co"), [json!(["max_power"])]);
    assert_eq!(kinds("curve_co"), [json!(["curve"]), json!(["curve"])]);
    assert_eq!(kinds("mixed_co"), [json!(["daily", "curve"])]);
    assert_eq!(
        kinds("acme"),
        [json!(["max_power", "curve"]), json!([])],
        "a consent read draws on no kind of data"
    );
    // Refused reads leave nothing.
    server.get(DAILY, &p.curve).assert_error(403, "forbidden");
    assert_eq!(audit_of(&server, "daily_co").len(), 1);
}

#[test]
fn a_grant_recorded_before_grants_had_kinds_still_allows_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The record as the build before kinds wrote it.
    let registry = data.join("governance");
    std::fs::create_dir_all(&registry).unwrap();
    let log = RecordLog::open(
        Arc::new(RealFs),
        &registry.join("grants.log"),
        |_: Value| {},
    )
    .unwrap();
    log.append(&json!({
        "kind": "created", "id": 1, "meter": A, "supplier": "acme",
        "from_utc": day_utc(-10), "to_utc": day_utc(300), "created_utc": day_utc(-10),
        "by": "operator:ops", "revoked_utc": null
    }))
    .unwrap();
    drop(log);
    let server = Server::start(&data);
    let mut batch = courbe::engine::Batch::new();
    day_batch(&mut batch, A, -2, 100);
    batch
        .push(
            A,
            courbe::Channel::MAX_POWER,
            max_power_point(day_utc(-2) + 3_600, 6_000),
        )
        .unwrap();
    server.store.ingest(&batch).unwrap();
    let grants = server.gov.grants_of(A);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].kinds, Kinds::ALL);
    let p = paths();
    for path in [
        p.curve.clone(),
        energy(&paris_day(-2)),
        energy(&p.half_hour),
        peak(&paris_day(-2)),
    ] {
        let reply = server.get(ACME, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let listed = server
        .get(OPERATOR, &format!("/v1/meters/{A}/grants"))
        .json();
    assert_eq!(
        listed["grants"][0]["kinds"],
        json!(["daily", "max_power", "curve"])
    );
}

#[test]
fn a_kind_refused_is_refused_the_same_for_a_meter_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let p = paths();
    for (token, path) in [
        (DAILY, p.curve.clone()),
        (POWER, energy(&p.whole_days)),
        (DAILY, peak(&paris_day(-2))),
    ] {
        let held = server.get(token, &path);
        let absent = server.get(token, &path.replace(A, NOBODY));
        assert_eq!(held.status, 403, "{path}");
        assert_eq!((absent.status, &absent.body), (403, &held.body), "{path}");
    }
}

/// Runs `courbe --data DATA ARGS`; returns the exit status, stdout and stderr.
fn courbe(data: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_courbe"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_grant_command_records_kinds_as_the_api_does_and_refuses_bad_ones_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(courbe::engine::Store::open(&data, courbe::engine::Options::default()).unwrap());
    let (from, to) = (date(-10), date(30));
    let add = |kinds: &str| {
        courbe(
            &data,
            &[
                "grant",
                "add",
                "--meter",
                A,
                "--supplier",
                "acme",
                "--from",
                &from,
                "--to",
                &to,
                "--kinds",
                kinds,
            ],
        )
    };
    for (kinds, names) in [
        ("daily,weekly", "\"weekly\""),
        ("daily,daily", "twice"),
        ("", "empty"),
        ("curve,", "\"\""),
    ] {
        let (status, stdout, stderr) = add(kinds);
        assert_eq!(status, 1, "{kinds}: {stdout}{stderr}");
        assert!(stderr.contains(names), "{kinds}: {stderr}");
    }
    let (status, stdout, stderr) = add("max_power, daily");
    assert_eq!(status, 0, "{stderr}");
    let grant: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(grant["kinds"], json!(["daily", "max_power"]), "{grant}");
    let (status, stdout, _) = courbe(&data, &["grant", "list", "--meter", A]);
    assert_eq!(status, 0);
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        listed["grants"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["grants"][0]["kinds"], json!(["daily", "max_power"]));
    let id = grant["id"].to_string();
    let (status, stdout, _) = courbe(&data, &["grant", "revoke", "--meter", A, "--id", &id]);
    assert_eq!(status, 0);
    let revoked: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(revoked["in_force"], false, "{revoked}");
    let (status, _, stderr) = courbe(&data, &["grant", "revoke", "--meter", A, "--id", "99"]);
    assert_eq!(status, 1, "{stderr}");
    // The server reads what the command wrote.
    let server = Server::start(&data);
    let grants = server.gov.grants_of(A);
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].kinds,
        kind(DataKind::Daily).with(DataKind::MaxPower)
    );
    assert!(grants[0].revoked_utc.is_some());
    // While it runs, the command refuses rather than write beside it.
    let (status, _, stderr) = courbe(&data, &["grant", "list", "--meter", A]);
    assert_ne!(status, 0, "{stderr}");
}

/// A meter without a curve: what every Linky meter sends.
const C: &str = "09111642617349";

/// The Europe/Paris midnight that starts the local date `date` (`YYYY-MM-DD`).
fn paris_midnight(date: &str) -> i64 {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let d: jiff::civil::Date = date.parse().unwrap();
    d.to_zoned(paris).unwrap().timestamp().as_second()
}

fn reading(ts_utc: i64, value: i32) -> courbe::Point {
    courbe::Point {
        ts_utc,
        value,
        step_min: 1440,
        quality: courbe::Quality::Measured,
    }
}

/// [`kinds_server`] plus meter `C`: daily energy of Paris days -5 to -2, its `BASE` index at
/// each of their midnights and the next, and max power on day -2; every supplier above holds
/// its kind on `C` from the first day of the year of day -2, and `acme` daily data and maximum
/// power.
fn daily_server(dir: &std::path::Path) -> Server {
    let server = kinds_server(dir);
    let base = server.store.index_channel("BASE").unwrap();
    let mut batch = courbe::engine::Batch::new();
    let mut total = 1_000_000;
    for days in -5..=-1 {
        let at = paris_midnight(&date(days));
        batch.push(C, base, reading(at, total)).unwrap();
        if days < -1 {
            batch
                .push(C, courbe::Channel::DAILY_ENERGY, reading(at, 5_000))
                .unwrap();
            total += 5_000;
        }
    }
    batch
        .push(
            C,
            courbe::Channel::MAX_POWER,
            max_power_point(paris_midnight(&date(-2)) + 7_200, 4_200),
        )
        .unwrap();
    server.store.ingest(&batch).unwrap();
    let year_start = paris_midnight(&format!("{}-01-01", &date(-2)[..4]));
    let grant = |supplier: &str, kinds: Kinds| {
        let to = day_utc(300);
        server
            .gov
            .create_grant_of(C, supplier, year_start, to, kinds, "operator:setup")
            .unwrap();
    };
    grant("daily_co", kind(DataKind::Daily));
    grant("power_co", kind(DataKind::MaxPower));
    grant("curve_co", kind(DataKind::Curve));
    grant("acme", kind(DataKind::Daily).with(DataKind::MaxPower));
    server
}

#[test]
fn energy_answered_from_daily_readings_is_daily_data_and_maximum_power_alone_never_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = daily_server(&dir.path().join("data"));
    let days = format!("from={}&to={}&period=day", date(-5), date(-2));
    let path = format!("/v1/meters/{C}/energy?{days}");
    let reply = server.get(DAILY, &path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["periods"][0]["source"], "daily", "{v}");
    assert_eq!(v["periods"][0]["energy_wh"], 5_000.0, "{v}");
    server.get(POWER, &path).assert_error(403, "forbidden");
    let month = format!(
        "/v1/meters/{C}/energy?from={}&to={}&period=month",
        date(-5),
        date(-2)
    );
    server.get(POWER, &month).assert_error(403, "forbidden");
    // The same days in another zone, or a part of one, are not daily data.
    for finer in [
        format!("{path}&tz=UTC"),
        format!(
            "/v1/meters/{C}/energy?from={}&to={}&period=day",
            rfc(paris_midnight(&date(-5))),
            rfc(paris_midnight(&date(-5)) + 43_200)
        ),
    ] {
        server.get(DAILY, &finer).assert_error(403, "forbidden");
    }
}

#[test]
fn indexes_need_daily_data_and_a_years_statement_needs_daily_data_and_maximum_power() {
    let dir = tempfile::tempdir().unwrap();
    let server = daily_server(&dir.path().join("data"));
    let index = format!(
        "/v1/meters/{C}/index?from={}&to={}&period=day",
        date(-5),
        date(-1)
    );
    let reply = server.get(DAILY, &index);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("1000000"), "{}", reply.body);
    for token in [POWER, CURVE] {
        server.get(token, &index).assert_error(403, "forbidden");
    }
    // Before the grants' first day: nothing.
    let year = &date(-2)[..4];
    let earlier = format!(
        "/v1/meters/{C}/index?from={}-01-01&to={}-02-01&period=month",
        year.parse::<i32>().unwrap() - 1,
        year.parse::<i32>().unwrap() - 1
    );
    server.get(DAILY, &earlier).assert_error(403, "forbidden");
    let summary = format!("/v1/meters/{C}/summary?year={year}");
    let reply = server.get(ACME, &summary);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["months"].as_array().map(Vec::len), Some(12), "{v}");
    // One kind is not the statement: it is refused whole, never answered in part.
    for token in [DAILY, POWER, CURVE] {
        server.get(token, &summary).assert_error(403, "forbidden");
    }
    let records = server
        .get(OPERATOR, &format!("/v1/audit?meter={C}&who=supplier:acme"))
        .json();
    let last = records["records"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["what"], "/v1/meters/:id/summary");
    assert_eq!(last["kinds"], json!(["daily", "max_power"]), "{last}");
}

#[test]
fn the_data_connect_routes_are_held_to_the_same_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let server = kinds_server(&dir.path().join("data"));
    let range = format!("usage_point_id={A}&start={}&end={}", date(-2), date(-1));
    let daily = format!("/metering_data_dc/v5/daily_consumption?{range}");
    let curve = format!("/metering_data_clc/v5/consumption_load_curve?{range}");
    let power = format!("/metering_data_dcmp/v5/daily_consumption_max_power?{range}");
    for (token, path, status) in [
        (DAILY, &daily, 200),
        (DAILY, &curve, 403),
        (DAILY, &power, 403),
        (POWER, &daily, 403),
        (POWER, &curve, 403),
        (POWER, &power, 200),
        (CURVE, &curve, 200),
        (CURVE, &daily, 200),
        // Data Connect's maximum power is max_power's alone: the curve's grant gives none.
        (CURVE, &power, 403),
        (ACME, &power, 200),
    ] {
        let reply = server.get(token, path);
        assert_eq!(reply.status, status, "{token} {path}: {}", reply.body);
    }
    let reply = server.get(POWER, &power);
    assert!(reply.body.contains("6000"), "{}", reply.body);
}

#[test]
fn a_years_statement_never_carries_a_curve_peak_nor_reads_odd_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let server = daily_server(&dir.path().join("data"));
    let year: i16 = date(-2)[..4].parse().unwrap();
    // One curve reading in a month without max_power (January, or February when the
    // max_power of day -2 is in January): its peak can only come from the curve.
    let month = if &date(-2)[5..7] == "01" { 2 } else { 1 };
    let at = paris_midnight(&format!("{year}-{month:02}-15")) + 12 * 3600;
    let mut batch = courbe::engine::Batch::new();
    batch
        .push(
            C,
            courbe::Channel::CONSUMPTION,
            courbe::Point {
                ts_utc: at,
                value: 9_999,
                step_min: 30,
                quality: courbe::Quality::Measured,
            },
        )
        .unwrap();
    server.store.ingest(&batch).unwrap();
    let summary = format!("/v1/meters/{C}/summary?year={year}");
    let peak_of = |token: &str| {
        let reply = server.get(token, &summary);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["months"][month - 1]["max_power"].clone()
    };
    // The operator sees the curve's peak; a supplier granted daily data and maximum power but
    // not the curve gets that month without a peak, and the year's peak from max_power only.
    assert_eq!(peak_of(OPERATOR)["source"], "curve");
    assert_eq!(peak_of(OPERATOR)["value"], 9_999);
    let acme = peak_of(ACME);
    assert!(acme["value"].is_null(), "{acme}");
    let year_peak = server.get(ACME, &summary).json()["year_total"]["max_power"].clone();
    assert_eq!(year_peak["source"], "max_power", "{year_peak}");
    // Odd or repeated parameters are refused before any answer, whoever asks.
    for path in [
        format!("/v1/meters/{C}/summary?year={year}&year={}", year - 1),
        format!("/v1/meters/{C}/summary?year={year}&%79ear={year}"),
        format!("/v1/meters/{C}/summary?year={year}&tz=UTC"),
        format!("/v1/meters/{C}/summary?year={year}&from={}", date(-5)),
        format!("/v1/meters/{C}/summary?year=99999"),
        format!("/v1/meters/{C}/summary"),
        format!(
            "/v1/meters/{C}/index?from={}&to={}&period=day&tz=UTC",
            date(-5),
            date(-1)
        ),
        format!(
            "/v1/meters/{C}/index?from={}&to={}&period=day&period=month",
            date(-5),
            date(-1)
        ),
    ] {
        for token in [ACME, OPERATOR] {
            server
                .get(token, &path)
                .assert_error(400, "invalid_argument");
        }
    }
}
