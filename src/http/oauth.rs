//! `POST /oauth2/v3/token`: OAuth2 `client_credentials`, as Data Connect's token endpoint, mapped
//! onto Courbe's bearer tokens.
//!
//! - `client_secret` is a **Courbe token** (a line of the tokens file, `courbe token add`);
//!   `client_id` is the name the tokens file gives it (the supplier's name, the consumer's meter,
//!   or the label; the role's name for a line without one). Without a tokens file (a loopback
//!   server) any non-empty pair is accepted, as every request is.
//! - The answer is `{"access_token", "token_type": "Bearer", "expires_in", "scope":
//!   "metering_data"}`: a new random token valid [`EXPIRES_IN_S`] seconds on the metering routes
//!   only ([`super::dataconnect`]), where it stands for the Courbe token it was issued to. The
//!   principal is looked up again from the tokens file at every request, so removing the Courbe
//!   token from the file refuses its access tokens too. Access tokens live in memory only (a
//!   restart ends them: clients ask again on the 401).
//! - `POST /oauth2/v3/revoke` (RFC 7009: `token`, `client_id`, `client_secret`) ends an access
//!   token issued to that client; it answers 200 whether or not the token was live.
//! - The body is `application/x-www-form-urlencoded` with `grant_type`, `client_id`,
//!   `client_secret` and optionally `scope` (ignored); the query string may hold `redirect_uri`
//!   (ignored). Errors are RFC 6749's: 400 `invalid_request` (a missing, repeated, unknown or
//!   unreadable parameter), 400 `unsupported_grant_type`, 401 `invalid_client`.
//!
//! Neither secret is logged nor compared as text: a Courbe token is found by its SHA-256 (the
//! tokens file's rule), an access token by the first half of its SHA-256 and then checked against
//! the whole digest in constant time.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::governance::Governance;

/// Lifetime of an access token, seconds.
pub const EXPIRES_IN_S: u64 = 3_600;
/// Live access tokens of one Courbe token; issuing one more drops its oldest.
pub const MAX_PER_CLIENT: usize = 8;
/// Live access tokens in all; when full, the one closest to expiry is dropped.
pub const MAX_LIVE: usize = 10_000;
/// Largest token request body.
const MAX_BODY_BYTES: usize = 8 * 1024;
/// The scope of every access token: the metering routes.
pub const SCOPE: &str = "metering_data";

struct Issued {
    /// SHA-256 of the access token.
    verifier: [u8; 32],
    /// The Courbe token it stands for.
    secret: String,
    /// SHA-256 of `secret`, to count one client's tokens.
    client: [u8; 32],
    issued: Instant,
    expires: Instant,
}

/// The live access tokens, in memory.
#[derive(Default)]
pub struct AccessTokens {
    /// Keyed by the first 16 bytes of the access token's SHA-256.
    live: parking_lot::Mutex<HashMap<[u8; 16], Issued>>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("live", &self.live.lock().len())
            .finish()
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn key_of(digest: &[u8; 32]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Equality of two digests in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes from the system, as 64 hex digits.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl AccessTokens {
    pub fn new() -> AccessTokens {
        AccessTokens::default()
    }

    /// A new access token standing for the Courbe token `secret`, valid for `lifetime`.
    pub fn issue(&self, secret: &str, lifetime: Duration) -> std::io::Result<String> {
        let token = random_hex()?;
        let verifier = digest(&token);
        let client = digest(secret);
        let now = Instant::now();
        let mut live = self.live.lock();
        live.retain(|_, t| t.expires > now);
        let mine: Vec<([u8; 16], Instant)> = live
            .iter()
            .filter(|(_, t)| t.client == client)
            .map(|(k, t)| (*k, t.issued))
            .collect();
        if mine.len() >= MAX_PER_CLIENT {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, issued)| *issued) {
                live.remove(oldest);
            }
        }
        if live.len() >= MAX_LIVE {
            let soonest = live.iter().min_by_key(|(_, t)| t.expires).map(|(k, _)| *k);
            if let Some(k) = soonest {
                live.remove(&k);
            }
        }
        live.insert(
            key_of(&verifier),
            Issued {
                verifier,
                secret: secret.to_string(),
                client,
                issued: now,
                expires: now + lifetime,
            },
        );
        Ok(token)
    }

