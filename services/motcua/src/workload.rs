//! The province workload of `motcua loadgen --mix province`: dossiers that live like a
//! province's do, over the real gRPC API.
//!
//! Each worker keeps an agenda of open dossiers, each with its next step and when (server
//! time) it is due. The mix decides, per dossier:
//! - the procedure (different time units and limits, with and without fees);
//! - the channel (mostly online, some counter and postal);
//! - digitisation of components;
//! - supplement requests (some more than once);
//! - fees and their payment (mostly online);
//! - withdrawals, refusals, and a share that ends late.
//!
//! Time is the server's: the events' `recorded_at` tell the load generator what time it is
//! on the node. With `--simulate-days`, the node runs a fast clock
//! (`--simulated-clock-rate`), so steps are spread over the dossier's allowed time as
//! officers spread them. Counter work happens in office hours on working days; online
//! submissions come at all hours, fewer at night. A dossier meant to end late is resolved
//! after its due date. Without `--simulate-days`, every step runs at once, except that the
//! dossiers meant to end late stay open.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::Duration as ChronoDuration;
use clap::Args;
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::time::{Instant, from_timestamp};
use motcua_proto::v1 as pb;
use rand::Rng;
use rand::rngs::SmallRng;

/// The shares of the mix (each a probability, 0..=1).
#[derive(Debug, Clone, Args)]
pub struct MixArgs {
    /// Share of dossiers submitted online (the rest: counter, and --postal-share by post).
    #[arg(long, default_value_t = 0.6)]
    pub online_share: f64,
    /// Share received by post.
    #[arg(long, default_value_t = 0.05)]
    pub postal_share: f64,
    /// Share of online submissions refused at reception.
    #[arg(long, default_value_t = 0.03)]
    pub refuse_share: f64,
    /// Share whose components are digitised at reception.
    #[arg(long, default_value_t = 0.8)]
    pub digitize_share: f64,
    /// Share asked for a supplement (a third of them are asked a second time).
    #[arg(long, default_value_t = 0.12)]
    pub supplement_share: f64,
    /// Share of dossiers of fee-bearing procedures that are charged fees.
    #[arg(long, default_value_t = 0.7)]
    pub fees_share: f64,
    /// Share of fees paid online.
    #[arg(long, default_value_t = 0.6)]
    pub online_payment_share: f64,
    /// Share withdrawn by the applicant.
    #[arg(long, default_value_t = 0.03)]
    pub withdraw_share: f64,
    /// Share resolved after their due date.
    #[arg(long, default_value_t = 0.04)]
    pub late_share: f64,
}

impl MixArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("--online-share", self.online_share),
            ("--postal-share", self.postal_share),
            ("--refuse-share", self.refuse_share),
            ("--digitize-share", self.digitize_share),
            ("--supplement-share", self.supplement_share),
            ("--fees-share", self.fees_share),
            ("--online-payment-share", self.online_payment_share),
            ("--withdraw-share", self.withdraw_share),
            ("--late-share", self.late_share),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&value),
                "{name} {value} must be between 0 and 1"
            );
        }
        anyhow::ensure!(
            self.online_share + self.postal_share <= 1.0,
            "--online-share + --postal-share must be at most 1"
        );
        Ok(())
    }
}

/// Procedures of the sample catalogue, with their weight in the mix and whether they bear
/// fees: births and certified copies are the bulk, land and construction the long tail.
pub const PROCEDURES: &[(&str, u32, bool)] = &[
    ("1.001193", 20, false),             // birth registration, 1 working day
    ("2.000815", 18, true),              // certified copy, 0.5 working day
    ("2.000635", 10, true),              // civil-status extract, 4 working hours
    ("1.000894", 6, false),              // marriage registration, 1 working day
    ("2.000908", 10, true),              // criminal-record extract, 10 working days
    ("1.002804", 10, true),              // driving licence renewal, 5 (online 3) working days
    ("1.001612", 5, true), // enterprise registration, 3 working days, restart on supplement
    ("1.000656", 3, true), // work permit, 5 working days
    ("1.004227.000.00.00.H22", 4, true), // land-use certificate, 20 working days
    ("1.009994", 3, true), // building permit, 15 calendar days
    ("2.001157", 2, false), // festival notice, no due date
];

/// What is next for a dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    AcceptOnline,
    Refuse,
    DigitizeComponents(u8),
    Forward,
    RequestSupplement,
    ReceiveSupplement,
    RequestFees,
    RecordPayment,
    Withdraw,
    Resolve,
    DigitizeResult,
    ReturnResult,
}

