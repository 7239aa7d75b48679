//! Bearer tokens: JWTs signed with EdDSA (Ed25519) or RS256, checked for signature, expiry,
//! issuer and audience. Keys come from a PEM file or a JWKS URL (refreshed when a token names a
//! key not seen yet, at most every 30 s, and every 10 minutes anyway).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::principal::{Principal, Role};

/// The claims motcua reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default)]
    pub units: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

/// What every token must say.
#[derive(Debug, Clone)]
pub struct TokenRules {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, in seconds.
    pub leeway_secs: u64,
}

/// Why a token was refused. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the bearer token's algorithm {0:?} is not accepted (EdDSA or RS256)")]
    Algorithm(String),
    #[error("the bearer token is signed with a key this server does not trust")]
    UnknownKey,
    #[error("the bearer token's signature is not valid")]
    Signature,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token's issuer is not {0:?}")]
    Issuer(String),
    #[error("the bearer token's audience is not {0:?}")]
    Audience(String),
    #[error("the bearer token is not acceptable: {0}")]
    Claims(String),
    #[error("the keys could not be loaded: {0}")]
    Keys(String),
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<(Vec<Key>, Instant)>,
}

#[derive(Debug)]
enum Keys {
    Fixed(Vec<Key>),
    Jwks(Jwks),
}

/// Verifies bearer tokens.
#[derive(Debug, Clone)]
pub struct Verifier {
    rules: TokenRules,
    keys: Arc<Keys>,
    verified: Arc<VerifiedCache>,
}

/// Tokens verified recently, so a counter's every call does not pay for a signature check
/// (an Ed25519 verification is ~50 µs: a fifth of a core at 4,000 calls/s). Only tokens
/// that verified are kept, so forged tokens cannot fill it. An entry is trusted for at most
/// [`VerifiedCache::TRUST`], and never past the token's `exp`. A key withdrawn from the
/// JWKS is therefore honoured at most that much longer.
struct VerifiedCache {
    entries: std::sync::Mutex<lru::LruCache<String, Verified>>,
}

#[derive(Clone)]
struct Verified {
    principal: Principal,
    expires: i64,
    at: Instant,
}

impl VerifiedCache {
    const CAPACITY: usize = 10_000;
    const TRUST: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Self {
            entries: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(Self::CAPACITY).expect("non-zero"),
            )),
        }
    }

    fn lookup(&self, token: &str, leeway: u64) -> Option<Result<Principal, TokenError>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(token)?.clone();
        if entry.at.elapsed() > Self::TRUST {
            entries.pop(token);
            return None;
        }
        if chrono::Utc::now().timestamp() > entry.expires + leeway as i64 {
            entries.pop(token);
            return Some(Err(TokenError::Expired));
        }
        Some(Ok(entry.principal))
    }

    fn remember(&self, token: &str, principal: &Principal, expires: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.put(
            token.to_owned(),
            Verified {
                principal: principal.clone(),
                expires,
                at: Instant::now(),
            },
        );
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("VerifiedCache").finish_non_exhaustive()
    }
}

fn key_from_pem(pem: &[u8]) -> Result<Key, TokenError> {
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(Key {
            kid: None,
            algorithm: Algorithm::EdDSA,
            key,
        });
    }
    DecodingKey::from_rsa_pem(pem)
        .map(|key| Key {
            kid: None,
            algorithm: Algorithm::RS256,
            key,
        })
        .map_err(|e| TokenError::Keys(format!("neither an Ed25519 nor an RSA public key: {e}")))
}

fn keys_from_set(set: &JwkSet) -> Vec<Key> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let algorithm = match jwk.common.key_algorithm.map(|a| format!("{a:?}")) {
                Some(a) if a == "EdDSA" => Algorithm::EdDSA,
                Some(a) if a == "RS256" => Algorithm::RS256,
                Some(_) => return None,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    _ => return None,
                },
            };
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        })
        .collect()
}

impl Verifier {
    /// Trusts the public key in `pem` (Ed25519 or RSA).
    pub fn from_pem(pem: &[u8], rules: TokenRules) -> Result<Self, TokenError> {
        Ok(Self {
            rules,
            keys: Arc::new(Keys::Fixed(vec![key_from_pem(pem)?])),
            verified: Arc::new(VerifiedCache::new()),
        })
    }

