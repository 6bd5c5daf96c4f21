//! Arrow IPC stream answers (`format=arrow`, `Accept: application/vnd.apache.arrow.stream`) and
//! the fleet answers streamed as they are computed: the rows of every Arrow answer are the JSON
//! answer's, errors stay JSON with their status, and a streamed answer is the whole one.

use std::io::Read;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int32Type, Int64Type, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use courbe::engine::{Options, Store};
use courbe::question::{Asked, Encoding, Limits, QueryKind, Question};
use courbe_server::http::body;
use courbe_server::http::stream::{self, Slicing};
use courbe_server::http::ServerConfig;
use serde_json::Value;

use super::support::{courbe, courbe_ok, Server};
use crate::util;

const ARROW: &str = "application/vnd.apache.arrow.stream";
/// Ten days around the spring DST change and the end of March (two Paris months).
const RANGE: &str = "from=2024-03-25&to=2024-04-04";

/// A store of 30 generated meters from 2024-03-20 for 20 days (the DST day and a month boundary
/// inside), and the first meter's id.
fn generated_store(dir: &std::path::Path) -> (String, String) {
    let data = dir.join("data").display().to_string();
    let csv = courbe_ok(
        &[
            "gen",
            "--meters",
            "30",
            "--days",
            "20",
            "--start",
            "2024-03-20",
            "--seed",
            "14",
        ],
        None,
    );
    courbe_ok(&["ingest", "--data", &data, "-"], Some(csv.as_bytes()));
    let meter = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .expect("a first row")
        .to_string();
    (data, meter)
}

struct Raw {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn get_raw(url: &str, accept: Option<&str>) -> Raw {
    let mut request = util::agent().get(url);
    if let Some(accept) = accept {
        request = request.set("Accept", accept);
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_string();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("the whole body");
    Raw {
        status,
        content_type,
        body,
    }
}

/// The batches of an Arrow IPC stream, read to its end-of-stream marker.
fn read_stream(bytes: &[u8]) -> Vec<RecordBatch> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC stream");
    reader.map(|b| b.expect("a record batch")).collect()
}

/// An Arrow answer read whole: 200, the Arrow media type, its batches.
fn arrow(server: &Server, path: &str) -> Vec<RecordBatch> {
    let reply = get_raw(&server.url(path), None);
    assert_eq!(
        reply.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, ARROW, "{path}");
    read_stream(&reply.body)
}

fn json(server: &Server, path: &str) -> Value {
    let reply = util::get(&server.url(path));
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

fn epoch(text: &Value) -> i64 {
    text.as_str()
        .expect("an instant")
        .parse::<jiff::Timestamp>()
        .expect("RFC 3339")
        .as_second()
}

/// Column `name` of every batch, each value turned into JSON as the JSON answer writes it
/// (instants as Unix seconds, dictionaries as their text).
fn column(batches: &[RecordBatch], name: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(name).expect(name);
        for i in 0..array.len() {
            if array.is_null(i) {
                out.push(Value::Null);
                continue;
            }
            let value = match array.data_type() {
                arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Second, Some(tz)) => {
                    assert_eq!(&**tz, "UTC");
                    Value::from(array.as_primitive::<TimestampSecondType>().value(i))
                }
                arrow_schema::DataType::Int32 => {
                    Value::from(array.as_primitive::<Int32Type>().value(i))
                }
                arrow_schema::DataType::Int64 => {
                    Value::from(array.as_primitive::<Int64Type>().value(i))
                }
                arrow_schema::DataType::UInt16 => {
                    Value::from(array.as_primitive::<UInt16Type>().value(i))
                }
                arrow_schema::DataType::UInt32 => {
                    Value::from(array.as_primitive::<UInt32Type>().value(i))
                }
                arrow_schema::DataType::UInt64 => {
                    Value::from(array.as_primitive::<UInt64Type>().value(i))
                }
                arrow_schema::DataType::Float64 => {
                    Value::from(array.as_primitive::<Float64Type>().value(i))
                }
                arrow_schema::DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
                arrow_schema::DataType::Dictionary(..) => {
                    let dict = array.as_dictionary::<UInt8Type>();
                    let key = usize::from(dict.keys().value(i));
                    Value::from(dict.values().as_string::<i32>().value(key))
                }
                other => panic!("{name}: unexpected type {other}"),
            };
            out.push(value);
        }
    }
    out
}

