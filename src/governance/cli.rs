//! `courbe token add`: a new bearer token, printed once, its hash appended to the tokens file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::auth::{parse_tokens, token_hash, Role};
use super::Error;

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
