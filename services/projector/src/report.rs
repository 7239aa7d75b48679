//! The figures of docs/domain.md §5 for one scope, channel and period, computed from summed
//! counters (pure: `read_model.rs` does the sums).

use serde::Serialize;

use crate::contribution::{Counters, c};

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// Every dossier in the read model (one province's system).
    Province,
    ReceivingUnit,
    CompetentAuthority,
    Procedure,
}

impl ScopeKind {
    /// The `scope_kind` value in the day table.
    pub fn key(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::ReceivingUnit => "receiving_unit",
            Self::CompetentAuthority => "competent_authority",
            Self::Procedure => "procedure",
        }
    }

    /// The dossier table's column for this scope, `None` for the province.
    pub fn column(self) -> Option<&'static str> {
        match self {
            Self::Province => None,
            Self::ReceivingUnit => Some("receiving_unit"),
            Self::CompetentAuthority => Some("competent_authority"),
            Self::Procedure => Some("procedure_code"),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Province,
            Self::ReceivingUnit,
            Self::CompetentAuthority,
            Self::Procedure,
        ]
        .into_iter()
        .find(|k| k.key() == text)
    }
}

/// A ratio with its parts, so a reader can check the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub numerator: i64,
    pub denominator: i64,
    /// `numerator / denominator`, `None` when nothing is counted.
    pub value: Option<f64>,
}

impl Rate {
    pub fn of(numerator: i64, denominator: i64) -> Self {
        Self {
            numerator,
            denominator,
            value: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        }
    }
}

/// The inputs a report is computed from.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// Sums over the days before the period.
    pub before: Counters,
    /// Sums over the period's days (up to "now" for the current period).
    pub within: Counters,
    /// Per channel (1 counter, 2 online, 3 postal), sums over the period's days.
    pub within_by_channel: [Counters; 3],
    /// In progress and past due at the judgement time, when that is "now" (counted on the
    /// dossier table); `None` for a closed period (then the overdue deltas give it).
    pub live_past_due: Option<i64>,
    /// Resolved dossiers per whole working hours of processing, ascending.
    pub processing_hours: Vec<(i64, i64)>,
    /// The median of their processing times, in working seconds (see [`median_positions`]).
    pub median_seconds: Option<f64>,
}

/// A period report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub carried_over: i64,
    pub received: i64,
    pub received_online: i64,
    pub received_counter: i64,
    pub received_postal: i64,
    pub online_rate: Rate,
    pub resolved: i64,
    pub resolved_early: i64,
    pub resolved_on_time: i64,
    pub resolved_late: i64,
    /// (early + on time) / resolved.
    pub on_time_rate: Rate,
    /// late / resolved.
    pub late_rate: Rate,
    pub withdrawn: i64,
    pub refused: i64,
    pub stopped: i64,
    pub in_progress: i64,
    pub in_progress_past_due: i64,
    /// Dossiers with a component digitised during reception (before processing started),
    /// counted on the day of that digitisation / received (docs/figures.md).
    pub digitization_at_reception: Rate,
    /// Resolved dossiers whose result was digitised by the resolution / resolved.
    pub digitization_of_results: Rate,
    /// Dossiers reusing already digitised data, counted on the day of the first reuse /
    /// received.
    pub reuse: Rate,
    /// Fee-bearing dossiers paid online, counted on the payment day / dossiers that became
    /// fee-bearing in the period.
    pub online_payment: Rate,
    /// Resolved dossiers with a processing time, and the sum of their working seconds (minus
    /// supplement waits): the average's inputs.
    pub processed: i64,
    pub processing_working_seconds: i64,
    /// Their average, in working days (8 working hours).
    pub average_processing_days: Option<f64>,
    /// The median, in working days: the usual median of the working seconds (the mean of
    /// the two middle values for an even count), exact to the second.
    pub median_processing_days: Option<f64>,
    /// `carried_over + received` and `resolved + withdrawn + refused + stopped + in_progress`:
    /// docs/domain.md §5's identity, shown with both sides.
    pub identity: Identity,
    /// Inputs of the Decision 766 progress score.
    pub ended_on_time: i64,
    pub ended_late: i64,
    pub accepted_in_progress: i64,
    pub fully_digitized: i64,
    pub electronic_result: i64,
    /// Accepted dossiers ended in the period whose due date ran into a year without a holiday
    /// table: their outcome was judged against a date nobody checked.
    pub ended_with_provisional_due: i64,
}

/// Both sides of the period identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub carried_over_plus_received: i64,
    pub ended_plus_in_progress: i64,
    pub holds: bool,
}

/// Working seconds in a working day (8 hours, docs/domain.md §3).
const WORKING_DAY_SECONDS: f64 = 8.0 * 3600.0;