/// The JSON values of `field` of each row, instants as Unix seconds when `instant`.
fn json_column(rows: &[Value], field: &str, instant: bool) -> Vec<Value> {
    rows.iter()
        .map(|r| match instant {
            true => Value::from(epoch(&r[field])),
            false => r[field].clone(),
        })
        .collect()
}

fn metadata(batches: &[RecordBatch], key: &str) -> String {
    batches
        .first()
        .and_then(|b| b.schema().metadata().get(key).cloned())
        .unwrap_or_else(|| panic!("no schema metadata {key}"))
}

#[test]
fn every_arrow_answer_holds_the_rows_of_the_json_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, meter) = generated_store(dir.path());
    let server = Server::start(std::path::Path::new(&data), ServerConfig::default());

    let path = format!("/v1/meters/{meter}/curve?{RANGE}");
    let (a, j) = (
        arrow(&server, &format!("{path}&format=arrow")),
        json(&server, &path),
    );
    let points = j["points"].as_array().expect("points");
    assert!(points.len() > 400, "{}", points.len());
    assert_eq!(column(&a, "ts"), json_column(points, "ts", true));
    for field in ["value", "step_min", "quality"] {
        assert_eq!(
            column(&a, field),
            json_column(points, field, false),
            "{field}"
        );
    }
    assert_eq!(metadata(&a, "meter"), meter);
    assert_eq!(metadata(&a, "unit"), "W");

    for query in [
        "period=day&tariff=HC:22:00-06:00",
        "period=week",
        "period=day&tariff=option:HPHC:22:00-06:00",
    ] {
        let path = format!("/v1/meters/{meter}/energy?{RANGE}&{query}");
        let (a, j) = (
            arrow(&server, &format!("{path}&format=arrow")),
            json(&server, &path),
        );
        let periods = j["periods"].as_array().expect("periods");
        assert!(!periods.is_empty());
        for field in ["start", "end"] {
            assert_eq!(
                column(&a, field),
                json_column(periods, field, true),
                "{query}"
            );
        }
        for field in ["energy_wh", "points", "expected_points", "source"] {
            assert_eq!(
                column(&a, field),
                json_column(periods, field, false),
                "{query}"
            );
        }
        if query.contains("HC:") && !query.contains("option") {
            let hc: Vec<Value> = periods
                .iter()
                .map(|p| p["by_tariff"]["HC"].clone())
                .collect();
            assert_eq!(column(&a, "hc_wh"), hc, "{query}");
        }
        if query.contains("option") {
            let hp: Vec<Value> = periods
                .iter()
                .map(|p| p["by_register"]["HP"].clone())
                .collect();
            assert_eq!(column(&a, "HP_wh"), hp, "{query}");
        }
        assert_eq!(metadata(&a, "tz"), "Europe/Paris");
    }

    let path = format!("/v1/fleet/curve?{RANGE}");
    let (a, j) = (
        arrow(&server, &format!("{path}&format=arrow")),
        json(&server, &path),
    );
    let points = j["points"].as_array().expect("points");
    assert_eq!(
        points.len(),
        10 * 48 - 2,
        "ten days at 30 minutes, one of 23 hours"
    );
    assert_eq!(column(&a, "ts"), json_column(points, "ts", true));
    assert_eq!(column(&a, "value"), json_column(points, "value", false));
    assert_eq!(column(&a, "meters"), json_column(points, "meters", false));

    let path = format!("/v1/fleet/energy?{RANGE}&period=day");
    let (a, j) = (
        arrow(&server, &format!("{path}&format=arrow")),
        json(&server, &path),
    );
    let rows: Vec<(Value, Value, Value, Value)> = j["meters"]
        .as_array()
        .expect("meters")
        .iter()
        .flat_map(|m| {
            m["periods"].as_array().expect("periods").iter().map(|p| {
                (
                    m["meter"].clone(),
                    Value::from(epoch(&p["start"])),
                    Value::from(epoch(&p["end"])),
                    p["energy_wh"].clone(),
                )
            })
        })
        .collect();
    assert_eq!(rows.len(), 30 * 10);
    let columns: Vec<Vec<Value>> = ["meter_id", "start", "end", "energy_wh"]
        .iter()
        .map(|c| column(&a, c))
        .collect();
    let arrow_rows: Vec<(Value, Value, Value, Value)> = (0..rows.len())
        .map(|i| {
            (
                columns[0][i].clone(),
                columns[1][i].clone(),
                columns[2][i].clone(),
                columns[3][i].clone(),
            )
        })
        .collect();
    assert_eq!(arrow_rows, rows);
}

