//! Holiday tables: the days off and the worked weekend days, year by year, as data.
//!
//! docs/domain.md §3: holidays are "a per-year data table, never a formula alone". The Labour Code
//! fixes which holidays exist, but the government decides each year which exact days offices
//! close (Tết is set by the Vietnamese lunar calendar, days are swapped to make long breaks, and
//! a Saturday is worked in exchange). So the table is read from TOML files, one per year, that an
//! operator can replace when the government's notice is published; see `data/holidays/README.md`.
//!
//! The table's [`version`](HolidayTable::version) is derived from its content, so two tables
//! that could give different due dates never share a version, and a dossier that stores the
//! version can be recomputed against exactly the table it was accepted under.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use thiserror::Error;

/// The data files shipped with the crate, one per year, compiled in so the domain crate needs no
/// file access. Keep this list in step with `data/holidays/`.
const BUILTIN_FILES: &[(&str, &str)] = &[
    ("2024.toml", include_str!("../../data/holidays/2024.toml")),
    ("2025.toml", include_str!("../../data/holidays/2025.toml")),
    ("2026.toml", include_str!("../../data/holidays/2026.toml")),
    ("2027.toml", include_str!("../../data/holidays/2027.toml")),
];

/// Which list of a year file an entry came from; used in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryList {
    /// `[[days_off]]`: public holidays, compensatory days and swapped days the offices close.
    DaysOff,
    /// `[[worked_days]]`: weekend days the offices work in exchange for a swapped day.
    WorkedDays,
}

impl std::fmt::Display for EntryList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DaysOff => "days_off",
            Self::WorkedDays => "worked_days",
        })
    }
}

/// Why a holiday table was rejected. Every variant names the file (and entry) at fault, so an
/// operator replacing a year's table knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HolidayError {
    /// No file was given; a table must cover at least one year.
    #[error("no holiday files given")]
    NoFiles,
    /// The file is not valid TOML or does not have the expected fields.
    #[error("{file}: {message}")]
    Syntax {
        /// File name as given.
        file: String,
        /// The TOML parser's message.
        message: String,
    },
    /// An entry's `date` is not a date (`2024-02-08` or `"2024-02-08"`).
    #[error("{file}: {list}[{index}]: `{value}` is not a date (write 2024-02-08)")]
    BadDate {
        /// File name as given.
        file: String,
        /// Which list the entry is in.
        list: EntryList,
        /// Position of the entry in its list (0-based).
        index: usize,
        /// The value found.
        value: String,
    },
    /// A date belongs to another year than the file's `year`: almost always a typo.
    #[error("{file}: {list}[{index}]: {date} is not in year {year}")]
    WrongYear {
        /// File name as given.
        file: String,
        /// Which list the entry is in.
        list: EntryList,
        /// Position of the entry in its list (0-based).
        index: usize,
        /// The date found.
        date: NaiveDate,
        /// The file's year.
        year: i32,
    },
    /// The file is named after a year (`2025.toml`) but declares another `year`.
    #[error("{file}: declares year {year}, but the file name says otherwise")]
    FileNameMismatch {
        /// File name as given.
        file: String,
        /// The declared year.
        year: i32,
    },
    /// Two files declare the same year; the merge would be ambiguous.
    #[error("{file}: year {year} is already given by {first_file}")]
    DuplicateYear {
        /// The second file declaring the year.
        file: String,
        /// The first file declaring it.
        first_file: String,
        /// The year.
        year: i32,
    },
    /// The same date is listed twice in one list.
    #[error("{file}: {list}[{index}]: {date} is listed twice")]
    DuplicateDate {
        /// File name as given.
        file: String,
        /// Which list the entry is in.
        list: EntryList,
        /// Position of the second occurrence (0-based).
        index: usize,
        /// The date.
        date: NaiveDate,
    },
    /// A date is both a day off and a worked day.
    #[error("{file}: {date} is both a day off and a worked day")]
    OffAndWorked {
        /// File name as given.
        file: String,
        /// The date.
        date: NaiveDate,
    },
    /// A worked day falls Monday–Friday. Worked days exist to make up for a swapped weekday, so
    /// they are weekend days; a weekday here is almost certainly a wrong date.
    #[error("{file}: worked_days[{index}]: {date} is a {weekday}, not a weekend day")]
    WorkedDayNotWeekend {
        /// File name as given.
        file: String,
        /// Position of the entry (0-based).
        index: usize,
        /// The date.
        date: NaiveDate,
        /// Its weekday.
        weekday: Weekday,
    },
    /// Every entry needs a reason, and every file a source, so the table can be audited.
    #[error("{file}: {what} must not be empty")]
    Missing {
        /// File name as given.
        file: String,
        /// What is missing (e.g. `source`, `days_off[3].reason`).
        what: String,
    },
}

