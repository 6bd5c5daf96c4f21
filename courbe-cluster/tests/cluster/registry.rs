//! Readers registered in etcd and a router following them: several readers per shard, one
//! failing replaced by the next for the same question, a reader gone (exited, or its lease
//! lapsed) dropped, a new one used without restarting the router; registrations that do not
//! pass the router's checks never used; etcd stopped, the readers last seen keep answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use courbe::engine::{Options, Store};
use courbe::governance::groups::Membership;
use courbe::question::Limits;
use courbe_cluster::fanout::Running;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::{
    register, shard_of, BlockCache, CacheOptions, Coordinator, RangedReader, ReaderNode,
    Registered, Registration, Router, Secret,
};
use courbe_server::http::ServerConfig;

use super::fanout::{
    assert_same, get_raw, governance, iris_of, Raw, OPERATOR, RANGE, SECRET, SHARDS,
};
use super::{batch_of, day_batches, support::Servers, take_over};

/// The lease TTL of the test readers' registrations (etcd grants at least about 2 s).
const TTL_S: i64 = 1;
/// How often the test routers list the registrations.
const REFRESH: Duration = Duration::from_millis(200);

struct Cluster {
    servers: Servers,
    coord: Coordinator,
    memberships: Vec<Membership>,
    meters: Vec<String>,
    /// `courbe serve` over the same data on one node.
    one_node: String,
}

/// A reader node on loopback, registered (or not) in etcd.
struct Reader {
    running: Running,
    registered: Option<Registered>,
}

impl Reader {
    fn url(&self) -> String {
        self.running.url()
    }

    /// Dies: stops answering and renewing its lease (its key lapses after the TTL).
    fn kill(self) {
        self.running.stop();
        drop(self.registered);
    }
}

async fn cluster() -> Cluster {
    let servers = Servers::start().await;
    let coord = servers.coordinator().await;
    let objects = servers.objects();
    let shards = coord.shard_count(SHARDS).await.expect("the shard map");
    let (meters, days) = day_batches(40, 3, 7);
    let memberships: Vec<Membership> = meters
        .iter()
        .enumerate()
        .map(|(i, m)| Membership {
            meter: m.clone(),
            commune: "75056".into(),
            iris: iris_of(i).into(),
            building: None,
        })
        .collect();
    let single =
        Arc::new(Store::open(servers.path("single"), Options::default()).expect("one node"));
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let one_node = format!("http://{}", listener.local_addr().expect("an address"));
    let config = ServerConfig {
        governance: Some(Arc::new(governance(&servers, "single-gov", &memberships))),
        ..ServerConfig::default()
    };
    tokio::spawn(courbe_server::http::run(
        listener,
        single,
        config,
        std::future::pending(),
    ));
    Cluster {
        servers,
        coord,
        memberships,
        meters,
        one_node,
    }
}

