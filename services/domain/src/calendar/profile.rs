//! Working-time profiles: when, on an ordinary working day, the office is open.
//!
//! docs/domain.md §3 makes the office hours a *configurable profile*: most provinces work 07:00–11:30
//! and 13:30–17:00, Monday to Friday, but the schedule is data, not code, so a province (or a
//! future decree) can change it without touching the due-date arithmetic. A profile carries an id
//! that is stored on every dossier, so a due date computed under it can be reproduced later.

use chrono::{NaiveTime, Timelike, Weekday};
use thiserror::Error;

/// Seconds in a civil day; Vietnam has no daylight saving, so every local day has exactly this many.
pub(crate) const SECONDS_PER_DAY: u32 = 86_400;

/// One stretch of working time inside a day, in seconds after local midnight.
///
/// Stored as seconds rather than `NaiveTime` because all the arithmetic (how much working time
/// is left in a day, where an amount of working time lands) is integer arithmetic on seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Segment {
    /// First second of the segment (inclusive).
    pub(crate) start: u32,
    /// End of the segment. The end instant itself counts as working time ("segment ends
    /// inclusive"), so a dossier handled at exactly 17:00 was handled during office hours.
    pub(crate) end: u32,
}

impl Segment {
    /// Working seconds in this segment.
    pub(crate) fn len(self) -> u32 {
        self.end - self.start
    }
}

/// Why a working-time profile was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProfileError {
    /// The id is stored on dossiers to reproduce due dates; an empty id would reproduce nothing.
    #[error("working-time profile id must not be empty")]
    EmptyId,
    /// A profile with no segments has no working time at all, so no due date could ever be met.
    #[error("working-time profile `{id}` has no working segments")]
    NoSegments {
        /// The profile's id.
        id: String,
    },
    /// A segment must start strictly before it ends.
    #[error("working-time profile `{id}`: segment {index} ({start}–{end}) is empty or reversed")]
    EmptySegment {
        /// The profile's id.
        id: String,
        /// Position of the segment (0-based).
        index: usize,
        /// The segment's start.
        start: NaiveTime,
        /// The segment's end.
        end: NaiveTime,
    },
    /// Segments must be listed in order and must not overlap (touching is allowed).
    #[error("working-time profile `{id}`: segment {index} starts before segment {} ends", index - 1)]
    Overlap {
        /// The profile's id.
        id: String,
        /// Position of the offending segment (0-based); it overlaps or precedes the one before.
        index: usize,
    },
    /// Times are kept to the second; a fractional second is almost certainly an input mistake.
    #[error("working-time profile `{id}`: segment {index} has a fractional second")]
    SubSecond {
        /// The profile's id.
        id: String,
        /// Position of the segment (0-based).
        index: usize,
    },
    /// A profile with no working weekday would push every due date to infinity.
    #[error("working-time profile `{id}` has no working weekday")]
    NoWorkingDays {
        /// The profile's id.
        id: String,
    },
}

/// When the office works on an ordinary working day, and which weekdays are working days.
///
/// Only a validated profile can exist: segments are ordered, non-overlapping and non-empty, and
/// at least one weekday works. The calendar arithmetic relies on these facts (it always makes
/// progress, and never double-counts time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingTimeProfile {
    /// Stable identifier stored on every dossier (e.g. `vn-office-hours-v1`).
    id: String,
    /// Working segments in Vietnam local time, ordered, non-overlapping.
    segments: Vec<Segment>,
    /// Working weekdays, indexed by `Weekday::num_days_from_monday()`.
    weekdays: [bool; 7],
}

impl WorkingTimeProfile {
    /// Id of [`WorkingTimeProfile::standard`]. Change the id whenever the standard hours change,
    /// so that dossiers accepted under the old hours keep pointing at the old profile.
    pub const STANDARD_ID: &'static str = "vn-office-hours-v1";

