//! The national-portal adapter (issue 6): makes the National Public Service Portal's copy of
//! every dossier right, in order, and shows plainly what has not synced and why. The portal's
//! wire contract, as this adapter speaks it, is `docs/portal-contract.md`.
//!
//! - [`SyncReader`] follows the event feed into the adapter's own tables (`schema.rs`): each
//!   dossier's latest state and the facts the portal wants beside it, and its progress records
//!   not yet acknowledged, with the feed position in the same transaction.
//! - [`Sender`] brings the portal up to date, dossier by dossier, with retries, backoff with
//!   jitter, a circuit breaker and dead letters (`sender.rs` says how and why).
//! - [`PortalClient`] logs in, renews the session, and classifies every reply (`client.rs`);
//!   [`wire`] maps a dossier to the portal's fields.
//! - [`ops`]: the status of the sync, the dossier-sync figure, resync and reconcile.

pub mod client;
pub mod ops;
pub mod reader;
pub mod schema;
pub mod sender;
pub mod wire;

pub use client::{ClientConfig, PortalClient, Secret};
pub use reader::SyncReader;
pub use sender::{Sender, SenderOptions, SenderStats};
