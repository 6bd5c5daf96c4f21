//! Attacks on the merged fixes of access, anonymity, consent and erasure that found a hole or
//! that no other test made: each test is named for the rule it holds.

use courbe::engine::Batch;
use courbe::governance::auth::token_hash;

use super::support::*;

/// Meters of one IRIS (`I1`, commune 75056), each with day -2 at base `100 + index`.
fn neighbour(i: u32) -> String {
    format!("0911164263{i:04}")
}

/// Thirteen neighbours in one IRIS, and a consumer token (`tok-n0`) for the first.
fn neighbourhood(dir: &std::path::Path) -> Server {
    let server = Server::start(dir);
    let mut batch = Batch::new();
    let mut groups = String::from("meter_id,commune,iris\n");
    for i in 0..13 {
        day_batch(&mut batch, &neighbour(i), -2, 100 + i as i32);
        groups.push_str(&format!("{},75056,I1\n", neighbour(i)));
    }
    server.store.ingest(&batch).unwrap();
    let memberships = courbe::governance::groups::parse_csv(&groups).unwrap();
    server.gov.load_groups(memberships).unwrap();
    let tokens = format!(
        "{}{} consumer {}\n",
        tokens_file_text(),
        token_hash("tok-n0"),
        neighbour(0)
    );
    std::fs::write(&server.tokens_path, tokens).unwrap();
    server
}

#[test]
fn a_comparison_is_of_whole_paris_months_so_no_quartile_is_a_neighbours_half_hour() {
    let dir = tempfile::tempdir().unwrap();
    let server = neighbourhood(&dir.path().join("data"));
    let me = neighbour(0);
    let d = day_utc(-2);
    // The attack: one half-hour as "a month". With 13 contributors the first quartile is the
    // 4th smallest half-hour energy: exactly neighbour 3's (103 W over 30 min = 51.5 Wh).
    let half_hour = format!("from={}&to={}&tz=UTC", rfc(d), rfc(d + 1_800));
    let month = paris_month(-2);
    let utc_month = month.replace("tz=Europe/Paris", "tz=UTC");
    let paris = |days: i64| rfc(day_utc(days))[..10].to_string();
    for range in [
        half_hour,
        format!("from={}&to={}", paris(-2), paris(-1)),
        utc_month,
        month.replace("&tz=Europe/Paris", "&tz=America/St_Johns"),
    ] {
        for token in [OPERATOR, "tok-n0"] {
            let path = format!("/v1/meters/{me}/compare?{range}");
            let message = server
                .get(token, &path)
                .assert_error(400, "invalid_argument");
            assert!(message.contains("month"), "{path}: {message}");
        }
    }
    // Whole Paris months are answered, as before.
    let reply = server.get("tok-n0", &format!("/v1/meters/{me}/compare?{month}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["months"][0]["groups"][0]["meters"], 13, "{body}");
}
