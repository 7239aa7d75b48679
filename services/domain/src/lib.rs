//! Domain rules of one-stop dossier processing, as `docs/domain.md` describes them.
//!
//! This crate does no I/O: every rule is a pure function of its inputs, so the same inputs
//! always give the same due date or outcome, and a dossier's history can be replayed years
//! later with the rule and holiday-table versions it was accepted under.
//!
//! - [`clock`]: the node's clock, the one source of "now" for every rule and figure.
//! - [`time`]: the instant type and the Vietnam time zone used at the edges.
//! - [`calendar`]: working-time profiles and holiday tables.
//! - [`due_date`]: processing times and the due-date computation, including supplements.
//! - [`ids`]: dossier codes, agency ids and procedure codes, valid by construction.
//! - [`catalog`]: the procedure catalogue that due dates are computed from.
//! - [`lifecycle`]: the state machine, the events each command produces, and the fold.
//! - [`outcome`]: early / on time / late, exactly as the national portal judges it.
//! - [`deadline`]: when the deadline watcher records `due_soon` and `late`.

pub mod calendar;
pub mod catalog;
pub mod clock;
pub mod deadline;
pub mod due_date;
pub mod ids;
pub mod lifecycle;
pub mod outcome;
pub mod time;
