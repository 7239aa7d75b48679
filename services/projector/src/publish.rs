//! The Kafka projections for monitoring teams: each dossier's current status on
//! `motcua.dossier-status.v1` and rates snapshots on `motcua.rates.v1`, both JSON on compacted
//! topics (DESIGN.md "Kafka topics"; the consumer's view is in `docs/kafka-projections.md`).
//!
//! # What gets published, and when
//!
//! The projector writes, in the transaction of the figures, one row per changed key into the
//! active generation's outbox: `dossier|<id>` for a dossier whose row changed, and
//! `rates|<scope_kind>|<scope_id>|<yyyymmdd>` for a scope-day whose counters changed. Every
//! `interval` a *pass* of [`ProjectionPublisher`]:
//!
//! 1. reads up to `max_rows` outbox rows, oldest first;
//! 2. adds the keys that changed with time alone (below);
//! 3. builds one record per distinct dossier and one per distinct (scope, period), whatever
//!    number of rows and days map to it (coalescing: a busy unit costs one report per period
//!    and pass, not one per event);
//! 4. sends them all and waits until the producer reports every delivery;
//! 5. only then deletes the outbox rows it handled, each with a compare-and-delete on its
//!    `changed_at`, so a row the projector changed meanwhile stays and goes out next pass.
//!
//! A crash between 4 and 5 publishes the same keys again (harmless on a compacted topic, where
//! the latest value per key is what counts); no path forgets a row. A broker that is down
//! fails step 4 after `delivery_timeout`: nothing is deleted, and the pass is retried with
//! backoff, for as long as it takes.
//!
//! # A generation the publisher has not seen
//!
//! A rebuild fills a fresh generation without an outbox (its figures were computed from the
//! same events), but they may differ from what was published (a rebuild after a fix is the
//! usual reason to run one), and a database projected before Kafka was configured has an empty
//! outbox. So the first pass that meets a generation it has not seeded queues every dossier and
//! every scope-day of it into its outbox, once (`rates_publisher.seeded_generation`): consumers
//! converge on the active generation's figures.
//!
//! # Changes without events
//!
//! Two things change published values while no event arrives:
//!
//! - An open dossier crossing its `late_from`: its `overdue_now` turns true, and so does its
//!   count in "in progress, past due" of the periods running now. Each pass selects the
//!   dossiers with `last pass < late_from <= now` (the partial indexes on `late_from` make
//!   this a range scan) and republishes them and the current periods of their four scopes.
//!   These keys are added in memory, not as outbox rows: the window's lower bound, the
//!   *watermark*, moves only when a pass succeeded, and it is stored in the reader database
//!   (`rates_publisher`, one row per publisher name), so a failed pass or a restart covers
//!   the same window again.
//! - A period ending (each Vietnam midnight ends a day, some end a month, a quarter, a year):
//!   its snapshot, published while it ran, said `closed: false` and was judged at the time of
//!   publication. The first pass after the end republishes the period, closed and judged at
//!   its end, for every scope with a row in the day table within it (a superset of the scopes
//!   ever published for it, since every published rates key comes from a day-table change or
//!   an overdue crossing, which also has its day row). After a long outage at most
//!   `max_catch_up_days` ended days are republished.
//!
//! Periods that start after now are not published (an overdue delta may be written on a
//! future day); they are when they start, through the crossing or the events that change them.
//!
//! # No personal data
//!
//! The dossier table has no applicant field, and the publisher reads an explicit list of its
//! columns (never `state`, the snapshot that a later version might extend): a projection
//! cannot carry personal data unless this list changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, Days, SecondsFormat, TimeZone, Utc};
use motcua_domain::time::{Instant, to_vietnam};
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use motcua_feed::{Migration, Placeholders};

use crate::period::{self, DayNumber, Period, PeriodKind, day_of};
use crate::read_model::{QueryError, ReadModel, Report, ReportQuery};
use crate::report::{Figures, ScopeKind};
use crate::schema::Tables;
use crate::scores::{self, Score};

/// The `schema` header and field of the rates records.
pub const RATES_SCHEMA: &str = "motcua.rates.v1";
/// The `schema` header and field of the dossier-status records.
pub const DOSSIER_STATUS_SCHEMA: &str = "motcua.dossier-status.v1";
/// The JSON Schema (draft 2020-12) of a rates value, for services that hand it out.
pub const RATES_JSON_SCHEMA: &str = include_str!("../schemas/motcua.rates.v1.schema.json");
/// The JSON Schema (draft 2020-12) of a dossier-status value.
pub const DOSSIER_STATUS_JSON_SCHEMA: &str =
    include_str!("../schemas/motcua.dossier-status.v1.schema.json");

/// The publisher's own table: per publisher name, the watermark of the overdue crossings and
/// the read-model generation whose keys it has seeded into the outbox (module docs).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "rates publisher watermarks",
    sqlite: "CREATE TABLE rates_publisher (name TEXT PRIMARY KEY, \
             late_watermark INTEGER NOT NULL, seeded_generation INTEGER NOT NULL)",
    postgres: "CREATE TABLE rates_publisher (name TEXT PRIMARY KEY, \
               late_watermark BIGINT NOT NULL, seeded_generation BIGINT NOT NULL)",
}];

/// The owner of [`MIGRATIONS`] in `feed_migrations`.
const MIGRATIONS_OWNER: &str = "motcua-rates-publisher";

/// Outbox rows deleted per statement after a pass.
const DELETE_CHUNK: usize = 300;

/// Dossiers per lookup query (well below SQLite's parameter limit).
const LOOKUP_CHUNK: usize = 500;