#[test]
fn the_accept_header_asks_for_arrow_and_an_explicit_format_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, meter) = generated_store(dir.path());
    let server = Server::start(std::path::Path::new(&data), ServerConfig::default());
    let curve = server.url(&format!("/v1/meters/{meter}/curve?{RANGE}"));

    let asked = get_raw(&curve, Some(&format!("text/html, {ARROW};q=0.9")));
    assert_eq!((asked.status, asked.content_type.as_str()), (200, ARROW));
    let by_format = get_raw(&format!("{curve}&format=arrow"), None);
    assert_eq!(asked.body, by_format.body);

    let explicit = get_raw(&format!("{curve}&format=csv"), Some(ARROW));
    assert_eq!(explicit.content_type, "text/csv");
    let refused = get_raw(&curve, Some(&format!("{ARROW};q=0")));
    assert_eq!(refused.content_type, "application/json");
    // A question without an Arrow answer answers JSON whatever the header.
    let peak = get_raw(
        &server.url(&format!("/v1/meters/{meter}/peak?{RANGE}&period=day")),
        Some(ARROW),
    );
    assert_eq!(
        (peak.status, peak.content_type.as_str()),
        (200, "application/json")
    );
    let fleet = get_raw(
        &server.url(&format!("/v1/fleet/energy?{RANGE}")),
        Some(ARROW),
    );
    assert_eq!(fleet.content_type, ARROW);
    assert_eq!(
        read_stream(&fleet.body)
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        300
    );
}

#[test]
fn an_error_asked_in_arrow_is_json_with_its_status_never_a_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, meter) = generated_store(dir.path());
    let mut config = ServerConfig::default();
    config.limits.max_fleet_energy_cells = 1_000;
    let server = Server::start(std::path::Path::new(&data), config);
    let error = |path: &str, accept: Option<&str>, status: u16, code: &str| {
        let reply = get_raw(&server.url(path), accept);
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.content_type, "application/json", "{path}");
        let v: Value = serde_json::from_slice(&reply.body).expect("a JSON error");
        assert_eq!(v["error"]["code"], code, "{path}");
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    error(
        &format!("/v1/meters/09999999999999/curve?{RANGE}&format=arrow"),
        None,
        404,
        "unknown_meter",
    );
    error(
        &format!("/v1/meters/09999999999999/energy?{RANGE}"),
        Some(ARROW),
        404,
        "unknown_meter",
    );
    let why = error(
        &format!("/v1/meters/{meter}/peak?{RANGE}&format=arrow"),
        None,
        400,
        "invalid_argument",
    );
    assert!(why.contains("json or csv"), "{why}");
    error(
        "/v1/fleet/energy?from=2024-01-01&to=2024-06-01&period=day&format=arrow",
        None,
        400,
        "invalid_argument",
    );
    for what in ["curve", "energy"] {
        error(
            &format!("/v1/fleet/{what}?{RANGE}&meters={meter},09999999999999&format=arrow"),
            None,
            404,
            "unknown_meter",
        );
    }
    error(
        &format!("/v1/fleet/energy?{RANGE}&channel=max_power"),
        Some(ARROW),
        400,
        "invalid_argument",
    );
}

