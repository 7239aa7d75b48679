//! The simulated portal's state and the answers of its services, without HTTP.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::faults::{Faults, FaultsError, FaultsUpdate};
use crate::validate;

type Object = Map<String, Value>;

/// The portal's messages, as the contract gives them.
pub mod messages {
    pub const OK: &str = "OK";
    pub const BAD_CREDENTIALS: &str = "Sai tên đăng nhập hoặc mật khẩu";
    pub const BAD_SESSION: &str = "Phiên làm việc không hợp lệ hoặc đã hết hạn";
    pub const SYSTEM_ERROR: &str = "Lỗi hệ thống";
}

/// Outcome keys of [`Stats::requests`] that are not an `error_code`.
pub mod outcome {
    /// HTTP 503: `server_error_rate` or an outage.
    pub const HTTP_503: &str = "http_503";
    /// HTTP 400: the body is not a JSON object.
    pub const HTTP_400: &str = "http_400";
    /// HTTP 415: the `Content-Type` is not `application/json`.
    pub const HTTP_415: &str = "http_415";
    /// `drop_rate`: the connection was closed without a reply.
    pub const DROPPED: &str = "dropped";
    /// `timeout_rate`: the request was held without an answer.
    pub const TIMEOUT: &str = "timeout";
    /// `malformed_rate`: the reply was not JSON.
    pub const MALFORMED: &str = "malformed";
}

/// A portal service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Login,
    DongBoHoSoMC,
    CapNhatTienDoHoSoMC,
    LayThongTinHoSo,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Login,
        Service::DongBoHoSoMC,
        Service::CapNhatTienDoHoSoMC,
        Service::LayThongTinHoSo,
    ];

    /// The name under which [`Stats`] counts it, and the path after `/`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Login => "login",
            Service::DongBoHoSoMC => "DongBoHoSoMC",
            Service::CapNhatTienDoHoSoMC => "CapNhatTienDoHoSoMC",
            Service::LayThongTinHoSo => "LayThongTinHoSo",
        }
    }
}

/// How the simulator is set up.
#[derive(Clone)]
pub struct SimConfig {
    pub username: String,
    /// Never logged, nor shown by `Debug`.
    pub password: String,
    /// How long a session token lives (the login reply's `expires_in`, in whole seconds
    /// rounded up).
    pub session_ttl: Duration,
    /// How long `timeout_rate` holds a request before closing the connection unanswered.
    pub timeout_hold: Duration,
    /// Seeds the fault rolls and session tokens, for a reproducible run; `None` seeds from the
    /// OS.
    pub seed: Option<u64>,
}

impl SimConfig {
    /// Sessions of an hour, timeouts held 30 s, faults seeded from the OS.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            session_ttl: Duration::from_secs(3600),
            timeout_hold: Duration::from_secs(30),
            seed: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("session_ttl", &self.session_ttl)
            .field("timeout_hold", &self.timeout_hold)
            .field("seed", &self.seed)
            .finish()
    }
}

/// What the simulator has seen since it started or was reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests per service ([`Service::name`]) and outcome: the reply's `error_code`, or one of
    /// [`outcome`] when a fault or a bad request decided the reply.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Creates (`isUpdating: false`) refused because the dossier already existed.
    pub create_conflicts: u64,
    /// Progress records acknowledged but not stored again (their `(MaHoSo, SoThuTu)` was known).
    pub duplicate_progress: u64,
    /// Progress records stored.
    pub progress_accepted: u64,
}

impl Stats {
    /// Requests to `service` (a [`Service::name`]) that ended in `outcome`.
    pub fn count(&self, service: &str, outcome: &str) -> u64 {
        self.requests
            .get(service)
            .and_then(|by| by.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Requests to `service`, whatever their outcome.
    pub fn total(&self, service: &str) -> u64 {
        self.requests
            .get(service)
            .map(|by| by.values().sum())
            .unwrap_or(0)
    }
}

/// What happens to a request before it is processed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Gate {
    /// HTTP 503 with the outage's remaining time.
    Outage(Duration),
    /// HTTP 503.
    ServerError,
    /// `"500"`.
    SystemError,
    /// Process it, then maybe lose the reply.
    Proceed(Option<LostReply>),
}

/// How the reply of a processed request is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LostReply {
    Drop,
    Timeout,
    Malformed,
}

