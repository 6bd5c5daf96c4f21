//! The price channel in the engine: signed values, steps of 15 or 60 minutes on their grid, a
//! namespace of its own (`spot-AREA`), the newest price wins over its interval, format v4 on
//! disk, and neither consent nor erasure ever touches a price.

use courbe::engine::{Batch, Options, Store};
use courbe::governance::consent::ConsentPolicy;
use courbe::governance::{Governance, GovernanceConfig};
use courbe::source::SeriesSource;
use courbe::{Channel, Point, Quality};

use super::read;

/// 2024-05-01T00:00:00Z.
const MAY: i64 = 1_714_521_600;
const FR: &str = "spot-FR";
const PRM: &str = "09111642617347";

fn price(ts_utc: i64, value: i32, step_min: u16) -> Point {
    Point {
        ts_utc,
        value,
        step_min,
        quality: Quality::Measured,
    }
}

fn push(id: &str, channel: Channel, p: Point) -> Result<(), String> {
    Batch::new().push(id, channel, p).map_err(|e| e.0)
}

#[test]
fn prices_are_signed_and_survive_flush_compaction_and_reopen_in_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<Point> = (0..96 * 3)
        .map(|i| price(MAY + 900 * i, (i as i32 % 17 - 8) * 1_234, 15))
        .collect();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let mut batch = Batch::new();
        for p in &expected {
            batch.push(FR, Channel::PRICE, *p).unwrap();
        }
        store.ingest(&batch).unwrap();
        assert_eq!(read(&store, FR, Channel::PRICE), expected);
        store.flush().unwrap();
        store.compact().unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(read(&store, FR, Channel::PRICE), expected);
    assert!(expected.iter().any(|p| p.value < 0));
    let mut versions = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            let bytes = std::fs::read(&path).unwrap();
            versions.push(u16::from_le_bytes([bytes[8], bytes[9]]));
        }
    }
    assert!(
        !versions.is_empty()
            && versions
                .iter()
                .all(|&v| v == storage_format::segment::FORMAT_VERSION),
        "{versions:?}"
    );
}

#[test]
fn price_steps_are_15_or_60_minutes_on_their_grid() {
    push(FR, Channel::PRICE, price(MAY, 1, 15)).expect("15 minutes");
    push(FR, Channel::PRICE, price(MAY, 1, 60)).expect("60 minutes");
    for (ts, step) in [
        (MAY, 30),
        (MAY, 5),
        (MAY, 1440),
        (MAY + 300, 15),
        (MAY + 900, 60),
    ] {
        let err = push(FR, Channel::PRICE, price(ts, 1, step)).expect_err("refused");
        assert!(err.contains("price"), "{err}");
    }
}

#[test]
fn a_price_series_lives_only_under_a_spot_id_and_no_meter_under_one() {
    let err = push(PRM, Channel::PRICE, price(MAY, 1, 15)).expect_err("a PRM holds no price");
    assert!(err.contains("spot-AREA"), "{err}");
    for bad in ["spot-fr", "spot-", "spot-FR.x", "spot-ABCDEFGHIJKLMNOPQ"] {
        assert!(
            push(bad, Channel::PRICE, price(MAY, 1, 15)).is_err(),
            "{bad}"
        );
    }
    push("spot-DE-LU", Channel::PRICE, price(MAY, 1, 15)).expect("an area with a dash");
    for channel in [
        Channel::CONSUMPTION,
        Channel::MAX_POWER,
        Channel::DAILY_ENERGY,
    ] {
        let p = price(MAY, 1, if channel.is_curve() { 30 } else { 1440 });
        let err = push(FR, channel, p).expect_err("no meter data under a series id");
        assert!(err.contains("price series"), "{err}");
    }
    // A stored series is no meter: meter routes answer its id as unknown.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let mut batch = Batch::new();
    batch.push(FR, Channel::PRICE, price(MAY, -50, 15)).unwrap();
    store.ingest(&batch).unwrap();
    let snapshot = store.snapshot();
    assert!(!snapshot.has_meter(FR));
    assert_eq!(snapshot.meters(Channel::PRICE), [FR]);
    assert!(snapshot.meters(Channel::CONSUMPTION).is_empty());
}

#[test]
fn the_newest_price_wins_over_its_interval_like_a_curve_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let mut hourly = Batch::new();
    hourly
        .push(FR, Channel::PRICE, price(MAY, 8_000, 60))
        .unwrap();
    store.ingest(&hourly).unwrap();
    store.flush().unwrap();
    let mut correction = Batch::new();
    correction
        .push(FR, Channel::PRICE, price(MAY + 900, -1_500, 15))
        .unwrap();
    store.ingest(&correction).unwrap();
    assert_eq!(
        read(&store, FR, Channel::PRICE),
        [
            price(MAY, 8_000, 15),
            price(MAY + 900, -1_500, 15),
            price(MAY + 1800, 8_000, 30),
        ]
    );
}

#[test]
fn consent_never_screens_prices_and_erasure_never_touches_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let config = GovernanceConfig {
        consent: ConsentPolicy { required: true },
        ..GovernanceConfig::default()
    };
    let gov = Governance::open(dir.path(), config).unwrap();
    let mut batch = Batch::new();
    batch
        .push(FR, Channel::PRICE, price(MAY, -700, 15))
        .unwrap();
    batch
        .push(PRM, Channel::CONSUMPTION, price(MAY, 400, 30))
        .unwrap();
    let (kept, screening) = gov.ingest(&store, &batch).unwrap();
    // Consent is required and the meter has none: its curve is refused, the price is kept.
    assert_eq!((kept, screening.refused_points), (1, 1));
    assert_eq!(read(&store, FR, Channel::PRICE), [price(MAY, -700, 15)]);
    store.erase(FR, None).unwrap();
    store.flush().unwrap();
    assert_eq!(read(&store, FR, Channel::PRICE), [price(MAY, -700, 15)]);
}