impl Cluster {
    /// A reader node `name` holding `held`, believing the cluster has `shard_count` shards and
    /// checking `secret`; registered as `registration` says (`None`: its own truth).
    async fn reader(
        &self,
        name: &str,
        held: &[u32],
        shard_count: u32,
        secret: &str,
        registration: Option<Registration>,
    ) -> Reader {
        let objects = self.servers.objects();
        let cache = BlockCache::new(CacheOptions::new(1 << 20)).expect("a cache");
        let mut shards = Vec::new();
        for &s in held {
            let layout = ShardLayout::new("courbe", "/courbe", s);
            let dir = self.servers.path(&format!("{name}/shard-{s}"));
            let reader = RangedReader::open_in(
                &self.coord,
                &objects,
                &layout,
                &dir,
                Options::default(),
                &cache,
            )
            .await
            .expect("a ranged reader");
            shards.push((s, reader));
        }
        let gov = Arc::new(governance(
            &self.servers,
            &format!("{name}-gov"),
            &self.memberships,
        ));
        let node = ReaderNode::new(
            shard_count,
            shards,
            gov,
            Secret::new(secret).expect("a secret"),
        )
        .expect("a reader node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let running = node.serve(listener).expect("serving");
        let registration = registration.unwrap_or_else(|| Registration {
            url: running.url(),
            shards: held.to_vec(),
            shard_count,
        });
        let registered = register(&self.coord, &registration, TTL_S)
            .await
            .expect("registered");
        Reader {
            running,
            registered: Some(registered),
        }
    }

    /// A router following the registered readers.
    async fn router(&self) -> (Arc<Router>, Running) {
        let router = Router::discover(
            self.coord.clone(),
            SHARDS,
            Secret::new(SECRET).expect("a secret"),
            Arc::new(governance(&self.servers, "router-gov", &self.memberships)),
            Limits::default(),
            Duration::from_secs(5),
            REFRESH,
        )
        .await
        .map(Arc::new)
        .expect("a router following etcd");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let running = router.clone().serve_shared(listener).expect("serving");
        (router, running)
    }

    /// The questions compared: fleet energy, the fleet curve, a meter's curve of each shard.
    fn questions(&self) -> Vec<String> {
        let mut q = vec![
            format!("/v1/fleet/energy?{RANGE}&period=day"),
            "/v1/fleet/curve?from=2024-01-20T23:00:00Z&to=2024-01-22T23:00:00Z".to_owned(),
        ];
        for s in 0..SHARDS {
            if let Some(m) = self.meters.iter().find(|m| shard_of(m, SHARDS) == s) {
                q.push(format!("/v1/meters/{m}/curve?{RANGE}"));
            }
        }
        q
    }

    /// Every question, asked `times` times of `router` (so that every reader of a shard is
    /// asked in turn), is answered as one node answers it.
    async fn same_as_one_node(&self, router: &Running, times: usize, when: &str) {
        for q in self.questions() {
            let one = get_raw(&format!("{}{q}", self.one_node), Some(OPERATOR), None).await;
            assert_eq!(one.0, 200, "{q}: one node answers");
            for _ in 0..times {
                let routed = get_raw(&format!("{}{q}", router.url()), Some(OPERATOR), None).await;
                assert_same(&routed, &one, &format!("{when}: {q}"));
            }
        }
    }
}

/// Waits (up to 15 s) until `what` holds.
async fn until(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !holds() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn urls(router: &Router) -> Vec<String> {
    router.readers().into_iter().map(|r| r.url).collect()
}

fn unavailable(raw: &Raw) -> String {
    assert_eq!(raw.0, 503, "{}", String::from_utf8_lossy(&raw.2));
    let body: serde_json::Value = serde_json::from_slice(&raw.2).expect("a JSON error");
    assert_eq!(body["error"]["code"], "unavailable");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn registered_readers_two_per_shard_answer_as_one_node_fail_over_and_come_and_go() {
    let c = cluster().await;
    // Every shard has two readers, no two readers the same shards: a question is split.
    let r0 = c.reader("r0", &[0, 1], SHARDS, SECRET, None).await;
    let r1 = c.reader("r1", &[1, 2, 3], SHARDS, SECRET, None).await;
    let r2 = c.reader("r2", &[0, 2, 3], SHARDS, SECRET, None).await;
    let (u0, u1, u2) = (r0.url(), r1.url(), r2.url());
    let (router, routed) = c.router().await;
    let mut all = vec![u0.clone(), u1.clone(), u2.clone()];
    all.sort();
    assert_eq!(urls(&router), all, "{:?}", router.refused());
    c.same_as_one_node(&routed, 3, "three readers").await;

    // The same readers as a fixed list: the two that die next are both asked.
    let fixed = Router::connect(
        &[u0.clone(), u1.clone(), u2.clone()],
        SHARDS,
        Secret::new(SECRET).expect("a secret"),
        Arc::new(governance(&c.servers, "fixed-gov", &c.memberships)),
        Limits::default(),
        Duration::from_secs(5),
    )
    .await
    .expect("a router over a fixed list");
    let fixed = fixed
        .serve(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port"),
        )
        .expect("serving");

    r2.kill();
    c.same_as_one_node(&routed, 3, "r2 killed, following etcd")
        .await;
    c.same_as_one_node(&fixed, 3, "r2 killed, a fixed list")
        .await;
    until("r2's lease lapses and the router drops it", || {
        !urls(&router).contains(&u2)
    })
    .await;
    c.same_as_one_node(&routed, 2, "r2 dropped").await;

    // Shard 0's second reader dies too.
    r0.kill();
    let energy = format!("/v1/fleet/energy?{RANGE}&period=day");
    let message =
        unavailable(&get_raw(&format!("{}{energy}", fixed.url()), Some(OPERATOR), None).await);
    assert!(
        message.contains("shard 0 ") && message.contains(&u0) && message.contains(&u2),
        "{message}"
    );
    assert!(!message.contains(&u1), "{message}");
    let meter0 = c
        .meters
        .iter()
        .find(|m| shard_of(m, SHARDS) == 0)
        .expect("a meter of shard 0");
    let curve0 = format!("/v1/meters/{meter0}/curve?{RANGE}");
    let message =
        unavailable(&get_raw(&format!("{}{curve0}", fixed.url()), Some(OPERATOR), None).await);
    assert!(
        message.contains("shard 0 ") && message.contains(&u0) && message.contains(&u2),
        "{message}"
    );
    // Shards 1 to 3 still have a reader: a meter of theirs is answered.
    let meter1 = c
        .meters
        .iter()
        .find(|m| shard_of(m, SHARDS) == 1)
        .expect("a meter of shard 1");
    let curve1 = format!("/v1/meters/{meter1}/curve?{RANGE}");
    let one = get_raw(&format!("{}{curve1}", c.one_node), Some(OPERATOR), None).await;
    let got = get_raw(&format!("{}{curve1}", routed.url()), Some(OPERATOR), None).await;
    assert_same(&got, &one, "shard 1 with shard 0 down");
    until("r0's lease lapses and the router drops it", || {
        urls(&router) == [u1.clone()]
    })
    .await;
    let message =
        unavailable(&get_raw(&format!("{}{energy}", routed.url()), Some(OPERATOR), None).await);
    assert!(message.contains("shard 0 has no reader"), "{message}");

    // A reader started now is used without restarting the router.
    let r3 = c.reader("r3", &[0], SHARDS, SECRET, None).await;
    until("the router uses r3", || urls(&router).contains(&r3.url())).await;
    c.same_as_one_node(&routed, 2, "r3 started").await;
    drop((r1, r3, fixed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn a_registration_with_another_shard_count_or_without_the_secret_is_never_used() {
    let c = cluster().await;
    let honest = c
        .reader("honest", &[0, 1, 2, 3], SHARDS, SECRET, None)
        .await;
    // Registered and serving 8 shards: its shard 0 is not this cluster's.
    let eight = c.reader("eight", &[0], 8, SECRET, None).await;
    // Registered for 4 shards, serving 8.
    let liar = c
        .reader(
            "liar",
            &[1],
            8,
            SECRET,
            Some(Registration {
                url: String::new(),
                shards: vec![1],
                shard_count: SHARDS,
            }),
        )
        .await;
    // Its registration's URL is filled in below, once its address is known: register again.
    drop(liar.registered);
    let liar_reg = register(
        &c.coord,
        &Registration {
            url: liar.running.url(),
            shards: vec![1],
            shard_count: SHARDS,
        },
        TTL_S,
    )
    .await
    .expect("registered");
    // Another cluster's secret: its shard list answers 401.
    let stranger = c
        .reader(
            "stranger",
            &[2],
            SHARDS,
            "another-secret-of-32-characters!",
            None,
        )
        .await;
    // A registration that does not parse.
    let lease = c.coord.grant_lease(TTL_S).await.expect("a lease");
    c.coord
        .put_leased(
            &format!("{}readers/garbage", c.coord.prefix()),
            b"{not json".to_vec(),
            &lease,
        )
        .await
        .expect("put");

    let (router, routed) = c.router().await;
    assert_eq!(urls(&router), [honest.url()], "{:?}", router.refused());
    let refused = router.refused();
    let why = |url: &str| -> String {
        refused
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("{url} is not said refused: {refused:?}"))
    };
    assert!(why(&eight.url()).contains("8 shards"), "{refused:?}");
    assert!(why(&liar.running.url()).contains("8 shards"), "{refused:?}");
    assert!(why(&stranger.url()).contains("401"), "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|(k, w)| k.ends_with("readers/garbage") && w.contains("unreadable")),
        "{refused:?}"
    );
    // Asked many times, every answer is the honest reader's alone.
    c.same_as_one_node(&routed, 4, "with refused registrations")
        .await;
    // Still refused on the next listings, never used.
    tokio::time::sleep(REFRESH * 3).await;
    assert_eq!(urls(&router), [honest.url()]);
    drop((eight, liar_reg, stranger, lease));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and an S3 server: .ci/run runs them"]
async fn while_etcd_is_stopped_the_router_answers_from_the_readers_it_knew_and_follows_them_after()
{
    let mut c = cluster().await;
    let first = c.reader("first", &[0, 1, 2, 3], SHARDS, SECRET, None).await;
    let (router, routed) = c.router().await;
    assert_eq!(urls(&router), [first.url()]);
    c.servers.etcd.stop();
    // Listings fail now; the reader last seen is still used.
    tokio::time::sleep(REFRESH * 3).await;
    assert_eq!(urls(&router), [first.url()]);
    c.same_as_one_node(&routed, 2, "etcd stopped").await;
    c.servers.etcd.restart().await;
    let second = c
        .reader("second", &[0, 1, 2, 3], SHARDS, SECRET, None)
        .await;
    until(
        "the router uses the reader registered after etcd came back",
        || urls(&router).contains(&second.url()),
    )
    .await;
    first.running.stop();
    c.same_as_one_node(&routed, 2, "the first reader stopped")
        .await;
    drop((first.registered, second));
}