/// The answer's pieces as [`stream::fleet_answer`] cuts them with `slicing`.
fn pieces(store: &Store, path: &str, slicing: Slicing) -> (Vec<Vec<u8>>, Encoding) {
    let (route, query) = path.split_once('?').expect("a query");
    let kind = match route {
        "/v1/fleet/curve" => QueryKind::FleetCurve,
        _ => QueryKind::FleetEnergy,
    };
    let limits = Limits::default();
    let asked = Asked::read(kind, None, Some(query), &limits).expect("a fleet question");
    let mut pieces = Vec::new();
    let snapshot = store.snapshot();
    let mut sink = |piece: Vec<u8>| {
        pieces.push(piece);
        Ok(())
    };
    stream::fleet_answer(
        &*snapshot,
        &asked.question,
        asked.encoding,
        &limits,
        slicing,
        &mut sink,
    )
    .expect("a streamed answer");
    (pieces, asked.encoding)
}

#[test]
fn a_fleet_answer_streamed_in_pieces_is_the_whole_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, _) = generated_store(dir.path());
    let store = Arc::new(Store::open(std::path::Path::new(&data), Options::default()).unwrap());
    let small = Slicing {
        meters_per_slice: 7,
        piece_bytes: 2_000,
    };
    let limits = Limits::default();
    for path in [
        format!("/v1/fleet/energy?{RANGE}&period=day"),
        format!("/v1/fleet/energy?{RANGE}&period=day&format=csv"),
        format!("/v1/fleet/energy?{RANGE}&period=week&format=arrow"),
        format!("/v1/fleet/curve?{RANGE}"),
        format!("/v1/fleet/curve?{RANGE}&format=csv&tz=UTC"),
        format!("/v1/fleet/curve?{RANGE}&format=arrow"),
    ] {
        let (cut, encoding) = pieces(&store, &path, small);
        let (route, query) = path.split_once('?').unwrap();
        let kind = match route {
            "/v1/fleet/curve" => QueryKind::FleetCurve,
            _ => QueryKind::FleetEnergy,
        };
        let asked = Asked::read(kind, None, Some(query), &limits).unwrap();
        let (whole, _) = body::answer(&*store.snapshot(), &asked.question, &limits)
            .unwrap()
            .encode(encoding)
            .unwrap();
        assert!(cut.len() >= 3, "{path}: {} pieces", cut.len());
        let streamed = cut.concat();
        match encoding {
            // Arrow: one record batch per slice of meters (or month), the same rows.
            Encoding::Arrow => {
                let (s, w) = (read_stream(&streamed), read_stream(&whole));
                assert!(s.len() > 1, "{path}: {} batches", s.len());
                let names: Vec<String> = w[0]
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                for name in names {
                    assert_eq!(column(&s, &name), column(&w, &name), "{path}: {name}");
                }
            }
            _ => assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(whole).unwrap(),
                "{path}"
            ),
        }
    }
    // Over HTTP, with the server's slicing: the whole answer too.
    let server = Server::start_with(store.clone(), ServerConfig::default());
    for path in [
        format!("/v1/fleet/energy?{RANGE}&period=day"),
        format!("/v1/fleet/curve?{RANGE}&format=csv"),
    ] {
        let (cut, _) = pieces(&store, &path, Slicing::SERVER);
        assert_eq!(
            get_raw(&server.url(&path), None).body,
            cut.concat(),
            "{path}"
        );
    }
}

