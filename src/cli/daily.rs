//! The daily side of a generated fleet: each meter's tariff option, the indexes and daily energy
//! its curve gives under that option, a Tempo calendar, and their file formats (`courbe gen
//! --kind daily|r151|tempo`, `courbe demo`).

use std::io::{self, Write};

use courbe_workload::{Fleet, MeterSeries, TempoColour};

use crate::query::readings::{self, DailyReadings};
use crate::query::tariffs::{
    date_of_day, day_number, Colour, DayColours, TariffOption, TariffPlan,
};
use crate::query::QueryError;
use crate::{Point, Quality};

/// The day-colour series the generated Tempo calendar is stored under.
pub const TEMPO_SERIES: &str = "tempo";

/// The tariff option of meter `index` of a generated fleet: about 60% BASE, 30% HP/HC with
/// off-peak 22:00-06:00, 10% Tempo (roughly the French shares of regulated options).
pub fn option_of(index: u32) -> &'static str {
    match index % 10 {
        0..=5 => "BASE",
        6..=8 => "HPHC:22:00-06:00",
        _ => "TEMPO",
    }
}

/// The distributor's option under a supplier option: the network counts HP/HC for every
/// option with off-peak hours, one register otherwise.
fn distributor_option(option: &str) -> &'static str {
    match option {
        "BASE" => "BASE",
        _ => "HPHC:22:00-06:00",
    }
}

/// The generated Tempo calendar as day colours, from the day before the span: a Tempo day
/// runs from 06:00 to 06:00, so the span's first hours belong to the day before (blue, as most
/// days are: the generator has no weather for it).
pub fn tempo_colours(fleet: &Fleet) -> Vec<(i64, Colour)> {
    let before = day_number(fleet.config().start) - 1;
    std::iter::once((before, Colour::Blue))
        .chain(fleet.tempo_colours().into_iter().map(|(date, c)| {
            let colour = match c {
                TempoColour::Blue => Colour::Blue,
                TempoColour::White => Colour::White,
                TempoColour::Red => Colour::Red,
            };
            (day_number(date), colour)
        }))
        .collect()
}

/// The colours a query or a derivation reads.
pub fn day_colours(days: &[(i64, Colour)]) -> DayColours {
    let mut colours = DayColours::default();
    for &(day, colour) in days {
        if let Ok(date) = date_of_day(day) {
            colours.insert(TEMPO_SERIES, date, colour);
        }
    }
    colours
}

/// One meter's daily readings: the supplier's registers, with the daily energy, and the
/// distributor's (names prefixed `DIST_`).
pub struct MeterDaily {
    pub option: &'static str,
    pub supplier: DailyReadings,
    pub distributor: DailyReadings,
}

/// Derives meter `index`'s daily readings from its curve over the fleet's span.
pub fn meter_daily(
    fleet: &Fleet,
    index: u32,
    series: &MeterSeries,
    colours: &DayColours,
) -> Result<MeterDaily, QueryError> {
    let config = fleet.config();
    let curve: Vec<Point> = series.consumption.iter().map(crate::point_of).collect();
    // A meter's counters start somewhere between 0 and 60 MWh.
    let base_wh = i64::from(index % 60_000) * 1_000;
    let derive = |option: &str| {
        let plan = TariffPlan::Option(TariffOption::parse(option)?);
        readings::derive(&curve, &plan, colours, config.start, config.days, base_wh)
    };
    let option = option_of(index);
    let supplier = derive(option)?;
    let mut distributor = derive(distributor_option(option))?;
    distributor.daily.clear();
    for name in &mut distributor.registers {
        name.insert_str(0, crate::query::daily::DISTRIBUTOR_PREFIX);
    }
    Ok(MeterDaily {
        option,
        supplier,
        distributor,
    })
}

fn xml_date(ts_utc: i64) -> String {
    jiff::Timestamp::from_second(ts_utc)
        .map(|t| t.to_zoned(crate::query::daily::paris()).date().to_string())
        .unwrap_or_default()
}

/// The R151 header, as Enedis writes it (the receiver and contract ids are placeholders).
pub fn write_r151_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><R151 xmlns:xsi =\"http://www.w3.org/2001/XMLSchema-instance\">\
         <En_Tete_Flux><Identifiant_Flux>R151</Identifiant_Flux><Libelle_Flux>Puissances maximales et index des PRM du segment C5 sur abonnement</Libelle_Flux>\
         <Version_XSD>V1</Version_XSD><Identifiant_Emetteur>ERDF</Identifiant_Emetteur><Identifiant_Destinataire>0000000</Identifiant_Destinataire>\
         <Date_Creation>2026-01-01T00:00:00+01:00</Date_Creation><Identifiant_Contrat>0000000</Identifiant_Contrat><Numero_Abonnement>0000000</Numero_Abonnement>\
         <Unite_Mesure_Index>Wh</Unite_Mesure_Index><Unite_Mesure_Puissance>VA</Unite_Mesure_Puissance></En_Tete_Flux>"
    )
}

