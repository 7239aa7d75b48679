//! Who may call a node's gRPC API, and over what: the authentication and TLS settings of every
//! serving command, turned into a [`motcua_auth::Authenticator`] and a rustls configuration.
//!
//! By default a node verifies signed bearer tokens. With no key configured it is its own
//! authority ([`LocalAuthority`]): on first start it creates a key pair and an administrator
//! token in `<data-dir>/auth/` (mode 0600) and says where, so `motcua serve` works with no
//! set-up and the `motcua` client picks the token up.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use motcua_auth::certs::CertPrincipals;
use motcua_auth::jwt::{TokenRules, Verifier};
use motcua_auth::local::{AUDIENCE, LOCAL_ISSUER, LocalAuthority};
use motcua_auth::{Authenticator, Mode};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Signed bearer tokens (and listed client certificates): the default.
    Tokens,
    /// Believe the caller's x-motcua-officer / x-motcua-unit / x-motcua-role metadata. Anyone
    /// who reaches the port is whoever they claim: local development and tests only.
    TrustedMetadata,
}

/// Authentication, TLS and per-principal limits of the gRPC API.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// How callers are identified.
    #[arg(long, env = "MOTCUA_AUTH_MODE", value_enum, default_value = "tokens")]
    pub auth_mode: AuthMode,

    /// PEM public key (Ed25519 or RSA) that signs the tokens this node accepts. Without it and
    /// without --auth-jwks-url, the node is its own authority (keys in <data-dir>/auth/).
    #[arg(long, env = "MOTCUA_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    /// URL of a JWKS document with the keys that sign the tokens (refreshed every 10 minutes,
    /// and when a token names an unknown key id).
    #[arg(long, env = "MOTCUA_AUTH_JWKS_URL", conflicts_with = "auth_public_key")]
    pub auth_jwks_url: Option<String>,

    /// The `iss` every token must carry.
    #[arg(long, env = "MOTCUA_AUTH_ISSUER", default_value = LOCAL_ISSUER)]
    pub auth_issuer: String,

    /// The `aud` every token must carry.
    #[arg(long, env = "MOTCUA_AUTH_AUDIENCE", default_value = AUDIENCE)]
    pub auth_audience: String,

    /// TOML list of the counter terminals' client certificates (SHA-256 fingerprint →
    /// principal) accepted instead of a token; needs --tls-client-ca.
    #[arg(
        long,
        env = "MOTCUA_CLIENT_CERT_PRINCIPALS",
        requires = "tls_client_ca"
    )]
    pub client_cert_principals: Option<PathBuf>,

    /// PEM certificate chain of the server: serve TLS (rustls) instead of plaintext.
    #[arg(long, env = "MOTCUA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "MOTCUA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates that sign the terminals' client certificates. Client certificates
    /// are then asked for, but optional: callers with a token need none.
    #[arg(long, env = "MOTCUA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Calls per second one principal may make (0: unlimited); more are answered
    /// RESOURCE_EXHAUSTED while other principals are served.
    #[arg(long, env = "MOTCUA_RATE_LIMIT_PER_PRINCIPAL", default_value_t = 2_000)]
    pub rate_limit_per_principal: u32,

    /// Calls one principal may burst above its rate.
    #[arg(long, env = "MOTCUA_RATE_LIMIT_BURST", default_value_t = 4_000)]
    pub rate_limit_burst: u32,

    /// Serve gRPC reflection (for grpcurl and the like). It answers without credentials,
    /// describing the public contracts only, so it is off unless asked for (or in the
    /// trusted-metadata mode). Health checks are always served, also without credentials.
    #[arg(long, env = "MOTCUA_GRPC_REFLECTION")]
    pub grpc_reflection: bool,
}

impl AuthArgs {
    /// The authenticator of a node whose data directory is `data_dir`.
    pub async fn authenticator(&self, data_dir: &Path) -> anyhow::Result<Authenticator> {
        let mode = match self.auth_mode {
            AuthMode::TrustedMetadata => {
                tracing::warn!(
                    "--auth-mode trusted-metadata: callers are believed to be whoever their \
                     metadata says; never expose this port"
                );
                Mode::TrustedMetadata
            }
            AuthMode::Tokens => Mode::Verified {
                verifier: self.verifier(data_dir).await?,
                certificates: self.certificates()?,
            },
        };
        Ok(Authenticator::new(mode)
            .with_rate_limit(self.rate_limit_per_principal, self.rate_limit_burst))
    }

    fn rules(&self) -> TokenRules {
        TokenRules {
            issuer: self.auth_issuer.clone(),
            audience: self.auth_audience.clone(),
            leeway_secs: 30,
        }
    }

    async fn verifier(&self, data_dir: &Path) -> anyhow::Result<Verifier> {
        if let Some(url) = &self.auth_jwks_url {
            return Verifier::from_jwks_url(url, self.rules())
                .await
                .with_context(|| format!("--auth-jwks-url / MOTCUA_AUTH_JWKS_URL {url}"));
        }
        if let Some(path) = &self.auth_public_key {
            return Verifier::from_pem_file(path, self.rules()).with_context(|| {
                format!(
                    "--auth-public-key / MOTCUA_AUTH_PUBLIC_KEY {}",
                    path.display()
                )
            });
        }
        let local = LocalAuthority::new(data_dir);
        let created = local.ensure().with_context(|| {
            format!(
                "creating the node's credentials in {} (--data-dir / MOTCUA_DATA_DIR)",
                local.dir.display()
            )
        })?;
        let token = local.admin_token_path();
        if created {
            tracing::info!(
                token = %token.display(),
                "created this node's signing key and an administrator token (mode 0600). The \
                 motcua client uses it when run with the same --data-dir; other clients send \
                 it as 'authorization: Bearer <token>'. Officers' tokens: motcua token issue"
            );
        } else {
            tracing::info!(token = %token.display(), "tokens signed by this node's key are accepted");
        }
        Verifier::from_pem_file(&local.public_key_path(), self.rules())
            .with_context(|| format!("the node's key in {}", local.dir.display()))
    }