impl Figures {
    pub fn compute(inputs: &ReportInputs) -> Self {
        let (before, within) = (&inputs.before, &inputs.within);
        let mut until_end = *before;
        until_end += *within;
        let carried_over = before.get(c::ENTERED) - before.ended();
        let received = within.get(c::ENTERED);
        let in_progress = until_end.get(c::ENTERED) - until_end.ended();
        let in_progress_past_due = inputs
            .live_past_due
            .unwrap_or_else(|| until_end.get(c::OVERDUE));
        let resolved = within.resolved();
        let early = within.get(c::RESOLVED_EARLY);
        let on_time = within.get(c::RESOLVED_ON_TIME);
        let late = within.get(c::RESOLVED_LATE);
        let channel = |i: usize| inputs.within_by_channel[i].get(c::ENTERED);
        let processed = within.get(c::PROCESSED);
        let left = carried_over + received;
        let right = resolved
            + within.get(c::WITHDRAWN)
            + within.get(c::REFUSED)
            + within.get(c::STOPPED)
            + in_progress;
        Self {
            carried_over,
            received,
            received_online: channel(1),
            received_counter: channel(0),
            received_postal: channel(2),
            online_rate: Rate::of(channel(1), received),
            resolved,
            resolved_early: early,
            resolved_on_time: on_time,
            resolved_late: late,
            on_time_rate: Rate::of(early + on_time, resolved),
            late_rate: Rate::of(late, resolved),
            withdrawn: within.get(c::WITHDRAWN),
            refused: within.get(c::REFUSED),
            stopped: within.get(c::STOPPED),
            in_progress,
            in_progress_past_due,
            digitization_at_reception: Rate::of(within.get(c::DIGITIZED_AT_RECEPTION), received),
            digitization_of_results: Rate::of(within.get(c::RESULT_DIGITIZED), resolved),
            reuse: Rate::of(within.get(c::REUSED), received),
            online_payment: Rate::of(within.get(c::PAID_ONLINE), within.get(c::FEE_BEARING)),
            processed,
            processing_working_seconds: within.get(c::PROCESSING_SECONDS),
            average_processing_days: (processed > 0).then(|| {
                within.get(c::PROCESSING_SECONDS) as f64 / processed as f64 / WORKING_DAY_SECONDS
            }),
            median_processing_days: inputs.median_seconds.map(|s| s / WORKING_DAY_SECONDS),
            identity: Identity {
                carried_over_plus_received: left,
                ended_plus_in_progress: right,
                holds: left == right,
            },
            ended_on_time: within.get(c::JUDGED_ON_TIME),
            ended_late: within.get(c::JUDGED_LATE),
            accepted_in_progress: until_end.get(c::ACCEPTED_OPEN),
            fully_digitized: within.get(c::FULLY_DIGITIZED),
            electronic_result: within.get(c::ELECTRONIC_RESULT),
            ended_with_provisional_due: within.get(c::DUE_PROVISIONAL),
        }
    }
}

/// Where the middle value(s) of a histogram of whole working hours are: for each of the two
/// middle ranks (the same rank twice for an odd count), its hour bucket and its 0-based
/// position among that bucket's values in ascending order. The median is the mean of the two
/// values found there; reading only those buckets' exact seconds keeps the median exact
/// without reading every resolved dossier of the period.
pub fn median_positions(histogram: &[(i64, i64)]) -> Option<[(i64, i64); 2]> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total <= 0 {
        return None;
    }
    // 0-based ranks of the lower and upper middle values.
    let ranks = [(total - 1) / 2, total / 2];
    let locate = |rank: i64| {
        let mut seen = 0;
        for &(hours, n) in histogram {
            if rank < seen + n {
                return Some((hours, rank - seen));
            }
            seen += n;
        }
        None
    };
    Some([locate(ranks[0])?, locate(ranks[1])?])
}

/// The usual median of sorted values (tests and the oracle's counterpart).
pub fn median_of_sorted(values: &[i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    Some((values[(n - 1) / 2] as f64 + values[n / 2] as f64) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middle_ranks_are_found_in_their_hour_buckets() {
        assert_eq!(median_positions(&[]), None);
        assert_eq!(median_positions(&[(3, 1)]), Some([(3, 0), (3, 0)]));
        assert_eq!(
            median_positions(&[(1, 1), (5, 1), (9, 1)]),
            Some([(5, 0), (5, 0)])
        );
        // Four dossiers of 0, 0, 10 and 10 hours: the middle two are the second 0 and the
        // first 10, so the median is 5 hours (0.625 working days), not 0.
        assert_eq!(
            median_positions(&[(0, 2), (10, 2)]),
            Some([(0, 1), (10, 0)])
        );
        assert_eq!(median_positions(&[(1, 1), (5, 3)]), Some([(5, 0), (5, 1)]));
    }

    #[test]
    fn the_usual_median_is_the_mean_of_the_two_middle_values() {
        assert_eq!(median_of_sorted(&[]), None);
        assert_eq!(median_of_sorted(&[7]), Some(7.0));
        assert_eq!(
            median_of_sorted(&[0, 0, 36_000, 36_000]).map(|s| s / WORKING_DAY_SECONDS),
            Some(0.625)
        );
        assert_eq!(median_of_sorted(&[1, 2, 4]), Some(2.0));
    }

    #[test]
    fn rates_show_their_parts() {
        assert_eq!(Rate::of(1, 0).value, None);
        assert_eq!(Rate::of(1, 4).value, Some(0.25));
    }
}
