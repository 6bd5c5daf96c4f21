//! Who is asking ([`Principal`], from a bearer token) and what they may do ([`authorize`]).
//!
//! Tokens file: one token a line, `SHA256-HEX ROLE [SUBJECT]`; `#` starts a comment. The file
//! holds only the SHA-256 of each token, never the token. `SUBJECT` is the supplier's name for
//! `supplier` (matched against grants), the meter id for `consumer`, and an optional label for
//! the other roles. The file is re-read when its bytes change; while it cannot be read or parsed
//! whole (deleted included), every token is refused ([`Tokens`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::consent::ConsentRegistry;
use super::grants::{DataKind, GrantRegistry, Kinds};
use super::Error;
use crate::query::Period;
use crate::Channel;

/// What a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Operator,
    /// The meters it holds a grant in force for: of each, the kinds of data its grants allow
    /// over their periods; the curve only while collection consent holds.
    Supplier,
    /// One meter.
    Consumer,
    /// Aggregates, building level included.
    PublicBody,
    /// Published aggregates only.
    Public,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Operator,
        Role::Supplier,
        Role::Consumer,
        Role::PublicBody,
        Role::Public,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supplier => "supplier",
            Role::Consumer => "consumer",
            Role::PublicBody => "public_body",
            Role::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// Supplier name, consumer's meter, or a label.
    pub subject: Option<String>,
}

impl Principal {
    /// The caller without a tokens file: the server listens on loopback only.
    pub fn local_operator() -> Principal {
        Principal {
            role: Role::Operator,
            subject: Some("local".into()),
        }
    }

    /// How logs and the audit trail name the caller.
    pub fn label(&self) -> String {
        match &self.subject {
            Some(s) => format!("{}:{s}", self.role.as_str()),
            None => self.role.as_str().to_string(),
        }
    }
}

/// The level of a predefined group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    All,
    Commune,
    Iris,
    Building,
}

/// Which figure a [`Summary`] question asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    Energy,
    /// Highest power: from `max_power` (a [`DataKind::MaxPower`] figure) or from the curve (a
    /// [`DataKind::Curve`] one), chosen per period by the query.
    Peak,
}

/// The shape of an energy or peak question: what decides whether it can rebuild the curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub figure: Figure,
    /// `[from, to)`, UTC seconds.
    pub range_utc: (i64, i64),
    pub period: Period,
    /// The zone is Europe/Paris (the one fixed zone of daily data).
    pub tz_paris: bool,
    /// `from` and `to` are midnights in the question's zone.
    pub whole_local_days: bool,
    /// A tariff the caller chose (`HC:` windows or `option:...`) splits each day into windows;
    /// `tariff=contract`, the meter's own registers, does not count.
    pub tariff: bool,
}

impl Summary {
    /// Whether the answer is whole Europe/Paris days or longer, nothing finer: what a caller
    /// without curve rights may ask. Another zone is refused too: two answers in zones a
    /// quarter-hour apart subtract to quarter-hours of the curve.
    pub fn daily(&self) -> bool {
        let period_is_days = match self.period {
            Period::Day | Period::Week | Period::Month | Period::Year => true,
        };
        period_is_days && self.tz_paris && self.whole_local_days && !self.tariff
    }
}

