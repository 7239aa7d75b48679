//! The HTTP client of the portal: a session login renewed when it expires, and every call
//! classified into what the sender does next.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::wire::{Reply, read_reply};

/// A password that cannot be printed by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The portal's base URL, e.g. `https://dichvucong.gov.vn/api/motcua` (HTTPS with
    /// rustls; the simulator on loopback speaks plain HTTP).
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    /// Per request, connection included.
    pub timeout: Duration,
    /// Renew the session this long before the portal says it expires.
    pub renew_margin: Duration,
}

/// What a call came to, from the sender's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Reply),
    /// Could not get an answer (connection, timeout, 5xx, unreadable reply, login failed):
    /// the portal may be down; count it for the circuit breaker and retry later.
    Unavailable(String),
}

#[derive(Debug)]
struct Session {
    token: String,
    renew_at: Instant,
}

/// The portal client; cheap to share (one connection pool, one session).
#[derive(Debug)]
pub struct PortalClient {
    http: reqwest::Client,
    config: ClientConfig,
    session: Mutex<Option<Session>>,
}

impl PortalClient {
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(256)
            .use_rustls_tls()
            .build()?;
        Ok(Self {
            http,
            config,
            session: Mutex::new(None),
        })
    }

    fn url(&self, service: &str) -> String {
        format!("{}/{service}", self.config.base_url.trim_end_matches('/'))
    }

    /// POSTs `body` and reads the reply; `Err` when no reply could be read.
    async fn post(&self, service: &str, body: &Value) -> Result<Reply, String> {
        let response = self
            .http
            .post(self.url(service))
            .json(body)
            .send()
            .await
            .map_err(|error| format!("{service}: {}", describe(&error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("{service}: reading the reply: {}", describe(&error)))?;
        if !status.is_success() {
            return Err(format!("{service}: HTTP {status}"));
        }
        read_reply(&bytes).map_err(|error| format!("{service}: {error}"))
    }

    /// The current session token, logging in when there is none or it is about to expire.
    async fn token(&self) -> Result<String, Outcome> {
        let mut session = self.session.lock().await;
        if let Some(current) = session.as_ref()
            && Instant::now() < current.renew_at
        {
            return Ok(current.token.clone());
        }
        let body = json!({
            "username": self.config.username,
            "password": self.config.password.expose(),
        });
        match self.post("login", &body).await {
            Ok(Reply::Ok(value)) => {
                let token = value
                    .get("session")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Outcome::Unavailable("login: the reply has no session".into()))?
                    .to_owned();
                let lifetime = value
                    .get("expires_in")
                    .and_then(Value::as_u64)
                    .map_or(Duration::from_secs(600), Duration::from_secs);
                let renew_at = Instant::now() + lifetime.saturating_sub(self.config.renew_margin);
                tracing::info!(
                    lifetime_secs = lifetime.as_secs(),
                    "logged in to the national portal"
                );
                *session = Some(Session {
                    token: token.clone(),
                    renew_at,
                });
                Ok(token)
            }
            // Wrong credentials are an operator's problem, not the dossier's: the breaker
            // opens and the error is shown; the password never appears.
            Ok(Reply::Rejected { code, message }) => Err(Outcome::Unavailable(format!(
                "login refused ({code}: {message}): check the portal username and password"
            ))),
            Ok(other) => Err(Outcome::Unavailable(format!("login failed: {other:?}"))),
            Err(error) => Err(Outcome::Unavailable(format!("login: {error}"))),
        }
    }

    async fn forget_session(&self, token: &str) {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.token == token) {
            *session = None;
        }
    }

    /// Calls `service` with `body` (its `session` field is filled in), logging in again once
    /// if the portal says the session expired.
    pub async fn call(&self, service: &str, mut body: Value) -> Outcome {
        for attempt in 0..2 {
            let token = match self.token().await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            if let Value::Object(map) = &mut body {
                map.insert("session".into(), Value::String(token.clone()));
                map.insert("service".into(), Value::String(service.to_owned()));
            }
            match self.post(service, &body).await {
                Ok(Reply::SessionExpired(message)) => {
                    self.forget_session(&token).await;
                    if attempt == 1 {
                        return Outcome::Unavailable(format!(
                            "{service}: session refused right after login: {message}"
                        ));
                    }
                    tracing::info!("national portal session expired; logging in again");
                }
                Ok(reply) => return Outcome::Done(reply),
                Err(error) => return Outcome::Unavailable(error),
            }
        }
        Outcome::Unavailable(format!("{service}: no session"))
    }
}

/// A reqwest error without the URL's query (none here) and with its cause.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "broken reply"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
