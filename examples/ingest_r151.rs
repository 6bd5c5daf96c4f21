//! Ingest speed of Enedis R151 flows.
//!
//! `cargo run --release --example ingest_r151 -- [PRMS]` generates an R151 flow of PRMS (default
//! 100,000) delivery points, one day each, as it is read (the document is never in memory), each
//! PRM with the records of an HP/HC contract: supplier classes HP and HC, the distributor's four
//! classes (HPH, HCH, HPB, HCB) and a maximum power, written as Enedis writes them (labels, cadran
//! ranks, plausibility index). It prints:
//!
//! 1. parsing alone (into a sink that counts): records/s and MB/s;
//! 2. `courbe ingest`'s path into a fresh store in a temporary directory (batches of 100,000
//!    points, write-ahead log, group commit, a final flush): points/s.

use std::io::{self, BufReader, Read};
use std::time::Instant;

use courbe::engine::{Options, Store};
use courbe::ingest::{parse_reader, Daily, Rejected, Sink};
use courbe::{Channel, Point};
use courbe_server::http::loading::{BatchSink, Delivery, SinkConfig};

/// An R151 flow made as it is read, one PRM at a time.
struct Generated {
    prms: usize,
    next: usize,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
    bytes: u64,
}

impl Generated {
    fn new(prms: usize) -> Self {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><R151 xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
            <En_Tete_Flux><Identifiant_Flux>R151</Identifiant_Flux><Libelle_Flux>Puissances maximales et index des PRM \
            du segment C5 sur abonnement</Libelle_Flux><Version_XSD>V1</Version_XSD><Identifiant_Emetteur>ERDF\
            </Identifiant_Emetteur><Identifiant_Destinataire>2617347</Identifiant_Destinataire><Date_Creation>\
            2024-01-16T03:07:26+01:00</Date_Creation><Identifiant_Contrat>2617347</Identifiant_Contrat>\
            <Numero_Abonnement>3184182</Numero_Abonnement><Unite_Mesure_Index>Wh</Unite_Mesure_Index>\
            <Unite_Mesure_Puissance>VA</Unite_Mesure_Puissance></En_Tete_Flux>\n";
        Generated {
            prms,
            next: 0,
            chunk: head.as_bytes().to_vec(),
            at: 0,
            done: false,
            bytes: 0,
        }
    }

    fn refill(&mut self) {
        self.chunk.clear();
        self.at = 0;
        if self.next == self.prms {
            if !self.done {
                self.chunk.extend_from_slice(b"</R151>\n");
                self.done = true;
            }
            return;
        }
        let i = self.next;
        self.next += 1;
        let class = |tag: &str, id: &str, label: &str, rank: usize, v: usize| {
            format!(
                "<{tag}><Id_Classe_Temporelle>{id}</Id_Classe_Temporelle><Libelle_Classe_Temporelle>{label}\
                 </Libelle_Classe_Temporelle><Rang_Cadran>{rank}</Rang_Cadran><Valeur>{v}</Valeur>\
                 <Indice_Vraisemblance>0</Indice_Vraisemblance></{tag}>\n"
            )
        };
        let d = "Classe_Temporelle_Distributeur";
        let base = 1_000_000 + (i * 7919) % 50_000_000;
        let text = format!(
            "<PRM><Id_PRM>{:014}</Id_PRM>\n<Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n\
             <Id_Calendrier_Fournisseur>FC000012</Id_Calendrier_Fournisseur>\n\
             <Libelle_Calendrier_Fournisseur>Heures Pleines / Heures Creuses</Libelle_Calendrier_Fournisseur>\n\
             <Id_Calendrier_Distributeur>DI000003</Id_Calendrier_Distributeur>\n\
             <Libelle_Calendrier_Distributeur>Avec différenciation temporelle et saisonnière</Libelle_Calendrier_Distributeur>\n\
             <Id_Affaire>M02SXIXD</Id_Affaire>\n{}{}{}{}{}{}\
             <Puissance_Maximale><Valeur>{}</Valeur></Puissance_Maximale>\n</Donnees_Releve>\n</PRM>\n",
            10_000_000_000_000u64 + i as u64,
            class(d, "HPH", "Heures Pleines Hiver", 1, base),
            class(d, "HCH", "Heures Creuses Hiver", 2, base / 2),
            class(d, "HPB", "Heures Pleines Ete", 3, base / 3),
            class(d, "HCB", "Heures Creuses Ete", 4, base / 4),
            class("Classe_Temporelle", "HP", "Heures Pleines", 1, base + base / 3),
            class("Classe_Temporelle", "HC", "Heures Creuses", 2, base / 2 + base / 4),
            3000 + i % 6000
        );
        self.chunk.extend_from_slice(text.as_bytes());
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            self.refill();
        }
        let rest = &self.chunk[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[derive(Default)]
struct Count {
    records: u64,
    rejected: u64,
}

impl Sink for Count {
    fn point(&mut self, _: u64, _: &str, _: Channel, _: Point) {
        self.records += 1;
    }
    fn reject(&mut self, _: Rejected) {
        self.rejected += 1;
    }
    fn daily(&mut self, _: u64, _: &str, _: Daily<&str>, _: Point) {
        self.records += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prms: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);

    let mut gen = Generated::new(prms);
    let mut count = Count::default();
    let started = Instant::now();
    parse_reader(
        BufReader::with_capacity(1 << 20, &mut gen),
        Channel::CONSUMPTION,
        &mut count,
    )?;
    let s = started.elapsed().as_secs_f64();
    println!(
        "parse: {prms} PRMs, {} records ({} rejected), {:.1} MB in {s:.2} s: {:.0} records/s, {:.1} MB/s",
        count.records,
        count.rejected,
        gen.bytes as f64 / 1e6,
        count.records as f64 / s,
        gen.bytes as f64 / 1e6 / s
    );

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default())?;
    let started = Instant::now();
    let mut sink = BatchSink::new(
        &store,
        SinkConfig {
            delivery: Delivery::Streaming,
            batch_points: 100_000,
            keep_rejected: 20,
        },
    );
    parse_reader(
        BufReader::with_capacity(1 << 20, Generated::new(prms)),
        Channel::CONSUMPTION,
        &mut sink,
    )?;
    let report = sink.finish()?;
    store.flush()?;
    let s = started.elapsed().as_secs_f64();
    println!(
        "ingest: {} points ({} rejected) durable and flushed in {s:.2} s: {:.0} points/s, {:.0} PRMs/s",
        report.accepted,
        report.rejected_count,
        report.accepted as f64 / s,
        prms as f64 / s
    );
    Ok(())
}