    fn certificates(&self) -> anyhow::Result<Option<CertPrincipals>> {
        let Some(path) = &self.client_cert_principals else {
            return Ok(None);
        };
        let what = || {
            format!(
                "--client-cert-principals / MOTCUA_CLIENT_CERT_PRINCIPALS {}",
                path.display()
            )
        };
        let text = std::fs::read_to_string(path).with_context(what)?;
        let list = CertPrincipals::from_toml(&text)
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        Ok(Some(list))
    }

    /// Whether gRPC reflection is served.
    pub fn reflection(&self) -> bool {
        self.grpc_reflection || self.auth_mode == AuthMode::TrustedMetadata
    }

    /// The rustls configuration, when TLS is asked for.
    pub fn tls(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            if self.tls_client_ca.is_some() {
                bail!("--tls-client-ca needs --tls-cert and --tls-key");
            }
            return Ok(None);
        };
        let read = |path: &PathBuf, flag: &str| {
            std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))
        };
        let identity = Identity::from_pem(
            read(cert, "--tls-cert / MOTCUA_TLS_CERT")?,
            read(key, "--tls-key / MOTCUA_TLS_KEY")?,
        );
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            tls = tls
                .client_ca_root(Certificate::from_pem(read(
                    ca,
                    "--tls-client-ca / MOTCUA_TLS_CLIENT_CA",
                )?))
                .client_auth_optional(true);
        }
        Ok(Some(tls))
    }
}

/// `motcua token issue`: a token signed by a node's own key.
#[derive(Debug, Clone, Args)]
pub struct TokenIssueArgs {
    /// Data directory of the node whose key signs (created by its first start).
    #[arg(long, env = "MOTCUA_DATA_DIR", default_value = ".motcua")]
    pub data_dir: PathBuf,

    /// Who the token stands for: recorded as the officer on every event it causes.
    #[arg(long)]
    pub subject: String,

    /// admin, unit_admin, counter_officer, processing_officer, monitor or system.
    #[arg(long)]
    pub role: String,

    /// Agency id of a unit the principal acts for (repeat for several).
    #[arg(long = "unit")]
    pub units: Vec<String>,

    /// Hours until the token expires.
    #[arg(long, default_value_t = 12)]
    pub ttl_hours: i64,
}

/// Prints a token for the principal `args` describe.
pub fn issue_token(args: &TokenIssueArgs) -> anyhow::Result<()> {
    let role = motcua_auth::Role::parse(&args.role).with_context(|| {
        format!(
            "--role {:?}: one of {}",
            args.role,
            motcua_auth::Role::ALL.map(|r| r.as_str()).join(", ")
        )
    })?;
    let subject = args.subject.trim();
    if !motcua_auth::principal::is_valid_subject(subject) {
        bail!("--subject must be 1-128 printable characters");
    }
    let mut units = Vec::new();
    for unit in &args.units {
        let id = motcua_domain::ids::AgencyId::parse(unit.trim())
            .map_err(|e| anyhow::anyhow!("--unit {unit:?}: {e}"))?;
        units.push(id.as_str().to_owned());
    }
    let unit_bound = matches!(
        role,
        motcua_auth::Role::UnitAdmin
            | motcua_auth::Role::CounterOfficer
            | motcua_auth::Role::ProcessingOfficer
    );
    if unit_bound && units.is_empty() {
        bail!(
            "--role {} acts for units: give at least one --unit",
            args.role
        );
    }
    if !(1..=24 * 366).contains(&args.ttl_hours) {
        bail!("--ttl-hours must be between 1 and 8784");
    }
    let local = LocalAuthority::new(&args.data_dir);
    if !local.private_key_path().exists() {
        bail!(
            "{} does not exist: start the node once with --data-dir {} (it creates its key), \
             or issue tokens with your own identity provider",
            local.private_key_path().display(),
            args.data_dir.display()
        );
    }
    let token = local.issue(
        subject,
        role,
        &units,
        chrono::Duration::hours(args.ttl_hours),
    )?;
    println!("{token}");
    Ok(())
}

/// `motcua token init`: the node's signing key and administrator token, created now (a
/// deployment's init step, so that several processes can share one key).
#[derive(Debug, Clone, Args)]
pub struct TokenInitArgs {
    /// Data directory whose `auth/` receives the key pair and the administrator token.
    #[arg(long, env = "MOTCUA_DATA_DIR", default_value = ".motcua")]
    pub data_dir: PathBuf,
}

/// Creates the local authority's files if missing, and says where they are.
pub fn init_authority(args: &TokenInitArgs) -> anyhow::Result<()> {
    let local = LocalAuthority::new(&args.data_dir);
    let created = local
        .ensure()
        .with_context(|| format!("creating {}", local.dir.display()))?;
    println!(
        "{} the signing key {} (public: {}) and the administrator token {}",
        if created { "created" } else { "kept" },
        local.private_key_path().display(),
        local.public_key_path().display(),
        local.admin_token_path().display()
    );
    Ok(())
}