/// The dossier-table columns a status record is made of: an explicit list, so nothing else
/// (the `state` snapshot in particular) can reach the topic by accident.
const STATUS_COLUMNS: &str = "dossier_id, version, status, channel, receiving_unit, \
     competent_authority, procedure_code, entered_at, accepted_at, due_at, ended_at, end_kind, \
     outcome, supplement_count, late_from, processing_seconds";

/// How the publisher runs.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The rates topic; tests use topics of their own.
    pub rates_topic: String,
    /// The dossier-status topic.
    pub status_topic: String,
    /// The pause between passes when the outbox was drained: the coalescing interval, and
    /// so how stale a published value may be.
    pub interval: Duration,
    /// Outbox rows per pass; a full pass is followed by the next one at once.
    pub max_rows: usize,
    /// How long the producer keeps trying to deliver a record before the pass fails
    /// (`message.timeout.ms`). The rows stay in the outbox, so this only bounds a pass.
    pub delivery_timeout: Duration,
    /// First wait after a failed pass, doubling up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The publisher's name: its watermark row and its Kafka `client.id`.
    pub name: String,
    /// At most this many ended days are republished as closed after an outage.
    pub max_catch_up_days: u32,
    /// Further producer settings (security, for instance). The delivery guarantees
    /// (`enable.idempotence`, `acks`) are set after these and cannot be weakened.
    pub producer_config: Vec<(String, String)>,
}

impl PublisherOptions {
    /// The defaults, with the topics of DESIGN.md.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            rates_topic: motcua_relay::topics::RATES.to_owned(),
            status_topic: motcua_relay::topics::DOSSIER_STATUS.to_owned(),
            interval: Duration::from_secs(1),
            max_rows: 2_000,
            delivery_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            name: "rates-publisher".to_owned(),
            max_catch_up_days: 62,
            producer_config: Vec::new(),
        }
    }

    /// The producer: idempotent, acknowledged by every in-sync replica, keyed like the
    /// relay's (`murmur2_random`, the Java client's partitioner) so a dossier's status lands on
    /// the same partition number as its events.
    fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.producer_config {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("motcua-projector/{}", self.name))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "20")
            .set("reconnect.backoff.max.ms", "1000")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().max(1).to_string(),
            );
        config
    }
}

/// What the publisher has done since it started, for metrics and health.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Passes that delivered everything they built.
    pub passes: AtomicU64,
    /// Passes that failed (their rows stay in the outbox).
    pub failed_passes: AtomicU64,
    /// Records delivered on the rates topic.
    pub rates_published: AtomicU64,
    /// Records delivered on the dossier-status topic.
    pub statuses_published: AtomicU64,
    /// Outbox rows deleted after delivery.
    pub outbox_rows_done: AtomicU64,
    /// When the last pass succeeded, in microseconds since the epoch (0: never).
    pub last_success_micros: AtomicI64,
    /// The last failure, cleared by a success.
    last_error: Mutex<Option<String>>,
}

impl PublisherStats {
    /// The last failure's message, `None` once a pass succeeded after it.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set_last_error(&self, error: Option<String>) {
        match self.last_error.lock() {
            Ok(mut slot) => *slot = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Outbox rows read.
    pub outbox_rows: usize,
    /// Dossiers that crossed their `late_from` since the previous pass.
    pub crossings: usize,
    /// Periods that ended since the previous pass.
    pub ended_periods: usize,
    /// Records delivered on each topic.
    pub statuses: usize,
    pub rates: usize,
    /// Outbox rows deleted (fewer than read when the projector changed some meanwhile).
    pub deleted: usize,
    /// The outbox held `max_rows` rows or more: run the next pass at once.
    pub more: bool,
    /// Keys queued because the pass met a generation it had not seeded yet.
    pub seeded: u64,
}

/// Why a pass or the publisher failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid Kafka producer configuration: {0}")]
    Config(#[source] KafkaError),
    #[error("read model query failed: {0}")]
    Query(#[from] QueryError),
    #[error("read model database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not prepare the publisher's table: {0}")]
    Migrate(#[from] motcua_feed::FeedError),
    #[error("{failed} of {records} records were not delivered: {first}")]
    Delivery {
        failed: usize,
        records: usize,
        first: KafkaError,
    },
    #[error("the Kafka producer hit a fatal error and cannot be used any more")]
    Fatal,
    #[error("could not serialise a projection: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The portal status: its code, a stable English label, and the portal's Vietnamese name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCode {
    /// TrangThaiHoSo, 1-10 (docs/domain.md §2).
    pub code: i64,
    pub label: &'static str,
    pub label_vi: &'static str,
}

impl StatusCode {
    pub fn of(code: i64) -> Self {
        let (label, label_vi) = match code {
            1 => ("submitted_online", "Mới đăng ký"),
            2 => ("accepted", "Được tiếp nhận"),
            3 => ("refused", "Không được tiếp nhận"),
            4 => ("processing", "Đang xử lý"),
            5 => ("supplement_requested", "Yêu cầu bổ sung giấy tờ"),
            6 => ("fees_requested", "Yêu cầu thực hiện nghĩa vụ tài chính"),
            7 => ("withdrawn", "Công dân yêu cầu rút hồ sơ"),
            8 => ("stopped", "Dừng xử lý"),
            9 => ("resolved", "Đã xử lý xong"),
            10 => ("result_returned", "Đã trả kết quả"),
            _ => ("unknown", ""),
        };
        Self {
            code,
            label,
            label_vi,
        }
    }
}

/// The channel (KenhThucHien) with a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCode {
    pub code: i64,
    pub label: &'static str,
}

impl ChannelCode {
    pub fn of(code: i64) -> Self {
        let label = match code {
            1 => "counter",
            2 => "online",
            3 => "postal",
            _ => "unknown",
        };
        Self { code, label }
    }
}

/// The dossier's times in Vietnam time (UTC+7), as the offices read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VietnamTimes {
    pub entered_at: String,
    pub accepted_at: Option<String>,
    pub due_at: Option<String>,
    pub ended_at: Option<String>,
    pub late_from: Option<String>,
}

/// The value of a dossier-status record (schema `motcua.dossier-status.v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DossierStatusValue {
    pub schema: &'static str,
    pub dossier_id: String,
    /// The seq of the dossier's last event applied: a newer value has a higher one.
    pub version: i64,
    pub status: StatusCode,
    pub channel: ChannelCode,
    pub receiving_unit: String,
    pub competent_authority: String,
    /// The procedure the dossier was received under (the one it counts under).
    pub procedure_code: String,
    /// When it was submitted or received (RFC 3339, UTC).
    pub entered_at: String,
    pub accepted_at: Option<String>,
    /// The due date it is judged against (docs/domain.md §3-4).
    pub due_at: Option<String>,
    /// End of processing (docs/domain.md §4), if it ended.
    pub ended_at: Option<String>,
    /// `resolved`, `withdrawn`, `refused` or `stopped`, if it ended.
    pub end_kind: Option<String>,
    /// `early`, `on_time`, `late` or `not_accepted`, if it ended.
    pub outcome: Option<String>,
    pub supplement_count: i64,
    /// When it counts as late if nothing more happens (open dossiers only).
    pub late_from: Option<String>,
    /// `late_from` is before `published_at`: open and past due now.
    pub overdue_now: bool,
    /// Working seconds of processing minus supplement waits, once ended.
    pub processing_working_seconds: Option<i64>,
    pub vietnam_time: VietnamTimes,
    /// The read-model generation the value was read from.
    pub generation: i64,
    pub published_at: String,
}

