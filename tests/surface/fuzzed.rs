//! What the schemathesis run against the OpenAPI document found (`tests/schemathesis/run.sh`),
//! each kept as the rule it broke.

use crate::governance::support::{Server, A, OPERATOR};

/// The largest upload of grids, taxes, colours and contracts (`governance::prices_http`,
/// `governance::calendars_http`).
const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

#[test]
fn an_upload_refuses_a_parameter_of_its_get_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (path, csv, param) in [
        ("/v1/calendars/tempo/colours", "date,colour\n", "to"),
        ("/v1/prices/taxes", "", "format"),
        ("/v1/prices/grids", "", "format"),
    ] {
        let reply = server.call(
            Some(OPERATOR),
            "PUT",
            &format!("{path}?{param}=json"),
            Some(("text/csv", csv)),
        );
        let message = reply.assert_error(400, "invalid_argument");
        assert!(message.contains(&format!("`{param}`")), "{path}: {message}");
    }
    // The GET still reads them.
    let reply = server.call(
        Some(OPERATOR),
        "GET",
        "/v1/calendars/tempo/colours?from=2024-01-01&to=2024-01-02",
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn an_upload_over_its_limit_is_a_json_413_never_a_text_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let big = "a".repeat(MAX_UPLOAD_BYTES + 1);
    for (path, media) in [
        ("/v1/calendars/tempo/colours", "text/csv"),
        ("/v1/prices/grids", "text/csv"),
        ("/v1/prices/taxes", "text/csv"),
        (
            &format!("/v1/meters/{A}/contracts") as &str,
            "application/json",
        ),
    ] {
        let reply = server.call(Some(OPERATOR), "PUT", path, Some((media, &big)));
        assert_eq!(reply.content_type, "application/json", "{path}");
        reply.assert_error(413, "payload_too_large");
    }
}

#[test]
fn a_groups_upload_without_its_header_is_refused_never_read_as_nothing_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let put = |csv: &str| server.call(Some(OPERATOR), "PUT", "/v1/groups", Some(("text/csv", csv)));
    let message = put(&format!("{A},75056,750560101\n")).assert_error(400, "malformed_document");
    assert!(message.contains("header"), "{message}");
    put("").assert_error(400, "malformed_document");
    let reply = put(&format!("meter_id,commune,iris\n{A},75056,750560101\n"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["loaded"], 1);
}
