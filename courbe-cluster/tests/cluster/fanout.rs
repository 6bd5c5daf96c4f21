//! Readers on separate nodes and a router, over HTTP on loopback: the router's public answers
//! are one node's on the same data (its very bytes, in JSON, CSV and Arrow, errors included),
//! suppression is decided on the merged sums, and the internal route that carries unsuppressed
//! partials admits only the cluster's secret.

use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Options, Store};
use courbe::governance::aggregates::{self, Params};
use courbe::governance::auth::{token_hash, Principal, Role};
use courbe::governance::groups::Membership;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::question::{Answer, Asked, Limits, QueryKind, Question};
use courbe::Channel;
use courbe_cluster::fanout::{Running, INTERNAL};
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::{
    shard_of, BlockCache, CacheOptions, RangedReader, ReaderNode, Router, Secret,
};
use courbe_server::governance::bodies::AggregatesBody;
use courbe_server::http::body::AnswerBody;
use courbe_server::http::{error, ServerConfig};
use serde_json::Value;

use super::{batch_of, day_batches, support::Servers, take_over};

pub(super) const RANGE: &str = "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z&tz=Europe/Paris";
pub(super) const SECRET: &str = "a-cluster-secret-of-32-characters";
pub(super) const OPERATOR: &str = "operator-token";
const PUBLIC: &str = "public-token";
/// A public body: fleet comparisons of offers, aggregates.
const PUBLIC_BODY: &str = "public-body-token";
/// The consumer of the first meter: its own meter only.
const CONSUMER: &str = "consumer-token";
/// Shards of the cluster; the readers hold {0}, {1} and {2, 3}.
pub(super) const SHARDS: u32 = 4;

/// One node, and the same data on a cluster of `SHARDS` shards read by three reader nodes
/// behind a router, every node on loopback.
struct Fixture {
    servers: Servers,
    single: Arc<Store>,
    single_gov: Arc<Governance>,
    /// The single node's HTTP server (`courbe serve`'s) over `single` and `single_gov`.
    one_node: String,
    readers: Vec<Running>,
    /// The readers' governance (in reader order), then the router's: each node's own state.
    cluster_govs: Vec<Arc<Governance>>,
    router: Running,
    meters: Vec<String>,
}

pub(super) fn governance(servers: &Servers, name: &str, memberships: &[Membership]) -> Governance {
    let dir = servers.path(name);
    std::fs::create_dir_all(&dir).expect("a governance directory");
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "{} operator\n{} public\n{} public_body\n{} consumer {}\n{}",
            token_hash(OPERATOR),
            token_hash(PUBLIC),
            token_hash(PUBLIC_BODY),
            token_hash(CONSUMER),
            memberships[0].meter,
            memberships
                .iter()
                .map(|m| format!(
                    "{} consumer {}\n",
                    token_hash(&consumer_of(&m.meter)),
                    m.meter
                ))
                .collect::<String>()
        ),
    )
    .expect("a tokens file");
    let gov = Governance::open(
        &dir,
        GovernanceConfig {
            tokens_path: Some(tokens),
            ..GovernanceConfig::default()
        },
    )
    .expect("governance");
    gov.load_groups(memberships.to_vec())
        .expect("the groups load");
    gov
}

/// The token of `meter`'s consumer (every meter has one).
fn consumer_of(meter: &str) -> String {
    format!("consumer-of-{meter}")
}

/// IRIS 101: 12 meters, under the minimum (10) on every shard, enough in all; 102 (6) and 103
/// (5) under it anywhere; 104 the rest; one commune.
pub(super) fn iris_of(i: usize) -> &'static str {
    match i {
        0..=11 => "750560101",
        12..=17 => "750560102",
        18..=22 => "750560103",
        _ => "750560104",
    }
}

