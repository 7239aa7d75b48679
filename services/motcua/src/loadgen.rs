//! `motcua loadgen`: drives a node's real gRPC API with concurrent clients, and reports
//! throughput and latency per RPC and errors by status.
//!
//! Two mixes:
//! - `province` (the default): dossiers that live like a province's do
//!   ([`crate::workload`]), optionally over N simulated days (`--simulate-days`, against a
//!   node with a fast clock);
//! - `pipeline`: the same five-step lifecycle again and again (receive, forward, digitise the
//!   result, resolve, return), the intake benchmark's steady load.
//!
//! Closed loop by default: each worker sends its next command when the previous one is
//! answered, so the numbers show what the node sustains. `--rate` caps the total.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use motcua_proto::v1::{self as pb, dossier_service_client::DossierServiceClient};
use tonic::Code;
use tonic::transport::Channel;

use governor::{Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cli::connect::Credentials;
use crate::workload::{self, MixArgs, Office, Open, ServerClock, Step};

/// Load generator settings.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// The node's gRPC address.
    #[arg(long, env = "MOTCUA_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    #[command(flatten)]
    pub credentials: crate::cli::connect::CredentialArgs,
    /// Concurrent clients (each runs one dossier lifecycle at a time).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Measured duration, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Warm-up before measuring, in seconds (not counted).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Number of receiving units the dossiers are spread over.
    #[arg(long, default_value_t = 8)]
    pub units: usize,
    /// Print the summary as JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The workload: `province` (a province's mix of procedures, channels and outcomes) or
    /// `pipeline` (one fixed five-step lifecycle, for the intake benchmark).
    #[arg(long, value_enum, default_value = "province")]
    pub mix: MixKind,
    #[command(flatten)]
    pub shares: MixArgs,
    /// Commands per second, in total, at most (0: as fast as the node answers).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Compress this many days of a province's traffic into the run (office hours, nights,
    /// weekends and holidays), against a node started with the same --simulated-clock-rate.
    /// The run ends when the node's clock has gone the days past --start; no warm-up.
    #[arg(long)]
    pub simulate_days: Option<f64>,
    /// Simulated seconds per real second on the node (its --simulated-clock-rate): 1440 runs
    /// a day in a minute.
    #[arg(long, default_value_t = 1440.0)]
    pub clock_rate: f64,
    /// With --simulate-days: the node-clock instant (RFC 3339) the simulated days are counted
    /// from. By default the next office morning of the node's clock (at once during office
    /// hours), so a run begun on a Saturday night counts from Monday morning and its days
    /// hold office hours. Dossiers submitted online before it still arrive, as at night.
    #[arg(long)]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// With --simulate-days: new dossiers per simulated day across the province (most in
    /// office hours). Each takes about 7 commands, so keep days x this x 7 within what the
    /// node sustains times the run's length, or steps queue up and dossiers end late.
    #[arg(long, default_value_t = 600)]
    pub dossiers_per_day: u32,
    /// Seed of the mix's random choices (a reproducible run).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MixKind {
    Province,
    Pipeline,
}

/// The procedures the workload files dossiers under (all in the sample catalogue).
const PROCEDURES: &[&str] = &["2.000908", "1.001193", "1.002804", "2.000815", "1.000656"];

