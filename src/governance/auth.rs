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
use super::grants::GrantRegistry;
use super::Error;
use crate::query::Period;

/// What a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Operator,
    /// The meters it holds a grant in force for; their curve only inside the grant's period
    /// and while collection consent holds.
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

/// The shape of an energy or peak question: what decides whether it can rebuild the curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
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
    /// A meter's curve over `[from_utc, to_utc)`.
    ReadCurve {
        meter: &'a str,
        range_utc: (i64, i64),
    },
    /// Energy or peak of a meter: derived from its curve or its maximum power. Without curve
    /// rights over the range, only [`Summary::daily`] questions (and a peak only from
    /// `max_power`, which the handler enforces on the answer).
    ReadMeterSummary {
        meter: &'a str,
        summary: Summary,
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

/// Whether a supplier may read `meter`'s curve over `[from, to)`: a grant in force covers the
/// range, and collection consent holds over it and now.
fn supplier_curve(
    supplier: &str,
    meter: &str,
    (from, to): (i64, i64),
    facts: &Facts<'_>,
) -> Decision {
    let inside = facts
        .grants
        .in_force(supplier, meter, facts.now_utc)
        .any(|g| g.from_utc <= from && to <= g.to_utc);
    if !inside {
        Decision::Deny("curve range outside every grant in force")
    } else if !facts.consent.holds_over(meter, from, to)
        || !facts.consent.collecting(meter, facts.now_utc)
    {
        Decision::Deny("collection consent does not hold, now or over the range")
    } else {
        Decision::Allow
    }
}

/// The one access rule of Courbe. A denial never depends on whether the meter exists.
pub fn authorize(principal: &Principal, action: &Action<'_>, facts: &Facts<'_>) -> Decision {
    use Action as A;
    let own_meter = |meter: &str| principal.subject.as_deref() == Some(meter);
    let granted = |meter: &str| match &principal.subject {
        Some(supplier) => facts
            .grants
            .in_force(supplier, meter, facts.now_utc)
            .next()
            .is_some(),
        None => false,
    };
    let allow_if = |ok: bool, why: &'static str| {
        if ok {
            Decision::Allow
        } else {
            Decision::Deny(why)
        }
    };
    match principal.role {
        Role::Operator => Decision::Allow,
        _ if *action == A::ListReleases => Decision::Allow,
        Role::Consumer => match action {
            A::ReadCurve { meter, .. }
            | A::ReadMeterSummary { meter, .. }
            | A::Export { meter }
            | A::Compare { meter }
            | A::ReadConsent { meter }
            | A::SetConsent { meter }
            | A::ReadGrants { meter }
            | A::ReadContracts { meter } => allow_if(own_meter(meter), "not the consumer's meter"),
            A::ReadColours => Decision::Allow,
            A::ReadAggregates {
                level,
                predefined: true,
            } if *level != Level::Building => Decision::Allow,
            _ => Decision::Deny("not for consumers"),
        },
        Role::Supplier => match action {
            A::ReadConsent { meter } | A::ReadContracts { meter } => {
                allow_if(granted(meter), "no grant in force")
            }
            A::ReadColours => Decision::Allow,
            A::ReadMeterSummary { meter, summary } => {
                let Some(supplier) = principal.subject.as_deref() else {
                    return Decision::Deny("a supplier token without a name");
                };
                if !granted(meter) {
                    Decision::Deny("no grant in force")
                } else if summary.daily()
                    || supplier_curve(supplier, meter, summary.range_utc, facts) == Decision::Allow
                {
                    Decision::Allow
                } else {
                    Decision::Deny(
                        "without curve rights over the range: whole Europe/Paris days, no tariff",
                    )
                }
            }
            A::ReadCurve { meter, range_utc } => {
                let Some(supplier) = principal.subject.as_deref() else {
                    return Decision::Deny("a supplier token without a name");
                };
                supplier_curve(supplier, meter, *range_utc, facts)
            }
            A::ReadAggregates {
                level,
                predefined: true,
            } if *level != Level::Building => Decision::Allow,
            _ => Decision::Deny("not for suppliers"),
        },
        Role::PublicBody => match action {
            A::ReadAggregates {
                predefined: true, ..
            }
            | A::ReadColours => Decision::Allow,
            _ => Decision::Deny("public bodies read aggregates only"),
        },
        Role::Public => match action {
            A::ReadAggregates {
                level,
                predefined: true,
            } if *level != Level::Building => Decision::Allow,
            A::ReadColours => Decision::Allow,
            _ => Decision::Deny("the public reads published aggregates only"),
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
        // Before the grant: no curve rights, so daily questions only.
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
