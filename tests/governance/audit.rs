//! The audit trail: durable (a real SIGKILL), append-only, every concurrent record kept.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use courbe::governance::audit::AuditRecord;
use courbe::governance::grants::{DataKind, Kinds};
use courbe::governance::{Governance, GovernanceConfig};

use super::support::{day_utc, rfc, A, ACME};
use crate::util::{self, Rng};

const ENV_DIR: &str = "COURBE_AUDIT_KILL_CHILD_DIR";

/// The child side of the test below: serves the fleet of the access tests from the data
/// directory named by `COURBE_AUDIT_KILL_CHILD_DIR`, prints `url BASE`, and serves until killed.
#[test]
#[ignore = "child process of a_suppliers_reads_answered_before_a_sigkill_are_in_the_audit_trail"]
fn audit_kill_child_server() {
    let dir = std::env::var(ENV_DIR).expect("run by the parent test, which names the directory");
    let server = super::access::fleet_server(std::path::Path::new(&dir));
    println!("url {}", server.url(""));
    // Serves until killed, or until the parent is gone (its end of stdin closes).
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// Read `k` of the supplier: an hour of meter A starting `k` minutes into a day of its grant.
fn read_range(k: i64) -> (i64, i64) {
    let from = day_utc(-3) + 60 * k;
    (from, from + 3_600)
}

/// "A supplier's read is in the audit trail before its answer leaves", against a real kill: a
/// server process answers reads from four threads and is SIGKILLed while they go on; every
/// read answered 200 before the kill is in the trail when the directory is opened again.
#[test]
fn a_suppliers_reads_answered_before_a_sigkill_are_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "governance::audit::audit_kill_child_server",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        // libtest may have written `test NAME ... ` on the same line first.
        .find_map(|l| l.split_once("url ").map(|(_, url)| url.to_string()))
        .expect("the child serves");
    let kill_after = 40 + Rng::new(0xA0D1).below(120) as usize;
    let answered: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4i64)
        .map(|t| {
            let (base, answered, stop) = (base.clone(), answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = util::agent();
                let mut k = t;
                while !stop.load(Ordering::SeqCst) && k < 1_200 {
                    let (from, to) = read_range(k);
                    let url = format!(
                        "{base}/v1/meters/{A}/curve?from={}&to={}",
                        rfc(from),
                        rfc(to)
                    );
                    // Killed under this request, or refused: not acknowledged.
                    let whole_answer = agent
                        .get(&url)
                        .set("Authorization", &format!("Bearer {ACME}"))
                        .call()
                        .is_ok_and(|r| r.status() == 200 && r.into_string().is_ok());
                    if whole_answer {
                        answered.lock().unwrap().push(k);
                    }
                    k += 4;
                }
            })
        })
        .collect();
    while answered.lock().unwrap().len() < kill_after {
        assert!(
            !threads.iter().all(|t| t.is_finished()),
            "the readers stopped before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL on Unix, with reads in flight
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= kill_after);

    let gov = Governance::open(&data, GovernanceConfig::default()).unwrap();
    let trail = gov.audit_records(|r| r.who == "supplier:acme" && r.meter == A);
    for k in &answered {
        let (from, to) = read_range(*k);
        assert!(
            trail
                .iter()
                .any(|r| (r.from_utc, r.to_utc) == (from, to) && r.what == "/v1/meters/:id/curve"),
            "read {k} was answered before the kill but is not in the audit trail ({} records, {} answered)",
            trail.len(),
            answered.len()
        );
    }
    // Nothing but reads that were sent: at most one record per read.
    assert!(trail.len() <= answered.len() + 4, "{} records", trail.len());
}