/// What a request does, as far as access control cares. Every field is read from the request
/// before [`authorize`] is asked: a request that cannot be read is refused before this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// The points of a meter's `channel` over `[from_utc, to_utc)`: a curve channel is
    /// [`DataKind::Curve`], `max_power` is [`DataKind::MaxPower`], any other channel (daily
    /// energy, indexes) is [`DataKind::Daily`].
    ReadCurve {
        meter: &'a str,
        channel: Channel,
        range_utc: (i64, i64),
    },
    /// Energy or peak of a meter: derived from its curve, its daily data or its maximum power.
    /// Without curve rights over the range, only [`Summary::daily`] questions: energy with
    /// [`DataKind::Daily`], a peak with [`DataKind::MaxPower`] and only from `max_power` (the
    /// kinds [`authorize_kinds`] returns tell the handler which sources it may answer from).
    ReadMeterSummary {
        meter: &'a str,
        summary: Summary,
    },
    /// The index of each register at period boundaries over `[from_utc, to_utc)` (Paris
    /// midnights): [`DataKind::Daily`].
    ReadIndex {
        meter: &'a str,
        range_utc: (i64, i64),
    },
    /// A Europe/Paris year's statement (indexes, energy per register, maximum power): needs
    /// [`DataKind::Daily`] and [`DataKind::MaxPower`] over the whole year; no part is answered
    /// alone.
    ReadYearSummary {
        meter: &'a str,
        range_utc: (i64, i64),
    },
    /// Everything held about a meter.
    Export {
        meter: &'a str,
    },
    /// A meter's monthly energy next to its group's distribution.
    Compare {
        meter: &'a str,
    },
    ReadConsent {
        meter: &'a str,
    },
    SetConsent {
        meter: &'a str,
    },
    ReadGrants {
        meter: &'a str,
    },
    ManageGrants,
    EraseCurve {
        meter: &'a str,
    },
    Ingest,
    /// Sums over all meters or listed ones: can isolate a household.
    ReadFleet,
    LoadGroups,
    /// Aggregates at `level`; `predefined` is false for an ad-hoc list of meters.
    ReadAggregates {
        level: Level,
        predefined: bool,
    },
    ReadAudit,
    /// Day-colour series: public.
    ReadColours,
    /// A meter's tariff contracts.
    ReadContracts {
        meter: &'a str,
    },
    /// Writing colour series or contracts.
    ManageCalendars,
    /// The list of aggregate releases: everyone with a token.
    ListReleases,
    /// Freezing months of aggregates: operators only.
    Release,
    /// Price grids and taxes: public.
    ReadPrices,
    /// Writing price grids or taxes: operators only.
    ManagePrices,
    /// The distribution over a fleet of the saving of one offer over another: operators and
    /// public bodies (a distribution over at least
    /// [`crate::governance::prices::MIN_FLEET_OFFERS`] meters, never one meter's figure).
    ReadFleetOffers,
    /// A `/v1` route the access table does not name: operators only.
    Other,
}

/// The verdict of [`authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Why, for the server's log; the client only learns "forbidden".
    Deny(&'static str),
}

/// What [`authorize`] looks up: the registries at the instant of the request.
pub struct Facts<'a> {
    pub now_utc: i64,
    pub grants: &'a GrantRegistry,
    pub consent: &'a ConsentRegistry,
}

/// What a supplier's grants allow on one meter, now.
struct SupplierFacts<'f, 'a> {
    supplier: &'f str,
    meter: &'f str,
    facts: &'f Facts<'a>,
}

impl SupplierFacts<'_, '_> {
    /// Whether grants in force allowing `kind` together hold every instant of `range`.
    fn covers(&self, kind: DataKind, range: (i64, i64)) -> bool {
        let f = self.facts;
        f.grants
            .covers(self.supplier, self.meter, f.now_utc, kind, range)
    }