/// One year file as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[serde(default)]
    provisional: bool,
    source: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    days_off: Vec<EntryFile>,
    #[serde(default)]
    worked_days: Vec<EntryFile>,
}

/// One `[[days_off]]` or `[[worked_days]]` entry as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    date: toml::Value,
    reason: String,
    #[serde(default)]
    uncertain: bool,
    #[serde(default)]
    note: Option<String>,
}

/// Why a date is in the table, kept for audit and display; it does not affect the arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayEntry {
    /// The date.
    pub date: NaiveDate,
    /// Why the offices close (or work) that day.
    pub reason: String,
    /// The table's author was not sure of this date (see `note`); it should be checked against
    /// the government's notice.
    pub uncertain: bool,
    /// Free-text remark.
    pub note: Option<String>,
}

/// What the table says about one year as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearInfo {
    /// The year.
    pub year: i32,
    /// The year was derived from the Labour Code alone, before the government's notice; due
    /// dates computed with it may change when it is replaced.
    pub provisional: bool,
    /// The official document(s) the dates come from.
    pub source: String,
    /// Free-text remark.
    pub note: Option<String>,
    /// File name the year came from.
    pub file: String,
}

/// The days off and worked weekend days of the years it covers.
///
/// Beyond the covered years only the working-time profile's weekdays apply (no holidays): a due
/// date that far ahead is rare, and guessing holidays would be worse than flagging the gap, which
/// [`HolidayTable::covers`] lets callers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayTable {
    version: String,
    years: BTreeMap<i32, YearInfo>,
    days_off: BTreeMap<NaiveDate, HolidayEntry>,
    worked_days: BTreeMap<NaiveDate, HolidayEntry>,
    /// Union of both date sets: the dates where the calendar differs from the plain weekly
    /// pattern. The calendar skips whole weeks that contain none of these.
    exceptions: BTreeSet<NaiveDate>,
}

impl HolidayTable {
    /// A table with no holidays at all (weekends only). Useful for tests and as an explicit
    /// "no table" choice; its version says so.
    pub fn empty() -> Self {
        Self {
            version: "vn-holidays:none".to_owned(),
            years: BTreeMap::new(),
            days_off: BTreeMap::new(),
            worked_days: BTreeMap::new(),
            exceptions: BTreeSet::new(),
        }
    }