/// The scope of a rates record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeValue {
    pub kind: ScopeKind,
    /// The unit's agency id or the procedure code; `null` for the province.
    pub id: Option<String>,
}

/// The period of a rates record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodValue {
    /// `2026-03-15`, `2026-03`, `2026-Q1` or `2026`.
    pub label: String,
    pub kind: PeriodKind,
    /// First and last Vietnam calendar days, `yyyy-mm-dd`, both included.
    pub first_day: String,
    pub last_day: String,
}

/// The value of a rates record (schema `motcua.rates.v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatesValue {
    pub schema: &'static str,
    pub key: String,
    pub scope: ScopeValue,
    pub period: PeriodValue,
    /// Unfinished dossiers were judged at this instant: the period's end once it is over,
    /// else the time of publication.
    pub judged_at: String,
    pub closed: bool,
    pub generation: i64,
    pub figures: Figures,
    pub scores: Vec<Score>,
    pub published_at: String,
}

/// One row of the dossier table, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierRow {
    pub dossier_id: String,
    pub version: i64,
    pub status: i64,
    pub channel: i64,
    pub receiving_unit: String,
    pub competent_authority: String,
    pub procedure_code: String,
    pub entered_at: i64,
    pub accepted_at: Option<i64>,
    pub due_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_kind: Option<String>,
    pub outcome: Option<String>,
    pub supplement_count: i64,
    pub late_from: Option<i64>,
    pub processing_seconds: Option<i64>,
}

fn instant(micros: i64) -> Instant {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(Instant::MIN_UTC)
}

fn utc_text(t: Instant) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn vietnam_text(t: Instant) -> String {
    to_vietnam(t).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The status value of a dossier row, judged (`overdue_now`) at `now`.
pub fn dossier_value(row: &DossierRow, now: Instant, generation: i64) -> DossierStatusValue {
    let utc = |m: Option<i64>| m.map(|m| utc_text(instant(m)));
    let vn = |m: Option<i64>| m.map(|m| vietnam_text(instant(m)));
    DossierStatusValue {
        schema: DOSSIER_STATUS_SCHEMA,
        dossier_id: row.dossier_id.clone(),
        version: row.version,
        status: StatusCode::of(row.status),
        channel: ChannelCode::of(row.channel),
        receiving_unit: row.receiving_unit.clone(),
        competent_authority: row.competent_authority.clone(),
        procedure_code: row.procedure_code.clone(),
        entered_at: utc_text(instant(row.entered_at)),
        accepted_at: utc(row.accepted_at),
        due_at: utc(row.due_at),
        ended_at: utc(row.ended_at),
        end_kind: row.end_kind.clone(),
        outcome: row.outcome.clone(),
        supplement_count: row.supplement_count,
        late_from: utc(row.late_from),
        overdue_now: row.late_from.is_some_and(|l| l < now.timestamp_micros()),
        processing_working_seconds: row.processing_seconds,
        vietnam_time: VietnamTimes {
            entered_at: vietnam_text(instant(row.entered_at)),
            accepted_at: vn(row.accepted_at),
            due_at: vn(row.due_at),
            ended_at: vn(row.ended_at),
            late_from: vn(row.late_from),
        },
        generation,
        published_at: utc_text(now),
    }
}

/// The record key of a scope's period: `{scope_kind}/{scope_id or -}/{period label}`.
pub fn rates_key(scope: ScopeKind, scope_id: &str, period: &Period) -> String {
    let id = if scope_id.is_empty() { "-" } else { scope_id };
    format!("{}/{id}/{period}", scope.key())
}

/// The rates value of a report, with its scores, published at `now`.
pub fn rates_value(report: &Report, period: &Period, now: Instant) -> RatesValue {
    RatesValue {
        schema: RATES_SCHEMA,
        key: rates_key(report.scope, &report.scope_id, period),
        scope: ScopeValue {
            kind: report.scope,
            id: (!report.scope_id.is_empty()).then(|| report.scope_id.clone()),
        },
        period: PeriodValue {
            label: report.period.clone(),
            kind: period.kind,
            first_day: report.first_day.clone(),
            last_day: report.last_day.clone(),
        },
        judged_at: report.judged_at.clone(),
        closed: report.closed,
        generation: report.generation,
        figures: report.figures.clone(),
        scores: scores::scores(&report.figures),
        published_at: utc_text(now),
    }
}

/// Routes librdkafka's logs to `tracing` and flags fatal errors.
#[derive(Debug, Clone, Default)]
struct PublisherContext {
    /// Set when librdkafka reports a fatal error: the producer is unusable from then on.
    fatal: Arc<AtomicBool>,
}

impl ClientContext for PublisherContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, message)
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, message),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.fatal.store(true, Ordering::Relaxed);
            tracing::error!(target: "librdkafka", %error, reason, "fatal Kafka producer error");
        } else {
            // Transient (a broker down, say): librdkafka retries; a pass notices through
            // its deliveries timing out.
            tracing::warn!(target: "librdkafka", %error, reason, "Kafka producer error");
        }
    }
}

