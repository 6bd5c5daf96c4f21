//! Peak memory of the server under concurrent maximal ingest bodies built to amplify memory.
//!
//! `cargo run --release --example ingest_memory -- [KIND] [CLIENTS]` serves an empty store in
//! process and sends CLIENTS (default 4) concurrent bodies of the server's largest size (64 MiB)
//! of KIND, generated as they are sent (the clients hold no body):
//!
//! - `nested`: an R50 header, then `<a>` nested as deep as the body goes;
//! - `empty-records`: an R50 document of `<PDC/>`, each one a rejected record;
//! - `bad-lines`: native CSV of one-byte lines, each one a rejected record;
//! - `long-line`: native CSV whose second line is the rest of the body.
//!
//! Prints each answer's status and the process's peak resident memory (VmHWM) before and after.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use courbe::engine::{Options, Store};
use courbe_server::http::{run, ServerConfig, DEFAULT_MAX_BODY_BYTES};

/// A body of `len` bytes: `head`, then `unit` repeated, generated as it is read.
struct Generated {
    head: Vec<u8>,
    unit: &'static [u8],
    at: u64,
    len: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.at < self.len {
            let at = usize::try_from(self.at).unwrap_or(usize::MAX);
            buf[n] = match self.head.get(at) {
                Some(&b) => b,
                None => self.unit[(at - self.head.len()) % self.unit.len()],
            };
            n += 1;
            self.at += 1;
        }
        Ok(n)
    }
}

fn body(kind: &str, len: u64) -> (Generated, &'static str) {
    let r50_head = b"<R50><En_Tete_Flux><Pas_Publication>30</Pas_Publication></En_Tete_Flux>\
                     <PRM><Id_PRM>12345678901234</Id_PRM><Donnees_Releve>\n"
        .to_vec();
    let (head, unit, content_type): (Vec<u8>, &'static [u8], _) = match kind {
        "nested" => (r50_head, b"<a>", "application/xml"),
        "empty-records" => (r50_head, b"<PDC/>\n", "application/xml"),
        "bad-lines" => (b"meter_id,ts,value_w\n".to_vec(), b"x\n", "text/csv"),
        "long-line" => (b"meter_id,ts,value_w\nm,".to_vec(), b"7", "text/csv"),
        other => panic!("unknown kind {other:?}"),
    };
    let body = Generated {
        head,
        unit,
        at: 0,
        len,
    };
    (body, content_type)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "nested".to_string());
    let clients: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path(), Options::default())?);
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(run(listener, store, ServerConfig::default(), async {
        let _ = stopped.await;
    }));
    println!("{kind}: {clients} bodies of {DEFAULT_MAX_BODY_BYTES} bytes");
    println!("peak RSS before: {:.0} MiB", peak_rss_mib());
    let started = Instant::now();
    let senders: Vec<_> = (0..clients)
        .map(|_| {
            let kind = kind.clone();
            std::thread::spawn(move || {
                let (body, content_type) = body(&kind, DEFAULT_MAX_BODY_BYTES);
                let answer = ureq::post(&format!("http://{addr}/v1/ingest"))
                    .set("Content-Type", content_type)
                    .send(body);
                match answer {
                    Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
                    Err(ureq::Error::Status(status, r)) => {
                        (status, r.into_string().unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                }
            })
        })
        .collect();
    for sender in senders {
        let (status, answer) = sender.join().map_err(|_| "a client panicked")?;
        let shown: String = answer.chars().take(160).collect();
        println!("{status} {shown}");
    }
    println!(
        "peak RSS after: {:.0} MiB ({:.1} s)",
        peak_rss_mib(),
        started.elapsed().as_secs_f64()
    );
    let _ = stop.send(());
    runtime.block_on(server)??;
    Ok(())
}
