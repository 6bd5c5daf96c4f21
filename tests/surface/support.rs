//! Helpers of the surface tests: an in-process server over a store the test can read, the real
//! binary, and hand-written inputs whose answers are known.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use courbe::engine::{Options, Store};
use courbe_server::http::ServerConfig;

use crate::util;

/// A meter id like a French PRM.
pub const METER: &str = "09111642617347";

/// A server running [`http::run`] on `127.0.0.1:0` over a store the test can read too.
pub struct Server {
    http: util::Server,
    pub store: Arc<Store>,
}

impl Server {
    /// Serves the store in `dir` (created when missing).
    pub fn start(dir: &Path, config: ServerConfig) -> Server {
        let store = Arc::new(Store::open(dir, Options::default()).expect("open store"));
        Server::start_with(store, config)
    }

    pub fn start_with(store: Arc<Store>, config: ServerConfig) -> Server {
        Server {
            http: util::Server::start(store.clone(), config),
            store,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        self.http.url(path_and_query)
    }

    /// Stops the server (graceful shutdown) and hands back its store.
    pub fn stop(mut self) -> Arc<Store> {
        self.http.stop();
        self.store
    }

    /// [`Server::stop`] of a server whose store failed (`util::Server::stop_after_a_failed_store`).
    pub fn stop_after_a_failed_store(mut self) -> Arc<Store> {
        self.http.stop_after_a_failed_store();
        self.store
    }
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