#[test]
fn concurrent_audit_records_are_all_kept_in_order_across_a_reopen() {
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
                            kinds: Kinds::of(DataKind::Curve),
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
        kinds: Kinds::of(DataKind::Daily),
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

/// The registries and the store on one simulated disk: crash images at every sync point and
/// injected faults reach consent, grants and the audit trail.
mod crash {
    use std::path::Path;
    use std::sync::Arc;

    use courbe::engine::fs::testing::{CrashImage, FaultOp, SimFs};
    use courbe::engine::{Batch, Options, Store};
    use courbe::governance::audit::AuditRecord;
    use courbe::governance::consent::{Collection, ConsentEvent};
    use courbe::governance::grants::{DataKind, Grant, Kinds};
    use courbe::governance::{Error, Governance, GovernanceConfig};
    use courbe::source::SeriesSource;

    use super::super::support::{day_batch, day_utc, A};

    const VICTIM: &str = "victim-meter-42";

    fn data() -> &'static Path {
        Path::new("/data")
    }

    fn audit_record(i: i64) -> AuditRecord {
        AuditRecord {
            who: "supplier:acme".into(),
            at_utc: i,
            meter: A.into(),
            from_utc: i * 1_800,
            to_utc: (i + 1) * 1_800,
            what: "/v1/meters/:id/curve".into(),
            kinds: Kinds::of(DataKind::Curve),
        }
    }

    fn consent(meter: &str, collection: Collection, erase: bool) -> ConsentEvent {
        ConsentEvent {
            meter: meter.into(),
            from_utc: day_utc(-5),
            collection,
            step_min: None,
            erase,
            recorded_utc: day_utc(0),
            by: "consumer:test".into(),
        }
    }

    fn open(fs: &SimFs) -> Result<(Store, Governance), String> {
        let store = Store::open_with(data(), Options::default(), Arc::new(fs.clone()))
            .map_err(|e| format!("store: {e}"))?;
        let gov = Governance::open_with(data(), GovernanceConfig::default(), Arc::new(fs.clone()))
            .map_err(|e| format!("governance: {e}"))?;
        Ok((store, gov))
    }

    /// `A` and the victim in a segment, the victim's next day in the log only.
    fn hold_the_victim(store: &Store, gov: &Governance) {
        let mut b = Batch::new();
        day_batch(&mut b, A, -3, 100);
        day_batch(&mut b, VICTIM, -3, 500);
        gov.ingest(store, &b).unwrap();
        store.flush().unwrap();
        let mut b = Batch::new();
        day_batch(&mut b, VICTIM, -2, 600);
        gov.ingest(store, &b).unwrap();
    }

    /// Sync points completed when each write of the script was acknowledged.
    #[derive(Default)]
    struct Acked {
        audits: Vec<(u64, i64)>,
        grant: Option<(u64, Grant)>,
        grant_revoked: u64,
        consent_revoked: u64,
    }

    #[test]
    fn every_acknowledged_registry_write_survives_a_crash_at_every_sync_point() {
        let fs = SimFs::new();
        fs.record_crash_images();
        let mut acked = Acked::default();
        let audits = 12;
        {
            let (store, gov) = open(&fs).unwrap();
            hold_the_victim(&store, &gov);
            for i in 0..audits {
                if i == 3 {
                    let g = gov
                        .create_grant(A, "acme", day_utc(-10), day_utc(100), "operator:ops")
                        .unwrap();
                    acked.grant = Some((fs.sync_points(), g));
                }
                if i == 6 {
                    let erased = gov
                        .record_consent(&store, consent(VICTIM, Collection::Revoked, true))
                        .unwrap();
                    assert_eq!(erased, 96);
                    acked.consent_revoked = fs.sync_points();
                }
                if i == 9 {
                    let id = acked.grant.as_ref().map(|(_, g)| g.id).unwrap();
                    gov.revoke_grant(A, id, "operator:ops").unwrap().unwrap();
                    acked.grant_revoked = fs.sync_points();
                }
                gov.audit(audit_record(i)).unwrap();
                acked.audits.push((fs.sync_points(), i));
            }
        }
        let images = fs.take_crash_images();
        assert!(images.len() > 40, "only {} crash images", images.len());
        for image in &images {
            check_image(image, &acked, audits);
        }
    }

    fn check_image(image: &CrashImage, acked: &Acked, audits: i64) {
        let ctx = format!(
            "crash at sync point {} (torn: {})",
            image.sync_point, image.torn
        );
        let durable = |at: u64| at <= image.sync_point;
        let fs = image.to_fs();
        let (store, gov) = open(&fs).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));

        // The audit trail: whole records in the order written, every acknowledged one.
        let got: Vec<i64> = gov
            .audit_records(|_| true)
            .iter()
            .map(|r| r.at_utc)
            .collect();
        assert_eq!(got, (0..got.len() as i64).collect::<Vec<_>>(), "{ctx}");
        assert!(got.len() as i64 <= audits, "{ctx}");
        for (at, i) in &acked.audits {
            if durable(*at) {
                assert!(got.contains(i), "{ctx}: audit record {i} lost");
            }
        }
        for r in gov.audit_records(|_| true) {
            assert_eq!(r, audit_record(r.at_utc), "{ctx}: audit record altered");
        }

        // The grant: absent or whole before its acknowledgement, present after.
        let (grant_at, grant) = acked.grant.as_ref().unwrap();
        let grants = gov.grants_of(A);
        assert!(grants.len() <= 1, "{ctx}: {grants:?}");
        if let Some(g) = grants.first() {
            let mut want = grant.clone();
            want.revoked_utc = g.revoked_utc;
            assert_eq!(g, &want, "{ctx}: grant altered");
        }
        if durable(*grant_at) {
            assert_eq!(grants.len(), 1, "{ctx}: acknowledged grant lost");
        }
        if durable(acked.grant_revoked) {
            assert!(
                grants[0].revoked_utc.is_some(),
                "{ctx}: grant revocation lost"
            );
        }

        // The revocation with erasure: once acknowledged, in force and the curve gone.
        let history = gov.consent_history(VICTIM);
        assert!(history.len() <= 1, "{ctx}: {history:?}");
        if let Some(e) = history.first() {
            assert_eq!(e, &consent(VICTIM, Collection::Revoked, true), "{ctx}");
        }
        if durable(acked.consent_revoked) {
            assert_eq!(history.len(), 1, "{ctx}: acknowledged revocation lost");
            assert!(
                !store.snapshot().has_meter(VICTIM),
                "{ctx}: erased meter came back"
            );
            for (path, bytes) in fs.files() {
                if path.parent() != Some(data()) {
                    continue; // the consent registry names the meter by design
                }
                assert!(
                    !bytes.windows(VICTIM.len()).any(|w| w == VICTIM.as_bytes()),
                    "{ctx}: {} still holds the erased meter id",
                    path.display()
                );
            }
        }

        // Reopened registries take writes again.
        gov.audit(audit_record(audits))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        gov.create_grant(A, "other", day_utc(-1), day_utc(10), "operator:ops")
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }

    /// One registry write of each kind, run with a fault armed.
    #[derive(Clone, Copy, Debug)]
    enum Write {
        Audit,
        Grant,
        Consent,
    }

    fn write(gov: &Governance, store: &Store, w: Write, n: i64) -> Result<(), Error> {
        match w {
            Write::Audit => gov.audit(audit_record(n)),
            Write::Grant => gov
                .create_grant(
                    A,
                    &format!("s{n}"),
                    day_utc(-1),
                    day_utc(10),
                    "operator:ops",
                )
                .map(drop),
            Write::Consent => gov
                .record_consent(store, consent(&format!("m{n}"), Collection::Granted, false))
                .map(drop),
        }
    }

    /// What the registries show of writes `0..n` of kind `w`.
    fn shown(gov: &Governance, w: Write, n: i64) -> Vec<i64> {
        (0..n)
            .filter(|&i| match w {
                Write::Audit => !gov.audit_records(|r| r.at_utc == i).is_empty(),
                Write::Grant => gov
                    .grants_of(A)
                    .iter()
                    .any(|g| g.supplier == format!("s{i}")),
                Write::Consent => !gov.consent_history(&format!("m{i}")).is_empty(),
            })
            .collect()
    }

    #[test]
    fn a_failed_registry_write_refuses_later_writes_and_a_reopen_keeps_every_acknowledged_one() {
        for op in [FaultOp::Write, FaultOp::PartialWrite, FaultOp::Sync] {
            for w in [Write::Audit, Write::Grant, Write::Consent] {
                let ctx = format!("{op:?} on {w:?}");
                let fs = SimFs::new();
                let (store, gov) = open(&fs).unwrap();
                write(&gov, &store, w, 0).unwrap();
                write(&gov, &store, w, 1).unwrap();
                fs.fail_nth(op, 0);
                assert!(
                    matches!(write(&gov, &store, w, 2), Err(Error::Io { .. })),
                    "{ctx}: the faulty write succeeded"
                );
                fs.clear_faults();
                assert!(
                    matches!(write(&gov, &store, w, 3), Err(Error::Io { .. })),
                    "{ctx}: a write after the failure was accepted"
                );
                // Still answering reads: the acknowledged writes, not the refused one.
                assert_eq!(shown(&gov, w, 4), vec![0, 1], "{ctx}");
                drop((store, gov));
                for (how, fs) in [("reopen", fs.clone()), ("crash", fs.crash())] {
                    let (store, gov) = open(&fs).unwrap_or_else(|e| panic!("{ctx} {how}: {e}"));
                    let got = shown(&gov, w, 4);
                    assert!(got == [0, 1] || got == [0, 1, 2], "{ctx} {how}: {got:?}");
                    write(&gov, &store, w, 4).unwrap_or_else(|e| panic!("{ctx} {how}: {e}"));
                    assert_eq!(shown(&gov, w, 5).last(), Some(&4), "{ctx} {how}");
                }
            }
        }
    }

    #[test]
    fn a_fault_while_opening_the_registries_is_an_error_and_a_retry_opens_them() {
        for op in [FaultOp::Read, FaultOp::Append, FaultOp::Truncate] {
            let fs = SimFs::new();
            {
                let (_store, gov) = open(&fs).unwrap();
                gov.audit(audit_record(0)).unwrap();
            }
            // A torn tail, so that the open has to cut it.
            let path = data().join(courbe::governance::DIR_NAME).join("audit.log");
            fs.modify(&path, |b| b.extend_from_slice(&[7, 0, 0]))
                .unwrap();
            fs.fail_nth(op, 0);
            let first =
                Governance::open_with(data(), GovernanceConfig::default(), Arc::new(fs.clone()));
            assert!(matches!(first, Err(Error::Io { .. })), "{op:?}");
            fs.clear_faults();
            let (_store, gov) = open(&fs).unwrap_or_else(|e| panic!("{op:?}: {e}"));
            assert_eq!(gov.audit_records(|_| true), vec![audit_record(0)], "{op:?}");
            gov.audit(audit_record(1)).unwrap();
        }
    }

    #[test]
    fn a_revocation_with_erasure_whose_consent_write_fails_still_erases_before_it_returns() {
        // Arm a write fault at every position until one lands on the consent registry's
        // append, after the store's erase intent is durable.
        let mut hit = false;
        for n in 0..16 {
            let fs = SimFs::new();
            let (store, gov) = open(&fs).unwrap();
            hold_the_victim(&store, &gov);
            fs.fail_nth(FaultOp::Write, n);
            let result = gov.record_consent(&store, consent(VICTIM, Collection::Revoked, true));
            fs.clear_faults();
            let Err(Error::Io { path, .. }) = &result else {
                continue;
            };
            if !path.ends_with("consent.log") {
                continue;
            }
            hit = true;
            // The revocation was not recorded, but the erasure it asked for is done: the
            // running store holds nothing of the meter, and a reopened one neither.
            assert!(gov.consent_history(VICTIM).is_empty(), "fault {n}");
            assert!(!store.snapshot().has_meter(VICTIM), "fault {n}: curve left");
            assert!(store.snapshot().has_meter(A), "fault {n}: the other meter");
            drop((store, gov));
            let (store, _gov) = open(&fs.crash()).unwrap();
            assert!(
                !store.snapshot().has_meter(VICTIM),
                "fault {n}: after a crash"
            );
        }
        assert!(hit, "no fault landed on the consent registry's write");
    }
}
