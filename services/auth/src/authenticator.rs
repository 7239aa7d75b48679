//! Establishing the principal of a gRPC call, and refusing floods, in one place for every
//! service. Denials are logged (structured, without the token or personal data) and counted.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::{Code, Request, Status};

use crate::certs::CertPrincipals;
use crate::jwt::Verifier;
use crate::principal::{Principal, Role};

/// The metadata of the trusted-metadata mode (tests and local development only).
pub const OFFICER_HEADER: &str = "x-motcua-officer";
pub const UNIT_HEADER: &str = "x-motcua-unit";
pub const ROLE_HEADER: &str = "x-motcua-role";

/// How callers are identified.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Signed bearer tokens, or a listed client certificate: the default.
    Verified {
        verifier: Verifier,
        certificates: Option<CertPrincipals>,
    },
    /// The caller's own `x-motcua-officer` / `x-motcua-unit` / `x-motcua-role` metadata,
    /// believed as given (role `admin` unless said). For the test suite and local development:
    /// anyone who can reach the port is whoever they claim.
    TrustedMetadata,
}

/// What was refused, and how often (for metrics).
#[derive(Debug, Default)]
pub struct AuthStats {
    pub unauthenticated: AtomicU64,
    pub denied: AtomicU64,
    pub throttled: AtomicU64,
}

/// Establishes principals (module docs). Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    mode: Mode,
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    stats: Arc<AuthStats>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            limiter: None,
            stats: Arc::default(),
        }
    }

    /// Trusted metadata (module docs of [`Mode::TrustedMetadata`]).
    pub fn trusted_metadata() -> Self {
        Self::new(Mode::TrustedMetadata)
    }

    /// At most `per_second` calls per principal, with bursts of `burst`.
    pub fn with_rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        if let (Some(rate), Some(burst)) = (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
            self.limiter = Some(Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )));
        }
        self
    }

    pub fn stats(&self) -> Arc<AuthStats> {
        Arc::clone(&self.stats)
    }

    /// The principal of `request` for `rpc`, or the status to answer.
    pub async fn authenticate<T>(
        &self,
        rpc: &str,
        request: &Request<T>,
    ) -> Result<Principal, Status> {
        let principal = match &self.mode {
            Mode::TrustedMetadata => {
                trusted(request).map_err(|message| self.unauthenticated(rpc, message))?
            }
            Mode::Verified {
                verifier,
                certificates,
            } => {
                let bearer = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim);
                match bearer {
                    Some(value) => {
                        let token = value
                            .strip_prefix("Bearer ")
                            .or_else(|| value.strip_prefix("bearer "))
                            .ok_or_else(|| {
                                self.unauthenticated(
                                    rpc,
                                    "the authorization metadata is not 'Bearer <token>'".into(),
                                )
                            })?;
                        verifier
                            .verify(token.trim())
                            .await
                            .map_err(|error| self.unauthenticated(rpc, error.to_string()))?
                    }
                    None => {
                        let from_cert = certificates.as_ref().and_then(|list| {
                            request.peer_certs().and_then(|certs| {
                                certs.first().and_then(|c| list.lookup(c.as_ref()))
                            })
                        });
                        match from_cert {
                            Some(principal) => principal,
                            None => {
                                let why = if request.peer_certs().is_some_and(|c| !c.is_empty()) {
                                    "the client certificate is not on the list of terminals"
                                } else {
                                    "no bearer token ('authorization: Bearer <token>') and no \
                                     client certificate"
                                };
                                return Err(self.unauthenticated(rpc, why.into()));
                            }
                        }
                    }
                }
            }
        };
        if let Some(limiter) = &self.limiter
            && limiter.check_key(&principal.subject).is_err()
        {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            refused(rpc, "throttled");
            tracing::warn!(rpc, subject = %principal.subject, role = principal.role.as_str(),
                "call throttled: the principal exceeds its rate limit");
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "'{}' is sending too many calls; slow down and retry",
                    principal.subject
                ),
            ));
        }
        Ok(principal)
    }

    fn unauthenticated(&self, rpc: &str, message: String) -> Status {
        self.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
        refused(rpc, "unauthenticated");
        tracing::warn!(rpc, reason = %message, "call refused: not authenticated");
        Status::unauthenticated(message)
    }

    /// Logs and counts a policy denial, and makes its status.
    pub fn denied(&self, rpc: &str, principal: &Principal, message: &str) -> Status {
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
        refused(rpc, "denied");
        tracing::warn!(rpc, subject = %principal.subject, role = principal.role.as_str(),
            via = principal.via, reason = %message, "call refused: permission denied");
        Status::permission_denied(message.to_owned())
    }
}

/// `motcua_auth_refusals_total{rpc, kind}`: the audit's metric (no subject: its cardinality
/// would be the number of officers, and the log line has it).
fn refused(rpc: &str, kind: &'static str) {
    metrics::counter!("motcua_auth_refusals_total", "rpc" => rpc.to_owned(), "kind" => kind)
        .increment(1);
}

fn trusted<T>(request: &Request<T>) -> Result<Principal, String> {
    let metadata = request.metadata();
    let text = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let officer = text(OFFICER_HEADER).ok_or_else(|| {
        format!("the call carries no '{OFFICER_HEADER}' metadata naming the officer")
    })?;
    if !crate::principal::is_valid_subject(officer) {
        return Err(format!(
            "'{OFFICER_HEADER}' must be 1-128 printable characters"
        ));
    }
    let role = match text(ROLE_HEADER) {
        Some(role) => {
            Role::parse(role).ok_or_else(|| format!("'{ROLE_HEADER}': unknown role {role:?}"))?
        }
        None => Role::Admin,
    };
    let units = match text(UNIT_HEADER) {
        Some(unit) => vec![
            motcua_domain::ids::AgencyId::parse(unit)
                .map_err(|e| format!("'{UNIT_HEADER}' {e}"))?
                .as_str()
                .to_owned(),
        ],
        None => Vec::new(),
    };
    Ok(Principal {
        subject: officer.to_owned(),
        role,
        units,
        via: "trusted-metadata",
    })
}