#[derive(Default)]
struct Stats {
    latency: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<(&'static str, String), u64>,
}

impl Stats {
    fn record(&mut self, rpc: &'static str, elapsed: Duration, result: Result<(), Code>) {
        match result {
            Ok(()) => {
                let histogram = self.latency.entry(rpc).or_insert_with(|| {
                    // Cannot fail: 3 significant figures is within hdrhistogram's 0..=5.
                    Histogram::new(3).expect("valid histogram precision")
                });
                let micros = u64::try_from(elapsed.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = histogram.record(micros);
            }
            Err(code) => *self.errors.entry((rpc, format!("{code:?}"))).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        for (rpc, histogram) in other.latency {
            match self.latency.get_mut(rpc) {
                Some(mine) => {
                    let _ = mine.add(&histogram);
                }
                None => {
                    self.latency.insert(rpc, histogram);
                }
            }
        }
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    done: AtomicU64,
    /// Dossiers left open to end late (without a simulated clock).
    parked: AtomicU64,
}

fn vn_text(t: motcua_domain::time::Instant) -> String {
    t.with_timezone(&motcua_domain::time::vietnam())
        .format("%a %Y-%m-%d %H:%M")
        .to_string()
}

/// Runs the load and prints the report.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.units > 0, "--units must be at least 1");
    args.shares.validate()?;
    anyhow::ensure!(
        args.clock_rate >= 1.0,
        "--clock-rate {} must be at least 1",
        args.clock_rate
    );
    let simulated = args.simulate_days.is_some();
    anyhow::ensure!(
        !(simulated && args.mix == MixKind::Pipeline),
        "--simulate-days needs --mix province"
    );
    anyhow::ensure!(
        simulated || args.start.is_none(),
        "--start needs --simulate-days"
    );
    let (duration, warmup) = match args.simulate_days {
        Some(days) => {
            anyhow::ensure!(days > 0.0, "--simulate-days must be more than 0");
            (
                Duration::from_secs_f64(days * 86_400.0 / args.clock_rate),
                0,
            )
        }
        None => (Duration::from_secs(args.duration), args.warmup),
    };
    let simulated_span = args
        .simulate_days
        .map(|days| chrono::Duration::seconds((days * 86_400.0) as i64));
    let clock = Arc::new(ServerClock::new(if simulated {
        args.clock_rate
    } else {
        1.0
    }));
    let limiter = std::num::NonZeroU32::new(args.rate)
        // No burst: commands are spaced evenly, so the rate holds over any window (a burst
        // of a second's worth after a slow start would overshoot --rate).
        .map(|rate| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(std::num::NonZeroU32::MIN),
            ))
        });
    let province = Arc::new(Province {
        mix: args.shares.clone(),
        clock: clock.clone(),
        simulated,
        limiter,
        office: Arc::new(Office::default()),
        per_worker_per_day: f64::from(args.dossiers_per_day) / args.concurrency as f64,
    });
    let units: Vec<String> = (1..=args.units)
        .map(|u| format!("000.00.{:02}.H22", u % 100))
        .collect();
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(args.credentials.connect(&args.server).await?);
    }
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        parked: AtomicU64::new(0),
    });
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let credentials = args
        .credentials
        .credentials()?
        .with_header(motcua_intake::actor::OFFICER_HEADER, "loadgen")?;
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let client = DossierServiceClient::new(channels[worker % channels.len()].clone());
        let shared = shared.clone();
        let unit = format!("000.00.{:02}.H22", worker % args.units.max(1) + 1);
        let run_id = run_id.clone();
        let credentials = credentials.clone();
        let prefix = format!("{run_id}-{worker}");
        match args.mix {
            MixKind::Pipeline => workers.push(tokio::spawn(async move {
                lifecycle_loop(client, shared, unit, prefix, credentials).await
            })),
            MixKind::Province => {
                let province = province.clone();
                let units = units.clone();
                let seed = args.seed ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                workers.push(tokio::spawn(async move {
                    province_loop(client, shared, units, prefix, credentials, province, seed).await
                }));
            }
        }
    }
    eprintln!(
        "loadgen: {:?} mix, {} clients on {} connections against {}; warm-up {} s, measuring {:.0} s{}",
        args.mix,
        args.concurrency,
        args.connections,
        args.server,
        warmup,
        duration.as_secs_f64(),
        match args.simulate_days {
            Some(days) => format!(" ({days} days at {}x)", args.clock_rate),
            None => String::new(),
        }
    );
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut last = 0;
    // With simulated days: the node-clock instant they count from and the one they end at,
    // known from the first response.
    let mut window: Option<(motcua_domain::time::Instant, motcua_domain::time::Instant)> = None;
    loop {
        if let Some(span) = simulated_span {
            if window.is_none() && clock.known() {
                let now = clock.now();
                let from = args.start.unwrap_or_else(|| province.office.next_open(now));
                anyhow::ensure!(
                    from + span > now,
                    "--start {from} and --simulate-days end before the node's clock ({now}): \
                     start the node with --simulated-clock-start"
                );
                window = Some((from, from + span));
                eprintln!(
                    "loadgen: the node's clock reads {}; the simulated days run from {} to {}",
                    vn_text(now),
                    vn_text(from),
                    vn_text(from + span)
                );
            }
            match window {
                Some((_, end)) if clock.now() >= end => break,
                None => anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "no command succeeded in a minute: the node's clock is unknown"
                ),
                _ => {}
            }
        } else if started.elapsed() >= duration {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(duration)).await;
        let done = shared.done.load(Ordering::Relaxed);
        let when = if simulated {
            format!("  node time {}", vn_text(clock.now()))
        } else {
            String::new()
        };
        eprint!(
            "\r  {:>4.0} s  {:>9} commands  {:>7} /s{when}   ",
            started.elapsed().as_secs_f64(),
            done,
            done - last
        );
        last = done;
    }
    shared.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    eprintln!();
    let mut stats = Stats::default();
    for worker in workers {
        stats.merge(worker.await.context("a load worker panicked")?);
    }
    let parked = shared.parked.load(Ordering::Relaxed);
    report(&args, &stats, elapsed, parked, window);
    if parked > 0 && !args.json {
        println!(
            "{parked} dossier(s) left open to end late (they go late when their due dates pass)"
        );
    }
    Ok(())
}

