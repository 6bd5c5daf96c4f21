//! The route table (`courbe_server::http::routes`) is what the server serves: every declared
//! route and method is answered by a handler, no other method is, and a path it does not declare
//! is 404 for every caller.

use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe::governance::{Governance, GovernanceConfig};
use courbe_server::http::dataconnect;
use courbe_server::http::routes::ROUTES;
use courbe_server::http::ServerConfig;

use crate::util::{self, Server};

/// A concrete path of a route template.
fn concrete(template: &str) -> String {
    template
        .replace(":id", "09111642617347")
        .replace(":grant", "1")
        .replace(":name", "tempo")
        .replace(":area", "FR")
}

/// A server with governance and no tokens file: every caller is the local operator, so access
/// never hides a route.
fn operator_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let gov = Arc::new(Governance::open(dir.path(), GovernanceConfig::default()).unwrap());
    let config = ServerConfig {
        governance: Some(gov),
        ..ServerConfig::default()
    };
    (dir, Server::start(store, config))
}

#[test]
fn every_declared_route_and_method_is_served_and_no_other_method_is() {
    let (_dir, server) = operator_server();
    let mut routes: Vec<(String, Vec<&str>)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.path.to_string(),
                r.methods.iter().map(|m| m.as_str()).collect(),
            )
        })
        .collect();
    routes.extend(
        dataconnect::ROUTES
            .iter()
            .map(|(path, _)| (path.to_string(), vec!["GET"])),
    );
    for (template, methods) in &routes {
        let path = concrete(template);
        for method in ["GET", "POST", "PUT", "DELETE"] {
            // A parameter no route reads: refused (400) before any work, by the guard or by the
            // handler; the routes outside access control ignore it.
            let reply = util::request(method, &server.url(&format!("{path}?zz=1")));
            if methods.contains(&method) {
                assert!(
                    reply.status != 404 && reply.status != 405,
                    "{method} {template}: {} {}",
                    reply.status,
                    reply.body
                );
            } else {
                assert_eq!(
                    reply.status, 405,
                    "{method} {template} is not declared: {}",
                    reply.body
                );
            }
        }
    }
}

#[test]
fn a_path_the_table_does_not_declare_is_404_for_every_caller() {
    let (_dir, server) = operator_server();
    for path in [
        "/v1/something/new",
        "/v1/meters/09111642617347/nothing",
        "/v1/fleet",
        "/v1/",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let reply = util::request(method, &server.url(path));
            reply.assert_error(404, "not_found");
        }
    }
}
