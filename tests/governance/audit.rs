//! The audit trail: durable, append-only, every concurrent record kept.

use std::sync::Arc;

use courbe::governance::audit::AuditRecord;
use courbe::governance::{Governance, GovernanceConfig};

#[test]
fn concurrent_audit_records_are_all_durable_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let gov = Arc::new(Governance::open(&data, GovernanceConfig::default()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let gov = gov.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        gov.audit(AuditRecord {
                            who: format!("supplier:s{t}"),
                            at_utc: i,
                            meter: "09111642617347".into(),
                            from_utc: i * 1_800,
                            to_utc: (i + 1) * 1_800,
                            what: "/v1/meters/:id/curve".into(),
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gov.audit_records(|_| true).len(), 200);
    }
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    let records = gov.audit_records(|_| true);
    assert_eq!(records.len(), 200);
    for t in 0..8 {
        let who = format!("supplier:s{t}");
        let mine: Vec<i64> = records
            .iter()
            .filter(|r| r.who == who)
            .map(|r| r.at_utc)
            .collect();
        assert_eq!(
            mine,
            (0..25).collect::<Vec<_>>(),
            "{who}'s records in order"
        );
    }
}

#[test]
fn a_torn_audit_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let record = |i: i64| AuditRecord {
        who: "supplier:acme".into(),
        at_utc: i,
        meter: "m".into(),
        from_utc: 0,
        to_utc: 1,
        what: "/v1/meters/:id/energy".into(),
    };
    {
        let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
        gov.audit(record(1)).unwrap();
        gov.audit(record(2)).unwrap();
    }
    let path = data.join(courbe::governance::DIR_NAME).join("audit.log");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    {
        let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
        assert_eq!(gov.audit_records(|_| true), vec![record(1)]);
        gov.audit(record(3)).unwrap();
    }
    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    assert_eq!(gov.audit_records(|_| true), vec![record(1), record(3)]);
}