fn meta(request_id: String) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id,
        expected_version: None,
        stated_at: None,
    })
}

/// One worker: receive, forward, digitise the result, resolve, return; again and again.
async fn lifecycle_loop(
    mut client: DossierServiceClient<Channel>,
    shared: Arc<Shared>,
    unit: String,
    prefix: String,
    credentials: Credentials,
) -> Stats {
    let mut stats = Stats::default();
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        n += 1;
        let rid = |step: &str| format!("{prefix}-{n}-{step}");
        let procedure = PROCEDURES[usize::try_from(n).unwrap_or(0) % PROCEDURES.len()];
        let started = Instant::now();
        let received = client
            .receive(credentials.request(pb::ReceiveRequest {
                meta: meta(rid("r")),
                dossier: Some(pb::NewDossier {
                    dossier_code: String::new(),
                    procedure_code: procedure.into(),
                    receiving_unit: unit.clone(),
                    competent_authority: String::new(),
                    applicant: Some(pb::Applicant {
                        r#type: pb::ApplicantType::Person as i32,
                        name: "Nguyễn Văn Thử".into(),
                        identity_number: "001099012345".into(),
                        phone: String::new(),
                    }),
                    component_count: 2,
                }),
                channel: pb::Channel::Counter as i32,
            }))
            .await;
        let dossier_id = match received {
            Ok(response) => {
                note(&shared, &mut stats, "Receive", started, Ok(()));
                response.into_inner().dossier_id
            }
            Err(status) => {
                note(&shared, &mut stats, "Receive", started, Err(status.code()));
                continue;
            }
        };
        // The rest of the lifecycle, with the same requests as the province mix's steps.
        let open = Open {
            id: dossier_id,
            plan: Vec::new(),
            accepted_at: None,
            due_at: None,
            fees: 0,
            online_payment: false,
        };
        for (step, tag) in [
            (Step::Forward, "f"),
            (Step::DigitizeResult, "d"),
            (Step::Resolve, "s"),
            (Step::ReturnResult, "t"),
        ] {
            let started = Instant::now();
            let result = run_step(&mut client, &credentials, &open, step, rid(tag)).await;
            note(
                &shared,
                &mut stats,
                step.rpc(),
                started,
                result.map(drop).map_err(|s| s.code()),
            );
        }
    }
    stats
}

