//! `motcua dossier …`: one subcommand per lifecycle command, plus `show` and `list`.

use anyhow::{Context, anyhow, bail};
use chrono::{NaiveDateTime, TimeZone};
use clap::{Args, Subcommand, ValueEnum};
use motcua_domain::due_date::ProcessingTime;
use motcua_domain::lifecycle::processing_time_to_proto;
use motcua_domain::time::{to_timestamp, vietnam};
use motcua_proto::v1::{self as pb, dossier_service_client::DossierServiceClient};
use tonic::Request;
use tonic::transport::Channel;

use super::connect::{CredentialArgs, Credentials};
use super::format;

/// Connection and identity settings of the client.
#[derive(Debug, Args)]
pub struct DossierArgs {
    /// The node's gRPC address.
    #[arg(
        long,
        env = "MOTCUA_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,

    #[command(flatten)]
    pub credentials: CredentialArgs,

    /// Officer id, for a node in trusted-metadata mode only (a node that verifies tokens
    /// records the token's subject).
    #[arg(long, env = "MOTCUA_OFFICER", default_value = "cli", global = true)]
    pub officer: String,

    /// The agency id of the unit the officer acts for (trusted-metadata mode only).
    #[arg(long = "officer-unit", env = "MOTCUA_OFFICER_UNIT", global = true)]
    pub officer_unit: Option<String>,

    /// Print JSON instead of a readable view.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub action: Action,
}

