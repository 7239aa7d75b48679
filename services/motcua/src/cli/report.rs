//! `motcua report …`: the figures, scores, overdue dossiers and anomalies of the ReportService,
//! as a readable table, as CSV for spreadsheets, or as JSON for scripts.

use clap::{Args, Subcommand, ValueEnum};
use motcua_domain::time::{from_timestamp, to_vietnam};
use motcua_proto::v1::{self as pb, report_service_client::ReportServiceClient};
use serde_json::{Map, Value, json};

use super::format::status_error;

/// Connection and output settings.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The gRPC address of a node serving the ReportService (`motcua serve` or
    /// `motcua projector run`).
    #[arg(
        long,
        env = "MOTCUA_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,

    #[command(flatten)]
    pub credentials: super::connect::CredentialArgs,

    /// How to print: a readable `table`, `csv` (a header row, then one row per line), or `json`.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: OutputFormat,

    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChannelArg {
    Counter,
    Online,
    Postal,
}

/// Whose figures: the province (default), or one unit, authority or procedure.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ScopeArgs {
    /// A receiving one-stop unit's agency id, e.g. 000.00.01.H22.
    #[arg(long)]
    pub unit: Option<String>,
    /// A competent authority's agency id.
    #[arg(long)]
    pub authority: Option<String>,
    /// A national procedure code (dossiers count under the procedure they were received under).
    #[arg(long)]
    pub procedure: Option<String>,
}

