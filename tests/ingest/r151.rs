//! R151: daily indexes per class and daily maximum power.

use std::io::BufReader;

use courbe::ingest::{parse, parse_reader, Format, IngestError};
use courbe::{Channel, Quality};

use super::support::{assert_rejected, daily, parsed, rejected, Counting, GeneratedR151};

const FIXTURE: &str = include_str!("../data/enedis/R151.xml");
/// 2022-02-02T00:00:00+01:00, the Paris midnight that starts the fixture's Date_Releve.
const FIXTURE_MIDNIGHT: i64 = 1_643_756_400;

#[test]
fn the_r151_fixture_ingests_to_the_values_the_file_holds() {
    let parsed = parsed(FIXTURE, Format::R151);
    assert_eq!(parsed.rejected, []);
    let m = "09111642617347";
    assert_eq!(
        daily(&parsed),
        [
            (
                m,
                "DIST_BASE",
                FIXTURE_MIDNIGHT,
                9_744_495,
                Quality::Measured
            ),
            (m, "BASE", FIXTURE_MIDNIGHT, 9_744_495, Quality::Measured),
        ]
    );
    assert_eq!(parsed.rows.len(), 1);
    let (meter, channel, point) = &parsed.rows[0];
    assert_eq!((meter.as_str(), *channel), (m, Channel::MAX_POWER));
    assert_eq!(
        (point.ts_utc, point.value, point.step_min),
        (FIXTURE_MIDNIGHT, 3_817, 1440)
    );
    assert!(parsed.daily.iter().all(|(_, _, p)| p.step_min == 1440));
}

fn r151(header_units: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<R151><En_Tete_Flux>{header_units}</En_Tete_Flux>\n{body}</R151>\n"
    )
}

fn class(tag: &str, id: &str, value: &str, iv: &str) -> String {
    format!(
        "<{tag}><Id_Classe_Temporelle>{id}</Id_Classe_Temporelle><Valeur>{value}</Valeur>\
         <Indice_Vraisemblance>{iv}</Indice_Vraisemblance></{tag}>\n"
    )
}

const WH_VA: &str =
    "<Unite_Mesure_Index>Wh</Unite_Mesure_Index><Unite_Mesure_Puissance>VA</Unite_Mesure_Puissance>";

#[test]
fn bad_r151_records_are_rejected_with_their_line_and_reason_and_the_others_kept() {
    let ct = "Classe_Temporelle";
    let body = format!(
        "<PRM><Id_PRM>12345678901234</Id_PRM>\n\
         <Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n\
         {}{}{}{}{}{}\
         <Puissance_Maximale><Valeur>6000</Valeur></Puissance_Maximale>\n\
         <Classe_Temporelle><Valeur>5</Valeur></Classe_Temporelle>\n\
         </Donnees_Releve>\n\
         <Donnees_Releve><Date_Releve>2024-02-30</Date_Releve>\n{}</Donnees_Releve>\n</PRM>\n\
         <PRM><Id_PRM>1234</Id_PRM>\n<Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n{}\
         </Donnees_Releve>\n</PRM>\n",
        class(ct, "HP", "1000", "0"),
        class(ct, "HC", "2147483648", "0"),
        class(ct, "hc", "1", "0"),
        class(ct, "WE", "12x", "0"),
        class(ct, "HPJB", "77", "1"),
        class("Classe_Temporelle_Distributeur", "HPH", "55", "zero"),
        class(ct, "HP", "1", "0"),
        class(ct, "HP", "1", "0"),
    );
    let parsed = parsed(&r151(WH_VA, &body), Format::R151);
    let m = "12345678901234";
    let ts = 1_705_273_200; // 2024-01-15T00:00:00+01:00
    assert_eq!(
        daily(&parsed),
        [
            (m, "HP", ts, 1000, Quality::Measured),
            (m, "HPJB", ts, 77, Quality::Estimated),
        ]
    );
    assert_eq!(parsed.rows.len(), 1, "the maximum power");
    assert_rejected(&parsed, 6, &["index of HC", "2147483648", "2,147,483,647"]);
    assert_rejected(&parsed, 7, &["register name \"hc\"", "[A-Z0-9_]"]);
    assert_rejected(&parsed, 8, &["\"12x\"", "not a non-negative number"]);
    assert_rejected(&parsed, 10, &["Indice_Vraisemblance \"zero\""]);
    assert_rejected(&parsed, 12, &["without <Id_Classe_Temporelle>"]);
    assert_rejected(&parsed, 15, &["Date_Releve \"2024-02-30\"", "out of range"]);
    assert_rejected(&parsed, 20, &["PRM \"1234\" is not 14 digits"]);
    assert_eq!(parsed.rejected.len(), 7, "{:?}", rejected(&parsed));
}

