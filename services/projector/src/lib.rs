//! The rates projector (issue 4): read models of every dossier and of per-day counters, kept
//! from the event feed; the period reports and Decision 766 scores computed from them; and
//! their publication on Kafka for monitoring teams.
//!
//! - `contribution`: what a dossier adds to the aggregates, and why they stay exact;
//! - `projector`: the feed reader that maintains the tables; `plan`: the statements of its
//!   writes, built apart from the database;
//! - `read_model`, `report`, `scores`: the query side;
//! - `generations`: which set of tables is active, and the switch after a rebuild;
//! - `period`: Vietnam-time periods.

pub mod bulk;
pub mod contribution;
pub mod generate;
pub mod generations;
pub mod period;
mod plan;
pub mod projector;
pub mod publish;
pub mod read_model;
pub mod replay;
pub mod report;
pub mod schema;
pub mod scores;
pub mod service;
/// The stored form of a dossier's state (it moved to the domain crate, which other readers share).
pub use motcua_domain::lifecycle::snapshot;

pub use period::{Period, PeriodError, PeriodKind};
pub use projector::{ProjectorStats, RatesProjector};
pub use publish::{
    PassReport, ProjectionPublisher, PublishError, PublisherOptions, PublisherStats,
};
pub use read_model::{QueryError, ReadModel, Report, ReportQuery};
pub use report::{Figures, Rate, ScopeKind};
pub use schema::Tables;