    /// Curve rights over `range`: [`DataKind::Curve`] granted over it, and collection consent
    /// holding over it and now.
    fn curve(&self, range: (i64, i64)) -> Result<(), &'static str> {
        let (f, meter) = (self.facts, self.meter);
        if !self.covers(DataKind::Curve, range) {
            Err("range outside every grant of the curve in force")
        } else if !f.consent.holds_over(meter, range.0, range.1)
            || !f.consent.collecting(meter, f.now_utc)
        {
            Err("collection consent does not hold, now or over the range")
        } else {
            Ok(())
        }
    }

    /// The kind `needed` over `range` (for [`DataKind::Curve`], curve rights).
    fn need(&self, needed: DataKind, range: (i64, i64)) -> Result<Kinds, &'static str> {
        match needed {
            DataKind::Curve => self.curve(range)?,
            DataKind::MaxPower if !self.covers(needed, range) => {
                return Err("range outside every grant of max_power in force")
            }
            DataKind::Daily if !self.covers(needed, range) => {
                return Err("range outside every grant of daily data in force")
            }
            _ => {}
        }
        Ok(Kinds::of(needed))
    }

    /// Whole-day energy ([`Summary::daily`]): each instant of the range granted as
    /// [`DataKind::Daily`] or as [`DataKind::Curve`], the curve counting only while consent
    /// holds over the whole range and now. Returns the kinds the grants holding it allow.
    fn whole_days_energy(&self, summary: &Summary) -> Result<Kinds, &'static str> {
        let range = summary.range_utc;
        if !summary.daily() {
            return Err("finer than whole Europe/Paris days");
        }
        if self.covers(DataKind::Daily, range) {
            return Ok(Kinds::of(DataKind::Daily));
        }
        let consent = self.facts.consent;
        let curve_counts = consent.holds_over(self.meter, range.0, range.1)
            && consent.collecting(self.meter, self.facts.now_utc);
        let either = Kinds::of(DataKind::Daily).with(DataKind::Curve);
        let f = self.facts;
        if curve_counts && self.covers(DataKind::Curve, range) {
            Ok(Kinds::of(DataKind::Curve))
        } else if curve_counts
            && f.grants
                .covers_any(self.supplier, self.meter, f.now_utc, either, range)
        {
            Ok(either)
        } else {
            Err("whole days not granted as daily data or curve at every instant")
        }
    }

    /// The supplier's part of [`authorize_kinds`].
    fn decide(&self, action: &Action<'_>) -> Result<Kinds, &'static str> {
        use Action as A;
        match action {
            A::ReadCurve {
                channel, range_utc, ..
            } => self.need(kind_of_channel(*channel), *range_utc),
            A::ReadMeterSummary { summary, .. } => {
                let range = summary.range_utc;
                match summary.figure {
                    Figure::Energy => self.whole_days_energy(summary).or_else(|_| {
                        self.need(DataKind::Curve, range).map_err(|_| {
                            "energy: whole Europe/Paris days without tariff with daily data or \
                             curve rights over each instant, anything else with curve rights"
                        })
                    }),
                    Figure::Peak => {
                        // Finer than whole Paris days, even max_power needs curve rights.
                        let curve = self.curve(range).is_ok();
                        let mut kinds = Kinds::NONE;
                        if (summary.daily() || curve) && self.covers(DataKind::MaxPower, range) {
                            kinds = kinds.with(DataKind::MaxPower);
                        }
                        if curve {
                            kinds = kinds.with(DataKind::Curve);
                        }
                        if kinds.is_empty() {
                            Err(
                                "peak: whole Europe/Paris days from max_power granted over the \
                                 range, or curve rights",
                            )
                        } else {
                            Ok(kinds)
                        }
                    }
                }
            }
            A::ReadIndex { range_utc, .. } => self.need(DataKind::Daily, *range_utc),
            A::ReadYearSummary { range_utc, .. } => {
                let kinds = self
                    .need(DataKind::Daily, *range_utc)?
                    .union(self.need(DataKind::MaxPower, *range_utc)?);
                Ok(match self.curve(*range_utc) {
                    Ok(()) => kinds.with(DataKind::Curve),
                    Err(_) => kinds,
                })
            }
            _ => Err("not for suppliers"),
        }
    }
}

/// The kind of data a channel's points are.
pub fn kind_of_channel(channel: Channel) -> DataKind {
    if channel.is_curve() {
        DataKind::Curve
    } else if channel == Channel::MAX_POWER {
        DataKind::MaxPower
    } else {
        DataKind::Daily
    }
}

/// The one access rule of Courbe, as a verdict: [`authorize_kinds`] without the kinds.
pub fn authorize(principal: &Principal, action: &Action<'_>, facts: &Facts<'_>) -> Decision {
    match authorize_kinds(principal, action, facts) {
        Ok(_) => Decision::Allow,
        Err(why) => Decision::Deny(why),
    }
}