fn note(
    shared: &Shared,
    stats: &mut Stats,
    rpc: &'static str,
    started: Instant,
    result: Result<(), Code>,
) {
    if shared.measuring.load(Ordering::Relaxed) {
        stats.record(rpc, started.elapsed(), result);
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn report(
    args: &LoadgenArgs,
    stats: &Stats,
    elapsed: Duration,
    parked: u64,
    window: Option<(motcua_domain::time::Instant, motcua_domain::time::Instant)>,
) {
    let mut all = Histogram::<u64>::new(3).expect("valid histogram precision");
    for histogram in stats.latency.values() {
        let _ = all.add(histogram);
    }
    let ok = all.len();
    let errors: u64 = stats.errors.values().sum();
    let throughput = ok as f64 / elapsed.as_secs_f64();
    if args.json {
        let per_rpc: serde_json::Map<String, serde_json::Value> = stats
            .latency
            .iter()
            .map(|(rpc, h)| {
                (
                    (*rpc).to_owned(),
                    serde_json::json!({
                        "count": h.len(),
                        "p50_ms": millis(h.value_at_quantile(0.5)),
                        "p90_ms": millis(h.value_at_quantile(0.9)),
                        "p99_ms": millis(h.value_at_quantile(0.99)),
                        "max_ms": millis(h.max()),
                    }),
                )
            })
            .collect();
        let errors_by: Vec<serde_json::Value> = stats
            .errors
            .iter()
            .map(|((rpc, code), n)| serde_json::json!({"rpc": rpc, "code": code, "count": n}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "mix": format!("{:?}", args.mix).to_lowercase(),
                "simulated_days": args.simulate_days,
                "simulated_from": window.map(|w| w.0.to_rfc3339()),
                "simulated_until": window.map(|w| w.1.to_rfc3339()),
                "left_open_to_end_late": parked,
                "concurrency": args.concurrency,
                "seconds": elapsed.as_secs_f64(),
                "commands_ok": ok,
                "errors": errors,
                "throughput_per_s": throughput,
                "p50_ms": millis(all.value_at_quantile(0.5)),
                "p90_ms": millis(all.value_at_quantile(0.9)),
                "p99_ms": millis(all.value_at_quantile(0.99)),
                "max_ms": millis(all.max()),
                "per_rpc": per_rpc,
                "errors_by_status": errors_by,
            })
        );
        return;
    }
    println!(
        "{ok} commands in {:.1} s: {throughput:.0} accepted commands/s, {errors} errors",
        elapsed.as_secs_f64()
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "RPC", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut rows: Vec<(&str, &Histogram<u64>)> =
        stats.latency.iter().map(|(k, v)| (*k, v)).collect();
    rows.push(("(all)", &all));
    for (rpc, h) in rows {
        println!(
            "{:<20} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            rpc,
            h.len(),
            millis(h.value_at_quantile(0.5)),
            millis(h.value_at_quantile(0.9)),
            millis(h.value_at_quantile(0.99)),
            millis(h.max())
        );
    }
    for ((rpc, code), count) in &stats.errors {
        println!("error {rpc} {code}: {count}");
    }
}

/// Dossiers one worker keeps open at most (with a simulated clock, dossiers wait for their
/// next step; the worker takes new ones only while it has room).
const MAX_OPEN_PER_WORKER: usize = 2_000;

/// What a province-mix worker needs.
struct Province {
    mix: MixArgs,
    clock: Arc<ServerClock>,
    simulated: bool,
    limiter: Option<Arc<governor::DefaultDirectRateLimiter>>,
    office: Arc<Office>,
    /// New dossiers per simulated day, per worker.
    per_worker_per_day: f64,
}

/// One worker of the province mix (module docs of `crate::workload`).
async fn province_loop(
    mut client: DossierServiceClient<Channel>,
    shared: Arc<Shared>,
    units: Vec<String>,
    prefix: String,
    credentials: Credentials,
    province: Arc<Province>,
    seed: u64,
) -> Stats {
    let mut stats = Stats::default();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut agenda: Vec<Open> = Vec::new();
    let mut next_arrival: Option<motcua_domain::time::Instant> = None;
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = province.clock.now();
        // With a simulated clock, dossiers arrive at the configured daily volume, shaped by
        // the hour (module docs of `crate::workload`), whatever the desks are doing.
        let arrival = province.simulated
            && agenda.len() < MAX_OPEN_PER_WORKER
            && next_arrival.is_none_or(|t| t <= now);
        // The step due longest ago first, as a desk works through its queue.
        let due = if arrival {
            None
        } else {
            agenda
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.plan.first().is_some_and(|(step, _)| {
                        d.next_at(province.simulated).is_none_or(|t| t <= now)
                            && (!province.simulated || province.office.allows(*step, now))
                    })
                })
                .min_by_key(|(_, d)| d.next_at(province.simulated))
                .map(|(index, _)| index)
        };
        if let Some(index) = due {
            let mut open = agenda.swap_remove(index);
            let (step, _) = open.plan.remove(0);
            n += 1;
            if let Some(limiter) = &province.limiter {
                limiter.until_ready().await;
            }
            let started = Instant::now();
            let result = run_step(
                &mut client,
                &credentials,
                &open,
                step,
                format!("{prefix}-{n}"),
            )
            .await;
            match result {
                Ok(response) => {
                    note(&shared, &mut stats, step.rpc(), started, Ok(()));
                    province.clock.saw(&response);
                    if let Some((accepted, due)) = acceptance(&response) {
                        open.accepted_at = accepted;
                        open.due_at = due;
                    }
                    if !open.plan.is_empty() {
                        park_or_keep(&mut agenda, open, province.simulated, now, &shared);
                    }
                }
                Err(status) => note(&shared, &mut stats, step.rpc(), started, Err(status.code())),
            }
            continue;
        }
        // Without one, a new dossier whenever nothing is due (a closed loop).
        let closed_loop = !province.simulated && agenda.len() < MAX_OPEN_PER_WORKER;
        if arrival || closed_loop {
            // Until a response has told the node's time, no arrival is scheduled from a guess
            // (the node's clock may be placed months away from this machine's).
            if province.simulated && province.clock.known() {
                let per_hour = province.per_worker_per_day / workload::WEIGHTED_HOURS_PER_DAY
                    * province.office.intake_weight(now);
                let gap_secs = -rng.random::<f64>().max(1e-9).ln() / per_hour * 3_600.0;
                next_arrival = Some(
                    next_arrival
                        .unwrap_or(now)
                        .max(now - chrono::Duration::hours(1))
                        + chrono::Duration::milliseconds((gap_secs * 1_000.0) as i64),
                );
            }
            let online_only = province.simulated && !province.office.open(now);
            let planned = workload::plan(&province.mix, &mut rng, online_only);
            let unit = units[rng.random_range(0..units.len())].clone();
            n += 1;
            if let Some(limiter) = &province.limiter {
                limiter.until_ready().await;
            }
            let dossier = Some(pb::NewDossier {
                dossier_code: String::new(),
                procedure_code: planned.procedure.into(),
                receiving_unit: unit,
                competent_authority: String::new(),
                applicant: Some(workload::applicant(&mut rng)),
                component_count: rng.random_range(1..=5),
            });
            let started = Instant::now();
            let (rpc, result) = if planned.channel == pb::Channel::Online {
                let request = credentials.request(pb::SubmitOnlineRequest {
                    meta: meta(format!("{prefix}-{n}-new")),
                    dossier,
                });
                ("SubmitOnline", client.submit_online(request).await)
            } else {
                let request = credentials.request(pb::ReceiveRequest {
                    meta: meta(format!("{prefix}-{n}-new")),
                    dossier,
                    channel: planned.channel as i32,
                });
                ("Receive", client.receive(request).await)
            };
            match result {
                Ok(response) => {
                    let response = response.into_inner();
                    note(&shared, &mut stats, rpc, started, Ok(()));
                    province.clock.saw(&response);
                    let (accepted_at, due_at) = acceptance(&response).unwrap_or((None, None));
                    let open = Open {
                        id: response.dossier_id,
                        plan: planned.plan,
                        // An online submission's allowed time starts at acceptance, which
                        // is its first step (taken at once).
                        accepted_at: accepted_at.or(Some(province.clock.now())),
                        due_at,
                        fees: planned.fees,
                        online_payment: planned.online_payment,
                    };
                    park_or_keep(&mut agenda, open, province.simulated, now, &shared);
                }
                Err(status) => note(&shared, &mut stats, rpc, started, Err(status.code())),
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(if province.simulated {
            5
        } else {
            20
        }))
        .await;
    }
    stats
}

