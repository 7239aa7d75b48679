//! The command-line client: a person at a terminal recording and reading dossiers through the
//! same gRPC API counter software uses.

pub mod connect;
pub mod dossier;
mod format;
pub mod report;
