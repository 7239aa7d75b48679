//! Realistic dossier histories for tests and benchmarks: every event is decided by the domain
//! rules from a legal command at a server time, exactly as the intake would write it.
//!
//! Each dossier walks its lifecycle by random legal steps (forward, supplement, fees,
//! digitisation, extensions, procedure changes, withdrawals, stops, late marks…) spread over
//! hours to weeks, so every kind of event and outcome occurs.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::{Procedure, ProcedureCatalogue};
use motcua_domain::ids::AgencyId;
use motcua_domain::lifecycle::{
    ApplicantType, Channel, Command, DecisionContext, DigitizationTarget, DossierState,
    DossierStatus, NewDossier, PaymentMethod, decide,
};
use motcua_domain::time::{Instant, to_timestamp};
use motcua_proto::v1::DossierEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::period::start_of;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    pub dossiers: usize,
    /// Dossiers are created on days from `first_day`, over `days` days.
    pub first_day: NaiveDate,
    pub days: u32,
    pub receiving_units: usize,
    pub authorities: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 7,
            dossiers: 1_000,
            first_day: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            days: 90,
            receiving_units: 4,
            authorities: 3,
        }
    }
}

/// One dossier's events, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    pub dossier_id: String,
    pub events: Vec<DossierEvent>,
}

/// A generator; [`Generator::dossier`] makes one history at a time, so a benchmark can stream
/// millions without holding them.
#[derive(Debug)]
pub struct Generator {
    options: GenerateOptions,
    rng: StdRng,
    calendar: WorkingCalendar,
    procedures: Vec<Procedure>,
    units: Vec<AgencyId>,
    authorities: Vec<AgencyId>,
    numbers: HashMap<(usize, NaiveDate), u32>,
}

impl Generator {
    pub fn new(options: GenerateOptions) -> Self {
        let catalogue = ProcedureCatalogue::sample();
        let mut procedures: Vec<Procedure> = catalogue.procedures().into_iter().cloned().collect();
        procedures.sort_by(|a, b| a.code.as_str().cmp(b.code.as_str()));
        let agency = |prefix: &str, i: usize| {
            AgencyId::parse(&format!("{prefix}.{:02}.H22", i + 1)).expect("a valid agency id")
        };
        Self {
            rng: StdRng::seed_from_u64(options.seed),
            calendar: WorkingCalendar::standard(),
            procedures,
            units: (0..options.receiving_units.max(1))
                .map(|i| agency("000.00", i))
                .collect(),
            authorities: (0..options.authorities.max(1))
                .map(|i| agency("000.10", i))
                .collect(),
            numbers: HashMap::new(),
            options,
        }
    }

    /// The calendar the histories were decided with.
    pub fn calendar(&self) -> &WorkingCalendar {
        &self.calendar
    }

    /// All histories at once.
    pub fn histories(&mut self) -> Vec<History> {
        (0..self.options.dossiers).map(|_| self.dossier()).collect()
    }

    /// One more dossier.
    pub fn dossier(&mut self) -> History {
        let day = self.rng.random_range(0..self.options.days.max(1));
        let date = self.options.first_day + Duration::days(i64::from(day));
        // Mostly office hours, sometimes the evening or the weekend (online).
        let minute = self.rng.random_range(6 * 60..20 * 60);
        let mut now = start_of(date) + Duration::minutes(i64::from(minute));
        let unit = self.rng.random_range(0..self.units.len());
        let number = self.numbers.entry((unit, date)).or_insert(0);
        *number += 1;
        let dossier_id = format!(
            "{}-{}-{:04}",
            self.units[unit].as_str(),
            date.format("%y%m%d"),
            number
        );
        let procedure = self.procedures[self.rng.random_range(0..self.procedures.len())].clone();
        let new = NewDossier {
            procedure,
            receiving_unit: self.units[unit].clone(),
            competent_authority: self.authorities[self.rng.random_range(0..self.authorities.len())]
                .clone(),
            applicant_type: ApplicantType::Person,
            component_count: self.rng.random_range(1..4),
        };
        let first = match self.rng.random_range(0..10) {
            0..=5 => Command::SubmitOnline(new),
            6..=8 => Command::Receive(new, Channel::Counter),
            _ => Command::Receive(new, Channel::Postal),
        };
        let mut events: Vec<DossierEvent> = Vec::new();
        let mut state: Option<DossierState> = None;
        let mut command = Some(first);
        let mut steps = 0;
        while let Some(cmd) = command.take() {
            let ctx = DecisionContext {
                now,
                calendar: &self.calendar,
            };
            if let Ok(payloads) = decide(&dossier_id, state.as_ref(), &cmd, &ctx) {
                for payload in payloads {
                    let event = DossierEvent {
                        event_id: format!("{dossier_id}/{}", events.len() + 1),
                        dossier_id: dossier_id.clone(),
                        seq: events.len() as u64 + 1,
                        recorded_at: Some(to_timestamp(now)),
                        request_id: format!("{dossier_id}/r{}", events.len() + 1),
                        payload: Some(payload),
                        ..DossierEvent::default()
                    };
                    match state.as_mut() {
                        Some(s) => s.apply(&event).expect("decided events fold"),
                        None => state = DossierState::fold([&event]).expect("creation folds"),
                    }
                    events.push(event);
                }
            }
            steps += 1;
            let Some(s) = state.as_ref() else { break };
            if steps > 25
                || motcua_domain::lifecycle::is_terminal(s.status)
                    && s.status != DossierStatus::Resolved
            {
                break;
            }
            // The next step comes minutes to weeks later.
            let wait = match self.rng.random_range(0..10) {
                0..=3 => Duration::minutes(self.rng.random_range(5..240)),
                4..=7 => Duration::hours(self.rng.random_range(4..72)),
                _ => Duration::days(self.rng.random_range(3..20)),
            };
            now += wait;
            command = self.next_command(s, now);
        }
        History { dossier_id, events }
    }