/// Keeps `open` on the agenda; without a simulated clock a dossier whose next step waits for
/// time to pass (a late resolution) is left open on the node and off the agenda.
fn park_or_keep(
    agenda: &mut Vec<Open>,
    open: Open,
    simulated: bool,
    now: motcua_domain::time::Instant,
    shared: &Shared,
) {
    if !simulated && open.next_at(false).is_some_and(|t| t > now) {
        shared.parked.fetch_add(1, Ordering::Relaxed);
        return;
    }
    agenda.push(open);
}

/// `(accepted_at, due_at)` from a response's acceptance event, if it has one.
fn acceptance(
    response: &pb::CommandResponse,
) -> Option<(
    Option<motcua_domain::time::Instant>,
    Option<motcua_domain::time::Instant>,
)> {
    use motcua_domain::time::from_timestamp;
    response
        .events
        .iter()
        .find_map(|event| match &event.payload {
            Some(pb::dossier_event::Payload::Received(r)) => Some((
                r.accepted_at.as_ref().and_then(from_timestamp),
                r.due_at.as_ref().and_then(from_timestamp),
            )),
            Some(pb::dossier_event::Payload::OnlineAccepted(a)) => Some((
                a.accepted_at.as_ref().and_then(from_timestamp),
                a.due_at.as_ref().and_then(from_timestamp),
            )),
            _ => None,
        })
}