impl Step {
    pub fn rpc(self) -> &'static str {
        match self {
            Self::AcceptOnline => "AcceptOnline",
            Self::Refuse => "Refuse",
            Self::DigitizeComponents(_) | Self::DigitizeResult => "RecordDigitization",
            Self::Forward => "Forward",
            Self::RequestSupplement => "RequestSupplement",
            Self::ReceiveSupplement => "ReceiveSupplement",
            Self::RequestFees => "RequestFees",
            Self::RecordPayment => "RecordPayment",
            Self::Withdraw => "Withdraw",
            Self::Resolve => "Resolve",
            Self::ReturnResult => "ReturnResult",
        }
    }

    /// Whether the step is an officer's (done in office hours on working days).
    fn in_office_hours(self) -> bool {
        !matches!(self, Self::RecordPayment | Self::Withdraw)
    }
}

/// One open dossier of a worker.
#[derive(Debug, Clone)]
pub struct Open {
    pub id: String,
    /// The steps still to come, in order, each at a fraction of the allowed time.
    pub plan: Vec<(Step, f64)>,
    pub accepted_at: Option<Instant>,
    pub due_at: Option<Instant>,
    pub fees: u64,
    pub online_payment: bool,
}

impl Open {
    /// When the next step is due on the server's clock (`None`: now). Without a simulated
    /// clock every step is due at once, except a late dossier's resolution.
    pub fn next_at(&self, simulated: bool) -> Option<Instant> {
        let (step, fraction) = *self.plan.first()?;
        let accepted = self.accepted_at?;
        let allowed = match self.due_at {
            Some(due) => due - accepted,
            None => ChronoDuration::days(5),
        };
        if !simulated && (fraction <= 1.0 || step != Step::Resolve) {
            return None;
        }
        let millis = (allowed.num_milliseconds() as f64 * fraction) as i64;
        Some(accepted + ChronoDuration::milliseconds(millis))
    }
}

/// A new dossier's plan, drawn from the mix.
#[derive(Debug)]
pub struct Planned {
    pub procedure: &'static str,
    pub channel: pb::Channel,
    pub plan: Vec<(Step, f64)>,
    pub fees: u64,
    pub online_payment: bool,
}

pub fn plan(mix: &MixArgs, rng: &mut SmallRng, online_allowed_only: bool) -> Planned {
    let total: u32 = PROCEDURES.iter().map(|p| p.1).sum();
    let mut pick = rng.random_range(0..total);
    let mut chosen = PROCEDURES[0];
    for procedure in PROCEDURES {
        if pick < procedure.1 {
            chosen = *procedure;
            break;
        }
        pick -= procedure.1;
    }
    let roll = rng.random::<f64>();
    let channel = if online_allowed_only || roll < mix.online_share {
        pb::Channel::Online
    } else if roll < mix.online_share + mix.postal_share {
        pb::Channel::Postal
    } else {
        pb::Channel::Counter
    };
    let mut plan = Vec::new();
    if channel == pb::Channel::Online {
        if rng.random::<f64>() < mix.refuse_share {
            plan.push((Step::Refuse, 0.0));
            return Planned {
                procedure: chosen.0,
                channel,
                plan,
                fees: 0,
                online_payment: false,
            };
        }
        plan.push((Step::AcceptOnline, 0.0));
    }
    if rng.random::<f64>() < mix.digitize_share {
        plan.push((Step::DigitizeComponents(rng.random_range(1..=3)), 0.01));
    }
    plan.push((Step::Forward, 0.05));
    let mut at = 0.1;
    if rng.random::<f64>() < mix.supplement_share {
        plan.push((Step::RequestSupplement, at));
        plan.push((Step::ReceiveSupplement, at + 0.1));
        at += 0.2;
        // A third of those asked are asked again.
        if rng.random::<f64>() < 1.0 / 3.0 {
            plan.push((Step::RequestSupplement, at));
            plan.push((Step::ReceiveSupplement, at + 0.1));
            at += 0.2;
        }
    }
    let (fees, online_payment) = if chosen.2 && rng.random::<f64>() < mix.fees_share {
        plan.push((Step::RequestFees, at));
        plan.push((Step::RecordPayment, at + 0.05));
        at += 0.1;
        (
            [20_000, 50_000, 100_000, 200_000][rng.random_range(0..4)],
            rng.random::<f64>() < mix.online_payment_share,
        )
    } else {
        (0, false)
    };
    if rng.random::<f64>() < mix.withdraw_share {
        plan.push((Step::Withdraw, at + 0.05));
    } else {
        let resolve = if rng.random::<f64>() < mix.late_share {
            rng.random_range(1.05..1.6)
        } else {
            rng.random_range(at.max(0.2)..0.95)
        };
        // The result is digitised as it is signed, before the resolution: a result digitised
        // after it does not count for the period of the resolution (docs/figures.md).
        plan.push((Step::DigitizeResult, resolve));
        plan.push((Step::Resolve, resolve));
        plan.push((Step::ReturnResult, resolve + 0.02));
    }
    Planned {
        procedure: chosen.0,
        channel,
        plan,
        fees,
        online_payment,
    }
}