struct State {
    dossiers: BTreeMap<String, Value>,
    /// Per dossier, by `SoThuTu`.
    progress: BTreeMap<String, BTreeMap<u64, Value>>,
    /// Token → expiry.
    sessions: HashMap<String, Instant>,
    faults: Faults,
    outage_until: Option<Instant>,
    stats: Stats,
    rng: StdRng,
}

struct Shared {
    config: SimConfig,
    state: Mutex<State>,
}

/// The simulated portal: cheap to clone, every clone the same portal.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

fn reply(code: &str, message: impl Into<String>) -> Object {
    let mut o = Map::new();
    o.insert("error_code".into(), json!(code));
    o.insert("message".into(), json!(message.into()));
    o
}

fn rejected(message: impl Into<String>) -> Object {
    reply("-3", message)
}

/// The reply's `error_code`.
pub(crate) fn error_code(reply: &Object) -> &str {
    reply
        .get("error_code")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    dossiers: BTreeMap::new(),
                    progress: BTreeMap::new(),
                    sessions: HashMap::new(),
                    faults: Faults::none(),
                    outage_until: None,
                    stats: Stats::default(),
                    rng,
                }),
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The dossier as stored (with its `PhienBan`, if it came with one).
    pub fn dossier(&self, ma_ho_so: &str) -> Option<Value> {
        self.lock().dossiers.get(ma_ho_so).cloned()
    }

    /// The dossier's progress records in `SoThuTu` order.
    pub fn progress(&self, ma_ho_so: &str) -> Vec<Value> {
        self.lock()
            .progress
            .get(ma_ho_so)
            .map(|records| records.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every dossier, by `MaHoSo`.
    pub fn dossiers(&self) -> BTreeMap<String, Value> {
        self.lock().dossiers.clone()
    }

    pub fn dossier_count(&self) -> usize {
        self.lock().dossiers.len()
    }

    /// `GET /admin/dossiers`: `{"dossiers": {MaHoSo: dossier}, "progress": {MaHoSo: [records]}}`.
    pub fn snapshot(&self) -> Value {
        let state = self.lock();
        let progress: Object = state
            .progress
            .iter()
            .map(|(ma, records)| {
                (
                    ma.clone(),
                    Value::Array(records.values().cloned().collect()),
                )
            })
            .collect();
        let dossiers: Object = state
            .dossiers
            .iter()
            .map(|(ma, d)| (ma.clone(), d.clone()))
            .collect();
        json!({"dossiers": dossiers, "progress": progress})
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The standing faults.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the standing faults (rates clamped into `[0, 1]`); an outage goes on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults.clamped();
    }

    /// `POST /admin/faults`: applies `update` (see [`FaultsUpdate`]), or changes nothing if a
    /// value is out of range.
    pub fn update_faults(&self, update: &FaultsUpdate) -> Result<(), FaultsError> {
        update.validate()?;
        let mut state = self.lock();
        state.faults = update.merged(&state.faults);
        if update.clear {
            state.outage_until = None;
        }
        if update.expire_sessions {
            state.sessions.clear();
        }
        if let Some(secs) = update.outage_secs {
            state.outage_until =
                outage_until(Duration::try_from_secs_f64(secs).unwrap_or_default());
        }
        Ok(())
    }

    /// Answers every portal request with HTTP 503 for `duration` from now (zero ends an outage).
    pub fn start_outage(&self, duration: Duration) {
        self.lock().outage_until = outage_until(duration);
    }

    /// What is left of the outage, if one is on.
    pub fn outage_remaining(&self) -> Option<Duration> {
        let until = self.lock().outage_until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// Invalidates every session token now.
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Sessions that have not expired.
    pub fn session_count(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .sessions
            .values()
            .filter(|&&until| until > now)
            .count()
    }

    /// Back to a freshly started simulator: no dossiers, progress, sessions, faults, outage or
    /// stats.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.dossiers.clear();
        state.progress.clear();
        state.sessions.clear();
        state.faults = Faults::none();
        state.outage_until = None;
        state.stats = Stats::default();
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.lock().faults.latency_ms)
    }

    /// Rolls the faults for one request.
    pub(crate) fn gate(&self) -> Gate {
        let mut state = self.lock();
        if let Some(until) = state.outage_until {
            match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => return Gate::Outage(left),
                _ => state.outage_until = None,
            }
        }
        let f = &state.faults;
        let (server, system) = (f.server_error_rate, f.error_rate);
        let (drop, timeout, malformed) = (f.drop_rate, f.timeout_rate, f.malformed_rate);
        let rng = &mut state.rng;
        let mut roll = |p: f64| p > 0.0 && rng.random_bool(p);
        if roll(server) {
            return Gate::ServerError;
        }
        if roll(system) {
            return Gate::SystemError;
        }
        let lost = if roll(drop) {
            Some(LostReply::Drop)
        } else if roll(timeout) {
            Some(LostReply::Timeout)
        } else if roll(malformed) {
            Some(LostReply::Malformed)
        } else {
            None
        };
        Gate::Proceed(lost)
    }

    pub(crate) fn record(&self, service: Service, outcome: &str) {
        *self
            .lock()
            .stats
            .requests
            .entry(service.name().to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_insert(0) += 1;
    }

    /// `"500"`.
    pub(crate) fn system_error() -> Object {
        reply("500", messages::SYSTEM_ERROR)
    }

    /// Answers one request (a JSON object) to `service`, faults aside.
    pub(crate) fn answer(&self, service: Service, request: &Object) -> Object {
        let config = &self.shared.config;
        let mut state = self.lock();
        let now = Instant::now();
        if service == Service::Login {
            return state.login(config, request, now);
        }
        if let Err(reply) = state.check_session(request, now) {
            return reply;
        }
        if let Err(reply) = check_service(request, service) {
            return reply;
        }
        match service {
            Service::Login => unreachable!("answered above"),
            Service::DongBoHoSoMC => state.sync_dossier(request),
            Service::CapNhatTienDoHoSoMC => state.push_progress(request),
            Service::LayThongTinHoSo => state.lookup(request),
        }
    }
}

