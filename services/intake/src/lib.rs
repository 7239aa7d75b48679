//! The intake: the gRPC service counter software calls to record what happens to dossiers.
//!
//! A call goes through four steps, each in its own module:
//! 1. [`validate`]: every field checked at the edge, turned into a domain command; what is
//!    wrong is reported field by field.
//! 2. [`handler`]: the command decided against the dossier's current state (folded from its
//!    events) by the domain rules, and appended with optimistic concurrency and request-id
//!    idempotency.
//! 3. [`error`]: every failure mapped to its gRPC status in one place.
//! 4. [`service`] and [`server`]: the tonic service, health, reflection and shutdown.

pub mod actor;
pub mod clock;
pub mod error;
pub mod grpc_metrics;
pub mod handler;
pub mod server;
pub mod service;
mod state_cache;
pub mod validate;
mod view;

pub use clock::{Clock, SystemClock};
pub use handler::CommandHandler;
pub use server::{IntakeConfig, serve, serve_routes};
