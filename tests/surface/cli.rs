//! The real `courbe` binary, spawned.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::support::{courbe, courbe_ok, day_csv, r50, stderr, stdout, METER};
use crate::util::get;

fn data_arg(dir: &tempfile::TempDir) -> String {
    dir.path().join("data").display().to_string()
}

/// `accepted N, rejected M, ...` → (N, M).
fn summary_counts(line: &str) -> (u64, u64) {
    let number = |key: &str| -> u64 {
        let rest = line
            .split(key)
            .nth(1)
            .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
        rest.trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
    };
    (number("accepted"), number("rejected"))
}

#[test]
fn gen_is_deterministic_for_a_seed_and_writes_native_csv() {
    let args = ["gen", "--meters", "3", "--days", "2", "--seed", "3"];
    let out = courbe(&args, None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "", "no progress off a terminal");
    let first = stdout(&out);
    let second = courbe_ok(&args, None);
    assert_eq!(first, second);
    let other = courbe_ok(
        &["gen", "--meters", "3", "--days", "2", "--seed", "4"],
        None,
    );
    assert_ne!(first, other);
    let mut lines = first.lines();
    assert_eq!(lines.next(), Some("meter_id,ts,value_w,quality,step_min"));
    let rows: Vec<&str> = lines.collect();
    // Three meters, two days of half-hours, a few percent of gaps at most.
    assert!(
        rows.len() > 3 * 96 * 9 / 10 && rows.len() <= 3 * 96,
        "{}",
        rows.len()
    );
    for row in &rows {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 5, "{row}");
        assert!(fields[1].ends_with('Z'), "{row}");
        assert_eq!(fields[4], "30", "{row}");
    }
}