/// A rates record to build: one scope and period.
#[derive(Debug, Clone)]
struct RatesTarget {
    scope: ScopeKind,
    scope_id: String,
    period: Period,
}

/// What a pass publishes, coalesced: every key at most once.
#[derive(Debug, Default)]
struct Dirty {
    dossiers: BTreeSet<String>,
    /// By record key.
    rates: BTreeMap<String, RatesTarget>,
}

impl Dirty {
    /// The periods containing `day` of a scope, except those not started at `now`.
    fn scope_day(&mut self, scope: ScopeKind, scope_id: &str, day: DayNumber, now: Instant) {
        let Some(date) = period::date_of(day) else {
            return;
        };
        for period in Period::containing(date) {
            self.period(scope, scope_id, period, now);
        }
    }

    fn period(&mut self, scope: ScopeKind, scope_id: &str, period: Period, now: Instant) {
        if period.start() > now {
            return;
        }
        self.rates
            .entry(rates_key(scope, scope_id, &period))
            .or_insert_with(|| RatesTarget {
                scope,
                scope_id: scope_id.to_owned(),
                period,
            });
    }
}

/// One outbox row read by a pass.
#[derive(Debug, Clone)]
struct OutboxRow {
    kind: String,
    key: String,
    changed_at: i64,
}

/// A record ready to send.
#[derive(Debug)]
struct Outgoing {
    status: bool,
    key: String,
    payload: Vec<u8>,
}

/// Doubling waits with jitter (each drawn from the upper half of the step), so publishers
/// restarted together do not retry in lockstep.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// Drains the projection outbox onto the two compacted topics (module docs).
pub struct ProjectionPublisher {
    model: ReadModel,
    options: PublisherOptions,
    producer: FutureProducer<PublisherContext>,
    fatal: Arc<AtomicBool>,
    stats: Arc<PublisherStats>,
    /// Whether the watermark table was created in this process.
    prepared: bool,
    /// The node's clock: what is overdue and which periods have ended are judged by it, as
    /// the intake and the reports judge them.
    clock: Arc<dyn motcua_domain::clock::Clock>,
}

