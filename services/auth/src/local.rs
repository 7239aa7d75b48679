//! The embedded node's own token authority, so that `motcua serve` is authenticated with no
//! set-up: on first start it creates an Ed25519 key pair and an administrator token in the
//! data directory (private files, mode 0600), trusts that key, and the `motcua` client picks
//! the token up. `motcua token issue` signs officers' tokens with the same key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rand::RngCore;

use crate::jwt::{Claims, TokenRules};
use crate::principal::Role;

/// The issuer and audience of the local authority's tokens.
pub const LOCAL_ISSUER: &str = "motcua-local";
pub const AUDIENCE: &str = "motcua";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the local signing key {0} cannot be read: {1}")]
    Key(PathBuf, String),
    #[error("signing a token failed: {0}")]
    Sign(String),
}

/// The local authority's files in a data directory.
#[derive(Debug, Clone)]
pub struct LocalAuthority {
    pub dir: PathBuf,
}

impl LocalAuthority {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("auth"),
        }
    }

    pub fn private_key_path(&self) -> PathBuf {
        self.dir.join("signing-key.pem")
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.dir.join("signing-key.pub.pem")
    }

    /// The administrator token the client picks up.
    pub fn admin_token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    pub fn rules() -> TokenRules {
        TokenRules {
            issuer: LOCAL_ISSUER.into(),
            audience: AUDIENCE.into(),
            leeway_secs: 30,
        }
    }

    /// Creates the key pair and the administrator token if missing; `true` when it did.
    pub fn ensure(&self) -> Result<bool, LocalError> {
        if self.private_key_path().exists() && self.admin_token_path().exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| LocalError::Io {
            path: self.dir.clone(),
            source,
        })?;
        if !self.private_key_path().exists() {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let private = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| LocalError::Key(self.private_key_path(), e.to_string()))?;
            let public = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| LocalError::Key(self.public_key_path(), e.to_string()))?;
            write_private(&self.private_key_path(), private.as_bytes())?;
            write_private(&self.public_key_path(), public.as_bytes())?;
        }
        let token = self.issue("admin", Role::Admin, &[], chrono::Duration::days(365))?;
        write_private(&self.admin_token_path(), format!("{token}\n").as_bytes())?;
        Ok(true)
    }

    /// A token for `subject` as `role` for `units`, valid for `ttl`.
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        units: &[String],
        ttl: chrono::Duration,
    ) -> Result<String, LocalError> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&Claims {
            sub: subject.to_owned(),
            role: role.as_str().to_owned(),
            units: units.to_vec(),
            iss: LOCAL_ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + ttl.num_seconds(),
            iat: now,
        })
    }

    /// Signs `claims` as they are (tests craft expired or foreign-audience tokens with it).
    pub fn sign(&self, claims: &Claims) -> Result<String, LocalError> {
        let path = self.private_key_path();
        let pem = std::fs::read_to_string(&path).map_err(|source| LocalError::Io {
            path: path.clone(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| LocalError::Key(path.clone(), e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| LocalError::Key(path.clone(), e.to_string()))?;
        encode(
            &Header::new(Algorithm::EdDSA),
            claims,
            &EncodingKey::from_ed_der(der.as_bytes()),
        )
        .map_err(|e| LocalError::Sign(e.to_string()))
    }
}

/// Writes `bytes` to `path`, readable by the owner only (0600), replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    let io = |source| LocalError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}