    pub fn from_pem_file(path: &Path, rules: TokenRules) -> Result<Self, TokenError> {
        let pem = std::fs::read(path)
            .map_err(|e| TokenError::Keys(format!("{}: {e}", path.display())))?;
        Self::from_pem(&pem, rules)
    }

    /// Trusts the keys published at `url` (fetched now: a wrong URL fails at start).
    pub async fn from_jwks_url(url: &str, rules: TokenRules) -> Result<Self, TokenError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .use_rustls_tls()
            .build()
            .map_err(|e| TokenError::Keys(e.to_string()))?;
        let keys = fetch(&http, url).await?;
        Ok(Self {
            rules,
            keys: Arc::new(Keys::Jwks(Jwks {
                url: url.to_owned(),
                http,
                keys: RwLock::new((keys, Instant::now())),
            })),
            verified: Arc::new(VerifiedCache::new()),
        })
    }

    async fn candidates(&self, kid: Option<&str>) -> Vec<Key> {
        match self.keys.as_ref() {
            Keys::Fixed(keys) => keys.clone(),
            Keys::Jwks(jwks) => {
                let (known, fetched) = {
                    let guard = jwks.keys.read().await;
                    let known = guard
                        .0
                        .iter()
                        .any(|k| kid.is_none() || k.kid.as_deref() == kid);
                    (known, guard.1)
                };
                let stale = fetched.elapsed() > Duration::from_secs(600);
                let may_refresh = fetched.elapsed() > Duration::from_secs(30);
                if stale || (!known && may_refresh) {
                    match fetch(&jwks.http, &jwks.url).await {
                        Ok(keys) => *jwks.keys.write().await = (keys, Instant::now()),
                        Err(error) => {
                            tracing::warn!(%error, "refreshing the JWKS failed; keeping the keys known")
                        }
                    }
                }
                jwks.keys.read().await.0.clone()
            }
        }
    }

    /// The principal a token stands for.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        if let Some(known) = self.verified.lookup(token, self.rules.leeway_secs) {
            return known;
        }
        let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::RS256) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let keys = self.candidates(header.kid.as_deref()).await;
        let usable: Vec<&Key> = keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if usable.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.rules.issuer]);
        validation.set_audience(&[&self.rules.audience]);
        validation.leeway = self.rules.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last = TokenError::Signature;
        for key in usable {
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let expires = data.claims.exp;
                    let principal = principal(data.claims)?;
                    self.verified.remember(token, &principal, expires);
                    return Ok(principal);
                }
                Err(error) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match error.kind() {
                        ErrorKind::InvalidSignature => TokenError::Signature,
                        ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                        ErrorKind::InvalidIssuer => {
                            return Err(TokenError::Issuer(self.rules.issuer.clone()));
                        }
                        ErrorKind::InvalidAudience => {
                            return Err(TokenError::Audience(self.rules.audience.clone()));
                        }
                        ErrorKind::MissingRequiredClaim(c) => {
                            return Err(TokenError::Claims(format!("no '{c}' claim")));
                        }
                        other => TokenError::Malformed(format!("{other:?}")),
                    };
                }
            }
        }
        Err(last)
    }
}

fn principal(claims: Claims) -> Result<Principal, TokenError> {
    let role = Role::parse(&claims.role)
        .ok_or_else(|| TokenError::Claims(format!("unknown role {:?}", claims.role)))?;
    if !crate::principal::is_valid_subject(&claims.sub) {
        return Err(TokenError::Claims(
            "'sub' must be 1-128 printable characters".into(),
        ));
    }
    if matches!(
        role,
        Role::UnitAdmin | Role::CounterOfficer | Role::ProcessingOfficer
    ) && claims.units.is_empty()
    {
        return Err(TokenError::Claims(format!(
            "a {} token must name its units",
            role.as_str()
        )));
    }
    Ok(Principal {
        subject: claims.sub,
        role,
        units: claims.units,
        via: "token",
    })
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<Key>, TokenError> {
    let set: JwkSet = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| TokenError::Keys(format!("fetching the JWKS at {url}: {e}")))?
        .json()
        .await
        .map_err(|e| TokenError::Keys(format!("the JWKS at {url} is not a key set: {e}")))?;
    let keys = keys_from_set(&set);
    if keys.is_empty() {
        return Err(TokenError::Keys(format!(
            "the JWKS at {url} has no EdDSA or RS256 key"
        )));
    }
    Ok(keys)
}