/// The one access rule of Courbe: `Ok` with the kinds of a meter's data the answer may draw
/// on (every kind for an operator or the meter's consumer, none for an action that reads no
/// meter's data), `Err` with why not (for the server's log). A denial never depends on whether
/// the meter exists.
///
/// A supplier needs, at every instant of the range, a grant in force now allowing the kind
/// the question is made of (the union of its grants: two grants may hold one range between
/// them), and for the curve also collection consent over the range and now:
/// - points of a channel: the channel's kind ([`kind_of_channel`]);
/// - energy: whole Europe/Paris days without a chosen tariff ([`Summary::daily`]) with
///   [`DataKind::Daily`], or anything with curve rights;
/// - a peak: from `max_power` with [`DataKind::MaxPower`] (and whole Paris days, or curve
///   rights), from the curve with curve rights (the returned kinds are the sources the handler
///   may answer from);
/// - indexes: [`DataKind::Daily`]; a year's statement: [`DataKind::Daily`] and
///   [`DataKind::MaxPower`] (plus [`DataKind::Curve`] when curve rights hold);
/// - a meter's consent and tariff contracts: any grant in force.
pub fn authorize_kinds(
    principal: &Principal,
    action: &Action<'_>,
    facts: &Facts<'_>,
) -> Result<Kinds, &'static str> {
    use Action as A;
    let own_meter = |meter: &str| principal.subject.as_deref() == Some(meter);
    let aggregates = |level: &Level, predefined: bool| predefined && *level != Level::Building;
    match principal.role {
        Role::Operator => Ok(Kinds::ALL),
        _ if *action == A::ListReleases || *action == A::ReadPrices => Ok(Kinds::NONE),
        Role::PublicBody if *action == A::ReadFleetOffers => Ok(Kinds::NONE),
        Role::Consumer => match action {
            A::ReadCurve { meter, .. }
            | A::ReadMeterSummary { meter, .. }
            | A::ReadIndex { meter, .. }
            | A::ReadYearSummary { meter, .. }
            | A::Export { meter }
            | A::Compare { meter }
            | A::ReadConsent { meter }
            | A::SetConsent { meter }
            | A::ReadGrants { meter }
            | A::ReadContracts { meter } => match own_meter(meter) {
                true => Ok(Kinds::ALL),
                false => Err("not the consumer's meter"),
            },
            A::ReadColours => Ok(Kinds::NONE),
            A::ReadAggregates { level, predefined } if aggregates(level, *predefined) => {
                Ok(Kinds::NONE)
            }
            _ => Err("not for consumers"),
        },
        Role::Supplier => {
            let Some(supplier) = principal.subject.as_deref() else {
                return Err("a supplier token without a name");
            };
            let on = |meter| SupplierFacts {
                supplier,
                meter,
                facts,
            };
            match action {
                A::ReadConsent { meter } | A::ReadContracts { meter } => {
                    let granted = facts
                        .grants
                        .in_force(supplier, meter, facts.now_utc)
                        .next()
                        .is_some();
                    match granted {
                        true => Ok(Kinds::NONE),
                        false => Err("no grant in force"),
                    }
                }
                A::ReadColours => Ok(Kinds::NONE),
                A::ReadAggregates { level, predefined } if aggregates(level, *predefined) => {
                    Ok(Kinds::NONE)
                }
                A::ReadCurve { meter, .. }
                | A::ReadMeterSummary { meter, .. }
                | A::ReadIndex { meter, .. }
                | A::ReadYearSummary { meter, .. } => on(meter).decide(action),
                _ => Err("not for suppliers"),
            }
        }
        Role::PublicBody => match action {
            A::ReadAggregates {
                predefined: true, ..
            }
            | A::ReadColours => Ok(Kinds::NONE),
            _ => Err("public bodies read aggregates only"),
        },
        Role::Public => match action {
            A::ReadAggregates { level, predefined } if aggregates(level, *predefined) => {
                Ok(Kinds::NONE)
            }
            A::ReadColours => Ok(Kinds::NONE),
            _ => Err("the public reads published aggregates only"),
        },
    }
}

/// The SHA-256 of a token, lowercase hex, as the tokens file holds it.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

/// Parses a tokens file: hash to principal. Errors name the line.
pub fn parse_tokens(text: &str) -> Result<HashMap<String, Principal>, String> {
    let mut table = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let mut fields = line.split_whitespace();
        let (Some(hash), Some(role)) = (fields.next(), fields.next()) else {
            return Err(format!("line {n}: expected `SHA256-HEX ROLE [SUBJECT]`"));
        };
        let subject = fields.next().map(str::to_string);
        if fields.next().is_some() {
            return Err(format!("line {n}: too many fields"));
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("line {n}: the hash is not 64 hex digits"));
        }
        let role = Role::parse(role).ok_or_else(|| {
            format!("line {n}: unknown role (operator, supplier, consumer, public_body, public)")
        })?;
        match (role, &subject) {
            (Role::Supplier, None) => return Err(format!("line {n}: a supplier needs a name")),
            (Role::Consumer, None) => return Err(format!("line {n}: a consumer needs a meter")),
            (Role::Consumer, Some(m)) if !crate::engine::valid_meter_id(m) => {
                return Err(format!("line {n}: {m:?} is not a meter id"))
            }
            _ => {}
        }
        table.insert(hash.to_ascii_lowercase(), Principal { role, subject });
    }
    Ok(table)
}