    /// The tables shipped in `data/holidays/` (2024–2027; 2027 is provisional).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_FILES)
            .expect("the shipped holiday files are valid (checked by the crate's tests)")
    }

    /// The built-in tables with `files` laid over them: a year that `files` gives replaces
    /// the built-in table of that year, the other built-in years stay. This is what an
    /// operator wants from `--holiday-dir` when the government publishes next year's notice:
    /// add one file, keep the rest.
    pub fn builtin_with(files: &[(&str, &str)]) -> Result<Self, HolidayError> {
        let mut overlaid = BTreeSet::new();
        for &(file, text) in files {
            let parsed: YearFile = toml::from_str(text).map_err(|e| HolidayError::Syntax {
                file: file.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
            overlaid.insert(parsed.year);
        }
        let mut all: Vec<(&str, &str)> = BUILTIN_FILES
            .iter()
            .filter(|(_, text)| {
                toml::from_str::<YearFile>(text).is_ok_and(|f| !overlaid.contains(&f.year))
            })
            .copied()
            .collect();
        all.extend_from_slice(files);
        Self::from_toml(&all)
    }

    /// The last year of the run of covered years from `year` on, `None` when `year` itself
    /// is not covered.
    pub fn covered_through(&self, year: i32) -> Option<i32> {
        let mut last = self.covers(year).then_some(year)?;
        while self.covers(last + 1) {
            last += 1;
        }
        Some(last)
    }

    /// Parses and merges year files given as `(file name, TOML text)`.
    ///
    /// The file name is used only in error messages and, when it looks like `2025.toml`, to
    /// check that the file declares the year its name promises.
    pub fn from_toml(files: &[(&str, &str)]) -> Result<Self, HolidayError> {
        if files.is_empty() {
            return Err(HolidayError::NoFiles);
        }
        let mut table = Self::empty();
        for &(file, text) in files {
            table.add_file(file, text)?;
        }
        table.version = table.compute_version();
        Ok(table)
    }

    fn add_file(&mut self, file: &str, text: &str) -> Result<(), HolidayError> {
        let parsed: YearFile = toml::from_str(text).map_err(|e| HolidayError::Syntax {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let year = parsed.year;
        let stem = file.rsplit(['/', '\\']).next().unwrap_or(file);
        let stem = stem.strip_suffix(".toml").unwrap_or(stem);
        if let Ok(named) = stem.parse::<i32>()
            && named != year
        {
            return Err(HolidayError::FileNameMismatch {
                file: file.to_owned(),
                year,
            });
        }
        if let Some(first) = self.years.get(&year) {
            return Err(HolidayError::DuplicateYear {
                file: file.to_owned(),
                first_file: first.file.clone(),
                year,
            });
        }
        if parsed.source.trim().is_empty() {
            return Err(HolidayError::Missing {
                file: file.to_owned(),
                what: "source".to_owned(),
            });
        }
        let off = entries(file, year, EntryList::DaysOff, parsed.days_off)?;
        let worked = entries(file, year, EntryList::WorkedDays, parsed.worked_days)?;
        for (index, entry) in worked.iter().enumerate() {
            let weekday = entry.date.weekday();
            if !matches!(weekday, Weekday::Sat | Weekday::Sun) {
                return Err(HolidayError::WorkedDayNotWeekend {
                    file: file.to_owned(),
                    index,
                    date: entry.date,
                    weekday,
                });
            }
            if off.iter().any(|o| o.date == entry.date) {
                return Err(HolidayError::OffAndWorked {
                    file: file.to_owned(),
                    date: entry.date,
                });
            }
        }
        for entry in off {
            self.exceptions.insert(entry.date);
            self.days_off.insert(entry.date, entry);
        }
        for entry in worked {
            self.exceptions.insert(entry.date);
            self.worked_days.insert(entry.date, entry);
        }
        self.years.insert(
            year,
            YearInfo {
                year,
                provisional: parsed.provisional,
                source: parsed.source,
                note: parsed.note,
                file: file.to_owned(),
            },
        );
        Ok(())
    }

    /// `vn-holidays:<years>:<hash>`, where the hash is a 64-bit FNV-1a over the normalised
    /// content that matters to the arithmetic (years, provisional flags, sorted dates). Reasons
    /// and notes are left out on purpose: rewording a reason must not make stored due dates look
    /// irreproducible, while moving a single date must change the version.
    fn compute_version(&self) -> String {
        let mut hash = Fnv1a::new();
        for info in self.years.values() {
            hash.write(format!("Y{}:{}\n", info.year, u8::from(info.provisional)).as_bytes());
        }
        for date in self.days_off.keys() {
            hash.write(format!("O{date}\n").as_bytes());
        }
        for date in self.worked_days.keys() {
            hash.write(format!("W{date}\n").as_bytes());
        }
        format!("vn-holidays:{}:{:016x}", self.years_label(), hash.finish())
    }

    /// Covered years as `2024-2027` when contiguous, else `2024,2026`.
    fn years_label(&self) -> String {
        let years: Vec<i32> = self.years.keys().copied().collect();
        match (years.first(), years.last()) {
            (Some(first), Some(last)) if i64::from(*last - *first) + 1 == years.len() as i64 => {
                if first == last {
                    first.to_string()
                } else {
                    format!("{first}-{last}")
                }
            }
            (Some(_), Some(_)) => years
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            _ => "none".to_owned(),
        }
    }

    /// The version stored on every dossier computed with this table.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the table has data for `year`. Outside covered years only weekends are days off.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The covered years with their source and provisional flag.
    pub fn years(&self) -> impl Iterator<Item = &YearInfo> {
        self.years.values()
    }

    /// Whether `date` is listed as a day off.
    pub fn is_day_off(&self, date: NaiveDate) -> bool {
        self.days_off.contains_key(&date)
    }

    /// Whether `date` is listed as a worked (weekend) day.
    pub fn is_worked_day(&self, date: NaiveDate) -> bool {
        self.worked_days.contains_key(&date)
    }

    /// Why `date` is a day off, if it is one.
    pub fn day_off(&self, date: NaiveDate) -> Option<&HolidayEntry> {
        self.days_off.get(&date)
    }

    /// All days off in date order.
    pub fn days_off(&self) -> impl Iterator<Item = &HolidayEntry> {
        self.days_off.values()
    }

    /// All worked weekend days in date order.
    pub fn worked_days(&self) -> impl Iterator<Item = &HolidayEntry> {
        self.worked_days.values()
    }

    /// Entries the table's author marked as uncertain, for an operator to check.
    pub fn uncertain_entries(&self) -> impl Iterator<Item = &HolidayEntry> {
        self.days_off
            .values()
            .chain(self.worked_days.values())
            .filter(|e| e.uncertain)
    }

    /// Days off within `[from, to)`, in order.
    pub(crate) fn days_off_in(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Iterator<Item = NaiveDate> + '_ {
        let range = if from < to { Some(from..to) } else { None };
        range
            .into_iter()
            .flat_map(move |r| self.days_off.range(r).map(|(d, _)| *d))
    }

    /// Worked days within `[from, to)`, in order.
    pub(crate) fn worked_days_in(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Iterator<Item = NaiveDate> + '_ {
        let range = if from < to { Some(from..to) } else { None };
        range
            .into_iter()
            .flat_map(move |r| self.worked_days.range(r).map(|(d, _)| *d))
    }

    /// The first date on or after `from` where the table says anything.
    pub(crate) fn next_exception(&self, from: NaiveDate) -> Option<NaiveDate> {
        self.exceptions.range(from..).next().copied()
    }
}

/// Converts and checks the entries of one list of one file.
fn entries(
    file: &str,
    year: i32,
    list: EntryList,
    raw: Vec<EntryFile>,
) -> Result<Vec<HolidayEntry>, HolidayError> {
    let mut out: Vec<HolidayEntry> = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        let date = parse_date(&entry.date).ok_or_else(|| HolidayError::BadDate {
            file: file.to_owned(),
            list,
            index,
            value: entry.date.to_string(),
        })?;
        if date.year() != year {
            return Err(HolidayError::WrongYear {
                file: file.to_owned(),
                list,
                index,
                date,
                year,
            });
        }
        if entry.reason.trim().is_empty() {
            return Err(HolidayError::Missing {
                file: file.to_owned(),
                what: format!("{list}[{index}].reason"),
            });
        }
        if out.iter().any(|e| e.date == date) {
            return Err(HolidayError::DuplicateDate {
                file: file.to_owned(),
                list,
                index,
                date,
            });
        }
        out.push(HolidayEntry {
            date,
            reason: entry.reason,
            uncertain: entry.uncertain,
            note: entry.note,
        });
    }
    Ok(out)
}

/// Accepts a TOML local date (`2024-02-08`) or a string holding one (`"2024-02-08"`).
fn parse_date(value: &toml::Value) -> Option<NaiveDate> {
    match value {
        toml::Value::Datetime(dt) => {
            if dt.time.is_some() || dt.offset.is_some() {
                return None;
            }
            let d = dt.date?;
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        }
        toml::Value::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
        _ => None,
    }
}

/// 64-bit FNV-1a: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`), and
/// good enough to tell table contents apart; it is not a security measure.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid test date")
    }

    const MINIMAL: &str = r#"
year = 2030
source = "test"
[[days_off]]
date = 2030-01-01
reason = "New Year"
[[worked_days]]
date = "2030-01-05"
reason = "swap"
"#;

    #[test]
    fn builtin_tables_parse_and_cover_2024_to_2027() {
        let t = HolidayTable::builtin();
        for y in 2024..=2027 {
            assert!(t.covers(y), "{y} covered");
        }
        assert!(!t.covers(2028));
        assert!(t.version().starts_with("vn-holidays:2024-2027:"));
        assert!(t.is_day_off(d(2024, 2, 8)));
        assert!(t.is_worked_day(d(2024, 5, 4)));
        assert!(t.years().any(|y| y.year == 2027 && y.provisional));
        assert!(t.years().all(|y| y.year == 2027 || !y.provisional));
    }

    #[test]
    fn accepts_native_and_string_dates() {
        let t = HolidayTable::from_toml(&[("2030.toml", MINIMAL)]).expect("valid");
        assert!(t.is_day_off(d(2030, 1, 1)));
        assert!(t.is_worked_day(d(2030, 1, 5)));
        assert_eq!(
            t.day_off(d(2030, 1, 1)).map(|e| e.reason.as_str()),
            Some("New Year")
        );
    }

    #[test]
    fn version_changes_with_dates_but_not_with_reasons() {
        let a = HolidayTable::from_toml(&[("2030.toml", MINIMAL)]).expect("valid");
        let reworded = MINIMAL.replace("reason = \"New Year\"", "reason = \"Tết Dương lịch\"");
        let b = HolidayTable::from_toml(&[("2030.toml", &reworded)]).expect("valid");
        assert_eq!(a.version(), b.version());
        let moved = MINIMAL.replace("2030-01-01", "2030-01-02");
        let c = HolidayTable::from_toml(&[("2030.toml", &moved)]).expect("valid");
        assert_ne!(a.version(), c.version());
        let provisional = format!("provisional = true\n{MINIMAL}");
        let p = HolidayTable::from_toml(&[("2030.toml", &provisional)]).expect("valid");
        assert_ne!(a.version(), p.version());
    }

    #[test]
    fn errors_name_file_and_entry() {
        let bad_date = MINIMAL.replace("2030-01-01", "\"2030-13-01\"");
        let err = HolidayTable::from_toml(&[("2030.toml", &bad_date)]).expect_err("bad date");
        assert!(matches!(
            err,
            HolidayError::BadDate { ref file, list: EntryList::DaysOff, index: 0, .. } if file == "2030.toml"
        ));
        assert!(err.to_string().contains("2030.toml: days_off[0]"));

        let wrong_year = MINIMAL.replace("2030-01-01", "2031-01-01");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &wrong_year)]),
            Err(HolidayError::WrongYear { index: 0, .. })
        ));

        assert!(matches!(
            HolidayTable::from_toml(&[("2031.toml", MINIMAL)]),
            Err(HolidayError::FileNameMismatch { year: 2030, .. })
        ));

        let dup = HolidayTable::from_toml(&[("a.toml", MINIMAL), ("b.toml", MINIMAL)]);
        assert!(matches!(
            dup,
            Err(HolidayError::DuplicateYear { ref first_file, .. }) if first_file == "a.toml"
        ));

        let weekday = MINIMAL.replace("\"2030-01-05\"", "2030-01-07");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &weekday)]),
            Err(HolidayError::WorkedDayNotWeekend {
                weekday: Weekday::Mon,
                ..
            })
        ));

        let both = MINIMAL.replace("2030-01-01", "2030-01-05");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &both)]),
            Err(HolidayError::OffAndWorked { .. })
        ));

        let twice = format!("{MINIMAL}\n[[days_off]]\ndate = 2030-01-01\nreason = \"again\"\n");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &twice)]),
            Err(HolidayError::DuplicateDate { index: 1, .. })
        ));

        let no_reason = MINIMAL.replace("reason = \"New Year\"", "reason = \" \"");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &no_reason)]),
            Err(HolidayError::Missing { ref what, .. }) if what == "days_off[0].reason"
        ));

        let unknown = format!("colour = 1\n{MINIMAL}");
        assert!(matches!(
            HolidayTable::from_toml(&[("2030.toml", &unknown)]),
            Err(HolidayError::Syntax { .. })
        ));

        assert_eq!(HolidayTable::from_toml(&[]), Err(HolidayError::NoFiles));
    }

    #[test]
    fn a_year_file_lays_over_the_builtin_tables() {
        let text = "year = 2028\nprovisional = true\nsource = \"test\"\n\n[[days_off]]\ndate = 2028-01-03\nreason = \"New Year (observed)\"\n";
        let table = HolidayTable::builtin_with(&[("2028.toml", text)]).expect("valid");
        assert!(table.covers(2024) && table.covers(2027) && table.covers(2028));
        assert_eq!(table.covered_through(2026), Some(2028));
        assert!(table.is_day_off(NaiveDate::from_ymd_opt(2028, 1, 3).expect("a date")));
        // Replacing a built-in year: its old days off are gone.
        let text = "year = 2026\nsource = \"test\"\n";
        let table = HolidayTable::builtin_with(&[("2026.toml", text)]).expect("valid");
        assert!(!table.is_day_off(NaiveDate::from_ymd_opt(2026, 2, 17).expect("a date")));
        assert!(
            HolidayTable::builtin()
                .is_day_off(NaiveDate::from_ymd_opt(2026, 2, 17).expect("a date"))
        );
        assert_eq!(HolidayTable::builtin().covered_through(2026), Some(2027));
        assert_eq!(HolidayTable::builtin().covered_through(2022), None);
    }
}
