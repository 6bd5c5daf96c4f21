//! `courbe prices`: grids and taxes loaded from CSV (or the illustrative demo ones), and a
//! fleet's distribution of one offer's saving over another from the command line.

use super::support::*;

#[test]
fn prices_load_and_fleet_give_a_distribution_and_refuse_a_bad_line_by_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").display().to_string();
    let csv = courbe_ok(
        &[
            "gen",
            "--meters",
            "12",
            "--days",
            "40",
            "--seed",
            "7",
            "--start",
            "2024-02-01",
        ],
        None,
    );
    courbe_ok(&["ingest", "--data", &data, "-"], Some(csv.as_bytes()));
    let loaded = courbe_ok(&["prices", "load", "--demo", "--data", &data], None);
    assert!(
        loaded.contains("bleu-base-6") && loaded.contains("taxes: 8"),
        "{loaded}"
    );
    let out = courbe_ok(
        &[
            "prices",
            "fleet",
            "--data",
            &data,
            "--offers",
            "bleu-base-6,bleu-hphc-6",
            "--from",
            "2024-02-01",
            "--to",
            "2024-03-01",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["meters"], 12, "{v}");
    let d = &v["distribution"];
    let c = |k: &str| d[k]["cents"].as_i64().expect("cents");
    assert!(c("min") <= c("q1") && c("q1") <= c("median") && c("median") <= c("q3"));
    assert!(c("q3") <= c("max"), "{v}");
    // A bad line stores nothing and is named.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "g,BASE,6,2024-01-01,,BASE,0.1234567\n").expect("write");
    let out = courbe(
        &[
            "prices",
            "load",
            "--data",
            &data,
            "--grids",
            bad.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}
