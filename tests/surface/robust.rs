//! The server under hostile or failing conditions: stalled clients, oversized request heads,
//! bodies of bad lines, odd values, a full disk and a failed fsync.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use courbe::engine::fs::{DirLock, FileSystem, MappedFile, RealFs, WritableFile};
use courbe::engine::{Options, Store};
use courbe_server::http::ServerConfig;

use super::support::{day_csv, Server, METER};
use crate::util::{agent, get, post, reply};

const CSV: &str = "text/csv";

/// Sends `head` (and nothing after it) on a new connection to the server.
fn stalled_client(server: &Server, head: &str) -> TcpStream {
    let addr = server.url("").trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(head.as_bytes()).expect("send the head");
    stream
}

/// Everything the server sends on `stream` until it closes it (or `wait` passes).
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> String {
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after the answer is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed within {wait:?}: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(4),
        ..ServerConfig::default()
    }
}

#[test]
fn stalled_uploads_never_block_another_ingest_and_are_answered_408() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), short_timeouts());
    // Four uploads that send half their body, and two that send part of their headers.
    let mut stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            stalled_client(
                &server,
                "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n\
                 Content-Length: 1000\r\n\r\nmeter_id,ts,value_w\n",
            )
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| stalled_client(&server, "POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let reply = post(&server.url("/v1/ingest"), CSV, &day_csv());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 48);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fifth ingest waited {:?}",
        started.elapsed()
    );
    for stream in &mut stalled {
        let answer = read_until_closed(stream, Duration::from_secs(30));
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer:?}");
    }
    for stream in &mut silent {
        let answer = read_until_closed(stream, Duration::from_secs(30));
        assert!(!answer.contains("200 OK"), "{answer:?}");
    }
}

#[test]
fn a_request_target_or_headers_over_the_limits_get_a_json_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    let long = format!(
        "/v1/meters/{METER}/curve?from=2024-01-01&to=2024-01-02&x={}",
        "a".repeat(courbe_server::http::MAX_URI_LEN)
    );
    let message = get(&server.url(&long)).assert_error(414, "uri_too_long");
    assert!(message.contains("at most"), "{message}");
    let mut request = agent().get(&server.url("/healthz"));
    for i in 0..courbe_server::http::MAX_HEADERS + 10 {
        request = request.set(&format!("x-filler-{i}"), "1");
    }
    reply(request.call()).assert_error(431, "headers_too_large");
    let big = "b".repeat(courbe_server::http::MAX_HEADER_BYTES);
    reply(
        agent()
            .get(&server.url("/healthz"))
            .set("x-big", &big)
            .call(),
    )
    .assert_error(431, "headers_too_large");
    // Under the limits, the same requests are answered.
    assert_eq!(get(&server.url("/healthz")).status, 200);
}

#[test]
fn a_body_of_bad_lines_lists_the_first_thousand_and_counts_them_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    let mut body = String::from("meter_id,ts,value_w\n");
    for _ in 0..20_000 {
        body.push_str("x\n");
    }
    let reply = post(&server.url("/v1/ingest"), CSV, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["rejected_count"], 20_000);
    let listed = v["rejected"].as_array().expect("rejected");
    assert_eq!(listed.len(), courbe_server::http::loading::KEPT_REJECTED);
    assert_eq!(listed[0]["line"], 2);
}

#[test]
fn year_9999_negative_powers_and_meter_ids_of_dots_are_rejected_with_their_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    let body = format!(
        "meter_id,ts,value_w\n\
         {METER},9999-12-31T12:00:00Z,5\n\
         {METER},2024-01-15T00:00:00Z,-5\n\
         ..,2024-01-15T00:00:00Z,5\n\
         .,2024-01-15T00:00:00Z,5\n\
         {METER},2024-01-15T00:30:00Z,5\n"
    );
    let reply = post(&server.url("/v1/ingest"), CSV, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["accepted"], 1);
    let rejected: Vec<(u64, String)> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().unwrap_or_default().to_string();
            (r["line"].as_u64().unwrap_or_default(), reason)
        })
        .collect();
    let lines: Vec<u64> = rejected.iter().map(|r| r.0).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert!(
        rejected[0].1.contains("9998-12-31T23:59:59Z"),
        "{rejected:?}"
    );
    assert!(rejected[1].1.contains("negative"), "{rejected:?}");
    assert!(rejected[2].1.contains("only dots"), "{rejected:?}");
    assert!(rejected[3].1.contains("only dots"), "{rejected:?}");
}

/// The real file system, with writes (`FULL`) or syncs (`SYNC_FAILS`) failing once told to.
#[derive(Debug, Default)]
struct FailingDisk {
    mode: Arc<AtomicU8>,
}

const HEALTHY: u8 = 0;
const FULL: u8 = 1;
const SYNC_FAILS: u8 = 2;

struct FailingFile {
    inner: Box<dyn WritableFile>,
    mode: Arc<AtomicU8>,
}

impl WritableFile for FailingFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.mode.load(Ordering::SeqCst) == FULL {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write_all(buf)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.mode.load(Ordering::SeqCst) == SYNC_FAILS {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        self.inner.sync()
    }
}

