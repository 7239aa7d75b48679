//! Counter terminals authenticated by TLS client certificate instead of a token: each
//! certificate the province issues is listed, by the SHA-256 fingerprint of its DER encoding,
//! with the principal it stands for (a TOML file, `--client-cert-principals`):
//!
//! ```toml
//! [[terminal]]
//! sha256 = "5f2a…"          # sha256sum of the certificate's DER (openssl x509 -outform der)
//! subject = "quay-03.h22"
//! role = "counter_officer"
//! units = ["000.00.01.H22"]
//! ```
//!
//! Fingerprints rather than names: a certificate that is not on the list is refused even if the
//! CA signed it, and revoking one is removing a line.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::principal::{Principal, Role};

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    terminal: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    sha256: String,
    subject: String,
    role: String,
    #[serde(default)]
    units: Vec<String>,
}

/// The listed certificates.
#[derive(Debug, Clone, Default)]
pub struct CertPrincipals {
    by_fingerprint: HashMap<String, Principal>,
}

impl CertPrincipals {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_fingerprint = HashMap::new();
        for (i, entry) in file.terminal.into_iter().enumerate() {
            let role = Role::parse(&entry.role)
                .ok_or_else(|| format!("terminal[{i}].role: unknown role {:?}", entry.role))?;
            let fingerprint = entry.sha256.to_ascii_lowercase().replace(':', "");
            if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "terminal[{i}].sha256: not a SHA-256 fingerprint in hex"
                ));
            }
            by_fingerprint.insert(
                fingerprint,
                Principal {
                    subject: entry.subject,
                    role,
                    units: entry.units,
                    via: "certificate",
                },
            );
        }
        Ok(Self { by_fingerprint })
    }

    /// The principal of the certificate `der`, if it is listed.
    pub fn lookup(&self, der: &[u8]) -> Option<Principal> {
        let fingerprint: String = Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.by_fingerprint.get(&fingerprint).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }
}

/// The hex SHA-256 fingerprint of a certificate's DER, as the list names it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
