//! The motcua binary's library: configuration, the all-in-one node, and the command-line
//! client. `main.rs` only parses flags and calls into here, so tests can run the same code.

pub mod auth;
pub mod cli;
pub mod config;
pub mod deadlines;
pub mod history;
pub mod holidays;
pub mod loadgen;
pub mod node;
pub mod portal;
pub mod projection;
pub mod telemetry;
pub mod workload;