#[test]
fn kilo_units_are_applied_and_unknown_units_refuse_the_document() {
    let units = "<Unite_Mesure_Index>kWh</Unite_Mesure_Index>\
                 <Unite_Mesure_Puissance>kVA</Unite_Mesure_Puissance>";
    let body = format!(
        "<PRM><Id_PRM>12345678901234</Id_PRM><Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n\
         {}{}<Puissance_Maximale><Valeur>6.5</Valeur></Puissance_Maximale>\n</Donnees_Releve></PRM>\n",
        class("Classe_Temporelle", "BASE", "9744.495", "0"),
        class("Classe_Temporelle", "HP", "1.2345", "0"),
    );
    let parsed = parsed(&r151(units, &body), Format::R151);
    assert_eq!(daily(&parsed)[0].3, 9_744_495);
    assert_rejected(&parsed, 5, &["\"1.2345\" kWh is finer than a whole Wh"]);
    assert_eq!(parsed.rows[0].2.value, 6_500);
    for bad in [
        "<Unite_Mesure_Index>MWh</Unite_Mesure_Index>",
        "<Unite_Mesure_Puissance>W</Unite_Mesure_Puissance>",
    ] {
        let err = parse(
            r151(bad, &body).as_bytes(),
            Format::R151,
            Channel::CONSUMPTION,
        )
        .unwrap_err();
        assert!(
            matches!(&err, IngestError::Document { line: 2, reason } if reason.contains("is not")),
            "{err}"
        );
    }
}

#[test]
fn an_r151_day_is_stamped_at_its_paris_midnight_across_dst_changes() {
    let day = |date: &str| {
        format!(
            "<Donnees_Releve><Date_Releve>{date}</Date_Releve>\n{}</Donnees_Releve>\n",
            class("Classe_Temporelle", "BASE", "1", "0")
        )
    };
    let body = format!(
        "<PRM><Id_PRM>12345678901234</Id_PRM>\n{}{}{}{}</PRM>\n",
        day("2024-03-31"),
        day("2024-04-01"),
        day("2024-10-27"),
        day("2024-10-28")
    );
    let parsed = parsed(&r151(WH_VA, &body), Format::R151);
    let stamps: Vec<i64> = daily(&parsed).iter().map(|d| d.2).collect();
    // 23:00Z before the spring change, 22:00Z through summer, 23:00Z after the autumn change.
    assert_eq!(
        stamps,
        [1_711_839_600, 1_711_922_400, 1_729_980_000, 1_730_070_000]
    );
    assert_eq!(stamps[1] - stamps[0], 23 * 3600, "a 23-hour day");
    assert_eq!(stamps[3] - stamps[2], 25 * 3600, "a 25-hour day");
}

#[test]
fn malformed_r151_documents_are_refused_or_cut_at_the_error() {
    let err = parse(b"<R50/>", Format::R151, Channel::CONSUMPTION).unwrap_err();
    assert!(err.to_string().contains("not an R151 flow"), "{err}");
    let body = format!(
        "<PRM><Id_PRM>12345678901234</Id_PRM><Donnees_Releve><Date_Releve>2024-01-15</Date_Releve>\n\
         {}</Donnees_Releve>\n<Donnees_Releve><Date_Releve>2024-01-16</Date_Releve>\n{}",
        class("Classe_Temporelle", "HP", "1", "0"),
        class("Classe_Temporelle", "HP", "2", "0"),
    );
    let cut = r151(WH_VA, &body).replace("</R151>\n", "");
    let parsed = parse(cut.as_bytes(), Format::R151, Channel::CONSUMPTION).unwrap();
    assert_eq!(parsed.daily.len(), 1);
    assert_rejected(&parsed, 7, &["interrupted"]);
    assert!(parsed
        .rejected
        .iter()
        .any(|r| r.reason.contains("not read")));
    // Every prefix of a document parses without panicking.
    let whole = r151(
        WH_VA,
        &body.replace(
            "</Donnees_Releve>\n<Donnees",
            "</Donnees_Releve></PRM><PRM><Id_PRM>12345678901234</Id_PRM><Donnees",
        ),
    );
    for end in 0..whole.len() {
        let _ = parse(&whole.as_bytes()[..end], Format::R151, Channel::CONSUMPTION);
    }
}

#[test]
fn ten_thousand_generated_prms_stream_through_without_the_whole_document() {
    let prms = 10_000;
    let mut sink = Counting::default();
    // A 1 KiB buffer over a generator that makes one PRM at a time: the parser holds neither.
    let reader = BufReader::with_capacity(1024, GeneratedR151::new(prms));
    let format = parse_reader(reader, Channel::CONSUMPTION, &mut sink).unwrap();
    assert_eq!(format, Format::R151);
    assert_eq!(sink.rejected, []);
    assert_eq!(sink.daily, 3 * prms as u64);
    assert_eq!(sink.points, prms as u64);
    let expected: i64 = (0..prms as i64)
        .map(|i| 2000 * i + 1000 * i + (1000 * i + 1) + i % 9000)
        .sum();
    assert_eq!(sink.sum, expected);
}
