//! Who is calling, and what they may do (issue 7).
//!
//! - [`Authenticator`]: the principal of every gRPC call, from a signed bearer token
//!   ([`jwt::Verifier`]: EdDSA or RS256, keys from a PEM file or a JWKS URL; expiry, issuer and
//!   audience checked) or a listed TLS client certificate ([`certs::CertPrincipals`]), with a
//!   per-principal rate limit; denials logged without personal data and counted.
//! - [`policy`]: the role × agency table every service asks.
//! - [`local::LocalAuthority`]: the embedded node's own key pair and administrator token, so
//!   `motcua serve` is authenticated with no set-up.

pub mod authenticator;
pub mod certs;
pub mod jwt;
pub mod local;
pub mod policy;
pub mod principal;

pub use authenticator::{AuthStats, Authenticator, Mode};
pub use principal::{Principal, Role};