    /// Builds a profile, rejecting schedules the arithmetic cannot work with.
    ///
    /// `segments` are `(start, end)` pairs in Vietnam local time; `weekdays` lists the days on
    /// which those segments are worked (duplicates are harmless).
    pub fn new(
        id: impl Into<String>,
        segments: &[(NaiveTime, NaiveTime)],
        weekdays: &[Weekday],
    ) -> Result<Self, ProfileError> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(ProfileError::EmptyId);
        }
        if segments.is_empty() {
            return Err(ProfileError::NoSegments { id });
        }
        let mut parsed: Vec<Segment> = Vec::with_capacity(segments.len());
        for (index, &(start, end)) in segments.iter().enumerate() {
            if start.nanosecond() != 0 || end.nanosecond() != 0 {
                return Err(ProfileError::SubSecond { id, index });
            }
            if start >= end {
                return Err(ProfileError::EmptySegment {
                    id,
                    index,
                    start,
                    end,
                });
            }
            let segment = Segment {
                start: start.num_seconds_from_midnight(),
                end: end.num_seconds_from_midnight(),
            };
            if parsed.last().is_some_and(|prev| prev.end > segment.start) {
                return Err(ProfileError::Overlap { id, index });
            }
            parsed.push(segment);
        }
        let mut days = [false; 7];
        for day in weekdays {
            days[day.num_days_from_monday() as usize] = true;
        }
        if !days.iter().any(|&d| d) {
            return Err(ProfileError::NoWorkingDays { id });
        }
        Ok(Self {
            id,
            segments: parsed,
            weekdays: days,
        })
    }

    /// The national default (docs/domain.md §3): 07:00–11:30 and 13:30–17:00, Monday to Friday,
    /// which is 8 working hours a day.
    pub fn standard() -> Self {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("literal office hours are valid");
        Self::new(
            Self::STANDARD_ID,
            &[(hm(7, 0), hm(11, 30)), (hm(13, 30), hm(17, 0))],
            &[
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
        )
        .expect("the standard profile is valid")
    }

    /// The profile's id, stored on every dossier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The working segments as local `(start, end)` times.
    pub fn segments(&self) -> Vec<(NaiveTime, NaiveTime)> {
        self.segments
            .iter()
            .map(|s| (seconds_to_time(s.start), seconds_to_time(s.end)))
            .collect()
    }

    /// Whether `day` is a working weekday in this profile (before holidays are considered).
    pub fn works_on(&self, day: Weekday) -> bool {
        self.weekdays[day.num_days_from_monday() as usize]
    }

    /// The working weekdays, Monday first.
    pub fn working_weekdays(&self) -> Vec<Weekday> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .filter(|d| self.works_on(*d))
        .collect()
    }

    /// Length of one working day in seconds (28,800 in the standard profile). "One working day"
    /// of processing time means this much working time, so half days and fractions follow.
    pub fn working_seconds_per_day(&self) -> i64 {
        self.segments.iter().map(|s| i64::from(s.len())).sum()
    }

    /// Number of working weekdays per week (5 in the standard profile).
    pub(crate) fn working_days_per_week(&self) -> i64 {
        self.weekdays.iter().filter(|&&d| d).count() as i64
    }

    pub(crate) fn raw_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Start of the first segment, in seconds after midnight.
    pub(crate) fn day_start(&self) -> u32 {
        self.segments[0].start
    }

    /// End of the last segment, in seconds after midnight.
    pub(crate) fn day_end(&self) -> u32 {
        self.segments[self.segments.len() - 1].end
    }
}

fn seconds_to_time(seconds: u32) -> NaiveTime {
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)
        .expect("segment bounds come from a NaiveTime, so they are below 86,400")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid test time")
    }

    #[test]
    fn standard_profile_is_eight_hours_monday_to_friday() {
        let p = WorkingTimeProfile::standard();
        assert_eq!(p.id(), "vn-office-hours-v1");
        assert_eq!(p.working_seconds_per_day(), 8 * 3600);
        assert_eq!(p.working_weekdays().len(), 5);
        assert!(!p.works_on(Weekday::Sat));
        assert_eq!(
            p.segments(),
            vec![(hm(7, 0), hm(11, 30)), (hm(13, 30), hm(17, 0))]
        );
    }

    #[test]
    fn rejects_invalid_profiles() {
        let days = [Weekday::Mon];
        assert_eq!(
            WorkingTimeProfile::new("", &[(hm(7, 0), hm(8, 0))], &days),
            Err(ProfileError::EmptyId)
        );
        assert!(matches!(
            WorkingTimeProfile::new("x", &[], &days),
            Err(ProfileError::NoSegments { .. })
        ));
        assert!(matches!(
            WorkingTimeProfile::new("x", &[(hm(8, 0), hm(8, 0))], &days),
            Err(ProfileError::EmptySegment { index: 0, .. })
        ));
        assert!(matches!(
            WorkingTimeProfile::new("x", &[(hm(8, 0), hm(12, 0)), (hm(11, 0), hm(13, 0))], &days),
            Err(ProfileError::Overlap { index: 1, .. })
        ));
        assert!(matches!(
            WorkingTimeProfile::new("x", &[(hm(13, 0), hm(14, 0)), (hm(8, 0), hm(9, 0))], &days),
            Err(ProfileError::Overlap { index: 1, .. })
        ));
        assert!(matches!(
            WorkingTimeProfile::new("x", &[(hm(8, 0), hm(9, 0))], &[]),
            Err(ProfileError::NoWorkingDays { .. })
        ));
        // Touching segments are fine.
        assert!(
            WorkingTimeProfile::new("x", &[(hm(8, 0), hm(9, 0)), (hm(9, 0), hm(10, 0))], &days)
                .is_ok()
        );
    }
}
