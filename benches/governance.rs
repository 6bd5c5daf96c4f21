//! The per-request cost of access control: authenticating a bearer token (SHA-256 and a table
//! lookup) and [`authorize`] for the cheapest role (operator) and the dearest (a supplier's curve
//! read: grant search and consent history), on registries of 10,000 meters.

use std::hint::black_box;
use std::time::Duration;

use courbe::governance::auth::{authorize, token_hash, Action, Facts, Principal, Role};
use courbe::governance::consent::{Collection, ConsentEvent, ConsentRegistry};
use courbe::governance::grants::{Grant, GrantEvent, GrantRegistry, Kinds};
use courbe::governance::{Governance, GovernanceConfig};
use criterion::{criterion_group, criterion_main, Criterion};

const METERS: u64 = 10_000;

fn meter(i: u64) -> String {
    format!("0911164{i:07}")
}

fn registries() -> (GrantRegistry, ConsentRegistry) {
    let mut grants = GrantRegistry::default();
    let mut consent = ConsentRegistry::default();
    for i in 0..METERS {
        grants.apply(GrantEvent::Created(Grant {
            id: i + 1,
            meter: meter(i),
            supplier: format!("s{}", i % 20),
            from_utc: 0,
            to_utc: 90_000_000,
            kinds: Kinds::ALL,
            created_utc: 0,
            by: "bench".into(),
            revoked_utc: None,
        }));
        for k in 0..3 {
            consent.insert(ConsentEvent {
                meter: meter(i),
                from_utc: k * 1_000_000,
                collection: if k == 1 {
                    Collection::Revoked
                } else {
                    Collection::Granted
                },
                step_min: Some(30),
                erase: false,
                recorded_utc: 0,
                by: "bench".into(),
            });
        }
    }
    (grants, consent)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    let mut text = String::new();
    for i in 0..1_000 {
        text.push_str(&format!("{} supplier s{i}\n", token_hash(&format!("t{i}"))));
    }
    std::fs::write(&tokens, text).expect("tokens");
    let gov = Governance::open(
        &dir.path().join("data"),
        GovernanceConfig {
            tokens_path: Some(tokens),
            ..GovernanceConfig::default()
        },
    )
    .expect("governance");
    let mut group = c.benchmark_group("access");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("authenticate_bearer_token", |b| {
        b.iter(|| black_box(gov.authenticate(Some(black_box("t517")))))
    });
    let (grants, consent) = registries();
    let facts = Facts {
        now_utc: 50_000_000,
        grants: &grants,
        consent: &consent,
    };
    let operator = Principal {
        role: Role::Operator,
        subject: None,
    };
    let supplier = Principal {
        role: Role::Supplier,
        subject: Some("s7".into()),
    };
    let m = meter(4_567);
    let read = Action::ReadCurve {
        meter: &m,
        channel: courbe::Channel::CONSUMPTION,
        range_utc: (2_100_000, 2_186_400),
    };
    group.bench_function("authorize_operator", |b| {
        b.iter(|| black_box(authorize(&operator, black_box(&read), &facts)))
    });
    group.bench_function("authorize_supplier_curve_read", |b| {
        b.iter(|| black_box(authorize(&supplier, black_box(&read), &facts)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