async fn fixture() -> Fixture {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let shards = coord.shard_count(SHARDS).await.expect("the shard map");
    let (meters, days) = day_batches(60, 5, 41);
    let memberships: Vec<Membership> = meters
        .iter()
        .enumerate()
        .map(|(i, m)| Membership {
            meter: m.clone(),
            commune: "75056".into(),
            iris: iris_of(i).into(),
            building: (i >= 23).then(|| format!("B{}", i % 7)),
        })
        .collect();
    let single =
        Arc::new(Store::open(servers.path("single"), Options::default()).expect("one node"));
    let single_gov = Arc::new(governance(&servers, "single-gov", &memberships));
    let mut writers = Vec::new();
    for s in 0..shards {
        let layout = ShardLayout::new("courbe", "/courbe", s);
        let node = format!("writer{s}");
        let (w, _) = take_over(&servers, &coord, &objects, &layout, &node, &node)
            .await
            .expect("a writer per shard");
        writers.push(w);
    }
    for rows in &days {
        single.ingest(&batch_of(rows)).expect("single node");
        for (s, w) in writers.iter().enumerate() {
            let mine: Vec<_> = rows
                .iter()
                .filter(|(m, _)| shard_of(m, shards) as usize == s)
                .cloned()
                .collect();
            w.ingest(&batch_of(&mine)).await.expect("acknowledged");
        }
    }
    for w in &writers {
        w.checkpoint().await.expect("a checkpoint");
    }
    let secret = Secret::new(SECRET).expect("a secret");
    let mut readers = Vec::new();
    let mut cluster_govs = Vec::new();
    for (n, held) in [vec![0], vec![1], vec![2, 3]].into_iter().enumerate() {
        // One byte bound per node, whatever number of shards it reads.
        let cache = BlockCache::new(CacheOptions::new(1 << 20)).expect("a cache");
        let mut shards_held = Vec::new();
        for s in held {
            let layout = ShardLayout::new("courbe", "/courbe", s);
            let dir = servers.path(&format!("reader{n}/shard-{s}"));
            let reader =
                RangedReader::open_in(&coord, &objects, &layout, &dir, Options::default(), &cache)
                    .await
                    .expect("a ranged reader");
            shards_held.push((s, reader));
        }
        let gov = Arc::new(governance(
            &servers,
            &format!("reader{n}-gov"),
            &memberships,
        ));
        cluster_govs.push(gov.clone());
        let node =
            ReaderNode::new(shards, shards_held, gov, secret.clone()).expect("a reader node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        readers.push(node.serve(listener).expect("serving"));
    }
    let urls: Vec<String> = readers.iter().map(Running::url).collect();
    let router_gov = Arc::new(governance(&servers, "router-gov", &memberships));
    cluster_govs.push(router_gov.clone());
    let router = Router::connect(
        &urls,
        shards,
        secret,
        router_gov,
        Limits::default(),
        Duration::from_secs(10),
    )
    .await
    .expect("a router over every shard");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let router = router.serve(listener).expect("serving");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let one_node = format!("http://{}", listener.local_addr().expect("an address"));
    let config = ServerConfig {
        governance: Some(single_gov.clone()),
        ..ServerConfig::default()
    };
    // Stopped with the test's runtime.
    tokio::spawn(courbe_server::http::run(
        listener,
        single.clone(),
        config,
        std::future::pending(),
    ));
    Fixture {
        servers,
        single,
        single_gov,
        one_node,
        readers,
        cluster_govs,
        router,
        meters,
    }
}

/// `GET url` with `token` as bearer: the status and the JSON body.
async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// What a node answers `GET url`: its status, the headers a client reads, its body's bytes.
pub(super) type Raw = (u16, Vec<(String, String)>, Vec<u8>);

pub(super) async fn get_raw(url: &str, token: Option<&str>, accept: Option<&str>) -> Raw {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(a) = accept {
        request = request.header("accept", a);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let headers = ["content-type", "www-authenticate", "content-disposition"]
        .into_iter()
        .filter_map(|name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let body = response.bytes().await.expect("a whole body").to_vec();
    (status, headers, body)
}

impl Fixture {
    /// One node's answer to an aggregate question, as its status and JSON body.
    fn one_node_aggregates(&self, principal: &Principal, query: &str) -> (u16, Value) {
        let answer = Params::from_query(query).and_then(|params| {
            aggregates::answer(
                &*self.single.snapshot(),
                &self.single_gov,
                principal,
                &params,
            )
        });
        match answer {
            Ok(a) => (
                200,
                serde_json::to_value(AggregatesBody::from(a)).expect("JSON"),
            ),
            Err(e) => (
                error::status(e.code).as_u16(),
                serde_json::from_str(&error::to_json(&e)).expect("JSON"),
            ),
        }
    }

    async fn routed(&self, path: &str, query: &str, token: &str) -> (u16, Value) {
        get(&format!("{}{path}?{query}", self.router.url()), Some(token)).await
    }
}

fn cells<'a>(body: &'a Value, code: &str) -> &'a Vec<Value> {
    body["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == code))
        .and_then(|g| g["cells"].as_array())
        .unwrap_or_else(|| panic!("group {code} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn three_readers_behind_a_router_answer_fleet_questions_as_one_node_cell_for_cell() {
    let f = fixture().await;
    let operator = Principal {
        role: Role::Operator,
        subject: None,
    };
    let spread = &f.meters[..12];
    let per_shard: Vec<usize> = (0..SHARDS)
        .map(|s| spread.iter().filter(|m| shard_of(m, SHARDS) == s).count())
        .collect();
    assert!(
        per_shard.iter().all(|&n| n < 10),
        "IRIS 101 is under the minimum on every shard: {per_shard:?}"
    );

    // The governance aggregates, cell for cell.
    let ad_hoc = format!("kind=energy&period=day&meters={}", spread.join(","));
    let questions = [
        "level=iris&kind=energy&period=day",
        "level=iris&kind=curve",
        "level=commune&kind=energy&period=week",
        "level=all&kind=energy&period=day",
        "level=building&kind=energy&period=day",
        "level=iris&code=750560101&kind=energy&period=day",
        &ad_hoc,
    ];
    for q in questions {
        let query = format!("{q}&{RANGE}");
        let routed = f.routed("/v1/aggregates", &query, OPERATOR).await;
        assert_eq!(routed.0, 200, "{q}: {}", routed.1);
        assert_eq!(
            routed,
            f.one_node_aggregates(&operator, &query),
            "{q}: the router answers as one node"
        );
    }
    // A group under the minimum on every reader but over it in all is published; groups
    // under it in all are suppressed, through the router as on one node.
    let (_, by_iris) = f
        .routed(
            "/v1/aggregates",
            &format!("level=iris&kind=energy&period=day&{RANGE}"),
            OPERATOR,
        )
        .await;
    let spread_cells = cells(&by_iris, "750560101");
    assert!(
        spread_cells
            .iter()
            .any(|c| c.get("suppressed").is_none() && c["meters"] == 12),
        "published where its 12 meters contribute in every half-hour: {spread_cells:?}"
    );
    for code in ["750560102", "750560103"] {
        assert!(cells(&by_iris, code).iter().all(|c| c["suppressed"] == true
            && c.get("energy_wh").is_none()
            && c.get("meters").is_none()));
    }
    // Differencing: the commune minus its published IRIS is the hidden part (102 and 103,
    // 11 meters), never one small IRIS alone.
    let (_, commune) = f
        .routed(
            "/v1/aggregates",
            &format!("level=commune&kind=energy&period=day&{RANGE}"),
            OPERATOR,
        )
        .await;
    for (day, cell) in cells(&commune, "75056").iter().enumerate() {
        let published: u64 = ["750560101", "750560104"]
            .iter()
            .map(|c| cells(&by_iris, c)[day]["meters"].as_u64().unwrap_or(0))
            .sum();
        let hidden = cell["meters"].as_u64().unwrap_or(0) - published;
        assert!(
            hidden == 0 || hidden >= 10,
            "day {day}: {hidden} meters hidden"
        );
    }

    // Roles are checked where one node checks them: the public reads releases only.
    for q in [
        "level=iris&kind=energy&period=day",
        "level=iris&kind=energy&period=day&source=live",
        "level=building&kind=energy&period=day",
    ] {
        let query = format!("{q}&{RANGE}");
        let public = Principal {
            role: Role::Public,
            subject: None,
        };
        let routed = f.routed("/v1/aggregates", &query, PUBLIC).await;
        assert_ne!(routed.0, 200, "{q}: {}", routed.1);
        if routed.0 == 403 {
            assert_eq!(routed.1["error"]["code"], "forbidden");
        } else {
            assert_eq!(routed, f.one_node_aggregates(&public, &query), "{q}");
        }
    }

    // The fleet curve, point for point: every meter, and a list of meters on several shards.
    let one = f.single.snapshot();
    let (from, to) = (1_705_791_600, 1_706_137_200);
    let list: Vec<String> = f.meters.iter().step_by(7).cloned().collect();
    for meters in [None, Some(list.clone())] {
        let expected =
            courbe::query::fleet_curve(&*one, Channel::CONSUMPTION, from, to, meters.as_deref())
                .expect("one node's fleet curve");
        let expected = serde_json::to_value(AnswerBody::from(Answer::FleetCurve {
            channel: Channel::CONSUMPTION,
            points: expected,
        }))
        .unwrap();
        let mut query = "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z".to_string();
        if let Some(list) = &meters {
            query.push_str(&format!("&meters={}", list.join(",")));
        }
        let routed = f.routed("/v1/fleet/curve", &query, OPERATOR).await;
        assert_eq!(routed, (200, expected), "meters {meters:?}");
    }
    // The fleet energy, meter by meter and period by period.
    for q in [
        format!("period=day&{RANGE}"),
        format!("period=week&{RANGE}&meters={}", list.join(",")),
    ] {
        let asked = Asked::read(QueryKind::FleetEnergy, None, Some(&q), &Limits::default())
            .expect("a fleet energy question");
        let Question::FleetEnergy {
            channel,
            calendar,
            meters,
        } = asked.question
        else {
            panic!("{q}: a fleet energy question");
        };
        let expected =
            courbe::query::fleet_energy(&*one, channel, &calendar.calendar, meters.as_deref())
                .expect("one node's fleet energy");
        assert_eq!(expected.len(), meters.as_ref().map_or(60, Vec::len));
        let expected = serde_json::to_value(AnswerBody::from(Answer::FleetEnergy {
            tz: calendar.tz_name.clone(),
            meters: expected,
        }))
        .unwrap();
        let routed = f.routed("/v1/fleet/energy", &q, OPERATOR).await;
        assert_eq!(routed, (200, expected), "{q}");
    }
    // An unknown meter is the caller's 404, as on one node.
    let routed = f
        .routed(
            "/v1/fleet/curve",
            "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z&meters=99999999999999",
            OPERATOR,
        )
        .await;
    assert_eq!(routed.0, 404, "{}", routed.1);
    assert_eq!(routed.1["error"]["code"], "unknown_meter");

    // Byte for byte, the answers of one node (`courbe serve` over the same data): JSON, CSV and
    // Arrow, asked by `format` or by `Accept`, and the refusals' statuses and bodies.
    let days = "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z";
    // Two Paris months: in Arrow one record batch each, the second empty.
    let months = "from=2024-01-20T23:00:00Z&to=2024-02-03T23:00:00Z";
    let listed = format!("meters={}", list.join(","));
    let arrow = "application/vnd.apache.arrow.stream";
    let mut asks: Vec<(String, Option<&str>, Option<&str>)> = Vec::new();
    for format in ["", "&format=json", "&format=csv", "&format=arrow"] {
        for q in [
            format!("/v1/fleet/curve?{days}{format}"),
            format!("/v1/fleet/curve?{months}{format}"),
            format!("/v1/fleet/curve?{days}&{listed}{format}"),
            format!("/v1/fleet/energy?period=day&{RANGE}{format}"),
            format!("/v1/fleet/energy?period=week&{RANGE}&{listed}{format}"),
        ] {
            asks.push((q, Some(OPERATOR), None));
        }
    }
    for q in [
        format!("/v1/fleet/curve?{days}"),
        format!("/v1/fleet/energy?period=day&{RANGE}"),
        // `format` wins over `Accept`.
        format!("/v1/fleet/curve?{days}&format=csv"),
    ] {
        asks.push((q, Some(OPERATOR), Some(arrow)));
    }
    for (q, token) in [
        (
            format!("/v1/fleet/curve?{days}&meters=99999999999999"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/fleet/energy?period=day&{RANGE}&meters=99999999999999"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/fleet/curve?{days}&colour=blue"),
            Some(OPERATOR),
        ),
        (format!("/v1/fleet/curve?{days}&format=xml"), Some(OPERATOR)),
        (
            "/v1/fleet/curve?from=2024-01-24T23:00:00Z&to=2024-01-20T23:00:00Z".to_string(),
            Some(OPERATOR),
        ),
        (
            format!("/v1/fleet/energy?period=fortnight&{RANGE}"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/fleet/energy?period=day&{days}&tz=Mars/Olympus"),
            Some(OPERATOR),
        ),
        (format!("/v1/fleet/curve?{days}"), None),
        (format!("/v1/fleet/curve?{days}"), Some("not-a-token")),
        (format!("/v1/fleet/energy?period=day&{RANGE}"), Some(PUBLIC)),
        (
            format!("/v1/aggregates?level=iris&kind=energy&period=day&{RANGE}"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/aggregates?level=iris&kind=curve&{RANGE}"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/aggregates?level=street&kind=energy&period=day&{RANGE}"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/aggregates?level=iris&kind=energy&period=day&colour=blue&{RANGE}"),
            Some(OPERATOR),
        ),
        (
            format!("/v1/aggregates?level=iris&kind=energy&period=day&{RANGE}"),
            Some(PUBLIC),
        ),
        (
            format!("/v1/aggregates?level=iris&kind=energy&period=day&{RANGE}"),
            None,
        ),
    ] {
        asks.push((q, token, None));
    }
    let mut statuses = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeSet::new();
    for (q, token, accept) in &asks {
        let routed = get_raw(&format!("{}{q}", f.router.url()), *token, *accept).await;
        let one = get_raw(&format!("{}{q}", f.one_node), *token, *accept).await;
        assert!(
            routed == one,
            "{q} (token {token:?}, accept {accept:?}): the router answers {} {:?} {:.400}, \
             one node {} {:?} {:.400}",
            routed.0,
            routed.1,
            String::from_utf8_lossy(&routed.2),
            one.0,
            one.1,
            String::from_utf8_lossy(&one.2),
        );
        statuses.insert(one.0);
        types.extend(one.1.iter().map(|(_, v)| v.clone()));
        assert!(!one.2.is_empty(), "{q}");
    }
    assert_eq!(
        statuses,
        [200, 400, 401, 403, 404].into(),
        "every kind of answer was compared"
    );
    for t in [
        arrow,
        "text/csv; charset=utf-8",
        "application/json",
        "Bearer",
    ] {
        assert!(types.contains(t), "{t} compared: {types:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn the_internal_route_admits_only_the_cluster_secret_as_one_bearer_header() {
    let f = fixture().await;
    let reader = f.readers[0].url();
    let shards = format!("{reader}{INTERNAL}/shards");
    let client = reqwest::Client::new();
    let ask = |request: reqwest::RequestBuilder| async move {
        let r = request.send().await.expect("the reader answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    let (status, body) = ask(client.get(&shards).bearer_auth(SECRET)).await;
    assert_eq!(status, 200, "{body}");
    let partials = format!("{reader}{INTERNAL}/partials/aggregates");
    let query = serde_json::json!({"query": format!("level=iris&kind=energy&period=day&{RANGE}")});
    let (status, body) = ask(client.post(&partials).bearer_auth(SECRET).json(&query)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("750560102"), "unsuppressed partials: {body}");
    // Asked for the binary encoding (as the router asks), the same partials in fewer bytes.
    let binary = client
        .post(&partials)
        .bearer_auth(SECRET)
        .header("accept", courbe_cluster::wire::CONTENT_TYPE)
        .json(&query)
        .send()
        .await
        .expect("the reader answers");
    assert_eq!(
        binary.headers()["content-type"],
        courbe_cluster::wire::CONTENT_TYPE
    );
    let binary = binary.bytes().await.expect("a body");
    let from_json: aggregates::Partials = serde_json::from_str(&body).expect("JSON partials");
    assert_eq!(
        courbe_cluster::wire::decode(&binary, 1_000),
        Ok(from_json),
        "binary and JSON partials"
    );
    assert!(
        binary.len() < body.len() / 3,
        "{} bytes, JSON {}",
        binary.len(),
        body.len()
    );

    let attacks = [
        ("no token", client.post(&partials).json(&query)),
        (
            "a wrong token",
            client
                .post(&partials)
                .bearer_auth("a-cluster-secret-of-32-characterZ")
                .json(&query),
        ),
        (
            "a prefix of the secret",
            client
                .post(&partials)
                .bearer_auth(&SECRET[..20])
                .json(&query),
        ),
        (
            "the secret and more",
            client
                .post(&partials)
                .bearer_auth(format!("{SECRET}x"))
                .json(&query),
        ),
        (
            "the secret in the query string",
            client
                .post(format!(
                    "{partials}?token={SECRET}&secret={SECRET}&access_token={SECRET}"
                ))
                .json(&query),
        ),
        (
            "the secret as a basic password",
            client
                .post(&partials)
                .basic_auth("router", Some(SECRET))
                .json(&query),
        ),
        (
            "the secret without its scheme",
            client
                .post(&partials)
                .header("authorization", SECRET)
                .json(&query),
        ),
        (
            "a right and a wrong header",
            client
                .post(&partials)
                .header("authorization", format!("Bearer {SECRET}"))
                .header("authorization", "Bearer wrong-wrong-wrong-wrong")
                .json(&query),
        ),
        (
            "the right header twice",
            client
                .post(&partials)
                .header("authorization", format!("Bearer {SECRET}"))
                .header("authorization", format!("Bearer {SECRET}"))
                .json(&query),
        ),
        (
            "a public operator's token",
            client.post(&partials).bearer_auth(OPERATOR).json(&query),
        ),
        ("no token, the shard list", client.get(&shards)),
        (
            "no token, a path that does not exist",
            client.get(format!("{reader}{INTERNAL}/nothing")),
        ),
    ];
    for (what, request) in attacks {
        let (status, body) = ask(request).await;
        assert_eq!(status, 401, "{what}: {:.300}", body);
        assert!(!body.contains("750560"), "{what}: {body}");
    }

    // The router's public port serves no internal path, whatever the token.
    for token in [Some(SECRET), Some(OPERATOR), None] {
        for path in [
            "shards",
            "partials/aggregates",
            "partials/fleet-curve",
            "partials/fleet-energy",
        ] {
            let url = format!("{}{INTERNAL}/{path}", f.router.url());
            let mut get = client.get(&url);
            let mut post = client.post(&url).json(&query);
            if let Some(t) = token {
                get = get.bearer_auth(t);
                post = post.bearer_auth(t);
            }
            for request in [get, post] {
                let (status, body) = ask(request).await;
                assert_eq!(status, 404, "{path} with {token:?}: {body}");
                assert!(!body.contains("750560"), "{body}");
            }
        }
    }
    // The secret is no public token.
    let (status, _) = f
        .routed(
            "/v1/aggregates",
            &format!("level=iris&kind=energy&period=day&{RANGE}"),
            SECRET,
        )
        .await;
    assert_eq!(status, 401);

    // Without a tokens file every caller would be an operator: as one node, a router then
    // serves loopback only.
    let open_gov = servers_governance_without_tokens(&f.servers);
    let urls: Vec<String> = f.readers.iter().map(Running::url).collect();
    let router = Router::connect(
        &urls,
        SHARDS,
        Secret::new(SECRET).expect("a secret"),
        Arc::new(open_gov),
        Limits::default(),
        Duration::from_secs(10),
    )
    .await
    .expect("a router");
    let everywhere = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("a port");
    let refused = router.serve(everywhere).err().expect("refused");
    assert!(refused.to_string().contains("loopback only"), "{refused}");
    drop(f.servers);
}

fn servers_governance_without_tokens(servers: &Servers) -> Governance {
    let dir = servers.path("open-gov");
    Governance::open(&dir, GovernanceConfig::default()).expect("governance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_reader_that_does_not_answer_fails_the_question_with_a_503_naming_its_shards() {
    let f = fixture().await;
    let query = format!("level=iris&kind=energy&period=day&{RANGE}");
    let (status, _) = f.routed("/v1/aggregates", &query, OPERATOR).await;
    assert_eq!(status, 200);
    f.readers[2].stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (path, query) in [
        ("/v1/aggregates", query.as_str()),
        ("/v1/fleet/energy", RANGE),
        (
            "/v1/fleet/curve",
            "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z",
        ),
    ] {
        let (status, body) = f.routed(path, query, OPERATOR).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unavailable");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("shard 2, 3") && message.contains(&f.readers[2].url()),
            "{path}: {message}"
        );
        assert!(body.get("groups").is_none() && body.get("points").is_none());
    }
}

impl Fixture {
    /// A meter of each reader (readers hold {0}, {1} and {2, 3}).
    fn meter_of_each_reader(&self) -> Vec<String> {
        [vec![0], vec![1], vec![2, 3]]
            .iter()
            .map(|held| {
                self.meters
                    .iter()
                    .find(|m| held.contains(&shard_of(m, SHARDS)))
                    .expect("a meter on every reader")
                    .clone()
            })
            .collect()
    }

    /// One node's and the router's raw answers to `GET path_and_query`.
    async fn both(
        &self,
        path_and_query: &str,
        token: Option<&str>,
        accept: Option<&str>,
    ) -> [Raw; 2] {
        [
            get_raw(&format!("{}{path_and_query}", self.one_node), token, accept).await,
            get_raw(
                &format!("{}{path_and_query}", self.router.url()),
                token,
                accept,
            )
            .await,
        ]
    }
}

/// The router's answer is one node's: status, headers and body bytes (a difference shown in
/// text, cut short).
pub(super) fn assert_same(routed: &Raw, one: &Raw, what: &str) {
    let text = |r: &Raw| String::from_utf8_lossy(&r.2[..r.2.len().min(300)]).into_owned();
    assert_eq!(
        (routed.0, &routed.1),
        (one.0, &one.1),
        "{what}: the router answered {} where one node answered {}",
        text(routed),
        text(one)
    );
    assert!(
        routed.2 == one.2,
        "{what}: {} bytes from the router, {} from one node: {} / {}",
        routed.2.len(),
        one.2.len(),
        text(routed),
        text(one)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_one_meter_question_through_the_router_is_one_nodes_status_type_and_bytes() {
    let f = fixture().await;
    let questions = [
        ("curve", RANGE.to_owned()),
        ("energy", format!("{RANGE}&period=day")),
        ("peak", format!("{RANGE}&period=day")),
        (
            "index",
            "from=2024-01-20T23:00:00Z&to=2024-01-24T23:00:00Z&period=day".to_owned(),
        ),
        ("summary", "year=2024".to_owned()),
    ];
    let formats = [
        ("", None),
        ("&format=json", None),
        ("&format=csv", None),
        ("&format=arrow", None),
        ("", Some("application/vnd.apache.arrow.stream")),
    ];
    let mut answered = 0;
    for meter in f.meter_of_each_reader() {
        for (route, query) in &questions {
            for (format, accept) in formats {
                let asked = format!("/v1/meters/{meter}/{route}?{query}{format}");
                let [one, routed] = f.both(&asked, Some(OPERATOR), accept).await;
                assert_same(&routed, &one, &format!("{asked} (accept {accept:?})"));
                if one.0 == 200 {
                    answered += 1;
                }
            }
        }
        // Every route answers this meter in JSON: the comparison is of real answers.
        for (route, query) in &questions {
            let [one, _] = f
                .both(
                    &format!("/v1/meters/{meter}/{route}?{query}"),
                    Some(OPERATOR),
                    None,
                )
                .await;
            assert_eq!(one.0, 200, "{route}: {}", String::from_utf8_lossy(&one.2));
            assert!(one.2.len() > 200, "{route}: a real answer");
        }
    }
    // Per meter: 5 routes in JSON (twice), in CSV and by `Accept` (JSON where there is no
    // Arrow answer), curve and energy in Arrow by `format` (the others' a 400).
    assert_eq!(answered, 3 * 22, "answers compared");

    let meter = &f.meters[0];
    let refusals = [
        (
            "an unknown meter",
            format!("/v1/meters/nosuchmeter/curve?{RANGE}"),
            Some(OPERATOR),
            404,
        ),
        (
            "a bad parameter",
            format!("/v1/meters/{meter}/curve?from=yesterday&to=2024-01-24T23:00:00Z"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown parameter",
            format!("/v1/meters/{meter}/energy?{RANGE}&period=day&colour=blue"),
            Some(OPERATOR),
            400,
        ),
        (
            "a range past the limit",
            format!("/v1/meters/{meter}/curve?from=2000-01-01T00:00:00Z&to=2024-01-01T00:00:00Z"),
            Some(OPERATOR),
            400,
        ),
        (
            "no token",
            format!("/v1/meters/{meter}/curve?{RANGE}"),
            None,
            401,
        ),
        (
            "an unknown token",
            format!("/v1/meters/{meter}/curve?{RANGE}"),
            Some("not-a-token"),
            401,
        ),
        (
            "a role without access to the meter",
            format!("/v1/meters/{meter}/curve?{RANGE}"),
            Some(PUBLIC),
            403,
        ),
        (
            "a consumer for another meter",
            format!("/v1/meters/{}/energy?{RANGE}&period=day", f.meters[1]),
            Some(CONSUMER),
            403,
        ),
        (
            "a consumer for its own meter",
            format!("/v1/meters/{meter}/energy?{RANGE}&period=day"),
            Some(CONSUMER),
            200,
        ),
        (
            "a role without access to an unknown meter (no answer says it is unknown)",
            format!("/v1/meters/nosuchmeter/peak?{RANGE}&period=day"),
            Some(PUBLIC),
            403,
        ),
    ];
    for (what, asked, token, status) in refusals {
        let [one, routed] = f.both(&asked, token, None).await;
        assert_eq!(one.0, status, "{what}: {}", String::from_utf8_lossy(&one.2));
        assert_same(&routed, &one, what);
    }
    // A method the route does not serve here: an erasure (DELETE) is a writer's, not a
    // router's; the words are one node's 405.
    for (method, route) in [
        (reqwest::Method::POST, "energy"),
        (reqwest::Method::PUT, "peak"),
    ] {
        let mut answers = Vec::new();
        for base in [&f.one_node, &f.router.url()] {
            let r = reqwest::Client::new()
                .request(method.clone(), format!("{base}/v1/meters/{meter}/{route}"))
                .bearer_auth(OPERATOR)
                .send()
                .await
                .expect("the node answers");
            answers.push((r.status().as_u16(), r.text().await.unwrap_or_default()));
        }
        assert_eq!(answers[0].0, 405, "{method} {route}: {}", answers[0].1);
        assert_eq!(answers[1], answers[0], "{method} {route}");
    }
    // HEAD is answered as one node answers it: a GET's status and headers, no body; it is no
    // way around the token or the access check (a 200's Content-Length would tell the size).
    let curve = format!("/v1/meters/{meter}/curve?{RANGE}&format=csv");
    for (asked, token, status) in [
        (curve.clone(), Some(OPERATOR), 200),
        (
            format!("/v1/meters/{meter}/energy?{RANGE}&period=day"),
            Some(OPERATOR),
            200,
        ),
        (
            format!("/v1/meters/nosuchmeter/curve?{RANGE}"),
            Some(OPERATOR),
            404,
        ),
        (curve.clone(), Some(PUBLIC), 403),
        (curve.clone(), None, 401),
    ] {
        let mut answers = Vec::new();
        for base in [&f.one_node, &f.router.url()] {
            let mut request = reqwest::Client::new().head(format!("{base}{asked}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.expect("the node answers");
            let header = |name: reqwest::header::HeaderName| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
            };
            let head = (
                r.status().as_u16(),
                header(reqwest::header::CONTENT_TYPE),
                header(reqwest::header::CONTENT_LENGTH),
            );
            answers.push((head, r.bytes().await.unwrap_or_default().len()));
        }
        assert_eq!(answers[0].0 .0, status, "HEAD {asked} with {token:?}");
        assert_eq!(answers[0].1, 0, "HEAD {asked}: no body");
        assert_eq!(answers[1], answers[0], "HEAD {asked} with {token:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn the_internal_one_meter_route_answers_only_the_secret_and_only_for_a_held_shard() {
    let f = fixture().await;
    let client = reqwest::Client::new();
    let ask = |request: reqwest::RequestBuilder| async move {
        let r = request.send().await.expect("the node answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    let meters = f.meter_of_each_reader();
    let body = |meter: &str| {
        serde_json::json!({
            "route": "curve",
            "meter": meter,
            "query": RANGE,
            "prefers_arrow": false,
            "kinds": "daily,max_power,curve",
        })
    };
    let on_reader0 = format!("{}{INTERNAL}/meter", f.readers[0].url());
    let (status, text) = ask(client
        .post(&on_reader0)
        .bearer_auth(SECRET)
        .json(&body(&meters[0])))
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&meters[0]), "{text}");

    // Without the secret, nothing: not even whether the meter is held.
    for (what, request) in [
        ("no token", client.post(&on_reader0).json(&body(&meters[0]))),
        (
            "a caller's token",
            client
                .post(&on_reader0)
                .bearer_auth(OPERATOR)
                .json(&body(&meters[0])),
        ),
        (
            "the secret in the query string",
            client
                .post(format!("{on_reader0}?token={SECRET}"))
                .json(&body(&meters[0])),
        ),
    ] {
        let (status, text) = ask(request).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert!(!text.contains("points"), "{what}: {text}");
    }

    // A meter of a shard the reader does not hold: refused, naming the shard, never empty.
    let elsewhere = &meters[1];
    let (status, text) = ask(client
        .post(&on_reader0)
        .bearer_auth(SECRET)
        .json(&body(elsewhere)))
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains(&format!("shard {}", shard_of(elsewhere, SHARDS)))
            && !text.contains("points"),
        "{text}"
    );
    // A meter id the single node's check refuses, even with the secret.
    for bad in ["../shards", "a/b", "", "x".repeat(65).as_str()] {
        let (status, text) = ask(client
            .post(&on_reader0)
            .bearer_auth(SECRET)
            .json(&body(bad)))
        .await;
        assert_eq!(status, 400, "{bad:?}: {text}");
    }
    // The router's public port serves no internal path, secret or not.
    let (status, text) = ask(client
        .post(format!("{}{INTERNAL}/meter", f.router.url()))
        .bearer_auth(SECRET)
        .json(&body(&meters[0])))
    .await;
    assert_eq!(status, 404, "{text}");

    // Ids crafted to leave the path are read as one node reads them, and go nowhere else.
    for crafted in [
        format!("/v1/meters/..%2F..%2Finternal%2Fv1%2Fshards/curve?{RANGE}"),
        format!("/v1/meters/%2e%2e/curve?{RANGE}"),
        format!("/v1/meters/{}%2Fcurve/curve?{RANGE}", meters[0]),
        format!("/v1/meters/{}%00/curve?{RANGE}", meters[0]),
        format!("/v1/meters/%FF/curve?{RANGE}"),
        format!("/v1/meters/../curve?{RANGE}"),
        format!("/v1/meters/{}/curve/?{RANGE}", meters[0]),
        format!("/v1/meters/{}/shards?{RANGE}", meters[0]),
    ] {
        let [one, routed] = f.both(&crafted, Some(OPERATOR), None).await;
        assert_ne!(one.0, 200, "{crafted}");
        assert_eq!(
            routed.0,
            one.0,
            "{crafted}: {}",
            String::from_utf8_lossy(&routed.2)
        );
        if !crafted.contains("%FF") {
            assert_same(&routed, &one, &crafted);
        }
    }

    // A stopped reader: its meters' questions are 503 naming its shard; the others' still
    // answer (a one-meter question needs only its own shard).
    f.readers[1].stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = get(
        &format!("{}/v1/meters/{}/curve?{RANGE}", f.router.url(), meters[1]),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("shard 1 ") && message.contains(&f.readers[1].url()),
        "{message}"
    );
    let (status, body) = get(
        &format!("{}/v1/meters/{}/curve?{RANGE}", f.router.url(), meters[0]),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `raw` with the instant of an export (`"exported":"..."`, the time it was written) replaced:
/// the rest of an export is compared byte for byte.
fn export_time_masked(mut raw: Raw) -> Raw {
    let key = b"\"exported\":\"";
    if let Some(at) = raw.2.windows(key.len()).position(|w| w == key) {
        let start = at + key.len();
        if let Some(len) = raw.2[start..].iter().position(|&b| b == b'"') {
            raw.2.splice(
                start..start + len,
                b"(the export's instant)".iter().copied(),
            );
        }
    }
    raw
}

impl Fixture {
    /// The grids and taxes of the demo price list, loaded into `govs`.
    fn load_prices<'a>(govs: impl IntoIterator<Item = &'a Arc<Governance>>) {
        use courbe::governance::prices::{demo_grids, demo_taxes};
        for gov in govs {
            gov.prices().set_grids(demo_grids()).expect("grids");
            gov.prices().set_taxes(demo_taxes()).expect("taxes");
        }
    }

    /// Every node's governance: one node's, the readers', the router's.
    fn every_gov(&self) -> Vec<Arc<Governance>> {
        let mut all = vec![self.single_gov.clone()];
        all.extend(self.cluster_govs.iter().cloned());
        all
    }
}

/// A meter's priced questions (in January 2024, where the fixture has data), each format.
fn priced_questions(meter: &str) -> Vec<String> {
    let cost = format!("/v1/meters/{meter}/cost?from=2024-01-20&to=2024-01-25");
    vec![
        format!("{cost}&offer=bleu-base-6"),
        format!("{cost}&offer=bleu-base-6&period=day"),
        format!("{cost}&offer=bleu-hphc-6&period=day&format=csv"),
        format!("{cost}&offer=bleu-tempo-6&period=year&format=json"),
        format!("/v1/meters/{meter}/estimate?since=2024-01-20&offer=bleu-base-6"),
        format!("/v1/meters/{meter}/estimate?since=2024-01-21&offer=bleu-hphc-6"),
        format!("/v1/meters/{meter}/offers?offers=bleu-base-6,bleu-hphc-6&to=2024-02-01"),
        format!(
            "/v1/meters/{meter}/offers?offers=bleu-base-6,bleu-hphc-6,bleu-tempo-6&to=2024-02-01&format=csv"
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_meters_export_comparison_and_priced_answers_through_the_router_are_one_nodes() {
    let f = fixture().await;
    let meters = f.meter_of_each_reader();
    let mut answered = 0;

    // The export: every format, its type and (absent) filename header, byte for byte but for
    // the instant it was written; the operator's and the meter's consumer's.
    for meter in &meters {
        for query in [
            "",
            "?format=json",
            "?format=csv",
            "?format=csv&channel=consumption",
            "?format=csv&channel=production",
            "?channel=max_power",
        ] {
            for token in [OPERATOR, consumer_of(meter).as_str()] {
                let asked = format!("/v1/meters/{meter}/export{query}");
                let [one, routed] = f.both(&asked, Some(token), None).await;
                assert_eq!(one.0, 200, "{asked}: {}", String::from_utf8_lossy(&one.2));
                assert_same(
                    &export_time_masked(routed),
                    &export_time_masked(one),
                    &asked,
                );
                answered += 1;
            }
        }
        let [one, _] = f
            .both(
                &format!("/v1/meters/{meter}/export?format=csv"),
                Some(OPERATOR),
                None,
            )
            .await;
        assert!(
            one.2.len() > 10_000 && String::from_utf8_lossy(&one.2).contains(meter.as_str()),
            "a real export of {meter}"
        );
    }

    // Priced routes before any price is loaded anywhere: one node's refusal.
    for meter in &meters {
        for asked in priced_questions(meter) {
            let [one, routed] = f.both(&asked, Some(OPERATOR), None).await;
            assert_eq!(one.0, 400, "{asked}: {}", String::from_utf8_lossy(&one.2));
            assert_same(&routed, &one, &format!("{asked}, no prices anywhere"));
        }
    }
    // Prices on one node and the router, not yet on the readers: the readers' state answers
    // (a 400 naming the offer), never another grid's figures.
    Fixture::load_prices([&f.single_gov, &f.cluster_govs[3]]);
    let asked = &priced_questions(&meters[0])[0];
    let [one, routed] = f.both(asked, Some(OPERATOR), None).await;
    assert_eq!(one.0, 200, "{}", String::from_utf8_lossy(&one.2));
    let text = String::from_utf8_lossy(&routed.2);
    assert_eq!(routed.0, 400, "{text}");
    assert!(text.contains("unknown offer \\\"bleu-base-6\\\""), "{text}");
    // The same prices everywhere: the same answers.
    Fixture::load_prices(&f.cluster_govs[..3]);
    for meter in &meters {
        for asked in priced_questions(meter) {
            for token in [OPERATOR, consumer_of(meter).as_str()] {
                let [one, routed] = f.both(&asked, Some(token), None).await;
                assert_eq!(one.0, 200, "{asked}: {}", String::from_utf8_lossy(&one.2));
                assert_same(&routed, &one, &asked);
                answered += 1;
            }
        }
        let [one, _] = f
            .both(&priced_questions(meter)[0], Some(OPERATOR), None)
            .await;
        let body: Value = serde_json::from_slice(&one.2).expect("JSON");
        assert!(
            body["total"]["cents"].as_i64().unwrap_or(0) > 0,
            "a real cost: {body}"
        );
    }

    // The comparison: before any release, one node's 404 (`not_released`); after the same
    // release on every node, the same distributions.
    let january = "from=2024-01-01&to=2024-02-01";
    for meter in &meters {
        let asked = format!("/v1/meters/{meter}/compare?{january}");
        let [one, routed] = f.both(&asked, Some(&consumer_of(meter)), None).await;
        assert_eq!(one.0, 404, "{asked}: {}", String::from_utf8_lossy(&one.2));
        assert_same(&routed, &one, &format!("{asked}, not released"));
    }
    let (from_utc, to_utc) = (1_704_063_600, 1_706_742_000);
    for gov in f.every_gov() {
        gov.release(&f.single, from_utc, to_utc, Channel::CONSUMPTION)
            .expect("January released");
    }
    for meter in &meters {
        for query in [january.to_owned(), format!("{january}&channel=consumption")] {
            let asked = format!("/v1/meters/{meter}/compare?{query}");
            let [one, routed] = f.both(&asked, Some(&consumer_of(meter)), None).await;
            assert_eq!(one.0, 200, "{asked}: {}", String::from_utf8_lossy(&one.2));
            assert!(String::from_utf8_lossy(&one.2).contains("median_wh"));
            assert_same(&routed, &one, &asked);
            answered += 1;
        }
    }
    assert_eq!(answered, 3 * (6 * 2 + 8 * 2 + 2), "answers compared");

    // An operator's comparison ranks the meter among the whole fleet now: not routed (503,
    // saying so), its bad questions refused as one node refuses them.
    let (status, body) = get(
        &format!(
            "{}/v1/meters/{}/compare?{january}",
            f.router.url(),
            meters[0]
        ),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("single node")));
    // A dynamic offer is priced against a spot series stored in a shard of its own: not
    // routed either.
    let (status, body) = get(
        &format!(
            "{}/v1/meters/{}/cost?from=2024-01-20&to=2024-01-25&offer=spot-dynamic-6",
            f.router.url(),
            meters[1]
        ),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("spot-dynamic-6")));

    // Refusals, each one node's.
    let meter = &meters[0];
    let other = &meters[1];
    let own = consumer_of(meter);
    let cost = format!("/v1/meters/{meter}/cost?from=2024-01-20&to=2024-01-25&offer=bleu-base-6");
    let refusals: Vec<(&str, String, Option<&str>, u16)> = vec![
        (
            "an unknown meter's export",
            "/v1/meters/nosuchmeter/export".into(),
            Some(OPERATOR),
            404,
        ),
        (
            "an unknown token on a comparison",
            format!("/v1/meters/nosuchmeter/compare?{january}"),
            Some("consumer-of-nosuchmeter"),
            401,
        ),
        (
            "an unknown export format",
            format!("/v1/meters/{meter}/export?format=xml"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown channel",
            format!("/v1/meters/{meter}/export?channel=gas"),
            Some(OPERATOR),
            400,
        ),
        (
            "a repeated parameter",
            format!("/v1/meters/{meter}/export?format=csv&format=json"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown parameter",
            format!("/v1/meters/{meter}/export?colour=blue"),
            Some(OPERATOR),
            400,
        ),
        (
            "a bad day",
            format!("/v1/meters/{meter}/cost?from=yesterday&to=2024-01-25&offer=bleu-base-6"),
            Some(OPERATOR),
            400,
        ),
        (
            "an offer twice",
            format!("{cost}&offer=bleu-hphc-6"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown offer",
            format!("/v1/meters/{meter}/cost?from=2024-01-20&to=2024-01-25&offer=nosuch"),
            Some(OPERATOR),
            400,
        ),
        (
            "a cost without an offer",
            format!("/v1/meters/{meter}/cost?from=2024-01-20&to=2024-01-25"),
            Some(OPERATOR),
            400,
        ),
        (
            "offers not on a month's first day",
            format!("/v1/meters/{meter}/offers?offers=bleu-base-6,bleu-hphc-6&to=2024-02-02"),
            Some(OPERATOR),
            400,
        ),
        (
            "a contract the meter does not have",
            format!("/v1/meters/{meter}/cost?from=2024-01-20&to=2024-01-25&offer=contract"),
            Some(OPERATOR),
            400,
        ),
        (
            "an estimate with no data since",
            format!("/v1/meters/{meter}/estimate?since=2025-01-01&offer=bleu-base-6"),
            Some(OPERATOR),
            400,
        ),
        (
            "an estimate from tomorrow",
            format!("/v1/meters/{meter}/estimate?since=2999-01-01&offer=bleu-base-6"),
            Some(OPERATOR),
            400,
        ),
        (
            "a comparison of part of a month",
            format!("/v1/meters/{meter}/compare?from=2024-01-02&to=2024-02-01"),
            Some(own.as_str()),
            400,
        ),
        (
            "a comparison's unknown parameter",
            format!("/v1/meters/{meter}/compare?{january}&offer=x"),
            Some(own.as_str()),
            400,
        ),
        (
            "an operator's comparison of part of a month",
            format!("/v1/meters/{meter}/compare?from=2024-01-02&to=2024-02-01"),
            Some(OPERATOR),
            400,
        ),
        (
            "no token on the export",
            format!("/v1/meters/{meter}/export"),
            None,
            401,
        ),
        ("no token on a cost", cost.clone(), None, 401),
        (
            "an unknown token on the offers",
            format!("/v1/meters/{meter}/offers?offers=bleu-base-6,bleu-hphc-6"),
            Some("not-a-token"),
            401,
        ),
        (
            "a role without access to the export",
            format!("/v1/meters/{meter}/export"),
            Some(PUBLIC),
            403,
        ),
        (
            "a role without access to a cost",
            cost.clone(),
            Some(PUBLIC),
            403,
        ),
        (
            "a role without access to a comparison",
            format!("/v1/meters/{meter}/compare?{january}"),
            Some(PUBLIC),
            403,
        ),
        (
            "a consumer asking another meter's export",
            format!("/v1/meters/{other}/export"),
            Some(own.as_str()),
            403,
        ),
        (
            "a consumer asking another meter's export as CSV",
            format!("/v1/meters/{other}/export?format=csv"),
            Some(own.as_str()),
            403,
        ),
        (
            "a consumer asking another meter's cost",
            cost.replace(meter.as_str(), other),
            Some(own.as_str()),
            403,
        ),
        (
            "a consumer asking another meter's comparison",
            format!("/v1/meters/{other}/compare?{january}"),
            Some(own.as_str()),
            403,
        ),
        (
            "a consumer asking an unknown meter's export (no answer says it is unknown)",
            "/v1/meters/nosuchmeter/export".into(),
            Some(own.as_str()),
            403,
        ),
        (
            "a bad format for a role without access: access first",
            format!("/v1/meters/{meter}/export?format=xml"),
            Some(PUBLIC),
            403,
        ),
        (
            "a bad meter id",
            "/v1/meters/a%2Fb/export".into(),
            Some(OPERATOR),
            400,
        ),
    ];
    for (what, asked, token, status) in refusals {
        let [one, routed] = f.both(&asked, token, None).await;
        assert_eq!(one.0, status, "{what}: {}", String::from_utf8_lossy(&one.2));
        assert_same(&routed, &one, what);
    }
    // Methods these routes do not serve: one node's 405.
    for route in ["export", "cost", "compare"] {
        let mut answers = Vec::new();
        for base in [&f.one_node, &f.router.url()] {
            let r = reqwest::Client::new()
                .post(format!("{base}/v1/meters/{meter}/{route}"))
                .bearer_auth(OPERATOR)
                .send()
                .await
                .expect("the node answers");
            answers.push((r.status().as_u16(), r.text().await.unwrap_or_default()));
        }
        assert_eq!(answers[0].0, 405, "POST {route}: {}", answers[0].1);
        assert_eq!(answers[1], answers[0], "POST {route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn the_internal_meter_route_refuses_a_route_it_does_not_know_and_any_caller_without_the_secret(
) {
    let f = fixture().await;
    Fixture::load_prices(f.every_gov().iter());
    let client = reqwest::Client::new();
    let meter = &f.meter_of_each_reader()[0];
    let on_reader0 = format!("{}{INTERNAL}/meter", f.readers[0].url());
    let ask = |route: &str, query: &str, secret: Option<&str>| {
        let mut request = client.post(&on_reader0).json(&serde_json::json!({
            "route": route,
            "meter": meter,
            "query": query,
            "prefers_arrow": false,
            "kinds": "daily,max_power,curve",
        }));
        if let Some(s) = secret {
            request = request.bearer_auth(s);
        }
        async move {
            let r = request.send().await.expect("the node answers");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let cost = "from=2024-01-20&to=2024-01-25&offer=bleu-base-6";
    // With the secret: each new route answers.
    for (route, query) in [("export", "format=csv"), ("cost", cost)] {
        let (status, text) = ask(route, query, Some(SECRET)).await;
        assert_eq!(status, 200, "{route}: {text}");
    }
    // A priced answer is narrowed to the kinds the router allowed: without curve rights, no
    // energy of estimated points (a sub-day figure).
    let priced_with = |kinds: &str| {
        let request = client
            .post(&on_reader0)
            .bearer_auth(SECRET)
            .json(&serde_json::json!({
                "route": "cost",
                "meter": meter,
                "query": format!("{cost}&period=day"),
                "prefers_arrow": false,
                "kinds": kinds,
            }));
        async move {
            let r = request.send().await.expect("the node answers");
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.expect("JSON")
        }
    };
    for (kinds, shown) in [("daily", false), ("daily,curve", true)] {
        let body = priced_with(kinds).await;
        let periods = body["periods"].as_array().expect("periods");
        assert_eq!(periods.len(), 5, "{body}");
        for p in periods {
            assert_eq!(p["estimated_wh"].is_number(), shown, "{kinds}: {p}");
        }
    }
    // Without it, nothing, whatever the route.
    for (route, query) in [
        ("export", "format=csv"),
        ("export", ""),
        ("cost", cost),
        ("compare", ""),
    ] {
        for secret in [
            None,
            Some(OPERATOR),
            Some("a-cluster-secret-of-32-character"),
        ] {
            let (status, text) = ask(route, query, secret).await;
            assert_eq!(status, 401, "{route} with {secret:?}: {text}");
            assert!(!text.contains(meter.as_str()), "{route}: {text}");
        }
    }
    // A route it does not know: refused, never answered as another route.
    for route in [
        "live",
        "consent",
        "grants",
        "contracts",
        "erase",
        "Export",
        "export ",
        "/export",
        "../export",
        "export/",
        "",
        "fleet/offers",
        "offers/../export",
    ] {
        let (status, text) = ask(route, "format=csv", Some(SECRET)).await;
        assert_eq!(status, 400, "{route:?}: {text}");
        assert!(
            text.contains("no one-meter route") && !text.contains("meter_id,ts"),
            "{route:?}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_fleet_comparison_of_offers_through_the_router_is_one_nodes() {
    let f = fixture().await;
    Fixture::load_prices(f.every_gov().iter());
    // One node's points still in its memtable: the same savings, priced from the curve where
    // the readers' segments give clock-band summaries (`paths` differs, nothing else).
    let asked = "/v1/fleet/offers?offers=bleu-base-6,bleu-hphc-6&from=2024-01-20&to=2024-01-25";
    let [one, routed] = f.both(asked, Some(OPERATOR), None).await;
    let without_paths = |raw: &Raw| {
        let mut v: Value = serde_json::from_slice(&raw.2).expect("JSON");
        let paths = v.as_object_mut().and_then(|o| o.remove("paths"));
        (v, paths)
    };
    let ((one_body, one_paths), (routed_body, routed_paths)) =
        (without_paths(&one), without_paths(&routed));
    assert_eq!(routed_body, one_body);
    assert_eq!(one_paths.expect("paths")["a"]["curve"], 60);
    assert_eq!(routed_paths.expect("paths")["a"]["summaries"], 60);
    // Once flushed, byte for byte.
    f.single.flush().expect("one node's segments");
    let mut answered = 0;
    for query in [
        "offers=bleu-base-6,bleu-hphc-6&from=2024-01-20&to=2024-01-25",
        "offers=bleu-hphc-6,bleu-base-6&from=2024-01-21&to=2024-01-24",
        "offers=bleu-base-6,bleu-tempo-6&from=2024-01-20&to=2024-01-25",
        "offers=bleu-base-6,bleu-hphc-6&from=2024-01-01&to=2024-02-01",
        "offers=bleu-base-6,bleu-hphc-6&from=2024-03-01&to=2024-04-01",
    ] {
        for token in [OPERATOR, PUBLIC_BODY] {
            let asked = format!("/v1/fleet/offers?{query}");
            let [one, routed] = f.both(&asked, Some(token), None).await;
            assert_eq!(one.0, 200, "{asked}: {}", String::from_utf8_lossy(&one.2));
            assert_same(&routed, &one, &asked);
            answered += 1;
        }
    }
    assert_eq!(answered, 10);
    // A real comparison: every meter of every reader priced, the distribution shown.
    let [one, _] = f
        .both(
            "/v1/fleet/offers?offers=bleu-base-6,bleu-hphc-6&from=2024-01-20&to=2024-01-25",
            Some(PUBLIC_BODY),
            None,
        )
        .await;
    let body: Value = serde_json::from_slice(&one.2).expect("JSON");
    assert_eq!(
        body["meters"].as_u64().unwrap_or(0) + body["skipped"].as_u64().unwrap_or(0),
        f.meters.len() as u64,
        "{body}"
    );
    assert!(body["distribution"]["median"]["cents"].is_i64(), "{body}");

    let range = "from=2024-01-20&to=2024-01-25";
    for (what, asked, token, status) in [
        (
            "no token",
            format!("offers=bleu-base-6,bleu-hphc-6&{range}"),
            None,
            401,
        ),
        (
            "a role without access",
            format!("offers=bleu-base-6,bleu-hphc-6&{range}"),
            Some(PUBLIC),
            403,
        ),
        (
            "a consumer",
            format!("offers=bleu-base-6,bleu-hphc-6&{range}"),
            Some(CONSUMER),
            403,
        ),
        (
            "one offer",
            format!("offers=bleu-base-6&{range}"),
            Some(OPERATOR),
            400,
        ),
        (
            "three offers",
            format!("offers=bleu-base-6,bleu-hphc-6,bleu-tempo-6&{range}"),
            Some(OPERATOR),
            400,
        ),
        (
            "an offer twice",
            format!("offers=bleu-base-6,bleu-base-6&{range}"),
            Some(OPERATOR),
            400,
        ),
        (
            "the contracts",
            format!("offers=bleu-base-6,contract&{range}"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown offer",
            format!("offers=bleu-base-6,nosuch&{range}"),
            Some(OPERATOR),
            400,
        ),
        (
            "a repeated parameter",
            format!("offers=bleu-base-6,bleu-hphc-6&{range}&from=2024-01-21"),
            Some(OPERATOR),
            400,
        ),
        (
            "an unknown parameter",
            format!("offers=bleu-base-6,bleu-hphc-6&{range}&format=csv"),
            Some(OPERATOR),
            400,
        ),
        (
            "no range",
            "offers=bleu-base-6,bleu-hphc-6".to_owned(),
            Some(OPERATOR),
            400,
        ),
        (
            "a bad day",
            "offers=bleu-base-6,bleu-hphc-6&from=2024-01-20&to=tomorrow".to_owned(),
            Some(OPERATOR),
            400,
        ),
        (
            "a range too long",
            "offers=bleu-base-6,bleu-hphc-6&from=2000-01-01&to=2024-01-01".to_owned(),
            Some(OPERATOR),
            400,
        ),
    ] {
        let [one, routed] = f
            .both(&format!("/v1/fleet/offers?{asked}"), token, None)
            .await;
        assert_eq!(one.0, status, "{what}: {}", String::from_utf8_lossy(&one.2));
        assert_same(&routed, &one, what);
    }
    // Priced against spot prices (a series of its own shard): refused by the router, saying so.
    let (status, body) = get(
        &format!(
            "{}/v1/fleet/offers?offers=bleu-base-6,spot-dynamic-6&{range}",
            f.router.url()
        ),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("spot-dynamic-6")));
}

/// What a node writes back to `GET target` sent on a bare connection to `base`, its `date`
/// header left out.
async fn raw_get(base: &str, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the node listens");
    let request = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    // The node may answer and close before reading the whole request.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET url` with `extra` header lines besides the operator's token: status, headers, body.
async fn get_with_headers(url: &str, extra: usize, value_len: usize) -> Raw {
    let mut request = reqwest::Client::new().get(url).bearer_auth(OPERATOR);
    for i in 0..extra {
        request = request.header(format!("x-extra-{i}"), "v".repeat(value_len));
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let headers = ["content-type", "www-authenticate"]
        .into_iter()
        .filter_map(|name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let body = response.bytes().await.expect("a whole body").to_vec();
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn an_over_long_target_or_too_many_headers_is_refused_by_the_router_as_one_node_refuses_it() {
    let f = fixture().await;
    let meter = &f.meters[0];
    // A target of exactly `len` bytes: the route, a known question, then an unknown parameter
    // padding it (refused with 400 when the target itself is not).
    let target = |route: &str, len: usize| {
        let head = format!("{route}?{RANGE}&pad=");
        format!("{head}{}", "a".repeat(len - head.len()))
    };
    let limit = courbe_server::http::MAX_URI_LEN;
    for route in [
        "/v1/fleet/curve".to_owned(),
        "/v1/aggregates".to_owned(),
        format!("/v1/meters/{meter}/curve"),
        format!("/v1/meters/{meter}/export"),
    ] {
        for (len, status) in [(limit, 400), (limit + 1, 414), (60_000, 414)] {
            let [one, routed] = f.both(&target(&route, len), Some(OPERATOR), None).await;
            assert_eq!(
                one.0,
                status,
                "{route}, {len} bytes: {}",
                String::from_utf8_lossy(&one.2)
            );
            assert_same(&routed, &one, &format!("{route}, a target of {len} bytes"));
        }
        // Past hyper's own limit (65,534 bytes), which no HTTP client library sends: hyper's
        // refusal, rewritten into one node's JSON error.
        let over = target(&route, 70_000);
        let one = raw_get(&f.one_node, &over).await;
        assert!(one.starts_with("HTTP/1.1 414"), "{route}: {one}");
        assert_eq!(
            raw_get(&f.router.url(), &over).await,
            one,
            "{route}: hyper's 414"
        );
        // Too many header lines (one node's 431), too many header bytes, and more lines than
        // hyper reads at all (its own refusal, written as one node writes it).
        let path = format!("{route}?{RANGE}");
        for (extra, value_len) in [(100, 4), (10, 8_000), (500, 4)] {
            let one = get_with_headers(&format!("{}{path}", f.one_node), extra, value_len).await;
            let routed =
                get_with_headers(&format!("{}{path}", f.router.url()), extra, value_len).await;
            assert_eq!(one.0, 431, "{route}: {}", String::from_utf8_lossy(&one.2));
            assert_same(
                &routed,
                &one,
                &format!("{route}, {extra} more headers of {value_len} bytes"),
            );
        }
    }
    // A reader refuses them too, before it looks at the secret or the path.
    let reader = f.readers[0].url();
    let client = reqwest::Client::new();
    let long = format!("{reader}{INTERNAL}/shards?{}", "a".repeat(limit));
    let response = client
        .get(&long)
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("the reader answers");
    assert_eq!(response.status().as_u16(), 414);
    let body: Value = response.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "uri_too_long", "{body}");
}