    /// The Courbe token a live access token stands for.
    pub fn secret_of(&self, token: &str) -> Option<String> {
        let verifier = digest(token);
        let live = self.live.lock();
        let issued = live.get(&key_of(&verifier))?;
        (constant_time_eq(&issued.verifier, &verifier) && issued.expires > Instant::now())
            .then(|| issued.secret.clone())
    }

    /// Ends `token` if it is live and stands for `secret`; whether it did.
    pub fn revoke(&self, token: &str, secret: &str) -> bool {
        let verifier = digest(token);
        let client = digest(secret);
        let mut live = self.live.lock();
        let key = key_of(&verifier);
        let mine = live.get(&key).is_some_and(|issued| {
            constant_time_eq(&issued.verifier, &verifier)
                && constant_time_eq(&issued.client, &client)
        });
        if mine {
            live.remove(&key);
        }
        mine
    }

    /// Replaces a request's one `Authorization: Bearer ACCESS` by the Courbe token that access
    /// token stands for; any other header (none, two, another scheme, a token not issued here or
    /// expired) is left as it is, for the access guard to judge.
    pub fn exchange(&self, headers: &mut HeaderMap) {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return;
        };
        let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
            return;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return;
        }
        let Some(secret) = self.secret_of(token.trim()) else {
            return;
        };
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {secret}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
}

#[derive(Clone)]
struct OAuthState {
    tokens: Arc<AccessTokens>,
    gov: Option<Arc<Governance>>,
    body_timeout: Duration,
}

/// The token route. `gov`: the tokens client secrets are checked against (`None`: a server
/// without governance, where every request is answered anyway).
pub fn routes<S: Clone + Send + Sync + 'static>(
    tokens: Arc<AccessTokens>,
    gov: Option<Arc<Governance>>,
    body_timeout: Duration,
) -> Router<S> {
    Router::new()
        .route(
            crate::http::routes::declared("/oauth2/v3/token"),
            post(token),
        )
        .route(
            crate::http::routes::declared("/oauth2/v3/revoke"),
            post(revoke),
        )
        .with_state(OAuthState {
            tokens,
            gov,
            body_timeout,
        })
}

/// An RFC 6749 error answer: `{"error", "error_description"}`.
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut response = (
            self.status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"courbe\""),
            );
        }
        response
    }
}

fn invalid_request(description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: description.to_string(),
    }
}

fn invalid_client() -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_client",
        description: "unknown client_id or client_secret".to_string(),
    }
}

/// Reads a form body whose parameters are all in `allowed`, each once, with a query string
/// holding at most `redirect_uri`.
async fn read_form(
    state: &OAuthState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, OAuthError> {
    match crate::question::read_query(uri.query()) {
        Ok(params) if params.iter().all(|(name, _)| name == "redirect_uri") => {}
        Ok(_) => {
            return Err(invalid_request(
                "the query string may hold only `redirect_uri`",
            ))
        }
        Err(e) => return Err(invalid_request(&e.message)),
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(invalid_request(
            "the body is application/x-www-form-urlencoded",
        ));
    }
    let bytes = match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(invalid_request(&format!(
                "the body is unreadable or over {MAX_BODY_BYTES} bytes"
            )))
        }
        Err(_) => return Err(invalid_request("the body did not arrive in time")),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(invalid_request("the body is not UTF-8"));
    };
    let params =
        crate::question::read_query(Some(text)).map_err(|e| invalid_request(&e.message))?;
    if let Some((name, _)) = params.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
        return Err(invalid_request(&format!("unknown parameter `{name}`")));
    }
    Ok(params)
}

/// A form parameter, `None` when absent or empty.
fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The client's secret and how logs name it, once `client_id` and `client_secret` are checked
/// against the tokens file.
fn authenticate_client<'p>(
    state: &OAuthState,
    params: &'p [(String, String)],
) -> Result<(&'p str, String), OAuthError> {
    let (Some(client_id), Some(secret)) =
        (param(params, "client_id"), param(params, "client_secret"))
    else {
        return Err(invalid_request(
            "missing parameter `client_id` or `client_secret`",
        ));
    };
    let who = match &state.gov {
        None => format!("client:{client_id}"),
        Some(gov) => {
            let Some(principal) = gov.authenticate(Some(secret)) else {
                return Err(invalid_client());
            };
            let name = principal
                .subject
                .as_deref()
                .unwrap_or(principal.role.as_str());
            if gov.has_tokens() && name != client_id {
                return Err(invalid_client());
            }
            principal.label()
        }
    };
    Ok((secret, who))
}

