//! The lifecycle state machine through its public API, without I/O: `decide` against every
//! status for every command (from a table written here from docs/domain.md §2, independent of
//! `Command::allowed_in`), and `DossierState::fold` after each event.

use chrono::{Duration, TimeZone, Utc};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::{Procedure, ProcedureCatalogue};
use motcua_domain::due_date::ProcessingTime;
use motcua_domain::ids::{AgencyId, ProcedureCode};
use motcua_domain::lifecycle::{
    ApplicantType, Channel, Command, DecisionContext, DigitizationTarget, DomainError,
    DossierState, DossierStatus, FoldError, NewDossier, Payload, PaymentMethod, decide,
    describe_status, event_allowed_in, event_type_name, is_terminal,
};
use motcua_domain::outcome::{Outcome, OutcomeReason};
use motcua_domain::time::{Instant, to_timestamp, vietnam};
use motcua_proto::v1 as pb;

use DossierStatus as S;

const ID: &str = "000.00.01.H22-240304-0001";

fn vn(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Instant {
    vietnam()
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid test time")
        .with_timezone(&Utc)
}

fn procedure(code: &str) -> Procedure {
    ProcedureCatalogue::sample()
        .get(&ProcedureCode::parse(code).expect("valid code"))
        .expect("in the sample catalogue")
        .clone()
}

fn new_dossier(code: &str) -> NewDossier {
    let unit = AgencyId::parse("000.00.01.H22").expect("valid agency");
    NewDossier {
        procedure: procedure(code),
        receiving_unit: unit.clone(),
        competent_authority: unit,
        applicant_type: ApplicantType::Person,
        component_count: 2,
    }
}

/// A dossier's history built by deciding commands, as the intake does.
struct Dossier {
    calendar: WorkingCalendar,
    events: Vec<pb::DossierEvent>,
    state: Option<DossierState>,
    now: Instant,
}

impl Dossier {
    fn new() -> Self {
        Self {
            calendar: WorkingCalendar::standard(),
            events: Vec::new(),
            state: None,
            // Monday 4 March 2024, 08:00 Vietnam time.
            now: vn(2024, 3, 4, 8, 0),
        }
    }

    fn at(&mut self, now: Instant) -> &mut Self {
        self.now = now;
        self
    }

    fn decide(&self, command: &Command) -> Result<Vec<Payload>, DomainError> {
        let ctx = DecisionContext {
            now: self.now,
            calendar: &self.calendar,
        };
        decide(ID, self.state.as_ref(), command, &ctx)
    }

    /// Decides `command` and appends its events; checks that the incremental state equals a
    /// fold of the whole history.
    fn run(&mut self, command: &Command) -> Result<&DossierState, DomainError> {
        let payloads = self.decide(command)?;
        assert_eq!(payloads.len(), 1, "{} decides one event", command.name());
        for payload in payloads {
            let event = pb::DossierEvent {
                event_id: format!("event-{}", self.events.len() + 1),
                dossier_id: ID.into(),
                seq: self.events.len() as u64 + 1,
                recorded_at: Some(to_timestamp(self.now)),
                stated_at: None,
                actor: None,
                request_id: format!("request-{}", self.events.len() + 1),
                rules: None,
                traceparent: String::new(),
                payload: Some(payload),
            };
            match self.state.as_mut() {
                Some(state) => state.apply(&event).expect("the event folds"),
                None => {
                    self.state = DossierState::fold([&event]).expect("the creation folds");
                }
            }
            self.events.push(event);
        }
        let refolded = DossierState::fold(&self.events).expect("the history folds");
        assert_eq!(refolded.as_ref(), self.state.as_ref(), "fold == apply");
        Ok(self.state.as_ref().expect("a dossier exists"))
    }

    fn ok(&mut self, command: &Command) -> &DossierState {
        match self.run(command) {
            Ok(state) => state,
            Err(e) => panic!("{} failed: {e}", command.name()),
        }
    }

    fn state(&self) -> &DossierState {
        self.state.as_ref().expect("a dossier exists")
    }
}

/// Every command on an existing dossier, in a form legal wherever its status allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AcceptOnline,
    Refuse,
    Forward,
    RequestSupplement,
    ReceiveSupplement,
    RequestFees,
    RecordPayment,
    DigitizeComponent,
    DigitizeResult,
    Resolve,
    ReturnResult,
    Withdraw,
    StopProcessing,
    ExtendDueDate,
    ChangeProcedure,
    MarkLate,
    MarkDueSoon,
}

