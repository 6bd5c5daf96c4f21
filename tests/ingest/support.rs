//! Helpers of the ingest tests: parsing a text, a generated R151 stream, a counting sink.

use std::io::{self, Read};

use courbe::ingest::{parse, Daily, Format, Parsed, Rejected, Sink};
use courbe::{Channel, Point};

/// Parses `input` as `format` into the consumption channel; panics on a document error.
pub fn parsed(input: &str, format: Format) -> Parsed {
    assert_eq!(Format::detect(input.as_bytes()), format, "detected format");
    parse(input.as_bytes(), format, Channel::CONSUMPTION)
        .unwrap_or_else(|e| panic!("document error: {e}"))
}

/// The rejected records as `(line, reason)`.
pub fn rejected(parsed: &Parsed) -> Vec<(u64, &str)> {
    parsed
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect()
}

/// The daily rows as `(meter, register or "ENERGY", ts, value, quality)`.
pub fn daily(parsed: &Parsed) -> Vec<(&str, &str, i64, i32, courbe::Quality)> {
    parsed
        .daily
        .iter()
        .map(|(m, d, p)| {
            let name = match d {
                Daily::Energy => "ENERGY",
                Daily::Index(n) => n.as_str(),
            };
            (m.as_str(), name, p.ts_utc, p.value, p.quality)
        })
        .collect()
}

/// Asserts that the reason of the record at `line` contains every fragment.
pub fn assert_rejected(parsed: &Parsed, line: u64, fragments: &[&str]) {
    let found: Vec<&Rejected> = parsed.rejected.iter().filter(|r| r.line == line).collect();
    assert!(
        !found.is_empty(),
        "no record rejected at line {line}: {:?}",
        parsed.rejected
    );
    for fragment in fragments {
        assert!(
            found.iter().any(|r| r.reason.contains(fragment)),
            "line {line}: {fragment:?} not in {found:?}"
        );
    }
}

/// An R151 flow of `prms` PRMs, one day each, made as it is read: the whole document is never in
/// memory. PRM `i` has supplier classes HP and HC (index `1000 * i` and `1000 * i + 1`), the
/// distributor's HPH (`2000 * i`) and a maximum power of `i % 9000` VA.
pub struct GeneratedR151 {
    prms: usize,
    next: usize,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

impl GeneratedR151 {
    pub fn new(prms: usize) -> Self {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R151><En_Tete_Flux>\
                    <Unite_Mesure_Index>Wh</Unite_Mesure_Index>\
                    <Unite_Mesure_Puissance>VA</Unite_Mesure_Puissance></En_Tete_Flux>\n";
        GeneratedR151 {
            prms,
            next: 0,
            chunk: head.as_bytes().to_vec(),
            at: 0,
            done: false,
        }
    }

    pub fn prm(i: usize) -> String {
        format!("{:014}", 10_000_000_000_000u64 + i as u64)
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
        let class = |tag: &str, id: &str, v: usize| {
            format!(
                "<{tag}><Id_Classe_Temporelle>{id}</Id_Classe_Temporelle><Rang_Cadran>1</Rang_Cadran>\
                 <Valeur>{v}</Valeur><Indice_Vraisemblance>0</Indice_Vraisemblance></{tag}>\n"
            )
        };
        let text = format!(
            "<PRM><Id_PRM>{}</Id_PRM>\n<Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n{}{}{}\
             <Puissance_Maximale><Valeur>{}</Valeur></Puissance_Maximale>\n</Donnees_Releve>\n</PRM>\n",
            Self::prm(i),
            class("Classe_Temporelle_Distributeur", "HPH", 2000 * i),
            class("Classe_Temporelle", "HP", 1000 * i),
            class("Classe_Temporelle", "HC", 1000 * i + 1),
            i % 9000
        );
        self.chunk.extend_from_slice(text.as_bytes());
    }
}

impl Read for GeneratedR151 {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            self.refill();
        }
        let rest = &self.chunk[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// Counts and checks what a parser hands it, keeping nothing.
#[derive(Default)]
pub struct Counting {
    pub points: u64,
    pub daily: u64,
    pub rejected: Vec<Rejected>,
    /// Sum of every value, to compare with the generator's.
    pub sum: i64,
}

impl Sink for Counting {
    fn point(&mut self, _line: u64, _meter: &str, _channel: Channel, point: Point) {
        self.points += 1;
        self.sum += i64::from(point.value);
    }

    fn reject(&mut self, rejected: Rejected) {
        self.rejected.push(rejected);
    }

    fn daily(&mut self, _line: u64, _meter: &str, _daily: Daily<&str>, point: Point) {
        self.daily += 1;
        self.sum += i64::from(point.value);
    }
}
