//! Data governance: consent, access control, grants, groups and anonymised aggregates,
//! portability, audit (French rules on load curves, Code de l'énergie D.111-52 to D.111-59).
//!
//! Courbe enforces these rules in the store's server, not in each portal:
//! - [`consent`]: collection granted or revoked per meter from an instant, with history;
//!   [`Governance::ingest`] screens every batch of every ingest path before `Store::ingest`;
//! - [`auth`]: bearer tokens (stored hashed) and roles; [`auth::authorize`] is the one rule;
//! - [`grants`]: a supplier's access to a meter's data of the kinds granted (daily, max_power,
//!   curve) for at most three years;
//! - [`groups`] and [`aggregates`]: sums over predefined groups with small cells suppressed;
//! - [`audit`]: every read of a meter by a supplier;
//!
//! The `/v1` endpoints of all of the above, the export of everything held about a meter (JSON or
//! CSV), the access-control middleware and the command line are the `courbe-server` package's
//! (`courbe_server::governance`).
//!
//! The registries live in `DATA/governance/`, one append-only file each ([`record_log`], a
//! [`journal`](crate::journal) of JSON records written through the engine's `FileSystem`); the
//! in-memory state is rebuilt from them at open. A write is durable before it is visible.

pub mod aggregates;
pub mod audit;
pub mod auth;
pub mod calendars;
pub mod consent;
pub mod grants;
pub mod groups;
pub mod prices;
pub mod record_log;
pub mod releases;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::fs::{FileSystem, RealFs};
use crate::engine::{Batch, Store};
use audit::AuditRecord;
use auth::{Action, Decision, Facts, Principal, Tokens};
use consent::{ConsentEvent, ConsentPolicy, ConsentRegistry, Screening};
use grants::{Grant, GrantEvent, GrantRegistry};
use groups::{GroupRegistry, Membership};
use record_log::RecordLog;

/// Name of the registries' folder inside the data directory.
pub const DIR_NAME: &str = "governance";
/// The consent registry's file inside [`DIR_NAME`].
const CONSENT_LOG: &str = "consent.log";

/// A governance failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// A record that cannot be encoded (never expected from our own types).
    Encode(String),
    /// A tokens file that cannot be read as one.
    Tokens {
        path: PathBuf,
        detail: String,
    },
    InvalidArgument(String),
    /// The store failed while erasing on revocation.
    Engine(crate::engine::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            Error::Corruption {
                path,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {detail}",
                path.display()
            ),
            Error::Encode(what) => write!(f, "cannot encode a registry record: {what}"),
            Error::Tokens { path, detail } => {
                write!(f, "tokens file {}: {detail}", path.display())
            }
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}

/// How governance behaves; `GovernanceConfig::default()` is what `courbe serve` uses.
#[derive(Clone, Debug)]
pub struct GovernanceConfig {
    /// The tokens file. `None`: no access control, and the server listens on loopback only.
    pub tokens_path: Option<PathBuf>,
    /// How often the tokens file is checked for changes.
    pub tokens_recheck: Duration,
    pub consent: ConsentPolicy,
    pub aggregates: aggregates::Suppression,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            tokens_path: None,
            tokens_recheck: Duration::from_secs(1),
            consent: ConsentPolicy::default(),
            aggregates: aggregates::Suppression::default(),
        }
    }
}

struct Registries {
    consent: ConsentRegistry,
    grants: GrantRegistry,
    groups: GroupRegistry,
    audit: Vec<AuditRecord>,
}

struct Logs {
    consent: RecordLog,
    grants: RecordLog,
    groups: RecordLog,
}

/// The registries of one data directory and the tokens of its server. `Send + Sync`.
///
/// Locks, in this order: `ingest_gate` → `logs` (writers, held across the append) → `state`; the
/// audit trail appends without a lock of ours (its journal's group commit: concurrent reads
/// share one fsync), then takes `state`.
pub struct Governance {
    dir: PathBuf,
    config: GovernanceConfig,
    tokens: Option<Tokens>,
    logs: parking_lot::Mutex<Logs>,
    audit: RecordLog,
    /// The registries' door to the disk.
    fs: Arc<dyn FileSystem>,
    /// Ingests share it across screening and `Store::ingest`; every consent change takes it
    /// whole.
    ingest_gate: parking_lot::RwLock<()>,
    state: parking_lot::RwLock<Registries>,
    calendars: calendars::Calendars,
    prices: prices::Prices,
    /// The frozen aggregates served to everyone but operators.
    releases: releases::Releases,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("dir", &self.dir)
            .field("tokens", &self.tokens.as_ref().map(Tokens::path))
            .finish_non_exhaustive()
    }
}