fn outage_until(duration: Duration) -> Option<Instant> {
    if duration.is_zero() {
        None
    } else {
        Instant::now().checked_add(duration)
    }
}

fn check_service(request: &Object, service: Service) -> Result<(), Object> {
    match request.get("service") {
        Some(Value::String(s)) if s == service.name() => Ok(()),
        Some(other) => Err(rejected(format!(
            "Trường service không hợp lệ: {other} (dịch vụ này là \"{}\")",
            service.name()
        ))),
        None => Err(rejected(format!(
            "Thiếu trường bắt buộc service (\"{}\")",
            service.name()
        ))),
    }
}

/// `data`, an array.
fn data(request: &Object) -> Result<&[Value], Object> {
    match request.get("data") {
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(rejected(format!("Trường data phải là mảng: {other}"))),
        None => Err(rejected("Thiếu trường bắt buộc data")),
    }
}

impl State {
    fn login(&mut self, config: &SimConfig, request: &Object, now: Instant) -> Object {
        let given = |field: &str| request.get(field).and_then(Value::as_str);
        if given("username") != Some(config.username.as_str())
            || given("password") != Some(config.password.as_str())
        {
            return reply("401", messages::BAD_CREDENTIALS);
        }
        self.sessions.retain(|_, until| *until > now);
        let token = format!("{:032x}", self.rng.random::<u128>());
        let until = now.checked_add(config.session_ttl).unwrap_or(now);
        self.sessions.insert(token.clone(), until);
        let ttl = config.session_ttl;
        let expires_in = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut o = reply("0", messages::OK);
        o.insert("session".into(), json!(token));
        o.insert("expires_in".into(), json!(expires_in));
        o
    }

    fn check_session(&mut self, request: &Object, now: Instant) -> Result<(), Object> {
        let bad = || reply("-2", messages::BAD_SESSION);
        let Some(token) = request.get("session").and_then(Value::as_str) else {
            return Err(bad());
        };
        match self.sessions.get(token) {
            Some(&until) if until > now => Ok(()),
            Some(_) => {
                self.sessions.remove(token);
                Err(bad())
            }
            None => Err(bad()),
        }
    }