/// The tokens file. The table in force is always the file as last read whole: it is read again
/// at most once per `recheck` (its bytes compared, not its modification time), and while it
/// cannot be read or parsed (deleted included) every token is refused, never the previous
/// table kept.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    recheck: Duration,
    state: parking_lot::Mutex<TokensState>,
}

#[derive(Debug)]
struct TokensState {
    checked: Instant,
    /// SHA-256 of the bytes last read; `None` when the last read failed.
    digest: Option<[u8; 32]>,
    /// The table, or why there is none.
    table: Result<std::sync::Arc<HashMap<String, Principal>>, String>,
}

impl Tokens {
    /// Reads the file; a missing or unreadable file is an error.
    pub fn load(path: &Path, recheck: Duration) -> Result<Tokens, Error> {
        let bytes = Tokens::read_bytes(path)?;
        let table = Tokens::parse(path, &bytes)?;
        Ok(Tokens {
            path: path.to_path_buf(),
            recheck,
            state: parking_lot::Mutex::new(TokensState {
                checked: Instant::now(),
                digest: Some(Sha256::digest(&bytes).into()),
                table: Ok(std::sync::Arc::new(table)),
            }),
        })
    }

    fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
        std::fs::read(path).map_err(|e| Error::Tokens {
            path: path.to_path_buf(),
            detail: format!("cannot read it: {e}"),
        })
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Principal>, Error> {
        let invalid = |detail| Error::Tokens {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
        parse_tokens(text).map_err(invalid)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again when `recheck` has passed; returns the table in force.
    fn current(&self) -> Result<std::sync::Arc<HashMap<String, Principal>>, String> {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= self.recheck {
            state.checked = Instant::now();
            let read = Tokens::read_bytes(&self.path);
            let digest: Option<[u8; 32]> = read.as_ref().ok().map(|b| Sha256::digest(b).into());
            if digest.is_none() || digest != state.digest {
                let was_ok = state.table.is_ok();
                let next = read.and_then(|bytes| Tokens::parse(&self.path, &bytes));
                state.digest = digest;
                match next {
                    Ok(table) => {
                        state.table = Ok(std::sync::Arc::new(table));
                        tracing::info!(path = %self.path.display(), "tokens reloaded");
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if was_ok || state.table.as_ref().err() != Some(&message) {
                            tracing::warn!(error = %message, "every token refused until the tokens file is fixed");
                        }
                        state.table = Err(message);
                    }
                }
            }
        }
        state.table.clone()
    }

    /// The principal of a presented token; `None` for an unknown token and for every token
    /// while the file cannot be read whole.
    pub fn lookup(&self, token: &str) -> Option<Principal> {
        self.current().ok()?.get(&token_hash(token)).cloned()
    }

    /// `Err` with the reason while the file cannot be read whole (every token is refused).
    pub fn status(&self) -> Result<(), String> {
        self.current().map(|_| ())
    }
}

/// The tokens file as an attacker or a clumsy edit leaves it.
#[cfg(test)]
mod token_file_tests {
    use super::*;

    fn line(token: &str, role: &str, subject: &str) -> String {
        format!("{} {role} {subject}\n", token_hash(token))
    }

    fn tokens_in(dir: &Path, text: &str) -> Tokens {
        let path = dir.join("tokens");
        std::fs::write(&path, text).unwrap();
        Tokens::load(&path, Duration::ZERO).unwrap()
    }

    #[test]
    fn a_removed_token_is_refused_even_when_another_line_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let tokens = tokens_in(
            dir.path(),
            &(line("keep", "operator", "") + &line("gone", "supplier", "acme")),
        );
        assert!(tokens.lookup("gone").is_some());
        // The supplier's line removed, and a typo elsewhere in the same edit.
        std::fs::write(
            &path,
            line("keep", "operator", "") + "not-a-hash operator\n",
        )
        .unwrap();
        assert_eq!(tokens.lookup("gone"), None);
        assert_eq!(
            tokens.lookup("keep"),
            None,
            "a broken file refuses every token"
        );
        let status = tokens.status().unwrap_err();
        assert!(status.contains("line 2"), "{status}");
    }

    #[test]
    fn a_deleted_tokens_file_refuses_every_token_until_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let text = line("op", "operator", "");
        let tokens = tokens_in(dir.path(), &text);
        assert!(tokens.lookup("op").is_some());
        assert_eq!(tokens.status(), Ok(()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(tokens.lookup("op"), None);
        assert!(tokens.status().unwrap_err().contains("cannot read"));
        std::fs::write(&path, &text).unwrap();
        assert!(
            tokens.lookup("op").is_some(),
            "a fixed file is accepted again"
        );
        assert_eq!(tokens.status(), Ok(()));
    }

    #[test]
    fn an_edit_of_the_same_length_within_the_same_second_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let tokens = tokens_in(dir.path(), &line("aaaa", "operator", ""));
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(tokens.lookup("aaaa").is_some());
        std::fs::write(&path, line("bbbb", "operator", "")).unwrap();
        // Same length; the modification time put back as it was.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
        drop(file);
        assert_eq!(tokens.lookup("aaaa"), None);
        assert!(tokens.lookup("bbbb").is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::consent::{Collection, ConsentEvent};
    use crate::governance::grants::{Grant, GrantEvent};

    fn supplier() -> Principal {
        Principal {
            role: Role::Supplier,
            subject: Some("acme".into()),
        }
    }

    fn daily(from: i64, to: i64) -> Summary {
        Summary {
            figure: Figure::Energy,
            range_utc: (from, to),
            period: Period::Day,
            tz_paris: true,
            whole_local_days: true,
            tariff: false,
        }
    }

    #[test]
    fn without_curve_rights_a_summary_is_whole_paris_days_without_tariff() {
        let mut grants = GrantRegistry::default();
        grants.apply(GrantEvent::Created(Grant {
            id: 1,
            meter: "m".into(),
            supplier: "acme".into(),
            from_utc: 5_000,
            to_utc: 10_000,
            created_utc: 0,
            kinds: Kinds::ALL,
            by: "operator".into(),
            revoked_utc: None,
        }));
        // A second grant, of daily data only, from before the first: no curve rights before
        // the first, so whole Paris days only there.
        grants.apply(GrantEvent::Created(Grant {
            id: 2,
            meter: "m".into(),
            supplier: "acme".into(),
            from_utc: 0,
            to_utc: 8_000,
            kinds: Kinds::of(DataKind::Daily),
            created_utc: 0,
            by: "operator".into(),
            revoked_utc: None,
        }));
        let consent = ConsentRegistry::default();
        let facts = Facts {
            now_utc: 6_000,
            grants: &grants,
            consent: &consent,
        };
        let ask = |summary: Summary| {
            authorize(
                &supplier(),
                &Action::ReadMeterSummary {
                    meter: "m",
                    summary,
                },
                &facts,
            )
        };
        assert_eq!(ask(daily(1_000, 2_000)), Decision::Allow);
        for finer in [
            Summary {
                tz_paris: false,
                ..daily(1_000, 2_000)
            },
            Summary {
                whole_local_days: false,
                ..daily(1_000, 2_000)
            },
            Summary {
                tariff: true,
                ..daily(1_000, 2_000)
            },
        ] {
            assert!(matches!(ask(finer), Decision::Deny(_)), "{finer:?}");
        }
        // Inside the grant, with consent: anything, as for the curve.
        let fine = Summary {
            tz_paris: false,
            whole_local_days: false,
            tariff: true,
            ..daily(6_000, 7_000)
        };
        assert_eq!(ask(fine), Decision::Allow);
        // Outside both grants, nothing; across both, whole days (daily data is granted over
        // the union of their periods).
        assert!(matches!(ask(daily(10_000, 11_000)), Decision::Deny(_)));
        assert_eq!(ask(daily(1_000, 9_000)), Decision::Allow);
    }

    /// `acme` granted `kinds` on `m` over `[0, 10_000)`; consent revoked from `revoked_from`.
    fn ask_with(
        kinds: Kinds,
        revoked_from: Option<i64>,
        action: &Action<'_>,
    ) -> Result<Kinds, &'static str> {
        let mut grants = GrantRegistry::default();
        grants.apply(GrantEvent::Created(Grant {
            id: 1,
            meter: "m".into(),
            supplier: "acme".into(),
            from_utc: 0,
            to_utc: 10_000,
            kinds,
            created_utc: 0,
            by: "operator".into(),
            revoked_utc: None,
        }));
        let mut consent = ConsentRegistry::default();
        if let Some(from_utc) = revoked_from {
            consent.insert(ConsentEvent {
                meter: "m".into(),
                from_utc,
                collection: Collection::Revoked,
                step_min: None,
                erase: false,
                recorded_utc: 0,
                by: "consumer:m".into(),
            });
        }
        let facts = Facts {
            now_utc: 5_000,
            grants: &grants,
            consent: &consent,
        };
        authorize_kinds(&supplier(), action, &facts)
    }

    #[test]
    fn each_question_needs_its_kind_and_says_which_kinds_the_answer_may_draw_on() {
        use DataKind::{Curve, Daily, MaxPower};
        let k = Kinds::of;
        let range = (1_000, 2_000);
        let points = |channel| Action::ReadCurve {
            meter: "m",
            channel,
            range_utc: range,
        };
        let summary = |figure, whole_days| Action::ReadMeterSummary {
            meter: "m",
            summary: Summary {
                figure,
                whole_local_days: whole_days,
                ..daily(1_000, 2_000)
            },
        };
        let index = Action::ReadIndex {
            meter: "m",
            range_utc: range,
        };
        let year = Action::ReadYearSummary {
            meter: "m",
            range_utc: range,
        };
        let both = k(Daily).with(MaxPower);
        #[rustfmt::skip]
        let table: Vec<(Kinds, Action<'_>, Option<Kinds>)> = vec![
            (k(Daily), points(Channel::CONSUMPTION), None),
            (k(Daily), points(Channel::MAX_POWER), None),
            (k(MaxPower), points(Channel::MAX_POWER), Some(k(MaxPower))),
            (k(Curve), points(Channel::PRODUCTION), Some(k(Curve))),
            (k(Curve), points(Channel::MAX_POWER), None),
            (k(Daily), summary(Figure::Energy, true), Some(k(Daily))),
            (k(Daily), summary(Figure::Energy, false), None),
            (k(MaxPower), summary(Figure::Energy, true), None),
            (k(Curve), summary(Figure::Energy, false), Some(k(Curve))),
            (k(Daily), summary(Figure::Peak, true), None),
            (k(MaxPower), summary(Figure::Peak, true), Some(k(MaxPower))),
            (k(MaxPower), summary(Figure::Peak, false), None),
            (k(Curve), summary(Figure::Peak, true), Some(k(Curve))),
            (Kinds::ALL, summary(Figure::Peak, false), Some(k(MaxPower).with(Curve))),
            (k(Daily), index.clone(), Some(k(Daily))),
            (k(MaxPower).with(Curve), index.clone(), None),
            (k(Daily), year.clone(), None),
            (k(MaxPower), year.clone(), None),
            (both, year.clone(), Some(both)),
            (Kinds::ALL, year.clone(), Some(Kinds::ALL)),
        ];
        for (kinds, action, want) in table {
            let got = ask_with(kinds, None, &action).ok();
            assert_eq!(got, want, "{kinds:?} asking {action:?}");
        }
        // Consent governs the curve only: after a revocation, the curve's grant gives nothing
        // and the other kinds are untouched.
        for (kinds, action, want) in [
            (k(Curve), points(Channel::CONSUMPTION), None),
            (k(Curve), summary(Figure::Energy, true), None),
            (k(Curve), summary(Figure::Peak, true), None),
            (Kinds::ALL, summary(Figure::Peak, true), Some(k(MaxPower))),
            (Kinds::ALL, summary(Figure::Energy, false), None),
            (k(MaxPower), points(Channel::MAX_POWER), Some(k(MaxPower))),
            (k(Daily), index.clone(), Some(k(Daily))),
            (Kinds::ALL, year.clone(), Some(both)),
        ] {
            let got = ask_with(kinds, Some(1_500), &action).ok();
            assert_eq!(got, want, "revoked: {kinds:?} asking {action:?}");
        }
        // Outside the grant's period no kind holds.
        let late = Action::ReadIndex {
            meter: "m",
            range_utc: (9_000, 11_000),
        };
        assert!(ask_with(Kinds::ALL, None, &late).is_err());
    }

    #[test]
    fn an_operator_and_the_meters_consumer_draw_on_every_kind_and_others_on_none() {
        let grants = GrantRegistry::default();
        let consent = ConsentRegistry::default();
        let facts = Facts {
            now_utc: 0,
            grants: &grants,
            consent: &consent,
        };
        let year = Action::ReadYearSummary {
            meter: "m",
            range_utc: (0, 1),
        };
        let consumer = Principal {
            role: Role::Consumer,
            subject: Some("m".into()),
        };
        assert_eq!(
            authorize_kinds(&Principal::local_operator(), &year, &facts),
            Ok(Kinds::ALL)
        );
        assert_eq!(authorize_kinds(&consumer, &year, &facts), Ok(Kinds::ALL));
        for role in [Role::PublicBody, Role::Public, Role::Supplier] {
            let p = Principal {
                role,
                subject: Some("m".into()),
            };
            assert!(authorize_kinds(&p, &year, &facts).is_err(), "{role:?}");
            assert_eq!(
                authorize_kinds(&p, &Action::ReadColours, &facts),
                Ok(Kinds::NONE)
            );
        }
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_token() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_tokens_file_names_the_bad_line() {
        let good = format!("# comment\n{} supplier acme\n", token_hash("t"));
        let table = parse_tokens(&good).unwrap();
        assert_eq!(table.get(&token_hash("t")), Some(&supplier()));
        let bad = format!("{} consumer\n", token_hash("t"));
        assert_eq!(
            parse_tokens(&bad).unwrap_err(),
            "line 1: a consumer needs a meter"
        );
        assert!(parse_tokens("abc operator\n")
            .unwrap_err()
            .starts_with("line 1"));
    }

    #[test]
    fn a_supplier_reads_the_curve_only_inside_its_grant_and_while_consent_holds() {
        let mut grants = GrantRegistry::default();
        grants.apply(GrantEvent::Created(Grant {
            id: 1,
            meter: "m".into(),
            supplier: "acme".into(),
            from_utc: 1_000,
            to_utc: 10_000,
            created_utc: 0,
            kinds: Kinds::ALL,
            by: "operator".into(),
            revoked_utc: None,
        }));
        let mut consent = ConsentRegistry::default();
        consent.insert(ConsentEvent {
            meter: "m".into(),
            from_utc: 8_000,
            collection: Collection::Revoked,
            step_min: None,
            erase: false,
            recorded_utc: 0,
            by: "consumer:m".into(),
        });
        let facts = Facts {
            now_utc: 5_000,
            grants: &grants,
            consent: &consent,
        };
        let read = |from, to| Action::ReadCurve {
            meter: "m",
            channel: Channel::CONSUMPTION,
            range_utc: (from, to),
        };
        assert_eq!(
            authorize(&supplier(), &read(1_000, 8_000), &facts),
            Decision::Allow
        );
        assert!(matches!(
            authorize(&supplier(), &read(500, 2_000), &facts),
            Decision::Deny(_)
        ));
        assert!(matches!(
            authorize(&supplier(), &read(2_000, 9_000), &facts),
            Decision::Deny(_)
        ));
        let other = Action::ReadMeterSummary {
            meter: "n",
            summary: daily(1_000, 8_000),
        };
        assert!(matches!(
            authorize(&supplier(), &other, &facts),
            Decision::Deny(_)
        ));
        let later = Facts {
            now_utc: 10_000,
            ..facts
        };
        assert!(matches!(
            authorize(
                &supplier(),
                &Action::ReadMeterSummary {
                    meter: "m",
                    summary: daily(1_000, 8_000)
                },
                &later
            ),
            Decision::Deny(_)
        ));
    }
}
