//! Helpers shared by the integration tests: a seeded generator, an in-process server on port 0
//! and an HTTP client.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use courbe::engine::Store;
use courbe_server::http::{self, ServerConfig};

/// A small seeded generator (SplitMix64), so every test run is the same.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A server running [`http::run`] on `127.0.0.1:0` in a thread of its own. Dropping it shuts
/// it down gracefully and asserts that it ended cleanly (unless the test is already panicking).
pub struct Server {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), http::ServeError>>>,
}

impl Server {
    pub fn start(store: Arc<Store>, config: ServerConfig) -> Server {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = addr_tx.send(listener.local_addr()?);
                http::run(listener, store, config, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server binds a port");
        Server {
            base: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Shuts the server down gracefully and asserts that it ended cleanly; a no-op once done.
    pub fn stop(&mut self) {
        if let Some(served) = self.finish() {
            assert!(served.is_ok(), "the server ends cleanly: {served:?}");
        }
    }

    /// Shuts down a server whose store refused writes after a failure: its final flush fails
    /// too, and `run` says so.
    pub fn stop_after_a_failed_store(&mut self) {
        if let Some(served) = self.finish() {
            assert!(
                matches!(served, Err(http::ServeError::Flush(_))),
                "the final flush fails: {served:?}"
            );
        }
    }

    fn finish(&mut self) -> Option<Result<(), http::ServeError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take()?;
        Some(thread.join().expect("the server thread does not panic"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.stop.take().map(|s| s.send(()));
            return;
        }
        self.stop();
    }
}

/// An HTTP answer: status, content type and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a JSON error answer with this status and code; returns its message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "an error says why: {}", self.body);
        message.to_string()
    }

    /// The `error.code` of an error answer, or `None` for a success.
    pub fn error_code(&self) -> Option<String> {
        if self.status < 400 {
            return None;
        }
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        Some(
            self.json()["error"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    }
}

/// A client with a timeout generous enough for a loaded CI machine.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// The answer of a request, whatever its status; a transport error panics.
pub fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_string();
    let body = response.into_string().expect("a UTF-8 body");
    Reply {
        status,
        content_type,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call())
}

pub fn request(method: &str, url: &str) -> Reply {
    reply(agent().request(method, url).call())
}

pub fn post(url: &str, content_type: &str, body: &str) -> Reply {
    reply(
        agent()
            .post(url)
            .set("Content-Type", content_type)
            .send_string(body),
    )
}

/// Sends the body with chunked transfer encoding: no declared length.
pub fn post_chunked(url: &str, content_type: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(url)
            .set("Content-Type", content_type)
            .send(body),
    )
}
