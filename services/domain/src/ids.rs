//! Identifiers that can only exist well formed (docs/domain.md section 7). Validation happens once,
//! at the edge; once a value exists, it is known to be valid.

use std::fmt;

use chrono::NaiveDate;

/// Why an identifier was rejected. The message is meant for a counter developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {length} characters long; at most {max} are allowed")]
    TooLong { length: usize, max: usize },
    #[error("{0}")]
    Malformed(String),
}

const MAX_AGENCY_ID: usize = 64;
const MAX_PROCEDURE_CODE: usize = 64;

fn check_length(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let length = s.chars().count();
    if length > max {
        return Err(IdError::TooLong { length, max });
    }
    Ok(())
}

fn is_code_segment(segment: &str, max: usize) -> bool {
    !segment.is_empty()
        && segment.len() <= max
        && segment
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// An agency's electronic id, e.g. `000.00.01.H22` or `H44.100`: dot-separated segments of
/// upper-case letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId(String);

impl AgencyId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_length(s, MAX_AGENCY_ID)?;
        let segments: Vec<&str> = s.split('.').collect();
        if segments.len() > 8 || !segments.iter().all(|seg| is_code_segment(seg, 16)) {
            return Err(IdError::Malformed(format!(
                "'{s}' is not an agency id: expected dot-separated segments of upper-case \
                 letters and digits, like '000.00.01.H22' or 'H44.100'"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dossier code `{agency id}-{yyMMdd}-{NNNN}`: a sequence per agency per day, e.g.
/// `000.00.01.H22-240315-0042`. It is also the dossier's id everywhere in motcua.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DossierCode {
    code: String,
    agency: AgencyId,
    date: NaiveDate,
    number: u32,
}

/// The largest daily sequence number a code can carry (six digits).
pub const MAX_DAILY_NUMBER: u32 = 999_999;

impl DossierCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_length(s, MAX_AGENCY_ID + 16)?;
        let malformed = || {
            IdError::Malformed(format!(
                "'{s}' is not a dossier code: expected '{{agency id}}-{{yyMMdd}}-{{NNNN}}', \
                 like '000.00.01.H22-240315-0042'"
            ))
        };
        let mut parts = s.rsplitn(3, '-');
        let (Some(number), Some(date), Some(agency)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let agency = AgencyId::parse(agency).map_err(|_| malformed())?;
        if date.len() != 6 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let date = NaiveDate::parse_from_str(&format!("20{date}"), "%Y%m%d").map_err(|_| {
            IdError::Malformed(format!("'{s}': '{date}' is not a valid yyMMdd date"))
        })?;
        if !(4..=6).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let number: u32 = number.parse().map_err(|_| malformed())?;
        if number == 0 {
            return Err(IdError::Malformed(format!(
                "'{s}': sequence numbers start at 0001"
            )));
        }
        Ok(Self {
            code: s.to_owned(),
            agency,
            date,
            number,
        })
    }

    /// The code for the `number`-th dossier of `agency` on `date` (Vietnam date).
    pub fn new(agency: &AgencyId, date: NaiveDate, number: u32) -> Result<Self, IdError> {
        if number == 0 || number > MAX_DAILY_NUMBER {
            return Err(IdError::Malformed(format!(
                "daily sequence number {number} is outside 1..={MAX_DAILY_NUMBER}"
            )));
        }
        let code = format!("{}-{}-{:04}", agency, date.format("%y%m%d"), number);
        Ok(Self {
            code,
            agency: agency.clone(),
            date,
            number,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.code
    }

    pub fn agency(&self) -> &AgencyId {
        &self.agency
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }

    pub fn number(&self) -> u32 {
        self.number
    }
}

impl fmt::Display for DossierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

/// A national procedure code (MaTTHC), e.g. `1.000948.H38`, `2.000815` or
/// `3.000181.000.00.00.H22`: a digit, six digits, then optional segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcedureCode(String);

impl ProcedureCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_length(s, MAX_PROCEDURE_CODE)?;
        let mut segments = s.split('.');
        let level = segments.next().unwrap_or_default();
        let number = segments.next().unwrap_or_default();
        let ok = level.len() == 1
            && level.bytes().all(|b| b.is_ascii_digit())
            && number.len() == 6
            && number.bytes().all(|b| b.is_ascii_digit())
            && segments.all(|seg| is_code_segment(seg, 16));
        if !ok {
            return Err(IdError::Malformed(format!(
                "'{s}' is not a national procedure code: expected a digit, a dot, six digits and \
                 optional dot-separated segments, like '1.000948.H38' or '2.000815'"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProcedureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids_from_the_domain_parse() {
        for ok in ["000.00.01.H22", "H44.100", "H22"] {
            assert!(AgencyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "h44.100", "H44..100", "H44.100.", "H 44", "H44-100"] {
            assert!(AgencyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dossier_codes_round_trip() {
        let code = DossierCode::parse("000.00.01.H22-240315-0042").expect("valid");
        assert_eq!(code.agency().as_str(), "000.00.01.H22");
        assert_eq!(
            code.date(),
            NaiveDate::from_ymd_opt(2024, 3, 15).expect("date")
        );
        assert_eq!(code.number(), 42);
        let rebuilt = DossierCode::new(code.agency(), code.date(), 42).expect("valid");
        assert_eq!(rebuilt.as_str(), code.as_str());
        assert_eq!(
            DossierCode::new(code.agency(), code.date(), 12345)
                .expect("valid")
                .as_str(),
            "000.00.01.H22-240315-12345"
        );
    }

    #[test]
    fn malformed_dossier_codes_are_rejected() {
        for bad in [
            "000.00.01.H22-240231-0042",
            "000.00.01.H22-240315-42",
            "000.00.01.H22-240315-0000",
            "240315-0042",
            "x-240315-0042",
            "000.00.01.H22-2403150-0042",
        ] {
            assert!(DossierCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn procedure_codes_from_the_domain_parse() {
        for ok in ["1.000948.H38", "2.000815", "3.000181.000.00.00.H22"] {
            assert!(ProcedureCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1.948",
            "12.000948",
            "1.000948.",
            "1.000948.h38",
            "A.000948",
        ] {
            assert!(ProcedureCode::parse(bad).is_err(), "{bad}");
        }
    }
}