    fn sync_dossier(&mut self, request: &Object) -> Object {
        let updating = match request.get("isUpdating") {
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return rejected(format!(
                    "Trường isUpdating phải là true hoặc false: {other}"
                ));
            }
            None => return rejected("Thiếu trường bắt buộc isUpdating"),
        };
        let items = match data(request) {
            Ok(items) => items,
            Err(reply) => return reply,
        };
        let [dossier] = items else {
            return rejected(format!(
                "Trường data phải chứa đúng một hồ sơ (có {})",
                items.len()
            ));
        };
        let ma = match validate::dossier(dossier) {
            Ok(ma) => ma.to_owned(),
            Err(message) => return rejected(message),
        };
        if self.faults.reject.contains(&ma) {
            return rejected(format!("Hồ sơ {ma} bị từ chối (giả lập)"));
        }
        let incoming = dossier.get("PhienBan").and_then(Value::as_u64);
        match (updating, self.dossiers.get(&ma)) {
            (false, Some(_)) => {
                self.stats.create_conflicts += 1;
                return reply("-1", format!("Hồ sơ {ma} đã tồn tại"));
            }
            (true, None) => return reply("-1", format!("Hồ sơ {ma} không tồn tại")),
            (true, Some(stored)) => {
                if let (Some(new), Some(old)) =
                    (incoming, stored.get("PhienBan").and_then(Value::as_u64))
                    && new < old
                {
                    return reply(
                        "-4",
                        format!("Hồ sơ {ma}: phiên bản cũ (PhienBan {new} < {old})"),
                    );
                }
            }
            (false, None) => {}
        }
        self.dossiers.insert(ma, dossier.clone());
        reply("0", messages::OK)
    }

    fn push_progress(&mut self, request: &Object) -> Object {
        let items = match data(request) {
            Ok(items) => items,
            Err(reply) => return reply,
        };
        if items.is_empty() {
            return rejected("Trường data không được rỗng");
        }
        let mut keyed = Vec::with_capacity(items.len());
        for (i, record) in items.iter().enumerate() {
            match validate::progress(i, record) {
                Ok((ma, seq)) => keyed.push((ma, seq, record)),
                Err(message) => return rejected(message),
            }
        }
        if let Some((ma, ..)) = keyed
            .iter()
            .find(|(ma, ..)| self.faults.reject.contains(*ma))
        {
            return rejected(format!("Hồ sơ {ma} bị từ chối (giả lập)"));
        }
        if let Some((ma, ..)) = keyed
            .iter()
            .find(|(ma, ..)| !self.dossiers.contains_key(*ma))
        {
            return reply(
                "-1",
                format!("Hồ sơ {ma} không tồn tại (đồng bộ hồ sơ trước)"),
            );
        }
        let mut accepted = 0u64;
        for (ma, seq, record) in keyed {
            let records = self.progress.entry(ma.to_owned()).or_default();
            match records.entry(seq) {
                Entry::Vacant(slot) => {
                    slot.insert(record.clone());
                    accepted += 1;
                }
                Entry::Occupied(_) => self.stats.duplicate_progress += 1,
            }
        }
        self.stats.progress_accepted += accepted;
        let mut o = reply("0", messages::OK);
        o.insert("accepted".into(), json!(accepted));
        o
    }

    fn lookup(&self, request: &Object) -> Object {
        let ma = match validate::required_string(request, "", "MaHoSo") {
            Ok(ma) => ma,
            Err(message) => return rejected(message),
        };
        let Some(dossier) = self.dossiers.get(ma) else {
            return reply("-1", format!("Hồ sơ {ma} không tồn tại"));
        };
        let progress = self
            .progress
            .get(ma)
            .map(|records| records.values().cloned().collect())
            .unwrap_or_default();
        let mut o = reply("0", messages::OK);
        o.insert("data".into(), dossier.clone());
        o.insert("TienDo".into(), Value::Array(progress));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_login_reply_rounds_the_ttl_up_and_redacts_nothing_it_should_not() {
        let mut config = SimConfig::new("u", "secret");
        config.session_ttl = Duration::from_millis(1500);
        let sim = Simulator::new(config);
        let r = sim.answer(
            Service::Login,
            &object(json!({"username": "u", "password": "secret"})),
        );
        assert_eq!(error_code(&r), "0");
        assert_eq!(r["expires_in"], json!(2));
        assert!(!format!("{sim:?}").contains("secret"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = SimConfig::new("u", "p");
        assert_eq!(config.timeout_hold, Duration::from_secs(30));
        assert_eq!(config.session_ttl, Duration::from_secs(3600));
    }

    #[test]
    fn a_seeded_simulator_rolls_the_same_faults() {
        let rolls = |seed| {
            let mut config = SimConfig::new("u", "p");
            config.seed = Some(seed);
            let sim = Simulator::new(config);
            sim.set_faults(Faults {
                error_rate: 0.5,
                ..Faults::none()
            });
            (0..64).map(|_| sim.gate()).collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        assert!(rolls(7).contains(&Gate::SystemError));
        assert!(rolls(7).contains(&Gate::Proceed(None)));
    }
}