impl FileSystem for FailingDisk {
    fn lock(&self, path: &std::path::Path) -> std::io::Result<Box<dyn DirLock>> {
        RealFs.lock(path)
    }
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        RealFs.list_dir(dir)
    }
    fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn create(&self, path: &std::path::Path) -> std::io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FailingFile {
            inner: RealFs.create(path)?,
            mode: self.mode.clone(),
        }))
    }
    fn append(&self, path: &std::path::Path) -> std::io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FailingFile {
            inner: RealFs.append(path)?,
            mode: self.mode.clone(),
        }))
    }
    fn map(&self, path: &std::path::Path) -> std::io::Result<Arc<dyn MappedFile>> {
        RealFs.map(path)
    }
    fn truncate(&self, path: &std::path::Path, len: u64) -> std::io::Result<()> {
        RealFs.truncate(path, len)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        RealFs.remove(path)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn len(&self, path: &std::path::Path) -> std::io::Result<u64> {
        RealFs.len(path)
    }
}

/// A server over a [`FailingDisk`] store; the mode switch breaks the disk.
fn server_on_failing_disk(dir: &std::path::Path) -> (Server, Arc<AtomicU8>) {
    let disk = FailingDisk::default();
    let mode = disk.mode.clone();
    let store = Store::open_with(dir, Options::default(), Arc::new(disk)).expect("open the store");
    (
        Server::start_with(Arc::new(store), ServerConfig::default()),
        mode,
    )
}

fn assert_degraded(server: &Server) {
    let health = get(&server.url("/healthz"));
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "degraded", "{}", health.body);
}

#[test]
fn a_full_disk_is_a_507_that_names_no_server_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mode) = server_on_failing_disk(dir.path());
    let ok = get(&server.url("/healthz"));
    assert_eq!((ok.status, ok.json()["status"].clone()), (200, "ok".into()));
    mode.store(FULL, Ordering::SeqCst);
    let reply = post(&server.url("/v1/ingest"), CSV, &day_csv());
    let message = reply.assert_error(507, "insufficient_storage");
    let path = dir.path().display().to_string();
    assert!(!reply.body.contains(&path), "{}", reply.body);
    assert!(!reply.body.contains(".log"), "{}", reply.body);
    assert!(message.contains("disk is full"), "{message}");
    // The store now refuses writes, and says so.
    assert_degraded(&server);
    post(&server.url("/v1/ingest"), CSV, &day_csv()).assert_error(503, "unavailable");
    mode.store(HEALTHY, Ordering::SeqCst);
    drop(server.stop_after_a_failed_store());
}

#[test]
fn after_a_failed_fsync_healthz_is_degraded_and_the_500_names_no_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mode) = server_on_failing_disk(dir.path());
    mode.store(SYNC_FAILS, Ordering::SeqCst);
    let reply = post(&server.url("/v1/ingest"), CSV, &day_csv());
    reply.assert_error(500, "internal");
    assert!(
        !reply.body.contains(&dir.path().display().to_string()),
        "{}",
        reply.body
    );
    assert_degraded(&server);
    mode.store(HEALTHY, Ordering::SeqCst);
    assert_degraded(&server);
    drop(server.stop_after_a_failed_store());
}

#[test]
fn bodies_in_memory_are_bounded_and_a_body_past_the_bound_waits_then_gets_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServerConfig {
        max_body_bytes: 1_024,
        max_body_memory_bytes: 2_048,
        ..short_timeouts()
    };
    let server = Server::start(dir.path(), config);
    let small = format!("meter_id,ts,value_w\n{METER},2024-01-15T00:00:00Z,5\n");
    let small_head = format!(
        "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        small.len()
    );
    // Its body time starts now; the two bodies that fill the memory come a second later.
    let mut waiter = stalled_client(&server, &small_head);
    std::thread::sleep(Duration::from_secs(1));
    let half = format!("meter_id,ts,value_w\n{}", "x\n".repeat(490));
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            stalled_client(
                &server,
                &format!(
                    "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n\
                     Content-Length: 1024\r\n\r\n{half}"
                ),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    waiter.write_all(small.as_bytes()).expect("send the body");
    let answer = read_until_closed(&mut waiter, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains(r#""code":"unavailable""#), "{answer:?}");
    for stream in &mut holders {
        let answer = read_until_closed(stream, Duration::from_secs(30));
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    // Their bytes are given back with their answers.
    let reply = post(&server.url("/v1/ingest"), CSV, &small);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn requests_hyper_refuses_itself_get_the_json_error_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), ServerConfig::default());
    let answer_to = |request: String| {
        let mut stream = stalled_client(&server, &request);
        read_until_closed(&mut stream, Duration::from_secs(30))
    };
    let cases = [
        (
            format!(
                "GET /healthz?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            ),
            "HTTP/1.1 414",
            "uri_too_long",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..1_000)
                    .map(|i| format!("x-h{i}: 1\r\n"))
                    .collect::<String>()
            ),
            "HTTP/1.1 431",
            "headers_too_large",
        ),
        (
            "NOT HTTP AT ALL\r\n\r\n".to_string(),
            "HTTP/1.1 400",
            "invalid_argument",
        ),
    ];
    for (request, status, code) in cases {
        let answer = answer_to(request);
        assert!(answer.starts_with(status), "{answer:?}");
        assert!(
            answer.contains("content-type: application/json"),
            "{answer:?}"
        );
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(v["error"]["code"], code, "{answer:?}");
    }
}