#[test]
fn gen_ingest_query_erase_and_stats_work_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let csv_path = dir.path().join("fleet.csv");
    let csv = courbe_ok(
        &["gen", "--meters", "20", "--days", "10", "--seed", "5"],
        None,
    );
    std::fs::write(&csv_path, &csv).expect("write csv");
    let rows = csv.lines().count() as u64 - 1;
    let meter = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .expect("a meter id")
        .to_string();

    let out = courbe_ok(
        &["ingest", "--data", &data, csv_path.to_str().expect("path")],
        None,
    );
    assert_eq!(summary_counts(&out), (rows, 0), "{out}");
    assert!(out.contains("points/s"), "{out}");

    let stats = courbe_ok(&["stats", "--data", &data], None);
    assert!(
        stats.starts_with(&format!("meters 20, points {rows}, ")),
        "{stats}"
    );
    assert!(stats.contains("bytes/point"), "{stats}");

    let curve = courbe_ok(
        &[
            "query",
            "curve",
            "--data",
            &data,
            "--meter",
            &meter,
            "--from",
            "2024-01-02",
            "--to",
            "2024-01-03",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&curve).expect("JSON");
    assert_eq!(v["meter"], meter.as_str());
    let day_points = v["points"].as_array().map_or(0, Vec::len);
    assert!(day_points > 0 && day_points <= 48, "{day_points}");

    let erased = courbe_ok(&["erase", "--data", &data, "--meter", &meter], None);
    assert!(erased.starts_with("erased "), "{erased}");
    let out = courbe(
        &[
            "query",
            "curve",
            "--data",
            &data,
            "--meter",
            &meter,
            "--from",
            "2024-01-02",
            "--to",
            "2024-01-03",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown meter"), "{}", stderr(&out));
    let stats = courbe_ok(&["stats", "--data", &data], None);
    assert!(stats.starts_with("meters 19, "), "{stats}");

    let verify = courbe_ok(&["verify", "--data", &data], None);
    assert!(verify.starts_with("ok"), "{verify}");
    let compact = courbe_ok(&["compact", "--data", &data], None);
    assert!(compact.starts_with("compacted"), "{compact}");
}

#[test]
fn ingest_reads_stdin_and_reports_rejected_lines_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let input = format!(
        "meter_id,ts,value_w,quality,step_min\n\
         {METER},2024-01-15T00:00:00+01:00,500,measured,30\n\
         {METER},2024-01-15T00:30:00+01:00,-,measured,30\n\
         {METER},2024-01-15T01:00:00+01:00,510\n"
    );
    let out = courbe(&["ingest", "--data", &data, "-"], Some(input.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary_counts(&stdout(&out)), (2, 1));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
}

#[test]
fn an_r50_file_is_detected_and_ingested() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let path = dir.path().join("r50.xml");
    std::fs::write(&path, r50(METER, Some(0))).expect("write");
    let out = courbe(
        &["ingest", "--data", &data, path.to_str().expect("path")],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary_counts(&stdout(&out)), (47, 1));
    assert!(stderr(&out).contains("line 5"), "{}", stderr(&out));
}

#[test]
fn unusable_input_and_bad_questions_exit_1_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let garbage = dir.path().join("garbage.csv");
    std::fs::write(&garbage, "hello world\n1 2 3\n").expect("write");
    for args in [
        vec!["ingest", "--data", &data, garbage.to_str().expect("path")],
        vec!["ingest", "--data", &data, "/nonexistent/file.csv"],
    ] {
        let out = courbe(&args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
    let out = courbe(
        &["ingest", "--data", &data, "-"],
        Some(day_csv().as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "energy", "--data", &data, "--meter", METER];
        args.extend_from_slice(extra);
        courbe(&args, None)
    };
    for extra in [
        &["--from", "yesterday", "--to", "2024-01-16"][..],
        &["--from", "2024-01-16", "--to", "2024-01-15"],
        &[
            "--from",
            "2024-01-15",
            "--to",
            "2024-01-16",
            "--tz",
            "Nowhere/Land",
        ],
        &[
            "--from",
            "2024-01-15",
            "--to",
            "2024-01-16",
            "--tariff",
            "HC:nope",
        ],
        &[
            "--from",
            "2024-01-15",
            "--to",
            "2024-01-16",
            "--period",
            "fortnight",
        ],
    ] {
        let out = query(extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("courbe: error: "),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
    let out = query(&[
        "--from",
        "2024-01-15",
        "--to",
        "2024-01-16",
        "--tariff",
        "HC:22:00-06:00",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["periods"][0]["energy_wh"], 8040.0);

    let missing = courbe(&["stats", "--data", "/nonexistent/courbe-data"], None);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let usage = courbe(&["query", "curve", "--meter", METER], None);
    assert_eq!(
        usage.status.code(),
        Some(1),
        "a usage error is the caller's"
    );
}

#[test]
fn every_command_has_help() {
    for command in [
        "demo", "serve", "gen", "ingest", "query", "erase", "compact", "verify", "stats",
    ] {
        let out = courbe(&[command, "--help"], None);
        assert_eq!(out.status.code(), Some(0), "{command}");
        let help = stdout(&out);
        assert!(help.contains("Usage: courbe"), "{command}: {help}");
        assert!(help.contains("--data"), "{command}: {help}");
    }
    let out = courbe(&["--help"], None);
    assert!(stdout(&out).contains("ingest"));
}

#[test]
fn a_curve_exported_as_csv_ingests_back_into_the_same_curve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (
        data_arg(&dir),
        dir.path().join("copy").display().to_string(),
    );
    courbe_ok(
        &["ingest", "--data", &first, "-"],
        Some(day_csv().as_bytes()),
    );
    let question = [
        "--meter",
        METER,
        "--from",
        "2024-01-15",
        "--to",
        "2024-01-16",
    ];
    let mut export = vec!["query", "curve", "--data", &first, "--format", "csv"];
    export.extend_from_slice(&question);
    let csv = courbe_ok(&export, None);
    assert_eq!(csv.lines().count(), 49);
    courbe_ok(&["ingest", "--data", &second, "-"], Some(csv.as_bytes()));
    let json = |data: &str| {
        let mut args = vec!["query", "curve", "--data", data];
        args.extend_from_slice(&question);
        courbe_ok(&args, None)
    };
    assert_eq!(json(&first), json(&second));
}

#[test]
fn demo_generates_serves_and_prints_examples_that_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args([
            "demo",
            "--data",
            &data,
            "--meters",
            "5",
            "--days",
            "20",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn courbe demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        if let Some(url) = line.trim().strip_prefix("curl '") {
            urls.push(url.trim_end_matches('\'').to_string());
            if urls.len() == 10 {
                break;
            }
        }
    }
    // Keep reading stdout to its end so that the demo never writes into a closed pipe.
    let drain = std::thread::spawn(move || lines.count());
    let replies: Vec<_> = urls.iter().map(|u| (u.clone(), get(u))).collect();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("demo ends");
    let _ = drain.join();
    assert_eq!(
        urls.len(),
        10,
        "five examples, two in euros and three of a meter without a curve"
    );
    for (url, reply) in &replies {
        assert_eq!(reply.status, 200, "{url}: {}", reply.body);
        assert!(
            reply.body.len() > 100,
            "{url}: an answer with data: {}",
            reply.body
        );
    }
    // Euros: the cost of a month under Tempo, four offers side by side (one dynamic).
    let (url, cost) = &replies[5];
    assert!(url.contains("offer=bleu-tempo-6"), "{url}");
    assert!(cost.body.contains(r#""register":"HPJB""#), "{}", cost.body);
    let (url, offers) = &replies[6];
    assert!(url.contains("spot-dynamic-6"), "{url}");
    assert!(
        offers.body.contains(r#""offer":"spot-dynamic-6""#),
        "{}",
        offers.body
    );
    // 2 meters in 5 have no curve: their energy comes from their daily data, by register.
    let (url, energy) = &replies[7];
    assert!(url.contains("tariff=contract"), "{url}");
    assert!(
        energy.body.contains(r#""source":"index""#),
        "{}",
        energy.body
    );
    assert!(
        !energy.body.contains(r#""source":"curve""#),
        "{}",
        energy.body
    );
    let (_, index) = &replies[8];
    assert!(
        index.body.contains(r#""quality":"measured""#),
        "{}",
        index.body
    );
    let (_, summary) = &replies[9];
    assert_eq!(summary.body.lines().count(), 14, "{}", summary.body);
    assert_eq!(status.code(), Some(0), "SIGTERM is a graceful shutdown");
    // The generated months (2024-01-01 to 2024-01-20) are released for readers but operators.
    let releases = std::path::Path::new(&data).join("governance/releases");
    let files: Vec<String> = std::fs::read_dir(&releases)
        .expect("a releases folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files, ["consumption_2024-01-01_2024-02-01.rel"]);
}

#[test]
fn a_reader_closing_the_pipe_early_is_not_a_failure() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args(["gen", "--meters", "200", "--days", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn courbe gen");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let header = lines.next().expect("a line").expect("UTF-8");
    assert_eq!(header, "meter_id,ts,value_w,quality,step_min");
    drop(lines);
    let out = child.wait_with_output().expect("gen ends");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn ingesting_a_directory_is_a_user_error_that_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let folder = dir.path().join("inputs");
    std::fs::create_dir(&folder).expect("mkdir");
    let out = courbe(
        &["ingest", "--data", &data, folder.to_str().expect("path")],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("a directory"), "{}", stderr(&out));
}

#[test]
fn a_stray_quote_costs_its_own_line_only_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let mut input = String::from("meter_id,ts,value_w\nQA,2024-01-01T00:00:00Z,5\n");
    input.push_str("QA,\"2024-01-01T00:30:00Z,5\n");
    for i in 0..5_000i64 {
        let ts = courbe::ingest::format_rfc3339_utc(1_704_067_200 + 1800 * i);
        input.push_str(&format!("QA,{ts},{i}\n"));
    }
    let out = courbe(&["ingest", "--data", &data, "-"], Some(input.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary_counts(&stdout(&out)), (5_001, 1));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
}

#[test]
fn release_freezes_whole_paris_months_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    std::fs::create_dir(&data).expect("mkdir");
    let months = ["--from", "2024-01-01", "--to", "2024-03-01"];
    let first = courbe_ok(&[&["release", "--data", &data][..], &months].concat(), None);
    let summary: serde_json::Value = serde_json::from_str(&first).expect("a JSON summary");
    assert_eq!(summary["file"], "consumption_2024-01-01_2024-03-01.rel");
    assert_eq!(summary["months"], 2);
    // Released months are never released again; a range that is not whole months is refused.
    for range in [
        months,
        ["--from", "2024-02-01", "--to", "2024-04-01"],
        ["--from", "2024-05-02", "--to", "2024-06-01"],
    ] {
        let out = courbe(&[&["release", "--data", &data][..], &range].concat(), None);
        assert_eq!(out.status.code(), Some(1), "{range:?}: {}", stderr(&out));
    }
}

#[test]
fn generated_daily_data_ingest_back_and_answer_energy_indexes_and_the_year() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = data_arg(&dir);
    let gen = ["gen", "--meters", "3", "--days", "40", "--kind"];
    let daily = courbe_ok(&[&gen[..], &["daily"]].concat(), None);
    let r151 = courbe_ok(&[&gen[..], &["r151"]].concat(), None);
    let tempo = courbe_ok(&[&gen[..], &["tempo"]].concat(), None);
    // The day before the span too: a Tempo day runs from 06:00 to 06:00.
    assert!(
        tempo.starts_with("date,colour\n2023-12-31,BLUE\n2024-01-01,"),
        "{tempo}"
    );
    assert_eq!(tempo.lines().count(), 42);
    courbe_ok(
        &["ingest", "--data", &data, "--channel", "daily_energy", "-"],
        Some(daily.as_bytes()),
    );
    courbe_ok(&["ingest", "--data", &data, "-"], Some(r151.as_bytes()));
    let meter = "09111642617347";
    let energy = courbe_ok(
        &[
            "query",
            "energy",
            "--data",
            &data,
            "--meter",
            meter,
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-10",
            "--period",
            "month",
        ],
        None,
    );
    assert_eq!(energy.matches(r#""source":"daily""#).count(), 2, "{energy}");
    let index = courbe_ok(
        &[
            "query",
            "index",
            "--data",
            &data,
            "--meter",
            meter,
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-10",
            "--period",
            "day",
            "--format",
            "csv",
        ],
        None,
    );
    // 41 boundaries, two registers (BASE and the distributor's), a header.
    assert_eq!(index.lines().count(), 1 + 41 * 2, "{index}");
    let summary = courbe_ok(
        &[
            "query", "summary", "--data", &data, "--meter", meter, "--year", "2024",
        ],
        None,
    );
    assert!(summary.contains(r#""year":2024"#), "{summary}");
    // Daily energy is not a power: no energy, peak or curve question reads it as one.
    let out = courbe(
        &[
            "query",
            "energy",
            "--data",
            &data,
            "--meter",
            meter,
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
            "--channel",
            "daily_energy",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A daily value must sit at a Paris midnight with the daily step.
    let out = courbe(
        &["ingest", "--data", &data, "--channel", "daily_energy", "-"],
        Some(b"meter_id,ts,value_w,quality,step_min\nX1,2024-01-01T00:00:00Z,5,measured,1440\n"),
    );
    assert!(
        stderr(&out).contains("not the first instant of a Europe/Paris day"),
        "{}",
        stderr(&out)
    );
}
