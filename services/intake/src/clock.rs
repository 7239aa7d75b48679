//! The server's clock: defined in the domain crate, so every reader (projector, deadline
//! watcher, portal adapter, metrics) judges time by the same node clock as the intake.

pub use motcua_domain::clock::*;