async fn run_step(
    client: &mut DossierServiceClient<Channel>,
    credentials: &Credentials,
    open: &Open,
    step: Step,
    request_id: String,
) -> Result<pb::CommandResponse, tonic::Status> {
    let id = open.id.clone();
    let meta = meta(request_id);
    let response = match step {
        Step::AcceptOnline => {
            client
                .accept_online(credentials.request(pb::AcceptOnlineRequest {
                    meta,
                    dossier_id: id,
                }))
                .await
        }
        Step::Refuse => {
            client
                .refuse(credentials.request(pb::RefuseRequest {
                    meta,
                    dossier_id: id,
                    reason: "Hồ sơ không đủ thành phần".into(),
                }))
                .await
        }
        Step::DigitizeComponents(_) | Step::DigitizeResult => {
            let target = if step == Step::DigitizeResult {
                pb::DigitizationTarget::Result
            } else {
                pb::DigitizationTarget::Component
            };
            client
                .record_digitization(credentials.request(pb::RecordDigitizationRequest {
                    meta,
                    dossier_id: id,
                    target: target as i32,
                    document_name: "Tài liệu".into(),
                    reused: false,
                    file_url: String::new(),
                }))
                .await
        }
        Step::Forward => {
            client
                .forward(credentials.request(pb::ForwardRequest {
                    meta,
                    dossier_id: id,
                    department: "Phòng chuyên môn".into(),
                    note: String::new(),
                    step_time: None,
                }))
                .await
        }
        Step::RequestSupplement => {
            client
                .request_supplement(credentials.request(pb::RequestSupplementRequest {
                    meta,
                    dossier_id: id,
                    reason: "Bổ sung bản sao giấy tờ".into(),
                }))
                .await
        }
        Step::ReceiveSupplement => {
            client
                .receive_supplement(credentials.request(pb::ReceiveSupplementRequest {
                    meta,
                    dossier_id: id,
                    note: String::new(),
                }))
                .await
        }
        Step::RequestFees => {
            client
                .request_fees(credentials.request(pb::RequestFeesRequest {
                    meta,
                    dossier_id: id,
                    amount_vnd: open.fees,
                    description: "Lệ phí".into(),
                }))
                .await
        }
        Step::RecordPayment => {
            let method = if open.online_payment {
                pb::PaymentMethod::NationalPortal
            } else {
                pb::PaymentMethod::Offline
            };
            client
                .record_payment(credentials.request(pb::RecordPaymentRequest {
                    meta,
                    dossier_id: id,
                    amount_vnd: open.fees,
                    method: method as i32,
                    reference: String::new(),
                }))
                .await
        }
        Step::Withdraw => {
            client
                .withdraw(credentials.request(pb::WithdrawRequest {
                    meta,
                    dossier_id: id,
                    reason: "Công dân rút hồ sơ".into(),
                }))
                .await
        }
        Step::Resolve => {
            client
                .resolve(credentials.request(pb::ResolveRequest {
                    meta,
                    dossier_id: id,
                    electronic_result: true,
                    note: String::new(),
                }))
                .await
        }
        Step::ReturnResult => {
            client
                .return_result(credentials.request(pb::ReturnResultRequest {
                    meta,
                    dossier_id: id,
                    note: String::new(),
                }))
                .await
        }
    };
    response.map(tonic::Response::into_inner)
}