/// Now, UTC seconds.
pub fn now_utc() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Governance {
    /// Opens (creating) the registries of the data directory `data_dir` and reads the tokens.
    pub fn open(data_dir: &Path, config: GovernanceConfig) -> Result<Governance, Error> {
        Governance::open_with(data_dir, config, Arc::new(RealFs))
    }

    /// [`Governance::open`] through the file system `fs` (tests inject faults and crashes).
    pub fn open_with(
        data_dir: &Path,
        config: GovernanceConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Governance, Error> {
        let dir = data_dir.join(DIR_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        fs.create_dir_all(&dir).map_err(io(&dir))?;
        fs.sync_dir(data_dir).map_err(io(data_dir))?;
        let tokens = match &config.tokens_path {
            Some(path) => Some(Tokens::load(path, config.tokens_recheck)?),
            None => None,
        };
        let mut consent = ConsentRegistry::new(config.consent);
        let mut consent_log =
            RecordLog::open(fs.clone(), &dir.join(CONSENT_LOG), |e| consent.insert(e))?;
        // A crash may have come between an erasing revocation and the rewrite that follows it.
        if consent.forget_superseded_before_erasure() > 0 {
            consent_log = RecordLog::rewrite(fs.clone(), &dir.join(CONSENT_LOG), consent.events())?;
        }
        let mut grants = GrantRegistry::default();
        let grants_log = RecordLog::open(fs.clone(), &dir.join("grants.log"), |e| grants.apply(e))?;
        let mut groups = GroupRegistry::default();
        let groups_log =
            RecordLog::open(fs.clone(), &dir.join("groups.log"), |m| groups.insert(m))?;
        let mut audit = Vec::new();
        let audit_log = RecordLog::open(fs.clone(), &dir.join("audit.log"), |r| audit.push(r))?;
        let calendars = calendars::Calendars::open(fs.clone(), &dir)?;
        let releases = releases::Releases::open(fs.clone(), &dir)?;
        let prices = prices::Prices::open(fs.clone(), &dir)?;
        Ok(Governance {
            calendars,
            prices,
            dir,
            fs,
            config,
            tokens,
            logs: parking_lot::Mutex::new(Logs {
                consent: consent_log,
                grants: grants_log,
                groups: groups_log,
            }),
            ingest_gate: parking_lot::RwLock::new(()),
            audit: audit_log,
            state: parking_lot::RwLock::new(Registries {
                consent,
                grants,
                groups,
                audit,
            }),
            releases,
        })
    }

    /// Day-colour series and tariff contracts.
    pub fn calendars(&self) -> &calendars::Calendars {
        &self.calendars
    }

    /// Price grids and taxes.
    pub fn prices(&self) -> &prices::Prices {
        &self.prices
    }

    pub fn config(&self) -> &GovernanceConfig {
        &self.config
    }

    /// Whether requests must carry a token.
    pub fn has_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Refuses a non-loopback `addr` when there is no tokens file: without tokens every caller
    /// is an operator.
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if self.tokens.is_some() || addr.ip().is_loopback() {
            return Ok(());
        }
        Err(format!(
            "refusing to listen on {addr}: without a tokens file (--tokens FILE) every caller \
             is an operator, so the server listens on loopback only (127.0.0.1, ::1)"
        ))
    }

    /// `Err` with the reason while the tokens file cannot be read whole: every token is refused
    /// until it is fixed. `Ok` without a tokens file.
    pub fn tokens_status(&self) -> Result<(), String> {
        self.tokens.as_ref().map_or(Ok(()), Tokens::status)
    }

    /// The principal of a bearer token; `None` for an unknown token. Without a tokens file
    /// every caller is the local operator.
    pub fn authenticate(&self, token: Option<&str>) -> Option<Principal> {
        match &self.tokens {
            None => Some(Principal::local_operator()),
            Some(tokens) => tokens.lookup(token?),
        }
    }

    /// [`auth::authorize`] against the registries now.
    pub fn authorize(&self, principal: &Principal, action: &Action<'_>) -> Decision {
        match self.authorize_kinds(principal, action) {
            Ok(_) => Decision::Allow,
            Err(why) => Decision::Deny(why),
        }
    }

    /// [`auth::authorize_kinds`] against the registries now.
    pub fn authorize_kinds(
        &self,
        principal: &Principal,
        action: &Action<'_>,
    ) -> Result<grants::Kinds, &'static str> {
        let state = self.state.read();
        auth::authorize_kinds(
            principal,
            action,
            &Facts {
                now_utc: now_utc(),
                grants: &state.grants,
                consent: &state.consent,
            },
        )
    }

    /// Splits `batch` into what consent lets the store keep now and what it refuses.
    pub fn screen(&self, batch: &Batch) -> (Batch, Screening) {
        self.state.read().consent.screen(batch, now_utc())
    }

    /// The door of every ingest path: screens `batch`, then ingests what consent allows.
    /// Returns the points stored and what was refused. Every consent change waits for the
    /// ingests in flight and holds new ones out, so no point screened before it lands after
    /// it is acknowledged.
    pub fn ingest(
        &self,
        store: &Store,
        batch: &Batch,
    ) -> Result<(u64, Screening), crate::engine::Error> {
        let _gate = self.ingest_gate.read();
        let (kept, screening) = self.screen(batch);
        store.ingest(&kept)?;
        Ok((kept.len() as u64, screening))
    }

    /// Records a consent change; a revocation with `erase` then erases the meter's whole curve
    /// (everything collected, whatever the revocation's instant). Returns the points erased.
    ///
    /// Holds every ingest out for the whole change. With erasure, the store's intent is durable
    /// before the revocation is ([`Store::begin_erase`]), so a crash leaves the meter either
    /// untouched and not revoked, or wholly erased when the store is next opened; never
    /// revoked with its curve still there.
    pub fn record_consent(&self, store: &Store, event: ConsentEvent) -> Result<u64, Error> {
        crate::engine::check_meter_id(event.meter.as_bytes(), crate::engine::MeterIdUse::Stored)
            .map_err(Error::InvalidArgument)?;
        let erase = event.erase && event.collection == consent::Collection::Revoked;
        let meter = event.meter.clone();
        let _gate = self.ingest_gate.write();
        if erase {
            store.begin_erase(&meter, None).map_err(Error::Engine)?;
        }
        let recorded = {
            let logs = self.logs.lock();
            logs.consent
                .append(&event)
                .map(|()| self.state.write().consent.insert(event))
        };
        if !erase {
            return recorded.map(|()| 0);
        }
        // The intent is durable: the erasure is completed now even when the revocation could
        // not be recorded, rather than at the next open over points ingested in between.
        let report = store.erase(&meter, None).map_err(Error::Engine)?;
        recorded?;
        self.forget_superseded_consent()?;
        Ok(report.points_removed)
    }

    /// Drops from the registry (memory and file) the consent events an erasure left
    /// meaningless ([`ConsentRegistry::forget_superseded_before_erasure`]).
    fn forget_superseded_consent(&self) -> Result<(), Error> {
        let mut logs = self.logs.lock();
        let mut state = self.state.write();
        if state.consent.forget_superseded_before_erasure() > 0 {
            logs.consent = RecordLog::rewrite(
                self.fs.clone(),
                &self.dir.join(CONSENT_LOG),
                state.consent.events(),
            )?;
        }
        Ok(())
    }

    /// The consent event in force for `meter` at `ts_utc` (the latest recorded covering it).
    pub fn consent_in_force(&self, meter: &str, ts_utc: i64) -> Option<ConsentEvent> {
        self.state.read().consent.in_force(meter, ts_utc).cloned()
    }

    pub fn consent_history(&self, meter: &str) -> Vec<ConsentEvent> {
        self.state.read().consent.history(meter).to_vec()
    }

    /// Creates a grant of every kind (period checked); returns it with its id.
    pub fn create_grant(
        &self,
        meter: &str,
        supplier: &str,
        from_utc: i64,
        to_utc: i64,
        by: &str,
    ) -> Result<Grant, Error> {
        let all = grants::Kinds::ALL;
        self.create_grant_of(meter, supplier, from_utc, to_utc, all, by)
    }

    /// Creates a grant of `kinds` (not empty; period checked); returns it with its id.
    pub fn create_grant_of(
        &self,
        meter: &str,
        supplier: &str,
        from_utc: i64,
        to_utc: i64,
        kinds: grants::Kinds,
        by: &str,
    ) -> Result<Grant, Error> {
        grants::check_period(from_utc, to_utc).map_err(Error::InvalidArgument)?;
        if kinds.is_empty() {
            return Err(Error::InvalidArgument(
                "a grant allows at least one kind (daily, max_power, curve)".into(),
            ));
        }
        if !crate::engine::valid_meter_id(meter) {
            return Err(Error::InvalidArgument(format!("meter id {meter:?}")));
        }
        if supplier.is_empty() || supplier.len() > 128 || supplier.contains(char::is_whitespace) {
            return Err(Error::InvalidArgument(
                "a supplier name is 1 to 128 characters without spaces".into(),
            ));
        }
        let logs = self.logs.lock();
        let grant = Grant {
            id: self.state.read().grants.next_id(),
            meter: meter.to_string(),
            supplier: supplier.to_string(),
            from_utc,
            to_utc,
            kinds,
            created_utc: now_utc(),
            by: by.to_string(),
            revoked_utc: None,
        };
        let event = GrantEvent::Created(grant.clone());
        logs.grants.append(&event)?;
        self.state.write().grants.apply(event);
        Ok(grant)
    }

    /// Revokes grant `id` of `meter` now; `None` when there is no such grant.
    pub fn revoke_grant(&self, meter: &str, id: u64, by: &str) -> Result<Option<Grant>, Error> {
        let logs = self.logs.lock();
        let known = self
            .state
            .read()
            .grants
            .get(id)
            .is_some_and(|g| g.meter == meter);
        if !known {
            return Ok(None);
        }
        let event = GrantEvent::Revoked {
            id,
            at_utc: now_utc(),
            by: by.to_string(),
        };
        logs.grants.append(&event)?;
        let mut state = self.state.write();
        state.grants.apply(event);
        Ok(state.grants.get(id).cloned())
    }

    pub fn grants_of(&self, meter: &str) -> Vec<Grant> {
        self.state.read().grants.of_meter(meter).cloned().collect()
    }

    /// Appends to the audit trail; durable when it returns. Concurrent callers share fsyncs.
    pub fn audit(&self, record: AuditRecord) -> Result<(), Error> {
        self.audit.append(&record)?;
        self.state.write().audit.push(record);
        Ok(())
    }

    /// The audit records that `keep` selects, oldest first.
    pub fn audit_records(&self, keep: impl Fn(&AuditRecord) -> bool) -> Vec<AuditRecord> {
        self.state
            .read()
            .audit
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// Records group memberships (a later one for a meter replaces the earlier); refused
    /// whole, as an invalid argument, when the groups after the load would not nest
    /// ([`groups::GroupRegistry::check_nesting`]).
    pub fn load_groups(&self, memberships: Vec<Membership>) -> Result<usize, Error> {
        let logs = self.logs.lock();
        // The registry after this load must nest, else none of it is recorded.
        let mut after = self.state.read().groups.clone();
        for m in &memberships {
            after.insert(m.clone());
        }
        after.check_nesting().map_err(Error::InvalidArgument)?;
        for m in &memberships {
            logs.groups.append(m)?;
        }
        let n = memberships.len();
        let mut state = self.state.write();
        for m in memberships {
            state.groups.insert(m);
        }
        Ok(n)
    }

    /// A copy of the group registry.
    pub fn groups(&self) -> GroupRegistry {
        self.state.read().groups.clone()
    }

    /// How many meters the group registry places, without copying it ([`groups`](Self::groups)
    /// copies every membership).
    pub fn group_members(&self) -> usize {
        self.state.read().groups.len()
    }
}
