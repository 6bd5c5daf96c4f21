//! The cost of splitting energy by register: one meter's year of half-hours, energy per month
//! with no split, with the `HC:` split, and by register (`option:TEMPO` with a full year of
//! colours, and `option:SEASONAL`), best of 20 runs each.
//!
//! `cargo run --release --example tariff_cost`

use std::time::{Duration, Instant};

use courbe::engine::{Batch, Options, Store};
use courbe::query::tariffs::{Colour, DayColours, TariffOption, TariffPlan};
use courbe::query::{self, Calendar, Period, Tariff};
use courbe::{Channel, Point, Quality};

const METER: &str = "09111642617347";

fn best(mut f: impl FnMut()) -> Duration {
    (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default())?;
    // 2024 in Paris: 2023-12-31T23:00Z to 2024-12-31T23:00Z.
    let (from, to) = (1_704_063_600_i64, 1_735_686_000_i64);
    let mut batch = Batch::new();
    let mut t = from;
    let mut k = 0_i32;
    while t < to {
        batch
            .push(
                METER,
                Channel::CONSUMPTION,
                Point {
                    ts_utc: t,
                    value: 300 + (k % 97) * 7,
                    step_min: 30,
                    quality: Quality::Measured,
                },
            )
            .map_err(|e| format!("{e:?}"))?;
        t += 1_800;
        k += 1;
    }
    store.ingest(&batch)?;
    store.flush()?;
    let snapshot = store.snapshot();
    let calendar = Calendar {
        from_utc: from,
        to_utc: to,
        period: Period::Month,
        tz: query::time_zone("Europe/Paris")?,
    };
    let mut colours = DayColours::default();
    let mut day: jiff::civil::Date = "2023-12-30".parse()?;
    for i in 0..370 {
        let c = [Colour::Blue, Colour::White, Colour::Red][i % 3];
        colours.insert("tempo", day, c);
        day = day.tomorrow()?;
    }
    let hc: Tariff = "HC:22:00-06:00".parse()?;
    let tempo = TariffPlan::Option(TariffOption::parse("TEMPO")?);
    let seasonal = TariffPlan::Option(TariffOption::parse("SEASONAL:22:00-06:00")?);
    let plain = best(|| {
        query::energy(&*snapshot, METER, Channel::CONSUMPTION, &calendar, None).unwrap();
    });
    let split = best(|| {
        query::energy(
            &*snapshot,
            METER,
            Channel::CONSUMPTION,
            &calendar,
            Some(&hc),
        )
        .unwrap();
    });
    let by = |plan: &TariffPlan| {
        best(|| {
            query::energy_by_register(
                &*snapshot,
                METER,
                Channel::CONSUMPTION,
                &calendar,
                plan,
                &colours,
            )
            .unwrap();
        })
    };
    let (tempo_t, seasonal_t) = (by(&tempo), by(&seasonal));
    println!("a year of half-hours (17,568 points), energy per month, best of 20:");
    println!("  no split             {plain:>10.2?}");
    println!("  HC:22:00-06:00       {split:>10.2?}");
    println!("  option:TEMPO         {tempo_t:>10.2?}");
    println!("  option:SEASONAL      {seasonal_t:>10.2?}");
    Ok(())
}
