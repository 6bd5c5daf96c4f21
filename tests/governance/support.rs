//! Helpers of the governance tests: a server with tokens on port 0, a client that sends a
//! bearer token, and a small fleet whose days are relative to today (grants last at most
//! three years and must be in force now).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use courbe::engine::{Batch, Options, Store};
use courbe::governance::auth::token_hash;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::{Channel, Point, Quality};
use courbe_server::http::ServerConfig;

use crate::util::{self, Reply};

/// Two meters like French PRMs; `A` has a supplier grant, `B` has none.
pub const A: &str = "09111642617347";
pub const B: &str = "09111642617348";
/// A well-formed id no one holds data for.
pub const NOBODY: &str = "09111642619999";

/// Tokens of the test principals (the file holds only their hashes).
pub const OPERATOR: &str = "tok-operator";
pub const ACME: &str = "tok-supplier-acme";
pub const OTHER_SUPPLIER: &str = "tok-supplier-other";
pub const CONSUMER_A: &str = "tok-consumer-a";
pub const CONSUMER_B: &str = "tok-consumer-b";
pub const PUBLIC_BODY: &str = "tok-public-body";
pub const PUBLIC: &str = "tok-public";

pub fn tokens_file_text() -> String {
    [
        (OPERATOR, "operator ops"),
        (ACME, "supplier acme"),
        (OTHER_SUPPLIER, "supplier other"),
        (CONSUMER_A, &format!("consumer {A}") as &str),
        (CONSUMER_B, &format!("consumer {B}")),
        (PUBLIC_BODY, "public_body insee"),
        (PUBLIC, "public"),
    ]
    .iter()
    .map(|(t, rest)| format!("{} {rest}\n", token_hash(t)))
    .collect()
}

/// Midnight UTC `days` days from today (negative: in the past).
pub fn day_utc(days: i64) -> i64 {
    let now = jiff::Timestamp::now().as_second();
    (now.div_euclid(86_400) + days) * 86_400
}

pub fn rfc(ts_utc: i64) -> String {
    jiff::Timestamp::from_second(ts_utc).unwrap().to_string()
}

/// `from=...&to=...` of the Europe/Paris calendar month holding `day_utc(days)`, with `tz`.
pub fn paris_month(days: i64) -> String {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let day = jiff::Timestamp::from_second(day_utc(days))
        .unwrap()
        .to_zoned(paris.clone())
        .date();
    let start = day.first_of_month();
    let end = start.checked_add(jiff::Span::new().months(1)).unwrap();
    let at = |d: jiff::civil::Date| rfc(d.to_zoned(paris.clone()).unwrap().timestamp().as_second());
    format!("from={}&to={}&tz=Europe/Paris", at(start), at(end))
}

/// The first days (`YYYY-MM-DD`) of the Europe/Paris months `[first, end)` that hold the
/// instants `[from_utc, to_utc)`.
pub fn paris_months_holding(from_utc: i64, to_utc: i64) -> (String, String) {
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let date = |ts: i64| {
        jiff::Timestamp::from_second(ts)
            .unwrap()
            .to_zoned(paris.clone())
            .date()
    };
    let first = date(from_utc).first_of_month();
    let end = date(to_utc - 1)
        .first_of_month()
        .checked_add(jiff::Span::new().months(1))
        .unwrap();
    (first.to_string(), end.to_string())
}

/// One day of half-hours from `day_utc(days)`, value `base + i`.
pub fn day_batch(batch: &mut Batch, meter: &str, days: i64, base: i32) {
    let start = day_utc(days);
    for i in 0..48 {
        batch
            .push(
                meter,
                Channel::CONSUMPTION,
                Point {
                    ts_utc: start + i * 1_800,
                    value: base + i as i32,
                    step_min: 30,
                    quality: Quality::Measured,
                },
            )
            .unwrap();
    }
}

pub fn max_power_point(ts_utc: i64, va: i32) -> Point {
    Point {
        ts_utc,
        value: va,
        step_min: 1440,
        quality: Quality::Measured,
    }
}

/// A server with governance over the store in `dir`.
pub struct Server {
    http: util::Server,
    pub store: Arc<Store>,
    pub gov: Arc<Governance>,
    pub tokens_path: PathBuf,
}

impl Server {
    /// Writes the tokens file next to `dir` and serves the store in `dir` with it.
    pub fn start(dir: &Path) -> Server {
        Server::start_serving(dir, ServerConfig::default())
    }

    /// [`Server::start`] with the server's own settings `server` (its governance replaced).
    pub fn start_serving(dir: &Path, server: ServerConfig) -> Server {
        let tokens_path = dir.with_extension("tokens");
        std::fs::write(&tokens_path, tokens_file_text()).unwrap();
        let config = GovernanceConfig {
            tokens_path: Some(tokens_path.clone()),
            tokens_recheck: Duration::ZERO,
            ..GovernanceConfig::default()
        };
        Server::start_full(dir, config, Arc::new(courbe::engine::fs::RealFs), server)
    }

    /// A server with governance `config`, the registries opened through `fs` (the store on
    /// the disk).
    pub fn start_on(
        dir: &Path,
        config: GovernanceConfig,
        fs: Arc<dyn courbe::engine::fs::FileSystem>,
    ) -> Server {
        Server::start_full(dir, config, fs, ServerConfig::default())
    }

    fn start_full(
        dir: &Path,
        config: GovernanceConfig,
        fs: Arc<dyn courbe::engine::fs::FileSystem>,
        server: ServerConfig,
    ) -> Server {
        let tokens_path = config.tokens_path.clone().unwrap_or_default();
        let store = Arc::new(Store::open(dir, Options::default()).expect("open store"));
        let gov = Arc::new(Governance::open_with(dir, config, fs).expect("open governance"));
        let server_config = ServerConfig {
            governance: Some(gov.clone()),
            ..server
        };
        Server {
            http: util::Server::start(store.clone(), server_config),
            store,
            gov,
            tokens_path,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        self.http.url(path_and_query)
    }

    /// Sends `method path` with `token` (none when `None`) and an optional body.
    pub fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = util::agent().request(method, &self.url(path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        util::reply(match body {
            Some((content_type, text)) => req.set("Content-Type", content_type).send_string(text),
            None => req.call(),
        })
    }

    /// Releases, as the operator, the aggregates of the Europe/Paris months `[from, to)`
    /// (`YYYY-MM-DD`); returns the release's summary.
    pub fn release(&self, from: &str, to: &str) -> serde_json::Value {
        let reply = self.post_json(
            OPERATOR,
            "/v1/aggregates/releases",
            &serde_json::json!({"from": from, "to": to}),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()
    }

    /// Releases the whole Europe/Paris months holding the days `[day_utc(first), day_utc(end))`.
    pub fn release_days(&self, first: i64, end: i64) -> serde_json::Value {
        let (from, to) = paris_months_holding(day_utc(first), day_utc(end));
        self.release(&from, &to)
    }

    pub fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Some(token), "GET", path, None)
    }

    pub fn post_json(&self, token: &str, path: &str, body: &serde_json::Value) -> Reply {
        self.call(
            Some(token),
            "POST",
            path,
            Some(("application/json", &body.to_string())),
        )
    }
}
