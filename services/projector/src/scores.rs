//! Decision 766 scores that the events support (docs/domain.md §5), each with its inputs.

use serde::Serialize;

use crate::report::{Figures, Rate};

/// One score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Stable name: `progress`, `online_share`, `digitization`, `electronic_result`, `reuse`,
    /// `online_payment`, `receiving_satisfaction`, `dossier_sync`.
    pub name: &'static str,
    /// The ratio the score is computed from, with its numerator and denominator.
    pub rate: Rate,
    /// The rate at which the full points are reached (1.0 = proportional all the way).
    pub full_at: f64,
    /// `min(1, rate / full_at)`: the share of the full points earned.
    pub share_of_points: Option<f64>,
    /// The maximum points, where docs/domain.md gives them.
    pub max_points: Option<f64>,
    /// `share_of_points * max_points`.
    pub points: Option<f64>,
    /// How the inputs were counted, and what is missing.
    pub note: &'static str,
}

fn score(
    name: &'static str,
    rate: Rate,
    full_at: f64,
    max_points: Option<f64>,
    note: &'static str,
) -> Score {
    let share = rate.value.map(|v| (v / full_at).clamp(0.0, 1.0));
    Score {
        name,
        rate,
        full_at,
        share_of_points: share,
        max_points,
        points: share.zip(max_points).map(|(s, m)| s * m),
        note,
    }
}

/// The scores of a period's figures.
/// The dossier-sync input of a scope and period, from the national-portal adapter: dossiers
/// received in the period whose every change reached the portal in time, and dossiers
/// received. `None` where the adapter cannot tell (not configured, or a scope it does not
/// keep).
pub type SyncInput = Option<(i64, i64)>;

/// [`scores_with_sync`] without the portal adapter's input.
pub fn scores(f: &Figures) -> Vec<Score> {
    scores_with_sync(f, None)
}

/// Every score, `dossier_sync` from `sync` when given.
pub fn scores_with_sync(f: &Figures, sync: SyncInput) -> Vec<Score> {
    let in_progress_on_time = f.accepted_in_progress - f.in_progress_past_due;
    let progress_denominator = f.ended_on_time + f.ended_late + f.accepted_in_progress;
    // "100% - (late % + complaint %)": no complaint events exist yet, so only the late part.
    let satisfaction = f.late_rate.value.map(|late| (1.0 - late).max(0.0));
    vec![
        score(
            "progress",
            Rate::of(
                f.ended_on_time + in_progress_on_time.max(0),
                progress_denominator,
            ),
            1.0,
            Some(20.0),
            "on time = dossiers that ended (resolved, withdrawn, refused, stopped) early or on time \
             in the period, plus accepted dossiers in progress at its end and not past due; \
             denominator = accepted dossiers that ended in the period plus those in progress",
        ),
        score(
            "online_share",
            f.online_rate,
            0.5,
            None,
            "full points at 50% online; docs/domain.md gives no maximum, so only the share of points",
        ),
        score(
            "digitization",
            Rate::of(f.fully_digitized, f.resolved),
            0.8,
            Some(4.0),
            "resolved dossiers with every component and the result digitised by the resolution / resolved",
        ),
        score(
            "electronic_result",
            Rate::of(f.electronic_result, f.resolved),
            1.0,
            Some(6.0),
            "resolved dossiers whose result was issued electronically / resolved",
        ),
        score(
            "reuse",
            f.reuse,
            0.8,
            Some(2.0),
            "dossiers reusing already digitised data (on the day of the first reuse) / received",
        ),
        score(
            "online_payment",
            f.online_payment,
            1.0,
            Some(6.0),
            "fee-bearing dossiers paid online (on the payment day) / dossiers that became fee-bearing",
        ),
        Score {
            rate: Rate {
                numerator: f.resolved - f.resolved_late,
                denominator: f.resolved,
                value: satisfaction,
            },
            ..score(
                "receiving_satisfaction",
                Rate::of(0, 0),
                0.9,
                Some(6.0),
                "100% - late rate; complaints are not recorded as events yet, so they count as 0",
            )
        }
        .recompute(),
        match sync {
            Some((on_time, received)) => score(
                "dossier_sync",
                Rate::of(on_time, received),
                1.0,
                Some(6.0),
                "dossiers received in the period whose every change reached the national \
                 portal within the sync deadline (the portal adapter's sync state) / dossiers \
                 received in the period",
            ),
            None => score(
                "dossier_sync",
                Rate::of(0, 0),
                1.0,
                Some(6.0),
                "not computed: no national-portal adapter on this node, or a scope it does \
                 not keep (it keeps the province and receiving units)",
            ),
        },
    ]
}

impl Score {
    fn recompute(self) -> Self {
        let share = self.rate.value.map(|v| (v / self.full_at).clamp(0.0, 1.0));
        Self {
            share_of_points: share,
            points: share.zip(self.max_points).map(|(s, m)| s * m),
            ..self
        }
    }
}
