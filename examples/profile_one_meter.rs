//! A driver for profilers: one meter's year curve or daily energy asked N times of a small store
//! (100 generated meters x 365 days, consumption only, built once and kept in the directory
//! given, default `target/profile-one-meter`), so that `valgrind --tool=callgrind` counts the
//! query's instructions repeatably (the store's build is skipped on the next run).
//!
//! `cargo build --release --example profile_one_meter`, then
//! `valgrind --tool=callgrind target/release/examples/profile_one_meter energy 200` (or `curve`;
//! `curve-arrow` and `energy-arrow` run the server's whole answer, Arrow bytes included, through
//! `http::body::answer_encoded`), and
//! `callgrind_annotate --inclusive=yes callgrind.out.PID | grep 'query::energy \['`.
use courbe::engine::{Batch, Options, Store};
use courbe::query::{self, Calendar, Period};
use courbe::question::{CalendarQuestion, Encoding, Limits, Question};
use courbe::{point_of, Channel};
use courbe_workload::{Fleet, FleetConfig};
use jiff::tz::TimeZone;
fn main() {
    let dir = std::path::PathBuf::from(
        std::env::var("COURBE_PROFILE_STORE").unwrap_or_else(|_| "target/profile-one-meter".into()),
    );
    let dir = dir.as_path();
    let meters = 100u32;
    let fleet = Fleet::new(FleetConfig {
        meters,
        days: 365,
        ..FleetConfig::default()
    });
    let store = if dir.exists() {
        Store::open(dir, Options::default()).unwrap()
    } else {
        let store = Store::open(dir, Options::default()).unwrap();
        for first in (0..meters).step_by(50) {
            let mut batch = Batch::new();
            for i in first..(first + 50).min(meters) {
                let m = fleet.meter(i);
                for r in &m.consumption {
                    batch
                        .push(&m.meter_id, Channel::CONSUMPTION, point_of(r))
                        .unwrap();
                }
            }
            store.ingest(&batch).unwrap();
        }
        store.flush().unwrap();
        store.compact().unwrap();
        store
    };
    let meter = fleet.meter_id(meters / 2);
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let midnight = |d: jiff::civil::Date| d.to_zoned(tz.clone()).unwrap().timestamp().as_second();
    let year = Calendar {
        from_utc: midnight(jiff::civil::date(2024, 1, 1)),
        to_utc: midnight(jiff::civil::date(2025, 1, 1)),
        period: Period::Day,
        tz: tz.clone(),
    };
    let what = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let question = match what.as_str() {
        "curve-arrow" => Some(Question::Curve {
            meter: meter.clone(),
            channel: Channel::CONSUMPTION,
            from_utc: year.from_utc,
            to_utc: year.to_utc,
            columns: false,
        }),
        "energy-arrow" => Some(Question::Energy {
            meter: meter.clone(),
            channel: Channel::CONSUMPTION,
            calendar: CalendarQuestion {
                calendar: year.clone(),
                tz_name: "Europe/Paris".into(),
            },
            tariff: None,
        }),
        _ => None,
    };
    let limits = Limits::default();
    let t = std::time::Instant::now();
    let mut total = 0usize;
    for _ in 0..n {
        let snap = store.snapshot();
        if let Some(question) = &question {
            let (bytes, _) = courbe_server::http::body::answer_encoded(
                &*snap,
                question,
                Encoding::Arrow,
                &limits,
            )
            .unwrap();
            total += bytes.len();
        } else if what == "curve" {
            total += query::curve(
                &*snap,
                &meter,
                Channel::CONSUMPTION,
                year.from_utc,
                year.to_utc,
            )
            .unwrap()
            .len();
        } else {
            total += query::energy(&*snap, &meter, Channel::CONSUMPTION, &year, None)
                .unwrap()
                .len();
        }
    }
    eprintln!(
        "{what}: {:.1} us/query ({total})",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
