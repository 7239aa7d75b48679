//! `motcua history generate`: writes a large, realistic event history straight into a store,
//! for replay and rebuild benchmarks. For example, a province-year is 10 million events from
//! about 2 million dossiers.
//!
//! The histories come from `motcua_projector::generate`: procedures, channels, supplements,
//! fees, and on-time and late outcomes, spread over the days asked for. Each dossier's whole
//! history goes in with one append through the store's own write path, with its summary row,
//! its request id and its claimed dossier number. So the store stays consistent: the intake
//! can carry on with those dossiers, and a rebuild reads them like any other. Positions are
//! in dossier order, not time order (readers do not care; a time-ordered feed needs a
//! dossier's events in seq order only).

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use motcua_domain::ids::DossierCode;
use motcua_domain::lifecycle::DossierState;
use motcua_domain::time::from_timestamp;
use motcua_projector::generate::{GenerateOptions, Generator};
use motcua_store::{AppendOutcome, AppendRequest, ClaimedNumber, EventStore, PersonalData};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use motcua_intake::handler::{new_event, summary_row};

use crate::config::StoreArgs;

/// `motcua history generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Dossiers to generate (about 5 events each).
    #[arg(long, default_value_t = 100_000)]
    pub dossiers: usize,
    /// Days the dossiers are received over, from --first-day.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The first day (YYYY-MM-DD, Vietnam).
    #[arg(long, default_value = "2026-01-01")]
    pub first_day: NaiveDate,
    /// Receiving units the dossiers are spread over.
    #[arg(long, default_value_t = 40)]
    pub units: usize,
    /// Competent authorities the dossiers are spread over.
    #[arg(long, default_value_t = 25)]
    pub authorities: usize,
    /// Seed (the same seed, the same history).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Appends in flight (the store commits them in groups).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// Generates the history into the configured store, with a progress line every 2 seconds.
pub async fn generate(args: GenerateArgs, store: Arc<dyn EventStore>) -> anyhow::Result<()> {
    anyhow::ensure!(args.dossiers > 0, "--dossiers must be at least 1");
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    anyhow::ensure!(
        args.units > 0 && args.authorities > 0,
        "--units and --authorities must be at least 1"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let mut generator = Generator::new(GenerateOptions {
        seed: args.seed,
        dossiers: args.dossiers,
        first_day: args.first_day,
        days: args.days,
        receiving_units: args.units,
        authorities: args.authorities,
    });
    let started = StdInstant::now();
    let mut last_progress = StdInstant::now();
    let (mut dossiers, mut events, mut existed) = (0u64, 0u64, 0u64);
    let mut appends = JoinSet::new();
    for _ in 0..args.dossiers {
        while appends.len() >= args.concurrency {
            let (count, appended) = appends
                .join_next()
                .await
                .context("an append in flight")?
                .context("an append task")??;
            tally(&mut dossiers, &mut events, &mut existed, count, appended);
        }
        let request = append_request(generator.dossier())?;
        let count = request.events.len() as u64;
        let store = store.clone();
        appends.spawn(async move {
            let outcome = store.append(request).await.context("appending a history")?;
            Ok::<_, anyhow::Error>((count, matches!(outcome, AppendOutcome::Appended(_))))
        });
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = StdInstant::now();
            let rate = events as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "history: {dossiers} / {} dossiers, {events} events, {rate:.0} events/s",
                args.dossiers
            );
        }
    }
    while let Some(done) = appends.join_next().await {
        let (count, appended) = done.context("an append task")??;
        tally(&mut dossiers, &mut events, &mut existed, count, appended);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{dossiers} dossiers, {events} events written in {seconds:.1} s ({:.0} events/s){}",
        events as f64 / seconds,
        if existed > 0 {
            format!("; {existed} were there already (same seed): left as they were")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn tally(dossiers: &mut u64, events: &mut u64, existed: &mut u64, count: u64, appended: bool) {
    if appended {
        *dossiers += 1;
        *events += count;
    } else {
        *existed += 1;
    }
}

/// One dossier's whole history as one append.
fn append_request(history: motcua_projector::generate::History) -> anyhow::Result<AppendRequest> {
    let state = DossierState::fold(&history.events)
        .with_context(|| {
            format!(
                "a generated history of {} does not fold",
                history.dossier_id
            )
        })?
        .context("an empty generated history")?;
    let code = DossierCode::parse(&history.dossier_id)
        .map_err(|e| anyhow::anyhow!("generated dossier code {}: {e}", history.dossier_id))?;
    let request_id = format!("history-{}", history.dossier_id);
    let mut events = Vec::with_capacity(history.events.len());
    for event in &history.events {
        let recorded_at = event
            .recorded_at
            .as_ref()
            .and_then(from_timestamp)
            .context("a generated event without a recording time")?;
        events.push(new_event(event, recorded_at));
    }
    Ok(AppendRequest {
        dossier_id: history.dossier_id.clone(),
        expected_version: 0,
        fingerprint: Sha256::digest(request_id.as_bytes()).to_vec(),
        request_id,
        events,
        row: summary_row(&state),
        // Made-up applicants: the history is for benchmarks, and the portal adapter expects
        // every dossier to have one.
        personal_data: Some(PersonalData {
            applicant_name: "Người Thử Nghiệm".into(),
            identity_number: "000000000000".into(),
            phone: String::new(),
        }),
        claimed_number: Some(ClaimedNumber {
            agency: code.agency().to_string(),
            day: code.date(),
            number: code.number(),
        }),
    })
}
