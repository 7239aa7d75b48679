//! How the `motcua` client reaches a node and says who it is: the gRPC channel (plaintext, or
//! TLS with an optional client certificate) and the bearer token every request carries.
//!
//! The token is, in order: `--token` / `MOTCUA_TOKEN`, the file `--token-file` /
//! `MOTCUA_TOKEN_FILE`, or the administrator token an embedded node created in
//! `<data-dir>/auth/admin.token`, so `motcua serve` and `motcua dossier …` run side by side
//! in one directory with no set-up.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use motcua_auth::local::LocalAuthority;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The client's credentials and TLS settings.
#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    /// Bearer token to send (see `motcua token issue`).
    #[arg(long, env = "MOTCUA_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// File holding the bearer token.
    #[arg(long, env = "MOTCUA_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Data directory of a local node, whose administrator token is used when no token is
    /// given.
    #[arg(
        long,
        env = "MOTCUA_DATA_DIR",
        default_value = ".motcua",
        global = true
    )]
    pub data_dir: PathBuf,

    /// PEM CA certificate to trust for an https:// server (default: the system's roots).
    #[arg(long, env = "MOTCUA_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate (a counter terminal's), with --client-key.
    #[arg(
        long,
        env = "MOTCUA_CLIENT_CERT",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "MOTCUA_CLIENT_KEY",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
}

/// What every request carries.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    bearer: Option<MetadataValue<Ascii>>,
    /// Metadata for a node in trusted-metadata mode (ignored by one that verifies tokens).
    extra: Vec<(&'static str, MetadataValue<Ascii>)>,
}

impl Credentials {
    /// Adds `name: value` to every request (the trusted-metadata headers).
    pub fn with_header(mut self, name: &'static str, value: &str) -> anyhow::Result<Self> {
        let value = value
            .parse()
            .map_err(|_| anyhow!("{name} must be printable ASCII"))?;
        self.extra.push((name, value));
        Ok(self)
    }

    /// `body` as a request carrying the credentials.
    pub fn request<T>(&self, body: T) -> Request<T> {
        let mut request = Request::new(body);
        let metadata = request.metadata_mut();
        if let Some(bearer) = &self.bearer {
            metadata.insert("authorization", bearer.clone());
        }
        for (name, value) in &self.extra {
            metadata.insert(*name, value.clone());
        }
        request
    }
}

impl CredentialArgs {
    /// The credentials the flags name (no token at all is allowed: the node then answers
    /// UNAUTHENTICATED with a message that says what it expects).
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => {
                let local = LocalAuthority::new(&self.data_dir).admin_token_path();
                match std::fs::read_to_string(&local) {
                    Ok(token) => Some(token.trim().to_owned()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                    Err(error) => {
                        return Err(error).with_context(|| format!("reading {}", local.display()));
                    }
                }
            }
        };
        let bearer = match token.filter(|t| !t.is_empty()) {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow!("the token is not printable ASCII"))?,
            ),
            None => None,
        };
        Ok(Credentials {
            bearer,
            extra: Vec::new(),
        })
    }

    /// A connected channel to `server` (`http://…` or `https://…`).
    pub async fn connect(&self, server: &str) -> anyhow::Result<Channel> {
        let mut endpoint = Channel::from_shared(server.to_owned())
            .with_context(|| format!("--server {server} is not a valid address"))?;
        if server.starts_with("https://") || self.client_cert.is_some() {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_cert {
                Some(path) => tls.ca_certificate(Certificate::from_pem(
                    std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?,
                )),
                None => tls.with_native_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(
                    std::fs::read(cert)
                        .with_context(|| format!("--client-cert {}", cert.display()))?,
                    std::fs::read(key)
                        .with_context(|| format!("--client-key {}", key.display()))?,
                ));
            }
            endpoint = endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS settings for {server}"))?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach motcua at {server} (is it running?)"))
    }
}