impl std::fmt::Debug for ProjectionPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionPublisher")
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ProjectionPublisher {
    /// A publisher reading `model`'s database. Creating the producer does not contact the
    /// broker: a broker that is down only delays the passes.
    pub fn new(model: ReadModel, options: PublisherOptions) -> Result<Self, PublishError> {
        let context = PublisherContext::default();
        let fatal = Arc::clone(&context.fatal);
        let producer = options
            .producer_config()
            .create_with_context(context)
            .map_err(PublishError::Config)?;
        Ok(Self {
            model,
            options,
            producer,
            fatal,
            stats: Arc::default(),
            prepared: false,
            clock: Arc::new(motcua_domain::clock::SystemClock),
        })
    }

    /// Judges time by `clock` (the node's clock, simulated in a demo or a test) instead of
    /// the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn motcua_domain::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn stats(&self) -> Arc<PublisherStats> {
        Arc::clone(&self.stats)
    }

    /// Runs passes until `shutdown`: every `interval` once the outbox is drained, at once
    /// while it is not, and with backoff after a failure. Returns an error only when the
    /// producer cannot be used any more (librdkafka's fatal errors); everything else is
    /// retried. A pass cut short by the shutdown deletes nothing it did not deliver.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), PublishError> {
        let mut backoff = Backoff {
            initial: self.options.backoff_initial,
            max: self.options.backoff_max,
            step: self.options.backoff_initial,
        };
        tracing::info!(
            rates_topic = %self.options.rates_topic,
            status_topic = %self.options.status_topic,
            interval_ms = self.options.interval.as_millis() as u64,
            "projection publisher started"
        );
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                result = self.publish_pass() => result,
            };
            let wait = match result {
                Ok(report) => {
                    backoff.reset();
                    if report.more {
                        Duration::ZERO
                    } else {
                        self.options.interval
                    }
                }
                Err(error) => {
                    if self.fatal.load(Ordering::Relaxed) {
                        return Err(PublishError::Fatal);
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "projection pass failed; its outbox rows stay and are retried"
                    );
                    delay
                }
            };
            if wait.is_zero() {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("projection publisher stopped");
        Ok(())
    }

    /// One pass (module docs), with the stats kept. Public so that tests and tools can drive
    /// the publisher step by step.
    pub async fn publish_pass(&mut self) -> Result<PassReport, PublishError> {
        match self.pass().await {
            Ok(report) => {
                let stats = &self.stats;
                stats.passes.fetch_add(1, Ordering::Relaxed);
                stats
                    .rates_published
                    .fetch_add(report.rates as u64, Ordering::Relaxed);
                stats
                    .statuses_published
                    .fetch_add(report.statuses as u64, Ordering::Relaxed);
                stats
                    .outbox_rows_done
                    .fetch_add(report.deleted as u64, Ordering::Relaxed);
                stats
                    .last_success_micros
                    .store(Utc::now().timestamp_micros(), Ordering::Relaxed);
                stats.set_last_error(None);
                if report.statuses + report.rates > 0 {
                    tracing::debug!(
                        statuses = report.statuses,
                        rates = report.rates,
                        outbox_rows = report.outbox_rows,
                        deleted = report.deleted,
                        crossings = report.crossings,
                        ended_periods = report.ended_periods,
                        "projection pass published"
                    );
                }
                Ok(report)
            }
            Err(error) => {
                self.stats.failed_passes.fetch_add(1, Ordering::Relaxed);
                self.stats.set_last_error(Some(error.to_string()));
                Err(error)
            }
        }
    }

    async fn pass(&mut self) -> Result<PassReport, PublishError> {
        let db = self.model.db().clone();
        if !self.prepared {
            db.migrate(MIGRATIONS_OWNER, MIGRATIONS).await?;
            self.prepared = true;
        }
        let now = self.clock.now();
        let tables = match self.model.tables().await {
            Ok(tables) => tables,
            // Nothing projected yet: nothing to publish.
            Err(QueryError::NotBuilt) => return Ok(PassReport::default()),
            Err(error) => return Err(error.into()),
        };
        let mut report = PassReport {
            seeded: self.seed(&tables, now).await?,
            ..PassReport::default()
        };
        let mut dirty = Dirty::default();

        let rows = self.read_outbox(&tables).await?;
        report.outbox_rows = rows.len();
        report.more = rows.len() >= self.options.max_rows;
        for row in &rows {
            match row.kind.as_str() {
                "dossier" => {
                    dirty.dossiers.insert(row.key.clone());
                }
                "rates" => match parse_rates_key(&row.key) {
                    Some((scope, id, day)) => dirty.scope_day(scope, id, day, now),
                    None => tracing::warn!(
                        key = %row.key,
                        "unreadable rates key in the projection outbox; dropped"
                    ),
                },
                other => tracing::warn!(
                    key_kind = other,
                    "unknown key kind in the projection outbox; dropped"
                ),
            }
        }

        let watermark = self.watermark(now).await?;
        if watermark < now {
            report.crossings = self.crossings(&tables, watermark, now, &mut dirty).await?;
            report.ended_periods = self.ended(&tables, watermark, now, &mut dirty).await?;
        }

        let mut outgoing = Vec::new();
        for row in self.read_dossiers(&tables, &dirty.dossiers).await? {
            let value = dossier_value(&row, now, tables.generation);
            outgoing.push(Outgoing {
                status: true,
                key: row.dossier_id,
                payload: serde_json::to_vec(&value)?,
            });
        }
        for (key, target) in &dirty.rates {
            let query = ReportQuery {
                scope: target.scope,
                scope_id: target.scope_id.clone(),
                channel: None,
                period: target.period,
            };
            let figures = self.model.report_in(&tables, &query, now).await?;
            let value = rates_value(&figures, &target.period, now);
            debug_assert_eq!(&value.key, key);
            outgoing.push(Outgoing {
                status: false,
                key: key.clone(),
                payload: serde_json::to_vec(&value)?,
            });
        }

        self.send(&outgoing).await?;
        report.statuses = outgoing.iter().filter(|o| o.status).count();
        report.rates = outgoing.len() - report.statuses;

        // Everything is delivered: forget what was handled, unless it changed meanwhile, and
        // move the watermark, in one transaction.
        let mut tx = db.begin().await?;
        for chunk in rows.chunks(DELETE_CHUNK) {
            // Compare-and-delete: a row whose `changed_at` moved since it was read stays.
            let mut delete = format!("DELETE FROM {} WHERE ", tables.outbox);
            let mut p = Placeholders::new(db.backend());
            for i in 0..chunk.len() {
                let _ = write!(
                    delete,
                    "{}(key_kind = {} AND key = {} AND changed_at = {})",
                    if i == 0 { "" } else { " OR " },
                    p.param(),
                    p.param(),
                    p.param()
                );
            }
            let mut query = sqlx::query(&delete);
            for row in chunk {
                query = query
                    .bind(row.kind.as_str())
                    .bind(row.key.as_str())
                    .bind(row.changed_at);
            }
            report.deleted += query.execute(&mut *tx).await?.rows_affected() as usize;
        }
        sqlx::query("UPDATE rates_publisher SET late_watermark = $2 WHERE name = $1")
            .bind(self.options.name.as_str())
            .bind(now.timestamp_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Puts every key of `tables`' generation into its outbox, once per generation: the first
    /// time this publisher sees the generation (a first start on a database projected without
    /// a publisher, or the switch to a rebuilt generation, whose outbox a rebuild leaves empty
    /// and whose figures may differ from what was published). Returns the rows added.
    async fn seed(&self, tables: &Tables, now: Instant) -> Result<u64, PublishError> {
        let seeded: Option<i64> =
            sqlx::query_scalar("SELECT seeded_generation FROM rates_publisher WHERE name = $1")
                .bind(self.options.name.as_str())
                .fetch_optional(self.model.db().pool())
                .await?;
        if seeded == Some(tables.generation) {
            return Ok(0);
        }
        let mut tx = self.model.db().begin().await?;
        let at = now.timestamp_micros();
        let outbox = &tables.outbox;
        let dossiers = sqlx::query(&format!(
            "INSERT INTO {outbox} (key_kind, key, changed_at) \
             SELECT 'dossier', dossier_id, $1 FROM {} WHERE true \
             ON CONFLICT (key_kind, key) DO NOTHING",
            tables.dossiers
        ))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let rates = sqlx::query(&format!(
            "INSERT INTO {outbox} (key_kind, key, changed_at) \
             SELECT DISTINCT 'rates', scope_kind || '|' || scope_id || '|' || CAST(day AS TEXT), \
             CAST($1 AS BIGINT) FROM {} WHERE true \
             ON CONFLICT (key_kind, key) DO NOTHING",
            tables.days
        ))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        // (`WHERE true`: SQLite's parser needs a WHERE before an upsert's ON CONFLICT.)
        // A first pass starts its crossing window now: every key is in the outbox anyway.
        sqlx::query(
            "INSERT INTO rates_publisher (name, late_watermark, seeded_generation) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET seeded_generation = excluded.seeded_generation",
        )
        .bind(self.options.name.as_str())
        .bind(at)
        .bind(tables.generation)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let added = dossiers.rows_affected() + rates.rows_affected();
        tracing::info!(
            generation = tables.generation,
            previous = ?seeded,
            added,
            "every key of the generation queued for publication"
        );
        Ok(added)
    }

    /// The oldest outbox rows.
    async fn read_outbox(&self, tables: &Tables) -> Result<Vec<OutboxRow>, PublishError> {
        let sql = format!(
            "SELECT key_kind, key, changed_at FROM {} ORDER BY changed_at, key_kind, key LIMIT $1",
            tables.outbox
        );
        let rows = sqlx::query(&sql)
            .bind(self.options.max_rows.max(1) as i64)
            .fetch_all(self.model.db().pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    kind: row.try_get(0)?,
                    key: row.try_get(1)?,
                    changed_at: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// Where the previous successful pass stopped looking for crossings; `now` on a database
    /// that never had a pass (then every key is in the outbox anyway).
    async fn watermark(&self, now: Instant) -> Result<Instant, PublishError> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT late_watermark FROM rates_publisher WHERE name = $1")
                .bind(self.options.name.as_str())
                .fetch_optional(self.model.db().pool())
                .await?;
        Ok(stored.map_or(now, instant).min(now))
    }

    /// Marks the dossiers that became past due in `(since, now]`, and the current periods of
    /// their scopes.
    async fn crossings(
        &self,
        tables: &Tables,
        since: Instant,
        now: Instant,
        dirty: &mut Dirty,
    ) -> Result<usize, PublishError> {
        let sql = format!(
            "SELECT dossier_id, receiving_unit, competent_authority, procedure_code FROM {} \
             WHERE late_from IS NOT NULL AND late_from > $1 AND late_from <= $2 \
             AND ended_at IS NULL",
            tables.dossiers
        );
        let rows = sqlx::query(&sql)
            .bind(since.timestamp_micros())
            .bind(now.timestamp_micros())
            .fetch_all(self.model.db().pool())
            .await?;
        let today = day_of(now);
        for row in &rows {
            let id: String = row.try_get(0)?;
            dirty.dossiers.insert(id);
            dirty.scope_day(ScopeKind::Province, "", today, now);
            for (i, scope) in [
                ScopeKind::ReceivingUnit,
                ScopeKind::CompetentAuthority,
                ScopeKind::Procedure,
            ]
            .into_iter()
            .enumerate()
            {
                let scope_id: String = row.try_get(i + 1)?;
                dirty.scope_day(scope, &scope_id, today, now);
            }
        }
        Ok(rows.len())
    }

    /// Marks the periods that ended in `(since, now]` for every scope with a day row in them.
    async fn ended(
        &self,
        tables: &Tables,
        since: Instant,
        now: Instant,
        dirty: &mut Dirty,
    ) -> Result<usize, PublishError> {
        let (Some(first), Some(today)) =
            (period::date_of(day_of(since)), period::date_of(day_of(now)))
        else {
            return Ok(0);
        };
        let ended_days = (today - first).num_days();
        let limit = i64::from(self.options.max_catch_up_days);
        let first = if ended_days > limit {
            tracing::warn!(
                ended_days,
                limit,
                "more days ended since the last pass than are republished as closed"
            );
            today
                .checked_sub_days(Days::new(limit.unsigned_abs()))
                .unwrap_or(today)
        } else {
            first
        };
        let mut periods = Vec::new();
        let mut date = first;
        while date < today {
            let [day, month, quarter, year] = Period::containing(date);
            periods.push(day);
            if let Some(next) = date.succ_opt() {
                if next.month() != date.month() {
                    periods.push(month);
                    if (next.month() - 1) % 3 == 0 {
                        periods.push(quarter);
                    }
                    if next.year() != date.year() {
                        periods.push(year);
                    }
                }
                date = next;
            } else {
                break;
            }
        }
        let sql = format!(
            "SELECT DISTINCT scope_kind, scope_id FROM {} WHERE day >= $1 AND day <= $2",
            tables.days
        );
        for period in &periods {
            let rows = sqlx::query(&sql)
                .bind(period.first_day())
                .bind(period.last_day())
                .fetch_all(self.model.db().pool())
                .await?;
            for row in &rows {
                let kind: String = row.try_get(0)?;
                let id: String = row.try_get(1)?;
                if let Some(scope) = ScopeKind::parse(&kind) {
                    dirty.period(scope, &id, *period, now);
                }
            }
        }
        Ok(periods.len())
    }

    /// The rows of `ids`; a dossier missing from the table (never expected) is logged and
    /// skipped.
    async fn read_dossiers(
        &self,
        tables: &Tables,
        ids: &BTreeSet<String>,
    ) -> Result<Vec<DossierRow>, PublishError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = format!(
                "SELECT {STATUS_COLUMNS} FROM {} WHERE dossier_id IN (",
                tables.dossiers
            );
            Placeholders::new(self.model.db().backend()).push_list(&mut sql, chunk.len());
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(self.model.db().pool()).await? {
                found.push(DossierRow {
                    dossier_id: row.try_get(0)?,
                    version: row.try_get(1)?,
                    status: row.try_get(2)?,
                    channel: row.try_get(3)?,
                    receiving_unit: row.try_get(4)?,
                    competent_authority: row.try_get(5)?,
                    procedure_code: row.try_get(6)?,
                    entered_at: row.try_get(7)?,
                    accepted_at: row.try_get(8)?,
                    due_at: row.try_get(9)?,
                    ended_at: row.try_get(10)?,
                    end_kind: row.try_get(11)?,
                    outcome: row.try_get(12)?,
                    supplement_count: row.try_get(13)?,
                    late_from: row.try_get(14)?,
                    processing_seconds: row.try_get(15)?,
                });
            }
        }
        if found.len() < ids.len() {
            tracing::warn!(
                missing = ids.len() - found.len(),
                "projection outbox names dossiers the dossier table does not have; skipped"
            );
        }
        Ok(found)
    }

    /// Sends every record, then waits for every delivery report; fails if any failed.
    async fn send(&self, outgoing: &[Outgoing]) -> Result<(), PublishError> {
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(outgoing.len());
        let mut failures: Vec<KafkaError> = Vec::new();
        for record in outgoing {
            let (topic, schema) = if record.status {
                (&self.options.status_topic, DOSSIER_STATUS_SCHEMA)
            } else {
                (&self.options.rates_topic, RATES_SCHEMA)
            };
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: "schema",
                    value: Some(schema),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
            let message = FutureRecord::to(topic)
                .key(record.key.as_str())
                .payload(record.payload.as_slice())
                .headers(headers);
            match self.producer.send_result(message) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    // The local queue is full or the producer is unusable: stop queueing,
                    // wait for what is in flight, fail the pass.
                    failures.push(error);
                    break;
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => failures.push(error),
                Err(_canceled) => failures.push(KafkaError::Canceled),
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(PublishError::Delivery {
                failed,
                records: outgoing.len(),
                first,
            }),
        }
    }
}