pub fn write_r151_footer(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "</R151>")
}

/// One `<PRM>` element per day of the span: the index of every register at the day's first
/// instant and the day's maximum power (VA) when the meter has one.
pub fn write_r151_meter(
    out: &mut dyn Write,
    series: &MeterSeries,
    daily: &MeterDaily,
) -> io::Result<()> {
    let days = daily.supplier.indexes.first().map_or(0, Vec::len);
    let max_power: Vec<Point> = series.max_power.iter().map(crate::point_of).collect();
    for day in 0..days {
        let Some(at) = daily.supplier.indexes.first().and_then(|c| c.get(day)) else {
            continue;
        };
        let next = daily
            .supplier
            .indexes
            .first()
            .and_then(|c| c.get(day + 1))
            .map_or(i64::MAX, |p| p.ts_utc);
        write!(
            out,
            "<PRM><Id_PRM>{}</Id_PRM>\n<Donnees_Releve><Date_Releve>{}</Date_Releve>\n\
             <Id_Calendrier_Fournisseur>{}</Id_Calendrier_Fournisseur>\n",
            series.meter_id,
            xml_date(at.ts_utc),
            daily.option
        )?;
        let classes = |out: &mut dyn Write, tag: &str, r: &DailyReadings| -> io::Result<()> {
            for (rank, (name, column)) in r.registers.iter().zip(&r.indexes).enumerate() {
                let Some(p) = column.get(day) else { continue };
                let id = name
                    .strip_prefix(crate::query::daily::DISTRIBUTOR_PREFIX)
                    .unwrap_or(name);
                writeln!(
                    out,
                    "<{tag}><Id_Classe_Temporelle>{id}</Id_Classe_Temporelle><Rang_Cadran>{}</Rang_Cadran>\
                     <Valeur>{}</Valeur><Indice_Vraisemblance>{}</Indice_Vraisemblance></{tag}>",
                    rank + 1,
                    p.value,
                    u8::from(p.quality != Quality::Measured)
                )?;
            }
            Ok(())
        };
        classes(out, "Classe_Temporelle_Distributeur", &daily.distributor)?;
        classes(out, "Classe_Temporelle", &daily.supplier)?;
        let peak = max_power
            .iter()
            .find(|p| p.ts_utc >= at.ts_utc && p.ts_utc < next);
        if let Some(p) = peak {
            writeln!(
                out,
                "<Puissance_Maximale><Valeur>{}</Valeur></Puissance_Maximale>",
                p.value
            )?;
        }
        writeln!(out, "</Donnees_Releve>\n</PRM>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use courbe_workload::FleetConfig;

    #[test]
    fn a_meters_supplier_and_distributor_registers_count_the_same_energy() {
        let fleet = Fleet::new(FleetConfig {
            meters: 10,
            start: jiff::civil::date(2024, 1, 1),
            days: 40,
            ..FleetConfig::default()
        });
        let colours = day_colours(&tempo_colours(&fleet));
        for index in [0, 6, 9] {
            let series = fleet.meter(index);
            let daily = meter_daily(&fleet, index, &series, &colours).unwrap();
            let total = |r: &DailyReadings| -> i64 {
                r.indexes
                    .iter()
                    .map(|c| i64::from(c.last().unwrap().value - c[0].value))
                    .sum()
            };
            let daily_sum: i64 = daily
                .supplier
                .daily
                .iter()
                .map(|p| i64::from(p.value))
                .sum();
            assert_eq!(total(&daily.supplier), daily_sum);
            // Whole Wh per register: the two families differ by less than one Wh a register.
            let gap = (total(&daily.supplier) - total(&daily.distributor)).abs();
            assert!(gap <= 6, "meter {index}: {gap}");
            assert!(daily
                .distributor
                .registers
                .iter()
                .all(|r| r.starts_with("DIST_")));
        }
        let mut xml = Vec::new();
        let series = fleet.meter(9);
        let daily = meter_daily(&fleet, 9, &series, &colours).unwrap();
        write_r151_header(&mut xml).unwrap();
        write_r151_meter(&mut xml, &series, &daily).unwrap();
        write_r151_footer(&mut xml).unwrap();
        let xml = String::from_utf8(xml).unwrap();
        assert_eq!(xml.matches("<PRM>").count(), 41);
        assert!(xml.contains("<Id_Classe_Temporelle>HPJB</Id_Classe_Temporelle>"));
    }
}
