//! Fault settings: what the simulator does wrong on purpose, and how often.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The standing fault settings. Rates are probabilities in `[0, 1]`, rolled independently for
/// each request to a portal service (never for `/admin`).
///
/// Order of application for one request: `latency_ms` first; then an outage (see
/// [`crate::Simulator::start_outage`]) answers HTTP 503; then `server_error_rate` (HTTP 503) and
/// `error_rate` (`"500"`), both before the request is processed, so nothing is stored; then the
/// request is processed (`reject` answers `"-3"` for the dossiers it lists); then `drop_rate`,
/// `timeout_rate` and `malformed_rate` lose or garble the reply of a request whose effect has
/// been applied, as a reply lost on the way back would be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answer `{"error_code": "500", "message": "Lỗi hệ thống"}` (HTTP 200), unprocessed.
    pub error_rate: f64,
    /// Delay every portal request by this many milliseconds.
    pub latency_ms: u64,
    /// Process, then hold the request without answering for the configured hold (30 s by
    /// default) and close the connection.
    pub timeout_rate: f64,
    /// Answer HTTP 503, unprocessed.
    pub server_error_rate: f64,
    /// Process, then close the connection without writing a byte of reply.
    pub drop_rate: f64,
    /// Process, then answer HTTP 200 with a body that is not JSON.
    pub malformed_rate: f64,
    /// Dossiers (`MaHoSo`) whose syncs (`DongBoHoSoMC`, `CapNhatTienDoHoSoMC`) answer `"-3"`.
    pub reject: BTreeSet<String>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether nothing is set.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// The same with every rate clamped into `[0, 1]` (NaN counts as 0).
    pub(crate) fn clamped(mut self) -> Self {
        for rate in [
            &mut self.error_rate,
            &mut self.timeout_rate,
            &mut self.server_error_rate,
            &mut self.drop_rate,
            &mut self.malformed_rate,
        ] {
            *rate = if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            };
        }
        self
    }
}

/// A change to the faults, as `POST /admin/faults` takes it: the keys given change, the others
/// keep their values. `clear` first resets every standing fault; `expire_sessions` and
/// `outage_secs` are actions taken now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsUpdate {
    /// Start from no faults (the outage included) before applying the rest.
    pub clear: bool,
    pub error_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub timeout_rate: Option<f64>,
    pub server_error_rate: Option<f64>,
    pub drop_rate: Option<f64>,
    pub malformed_rate: Option<f64>,
    /// Replaces the reject list.
    pub reject: Option<Vec<String>>,
    /// Invalidate every session token now.
    pub expire_sessions: bool,
    /// Answer every portal request with HTTP 503 for this many seconds from now; 0 ends an
    /// outage.
    pub outage_secs: Option<f64>,
}

/// A fault setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    #[error("{field} must be a probability between 0 and 1, got {value}")]
    Rate { field: &'static str, value: f64 },
    #[error("outage_secs must be a finite number of seconds, at least 0, got {0}")]
    Outage(f64),
}

impl FaultsUpdate {
    /// Checks every value before anything is applied.
    pub fn validate(&self) -> Result<(), FaultsError> {
        let rates = [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("server_error_rate", self.server_error_rate),
            ("drop_rate", self.drop_rate),
            ("malformed_rate", self.malformed_rate),
        ];
        for (field, value) in rates {
            if let Some(value) = value
                && !(0.0..=1.0).contains(&value)
            {
                return Err(FaultsError::Rate { field, value });
            }
        }
        if let Some(secs) = self.outage_secs
            && std::time::Duration::try_from_secs_f64(secs).is_err()
        {
            return Err(FaultsError::Outage(secs));
        }
        Ok(())
    }

    /// The standing faults after this update of `current` (the actions aside).
    pub(crate) fn merged(&self, current: &Faults) -> Faults {
        let mut f = if self.clear {
            Faults::none()
        } else {
            current.clone()
        };
        let set = |slot: &mut f64, value: Option<f64>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut f.error_rate, self.error_rate);
        set(&mut f.timeout_rate, self.timeout_rate);
        set(&mut f.server_error_rate, self.server_error_rate);
        set(&mut f.drop_rate, self.drop_rate);
        set(&mut f.malformed_rate, self.malformed_rate);
        if let Some(latency) = self.latency_ms {
            f.latency_ms = latency;
        }
        if let Some(reject) = &self.reject {
            f.reject = reject.iter().cloned().collect();
        }
        f.clamped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_the_keys_it_gives() {
        let current = Faults {
            error_rate: 0.5,
            latency_ms: 10,
            ..Faults::none()
        };
        let update: FaultsUpdate =
            serde_json::from_str(r#"{"drop_rate": 0.25, "reject": ["A"]}"#).expect("an update");
        let merged = update.merged(&current);
        assert_eq!(merged.error_rate, 0.5);
        assert_eq!(merged.latency_ms, 10);
        assert_eq!(merged.drop_rate, 0.25);
        assert!(merged.reject.contains("A"));
        let clear: FaultsUpdate = serde_json::from_str(r#"{"clear": true}"#).expect("an update");
        assert!(clear.merged(&merged).is_none());
    }

    #[test]
    fn out_of_range_values_and_unknown_keys_are_refused() {
        let bad: FaultsUpdate = serde_json::from_str(r#"{"error_rate": 1.5}"#).expect("parses");
        assert!(matches!(
            bad.validate(),
            Err(FaultsError::Rate {
                field: "error_rate",
                ..
            })
        ));
        for secs in ["-1", "1e300"] {
            let bad: FaultsUpdate =
                serde_json::from_str(&format!(r#"{{"outage_secs": {secs}}}"#)).expect("parses");
            assert!(bad.validate().is_err(), "{secs}");
        }
        assert!(serde_json::from_str::<FaultsUpdate>(r#"{"eror_rate": 0.1}"#).is_err());
    }

    #[test]
    fn rates_are_clamped() {
        let f = Faults {
            error_rate: 2.0,
            drop_rate: f64::NAN,
            timeout_rate: -1.0,
            ..Faults::none()
        }
        .clamped();
        assert_eq!((f.error_rate, f.drop_rate, f.timeout_rate), (1.0, 0.0, 0.0));
    }
}
