//! `courbe token add`: a new bearer token, printed once, its hash appended to the tokens file.
//! `courbe grant add|list|revoke`: a supplier's grants on a meter, with the kinds of data each
//! allows, as `POST`/`GET`/`DELETE /v1/meters/{id}/grants` do (the server must be stopped: the
//! store's lock is taken first).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::auth::{parse_tokens, token_hash, Role};
use super::grants::Kinds;
use super::Error;
use crate::cli::CliError;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token: prints it once on stdout, appends its SHA-256 to the tokens file.
    Add {
        /// The tokens file (created when missing), as given to `courbe serve --tokens`.
        #[arg(long, value_name = "FILE")]
        tokens: PathBuf,
        /// operator, supplier, consumer, public_body or public.
        #[arg(long)]
        role: String,
        /// The supplier's name (matched against grants), the consumer's meter, or a label.
        #[arg(long)]
        subject: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(subcommand)]
    pub command: GrantCommand,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant a supplier a meter's data of some kinds over [from, to) (at most three years);
    /// prints the grant as JSON.
    Add {
        #[arg(long)]
        meter: String,
        /// The supplier's name, as its tokens' subject.
        #[arg(long)]
        supplier: String,
        /// RFC 3339 instant or Europe/Paris date.
        #[arg(long)]
        from: String,
        /// RFC 3339 instant or Europe/Paris date (excluded).
        #[arg(long)]
        to: String,
        /// The kinds the consumer chose, comma-separated: daily, max_power, curve.
        #[arg(long)]
        kinds: String,
    },
    /// Print a meter's grants, revoked and expired ones included, as JSON.
    List {
        #[arg(long)]
        meter: String,
    },
    /// Revoke a grant now; prints it as JSON.
    Revoke {
        #[arg(long)]
        meter: String,
        #[arg(long)]
        id: u64,
    },
}

/// Runs `courbe grant ...` on the data directory `data`.
pub fn grant(data: &Path, args: &GrantArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let paris = crate::question::parse_tz(None)?.0;
    let instant = |text: &str, name: &str| crate::question::parse_instant(text, &paris, name);
    let check = |meter: &str| crate::question::check_meter_id(meter);
    // Checked before anything is opened.
    let add = match &args.command {
        GrantCommand::Add {
            meter,
            from,
            to,
            kinds,
            ..
        } => {
            check(meter)?;
            let names = kinds.split(',').map(str::trim);
            let kinds = Kinds::parse_list(names.filter(|_| !kinds.trim().is_empty()))
                .map_err(|e| CliError::User(e.replace("`kinds`", "--kinds")))?;
            Some((instant(from, "from")?, instant(to, "to")?, kinds))
        }
        GrantCommand::List { meter } | GrantCommand::Revoke { meter, .. } => {
            check(meter)?;
            None
        }
    };
    // The store's lock keeps a running server (the registries' other writer) out.
    let _store = crate::cli::open_existing_store(data)?;
    let gov = super::Governance::open(data, Default::default())
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let by = format!("operator:cli-{}", whoami());
    let gov_error = |e: Error| match e {
        Error::InvalidArgument(m) => CliError::User(m),
        other => CliError::Internal(other.to_string()),
    };
    let json = match (&args.command, add) {
        (
            GrantCommand::Add {
                meter, supplier, ..
            },
            Some((from, to, kinds)),
        ) => {
            let g = gov
                .create_grant_of(meter, supplier, from, to, kinds, &by)
                .map_err(gov_error)?;
            serde_json::to_value(super::http::GrantJson::from(&g))
        }
        (GrantCommand::Revoke { meter, id }, _) => {
            match gov.revoke_grant(meter, *id, &by).map_err(gov_error)? {
                Some(g) => serde_json::to_value(super::http::GrantJson::from(&g)),
                None => return Err(CliError::User(format!("no grant {id} on meter {meter}"))),
            }
        }
        (GrantCommand::List { meter }, _) | (GrantCommand::Add { meter, .. }, None) => {
            let grants: Vec<_> = gov
                .grants_of(meter)
                .iter()
                .map(super::http::GrantJson::from)
                .collect();
            Ok(serde_json::json!({ "meter": meter, "grants": grants }))
        }
    }
    .map_err(|e| CliError::Internal(e.to_string()))?;
    writeln!(out, "{json}").map_err(|source| CliError::Internal(source.to_string()))
}

/// The local user, for the registry's `by`.
fn whoami() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_else(|| "unknown".into())
}

/// 32 random bytes from the system, as 64 hex digits.
fn random_token() -> Result<String, Error> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Appends a new token of `role` to `path`; returns the token (the file keeps only its hash).
pub fn add_token(path: &Path, role: &str, subject: Option<&str>) -> Result<String, Error> {
    let invalid = |detail: String| Error::Tokens {
        path: path.to_path_buf(),
        detail,
    };
    let role = Role::parse(role).ok_or_else(|| {
        invalid(format!(
            "unknown role {role:?} (operator, supplier, consumer, public_body, public)"
        ))
    })?;
    if subject.is_some_and(|s| s.is_empty() || s.contains(char::is_whitespace) || s.contains('#')) {
        return Err(invalid("a subject has no spaces and no `#`".into()));
    }
    let token = format!("courbe_{}", random_token()?);
    let line = match subject {
        Some(s) => format!("{} {} {s}\n", token_hash(&token), role.as_str()),
        None => format!("{} {}\n", token_hash(&token), role.as_str()),
    };
    // The new line must parse as the server will parse it.
    parse_tokens(&line).map_err(invalid)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(token)
}

/// Runs `courbe token ...`; the token goes to `out`.
pub fn token(args: &TokenArgs, out: &mut dyn Write) -> Result<(), Error> {
    match &args.command {
        TokenCommand::Add {
            tokens,
            role,
            subject,
        } => {
            let token = add_token(tokens, role, subject.as_deref())?;
            writeln!(out, "{token}").map_err(|source| Error::Io {
                path: PathBuf::from("<stdout>"),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_token_is_known_by_its_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let t1 = add_token(&path, "supplier", Some("acme")).unwrap();
        let t2 = add_token(&path, "operator", None).unwrap();
        assert_ne!(t1, t2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&t1) && !text.contains(&t2));
        let table = parse_tokens(&text).unwrap();
        assert_eq!(table[&token_hash(&t1)].role, Role::Supplier);
        assert_eq!(table[&token_hash(&t2)].role, Role::Operator);
        assert!(add_token(&path, "consumer", None).is_err());
        assert!(add_token(&path, "king", None).is_err());
    }
}