/// The node's clock as the load generator last saw it: the newest `recorded_at` of any
/// response, and when (real time) it was seen.
#[derive(Debug)]
pub struct ServerClock {
    base: std::time::Instant,
    /// Microseconds since the epoch (0: nothing seen yet).
    seen: AtomicI64,
    /// Real nanoseconds since `base` when `seen` was last moved.
    seen_real: AtomicI64,
    /// Simulated seconds per real second (1 without a simulated clock).
    rate: f64,
}

impl ServerClock {
    pub fn new(rate: f64) -> Self {
        Self {
            base: std::time::Instant::now(),
            seen: AtomicI64::new(0),
            seen_real: AtomicI64::new(0),
            rate,
        }
    }

    pub fn saw(&self, response: &pb::CommandResponse) {
        for event in &response.events {
            if let Some(at) = event.recorded_at.as_ref().and_then(from_timestamp) {
                let micros = at.timestamp_micros();
                if self.seen.fetch_max(micros, Ordering::Relaxed) < micros {
                    let real = i64::try_from(self.base.elapsed().as_nanos()).unwrap_or(i64::MAX);
                    self.seen_real.store(real, Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether a response has told the node's time yet.
    pub fn known(&self) -> bool {
        self.seen.load(Ordering::Relaxed) != 0
    }

    /// The node's time now: the last seen, moved on by the clock rate times the real time
    /// since.
    pub fn now(&self) -> Instant {
        let seen = self.seen.load(Ordering::Relaxed);
        if seen == 0 {
            return chrono::Utc::now();
        }
        let real_now = i64::try_from(self.base.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let since = (real_now - self.seen_real.load(Ordering::Relaxed)).max(0) as f64 * self.rate;
        chrono::DateTime::from_timestamp_micros(seen).unwrap_or_else(chrono::Utc::now)
            + ChronoDuration::microseconds((since / 1000.0) as i64)
    }
}

/// Hours of a day weighted by [`Office::intake_weight`] (8 office hours at 1, 16 at 0.1):
/// a day's arrivals divided by this are an office hour's.
pub const WEIGHTED_HOURS_PER_DAY: f64 = 9.6;

/// Office hours on working days (the standard profile and the built-in holidays).
#[derive(Debug)]
pub struct Office(WorkingCalendar);

impl Default for Office {
    fn default() -> Self {
        Self(WorkingCalendar::new(
            WorkingTimeProfile::standard(),
            HolidayTable::builtin(),
        ))
    }
}

impl Office {
    pub fn open(&self, at: Instant) -> bool {
        self.0.is_working_instant(at)
    }

    /// `at` itself during office hours, else the start of the next office segment (a
    /// Saturday night gives Monday morning).
    pub fn next_open(&self, at: Instant) -> Instant {
        self.0.next_working_start(at)
    }

    /// Whether `step` may be taken at `at`.
    pub fn allows(&self, step: Step, at: Instant) -> bool {
        !step.in_office_hours() || self.open(at)
    }

    /// How busy new submissions are at `at`, relative to office hours (1.0): online
    /// submissions keep coming at night and on days off, at a tenth of the rate.
    pub fn intake_weight(&self, at: Instant) -> f64 {
        if self.open(at) { 1.0 } else { 0.1 }
    }
}

pub fn applicant(rng: &mut SmallRng) -> pb::Applicant {
    const FAMILY: &[&str] = &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"];
    const GIVEN: &[&str] = &["An", "Bình", "Chi", "Dũng", "Hà", "Lan", "Minh", "Thảo"];
    pb::Applicant {
        r#type: pb::ApplicantType::Person as i32,
        name: format!(
            "{} Văn {}",
            FAMILY[rng.random_range(0..FAMILY.len())],
            GIVEN[rng.random_range(0..GIVEN.len())]
        ),
        identity_number: format!("0010{:08}", rng.random_range(0..100_000_000u32)),
        phone: format!("09{:08}", rng.random_range(0..100_000_000u32)),
    }
}
