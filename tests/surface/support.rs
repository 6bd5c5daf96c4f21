//! Helpers of the surface tests: an in-process server on port 0, an HTTP client, the real
//! binary, and hand-written inputs whose answers are known.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use courbe::engine::{Options, Store};
use courbe::http::{self, ServerConfig};

/// A meter id like a French PRM.
pub const METER: &str = "09111642617347";

/// A server running [`http::run`] on `127.0.0.1:0` in a thread of its own.
pub struct Server {
    pub base: String,
    pub store: Arc<Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Serves the store in `dir` (created when missing).
    pub fn start(dir: &Path, config: ServerConfig) -> Server {
        let store = Arc::new(Store::open(dir, Options::default()).expect("open store"));
        Server::start_with(store, config)
    }

    pub fn start_with(store: Arc<Store>, config: ServerConfig) -> Server {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let served = store.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = addr_tx.send(listener.local_addr()?);
                http::run(listener, served, config, async {
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
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Stops the server (graceful shutdown) and hands back its store.
    pub fn stop(mut self) -> Arc<Store> {
        self.shutdown();
        self.store.clone()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let served = thread.join().expect("the server thread does not panic");
            assert!(served.is_ok(), "the server ends cleanly: {served:?}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.stop.take().map(|s| s.send(()));
            return;
        }
        self.shutdown();
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
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
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

/// Runs the real `courbe` binary.
pub fn courbe(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courbe"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn courbe");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("courbe runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Runs `courbe` and asserts its exit status; returns stdout.
pub fn courbe_ok(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = courbe(args, stdin);
    assert_eq!(
        out.status.code(),
        Some(0),
        "courbe {args:?}: stdout {:?} stderr {:?}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Value of half-hour `i` (0..48) of [`day_csv`]: 100 W, then 10 W more each half-hour.
pub fn day_value(i: i64) -> i64 {
    100 + 10 * i
}

/// One local day (2024-01-15, Paris, UTC+1) of [`METER`] at 30 minutes, timestamps written
/// with the local offset. Energy 8040 Wh; with `HC:22:00-06:00`, HC 2040 Wh and HP 6000 Wh;
/// peak 570 W at 2024-01-15T22:30:00Z.
pub fn day_csv() -> String {
    let mut csv = String::from("meter_id,ts,value_w,quality,step_min\n");
    for i in 0..48 {
        let (h, m) = (i / 2, (i % 2) * 30);
        csv.push_str(&format!(
            "{METER},2024-01-15T{h:02}:{m:02}:00+01:00,{},measured,30\n",
            day_value(i)
        ));
    }
    csv
}

/// An R50 document of one day (2024-01-16, UTC+1) of `prm` at 30 minutes, one `<PDC>` per line
/// from line 5: `PDC/H` is the end of the interval. Value of half-hour `i`: `1000 + i`.
/// `broken` replaces the value of that half-hour with text that is not a number.
pub fn r50(prm: &str, broken: Option<usize>) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(
        "<R50><En_Tete_Flux><Identifiant_Flux>R50</Identifiant_Flux>\
         <Libelle_Flux>Courbes de charge des PRM du segment C5 sur abonnement</Libelle_Flux>\
         <Version_XSD>1.1.0</Version_XSD><Identifiant_Emetteur>ERDF</Identifiant_Emetteur>\
         <Identifiant_Destinataire>1234567</Identifiant_Destinataire>\
         <Date_Creation>2024-01-17T03:00:41+01:00</Date_Creation>\
         <Identifiant_Contrat>1234567</Identifiant_Contrat>\
         <Numero_Abonnement>7654321</Numero_Abonnement>\
         <Pas_Publication>30</Pas_Publication></En_Tete_Flux>\n",
    );
    xml.push_str(&format!("<PRM><Id_PRM>{prm}</Id_PRM>\n"));
    xml.push_str(
        "<Donnees_Releve><Date_Releve>2024-01-16</Date_Releve><Id_Affaire>X1</Id_Affaire>\n",
    );
    for i in 0..48usize {
        let end = (i + 1) * 30;
        let end = if end == 24 * 60 {
            "2024-01-17T00:00:00+01:00".to_string()
        } else {
            format!("2024-01-16T{:02}:{:02}:00+01:00", end / 60, end % 60)
        };
        let value = if broken == Some(i) {
            "12x".to_string()
        } else {
            (1000 + i).to_string()
        };
        xml.push_str(&format!(
            "<PDC><H>{end}</H><V>{value}</V><IV>0</IV></PDC>\n"
        ));
    }
    xml.push_str("</Donnees_Releve>\n</PRM>\n</R50>\n");
    xml
}
