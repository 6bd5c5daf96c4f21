//! The OpenAPI document (`GET /v1/openapi.json`) and the human page (docs/API.md): both list
//! every route of the route table, and the page cannot drift from the document.

use courbe_server::http::openapi;

use crate::governance::support::{Server, OPERATOR};

fn document() -> serde_json::Value {
    serde_json::from_str(openapi::json()).expect("the document is JSON")
}

#[test]
fn the_document_is_openapi_3_1_and_every_operation_names_its_statuses_and_its_error_body() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 40, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success"
            );
            for status in ["414", "431"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            let public = op["security"] == serde_json::json!([]);
            if !public {
                for status in ["400", "401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

#[test]
fn the_api_page_names_every_method_and_path_of_the_document() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md"))
        .expect("docs/API.md");
    let mut missing = Vec::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let line = format!("{} {path}", method.to_ascii_uppercase());
            if !page.contains(&line) {
                missing.push(line);
            }
        }
    }
    assert!(missing.is_empty(), "docs/API.md does not name: {missing:?}");
}

#[test]
fn the_document_is_served_to_any_caller_without_a_token_and_other_v1_routes_still_need_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for token in [None, Some(OPERATOR), Some("not-a-token")] {
        let reply = server.call(token, "GET", "/v1/openapi.json", None);
        assert_eq!(reply.status, 200, "{token:?}: {}", reply.body);
        assert_eq!(reply.content_type, "application/json");
        assert_eq!(reply.json(), document());
    }
    server
        .call(
            None,
            "GET",
            "/v1/fleet/curve?from=2024-01-01&to=2024-01-02",
            None,
        )
        .assert_error(401, "unauthorized");
    server
        .call(None, "POST", "/v1/openapi.json", None)
        .assert_error(405, "method_not_allowed");
}