/// Fields every command may carry.
#[derive(Debug, Args)]
pub struct CommandOptions {
    /// Request id (default: a fresh one). Re-run with the same id to retry safely.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Fail with ABORTED unless the dossier is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ApplicantKind {
    Person,
    Business,
    StateAgency,
    Other,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReceiveChannel {
    Counter,
    Postal,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    Offline,
    NationalPortal,
    ProvincialGateway,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    Component,
    Result,
}

/// A new dossier's fields.
#[derive(Debug, Args)]
pub struct NewDossierArgs {
    /// National procedure code, e.g. 2.000908.
    #[arg(long)]
    pub procedure: String,
    /// Agency id of the receiving one-stop unit, e.g. 000.00.01.H22.
    #[arg(long)]
    pub unit: String,
    /// Agency id of the competent authority (default: the receiving unit).
    #[arg(long)]
    pub authority: Option<String>,
    /// Dossier code to use (default: the server allocates the next one for today).
    #[arg(long)]
    pub code: Option<String>,
    #[arg(long, value_enum, default_value = "person")]
    pub applicant_type: ApplicantKind,
    /// Applicant name.
    #[arg(long)]
    pub applicant_name: String,
    /// Citizen identity number (12 digits) or organisation code.
    #[arg(long)]
    pub applicant_id: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    /// Number of component documents.
    #[arg(long, default_value_t = 1)]
    pub components: u32,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Receive and accept a dossier at the counter or by post (status 2).
    Receive {
        #[command(flatten)]
        dossier: NewDossierArgs,
        #[arg(long, value_enum, default_value = "counter")]
        channel: ReceiveChannel,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Record an online submission (status 1).
    SubmitOnline {
        #[command(flatten)]
        dossier: NewDossierArgs,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Accept an online submission (status 1 -> 2).
    Accept {
        dossier_id: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Refuse a submission, or close a dossier whose supplement never came (status 3).
    Refuse {
        dossier_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Hand the dossier to a department for a step (status 4).
    Forward {
        dossier_id: String,
        #[arg(long)]
        department: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Time allocated to the step, e.g. "2.5 working_days" or "4 working_hours".
        #[arg(long)]
        step_time: Option<String>,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Ask the applicant to supplement the dossier (status 5).
    RequestSupplement {
        dossier_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// The supplement arrived.
    ReceiveSupplement {
        dossier_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Ask for fees (status 6).
    RequestFees {
        dossier_id: String,
        /// Amount in Vietnamese đồng.
        #[arg(long)]
        amount: u64,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Record a payment.
    Pay {
        dossier_id: String,
        #[arg(long)]
        amount: u64,
        #[arg(long, value_enum, default_value = "offline")]
        method: Method,
        #[arg(long, default_value = "")]
        reference: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Record the digitisation of a component or of the result.
    Digitize {
        dossier_id: String,
        #[arg(long, value_enum)]
        target: Target,
        #[arg(long)]
        document: String,
        /// The file was reused from data already digitised.
        #[arg(long)]
        reused: bool,
        #[arg(long, default_value = "")]
        url: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Processing finished (status 9).
    Resolve {
        dossier_id: String,
        /// The result is an electronic document.
        #[arg(long)]
        electronic_result: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// The result was handed to the applicant (status 10).
    Return {
        dossier_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Withdrawn at the applicant's request (status 7).
    Withdraw {
        dossier_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Processing stopped by the authority (status 8).
    Stop {
        dossier_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Apologise with a new appointment date (Vietnam time, "YYYY-MM-DD HH:MM").
    Extend {
        dossier_id: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Change the procedure case; the due date is recomputed.
    ChangeProcedure {
        dossier_id: String,
        #[arg(long)]
        procedure: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        options: CommandOptions,
    },
    /// Show a dossier: state, due date, outcome so far and history.
    Show { dossier_id: String },
    /// List dossiers by unit, status and overdue-ness.
    List {
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        authority: Option<String>,
        /// Portal status codes 1-10 (repeatable).
        #[arg(long = "status")]
        statuses: Vec<i32>,
        /// Only unfinished dossiers past their due date, oldest first.
        #[arg(long)]
        overdue: bool,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// Runs a client command; returns the process exit code (0 ok, 1 refused or failed).
pub async fn run(args: DossierArgs) -> i32 {
    match execute(args).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

struct Client {
    inner: DossierServiceClient<Channel>,
    credentials: Credentials,
    json: bool,
}

impl Client {
    fn request<T>(&self, body: T) -> Request<T> {
        self.credentials.request(body)
    }

    fn print_command(
        &self,
        result: Result<tonic::Response<pb::CommandResponse>, tonic::Status>,
    ) -> anyhow::Result<()> {
        let response = result.map_err(format::status_error)?.into_inner();
        if self.json {
            println!("{}", format::command_json(&response));
        } else {
            print!("{}", format::command_text(&response));
        }
        Ok(())
    }
}

fn meta(options: &CommandOptions) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: options
            .request_id
            .clone()
            .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::now_v7())),
        expected_version: options.expected_version,
        stated_at: None,
    })
}

fn new_dossier(args: &NewDossierArgs) -> Option<pb::NewDossier> {
    let applicant_type = match args.applicant_type {
        ApplicantKind::Person => pb::ApplicantType::Person,
        ApplicantKind::Business => pb::ApplicantType::Business,
        ApplicantKind::StateAgency => pb::ApplicantType::StateAgency,
        ApplicantKind::Other => pb::ApplicantType::Other,
    };
    Some(pb::NewDossier {
        dossier_code: args.code.clone().unwrap_or_default(),
        procedure_code: args.procedure.clone(),
        receiving_unit: args.unit.clone(),
        competent_authority: args.authority.clone().unwrap_or_default(),
        applicant: Some(pb::Applicant {
            r#type: applicant_type as i32,
            name: args.applicant_name.clone(),
            identity_number: args.applicant_id.clone(),
            phone: args.phone.clone(),
        }),
        component_count: args.components,
    })
}

/// "2026-12-01 17:00" in Vietnam time.
fn parse_vietnam_time(text: &str) -> anyhow::Result<prost_types::Timestamp> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(&format!("{text} 17:00"), "%Y-%m-%d %H:%M"))
        .with_context(|| format!("'{text}' is not a Vietnam time like '2026-12-01 17:00'"))?;
    let local = vietnam()
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| anyhow!("'{text}' is not a valid time"))?;
    Ok(to_timestamp(local.with_timezone(&chrono::Utc)))
}

async fn execute(args: DossierArgs) -> anyhow::Result<()> {
    let channel = args.credentials.connect(&args.server).await?;
    let mut credentials = args
        .credentials
        .credentials()?
        .with_header(motcua_intake::actor::OFFICER_HEADER, &args.officer)?;
    if let Some(unit) = &args.officer_unit {
        credentials = credentials.with_header(motcua_intake::actor::UNIT_HEADER, unit)?;
    }
    let mut client = Client {
        inner: DossierServiceClient::new(channel),
        credentials,
        json: args.json,
    };
    match args.action {
        Action::Receive {
            dossier,
            channel,
            options,
        } => {
            let channel = match channel {
                ReceiveChannel::Counter => pb::Channel::Counter,
                ReceiveChannel::Postal => pb::Channel::Postal,
            };
            let request = client.request(pb::ReceiveRequest {
                meta: meta(&options),
                dossier: new_dossier(&dossier),
                channel: channel as i32,
            });
            let result = client.inner.receive(request).await;
            client.print_command(result)
        }
        Action::SubmitOnline { dossier, options } => {
            let request = client.request(pb::SubmitOnlineRequest {
                meta: meta(&options),
                dossier: new_dossier(&dossier),
            });
            let result = client.inner.submit_online(request).await;
            client.print_command(result)
        }
        Action::Accept {
            dossier_id,
            options,
        } => {
            let request = client.request(pb::AcceptOnlineRequest {
                meta: meta(&options),
                dossier_id,
            });
            let result = client.inner.accept_online(request).await;
            client.print_command(result)
        }
        Action::Refuse {
            dossier_id,
            reason,
            options,
        } => {
            let request = client.request(pb::RefuseRequest {
                meta: meta(&options),
                dossier_id,
                reason,
            });
            let result = client.inner.refuse(request).await;
            client.print_command(result)
        }
        Action::Forward {
            dossier_id,
            department,
            note,
            step_time,
            options,
        } => {
            let step_time = match step_time {
                Some(text) => Some(processing_time_to_proto(
                    text.parse::<ProcessingTime>()
                        .map_err(|e| anyhow!("--step-time '{text}': {e}"))?,
                )),
                None => None,
            };
            let request = client.request(pb::ForwardRequest {
                meta: meta(&options),
                dossier_id,
                department,
                note,
                step_time,
            });
            let result = client.inner.forward(request).await;
            client.print_command(result)
        }
        Action::RequestSupplement {
            dossier_id,
            reason,
            options,
        } => {
            let request = client.request(pb::RequestSupplementRequest {
                meta: meta(&options),
                dossier_id,
                reason,
            });
            let result = client.inner.request_supplement(request).await;
            client.print_command(result)
        }
        Action::ReceiveSupplement {
            dossier_id,
            note,
            options,
        } => {
            let request = client.request(pb::ReceiveSupplementRequest {
                meta: meta(&options),
                dossier_id,
                note,
            });
            let result = client.inner.receive_supplement(request).await;
            client.print_command(result)
        }
        Action::RequestFees {
            dossier_id,
            amount,
            description,
            options,
        } => {
            let request = client.request(pb::RequestFeesRequest {
                meta: meta(&options),
                dossier_id,
                amount_vnd: amount,
                description,
            });
            let result = client.inner.request_fees(request).await;
            client.print_command(result)
        }
        Action::Pay {
            dossier_id,
            amount,
            method,
            reference,
            options,
        } => {
            let method = match method {
                Method::Offline => pb::PaymentMethod::Offline,
                Method::NationalPortal => pb::PaymentMethod::NationalPortal,
                Method::ProvincialGateway => pb::PaymentMethod::ProvincialGateway,
            };
            let request = client.request(pb::RecordPaymentRequest {
                meta: meta(&options),
                dossier_id,
                amount_vnd: amount,
                method: method as i32,
                reference,
            });
            let result = client.inner.record_payment(request).await;
            client.print_command(result)
        }
        Action::Digitize {
            dossier_id,
            target,
            document,
            reused,
            url,
            options,
        } => {
            let target = match target {
                Target::Component => pb::DigitizationTarget::Component,
                Target::Result => pb::DigitizationTarget::Result,
            };
            let request = client.request(pb::RecordDigitizationRequest {
                meta: meta(&options),
                dossier_id,
                target: target as i32,
                document_name: document,
                reused,
                file_url: url,
            });
            let result = client.inner.record_digitization(request).await;
            client.print_command(result)
        }
        Action::Resolve {
            dossier_id,
            electronic_result,
            note,
            options,
        } => {
            let request = client.request(pb::ResolveRequest {
                meta: meta(&options),
                dossier_id,
                electronic_result,
                note,
            });
            let result = client.inner.resolve(request).await;
            client.print_command(result)
        }
        Action::Return {
            dossier_id,
            note,
            options,
        } => {
            let request = client.request(pb::ReturnResultRequest {
                meta: meta(&options),
                dossier_id,
                note,
            });
            let result = client.inner.return_result(request).await;
            client.print_command(result)
        }
        Action::Withdraw {
            dossier_id,
            reason,
            options,
        } => {
            let request = client.request(pb::WithdrawRequest {
                meta: meta(&options),
                dossier_id,
                reason,
            });
            let result = client.inner.withdraw(request).await;
            client.print_command(result)
        }
        Action::Stop {
            dossier_id,
            reason,
            options,
        } => {
            let request = client.request(pb::StopProcessingRequest {
                meta: meta(&options),
                dossier_id,
                reason,
            });
            let result = client.inner.stop_processing(request).await;
            client.print_command(result)
        }
        Action::Extend {
            dossier_id,
            to,
            reason,
            options,
        } => {
            let request = client.request(pb::ExtendDueDateRequest {
                meta: meta(&options),
                dossier_id,
                new_appointment_at: Some(parse_vietnam_time(&to)?),
                reason,
            });
            let result = client.inner.extend_due_date(request).await;
            client.print_command(result)
        }
        Action::ChangeProcedure {
            dossier_id,
            procedure,
            reason,
            options,
        } => {
            let request = client.request(pb::ChangeProcedureRequest {
                meta: meta(&options),
                dossier_id,
                procedure_code: procedure,
                reason,
            });
            let result = client.inner.change_procedure(request).await;
            client.print_command(result)
        }
        Action::Show { dossier_id } => {
            let request = client.request(pb::GetDossierRequest { dossier_id });
            let dossier = client
                .inner
                .get_dossier(request)
                .await
                .map_err(format::status_error)?
                .into_inner();
            if client.json {
                println!("{}", format::dossier_json(&dossier));
            } else {
                print!("{}", format::dossier_text(&dossier));
            }
            Ok(())
        }
        Action::List {
            unit,
            authority,
            statuses,
            overdue,
            page_size,
            page_token,
        } => {
            if page_size == 0 {
                bail!("--page-size must be at least 1");
            }
            let request = client.request(pb::ListDossiersRequest {
                receiving_unit: unit.unwrap_or_default(),
                competent_authority: authority.unwrap_or_default(),
                statuses,
                overdue_only: overdue,
                page_size,
                page_token,
            });
            let page = client
                .inner
                .list_dossiers(request)
                .await
                .map_err(format::status_error)?
                .into_inner();
            if client.json {
                println!("{}", format::list_json(&page));
            } else {
                print!("{}", format::list_text(&page));
            }
            Ok(())
        }
    }
}
