//! The audit trail: durable (a real SIGKILL), append-only, every concurrent record kept.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use courbe::governance::audit::AuditRecord;
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