/// `scope_kind|scope_id|yyyymmdd` from the outbox; the scope id may be empty (province).
fn parse_rates_key(key: &str) -> Option<(ScopeKind, &str, DayNumber)> {
    let (rest, day) = key.rsplit_once('|')?;
    let (kind, id) = rest.split_once('|')?;
    let day: DayNumber = day.parse().ok()?;
    period::date_of(day)?;
    Some((ScopeKind::parse(kind)?, id, day))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::contribution::{Counters, c};
    use crate::report::ReportInputs;

    fn at(text: &str) -> Instant {
        chrono::DateTime::parse_from_rfc3339(text)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    fn sample_report(busy: bool) -> Report {
        let mut within = Counters::default();
        if busy {
            for (i, value) in within.0.iter_mut().enumerate() {
                *value = 3 + i as i64;
            }
            within.0[c::PROCESSING_SECONDS] = 90_000;
        }
        let figures = Figures::compute(&ReportInputs {
            within,
            within_by_channel: [within, Counters::default(), Counters::default()],
            live_past_due: busy.then_some(2),
            processing_hours: if busy {
                vec![(3, 2), (9, 1)]
            } else {
                Vec::new()
            },
            ..ReportInputs::default()
        });
        Report {
            scope: if busy {
                ScopeKind::ReceivingUnit
            } else {
                ScopeKind::Province
            },
            scope_id: if busy {
                "000.00.01.H22".into()
            } else {
                String::new()
            },
            channel: None,
            period: "2026-03".into(),
            first_day: "2026-03-01".into(),
            last_day: "2026-03-31".into(),
            judged_at: "2026-03-20T03:00:00Z".into(),
            closed: !busy,
            generation: 1,
            figures,
        }
    }

    fn sample_row(ended: bool) -> DossierRow {
        let t = |s: &str| at(s).timestamp_micros();
        DossierRow {
            dossier_id: "000.00.01.H22-260315-0001".into(),
            version: 4,
            status: if ended { 9 } else { 4 },
            channel: 2,
            receiving_unit: "000.00.01.H22".into(),
            competent_authority: "000.10.01.H22".into(),
            procedure_code: "1.001234".into(),
            entered_at: t("2026-03-15T01:30:00Z"),
            accepted_at: Some(t("2026-03-15T02:00:00Z")),
            due_at: Some(t("2026-03-20T10:00:00Z")),
            ended_at: ended.then(|| t("2026-03-19T08:00:00Z")),
            end_kind: ended.then(|| "resolved".into()),
            outcome: ended.then(|| "early".into()),
            supplement_count: 1,
            late_from: (!ended).then(|| t("2026-03-20T10:00:00Z")),
            processing_seconds: ended.then_some(86_400),
        }
    }

    /// Follows a local `$ref` (`#/$defs/name`).
    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                let target = root
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
                resolve(root, target)
            }
            None => schema,
        }
    }

    fn type_matches(name: &str, value: &Value) -> bool {
        match name {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("unknown type {other} in the schema"),
        }
    }

    /// A hand check of the subset of JSON Schema the two schemas use: `type`, `const`,
    /// `enum`, `properties` with `required` and `additionalProperties: false`, `items`, `$ref`.
    fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = resolve(root, schema);
        if let Some(types) = schema.get("type") {
            let ok = match types {
                Value::String(t) => type_matches(t, value),
                Value::Array(ts) => ts
                    .iter()
                    .any(|t| type_matches(t.as_str().expect("a type name"), value)),
                _ => panic!("bad type at {path}"),
            };
            if !ok {
                errors.push(format!("{path}: {value} is not of type {types}"));
            }
        }
        if let Some(expected) = schema.get("const")
            && expected != value
        {
            errors.push(format!("{path}: {value} is not {expected}"));
        }
        if let Some(Value::Array(allowed)) = schema.get("enum")
            && !allowed.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        match value {
            Value::Object(map) => {
                let Some(Value::Object(properties)) = schema.get("properties") else {
                    errors.push(format!("{path}: an object without declared properties"));
                    return;
                };
                if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
                    errors.push(format!("{path}: additionalProperties is not false"));
                }
                for (key, item) in map {
                    match properties.get(key) {
                        Some(sub) => check(root, sub, item, &format!("{path}.{key}"), errors),
                        None => errors.push(format!("{path}.{key}: not declared in the schema")),
                    }
                }
                for required in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = required.as_str().expect("a property name");
                    if !map.contains_key(name) {
                        errors.push(format!("{path}.{name}: required but missing"));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        check(root, sub, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            _ => {}
        }
    }

    fn assert_conforms(schema_text: &str, value: &impl Serialize) {
        let schema: Value = serde_json::from_str(schema_text).expect("the schema is JSON");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "a draft 2020-12 schema"
        );
        let value = serde_json::to_value(value).expect("serialises");
        let mut errors = Vec::new();
        check(&schema, &schema, &value, "$", &mut errors);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn rates_values_match_their_schema() {
        let now = at("2026-03-20T03:00:00Z");
        let month = Period::parse("2026-03").expect("a month");
        for busy in [true, false] {
            let value = rates_value(&sample_report(busy), &month, now);
            assert_conforms(RATES_JSON_SCHEMA, &value);
        }
        let value = rates_value(&sample_report(true), &month, now);
        assert_eq!(value.key, "receiving_unit/000.00.01.H22/2026-03");
        assert_eq!(value.period.kind, PeriodKind::Month);
        assert_eq!(
            rates_value(&sample_report(false), &month, now).key,
            "province/-/2026-03"
        );
    }

    #[test]
    fn dossier_status_values_match_their_schema() {
        let now = at("2026-03-21T00:00:00Z");
        for ended in [true, false] {
            assert_conforms(
                DOSSIER_STATUS_JSON_SCHEMA,
                &dossier_value(&sample_row(ended), now, 1),
            );
        }
        let open = dossier_value(&sample_row(false), now, 1);
        assert!(open.overdue_now);
        assert_eq!(open.status.label, "processing");
        assert_eq!(open.vietnam_time.entered_at, "2026-03-15T08:30:00+07:00");
        assert_eq!(open.entered_at, "2026-03-15T01:30:00Z");
        let before_due = dossier_value(&sample_row(false), at("2026-03-20T09:00:00Z"), 1);
        assert!(!before_due.overdue_now);
    }

    #[test]
    fn the_schema_check_catches_undeclared_and_missing_fields() {
        let schema: Value = serde_json::from_str(DOSSIER_STATUS_JSON_SCHEMA).expect("JSON");
        let now = at("2026-03-21T00:00:00Z");
        let mut value =
            serde_json::to_value(dossier_value(&sample_row(true), now, 1)).expect("serialises");
        value["applicant_phone"] = Value::from("0900000000");
        if let Some(map) = value.as_object_mut() {
            map.remove("due_at");
        }
        value["status"]["code"] = Value::from("four");
        let mut errors = Vec::new();
        check(&schema, &schema, &value, "$", &mut errors);
        errors.sort();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("$.applicant_phone: not declared"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("$.due_at: required but missing"),
            "{errors:?}"
        );
        assert!(errors[2].contains("$.status.code"), "{errors:?}");
    }

    #[test]
    fn outbox_rates_keys_parse_and_coalesce() {
        assert_eq!(
            parse_rates_key("province||20260315"),
            Some((ScopeKind::Province, "", 20260315))
        );
        assert_eq!(
            parse_rates_key("procedure|1.001234|20260315"),
            Some((ScopeKind::Procedure, "1.001234", 20260315))
        );
        assert_eq!(parse_rates_key("province||20261315"), None);
        assert_eq!(parse_rates_key("planet||20260315"), None);
        assert_eq!(parse_rates_key("nonsense"), None);

        let now = at("2026-03-20T03:00:00Z");
        let mut dirty = Dirty::default();
        for day in [20260301, 20260302, 20260315, 20260315] {
            dirty.scope_day(ScopeKind::Province, "", day, now);
        }
        // A day after now (an overdue delta on a future day) adds no period of its own.
        dirty.scope_day(ScopeKind::Province, "", 20260325, now);
        let keys: Vec<&str> = dirty.rates.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "province/-/2026",
                "province/-/2026-03",
                "province/-/2026-03-01",
                "province/-/2026-03-02",
                "province/-/2026-03-15",
                "province/-/2026-Q1",
            ]
        );
    }
}