/// A scope, a channel and a period.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only dossiers received through this channel (default: every channel).
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// Vietnam-time period: 2026-03-15 (day), 2026-03 (month), 2026-Q1 (quarter), 2026 (year)
    /// or 2026-01-01..2026-06-30 (days, both included).
    #[arg(long)]
    pub period: String,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// The period report: received, resolved (early, on time, late), rates with their parts,
    /// in progress and past due, digitisation, online payment, processing time, and the
    /// period identity.
    Rates(QueryArgs),
    /// The Decision 766 scores the events support, with their inputs.
    Scores(QueryArgs),
    /// Dossiers in progress past their due date, oldest first.
    Overdue {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long, value_enum)]
        channel: Option<ChannelArg>,
        /// How many to print at most (pages are fetched until then).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Events the projector could not apply as they were, with why.
    Anomalies {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Runs the command; the process's exit code.
pub async fn run(args: ReportArgs) -> i32 {
    match execute(args).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

async fn execute(args: ReportArgs) -> anyhow::Result<()> {
    let channel = args.credentials.connect(&args.server).await?;
    // A node in trusted-metadata mode needs a name; one that verifies tokens ignores it.
    let credentials = args
        .credentials
        .credentials()?
        .with_header(motcua_intake::actor::OFFICER_HEADER, "cli")?;
    let mut client = ReportServiceClient::new(channel);
    let out = match args.what {
        What::Rates(query) => {
            let report = client
                .get_report(credentials.request(request(&query)))
                .await
                .map_err(status_error)?
                .into_inner();
            match args.format {
                OutputFormat::Table => report_table(&report),
                OutputFormat::Csv => csv(&[report_row(&report)]),
                OutputFormat::Json => pretty(&report_json(&report)),
            }
        }
        What::Scores(query) => {
            let scores = client
                .get_scores(credentials.request(request(&query)))
                .await
                .map_err(status_error)?
                .into_inner();
            match args.format {
                OutputFormat::Table => scores_table(&scores),
                OutputFormat::Csv => csv(&scores.scores.iter().map(score_row).collect::<Vec<_>>()),
                OutputFormat::Json => pretty(&json!({
                    "report": scores.report.as_ref().map(report_json),
                    "scores": scores.scores.iter().map(|s| Value::Object(score_row(s))).collect::<Vec<_>>(),
                })),
            }
        }
        What::Overdue {
            scope,
            channel,
            limit,
        } => {
            let mut rows = Vec::new();
            let mut token = String::new();
            while rows.len() < limit {
                let page = client
                    .list_overdue(credentials.request(pb::ListOverdueRequest {
                        scope: Some(scope_of(&scope)),
                        channel: channel_of(channel) as i32,
                        page_size: (limit - rows.len()).min(1_000) as i32,
                        page_token: token,
                    }))
                    .await
                    .map_err(status_error)?
                    .into_inner();
                rows.extend(page.dossiers.iter().map(overdue_row));
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            rows.truncate(limit);
            match args.format {
                OutputFormat::Table => table(
                    &rows,
                    &format!("{} overdue dossier(s), oldest first", rows.len()),
                ),
                OutputFormat::Csv => csv(&rows),
                OutputFormat::Json => {
                    pretty(&Value::Array(rows.into_iter().map(Value::Object).collect()))
                }
            }
        }
        What::Anomalies { limit } => {
            let mut rows = Vec::new();
            let mut token = String::new();
            while rows.len() < limit {
                let page = client
                    .list_anomalies(credentials.request(pb::ListAnomaliesRequest {
                        page_size: (limit - rows.len()).min(1_000) as i32,
                        page_token: token,
                    }))
                    .await
                    .map_err(status_error)?
                    .into_inner();
                rows.extend(page.anomalies.iter().map(anomaly_row));
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            rows.truncate(limit);
            match args.format {
                OutputFormat::Table => table(&rows, &format!("{} anomaly(ies)", rows.len())),
                OutputFormat::Csv => csv(&rows),
                OutputFormat::Json => {
                    pretty(&Value::Array(rows.into_iter().map(Value::Object).collect()))
                }
            }
        }
    };
    print!("{out}");
    Ok(())
}

fn scope_of(scope: &ScopeArgs) -> pb::ReportScope {
    let (kind, id) = match (&scope.unit, &scope.authority, &scope.procedure) {
        (Some(unit), _, _) => (pb::ScopeKind::ReceivingUnit, unit.clone()),
        (_, Some(authority), _) => (pb::ScopeKind::CompetentAuthority, authority.clone()),
        (_, _, Some(procedure)) => (pb::ScopeKind::Procedure, procedure.clone()),
        _ => (pb::ScopeKind::Province, String::new()),
    };
    pb::ReportScope {
        kind: kind as i32,
        id,
    }
}

fn channel_of(channel: Option<ChannelArg>) -> pb::Channel {
    match channel {
        None => pb::Channel::Unspecified,
        Some(ChannelArg::Counter) => pb::Channel::Counter,
        Some(ChannelArg::Online) => pb::Channel::Online,
        Some(ChannelArg::Postal) => pb::Channel::Postal,
    }
}

fn request(query: &QueryArgs) -> pb::GetReportRequest {
    pb::GetReportRequest {
        scope: Some(scope_of(&query.scope)),
        channel: channel_of(query.channel) as i32,
        period: query.period.clone(),
    }
}

fn vn(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(from_timestamp)
        .map(|t| to_vietnam(t).format("%Y-%m-%d %H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

fn scope_text(scope: Option<&pb::ReportScope>) -> String {
    let Some(scope) = scope else {
        return "province".into();
    };
    match pb::ScopeKind::try_from(scope.kind) {
        Ok(pb::ScopeKind::ReceivingUnit) => format!("receiving unit {}", scope.id),
        Ok(pb::ScopeKind::CompetentAuthority) => format!("competent authority {}", scope.id),
        Ok(pb::ScopeKind::Procedure) => format!("procedure {}", scope.id),
        _ => "province".into(),
    }
}

fn channel_text(code: i32) -> &'static str {
    match pb::Channel::try_from(code) {
        Ok(pb::Channel::Counter) => "counter",
        Ok(pb::Channel::Online) => "online",
        Ok(pb::Channel::Postal) => "postal",
        _ => "all channels",
    }
}

fn status_text(code: i32) -> String {
    pb::DossierStatus::try_from(code)
        .map(motcua_domain::lifecycle::describe_status)
        .unwrap_or_else(|_| format!("unknown ({code})"))
}

fn percent(rate: Option<&pb::Rate>) -> String {
    match rate.and_then(|r| r.value) {
        Some(value) => format!("{:.2}%", value * 100.0),
        None => "-".into(),
    }
}

fn parts(rate: Option<&pb::Rate>) -> String {
    rate.map(|r| format!("{} / {}", r.numerator, r.denominator))
        .unwrap_or_default()
}

fn days(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |d| format!("{d:.2} working days"))
}

/// The report as a readable table: one figure per line, each rate with its parts.
fn report_table(report: &pb::Report) -> String {
    let f = report.figures.unwrap_or_default();
    let mut out = format!(
        "{}, {}, {} ({} to {}): {}, judged at {} (generation {})\n\n",
        scope_text(report.scope.as_ref()),
        channel_text(report.channel),
        report.period,
        report.first_day,
        report.last_day,
        if report.closed {
            "closed"
        } else {
            "in progress"
        },
        vn(report.judged_at.as_ref()),
        report.generation,
    );
    let lines: Vec<(String, String, String)> = vec![
        (
            "Carried over".into(),
            f.carried_over.to_string(),
            String::new(),
        ),
        (
            "Received".into(),
            f.received.to_string(),
            format!(
                "online {}, counter {}, postal {}",
                f.received_online, f.received_counter, f.received_postal
            ),
        ),
        (
            "Online rate".into(),
            percent(f.online_rate.as_ref()),
            parts(f.online_rate.as_ref()),
        ),
        (
            "Resolved".into(),
            f.resolved.to_string(),
            format!(
                "early {}, on time {}, late {}",
                f.resolved_early, f.resolved_on_time, f.resolved_late
            ),
        ),
        (
            "On-time rate".into(),
            percent(f.on_time_rate.as_ref()),
            parts(f.on_time_rate.as_ref()),
        ),
        (
            "Late rate".into(),
            percent(f.late_rate.as_ref()),
            parts(f.late_rate.as_ref()),
        ),
        ("Withdrawn".into(), f.withdrawn.to_string(), String::new()),
        ("Refused".into(), f.refused.to_string(), String::new()),
        ("Stopped".into(), f.stopped.to_string(), String::new()),
        (
            "In progress".into(),
            f.in_progress.to_string(),
            format!("{} past due", f.in_progress_past_due),
        ),
        (
            "Digitised at reception".into(),
            percent(f.digitization_at_reception.as_ref()),
            parts(f.digitization_at_reception.as_ref()),
        ),
        (
            "Results digitised".into(),
            percent(f.digitization_of_results.as_ref()),
            parts(f.digitization_of_results.as_ref()),
        ),
        (
            "Reuse".into(),
            percent(f.reuse.as_ref()),
            parts(f.reuse.as_ref()),
        ),
        (
            "Paid online".into(),
            percent(f.online_payment.as_ref()),
            parts(f.online_payment.as_ref()),
        ),
        (
            "Average processing".into(),
            days(f.average_processing_days),
            format!("over {} processed", f.processed),
        ),
        (
            "Median processing".into(),
            days(f.median_processing_days),
            String::new(),
        ),
        (
            "Provisional due dates".into(),
            f.ended_with_provisional_due.to_string(),
            "ended, judged against a due date in a year without a holiday table".into(),
        ),
        (
            "Identity".into(),
            if f.identity_holds { "holds" } else { "BROKEN" }.into(),
            format!(
                "carried over + received = {}; resolved + withdrawn + refused + stopped + in progress = {}",
                f.identity_left, f.identity_right
            ),
        ),
    ];
    let width = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
    let value_width = lines.iter().map(|l| l.1.len()).max().unwrap_or(0);
    for (name, value, detail) in lines {
        out.push_str(format!("{name:<width$}  {value:>value_width$}  {detail}").trim_end());
        out.push('\n');
    }
    out
}

fn scores_table(scores: &pb::ScoresReport) -> String {
    let mut out = String::new();
    if let Some(report) = &scores.report {
        out.push_str(&format!(
            "Decision 766 scores: {}, {}, {} ({} to {})\n\n",
            scope_text(report.scope.as_ref()),
            channel_text(report.channel),
            report.period,
            report.first_day,
            report.last_day
        ));
    }
    let rows: Vec<Map<String, Value>> = scores.scores.iter().map(score_row).collect();
    out.push_str(&table(&rows, ""));
    out
}

fn rate_fields(row: &mut Map<String, Value>, name: &str, rate: Option<&pb::Rate>) {
    let rate = rate.copied().unwrap_or_default();
    row.insert(format!("{name}_numerator"), json!(rate.numerator));
    row.insert(format!("{name}_denominator"), json!(rate.denominator));
    row.insert(name.to_owned(), json!(rate.value));
}

/// The report as one flat row: the CSV line, and the basis of the JSON object.
fn report_row(report: &pb::Report) -> Map<String, Value> {
    let f = report.figures.unwrap_or_default();
    let scope = report.scope.clone().unwrap_or_default();
    let mut row = Map::new();
    let kind = pb::ScopeKind::try_from(scope.kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("SCOPE_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default();
    row.insert("scope".into(), json!(kind));
    row.insert("scope_id".into(), json!(scope.id));
    row.insert("channel".into(), json!(channel_text(report.channel)));
    row.insert("period".into(), json!(report.period));
    row.insert("first_day".into(), json!(report.first_day));
    row.insert("last_day".into(), json!(report.last_day));
    row.insert("judged_at".into(), json!(vn(report.judged_at.as_ref())));
    row.insert("closed".into(), json!(report.closed));
    row.insert("generation".into(), json!(report.generation));
    row.insert("carried_over".into(), json!(f.carried_over));
    row.insert("received".into(), json!(f.received));
    row.insert("received_online".into(), json!(f.received_online));
    row.insert("received_counter".into(), json!(f.received_counter));
    row.insert("received_postal".into(), json!(f.received_postal));
    rate_fields(&mut row, "online_rate", f.online_rate.as_ref());
    row.insert("resolved".into(), json!(f.resolved));
    row.insert("resolved_early".into(), json!(f.resolved_early));
    row.insert("resolved_on_time".into(), json!(f.resolved_on_time));
    row.insert("resolved_late".into(), json!(f.resolved_late));
    rate_fields(&mut row, "on_time_rate", f.on_time_rate.as_ref());
    rate_fields(&mut row, "late_rate", f.late_rate.as_ref());
    row.insert("withdrawn".into(), json!(f.withdrawn));
    row.insert("refused".into(), json!(f.refused));
    row.insert("stopped".into(), json!(f.stopped));
    row.insert("in_progress".into(), json!(f.in_progress));
    row.insert("in_progress_past_due".into(), json!(f.in_progress_past_due));
    rate_fields(
        &mut row,
        "digitization_at_reception",
        f.digitization_at_reception.as_ref(),
    );
    rate_fields(
        &mut row,
        "digitization_of_results",
        f.digitization_of_results.as_ref(),
    );
    rate_fields(&mut row, "reuse", f.reuse.as_ref());
    rate_fields(&mut row, "online_payment", f.online_payment.as_ref());
    row.insert("processed".into(), json!(f.processed));
    row.insert(
        "processing_working_seconds".into(),
        json!(f.processing_working_seconds),
    );
    row.insert(
        "average_processing_days".into(),
        json!(f.average_processing_days),
    );
    row.insert(
        "median_processing_days".into(),
        json!(f.median_processing_days),
    );
    row.insert(
        "ended_with_provisional_due".into(),
        json!(f.ended_with_provisional_due),
    );
    row.insert("identity_left".into(), json!(f.identity_left));
    row.insert("identity_right".into(), json!(f.identity_right));
    row.insert("identity_holds".into(), json!(f.identity_holds));
    row
}

/// The report for scripts: the flat row, with each rate as `{numerator, denominator, value}`.
fn report_json(report: &pb::Report) -> Value {
    let mut row = report_row(report);
    for name in [
        "online_rate",
        "on_time_rate",
        "late_rate",
        "digitization_at_reception",
        "digitization_of_results",
        "reuse",
        "online_payment",
    ] {
        let numerator = row.remove(&format!("{name}_numerator"));
        let denominator = row.remove(&format!("{name}_denominator"));
        let value = row.remove(name);
        row.insert(
            name.to_owned(),
            json!({"numerator": numerator, "denominator": denominator, "value": value}),
        );
    }
    Value::Object(row)
}

fn score_row(score: &pb::Score) -> Map<String, Value> {
    let rate = score.rate.unwrap_or_default();
    let mut row = Map::new();
    row.insert("score".into(), json!(score.name));
    row.insert("numerator".into(), json!(rate.numerator));
    row.insert("denominator".into(), json!(rate.denominator));
    row.insert("rate".into(), json!(rate.value));
    row.insert("full_at".into(), json!(score.full_at));
    row.insert("share_of_points".into(), json!(score.share_of_points));
    row.insert("max_points".into(), json!(score.max_points));
    row.insert("points".into(), json!(score.points));
    row.insert("note".into(), json!(score.note));
    row
}

fn overdue_row(dossier: &pb::OverdueDossier) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("dossier_id".into(), json!(dossier.dossier_id));
    row.insert("receiving_unit".into(), json!(dossier.receiving_unit));
    row.insert(
        "competent_authority".into(),
        json!(dossier.competent_authority),
    );
    row.insert("procedure".into(), json!(dossier.procedure_code));
    row.insert("channel".into(), json!(channel_text(dossier.channel)));
    row.insert("status".into(), json!(status_text(dossier.status)));
    row.insert(
        "accepted_at".into(),
        json!(vn(dossier.accepted_at.as_ref())),
    );
    row.insert("due_at".into(), json!(vn(dossier.due_at.as_ref())));
    row.insert("late_from".into(), json!(vn(dossier.late_from.as_ref())));
    row
}

fn anomaly_row(anomaly: &pb::Anomaly) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("dossier_id".into(), json!(anomaly.dossier_id));
    row.insert("seq".into(), json!(anomaly.seq));
    row.insert("kind".into(), json!(anomaly.kind));
    row.insert("event_type".into(), json!(anomaly.event_type));
    row.insert("source".into(), json!(anomaly.source));
    row.insert("detail".into(), json!(anomaly.detail));
    row
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Rows as aligned columns under their names, after an optional title.
fn table(rows: &[Map<String, Value>], title: &str) -> String {
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(title);
        out.push('\n');
    }
    let Some(first) = rows.first() else {
        return out;
    };
    let names: Vec<&String> = first.keys().collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| names.iter().map(|n| cell(&row[n.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([n.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    out.push_str(&line(names.iter().map(|n| n.to_string()).collect()));
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// RFC 4180 CSV: a header row of the field names, then one line per row.
fn csv(rows: &[Map<String, Value>]) -> String {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    }
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = String::new();
    let names: Vec<&String> = first.keys().collect();
    out.push_str(&names.iter().map(|n| field(n)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = names
            .iter()
            .map(|n| field(&cell(&row[n.as_str()])))
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_keeps_column_order() {
        let mut row = Map::new();
        row.insert("name".into(), json!("Sở Tư pháp, tỉnh \"X\""));
        row.insert("late_rate".into(), json!(0.0125));
        row.insert("count".into(), json!(7));
        row.insert("missing".into(), Value::Null);
        assert_eq!(
            csv(&[row]),
            "name,late_rate,count,missing\r\n\"Sở Tư pháp, tỉnh \"\"X\"\"\",0.0125,7,\r\n"
        );
    }

    #[test]
    fn tables_align_columns() {
        let mut a = Map::new();
        a.insert("id".into(), json!("a"));
        a.insert("n".into(), json!(10));
        let mut b = Map::new();
        b.insert("id".into(), json!("longer"));
        b.insert("n".into(), json!(2));
        assert_eq!(table(&[a, b], ""), "id      n\na       10\nlonger  2\n");
    }
}