const ALL_CMDS: [Cmd; 17] = [
    Cmd::AcceptOnline,
    Cmd::Refuse,
    Cmd::Forward,
    Cmd::RequestSupplement,
    Cmd::ReceiveSupplement,
    Cmd::RequestFees,
    Cmd::RecordPayment,
    Cmd::DigitizeComponent,
    Cmd::DigitizeResult,
    Cmd::Resolve,
    Cmd::ReturnResult,
    Cmd::Withdraw,
    Cmd::StopProcessing,
    Cmd::ExtendDueDate,
    Cmd::ChangeProcedure,
    Cmd::MarkLate,
    Cmd::MarkDueSoon,
];

const ALL_STATUSES: [DossierStatus; 10] = [
    S::SubmittedOnline,
    S::Accepted,
    S::Refused,
    S::Processing,
    S::SupplementRequested,
    S::FeesRequested,
    S::Withdrawn,
    S::Stopped,
    S::Resolved,
    S::ResultReturned,
];

impl Cmd {
    /// docs/domain.md §2 and the proto's RPC comments, as a table.
    fn expected_allowed(self) -> &'static [DossierStatus] {
        const OPEN: &[DossierStatus] = &[
            S::Accepted,
            S::Processing,
            S::SupplementRequested,
            S::FeesRequested,
        ];
        const NOT_ENDED: &[DossierStatus] = &[
            S::SubmittedOnline,
            S::Accepted,
            S::Processing,
            S::SupplementRequested,
            S::FeesRequested,
        ];
        match self {
            Cmd::AcceptOnline => &[S::SubmittedOnline],
            Cmd::Refuse => &[S::SubmittedOnline, S::SupplementRequested],
            Cmd::Forward | Cmd::RequestSupplement | Cmd::RequestFees | Cmd::Resolve => {
                &[S::Accepted, S::Processing]
            }
            Cmd::ReceiveSupplement => &[S::SupplementRequested],
            Cmd::RecordPayment => &[S::Accepted, S::Processing, S::FeesRequested, S::Resolved],
            Cmd::DigitizeComponent | Cmd::Withdraw | Cmd::ChangeProcedure => NOT_ENDED,
            Cmd::DigitizeResult => &[S::Processing, S::Resolved],
            Cmd::ReturnResult => &[S::Resolved],
            Cmd::StopProcessing | Cmd::ExtendDueDate => OPEN,
            // No `late` while the applicant supplements: the office's clock is not running.
            Cmd::MarkLate | Cmd::MarkDueSoon => &[S::Accepted, S::Processing, S::FeesRequested],
        }
    }

    /// The command, with content that passes every check beyond the status for `state`.
    fn command(self, state: &DossierState, now: Instant) -> Command {
        let due = state.due_at.unwrap_or(now);
        match self {
            Cmd::AcceptOnline => Command::AcceptOnline,
            Cmd::Refuse => Command::Refuse {
                reason: "không đủ điều kiện".into(),
            },
            Cmd::Forward => Command::Forward {
                department: "Phòng Tư pháp".into(),
                note: String::new(),
                step_time: Some(ProcessingTime::working_days_hundredths(50)),
            },
            Cmd::RequestSupplement => Command::RequestSupplement {
                reason: "thiếu giấy tờ".into(),
            },
            Cmd::ReceiveSupplement => Command::ReceiveSupplement {
                note: String::new(),
            },
            Cmd::RequestFees => Command::RequestFees {
                amount_vnd: 50_000,
                description: String::new(),
            },
            Cmd::RecordPayment => Command::RecordPayment {
                amount_vnd: 50_000,
                method: PaymentMethod::NationalPortal,
                reference: String::new(),
            },
            Cmd::DigitizeComponent | Cmd::DigitizeResult => Command::RecordDigitization {
                target: if self == Cmd::DigitizeComponent {
                    DigitizationTarget::Component
                } else {
                    DigitizationTarget::Result
                },
                document_name: "Tờ khai".into(),
                reused: false,
                file_url: String::new(),
            },
            Cmd::Resolve => Command::Resolve {
                electronic_result: true,
                note: String::new(),
            },
            Cmd::ReturnResult => Command::ReturnResult {
                note: String::new(),
            },
            Cmd::Withdraw => Command::Withdraw {
                reason: "rút".into(),
            },
            Cmd::StopProcessing => Command::StopProcessing {
                reason: "dừng".into(),
            },
            Cmd::ExtendDueDate => Command::ExtendDueDate {
                new_appointment_at: due + Duration::days(7),
                reason: "xin lỗi".into(),
            },
            Cmd::ChangeProcedure => Command::ChangeProcedure {
                procedure: procedure("1.000894"),
                reason: "đổi".into(),
            },
            Cmd::MarkLate => Command::MarkLate { due_at: due },
            Cmd::MarkDueSoon => Command::MarkDueSoon { due_at: due },
        }
    }
}

