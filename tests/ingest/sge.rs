//! The Enedis SGE export's daily variants: index (with its calendar), daily maximum power, daily
//! energy.

use courbe::ingest::{parse, Format, IngestError};
use courbe::{Channel, Quality};

use super::support::{assert_rejected, daily, parsed, rejected};

const EXCERPT: &str = include_str!("../data/enedis/Enedis_SGE_HDM_A06NW10D_excerpt.csv");

#[test]
fn the_real_index_export_reads_each_register_by_its_calendar_class() {
    let parsed = parsed(EXCERPT, Format::EnedisCsv);
    assert_eq!(parsed.rejected, []);
    let got = daily(&parsed);
    // Lines before the calendar names a class (INCONNU) are empty; from 2021-01-08T23:00+01:00 the
    // Base calendar names EAS F1 BASE and EAS D1 BASE; the zeros of unused registers are not read.
    let expected: Vec<(i64, i32)> = vec![
        (1_610_143_200, 15_747),    // 2021-01-08T23:00:00+01:00
        (1_610_229_600, 74_071),    // 2021-01-09T23:00:00+01:00
        (1_616_882_400, 3_106_688), // 2021-03-27T23:00:00+01:00
        (1_616_968_800, 3_166_954), // 2021-03-29T00:00:00+02:00
        (1_617_055_200, 3_194_882), // 2021-03-30T00:00:00+02:00
        (1_643_752_800, 9_698_301), // 2022-02-01T23:00:00+01:00
        (1_643_839_200, 9_723_814), // 2022-02-02T23:00:00+01:00
    ];
    assert_eq!(got.len(), 2 * expected.len(), "{got:?}");
    for (pair, (ts, value)) in got.chunks(2).zip(&expected) {
        assert_eq!(
            pair[0],
            ("09111642617347", "BASE", *ts, *value, Quality::Measured)
        );
        assert_eq!(
            pair[1],
            (
                "09111642617347",
                "DIST_BASE",
                *ts,
                *value,
                Quality::Measured
            )
        );
    }
    let peaks: Vec<(i64, i32)> = parsed
        .rows
        .iter()
        .map(|(m, c, p)| {
            assert_eq!(
                (m.as_str(), *c, p.step_min),
                ("09111642617347", Channel::MAX_POWER, 1440)
            );
            (p.ts_utc, p.value)
        })
        .collect();
    assert_eq!(
        peaks,
        [
            (1_610_021_801, 5_502),  // 2021-01-07T13:16:41+01:00
            (1_616_848_723, 5_156),  // 2021-03-27T13:38:43+01:00
            (1_616_996_087, 6_315),  // 2021-03-29T07:34:47+02:00
            (1_626_457_145, 65_535), // 2021-07-16T19:39:05+02:00, as the file says
            (1_635_681_837, 3_774),  // 2021-10-31T13:03:57+01:00
            (1_643_699_889, 5_125),  // 2022-02-01T08:18:09+01:00
        ]
    );
}

const META: &str = "Identifiant PRM;Type de donnees;Date de debut;Date de fin;Grandeur physique;Grandeur metier;Etape metier;Unite";
const CALENDAR_HEADER: &str = "Periode;Identifiant calendrier fournisseur;Libelle calendrier fournisseur;\
Identifiant classe temporelle 1;Libelle classe temporelle 1;Cadran classe temporelle 1;\
Identifiant classe temporelle 2;Libelle classe temporelle 2;Cadran classe temporelle 2;\
Identifiant calendrier distributeur;Libelle calendrier distributeur;\
Identifiant classe temporelle distributeur 1;Libelle classe temporelle distributeur 1;Cadran classe temporelle distributeur 1;\
Identifiant classe temporelle distributeur 2;Libelle classe temporelle distributeur 2;Cadran classe temporelle distributeur 2";

