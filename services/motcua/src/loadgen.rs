//! `motcua loadgen`: drives a node's real gRPC API with concurrent clients running dossier
//! lifecycles, and reports throughput and latency per RPC. Closed loop: each worker sends its
//! next command when the previous one is answered, so the numbers show what the node sustains.

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

use crate::cli::connect::Credentials;

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
}

/// Runs the load and prints the report.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(args.credentials.connect(&args.server).await?);
    }
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
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
        workers.push(tokio::spawn(async move {
            lifecycle_loop(
                client,
                shared,
                unit,
                format!("{run_id}-{worker}"),
                credentials,
            )
            .await
        }));
    }
    eprintln!(
        "loadgen: {} clients on {} connections against {}; warm-up {} s, measuring {} s",
        args.concurrency, args.connections, args.server, args.warmup, args.duration
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = shared.done.load(Ordering::Relaxed);
        eprint!(
            "\r  {:>4.0} s  {:>9} commands  {:>7} /s   ",
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
    report(&args, &stats, elapsed);
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
        let started = Instant::now();
        let result = client
            .forward(credentials.request(pb::ForwardRequest {
                meta: meta(rid("f")),
                dossier_id: dossier_id.clone(),
                department: "Phòng chuyên môn".into(),
                note: String::new(),
                step_time: None,
            }))
            .await;
        note(
            &shared,
            &mut stats,
            "Forward",
            started,
            result.map(drop).map_err(|s| s.code()),
        );
        let started = Instant::now();
        let result = client
            .record_digitization(credentials.request(pb::RecordDigitizationRequest {
                meta: meta(rid("d")),
                dossier_id: dossier_id.clone(),
                target: pb::DigitizationTarget::Result as i32,
                document_name: "Kết quả".into(),
                reused: false,
                file_url: String::new(),
            }))
            .await;
        note(
            &shared,
            &mut stats,
            "RecordDigitization",
            started,
            result.map(drop).map_err(|s| s.code()),
        );
        let started = Instant::now();
        let result = client
            .resolve(credentials.request(pb::ResolveRequest {
                meta: meta(rid("s")),
                dossier_id: dossier_id.clone(),
                electronic_result: true,
                note: String::new(),
            }))
            .await;
        note(
            &shared,
            &mut stats,
            "Resolve",
            started,
            result.map(drop).map_err(|s| s.code()),
        );
        let started = Instant::now();
        let result = client
            .return_result(credentials.request(pb::ReturnResultRequest {
                meta: meta(rid("t")),
                dossier_id,
                note: String::new(),
            }))
            .await;
        note(
            &shared,
            &mut stats,
            "ReturnResult",
            started,
            result.map(drop).map_err(|s| s.code()),
        );
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

fn report(args: &LoadgenArgs, stats: &Stats, elapsed: Duration) {
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