#[test]
fn a_fleet_answer_written_from_values_computed_elsewhere_is_the_streamed_answer_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, _) = generated_store(dir.path());
    let store = Store::open(std::path::Path::new(&data), Options::default()).unwrap();
    let small = Slicing {
        meters_per_slice: 7,
        piece_bytes: 2_000,
    };
    let limits = Limits::default();
    for format in ["json", "csv", "arrow"] {
        for (route, query) in [
            ("/v1/fleet/energy", format!("{RANGE}&period=day")),
            ("/v1/fleet/energy", format!("{RANGE}&period=week&tz=UTC")),
            ("/v1/fleet/curve", RANGE.to_string()),
        ] {
            let path = format!("{route}?{query}&format={format}");
            let kind = match route {
                "/v1/fleet/curve" => QueryKind::FleetCurve,
                _ => QueryKind::FleetEnergy,
            };
            let asked = Asked::read(kind, None, Some(&path[route.len() + 1..]), &limits).unwrap();
            let snapshot = store.snapshot();
            for slicing in [small, Slicing::SERVER] {
                let (streamed, encoding) = pieces(&store, &path, slicing);
                // The values a cluster's router merges, written by the server's encoders.
                let written = match &asked.question {
                    Question::FleetEnergy {
                        channel,
                        calendar,
                        meters,
                    } => {
                        let meters: Vec<body::MeterEnergyJson> = courbe::query::fleet_energy(
                            &*snapshot,
                            *channel,
                            &calendar.calendar,
                            meters.as_deref(),
                        )
                        .unwrap()
                        .into_iter()
                        .map(body::MeterEnergyJson::from)
                        .collect();
                        stream::fleet_energy_encoded(&calendar.tz_name, &meters, encoding, slicing)
                    }
                    Question::FleetCurve {
                        channel,
                        from_utc,
                        to_utc,
                        meters,
                    } => {
                        let points = courbe::query::fleet_curve(
                            &*snapshot,
                            *channel,
                            *from_utc,
                            *to_utc,
                            meters.as_deref(),
                        )
                        .unwrap();
                        stream::fleet_curve_encoded(*channel, *from_utc, *to_utc, points, encoding)
                    }
                    other => panic!("{path}: {other:?}"),
                }
                .expect("an answer");
                assert!(
                    streamed.concat() == written,
                    "{path} with {slicing:?}: {} and {} bytes",
                    streamed.concat().len(),
                    written.len()
                );
            }
        }
    }
}

#[test]
fn courbe_query_writes_the_arrow_stream_the_http_api_sends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, meter) = generated_store(dir.path());
    let from_cli = |kind: &str, extra: &[&str]| {
        let mut args = vec![
            "query",
            kind,
            "--data",
            &data,
            "--from",
            "2024-03-25",
            "--to",
            "2024-04-04",
            "--format",
            "arrow",
        ];
        args.extend_from_slice(extra);
        let out = courbe(&args, None);
        assert_eq!(out.status.code(), Some(0), "{kind}");
        out.stdout
    };
    let curve = from_cli("curve", &["--meter", &meter]);
    let energy = from_cli("energy", &["--meter", &meter, "--period", "day"]);
    let fleet = from_cli("fleet-energy", &["--period", "day"]);
    let server = Server::start(std::path::Path::new(&data), ServerConfig::default());
    let http = |path: &str| get_raw(&server.url(path), None).body;
    assert_eq!(
        curve,
        http(&format!("/v1/meters/{meter}/curve?{RANGE}&format=arrow"))
    );
    assert_eq!(
        energy,
        http(&format!(
            "/v1/meters/{meter}/energy?{RANGE}&period=day&format=arrow"
        ))
    );
    let fleet_http = read_stream(&http(&format!(
        "/v1/fleet/energy?{RANGE}&period=day&format=arrow"
    )));
    let fleet_cli = read_stream(&fleet);
    for name in ["meter_id", "start", "end", "energy_wh"] {
        assert_eq!(
            column(&fleet_cli, name),
            column(&fleet_http, name),
            "{name}"
        );
    }
}