fn export() -> String {
    [
        META,
        "12345678901234;Index;01/03/2024;03/04/2024;Energie active;Consommation;Comptage Brut;Wh",
        "Horodate;Type de releve;EAS F1;EAS F2;EAS D1;EAS D2;EAS T",
        "2024-03-30T00:00:00+01:00;Arrêté quotidien;100;200;300;0;300",
        "2024-03-31T00:00:00+01:00;Arrêté quotidien;110;210;320;;320",
        "2024-04-01T00:00:00+02:00;Arrêté quotidien;50;70;100;20;320",
        "2024-04-02T00:00:00+02:00;Arrêté quotidien;6x;71;;;",
        "2024-04-02T00:00:00;Arrêté quotidien;1;;;;",
        "2024-04-03T00:00:00+02:00;Arrêté quotidien;2147483648;;;;",
        "2024-04-04T00:00:00+02:00;Arrêté quotidien;1;2",
        "2024-02-01T00:00:00+01:00;Arrêté quotidien;1;;;;",
        CALENDAR_HEADER,
        "Du 2024-03-01T00:00:00+01:00 au 2024-04-01T00:00:00+02:00;C1;Base;BASE;Base;EAS F1;;;EAS F2;D1;Dist;BASE;Base;EAS D1;;;EAS D2",
        "Du 2024-04-01T00:00:00+02:00 au;C2;HPHC;HP;HP;EAS F1;HC;HC;EAS F2;D3;Dist;HPB;HPB;EAS D1;HCB;HCB;EAS D2",
        "Du 2024-05-01 au;C3;X;HP;HP;EAS F1;;;EAS F2;D3;Dist;;;EAS D1;;;EAS D2",
        META,
        "12345678901234;Energie quotidienne;01/03/2024;03/04/2024;Energie active;Consommation;Comptage Brut;Wh",
        "Horodate;Valeur",
        "2024-03-31;12000",
        "2024-04-01T00:00:00+02:00;13000",
        "2024-04-02T12:00:00+02:00;1",
        "2024-04-03;",
        META,
        "1234;Puissance maximale quotidienne;01/03/2024;03/04/2024;Puissance maximale atteinte;Consommation;Comptage Brut;W",
        "Horodate;Valeur",
        "2024-04-01T08:00:00+02:00;5000",
        "",
    ]
    .join("\n")
}

#[test]
fn index_cells_follow_the_calendar_period_of_their_instant_and_bad_lines_are_numbered() {
    let parsed = parsed(&export(), Format::EnedisCsv);
    let m = "12345678901234";
    let q = Quality::Measured;
    let (d30, d31, a1, a2) = (1_711_753_200, 1_711_839_600, 1_711_922_400, 1_712_008_800);
    assert_eq!(
        daily(&parsed),
        [
            (m, "BASE", d30, 100, q),
            (m, "DIST_BASE", d30, 300, q),
            (m, "BASE", d31, 110, q),
            (m, "DIST_BASE", d31, 320, q),
            (m, "HP", a1, 50, q),
            (m, "HC", a1, 70, q),
            (m, "DIST_HPB", a1, 100, q),
            (m, "DIST_HCB", a1, 20, q),
            (m, "HC", a2, 71, q),
            (m, "ENERGY", d31, 12_000, q),
            (m, "ENERGY", a1, 13_000, q),
        ]
    );
    assert_eq!(a1 - d31, 23 * 3600, "the spring-forward day is 23 hours");
    assert_rejected(&parsed, 7, &["index of HP \"6x\""]);
    assert_rejected(&parsed, 8, &["Horodate", "UTC offset"]);
    assert_rejected(&parsed, 9, &["2147483648", "2,147,483,647"]);
    assert_rejected(&parsed, 10, &["4 fields (expected 7"]);
    assert_rejected(&parsed, 11, &["no calendar period"]);
    assert_rejected(&parsed, 15, &["calendar period start"]);
    assert_rejected(&parsed, 21, &["not a Europe/Paris midnight"]);
    assert_rejected(&parsed, 26, &["PRM \"1234\" is not 14 digits"]);
    assert_eq!(parsed.rejected.len(), 8, "{:?}", rejected(&parsed));
    assert_eq!(parsed.rows, []);
}

#[test]
fn an_unknown_unit_or_kind_refuses_the_export_with_the_line_that_says_it() {
    for (from, to, says) in [
        (
            ";Comptage Brut;Wh\nHorodate;Type",
            ";Comptage Brut;MWh\nHorodate;Type",
            "MWh",
        ),
        (";Index;", ";Courbe de tension;", "Courbe de tension"),
        (
            ";Consommation;Comptage Brut;Wh\nH",
            ";Production;Comptage Brut;Wh\nH",
            "Production",
        ),
    ] {
        let doc = export().replacen(from, to, 1);
        let err = parse(doc.as_bytes(), Format::EnedisCsv, Channel::CONSUMPTION).unwrap_err();
        assert!(
            matches!(&err, IngestError::Document { line: 2, reason } if reason.contains(says)),
            "{err}"
        );
    }
}