/// `POST /oauth2/v3/token`.
async fn token(
    State(state): State<OAuthState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    const READ: [&str; 5] = [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "redirect_uri",
    ];
    let params = match read_form(&state, &headers, &uri, body, &READ).await {
        Ok(params) => params,
        Err(refusal) => return refusal.into_response(),
    };
    match param(&params, "grant_type") {
        None => return invalid_request("missing parameter `grant_type`").into_response(),
        Some("client_credentials") => {}
        Some(_) => {
            return OAuthError {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: "only grant_type=client_credentials is served".into(),
            }
            .into_response()
        }
    }
    let (secret, who) = match authenticate_client(&state, &params) {
        Ok(client) => client,
        Err(refusal) => return refusal.into_response(),
    };
    let lifetime = Duration::from_secs(EXPIRES_IN_S);
    let access = match state.tokens.issue(secret, lifetime) {
        Ok(access) => access,
        Err(e) => {
            tracing::error!(error = %e, "cannot draw an access token");
            return OAuthError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "server_error",
                description: "internal error; the server log has the detail".into(),
            }
            .into_response();
        }
    };
    tracing::info!(who = %who, "access token issued");
    let body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": EXPIRES_IN_S,
        "scope": SCOPE,
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `POST /oauth2/v3/revoke` (RFC 7009): ends `token` when it was issued to this client; 200
/// whether or not it was live, so the answer says nothing about other clients' tokens.
async fn revoke(
    State(state): State<OAuthState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    const READ: [&str; 5] = [
        "token",
        "token_type_hint",
        "client_id",
        "client_secret",
        "redirect_uri",
    ];
    let params = match read_form(&state, &headers, &uri, body, &READ).await {
        Ok(params) => params,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(token) = param(&params, "token") else {
        return invalid_request("missing parameter `token`").into_response();
    };
    let (secret, who) = match authenticate_client(&state, &params) {
        Ok(client) => client,
        Err(refusal) => return refusal.into_response(),
    };
    if state.tokens.revoke(token, secret) {
        tracing::info!(who = %who, "access token revoked");
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_token_stands_for_its_secret_until_it_expires() {
        let tokens = AccessTokens::new();
        let a = tokens.issue("secret-a", Duration::from_secs(60)).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(tokens.secret_of(&a).as_deref(), Some("secret-a"));
        assert_eq!(tokens.secret_of("secret-a"), None);
        let mut flipped = a.clone().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
        assert_eq!(tokens.secret_of(&String::from_utf8(flipped).unwrap()), None);
        let gone = tokens.issue("secret-a", Duration::ZERO).unwrap();
        assert_eq!(tokens.secret_of(&gone), None, "expired");
    }

    #[test]
    fn one_client_holds_a_bounded_number_of_live_tokens() {
        let tokens = AccessTokens::new();
        let first = tokens.issue("s", Duration::from_secs(60)).unwrap();
        let mut last = String::new();
        for _ in 0..MAX_PER_CLIENT {
            last = tokens.issue("s", Duration::from_secs(60)).unwrap();
        }
        assert_eq!(tokens.secret_of(&first), None, "the oldest is dropped");
        assert!(tokens.secret_of(&last).is_some());
        assert_eq!(tokens.live.lock().len(), MAX_PER_CLIENT);
    }

    #[test]
    fn only_one_bearer_header_of_a_live_token_is_exchanged() {
        let tokens = AccessTokens::new();
        let a = tokens
            .issue("courbe-secret", Duration::from_secs(60))
            .unwrap();
        let mut one = HeaderMap::new();
        one.insert(
            header::AUTHORIZATION,
            format!("Bearer {a}").parse().unwrap(),
        );
        tokens.exchange(&mut one);
        assert_eq!(one[header::AUTHORIZATION], "Bearer courbe-secret");
        let mut two = HeaderMap::new();
        two.append(
            header::AUTHORIZATION,
            format!("Bearer {a}").parse().unwrap(),
        );
        two.append(
            header::AUTHORIZATION,
            format!("Bearer {a}").parse().unwrap(),
        );
        tokens.exchange(&mut two);
        assert!(two
            .get_all(header::AUTHORIZATION)
            .iter()
            .all(|v| v.to_str().unwrap().ends_with(&a)));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, format!("Basic {a}").parse().unwrap());
        tokens.exchange(&mut basic);
        assert_eq!(basic[header::AUTHORIZATION], format!("Basic {a}").as_str());
    }
}