    /// A random command legal in the dossier's status, or `None` to stop.
    fn next_command(&mut self, s: &DossierState, now: Instant) -> Option<Command> {
        let r = self.rng.random_range(0..100);
        let text = String::new;
        use DossierStatus as S;
        let overdue = s.due_at.is_some_and(|d| now > d) && s.late_for_due != s.due_at;
        Some(match s.status {
            S::SubmittedOnline => match r {
                0..=79 => Command::AcceptOnline,
                80..=86 => Command::Refuse {
                    reason: "incomplete".into(),
                },
                87..=92 => Command::RecordDigitization {
                    target: DigitizationTarget::Component,
                    document_name: "form".into(),
                    reused: r % 2 == 0,
                    file_url: text(),
                },
                93..=96 => Command::Withdraw { reason: text() },
                _ => return None,
            },
            S::Accepted | S::Processing => match r {
                0..=24 => Command::Forward {
                    department: format!("dept-{}", r % 3),
                    note: text(),
                    step_time: None,
                },
                25..=49 if overdue => Command::MarkLate {
                    due_at: s.due_at.unwrap_or(now),
                },
                25..=49 => Command::Resolve {
                    electronic_result: r % 3 == 0,
                    note: text(),
                },
                50..=57 => Command::RequestSupplement {
                    reason: "missing page".into(),
                },
                58..=63 => Command::RequestFees {
                    amount_vnd: 50_000,
                    description: text(),
                },
                64..=73 => Command::RecordDigitization {
                    target: if s.status == S::Processing && r % 2 == 0 {
                        DigitizationTarget::Result
                    } else {
                        DigitizationTarget::Component
                    },
                    document_name: "doc".into(),
                    reused: r % 4 == 0,
                    file_url: text(),
                },
                74..=77 => Command::Withdraw { reason: text() },
                78..=79 => Command::StopProcessing { reason: text() },
                80..=83 => Command::ExtendDueDate {
                    new_appointment_at: now + Duration::days(5),
                    reason: text(),
                },
                84..=85 => Command::ChangeProcedure {
                    procedure: self.procedures[r % self.procedures.len()].clone(),
                    reason: text(),
                },
                86..=88 => Command::RecordPayment {
                    amount_vnd: 10_000,
                    method: PaymentMethod::Offline,
                    reference: text(),
                },
                89..=91 if s.due_at.is_some() => Command::MarkDueSoon {
                    due_at: s.due_at.unwrap_or(now),
                },
                _ => Command::Resolve {
                    electronic_result: false,
                    note: text(),
                },
            },
            S::SupplementRequested => match r {
                0..=74 => Command::ReceiveSupplement { note: text() },
                75..=84 => Command::Refuse {
                    reason: "no supplement".into(),
                },
                85..=89 => Command::Withdraw { reason: text() },
                _ => return None,
            },
            S::FeesRequested => match r {
                0..=44 => Command::RecordPayment {
                    amount_vnd: 50_000,
                    method: PaymentMethod::NationalPortal,
                    reference: text(),
                },
                45..=84 => Command::RecordPayment {
                    amount_vnd: 50_000,
                    method: PaymentMethod::Offline,
                    reference: text(),
                },
                85..=89 => Command::Withdraw { reason: text() },
                _ => return None,
            },
            S::Resolved => match r {
                0..=59 => Command::ReturnResult { note: text() },
                60..=74 => Command::RecordDigitization {
                    target: DigitizationTarget::Result,
                    document_name: "result".into(),
                    reused: false,
                    file_url: text(),
                },
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// Every event of `histories`, in the order of their recording times (as the store would
/// have them), each dossier's in seq order.
pub fn in_time_order(histories: &[History]) -> Vec<&DossierEvent> {
    let mut events: Vec<&DossierEvent> = histories.iter().flat_map(|h| &h.events).collect();
    events.sort_by_key(|e| {
        (
            e.recorded_at.as_ref().map(|t| (t.seconds, t.nanos)),
            e.dossier_id.clone(),
            e.seq,
        )
    });
    events
}