/// A dossier (1-working-day procedure, accepted Monday 08:00, due Tuesday 08:00) driven to
/// `status`.
fn reach(status: DossierStatus) -> Dossier {
    let mut d = Dossier::new();
    let online = matches!(status, S::SubmittedOnline | S::Refused);
    if online {
        d.ok(&Command::SubmitOnline(new_dossier("1.001193")));
    } else {
        d.ok(&Command::Receive(new_dossier("1.001193"), Channel::Counter));
    }
    let path: &[Cmd] = match status {
        S::Refused => &[Cmd::Refuse],
        S::Processing => &[Cmd::Forward],
        S::SupplementRequested => &[Cmd::RequestSupplement],
        S::FeesRequested => &[Cmd::RequestFees],
        S::Withdrawn => &[Cmd::Withdraw],
        S::Stopped => &[Cmd::StopProcessing],
        S::Resolved => &[Cmd::Resolve],
        S::ResultReturned => &[Cmd::Resolve, Cmd::ReturnResult],
        _ => &[],
    };
    for cmd in path {
        let command = cmd.command(d.state(), d.now);
        d.ok(&command);
    }
    assert_eq!(d.state().status, status);
    d
}

#[test]
fn every_status_times_every_command_follows_the_table() {
    let mut legal = 0;
    let mut illegal = 0;
    for status in ALL_STATUSES {
        for cmd in ALL_CMDS {
            let mut d = reach(status);
            // After the due date, so that `mark late` is legal where its status allows it.
            d.at(vn(2024, 3, 5, 9, 0));
            let command = cmd.command(d.state(), d.now);
            assert_eq!(
                command.allowed_in(),
                cmd.expected_allowed(),
                "Command::allowed_in of {cmd:?} differs from the lifecycle table"
            );
            let result = d.decide(&command);
            if cmd.expected_allowed().contains(&status) {
                legal += 1;
                let payloads = result.unwrap_or_else(|e| panic!("{cmd:?} in {status:?}: {e}"));
                assert_eq!(payloads.len(), 1);
                // The event the command produced is legal exactly where the command is.
                assert_eq!(
                    event_allowed_in(&payloads[0]).unwrap_or(&[]),
                    cmd.expected_allowed(),
                    "event_allowed_in of {cmd:?}'s event"
                );
                let version = d.state().version;
                assert_eq!(d.run(&command).map(|s| s.version).ok(), Some(version + 1));
            } else {
                illegal += 1;
                let error = result.expect_err("illegal");
                assert_eq!(
                    error,
                    DomainError::IllegalTransition {
                        command: command.name(),
                        dossier_id: ID.into(),
                        status: describe_status(status),
                        allowed: cmd
                            .expected_allowed()
                            .iter()
                            .map(|s| describe_status(*s))
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                    "{cmd:?} in {status:?}"
                );
                assert!(
                    error
                        .to_string()
                        .contains(&format!("it is {}", describe_status(status))),
                    "{error}"
                );
            }
        }
    }
    assert_eq!((legal, illegal), (48, 122));
}

#[test]
fn creation_needs_no_dossier_and_everything_else_needs_one() {
    let d = Dossier::new();
    for cmd in ALL_CMDS {
        let state = reach(S::Accepted);
        let command = cmd.command(state.state(), d.now);
        assert_eq!(
            d.decide(&command),
            Err(DomainError::NotFound(ID.into())),
            "{cmd:?}"
        );
    }
    for status in ALL_STATUSES {
        let d = reach(status);
        for command in [
            Command::SubmitOnline(new_dossier("1.001193")),
            Command::Receive(new_dossier("1.001193"), Channel::Postal),
        ] {
            assert_eq!(
                d.decide(&command),
                Err(DomainError::AlreadyExists(ID.into())),
                "{} in {status:?}",
                command.name()
            );
        }
    }
}

#[test]
fn the_fold_follows_each_event() {
    let mut d = Dossier::new();
    let accepted = d.ok(&Command::Receive(new_dossier("2.000908"), Channel::Postal));
    assert_eq!(accepted.status, S::Accepted);
    assert_eq!(accepted.version, 1);
    assert_eq!(accepted.channel, Channel::Postal);
    assert_eq!(accepted.accepted_at, Some(vn(2024, 3, 4, 8, 0)));
    // 10 working days from Monday 08:00: Monday 18 March 08:00.
    assert_eq!(accepted.due_at, Some(vn(2024, 3, 18, 8, 0)));
    assert!(accepted.is_open());
    let steps: Vec<(Cmd, DossierStatus)> = vec![
        (Cmd::DigitizeComponent, S::Accepted),
        (Cmd::Forward, S::Processing),
        (Cmd::RequestFees, S::FeesRequested),
        (Cmd::DigitizeComponent, S::FeesRequested),
        (Cmd::RecordPayment, S::Processing),
        (Cmd::RequestSupplement, S::SupplementRequested),
        (Cmd::ExtendDueDate, S::SupplementRequested),
        (Cmd::ReceiveSupplement, S::Processing),
        (Cmd::DigitizeResult, S::Processing),
        (Cmd::Resolve, S::Resolved),
        (Cmd::RecordPayment, S::Resolved),
        (Cmd::DigitizeResult, S::Resolved),
        (Cmd::ReturnResult, S::ResultReturned),
    ];
    for (i, (cmd, status)) in steps.into_iter().enumerate() {
        d.now += Duration::minutes(30);
        let command = cmd.command(d.state(), d.now);
        let now = d.now;
        let state = d.ok(&command);
        assert_eq!(state.status, status, "after {cmd:?}");
        assert_eq!(state.version, i as u64 + 2);
        assert_eq!(state.updated_at, now);
        assert_eq!(
            event_type_name(
                d.events
                    .last()
                    .and_then(|e| e.payload.as_ref())
                    .expect("payload")
            ),
            match cmd {
                Cmd::DigitizeComponent | Cmd::DigitizeResult => "digitized",
                Cmd::Forward => "forwarded",
                Cmd::RequestFees => "fees_requested",
                Cmd::RecordPayment => "payment_recorded",
                Cmd::RequestSupplement => "supplement_requested",
                Cmd::ExtendDueDate => "due_date_extended",
                Cmd::ReceiveSupplement => "supplement_received",
                Cmd::Resolve => "resolved",
                Cmd::ReturnResult => "result_returned",
                _ => unreachable!("not in this path"),
            }
        );
    }
    let state = d.state();
    // "Tờ khai" digitised twice is one document, not two (digitisation counts documents).
    assert_eq!(state.digitized_components(), 1);
    assert_eq!(state.digitized_documents, ["tờ khai"]);
    assert!(state.result_digitized);
    assert!(state.electronic_result);
    assert_eq!(state.fees_requested_vnd, 50_000);
    assert_eq!(state.paid_vnd, 100_000);
    assert!(state.paid_online);
    assert_eq!(state.supplements.len(), 1);
    assert!(state.appointment_at.is_some());
    assert!(is_terminal(state.status));
    assert!(!state.is_open());
}

#[test]
fn resolved_then_returned_keeps_the_end_at_the_resolution() {
    let mut d = reach(S::Accepted);
    d.at(vn(2024, 3, 4, 15, 0));
    let resolved = d.ok(&Cmd::Resolve.command(d.state(), d.now)).ended_at;
    assert_eq!(resolved, Some(vn(2024, 3, 4, 15, 0)));
    d.at(vn(2024, 3, 8, 9, 0));
    let state = d.ok(&Cmd::ReturnResult.command(d.state(), d.now));
    assert_eq!(state.status, S::ResultReturned);
    assert_eq!(
        state.ended_at,
        Some(vn(2024, 3, 4, 15, 0)),
        "9 wins over 10"
    );
    assert_eq!(state.updated_at, vn(2024, 3, 8, 9, 0));
}

#[test]
fn supplements_and_fees_resume_the_previous_status() {
    for from in [S::Accepted, S::Processing] {
        let mut d = reach(from);
        let state = d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
        assert_eq!(state.status, S::SupplementRequested);
        assert_eq!(state.resume_status, from);
        let state = d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
        assert_eq!(state.status, from, "supplement from {from:?}");

        let state = d.ok(&Cmd::RequestFees.command(d.state(), d.now));
        assert_eq!(state.status, S::FeesRequested);
        assert_eq!(state.resume_status, from);
        // Digitising while waiting does not lose the way back.
        d.ok(&Cmd::DigitizeComponent.command(d.state(), d.now));
        let state = d.ok(&Cmd::RecordPayment.command(d.state(), d.now));
        assert_eq!(state.status, from, "fees from {from:?}");
        // A payment outside a fee request does not move the status.
        let state = d.ok(&Cmd::RecordPayment.command(d.state(), d.now));
        assert_eq!(state.status, from);
    }
}

#[test]
fn supplement_pause_and_restart_move_the_due_date() {
    // Pause: due Tuesday 08:00; asked Monday 09:00, received Wednesday 09:00 (16 working hours
    // paused): due Thursday 7 March 08:00.
    let mut d = reach(S::Accepted);
    d.at(vn(2024, 3, 4, 9, 0));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    d.at(vn(2024, 3, 6, 9, 0));
    let payloads = d
        .decide(&Cmd::ReceiveSupplement.command(d.state(), d.now))
        .expect("legal");
    let Payload::SupplementReceived(received) = &payloads[0] else {
        panic!("{payloads:?}")
    };
    assert_eq!(received.request_number, 1);
    assert_eq!(received.rule(), pb::SupplementRule::Pause);
    assert_eq!(
        received.due_before,
        Some(to_timestamp(vn(2024, 3, 5, 8, 0)))
    );
    assert_eq!(received.due_after, Some(to_timestamp(vn(2024, 3, 7, 8, 0))));
    let state = d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    assert_eq!(state.due_at, Some(vn(2024, 3, 7, 8, 0)));
    assert_eq!(state.supplements[0].received_at, Some(vn(2024, 3, 6, 9, 0)));

    // Restart (1.001612, 3 working days): a fresh due date from the receipt, Wednesday 15:00
    // + 24 h = Monday 11 March 15:00.
    let mut d = Dossier::new();
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    d.at(vn(2024, 3, 6, 15, 0));
    let state = d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    assert_eq!(state.due_at, Some(vn(2024, 3, 11, 15, 0)));
}

#[test]
fn extensions_record_the_appointment_and_keep_the_due_date() {
    let mut d = reach(S::Accepted);
    let due = d.state().due_at.expect("due");
    let too_early = Command::ExtendDueDate {
        new_appointment_at: due,
        reason: "x".into(),
    };
    assert!(matches!(
        d.decide(&too_early),
        Err(DomainError::InvalidField {
            field: "new_appointment_at",
            ..
        })
    ));
    // Monday 08:00, due Tuesday 08:00: exactly one working day ahead, in time.
    let payloads = d
        .decide(&Cmd::ExtendDueDate.command(d.state(), d.now))
        .expect("legal");
    let Payload::DueDateExtended(extended) = &payloads[0] else {
        panic!("{payloads:?}")
    };
    assert!(extended.issued_in_time);
    d.at(vn(2024, 3, 4, 8, 1));
    let payloads = d
        .decide(&Cmd::ExtendDueDate.command(d.state(), d.now))
        .expect("legal");
    let Payload::DueDateExtended(extended) = &payloads[0] else {
        panic!("{payloads:?}")
    };
    assert!(!extended.issued_in_time, "a minute less than a working day");
    let state = d.ok(&Cmd::ExtendDueDate.command(d.state(), d.now));
    assert_eq!(state.due_at, Some(due));
    assert_eq!(state.appointment_at, Some(due + Duration::days(7)));

    // No due date, nothing to extend.
    let mut d = Dossier::new();
    d.ok(&Command::Receive(new_dossier("2.001157"), Channel::Counter));
    assert!(matches!(
        d.decide(&Cmd::ExtendDueDate.command(d.state(), d.now)),
        Err(DomainError::Precondition { .. })
    ));
}

#[test]
fn late_is_marked_once_per_due_date_and_not_before_it() {
    let mut d = reach(S::Accepted);
    let due = d.state().due_at.expect("due");
    let late = Command::MarkLate { due_at: due };
    assert!(matches!(
        d.decide(&late),
        Err(DomainError::Precondition { .. })
    ));
    d.at(due + Duration::minutes(1));
    let state = d.ok(&late);
    assert_eq!(state.late_for_due, Some(due));
    assert_eq!(state.status, S::Accepted);
    assert!(matches!(
        d.decide(&late),
        Err(DomainError::Precondition { .. })
    ));
    assert!(matches!(
        d.decide(&Command::MarkLate {
            due_at: due + Duration::hours(1)
        }),
        Err(DomainError::Precondition { .. })
    ));
}

#[test]
fn online_submissions_get_their_due_date_at_acceptance() {
    let mut d = Dossier::new();
    let state = d.ok(&Command::SubmitOnline(new_dossier("1.002804")));
    assert_eq!(state.status, S::SubmittedOnline);
    assert_eq!(state.channel, Channel::Online);
    assert_eq!(state.submitted_at, Some(vn(2024, 3, 4, 8, 0)));
    assert!(state.due_at.is_none() && state.accepted_at.is_none());
    assert!(!state.is_open());
    // 3 working days online, accepted Tuesday 5 March 10:00: Friday 8 March 10:00.
    d.at(vn(2024, 3, 5, 10, 0));
    let state = d.ok(&Command::AcceptOnline);
    assert_eq!(state.status, S::Accepted);
    assert_eq!(state.accepted_at, Some(vn(2024, 3, 5, 10, 0)));
    assert_eq!(state.due_at, Some(vn(2024, 3, 8, 10, 0)));
    assert_eq!(state.submitted_at, Some(vn(2024, 3, 4, 8, 0)));
}

#[test]
fn the_first_end_of_processing_is_kept() {
    for (cmd, status) in [
        (Cmd::Withdraw, S::Withdrawn),
        (Cmd::StopProcessing, S::Stopped),
        (Cmd::Resolve, S::Resolved),
    ] {
        let mut d = reach(S::Processing);
        d.at(vn(2024, 3, 4, 10, 0));
        let state = d.ok(&cmd.command(d.state(), d.now));
        assert_eq!(state.status, status);
        assert_eq!(state.ended_at, Some(vn(2024, 3, 4, 10, 0)));
        assert!(state.current_department.is_none() && state.step_due_at.is_none());
    }
    let mut d = reach(S::SupplementRequested);
    d.at(vn(2024, 3, 6, 10, 0));
    let state = d.ok(&Cmd::Refuse.command(d.state(), d.now));
    assert_eq!(state.status, S::Refused);
    assert_eq!(state.ended_at, Some(vn(2024, 3, 6, 10, 0)));
}

#[test]
fn histories_that_cannot_be_folded_are_errors() {
    let mut d = reach(S::Processing);
    d.ok(&Cmd::DigitizeComponent.command(d.state(), d.now));
    let events = d.events.clone();
    assert_eq!(DossierState::fold(&[]).expect("empty"), None);

    let mut gap = events.clone();
    gap.remove(1);
    assert!(matches!(
        DossierState::fold(&gap),
        Err(FoldError::Gap {
            expected: 2,
            found: 3,
            ..
        })
    ));
    assert!(matches!(
        DossierState::fold(&events[1..]),
        Err(FoldError::Gap {
            expected: 1,
            found: 2,
            ..
        })
    ));
    let mut no_creation = events[1..].to_vec();
    for (i, event) in no_creation.iter_mut().enumerate() {
        event.seq = i as u64 + 1;
    }
    assert!(matches!(
        DossierState::fold(&no_creation),
        Err(FoldError::NoCreation {
            event_type: "forwarded",
            ..
        })
    ));
    let mut twice = events.clone();
    twice[1].payload = twice[0].payload.clone();
    assert!(matches!(
        DossierState::fold(&twice),
        Err(FoldError::NoCreation {
            event_type: "received",
            ..
        })
    ));
    let mut no_payload = events.clone();
    no_payload[2].payload = None;
    assert!(matches!(
        DossierState::fold(&no_payload),
        Err(FoldError::NoPayload { seq: 3, .. })
    ));
    let mut no_time = events;
    no_time[0].recorded_at = None;
    assert!(matches!(
        DossierState::fold(&no_time),
        Err(FoldError::NoTime { seq: 1, .. })
    ));
}

#[test]
fn lateness_cannot_be_erased_by_a_supplement_asked_after_the_due_date() {
    // Restart rule (1.001612, 3 working days): accepted Monday 4 March 2024 09:00, due
    // Thursday 7 March 09:00, `late` on Thursday 7, a supplement asked on Tuesday 12 and
    // received on Thursday 14 10:00 (a restart would give a fresh due date), resolved on
    // Friday 15 16:00: late, and the due date never moved.
    let mut d = Dossier::new();
    d.at(vn(2024, 3, 4, 9, 0));
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    let due = vn(2024, 3, 7, 9, 0);
    assert_eq!(d.state().due_at, Some(due));
    d.at(vn(2024, 3, 7, 10, 0));
    d.ok(&Command::MarkLate { due_at: due });
    d.at(vn(2024, 3, 12, 9, 0));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    d.at(vn(2024, 3, 14, 10, 0));
    let state = d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    assert_eq!(
        state.due_at,
        Some(due),
        "the restart did not move the due date"
    );
    d.at(vn(2024, 3, 15, 16, 0));
    let state = d.ok(&Cmd::Resolve.command(d.state(), d.now)).clone();
    let ended = state.ended_at.expect("resolved");
    assert_eq!(state.outcome(&d.calendar, ended), Outcome::Late);
    let judged = state.judgement(&d.calendar, ended);
    assert_eq!(judged.outcome, Outcome::Late);

    // Judged while waiting for the supplement, the dossier is already late, not ended early.
    let mut d = Dossier::new();
    d.at(vn(2024, 3, 4, 9, 0));
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    d.at(vn(2024, 3, 12, 9, 0));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    let judged = d.state().judgement(&d.calendar, vn(2024, 3, 13, 9, 0));
    assert_eq!(judged.outcome, Outcome::Late);
    assert_eq!(judged.reason, OutcomeReason::SupplementRequestedAfterDue);

    // The same request before the due date restarts the clock as the rule says.
    let mut d = Dossier::new();
    d.at(vn(2024, 3, 4, 9, 0));
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    d.at(vn(2024, 3, 5, 9, 0));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    d.at(vn(2024, 3, 14, 10, 0));
    let state = d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    assert_eq!(state.due_at, Some(vn(2024, 3, 19, 10, 0)));
}

#[test]
fn an_extension_or_a_procedure_change_after_the_due_date_moves_nothing() {
    // 1.001193, 1 working day: accepted Monday 08:00, due Tuesday 08:00.
    let mut d = reach(S::Accepted);
    let due = d.state().due_at.expect("due");
    d.at(vn(2024, 3, 6, 9, 0));
    let payloads = d
        .decide(&Cmd::ExtendDueDate.command(d.state(), d.now))
        .expect("an apology after the due date is recorded");
    let Payload::DueDateExtended(extended) = &payloads[0] else {
        panic!("{payloads:?}")
    };
    assert!(!extended.issued_in_time);
    d.ok(&Cmd::ExtendDueDate.command(d.state(), d.now));
    // A change to a longer procedure after the due date keeps the due date too.
    let state = d
        .ok(&Cmd::ChangeProcedure.command(d.state(), d.now))
        .clone();
    assert_eq!(state.due_at, Some(due));
    d.at(vn(2024, 3, 7, 9, 0));
    let state = d.ok(&Cmd::Resolve.command(d.state(), d.now)).clone();
    assert_eq!(
        state.outcome(&d.calendar, state.ended_at.expect("ended")),
        Outcome::Late
    );
}

#[test]
fn digitisation_counts_distinct_documents_not_events() {
    // Two components declared; "Tờ khai" digitised twice (once with other spacing and case)
    // is one of two, so the dossier is not fully digitised.
    let mut d = reach(S::Accepted);
    for name in ["Tờ khai", " tờ khai "] {
        d.ok(&Command::RecordDigitization {
            target: DigitizationTarget::Component,
            document_name: name.into(),
            reused: false,
            file_url: String::new(),
        });
    }
    d.ok(&Cmd::Resolve.command(d.state(), d.now));
    d.ok(&Cmd::DigitizeResult.command(d.state(), d.now));
    assert_eq!(d.state().digitized_components(), 1);
    assert!(!d.state().fully_digitized(), "1 of 2 components");

    let mut d = reach(S::Accepted);
    for (name, reused) in [
        ("Tờ khai", false),
        ("Tờ khai", false),
        ("Giấy chứng minh", true),
    ] {
        d.ok(&Command::RecordDigitization {
            target: DigitizationTarget::Component,
            document_name: name.into(),
            reused,
            file_url: String::new(),
        });
    }
    assert_eq!(d.state().digitized_components(), 2);
    assert_eq!(d.state().reused_components(), 1);
    d.ok(&Cmd::Resolve.command(d.state(), d.now));
    assert!(
        !d.state().fully_digitized(),
        "the result is not digitised yet"
    );
    d.ok(&Cmd::DigitizeResult.command(d.state(), d.now));
    assert!(d.state().fully_digitized());
}

#[test]
fn a_due_date_in_a_year_without_a_holiday_table_is_provisional() {
    // 1.001612, 3 working days. Inside the built-in tables: checked.
    let mut d = Dossier::new();
    d.at(vn(2027, 6, 1, 9, 0));
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    assert!(!d.state().due_provisional);
    // Received on the last working afternoon of 2027, due in 2028 (no table): provisional,
    // on the event too.
    let mut d = Dossier::new();
    d.at(vn(2027, 12, 31, 15, 0));
    d.ok(&Command::Receive(new_dossier("1.001612"), Channel::Counter));
    assert!(d.state().due_provisional);
    let Some(Payload::Received(received)) = &d.events[0].payload else {
        panic!("{:?}", d.events[0])
    };
    assert!(received.due_provisional);
    // A year before the tables (2022): provisional as well.
    let mut d = Dossier::new();
    d.at(vn(2022, 4, 29, 9, 0));
    d.ok(&Command::Receive(new_dossier("1.001193"), Channel::Counter));
    assert!(d.state().due_provisional);
}

#[test]
fn an_open_dossier_has_only_a_provisional_outcome() {
    // Waiting for a supplement asked in time: as a period ending now would count it (early),
    // but the dossier is open, so the judgement is the reason, not a final outcome.
    let mut d = reach(S::Accepted);
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    let judged = d.state().judgement(&d.calendar, vn(2024, 3, 4, 10, 0));
    assert_eq!(judged.reason, OutcomeReason::WaitingForSupplement);
    assert!(d.state().is_open());
    // Asked twice: overdue before its due date, and the reason says why.
    d.at(vn(2024, 3, 4, 9, 0));
    d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    d.ok(&Cmd::RequestSupplement.command(d.state(), d.now));
    d.ok(&Cmd::ReceiveSupplement.command(d.state(), d.now));
    let judged = d.state().judgement(&d.calendar, vn(2024, 3, 4, 9, 30));
    assert_eq!(judged.outcome, Outcome::InProgress { overdue: true });
    assert_eq!(
        judged.reason,
        OutcomeReason::SupplementRequestedMoreThanOnce
    );
}
