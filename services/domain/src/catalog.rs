//! The procedure catalogue: for each national procedure code, its name, sector and maximum
//! processing time (per channel where they differ), its supplement rule and whether it bears a
//! fee. Due dates are computed from it at acceptance, never from what a client sends.
//!
//! The catalogue is TOML data (`data/procedures.toml` ships a sample), parsed here without I/O;
//! the binary reads the operator's file. Its `version` is stored on every dossier.

use std::collections::HashMap;

use serde::Deserialize;

use crate::due_date::{CalendarDayRule, ProcessingTime, SupplementRule};
use crate::ids::{IdError, ProcedureCode};

/// The channel a time applies to; online times are sometimes shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Counter,
    Online,
    Postal,
}

/// One procedure of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Procedure {
    pub code: ProcedureCode,
    pub name: String,
    /// Sector code (MaLinhVuc).
    pub sector: String,
    /// Maximum processing time at the counter and by post; `None` when the procedure has no
    /// due date.
    pub time: Option<ProcessingTime>,
    /// Maximum processing time for online submissions, where it differs.
    pub online_time: Option<ProcessingTime>,
    /// For a procedure with no due date: the legal maximum its working time is judged against.
    pub legal_max: Option<ProcessingTime>,
    pub supplement_rule: SupplementRule,
    pub calendar_days: CalendarDayRule,
    pub fee_bearing: bool,
}

impl Procedure {
    /// The processing time that applies to a dossier of this channel.
    pub fn time_for(&self, channel: ChannelKind) -> Option<ProcessingTime> {
        match channel {
            ChannelKind::Online => self.online_time.or(self.time),
            ChannelKind::Counter | ChannelKind::Postal => self.time,
        }
    }
}

/// The whole catalogue, indexed by procedure code.
#[derive(Debug, Clone)]
pub struct ProcedureCatalogue {
    version: String,
    procedures: HashMap<String, Procedure>,
}

/// Why a catalogue file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("procedure catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("procedure catalogue entry {index} ('{code}'): code {source}")]
    Code {
        index: usize,
        code: String,
        source: IdError,
    },
    #[error("procedure catalogue entry {index} ('{code}'): {field}: {message}")]
    Field {
        index: usize,
        code: String,
        field: &'static str,
        message: String,
    },
    #[error("procedure catalogue lists '{0}' twice")]
    Duplicate(String),
    #[error("procedure catalogue has an empty version")]
    NoVersion,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    version: String,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "procedure")]
    procedures: Vec<ProcedureEntry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    supplement_rule: Option<String>,
    calendar_days_skip_holidays: Option<bool>,
    calendar_days_roll_forward: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcedureEntry {
    code: String,
    name: String,
    sector: String,
    /// "3 working_days", "4 working_hours", "15 calendar_days", "1 months" or "none".
    time: String,
    online_time: Option<String>,
    legal_max: Option<String>,
    supplement_rule: Option<String>,
    calendar_days_skip_holidays: Option<bool>,
    calendar_days_roll_forward: Option<bool>,
    #[serde(default)]
    fee_bearing: bool,
}

/// The sample catalogue shipped with motcua, for demos and tests.
pub const SAMPLE_CATALOGUE: &str = include_str!("../data/procedures.toml");

impl ProcedureCatalogue {
    /// The sample catalogue shipped with motcua.
    pub fn sample() -> Self {
        // Cannot fail: the shipped file is parsed by this crate's tests.
        Self::from_toml(SAMPLE_CATALOGUE).expect("the shipped sample catalogue is valid")
    }

    /// Parses a catalogue file's content.
    pub fn from_toml(text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(text)?;
        if file.version.trim().is_empty() {
            return Err(CatalogueError::NoVersion);
        }
        let mut procedures = HashMap::with_capacity(file.procedures.len());
        for (index, entry) in file.procedures.into_iter().enumerate() {
            let procedure = entry.into_procedure(index, &file.defaults)?;
            let key = procedure.code.as_str().to_owned();
            if procedures.insert(key.clone(), procedure).is_some() {
                return Err(CatalogueError::Duplicate(key));
            }
        }
        Ok(Self {
            version: file.version,
            procedures,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn get(&self, code: &ProcedureCode) -> Option<&Procedure> {
        self.procedures.get(code.as_str())
    }

    pub fn len(&self) -> usize {
        self.procedures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procedures.is_empty()
    }

    /// Every procedure, in code order (for listings).
    pub fn procedures(&self) -> Vec<&Procedure> {
        let mut all: Vec<&Procedure> = self.procedures.values().collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }
}

impl ProcedureEntry {
    fn into_procedure(
        self,
        index: usize,
        defaults: &Defaults,
    ) -> Result<Procedure, CatalogueError> {
        let code = ProcedureCode::parse(&self.code).map_err(|source| CatalogueError::Code {
            index,
            code: self.code.clone(),
            source,
        })?;
        let field = |field: &'static str, message: String| CatalogueError::Field {
            index,
            code: self.code.clone(),
            field,
            message,
        };
        let time_of = |field: &'static str, text: &str| -> Result<Option<ProcessingTime>, _> {
            if text.trim() == "none" {
                return Ok(None);
            }
            text.parse::<ProcessingTime>()
                .map(Some)
                .map_err(|e| CatalogueError::Field {
                    index,
                    code: self.code.clone(),
                    field,
                    message: e.to_string(),
                })
        };
        if self.name.trim().is_empty() {
            return Err(field("name", "must not be empty".into()));
        }
        let time = time_of("time", &self.time)?;
        let online_time = match &self.online_time {
            Some(text) => time_of("online_time", text)?,
            None => None,
        };
        let legal_max = match &self.legal_max {
            Some(text) => time_of("legal_max", text)?,
            None => None,
        };
        let rule_text = self
            .supplement_rule
            .as_deref()
            .or(defaults.supplement_rule.as_deref())
            .unwrap_or("pause");
        let supplement_rule = match rule_text {
            "pause" => SupplementRule::Pause,
            "restart" => SupplementRule::Restart,
            other => {
                return Err(field(
                    "supplement_rule",
                    format!("'{other}' is neither 'pause' nor 'restart'"),
                ));
            }
        };
        let calendar_days = CalendarDayRule {
            skip_holidays: self
                .calendar_days_skip_holidays
                .or(defaults.calendar_days_skip_holidays)
                .unwrap_or(false),
            roll_forward_to_working_day: self
                .calendar_days_roll_forward
                .or(defaults.calendar_days_roll_forward)
                .unwrap_or(true),
        };
        Ok(Procedure {
            code,
            name: self.name,
            sector: self.sector,
            time,
            online_time,
            legal_max,
            supplement_rule,
            calendar_days,
            fee_bearing: self.fee_bearing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_catalogue_parses() {
        let catalogue = ProcedureCatalogue::sample();
        assert!(catalogue.len() >= 10);
        let code = ProcedureCode::parse("2.000908").expect("valid code");
        let criminal_record = catalogue.get(&code).expect("listed");
        assert!(criminal_record.time.is_some());
    }

    #[test]
    fn online_time_overrides_only_online() {
        let catalogue = ProcedureCatalogue::from_toml(
            r#"
            version = "t1"
            [[procedure]]
            code = "1.000001"
            name = "A"
            sector = "S"
            time = "5 working_days"
            online_time = "3 working_days"
            "#,
        )
        .expect("valid");
        let p = catalogue
            .get(&ProcedureCode::parse("1.000001").expect("code"))
            .expect("listed");
        assert_ne!(
            p.time_for(ChannelKind::Online),
            p.time_for(ChannelKind::Counter)
        );
        assert_eq!(p.time_for(ChannelKind::Postal), p.time);
    }

    #[test]
    fn bad_entries_name_the_field() {
        let err = ProcedureCatalogue::from_toml(
            r#"
            version = "t1"
            [[procedure]]
            code = "1.000001"
            name = "A"
            sector = "S"
            time = "five days"
            "#,
        )
        .expect_err("garbage time");
        assert!(err.to_string().contains("time"), "{err}");
        let err = ProcedureCatalogue::from_toml(
            r#"
            version = "t1"
            [[procedure]]
            code = "1.1"
            name = "A"
            sector = "S"
            time = "none"
            "#,
        )
        .expect_err("bad code");
        assert!(err.to_string().contains("1.1"), "{err}");
    }
}
